// Pure tests: the streaming tar reader, the image ID computed while streaming, the container
// event log format and replay. Archives come from our builder and from GNU tar (gnu and pax
// formats, long names), plus a bounded fuzz of random and mutated input.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { TarReader, type TarEntry } from '../../containers/tar.ts'
import { ImageTarInspector, buildImageTar, buildTar, inspectImageTar } from '../../containers/image-tar.ts'
import { InvalidImageTarError } from '../../containers/errors.ts'
import { QuorateError } from '../../encoding/errors.ts'
import { launchEvent, memoryEventLog } from '../../containers/events.ts'
import {
  containerEventDigest as eventDigest,
  containerLaunchLine as eventLine,
  envDigest,
  parseContainerLog,
  replayContainerLog
} from '../../attestation/containerlog.ts'
import { sha256, concat, toHex, utf8 } from '../../encoding/bytes.ts'

const te = new TextEncoder()

function smallImage(layout: 'oci' | 'legacy' = 'oci', body = 'hi'): ReturnType<typeof buildImageTar> {
  return buildImageTar({
    files: [{ path: 'www' }, { path: 'www/index.html', content: te.encode(body) }],
    entrypoint: ['/bin/true'],
    layout,
    labels: { 'quorate.test': 'unit' }
  })
}

function listEntries(tar: Uint8Array, chunk = tar.length): { entries: TarEntry[]; data: Map<string, Buffer> } {
  const entries: TarEntry[] = []
  const data = new Map<string, Buffer>()
  const r = new TarReader({
    entry: e => {
      entries.push(e)
      const parts: Buffer[] = []
      return {
        data: c => {
          parts.push(Buffer.from(c))
        },
        end: () => {
          data.set(e.name, Buffer.concat(parts))
        }
      }
    }
  })
  for (let i = 0; i < tar.length; i += chunk) r.write(tar.subarray(i, i + chunk))
  r.end()
  return { entries, data }
}

t.test('image ID equals sha256 of the config, both layouts, any chunking', async t => {
  for (const layout of ['oci', 'legacy'] as const) {
    const img = smallImage(layout)
    t.equal(img.imageId, 'sha256:' + createHash('sha256').update(img.config).digest('hex'))
    for (const chunk of [1, 7, 511, 512, 513, 4096, img.tar.length]) {
      const ins = new ImageTarInspector()
      for (let i = 0; i < img.tar.length; i += chunk) ins.update(img.tar.subarray(i, i + chunk))
      const info = ins.finish()
      t.equal(info.imageId, img.imageId, `${layout} chunk ${chunk}`)
      t.equal(info.size, img.tar.length)
    }
    const info = await inspectImageTar(
      (async function* () {
        yield img.tar
      })()
    )
    t.same(info.repoTags, [])
    t.equal(info.layers.length, 1)
  }
})

t.test('manifest.json before the config is fine (decided at the end)', async t => {
  const img = smallImage()
  const { entries, data } = listEntries(img.tar)
  const files = entries.map(e => ({
    path: e.name,
    type: e.type === 'directory' ? ('directory' as const) : ('file' as const),
    content: e.type === 'directory' ? undefined : data.get(e.name)
  }))
  const reordered = [
    files.find(f => f.path === 'manifest.json'),
    ...files.filter(f => f.path !== 'manifest.json')
  ].filter(f => f !== undefined)
  t.equal((await inspectImageTar(buildTar(reordered))).imageId, img.imageId)
})

t.test('the last entry for a path wins, as on extraction', async t => {
  const img = smallImage()
  const other = smallImage('oci', 'other')
  const { entries, data } = listEntries(img.tar)
  const cfgPath =
    entries.find(e => e.name.startsWith('blobs/sha256/') && data.get(e.name)?.equals(Buffer.from(img.config)))?.name ??
    ''
  t.not(cfgPath, '')
  const files = entries.map(e => ({
    path: e.name,
    type: e.type === 'directory' ? ('directory' as const) : ('file' as const),
    content: e.type === 'directory' ? undefined : data.get(e.name)
  }))
  // a second entry with the same path and other content, after the first
  const tar = buildTar([...files, { path: cfgPath, content: other.config }])
  t.equal((await inspectImageTar(tar)).imageId, other.imageId)
})

t.test('GNU and pax archives with long names from GNU tar', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-tar-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  const long = 'a'.repeat(120) + '/' + 'b'.repeat(130) + '.json'
  mkdirSync(join(dir, 'src', 'a'.repeat(120)), { recursive: true })
  const content = randomBytes(5000)
  writeFileSync(join(dir, 'src', long), content)
  writeFileSync(join(dir, 'src', 'small.txt'), 'x')
  for (const format of ['gnu', 'pax', 'ustar']) {
    if (format === 'ustar') continue // names > 255 bytes do not fit ustar
    const out = join(dir, `${format}.tar`)
    execFileSync('tar', [`--format=${format}`, '-C', join(dir, 'src'), '-cf', out, '.'])
    const { entries, data } = listEntries(new Uint8Array(readFileSync(out)), 333)
    const e = entries.find(x => x.name === './' + long)
    t.ok(e, `${format}: long name read`)
    t.ok(data.get('./' + long)?.equals(content), `${format}: data intact`)
    t.ok(
      entries.some(x => x.name === './small.txt'),
      `${format}: short name read`
    )
  }
})

t.test('refusals', async t => {
  const img = smallImage()
  const { entries, data } = listEntries(img.tar)
  const files = entries.map(e => ({
    path: e.name,
    type: e.type === 'directory' ? ('directory' as const) : ('file' as const),
    content: e.type === 'directory' ? undefined : data.get(e.name)
  }))
  const manifest = JSON.parse(data.get('manifest.json')?.toString() ?? '[]') as { Config: string }[]
  const without = (p: string): typeof files => files.filter(f => f.path !== p)

  await t.rejects(inspectImageTar(buildTar(without('manifest.json'))), InvalidImageTarError, 'no manifest')
  await t.rejects(inspectImageTar(buildTar(without(manifest[0].Config))), InvalidImageTarError, 'config missing')
  await t.rejects(
    inspectImageTar(
      buildTar([
        ...without('manifest.json'),
        { path: 'manifest.json', content: te.encode(JSON.stringify([manifest[0], manifest[0]])) }
      ])
    ),
    /exactly one image/,
    'two images'
  )
  await t.rejects(
    inspectImageTar(
      buildTar([...without('manifest.json'), { path: 'manifest.json', content: te.encode('{not json') }])
    ),
    InvalidImageTarError,
    'bad JSON'
  )
  // config reached through a symlink (docker load would follow it to other bytes)
  await t.rejects(
    inspectImageTar(buildTar([...files, { path: manifest[0].Config, type: 'symlink', linkname: 'manifest.json' }])),
    /link/,
    'symlinked config'
  )
  await t.rejects(
    inspectImageTar(
      buildTar([
        ...files.filter(f => !f.path.startsWith('blobs')),
        { path: 'blobs', type: 'symlink', linkname: '/tmp' },
        ...files.filter(f => f.path.startsWith('blobs/sha256/'))
      ])
    ),
    InvalidImageTarError,
    'symlinked parent dir'
  )
  await t.rejects(
    inspectImageTar(buildTar([...files, { path: '../escape.json', content: te.encode('{}') }])),
    /escapes/,
    'path escape'
  )
  // truncated, and a single zero block
  await t.rejects(inspectImageTar(img.tar.subarray(0, img.tar.length - 1024)), /truncated/, 'no end marker')
  await t.rejects(inspectImageTar(img.tar.subarray(0, img.tar.length - 512)), /single zero block/, 'half an end marker')
  // corrupted header checksum
  const bad = img.tar.slice()
  bad[10] ^= 0xff
  await t.rejects(inspectImageTar(bad), /checksum/, 'checksum')
  // garbage after the end
  await t.rejects(inspectImageTar(concat([img.tar, te.encode('junk')])), /after the end/, 'trailing data')
  t.equal(
    (await inspectImageTar(concat([img.tar, new Uint8Array(9216)]))).imageId,
    img.imageId,
    'zero padding to a record size is fine'
  )
})

t.test('fuzz: random and mutated archives never crash or hang', async t => {
  const img = smallImage()
  let rejected = 0
  const started = Date.now()
  for (let i = 0; i < 400; i++) {
    let input: Uint8Array
    if (i % 4 === 0) input = randomBytes(Math.floor(Math.random() * 4096))
    else {
      input = img.tar.slice(0, i % 7 === 0 ? Math.floor(Math.random() * img.tar.length) : img.tar.length)
      const flips = 1 + Math.floor(Math.random() * 8)
      for (let k = 0; k < flips; k++) {
        // bias mutations to headers (the first 512 bytes of each entry), where parsing happens
        const pos =
          Math.random() < 0.5
            ? Math.floor(Math.random() * Math.min(input.length, 3072))
            : Math.floor(Math.random() * input.length)
        if (input.length > 0) input[pos] = Math.floor(Math.random() * 256)
      }
    }
    try {
      const ins = new ImageTarInspector()
      for (let p = 0; p < input.length; p += 777) ins.update(input.subarray(p, p + 777))
      ins.finish()
    } catch (err) {
      if (!(err instanceof QuorateError)) {
        t.fail(`unexpected error type: ${String(err)}`)
        return
      }
      rejected++
    }
  }
  t.ok(rejected > 100 && rejected < 400, `inputs rejected cleanly or accepted (${rejected}/400 rejected)`)
  t.ok(Date.now() - started < 60_000, 'bounded time')
})

t.test('container event log: line format, digest and replay', async t => {
  const ev = launchEvent({
    image: 'web',
    digest: 'sha256:' + 'a'.repeat(64),
    cid: 'bafy',
    args: ['-p', '127.0.0.1:80'],
    env: ['A=1', 'SECRET=x']
  })
  const line = eventLine(ev)
  t.equal(
    line,
    `{"type":"container.launch","image":"web","digest":"sha256:${'a'.repeat(64)}","cid":"bafy","args":["-p","127.0.0.1:80"],"envDigest":"${envDigest(['A=1', 'SECRET=x'])}"}`
  )
  t.notMatch(line, /SECRET=x/, 'env values are not in the log')
  t.not(envDigest(['A=1']), envDigest(['A=2']))
  t.same(eventDigest(line), sha256(utf8.encode(line)))
  const log = memoryEventLog()
  let pcr: Uint8Array = new Uint8Array(32)
  for (const l of [line, eventLine({ ...ev, image: 'other' })]) {
    await log.append(l)
    pcr = sha256(concat([pcr, eventDigest(l)]))
  }
  t.equal(toHex(replayContainerLog(await log.read())), toHex(pcr))
  t.equal(parseContainerLog(await log.read()).length, 2)
  t.throws(() => parseContainerLog('{"type":"other"}\n'), /not "container.launch"/)
  t.throws(() => parseContainerLog('nope\n'), /not JSON/)
  t.throws(
    () => parseContainerLog(line.replace('"image":"web"', '"image": "web"') + '\n'),
    /canonical form/,
    'only the canonical form parses'
  )
  t.equal(
    envDigest(['SECRET=x', 'A=1']),
    envDigest(['A=1', 'SECRET=x']),
    'env digest does not depend on order (the verifier sorts)'
  )
  t.throws(
    () => eventLine({ ...ev, digest: 'sha256:short' }),
    /digest must be/,
    'a record the verifier would refuse is never written'
  )
  t.throws(() => eventLine({ ...ev, args: Array.from({ length: 300 }, () => 'a') }), /at most 256/)
  // parsed entries carry the measured lines and replay to the same PCR
  const entries = parseContainerLog(await log.read())
  t.same(
    entries.map(e => e.line),
    log.lines
  )
  t.equal(toHex(replayContainerLog(entries)), toHex(pcr))
})

t.test('file event log: appends lines, reads back, replays', async t => {
  const { fileEventLog } = await import('../../containers/events.ts')
  const dir = mkdtempSync(join(tmpdir(), 'quorate-evlog-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  const log = fileEventLog(join(dir, 'containers.log'))
  t.equal(await log.read(), '', 'missing file reads as empty')
  const l1 = eventLine(launchEvent({ image: 'a', digest: 'sha256:' + '1'.repeat(64), cid: 'c1' }))
  const l2 = eventLine(launchEvent({ image: 'b', digest: 'sha256:' + '2'.repeat(64), cid: 'c2', args: ['x'] }))
  await log.append(l1)
  await log.append(l2)
  t.equal(await log.read(), `${l1}\n${l2}\n`)
  const expect = sha256(concat([sha256(concat([new Uint8Array(32), eventDigest(l1)])), eventDigest(l2)]))
  t.equal(toHex(replayContainerLog(await log.read())), toHex(expect))
})
