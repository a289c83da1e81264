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
import { failedClaimsOfQc, outcomeOfQc } from './claims.ts'

/** The few ChainClient methods the explorer uses (STYLE §4). */
export type ExplorerChain = Pick<
  ChainClient,
  | 'status'
  | 'block'
  | 'tx'
  | 'nodes'
  | 'node'
  | 'qc'
  | 'vendor'
  | 'ekCas'
  | 'firmware'
  | 'os'
  | 'images'
  | 'apps'
  | 'app'
  | 'appUsage'
>

import type {
  AppRow,
  AppVersionRow,
  BlockSummary,
  NodeRow,
  RoundLatency,
  RoundView,
  TxSummary,
  UsagePoint
} from './types.ts'

export type { AppRow, AppVersionRow, BlockSummary, NodeRow, RoundLatency, RoundView, TxSummary, UsagePoint }

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
  /** Rounds closed by an accepted attest.record, oldest first (at most the last KEEP_ROUNDS). */
  rounds: RoundLatency[]
  apps: AppRow[]
  /** Requests per app from accepted usage.record transactions, oldest first. */
  usage: UsagePoint[]
}

const KEEP_BLOCKS = 600
const KEEP_TXS = 200
const KEEP_ROUNDS = 500
const KEEP_USAGE = 2000
/**
 * Transactions whose effect the explorer counts from the block itself (round latency, usage over
 * time) rather than from state: each is looked up (the `tx` RPC) and counted only when the chain
 * accepted it, so a refused request, record or usage report changes no chart.
 */
const CHECKED = new Set(['attest.request', 'attest.record', 'app.publish', 'app.revoke', 'usage.record'])

interface Seen {
  vendors: Set<string>
  os: Set<string>
  imageDigests: Set<string>
  nodes: Set<string>
  requests: Map<string, number[]>
  apps: Set<string>
  /** Accepted attest.request per `nodeId round`, until its record closes it. */
  open: Map<string, { height: number; time: number }>
}

function field(body: Canonical, key: string): Canonical | undefined {
  if (body === null || typeof body !== 'object' || body instanceof Uint8Array || Array.isArray(body)) return undefined
  return Object.hasOwn(body, key) ? (body as Record<string, Canonical>)[key] : undefined
}
function str(body: Canonical, key: string): string | undefined {
  const v = field(body, key)
  return typeof v === 'string' ? v : undefined
}
function bytesField<T>(body: Canonical, key: string, read: (b: Uint8Array) => T): T | undefined {
  const v = field(body, key)
  return v instanceof Uint8Array ? read(v) : undefined
}
function num(body: Canonical, key: string): number | undefined {
  const v = field(body, key)
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined
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
    requests: new Map(),
    apps: new Set(),
    open: new Map()
  }
  readonly #rounds: RoundLatency[] = []
  readonly #usage: UsagePoint[] = []
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
      // decode first and ask the chain about the txs that need it, so a lookup that fails leaves
      // this block unread (it is read again whole on the next refresh)
      const decoded = b.txs.map(bytes => {
        const hash = txHash(bytes)
        // on CometBFT every block after the first starts with the committee-seed tx (chain/abci/seed.ts)
        if (isSeedTx(bytes)) return { hash, type: 'committee-seed' }
        try {
          const tx = decodeTx(bytes)
          return { hash, type: tx.type, body: tx.body }
        } catch {
          return { hash, type: 'undecodable' } // counted as such
        }
      })
      const accepted: boolean[] = []
      for (const d of decoded) {
        opts.signal?.throwIfAborted()
        accepted.push(d.body === undefined || !CHECKED.has(d.type) || (await this.#accepted(d.hash)))
      }
      const types: Record<string, number> = Object.create(null)
      decoded.forEach((d, index) => {
        const subject = d.body === undefined ? '' : this.#note(d.type, d.body, b.height, b.time, accepted[index])
        types[d.type] = (types[d.type] ?? 0) + 1
        this.#txs.push({ height: b.height, index, type: d.type, hash: toHex(d.hash), subject })
      })
      this.#blocks.push({ height: b.height, time: b.time, txs: b.txs.length, types })
      if (this.#blocks.length > KEEP_BLOCKS) this.#blocks.splice(0, this.#blocks.length - KEEP_BLOCKS)
      if (this.#txs.length > KEEP_TXS) this.#txs.splice(0, this.#txs.length - KEEP_TXS)
    }
    await this.#rebuild(status.chainId, status.height, status.time)
    return true
  }

  /** Whether the chain accepted a committed tx (an unindexed one — CometBFT with indexing off — counts). */
  async #accepted(hash: Uint8Array): Promise<boolean> {
    const info = await this.#chain.tx(hash)
    return info === undefined || info.result.code === 0
  }

  #note(type: string, body: Canonical, height: number, time: number, accepted: boolean): string {
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
        const round = num(body, 'round')
        if (type === 'attest.request') {
          const list = this.#seen.requests.get(n) ?? []
          list.push(height)
          this.#seen.requests.set(n, list.slice(-50))
          if (accepted && round !== undefined) this.#seen.open.set(`${n} ${round}`, { height, time })
        } else if (accepted && round !== undefined) {
          const req = this.#seen.open.get(`${n} ${round}`)
          if (req !== undefined) {
            this.#seen.open.delete(`${n} ${round}`)
            this.#rounds.push({
              nodeId: n,
              round,
              requestHeight: req.height,
              recordHeight: height,
              blocks: height - req.height,
              ms: time - req.time,
              outcome: bytesField(body, 'qc', outcomeOfQc)
            })
            if (this.#rounds.length > KEEP_ROUNDS) this.#rounds.splice(0, this.#rounds.length - KEEP_ROUNDS)
          }
        }
        // requests that never closed (a round abandoned by a reset or its deadline) are forgotten
        if (this.#seen.open.size > 4 * KEEP_ROUNDS) this.#seen.open.delete(this.#seen.open.keys().next().value ?? '')
        return n
      }
      case 'app.publish':
      case 'app.revoke': {
        const n = str(body, 'name')
        if (n !== undefined && accepted) this.#seen.apps.add(n)
        return n === undefined ? '' : `${n}${str(body, 'version') === undefined ? '' : ` ${str(body, 'version')}`}`
      }
      case 'usage.record': {
        const n = str(body, 'nodeId') ?? ''
        const apps = field(body, 'apps')
        if (!Array.isArray(apps)) return n
        for (const a of apps) {
          const app = str(a, 'app')
          const requests = num(a, 'requests')
          if (!accepted || app === undefined || requests === undefined) continue
          this.#usage.push({ height, time, nodeId: n, app, requests })
        }
        if (this.#usage.length > KEEP_USAGE) this.#usage.splice(0, this.#usage.length - KEEP_USAGE)
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
    const apps: AppRow[] = []
    // every app the chain holds (also those published before this explorer's first block)
    for (const a of await this.#chain.apps()) this.#seen.apps.add(a.record.name)
    for (const name of [...this.#seen.apps].sort()) {
      const row = await this.#app(name)
      if (row !== undefined) apps.push(row)
    }
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
      certifications: this.#certs.slice(-500),
      rounds: this.#rounds.slice(),
      apps,
      usage: this.#usage.slice()
    }
  }

  async #app(name: string): Promise<AppRow | undefined> {
    const v = await this.#chain.app(name)
    if (v === undefined) return undefined
    const u = await this.#chain.appUsage(name)
    const versions: AppVersionRow[] = v.versions.map(x => ({
      version: x.version,
      digest: x.digest,
      cid: x.cid,
      size: x.size,
      height: x.height,
      revokedAt: x.revokedAt
    }))
    return {
      name,
      publisher: toHex(v.record.owner),
      current: v.record.current,
      versions,
      height: v.record.height,
      revokedAt: v.record.revokedAt,
      requests: u?.totals.requests ?? 0,
      bytesIn: u?.totals.bytesIn ?? 0,
      bytesOut: u?.totals.bytesOut ?? 0,
      nodes: (u?.nodes ?? []).map(n => n.nodeId)
    }
  }

  async #row(v: NodeView, time: number): Promise<NodeRow> {
    const r = v.record
    const qc = r === undefined ? undefined : await this.#chain.qc(v.nodeId)
    const lastRound = qc === undefined ? undefined : roundOf(qc)
    if (qc !== undefined) {
      const l = this.#rounds.findLast(x => x.nodeId === qc.nodeId && x.round === qc.round)
      if (l !== undefined) l.outcome = qc.outcome
    }
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
