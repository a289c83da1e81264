// The block-stream protocol against hostile input: random blocks under valid CIDs, random frame
// streams, and a misbehaving provider on a real libp2p connection. Every failure must be a
// QuorateError (refuse, change nothing), never a crash or a hang.
import t from 'tap'
import { randomBytes, createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { multiaddr } from '@multiformats/multiaddr'
import { verifyBlock, askForBlocks, receiveDag, checkCid } from '../../containers/transfer.ts'
import { FrameReader, StreamClosedError } from '../../encoding/frames.ts'
import { createLocalLibp2p } from '../../containers/store.ts'
import { DecodeError, QuorateError, TooLargeError } from '../../encoding/errors.ts'
import { encode } from '../../encoding/canonical.ts'
import { ContentMismatchError } from '../../containers/errors.ts'

function cidOf(codec: number, bytes: Uint8Array): CID {
  return CID.createV1(codec, Digest.create(0x12, createHash('sha256').update(bytes).digest()))
}

t.test('verifyBlock: hash mismatch, garbage dag-pb, wrong UnixFS types', async t => {
  const leaf = randomBytes(100)
  const cid = cidOf(0x55, leaf)
  t.same(verifyBlock(cid, leaf, true).data, leaf)
  t.throws(() => verifyBlock(cid, randomBytes(100), true), ContentMismatchError)
  const dir = dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: [] }))
  t.throws(() => verifyBlock(cidOf(0x70, dir), dir, true), /directory, not a file/)
  t.throws(() => checkCid(CID.createV1(0x71, Digest.create(0x12, new Uint8Array(32)))), /codec/)
  let crashes = 0
  for (let i = 0; i < 500; i++) {
    const b = randomBytes(Math.floor(Math.random() * 300))
    try {
      verifyBlock(cidOf(0x70, b), b, i % 2 === 0)
    } catch (err) {
      if (!(err instanceof QuorateError)) crashes++
    }
  }
  t.equal(crashes, 0, 'random dag-pb blocks with matching hashes: only QuorateErrors')
})

t.test('FrameReader: random streams end in frames, a clean end, or a QuorateError', async t => {
  let crashes = 0
  for (let i = 0; i < 300; i++) {
    const chunks = Array.from({ length: 1 + Math.floor(Math.random() * 5) }, () =>
      randomBytes(Math.floor(Math.random() * 200))
    )
    const r = new FrameReader(
      (async function* () {
        yield* chunks
      })()
    )
    try {
      for (let k = 0; k < 50 && (await r.next(1000)) !== undefined; k++) {
        /* drain */
      }
    } catch (err) {
      if (!(err instanceof QuorateError)) crashes++
    }
  }
  t.equal(crashes, 0)
})

t.test('FrameReader: frame headers are strict — minimal varints of at most 5 bytes', async t => {
  const read = async (...chunks: number[][]): Promise<Uint8Array | undefined> =>
    await new FrameReader(
      (async function* () {
        for (const c of chunks) yield Uint8Array.from(c)
      })()
    ).next(1 << 30)
  t.same(await read([0x03, 1, 2, 3]), Uint8Array.from([1, 2, 3]), 'a minimal header')
  await t.rejects(read([0x83, 0x00, 1, 2, 3]), DecodeError, 'a padded (non-minimal) length is refused, not read as 3')
  await t.rejects(read([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), DecodeError, 'a 6-byte header is refused')
  await t.rejects(read([0x81]), StreamClosedError, 'the stream ends inside the header')
  await t.rejects(
    new FrameReader(
      (async function* () {
        yield Uint8Array.of(0x81, 0x01)
      })()
    ).next(128),
    TooLargeError,
    'a frame over the limit, refused on its header'
  )
  t.same(
    await read(
      [0x80],
      [0x01],
      Array.from({ length: 128 }, () => 7)
    ),
    new Uint8Array(128).fill(7),
    'a header that arrives in two chunks'
  )
})

t.test('FrameReader.nextList: pieces as received, joined when there are too many', async t => {
  const a = randomBytes(3000)
  const b = randomBytes(40)
  // a frame of 3000 bytes in 3 pieces, then one of 40 bytes in 40 one-byte pieces... and 1000 of them
  const few = [Uint8Array.from([0xb8, 0x17]), a.subarray(0, 1000), a.subarray(1000, 2000), a.subarray(2000)]
  const many = [Uint8Array.from([40]), ...Array.from(b, x => Uint8Array.from([x]))]
  const big = randomBytes(1000)
  const tiny = [Uint8Array.from([0xe8, 0x07]), ...Array.from(big, x => Uint8Array.from([x]))]
  const r = new FrameReader(
    (async function* () {
      yield* few
      yield* many
      yield* tiny
    })()
  )
  const f1 = await r.nextList(4096)
  t.equal(f1?.length, 3, 'three pieces, not joined')
  t.same(Buffer.concat(f1 ?? []), a)
  const f2 = await r.nextList(4096)
  t.same(Buffer.concat(f2 ?? []), b)
  const f3 = await r.nextList(4096)
  t.equal(f3?.length, 1, '1000 one-byte pieces are joined into one')
  t.same(f3?.[0], big)
  t.equal(await r.nextList(4096), undefined, 'clean end')
})

t.test('a misbehaving provider on a real connection', async t => {
  const a = await createLocalLibp2p()
  const b = await createLocalLibp2p()
  t.teardown(async () => {
    await a.stop()
    await b.stop()
  })
  const leaf = randomBytes(5000)
  const root = cidOf(0x55, leaf)
  const behaviours: Record<string, (send: (x: Uint8Array) => void) => void> = {
    'garbage status': send => {
      send(Uint8Array.from([5, 1, 2, 3, 4, 5]))
    },
    refusal: send => {
      send(frame(encode({ v: 1, ok: false, error: 'not found' })))
    },
    'other bytes': send => {
      send(frame(encode({ v: 1, ok: true })))
      send(frame(randomBytes(5000)))
    },
    'huge frame length': send => {
      send(frame(encode({ v: 1, ok: true })))
      send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]))
    },
    'extra block': send => {
      send(frame(encode({ v: 1, ok: true })))
      send(frame(leaf))
      send(frame(leaf))
    },
    truncated: send => {
      send(frame(encode({ v: 1, ok: true })))
      send(frame(leaf).subarray(0, 100))
    },
    'random noise': send => {
      send(randomBytes(3000))
    }
  }
  for (const [name, behave] of Object.entries(behaviours)) {
    const proto = `/quorate/test-evil/${name.replace(/ /g, '-')}`
    await a.handle(proto, async stream => {
      for await (const _ of stream) break // the request
      behave(x => {
        stream.send(x)
      })
      await stream.close()
    })
    const s = await b.dialProtocol(multiaddr(a.getMultiaddrs()[0].toString()), proto)
    let stored = 0
    try {
      const answer = await askForBlocks(s, root)
      if (answer.kind !== 'blocks') throw new Error('a bulk offer that was not asked for') // askForBlocks refuses it first
      for await (const _ of receiveDag(answer.reader, root, {
        store: async () => {
          stored++
        }
      })) {
        /* consume */
      }
      t.fail(`${name}: accepted`)
    } catch (err) {
      t.ok(
        err instanceof QuorateError,
        `${name}: refused with ${(err as Error).name}: ${(err as Error).message.slice(0, 80)}`
      )
    }
    if (name !== 'extra block' && name !== 'truncated') t.equal(stored, 0, `${name}: nothing stored`)
  }
})

function frame(b: Uint8Array): Uint8Array {
  const len: number[] = []
  let n = b.length
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  len.push(n)
  const out = new Uint8Array(len.length + b.length)
  out.set(len)
  out.set(b, len.length)
  return out
}
