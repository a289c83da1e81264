// `quorate image …` and `quorate deploy` as a user runs them, against a real embedded chain:
// publish records image.publish, the gate's chain adapter reads it back, revoke is honoured.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  initChainHome,
  startEmbeddedValidator,
  ChainClient,
  generateChainKey,
  saveChainKey
} from '../../chain/index.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { chainImageRegistry } from '../../containers/chain-registry.ts'
import { busyboxImage } from './helpers.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const home = mkdtempSync(join(tmpdir(), 'quorate-cli-'))
await initChainHome({ home, verifiers: [] })
const v = await startEmbeddedValidator({
  home,
  rpc: '127.0.0.1:0',
  rules: createTestOnlyQuorumRules(),
  blockIntervalMs: 0,
  emptyBlockIntervalMs: 200
})
const key = await generateChainKey()
await saveChainKey(join(home, 'keys', 'default.key'), key)
const chain = new ChainClient({ url: v.url })
t.teardown(async () => {
  chain.close()
  await v.stop()
  rmSync(home, { recursive: true, force: true })
})

/** Runs commands in-process (CLI start-up loads every area's modules and costs seconds here). */
async function inProcess(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const yargs = (await import('yargs')).default
  const { describeError } = await import('../../cli/output.ts')
  const mods = [
    ...(await import('../../cli/commands/image.ts')).default,
    ...(await import('../../cli/commands/containers.ts')).default
  ]
  let stdout = ''
  const write = process.stdout.write.bind(process.stdout)
  const saved = { home: process.env.QUORATE_HOME, rpc: process.env.QUORATE_CHAIN_RPC }
  process.env.QUORATE_HOME = home
  process.env.QUORATE_CHAIN_RPC = v.url
  process.stdout.write = ((c: string | Uint8Array) => {
    stdout += c.toString()
    return true
  }) as typeof process.stdout.write
  try {
    let y = yargs(args)
      .option('json', { type: 'boolean', global: true })
      .strict()
      .fail((msg, err) => {
        throw err ?? new Error(msg)
      })
    for (const m of mods) y = y.command(m as never)
    await y.parseAsync()
    return { code: 0, stdout, stderr: '' }
  } catch (err) {
    return { code: 1, stdout, stderr: describeError(err).message }
  } finally {
    process.stdout.write = write
    process.env.QUORATE_HOME = saved.home
    process.env.QUORATE_CHAIN_RPC = saved.rpc
    if (saved.home === undefined) delete process.env.QUORATE_HOME
    if (saved.rpc === undefined) delete process.env.QUORATE_CHAIN_RPC
  }
}

/** The real binary (one call, to prove the entry point works). */
function quorate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(
      join(root, 'node_modules', '.bin', 'node'),
      [join(root, 'cli', 'main.ts'), ...args],
      { env: { ...process.env, QUORATE_CHAIN_RPC: v.url, QUORATE_HOME: home } },
      (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stdout, stderr })
      }
    )
  })
}

const img = busyboxImage({ testLabel: 'cli' })
const tarPath = join(home, 'web.tar')
writeFileSync(tarPath, img.tar)

t.test('publish a docker save archive: IPFS store + image.publish on chain', async t => {
  const r = await quorate('image', 'publish', tarPath, '--name', 'web', '--json') // the real binary
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { digest: string; cid: string; size: number; txHash: string }
  t.equal(out.digest, img.imageId)
  t.equal(out.size, img.tar.length)
  t.match(out.txHash, /^[0-9A-Fa-f]{64}$/)

  const rec = await chainImageRegistry(chain).getImage('web')
  t.same(
    rec,
    { name: 'web', digest: img.imageId, cid: out.cid, size: img.tar.length, revoked: false },
    "the gate's adapter reads the record"
  )

  const list = JSON.parse((await inProcess('image', 'list', '--json')).stdout) as { images: { cid: string }[] }
  t.ok(
    list.images.some(i => i.cid === out.cid),
    'held in <home>/ipfs'
  )
  const onChain = JSON.parse((await inProcess('image', 'list', '--name', 'web', '--json')).stdout) as {
    images: { digest: string; current: boolean }[]
  }
  t.same(
    onChain.images.map(i => [i.digest, i.current]),
    [[img.imageId, true]]
  )
  const ins = JSON.parse((await inProcess('image', 'inspect', tarPath, '--json')).stdout) as { imageId: string }
  t.equal(ins.imageId, img.imageId, 'inspect of a file needs no chain')

  const rv = await inProcess('image', 'revoke', '--name', 'web', '--digest', img.imageId, '--json')
  t.equal(rv.code, 0, rv.stderr)
  t.equal((await chainImageRegistry(chain).getImage('web'))?.revoked, true, 'revoked on chain')
  t.match(await chainImageRegistry(chain).isCertified(key.peerId), { certified: false, reason: /not registered/ })
})

t.test('refusals are clear, change nothing', async t => {
  const r = await inProcess('image', 'publish', join(home, 'missing.tar'), '--name', 'x')
  t.equal(r.code, 1)
  t.match(r.stderr, /no such file/)
  const bad = await inProcess('image', 'publish', tarPath, '--name', 'Bad Name!')
  t.equal(bad.code, 1)
  t.match(bad.stderr, /image name/)
  t.equal(await chainImageRegistry(chain).getImage('x'), undefined)
})

t.test('a publish the chain refuses leaves nothing in the store', async t => {
  // "web" belongs to the default key (first test); another key may not publish under it
  const other = await generateChainKey()
  await saveChainKey(join(home, 'keys', 'other.key'), other)
  const img2 = busyboxImage({ testLabel: 'cli', body: 'someone else' })
  const tar2 = join(home, 'web-other.tar')
  writeFileSync(tar2, img2.tar)
  const r = await inProcess('image', 'publish', tar2, '--name', 'web', '--key', 'other')
  t.equal(r.code, 1, 'refused')
  t.match(r.stderr, /web/)
  const list = JSON.parse((await inProcess('image', 'list', '--json')).stdout) as { images: { imageId?: string }[] }
  t.notOk(
    list.images.some(i => i.imageId === img2.imageId),
    'the refused content is not left in the store'
  )
  t.ok(
    list.images.some(i => i.imageId === img.imageId),
    'what was there before stays'
  )
})

t.test('deploy writes node configuration', async t => {
  const r = await inProcess('deploy', 'web', '--port', '18080', '--env', 'A=1', '--', '-p', '127.0.0.1:18080')
  t.equal(r.code, 0, r.stderr)
  const cfg = JSON.parse(readFileSync(join(home, 'deployments.json'), 'utf8')) as { deployments: unknown[] }
  t.same(cfg.deployments, [{ image: 'web', port: 18080, args: ['-p', '127.0.0.1:18080'], env: ['A=1'] }])
  t.equal((await inProcess('deploy', 'web', '--port', '70000')).code, 1, 'bad port refused')
  t.equal((await inProcess('undeploy', 'web')).code, 0)
  t.same(
    (JSON.parse(readFileSync(join(home, 'deployments.json'), 'utf8')) as { deployments: unknown[] }).deployments,
    []
  )
})
