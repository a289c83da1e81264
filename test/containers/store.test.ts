// Real Helia stores on 127.0.0.1: import (same content → same CID), fetch over the CID-verified
// block stream and over bitswap, and refusal of blocks that do not match their CID.
import t from 'tap'
import { mkdtempSync, rmSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { createImageStore, createLocalLibp2p, type ImageStore } from '../../containers/store.ts'
import { BLOCKS_PROTOCOL } from '../../containers/transfer.ts'
import { ContentMismatchError, FetchError } from '../../containers/errors.ts'
import { buildImageTar } from '../../containers/image-tar.ts'
import { randomBytes } from 'node:crypto'

const dir = mkdtempSync(join(tmpdir(), 'quorate-store-'))
const stores: ImageStore[] = []
t.teardown(async () => {
  for (const s of stores) await s.stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
})
async function store(name: string): Promise<ImageStore> {
  const s = await createImageStore({ dir: join(dir, name) })
  stores.push(s)
  return s
}
async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of it) parts.push(Buffer.from(c))
  return Buffer.concat(parts)
}
function allFiles(d: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name)
    if (e.isDirectory()) out.push(...allFiles(p))
    else out.push(p)
  }
  return out
}

// ~3.5 MiB: a root node with several 1 MiB raw leaves
const img = buildImageTar({
  files: [{ path: 'data.bin', content: randomBytes(3_500_000) }],
  labels: { 'quorate.test': 'store' }
})
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

const a = await store('a')
const added = await a.add(img.tar)

t.test('import: CID, size and image ID in one pass; same content, same CID anywhere', async t => {
  t.equal(added.size, img.tar.length)
  t.equal(added.image.imageId, img.imageId)
  t.match(added.cid, /^bafy/)
  const again = await a.add(
    (async function* () {
      for (let i = 0; i < img.tar.length; i += 100_000) yield img.tar.subarray(i, i + 100_000)
    })()
  )
  t.equal(again.cid, added.cid, 'same bytes, other chunking of the input → same CID')
  const elsewhere = await store('a2')
  t.equal((await elsewhere.add(img.tar)).cid, added.cid, 'another node computes the same CID')
  t.equal(sha(await collect(a.cat(added.cid))), sha(img.tar), 'local cat returns the bytes')
  t.ok(await a.has(added.cid))
})

t.test('fetch over the verified block stream', async t => {
  const b = await store('b')
  t.notOk(await b.has(added.cid))
  let last = 0
  const got = await collect(
    b.fetch(added.cid, {
      providers: a.multiaddrs(),
      onProgress: p => {
        last = p.bytes
      }
    })
  )
  t.equal(sha(got), sha(img.tar))
  t.equal(last, img.tar.length, 'progress reaches the full size')
  t.ok(await b.has(added.cid), 'complete locally afterwards')
  t.equal(sha(await collect(b.cat(added.cid))), sha(img.tar), 'served from the local store afterwards')
})

t.test('fetch over bitswap (fallback path)', async t => {
  const c = await store('c')
  const got = await collect(c.fetch(added.cid, { providers: a.multiaddrs(), via: 'bitswap' }))
  t.equal(sha(got), sha(img.tar))
  t.ok(await c.has(added.cid))
})

t.test('a provider without the content, or none reachable', async t => {
  const d = await store('d')
  const other = await d.add(buildImageTar({ files: [{ path: 'x', content: randomBytes(10) }] }).tar)
  const e = await store('e')
  // a has not got `other`: the stream is refused, bitswap finds nothing before the signal ends
  await t.rejects(
    collect(e.fetch(other.cid, { providers: a.multiaddrs(), signal: AbortSignal.timeout(1500) })),
    'not found anywhere'
  )
  t.notOk(await e.has(other.cid))
  await t.rejects(
    collect(e.fetch(other.cid, { providers: ['/ip4/127.0.0.1/tcp/1/p2p/' + d.peerId] })),
    FetchError,
    'nothing reachable'
  )
  await t.rejects(collect(e.fetch('not-a-cid', {})), ContentMismatchError)
})

t.test(
  'providers are asked several at a time: one that never answers, ones that lack the image and a dead one do not hold up the one that has it',
  async t => {
    const g = await store('g')
    const silent = await createLocalLibp2p()
    t.teardown(async () => {
      await silent.stop()
    })
    let silentAsked = 0
    let silentReleased = false
    await silent.handle(BLOCKS_PROTOCOL, async stream => {
      silentAsked++
      // reads the request and never answers; ends when the requester gives up on it
      try {
        for await (const _ of stream) {
          /* drain */
        }
      } catch {}
      silentReleased = true
    })
    const lacking = [await store('lack-1'), await store('lack-2')]
    const providers = [
      ...silent.getMultiaddrs().map(m => m.toString()),
      '/ip4/127.0.0.1/tcp/1/p2p/' + lacking[0].peerId, // nobody listens there
      ...lacking.flatMap(l => l.multiaddrs()),
      ...a.multiaddrs()
    ]
    const got = await collect(g.fetch(added.cid, { providers, keep: false, signal: AbortSignal.timeout(60_000) }))
    t.equal(sha(got), sha(img.tar), 'fetched from the one provider that holds it, the silent one first in the list')
    t.equal(silentAsked, 1, 'the silent provider was asked')
    for (let i = 0; i < 100 && !silentReleased; i++) await new Promise(resolve => setTimeout(resolve, 20))
    t.ok(silentReleased, 'and its stream was closed once another provider answered')
  }
)

t.test('a block that does not match its CID is refused, nothing marked complete', async t => {
  const evil = await store('evil')
  await evil.add(img.tar)
  // tamper with the largest block file on the provider's disk (a 1 MiB raw leaf)
  const files = allFiles(join(dir, 'evil', 'blocks')).filter(f => f.endsWith('.data'))
  const leaf = files.sort((x, y) => statSync(y).size - statSync(x).size)[0]
  const bytes = randomBytes(statSync(leaf).size)
  writeFileSync(leaf, bytes)
  const f = await store('f')
  await t.rejects(collect(f.fetch(added.cid, { providers: evil.multiaddrs() })), ContentMismatchError)
  t.notOk(await f.has(added.cid), 'not complete')
  // the provider's own local read verifies too
  await t.rejects(collect(evil.cat(added.cid)), ContentMismatchError)
})

t.test('a store on a shared libp2p host leaves the host running when it stops', async t => {
  const { createLocalLibp2p } = await import('../../containers/store.ts')
  const host = await createLocalLibp2p()
  await host.start()
  t.teardown(async () => {
    await host.stop()
  })
  const s = await createImageStore({ dir: join(dir, 'shared'), libp2p: host })
  t.equal(s.peerId, host.peerId.toString(), 'the store speaks as the host')
  const got = await collect(s.fetch(added.cid, { providers: a.multiaddrs() }))
  t.equal(sha(got), sha(img.tar))
  await s.stop()
  t.equal(host.status, 'started', 'host still running')
  t.notOk(host.getProtocols().includes('/quorate/blocks/1.0.0'), 'our protocol handler is gone')
})
