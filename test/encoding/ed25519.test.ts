// One ed25519 peer-id parser and verifier for chain accounts and verdict signers (issue 9 item 5):
// both paths refuse the same ids, with the same error, and verify the same way.
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { base36 } from 'multiformats/bases/base36'
import {
  BadPeerIdError,
  ed25519PrivateKey,
  peerIdToPublicKey,
  publicKeyToPeerId,
  verifyEd25519
} from '../../encoding/ed25519.ts'
import * as chainKeys from '../../chain/keys.ts'
import * as quorum from '../../attestation/quorum/index.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

const key = await generateKeyPair('Ed25519')
const id = peerIdFromPrivateKey(key)
const canonical = id.toString()

t.test('chain and quorum share the parser and the verifier', async t => {
  t.equal(chainKeys.peerIdToPublicKey, peerIdToPublicKey, 'chain/keys re-exports the shared parser')
  t.equal(quorum.publicKeyFromNodeId, peerIdToPublicKey, 'attestation/quorum re-exports the shared parser')
  t.equal(chainKeys.verifyEd25519, verifyEd25519)
  t.equal(quorum.verifyEd25519, verifyEd25519)
  t.same(peerIdToPublicKey(canonical), key.publicKey.raw, 'the canonical id gives its key')
  t.equal(publicKeyToPeerId(key.publicKey.raw), canonical, 'and the key gives the canonical id')
  t.equal(quorum.ed25519Signer(key).nodeId, canonical, 'a verdict signer is named by the same id')
})

t.test('a non-canonical spelling of a valid peer id is refused on both paths', async t => {
  // The same peer as a CIDv1 (base32 and base36): @libp2p/peer-id parses both to this peer.
  for (const alt of [id.toCID().toString(), id.toCID().toString(base36)]) {
    for (const [path, parse] of [
      ['chain', chainKeys.peerIdToPublicKey],
      ['quorum', quorum.publicKeyFromNodeId]
    ] as const) {
      const err = t.throws(() => parse(alt), `${path} refuses ${alt.slice(0, 12)}…`) as unknown
      t.ok(
        err instanceof BadPeerIdError && err instanceof InvalidInputError,
        `${path}: BadPeerIdError, an InvalidInputError`
      )
      t.match((err as Error).message, /not in canonical form/)
      t.equal((err as BadPeerIdError).code, 'ERR_BAD_PEER_ID')
      t.equal((err as BadPeerIdError).disposition, 'reject')
    }
  }
  t.ok(quorum.BadNodeIdError === BadPeerIdError, 'the quorum name for the error is the same class')
})

t.test('ids that are not Ed25519 peer ids, and malformed strings', async t => {
  t.throws(() => peerIdToPublicKey('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'), /not an Ed25519 peer id/)
  t.throws(() => peerIdToPublicKey('not-a-peer-id'), /not a libp2p peer id/)
  t.throws(() => publicKeyToPeerId(new Uint8Array(31)), InvalidInputError)
  t.throws(() => ed25519PrivateKey(new Uint8Array(31)), InvalidInputError)
})

t.test('verifyEd25519 answers false, never throws, for anything malformed', async t => {
  const seed = key.raw.subarray(0, 32)
  const signer = quorum.ed25519Signer(seed)
  const msg = new TextEncoder().encode('verdict')
  const sig = signer.sign(msg)
  t.ok(verifyEd25519(signer.publicKey, msg, sig))
  t.ok(verifyEd25519(signer.publicKey, msg, sig), 'again, from the key cache')
  // the same key bytes at an offset inside a larger buffer hit the same cache entry correctly
  const padded = new Uint8Array(40)
  padded.set(signer.publicKey, 8)
  t.ok(verifyEd25519(padded.subarray(8), msg, sig), 'a key that is a view into a larger buffer')
  t.notOk(verifyEd25519(signer.publicKey, new TextEncoder().encode('verdicT'), sig), 'another message')
  t.notOk(verifyEd25519(signer.publicKey, msg, sig.subarray(1)), 'a short signature')
  t.notOk(verifyEd25519(new Uint8Array(33), msg, sig), 'a 33-byte key')
  const other = quorum.ed25519Signer(new Uint8Array(32).fill(7))
  t.notOk(verifyEd25519(other.publicKey, msg, sig), 'another key')
})
