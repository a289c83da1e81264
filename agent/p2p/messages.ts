// Wire messages of the attestation protocols. Each is a canonical CBOR map `{ v:1, t, ... }`,
// strictly decoded (no unknown fields, exact types, size limits) — see framing.ts.
//
// /quorate/certify/1.0.0     node → committee member (the node dials out; no inbound port needed):
//     node: hello {nodeId, round}      member: challenge {nonce, credential?}
//     node: evidence {evidence, secret?}   member: verdict {verdict}  (a BLS-signed member verdict v3)
//     node: certificate {qc}  (once the round has a QC: members may record it if the node does not)
// /quorate/credential/1.0.0  verifier → node: credential {credentialBlob, encryptedSecret, ekKind}
//                            node: activated {secret}
// /quorate/evidence/1.0.0    verifier → node: nonce {nonce}   node: evidence {evidence}
// Either side may answer `error {code, message}` instead, then closes the stream.
import { encode, field, is, onlyKeys, type Canonical } from '../../encoding/canonical.ts'
import { DecodeError, QuorateError } from '../../encoding/errors.ts'
import { EVIDENCE_LIMITS } from '../../attestation/evidence.ts'
import { decodeMessage, expectType, type Framed } from './framing.ts'

export const PROTOCOL_CERTIFY = '/quorate/certify/1.0.0'
export const PROTOCOL_CREDENTIAL = '/quorate/credential/1.0.0'
export const PROTOCOL_EVIDENCE = '/quorate/evidence/1.0.0'

export const MESSAGE_LIMITS = {
  /** hello, challenge, credential, activated, nonce, verdict, error */
  small: 8 * 1024,
  /** evidence messages: the bundle plus a little envelope */
  evidence: EVIDENCE_LIMITS.maxBytes + 1024
} as const

export type EkKind = 'rsa2048' | 'ecc-p384'
const EK_KINDS: readonly string[] = ['rsa2048', 'ecc-p384']

export interface CredentialChallenge {
  /** TPM2B_ID_OBJECT body */
  readonly credentialBlob: Uint8Array
  /** TPM2B_ENCRYPTED_SECRET body */
  readonly encryptedSecret: Uint8Array
  readonly ekKind: EkKind
}

/** `ekPublic`: the node's EK TPMT_PUBLIC; the member checks it is the certificate's key before MakeCredential. */
export interface Hello {
  readonly nodeId: string
  readonly round: number
  readonly ekPublic: Uint8Array
}
export interface Challenge {
  readonly nonce: Uint8Array
  readonly credential?: CredentialChallenge
}
export interface EvidenceMsg {
  readonly evidence: Uint8Array
  readonly secret?: Uint8Array
  readonly ekPublic?: Uint8Array
}
/** `verdict`: attestation/quorum encodeMemberVerdict bytes (the BLS signature is inside). */
export interface VerdictMsg {
  readonly verdict: Uint8Array
}

function bytes(m: Record<string, Canonical>, key: string, what: string, min: number, max: number): Uint8Array {
  const b = field(m, key, what, is.bytes, 'bytes')
  if (b.length < min || b.length > max)
    throw new DecodeError(`${what}.${key}: ${b.length} bytes, expected ${min}..${max}`)
  return b
}

function optBytes(
  m: Record<string, Canonical>,
  key: string,
  what: string,
  min: number,
  max: number
): Uint8Array | undefined {
  return Object.hasOwn(m, key) ? bytes(m, key, what, min, max) : undefined
}

export function encodeError(code: string, message: string): Uint8Array {
  return encode({ v: 1, t: 'error', code: code.slice(0, 64), message: message.slice(0, 300) })
}

/**
 * Answers a served stream with `error` for `err` (its code and message if it is a QuorateError,
 * ERR_INTERNAL otherwise) and closes it; aborts the stream if that fails.
 */
export async function refuse(f: Framed, err: unknown): Promise<void> {
  const e = err instanceof QuorateError ? err : undefined
  try {
    await f.write(encodeError(e?.code ?? 'ERR_INTERNAL', e?.message ?? 'internal error'))
    await f.close()
  } catch {
    f.abort(err as Error)
  }
}

export function encodeHello(h: Hello): Uint8Array {
  return encode({ v: 1, t: 'hello', nodeId: h.nodeId, round: h.round, ekPublic: h.ekPublic })
}
export function decodeHello(b: Uint8Array): Hello {
  const msg = decodeMessage(b, MESSAGE_LIMITS.small, 'hello')
  expectType(msg, 'hello', 'hello')
  onlyKeys(msg.m, ['v', 't', 'nodeId', 'round', 'ekPublic'], 'hello')
  const nodeId = field(msg.m, 'nodeId', 'hello', is.string, 'text')
  if (nodeId.length === 0 || nodeId.length > 128) throw new DecodeError('hello.nodeId: bad length')
  return {
    nodeId,
    round: field(msg.m, 'round', 'hello', is.uint, 'unsigned integer'),
    ekPublic: bytes(msg.m, 'ekPublic', 'hello', 1, 1024)
  }
}

function credentialFrom(x: Canonical, what: string): CredentialChallenge {
  if (!is.map(x)) throw new DecodeError(`${what}: expected a map`)
  onlyKeys(x, ['credentialBlob', 'encryptedSecret', 'ekKind'], what)
  const ekKind = field(x, 'ekKind', what, is.string, 'text')
  if (!EK_KINDS.includes(ekKind)) throw new DecodeError(`${what}.ekKind: unknown EK kind`)
  return {
    credentialBlob: bytes(x, 'credentialBlob', what, 1, 1024),
    encryptedSecret: bytes(x, 'encryptedSecret', what, 1, 1024),
    ekKind: ekKind as EkKind
  }
}

function credentialTo(c: CredentialChallenge): Canonical {
  return { credentialBlob: c.credentialBlob, encryptedSecret: c.encryptedSecret, ekKind: c.ekKind }
}

export function encodeChallenge(c: Challenge): Uint8Array {
  return encode({
    v: 1,
    t: 'challenge',
    nonce: c.nonce,
    credential: c.credential !== undefined ? credentialTo(c.credential) : undefined
  })
}
export function decodeChallenge(b: Uint8Array): Challenge {
  const msg = decodeMessage(b, MESSAGE_LIMITS.small, 'challenge')
  expectType(msg, 'challenge', 'challenge')
  onlyKeys(msg.m, ['v', 't', 'nonce', 'credential'], 'challenge')
  const nonce = bytes(msg.m, 'nonce', 'challenge', EVIDENCE_LIMITS.minNonce, EVIDENCE_LIMITS.maxNonce)
  return Object.hasOwn(msg.m, 'credential')
    ? { nonce, credential: credentialFrom(msg.m.credential, 'challenge.credential') }
    : { nonce }
}

export function encodeEvidenceMsg(e: EvidenceMsg): Uint8Array {
  return encode({ v: 1, t: 'evidence', evidence: e.evidence, secret: e.secret, ekPublic: e.ekPublic })
}
export function decodeEvidenceMsg(b: Uint8Array): EvidenceMsg {
  const msg = decodeMessage(b, MESSAGE_LIMITS.evidence, 'evidence message')
  expectType(msg, 'evidence', 'evidence message')
  onlyKeys(msg.m, ['v', 't', 'evidence', 'secret', 'ekPublic'], 'evidence message')
  const evidence = bytes(msg.m, 'evidence', 'evidence message', 1, EVIDENCE_LIMITS.maxBytes)
  const secret = optBytes(msg.m, 'secret', 'evidence message', 1, 64)
  const ekPublic = optBytes(msg.m, 'ekPublic', 'evidence message', 1, 1024)
  return { evidence, ...(secret !== undefined ? { secret } : {}), ...(ekPublic !== undefined ? { ekPublic } : {}) }
}

export function encodeVerdictMsg(v: VerdictMsg): Uint8Array {
  return encode({ v: 1, t: 'verdict', verdict: v.verdict })
}
export function decodeVerdictMsg(b: Uint8Array): VerdictMsg {
  const msg = decodeMessage(b, MESSAGE_LIMITS.small, 'verdict message')
  expectType(msg, 'verdict', 'verdict message')
  onlyKeys(msg.m, ['v', 't', 'verdict'], 'verdict message')
  return { verdict: bytes(msg.m, 'verdict', 'verdict message', 1, 1024) }
}

export function encodeCertificateMsg(qc: Uint8Array): Uint8Array {
  return encode({ v: 1, t: 'certificate', qc })
}
export function decodeCertificateMsg(b: Uint8Array): Uint8Array {
  const msg = decodeMessage(b, MESSAGE_LIMITS.small, 'certificate message')
  expectType(msg, 'certificate', 'certificate message')
  onlyKeys(msg.m, ['v', 't', 'qc'], 'certificate message')
  return bytes(msg.m, 'qc', 'certificate message', 1, 4096)
}

export function encodeCredentialRequest(c: CredentialChallenge): Uint8Array {
  return encode({ v: 1, t: 'credential', ...(credentialTo(c) as Record<string, Canonical>) })
}
export function decodeCredentialRequest(b: Uint8Array): CredentialChallenge {
  const msg = decodeMessage(b, MESSAGE_LIMITS.small, 'credential request')
  expectType(msg, 'credential', 'credential request')
  const { v: _v, t: _t, ...rest } = msg.m
  return credentialFrom(rest, 'credential request')
}

export function encodeActivated(secret: Uint8Array): Uint8Array {
  return encode({ v: 1, t: 'activated', secret })
}
export function decodeActivated(b: Uint8Array): Uint8Array {
  const msg = decodeMessage(b, MESSAGE_LIMITS.small, 'activated')
  expectType(msg, 'activated', 'activated')
  onlyKeys(msg.m, ['v', 't', 'secret'], 'activated')
  return bytes(msg.m, 'secret', 'activated', 1, 64)
}

export function encodeNonceRequest(nonce: Uint8Array): Uint8Array {
  return encode({ v: 1, t: 'nonce', nonce })
}
export function decodeNonceRequest(b: Uint8Array): Uint8Array {
  const msg = decodeMessage(b, MESSAGE_LIMITS.small, 'nonce request')
  expectType(msg, 'nonce', 'nonce request')
  onlyKeys(msg.m, ['v', 't', 'nonce'], 'nonce request')
  return bytes(msg.m, 'nonce', 'nonce request', EVIDENCE_LIMITS.minNonce, EVIDENCE_LIMITS.maxNonce)
}
