// Evidence bundle v1 and the container log: round trips (CBOR and JSON), strict decoding (unknown
// fields, wrong types, bad PCR indexes/sizes), size limits, committee nonce, bounded fuzz.
import t from 'tap'
import {
  encodeEvidence,
  decodeEvidence,
  evidenceToJson,
  evidenceFromJson,
  committeeNonce,
  evidencePcrMap,
  EVIDENCE_LIMITS,
  type Evidence
} from '../../attestation/evidence.ts'
import {
  parseContainerLog,
  replayContainerLog,
  containerLaunchLine,
  containerEventDigest,
  envDigest,
  CONTAINER_PCR
} from '../../attestation/containerlog.ts'
import { encode, decode, type Canonical } from '../../encoding/canonical.ts'
import { sha256, utf8 } from '../../encoding/bytes.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../../encoding/errors.ts'
import { scenario, containerLog, IMAGE_A } from './scenario.ts'
import { throwsInstance, prng, randomBytesFrom, mutate } from './util.ts'

const s = scenario()
const ev: Evidence = { ...s.evidence, committeeNonces: [s.nonce, new Uint8Array(16).fill(1)] }

t.test('canonical CBOR and JSON round trips', async t => {
  const wire = encodeEvidence(ev)
  const back = decodeEvidence(wire)
  t.same(back, ev)
  t.same(encodeEvidence(back), wire, 'deterministic')
  const json = JSON.stringify(evidenceToJson(ev))
  t.same(evidenceFromJson(json), ev)
  t.same(evidenceFromJson(JSON.parse(json)), ev, 'parsed value accepted too')
  const j = evidenceToJson(ev)
  t.match(j.nonce, /^[0-9a-f]{64}$/)
  t.equal(j.pcrs.sha256?.['13'], Buffer.from(s.pcrs.get(13) ?? []).toString('hex'))
  t.same(evidencePcrMap(back).get(13), s.pcrs.get(13))
  t.same(
    [...evidencePcrMap(back).keys()].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13]
  )
})

t.test('committee nonce = sha256(canonical list)', async t => {
  t.same(committeeNonce(ev.committeeNonces ?? []), sha256(encode(ev.committeeNonces ?? [])))
})

t.test('strict decoding: unknown fields, wrong types, bad PCRs, versions', async t => {
  const base = decode(encodeEvidence(ev)) as Record<string, unknown>
  const enc = (m: Record<string, unknown>) => encode(m as Canonical)
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['unknown field', { ...base, extra: 1 }, /unknown field "extra"/],
    ['version 2', { ...base, version: 2 }, /unsupported version 2/],
    ['missing nonce', { ...base, nonce: undefined }, /nonce/],
    ['short nonce', { ...base, nonce: new Uint8Array(4) }, /nonce: 4 bytes, at least 8/],
    ['PCR 24', { ...base, pcrs: { sha256: { 24: new Uint8Array(32) } } }, /PCR index "24"/],
    ['PCR "01"', { ...base, pcrs: { sha256: { '01': new Uint8Array(32) } } }, /PCR index "01"/],
    ['short digest', { ...base, pcrs: { sha256: { 0: new Uint8Array(20) } } }, /32-byte digest/],
    ['unknown bank', { ...base, pcrs: { sm3: {} } }, /unknown bank "sm3"/],
    [
      'quote field',
      { ...base, quote: { attest: new Uint8Array(3), signature: new Uint8Array(3), x: 1 } },
      /quote: unknown field/
    ],
    ['containerLog bytes', { ...base, containerLog: new Uint8Array(3) }, /containerLog: expected a string/],
    ['empty committee', { ...base, committeeNonces: [] }, /empty list/]
  ]
  for (const [name, m, re] of bad) {
    const b = enc(m)
    throwsInstance(t, () => decodeEvidence(b), DecodeError, name, re)
  }
  throwsInstance(t, () => evidenceFromJson('{"version":1'), DecodeError, 'bad JSON', /not valid JSON/)
  throwsInstance(
    t,
    () => evidenceFromJson({ ...evidenceToJson(ev), nonce: 'xyz' }),
    DecodeError,
    'bad hex',
    /not valid hex/
  )
  throwsInstance(
    t,
    () => evidenceFromJson({ ...evidenceToJson(ev), akPublic: '!!!' }),
    DecodeError,
    'bad base64',
    /not valid base64/
  )
  throwsInstance(
    t,
    () => evidenceFromJson({ ...evidenceToJson(ev), bogus: 1 }),
    DecodeError,
    'unknown JSON field',
    /unknown field "bogus"/
  )
  throwsInstance(
    t,
    () => encodeEvidence({ ...ev, nonce: new Uint8Array(2) }),
    InvalidInputError,
    'encode validates too'
  )
})

t.test('size limits: total, event log, container log', async t => {
  throwsInstance(
    t,
    () => encodeEvidence({ ...ev, eventLog: new Uint8Array(EVIDENCE_LIMITS.maxEventLog + 1) }),
    TooLargeError,
    'event log > 512 KiB'
  )
  throwsInstance(t, () => decodeEvidence(new Uint8Array((1 << 20) + 1)), TooLargeError, 'wire > 1 MiB')
  throwsInstance(
    t,
    () => encodeEvidence({ ...ev, containerLog: 'x'.repeat(EVIDENCE_LIMITS.maxContainerLog + 1) }),
    TooLargeError,
    'container log > 256 KiB'
  )
  throwsInstance(t, () => evidenceFromJson('"' + 'x'.repeat(3 << 20) + '"'), TooLargeError, 'JSON text too large')
  const max = encodeEvidence({ ...ev, eventLog: new Uint8Array(EVIDENCE_LIMITS.maxEventLog) })
  t.ok(max.length < EVIDENCE_LIMITS.maxBytes, 'a maximal event log still fits')
})

t.test('fuzz: mutated and random wire bytes only throw InvalidInputError', async t => {
  const rnd = prng(0xe71de)
  const wire = encodeEvidence(ev)
  let bad = 0
  let ok = 0
  const text = new Uint8Array(Buffer.from(JSON.stringify(evidenceToJson(ev))))
  for (let i = 0; i < 3000; i++) {
    const input = i % 5 === 0 ? randomBytesFrom(rnd, Math.floor(rnd() * 64)) : mutate(rnd, wire)
    try {
      decodeEvidence(input)
      ok++
    } catch (err) {
      if (!(err instanceof InvalidInputError)) {
        bad++
        if (bad < 5) t.fail(String(err))
      }
    }
    if (i % 3 !== 0) continue // the JSON form: 1,000 mutations
    const mj = utf8.decode(mutate(rnd, text).filter(c => c < 0x80))
    try {
      evidenceFromJson(mj)
    } catch (err) {
      if (!(err instanceof InvalidInputError)) {
        bad++
        if (bad < 5) t.fail(`json: ${String(err)}`)
      }
    }
  }
  t.equal(bad, 0)
  t.ok(ok > 0, `${ok} mutated bundles still decoded`)
})

t.test('container log: canonical lines, digests, replay into PCR 13', async t => {
  t.equal(CONTAINER_PCR, 13)
  const text = containerLog()
  const entries = parseContainerLog(text)
  t.equal(entries.length, 2)
  t.equal(entries[0].record.digest, IMAGE_A)
  t.same(entries[0].eventDigest, sha256(utf8.encode(entries[0].line)))
  t.same(containerEventDigest(entries[1].line), entries[1].eventDigest)
  let pcr: Uint8Array = new Uint8Array(32)
  for (const e of entries) pcr = sha256(pcr, e.eventDigest)
  t.same(replayContainerLog(text), pcr)
  t.same(replayContainerLog(''), new Uint8Array(32), 'empty log: PCR untouched')
  t.same(parseContainerLog(text.trimEnd()).length, 2, 'final newline optional')
  t.equal(envDigest({ B: '2', A: '1' }), envDigest(['A=1', 'B=2']), 'env order does not matter')
  const line = containerLaunchLine({
    type: 'container.launch',
    image: 'x',
    digest: IMAGE_A,
    cid: 'bafy',
    args: ['a b'],
    envDigest: envDigest([])
  })
  t.equal(
    line,
    `{"type":"container.launch","image":"x","digest":"${IMAGE_A}","cid":"bafy","args":["a b"],"envDigest":"${envDigest([])}"}`
  )
})

t.test('container log: strict parser', async t => {
  const good = containerLog().split('\n')[0]
  const cases: Array<[string, string, RegExp]> = [
    ['spaces', good.replace(',"image"', ', "image"'), /canonical form/],
    [
      'key order',
      JSON.stringify((({ type, image, ...rest }) => ({ image, type, ...rest }))(JSON.parse(good))),
      /canonical form/
    ],
    ['extra field', good.replace('}', ',"x":1}'), /canonical form/],
    ['bad digest', good.replace(/sha256:[0-9a-f]{64}/, 'sha256:xyz'), /digest must be/],
    ['bad type', good.replace('container.launch', 'container.stop'), /type "container.stop"/],
    ['not JSON', '{nope', /not JSON/],
    ['array', '[1]', /not a JSON object/],
    ['empty line', good + '\n\n' + good, /empty line/]
  ]
  for (const [name, text, re] of cases) throwsInstance(t, () => parseContainerLog(text), DecodeError, name, re)
  throwsInstance(t, () => parseContainerLog((good + '\n').repeat(5000)), TooLargeError, 'too large')
  throwsInstance(
    t,
    () =>
      containerLaunchLine({
        type: 'container.launch',
        image: '',
        digest: IMAGE_A,
        cid: 'b',
        args: [],
        envDigest: envDigest([])
      }),
    InvalidInputError,
    'empty image name'
  )
  const rnd = prng(7)
  let bad = 0
  for (let i = 0; i < 3000; i++) {
    const m = Buffer.from(mutate(rnd, new Uint8Array(Buffer.from(containerLog())))).toString('utf8')
    try {
      parseContainerLog(m)
    } catch (err) {
      if (!(err instanceof InvalidInputError)) bad++
    }
  }
  t.equal(bad, 0, 'fuzz: only InvalidInputError')
})
