// `quorate image serve` (issue 12): the real CLI serves what a home's IPFS store holds, prints the
// multiaddrs (--json), and a second store on 127.0.0.1 fetches the image from them, verified block
// by block; interrupted, it exits 0. A home without a store is refused and creates nothing.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { once } from 'node:events'
import { createImageStore } from '../../containers/store.ts'
import { busyboxImage } from '../containers/helpers.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const bin = join(root, 'bin', 'quorate')
const work = mkdtempSync(join(tmpdir(), 'quorate-image-serve-'))
t.teardown(() => {
  rmSync(work, { recursive: true, force: true })
})

t.test('serves the home store until interrupted; a peer fetches the image from the printed address', async t => {
  const home = join(work, 'pub')
  const img = busyboxImage({ testLabel: 'image-serve' })
  const pub = await createImageStore({ dir: join(home, 'ipfs') })
  const added = await pub.add(img.tar)
  await pub.stop()

  const child = spawn(bin, ['image', 'serve', '--home', home, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  const exited = once(child, 'exit')
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const lines = createInterface({ input: child.stdout })
  const [first] = (await once(lines, 'line')) as [string]
  const out = JSON.parse(first) as { multiaddrs: string[]; peerId: string; images: { cid: string; imageId?: string }[] }
  t.ok(out.multiaddrs.length > 0, 'prints where it listens')
  t.ok(
    out.multiaddrs.every(a => a.startsWith('/ip4/127.0.0.1/') && a.endsWith(`/p2p/${out.peerId}`)),
    'loopback multiaddrs with the peer id'
  )
  t.same(
    out.images.map(i => [i.cid, i.imageId]),
    [[added.cid, img.imageId]],
    'lists what it serves'
  )

  const peer = await createImageStore({ dir: join(work, 'peer') })
  try {
    const chunks: Uint8Array[] = []
    for await (const c of peer.fetch(added.cid, { providers: out.multiaddrs })) chunks.push(c)
    t.same(Buffer.concat(chunks), Buffer.from(img.tar), 'the peer got the image bytes from the served store')
  } finally {
    await peer.stop()
  }

  child.kill('SIGINT')
  const [code] = (await exited) as [number | null]
  t.equal(code, 0, `stops cleanly when interrupted (stderr: ${stderr})`)
})

t.test('a home without an IPFS store is refused and left untouched', async t => {
  const home = join(work, 'empty')
  const child = spawn(bin, ['image', 'serve', '--home', home], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  t.not(code, 0, 'exits non-zero')
  t.match(stderr, /no IPFS store here/, 'says why')
  t.notOk(existsSync(home), 'creates nothing')
})
