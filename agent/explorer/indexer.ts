// The explorer's view of the chain: it follows blocks from height 1 (decoding each transaction's
// type and body) and rebuilds a snapshot of what the pages show whenever the height moves.
// State that the chain decides (certifications, vendors, reference values, images) is read back
// through queries, so a transaction that was in a block but refused still shows nowhere but in
// the transaction counts. Read-only: it holds no key and sends nothing.
import { decodeTx, txHash, type ChainClient } from '../../chain/index.ts'
import { isSeedTx } from '../../chain/abci/seed.ts'
import type {
  NodeView,
  QcRecord,
  EkCaRecord,
  ImageRecord,
  OsRecord,
  FirmwareRecord,
  VendorRecord
} from '../../chain/types.ts'
import type { Canonical } from '../../encoding/canonical.ts'
import { toHex } from '../../encoding/bytes.ts'
import { failedClaimsOfQc } from './claims.ts'

/** The few ChainClient methods the explorer uses (STYLE §4). */
export type ExplorerChain = Pick<
  ChainClient,
  'status' | 'block' | 'nodes' | 'node' | 'qc' | 'vendor' | 'ekCas' | 'firmware' | 'os' | 'images'
>

import type { BlockSummary, NodeRow, RoundView, TxSummary } from './types.ts'

export type { BlockSummary, NodeRow, RoundView, TxSummary }

export interface Snapshot {
  chainId: string
  height: number
  time: number
  /** Blocks per minute over the blocks this explorer holds (at most the last 600). */
  blockRate: number
  nodes: NodeRow[]
  vendors: Array<VendorRecord & { ekCas: EkCaRecord[]; firmware: FirmwareRecord[] }>
  osImages: OsRecord[]
  images: ImageRecord[]
  recentTxs: TxSummary[]
  blocks: BlockSummary[]
  /** Certifications and failures recorded per block height (attest.record outcomes as decided). */
  certifications: Array<{ height: number; time: number; nodeId: string; outcome: 'pass' | 'fail' }>
}

const KEEP_BLOCKS = 600
const KEEP_TXS = 200

interface Seen {
  vendors: Set<string>
  os: Set<string>
  imageDigests: Set<string>
  nodes: Set<string>
  requests: Map<string, number[]>
}

function str(body: Canonical, key: string): string | undefined {
  if (body === null || typeof body !== 'object' || body instanceof Uint8Array || Array.isArray(body)) return undefined
  const v = (body as Record<string, Canonical>)[key]
  return typeof v === 'string' ? v : undefined
}

/** Follows the chain; `refresh()` reads the blocks it has not seen and rebuilds the snapshot. */
export class ChainIndex {
  readonly #chain: ExplorerChain
  #next = 1
  #blocks: BlockSummary[] = []
  #txs: TxSummary[] = []
  readonly #seen: Seen = {
    vendors: new Set(),
    os: new Set(),
    imageDigests: new Set(),
    nodes: new Set(),
    requests: new Map()
  }
  readonly #certs: Snapshot['certifications'] = []
  #snapshot: Snapshot | undefined

  constructor(chain: ExplorerChain) {
    this.#chain = chain
  }

  get snapshot(): Snapshot | undefined {
    return this.#snapshot
  }

  /** Reads new blocks; returns true when the height moved (and the snapshot was rebuilt). */
  async refresh(opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    const status = await this.#chain.status()
    if (this.#snapshot !== undefined && status.height < this.#next) return false
    // a long history is read from its last KEEP_BLOCKS blocks for the charts, but every block's
    // transactions are needed for the names they introduce; a chain explorer at scale would
    // index into a database — this one is for a network's operators and tests
    for (; this.#next <= status.height; this.#next++) {
      opts.signal?.throwIfAborted()
      const b = await this.#chain.block(this.#next)
      const types: Record<string, number> = Object.create(null)
      b.txs.forEach((bytes, index) => {
        let type = 'undecodable'
        let subject = ''
        // on CometBFT every block after the first starts with the committee-seed tx (chain/abci/seed.ts)
        if (isSeedTx(bytes)) {
          type = 'committee-seed'
        } else {
          try {
            const tx = decodeTx(bytes)
            type = tx.type
            subject = this.#note(tx.type, tx.body, b.height)
          } catch {
            /* an undecodable tx is counted as such */
          }
        }
        types[type] = (types[type] ?? 0) + 1
        this.#txs.push({ height: b.height, index, type, hash: toHex(txHash(bytes)), subject })
      })
      this.#blocks.push({ height: b.height, time: b.time, txs: b.txs.length, types })
      if (this.#blocks.length > KEEP_BLOCKS) this.#blocks.splice(0, this.#blocks.length - KEEP_BLOCKS)
      if (this.#txs.length > KEEP_TXS) this.#txs.splice(0, this.#txs.length - KEEP_TXS)
    }
    await this.#rebuild(status.chainId, status.height, status.time)
    return true
  }

  #note(type: string, body: Canonical, height: number): string {
    switch (type) {
      case 'vendor.register': {
        const n = str(body, 'name')
        if (n !== undefined) this.#seen.vendors.add(n)
        return n ?? ''
      }
      case 'os.publish': {
        const n = str(body, 'name')
        if (n !== undefined) this.#seen.os.add(n)
        return n ?? ''
      }
      case 'image.publish': {
        const d = str(body, 'digest')
        if (d !== undefined) this.#seen.imageDigests.add(d)
        return str(body, 'name') ?? d ?? ''
      }
      case 'node.register': {
        const n = str(body, 'nodeId')
        if (n !== undefined) this.#seen.nodes.add(n)
        return n ?? ''
      }
      case 'attest.request':
      case 'attest.record': {
        const n = str(body, 'nodeId')
        if (n === undefined) return ''
        if (type === 'attest.request') {
          const list = this.#seen.requests.get(n) ?? []
          list.push(height)
          this.#seen.requests.set(n, list.slice(-50))
        }
        return n
      }
      default:
        return str(body, 'nodeId') ?? str(body, 'name') ?? str(body, 'vendor') ?? ''
    }
  }

  async #rebuild(chainId: string, height: number, time: number): Promise<void> {
    const views = await this.#chain.nodes('all')
    const nodes: NodeRow[] = []
    for (const v of views) nodes.push(await this.#row(v, time))
    nodes.sort((a, b) => Number(b.certified) - Number(a.certified) || a.nodeId.localeCompare(b.nodeId))
    const vendors: Snapshot['vendors'] = []
    for (const name of [...this.#seen.vendors].sort()) {
      const v = await this.#chain.vendor(name)
      if (v === undefined) continue
      vendors.push({ ...v, ekCas: await this.#chain.ekCas(name), firmware: await this.#chain.firmware(name) })
    }
    const osImages: OsRecord[] = []
    for (const name of [...this.#seen.os].sort()) osImages.push(...(await this.#chain.os(name)))
    const images: ImageRecord[] = []
    for (const digest of [...this.#seen.imageDigests].sort()) images.push(...(await this.#chain.images({ digest })))
    const first = this.#blocks[0]
    const last = this.#blocks.at(-1)
    const minutes =
      first !== undefined && last !== undefined && last.time > first.time ? (last.time - first.time) / 60_000 : 0
    this.#snapshot = {
      chainId,
      height,
      time,
      blockRate: minutes > 0 ? Math.round(((this.#blocks.length - 1) / minutes) * 10) / 10 : 0,
      nodes,
      vendors,
      osImages,
      images,
      recentTxs: this.#txs.slice(-50).reverse(),
      blocks: this.#blocks.slice(-120),
      certifications: this.#certs.slice(-500)
    }
  }

  async #row(v: NodeView, time: number): Promise<NodeRow> {
    const r = v.record
    const qc = r === undefined ? undefined : await this.#chain.qc(v.nodeId)
    const lastRound = qc === undefined ? undefined : roundOf(qc)
    if (qc !== undefined && !this.#certs.some(c => c.nodeId === qc.nodeId && c.height === qc.height)) {
      this.#certs.push({
        height: qc.height,
        time: this.#blocks.find(b => b.height === qc.height)?.time ?? time,
        nodeId: qc.nodeId,
        outcome: qc.outcome
      })
      this.#certs.sort((a, b) => a.height - b.height)
    }
    // fields the certification rules may add (security level reached, committee size) are shown
    // when the record carries them
    const extra = (r ?? {}) as unknown as Record<string, unknown>
    return {
      nodeId: v.nodeId,
      status: v.effective,
      certified: v.certified,
      genesisVerifier: v.genesisVerifier,
      platform: r?.platform,
      os: r?.os,
      addrs: r?.addrs ?? [],
      certifiedUntil: v.certified ? r?.expiresAt : undefined,
      statusReason: r?.statusReason,
      committeeSize: r?.committee?.length,
      securityBits: typeof extra.securityBits === 'number' ? extra.securityBits : undefined,
      lastRound,
      requests: this.#seen.requests.get(v.nodeId) ?? []
    }
  }
}

function roundOf(qc: QcRecord): RoundView {
  return {
    round: qc.round,
    outcome: qc.outcome,
    height: qc.height,
    committee: [...qc.committee],
    failedClaims: failedClaimsOfQc(qc),
    expiresAt: qc.outcome === 'pass' ? qc.expiresAt : undefined
  }
}
