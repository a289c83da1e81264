// What the light client reads from an RPC endpoint, decoded strictly: CometBFT v0.38's JSON for
// `commit`, `validators` and `abci_query` (the embedded validator answers in the same shapes).
// Every decoder takes `unknown` (parsed JSON from an endpoint nobody trusts) and returns typed
// data or throws RpcAnswerError; nothing here decides whether the data is TRUE — verify.ts does.
// The transport bounds what it reads (MAX_ANSWER_BYTES) and how long it waits.
import { request as httpRequest, Agent as HttpAgent } from 'node:http'
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https'
import { Buffer } from 'node:buffer'
import { fromBase64, fromHex, toHex } from '../../encoding/bytes.ts'
import { DecodeError, TransientError } from '../../encoding/errors.ts'
import type { BlockId, CometHeader, Time, Validator } from './cometbft.ts'

/** An endpoint's answer is malformed (not the JSON shape CometBFT gives). The endpoint is at fault. */
export class RpcAnswerError extends DecodeError {
  override readonly code: string = 'ERR_LIGHT_RPC_ANSWER'
}
/** The endpoint could not be reached or answered with an error: try another. */
export class RpcUnavailableError extends TransientError {
  override readonly code: string = 'ERR_LIGHT_RPC_UNAVAILABLE'
}

/** Largest answer read from an endpoint (a commit of a 10,000-validator set is ~2 MB). */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024
/** Most validators accepted in one set. */
export const MAX_VALIDATORS = 10_000
/** Most validators CometBFT lists per `validators` page. */
export const VALIDATORS_PER_PAGE = 100

// ---- field decoders ----
const bad = (what: string, m: string): never => {
  throw new RpcAnswerError(`${what}: ${m}`)
}
function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad(what, 'not an object')
  return v as Record<string, unknown>
}
function str(v: unknown, what: string, max = 1 << 20): string {
  if (typeof v !== 'string') return bad(what, 'not a string')
  if (v.length > max) return bad(what, `longer than ${max} characters`)
  return v
}
/** A non-negative integer, as CometBFT writes int64 (a decimal string) or a JSON number. */
export function int(v: unknown, what: string): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) return bad(what, 'not a non-negative safe integer')
    return v
  }
  const s = str(v, what, 20)
  if (!/^(0|[1-9][0-9]{0,15})$/.test(s)) return bad(what, 'not a non-negative decimal integer')
  const n = Number(s)
  if (!Number.isSafeInteger(n)) return bad(what, 'too large')
  return n
}
/** Upper- or lower-case hex; "" is empty bytes. */
export function hex(v: unknown, what: string, max = 64): Uint8Array {
  const s = str(v, what, 2 * max)
  if (s.startsWith('0x')) return bad(what, 'hex must not carry 0x')
  try {
    return fromHex(s, what)
  } catch (err) {
    return bad(what, (err as Error).message)
  }
}
/** base64; null or "" is empty bytes. */
export function b64(v: unknown, what: string, max = MAX_ANSWER_BYTES): Uint8Array {
  if (v === null || v === undefined) return new Uint8Array(0)
  const s = str(v, what, max)
  try {
    return fromBase64(s, what)
  } catch (err) {
    return bad(what, (err as Error).message)
  }
}

const TIME_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z$/
/** RFC 3339 in UTC as CometBFT writes it (Go's RFC3339Nano: trailing zeros of the fraction dropped). */
export function time(v: unknown, what: string): Time {
  const m = TIME_RE.exec(str(v, what, 40))
  if (m === null) return bad(what, 'not an RFC 3339 UTC time')
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number)
  const ms = Date.UTC(y, mo - 1, d, h, mi, s)
  const back = new Date(ms)
  if (
    !Number.isFinite(ms) ||
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    s > 59 ||
    ms < 0
  )
    return bad(what, 'not a valid date and time')
  return { seconds: ms / 1000, nanos: Number((m[7] ?? '').padEnd(9, '0')) }
}
/** Milliseconds since the epoch (rounded down) of a Time. */
export const timeMs = (t: Time): number => t.seconds * 1000 + Math.floor(t.nanos / 1e6)

function blockId(v: unknown, what: string): BlockId {
  const o = obj(v, what)
  const parts = obj(o.parts, `${what}.parts`)
  return {
    hash: hex(o.hash, `${what}.hash`),
    parts: { total: int(parts.total, `${what}.parts.total`), hash: hex(parts.hash, `${what}.parts.hash`) }
  }
}

/** A header as CometBFT's JSON shows it (the embedded validator leaves the CometBFT-only hashes ""). */
export function decodeHeader(v: unknown): CometHeader {
  const o = obj(v, 'header')
  const version = obj(o.version, 'header.version')
  const chainId = str(o.chain_id, 'header.chain_id', 50)
  return {
    version: { block: int(version.block, 'header.version.block'), app: int(version.app ?? '0', 'header.version.app') },
    chainId,
    height: int(o.height, 'header.height'),
    time: time(o.time, 'header.time'),
    lastBlockId: blockId(o.last_block_id, 'header.last_block_id'),
    lastCommitHash: hex(o.last_commit_hash, 'header.last_commit_hash'),
    dataHash: hex(o.data_hash, 'header.data_hash'),
    validatorsHash: hex(o.validators_hash, 'header.validators_hash'),
    nextValidatorsHash: hex(o.next_validators_hash, 'header.next_validators_hash'),
    consensusHash: hex(o.consensus_hash, 'header.consensus_hash'),
    appHash: hex(o.app_hash, 'header.app_hash'),
    lastResultsHash: hex(o.last_results_hash, 'header.last_results_hash'),
    evidenceHash: hex(o.evidence_hash, 'header.evidence_hash'),
    proposerAddress: hex(o.proposer_address, 'header.proposer_address')
  }
}

/** types.BlockIDFlag: 1 absent, 2 commit, 3 nil. */
export type BlockIdFlag = 1 | 2 | 3
export interface CommitSig {
  flag: BlockIdFlag
  validatorAddress: Uint8Array
  timestamp: Time
  signature: Uint8Array
}
export interface Commit {
  height: number
  round: number
  blockId: BlockId
  signatures: CommitSig[]
}
export interface SignedHeader {
  header: CometHeader
  commit: Commit
}

const ZERO_TIME = '0001-01-01T00:00:00Z'

function commitSig(v: unknown, what: string): CommitSig {
  const o = obj(v, what)
  const flag = o.block_id_flag
  if (flag !== 1 && flag !== 2 && flag !== 3) return bad(`${what}.block_id_flag`, 'not 1, 2 or 3')
  if (flag === 1)
    return {
      flag,
      validatorAddress: new Uint8Array(0),
      timestamp: { seconds: 0, nanos: 0 },
      signature: new Uint8Array(0)
    }
  const ts = o.timestamp === ZERO_TIME ? { seconds: 0, nanos: 0 } : time(o.timestamp, `${what}.timestamp`)
  return {
    flag,
    validatorAddress: hex(o.validator_address, `${what}.validator_address`, 20),
    timestamp: ts,
    signature: b64(o.signature, `${what}.signature`, 128)
  }
}

/** The result of `commit` (CometBFT: { signed_header: { header, commit }, canonical }). */
export function decodeSignedHeader(v: unknown): SignedHeader {
  const o = obj(obj(v, 'commit result').signed_header, 'signed_header')
  const c = obj(o.commit, 'commit')
  if (!Array.isArray(c.signatures)) return bad('commit.signatures', 'not an array')
  if (c.signatures.length > MAX_VALIDATORS) return bad('commit.signatures', `more than ${MAX_VALIDATORS}`)
  return {
    header: decodeHeader(o.header),
    commit: {
      height: int(c.height, 'commit.height'),
      round: int(c.round, 'commit.round'),
      blockId: blockId(c.block_id, 'commit.block_id'),
      signatures: c.signatures.map((s, i) => commitSig(s, `commit.signatures[${i}]`))
    }
  }
}

/** The public key in CometBFT's JSON ({ type: "tendermint/PubKeyEd25519", value: base64 }). */
export function ed25519Key(v: unknown, what: string): Uint8Array {
  const o = obj(v, what)
  if (o.type !== 'tendermint/PubKeyEd25519') return bad(`${what}.type`, 'only ed25519 validator keys are supported')
  const k = b64(o.value, `${what}.value`, 64)
  if (k.byteLength !== 32) return bad(`${what}.value`, 'not 32 bytes')
  return k
}

/** One page of `validators`: the validators (in set order) and the total count. */
export function decodeValidatorsPage(v: unknown): { height: number; validators: Validator[]; total: number } {
  const o = obj(v, 'validators result')
  if (!Array.isArray(o.validators)) return bad('validators', 'not an array')
  if (o.validators.length > VALIDATORS_PER_PAGE) return bad('validators', `more than ${VALIDATORS_PER_PAGE} on a page`)
  const total = int(o.total, 'validators.total')
  if (total > MAX_VALIDATORS) return bad('validators.total', `more than ${MAX_VALIDATORS}`)
  return {
    height: int(o.block_height, 'validators.block_height'),
    total,
    validators: o.validators.map((x, i) => {
      const w = `validators[${i}]`
      const val = obj(x, w)
      const power = int(val.voting_power, `${w}.voting_power`)
      if (power === 0 || power > Number.MAX_SAFE_INTEGER / MAX_VALIDATORS)
        return bad(`${w}.voting_power`, 'out of range')
      return {
        address: hex(val.address, `${w}.address`, 20),
        publicKey: ed25519Key(val.pub_key, `${w}.pub_key`),
        power
      }
    })
  }
}

export interface QueryAnswer {
  code: number
  log: string
  key: Uint8Array
  value: Uint8Array
  height: number
  proofOps: Array<{ type: string; key: Uint8Array; data: Uint8Array }>
}

/** The result of `abci_query` ({ response: { code, log, key, value, proofOps, height } }). */
export function decodeQuery(v: unknown): QueryAnswer {
  const r = obj(obj(v, 'abci_query result').response, 'response')
  const ops = r.proofOps === null || r.proofOps === undefined ? { ops: [] } : obj(r.proofOps, 'response.proofOps')
  const list = ops.ops === null || ops.ops === undefined ? [] : ops.ops
  if (!Array.isArray(list) || list.length > 16) return bad('response.proofOps.ops', 'not an array of at most 16')
  return {
    code: int(r.code ?? 0, 'response.code'),
    log: str(r.log ?? '', 'response.log', 4096),
    key: b64(r.key, 'response.key', 1024),
    value: b64(r.value, 'response.value'),
    height: int(r.height, 'response.height'),
    proofOps: list.map((x, i) => {
      const o = obj(x, `proofOps[${i}]`)
      return {
        type: str(o.type, `proofOps[${i}].type`, 100),
        key: b64(o.key, `proofOps[${i}].key`, 1024),
        data: b64(o.data, `proofOps[${i}].data`, 1 << 20)
      }
    })
  }
}

// ---- transport ----
export interface RpcTransport {
  readonly url: string
  call(method: string, params: Record<string, unknown>, signal?: AbortSignal): Promise<unknown>
  close(): void
}

/** JSON-RPC 2.0 over HTTP POST with a keep-alive agent; answers over MAX_ANSWER_BYTES are cut off. */
export function httpTransport(url: string, timeoutMs: number): RpcTransport {
  const u = new URL(url)
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new RpcUnavailableError(`RPC URL must be http(s), not ${u.protocol}`)
  const https = u.protocol === 'https:'
  const agent = https ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
  let id = 0
  return {
    url,
    close: () => agent.destroy(),
    call: (method, params, signal) =>
      new Promise((resolve, reject) => {
        const body = JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params })
        const fail = (m: string, cause?: unknown): void =>
          reject(new RpcUnavailableError(`${u.origin} ${method}: ${m}`, { cause }))
        const req = (https ? httpsRequest : httpRequest)(
          u,
          {
            method: 'POST',
            agent,
            signal,
            timeout: timeoutMs,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
          },
          res => {
            const chunks: Buffer[] = []
            let n = 0
            res.on('data', (c: Buffer) => {
              n += c.byteLength
              if (n > MAX_ANSWER_BYTES) {
                req.destroy()
                fail(`answer larger than ${MAX_ANSWER_BYTES} bytes`)
              } else chunks.push(c)
            })
            res.on('error', err => fail(err.message, err))
            res.on('end', () => {
              let j: unknown
              try {
                j = JSON.parse(Buffer.concat(chunks).toString('utf8'))
              } catch {
                fail(`HTTP ${res.statusCode}: not JSON`)
                return
              }
              const o = j !== null && typeof j === 'object' ? (j as Record<string, unknown>) : {}
              if (o.error !== undefined) {
                const e = o.error !== null && typeof o.error === 'object' ? (o.error as Record<string, unknown>) : {}
                fail(`${String(e.message ?? 'error').slice(0, 200)}: ${String(e.data ?? '').slice(0, 300)}`)
              } else if (o.result === undefined) fail('no result')
              else resolve(o.result)
            })
          }
        )
        req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
        req.on('error', err => fail(err.message, err))
        req.end(body)
      })
  }
}

export const hexUpper = (b: Uint8Array): string => toHex(b).toUpperCase()
