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

/** One certification round's latency: from its attest.request to the attest.record that closed it. */
export interface RoundLatency {
  nodeId: string
  round: number
  requestHeight: number
  recordHeight: number
  /** Blocks and milliseconds (block times) between the two. */
  blocks: number
  ms: number
  outcome?: 'pass' | 'fail'
}

/** One version of an app as the chain holds it. */
export interface AppVersionRow {
  version: string
  digest: string
  cid: string
  size: number
  height: number
  revokedAt?: number
}
/** An app (app.publish records) with its usage as the chain counts it. */
export interface AppRow {
  name: string
  /** Hex of the publisher's (owner's) public key. */
  publisher: string
  current?: string
  versions: AppVersionRow[]
  height: number
  revokedAt?: number
  /** Totals over every accepted usage.record naming the app. */
  requests: number
  bytesIn: number
  bytesOut: number
  /** Nodes that reported serving it. */
  nodes: string[]
}
/** One app's requests in one accepted usage.record, placed at the block that holds it. */
export interface UsagePoint {
  height: number
  time: number
  nodeId: string
  app: string
  requests: number
}

/** The agent's own firmware event log, decoded (agent/explorer/local.ts). */
export interface DecodedBootLog {
  present: boolean
  bytes?: number
  banks?: string[]
  events: Array<{ index: number; pcr: number; type: string; sha256?: string; description: string }>
  /** Why the log could not be decoded (the bytes are still what the committee received). */
  error?: string
  /** The log's bytes, base64 (only on the agent's /status/eventlog). */
  raw?: string
}
/** The agent's container event log (PCR 13), decoded. */
export interface DecodedContainerLog {
  entries: Array<{ index: number; image: string; digest: string; cid: string; args: string[]; sha256: string }>
  error?: string
}
/** What the agent serving /ui knows of its own node (GET /ui/api/local). */
export interface LocalView {
  nodeId: string
  state: string
  stateReason?: string
  containers: Array<{ image: string; digest: string; cid: string; url?: string }>
  apps: Array<{ name: string; state: string; version?: string; digest?: string; requests?: number }>
  bootLog: DecodedBootLog
  containerLog: DecodedContainerLog
}
