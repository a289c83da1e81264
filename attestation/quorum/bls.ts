// BLS12-381 verifier keys: what committee members sign verdicts with, so that the ≥ threshold
// verdicts of a round aggregate into one 96-byte signature (QC v3, verdict.ts).
//
// Scheme: minimal-pubkey-size BLS (public keys in G1, 48 bytes compressed; signatures in G2,
// 96 bytes), the proof-of-possession ciphersuite BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_ of
// draft-irtf-cfrg-bls-signature-05 §4.2.3, via @chainsafe/blst (native; measured here: aggregate
// verify of 33 signers ≈ 1.8 ms against 114 ms for @noble/curves — bench/quorum.ts `bls`).
//
// Rogue-key defence: aggregating public keys of one message is only sound when every key's owner
// proved possession of its secret. A node registers its BLS key with a proof of possession bound
// to its node id (the chain checks it at node.register; verifyCertificate trusts that every
// candidate key passed that check). @chainsafe/blst hashes every message with the ciphersuite's
// one DST and does not take another, so the PoP is separated from verdicts by a distinct domain
// tag at the front of the signed message instead of a distinct DST:
//   verdict:    "quorate/verdict/v3\0" ‖ canonical verdict message          (verdict.ts)
//   possession: "quorate/bls-pop/v1\0" ‖ u8 len ‖ node id ‖ 48-byte public key
// The two message spaces are disjoint (different fixed prefixes), so a verdict signature can
// never pass as a proof of possession or the reverse, and the quorate prefixes keep signatures of
// other protocols using the same ciphersuite (Ethereum) from passing as either.
import { randomBytes } from 'node:crypto'
import {
  PublicKey,
  SecretKey,
  Signature,
  aggregateSerializedSignatures,
  aggregateSignatures,
  fastAggregateVerify,
  verify
} from '@chainsafe/blst'
import { concat, toHex, utf8 } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

export const BLS_SECRET_KEY_BYTES = 32
export const BLS_PUBLIC_KEY_BYTES = 48
export const BLS_SIGNATURE_BYTES = 96

export const BLS_POP_DOMAIN = utf8.encode('quorate/bls-pop/v1\0')

export class InvalidBlsKeyError extends InvalidInputError {
  override readonly code: string = 'ERR_BAD_BLS_KEY'
}
export class BadPossessionProofError extends InvalidInputError {
  override readonly code: string = 'ERR_BAD_POSSESSION_PROOF'
}

/** One verifier's BLS key. `sign` returns a 96-byte signature over exactly `message`. */
export interface BlsSigner {
  /** 48-byte compressed G1 point. */
  readonly publicKey: Uint8Array
  sign(message: Uint8Array): Uint8Array
  /** The 32-byte secret, for the agent to store next to node.key (never log it). */
  exportSecret(): Uint8Array
}

function signerOf(sk: SecretKey): BlsSigner {
  const publicKey = sk.toPublicKey().toBytes(true)
  return {
    publicKey,
    sign: message => sk.sign(message).toBytes(true),
    exportSecret: () => sk.toBytes()
  }
}

/**
 * A key derived from input keying material (≥ 32 bytes) with the KeyGen of
 * draft-irtf-cfrg-bls-signature-05 §2.3: the same seed gives the same key (tests, simulations).
 */
export function blsKeyFromSeed(ikm: Uint8Array): BlsSigner {
  if (!(ikm instanceof Uint8Array) || ikm.length < 32)
    throw new InvalidInputError('a BLS key seed is at least 32 bytes')
  return signerOf(SecretKey.fromKeygen(ikm))
}

/** A fresh random key. */
export function generateBlsKey(): BlsSigner {
  return blsKeyFromSeed(randomBytes(32))
}

/** A key from its stored 32-byte secret (as `exportSecret` returned it). */
export function blsKeyFromSecret(secret: Uint8Array): BlsSigner {
  if (!(secret instanceof Uint8Array) || secret.length !== BLS_SECRET_KEY_BYTES)
    throw new InvalidBlsKeyError(`a BLS secret key is ${BLS_SECRET_KEY_BYTES} bytes`)
  let sk: SecretKey
  try {
    sk = SecretKey.fromBytes(secret)
  } catch (err) {
    throw new InvalidBlsKeyError('not a BLS12-381 secret key (zero or not below the group order)', { cause: err })
  }
  return signerOf(sk)
}

// Validated public keys by hex: decompression and the subgroup check cost ≈ 0.1 ms a key, and a
// chain checks the same committee members' keys over and over. Bounded like keys.ts's cache.
const keyCache = new Map<string, PublicKey>()
const KEY_CACHE_MAX = 16_384

/**
 * The blst key for 48 compressed bytes: on the curve, in the G1 subgroup, not the identity
 * (KeyValidate, §2.5). Throws InvalidBlsKeyError otherwise.
 */
function publicKeyOf(bytes: Uint8Array): PublicKey {
  if (!(bytes instanceof Uint8Array) || bytes.length !== BLS_PUBLIC_KEY_BYTES)
    throw new InvalidBlsKeyError(`a BLS public key is ${BLS_PUBLIC_KEY_BYTES} bytes (compressed G1)`)
  const hex = toHex(bytes)
  let pk = keyCache.get(hex)
  if (pk === undefined) {
    try {
      pk = PublicKey.fromBytes(bytes, true)
    } catch (err) {
      throw new InvalidBlsKeyError('not a valid BLS12-381 G1 public key', { cause: err })
    }
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear()
    keyCache.set(hex, pk)
  }
  return pk
}

/** Throws InvalidBlsKeyError unless `bytes` is a valid compressed BLS public key. */
export function checkBlsPublicKey(bytes: Uint8Array): void {
  publicKeyOf(bytes)
}

/** A signature decoded with its subgroup check (and refusing the identity point), or undefined. */
function signatureOf(bytes: Uint8Array): Signature | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.length !== BLS_SIGNATURE_BYTES) return undefined
  try {
    return Signature.fromBytes(bytes, true, true)
  } catch {
    return undefined
  }
}

/** CoreVerify of one signature; false (never a throw) for malformed keys or signatures. */
export function blsVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const sig = signatureOf(signature)
  if (sig === undefined) return false
  try {
    return verify(message, publicKeyOf(publicKey), sig)
  } catch {
    return false
  }
}

/**
 * FastAggregateVerify (§3.3.4): one message, many signers. Only sound for keys whose possession
 * was proven (the chain's node.register check). False for malformed input or an empty key list.
 */
export function blsFastAggregateVerify(
  publicKeys: readonly Uint8Array[],
  message: Uint8Array,
  signature: Uint8Array
): boolean {
  if (publicKeys.length === 0) return false
  const sig = signatureOf(signature)
  if (sig === undefined) return false
  try {
    return fastAggregateVerify(message, publicKeys.map(publicKeyOf), sig)
  } catch {
    return false
  }
}

/**
 * Aggregates signatures; throws InvalidInputError on a malformed one. Each is subgroup-checked
 * unless `opts.checked` says they were already verified, or the aggregate is about to be verified
 * (whose decoding checks the sum's subgroup): half the cost at 33 signatures.
 */
export function blsAggregate(signatures: readonly Uint8Array[], opts: { checked?: boolean } = {}): Uint8Array {
  if (signatures.length === 0) throw new InvalidInputError('nothing to aggregate')
  if (opts.checked === true) {
    if (!signatures.every(s => s instanceof Uint8Array && s.length === BLS_SIGNATURE_BYTES))
      throw new InvalidInputError(`a BLS signature is ${BLS_SIGNATURE_BYTES} bytes`)
    try {
      return aggregateSerializedSignatures([...signatures], false).toBytes(true)
    } catch (err) {
      throw new InvalidInputError('a signature is not a G2 point', { cause: err })
    }
  }
  const sigs = signatures.map((s, i) => {
    const sig = signatureOf(s)
    if (sig === undefined) throw new InvalidInputError(`signature ${i} is not a valid BLS12-381 G2 signature`)
    return sig
  })
  return aggregateSignatures(sigs).toBytes(true)
}

/** What a proof of possession signs: the domain tag, the node id (length-prefixed) and the key. */
export function possessionMessage(nodeId: string, publicKey: Uint8Array): Uint8Array {
  const id = utf8.encode(nodeId)
  if (id.length === 0 || id.length > 255) throw new InvalidInputError('a node id is 1..255 bytes')
  if (publicKey.length !== BLS_PUBLIC_KEY_BYTES)
    throw new InvalidBlsKeyError(`a BLS public key is ${BLS_PUBLIC_KEY_BYTES} bytes`)
  return concat([BLS_POP_DOMAIN, new Uint8Array([id.length]), id, publicKey])
}

/** The proof of possession a node registers with its BLS key: 96 bytes. */
export function proveKeyPossession(signer: BlsSigner, nodeId: string): Uint8Array {
  return signer.sign(possessionMessage(nodeId, signer.publicKey))
}

/**
 * Checks a registered BLS key: valid point, and a proof of possession made by its secret for this
 * node id (so nobody can register a key derived from others' keys, nor replay another node's key
 * and proof under its own id). Throws InvalidBlsKeyError or BadPossessionProofError.
 */
export function verifyKeyPossession(input: { nodeId: string; blsPublicKey: Uint8Array; proof: Uint8Array }): void {
  checkBlsPublicKey(input.blsPublicKey)
  if (!blsVerify(input.blsPublicKey, possessionMessage(input.nodeId, input.blsPublicKey), input.proof)) {
    throw new BadPossessionProofError(`the BLS proof of possession does not verify for ${input.nodeId}`)
  }
}
