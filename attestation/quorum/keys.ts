// ed25519 node identities. A node's identity key is its libp2p key and its node id is the peer
// id string; ed25519 peer ids embed the public key (identity multihash), so a message's signer
// can be checked against its node id without any lookup. Signing and verification use
// node:crypto (≈ 8k verifies/s per core, far faster than pure-JS curves).
import { createPublicKey, sign as cryptoSign } from 'node:crypto'
import { InvalidInputError } from '../../encoding/errors.ts'
import { ed25519PrivateKey, publicKeyToPeerId } from '../../encoding/ed25519.ts'

// One peer-id parser and one verifier for verdicts and chain accounts (encoding/ed25519.ts): a node
// id is accepted here exactly when the chain accepts it (canonical Ed25519 peer ids only).
export {
  BadPeerIdError as BadNodeIdError,
  peerIdToPublicKey as publicKeyFromNodeId,
  verifyEd25519
} from '../../encoding/ed25519.ts'

/** Signs bytes as one node. `sign` returns a 64-byte ed25519 signature. */
export interface VerdictSigner {
  readonly nodeId: string
  readonly publicKey: Uint8Array
  sign(data: Uint8Array): Uint8Array
}

/**
 * A signer from an ed25519 private key: either a libp2p `PrivateKey` (its `raw` is seed ‖ public,
 * 64 bytes) or a bare 32-byte seed.
 */
export function ed25519Signer(key: { readonly type: string; readonly raw: Uint8Array } | Uint8Array): VerdictSigner {
  let seed: Uint8Array
  if (key instanceof Uint8Array) seed = key
  else {
    if (key.type !== 'Ed25519') throw new InvalidInputError(`node keys must be Ed25519, got ${key.type}`)
    seed = key.raw.subarray(0, 32)
  }
  const priv = ed25519PrivateKey(seed)
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' })
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32))
  const nodeId = publicKeyToPeerId(publicKey)
  return {
    nodeId,
    publicKey,
    sign: (data: Uint8Array): Uint8Array => new Uint8Array(cryptoSign(null, data, priv))
  }
}
