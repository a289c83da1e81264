// Strict decoding of every wire message, and a bounded fuzz: random and mutated inputs never
// crash with anything but an InvalidInputError (DecodeError / TooLargeError / PeerRefusedError).
import t from 'tap'
import {
  encodeHello,
  decodeHello,
  encodeChallenge,
  decodeChallenge,
  encodeEvidenceMsg,
  decodeEvidenceMsg,
  encodeVerdictMsg,
  decodeVerdictMsg,
  encodeCredentialRequest,
  decodeCredentialRequest,
  encodeActivated,
  decodeActivated,
  encodeNonceRequest,
  decodeNonceRequest,
  encodeError,
  encodeCertificateMsg,
  decodeCertificateMsg
} from '../../agent/p2p/messages.ts'
import { encodeVarint, PeerRefusedError } from '../../agent/p2p/framing.ts'
import { encode } from '../../encoding/canonical.ts'
import { DecodeError, TooLargeError, QuorateError } from '../../encoding/errors.ts'

const b = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)
const cred = { credentialBlob: b(70), encryptedSecret: b(256), ekKind: 'rsa2048' as const }
const samples: [string, Uint8Array, (x: Uint8Array) => unknown][] = [
  ['hello', encodeHello({ nodeId: '12D3KooWExample', round: 3, ekPublic: b(300) }), decodeHello],
  ['challenge', encodeChallenge({ nonce: b(32), credential: cred }), decodeChallenge],
  ['challenge (cached binding)', encodeChallenge({ nonce: b(32) }), decodeChallenge],
  ['evidence', encodeEvidenceMsg({ evidence: b(2000), secret: b(32), ekPublic: b(300) }), decodeEvidenceMsg],
  ['verdict', encodeVerdictMsg({ verdict: b(200) }), decodeVerdictMsg],
  ['credential', encodeCredentialRequest(cred), decodeCredentialRequest],
  ['activated', encodeActivated(b(32)), decodeActivated],
  ['nonce', encodeNonceRequest(b(32)), decodeNonceRequest],
  ['certificate', encodeCertificateMsg(b(200)), decodeCertificateMsg]
]

t.test('round trips', async t => {
  t.same(decodeHello(samples[0][1]), { nodeId: '12D3KooWExample', round: 3, ekPublic: b(300) })
  t.same(decodeChallenge(samples[1][1]), { nonce: b(32), credential: cred })
  t.same(decodeChallenge(samples[2][1]), { nonce: b(32) })
  t.same(decodeEvidenceMsg(samples[3][1]), { evidence: b(2000), secret: b(32), ekPublic: b(300) })
  t.same(decodeCredentialRequest(samples[5][1]), cred)
  t.same(decodeNonceRequest(samples[7][1]), b(32))
  t.same(decodeCertificateMsg(samples[8][1]), b(200))
})

t.test('strictness', async t => {
  t.throws(
    () => decodeHello(encode({ v: 1, t: 'hello', nodeId: 'x', round: 1, ekPublic: b(4), extra: 1 })),
    DecodeError,
    'unknown field'
  )
  t.throws(
    () => decodeHello(encode({ v: 2, t: 'hello', nodeId: 'x', round: 1, ekPublic: b(4) })),
    DecodeError,
    'version'
  )
  t.throws(() => decodeHello(samples[1][1]), DecodeError, 'wrong message type')
  t.throws(() => decodeChallenge(encode({ v: 1, t: 'challenge', nonce: b(4) })), DecodeError, 'nonce too short')
  t.throws(
    () => decodeChallenge(encode({ v: 1, t: 'challenge', nonce: b(32), credential: { ...cred, ekKind: 'dsa' } })),
    DecodeError,
    'unknown EK kind'
  )
  t.throws(
    () => decodeVerdictMsg(encode({ v: 1, t: 'verdict', verdict: b(10), signature: b(64) })),
    DecodeError,
    'no signature beside the verdict: it is inside (BLS)'
  )
  t.throws(
    () => decodeHello(encode({ v: 1, t: 'hello', nodeId: 'x', round: -1, ekPublic: b(4) })),
    DecodeError,
    'negative round'
  )
  t.throws(() => decodeHello(encodeError('ERR_X', 'no')), PeerRefusedError, 'error message → PeerRefusedError')
  t.throws(() => decodeHello(new Uint8Array(9000)), TooLargeError, 'oversized')
  t.same(encodeVarint(300), new Uint8Array([0xac, 0x02]))
})

t.test('bounded fuzz: random and mutated messages', async t => {
  let x = 987654321
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x % n
  }
  let rejected = 0
  let total = 0
  for (const [name, bytes, dec] of samples) {
    for (let i = 0; i < 400; i++) {
      let input: Uint8Array
      const mode = rnd(3)
      if (mode === 0) input = Uint8Array.from({ length: rnd(64) }, () => rnd(256))
      else {
        input = new Uint8Array(bytes)
        for (let e = 0; e <= rnd(4); e++) input[rnd(input.length)] = rnd(256)
        if (mode === 2) input = input.subarray(0, rnd(input.length + 1))
      }
      total++
      try {
        dec(input)
      } catch (err) {
        if (!(err instanceof QuorateError)) throw new Error(`${name}: non-Quorate error ${String(err)}`)
        if (err.disposition !== 'reject' && !(err instanceof PeerRefusedError))
          throw new Error(`${name}: unexpected ${err.name}`)
        rejected++
      }
    }
  }
  t.ok(rejected > total / 2, `${rejected} of ${total} rejected, none crashed`)
})
