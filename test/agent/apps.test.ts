// agent/apps.ts with its ports faked (a directory the test edits, a runner that records and
// launches when told): single flight, the bounded queue, policy and budgets, scale to zero and
// wake, revocation. The real thing (swtpm, chain, Docker, peers) is test/agent/apps-serve.test.ts.
import t from 'tap'
import {
  AppLoader,
  chainAppDirectory,
  AppBusyError,
  AppRefusedError,
  AppRevokedError,
  UnknownAppError,
  AppLaunchError,
  type AppLoaderInit,
  type ChainAppQueries,
  type AppLookup,
  type AppVersion
} from '../../agent/apps.ts'
import { ContentMismatchError, NotCertifiedError } from '../../containers/index.ts'
import type { LaunchRequest, RunningContainer } from '../../containers/index.ts'
import { silentLogger } from '../../encoding/log.ts'

const MiB = 1 << 20

function version(name: string, over: Partial<AppVersion> = {}): AppVersion {
  return {
    name,
    version: '1',
    digest: `sha256:${name
      .padEnd(64, '0')
      .slice(0, 64)
      .replace(/[^0-9a-f]/g, 'a')}`,
    cid: `cid-${name}`,
    size: 10 * MiB,
    port: 8080,
    limits: { memoryBytes: 100 * MiB, pids: 64 },
    idleTimeoutMs: 1000,
    ...over
  }
}

interface Fake {
  loader: AppLoader
  apps: Map<string, AppLookup>
  launched: LaunchRequest[]
  calls: string[]
  removedImages: string[]
  held: Set<string>
  inFlight: Map<string, number>
  clock: { now: number }
  /** When set, launches wait for it. */
  gate?: Promise<void>
  fail?: Error
  certified: boolean
}

function setup(over: Partial<AppLoaderInit> = {}): Fake {
  const f: Fake = {
    apps: new Map(),
    launched: [],
    calls: [],
    removedImages: [],
    held: new Set(),
    inFlight: new Map(),
    clock: { now: 1_000_000 },
    certified: true
  } as unknown as Fake
  let n = 0
  const container = (req: LaunchRequest): RunningContainer =>
    ({ id: `c${++n}`, image: req.image, port: req.port, app: req.app }) as unknown as RunningContainer // what the loader reads
  f.loader = new AppLoader({
    directory: {
      app: async name => {
        f.calls.push(`app ${name}`)
        return f.apps.get(name)
      }
    },
    runner: {
      launch: async req => {
        f.launched.push(req)
        await f.gate
        if (f.fail !== undefined) throw f.fail
        const c = container(req)
        f.held.add(c.id)
        return c
      },
      stop: async id => {
        f.calls.push(`stop ${id}`)
        return f.held.delete(id)
      },
      holds: id => f.held.has(id),
      pause: async id => {
        f.calls.push(`pause ${id}`)
      },
      unpause: async id => {
        f.calls.push(`unpause ${id}`)
      },
      halt: async id => {
        f.calls.push(`halt ${id}`)
      },
      restart: async id => {
        f.calls.push(`restart ${id}`)
        return { id } as unknown as RunningContainer
      },
      certification: () => (f.certified ? { certified: true } : { certified: false, reason: 'test' })
    },
    images: {
      remove: async img => {
        f.removedImages.push(img.digest)
      }
    },
    providers: async () => ['/ip4/127.0.0.1/tcp/1/p2p/peer'],
    inFlight: name => f.inFlight.get(name) ?? 0,
    memoryBudgetBytes: 1024 * MiB,
    diskBudgetBytes: 1024 * MiB,
    logger: silentLogger(),
    now: () => f.clock.now,
    ...over
  })
  return f
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => {}
  const promise = new Promise<void>(r => {
    resolve = r
  })
  return { promise, resolve }
}

t.test('20 concurrent requests during a cold start: one launch, all answered by it', async t => {
  const f = setup()
  f.apps.set('hello', { current: version('hello'), revoked: false })
  const d = deferred()
  f.gate = d.promise
  const all = Array.from({ length: 20 }, () => f.loader.resolve('hello'))
  t.ok(
    all.every(x => x instanceof Promise),
    'all wait'
  )
  d.resolve()
  const got = await Promise.all(all)
  t.equal(f.launched.length, 1, 'exactly one launch')
  t.equal(new Set(got.map(c => c.id)).size, 1, 'all got the same container')
  const req = f.launched[0]
  t.equal(req.app, 'hello')
  t.equal(req.record?.digest, version('hello').digest, 'launched from the chain record')
  t.equal(req.record?.name, 'hello@1', 'measured as name@version')
  t.same(req.limits, { memoryBytes: 100 * MiB, pids: 64 })
  t.same(req.providers, ['/ip4/127.0.0.1/tcp/1/p2p/peer'])
  const warm = f.loader.resolve('hello')
  t.notOk(warm instanceof Promise, 'warm path is synchronous')
  t.equal(f.loader.list()[0].state, 'running')
  t.equal(f.loader.list()[0].lastWake?.kind, 'launch')
})

t.test('beyond the queue: 503 with Retry-After', async t => {
  const f = setup({ queueMax: 3 })
  f.apps.set('hello', { current: version('hello'), revoked: false })
  const d = deferred()
  f.gate = d.promise
  const waiting = [f.loader.resolve('hello'), f.loader.resolve('hello'), f.loader.resolve('hello')]
  const err = await (f.loader.resolve('hello') as Promise<RunningContainer>).catch((e: unknown) => e)
  t.ok(err instanceof AppBusyError)
  t.equal((err as AppBusyError).status, 503)
  t.equal((err as AppBusyError).retryAfter, 1)
  d.resolve()
  t.equal((await Promise.all(waiting)).length, 3, 'those queued are served')
})

t.test('unknown 404, revoked 410, policy 403, over budget 403', async t => {
  const f = setup({ policy: 'deny', list: ['blocked'], memoryBudgetBytes: 200 * MiB, diskBudgetBytes: 50 * MiB })
  f.apps.set('gone', { revoked: true })
  f.apps.set('blocked', { current: version('blocked'), revoked: false })
  f.apps.set('big', { current: version('big', { limits: { memoryBytes: 300 * MiB, pids: 64 } }), revoked: false })
  f.apps.set('fat', { current: version('fat', { size: 60 * MiB }), revoked: false })
  const status = async (name: string): Promise<unknown> => {
    try {
      await f.loader.resolve(name)
      return 'served'
    } catch (err) {
      return [(err as AppLaunchError).status, (err as Error).constructor.name]
    }
  }
  t.same(await status('nope'), [404, UnknownAppError.name])
  t.same(await status('gone'), [410, AppRevokedError.name])
  t.same(await status('blocked'), [403, AppRefusedError.name])
  t.notOk(f.calls.includes('app blocked'), 'a denied app costs no chain query')
  t.same(await status('big'), [403, AppRefusedError.name])
  await t.rejects(
    Promise.resolve(f.loader.resolve('big')),
    /memory limit 314572800 B exceeds this node's memory budget/
  )
  t.same(await status('fat'), [403, AppRefusedError.name])
  t.equal(f.launched.length, 0, 'nothing launched')

  const allow = setup({ policy: 'allow', list: ['ok'] })
  allow.apps.set('ok', { current: version('ok'), revoked: false })
  allow.apps.set('other', { current: version('other'), revoked: false })
  t.ok(await allow.loader.resolve('ok'))
  await t.rejects(Promise.resolve(allow.loader.resolve('other')), AppRefusedError)
})

t.test('a launch the gate refuses answers every waiter with the reason, and is held off', async t => {
  const f = setup()
  f.apps.set('bad', { current: version('bad'), revoked: false })
  f.fail = new ContentMismatchError('content of cid-bad does not match')
  const d = deferred()
  f.gate = d.promise
  const all = Array.from(
    { length: 5 },
    async () => await Promise.resolve(f.loader.resolve('bad')).catch((e: unknown) => e)
  )
  d.resolve()
  const errs = await Promise.all(all)
  t.ok(errs.every(e => e instanceof AppLaunchError && e.status === 502 && /does not match/.test(e.message)))
  t.equal(f.launched.length, 1)
  await t.rejects(Promise.resolve(f.loader.resolve('bad')), AppLaunchError)
  t.equal(f.launched.length, 1, 'not tried again within failureHoldMs')
  f.clock.now += 10_000
  f.fail = new NotCertifiedError('expired')
  const err = await Promise.resolve(f.loader.resolve('bad')).catch((e: unknown) => e)
  t.equal(f.launched.length, 2, 'tried again later')
  t.equal((err as AppLaunchError).status, 503, 'not certified is 503')
  t.equal((err as AppLaunchError).retryAfter, 30)
  t.equal(f.loader.list()[0].state, 'removed')
})

t.test('idle apps are paused and woken by unpause; stop → restart; remove → launch', async t => {
  for (const [mode, wake] of [
    ['auto', 'unpause'],
    ['pause', 'unpause'],
    ['stop', 'restart'],
    ['remove', 'launch']
  ] as const) {
    const f = setup({ scaleDown: mode })
    f.apps.set('hello', { current: version('hello'), revoked: false })
    const c = await f.loader.resolve('hello')
    f.inFlight.set('hello', 1)
    f.clock.now += 5000
    await f.loader.sweepIdle()
    t.equal(f.loader.list()[0].state, 'running', `${mode}: an app with a request in flight is not idle`)
    f.inFlight.set('hello', 0)
    await f.loader.sweepIdle()
    const expected = { auto: 'paused', pause: 'paused', stop: 'stopped', remove: 'removed' }[mode]
    t.equal(f.loader.list()[0].state, expected, `${mode}: idle → ${expected}`)
    const again = await f.loader.resolve('hello')
    t.equal(f.loader.list()[0].lastWake?.kind, wake, `${mode}: woken by ${wake}`)
    t.equal(f.loader.list()[0].state, 'running')
    if (wake === 'launch') t.not(again.id, c.id)
    else t.equal(again.id, c.id)
    t.equal(f.launched.length, wake === 'launch' ? 2 : 1)
  }
})

t.test('memory budget: the least recently used paused app is stopped to make room; 503 when none can be', async t => {
  const f = setup({ memoryBudgetBytes: 250 * MiB })
  for (const n of ['a', 'b', 'c']) f.apps.set(n, { current: version(n), revoked: false })
  const a = await f.loader.resolve('a')
  f.clock.now += 10
  const b = await f.loader.resolve('b')
  f.clock.now += 5000
  await f.loader.sweepIdle()
  t.same(
    f.loader.list().map(x => x.state),
    ['paused', 'paused']
  )
  t.equal(f.loader.memoryInUse(), 200 * MiB, 'paused apps hold their memory')
  await f.loader.resolve('c')
  t.ok(f.calls.includes(`halt ${a.id}`), 'a (least recently used) stopped')
  t.notOk(f.calls.includes(`halt ${b.id}`), 'b kept paused')
  t.equal(f.loader.memoryInUse(), 200 * MiB)
  // all running with requests in flight: no room
  f.inFlight.set('b', 1)
  f.inFlight.set('c', 1)
  await Promise.resolve(f.loader.resolve('b'))
  const err = await Promise.resolve(f.loader.resolve('a')).catch((e: unknown) => e)
  t.ok(err instanceof AppBusyError, 'busy apps are not stopped for another')
  t.match((err as Error).message, /apps serving requests hold/)
})

t.test('disk budget: images of apps not running are evicted least recently used first', async t => {
  const f = setup({ diskBudgetBytes: 25 * MiB, scaleDown: 'stop', keepBlocks: false })
  for (const n of ['a', 'b', 'c']) f.apps.set(n, { current: version(n), revoked: false })
  const a = await f.loader.resolve('a')
  f.clock.now += 5000
  await f.loader.sweepIdle() // a stopped, image held
  await f.loader.resolve('b')
  t.equal(f.loader.diskInUse(), 20 * MiB)
  f.inFlight.set('b', 1)
  await f.loader.resolve('c')
  t.same(f.removedImages, [version('a').digest], "a's image evicted")
  t.ok(f.calls.includes(`stop ${a.id}`), 'its stopped container removed first')
  t.equal(f.loader.diskInUse(), 20 * MiB)
  const err = await Promise.resolve(f.loader.resolve('a')).catch((e: unknown) => e)
  t.ok(err instanceof AppBusyError, 'no room while b and c run')

  const kept = setup({ diskBudgetBytes: 25 * MiB })
  kept.apps.set('a', { current: version('a'), revoked: false })
  kept.apps.set('big', { current: version('big', { size: 15 * MiB }), revoked: false })
  const c = await kept.loader.resolve('a')
  t.equal(kept.launched[0].keep, true, 'blocks kept to serve peers')
  t.equal(kept.loader.diskInUse(), 20 * MiB, 'counted twice: Docker and the blocks')
  await t.rejects(Promise.resolve(kept.loader.resolve('big')), AppRefusedError, '2 × 15 MiB exceeds 25 MiB')
  t.ok(c)
})

t.test('revocation and new versions seen by the poll; certification loss', async t => {
  const f = setup()
  f.apps.set('hello', { current: version('hello'), revoked: false })
  const c = await f.loader.resolve('hello')
  await f.loader.poll()
  t.equal(f.loader.list()[0].state, 'running', 'nothing changed on chain')
  f.apps.set('hello', {
    current: version('hello', { version: '2', digest: `sha256:${'b'.repeat(64)}` }),
    revoked: false
  })
  await f.loader.poll()
  t.ok(f.calls.includes(`stop ${c.id}`), 'old version removed')
  const c2 = await f.loader.resolve('hello')
  t.equal(f.launched.at(-1)?.record?.name, 'hello@2', 'the next request launches the new version')
  f.apps.set('hello', { revoked: true })
  await f.loader.poll()
  t.ok(f.calls.includes(`stop ${c2.id}`), 'revoked: stopped at once')
  t.equal(f.loader.list()[0].state, 'removed')
  await t.rejects(Promise.resolve(f.loader.resolve('hello')), AppRevokedError, 'later requests get 410')

  f.apps.set('hello', { current: version('hello', { version: '3' }), revoked: false })
  const c3 = await f.loader.resolve('hello')
  f.held.clear() // stopAll on certification loss
  f.certified = false
  await f.loader.poll()
  t.equal(f.loader.list()[0].state, 'removed', 'the runner let it go')
  t.ok(f.loader.resolve('hello') instanceof Promise, 'no warm path to a container that is gone')
  t.not(c3.id, undefined)
})

t.test('chainAppDirectory: the current version unless the app or that version is revoked', async t => {
  const views = new Map<string, Awaited<ReturnType<ChainAppQueries['app']>>>([
    ['ok', { record: {}, current: version('ok') }],
    ['whole', { record: { revokedAt: 5 }, current: version('whole') }],
    ['none', { record: {} }],
    ['ver', { record: {}, current: { ...version('ver'), revokedAt: 7 } }]
  ])
  const dir = chainAppDirectory({ app: async name => views.get(name) })
  t.same(await dir.app('ok'), { current: version('ok'), revoked: false })
  t.same(await dir.app('whole'), { revoked: true })
  t.same(await dir.app('none'), { revoked: true }, 'no current version: nothing to run')
  t.same(await dir.app('ver'), { revoked: true })
  t.equal(await dir.app('missing'), undefined)
})

t.test('requests for names that never ran leave no entry behind', async t => {
  const f = setup()
  f.apps.set('gone', { revoked: true })
  for (let i = 0; i < 100; i++) await t.rejects(Promise.resolve(f.loader.resolve(`made-up-${i}`)), UnknownAppError)
  await t.rejects(Promise.resolve(f.loader.resolve('gone')), AppRevokedError)
  t.same(f.loader.list(), [], 'no entries')
  f.apps.set('ok', { current: version('ok'), revoked: false })
  await f.loader.resolve('ok')
  t.equal(f.loader.list().length, 1, 'an app that ran stays listed')
})
