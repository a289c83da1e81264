// Appraisal end to end on the real OVMF log + forged quotes: a valid bundle affirms every claim;
// each single-field tamper fails the right claim with a message naming the PCR/event; several
// failures are all listed; committee nonces; reboot detection; digest = sha256(canonical body).
import t from 'tap'
import { createHash } from 'node:crypto'
import { appraise, appraisalDigest, CLAIMS, type Appraisal, type Claim } from '../../attestation/appraise.ts'
import {
  referenceValuesFromJson,
  referenceValuesToJson,
  prepareReferences,
  type ReferenceValues
} from '../../attestation/refs.ts'
import { committeeNonce, decodeEvidence, encodeEvidence, type Evidence } from '../../attestation/evidence.ts'
import { canonicalSha256 } from '../../attestation/canondigest.ts'
import { containerLaunchLine, envDigest, replayContainerLog } from '../../attestation/containerlog.ts'
import { encode, type Canonical } from '../../encoding/canonical.ts'
import { DecodeError, InvalidInputError } from '../../encoding/errors.ts'
import { scenario, containerLog, fixtureEventLog, IMAGE_A } from './scenario.ts'
import { softAk, AK_ATTRS, forgeQuote, signAttest } from './forge.ts'
import { TPMA_OBJECT, parseAttest, marshalAttest } from '../../attestation/tpm2.ts'
import { throwsInstance, prng, mutate } from './util.ts'

const ak = softAk()
const s = scenario({}, ak)

function failed(a: Appraisal): Claim[] {
  return CLAIMS.filter(c => !a.status[c].ok)
}

t.test('the valid bundle affirms every claim', async t => {
  const a = appraise(s.evidence, s.refs, { nonce: s.nonce })
  t.equal(a.ok, true, a.failures.join('\n'))
  t.equal(a['ear.status'], 'affirming')
  for (const c of CLAIMS) t.same(a.status[c], { ok: true, 'ear.status': 'affirming', failures: [] }, c)
  t.equal(a.subject.tpm?.model, 'swtpm')
  t.same(a.clock, { clock: '123456', resetCount: 1, restartCount: 0, safe: true })
  t.equal(a.digest, appraisalDigest(a))
  const { digest: _d, ...body } = a
  t.equal(
    a.digest,
    createHash('sha256')
      .update(encode(body as unknown as Canonical))
      .digest('hex'),
    'digest = sha256 of the shared canonical encoding'
  )
  t.equal(appraise(s.evidence, s.refs, { nonce: s.nonce }).digest, a.digest, 'deterministic')
})

t.test('single-field tampers fail the right claim and name the PCR', async t => {
  const sig = s.evidence.quote.signature.slice()
  sig[sig.length - 1] ^= 1
  const pcrs = { sha256: { ...s.evidence.pcrs.sha256, 0: new Uint8Array(32).fill(9) } }
  const cases: Array<[string, Evidence, Partial<Parameters<typeof appraise>[2]>, Claim[], RegExp]> = [
    [
      'signature',
      { ...s.evidence, quote: { ...s.evidence.quote, signature: sig } },
      {},
      ['identity', 'firmware', 'os', 'containers', 'freshness'],
      /identity: quote: ECDSA signature does not verify/
    ],
    [
      'nonce',
      s.evidence,
      { nonce: new Uint8Array(32).fill(1) },
      ['freshness'],
      /freshness: evidence nonce .* is not the expected nonce/
    ],
    [
      'PCR 0 value',
      { ...s.evidence, pcrs },
      {},
      ['firmware', 'os', 'containers'],
      /firmware: reported PCR values hash to .* not the quoted pcrDigest/
    ],
    [
      'AK swapped',
      { ...s.evidence, akPublic: softAk().akPublic },
      {},
      ['identity', 'firmware', 'os', 'containers', 'freshness'],
      /identity: quote: ECDSA signature does not verify under the AK/
    ],
    [
      'EK certificate',
      { ...s.evidence, ekCertificate: s.evidence.ekCertificate.subarray(0, 100) },
      {},
      ['identity'],
      /identity: EK certificate: /
    ],
    // the OS references check PCR 4 by its events, so a broken log fails os too
    [
      'event log',
      { ...s.evidence, eventLog: fixtureEventLog().subarray(0, 500) },
      {},
      ['firmware', 'os'],
      /firmware: event log: event log record #\d+/
    ],
    [
      'container log',
      { ...s.evidence, containerLog: containerLog().split('\n')[0] + '\n' },
      {},
      ['containers'],
      /containers: PCR 13: the container log \(1 launches\) replays to .* but the quote says/
    ]
  ]
  for (const [name, ev, pol, claims, re] of cases) {
    const a = appraise(ev, s.refs, { nonce: s.nonce, ...pol })
    t.equal(a.ok, false, `${name}: fails`)
    t.same(failed(a), claims, `${name}: claims ${claims.join(',')}`)
    t.ok(
      a.failures.some(f => re.test(f)),
      `${name}: ${String(re)}`,
      { failures: a.failures }
    )
    t.equal(a['ear.status'], 'contraindicated')
    for (const c of claims) t.equal(a.status[c]['ear.status'], 'contraindicated')
  }
})

t.test('selection tamper: a firmware PCR missing from the quote is named', async t => {
  const pcrs = new Map(s.pcrs)
  pcrs.delete(3)
  const q = forgeQuote(ak, { nonce: s.nonce, pcrs })
  const a = appraise({ ...s.evidence, quote: { attest: q.attest, signature: q.signature }, pcrs: q.pcrs }, s.refs, {
    nonce: s.nonce
  })
  t.same(failed(a), ['firmware'])
  t.same(a.status.firmware.failures, ['firmware: PCR 3 is not in the quote'])
})

t.test('AK attributes: a non-restricted AK fails identity', async t => {
  const weak = softAk(AK_ATTRS & ~TPMA_OBJECT.restricted)
  const w = scenario({}, weak)
  const a = appraise(w.evidence, w.refs, { nonce: w.nonce })
  t.ok(a.status.identity.failures.includes('identity: AK lacks the restricted attribute'))
})

t.test('firmware / os references: events and golden values, failures per PCR and event', async t => {
  const refs = s.refs
  // drop event #3's digest (PCR 0, second firmware blob) from the firmware references
  const fw = refs.firmware[0]
  const ev0 = fw.pcrs['0'].events ?? []
  const without: ReferenceValues = {
    ...refs,
    firmware: [{ ...fw, pcrs: { ...fw.pcrs, 0: { events: ev0.filter((_, i) => i !== 2) } } }]
  }
  const a = appraise(s.evidence, without, { nonce: s.nonce })
  t.same(failed(a), ['firmware'])
  t.match(a.status.firmware.failures, [
    /^firmware: PCR 0 event #3 \(EV_EFI_PLATFORM_FIRMWARE_BLOB\) digest 82a0445201cb4994… not in any published firmware reference$/
  ])
  // a golden value allows the PCR even without its events
  const golden: ReferenceValues = {
    ...without,
    firmware: [
      ...without.firmware,
      { name: 'ovmf-golden', version: '1', bank: 'sha256', pcrs: { 0: { golden: [s.pcrs.get(0) as Uint8Array] } } }
    ]
  }
  t.equal(appraise(s.evidence, golden, { nonce: s.nonce }).ok, true)
  // OS PCR 9 not published → os fails, firmware unaffected
  const noOs: ReferenceValues = { ...refs, os: [{ ...refs.os[0], pcrs: { 4: refs.os[0].pcrs['4'] } }] }
  const b = appraise(s.evidence, noOs, { nonce: s.nonce })
  t.same(failed(b), ['os'])
  t.same(b.status.os.failures, ['os: PCR 9 has no published os reference'])
  // golden-only reference that does not match
  const wrongGolden: ReferenceValues = {
    ...refs,
    os: [
      {
        name: 'x',
        version: '1',
        bank: 'sha256',
        pcrs: { 4: { golden: [new Uint8Array(32)] }, 9: { golden: [new Uint8Array(32)] } }
      }
    ]
  }
  const c = appraise(s.evidence, wrongGolden, { nonce: s.nonce })
  t.equal(c.status.os.failures.length, 2)
  t.match(c.status.os.failures[0], /^os: PCR 4 value 9dca3263ef083d7a… is not a published os golden value$/)
  // no event log at all
  const { eventLog: _e, ...noLog } = s.evidence
  const d = appraise(noLog, refs, { nonce: s.nonce })
  t.ok(d.status.firmware.failures.includes('firmware: the evidence has no firmware event log'))
})

t.test('event log that does not match the quote: replay mismatch per PCR', async t => {
  // quote PCR 7 with another value, re-signed: the log no longer replays to it
  const pcrs = new Map(s.pcrs)
  pcrs.set(7, new Uint8Array(32).fill(7))
  const q = forgeQuote(ak, { nonce: s.nonce, pcrs })
  const a = appraise({ ...s.evidence, quote: { attest: q.attest, signature: q.signature }, pcrs: q.pcrs }, s.refs, {
    nonce: s.nonce
  })
  t.same(failed(a), ['firmware'])
  t.match(
    a.status.firmware.failures[0],
    /^firmware: PCR 7: the event log replays to 65caf8dd1e0ea7a6… but the quote says 0707070707070707…$/
  )
})

t.test('several failures are all listed', async t => {
  const pcrs = new Map(s.pcrs)
  pcrs.set(7, new Uint8Array(32).fill(7))
  pcrs.set(9, new Uint8Array(32).fill(9))
  const q = forgeQuote(ak, { nonce: new Uint8Array(32), pcrs, resetCount: 9 })
  const ev: Evidence = {
    ...s.evidence,
    quote: { attest: q.attest, signature: q.signature },
    pcrs: q.pcrs,
    containerLog:
      containerLog() +
      containerLaunchLine({
        type: 'container.launch',
        image: 'evil',
        digest: 'sha256:' + 'ee'.repeat(32),
        cid: 'bafyevil',
        args: [],
        envDigest: envDigest([])
      }) +
      '\n'
  }
  const a = appraise(ev, s.refs, {
    nonce: s.nonce,
    previousClock: { resetCount: 1, restartCount: 0 },
    requireCredentialActivation: true
  })
  t.same(failed(a), ['identity', 'firmware', 'os', 'containers', 'freshness'])
  t.ok(a.failures.length >= 7, a.failures.join('\n'))
  t.ok(a.failures.includes('identity: the AK is not bound to the EK: credential activation was not proven'))
  t.ok(a.failures.some(f => /^freshness: quote nonce 0000.* is not the expected nonce/.test(f)))
  t.ok(
    a.failures.some(f =>
      /^freshness: the TPM was reset since the previous quote \(resetCount 1 → 9\): the node rebooted$/.test(f)
    )
  )
  t.ok(a.failures.some(f => /^os: PCR 9: the event log replays to/.test(f)))
  t.ok(
    a.failures.some(f =>
      /^containers: launch #3 image evil digest sha256:eeeeeeeeeeeeeeee… is not an allowed \(published\) image$/.test(f)
    )
  )
  t.ok(
    appraise(ev, s.refs, { nonce: s.nonce, credentialActivated: true, requireCredentialActivation: true }).status
      .identity.ok,
    'activation proven: identity ok'
  )
})

t.test('containers: unknown image, allowed by policy, PCR 13 missing', async t => {
  const refs: ReferenceValues = { ...s.refs, containers: { images: [{ name: 'acme/web:1.0', digest: IMAGE_A }] } }
  const a = appraise(s.evidence, refs, { nonce: s.nonce })
  t.same(a.status.containers.failures, [
    'containers: launch #2 image acme/worker:2.1 digest sha256:b2b2b2b2b2b2b2b2… is not an allowed (published) image'
  ])
  t.equal(appraise(s.evidence, refs, { nonce: s.nonce, allowedImages: ['sha256:' + 'b2'.repeat(32)] }).ok, true)
  const pcrs = new Map(s.pcrs)
  pcrs.delete(13)
  const q = forgeQuote(ak, { nonce: s.nonce, pcrs })
  const b = appraise({ ...s.evidence, quote: { attest: q.attest, signature: q.signature }, pcrs: q.pcrs }, s.refs, {
    nonce: s.nonce
  })
  t.same(b.status.containers.failures, [
    'containers: PCR 13 is not in the quote, so the 2 container launches are unattested'
  ])
  // no container log but PCR 13 extended: mismatch
  const { containerLog: _c, ...noClog } = s.evidence
  t.match(
    appraise(noClog, s.refs, { nonce: s.nonce }).status.containers.failures[0],
    /PCR 13: the container log \(0 launches\) replays to 0000000000000000… but the quote says/
  )
  t.equal(replayContainerLog(containerLog()).length, 32)
})

t.test('committee: one quote over the hash of every member nonce', async t => {
  const members = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), new Uint8Array(32).fill(3)]
  const n = committeeNonce(members)
  const q = forgeQuote(ak, { nonce: n, pcrs: s.pcrs })
  const ev: Evidence = {
    ...s.evidence,
    nonce: n,
    quote: { attest: q.attest, signature: q.signature },
    committeeNonces: members
  }
  for (const m of members) t.equal(appraise(ev, s.refs, { nonce: m }).ok, true, 'each member affirms')
  const outsider = appraise(ev, s.refs, { nonce: new Uint8Array(32).fill(4) })
  t.same(outsider.status.freshness.failures, [
    'freshness: our nonce 0404040404040404… is not among the 3 committee nonces'
  ])
  const swapped = appraise({ ...ev, committeeNonces: [members[0], members[1], new Uint8Array(32).fill(4)] }, s.refs, {
    nonce: members[0]
  })
  t.same(failed(swapped), ['freshness'])
  t.ok(swapped.failures.some(f => /not the hash of the committee nonces/.test(f)))
})

t.test('reference values: JSON round trip, strict decoding, bad CA skipped', async t => {
  const json = JSON.stringify(referenceValuesToJson(s.refs))
  const back = referenceValuesFromJson(json)
  t.equal(appraise(s.evidence, back, { nonce: s.nonce }).ok, true)
  throwsInstance(
    t,
    () => referenceValuesFromJson({ ...JSON.parse(json), extra: 1 }),
    DecodeError,
    'unknown field',
    /unknown field "extra"/
  )
  throwsInstance(
    t,
    () => referenceValuesFromJson({ ekCas: [], firmware: [{ name: 'x', version: '1', bank: 'sha1', pcrs: {} }] }),
    DecodeError,
    'sha1 bank',
    /only "sha256"/
  )
  throwsInstance(
    t,
    () =>
      referenceValuesFromJson({
        ekCas: [],
        firmware: [{ name: 'x', version: '1', bank: 'sha256', pcrs: { 0: { golden: ['abcd'] } } }]
      }),
    DecodeError,
    'short digest',
    /32-byte/
  )
  throwsInstance(
    t,
    () =>
      referenceValuesFromJson({
        ekCas: [],
        firmware: [{ name: 'x', version: '1', bank: 'sha256', pcrs: { 24: { golden: [] } } }]
      }),
    DecodeError,
    'PCR 24',
    /PCR index "24"/
  )
  const withBad: ReferenceValues = { ...s.refs, ekCas: [new Uint8Array([1, 2, 3]), ...s.refs.ekCas] }
  const p = prepareReferences(withBad)
  t.equal(p.invalidCas.length, 1)
  t.equal(appraise(s.evidence, p, { nonce: s.nonce }).ok, true, 'one bad published CA does not break the others')
  const none = appraise(s.evidence, { ...s.refs, ekCas: [] }, { nonce: s.nonce })
  t.same(none.status.identity.failures, ['identity: no published TPM vendor CA to check the EK certificate against'])
})

t.test('fast canonical digest equals the shared encoder on varied values', async t => {
  const vals: Canonical[] = [
    {},
    [],
    { b: 1, a: [true, false, null], aa: 'x' },
    { 'ear.status': 'é', n: -5, big: 2 ** 40, bytes: new Uint8Array([1, 2]) },
    'x'.repeat(300),
    [{ z: { y: { x: 1 } } }]
  ]
  for (const v of vals) t.equal(canonicalSha256(v), createHash('sha256').update(encode(v)).digest('hex'))
  t.equal(
    canonicalSha256({ n: 2n ** 63n }),
    createHash('sha256')
      .update(encode({ n: 2n ** 63n }))
      .digest('hex'),
    'bigint falls back'
  )
  // key orders are cached per key list: the same keys in another order, a subset, undefined members
  const shapes: Canonical[] = [
    { b: 1, a: 2, ccc: 3 },
    { ccc: 3, a: 2, b: 1 },
    { a: 2, b: 1 },
    { b: 1, a: undefined, ccc: 3 },
    { a: 2, b: 1, ccc: 3, dd: { b: 1, a: 2 } }
  ]
  for (const v of shapes)
    t.equal(canonicalSha256(v), createHash('sha256').update(encode(v)).digest('hex'), JSON.stringify(v))
  t.equal(
    canonicalSha256({ b: 1, a: 2, ccc: 3 }),
    canonicalSha256({ ccc: 3, a: 2, b: 1 }),
    'insertion order does not matter'
  )
})

t.test('cached event checks follow the reference set, not the first one seen', async t => {
  const fw = s.refs.firmware[0]
  const ev0 = fw.pcrs['0'].events ?? []
  const without: ReferenceValues = {
    ...s.refs,
    firmware: [{ ...fw, pcrs: { ...fw.pcrs, 0: { events: ev0.filter((_, i) => i !== 2) } } }]
  }
  for (let i = 0; i < 2; i++) {
    t.equal(appraise(s.evidence, s.refs, { nonce: s.nonce }).ok, true, `full references pass (${i})`)
    t.same(failed(appraise(s.evidence, without, { nonce: s.nonce })), ['firmware'], `reduced references fail (${i})`)
  }
  // the same PCR list under os instead of firmware names the os claim
  const asOs = appraise(
    s.evidence,
    {
      ...s.refs,
      os: [{ ...s.refs.os[0], pcrs: { ...s.refs.os[0].pcrs, 0: { events: ev0.filter((_, i) => i !== 2) } } }]
    },
    { nonce: s.nonce, osPcrs: [0, 4, 9], firmwarePcrs: [1, 2, 3, 5, 6, 7] }
  )
  t.match(asOs.status.os.failures, [/^os: PCR 0 event #3 .* not in any published os reference$/])
  t.equal(asOs.status.firmware.ok, true)
})

t.test('appraise never throws on mutated evidence (fuzz)', async t => {
  const rnd = prng(0xa11)
  const wire = encodeEvidence(s.evidence)
  let bad = 0
  let decoded = 0
  for (let i = 0; i < 1500; i++) {
    let ev: Evidence
    try {
      ev = decodeEvidence(mutate(rnd, wire))
    } catch (err) {
      if (!(err instanceof InvalidInputError)) bad++
      continue
    }
    decoded++
    try {
      const a = appraise(ev, s.refs, { nonce: s.nonce })
      if (a.ok && !equalBytes(encodeEvidence(ev), wire)) {
        /* a mutation in an unused spot can still pass */
      }
    } catch (err) {
      bad++
      if (bad < 5) t.fail(String(err))
    }
  }
  t.equal(bad, 0)
  t.ok(decoded > 100, `${decoded} mutated bundles appraised`)
})

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}

t.test('quote re-signed with a different clock: reboot and restart visible', async t => {
  const a = parseAttest(s.evidence.quote.attest)
  const later = marshalAttest({ ...a, clockInfo: { ...a.clockInfo, restartCount: 1 } })
  const ev: Evidence = { ...s.evidence, quote: { attest: later, signature: signAttest(ak, later) } }
  const r = appraise(ev, s.refs, { nonce: s.nonce, previousClock: { resetCount: 1, restartCount: 0, clock: 100n } })
  t.same(r.status.freshness.failures, [
    'freshness: the TPM was restarted since the previous quote (restartCount 0 → 1)'
  ])
  const back = appraise(s.evidence, s.refs, {
    nonce: s.nonce,
    previousClock: { resetCount: 1, restartCount: 0, clock: 999999n }
  })
  t.same(back.status.freshness.failures, [
    'freshness: the TPM clock went back since the previous quote (999999 → 123456)'
  ])
})

t.test('content keys: equal content → same key; in-place mutation is noticed', async t => {
  const { ContentKeys } = await import('../../attestation/contentkey.ts')
  const k = new ContentKeys(2)
  const b = new Uint8Array([1, 2, 3])
  const k1 = k.key(b)
  t.equal(k.key(new Uint8Array([1, 2, 3])), k1)
  b[0] = 9
  t.not(k.key(b), k1, 'mutated buffer re-hashed')
  t.equal(k.key('abc'), createHash('sha256').update('abc').digest('hex'))
  t.equal(k.key(new Uint8Array([1, 2, 3])), k1, 'evicted entries are re-hashed to the same key')
})

t.test('appraisal after the evidence buffers are reused for another log', async t => {
  const ev = scenario({}, ak)
  const log = ev.evidence.eventLog?.slice() ?? new Uint8Array()
  t.equal(appraise({ ...ev.evidence, eventLog: log }, ev.refs, { nonce: ev.nonce }).ok, true)
  log[100] ^= 0xff // same buffer object, different content: the cache must not serve the old parse
  t.equal(appraise({ ...ev.evidence, eventLog: log }, ev.refs, { nonce: ev.nonce }).ok, false)
})

t.test('a PCR with no events does not pass an events reference vacuously', async t => {
  const refs = s.refs
  // PCR 8 is untouched in the fixture (zeros); an OS reference listing events for it must fail
  const withPcr8: ReferenceValues = {
    ...refs,
    os: [{ ...refs.os[0], pcrs: { ...refs.os[0].pcrs, 8: { events: [new Uint8Array(32).fill(8)] } } }]
  }
  const a = appraise(s.evidence, withPcr8, { nonce: s.nonce })
  t.same(a.status.os.failures, [
    'os: PCR 8 has no events in the event log, but its published os reference lists events'
  ])
  const golden8: ReferenceValues = {
    ...refs,
    os: [{ ...refs.os[0], pcrs: { ...refs.os[0].pcrs, 8: { golden: [new Uint8Array(32)] } } }]
  }
  t.equal(appraise(s.evidence, golden8, { nonce: s.nonce }).ok, true, 'a golden zero value allows it explicitly')
  const empty8: ReferenceValues = { ...refs, os: [{ ...refs.os[0], pcrs: { ...refs.os[0].pcrs, 8: { events: [] } } }] }
  t.equal(appraise(s.evidence, empty8, { nonce: s.nonce }).ok, true, 'so does an explicitly empty events list')
})

t.test('reference values JSON fuzz: only InvalidInputError', async t => {
  const text = new Uint8Array(Buffer.from(JSON.stringify(referenceValuesToJson(s.refs))))
  const rnd = prng(0x5ef)
  let bad = 0
  for (let i = 0; i < 1000; i++) {
    const m = Buffer.from(mutate(rnd, text).filter(c => c < 0x80)).toString('latin1')
    try {
      const r = referenceValuesFromJson(m)
      prepareReferences(r)
    } catch (err) {
      if (!(err instanceof InvalidInputError)) {
        bad++
        if (bad < 4) t.fail(String(err))
      }
    }
  }
  t.equal(bad, 0)
})

t.test('bounded cache: entry limit and byte budget evict the oldest', async t => {
  const { BoundedCache } = await import('../../attestation/contentkey.ts')
  const c = new BoundedCache<number>(3, 100)
  c.set('a', 1, 10)
  c.set('b', 2, 10)
  c.set('c', 3, 10)
  c.set('d', 4, 10)
  t.equal(c.get('a'), undefined, 'entry limit')
  t.equal(c.get('d'), 4)
  c.set('e', 5, 90)
  t.ok(c.bytes <= 100, `byte budget kept (${c.bytes})`)
  t.equal(c.get('e'), 5)
  c.set('huge', 6, 1000)
  t.equal(c.get('huge'), undefined, 'larger than the budget: not cached')
})
