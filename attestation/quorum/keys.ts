// ed25519 keys for verdicts. A node's signing key is its libp2p key and its node id is the peer
// id string; ed25519 peer ids embed the public key (identity multihash), so a verdict's signer
// can be checked against its node id without any lookup. Signing and verification use
// node:crypto (≈ 8k verifies/s per core, far faster than pure-JS curves).
import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { peerIdFromString, peerIdFromPublicKey } from '@libp2p/peer-id'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { concat, fromHex, toHex } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

// RFC 8410 DER prefixes: PKCS#8 for a 32-byte seed, SPKI for a 32-byte public key.
const PKCS8_PREFIX = fromHex('302e020100300506032b657004220420')
const SPKI_PREFIX = fromHex('302a300506032b6570032100')

export class BadNodeIdError extends InvalidInputError {
  override readonly code: string = 'ERR_BAD_NODE_ID'
}

/** Signs bytes as one node. `sign` returns a 64-byte ed25519 signature. */
export interface VerdictSigner {
  readonly nodeId: string
  readonly publicKey: Uint8Array
  sign (data: Uint8Array): Uint8Array
}

/**
 * A signer from an ed25519 private key: either a libp2p `PrivateKey` (its `raw` is seed ‖ public,
 * 64 bytes) or a bare 32-byte seed.
 */
export function ed25519Signer (key: { readonly type: string, readonly raw: Uint8Array } | Uint8Array): VerdictSigner {
  let seed: Uint8Array
  if (key instanceof Uint8Array) seed = key
  else {
    if (key.type !== 'Ed25519') throw new InvalidInputError(`node keys must be Ed25519, got ${key.type}`)
    seed = key.raw.subarray(0, 32)
  }
  if (seed.length !== 32) throw new InvalidInputError('an ed25519 seed is 32 bytes')
  const priv = createPrivateKey({ key: Buffer.from(concat([PKCS8_PREFIX, seed])), format: 'der', type: 'pkcs8' })
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' })
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32))
  const nodeId = nodeIdFromPublicKey(publicKey)
  return {
    nodeId,
    publicKey,
    sign: (data: Uint8Array): Uint8Array => new Uint8Array(cryptoSign(null, data, priv))
  }
}

/** The node id (peer id string) of a raw 32-byte ed25519 public key. */
function nodeIdFromPublicKey (publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new InvalidInputError('an ed25519 public key is 32 bytes')
  const pk = publicKeyFromRaw(publicKey)
  if (pk.type !== 'Ed25519') throw new InvalidInputError('not an ed25519 public key')
  return peerIdFromPublicKey(pk).toString()
}

/** The raw ed25519 public key embedded in a node id; rejects ids of other key types. */
export function publicKeyFromNodeId (nodeId: string): Uint8Array {
  let raw: Uint8Array | undefined
  try {
    const id = peerIdFromString(nodeId)
    if (id.type === 'Ed25519') raw = id.publicKey.raw
  } catch (err) {
    throw new BadNodeIdError(`${JSON.stringify(nodeId.slice(0, 80))} is not a peer id`, { cause: err })
  }
  if (raw === undefined) throw new BadNodeIdError(`node id ${nodeId} is not an ed25519 peer id`)
  return raw
}

const keyCache = new Map<string, KeyObject>()

function publicKeyObject (publicKey: Uint8Array): KeyObject {
  const hex = toHex(publicKey)
  let k = keyCache.get(hex)
  if (k === undefined) {
    k = createPublicKey({ key: Buffer.from(concat([SPKI_PREFIX, publicKey])), format: 'der', type: 'spki' })
    if (keyCache.size >= 4096) keyCache.clear() // bounded: committees are small, candidates are few thousand
    keyCache.set(hex, k)
  }
  return k
}

/** ed25519 verification; false (never a throw) for malformed keys or signatures. */
export function verifyEd25519 (publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false
  try {
    return cryptoVerify(null, data, publicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}
