// Unsigned varints: exact bytes at every length boundary, round trips, strict decoding
// (incomplete, overlong, non-minimal, above 2^53 - 1), refusal of values that are not
// non-negative safe integers; bounded fuzz of the decoder.
import t from 'tap'
import { Uint8ArrayList } from 'uint8arraylist'
import { encodeUvarint, decodeUvarint, MAX_UVARINT_BYTES } from '../../encoding/varint.ts'
import { DecodeError, InvalidInputError } from '../../encoding/errors.ts'

t.test('boundaries: bytes, length and round trip', async t => {
  const cases: Array<[number, number[]]> = [
    [0, [0x00]],
    [1, [0x01]],
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [300, [0xac, 0x02]],
    [16383, [0xff, 0x7f]],
    [16384, [0x80, 0x80, 0x01]],
    [2 ** 21 - 1, [0xff, 0xff, 0x7f]],
    [2 ** 21, [0x80, 0x80, 0x80, 0x01]],
    [2 ** 31 - 1, [0xff, 0xff, 0xff, 0xff, 0x07]],
    [2 ** 31, [0x80, 0x80, 0x80, 0x80, 0x08]],
    [2 ** 32 - 1, [0xff, 0xff, 0xff, 0xff, 0x0f]],
    [2 ** 32, [0x80, 0x80, 0x80, 0x80, 0x10]],
    [2 ** 35 - 1, [0xff, 0xff, 0xff, 0xff, 0x7f]],
    [2 ** 35, [0x80, 0x80, 0x80, 0x80, 0x80, 0x01]],
    [Number.MAX_SAFE_INTEGER, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]]
  ]
  for (const [n, bytes] of cases) {
    const enc = encodeUvarint(n)
    t.same([...enc], bytes, `${n} encodes as expected`)
    t.same(decodeUvarint(enc), { value: n, length: bytes.length }, `${n} round-trips`)
    t.same(
      decodeUvarint(new Uint8ArrayList(enc.subarray(0, 1), enc.subarray(1), Uint8Array.of(7))),
      { value: n, length: bytes.length },
      `${n} from a Uint8ArrayList with trailing bytes`
    )
  }
  t.equal(encodeUvarint(Number.MAX_SAFE_INTEGER).length, MAX_UVARINT_BYTES)
})

t.test('encode refuses what is not a non-negative safe integer', async t => {
  for (const bad of [-1, -0.5, 0.5, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, NaN, Infinity, -Infinity]) {
    t.throws(() => encodeUvarint(bad), InvalidInputError, `${bad} refused`)
  }
  t.throws(() => encodeUvarint(-1), /-1 is not a non-negative safe integer/, 'the message names the value')
})

t.test('decode: incomplete, overlong, non-minimal, too large', async t => {
  t.equal(decodeUvarint(new Uint8Array(0)), undefined, 'empty: needs more')
  t.equal(decodeUvarint(Uint8Array.of(0x80)), undefined, 'ends inside: needs more')
  t.equal(decodeUvarint(Uint8Array.of(0xff, 0xff, 0xff, 0xff), { maxBytes: 5 }), undefined, 'below the cap: needs more')
  t.throws(
    () => decodeUvarint(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x01), { maxBytes: 5 }),
    DecodeError,
    'longer than the cap'
  )
  t.throws(
    () => decodeUvarint(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80), { maxBytes: 5, what: 'length' }),
    /length is longer than 5 bytes/,
    'refused once the cap is reached, before the end is seen'
  )
  t.throws(() => decodeUvarint(new Uint8Array(9).fill(0x80)), DecodeError, 'default cap of 8 bytes')
  t.throws(() => decodeUvarint(Uint8Array.of(0x85, 0x00)), /not minimal/, 'non-minimal')
  t.throws(() => decodeUvarint(Uint8Array.of(0x80, 0x80, 0x00)), DecodeError, 'non-minimal zero')
  t.same(decodeUvarint(Uint8Array.of(0x00, 0x00)), { value: 0, length: 1 }, 'a single zero byte is minimal')
  t.throws(
    () => decodeUvarint(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10)),
    /exceeds 9007199254740991/,
    '2^53 refused'
  )
  t.throws(
    () => decodeUvarint(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)),
    DecodeError,
    '2^56 - 1 refused'
  )
  for (const m of [0, 9, 1.5])
    t.throws(() => decodeUvarint(Uint8Array.of(1), { maxBytes: m }), InvalidInputError, `maxBytes ${m} refused`)
})

t.test('bounded fuzz: the decoder never crashes; what it accepts re-encodes to the same bytes', async t => {
  let x = 7
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x % n
  }
  let accepted = 0
  let refused = 0
  let incomplete = 0
  for (let k = 0; k < 20000; k++) {
    const len = rnd(10)
    const b = new Uint8Array(len)
    for (let i = 0; i < len; i++) b[i] = rnd(3) === 0 ? rnd(256) : rnd(2) === 0 ? 0x80 | rnd(128) : rnd(128)
    let r: { value: number; length: number } | undefined
    try {
      r = decodeUvarint(b)
    } catch (err) {
      if (!(err instanceof DecodeError)) {
        t.fail(`unexpected ${String(err)}`)
        return
      }
      refused++
      continue
    }
    if (r === undefined) {
      incomplete++
      continue
    }
    accepted++
    if (!Buffer.from(encodeUvarint(r.value)).equals(Buffer.from(b.subarray(0, r.length)))) {
      t.fail(`re-encoding ${r.value} differs`)
      return
    }
  }
  t.ok(
    accepted > 0 && refused > 0 && incomplete > 0,
    `accepted ${accepted}, refused ${refused}, incomplete ${incomplete}`
  )
})
