// Minimal TPM 2.0 structure readers for the device tests (TPM 2.0 Part 2 §12.2 TPMT_PUBLIC,
// §11.3 TPMT_SIGNATURE, §10.12 TPMS_ATTEST). Deliberately independent of attestation/'s parsers,
// so these tests check the binding against a second reading of the spec.
import { createPublicKey, type KeyObject } from 'node:crypto'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { leftPad } from '../../encoding/bytes.ts'

const execFileP = promisify(execFile)

class Reader {
  o = 0
  readonly b: Buffer
  constructor(b: Uint8Array) {
    this.b = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  }
  u8(): number {
    const v = this.b.readUInt8(this.o)
    this.o += 1
    return v
  }
  u16(): number {
    const v = this.b.readUInt16BE(this.o)
    this.o += 2
    return v
  }
  u32(): number {
    const v = this.b.readUInt32BE(this.o)
    this.o += 4
    return v
  }
  u64(): bigint {
    const v = this.b.readBigUInt64BE(this.o)
    this.o += 8
    return v
  }
  tpm2b(): Buffer {
    const n = this.u16()
    const v = this.b.subarray(this.o, this.o + n)
    if (v.length !== n) throw new RangeError('short')
    this.o += n
    return v
  }
}

export interface ParsedPublic {
  type: number
  nameAlg: number
  attributes: number
  authPolicy: Buffer
  rsa?: { keyBits: number; exponent: number; modulus: Buffer }
  ecc?: { curve: number; x: Buffer; y: Buffer; scheme: number; schemeHash: number }
}

export function parsePublic(bytes: Uint8Array): ParsedPublic {
  const r = new Reader(bytes)
  const type = r.u16()
  const nameAlg = r.u16()
  const attributes = r.u32()
  const authPolicy = r.tpm2b()
  const sym = r.u16()
  if (sym !== 0x0010) {
    r.u16()
    r.u16()
  } // keyBits, mode
  const scheme = r.u16()
  let schemeHash = 0
  if (scheme !== 0x0010) schemeHash = r.u16()
  if (type === 0x0001) {
    const keyBits = r.u16()
    const exponent = r.u32()
    const modulus = r.tpm2b()
    if (r.o !== r.b.length) throw new RangeError('trailing bytes')
    return { type, nameAlg, attributes, authPolicy, rsa: { keyBits, exponent, modulus } }
  }
  if (type === 0x0023) {
    const curve = r.u16()
    const kdf = r.u16()
    if (kdf !== 0x0010) r.u16()
    const x = r.tpm2b()
    const y = r.tpm2b()
    if (r.o !== r.b.length) throw new RangeError('trailing bytes')
    return { type, nameAlg, attributes, authPolicy, ecc: { curve, x, y, scheme, schemeHash } }
  }
  throw new RangeError(`unsupported key type ${type}`)
}

const b64u = (b: Buffer): string => b.toString('base64url')

/** node:crypto key for an ECC TPMT_PUBLIC (P-256 or P-384). */
export function eccKey(pub: ParsedPublic): KeyObject {
  if (pub.ecc === undefined) throw new TypeError('not an ECC key')
  const crv = pub.ecc.curve === 0x0003 ? 'P-256' : pub.ecc.curve === 0x0004 ? 'P-384' : undefined
  if (crv === undefined) throw new TypeError(`curve ${pub.ecc.curve}`)
  // a TPM may send a coordinate without its leading zero bytes; a JWK needs the full width
  const size = crv === 'P-256' ? 32 : 48
  const full = (b: Uint8Array, what: string): Buffer => Buffer.from(leftPad(b, size, what))
  return createPublicKey({
    key: { kty: 'EC', crv, x: b64u(full(pub.ecc.x, 'x')), y: b64u(full(pub.ecc.y, 'y')) },
    format: 'jwk'
  })
}

/** TPMT_SIGNATURE (ECDSA) → r‖s, each left-padded to `size` bytes (ieee-p1363 for node:crypto). */
export function ecdsaSignature(sig: Uint8Array, size = 32): { alg: number; hash: number; p1363: Buffer } {
  const r = new Reader(sig)
  const alg = r.u16()
  const hash = r.u16()
  const R = r.tpm2b()
  const S = r.tpm2b()
  const pad = (x: Buffer): Buffer => Buffer.concat([Buffer.alloc(size - x.length), x])
  return { alg, hash, p1363: Buffer.concat([pad(R), pad(S)]) }
}

export interface ParsedQuote {
  magic: number
  type: number
  qualifiedSigner: Buffer
  extraData: Buffer
  clock: bigint
  resetCount: number
  restartCount: number
  safe: number
  firmwareVersion: bigint
  pcrSelect: Array<{ hash: number; bitmap: Buffer }>
  pcrDigest: Buffer
}

export function parseQuoteAttest(attest: Uint8Array): ParsedQuote {
  const r = new Reader(attest)
  const magic = r.u32()
  const type = r.u16()
  const qualifiedSigner = r.tpm2b()
  const extraData = r.tpm2b()
  const clock = r.u64()
  const resetCount = r.u32()
  const restartCount = r.u32()
  const safe = r.u8()
  const firmwareVersion = r.u64()
  const n = r.u32()
  const pcrSelect = []
  for (let i = 0; i < n; i++) {
    const hash = r.u16()
    const size = r.u8()
    const bitmap = r.b.subarray(r.o, r.o + size)
    r.o += size
    pcrSelect.push({ hash, bitmap })
  }
  const pcrDigest = r.tpm2b()
  return {
    magic,
    type,
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe,
    firmwareVersion,
    pcrSelect,
    pcrDigest
  }
}

/**
 * MakeCredential (the verifier's side) with tpm2-tools, offline (-T none): the reference
 * implementation our ActivateCredential must interoperate with.
 */
export async function makeCredential(
  ekPublic: Uint8Array,
  akName: Uint8Array,
  secret: Uint8Array
): Promise<{ credentialBlob: Uint8Array; encryptedSecret: Uint8Array }> {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-mc-'))
  try {
    const pub = Buffer.alloc(2 + ekPublic.length)
    pub.writeUInt16BE(ekPublic.length)
    Buffer.from(ekPublic).copy(pub, 2)
    writeFileSync(join(dir, 'ek.pub'), pub)
    writeFileSync(join(dir, 'secret'), secret)
    await execFileP('tpm2_makecredential', [
      '-T',
      'none',
      '-u',
      join(dir, 'ek.pub'),
      '-s',
      join(dir, 'secret'),
      '-n',
      Buffer.from(akName).toString('hex'),
      '-o',
      join(dir, 'cred')
    ])
    // tpm2-tools credential file: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET
    const r = new Reader(readFileSync(join(dir, 'cred')))
    if (r.u32() !== 0xbadcc0de || r.u32() !== 1) throw new Error('unexpected tpm2_makecredential output')
    const credentialBlob = new Uint8Array(r.tpm2b())
    const encryptedSecret = new Uint8Array(r.tpm2b())
    return { credentialBlob, encryptedSecret }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
