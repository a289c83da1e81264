import t from 'tap'
import { randomBytes } from 'node:crypto'
import { encode, decode, fromHex, toHex, DecodeError, TooLargeError } from '../../encoding/index.ts'
import type { Canonical } from '../../encoding/index.ts'

t.test('round trip and one encoding per value', async t => {
  const v: Canonical = {
    z: [1, -1, 23, 24, 255, 256, 65535, 65536, 2 ** 32, -(2 ** 40)],
    a: 'héllo',
    m: { y: true, x: null },
    b: new Uint8Array([0, 1, 2]),
    big: 2n ** 63n
  }
  const e = encode(v)
  t.same(decode(e), v)
  t.same(encode(decode(e)), e, 're-encoding a decoded value gives the same bytes')
  t.same(encode({ b: 1, a: 2 }), encode({ a: 2, b: 1 }), 'key order does not matter')
  t.equal(toHex(encode({ aa: 1, b: 2 })), 'a261620262616101', 'shorter keys sort first (RFC 8949 §4.2.1)')
  t.same(encode({ a: 1, u: undefined }), encode({ a: 1 }), 'undefined members are omitted')
})

t.test('strict decoder refuses what an honest encoder never writes', async t => {
  const bad: Array<[string, string]> = [
    ['1817', 'non-shortest integer'],
    ['a2616201616101', 'map keys are not in canonical order'],
    ['a2616101616101', 'duplicated'],
    ['9f01ff', 'indefinite'],
    ['f93c00', 'floats'],
    ['c11a00000000', 'tags'],
    ['0102', 'trailing'],
    ['5a00010000', 'length exceeds'],
    ['62c328', 'invalid UTF-8'],
    ['a10101', 'map keys must be text'],
    ['', 'empty']
  ]
  for (const [hex, why] of bad)
    t.throws(() => decode(fromHex(hex)), { name: 'DecodeError', message: new RegExp(why) }, `${hex}: ${why}`)
  t.throws(() => decode(new Uint8Array(100), { maxBytes: 10 }), TooLargeError)
  let deep = new Uint8Array([0x01])
  for (let i = 0; i < 40; i++) deep = new Uint8Array([0x81, ...deep])
  t.throws(() => decode(deep), /nesting too deep/)
  t.throws(() => decode(fromHex('9a00010000'), { maxItems: 10 }), DecodeError)
  t.throws(() => encode(1.5), /not a safe integer/)
  t.throws(() => encode(new Date() as never), /only plain objects/)
})

t.test('fuzz: random and mutated inputs only ever throw DecodeError', async t => {
  const seeds = [
    encode({ a: [1, 2, { b: new Uint8Array(40) }], c: 'x'.repeat(30), d: -5n }),
    encode([true, false, null, 'q'])
  ]
  let ok = 0
  let rejected = 0
  for (let i = 0; i < 4000; i++) {
    let input: Uint8Array
    if (i % 2 === 0) input = new Uint8Array(randomBytes(1 + (i % 64)))
    else {
      const s = seeds[i % seeds.length]
      input = new Uint8Array(s)
      const flips = 1 + (i % 4)
      for (let j = 0; j < flips; j++) input[(i * 7919 + j * 104729) % input.length] ^= 1 + ((i + j) % 255)
      if (i % 5 === 0) input = input.subarray(0, (i * 31) % input.length)
    }
    try {
      decode(input)
      ok++
    } catch (err) {
      if (!(err instanceof DecodeError)) {
        t.fail(`unexpected ${String(err)} for ${toHex(input)}`)
        return
      }
      rejected++
    }
  }
  t.equal(ok + rejected, 4000)
  t.ok(rejected > 1000, `most corrupted inputs are rejected (${rejected})`)
})
