// HTTP RPC of the embedded validator, following CometBFT's RPC (v0.38) for the methods we use:
// health, status, abci_info, abci_query, broadcast_tx_sync, broadcast_tx_commit, block, tx.
// Both forms: JSON-RPC 2.0 POST to "/" (params by name or position; []byte params base64,
// abci_query data hex, integers as strings) and GET "/<method>?arg=…" (strings quoted, bytes
// 0x-hex). Responses use CometBFT's JSON shapes (heights as strings, hashes upper-case hex).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fromBase64, fromHex, sha256 as sha, toBase64, toHex, utf8 } from '../encoding/bytes.ts'
import { InvalidInputError } from '../encoding/errors.ts'
import { silentLogger, type Logger } from '../encoding/log.ts'
import { MempoolError, type BlockProducer, type StoredBlock, validatorAddress } from './producer.ts'
import type { TxResult } from './types.ts'

export const RPC_VERSION = 'quorate-embedded/0.1.0'

class RpcError extends Error {
  readonly rpcCode: number
  readonly data: string
  constructor (rpcCode: number, message: string, data: string) { super(message); this.rpcCode = rpcCode; this.data = data }
}
const invalidParams = (data: string): RpcError => new RpcError(-32602, 'Invalid params', data)
const internal = (data: string): RpcError => new RpcError(-32603, 'Internal error', data)

const HEX = (b: Uint8Array): string => toHex(b).toUpperCase()
const rfc3339 = (ms: number): string => new Date(ms).toISOString()
const b64OrNull = (b: Uint8Array | undefined): string | null => (b === undefined || b.byteLength === 0 ? null : toBase64(b))

export function txResultJson (r: TxResult): Record<string, unknown> {
  return { code: r.code, data: b64OrNull(r.data), log: r.log, info: '', gas_wanted: '0', gas_used: '0', events: [], codespace: r.codespace }
}

export interface RpcServerOptions {
  producer: BlockProducer
  /** host:port; port 0 = ephemeral. Loopback only unless you mean it. */
  listen: string
  /** Asks the validator to produce soon (called after a tx entered the mempool). */
  kick: () => void
  /** How long broadcast_tx_commit waits for inclusion (ms). */
  commitTimeoutMs?: number
  logger?: Logger
}

export interface RpcServer { readonly url: string, readonly port: number, close (): Promise<void> }

type Params = Record<string, unknown>
/** Names of positional params per method (Maps: a method named "constructor" finds nothing). */
const ORDER = new Map<string, readonly string[]>([
  ['abci_query', ['path', 'data', 'height', 'prove']],
  ['broadcast_tx_sync', ['tx']],
  ['broadcast_tx_async', ['tx']],
  ['broadcast_tx_commit', ['tx']],
  ['block', ['height']],
  ['tx', ['hash', 'prove']]
])

/** Bytes given as base64 (JSON-RPC), or 0x-hex / quoted string (URI form). */
function bytesParam (v: unknown, what: string, uri: boolean, hexDefault = false): Uint8Array {
  if (typeof v !== 'string') throw invalidParams(`${what}: expected a string`)
  try {
    if (uri) {
      if (v.startsWith('0x') || v.startsWith('0X')) return fromHex(v, what)
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return utf8.encode(v.slice(1, -1))
      return hexDefault ? fromHex(v, what) : fromBase64(v, what)
    }
    if (hexDefault || /^(0x)?[0-9A-Fa-f]{64}$/.test(v)) return fromHex(v, what)
    return fromBase64(v, what)
  } catch (err) { throw invalidParams((err as Error).message) }
}
function intParam (v: unknown, what: string): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v.replace(/^"|"$/g, '')) : NaN
  if (!Number.isSafeInteger(n) || n < 0) throw invalidParams(`${what}: expected a non-negative integer`)
  return n
}
function strParam (v: unknown, uri: boolean): string {
  if (typeof v !== 'string') return ''
  return uri && v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v
}

export function blockJson (b: StoredBlock, prev: StoredBlock | undefined): Record<string, unknown> {
  const h = b.header
  const id = (hash: Uint8Array): Record<string, unknown> => ({ hash: HEX(hash), parts: { total: hash.byteLength === 0 ? 0 : 1, hash: HEX(hash) } })
  return {
    block_id: id(b.hash),
    block: {
      header: {
        version: { block: '11', app: '1' },
        chain_id: h.chainId,
        height: String(h.height),
        time: rfc3339(h.time),
        last_block_id: id(h.lastBlockHash),
        last_commit_hash: '',
        data_hash: HEX(h.dataHash),
        validators_hash: '',
        next_validators_hash: '',
        consensus_hash: '',
        app_hash: HEX(h.appHash),
        last_results_hash: HEX(h.lastResultsHash),
        evidence_hash: '',
        proposer_address: HEX(h.proposer)
      },
      data: { txs: b.txs.map(toBase64) },
      evidence: { evidence: [] },
      last_commit: prev === undefined
        ? { height: '0', round: 0, block_id: id(new Uint8Array(0)), signatures: [] }
        : { height: String(prev.header.height), round: 0, block_id: id(prev.hash), signatures: [{ block_id_flag: 2, validator_address: HEX(prev.header.proposer), timestamp: rfc3339(prev.header.time), signature: toBase64(prev.signature) }] }
    }
  }
}

export async function startRpcServer (opts: RpcServerOptions): Promise<RpcServer> {
  const { producer } = opts
  const app = producer.app
  const log = opts.logger ?? silentLogger('quorate:chain:rpc')
  const commitTimeout = opts.commitTimeoutMs ?? 30_000
  type Outcome = { height: number, index: number, result: TxResult } | { evicted: TxResult }
  const waiters = new Map<string, Array<(r: Outcome) => void>>()
  producer.onEvict((hash, result) => {
    const hex = toHex(hash)
    const ws = waiters.get(hex)
    if (ws === undefined) return
    waiters.delete(hex)
    for (const w of ws) w({ evicted: result })
  })
  producer.onCommit(b => {
    if (waiters.size === 0) return
    for (let i = 0; i < b.txs.length; i++) {
      const hex = toHex(sha(b.txs[i]))
      const ws = waiters.get(hex)
      if (ws === undefined) continue
      waiters.delete(hex)
      for (const w of ws) w({ height: b.header.height, index: i, result: b.results[i] })
    }
  })
  const validatorKey = app.info().genesis?.validators[0] ?? new Uint8Array(32)
  const validatorAddr = validatorAddress(validatorKey)
  const noResult = txResultJson({ code: 0, log: '', codespace: '' })
  const broadcastTx = (p: Params, uri: boolean): Record<string, unknown> => {
    const { result, hash } = submit(bytesParam(p.tx, 'tx', uri))
    return { code: result.code, data: b64OrNull(result.data), log: result.log, codespace: result.codespace, hash: HEX(hash) }
  }

  const methods = new Map<string, (p: Params, uri: boolean) => unknown>(Object.entries({
    health: () => ({}),
    status: () => {
      const info = app.info()
      const r = producer.store.range()
      const last = producer.lastBlock
      const first = r === undefined ? undefined : producer.store.block(r.earliest)
      return {
        node_info: {
          protocol_version: { p2p: '8', block: '11', app: '1' },
          id: toHex(validatorAddr),
          listen_addr: '',
          network: info.chainId,
          version: RPC_VERSION,
          channels: '',
          moniker: 'quorate-embedded',
          other: { tx_index: 'on', rpc_address: url }
        },
        sync_info: {
          latest_block_hash: last === undefined ? '' : HEX(last.hash),
          latest_app_hash: HEX(info.appHash),
          latest_block_height: String(info.height),
          latest_block_time: rfc3339(info.time),
          earliest_block_hash: first === undefined ? '' : HEX(first.hash),
          earliest_app_hash: first === undefined ? '' : HEX(first.header.appHash),
          earliest_block_height: String(r?.earliest ?? 0),
          earliest_block_time: rfc3339(first?.header.time ?? info.time),
          catching_up: false
        },
        validator_info: { address: HEX(validatorAddr), pub_key: { type: 'tendermint/PubKeyEd25519', value: toBase64(validatorKey) }, voting_power: '10' }
      }
    },
    abci_info: () => {
      const info = app.info()
      return { response: { data: 'quorate', version: RPC_VERSION, app_version: '1', last_block_height: String(info.height), last_block_app_hash: toBase64(info.appHash) } }
    },
    abci_query: (p, uri) => {
      const data = p.data === undefined || p.data === '' ? new Uint8Array(0) : bytesParam(p.data, 'data', uri, true)
      const r = app.query({ path: strParam(p.path, uri), data, height: intParam(p.height, 'height'), prove: p.prove === true || p.prove === 'true' })
      return {
        response: {
          code: r.code, log: r.log, info: '', index: '0',
          key: b64OrNull(r.key), value: b64OrNull(r.value),
          proofOps: r.proofOps === undefined ? null : { ops: r.proofOps.map(o => ({ type: o.type, key: toBase64(o.key), data: toBase64(o.data) })) },
          height: String(r.height), codespace: r.code === 0 ? '' : r.codespace
        }
      }
    },
    // async answers like sync here: checkTx is synchronous in the embedded validator
    broadcast_tx_sync: broadcastTx,
    broadcast_tx_async: broadcastTx,
    broadcast_tx_commit: async (p, uri) => {
      const tx = bytesParam(p.tx, 'tx', uri)
      const hex = toHex(sha(tx))
      // Register before submitting: a block could be produced before we would otherwise listen.
      let resolve!: (r: Outcome) => void
      const done = new Promise<Outcome>(res => { resolve = res })
      const list = waiters.get(hex) ?? []
      list.push(resolve)
      waiters.set(hex, list)
      const drop = (): void => {
        const l = waiters.get(hex)?.filter(f => f !== resolve)
        if (l === undefined || l.length === 0) waiters.delete(hex); else waiters.set(hex, l)
      }
      let check
      try { check = submit(tx) } catch (err) { drop(); throw err }
      if (check.result.code !== 0) {
        drop()
        return { check_tx: txResultJson(check.result), tx_result: noResult, hash: HEX(check.hash), height: '0' }
      }
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_res, rej) => { timer = setTimeout(() => { drop(); rej(internal('timed out waiting for tx to be included in a block')) }, commitTimeout) })
      try {
        const r = await Promise.race([done, timeout])
        // dropped from the mempool after a block: report it as CometBFT reports a failed recheck
        if ('evicted' in r) return { check_tx: txResultJson(r.evicted), tx_result: noResult, hash: HEX(check.hash), height: '0' }
        return { check_tx: txResultJson(check.result), tx_result: txResultJson(r.result), hash: HEX(check.hash), height: String(r.height) }
      } finally { clearTimeout(timer) }
    },
    block: p => {
      const info = app.info()
      const h = intParam(p.height, 'height') ?? info.height
      if (h > info.height) throw internal(`height ${h} must be less than or equal to the current blockchain height ${info.height}`)
      const b = producer.store.block(h)
      if (b === undefined) throw internal(`height ${h} is not available`)
      return blockJson(b, producer.store.block(h - 1))
    },
    tx: (p, uri) => {
      const hash = bytesParam(p.hash, 'hash', uri, uri)
      const t = producer.store.tx(hash)
      if (t === undefined) throw internal(`tx (${HEX(hash)}) not found`)
      return { hash: HEX(hash), height: String(t.height), index: t.index, tx_result: txResultJson(t.result), tx: toBase64(t.tx) }
    }
  } satisfies Record<string, (p: Params, uri: boolean) => unknown>))

  function submit (tx: Uint8Array): ReturnType<BlockProducer['submit']> {
    let r
    try { r = producer.submit(tx) } catch (err) {
      if (err instanceof MempoolError) throw internal(err.message)
      throw err
    }
    if (r.result.code === 0) opts.kick()
    return r
  }

  async function call (method: string, params: Params, uri: boolean): Promise<unknown> {
    const m = methods.get(method)
    if (m === undefined) throw new RpcError(-32601, 'Method not found', `unknown method ${JSON.stringify(method.slice(0, 64))}`)
    try {
      return await m(params, uri)
    } catch (err) {
      if (err instanceof RpcError) throw err
      if (err instanceof InvalidInputError) throw invalidParams(err.message)
      log.error('rpc method failed', { method, err })
      throw internal((err as Error).message)
    }
  }

  const reply = (res: ServerResponse, status: number, body: unknown): void => {
    const s = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) })
    res.end(s)
  }
  const errorBody = (id: unknown, err: unknown): Record<string, unknown> => {
    const e = err instanceof RpcError ? err : internal((err as Error).message)
    return { jsonrpc: '2.0', id: id ?? -1, error: { code: e.rpcCode, message: e.message, data: e.data } }
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x')
    if (req.method === 'GET' && u.pathname !== '/') {
      const params: Params = Object.create(null) as Params // a query string may name __proto__
      for (const [k, v] of u.searchParams) params[k] = v
      try { reply(res, 200, { jsonrpc: '2.0', id: -1, result: await call(u.pathname.slice(1), params, true) }) } catch (err) { reply(res, 500, errorBody(-1, err)) }
      return
    }
    if (req.method !== 'POST') { reply(res, 405, errorBody(-1, new RpcError(-32600, 'Invalid Request', 'use POST / with JSON-RPC 2.0 or GET /<method>'))); return }
    const chunks: Buffer[] = []
    let size = 0
    for await (const c of req) {
      size += (c as Buffer).length
      if (size > 1024 * 1024) { reply(res, 413, errorBody(-1, new RpcError(-32600, 'Invalid Request', 'request body exceeds 1 MiB'))); req.destroy(); return }
      chunks.push(c as Buffer)
    }
    let body: { id?: unknown, method?: unknown, params?: unknown }
    try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')) } catch { reply(res, 400, errorBody(-1, new RpcError(-32700, 'Parse error', 'the body is not JSON'))); return }
    if (body === null || typeof body !== 'object' || typeof body.method !== 'string') { reply(res, 400, errorBody(-1, new RpcError(-32600, 'Invalid Request', 'expected { jsonrpc, id, method, params }'))); return }
    let params: Params = {}
    if (Array.isArray(body.params)) {
      const names = ORDER.get(body.method) ?? []
      body.params.forEach((v, i) => { if (names[i] !== undefined) params[names[i]] = v })
    } else if (body.params !== null && typeof body.params === 'object') params = body.params as Params
    try { reply(res, 200, { jsonrpc: '2.0', id: body.id ?? -1, result: await call(body.method, params, false) }) } catch (err) { reply(res, 200, errorBody(body.id, err)) }
  }

  const server: Server = createServer((req, res) => { handle(req, res).catch(err => { log.error('rpc', { err }); if (!res.headersSent) reply(res, 500, errorBody(-1, err)) }) })
  server.keepAliveTimeout = 60_000
  const i = opts.listen.lastIndexOf(':')
  const host = i < 0 ? '127.0.0.1' : opts.listen.slice(0, i).replace(/^\[|\]$/g, '')
  const port = Number(i < 0 ? opts.listen : opts.listen.slice(i + 1))
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidInputError(`bad RPC listen address ${opts.listen} (expected host:port)`)
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => { server.off('error', reject); resolve() }) })
  const addr = server.address() as AddressInfo
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
  return {
    url,
    port: addr.port,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}
