// TPM 2.0 Part 2 structure parsers: round trips, a recorded EK public area, AK names, key
// conversion, every truncation and a bounded fuzz (random + mutated): only DecodeError or
// InvalidInputError may escape, never a crash or a hang.
import t from 'tap'
import { generateKeyPairSync, createHash } from 'node:crypto'
import {
  parseAttest,
  marshalAttest,
  parsePublic,
  parsePublic2b,
  marshalPublic,
  parseSignature,
  marshalSignature,
  objectName,
  publicToKeyObject,
  objectAttributes,
  TPM_ALG,
  TPM_ECC,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  type TpmPublic,
  type TpmSignature
} from '../../attestation/tpm2.ts'
import { StructureError } from '../../attestation/reader.ts'
import { checkEkPublic, parseCertificates } from '../../attestation/ekcert.ts'
import { DecodeError, InvalidInputError } from '../../encoding/errors.ts'
import { softAk, forgeQuote } from './forge.ts'
import { ekFixture } from './scenario.ts'
import { throwsInstance, prng, randomBytesFrom, mutate } from './util.ts'

const ak = softAk()
const q = forgeQuote(ak, {
  nonce: new Uint8Array(32).fill(9),
  pcrs: new Map([
    [0, new Uint8Array(32).fill(1)],
    [7, new Uint8Array(32).fill(2)],
    [13, new Uint8Array(32).fill(3)]
  ])
})

t.test('TPMS_ATTEST quote: every field decodes and re-marshals byte for byte', async t => {
  const a = parseAttest(q.attest)
  t.equal(a.magic, TPM_GENERATED_VALUE)
  t.equal(a.type, TPM_ST_ATTEST_QUOTE)
  t.same(a.qualifiedSigner, ak.name)
  t.same(a.extraData, new Uint8Array(32).fill(9))
  t.same(a.clockInfo, { clock: 123456n, resetCount: 1, restartCount: 0, safe: true })
  t.equal(a.firmwareVersion, 0x2023041900120000n)
  t.same(a.quote?.pcrSelect, [{ hash: 'sha256', pcrs: [0, 7, 13] }])
  t.equal(a.quote?.pcrDigest.length, 32)
  t.same(marshalAttest(a), q.attest)
  // sizeofSelect 3 (PC Client): PCR 13 is bit 5 of byte 1
  const i = q.attest.length - 2 - 32 - 3
  t.same([...q.attest.subarray(i, i + 3)], [0x81, 0x20, 0x00])
})

t.test('other attestation types keep their body raw', async t => {
  const b = marshalAttest({
    ...parseAttest(q.attest),
    type: 0x8017,
    quote: undefined,
    attested: new Uint8Array([1, 2, 3])
  })
  const a = parseAttest(b)
  t.equal(a.type, 0x8017)
  t.same(a.attested, new Uint8Array([1, 2, 3]))
  t.equal(a.quote, undefined)
})

t.test('TPMT_PUBLIC: ECC AK and RSA EK round trip, name = nameAlg ‖ H(public)', async t => {
  const p = parsePublic(ak.akPublic)
  t.equal(p.type, 'ecc')
  t.same(marshalPublic(p), ak.akPublic)
  const attrs = objectAttributes(p.objectAttributes)
  t.ok(attrs.restricted && attrs.sign && attrs.fixedTPM && attrs.fixedParent && !attrs.decrypt)
  const name = objectName(ak.akPublic)
  t.equal(name.length, 34)
  t.same([...name.subarray(0, 2)], [0x00, 0x0b])
  t.same(name.subarray(2), new Uint8Array(createHash('sha256').update(ak.akPublic).digest()))

  const ek = parsePublic2b(ekFixture('ek-rsa.pub'))
  t.equal(ek.type, 'rsa')
  if (ek.type !== 'rsa') return
  t.equal(ek.keyBits, 2048)
  t.equal(ek.exponent, 0)
  t.same(ek.symmetric, { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB })
  t.equal(ek.authPolicy.length, 32)
  const attrsEk = objectAttributes(ek.objectAttributes)
  t.ok(attrsEk.restricted && attrsEk.decrypt && !attrsEk.sign && attrsEk.adminWithPolicy)
  t.same(marshalPublic(ek), ekFixture('ek-rsa.pub').subarray(2))
  const cert = parseCertificates(ekFixture('ek-rsa.der'))[0]
  t.doesNotThrow(() => {
    checkEkPublic(ek, cert.publicKey)
  }, 'the recorded EK public area is the certified key')
  t.equal(publicToKeyObject(ek).asymmetricKeyDetails?.modulusLength, 2048)
})

t.test('publicToKeyObject: ECC via JWK x/y, RSA via JWK n/e; bad points refused', async t => {
  for (const [crv, id] of [
    ['P-256', TPM_ECC.NIST_P256],
    ['P-384', TPM_ECC.NIST_P384]
  ] as const) {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: crv })
    const j = publicKey.export({ format: 'jwk' })
    const p: TpmPublic = {
      ...softAk().pub,
      curve: id,
      x: new Uint8Array(Buffer.from(j.x ?? '', 'base64url')),
      y: new Uint8Array(Buffer.from(j.y ?? '', 'base64url'))
    }
    t.same(publicToKeyObject(p).export({ format: 'jwk' }), j, crv)
  }
  const bad: TpmPublic = { ...softAk().pub, y: new Uint8Array(32).fill(1) }
  throwsInstance(t, () => publicToKeyObject(bad), InvalidInputError, 'point not on the curve')
  throwsInstance(
    t,
    () => publicToKeyObject({ ...softAk().pub, curve: 0x0010 }),
    InvalidInputError,
    'unsupported curve (BN P-256)'
  )
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 })
  const n = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).n ?? '', 'base64url'))
  const rsa: TpmPublic = {
    type: 'rsa',
    nameAlg: 0x000b,
    objectAttributes: 0x00040072,
    authPolicy: new Uint8Array(0),
    scheme: { scheme: TPM_ALG.RSASSA, hashAlg: 0x000b },
    keyBits: 2048,
    exponent: 3,
    modulus: n
  }
  t.same(publicToKeyObject(rsa).export({ format: 'jwk' }), publicKey.export({ format: 'jwk' }))
  t.same(parsePublic(marshalPublic(rsa)), rsa)
  throwsInstance(
    t,
    () => publicToKeyObject({ ...rsa, keyBits: 1024 }),
    InvalidInputError,
    'modulus size must match keyBits'
  )
})

t.test('TPMT_SIGNATURE: ECDSA, RSASSA, RSAPSS, HMAC, NULL round trip', async t => {
  const sigs: TpmSignature[] = [
    parseSignature(q.signature),
    { sigAlg: 'rsassa', hash: 'sha256', sig: new Uint8Array(256).fill(5) },
    { sigAlg: 'rsapss', hash: 'sha384', sig: new Uint8Array(256).fill(6) },
    { sigAlg: 'hmac', hash: 'sha1', digest: new Uint8Array(20).fill(7) },
    { sigAlg: 'null' }
  ]
  t.equal(sigs[0].sigAlg, 'ecdsa')
  for (const s of sigs) t.same(parseSignature(marshalSignature(s)), s, s.sigAlg)
  throwsInstance(
    t,
    () => parseSignature(new Uint8Array([0x00, 0x99, 0, 0x0b])),
    DecodeError,
    'unknown sigAlg',
    /unsupported signature algorithm 0x0099 at offset 0/
  )
  throwsInstance(
    t,
    () => parseSignature(new Uint8Array([0x00, 0x18, 0x00, 0x12, 0, 0, 0, 0])),
    DecodeError,
    'SM3 hash refused',
    /unsupported hash/
  )
})

t.test('errors name the field and the offset', async t => {
  const e = throwsInstance(
    t,
    () => parseAttest(q.attest.subarray(0, 10)),
    StructureError,
    'truncated attest',
    /TPMS_ATTEST: .*truncated.* at offset \d+/
  )
  t.ok(e instanceof StructureError && e.offset >= 6)
  const big = q.attest.slice()
  big[6] = 0xff
  big[7] = 0xff // qualifiedSigner.size = 65535
  throwsInstance(
    t,
    () => parseAttest(big),
    DecodeError,
    'oversized TPM2B',
    /qualifiedSigner.size 65535 exceeds the maximum of 66 at offset 6/
  )
  throwsInstance(
    t,
    () => parseAttest(new Uint8Array([...q.attest, 0])),
    DecodeError,
    'trailing byte',
    /1 trailing bytes/
  )
  throwsInstance(
    t,
    () => parsePublic(new Uint8Array([0x00, 0x42, 0, 0x0b, 0, 0, 0, 0, 0, 0])),
    DecodeError,
    'unknown type',
    /unsupported object type 0x0042 at offset 0/
  )
  throwsInstance(t, () => parsePublic2b(new Uint8Array([0, 5, 1, 2])), DecodeError, 'TPM2B_PUBLIC truncated')
})

t.test('every truncation of every structure is a DecodeError', async t => {
  let n = 0
  for (const [name, b, parse] of [
    ['attest', q.attest, parseAttest],
    ['public', ak.akPublic, parsePublic],
    ['signature', q.signature, parseSignature],
    ['ek', ekFixture('ek-rsa.pub').subarray(2), parsePublic]
  ] as const) {
    for (let i = 0; i < b.length; i++) {
      try {
        ;(parse as (x: Uint8Array) => unknown)(b.subarray(0, i))
        t.fail(`${name} truncated to ${i} parsed`)
      } catch (err) {
        if (!(err instanceof DecodeError)) t.fail(`${name}[0..${i}]: ${String(err)}`)
        else n++
      }
    }
  }
  t.ok(n > 600, `${n} truncations rejected`)
})

t.test('fuzz: random bytes and mutations only throw DecodeError/InvalidInputError', async t => {
  const rnd = prng(0xa77e57)
  const seeds = [q.attest, ak.akPublic, q.signature, ekFixture('ek-rsa.pub').subarray(2)]
  const parsers: Array<(b: Uint8Array) => unknown> = [
    parseAttest,
    parsePublic,
    parseSignature,
    b => {
      const p = parsePublic(b)
      objectName(b, p)
      try {
        publicToKeyObject(p)
      } catch (err) {
        if (!(err instanceof InvalidInputError)) throw err
      }
    }
  ]
  let bad = 0
  let parsed = 0
  for (let i = 0; i < 3000; i++) {
    for (const [k, parse] of parsers.entries()) {
      const input = i % 3 === 0 ? randomBytesFrom(rnd, Math.floor(rnd() * 200)) : mutate(rnd, seeds[k])
      try {
        parse(input)
        parsed++
      } catch (err) {
        if (!(err instanceof InvalidInputError)) {
          bad++
          if (bad < 5) t.fail(`parser ${k} threw ${String(err)}`)
        }
      }
    }
  }
  t.equal(bad, 0, 'no unexpected exception')
  t.ok(parsed > 0, `${parsed} mutated inputs still parsed (mutations that keep the structure valid)`)
})
