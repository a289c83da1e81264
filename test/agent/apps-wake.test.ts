// The three ways agent/apps.ts scales an idle app to zero, each woken by the next request, on the
// real runner and dockerd with isolated networking (the relay must follow a restarted container):
// paused (Docker says Paused; unpause), stopped (not running, container kept; start + probe),
// removed (gone; a full launch, measured again). The chain is faked (an in-memory directory) and
// the image is already in Docker: this is about the runner's pause/halt/restart, not the fetch.
import t from 'tap'
import { request } from 'node:http'
import Docker from 'dockerode'
import { createContainerRunner, VERIFIED_REPO, type RunningContainer } from '../../containers/runner.ts'
import { memoryEventLog } from '../../containers/events.ts'
import { silentLogger } from '../../encoding/log.ts'
import { AppLoader, type ScaleDown } from '../../agent/apps.ts'
import { busyboxImage, cleanupDocker, uniqueLabel } from '../containers/helpers.ts'

const docker = new Docker()
const label = uniqueLabel('apps-wake')
t.teardown(async () => {
  await cleanupDocker(docker, label)
})
const img = busyboxImage({ testLabel: label, body: 'awake\n' })
const loaded = await docker.loadImage(Buffer.from(img.tar) as unknown as NodeJS.ReadableStream)
for await (const _ of loaded as AsyncIterable<unknown>);
// as a runner tags an image it loaded from bytes verified against the app's CID: only such an
// image is reused for an app (an untagged one would be fetched, and this source refuses to)
const CID = 'bafkreigh2akiscaildc7bm3i4z3rtt5fgqhlvjkjcpchjxwnnr3iyiha6y'
await docker.getImage(img.imageId).tag({ repo: VERIFIED_REPO, tag: CID })

function get(c: RunningContainer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const where = c.socketPath !== undefined ? { socketPath: c.socketPath } : { host: '127.0.0.1', port: c.port }
    const req = request({ ...where, path: '/', agent: false }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (s: string) => {
        body += s
      })
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

for (const [mode, wake] of [
  ['pause', 'unpause'],
  ['stop', 'restart'],
  ['remove', 'launch']
] as const) {
  t.test(
    `${mode}: idle → ${{ pause: 'paused', stop: 'stopped', remove: 'removed' }[mode]}, woken by ${wake}`,
    async t => {
      const events = memoryEventLog()
      const runner = createContainerRunner({
        docker,
        registry: { getImage: async () => undefined, isCertified: async () => ({ certified: true }) },
        source: {
          fetch: () => {
            throw new Error('the image is in Docker already')
          }
        },
        measurer: { extend: async () => {} },
        eventLog: events,
        nodeId: `apps-wake-${mode}-${label}`,
        network: 'isolated',
        labels: { 'quorate.test': label }
      })
      t.teardown(async () => {
        await runner.stopAll('test over')
      })
      await runner.setCertification({ certified: true })
      const clock = { now: Date.now() }
      const loader = new AppLoader({
        directory: {
          app: async name => ({
            revoked: false,
            current: {
              name,
              version: '1',
              digest: img.imageId,
              cid: CID,
              size: img.tar.byteLength,
              port: 8080,
              args: ['-p', '127.0.0.1:8080'],
              limits: { memoryBytes: 32 << 20, pids: 16 },
              idleTimeoutMs: 1000
            }
          })
        },
        runner,
        images: { remove: async () => {} },
        providers: async () => [],
        inFlight: () => 0,
        memoryBudgetBytes: 1 << 30,
        diskBudgetBytes: 1 << 30,
        scaleDown: mode as ScaleDown,
        keepBlocks: false,
        logger: silentLogger(),
        now: () => clock.now
      })
      const first = await loader.resolve('w')
      t.same(await get(first), { status: 200, body: 'awake\n' })
      clock.now += 2000
      await loader.sweepIdle()
      const st = loader.list()[0].state
      t.equal(st, { pause: 'paused', stop: 'stopped', remove: 'removed' }[mode])
      if (mode === 'remove') {
        await t.rejects(docker.getContainer(first.id).inspect(), 'the container is gone')
      } else {
        const s = (await docker.getContainer(first.id).inspect()).State
        t.equal(s.Paused, mode === 'pause', 'paused as Docker sees it')
        t.equal(s.Running, mode === 'pause', 'a stopped container is not running')
      }
      const woken = await loader.resolve('w')
      t.same(await get(woken), { status: 200, body: 'awake\n' }, 'the next request is served')
      t.equal(loader.list()[0].lastWake?.kind, wake)
      t.equal(woken.id === first.id, mode !== 'remove', mode === 'remove' ? 'a new container' : 'the same container')
      t.equal(events.lines.length, mode === 'remove' ? 2 : 1, 'only a launch is measured again')
      t.comment(`${mode} → ${wake}: ${loader.list()[0].lastWake?.ms} ms`)
    }
  )
}
