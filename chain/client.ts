// ChainClient: the one way the rest of the project talks to the chain. It speaks CometBFT's
// JSON-RPC over HTTP POST (status, broadcast_tx_sync, broadcast_tx_commit, abci_query, block, tx)
// exactly as a CometBFT v0.38 node expects it (tx and hash as base64, abci_query data as hex,
// heights as strings), so it works unchanged against the embedded validator and a real CometBFT
// node serving this app. Typed helpers wrap the app's query paths and sign-and-send.
import { request as httpRequest, Agent as HttpAgent } from 'node:http'
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https'
import { fromBase64, fromHex, toBase64, toHex, utf8 } from '../encoding/bytes.ts'
import { decode, encode, type Canonical } from '../encoding/canonical.ts'
import { InvalidInputError, QuorateError, TransientError } from '../encoding/errors.ts'
import { PROOF_TYPE, verifyStateProof } from './store.ts'
import { buildTx } from './tx.ts'
import type { TxSigner } from './keys.ts'
import {
  TxCode,
  type AppPublishBody,
  type AppRecord,
  type AppUsageView,
  type AppVersionRecord,
  type AppView,
  type UsageRecordBody,
  type BlockHeader,
  type EkCaRecord,
  type FirmwareRecord,
  type ImageRecord,
  type NodeView,
  type OsRecord,
  type QcRecord,
  type ReferenceValues,
  type SeedView,
  type TxBodies,
  type TxResult,
  type TxType,
  type VendorRecord
} from './types.ts'

/** The chain could not be reached or answered with an RPC error: try again later. */
export class ChainUnavailableError extends TransientError {
  override readonly code: string = 'ERR_CHAIN_UNAVAILABLE'
}
/** The RPC answered with a JSON-RPC error for this request. */
export class ChainRpcError extends QuorateError {
  override readonly code: string = 'ERR_CHAIN_RPC'
  readonly rpcCode: number
  readonly data: string
  constructor(rpcCode: number, message: string, data: string) {
    super(`${message}: ${data}`)
    this.rpcCode = rpcCode
    this.data = data
  }
}
/** The chain refused a transaction (code ≠ 0); nothing was changed. */
export class TxRejectedError extends InvalidInputError {
  override readonly code: string = 'ERR_TX_REJECTED'
  readonly txCode: number
  readonly log: string
  readonly hash: string
  readonly phase: 'check' | 'deliver'
  constructor(r: { txCode: number; log: string; hash: string; phase: 'check' | 'deliver' }) {
    super(`transaction ${r.hash.slice(0, 16)}… refused at ${r.phase} (code ${r.txCode}): ${r.log}`)
    this.txCode = r.txCode
    this.log = r.log
    this.hash = r.hash
    this.phase = r.phase
  }
}
/** A query failed (code ≠ 0 other than not found). */
export class ChainQueryError extends InvalidInputError {
  override readonly code: string = 'ERR_CHAIN_QUERY'
}

export interface ChainStatus {
  chainId: string
  height: number
  /** App hash after `height`. */
  appHash: Uint8Array
  blockHash: Uint8Array
  /** Unix ms. */
  time: number
  catchingUp: boolean
  nodeVersion: string
}
export interface BroadcastResult {
  hash: string
  code: number
  log: string
  data?: Uint8Array
  codespace: string
}
export interface CommitResult {
  hash: string
  height: number
  checkTx: TxResult
  txResult: TxResult
}
export interface AbciQueryResult {
  code: number
  log: string
  key?: Uint8Array
  value?: Uint8Array
  height: number
  proofOps?: Array<{ type: string; key: Uint8Array; data: Uint8Array }>
  codespace: string
}
/** A block as the RPC returns it: its header (CometBFT semantics), its hash and its transactions. */
export interface BlockInfo extends BlockHeader {
  hash: Uint8Array
  txs: Uint8Array[]
}
export interface TxInfo {
  hash: string
  height: number
  index: number
  result: TxResult
  tx: Uint8Array
}
export interface SendResult {
  hash: string
  height: number
  code: number
  log: string
  data?: Uint8Array
}

export interface ChainClientOptions {
  /** RPC base URL, e.g. http://127.0.0.1:26657 (QUORATE_CHAIN_RPC in the CLI). */
  url: string
  /** Per request (ms, default 35 s: broadcast_tx_commit waits for a block). */
  timeoutMs?: number
}

/** Parses RFC 3339 with any number of fractional digits (CometBFT uses nanoseconds). */
export function parseTime(s: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s)
  if (m === null) return Date.parse(s)
  return Date.parse(`${m[1]}.${(m[2] ?? '0').padEnd(3, '0').slice(0, 3)}${m[3]}`)
}
const hexOrEmpty = (s: unknown): Uint8Array => (typeof s === 'string' && s !== '' ? fromHex(s) : new Uint8Array(0))
const b64OrEmpty = (s: unknown): Uint8Array | undefined =>
  typeof s === 'string' && s !== '' ? fromBase64(s) : undefined
const num = (s: unknown): number => (typeof s === 'number' ? s : Number(s ?? 0))

function txResultFrom(j: Record<string, unknown> | undefined): TxResult {
  const data = b64OrEmpty(j?.data)
  const base = { code: num(j?.code), log: String(j?.log ?? ''), codespace: String(j?.codespace ?? '') }
  return data === undefined ? base : { ...base, data }
}

/** Most txs in one batch POST (the embedded RPC's MAX_BATCH), and its most JSON bytes (its body limit is 256 KiB). */
const BATCH_TXS = 100
const BATCH_BYTES = 192 * 1024

/** How often a transaction refused for its sequence is signed again with a re-read one. */
const BAD_SEQUENCE_RETRIES = 3
const NEXT_BLOCK_WAIT_MS = 5_000

export class ChainClient {
  readonly url: URL
  readonly #timeout: number
  readonly #agent: HttpAgent
  #id = 0
  #chainId: string | undefined
  readonly #seq = new Map<string, number>()
  readonly #locks = new Map<string, Promise<unknown>>()
  /** Requests per batch POST; lowered to the node's limit when it refuses a batch as too long. */
  #batchMax = BATCH_TXS

  constructor(opts: ChainClientOptions) {
    this.url = new URL(opts.url)
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:')
      throw new InvalidInputError(`chain RPC URL must be http(s), not ${this.url.protocol}`)
    this.#timeout = opts.timeoutMs ?? 35_000
    this.#agent =
      this.url.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
  }

  close(): void {
    this.#agent.destroy()
  }

  /** One JSON-RPC 2.0 call. */
  async call<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown>,
    opts: { signal?: AbortSignal } = {}
  ): Promise<T> {
    const id = ++this.#id
    const body = JSON.stringify({ jsonrpc: '2.0', id, method, params })
    const { status, text } = await this.#post(body, method, opts.signal)
    // the server is at its connection or buffered-bytes limit: try again shortly
    if (status === 503)
      throw new ChainUnavailableError(`chain RPC ${this.url.origin} is busy (HTTP 503) for ${method}; retry shortly`)
    let j: { result?: T; error?: { code?: number; message?: string; data?: string } }
    try {
      j = JSON.parse(text)
    } catch {
      throw new ChainUnavailableError(`chain RPC ${this.url.origin} answered ${method} with something that is not JSON`)
    }
    return this.#result(j, method)
  }

  #result<T>(j: { result?: T; error?: { code?: number; message?: string; data?: string } }, method: string): T {
    if (j.error !== undefined) {
      const data = String(j.error.data ?? '')
      if (/timed out waiting for tx|mempool is full|waiting for their signature check/.test(data))
        throw new ChainUnavailableError(`chain RPC ${method}: ${data}`)
      throw new ChainRpcError(num(j.error.code), String(j.error.message ?? 'error'), data)
    }
    if (j.result === undefined) throw new ChainUnavailableError(`chain RPC ${method}: no result`)
    return j.result
  }

  /** One POST of a JSON-RPC body (keep-alive): the HTTP status and the answer's text. */
  async #post(body: string, method: string, signal?: AbortSignal): Promise<{ status: number; text: string }> {
    let status = 0
    const text = await new Promise<string>((resolve, reject) => {
      const req = (this.url.protocol === 'https:' ? httpsRequest : httpRequest)(
        this.url,
        {
          method: 'POST',
          agent: this.#agent,
          signal,
          timeout: this.#timeout,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
        },
        res => {
          status = res.statusCode ?? 0
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
          res.on('error', reject)
        }
      )
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeout} ms`)))
      req.on('error', err =>
        reject(
          new ChainUnavailableError(`chain RPC ${this.url.origin} (${method}) failed: ${err.message}`, { cause: err })
        )
      )
      req.end(body)
    })
    return { status, text }
  }

  async status(): Promise<ChainStatus> {
    const r = await this.call<{ node_info: Record<string, unknown>; sync_info: Record<string, unknown> }>('status', {})
    const s = r.sync_info
    this.#chainId = String(r.node_info.network)
    return {
      chainId: this.#chainId,
      height: num(s.latest_block_height),
      appHash: hexOrEmpty(s.latest_app_hash),
      blockHash: hexOrEmpty(s.latest_block_hash),
      time: parseTime(String(s.latest_block_time)),
      catchingUp: s.catching_up === true,
      nodeVersion: String(r.node_info.version ?? '')
    }
  }

  async chainId(): Promise<string> {
    return this.#chainId ?? (await this.status()).chainId
  }

  async broadcastTxSync(tx: Uint8Array): Promise<BroadcastResult> {
    const r = await this.call('broadcast_tx_sync', { tx: toBase64(tx) })
    return { hash: String(r.hash), ...txResultFrom(r) }
  }

  /**
   * Many txs in JSON-RPC 2.0 batch requests (broadcast_tx_sync, or _async: answered before
   * checkTx on CometBFT), in order: each POST holds up to BATCH_TXS txs and ≈ 192 KiB (the
   * embedded RPC's limits are 100 requests and 256 KiB; CometBFT's default is 10 requests, learnt
   * from its refusal), and the next POST goes once the previous
   * one is answered, so the txs reach the node in the order given (an account's txs may follow
   * each other in one call). One answer per tx, in the same order: its result, or the error the
   * node answered for it (mempool full, already in the mempool: ChainUnavailableError /
   * ChainRpcError). A failed POST throws, with the txs from that POST on unsent or unknown.
   */
  async broadcastTxBatch(
    txs: readonly Uint8Array[],
    opts: { mode?: 'sync' | 'async'; signal?: AbortSignal } = {}
  ): Promise<Array<BroadcastResult | ChainRpcError | ChainUnavailableError>> {
    const method = `broadcast_tx_${opts.mode ?? 'sync'}`
    const out: Array<BroadcastResult | ChainRpcError | ChainUnavailableError> = []
    let i = 0
    while (i < txs.length) {
      const reqs: string[] = []
      const ids: number[] = []
      let bytes = 2
      const start = i
      while (i < txs.length && reqs.length < this.#batchMax) {
        const id = ++this.#id
        const r = JSON.stringify({ jsonrpc: '2.0', id, method, params: { tx: toBase64(txs[i]) } })
        if (reqs.length > 0 && bytes + r.length + 1 > BATCH_BYTES) break
        reqs.push(r)
        ids.push(id)
        bytes += r.length + 1
        i++
      }
      const { status, text } = await this.#post(`[${reqs.join(',')}]`, method, opts.signal)
      if (status === 503)
        throw new ChainUnavailableError(`chain RPC ${this.url.origin} is busy (HTTP 503) for ${method}; retry shortly`)
      let j: unknown
      try {
        j = JSON.parse(text)
      } catch {
        throw new ChainUnavailableError(
          `chain RPC ${this.url.origin} answered a ${method} batch with something that is not JSON`
        )
      }
      if (!Array.isArray(j)) {
        // the batch as a whole was refused (an error object for id null), none of it was run.
        // CometBFT allows 10 requests per batch unless [rpc] max_request_batch_size says otherwise:
        // learn its limit and send these txs again in smaller batches
        const e = (j as { error?: { data?: unknown } }).error
        const max = /exceeds maximum \((\d+)\)/.exec(String(e?.data ?? ''))
        if (max !== null && Number(max[1]) >= 1 && Number(max[1]) < reqs.length) {
          this.#batchMax = Number(max[1])
          i = start
          continue
        }
        this.#result(j as { error?: { code?: number; message?: string; data?: string } }, method)
        throw new ChainUnavailableError(`chain RPC ${method}: a batch was answered with one result`)
      }
      // answers may come in any order (JSON-RPC 2.0 §6): by id
      const byId = new Map<unknown, Record<string, unknown>>()
      for (const a of j as Array<Record<string, unknown>>) if (a !== null && typeof a === 'object') byId.set(a.id, a)
      for (const id of ids) {
        const a = byId.get(id)
        if (a === undefined) {
          out.push(new ChainUnavailableError(`chain RPC ${method}: no answer for request ${id} of a batch`))
          continue
        }
        try {
          const r = this.#result(a as { result?: Record<string, unknown> }, method)
          out.push({ hash: String(r.hash), ...txResultFrom(r) })
        } catch (err) {
          out.push(err as ChainRpcError | ChainUnavailableError)
        }
      }
    }
    return out
  }

  async broadcastTxCommit(tx: Uint8Array): Promise<CommitResult> {
    const r = await this.call<Record<string, unknown>>('broadcast_tx_commit', { tx: toBase64(tx) })
    // v0.38 says tx_result; v0.34 said deliver_tx
    const deliver = (r.tx_result ?? r.deliver_tx) as Record<string, unknown> | undefined
    return {
      hash: String(r.hash),
      height: num(r.height),
      checkTx: txResultFrom(r.check_tx as Record<string, unknown>),
      txResult: txResultFrom(deliver)
    }
  }

  async abciQuery(
    path: string,
    data: Uint8Array = new Uint8Array(0),
    opts: { height?: number; prove?: boolean } = {}
  ): Promise<AbciQueryResult> {
    const r = await this.call<{ response: Record<string, unknown> }>('abci_query', {
      path,
      data: toHex(data),
      height: String(opts.height ?? 0),
      prove: opts.prove === true
    })
    const q = r.response
    const ops = (q.proofOps as { ops?: Array<{ type: string; key: string; data: string }> } | null)?.ops
    const out: AbciQueryResult = {
      code: num(q.code),
      log: String(q.log ?? ''),
      height: num(q.height),
      codespace: String(q.codespace ?? '')
    }
    const key = b64OrEmpty(q.key)
    const value = b64OrEmpty(q.value)
    if (key !== undefined) out.key = key
    if (value !== undefined) out.value = value
    if (ops !== undefined)
      out.proofOps = ops.map(o => ({ type: o.type, key: fromBase64(o.key ?? ''), data: fromBase64(o.data ?? '') }))
    return out
  }

  async block(height?: number): Promise<BlockInfo> {
    const r = await this.call<{
      block_id: { hash: string }
      block: { header: Record<string, unknown>; data: { txs: string[] | null } }
    }>('block', height === undefined ? {} : { height: String(height) })
    const h = r.block.header
    return {
      height: num(h.height),
      hash: hexOrEmpty(r.block_id.hash),
      chainId: String(h.chain_id),
      time: parseTime(String(h.time)),
      lastBlockHash: hexOrEmpty((h.last_block_id as { hash?: string } | undefined)?.hash),
      dataHash: hexOrEmpty(h.data_hash),
      appHash: hexOrEmpty(h.app_hash),
      lastResultsHash: hexOrEmpty(h.last_results_hash),
      proposer: hexOrEmpty(h.proposer_address),
      txs: (r.block.data.txs ?? []).map(t => fromBase64(t))
    }
  }

  /** A committed tx by hash (hex string or bytes); undefined if unknown. */
  async tx(hash: string | Uint8Array): Promise<TxInfo | undefined> {
    const bytes = typeof hash === 'string' ? fromHex(hash) : hash
    try {
      const r = await this.call<Record<string, unknown>>('tx', { hash: toBase64(bytes), prove: false })
      return {
        hash: String(r.hash),
        height: num(r.height),
        index: num(r.index),
        result: txResultFrom(r.tx_result as Record<string, unknown>),
        tx: fromBase64(String(r.tx))
      }
    } catch (err) {
      if (err instanceof ChainRpcError && /not found/.test(err.data)) return undefined
      throw err
    }
  }

  /** An app query: params canonical-encoded, result canonical-decoded; undefined when not found. */
  async query<T>(path: string, params: Record<string, Canonical | undefined> = {}): Promise<T | undefined> {
    const r = await this.abciQuery(path, encode(params as Canonical))
    if (r.code === TxCode.NOT_FOUND) return undefined
    if (r.code !== 0) throw new ChainQueryError(`query ${path} failed (code ${r.code}): ${r.log}`)
    return decode(r.value ?? new Uint8Array(0), { maxBytes: 64 << 20, maxItems: 1 << 20 }) as T
  }

  /**
   * App hash after `height`: the app's own last committed hash (abci_info) while `height` is the
   * last committed one, else block height+1's header (CometBFT semantics). Not status'
   * latest_app_hash: on a CometBFT node that is the latest header's, i.e. after height − 1.
   */
  async appHashAfter(height: number): Promise<Uint8Array | undefined> {
    const a = (await this.call<{ response: Record<string, unknown> }>('abci_info', {})).response
    if (num(a.last_block_height) === height) return b64OrEmpty(a.last_block_app_hash)
    const s = await this.status()
    if (s.height > height) return (await this.block(height + 1)).appHash
    return undefined
  }

  /**
   * Raw state value at `key` with its inclusion proof checked against an app hash: the one given
   * (e.g. from a light client), else the app hash after the height the query answered at.
   */
  async provenValue(
    key: string,
    appHash?: Uint8Array
  ): Promise<{ value: Uint8Array; height: number; appHash?: Uint8Array; verified: boolean } | undefined> {
    const r = await this.abciQuery('/key', utf8.encode(key), { prove: true })
    if (r.code === TxCode.NOT_FOUND) return undefined
    if (r.code !== 0 || r.value === undefined) throw new ChainQueryError(`query /key failed (code ${r.code}): ${r.log}`)
    const root = appHash ?? (await this.appHashAfter(r.height))
    const op = r.proofOps?.find(o => o.type === PROOF_TYPE)
    const verified = root !== undefined && op !== undefined && verifyStateProof(root, key, r.value, op.data)
    return root === undefined
      ? { value: r.value, height: r.height, verified }
      : { value: r.value, height: r.height, appHash: root, verified }
  }

  // ---- typed queries ----
  async account(signer: Uint8Array): Promise<number> {
    return (await this.query<{ seq: number }>('/account', { signer }))?.seq ?? 0
  }
  async vendor(name: string): Promise<VendorRecord | undefined> {
    return await this.query('/vendor', { name })
  }
  async ekCas(vendor?: string): Promise<EkCaRecord[]> {
    return (await this.query<{ ekCas: EkCaRecord[] }>('/ekcas', { vendor }))?.ekCas ?? []
  }
  /** Active reference values; filter by firmware vendor/platform and OS name. */
  async referenceValues(filter: { vendor?: string; platform?: string; os?: string } = {}): Promise<ReferenceValues> {
    return (await this.query<ReferenceValues>('/refs', filter)) ?? { ekCas: [], firmware: [], os: [] }
  }

  async firmware(vendor: string, platform?: string, version?: string): Promise<FirmwareRecord[]> {
    return (
      (await this.query<{ firmware: FirmwareRecord[] }>('/firmware', { vendor, platform, version }))?.firmware ?? []
    )
  }
  async os(name: string, version?: string): Promise<OsRecord[]> {
    return (await this.query<{ os: OsRecord[] }>('/os', { name, version }))?.os ?? []
  }
  async node(nodeId: string): Promise<NodeView | undefined> {
    return await this.query('/node', { nodeId })
  }
  /** Certified (unexpired) nodes plus genesis verifiers; `all` lists every registered node. */
  async nodes(status: 'certified' | 'all' = 'certified'): Promise<NodeView[]> {
    return (await this.query<{ nodes: NodeView[] }>('/nodes', { status }))?.nodes ?? []
  }
  async candidates(exclude?: string): Promise<Array<{ nodeId: string; publicKey: Uint8Array }>> {
    return (
      (await this.query<{ candidates: Array<{ nodeId: string; publicKey: Uint8Array }> }>('/candidates', { exclude }))
        ?.candidates ?? []
    )
  }
  async seed(nodeId: string, round?: number): Promise<SeedView> {
    return (await this.query<SeedView>('/seed', { nodeId, round })) ?? { status: 'none', nodeId }
  }
  async images(q: { name: string } | { digest: string }): Promise<ImageRecord[]> {
    return (await this.query<{ images: ImageRecord[] }>('/image', q))?.images ?? []
  }
  async qc(nodeId: string): Promise<QcRecord | undefined> {
    return await this.query('/qc', { nodeId })
  }

  // ---- serverless apps (issue 13). State keys, for proofs through provenValue: app/<name>
  // (AppRecord), app/<name>/<version> (AppVersionRecord), appuse/<name> (AppUsageTotals),
  // node/<nodeId> (NodeRecord with endpoint and tlsKey). ----
  /** Every app with its current version (absent once revoked or every version is). */
  async apps(): Promise<Array<{ record: AppRecord; current?: AppVersionRecord }>> {
    return (await this.query<{ apps: Array<{ record: AppRecord; current?: AppVersionRecord }> }>('/apps'))?.apps ?? []
  }
  /** An app: its record, current version and every version in publish order; undefined if never published. */
  async app(name: string): Promise<AppView | undefined> {
    return await this.query('/app', { name })
  }
  async appVersion(name: string, version: string): Promise<AppVersionRecord | undefined> {
    return await this.query('/app/version', { name, version })
  }
  /** Usage totals of an app, per node, and its most recent lines (newest first); undefined if never published. */
  async appUsage(name: string): Promise<AppUsageView | undefined> {
    return await this.query('/app/usage', { name })
  }
  async publishApp(key: TxSigner, body: AppPublishBody): Promise<SendResult> {
    return await this.send('app.publish', body, key)
  }
  /** Revokes one version, or without one the whole app (for good: the name is never published again). */
  async revokeApp(key: TxSigner, name: string, version?: string): Promise<SendResult> {
    return await this.send('app.revoke', version === undefined ? { name } : { name, version }, key)
  }
  /** usage.record, signed by the node's own key. */
  async recordUsage(nodeKey: TxSigner & { peerId: string }, u: Omit<UsageRecordBody, 'nodeId'>): Promise<SendResult> {
    return await this.send('usage.record', { nodeId: nodeKey.peerId, from: u.from, to: u.to, apps: u.apps }, nodeKey)
  }

  /** Polls until the seed for (nodeId, round) is fixed. */
  async waitForSeed(
    nodeId: string,
    round: number,
    opts: { signal?: AbortSignal; pollMs?: number } = {}
  ): Promise<SeedView> {
    for (;;) {
      opts.signal?.throwIfAborted()
      const s = await this.seed(nodeId, round)
      if (s.status === 'ready') return s
      if (s.status === 'none') throw new InvalidInputError(`no attestation request for ${nodeId} round ${round}`)
      await new Promise(resolve => setTimeout(resolve, opts.pollMs ?? 100))
    }
  }

  /** Polls until the chain reaches `height`; returns the status then. */
  async waitForHeight(height: number, opts: { signal?: AbortSignal; pollMs?: number } = {}): Promise<ChainStatus> {
    for (;;) {
      opts.signal?.throwIfAborted()
      const s = await this.status()
      if (s.height >= height) return s
      await new Promise(resolve => setTimeout(resolve, opts.pollMs ?? 100))
    }
  }

  /**
   * attest.request for the node's next round (latest round + 1), signed by the node's own key.
   * `reset` after a reboot ends the current certification at once. `tlsKey` (sha256 of the TLS
   * key's DER SPKI) asks the round to bind it; a passing QC records it on the node.
   */
  async requestAttestation(
    nodeKey: TxSigner & { peerId: string },
    opts: { reset?: boolean; round?: number; tlsKey?: Uint8Array } = {}
  ): Promise<SendResult & { round: number }> {
    const latest = (await this.seed(nodeKey.peerId)).round ?? 0
    const round = opts.round ?? latest + 1
    const body: TxBodies['attest.request'] = { nodeId: nodeKey.peerId, round }
    if (opts.reset === true) body.reset = true
    if (opts.tlsKey !== undefined) body.tlsKey = opts.tlsKey
    const r = await this.send('attest.request', body, nodeKey)
    return { ...r, round }
  }

  /** attest.record with a quorum certificate (any account may submit it). */
  async recordAttestation(key: TxSigner, nodeId: string, round: number, qc: Uint8Array): Promise<SendResult> {
    return await this.send('attest.record', { nodeId, round, qc }, key)
  }

  /**
   * Signs and sends a transaction with the signer's next sequence (queried once, then tracked).
   * Transactions of one signer are sent one at a time, so they reach the mempool in order.
   * Throws TxRejectedError when the chain refuses it (nothing changed).
   */
  async send<T extends TxType>(
    type: T,
    body: TxBodies[T],
    key: TxSigner,
    opts: { wait?: 'commit' | 'sync' } = {}
  ): Promise<SendResult> {
    const id = toHex(key.publicKey)
    const prev = this.#locks.get(id) ?? Promise.resolve()
    const run = prev.catch(() => {}).then(async () => await this.#send(type, body, key, id, opts.wait ?? 'commit'))
    this.#locks.set(id, run)
    try {
      return await run
    } finally {
      if (this.#locks.get(id) === run) this.#locks.delete(id)
    }
  }

  /** Waits (at most NEXT_BLOCK_WAIT_MS) until the chain's height moves past the current one. */
  async #nextBlock(): Promise<void> {
    const start = (await this.status()).height
    const deadline = Date.now() + NEXT_BLOCK_WAIT_MS
    while (Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 50))
      if ((await this.status()).height > start) return
    }
  }

  async #send<T extends TxType>(
    type: T,
    body: TxBodies[T],
    key: TxSigner,
    id: string,
    wait: 'commit' | 'sync'
  ): Promise<SendResult> {
    const chainId = await this.chainId()
    for (let attempt = 0; ; attempt++) {
      let seq = this.#seq.get(id)
      if (seq === undefined) {
        seq = await this.account(key.publicKey)
        this.#seq.set(id, seq)
      }
      const tx = buildTx(type, body, key, seq, chainId)
      let hash: string,
        code: number,
        log: string,
        height = 0,
        data: Uint8Array | undefined,
        phase: 'check' | 'deliver' = 'check'
      if (wait === 'sync') {
        const r = await this.broadcastTxSync(tx)
        hash = r.hash
        code = r.code
        log = r.log
        data = r.data
      } else {
        const r = await this.broadcastTxCommit(tx)
        hash = r.hash
        height = r.height
        if (r.checkTx.code !== 0) {
          code = r.checkTx.code
          log = r.checkTx.log
        } else {
          code = r.txResult.code
          log = r.txResult.log
          data = r.txResult.data
          phase = 'deliver'
        }
      }
      if (code === 0) {
        this.#seq.set(id, seq + 1)
        return data === undefined ? { hash, height, code, log } : { hash, height, code, log, data }
      }
      this.#seq.delete(id) // a refused tx consumes no sequence; re-read it next time
      // Out of order: our cached sequence was stale, or (CometBFT) a tx of ours that failed in a
      // block came back into this node's mempool from a peer that had not committed yet and holds
      // the slot until the next block drops it again. Re-read after the next block, a few times.
      if (code === TxCode.BAD_SEQUENCE && attempt < BAD_SEQUENCE_RETRIES) {
        if (attempt > 0) await this.#nextBlock()
        continue
      }
      throw new TxRejectedError({ txCode: code, log, hash, phase })
    }
  }
}
