// ed25519 keys and libp2p peer ids, for chain accounts (chain/keys.ts) and verdict signers
// (attestation/quorum/keys.ts) alike: a node's peer id embeds its ed25519 public key (identity
// multihash), so one parser decides for both which ids are acceptable, and one cache holds the
// imported public keys. Signing and verification use node:crypto (≈ 7–8k verifies/s per core).
import { createPrivateKey, createPublicKey, verify, type KeyObject } from 'node:crypto'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { InvalidInputError } from './errors.ts'

/** A string that is not a canonical Ed25519 libp2p peer id. */
export class BadPeerIdError extends InvalidInputError {
  override readonly code: string = 'ERR_BAD_PEER_ID'
}

// RFC 8410 DER prefixes: PKCS#8 for a 32-byte seed, SPKI for a 32-byte public key.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')

/** node:crypto's private key for a 32-byte ed25519 seed. */
export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  if (seed.byteLength !== 32) throw new InvalidInputError('an ed25519 seed is 32 bytes')
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' })
}

/** The peer id string ("12D3Koo…") of a raw 32-byte ed25519 public key. */
export function publicKeyToPeerId(publicKey: Uint8Array): string {
  if (publicKey.byteLength !== 32) throw new InvalidInputError('an ed25519 public key is 32 bytes')
  return peerIdFromPublicKey(publicKeyFromRaw(publicKey)).toString()
}

const peerKeyCache = new Map<string, Uint8Array>()
/**
 * The raw ed25519 public key inside a peer id. Only the canonical form is accepted (base58btc, as
 * `PeerId#toString` writes it): the same key written another way (a CID form, say) would be a
 * second name for one node, in chain state keys and in a committee alike.
 */
export function peerIdToPublicKey(peerId: string): Uint8Array {
  const hit = peerKeyCache.get(peerId)
  if (hit !== undefined) return hit
  let id: ReturnType<typeof peerIdFromString>
  try {
    id = peerIdFromString(peerId)
  } catch (err) {
    throw new BadPeerIdError(`${JSON.stringify(peerId.slice(0, 80))} is not a libp2p peer id`, { cause: err })
  }
  if (id.type !== 'Ed25519' || id.publicKey === undefined)
    throw new BadPeerIdError(`peer id ${peerId} is not an Ed25519 peer id`)
  if (id.toString() !== peerId)
    throw new BadPeerIdError(`peer id ${peerId} is not in canonical form (expected ${id.toString()})`)
  const raw = new Uint8Array(id.publicKey.raw)
  if (peerKeyCache.size >= 10000) peerKeyCache.clear()
  peerKeyCache.set(peerId, raw)
  return raw
}

/** Imported public keys by their 32 bytes as a latin1 string (importing costs as much as verifying). */
const verifyKeyCache = new Map<string, KeyObject>()

/** ed25519 verification; false (never a throw) for malformed keys or signatures. */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.byteLength !== 32 || signature.byteLength !== 64) return false
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, 32).toString('latin1')
  let k = verifyKeyCache.get(id)
  if (k === undefined) {
    try {
      k = createPublicKey({ key: Buffer.concat([SPKI_ED25519, publicKey]), format: 'der', type: 'spki' })
    } catch {
      return false
    }
    if (verifyKeyCache.size >= 10000) verifyKeyCache.clear()
    verifyKeyCache.set(id, k)
  }
  try {
    return verify(null, message, k, signature)
  } catch {
    return false
  }
}
