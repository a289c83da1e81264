// MakeCredential on the verifier side (TPM 2.0 Part 1 §24 "Credential Protection", Part 3 §12.6
// TPM2_MakeCredential): wraps a secret so that only the TPM holding the EK can recover it, and
// only for the object whose name is bound in (the AK). ActivateCredential in the TPM returns the
// secret, which proves the AK lives in the same TPM as the certified EK.
//
//   seed            RSA EK: random, sent as RSA-OAEP(seed, label "IDENTITY\0", hash = EK nameAlg)
//                   ECC EK: KDFe(nameAlg, Z = ECDH(ephemeral, EK).x, "IDENTITY", eph.x, EK.x)
//                           (Part 1 §11.4.10.3), sent as the ephemeral point (TPMS_ECC_POINT)
//   symKey        = KDFa(nameAlg, seed, "STORAGE", name, ∅, EK symmetric keyBits)      (§24.4)
//   encIdentity   = AES-CFB(symKey, IV = 0, TPM2B_DIGEST(credential))
//   hmacKey       = KDFa(nameAlg, seed, "INTEGRITY", ∅, ∅, digest bits)                 (§24.5)
//   outerHMAC     = HMAC(nameAlg, hmacKey, encIdentity ‖ name)
//   credentialBlob (TPM2B_ID_OBJECT body) = TPM2B(outerHMAC) ‖ encIdentity
import { createCipheriv, createHmac, createHash, createECDH, publicEncrypt, randomBytes, constants } from 'node:crypto'
import { concat, leftPad } from '../encoding/bytes.ts'
import { InvalidInputError } from '../encoding/errors.ts'
import { DIGEST_SIZE, type HashAlg } from './algs.ts'
import { Writer } from './reader.ts'
import { TPM_ALG, curveInfo, nameHashAlg, parsePublic, publicToKeyObject, type TpmPublic } from './tpm2.ts'

const te = new TextEncoder()

function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n >>> 0)
  return b
}

/** Labels are used with their terminating NUL (Part 1 §11.4.10.4). */
function label(s: string): Uint8Array {
  return s.endsWith('\0') ? te.encode(s) : concat([te.encode(s), new Uint8Array([0])])
}

/** KDFa: SP 800-108 counter mode with HMAC (Part 1 §11.4.10.2). */
export function kdfa(
  hash: HashAlg,
  key: Uint8Array,
  lbl: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number
): Uint8Array {
  const bytes = (bits + 7) >> 3
  const out = new Uint8Array(bytes)
  const l = label(lbl)
  const bitsBe = u32be(bits)
  let off = 0
  for (let i = 1; off < bytes; i++) {
    const h = createHmac(hash, key).update(u32be(i)).update(l).update(contextU).update(contextV).update(bitsBe).digest()
    const n = Math.min(h.length, bytes - off)
    out.set(h.subarray(0, n), off)
    off += n
  }
  if (bits % 8 !== 0) out[0] &= (1 << (bits % 8)) - 1
  return out
}

/** KDFe: SP 800-56A concatenation KDF (Part 1 §11.4.10.3). */
export function kdfe(
  hash: HashAlg,
  z: Uint8Array,
  lbl: string,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number
): Uint8Array {
  const bytes = (bits + 7) >> 3
  const out = new Uint8Array(bytes)
  const l = label(lbl)
  let off = 0
  for (let i = 1; off < bytes; i++) {
    const h = createHash(hash).update(u32be(i)).update(z).update(l).update(partyU).update(partyV).digest()
    const n = Math.min(h.length, bytes - off)
    out.set(h.subarray(0, n), off)
    off += n
  }
  if (bits % 8 !== 0) out[0] &= (1 << (bits % 8)) - 1
  return out
}

export interface MakeCredentialInput {
  /** The EK's TPMT_PUBLIC (bytes or parsed): its nameAlg and symmetric definition shape the blob. */
  readonly ekPublic: Uint8Array | TpmPublic
  /** The name of the object the credential is bound to (the AK's nameAlg ‖ H(TPMT_PUBLIC)). */
  readonly objectName: Uint8Array
  /** The secret to wrap (at most the EK nameAlg's digest size, per TPM2B_DIGEST). */
  readonly credential: Uint8Array
  /** For tests only: a fixed seed (RSA) / ephemeral private key (ECC). */
  readonly random?: (n: number) => Uint8Array
}

export interface MadeCredential {
  /** TPM2B_ID_OBJECT body: TPM2B_DIGEST(integrityHMAC) ‖ encIdentity. */
  readonly credentialBlob: Uint8Array
  /** TPM2B_ENCRYPTED_SECRET body: the RSA-OAEP ciphertext, or a marshaled TPMS_ECC_POINT. */
  readonly encryptedSecret: Uint8Array
}

/** MakeCredential for an RSA or ECC (NIST P-256/P-384) EK. */
export function makeCredential(input: MakeCredentialInput): MadeCredential {
  const ek = input.ekPublic instanceof Uint8Array ? parsePublic(input.ekPublic) : input.ekPublic
  const rand = input.random ?? ((n: number) => new Uint8Array(randomBytes(n)))
  if (ek.type !== 'rsa' && ek.type !== 'ecc')
    throw new InvalidInputError(`MakeCredential: EK of type ${ek.type} is not an asymmetric key`)
  const attrs = ek.objectAttributes
  if ((attrs & 0x10000) === 0 || (attrs & 0x20000) === 0)
    throw new InvalidInputError('MakeCredential: the EK must be a restricted decryption key')
  const hash = nameHashAlg(ek)
  const sym = ek.symmetric
  if (sym === undefined || sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB)
    throw new InvalidInputError('MakeCredential: the EK must have an AES-CFB symmetric definition')
  if (sym.keyBits !== 128 && sym.keyBits !== 192 && sym.keyBits !== 256)
    throw new InvalidInputError(`MakeCredential: AES key size ${sym.keyBits} not supported`)
  const dsize = DIGEST_SIZE[hash]
  if (input.credential.length === 0 || input.credential.length > dsize)
    throw new InvalidInputError(`MakeCredential: credential must be 1..${dsize} bytes`)
  if (input.objectName.length < 2) throw new InvalidInputError('MakeCredential: object name too short')

  let seed: Uint8Array
  let encryptedSecret: Uint8Array
  if (ek.type === 'rsa') {
    seed = rand(dsize)
    const key = publicToKeyObject(ek)
    encryptedSecret = new Uint8Array(
      publicEncrypt(
        { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, oaepLabel: label('IDENTITY') },
        seed
      )
    )
  } else {
    const c = curveInfo(ek.curve)
    if (c === undefined)
      throw new InvalidInputError(`MakeCredential: EK curve 0x${ek.curve.toString(16)} not supported`)
    publicToKeyObject(ek) // validates the point is on the curve
    const ecdh = createECDH(c.node)
    if (input.random !== undefined) ecdh.setPrivateKey(input.random(c.size))
    else ecdh.generateKeys()
    const ekX = leftPad(ek.x, c.size, 'MakeCredential: EK x coordinate')
    const ekPoint = concat([new Uint8Array([4]), ekX, leftPad(ek.y, c.size, 'MakeCredential: EK y coordinate')])
    const z = new Uint8Array(ecdh.computeSecret(ekPoint)) // the shared point's x coordinate
    const eph = new Uint8Array(ecdh.getPublicKey())
    const ephX = eph.subarray(1, 1 + c.size)
    const ephY = eph.subarray(1 + c.size)
    seed = kdfe(hash, z, 'IDENTITY', ephX, ekX, dsize * 8)
    encryptedSecret = new Writer().tpm2b(ephX).tpm2b(ephY).finish()
  }
  const symKey = kdfa(hash, seed, 'STORAGE', input.objectName, new Uint8Array(0), sym.keyBits)
  const plain = new Writer().tpm2b(input.credential).finish()
  const cipher = createCipheriv(`aes-${sym.keyBits}-cfb`, symKey, Buffer.alloc(16))
  const encIdentity = new Uint8Array(Buffer.concat([cipher.update(plain), cipher.final()]))
  const hmacKey = kdfa(hash, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), dsize * 8)
  const outerHmac = new Uint8Array(createHmac(hash, hmacKey).update(encIdentity).update(input.objectName).digest())
  const credentialBlob = new Writer().tpm2b(outerHmac).bytes(encIdentity).finish()
  return { credentialBlob, encryptedSecret }
}
