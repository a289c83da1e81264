// The AK cache in attestation/quote.ts (parsed TPMT_PUBLIC and its KeyObject, kept per AK bytes in
// a bounded LRU): a cached AK never stands in for different bytes — a caller reusing its buffer,
// an AK evicted and seen again, an AK whose key could not be built — so the cache changes speed,
// never verdicts.
import t from 'tap'
import { akCacheStats, checkQuote } from '../../attestation/quote.ts'
import { marshalPublic } from '../../attestation/tpm2.ts'
import { softAk, forgeQuote, type ForgedQuote } from './forge.ts'

const nonce = new Uint8Array(32).fill(0x42)
const pcrs = new Map<number, Uint8Array>([[7, new Uint8Array(32).fill(7)]])
const input = (q: ForgedQuote, akPublic = q.akPublic) => ({
  attest: q.attest,
  signature: q.signature,
  akPublic,
  pcrs: q.pcrs
})
const kinds = (q: ForgedQuote, akPublic?: Uint8Array) =>
  checkQuote(input(q, akPublic), { nonce }).problems.map(p => p.kind)

t.test('a caller reusing its AK buffer: each check uses the bytes it holds now', async t => {
  const a = forgeQuote(softAk(), { nonce, pcrs })
  const b = forgeQuote(softAk(), { nonce, pcrs })
  t.equal(a.akPublic.length, b.akPublic.length, 'same size: only the contents differ')
  const buf = a.akPublic.slice()
  t.same(kinds(a, buf), [], "quote A under A's AK")
  buf.set(b.akPublic)
  t.ok(kinds(a, buf).includes('signature'), "quote A under B's AK in the same buffer fails")
  t.same(kinds(b, buf), [], "quote B under B's AK")
  buf.set(a.akPublic)
  t.same(kinds(a, buf), [], 'and back')
})

t.test('more AKs than the cache holds: an evicted AK is rebuilt and judged the same', async t => {
  const first = forgeQuote(softAk(), { nonce, pcrs })
  const other = forgeQuote(softAk(), { nonce, pcrs })
  t.same(kinds(first), [])
  t.ok(kinds(other, first.akPublic).includes('signature'), "another key's quote fails under the first AK")
  // more than the cache holds: the first AK is the least recently used and goes
  let passed = 0
  const n = akCacheStats().max + 76
  const built = akCacheStats().built
  for (let i = 0; i < n; i++) if (kinds(forgeQuote(softAk(), { nonce, pcrs })).length === 0) passed++
  t.equal(passed, n)
  t.same(kinds(first), [], 'the first AK again: verifies')
  t.equal(akCacheStats().built, built + n + 1, 'after it was evicted and built again')
  t.ok(kinds(other, first.akPublic).includes('signature'), 'and still refuses the other key')
})

t.test('an AK whose key cannot be built is reported on every check, not only the first', async t => {
  const ak = softAk()
  const q = forgeQuote(ak, { nonce, pcrs })
  // a point not on P-256
  const bad = marshalPublic({ ...ak.pub, y: ak.pub.y.map((v, i) => (i === ak.pub.y.length - 1 ? v ^ 1 : v)) })
  for (let i = 0; i < 3; i++) t.ok(kinds(q, bad).includes('ak'), `check ${i + 1}: the AK is reported`)
})

t.test('least recently used goes first: an AK checked all along survives more AKs than the cache holds', async t => {
  const hot = forgeQuote(softAk(), { nonce, pcrs })
  t.same(kinds(hot), [])
  const { max } = akCacheStats()
  let passed = 0
  for (let i = 0; i < max + 100; i++) {
    if (kinds(forgeQuote(softAk(), { nonce, pcrs })).length === 0) passed++
    if (i % 100 === 0) t.same(kinds(hot), [], `the hot AK after ${i} others`)
  }
  t.equal(passed, max + 100)
  const before = akCacheStats()
  t.equal(before.size, max, 'the cache is full and no larger')
  t.same(kinds(hot), [])
  t.equal(akCacheStats().built, before.built, 'the hot AK was still cached: nothing parsed again')
})
