// EK certificate chain validation (TCG EK Credential Profile 2.x): the EK certificate must chain,
// through optional intermediates, to a TPM vendor CA certificate published on chain. We build the
// path ourselves with node:crypto X509Certificate (issuer name/key-id match + signature) instead
// of asking OpenSSL to verify the chain, because EK certificates routinely carry critical
// extensions OpenSSL does not know (the SAN with TPM manufacturer attributes is critical and
// holds a directoryName; Subject Directory Attributes) and would reject.
import { X509Certificate, createHash, hash, type KeyObject } from 'node:crypto'
import { fromBase64 } from '../encoding/bytes.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../encoding/errors.ts'
import { parsePublic, publicToKeyObject, type TpmPublic } from './tpm2.ts'

export class EkCertificateError extends InvalidInputError {
  override readonly code: string = 'ERR_EK_CERTIFICATE'
}
export class UnknownIssuerError extends EkCertificateError {
  override readonly code: string = 'ERR_EK_UNKNOWN_ISSUER'
}
export class CertificateExpiredError extends EkCertificateError {
  override readonly code: string = 'ERR_EK_EXPIRED'
}
export class CertificateNotYetValidError extends EkCertificateError {
  override readonly code: string = 'ERR_EK_NOT_YET_VALID'
}
export class EkKeyMismatchError extends EkCertificateError {
  override readonly code: string = 'ERR_EK_KEY_MISMATCH'
}

export type CertInput = Uint8Array | string

export interface EkTrustStore {
  /** sha256 over the sorted anchor fingerprints: identifies the CA set (cache key). */
  readonly id: string
  readonly anchors: readonly X509Certificate[]
}

export interface VerifiedEk {
  readonly subject: string
  readonly issuer: string
  readonly serialNumber: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly keyType: 'rsa' | 'ec'
  readonly publicKey: KeyObject
  /** Subjects from the EK certificate up to the trust anchor. */
  readonly chain: readonly string[]
  /** TPM attributes from the subjectAltName directoryName (TCG EK Credential Profile §3.2.9), when present. */
  readonly tpm: { readonly manufacturer?: string; readonly model?: string; readonly version?: string }
  readonly certificate: X509Certificate
}

/** A PEM text that is not well formed (unclosed or mislabelled block, body not base64, …). */
export class PemError extends DecodeError {
  override readonly code: string = 'ERR_PEM'
}

/** PEM input bounds: a vendor CA bundle is a few dozen certificates of a few KiB each. */
export const PEM_LIMITS = { chars: 4 << 20, blocks: 256 } as const

export interface PemBlock {
  readonly label: string
  readonly der: Uint8Array
}

// RFC 7468 §3: label characters are printable ASCII except '-', single spaces or hyphens between.
const PEM_LABEL_RE = /^[\x21-\x2c\x2e-\x7e](?:[- ]?[\x21-\x2c\x2e-\x7e])*$/
const BEGIN = '-----BEGIN '
const END = '-----END '

/**
 * Decodes every PEM block of `text` (RFC 7468), strictly: each "-----BEGIN L-----" line must be
 * closed by "-----END L-----" with the same label before the next BEGIN, a body is non-empty
 * base64 with padding only at its end (whitespace and line breaks anywhere are ignored; RFC 1421
 * headers are not accepted), and with `label` every block must carry it. Text outside blocks is
 * explanatory (RFC 7468 §2) and ignored, except a stray END line. No BEGIN at all gives [].
 * Throws PemError naming `what` and the block, or TooLargeError beyond PEM_LIMITS.
 */
export function decodePem(text: string, opts: { label?: string; what?: string } = {}): PemBlock[] {
  const what = opts.what ?? 'PEM'
  if (text.length > PEM_LIMITS.chars)
    throw new TooLargeError(`${what}: ${text.length} characters of PEM (limit ${PEM_LIMITS.chars})`)
  const out: PemBlock[] = []
  let pos = 0
  for (;;) {
    const at = text.indexOf(BEGIN, pos)
    const outside = text.slice(pos, at === -1 ? text.length : at)
    if (outside.includes(END))
      throw new PemError(`${what}: an END line without its BEGIN${out.length > 0 ? ` after block #${out.length}` : ''}`)
    if (at === -1) return out
    const n = out.length + 1
    if (n > PEM_LIMITS.blocks) throw new TooLargeError(`${what}: more than ${PEM_LIMITS.blocks} PEM blocks`)
    const eol = text.indexOf('\n', at)
    const line = text.slice(at, eol === -1 ? text.length : eol).trimEnd()
    const label = line.endsWith('-----') ? line.slice(BEGIN.length, -5) : undefined
    if (label === undefined || !PEM_LABEL_RE.test(label))
      throw new PemError(`${what}: block #${n}: malformed BEGIN line ${JSON.stringify(line.slice(0, 80))}`)
    if (opts.label !== undefined && label !== opts.label)
      throw new PemError(`${what}: block #${n} is a ${label}, expected ${opts.label}`)
    const bodyStart = at + line.length
    const end = text.indexOf(END, bodyStart)
    const next = text.indexOf(BEGIN, bodyStart)
    if (end === -1 || (next !== -1 && next < end)) throw new PemError(`${what}: block #${n} (${label}) has no END line`)
    const endLine = `${END}${label}-----`
    if (!text.startsWith(endLine, end)) {
      const endEol = text.indexOf('\n', end)
      throw new PemError(
        `${what}: block #${n}: BEGIN ${label} is closed by ${JSON.stringify(
          text
            .slice(end, endEol === -1 ? text.length : endEol)
            .trimEnd()
            .slice(0, 80)
        )}`
      )
    }
    const body = text.slice(bodyStart, end).replace(/[ \t\r\n]+/g, '')
    if (body === '') throw new PemError(`${what}: block #${n} (${label}) is empty`)
    let der: Uint8Array
    try {
      der = fromBase64(body)
    } catch {
      const bad = /[^A-Za-z0-9+/=]/.exec(body)
      throw new PemError(
        `${what}: block #${n} (${label}): body is not base64 (${bad !== null ? `character ${JSON.stringify(bad[0])}` : body.length % 4 !== 0 ? `${body.length} characters, not a multiple of 4` : "'=' padding before the end"})`
      )
    }
    out.push({ label, der })
    pos = end + endLine.length
  }
}

/** Trims trailing bytes after the outer DER SEQUENCE (EK certificates read from NV are often padded). */
function trimDer(b: Uint8Array): Uint8Array {
  if (b.length < 2 || b[0] !== 0x30) throw new DecodeError('certificate: not a DER SEQUENCE')
  let len = b[1]
  let hdr = 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 4 || b.length < 2 + n) throw new DecodeError('certificate: bad DER length')
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]
    hdr = 2 + n
  }
  if (hdr + len > b.length) throw new DecodeError(`certificate: DER says ${hdr + len} bytes, have ${b.length}`)
  return b.subarray(0, hdr + len)
}

/**
 * Parses certificates from DER bytes, PEM text (one or several CERTIFICATE blocks, see decodePem)
 * or PEM bytes. Bytes are PEM when they are not a DER SEQUENCE and contain a BEGIN line (a bundle
 * may start with explanatory text).
 */
export function parseCertificates(input: CertInput, what = 'certificate'): X509Certificate[] {
  let text: string | undefined
  if (typeof input === 'string') text = input
  else if (input[0] !== 0x30 && Buffer.from(input.buffer, input.byteOffset, input.byteLength).includes(BEGIN)) {
    if (input.length > PEM_LIMITS.chars)
      throw new TooLargeError(`${what}: ${input.length} bytes of PEM (limit ${PEM_LIMITS.chars})`)
    text = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('latin1')
  }
  if (text !== undefined) {
    const blocks = decodePem(text, { label: 'CERTIFICATE', what })
    if (blocks.length === 0) throw new DecodeError(`${what}: no PEM certificate found`)
    return blocks.map((b, i) => parseDer(b.der, blocks.length > 1 ? `${what} (PEM block #${i + 1})` : what))
  }
  return [parseDer(input as Uint8Array, what)]
}

function parseDer(der: Uint8Array, what: string): X509Certificate {
  try {
    const x = new X509Certificate(trimDer(der))
    // node decodes some parts lazily: touch them here so a corrupt key or date is a DecodeError now.
    void x.publicKey.asymmetricKeyType
    if (Number.isNaN(Date.parse(x.validFrom)) || Number.isNaN(Date.parse(x.validTo)))
      throw new DecodeError('unreadable validity dates')
    void x.subject
    void x.issuer
    void x.subjectAltName
    return x
  } catch (err) {
    if (err instanceof DecodeError) throw new DecodeError(`${what}: ${err.message.replace(/^certificate: /, '')}`)
    throw new DecodeError(`${what}: not a valid X.509 certificate (${(err as Error).message})`)
  }
}

/** Builds the set of trusted TPM vendor CA certificates (roots or intermediates; each is an anchor). */
export function createEkTrustStore(cas: readonly CertInput[]): EkTrustStore {
  const anchors: X509Certificate[] = []
  const seen = new Set<string>()
  for (const [i, c] of cas.entries()) {
    for (const x of parseCertificates(c, `EK CA certificate #${i}`)) {
      if (seen.has(x.fingerprint256)) continue
      seen.add(x.fingerprint256)
      anchors.push(x)
    }
  }
  const id = createHash('sha256')
    .update([...seen].sort().join(','))
    .digest('hex')
  return { id, anchors }
}

function timeCheck(c: X509Certificate, now: Date, role: string): void {
  const from = new Date(c.validFrom)
  const to = new Date(c.validTo)
  if (now < from)
    throw new CertificateNotYetValidError(`${role} "${c.subject}" is not valid before ${from.toISOString()}`)
  if (now > to) throw new CertificateExpiredError(`${role} "${c.subject}" expired on ${to.toISOString()}`)
}

function issues(issuer: X509Certificate, child: X509Certificate): boolean {
  if (!child.checkIssued(issuer)) return false
  try {
    return child.verify(issuer.publicKey)
  } catch {
    return false
  }
}

function tpmAttributes(c: X509Certificate): VerifiedEk['tpm'] {
  const san = c.subjectAltName ?? ''
  const get = (k: string): string | undefined => {
    const m = new RegExp(`(?:${k})=([^,"\\\\/]+)`).exec(san.replace(/\\u002c/g, ','))
    return m?.[1]
  }
  const out: { manufacturer?: string; model?: string; version?: string } = {}
  const manufacturer = get('tcg-at-tpmManufacturer|2\\.23\\.133\\.2\\.1')
  const model = get('tcg-at-tpmModel|2\\.23\\.133\\.2\\.2')
  const version = get('tcg-at-tpmVersion|2\\.23\\.133\\.2\\.3')
  if (manufacturer !== undefined) out.manufacturer = manufacturer
  if (model !== undefined) out.model = model
  if (version !== undefined) out.version = version
  return out
}

export interface VerifyEkOptions {
  /** Validation time (default: now). */
  readonly now?: Date | number
  /** Untrusted intermediates (e.g. shipped with the TPM), used only to build the path. */
  readonly intermediates?: readonly CertInput[]
  /** The EK's TPMT_PUBLIC as read from the TPM: must be the certified key. */
  readonly ekPublic?: Uint8Array | TpmPublic
}

/** Validates an EK certificate chain; throws an EkCertificateError naming what is wrong. */
export function verifyEkCertificate(cert: CertInput, store: EkTrustStore, opts: VerifyEkOptions = {}): VerifiedEk {
  const now = opts.now === undefined ? new Date() : new Date(opts.now)
  const [leaf] = parseCertificates(cert, 'EK certificate')
  const keyType = leaf.publicKey.asymmetricKeyType
  if (keyType !== 'rsa' && keyType !== 'ec')
    throw new EkKeyMismatchError(`EK certificate holds a ${keyType ?? 'unknown'} key; an EK is RSA or ECC`)
  if (leaf.ca)
    throw new EkKeyMismatchError(`EK certificate "${leaf.subject}" is a CA certificate, not an EK certificate`)
  timeCheck(leaf, now, 'EK certificate')

  const pool = (opts.intermediates ?? []).flatMap((c, i) => parseCertificates(c, `intermediate #${i}`))
  const chain = [leaf.subject]
  let cur = leaf
  for (let depth = 0; depth < 8; depth++) {
    const anchor = store.anchors.find(a => issues(a, cur))
    if (anchor !== undefined) {
      if (!anchor.ca)
        throw new UnknownIssuerError(`issuer "${anchor.subject}" is not a CA certificate (basicConstraints CA:FALSE)`)
      timeCheck(anchor, now, 'EK CA certificate')
      chain.push(anchor.subject)
      if (opts.ekPublic !== undefined) checkEkPublic(opts.ekPublic, leaf.publicKey)
      return {
        subject: leaf.subject,
        issuer: leaf.issuer,
        serialNumber: leaf.serialNumber,
        notBefore: new Date(leaf.validFrom),
        notAfter: new Date(leaf.validTo),
        keyType,
        publicKey: leaf.publicKey,
        chain,
        tpm: tpmAttributes(leaf),
        certificate: leaf
      }
    }
    const next = pool.find(p => p !== cur && issues(p, cur))
    if (next === undefined) {
      const byName = store.anchors.find(a => a.subject === cur.issuer)
      if (byName !== undefined)
        throw new UnknownIssuerError(
          `"${cur.subject}" names issuer "${cur.issuer}", but its signature does not verify under the published CA of that name`
        )
      throw new UnknownIssuerError(
        `unknown issuer "${cur.issuer}" of "${cur.subject}": no published TPM vendor CA issued it`
      )
    }
    if (!next.ca) throw new UnknownIssuerError(`intermediate "${next.subject}" is not a CA certificate`)
    timeCheck(next, now, 'intermediate certificate')
    chain.push(next.subject)
    cur = next
  }
  throw new UnknownIssuerError('EK certificate chain is longer than 8 certificates')
}

/** Throws EkKeyMismatchError unless the TPM's EK public area is the key in the certificate. */
export function checkEkPublic(ekPublic: Uint8Array | TpmPublic, certKey: KeyObject): void {
  const pub = ekPublic instanceof Uint8Array ? parsePublic(ekPublic) : ekPublic
  const certType = certKey.asymmetricKeyType
  if (
    (pub.type === 'rsa' && certType !== 'rsa') ||
    (pub.type === 'ecc' && certType !== 'ec') ||
    (pub.type !== 'rsa' && pub.type !== 'ecc')
  ) {
    throw new EkKeyMismatchError(
      `the TPM's EK is ${pub.type.toUpperCase()} but the certificate holds a ${certType ?? 'unknown'} key`
    )
  }
  const a = publicToKeyObject(pub).export({ format: 'jwk' })
  const b = certKey.export({ format: 'jwk' })
  const same = pub.type === 'rsa' ? a.n === b.n && a.e === b.e : a.crv === b.crv && a.x === b.x && a.y === b.y
  if (!same) throw new EkKeyMismatchError("the TPM's EK public key is not the key in the EK certificate")
}

// Chain results depend only on (certificate, CA set) and the time window they are valid in, so a
// verifier appraising the same node repeatedly does the X.509 work once.
interface CacheEntry {
  readonly result: VerifiedEk
  readonly validFrom: number
  readonly validTo: number
}
const cache = new Map<string, CacheEntry>()
const CACHE_MAX = 4096

/** verifyEkCertificate with a cache keyed by sha256(cert) and the trust store id. */
export function verifyEkCertificateCached(
  cert: Uint8Array,
  store: EkTrustStore,
  now: Date | number = new Date(),
  certSha256Hex?: string
): VerifiedEk {
  const t = typeof now === 'number' ? now : now.getTime()
  const key = `${store.id}:${certSha256Hex ?? hash('sha256', cert, 'hex')}`
  const hit = cache.get(key)
  if (hit !== undefined && t >= hit.validFrom && t <= hit.validTo) return hit.result
  const result = verifyEkCertificate(cert, store, { now: t })
  // The chain is valid while every certificate on it is: approximate by leaf ∩ anchor windows.
  const anchor = store.anchors.find(a => a.subject === result.chain[result.chain.length - 1])
  const validFrom = Math.max(
    result.notBefore.getTime(),
    anchor !== undefined ? new Date(anchor.validFrom).getTime() : 0
  )
  const validTo = Math.min(
    result.notAfter.getTime(),
    anchor !== undefined ? new Date(anchor.validTo).getTime() : Number.MAX_SAFE_INTEGER
  )
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string)
  cache.set(key, { result, validFrom, validTo })
  return result
}
