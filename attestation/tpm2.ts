// TPM 2.0 structures a verifier reads (TPM 2.0 Part 2: Structures), their marshaling, object
// names and conversion of public areas to node:crypto keys. Pure: bytes in, typed values out.
// Every malformed input fails with a StructureError (a DecodeError) naming the field and offset.
import { createPublicKey, type KeyObject } from 'node:crypto'
import { digest, leftPad } from '../encoding/bytes.ts'
import { DecodeError, InvalidInputError } from '../encoding/errors.ts'
import { hashAlgFromId, TPM_ALG_HASH, DIGEST_SIZE, type HashAlg } from './algs.ts'
import { Reader, Writer } from './reader.ts'

// Part 2 §6.2 / §6.3 / §6.9 constants ----------------------------------------------------------
export const TPM_GENERATED_VALUE = 0xff544347
export const TPM_ST_ATTEST_NV = 0x8014
export const TPM_ST_ATTEST_COMMAND_AUDIT = 0x8015
export const TPM_ST_ATTEST_SESSION_AUDIT = 0x8016
export const TPM_ST_ATTEST_CERTIFY = 0x8017
export const TPM_ST_ATTEST_QUOTE = 0x8018
export const TPM_ST_ATTEST_TIME = 0x8019
export const TPM_ST_ATTEST_CREATION = 0x801a

export const TPM_ALG = {
  RSA: 0x0001,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SM4: 0x0013,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044
} as const

/** TPM_ECC_CURVE (Part 2 §6.4). */
export const TPM_ECC = {
  NIST_P192: 0x0001,
  NIST_P224: 0x0002,
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
  BN_P256: 0x0010,
  SM2_P256: 0x0020
} as const

const CURVES: Readonly<Record<number, { jwk: string; node: string; size: number }>> = {
  [TPM_ECC.NIST_P256]: { jwk: 'P-256', node: 'prime256v1', size: 32 },
  [TPM_ECC.NIST_P384]: { jwk: 'P-384', node: 'secp384r1', size: 48 },
  [TPM_ECC.NIST_P521]: { jwk: 'P-521', node: 'secp521r1', size: 66 }
}

/** node:crypto curve name and coordinate size of a TPM curve, or undefined when unsupported. */
export function curveInfo(curve: number): { jwk: string; node: string; size: number } | undefined {
  return CURVES[curve]
}

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
  x509sign: 1 << 19
} as const

export type ObjectAttributeName = keyof typeof TPMA_OBJECT
export type ObjectAttributes = { readonly [k in ObjectAttributeName]: boolean }

export function objectAttributes(bits: number): ObjectAttributes {
  const out: Partial<Record<ObjectAttributeName, boolean>> = {}
  for (const [k, v] of Object.entries(TPMA_OBJECT) as Array<[ObjectAttributeName, number]>) out[k] = (bits & v) !== 0
  return out as ObjectAttributes
}

// Types ---------------------------------------------------------------------------------------
export interface PcrSelection {
  readonly hash: HashAlg
  readonly pcrs: readonly number[]
}
export interface ClockInfo {
  readonly clock: bigint
  readonly resetCount: number
  readonly restartCount: number
  readonly safe: boolean
}
export interface QuoteInfo {
  /** TPML_PCR_SELECTION in the order the TPM hashed it. */
  readonly pcrSelect: readonly PcrSelection[]
  readonly pcrDigest: Uint8Array
}

/** TPMS_ATTEST (Part 2 §10.12.12). `quote` is present for TPM_ST_ATTEST_QUOTE, `attested` holds other kinds raw. */
export interface Attest {
  readonly magic: number
  readonly type: number
  readonly qualifiedSigner: Uint8Array
  readonly extraData: Uint8Array
  readonly clockInfo: ClockInfo
  readonly firmwareVersion: bigint
  readonly quote?: QuoteInfo
  readonly attested?: Uint8Array
}

/** TPMT_SYM_DEF_OBJECT when not TPM_ALG_NULL (Part 2 §11.1.7). */
export interface SymDef {
  readonly algorithm: number
  readonly keyBits: number
  readonly mode: number
}
/** A TPMT_*_SCHEME: the scheme id and its details (hashAlg; count for ECDAA; kdf for XOR). */
export interface Scheme {
  readonly scheme: number
  readonly hashAlg?: number
  readonly count?: number
  readonly kdf?: number
}

interface PublicBase {
  readonly nameAlg: number
  readonly objectAttributes: number
  readonly authPolicy: Uint8Array
}
export interface RsaPublic extends PublicBase {
  readonly type: 'rsa'
  readonly symmetric?: SymDef
  readonly scheme: Scheme
  readonly keyBits: number
  /** 0 means the default 2^16 + 1 (Part 2 §12.2.3.5). */
  readonly exponent: number
  readonly modulus: Uint8Array
}
export interface EccPublic extends PublicBase {
  readonly type: 'ecc'
  readonly symmetric?: SymDef
  readonly scheme: Scheme
  readonly curve: number
  readonly kdf: Scheme
  readonly x: Uint8Array
  readonly y: Uint8Array
}
export interface KeyedHashPublic extends PublicBase {
  readonly type: 'keyedhash'
  readonly scheme: Scheme
  readonly unique: Uint8Array
}
export interface SymCipherPublic extends PublicBase {
  readonly type: 'symcipher'
  readonly symmetric?: SymDef
  readonly unique: Uint8Array
}
/** TPMT_PUBLIC (Part 2 §12.2.4). */
export type TpmPublic = RsaPublic | EccPublic | KeyedHashPublic | SymCipherPublic

export type EccSigAlg = 'ecdsa' | 'ecdaa' | 'sm2' | 'ecschnorr'
/** TPMT_SIGNATURE (Part 2 §11.3.4). */
export type TpmSignature =
  | { readonly sigAlg: EccSigAlg; readonly hash: HashAlg; readonly r: Uint8Array; readonly s: Uint8Array }
  | { readonly sigAlg: 'rsassa' | 'rsapss'; readonly hash: HashAlg; readonly sig: Uint8Array }
  | { readonly sigAlg: 'hmac'; readonly hash: HashAlg; readonly digest: Uint8Array }
  | { readonly sigAlg: 'null' }

const ECC_SIG: Readonly<Record<number, EccSigAlg>> = {
  [TPM_ALG.ECDSA]: 'ecdsa',
  [TPM_ALG.ECDAA]: 'ecdaa',
  [TPM_ALG.SM2]: 'sm2',
  [TPM_ALG.ECSCHNORR]: 'ecschnorr'
}
const ECC_SIG_ID: Readonly<Record<EccSigAlg, number>> = {
  ecdsa: TPM_ALG.ECDSA,
  ecdaa: TPM_ALG.ECDAA,
  sm2: TPM_ALG.SM2,
  ecschnorr: TPM_ALG.ECSCHNORR
}

// Limits from the PC Client TPM profile (MAX_RSA_KEY_BYTES 512, MAX_ECC_KEY_BYTES 66, 16 banks).
const MAX_RSA_BYTES = 512
const MAX_ECC_BYTES = 128
const MAX_DIGEST = 64
const MAX_NAME = 2 + MAX_DIGEST
const MAX_DATA = 128 // TPM2B_DATA: sizeof(TPMT_HA) at most
const MAX_PCR_SELECT = 32
const MAX_BANKS = 16

// Readers -------------------------------------------------------------------------------------
function readHashAlg(r: Reader, field: string): HashAlg {
  const at = r.pos
  const id = r.u16(field)
  const h = hashAlgFromId(id)
  if (h === undefined) r.fail(`${field}: unsupported hash algorithm 0x${id.toString(16).padStart(4, '0')}`, at)
  return h
}

/** TPML_PCR_SELECTION (Part 2 §10.9.7): bit n of byte i of pcrSelect selects PCR 8·i + n. */
export function readPcrSelection(r: Reader): PcrSelection[] {
  const at = r.pos
  const count = r.u32('TPML_PCR_SELECTION.count')
  if (count > MAX_BANKS) r.fail(`TPML_PCR_SELECTION.count ${count} exceeds ${MAX_BANKS}`, at)
  const out: PcrSelection[] = []
  for (let i = 0; i < count; i++) {
    const hash = readHashAlg(r, 'TPMS_PCR_SELECTION.hash')
    const sat = r.pos
    const size = r.u8('TPMS_PCR_SELECTION.sizeofSelect')
    if (size > MAX_PCR_SELECT) r.fail(`TPMS_PCR_SELECTION.sizeofSelect ${size} exceeds ${MAX_PCR_SELECT}`, sat)
    const bits = r.bytes(size, 'TPMS_PCR_SELECTION.pcrSelect')
    const pcrs: number[] = []
    for (let b = 0; b < size; b++) for (let n = 0; n < 8; n++) if ((bits[b] & (1 << n)) !== 0) pcrs.push(b * 8 + n)
    out.push({ hash, pcrs })
  }
  return out
}

export function writePcrSelection(w: Writer, sel: readonly PcrSelection[]): void {
  w.u32(sel.length)
  for (const s of sel) {
    w.u16(TPM_ALG_HASH[s.hash])
    const max = s.pcrs.reduce((m, p) => Math.max(m, p), -1)
    const size = Math.max(3, Math.floor(max / 8) + 1) // PC Client: at least 3 bytes (24 PCRs)
    const bits = new Uint8Array(size)
    for (const p of s.pcrs) {
      if (!Number.isInteger(p) || p < 0 || p >= MAX_PCR_SELECT * 8)
        throw new InvalidInputError(`PCR index ${p} out of range`)
      bits[p >> 3] |= 1 << (p & 7)
    }
    w.u8(size).bytes(bits)
  }
}

/** Parses TPMS_ATTEST bytes (Part 2 §10.12.12). Does not judge magic or type: verifyQuote does. */
export function parseAttest(bytes: Uint8Array): Attest {
  const r = new Reader(bytes, 'TPMS_ATTEST')
  const magic = r.u32('magic')
  const type = r.u16('type')
  const qualifiedSigner = r.tpm2b('qualifiedSigner', MAX_NAME)
  const extraData = r.tpm2b('extraData', MAX_DATA)
  const clock = r.u64('clockInfo.clock')
  const resetCount = r.u32('clockInfo.resetCount')
  const restartCount = r.u32('clockInfo.restartCount')
  const sat = r.pos
  const safeByte = r.u8('clockInfo.safe')
  if (safeByte > 1) r.fail(`clockInfo.safe is ${safeByte}, not YES/NO`, sat)
  const firmwareVersion = r.u64('firmwareVersion')
  const base = {
    magic,
    type,
    qualifiedSigner,
    extraData,
    clockInfo: { clock, resetCount, restartCount, safe: safeByte === 1 },
    firmwareVersion
  }
  if (type === TPM_ST_ATTEST_QUOTE) {
    const pcrSelect = readPcrSelection(r)
    const pcrDigest = r.tpm2b('pcrDigest', MAX_DIGEST)
    r.end()
    return { ...base, quote: { pcrSelect, pcrDigest } }
  }
  return { ...base, attested: r.bytes(r.remaining, 'attested') }
}

export function marshalAttest(a: Attest): Uint8Array {
  const w = new Writer()
  w.u32(a.magic).u16(a.type).tpm2b(a.qualifiedSigner).tpm2b(a.extraData)
  w.u64(a.clockInfo.clock)
    .u32(a.clockInfo.resetCount)
    .u32(a.clockInfo.restartCount)
    .u8(a.clockInfo.safe ? 1 : 0)
  w.u64(a.firmwareVersion)
  if (a.quote !== undefined) {
    writePcrSelection(w, a.quote.pcrSelect)
    w.tpm2b(a.quote.pcrDigest)
  } else if (a.attested !== undefined) {
    w.bytes(a.attested)
  }
  return w.finish()
}

function readSymDef(r: Reader, field: string): SymDef | undefined {
  const algorithm = r.u16(`${field}.algorithm`)
  if (algorithm === TPM_ALG.NULL) return undefined
  return { algorithm, keyBits: r.u16(`${field}.keyBits`), mode: r.u16(`${field}.mode`) }
}

function writeSymDef(w: Writer, s: SymDef | undefined): void {
  if (s === undefined) {
    w.u16(TPM_ALG.NULL)
    return
  }
  w.u16(s.algorithm).u16(s.keyBits).u16(s.mode)
}

const HASH_SCHEMES = new Set<number>([
  TPM_ALG.RSASSA,
  TPM_ALG.RSAPSS,
  TPM_ALG.OAEP,
  TPM_ALG.ECDSA,
  TPM_ALG.SM2,
  TPM_ALG.ECSCHNORR,
  TPM_ALG.ECDH,
  TPM_ALG.ECMQV,
  TPM_ALG.HMAC,
  TPM_ALG.MGF1,
  TPM_ALG.KDF1_SP800_56A,
  TPM_ALG.KDF2,
  TPM_ALG.KDF1_SP800_108
])

/** TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME / TPMT_KEYEDHASH_SCHEME (Part 2 §11.2). */
function readScheme(r: Reader, field: string, allowed: readonly number[]): Scheme {
  const at = r.pos
  const scheme = r.u16(`${field}.scheme`)
  if (scheme === TPM_ALG.NULL) return { scheme }
  if (!allowed.includes(scheme))
    r.fail(`${field}: scheme 0x${scheme.toString(16).padStart(4, '0')} not allowed here`, at)
  if (scheme === TPM_ALG.RSAES) return { scheme } // TPMS_ENC_SCHEME_RSAES is empty
  const hashAlg = r.u16(`${field}.hashAlg`)
  if (scheme === TPM_ALG.ECDAA) return { scheme, hashAlg, count: r.u16(`${field}.count`) }
  if (scheme === TPM_ALG.XOR) return { scheme, hashAlg, kdf: r.u16(`${field}.kdf`) }
  if (!HASH_SCHEMES.has(scheme)) r.fail(`${field}: unknown scheme`, at)
  return { scheme, hashAlg }
}

function writeScheme(w: Writer, s: Scheme): void {
  w.u16(s.scheme)
  if (s.scheme === TPM_ALG.NULL || s.scheme === TPM_ALG.RSAES) return
  w.u16(s.hashAlg ?? TPM_ALG.NULL)
  if (s.scheme === TPM_ALG.ECDAA) w.u16(s.count ?? 0)
  if (s.scheme === TPM_ALG.XOR) w.u16(s.kdf ?? TPM_ALG.NULL)
}

const RSA_SCHEMES = [TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.RSAES, TPM_ALG.OAEP]
const ECC_SCHEMES = [TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR, TPM_ALG.ECDH, TPM_ALG.ECMQV]
const KDF_SCHEMES = [TPM_ALG.MGF1, TPM_ALG.KDF1_SP800_56A, TPM_ALG.KDF2, TPM_ALG.KDF1_SP800_108]
const KEYEDHASH_SCHEMES = [TPM_ALG.HMAC, TPM_ALG.XOR]

/** Reads one TPMT_PUBLIC from a reader (it may be followed by other fields). */
export function readPublic(r: Reader): TpmPublic {
  const at = r.pos
  const typeId = r.u16('type')
  const nameAlg = r.u16('nameAlg')
  const objectAttributes = r.u32('objectAttributes')
  const authPolicy = r.tpm2b('authPolicy', MAX_DIGEST)
  const base = { nameAlg, objectAttributes, authPolicy }
  switch (typeId) {
    case TPM_ALG.RSA: {
      const symmetric = readSymDef(r, 'parameters.symmetric')
      const scheme = readScheme(r, 'parameters.scheme', RSA_SCHEMES)
      const kat = r.pos
      const keyBits = r.u16('parameters.keyBits')
      if (keyBits === 0 || keyBits > MAX_RSA_BYTES * 8 || keyBits % 8 !== 0)
        r.fail(`parameters.keyBits ${keyBits} is not a valid RSA key size`, kat)
      const exponent = r.u32('parameters.exponent')
      const modulus = r.tpm2b('unique.rsa', MAX_RSA_BYTES)
      return {
        type: 'rsa',
        ...base,
        ...(symmetric !== undefined ? { symmetric } : {}),
        scheme,
        keyBits,
        exponent,
        modulus
      }
    }
    case TPM_ALG.ECC: {
      const symmetric = readSymDef(r, 'parameters.symmetric')
      const scheme = readScheme(r, 'parameters.scheme', ECC_SCHEMES)
      const curve = r.u16('parameters.curveID')
      const kdf = readScheme(r, 'parameters.kdf', KDF_SCHEMES)
      const x = r.tpm2b('unique.ecc.x', MAX_ECC_BYTES)
      const y = r.tpm2b('unique.ecc.y', MAX_ECC_BYTES)
      return { type: 'ecc', ...base, ...(symmetric !== undefined ? { symmetric } : {}), scheme, curve, kdf, x, y }
    }
    case TPM_ALG.KEYEDHASH: {
      const scheme = readScheme(r, 'parameters.scheme', KEYEDHASH_SCHEMES)
      return { type: 'keyedhash', ...base, scheme, unique: r.tpm2b('unique.keyedHash', MAX_DIGEST) }
    }
    case TPM_ALG.SYMCIPHER: {
      const symmetric = readSymDef(r, 'parameters.sym')
      return {
        type: 'symcipher',
        ...base,
        ...(symmetric !== undefined ? { symmetric } : {}),
        unique: r.tpm2b('unique.sym', MAX_DIGEST)
      }
    }
    default:
      return r.fail(`unsupported object type 0x${typeId.toString(16).padStart(4, '0')}`, at)
  }
}

/** Parses TPMT_PUBLIC bytes (Part 2 §12.2.4), the whole input. */
export function parsePublic(bytes: Uint8Array): TpmPublic {
  const r = new Reader(bytes, 'TPMT_PUBLIC')
  const p = readPublic(r)
  r.end()
  return p
}

/** Parses a TPM2B_PUBLIC (size-prefixed TPMT_PUBLIC), as tpm2-tools writes `ek.pub`/`ak.pub`. */
export function parsePublic2b(bytes: Uint8Array): TpmPublic {
  const r = new Reader(bytes, 'TPM2B_PUBLIC')
  const inner = r.tpm2b('publicArea')
  r.end()
  return parsePublic(inner)
}

export function marshalPublic(p: TpmPublic): Uint8Array {
  const w = new Writer()
  const typeId =
    p.type === 'rsa'
      ? TPM_ALG.RSA
      : p.type === 'ecc'
        ? TPM_ALG.ECC
        : p.type === 'keyedhash'
          ? TPM_ALG.KEYEDHASH
          : TPM_ALG.SYMCIPHER
  w.u16(typeId).u16(p.nameAlg).u32(p.objectAttributes).tpm2b(p.authPolicy)
  switch (p.type) {
    case 'rsa':
      writeSymDef(w, p.symmetric)
      writeScheme(w, p.scheme)
      w.u16(p.keyBits).u32(p.exponent).tpm2b(p.modulus)
      break
    case 'ecc':
      writeSymDef(w, p.symmetric)
      writeScheme(w, p.scheme)
      w.u16(p.curve)
      writeScheme(w, p.kdf)
      w.tpm2b(p.x).tpm2b(p.y)
      break
    case 'keyedhash':
      writeScheme(w, p.scheme)
      w.tpm2b(p.unique)
      break
    case 'symcipher':
      writeSymDef(w, p.symmetric)
      w.tpm2b(p.unique)
      break
  }
  return w.finish()
}

/** Parses TPMT_SIGNATURE bytes (Part 2 §11.3.4). */
export function parseSignature(bytes: Uint8Array): TpmSignature {
  const r = new Reader(bytes, 'TPMT_SIGNATURE')
  const at = r.pos
  const alg = r.u16('sigAlg')
  let sig: TpmSignature
  if (alg === TPM_ALG.NULL) sig = { sigAlg: 'null' }
  else if (ECC_SIG[alg] !== undefined) {
    const hash = readHashAlg(r, 'hash')
    sig = {
      sigAlg: ECC_SIG[alg],
      hash,
      r: r.tpm2b('signatureR', MAX_ECC_BYTES),
      s: r.tpm2b('signatureS', MAX_ECC_BYTES)
    }
  } else if (alg === TPM_ALG.RSASSA || alg === TPM_ALG.RSAPSS) {
    const hash = readHashAlg(r, 'hash')
    sig = { sigAlg: alg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss', hash, sig: r.tpm2b('sig', MAX_RSA_BYTES) }
  } else if (alg === TPM_ALG.HMAC) {
    const hash = readHashAlg(r, 'hash')
    sig = { sigAlg: 'hmac', hash, digest: r.bytes(DIGEST_SIZE[hash], 'digest') }
  } else {
    return r.fail(`unsupported signature algorithm 0x${alg.toString(16).padStart(4, '0')}`, at)
  }
  r.end()
  return sig
}

export function marshalSignature(s: TpmSignature): Uint8Array {
  const w = new Writer()
  switch (s.sigAlg) {
    case 'null':
      w.u16(TPM_ALG.NULL)
      break
    case 'rsassa':
    case 'rsapss':
      w.u16(s.sigAlg === 'rsassa' ? TPM_ALG.RSASSA : TPM_ALG.RSAPSS)
        .u16(TPM_ALG_HASH[s.hash])
        .tpm2b(s.sig)
      break
    case 'hmac':
      w.u16(TPM_ALG.HMAC).u16(TPM_ALG_HASH[s.hash]).bytes(s.digest)
      break
    default:
      w.u16(ECC_SIG_ID[s.sigAlg]).u16(TPM_ALG_HASH[s.hash]).tpm2b(s.r).tpm2b(s.s)
  }
  return w.finish()
}

// Names and keys --------------------------------------------------------------------------------
/** The hash algorithm of a public area's nameAlg, or a DecodeError. */
export function nameHashAlg(p: TpmPublic): HashAlg {
  const h = hashAlgFromId(p.nameAlg)
  if (h === undefined)
    throw new DecodeError(`TPMT_PUBLIC: nameAlg 0x${p.nameAlg.toString(16).padStart(4, '0')} is not a supported hash`)
  return h
}

/** Object name (Part 1 §16): nameAlg (UINT16) ‖ H_nameAlg(TPMT_PUBLIC). `publicBytes` is the marshaled TPMT_PUBLIC. */
export function objectName(publicBytes: Uint8Array, parsed: TpmPublic = parsePublic(publicBytes)): Uint8Array {
  const h = nameHashAlg(parsed)
  const d = digest(h, publicBytes)
  const out = new Uint8Array(2 + d.length)
  out[0] = parsed.nameAlg >> 8
  out[1] = parsed.nameAlg & 0xff
  out.set(d, 2)
  return out
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url')
}

/** node:crypto public key of an RSA or ECC (NIST P-256/384/521) TPMT_PUBLIC. */
export function publicToKeyObject(p: TpmPublic): KeyObject {
  try {
    if (p.type === 'ecc') {
      const c = CURVES[p.curve]
      if (c === undefined)
        throw new InvalidInputError(
          `ECC curve 0x${p.curve.toString(16).padStart(4, '0')} is not supported (NIST P-256/384/521 are)`
        )
      return createPublicKey({
        key: {
          kty: 'EC',
          crv: c.jwk,
          x: b64url(leftPad(p.x, c.size, 'unique.ecc.x')),
          y: b64url(leftPad(p.y, c.size, 'unique.ecc.y'))
        },
        format: 'jwk'
      })
    }
    if (p.type === 'rsa') {
      if (p.modulus.length * 8 !== p.keyBits)
        throw new InvalidInputError(`RSA modulus of ${p.modulus.length} bytes does not match keyBits ${p.keyBits}`)
      const e = p.exponent === 0 ? 65537 : p.exponent
      const eb = Buffer.alloc(4)
      eb.writeUInt32BE(e)
      let i = 0
      while (i < 3 && eb[i] === 0) i++
      return createPublicKey({ key: { kty: 'RSA', n: b64url(p.modulus), e: b64url(eb.subarray(i)) }, format: 'jwk' })
    }
  } catch (err) {
    if (err instanceof InvalidInputError) throw err
    throw new InvalidInputError(
      `TPMT_PUBLIC is not a valid ${p.type.toUpperCase()} public key: ${(err as Error).message}`,
      { cause: err }
    )
  }
  throw new InvalidInputError(`TPMT_PUBLIC of type ${p.type} is not an asymmetric key`)
}
