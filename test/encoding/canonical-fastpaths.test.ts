// The encoder's and decoder's fast paths (short ASCII text, cached map key order, 2/4-byte
// lengths) give exactly the bytes of the general path: checked against a plain reference encoder.
import t from 'tap'
import { encode, decode, type Canonical } from '../../encoding/canonical.ts'

const te = new TextEncoder()
function head(major: number, n: number): number[] {
  const m = major << 5
  if (n < 24) return [m | n]
  if (n < 0x100) return [m | 24, n]
  if (n < 0x10000) return [m | 25, n >> 8, n & 0xff]
  return [m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]
}
/** Reference: text strings, byte strings, small uints, arrays and maps only. */
function ref(v: Canonical): number[] {
  if (typeof v === 'number') return head(0, v)
  if (typeof v === 'string') {
    const b = te.encode(v)
    return [...head(3, b.length), ...b]
  }
  if (v instanceof Uint8Array) return [...head(2, v.length), ...v]
  if (Array.isArray(v)) return [...head(4, v.length), ...v.flatMap(x => ref(x as Canonical))]
  const entries = Object.entries(v as Record<string, Canonical | undefined>)
    .filter(([, x]) => x !== undefined)
    .map(([k, x]) => ({ k: ref(k), x: ref(x as Canonical) }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.k), Buffer.from(b.k)))
  return [...head(5, entries.length), ...entries.flatMap(e => [...e.k, ...e.x])]
}

t.test('text of every length class, ASCII and not, encodes like TextEncoder and round-trips', async t => {
  let bad = 0
  for (const n of [0, 1, 23, 24, 25, 63, 64, 65, 255, 256, 257, 70000]) {
    for (const tail of ['', 'é', '€', '😀', '\u007f', '\u0080']) {
      const s = 'k'.repeat(n) + tail
      const e = encode(s)
      if (Buffer.compare(Buffer.from(e), Buffer.from(ref(s))) !== 0) bad++
      if (decode(e) !== s) bad++
      const s2 = tail + 'x'.repeat(n)
      if (Buffer.compare(Buffer.from(encode(s2)), Buffer.from(ref(s2))) !== 0) bad++
      if (decode(encode(s2)) !== s2) bad++
    }
  }
  t.equal(bad, 0)
})

t.test('maps: key order by encoded key, undefined members omitted, same shape reused', async t => {
  const shapes: Array<Record<string, Canonical | undefined>> = [
    { b: 1, a: 2, aa: 3, z: undefined },
    { aa: 1, b: 2, a: undefined, z: 4 },
    { 10: 'x', 9: 'y', a: 'z' },
    { é: 1, e: 2, ée: 3 },
    { ['k'.repeat(30)]: 1, k: 2 }
  ]
  for (let round = 0; round < 3; round++) {
    for (const m of shapes) {
      t.same(
        Buffer.from(encode(m as Canonical)).toString('hex'),
        Buffer.from(ref(m as Canonical)).toString('hex'),
        JSON.stringify(Object.keys(m))
      )
      const back = decode(encode(m as Canonical)) as Record<string, Canonical>
      t.same(
        Object.keys(back).sort(),
        Object.keys(m)
          .filter(k => m[k] !== undefined)
          .sort()
      )
    }
  }
})

t.test('lengths needing 2 and 4 bytes', async t => {
  for (const n of [255, 256, 65535, 65536, 70000]) {
    const b = new Uint8Array(n).fill(7)
    t.same(
      Buffer.from(encode(b)).subarray(0, 5).toString('hex'),
      Buffer.from(ref(b)).subarray(0, 5).toString('hex'),
      `bytes ${n}`
    )
    t.same(decode(encode(b), { maxBytes: 1 << 20 }), b)
    t.same(Buffer.from(encode(n)).toString('hex'), Buffer.from(head(0, n)).toString('hex'), `uint ${n}`)
  }
})

t.test('invalid UTF-8 in short text is still refused', async t => {
  t.throws(() => decode(new Uint8Array([0x63, 0x61, 0xff, 0x62])), /invalid UTF-8/)
  t.throws(() => decode(new Uint8Array([0x62, 0xc3, 0x28])), /invalid UTF-8/)
  t.equal(decode(new Uint8Array([0x62, 0xc3, 0xa9])), 'é')
})

t.test('decoded maps have a null prototype; a "__proto__" key is an own property', async t => {
  const bytes = encode(JSON.parse('{"__proto__": 1, "a": {"constructor": 2}}') as Canonical)
  const m = decode(bytes) as Record<string, Canonical>
  t.equal(Object.getPrototypeOf(m), null)
  t.ok(Object.hasOwn(m, '__proto__'))
  t.equal(m.__proto__, 1)
  const inner = m.a as Record<string, Canonical>
  t.equal(Object.getPrototypeOf(inner), null)
  t.equal(inner.constructor, 2)
  t.notOk('toString' in m)
  t.same(Buffer.from(encode(m)).toString('hex'), Buffer.from(bytes).toString('hex'))
})

t.test('map key order is checked on the raw bytes', async t => {
  // {"b": 1, "a": 2} with keys out of order; and a duplicated key
  t.throws(() => decode(new Uint8Array([0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02])), /canonical order/)
  t.throws(() => decode(new Uint8Array([0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02])), /canonical order/)
  // shorter key first even if its bytes compare higher ("b" < "aa" by encoded length byte)
  t.same(decode(new Uint8Array([0xa2, 0x61, 0x62, 0x01, 0x62, 0x61, 0x61, 0x02])), { b: 1, aa: 2 })
})

t.test('shareBytes: byte strings are views into the input; default: independent copies', async t => {
  const input = encode({ a: new Uint8Array([1, 2, 3]), b: [new Uint8Array([4])] })
  const copy = decode(input) as { a: Uint8Array; b: Uint8Array[] }
  const view = decode(input, { shareBytes: true }) as { a: Uint8Array; b: Uint8Array[] }
  t.same(view, copy, 'same values')
  t.equal(view.a.buffer, input.buffer, 'a view shares the input buffer')
  t.not(copy.a.buffer, input.buffer, 'a copy does not')
  input[input.indexOf(2)] = 9
  t.same([...view.a], [1, 9, 3], 'the view sees a later change of the input')
  t.same([...copy.a], [1, 2, 3], 'the copy does not')
})
