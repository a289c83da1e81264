// dockerd restarts under a running, certified agent: its tenant dies with the engine (no
// live-restore); the agent keeps running, and once Docker answers again it relaunches the
// tenant through the gate (measured again). Runs alone, after the parallel suite (see
// package.json "test"), because it takes the shared Docker engine away for a while.
import t from 'tap'
import { spawnSync, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import Docker from 'dockerode'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'
import { generateChainKey } from '../../chain/index.ts'
import { chainImagePublisher } from '../../containers/chain-registry.ts'
import { publishImage } from '../../containers/index.ts'
import { Agent } from '../../agent/agent.ts'
import { loadConfig } from '../../agent/config.ts'
import { createLogger } from '../../encoding/log.ts'
import { freePort, helloImage } from '../../cli/demo.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const docker = new Docker()
const img = helloImage('survives a dockerd restart\n')
const IMAGE = 'serial/restart'
// the verifiers' warnings too (their shutdown took 30 s once in CI after this test)
const net = await startTestNetwork({
  verifiers: 3,
  logger: name =>
    createLogger(`quorate:${name}`, {
      level: 'warn',
      sink: {
        write: rec => {
          process.stderr.write(`# ${name} ${JSON.stringify(rec)}\n`)
        }
      }
    })
})
let agent: Agent | undefined
// The agent's warnings go to stderr (and are kept): if CI ever hangs or fails here, its output
// says which step the agent was in.
const warnings: Array<Record<string, unknown>> = []
const logger = createLogger('quorate', {
  level: 'warn',
  sink: {
    write: rec => {
      warnings.push(rec)
      process.stderr.write(`# agent ${JSON.stringify(rec)}\n`)
    }
  }
})
t.teardown(async () => {
  for (const [what, fn] of [
    [
      'agent.stop',
      async () => {
        await agent?.stop()
      }
    ],
    [
      'image remove',
      async () => {
        await docker
          .getImage(img.imageId)
          .remove({ force: true, abortSignal: AbortSignal.timeout(30_000) })
          .catch(() => {})
      }
    ],
    [
      'network stop',
      async () => {
        await net.stop()
      }
    ]
  ] as const) {
    const t0 = performance.now()
    await fn()
    process.stderr.write(`# teardown: ${what} took ${Math.round(performance.now() - t0)} ms\n`)
  }
})

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}`)
}

// a ping that gets no answer (dockerd half way down) counts as down instead of hanging the test
const dockerUp = async (): Promise<boolean> =>
  await Promise.race([
    docker.ping().then(
      () => true,
      () => false
    ),
    new Promise<boolean>(resolve => {
      setTimeout(() => {
        resolve(false)
      }, 3000).unref()
    })
  ])

t.test('the agent relaunches its tenant after dockerd restarts', async t => {
  await docker
    .getImage(img.imageId)
    .remove({ force: true })
    .catch(() => {})
  const tenant = await generateChainKey()
  await publishImage(
    net.verifiers[0].store,
    chainImagePublisher(async body => await net.chain.send('image.publish', body, tenant)),
    { source: img.tar, name: IMAGE }
  )
  const sw = await net.newSwtpm()
  const port = await freePort()
  agent = new Agent({
    config: loadConfig({
      env: {},
      flags: {
        home: join(net.work, 'agent'),
        tcti: sw.tcti,
        chainRpc: net.chainUrl,
        httpListen: `127.0.0.1:${await freePort()}`,
        platform: PLATFORM,
        osImage: OS_IMAGE,
        deploy: [{ image: IMAGE, port, args: ['-p', `127.0.0.1:${port}`] }]
      }
    }),
    logger,
    simulatedBootLog: net.bootLog
  })
  await agent.start()
  const a = agent
  const first = await until(
    'certified with its tenant',
    async () => {
      const s = a.status()
      return s.state.kind === 'certified' && s.containers.length === 1 ? s.containers[0] : undefined
    },
    90_000
  )
  const url = `${a.httpUrl ?? ''}/tenant/${encodeURIComponent(IMAGE)}/`
  t.equal((await fetch(url)).status, 200)

  // restart the engine: SIGTERM dockerd, wait until it is gone, start it again the way setup does
  const pids = spawnSync('pgrep', ['-x', 'dockerd'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean)
  t.ok(pids.length > 0, 'a dockerd runs')
  for (const p of pids) process.kill(Number(p), 'SIGTERM')
  // alive = the process exists and is not a zombie (nobody may reap a daemon started with setsid)
  const alive = (pid: string): boolean => {
    try {
      return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
    } catch {
      return false
    }
  }
  await until('dockerd gone', async () => (pids.some(alive) || (await dockerUp()) ? undefined : true), 60_000)
  t.equal(a.lifecycle.state.kind, 'certified', 'the agent itself is unaffected while Docker is down')
  execFileSync('bash', [join(root, 'scripts', 'setup.sh')], {
    stdio: 'inherit',
    env: { ...process.env, QUORATE_SETUP_QEMU: '0' }
  })
  t.ok(await dockerUp(), 'dockerd is back')

  const second = await until(
    'tenant relaunched',
    async () => {
      const s = a.status()
      return s.containers.length === 1 && s.containers[0].id !== first.id ? s.containers[0] : undefined
    },
    90_000
  )
  t.not(second.id, first.id, 'a new container runs the tenant')
  const r = await until(
    'the tenant answers again',
    async () => {
      const x = await fetch(url)
      return x.status === 200 ? x : undefined
    },
    30_000
  )
  t.equal(await r.text(), 'survives a dockerd restart\n')
  t.match(a.metrics.render(), /quorate_tenant_relaunches_total\{image="serial\/restart"\} 1/)

  // and the agent still shuts down cleanly on the restarted engine: every step finishes, the
  // tenant container is removed
  await a.stop()
  t.equal(a.lifecycle.state.kind, 'stopped')
  t.same(
    warnings.filter(w => typeof w.msg === 'string' && w.msg.startsWith('shutdown step')),
    [],
    'no shutdown step overran or failed'
  )
  const gone = await until(
    'the tenant container removed',
    async () =>
      (await docker.listContainers({ all: true, filters: JSON.stringify({ id: [second.id] }) })).length === 0
        ? true
        : undefined,
    30_000
  ).catch(() => false)
  t.ok(gone, 'the tenant container is gone')
})
