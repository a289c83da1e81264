// The explorer's snapshot rows, shared by the server (indexer.ts) and the page (ui/app.ts), which
// receives them as JSON. Plain data only, so the page's build can import them.
export interface BlockSummary {
  height: number
  time: number
  txs: number
  types: Record<string, number>
}
export interface TxSummary {
  height: number
  index: number
  type: string
  hash: string
  subject: string
}

export interface RoundView {
  round: number
  outcome: 'pass' | 'fail'
  height: number
  committee: string[]
  failedClaims: string[]
  expiresAt?: number
}

export interface NodeRow {
  nodeId: string
  status: string
  certified: boolean
  genesisVerifier: boolean
  platform?: string
  os?: string
  addrs: string[]
  certifiedUntil?: number
  statusReason?: string
  committeeSize?: number
  securityBits?: number
  lastRound?: RoundView
  /** Heights of this node's attestation requests and records seen in blocks, newest last. */
  requests: number[]
}
