// The length-prefixed framing over a (fake, in-memory) stream: arbitrary chunking, limits checked
// on the prefix, non-minimal and overlong prefixes, truncation, deadlines; bounded fuzz.
import t from 'tap'
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { Framed, encodeVarint, StreamClosedError, StreamTimeoutError } from '../../agent/p2p/framing.ts'
import { concat } from '../../encoding/bytes.ts'
import { DecodeError, TooLargeError, QuorateError } from '../../encoding/errors.ts'

/** A stream that yields the given chunks, then ends (or hangs when `hang`). */
function fakeStream(chunks: Uint8Array[], hang = false): Stream & { sent: Uint8Array[] } {
  const sent: Uint8Array[] = []
  const s = {
    sent,
    async *[Symbol.asyncIterator]() {
      for (const c of chunks) {
        await Promise.resolve()
        yield c
      }
      if (hang) await new Promise(() => {})
    },
    send(d: Uint8Array | Uint8ArrayList) {
      sent.push(d instanceof Uint8Array ? d : d.subarray())
      return true
    },
    async onDrain() {},
    async close() {},
    abort() {}
  }
  return s as unknown as Stream & { sent: Uint8Array[] }
}

const frame = (p: Uint8Array): Uint8Array => concat([encodeVarint(p.length), p])

t.test('frames across arbitrary chunk boundaries', async t => {
  const a = new Uint8Array(300).fill(1)
  const b = new Uint8Array(5).fill(2)
  const all = concat([frame(a), frame(b), frame(new Uint8Array(0))])
  for (const size of [1, 2, 3, 7, 301, all.length]) {
    const chunks: Uint8Array[] = []
    for (let i = 0; i < all.length; i += size) chunks.push(all.subarray(i, i + size))
    const f = new Framed(fakeStream(chunks))
    t.same(await f.read(1000), a, `chunk size ${size}`)
    t.same(await f.read(1000), b)
    t.same(await f.read(1000), new Uint8Array(0))
    await t.rejects(f.read(1000), StreamClosedError, 'end of stream')
  }
})

t.test('limits and malformed prefixes', async t => {
  await t.rejects(
    new Framed(fakeStream([encodeVarint(1001)])).read(1000),
    TooLargeError,
    'limit checked on the prefix alone'
  )
  await t.rejects(
    new Framed(fakeStream([new Uint8Array([0x85, 0x00, 1, 2, 3, 4, 5])])).read(1000),
    DecodeError,
    'non-minimal prefix'
  )
  await t.rejects(
    new Framed(fakeStream([new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])])).read(1 << 30),
    DecodeError,
    'overlong prefix'
  )
  await t.rejects(
    new Framed(fakeStream([frame(new Uint8Array(10)).subarray(0, 5)])).read(1000),
    StreamClosedError,
    'truncated'
  )
  // (AbortSignal.timeout's timer is unref'd; a plain timer keeps this test process alive)
  const ac = new AbortController()
  setTimeout(() => {
    ac.abort(new Error('deadline'))
  }, 20)
  await t.rejects(new Framed(fakeStream([], true)).read(1000, ac.signal), StreamTimeoutError, 'deadline')
  const s = fakeStream([])
  await new Framed(s).write(new Uint8Array([9, 9]))
  t.same(concat(s.sent), new Uint8Array([2, 9, 9]), 'write prefixes the length')
})

t.test('bounded fuzz: random bytes never crash or hang', async t => {
  let x = 42
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x % n
  }
  let frames = 0
  let rejected = 0
  for (let i = 0; i < 500; i++) {
    const bytes = Uint8Array.from({ length: rnd(40) }, () => rnd(256))
    const f = new Framed(fakeStream([bytes.subarray(0, rnd(bytes.length + 1)), bytes.subarray(rnd(bytes.length + 1))]))
    for (;;) {
      try {
        await f.read(16)
        frames++
      } catch (err) {
        if (!(err instanceof QuorateError)) throw err
        rejected++
        break
      }
    }
  }
  t.ok(rejected === 500, `every stream ended in a clean error (${frames} frames read on the way)`)
})
