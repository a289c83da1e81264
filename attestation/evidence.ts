// Evidence bundle v1 (docs/CONTRACTS.md): what an attested node hands its verifiers. Canonical
// CBOR on the wire, JSON (hex for digests and nonces, base64 for blobs) in files. Both decoders
// are strict and size-limited: unknown fields, wrong types, PCR indexes outside 0..23, digests of
// the wrong size and oversized members are rejected with DecodeError / TooLargeError before
// anything else looks at the bundle.
import { encode, decode, asMap, is, onlyKeys, type Canonical } from '../encoding/canonical.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../encoding/errors.ts'
import { fromBase64, fromHex, sha256, toBase64, toHex, utf8 } from '../encoding/bytes.ts'
import { DIGEST_SIZE, HASH_ALGS, PCR_COUNT, isHashAlg, type HashAlg } from './algs.ts'

export interface EvidenceQuote {
  /** TPMS_ATTEST bytes exactly as signed. */
  readonly attest: Uint8Array
  /** TPMT_SIGNATURE bytes. */
  readonly signature: Uint8Array
}

/** PCR values per bank, keyed by the decimal PCR index ("0".."23"), as on the wire. */
export type EvidencePcrs = { readonly [bank in HashAlg]?: Readonly<Record<string, Uint8Array>> }

export interface Evidence {
  readonly version: 1
  /** The nonce the quote's extraData must equal (for committees: committeeNonce(committeeNonces)). */
  readonly nonce: Uint8Array
  readonly quote: EvidenceQuote
  readonly pcrs: EvidencePcrs
  /** The AK's TPMT_PUBLIC. */
  readonly akPublic: Uint8Array
  /** The EK certificate (DER). */
  readonly ekCertificate: Uint8Array
  /** TCG PC Client crypto-agile firmware event log (binary_bios_measurements). */
  readonly eventLog?: Uint8Array
  /** Container event log: JSON lines (PCR 13). */
  readonly containerLog?: string
  /** When one quote serves a committee: every member's nonce, in the order hashed. */
  readonly committeeNonces?: readonly Uint8Array[]
  /**
   * sha256 of the DER SubjectPublicKeyInfo of the node's TLS key, bound into the quote with the
   * committee nonces (committeeNonce; issue 14, docs/tls.md). Only with committeeNonces.
   */
  readonly tlsKey?: Uint8Array
}

export interface EvidenceLimits {
  maxBytes: number
  maxEventLog: number
  maxContainerLog: number
  maxEkCertificate: number
  maxAkPublic: number
  maxAttest: number
  maxSignature: number
  minNonce: number
  maxNonce: number
  maxCommitteeNonces: number
}

export const EVIDENCE_LIMITS: Readonly<EvidenceLimits> = Object.freeze({
  maxBytes: 1 << 20,
  maxEventLog: 512 << 10,
  maxContainerLog: 256 << 10,
  maxEkCertificate: 16 << 10,
  maxAkPublic: 2048,
  maxAttest: 2048,
  maxSignature: 1024,
  minNonce: 8,
  maxNonce: 64,
  maxCommitteeNonces: 256
})

const KEYS = [
  'version',
  'nonce',
  'quote',
  'pcrs',
  'akPublic',
  'ekCertificate',
  'eventLog',
  'containerLog',
  'committeeNonces',
  'tlsKey'
]

/** Domain of the quote's qualifying data when it binds a TLS key (docs/tls.md). */
export const TLS_BINDING_DOMAIN = 'quorate/quote-binding/tls/v1\0'
/** Size of a bound TLS key hash (sha256 of the SPKI). */
export const TLS_KEY_SIZE = 32

/**
 * The quote nonce (TPM qualifyingData) for a committee: sha256 of the canonical encoding of the
 * member nonces list; with a TLS key hash (32 bytes),
 *   sha256(TLS_BINDING_DOMAIN ‖ sha256(canonical(nonces)) ‖ tlsKey)
 * so one quote proves both freshness to every member and the key the node will serve TLS with.
 */
export function committeeNonce(nonces: readonly Uint8Array[], tlsKey?: Uint8Array): Uint8Array {
  const n = sha256(encode(nonces))
  if (tlsKey === undefined) return n
  if (tlsKey.length !== TLS_KEY_SIZE)
    throw new InvalidInputError(`TLS key hash of ${tlsKey.length} bytes; ${TLS_KEY_SIZE} expected (sha256 of the SPKI)`)
  return sha256(utf8.encode(TLS_BINDING_DOMAIN), n, tlsKey)
}

/** PCR values of one bank as a map index → digest (empty when the bank is absent). */
export function evidencePcrMap(e: Evidence, bank: HashAlg = 'sha256'): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  const b = e.pcrs[bank]
  if (b === undefined) return out
  for (const [k, v] of Object.entries(b)) out.set(Number(k), v)
  return out
}

function fail(msg: string): never {
  throw new DecodeError(`evidence: ${msg}`)
}

function checkBytes(v: unknown, what: string, max: number, min = 1): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(`${what}: expected bytes`)
  if (v.length > max) throw new TooLargeError(`evidence: ${what} of ${v.length} bytes exceeds the limit of ${max}`)
  if (v.length < min) fail(`${what}: ${v.length} bytes, at least ${min} expected`)
  return v
}

/** "0".."23" in plain decimal (no sign, no leading zero); what a regex would say, without one per PCR. */
function isPcrIndex(idx: string): boolean {
  const n = idx.length
  if (n === 0 || n > 2) return false
  const a = idx.charCodeAt(0) - 48
  if (a < 0 || a > 9 || (n === 2 && a === 0)) return false
  if (n === 1) return a < PCR_COUNT
  const b = idx.charCodeAt(1) - 48
  return b >= 0 && b <= 9 && a * 10 + b < PCR_COUNT
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
}

/**
 * Validates an in-memory bundle (what both decoders produce and what encodeEvidence accepts).
 * Returns a fresh, frozen-shape copy holding only the known fields.
 */
export function validateEvidence(input: unknown, limits: EvidenceLimits = EVIDENCE_LIMITS): Evidence {
  if (!isPlainRecord(input)) fail('expected a map')
  for (const k of Object.keys(input))
    if (!KEYS.includes(k) && input[k] !== undefined) fail(`unknown field ${JSON.stringify(k)}`)
  if (input.version !== 1)
    fail(`unsupported version ${JSON.stringify(input.version ?? null)} (this verifier reads version 1)`)
  const nonce = checkBytes(input.nonce, 'nonce', limits.maxNonce, limits.minNonce)
  if (!isPlainRecord(input.quote)) fail('quote: expected a map')
  for (const k of Object.keys(input.quote))
    if (k !== 'attest' && k !== 'signature') fail(`quote: unknown field ${JSON.stringify(k)}`)
  const quote = {
    attest: checkBytes(input.quote.attest, 'quote.attest', limits.maxAttest),
    signature: checkBytes(input.quote.signature, 'quote.signature', limits.maxSignature)
  }
  if (!isPlainRecord(input.pcrs)) fail('pcrs: expected a map')
  const pcrs: { [bank in HashAlg]?: Record<string, Uint8Array> } = {}
  for (const [bank, values] of Object.entries(input.pcrs)) {
    if (!isHashAlg(bank)) fail(`pcrs: unknown bank ${JSON.stringify(bank)} (expected one of ${HASH_ALGS.join(', ')})`)
    if (!isPlainRecord(values)) fail(`pcrs.${bank}: expected a map`)
    const out: Record<string, Uint8Array> = {}
    const size = DIGEST_SIZE[bank]
    for (const idx of Object.keys(values)) {
      const d = values[idx]
      if (!isPcrIndex(idx)) fail(`pcrs.${bank}: PCR index ${JSON.stringify(idx)} is not 0..${PCR_COUNT - 1}`)
      if (!(d instanceof Uint8Array) || d.length !== size) fail(`pcrs.${bank}.${idx}: expected a ${size}-byte digest`)
      out[idx] = d
    }
    pcrs[bank] = out
  }
  const e: {
    version: 1
    nonce: Uint8Array
    quote: EvidenceQuote
    pcrs: EvidencePcrs
    akPublic: Uint8Array
    ekCertificate: Uint8Array
    eventLog?: Uint8Array
    containerLog?: string
    committeeNonces?: Uint8Array[]
    tlsKey?: Uint8Array
  } = {
    version: 1,
    nonce,
    quote,
    pcrs,
    akPublic: checkBytes(input.akPublic, 'akPublic', limits.maxAkPublic),
    ekCertificate: checkBytes(input.ekCertificate, 'ekCertificate', limits.maxEkCertificate)
  }
  if (input.eventLog !== undefined) e.eventLog = checkBytes(input.eventLog, 'eventLog', limits.maxEventLog, 0)
  if (input.containerLog !== undefined) {
    if (typeof input.containerLog !== 'string') fail('containerLog: expected a string')
    const n = Buffer.byteLength(input.containerLog, 'utf8')
    if (n > limits.maxContainerLog)
      throw new TooLargeError(`evidence: containerLog of ${n} bytes exceeds the limit of ${limits.maxContainerLog}`)
    e.containerLog = input.containerLog
  }
  if (input.committeeNonces !== undefined) {
    const cn = input.committeeNonces
    if (!Array.isArray(cn)) fail('committeeNonces: expected an array')
    if (cn.length === 0) fail('committeeNonces: empty list')
    if (cn.length > limits.maxCommitteeNonces)
      throw new TooLargeError(
        `evidence: ${cn.length} committee nonces exceed the limit of ${limits.maxCommitteeNonces}`
      )
    e.committeeNonces = cn.map((x: unknown, i: number) =>
      checkBytes(x, `committeeNonces[${i}]`, limits.maxNonce, limits.minNonce)
    )
  }
  if (input.tlsKey !== undefined) {
    e.tlsKey = checkBytes(input.tlsKey, 'tlsKey', TLS_KEY_SIZE, TLS_KEY_SIZE)
    if (e.committeeNonces === undefined) fail('tlsKey: only bound with committeeNonces')
  }
  return e
}

function toCanonical(e: Evidence): Canonical {
  const pcrs: Record<string, Record<string, Uint8Array>> = {}
  for (const bank of HASH_ALGS) {
    const b = e.pcrs[bank]
    if (b !== undefined) pcrs[bank] = { ...b }
  }
  return {
    version: 1,
    nonce: e.nonce,
    quote: { attest: e.quote.attest, signature: e.quote.signature },
    pcrs,
    akPublic: e.akPublic,
    ekCertificate: e.ekCertificate,
    eventLog: e.eventLog,
    containerLog: e.containerLog,
    committeeNonces: e.committeeNonces,
    tlsKey: e.tlsKey
  }
}

/** Canonical CBOR of a (validated) bundle. Throws InvalidInputError/TooLargeError on a bad bundle. */
export function encodeEvidence(e: Evidence, limits: EvidenceLimits = EVIDENCE_LIMITS): Uint8Array {
  const v = validateEvidence(e, limits)
  const out = encode(toCanonical(v))
  if (out.length > limits.maxBytes)
    throw new TooLargeError(`evidence: encoding of ${out.length} bytes exceeds the limit of ${limits.maxBytes}`)
  return out
}

/** Strict decoder of the wire form: size limit first, then canonical CBOR, then the v1 schema. */
export function decodeEvidence(bytes: Uint8Array, limits: EvidenceLimits = EVIDENCE_LIMITS): Evidence {
  if (!(bytes instanceof Uint8Array)) throw new InvalidInputError('evidence: expected bytes')
  const v = decode(bytes, { maxBytes: limits.maxBytes, maxDepth: 4, maxItems: Math.max(64, limits.maxCommitteeNonces) })
  const m = asMap(v, 'evidence')
  onlyKeys(m, KEYS, 'evidence')
  if (m.version !== undefined && !is.uint(m.version)) fail('version: expected an unsigned integer')
  // validateEvidence accepts the decoder's null-prototype maps and copies what it keeps.
  return validateEvidence(m, limits)
}

/** JSON file form: hex for nonces and digests, base64 for blobs, the container log as text. */
export interface EvidenceJson {
  version: 1
  nonce: string
  quote: { attest: string; signature: string }
  pcrs: { [bank in HashAlg]?: Record<string, string> }
  akPublic: string
  ekCertificate: string
  eventLog?: string
  containerLog?: string
  committeeNonces?: string[]
  tlsKey?: string
}

export function evidenceToJson(e: Evidence): EvidenceJson {
  const v = validateEvidence(e)
  const pcrs: { [bank in HashAlg]?: Record<string, string> } = {}
  for (const bank of HASH_ALGS) {
    const b = v.pcrs[bank]
    if (b === undefined) continue
    const out: Record<string, string> = {}
    for (const k of Object.keys(b).sort((x, y) => Number(x) - Number(y))) out[k] = toHex(b[k])
    pcrs[bank] = out
  }
  const j: EvidenceJson = {
    version: 1,
    nonce: toHex(v.nonce),
    quote: { attest: toBase64(v.quote.attest), signature: toBase64(v.quote.signature) },
    pcrs,
    akPublic: toBase64(v.akPublic),
    ekCertificate: toBase64(v.ekCertificate)
  }
  if (v.eventLog !== undefined) j.eventLog = toBase64(v.eventLog)
  if (v.containerLog !== undefined) j.containerLog = v.containerLog
  if (v.committeeNonces !== undefined) j.committeeNonces = v.committeeNonces.map(toHex)
  if (v.tlsKey !== undefined) j.tlsKey = toHex(v.tlsKey)
  return j
}

/** Parses the JSON file form (a string or an already parsed value), strictly. */
export function evidenceFromJson(input: unknown, limits: EvidenceLimits = EVIDENCE_LIMITS): Evidence {
  let j: unknown = input
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const text = typeof input === 'string' ? input : decodeUtf8(input)
    // base64 inflates by 4/3 and JSON adds field names: twice the binary limit is generous.
    if (text.length > limits.maxBytes * 2)
      throw new TooLargeError(`evidence: JSON of ${text.length} characters exceeds the limit of ${limits.maxBytes * 2}`)
    try {
      j = JSON.parse(text)
    } catch (err) {
      throw new DecodeError(`evidence: not valid JSON (${(err as Error).message})`)
    }
  }
  if (!isPlainRecord(j)) fail('expected a JSON object')
  for (const k of Object.keys(j)) if (!KEYS.includes(k)) fail(`unknown field ${JSON.stringify(k)}`)
  const hex = (x: unknown, what: string): Uint8Array => {
    if (typeof x !== 'string') fail(`${what}: expected a hex string`)
    try {
      return fromHex(x, what)
    } catch (err) {
      return fail((err as Error).message)
    }
  }
  const b64 = (x: unknown, what: string): Uint8Array => {
    if (typeof x !== 'string') fail(`${what}: expected a base64 string`)
    try {
      return fromBase64(x, what)
    } catch (err) {
      return fail((err as Error).message)
    }
  }
  const opt = <T>(x: unknown, f: (x: unknown) => T): T | undefined => (x === undefined ? undefined : f(x))
  if (!isPlainRecord(j.quote)) fail('quote: expected an object')
  for (const k of Object.keys(j.quote))
    if (k !== 'attest' && k !== 'signature') fail(`quote: unknown field ${JSON.stringify(k)}`)
  if (!isPlainRecord(j.pcrs)) fail('pcrs: expected an object')
  const pcrs: Record<string, Record<string, Uint8Array>> = {}
  for (const [bank, values] of Object.entries(j.pcrs)) {
    if (!isPlainRecord(values)) fail(`pcrs.${bank}: expected an object`)
    const out: Record<string, Uint8Array> = {}
    for (const [idx, d] of Object.entries(values)) out[idx] = hex(d, `pcrs.${bank}.${idx}`)
    pcrs[bank] = out
  }
  if (j.containerLog !== undefined && typeof j.containerLog !== 'string') fail('containerLog: expected a string')
  if (j.committeeNonces !== undefined && !Array.isArray(j.committeeNonces)) fail('committeeNonces: expected an array')
  const e = validateEvidence(
    {
      version: j.version,
      nonce: hex(j.nonce, 'nonce'),
      quote: { attest: b64(j.quote.attest, 'quote.attest'), signature: b64(j.quote.signature, 'quote.signature') },
      pcrs,
      akPublic: b64(j.akPublic, 'akPublic'),
      ekCertificate: b64(j.ekCertificate, 'ekCertificate'),
      eventLog: opt(j.eventLog, x => b64(x, 'eventLog')),
      containerLog: j.containerLog,
      committeeNonces: opt(j.committeeNonces, x => (x as unknown[]).map((n, i) => hex(n, `committeeNonces[${i}]`))),
      tlsKey: opt(j.tlsKey, x => hex(x, 'tlsKey'))
    },
    limits
  )
  const size = encode(toCanonical(e)).length
  if (size > limits.maxBytes) throw new TooLargeError(`evidence: ${size} bytes exceeds the limit of ${limits.maxBytes}`)
  return e
}

function decodeUtf8(b: Uint8Array): string {
  try {
    return utf8.decode(b)
  } catch {
    return fail('JSON is not valid UTF-8')
  }
}
