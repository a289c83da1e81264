// `quorate app publish|list|inspect|revoke|usage` as a user runs them, against an embedded chain
// process; usage comes from a node's usage.record sent through ChainClient.
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { quorate, startChainProcess } from './process.ts'
import { buildImageTar } from '../../containers/image-tar.ts'
import { ChainClient } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { fakeDer } from './harness.ts'

t.test('app publish, list, inspect, revoke and usage through the CLI', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-app-cli-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  // the node that records usage below is the genesis verifier: the chain counts usage only from
  // nodes it vouches for (certified, or a genesis verifier)
  const node = await generateChainKey()
  t.equal(
    (
      await quorate([
        'chain',
        'init',
        '--home',
        home,
        '--chain-id',
        'app-cli',
        '--insecure-bootstrap',
        '--verifier',
        node.peerId
      ])
    ).code,
    0
  )
  const { proc, url } = await startChainProcess(home)
  t.teardown(() => {
    proc.kill('SIGKILL')
  })
  const env = { QUORATE_HOME: home, QUORATE_CHAIN_RPC: url }
  t.equal((await quorate(['keys', 'new'], env)).code, 0)
  const img = buildImageTar({ files: [{ path: 'hello.txt', content: new TextEncoder().encode('hi\n') }], cmd: ['/x'] })
  const tar = join(home, 'hello.tar')
  await writeFile(tar, img.tar)

  // refused before anything is read or sent
  const bad = await quorate(
    ['app', 'publish', 'hello', '--tar', tar, '--version', '1', '--port', '8080', '--env', 'NOEQUALS', '--json'],
    env
  )
  t.equal(bad.code, 1)
  t.match(bad.stderr, /KEY=value/, 'a bad env item is named')
  const badMem = await quorate(
    ['app', 'publish', 'hello', '--tar', tar, '--version', '1', '--port', '8080', '--memory', 'lots'],
    env
  )
  t.equal(badMem.code, 1)
  t.match(badMem.stderr, /--memory: "lots" is not a size/)
  const noFile = await quorate(
    ['app', 'publish', 'hello', '--tar', join(home, 'nope.tar'), '--version', '1', '--port', '8080'],
    env
  )
  t.equal(noFile.code, 1)
  t.match(noFile.stderr, /nope\.tar/)

  const pub = await quorate(
    [
      'app',
      'publish',
      'hello',
      '--tar',
      tar,
      '--version',
      '1',
      '--port',
      '8080',
      '--arg=-p',
      '--arg',
      '8080',
      '--env',
      'MODE=test',
      '--memory',
      '64MiB',
      '--pids',
      '32',
      '--cpus',
      '0.5',
      '--idle',
      '30s',
      '--health',
      '/ready',
      '--json'
    ],
    env
  )
  t.equal(pub.code, 0, pub.stderr)
  const p = JSON.parse(pub.stdout) as Record<string, unknown>
  t.equal(p.digest, img.imageId, 'the digest is the image ID of the archive')
  t.equal(p.size, img.tar.byteLength)
  t.same(p.limits, { memoryBytes: 64 * 1024 * 1024, pids: 32, nanoCpus: 500_000_000 })
  t.equal(p.idleTimeoutMs, 30_000)
  t.ok((p.height as number) > 0)

  const again = await quorate(['app', 'publish', 'hello', '--tar', tar, '--version', '1', '--port', '8080'], env)
  t.equal(again.code, 1)
  t.match(again.stderr, /never reused/, 'a reused version is refused with the reason')
  t.equal(
    (await quorate(['app', 'publish', 'hello', '--tar', tar, '--version', '2', '--port', '9090'], env)).code,
    0,
    'human output'
  )

  const list = await quorate(['app', 'list', '--json'], env)
  t.equal(list.code, 0, list.stderr)
  const rows = (JSON.parse(list.stdout) as { apps: Array<Record<string, unknown>> }).apps
  t.same(
    rows.map(r => [r.name, r.current, r.versions, r.port]),
    [['hello', '2', 2, 9090]]
  )
  t.match((await quorate(['app', 'list'], env)).stdout, /hello {2}version 2/)

  const insp = await quorate(['app', 'inspect', 'hello', '--json'], env)
  t.equal(insp.code, 0, insp.stderr)
  const view = JSON.parse(insp.stdout) as { record: { current: string }; versions: Array<{ version: string }> }
  t.equal(view.record.current, '2')
  t.same(
    view.versions.map(v => v.version),
    ['1', '2']
  )
  const human = (await quorate(['app', 'inspect', 'hello'], env)).stdout
  t.match(human, /\* 2 /, 'the current version is marked')
  t.match(human, /health \/ready, idle 30s, memory 64 MiB, pids 32, 0.5 CPU/)
  const missing = await quorate(['app', 'inspect', 'nope'], env)
  t.equal(missing.code, 1)
  t.match(missing.stderr, /no app named nope/)

  // usage recorded by a registered genesis verifier (its own key), then read through the CLI
  const c = new ChainClient({ url })
  t.teardown(() => {
    c.close()
  })
  await c.send(
    'node.register',
    { nodeId: node.peerId, ekCertificate: fakeDer(1), akPublic: new Uint8Array([1]), addrs: [] },
    node
  )
  const now = (await c.status()).time
  await c.recordUsage(node, {
    from: now - 60_000,
    to: now,
    apps: [{ app: 'hello', requests: 7, bytesIn: 70, bytesOut: 700 }]
  })
  const use = await quorate(['app', 'usage', 'hello', '--json'], env)
  t.equal(use.code, 0, use.stderr)
  const u = JSON.parse(use.stdout) as {
    totals: { requests: number; nodes: number }
    nodes: Array<{ nodeId: string }>
    recent: unknown[]
  }
  t.equal(u.totals.requests, 7)
  t.equal(u.totals.nodes, 1)
  t.equal(u.nodes[0].nodeId, node.peerId)
  t.equal(u.recent.length, 1)
  t.match((await quorate(['app', 'usage', 'hello'], env)).stdout, /7 requests, 70 bytes in, 700 bytes out/)

  // revoke: a version, then the whole app
  const rv = await quorate(['app', 'revoke', 'hello', '--version', '2', '--json'], env)
  t.equal(rv.code, 0, rv.stderr)
  t.equal(JSON.parse((await quorate(['app', 'inspect', 'hello', '--json'], env)).stdout).record.current, '1')
  t.equal((await quorate(['app', 'revoke', 'hello'], env)).code, 0)
  const after = JSON.parse((await quorate(['app', 'list', '--json'], env)).stdout) as {
    apps: Array<{ revoked: boolean }>
  }
  t.equal(after.apps[0].revoked, true)
  const late = await quorate(['app', 'publish', 'hello', '--tar', tar, '--version', '3', '--port', '8080'], env)
  t.equal(late.code, 1)
  t.match(late.stderr, /stays revoked/)
})
