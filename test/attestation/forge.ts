// Test-only quote forger: a software P-256 "AK" marshaled as a TPMT_PUBLIC, and TPMS_ATTEST +
// TPMT_SIGNATURE built and signed exactly as a TPM would (TPM 2.0 Part 2 §10.12.12, §11.3.4), so
// the pure verifier can be tested without a TPM, including every single-field tamper.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { sha256 } from '../../encoding/bytes.ts'
import type { EvidencePcrs } from '../../attestation/evidence.ts'
import {
  TPM_ALG,
  TPM_ECC,
  TPMA_OBJECT,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  marshalAttest,
  marshalPublic,
  marshalSignature,
  objectName,
  type Attest,
  type EccPublic,
  type PcrSelection
} from '../../attestation/tpm2.ts'

export const AK_ATTRS =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.userWithAuth |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign

export interface SoftAk {
  readonly privateKey: KeyObject
  readonly pub: EccPublic
  readonly akPublic: Uint8Array
  readonly name: Uint8Array
}

export function softAk(attributes = AK_ATTRS): SoftAk {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' })
  const pub: EccPublic = {
    type: 'ecc',
    nameAlg: 0x000b,
    objectAttributes: attributes,
    authPolicy: new Uint8Array(0),
    scheme: { scheme: TPM_ALG.ECDSA, hashAlg: 0x000b },
    curve: TPM_ECC.NIST_P256,
    kdf: { scheme: TPM_ALG.NULL },
    x: new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url')),
    y: new Uint8Array(Buffer.from(jwk.y ?? '', 'base64url'))
  }
  const akPublic = marshalPublic(pub)
  return { privateKey, pub, akPublic, name: objectName(akPublic, pub) }
}

export interface ForgeOptions {
  nonce: Uint8Array
  /** sha256 PCR values to quote (index → value); the selection is their indexes ascending. */
  pcrs: ReadonlyMap<number, Uint8Array>
  selection?: PcrSelection[]
  clock?: bigint
  resetCount?: number
  restartCount?: number
  magic?: number
  type?: number
}

export interface ForgedQuote {
  attest: Uint8Array
  signature: Uint8Array
  akPublic: Uint8Array
  pcrs: EvidencePcrs
  parsed: Attest
}

export function forgeQuote(ak: SoftAk, o: ForgeOptions): ForgedQuote {
  const selection = o.selection ?? [{ hash: 'sha256' as const, pcrs: [...o.pcrs.keys()].sort((a, b) => a - b) }]
  const values: Uint8Array[] = []
  for (const s of selection) for (const p of s.pcrs) values.push(o.pcrs.get(p) ?? new Uint8Array(32))
  const parsed: Attest = {
    magic: o.magic ?? TPM_GENERATED_VALUE,
    type: o.type ?? TPM_ST_ATTEST_QUOTE,
    qualifiedSigner: ak.name,
    extraData: o.nonce,
    clockInfo: {
      clock: o.clock ?? 123456n,
      resetCount: o.resetCount ?? 1,
      restartCount: o.restartCount ?? 0,
      safe: true
    },
    firmwareVersion: 0x2023041900120000n,
    quote: { pcrSelect: selection, pcrDigest: sha256(...values) }
  }
  const attest = marshalAttest(parsed)
  const signature = signAttest(ak, attest)
  const reported: Record<string, Uint8Array> = {}
  for (const [k, v] of o.pcrs) reported[String(k)] = v
  return { attest, signature, akPublic: ak.akPublic, pcrs: { sha256: reported }, parsed }
}

export function signAttest(ak: SoftAk, attest: Uint8Array): Uint8Array {
  const rs = sign('sha256', attest, { key: ak.privateKey, dsaEncoding: 'ieee-p1363' })
  return marshalSignature({
    sigAlg: 'ecdsa',
    hash: 'sha256',
    r: new Uint8Array(rs.subarray(0, 32)),
    s: new Uint8Array(rs.subarray(32))
  })
}
