// Quote verification on quotes forged with a software AK: a valid quote verifies; every
// single-field tamper (signature, nonce, PCR value, selection, AK, magic, type, digest) fails and
// names what is wrong; RSA AKs (RSASSA, RSAPSS); clock info shows reboots.
import t from 'tap'
import { generateKeyPairSync, sign, constants } from 'node:crypto'
import {
  checkQuote,
  verifyQuote,
  compareClock,
  QuoteError,
  ecdsaDer,
  type QuoteProblemKind
} from '../../attestation/quote.ts'
import {
  marshalAttest,
  marshalPublic,
  marshalSignature,
  parseAttest,
  parseSignature,
  objectName,
  TPMA_OBJECT,
  TPM_ALG,
  type RsaPublic,
  type TpmPublic
} from '../../attestation/tpm2.ts'
import { sha256 } from '../../encoding/bytes.ts'
import { softAk, forgeQuote, signAttest, AK_ATTRS, type ForgedQuote } from './forge.ts'
import { throwsInstance } from './util.ts'

const nonce = new Uint8Array(32).fill(0x42)
const values = new Map<number, Uint8Array>([
  [0, new Uint8Array(32).fill(1)],
  [4, new Uint8Array(32).fill(4)],
  [7, new Uint8Array(32).fill(7)]
])
const ak = softAk()
const good = forgeQuote(ak, { nonce, pcrs: values })
const input = (
  q: ForgedQuote,
  over: Partial<{ attest: Uint8Array; signature: Uint8Array; akPublic: Uint8Array; pcrs: ForgedQuote['pcrs'] }> = {}
) => ({ attest: q.attest, signature: q.signature, akPublic: q.akPublic, pcrs: q.pcrs, ...over })

function kinds(q: ReturnType<typeof checkQuote>): QuoteProblemKind[] {
  return [...new Set(q.problems.map(p => p.kind))].sort()
}

t.test('a valid quote verifies into a VerifiedQuote', async t => {
  const v = verifyQuote(input(good), { nonce })
  t.same(v.nonce, nonce)
  t.same(v.akName, ak.name)
  t.same(v.clockInfo, { clock: 123456n, resetCount: 1, restartCount: 0, safe: true })
  t.same(v.selection, [{ hash: 'sha256', pcrs: [0, 4, 7] }])
  t.same(v.pcrs.get('sha256')?.get(7), values.get(7))
  t.equal(checkQuote(input(good), { nonce }).problems.length, 0)
})

t.test('every single-field tamper fails and names the check', async t => {
  const cases: Array<[string, ReturnType<typeof checkQuote>, QuoteProblemKind[], RegExp]> = []
  const sig = good.signature.slice()
  sig[sig.length - 1] ^= 1
  cases.push([
    'signature byte',
    checkQuote(input(good, { signature: sig }), { nonce }),
    ['signature'],
    /ECDSA signature does not verify/
  ])
  cases.push([
    'expected nonce',
    checkQuote(input(good), { nonce: new Uint8Array(32).fill(0x43) }),
    ['nonce'],
    /quote nonce 4242.* is not the expected nonce 4343/
  ])
  const pcrs = { sha256: { ...good.pcrs.sha256, 4: new Uint8Array(32).fill(5) } }
  cases.push([
    'reported PCR 4 value',
    checkQuote(input(good, { pcrs }), { nonce }),
    ['pcrs'],
    /not the quoted pcrDigest/
  ])
  const missing = { sha256: { 0: values.get(0) as Uint8Array, 7: values.get(7) as Uint8Array } }
  cases.push([
    'PCR 4 not reported',
    checkQuote(input(good, { pcrs: missing }), { nonce }),
    ['pcrs'],
    /PCR 4 \(sha256\) is in the quote's selection but its value was not reported/
  ])
  const extra = { sha256: { ...good.pcrs.sha256, 9: new Uint8Array(32) } }
  cases.push([
    'PCR 9 reported, not quoted',
    checkQuote(input(good, { pcrs: extra }), { nonce }),
    ['pcrs'],
    /PCR 9 \(sha256\) was reported but is not covered by the quote/
  ])
  const padded = { sha256: { ...good.pcrs.sha256, '07': new Uint8Array(32) } }
  cases.push([
    'PCR "07" reported next to 7',
    checkQuote(input(good, { pcrs: padded }), { nonce }),
    ['pcrs'],
    /PCR 07 \(sha256\) was reported but is not covered by the quote/
  ])
  const otherBank = { ...good.pcrs, sha1: { 0: new Uint8Array(20) } }
  cases.push([
    'a bank not in the selection',
    checkQuote(input(good, { pcrs: otherBank }), { nonce }),
    ['pcrs'],
    /PCR 0 \(sha1\) was reported but is not covered by the quote/
  ])
  // selection changed in the signed body (re-signed, so only the selection is wrong)
  const a = parseAttest(good.attest)
  const resel = marshalAttest({
    ...a,
    quote: { pcrSelect: [{ hash: 'sha256', pcrs: [0, 4] }], pcrDigest: a.quote?.pcrDigest ?? new Uint8Array() }
  })
  cases.push([
    'selection (re-signed)',
    checkQuote(input(good, { attest: resel, signature: signAttest(ak, resel) }), { nonce }),
    ['pcrs'],
    /PCR 7 \(sha256\) was reported but is not covered/
  ])
  // selection changed without re-signing
  cases.push([
    'selection (not re-signed)',
    checkQuote(input(good, { attest: resel }), { nonce }),
    ['pcrs', 'signature'],
    /does not verify/
  ])
  const other = softAk()
  cases.push([
    'AK swapped',
    checkQuote(input(good, { akPublic: other.akPublic }), { nonce }),
    ['signature'],
    /does not verify under the AK/
  ])
  const weak = softAk(AK_ATTRS & ~TPMA_OBJECT.restricted)
  const wq = forgeQuote(weak, { nonce, pcrs: values })
  cases.push(['AK not restricted', checkQuote(input(wq), { nonce }), ['ak'], /AK lacks the restricted attribute/])
  const nofix = softAk(AK_ATTRS & ~TPMA_OBJECT.fixedTPM & ~TPMA_OBJECT.fixedParent)
  cases.push([
    'AK not fixedTPM/fixedParent',
    checkQuote(input(forgeQuote(nofix, { nonce, pcrs: values })), { nonce }),
    ['ak'],
    /fixedTPM.*|fixedParent/
  ])
  const magic = forgeQuote(ak, { nonce, pcrs: values, magic: 0xdeadbeef })
  cases.push(['magic', checkQuote(input(magic), { nonce }), ['structure'], /not TPM_GENERATED_VALUE/])
  const type = forgeQuote(ak, { nonce, pcrs: values, type: 0x8017 })
  cases.push(['type', checkQuote(input(type), { nonce }), ['structure'], /not TPM_ST_ATTEST_QUOTE/])
  const digestTamper = marshalAttest({
    ...a,
    quote: { pcrSelect: a.quote?.pcrSelect ?? [], pcrDigest: sha256(new Uint8Array([1])) }
  })
  cases.push([
    'pcrDigest (re-signed)',
    checkQuote(input(good, { attest: digestTamper, signature: signAttest(ak, digestTamper) }), { nonce }),
    ['pcrs'],
    /not the quoted pcrDigest/
  ])
  const extraData = marshalAttest({ ...a, extraData: new Uint8Array(32).fill(0x43) })
  cases.push([
    'extraData (not re-signed)',
    checkQuote(input(good, { attest: extraData }), { nonce }),
    ['nonce', 'signature'],
    /does not verify/
  ])
  const garbage = checkQuote(input(good, { attest: good.attest.subarray(0, 20) }), { nonce })
  cases.push(['truncated attest', garbage, ['structure'], /truncated/])
  cases.push([
    'garbage signature',
    checkQuote(input(good, { signature: new Uint8Array([0, 0x18]) }), { nonce }),
    ['signature'],
    /truncated/
  ])
  cases.push([
    'garbage AK',
    checkQuote(input(good, { akPublic: new Uint8Array([0, 0x23, 0]) }), { nonce }),
    ['ak'],
    /AK public area/
  ])
  for (const [name, c, want, re] of cases) {
    t.equal(c.verified, undefined, `${name}: not verified`)
    t.same(kinds(c), want, `${name}: problem kinds ${want.join(',')}`)
    t.ok(
      c.problems.some(p => re.test(p.message)),
      `${name}: message ${String(re)}`,
      { problems: c.problems.map(p => p.message) }
    )
  }
  throwsInstance(
    t,
    () => verifyQuote(input(good, { signature: sig }), { nonce }),
    QuoteError,
    'verifyQuote throws QuoteError',
    /signature/
  )
})

t.test('attested PCRs survive a wrong nonce (so appraisal can still check them) but not a bad signature', async t => {
  t.ok(checkQuote(input(good), { nonce: new Uint8Array(32) }).attestedPcrs, 'wrong nonce: PCRs attested')
  const sig = good.signature.slice()
  sig[sig.length - 1] ^= 1
  t.equal(
    checkQuote(input(good, { signature: sig }), { nonce }).attestedPcrs,
    undefined,
    'bad signature: nothing attested'
  )
})

t.test('RSA AKs: RSASSA and RSAPSS signatures', async t => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const n = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).n ?? '', 'base64url'))
  for (const scheme of ['rsassa', 'rsapss'] as const) {
    const pub: RsaPublic = {
      type: 'rsa',
      nameAlg: 0x000b,
      objectAttributes: AK_ATTRS,
      authPolicy: new Uint8Array(0),
      scheme: { scheme: scheme === 'rsassa' ? TPM_ALG.RSASSA : TPM_ALG.RSAPSS, hashAlg: 0x000b },
      keyBits: 2048,
      exponent: 0,
      modulus: n
    }
    const akPublic = marshalPublic(pub)
    const a = { ...parseAttest(good.attest), qualifiedSigner: objectName(akPublic, pub as TpmPublic) }
    const attest = marshalAttest(a)
    const raw =
      scheme === 'rsassa'
        ? sign('sha256', attest, privateKey)
        : sign('sha256', attest, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    const signature = marshalSignature({ sigAlg: scheme, hash: 'sha256', sig: new Uint8Array(raw) })
    t.equal(
      checkQuote({ attest, signature, akPublic, pcrs: good.pcrs }, { nonce }).problems.length,
      0,
      `${scheme} verifies`
    )
    const bad = signature.slice()
    bad[10] ^= 1
    t.match(
      checkQuote({ attest, signature: bad, akPublic, pcrs: good.pcrs }, { nonce }).problems[0]?.message,
      /does not verify/,
      `${scheme} tamper fails`
    )
  }
  t.match(
    checkQuote(
      input(good, { signature: marshalSignature({ sigAlg: 'rsassa', hash: 'sha256', sig: new Uint8Array(256) }) }),
      { nonce }
    ).problems[0]?.message,
    /not supported for ECC AKs/
  )
})

t.test('ECDSA r/s to DER: leading zeros stripped, high bit padded', async t => {
  const der = ecdsaDer(new Uint8Array([0, 0, 0x80, 1]), new Uint8Array([0x7f]))
  t.same([...der], [0x30, 0x08, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x01, 0x7f])
  const s = parseSignature(good.signature)
  t.equal(s.sigAlg, 'ecdsa')
  t.same(
    [...ecdsaDer(new Uint8Array([0, 0]), new Uint8Array([0x80]))],
    [0x30, 0x07, 0x02, 0x01, 0x00, 0x02, 0x02, 0x00, 0x80],
    'zero kept as one byte'
  )
  // against a straightforward TLV builder, on random lengths, zero runs and high bits
  const int = (v: Uint8Array): number[] => {
    let i = 0
    while (i < v.length - 1 && v[i] === 0) i++
    const b = [...v.subarray(i)]
    if (b.length === 0 || (b[0] & 0x80) !== 0) b.unshift(0)
    return [0x02, ...len(b.length), ...b]
  }
  const len = (n: number): number[] => (n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff])
  let x = 7
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x % n
  }
  const value = (): Uint8Array => {
    const v = new Uint8Array(1 + rnd(140)).map(() => rnd(256))
    for (let i = 0; i < v.length && rnd(3) === 0; i++) v[i] = 0
    return v
  }
  let same = 0
  for (let i = 0; i < 500; i++) {
    const r = value()
    const sv = value()
    const body = [...int(r), ...int(sv)]
    if (Buffer.from(ecdsaDer(r, sv)).equals(Buffer.from([0x30, ...len(body.length), ...body]))) same++
  }
  t.equal(same, 500, 'identical DER for 500 random r, s')
})

t.test('clock info makes a reboot between quotes visible', async t => {
  const q1 = verifyQuote(input(forgeQuote(ak, { nonce, pcrs: values, clock: 1000n, resetCount: 5, restartCount: 1 })), {
    nonce
  })
  const q2 = verifyQuote(input(forgeQuote(ak, { nonce, pcrs: values, clock: 2000n, resetCount: 5, restartCount: 1 })), {
    nonce
  })
  const q3 = verifyQuote(input(forgeQuote(ak, { nonce, pcrs: values, clock: 10n, resetCount: 6, restartCount: 0 })), {
    nonce
  })
  const q4 = verifyQuote(input(forgeQuote(ak, { nonce, pcrs: values, clock: 3000n, resetCount: 5, restartCount: 2 })), {
    nonce
  })
  t.same(compareClock(q1.clockInfo, q2.clockInfo), { rebooted: false, restarted: false, clockWentBack: false })
  t.same(compareClock(q2.clockInfo, q3.clockInfo), { rebooted: true, restarted: false, clockWentBack: false })
  t.same(compareClock(q2.clockInfo, q4.clockInfo), { rebooted: false, restarted: true, clockWentBack: false })
  t.same(compareClock(q2.clockInfo, q1.clockInfo), { rebooted: false, restarted: false, clockWentBack: true })
})
