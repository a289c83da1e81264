// Quote verification (TPM 2.0 Part 3 §18.4 TPM2_Quote; Part 2 §10.12.12 TPMS_ATTEST): the
// signature over the TPMS_ATTEST bytes under the AK, the AK's attributes, magic and type, the
// nonce in extraData, and that the reported PCR values are exactly the selected ones and hash to
// the signed pcrDigest. Data in, data out: no TPM. `checkQuote` lists every problem (so the
// appraisal can report them all, each under its claim); `verifyQuote` returns a VerifiedQuote or
// throws a QuoteError carrying that list.
import { hash as oneShotHash, verify as cryptoVerify, constants, type KeyObject } from 'node:crypto'
import { equalConstantTime, toHex } from '../encoding/bytes.ts'
import { PolicyViolationsError } from '../encoding/errors.ts'
import { DIGEST_SIZE, hashAlgFromId, type HashAlg } from './algs.ts'
import type { EvidencePcrs } from './evidence.ts'
import {
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  TPM_ALG,
  TPMA_OBJECT,
  curveInfo,
  objectName,
  parseAttest,
  parsePublic,
  parseSignature,
  publicToKeyObject,
  type Attest,
  type ClockInfo,
  type PcrSelection,
  type TpmPublic,
  type TpmSignature
} from './tpm2.ts'

/** What a quote problem is about; the appraisal maps each kind to a claim. */
export type QuoteProblemKind =
  | 'structure' // not a TPM-generated quote (magic/type) or undecodable
  | 'ak' // AK unusable or lacking required attributes
  | 'signature' // signature does not verify under the AK
  | 'nonce' // extraData is not the expected nonce
  | 'pcrs' // reported PCR values do not match the selection or the signed digest

export interface QuoteProblem {
  readonly kind: QuoteProblemKind
  readonly message: string
  readonly bank?: HashAlg
  readonly pcr?: number
}

declare const verifiedQuoteBrand: unique symbol

/** A quote whose signature, AK, nonce and PCR digest were checked. Only checkQuote/verifyQuote make one. */
export interface VerifiedQuote {
  readonly [verifiedQuoteBrand]: true
  readonly attest: Attest
  readonly ak: TpmPublic
  /** nameAlg ‖ H(TPMT_PUBLIC) of the AK. */
  readonly akName: Uint8Array
  readonly nonce: Uint8Array
  /** TPMS_CLOCK_INFO: compare resetCount/restartCount with an earlier quote to see a reboot. */
  readonly clockInfo: ClockInfo
  readonly firmwareVersion: bigint
  readonly selection: readonly PcrSelection[]
  /** The quoted PCR values per bank (only those covered by the signed digest). */
  readonly pcrs: ReadonlyMap<HashAlg, ReadonlyMap<number, Uint8Array>>
}

export interface QuoteInput {
  /** TPMS_ATTEST bytes as signed. */
  readonly attest: Uint8Array
  /** TPMT_SIGNATURE bytes. */
  readonly signature: Uint8Array
  /** The AK's TPMT_PUBLIC bytes. */
  readonly akPublic: Uint8Array
  /** PCR values as reported next to the quote. */
  readonly pcrs: EvidencePcrs
}

export interface QuoteOptions {
  /** The nonce the verifier expects in extraData. Omit only when the caller checks it itself. */
  readonly nonce?: Uint8Array
  /** Require these AK attributes (default: restricted, sign, fixedTPM, fixedParent). */
  readonly requiredAkAttributes?: ReadonlyArray<keyof typeof TPMA_OBJECT>
}

export interface QuoteCheck {
  /** Present when nothing is wrong. */
  readonly verified?: VerifiedQuote
  /** Every problem found (empty when verified). */
  readonly problems: readonly QuoteProblem[]
  /** The decoded attestation when it could be parsed (for reporting, e.g. clock info); NOT trusted when problems exist. */
  readonly attest?: Attest
  readonly akName?: Uint8Array
  /**
   * The selected PCR values, present when the signature, AK and structure are sound and the
   * values hash to the signed pcrDigest — even if the nonce is wrong (so an appraisal can still
   * report every other problem).
   */
  readonly attestedPcrs?: ReadonlyMap<HashAlg, ReadonlyMap<number, Uint8Array>>
}

/** Every problem of a quote at once (a PolicyViolationsError: each problem is a violation). */
export class QuoteError extends PolicyViolationsError {
  override readonly code: string = 'ERR_QUOTE'
  readonly problems: readonly QuoteProblem[]
  constructor(problems: readonly QuoteProblem[]) {
    const violations = problems.map(p => p.message)
    super(violations, `quote verification failed: ${violations.join('; ')}`)
    this.problems = problems
  }
}

export const DEFAULT_AK_ATTRIBUTES: ReadonlyArray<keyof typeof TPMA_OBJECT> = [
  'restricted',
  'sign',
  'fixedTPM',
  'fixedParent'
]

// Parsing the AK and building its KeyObject (createPublicKey) costs about as much as the ECDSA
// verify itself; the same AK signs many quotes (a member checks each node's every round, and again
// on re-attestation), so keep a bounded LRU cache keyed by the TPMT_PUBLIC bytes: a hit moves the
// entry to the back of the Map's insertion order, and the front (least recently used) goes when
// it is full. The last few AKs are found by comparing bytes (memcmp), which is cheaper than
// building the hex key. Keyed by content, never by buffer identity: a caller may reuse its buffer.
interface AkEntry {
  readonly pub: TpmPublic
  readonly key?: KeyObject
  readonly keyError?: string
  readonly name: Uint8Array
}
const akCache = new Map<string, AkEntry>()
const AK_CACHE_MAX = 1024
const akRecent: Array<{ readonly bytes: Buffer; readonly key: string; readonly entry: AkEntry } | undefined> =
  new Array(8).fill(undefined)
let akRecentNext = 0
let akBuilt = 0

/** The AK cache now: entries held, and AK public areas parsed (KeyObjects built) since the process began. */
export function akCacheStats(): { readonly size: number; readonly built: number; readonly max: number } {
  return { size: akCache.size, built: akBuilt, max: AK_CACHE_MAX }
}

/** Moves `k` to the back of the cache's order (most recently used), if it is still there. */
function touch(k: string, e: AkEntry): void {
  if (akCache.delete(k)) akCache.set(k, e)
}

function akEntry(akPublic: Uint8Array): AkEntry {
  const b = Buffer.from(akPublic.buffer, akPublic.byteOffset, akPublic.byteLength)
  for (const r of akRecent)
    if (r !== undefined && r.bytes.length === b.length && r.bytes.equals(b)) {
      touch(r.key, r.entry)
      return r.entry
    }
  const k = toHex(akPublic)
  let e = akCache.get(k)
  if (e !== undefined) touch(k, e)
  else {
    akBuilt++
    const pub = parsePublic(akPublic)
    const name = objectName(akPublic, pub)
    try {
      e = { pub, name, key: publicToKeyObject(pub) }
    } catch (err) {
      e = { pub, name, keyError: (err as Error).message }
    }
    if (akCache.size >= AK_CACHE_MAX) akCache.delete(akCache.keys().next().value as string)
    akCache.set(k, e)
  }
  // a copy: the caller may reuse its buffer
  akRecent[akRecentNext] = { bytes: Buffer.from(b), key: k, entry: e }
  akRecentNext = (akRecentNext + 1) % akRecent.length
  return e
}

/** DER SEQUENCE { INTEGER r, INTEGER s } from the TPM's unsigned big-endian r and s, in one allocation. */
export function ecdsaDer(r: Uint8Array, s: Uint8Array): Uint8Array {
  const ri = intStart(r)
  const si = intStart(s)
  const rLen = intLen(r, ri)
  const sLen = intLen(s, si)
  const body = tlvSize(rLen) + tlvSize(sLen)
  const out = new Uint8Array(tlvSize(body)) // zero-filled: pad bytes need no writing
  const o = putInt(out, header(out, 0, 0x30, body), r, ri, rLen)
  putInt(out, o, s, si, sLen)
  return out
}

// First byte kept of an unsigned value: leading zeros dropped, one kept for zero.
function intStart(v: Uint8Array): number {
  let i = 0
  while (i < v.length - 1 && v[i] === 0) i++
  return i
}

// INTEGER contents length: the kept bytes, plus 0x00 before a set high bit (empty → one 0x00).
function intLen(v: Uint8Array, i: number): number {
  return v.length === 0 ? 1 : v.length - i + ((v[i] & 0x80) !== 0 ? 1 : 0)
}

function putInt(out: Uint8Array, o: number, v: Uint8Array, i: number, len: number): number {
  o = header(out, o, 0x02, len)
  // byte loop, not set(subarray): for ~32 bytes the view object costs more than the copy
  for (let j = i, k = o + len - (v.length - i); j < v.length; j++, k++) out[k] = v[j]
  return o + len
}

function tlvSize(len: number): number {
  return 1 + (len < 0x80 ? 1 : len < 0x100 ? 2 : 3) + len
}

function header(out: Uint8Array, o: number, tag: number, len: number): number {
  out[o++] = tag
  if (len < 0x80) out[o++] = len
  else if (len < 0x100) {
    out[o++] = 0x81
    out[o++] = len
  } else {
    out[o++] = 0x82
    out[o++] = len >> 8
    out[o++] = len & 0xff
  }
  return o
}

/** Verifies a TPMT_SIGNATURE over `data` with the key. Returns a problem message or undefined. */
export function checkSignature(
  pub: TpmPublic,
  key: KeyObject,
  sig: TpmSignature,
  data: Uint8Array
): string | undefined {
  if (sig.sigAlg === 'null' || sig.sigAlg === 'hmac') return `signature algorithm ${sig.sigAlg} cannot attest a quote`
  if (pub.type === 'ecc') {
    if (sig.sigAlg !== 'ecdsa') return `signature algorithm ${sig.sigAlg} is not supported for ECC AKs (ECDSA is)`
    const c = curveInfo(pub.curve)
    if (c === undefined) return 'AK curve not supported'
    if (sig.r.length > c.size || sig.s.length > c.size) return 'ECDSA r or s larger than the curve order'
    // DER, not { dsaEncoding: 'ieee-p1363' }: the options-object form costs ~50% more per verify.
    const ok = cryptoVerify(sig.hash, data, key, ecdsaDer(sig.r, sig.s))
    return ok ? undefined : 'ECDSA signature does not verify under the AK'
  }
  if (pub.type === 'rsa') {
    if (sig.sigAlg === 'rsassa')
      return cryptoVerify(sig.hash, data, key, sig.sig) ? undefined : 'RSASSA signature does not verify under the AK'
    if (sig.sigAlg === 'rsapss') {
      const ok = cryptoVerify(
        sig.hash,
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
        sig.sig
      )
      return ok ? undefined : 'RSAPSS signature does not verify under the AK'
    }
    return `signature algorithm ${sig.sigAlg} is not supported for RSA AKs`
  }
  return `AK of type ${pub.type} cannot sign`
}

// The selected PCR values are concatenated into this buffer (grown as needed), not a new one per call.
let pcrScratch = Buffer.allocUnsafe(1024)

/** Concatenates the selected values into pcrScratch; their total length, or -1 when one is missing. */
function concatSelected(
  selection: readonly PcrSelection[],
  values: (bank: HashAlg, pcr: number) => Uint8Array | undefined
): number {
  let n = 0
  for (const s of selection) {
    for (const p of s.pcrs) {
      // ascending within a TPMS_PCR_SELECTION (bit order)
      const v = values(s.hash, p)
      if (v === undefined) return -1
      if (n + v.length > pcrScratch.length) {
        const b = Buffer.allocUnsafe(2 * (n + v.length))
        pcrScratch.copy(b, 0, 0, n)
        pcrScratch = b
      }
      pcrScratch.set(v, n)
      n += v.length
    }
  }
  return n
}

/** pcrDigest as the TPM computes it: H(concatenation of the selected PCR values in selection order). */
export function computePcrDigest(
  hash: HashAlg,
  selection: readonly PcrSelection[],
  values: (bank: HashAlg, pcr: number) => Uint8Array | undefined
): Uint8Array | undefined {
  const n = concatSelected(selection, values)
  return n < 0 ? undefined : new Uint8Array(oneShotHash(hash, pcrScratch.subarray(0, n), 'buffer'))
}

/**
 * Whether the selected values hash to `expected`. The digest is taken as a binary (latin1) string (one
 * char per byte) and compared in place: node's one-shot hash returns a string several times
 * faster than a Buffer (~0.4 µs against ~1.5 µs here), and this runs on every appraisal.
 */
function pcrDigestMatches(
  hash: HashAlg,
  selection: readonly PcrSelection[],
  values: (bank: HashAlg, pcr: number) => Uint8Array | undefined,
  expected: Uint8Array
): boolean {
  const n = concatSelected(selection, values)
  if (n < 0) return false
  const d = oneShotHash(hash, pcrScratch.subarray(0, n), 'binary')
  if (d.length !== expected.length) return false
  for (let i = 0; i < d.length; i++) if (d.charCodeAt(i) !== expected[i]) return false
  return true
}

/** Checks a quote and lists every problem. */
export function checkQuote(input: QuoteInput, opts: QuoteOptions = {}): QuoteCheck {
  const problems: QuoteProblem[] = []
  let attest: Attest
  try {
    attest = parseAttest(input.attest)
  } catch (err) {
    return { problems: [{ kind: 'structure', message: `quote: ${(err as Error).message}` }] }
  }
  if (attest.magic !== TPM_GENERATED_VALUE)
    problems.push({
      kind: 'structure',
      message: `quote: magic 0x${attest.magic.toString(16)} is not TPM_GENERATED_VALUE (not produced by a TPM)`
    })
  if (attest.type !== TPM_ST_ATTEST_QUOTE || attest.quote === undefined) {
    problems.push({
      kind: 'structure',
      message: `quote: attestation type 0x${attest.type.toString(16)} is not TPM_ST_ATTEST_QUOTE`
    })
    return { problems, attest }
  }
  const q = attest.quote

  // AK and signature.
  let ak: AkEntry | undefined
  try {
    ak = akEntry(input.akPublic)
  } catch (err) {
    problems.push({ kind: 'ak', message: `AK public area: ${(err as Error).message}` })
  }
  let sig: TpmSignature | undefined
  try {
    sig = parseSignature(input.signature)
  } catch (err) {
    problems.push({ kind: 'signature', message: `quote signature: ${(err as Error).message}` })
  }
  if (ak !== undefined) {
    const attrs = ak.pub.objectAttributes
    for (const a of opts.requiredAkAttributes ?? DEFAULT_AK_ATTRIBUTES) {
      if ((attrs & TPMA_OBJECT[a]) === 0) problems.push({ kind: 'ak', message: `AK lacks the ${a} attribute` })
    }
    if ((attrs & TPMA_OBJECT.decrypt) !== 0 && (attrs & TPMA_OBJECT.restricted) !== 0)
      problems.push({ kind: 'ak', message: 'AK is a restricted decryption key, not a signing key' })
    if (ak.keyError !== undefined) problems.push({ kind: 'ak', message: `AK: ${ak.keyError}` })
    if (sig !== undefined && ak.key !== undefined) {
      const scheme = ak.pub.type === 'rsa' || ak.pub.type === 'ecc' ? ak.pub.scheme : undefined
      if (
        scheme !== undefined &&
        scheme.scheme !== TPM_ALG.NULL &&
        sig.sigAlg !== 'null' &&
        sig.sigAlg !== 'hmac' &&
        hashAlgFromId(scheme.hashAlg ?? 0) !== sig.hash
      ) {
        problems.push({
          kind: 'signature',
          message: `quote signature uses ${sig.hash} but the AK's scheme fixes ${hashAlgFromId(scheme.hashAlg ?? 0) ?? 'another hash'}`
        })
      }
      const bad = checkSignature(ak.pub, ak.key, sig, input.attest)
      if (bad !== undefined) problems.push({ kind: 'signature', message: `quote: ${bad}` })
    }
  }

  // Nonce (Part 3 §18.4: qualifyingData is returned in extraData).
  if (opts.nonce !== undefined && !equalConstantTime(attest.extraData, opts.nonce)) {
    problems.push({
      kind: 'nonce',
      message: `quote nonce ${short(attest.extraData)} is not the expected nonce ${short(opts.nonce)}`
    })
  }

  // PCR values: exactly the selected ones, hashing to pcrDigest with the signing hash.
  const quoted = new Map<HashAlg, Map<number, Uint8Array>>()
  let complete = true
  for (const s of q.pcrSelect) {
    const reported = input.pcrs[s.hash]
    let bank = quoted.get(s.hash)
    if (bank === undefined) {
      bank = new Map<number, Uint8Array>()
      quoted.set(s.hash, bank)
    }
    for (const p of s.pcrs) {
      const v = reported !== undefined && Object.hasOwn(reported, p) ? reported[p] : undefined // numeric keys: element access
      if (v === undefined) {
        complete = false
        problems.push({
          kind: 'pcrs',
          bank: s.hash,
          pcr: p,
          message: `PCR ${p} (${s.hash}) is in the quote's selection but its value was not reported`
        })
      } else if (v.length !== DIGEST_SIZE[s.hash]) {
        complete = false
        problems.push({
          kind: 'pcrs',
          bank: s.hash,
          pcr: p,
          message: `PCR ${p} (${s.hash}) value has ${v.length} bytes`
        })
      } else bank.set(p, v)
    }
  }
  // Reported values outside the selection. An index counts as covered only in its plain decimal
  // form, as it is looked up above. Fast path: one selection for the bank and as many reported
  // keys as selected PCRs found among them means there is nothing else.
  const covered = (bank: string, idx: string): boolean => {
    const p = Number(idx)
    if (String(p) !== idx) return false
    for (const s of q.pcrSelect) if (s.hash === bank && s.pcrs.includes(p)) return true
    return false
  }
  for (const bank in input.pcrs) {
    if (!Object.hasOwn(input.pcrs, bank)) continue
    const values = input.pcrs[bank as HashAlg]
    if (values === undefined) continue
    const keys = Object.keys(values)
    let only: PcrSelection | undefined
    let selections = 0
    for (const s of q.pcrSelect)
      if (s.hash === bank) {
        only = s
        selections++
      }
    if (selections === 1 && only !== undefined) {
      let found = 0
      for (const p of only.pcrs) if (Object.hasOwn(values, p)) found++
      if (found === keys.length) continue
    }
    for (const idx of keys) {
      if (!covered(bank, idx))
        problems.push({
          kind: 'pcrs',
          bank: bank as HashAlg,
          pcr: Number(idx),
          message: `PCR ${idx} (${bank}) was reported but is not covered by the quote`
        })
    }
  }
  const digestHash: HashAlg =
    sig !== undefined && sig.sigAlg !== 'null'
      ? sig.hash
      : q.pcrDigest.length === 48
        ? 'sha384'
        : q.pcrDigest.length === 64
          ? 'sha512'
          : q.pcrDigest.length === 20
            ? 'sha1'
            : 'sha256'
  let digestOk = false
  if (complete) {
    const values = (b: HashAlg, p: number): Uint8Array | undefined => quoted.get(b)?.get(p)
    digestOk = pcrDigestMatches(digestHash, q.pcrSelect, values, q.pcrDigest)
    if (!digestOk) {
      const d = computePcrDigest(digestHash, q.pcrSelect, values)
      problems.push({
        kind: 'pcrs',
        message: `reported PCR values hash to ${short(d ?? new Uint8Array())}, not the quoted pcrDigest ${short(q.pcrDigest)}`
      })
    }
  }

  const authentic =
    ak !== undefined &&
    sig !== undefined &&
    !problems.some(p => p.kind === 'structure' || p.kind === 'ak' || p.kind === 'signature')
  const attestedPcrs = authentic && digestOk ? quoted : undefined
  if (problems.length > 0 || ak === undefined)
    return { problems, attest, akName: ak?.name, ...(attestedPcrs !== undefined ? { attestedPcrs } : {}) }
  const verified = {
    attest,
    ak: ak.pub,
    akName: ak.name,
    nonce: attest.extraData,
    clockInfo: attest.clockInfo,
    firmwareVersion: attest.firmwareVersion,
    selection: q.pcrSelect,
    pcrs: quoted
  } as unknown as VerifiedQuote // the brand exists only in the type system
  return { verified, problems, attest, akName: ak.name, attestedPcrs: quoted }
}

/** Verifies a quote; throws QuoteError listing every problem. */
export function verifyQuote(input: QuoteInput, opts: QuoteOptions = {}): VerifiedQuote {
  const c = checkQuote(input, opts)
  if (c.verified === undefined)
    throw new QuoteError(
      c.problems.length > 0 ? c.problems : [{ kind: 'structure', message: 'quote could not be verified' }]
    )
  return c.verified
}

/** How the TPM clock moved between two quotes of the same TPM (Part 1 §36: resetCount/restartCount). */
export interface ClockChange {
  readonly rebooted: boolean
  readonly restarted: boolean
  readonly clockWentBack: boolean
}

export function compareClock(
  previous: Pick<ClockInfo, 'resetCount' | 'restartCount'> & { clock?: bigint },
  current: ClockInfo
): ClockChange {
  const rebooted = current.resetCount !== previous.resetCount
  const restarted = !rebooted && current.restartCount !== previous.restartCount
  const clockWentBack = !rebooted && previous.clock !== undefined && current.clock < previous.clock
  return { rebooted, restarted, clockWentBack }
}

function short(b: Uint8Array): string {
  const h = toHex(b)
  return h.length > 16 ? `${h.slice(0, 16)}…` : h === '' ? '(empty)' : h
}
