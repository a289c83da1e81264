// Red team (issue 13): the app loader behind the /app/ proxy, against a real embedded chain
// (test/client/net.ts) and the real proxy and loader; only the container runner is a stand-in
// (it records launches and answers from a small HTTP server), so nothing here needs Docker.
//   - path tricks in /app/<name>/: percent-encoding cannot get past a deny list; encoded slashes,
//     `..`, upper case and bad escapes never reach a launch and leave no loader entry;
//   - a flood of requests for made-up names leaves the loader's table empty;
//   - a flood on one cold app: the queue bound holds (503 + Retry-After beyond it), one launch;
//   - an app whose limits are the largest the chain allows is refused by the node's budget.
import t from 'tap'
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startClientNet, type ClientNet } from '../client/net.ts'
import { AppLoader, chainAppDirectory, type AppLoaderInit } from '../../agent/apps.ts'
import { createTenantProxy } from '../../containers/index.ts'
import type { LaunchRequest, RunningContainer } from '../../containers/index.ts'
import { silentLogger } from '../../encoding/log.ts'
import { sha256, toHex, utf8 } from '../../encoding/bytes.ts'
import { CID } from 'multiformats/cid'
import { sha256 as mhSha256 } from 'multiformats/hashes/sha2'

const MiB = 1 << 20
const net: ClientNet = await startClientNet()
t.teardown(async () => {
  await net.stop()
})
await net.publishApp('echo')
await net.publishApp('other')

// what a launched "container" answers
const upstream: Server = createServer((req, res) => {
  res.end(`app answered ${req.url}`)
})
await new Promise<void>(resolve => upstream.listen(0, '127.0.0.1', resolve))
t.teardown(() => {
  upstream.close()
})
const upstreamPort = (upstream.address() as AddressInfo).port

interface Rig {
  url: string
  loader: AppLoader
  launched: LaunchRequest[]
  /** Launches wait for this when set. */
  gate?: Promise<void>
}

async function rig(over: Partial<AppLoaderInit> = {}): Promise<Rig> {
  const r = { launched: [] } as unknown as Rig
  const held = new Set<string>()
  let n = 0
  r.loader = new AppLoader({
    directory: chainAppDirectory(net.chain),
    runner: {
      launch: async req => {
        r.launched.push(req)
        await r.gate
        const c = { id: `c${++n}`, port: upstreamPort, app: req.app } as unknown as RunningContainer // what the loader reads
        held.add(c.id)
        return c
      },
      stop: async id => held.delete(id),
      holds: id => held.has(id),
      pause: async () => {},
      unpause: async () => {},
      halt: async () => {},
      restart: async id => ({ id, port: upstreamPort }) as unknown as RunningContainer,
      certification: () => ({ certified: true })
    },
    images: { remove: async () => {} },
    providers: async () => [],
    inFlight: () => 0,
    memoryBudgetBytes: 1024 * MiB,
    diskBudgetBytes: 1024 * MiB,
    logger: silentLogger(),
    ...over
  })
  const proxy = createTenantProxy({
    prefix: '/app/',
    certification: () => ({ certified: true }),
    resolve: name => r.loader.resolve(name),
    maxConcurrent: 256,
    maxPerTenant: 256,
    logger: silentLogger()
  })
  const server = createServer(proxy.handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(() => {
    r.loader.stop()
    proxy.close()
    server.close()
  })
  return r
}

/** A raw request (the path sent as written, no client-side normalisation). */
async function send(url: string, path: string): Promise<{ status: number; body: string }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/`, { path, agent: false }, res => {
      let body = ''
      res.on('data', (d: Buffer) => {
        body += d.toString()
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('path tricks: encodings cannot pass a deny list; bad names never launch', async t => {
  const r = await rig({ policy: 'deny', list: ['echo'] })
  for (const p of ['/app/echo/', '/app/ech%6F/', '/app/%65%63%68%6f/x', '/app/echo?x=/app/other/']) {
    const got = await send(r.url, p)
    t.equal(got.status, 403, `${p}: the denied app stays denied`)
  }
  const ok = await send(r.url, '/app/other/a/../b')
  t.equal(ok.status, 200, 'an allowed app is served')
  t.equal(ok.body, 'app answered /a/../b', 'the rest of the path goes to the app as sent, inside it')
  t.equal(r.launched.length, 1)
  for (const p of [
    '/app/echo%2F..%2Fother/',
    '/app/%2e%2e/tenant/x',
    '/app/../tenant/x',
    '/app/ECHO/',
    '/app/echo%00/',
    '/app/%E0%A4%A/',
    `/app/${'a'.repeat(65)}/`,
    '/app/app%2Fecho%2F1/'
  ]) {
    const got = await send(r.url, p)
    t.ok(got.status >= 400 && got.status < 500, `${p}: refused with ${got.status} (a client error, not a node failure)`)
  }
  t.equal(r.launched.length, 1, 'nothing else was launched')
  t.same(
    r.loader.list().map(a => a.name),
    ['other'],
    'no entry for any of them'
  )
})

t.test('a flood of made-up names leaves no trace; a flood on one cold app is bounded', async t => {
  const r = await rig({ queueMax: 4 })
  const names = Array.from({ length: 100 }, (_, i) => `/app/nope-${i}/`)
  const got = await Promise.all(names.map(async p => await send(r.url, p)))
  t.ok(
    got.every(g => g.status === 404),
    'every made-up name is 404'
  )
  t.same(r.loader.list(), [], 'the loader table is empty')

  let open = (): void => {}
  r.gate = new Promise<void>(resolve => {
    open = resolve
  })
  const cold = Array.from({ length: 12 }, async () => await send(r.url, '/app/echo/'))
  // the loader answers the ones beyond its queue at once; wait for those 8 before opening the gate
  const settled: Array<{ status: number; body: string }> = []
  for (const p of cold)
    void p.then(x => {
      settled.push(x)
      if (settled.length === 8) open()
    })
  const all = await Promise.all(cold)
  t.equal(all.filter(x => x.status === 200).length, 4, 'the queue (4) is answered by the one launch')
  t.equal(all.filter(x => x.status === 503).length, 8, 'the rest get 503')
  t.equal(r.launched.length, 1, 'one launch')
})

t.test('an app with the largest limits the chain allows is refused by the node’s budget', async t => {
  const name = 'huge'
  await net.chain.send(
    'app.publish',
    {
      name,
      version: '1',
      digest: `sha256:${toHex(sha256(utf8.encode(name)))}`,
      cid: CID.create(1, 0x55, await mhSha256.digest(utf8.encode(name))).toString(),
      size: 2 ** 50,
      port: 8080,
      limits: { memoryBytes: 64 * 1024 * MiB, pids: 65_536, nanoCpus: 1024e9 },
      idleTimeoutMs: 60_000
    },
    net.publisher
  )
  const r = await rig()
  const got = await send(r.url, '/app/huge/')
  t.equal(got.status, 403)
  t.match(got.body, /memory budget/)
  t.match(got.body, /disk budget/)
  t.equal(r.launched.length, 0, 'never launched')
})

t.test('a flood of cold requests across many published apps stays within the memory budget', async t => {
  const names = ['m1', 'm2', 'm3', 'm4', 'm5']
  for (const n of names) await net.publishApp(n) // 64 MiB limit each
  const r = await rig({ memoryBudgetBytes: 128 * MiB })
  let open = (): void => {}
  r.gate = new Promise<void>(resolve => {
    open = resolve
  })
  const all = names.map(async n => await send(r.url, `/app/${n}/`))
  // the launches beyond the budget are refused at once; the two that fit wait for the gate
  const settled: Array<{ status: number; body: string }> = []
  for (const p of all)
    void p.then(x => {
      settled.push(x)
      if (settled.length === 3) open()
    })
  const got = await Promise.all(all)
  t.equal(got.filter(x => x.status === 200).length, 2, 'two apps fit the budget and are served')
  const refused = got.filter(x => x.status === 503)
  t.equal(refused.length, 3, 'the others get 503')
  t.ok(
    refused.every(x => /memory/.test(x.body)),
    'because of the memory budget'
  )
  t.equal(r.launched.length, 2, 'never more launched than the budget holds')
  t.ok(r.loader.memoryInUse() <= 128 * MiB)
})
