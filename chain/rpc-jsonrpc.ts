// The JSON-RPC 2.0 envelope and CometBFT's parameter forms, for the embedded validator's RPC
// (chain/rpc.ts serves it, chain/rpc-methods.ts implements the methods).
//
// JSON-RPC 2.0 (https://www.jsonrpc.org/specification): a request is an object with
// `"jsonrpc": "2.0"`, a string `method`, optional `params` (an object or an array) and an `id`
// that is a string, a number or null; without `id` it is a notification, which gets no reply.
// A batch is an array of requests. Error codes: -32700 parse error, -32600 invalid request,
// -32601 method not found, -32602 invalid params, -32603 internal error.
//
// Parameter forms follow CometBFT v0.38 (rpc/jsonrpc/server): in a POST body []byte params are
// base64 and abci_query `data` hex; in a GET query string ("URI over HTTP") a byte or string
// argument is 0x-hex or a JSON-quoted string (its UTF-8 bytes), an integer is digits or quoted
// digits.
import { fromBase64, fromHex, utf8 } from '../encoding/bytes.ts'
import { QuorateError } from '../encoding/errors.ts'

/** A JSON-RPC error answer. Not a QuorateError: it never leaves the server, it is the reply. */
export class RpcError extends Error {
  readonly rpcCode: number
  readonly data: string
  constructor(rpcCode: number, message: string, data: string) {
    super(message)
    this.rpcCode = rpcCode
    this.data = data
  }
}
export const parseError = (data: string): RpcError => new RpcError(-32700, 'Parse error', data)
export const invalidRequest = (data: string): RpcError => new RpcError(-32600, 'Invalid Request', data)
export const methodNotFound = (method: string): RpcError =>
  new RpcError(-32601, 'Method not found', `unknown method ${JSON.stringify(method.slice(0, 64))}`)
export const invalidParams = (data: string): RpcError => new RpcError(-32602, 'Invalid params', data)
export const internal = (data: string): RpcError => new RpcError(-32603, 'Internal error', data)

/** What a JSON-RPC id may be. */
export type RpcId = string | number | null

/** Params by name, in an object without a prototype: a name like "__proto__" is just a name. */
export type Params = Record<string, unknown>
export const emptyParams = (): Params => Object.create(null) as Params

/** One request from a POST body: valid, or the error to answer with (and the id to answer to). */
export type ParsedRequest =
  | { ok: true; id: RpcId; notification: boolean; method: string; params: unknown }
  | { ok: false; id: RpcId; error: RpcError }

/** Deepest JSON nesting accepted: a batch, a request, its params and a value need 4. */
export const MAX_JSON_DEPTH = 16
/** Most requests in one batch. */
export const MAX_BATCH = 100

/**
 * Nesting depth of the JSON text, counted before JSON.parse so that a 500,000-deep `id` is
 * refused without recursing through it (parsing it, echoing it or walking it would each build
 * that deep a structure). Brackets inside strings do not count.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c)
        i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}

const isId = (v: unknown): v is RpcId =>
  v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))

/** Checks one request object of a POST body (JSON-RPC 2.0 §4). */
export function parseRequest(v: unknown): ParsedRequest {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return {
      ok: false,
      id: null,
      error: invalidRequest('a request must be a JSON object { jsonrpc: "2.0", id, method, params }')
    }
  const r = v as Record<string, unknown>
  const hasId = Object.hasOwn(r, 'id')
  // an id of another type is not echoed: the answer goes to id null (§5)
  if (hasId && !isId(r.id))
    return { ok: false, id: null, error: invalidRequest('id must be a string, a number or null') }
  const id = hasId ? (r.id as RpcId) : null
  if (r.jsonrpc !== '2.0') return { ok: false, id, error: invalidRequest('"jsonrpc" must be exactly "2.0"') }
  if (typeof r.method !== 'string') return { ok: false, id, error: invalidRequest('"method" must be a string') }
  return {
    ok: true,
    id,
    notification: !hasId,
    method: r.method,
    params: Object.hasOwn(r, 'params') ? r.params : undefined
  }
}

/**
 * Params of a POST request by name: an object as given, an array mapped onto the method's
 * parameter names in order; absent (or null) = none. Anything else is -32602.
 */
export function bindParams(params: unknown, names: readonly string[]): Params {
  const out = emptyParams()
  if (params === undefined || params === null) return out
  if (Array.isArray(params)) {
    if (params.length > names.length)
      throw invalidParams(
        `expected at most ${names.length} positional params (${names.join(', ')}), got ${params.length}`
      )
    params.forEach((v, i) => {
      out[names[i]] = v
    })
    return out
  }
  if (typeof params !== 'object') throw invalidParams('params must be an object (by name) or an array (by position)')
  for (const k of Object.keys(params)) out[k] = (params as Record<string, unknown>)[k]
  return out
}

/** Params of a GET request: the query string's values (strings), by name. */
export function queryParams(search: URLSearchParams): Params {
  const out = emptyParams()
  for (const [k, v] of search) out[k] = v
  return out
}

const isQuoted = (v: string): boolean => v.length >= 2 && v.startsWith('"') && v.endsWith('"')
const isHexForm = (v: string): boolean => v.startsWith('0x') || v.startsWith('0X')

/** A JSON-quoted URI argument: JSON string escapes apply, as CometBFT reads it. */
function unquote(v: string, what: string): string {
  try {
    const s: unknown = JSON.parse(v)
    if (typeof s === 'string') return s
  } catch {}
  throw invalidParams(`${what}: ${v.slice(0, 40)} is not a valid quoted (JSON) string`)
}

function decodeOr(what: string, f: () => Uint8Array): Uint8Array {
  try {
    return f()
  } catch (err) {
    throw invalidParams(
      err instanceof QuorateError || err instanceof TypeError ? err.message : `${what}: ${(err as Error).message}`
    )
  }
}

export type BytesEncoding = 'base64' | 'hex'

/**
 * A byte-string param. POST: base64, or hex where the method says so (abci_query data; a tx
 * hash may be 64 hex digits or base64). GET: 0x-hex or a quoted string (its UTF-8 bytes); an
 * unquoted value is read as `bare` where given (hex for data and hashes) and refused otherwise
 * — a bare tx could be base64 or hex, and CometBFT refuses it too.
 */
export function bytesParam(
  v: unknown,
  what: string,
  uri: boolean,
  post: BytesEncoding | 'hash',
  bare?: 'hex'
): Uint8Array {
  if (typeof v !== 'string') throw invalidParams(`${what}: expected a string`)
  if (uri) {
    if (isHexForm(v)) return decodeOr(what, () => fromHex(v, what))
    if (isQuoted(v)) return utf8.encode(unquote(v, what))
    if (bare === 'hex') return decodeOr(what, () => fromHex(v, what))
    throw invalidParams(`${what}: give 0x-prefixed hex (${what}=0x0a1b…) or a quoted string (${what}="…")`)
  }
  if (post === 'hex' || (post === 'hash' && /^(0x)?[0-9A-Fa-f]{64}$/.test(v)))
    return decodeOr(what, () => fromHex(v, what))
  return decodeOr(what, () => fromBase64(v, what))
}

/** A non-negative integer param: a number, digits, or (GET) quoted digits; absent/empty = undefined. */
export function intParam(v: unknown, what: string, uri: boolean): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  let n = NaN
  if (typeof v === 'number') n = v
  else if (typeof v === 'string') {
    const s = uri && isQuoted(v) ? v.slice(1, -1) : v
    if (/^[0-9]{1,16}$/.test(s)) n = Number(s)
  }
  if (!Number.isSafeInteger(n) || n < 0) throw invalidParams(`${what}: expected a non-negative integer`)
  return n
}

/** A string param: as given (POST); quoted, 0x-hex or bare (GET); absent = ''. */
export function strParam(v: unknown, what: string, uri: boolean): string {
  if (v === undefined || v === null) return ''
  if (typeof v !== 'string') throw invalidParams(`${what}: expected a string`)
  if (!uri) return v
  if (isQuoted(v)) return unquote(v, what)
  if (isHexForm(v)) return utf8.decode(decodeOr(what, () => fromHex(v, what)))
  return v
}

/** A boolean param: true/false, or (GET) "true"/"false"; absent = false. */
export function boolParam(v: unknown, what: string): boolean {
  if (v === undefined || v === null || v === '' || v === false || v === 'false') return false
  if (v === true || v === 'true') return true
  throw invalidParams(`${what}: expected true or false`)
}
