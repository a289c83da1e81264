import t from 'tap'
// @noble/curves (pure JS, already a libp2p dependency) builds the rogue key: point arithmetic the
// product never needs. It is an independent implementation, so it also cross-checks blst.
import { bls12_381 } from '@noble/curves/bls12-381.js'
import {
  blsKeyFromSeed,
  blsKeyFromSecret,
  generateBlsKey,
  blsVerify,
  blsAggregate,
  blsFastAggregateVerify,
  checkBlsPublicKey,
  proveKeyPossession,
  verifyKeyPossession,
  possessionMessage,
  InvalidBlsKeyError,
  BadPossessionProofError,
  BLS_PUBLIC_KEY_BYTES,
  BLS_SIGNATURE_BYTES
} from '../../attestation/quorum/index.ts'
import { sha256, utf8, concat } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'

const seedOf = (s: string): Uint8Array => sha256(utf8.encode(s))
const msg = utf8.encode('a message')
// The ciphersuite @chainsafe/blst hashes with (draft-irtf-cfrg-bls-signature-05 §4.2.3).
const POP_SUITE_DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_'

t.test('keys: deterministic from a seed, round trip through the secret, fresh ones differ', async t => {
  const a = blsKeyFromSeed(seedOf('a'))
  t.equal(a.publicKey.length, BLS_PUBLIC_KEY_BYTES)
  t.same(blsKeyFromSeed(seedOf('a')).publicKey, a.publicKey)
  t.notSame(blsKeyFromSeed(seedOf('b')).publicKey, a.publicKey)
  const back = blsKeyFromSecret(a.exportSecret())
  t.same(back.publicKey, a.publicKey)
  t.notSame(generateBlsKey().publicKey, generateBlsKey().publicKey)
  t.throws(() => blsKeyFromSeed(new Uint8Array(31)), InvalidInputError, 'short seed')
  t.throws(() => blsKeyFromSecret(new Uint8Array(32)), InvalidBlsKeyError, 'zero secret')
  t.throws(() => blsKeyFromSecret(new Uint8Array(32).fill(0xff)), InvalidBlsKeyError, 'secret above the group order')
  t.throws(() => blsKeyFromSecret(new Uint8Array(31)), InvalidBlsKeyError)
})

t.test('sign and verify; malformed input is false, never a throw', async t => {
  const a = blsKeyFromSeed(seedOf('a'))
  const sig = a.sign(msg)
  t.equal(sig.length, BLS_SIGNATURE_BYTES)
  t.ok(blsVerify(a.publicKey, msg, sig))
  t.notOk(blsVerify(a.publicKey, utf8.encode('another'), sig))
  t.notOk(blsVerify(blsKeyFromSeed(seedOf('b')).publicKey, msg, sig))
  const flipped = new Uint8Array(sig)
  flipped[50] ^= 1
  t.notOk(blsVerify(a.publicKey, msg, flipped))
  t.notOk(blsVerify(a.publicKey, msg, sig.subarray(0, 95)))
  t.notOk(blsVerify(a.publicKey.subarray(0, 47), msg, sig))
  t.notOk(blsVerify(new Uint8Array(48), msg, sig))
  // the identity signature (compressed infinity) is refused
  const inf = new Uint8Array(96)
  inf[0] = 0xc0
  t.notOk(blsVerify(a.publicKey, msg, inf))
  // independent implementation agrees (same ciphersuite, same bytes)
  const L = bls12_381.longSignatures
  t.ok(L.verify(sig, L.hash(msg, POP_SUITE_DST), a.publicKey), '@noble/curves verifies a blst signature')
})

t.test('public key validation', async t => {
  checkBlsPublicKey(blsKeyFromSeed(seedOf('a')).publicKey)
  const inf = new Uint8Array(48)
  inf[0] = 0xc0
  t.throws(() => checkBlsPublicKey(inf), InvalidBlsKeyError, 'identity point')
  t.throws(() => checkBlsPublicKey(new Uint8Array(48)), InvalidBlsKeyError, 'zero bytes')
  t.throws(() => checkBlsPublicKey(new Uint8Array(47)), InvalidBlsKeyError, 'short')
  t.throws(
    () => checkBlsPublicKey(bls12_381.G1.Point.BASE.multiply(5n).toBytes(false)),
    InvalidBlsKeyError,
    'uncompressed form'
  )
  let notOnCurve = 0
  for (let i = 0; i < 20; i++) {
    const x = concat([new Uint8Array(16), sha256(utf8.encode(`x ${i}`))])
    x[0] = 0x80 // compressed flag, small x: on the curve about half the time, in G1 almost never
    try {
      checkBlsPublicKey(x)
    } catch (err) {
      if (err instanceof InvalidBlsKeyError) notOnCurve++
    }
  }
  t.equal(notOnCurve, 20, 'random x coordinates are refused (off the curve or outside G1)')
})

t.test('aggregation: one message, many signers', async t => {
  const keys = Array.from({ length: 5 }, (_, i) => blsKeyFromSeed(seedOf(`agg ${i}`)))
  const agg = blsAggregate(keys.map(k => k.sign(msg)))
  t.ok(
    blsFastAggregateVerify(
      keys.map(k => k.publicKey),
      msg,
      agg
    )
  )
  t.notOk(
    blsFastAggregateVerify(
      keys.slice(1).map(k => k.publicKey),
      msg,
      agg
    ),
    'one key short'
  )
  t.notOk(
    blsFastAggregateVerify(
      [...keys, blsKeyFromSeed(seedOf('x'))].map(k => k.publicKey),
      msg,
      agg
    ),
    'one key extra'
  )
  t.notOk(blsFastAggregateVerify([], msg, agg), 'no keys')
  t.notOk(
    blsFastAggregateVerify(
      keys.map(k => k.publicKey),
      utf8.encode('other'),
      agg
    )
  )
  t.throws(() => blsAggregate([]), InvalidInputError)
  t.throws(() => blsAggregate([keys[0].sign(msg), new Uint8Array(96)]), InvalidInputError)
})

t.test('proof of possession is bound to the node id and the key', async t => {
  const a = blsKeyFromSeed(seedOf('a'))
  const b = blsKeyFromSeed(seedOf('b'))
  const pop = proveKeyPossession(a, 'node-a')
  verifyKeyPossession({ nodeId: 'node-a', blsPublicKey: a.publicKey, proof: pop })
  t.throws(
    () => verifyKeyPossession({ nodeId: 'node-b', blsPublicKey: a.publicKey, proof: pop }),
    BadPossessionProofError,
    'another node id replays my key and proof'
  )
  t.throws(
    () => verifyKeyPossession({ nodeId: 'node-a', blsPublicKey: b.publicKey, proof: pop }),
    BadPossessionProofError,
    'my proof for another key'
  )
  t.throws(
    () => verifyKeyPossession({ nodeId: 'node-b', blsPublicKey: a.publicKey, proof: proveKeyPossession(b, 'node-b') }),
    BadPossessionProofError
  )
  // IETF PopProve's message (the key alone) and a signature without our domain tag do not count
  t.throws(
    () => verifyKeyPossession({ nodeId: 'node-a', blsPublicKey: a.publicKey, proof: a.sign(a.publicKey) }),
    BadPossessionProofError
  )
  t.throws(
    () =>
      verifyKeyPossession({
        nodeId: 'node-a',
        blsPublicKey: a.publicKey,
        proof: a.sign(possessionMessage('node-a', a.publicKey).subarray(19))
      }),
    BadPossessionProofError
  )
  t.throws(
    () => verifyKeyPossession({ nodeId: 'node-a', blsPublicKey: new Uint8Array(48), proof: pop }),
    InvalidBlsKeyError
  )
  t.throws(
    () => verifyKeyPossession({ nodeId: 'node-a', blsPublicKey: a.publicKey, proof: new Uint8Array(96) }),
    BadPossessionProofError
  )
  t.throws(() => possessionMessage('', a.publicKey), InvalidInputError)
  t.throws(() => possessionMessage('x'.repeat(256), a.publicKey), InvalidInputError)
})

t.test('rogue-key attack: the forged aggregate is real without PoP, and the rogue key cannot register', async t => {
  const honest = blsKeyFromSeed(seedOf('honest'))
  // The attacker picks x and publishes pk_r = x·G1 − pk_h, so that pk_h + pk_r = x·G1: it can then
  // sign "for both" alone, without the honest member ever signing.
  const x = 0x1234567890abcdefn
  const G1 = bls12_381.G1.Point
  const rogue = G1.BASE.multiply(x).subtract(G1.fromBytes(honest.publicKey)).toBytes(true)
  checkBlsPublicKey(rogue) // a perfectly valid point
  const L = bls12_381.longSignatures
  const xBytes = new Uint8Array(32)
  let v = x
  for (let i = 31; i >= 0; i--) {
    xBytes[i] = Number(v & 0xffn)
    v >>= 8n
  }
  const forged = L.sign(L.hash(msg, POP_SUITE_DST), xBytes).toBytes(true)
  t.ok(
    blsFastAggregateVerify([honest.publicKey, rogue], msg, forged),
    'without PoP the aggregate "of both" verifies: the honest key never signed'
  )
  // registration needs a PoP for pk_r; the attacker knows x, not the secret of pk_r
  const attempt = L.sign(L.hash(possessionMessage('attacker', rogue), POP_SUITE_DST), xBytes).toBytes(true)
  t.throws(
    () => verifyKeyPossession({ nodeId: 'attacker', blsPublicKey: rogue, proof: attempt }),
    BadPossessionProofError,
    'rogue key refused at registration'
  )
  t.throws(
    () => verifyKeyPossession({ nodeId: 'attacker', blsPublicKey: rogue, proof: forged }),
    BadPossessionProofError
  )
})
