// `quorate node start` as a real process against a real chain, peers, swtpm and dockerd:
// it gets certified, runs its configured tenant, reports in /status and /metrics, survives the
// chain going away for a while, stops gracefully on SIGTERM (tenant stopped), and after its own
// restart re-attests and runs the tenant again without duplicates.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import Docker from 'dockerode'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'
import { generateChainKey } from '../../chain/index.ts'
import { chainImagePublisher } from '../../containers/chain-registry.ts'
import { publishImage, NODE_LABEL, MANAGED_LABEL } from '../../containers/index.ts'
import { FIXTURE, freePort, helloImage } from '../../cli/demo.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const net = await startTestNetwork({ verifiers: 3 })
const work = net.work
const chain = net.chain
let daemon: ChildProcess | undefined
const docker = new Docker()
// its own body, so its image ID differs from the demo's (tests run in parallel on one dockerd:
// a shared ID let one test's gate reuse, or remove, the other's image)
const img = helloImage('hello from a tenant container (daemon test)\n')
const IMAGE = 'daemon-test/hello'

t.teardown(async () => {
  daemon?.kill('SIGKILL')
  for (const c of await docker.listContainers({ all: true, filters: JSON.stringify({ label: [MANAGED_LABEL] }) })) {
    if (c.Labels[NODE_LABEL] === daemonNodeId)
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => {})
  }
  await docker
    .getImage(img.imageId)
    .remove({ force: true })
    .catch(() => {})
  await net.stop()
})
let daemonNodeId = ''

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < end) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}${last !== undefined ? ` (last error: ${String(last)})` : ''}`)
}

interface Status {
  nodeId: string
  state: { kind: string; reason?: string; previous?: string }
  tpm: { resetCount?: number }
  lastRound?: { round: number; outcome: string }
  containers: Array<{ image: string; id: string }>
}

const sw = await net.newSwtpm()
// the tenant's image, held by the first verifier's IPFS store
await docker
  .getImage(img.imageId)
  .remove({ force: true })
  .catch(() => {})
const tenant = await generateChainKey()
await publishImage(
  net.verifiers[0].store,
  chainImagePublisher(async body => await chain.send('image.publish', body, tenant)),
  { source: img.tar, name: IMAGE }
)

const dHome = join(work, 'daemon')
const httpPort = await freePort()
const tenantPort = await freePort()
const configFile = join(work, 'daemon.json')
writeFileSync(
  configFile,
  JSON.stringify({
    home: dHome,
    tcti: sw.tcti,
    chainRpc: net.chainUrl,
    httpListen: `127.0.0.1:${httpPort}`,
    platform: PLATFORM,
    osImage: OS_IMAGE,
    certificationTtlMs: 20_000,
    reattestBeforeExpiryMs: 15_000,
    roundTimeoutMs: 5000,
    simulateBoot: FIXTURE,
    deploy: [{ image: IMAGE, port: tenantPort, args: ['-p', `127.0.0.1:${tenantPort}`] }]
  })
)
const api = `http://127.0.0.1:${httpPort}`
const status = async (): Promise<Status> => (await (await fetch(`${api}/status`)).json()) as Status

function startDaemon(): { proc: ChildProcess; exited: Promise<number | null>; stderr: () => string } {
  let err = ''
  const proc = spawn(join(root, 'bin', 'quorate'), ['node', 'start', '--config', configFile, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, QUORATE_LOG_LEVEL: 'warn' }
  })
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise<number | null>(resolve =>
    proc.once('exit', code => {
      resolve(code)
    })
  )
  return { proc, exited, stderr: () => err }
}

const tenantContainers = async (nodeId: string): Promise<number> =>
  // tenants only: the node's network-namespace holders carry quorate.managed=netns-holder
  (
    await docker.listContainers({
      filters: JSON.stringify({ label: [`${MANAGED_LABEL}=true`, `${NODE_LABEL}=${nodeId}`] })
    })
  ).length

t.test('the daemon gets certified, runs its tenant and serves it', async t => {
  const d = startDaemon()
  daemon = d.proc
  const s = await until(
    'certified with the tenant running',
    async () => {
      const x = await status()
      return x.state.kind === 'certified' && x.containers.length === 1 ? x : undefined
    },
    90_000
  ).catch((err: unknown) => {
    t.comment(`daemon stderr:\n${d.stderr()}`)
    throw err
  })
  t.match(d.stderr(), /INSECURE/, 'a software TPM is announced loudly')
  daemonNodeId = s.nodeId
  t.equal(s.containers[0].image, IMAGE)
  const r = await fetch(`${api}/tenant/${encodeURIComponent(IMAGE)}/`)
  t.equal(r.status, 200)
  t.match(await r.text(), /hello from a tenant container/)
  const view = await chain.node(s.nodeId)
  t.equal(view?.effective, 'certified', 'the chain agrees')
  const metrics = await (await fetch(`${api}/metrics`)).text()
  t.match(metrics, /quorate_rounds_total\{outcome="pass"\} [1-9]/)
  t.match(metrics, /quorate_certified 1/)
  t.match(metrics, /quorate_tenant_containers 1/)
  t.match(metrics, /quorate_tenant_launches_total\{outcome="started"\} 1/)
  t.match(
    metrics,
    new RegExp(`quorate_image_fetched_bytes_total ${img.tar.byteLength}\\b`),
    'the image was fetched from a peer, all of it'
  )
  t.match(
    metrics,
    /quorate_tenant_launch_seconds\{image="daemon-test\/hello"\} \d+(\.\d+)?/,
    'how long the launch took'
  )
  t.match(metrics, /quorate_image_dags_served_total\{channel="bulk"\} 0/, 'images served to peers, by channel')
  t.equal(await tenantContainers(s.nodeId), 1)

  // the tenant dies behind the agent's back (as after a dockerd restart without live-restore):
  // the agent notices and relaunches it through the gate
  const firstId = s.containers[0].id
  await docker.getContainer(firstId).remove({ force: true })
  const relaunched = await until(
    'the tenant relaunched',
    async () => {
      const x = await status()
      return x.containers.length === 1 && x.containers[0].id !== firstId ? x : undefined
    },
    60_000
  )
  t.not(relaunched.containers[0].id, firstId, 'a new container runs the tenant')
  t.equal(await tenantContainers(s.nodeId), 1)
  t.equal((await fetch(`${api}/tenant/${encodeURIComponent(IMAGE)}/`)).status, 200, 'and it serves again')
  t.match(
    await (await fetch(`${api}/metrics`)).text(),
    /quorate_tenant_relaunches_total\{image="daemon-test\/hello"\} 1/
  )

  // chain RPC down for a while: the daemon keeps running and recovers
  const before = (await status()).lastRound?.round ?? 0
  await net.stopChain()
  // the daemon notices (its next check of the chain fails: degraded, with the reason) and keeps running
  const down = await until(
    'the daemon degraded while the chain is unreachable',
    async () => {
      const x = await status()
      return x.state.kind === 'degraded' ? x : undefined
    },
    30_000
  )
  t.equal(d.proc.exitCode, null, 'still running while the chain is unreachable')
  t.equal(down.nodeId, s.nodeId, '/status still answers')
  t.match(down.state, { previous: 'certified' }, 'degraded from certified')
  await net.restartChain()
  const after = await until(
    'a new passing round after the chain came back',
    async () => {
      const x = await status()
      return (x.lastRound?.round ?? 0) > before && x.lastRound?.outcome === 'pass' && x.state.kind === 'certified'
        ? x
        : undefined
    },
    90_000
  ).catch(async (err: unknown) => {
    t.comment(JSON.stringify(await status().catch(() => undefined)))
    t.comment(d.stderr().slice(-3000))
    throw err
  })
  t.ok((after.lastRound?.round ?? 0) > before)
  t.equal(await tenantContainers(s.nodeId), 1, 'still exactly one tenant container')

  // SIGTERM: graceful stop, tenant stopped
  d.proc.kill('SIGTERM')
  t.equal(await d.exited, 0, 'exits 0 on SIGTERM')
  t.equal(await tenantContainers(s.nodeId), 0, 'tenant containers stopped on shutdown')

  // its own restart, after a reboot (TPM reset: PCRs and the container log start over): same
  // node id, the old certification is ended on chain, it re-attests, one tenant again
  await sw.restart()
  const d2 = startDaemon()
  daemon = d2.proc
  const s2 = await until(
    'certified again after restart',
    async () => {
      const x = await status()
      return x.state.kind === 'certified' && x.containers.length === 1 ? x : undefined
    },
    90_000
  )
  t.equal(s2.nodeId, s.nodeId, 'the node key persisted')
  t.ok((s2.tpm.resetCount ?? 0) > (s.tpm.resetCount ?? 0), 'the TPM reset is visible')
  t.match(d2.stderr(), /TPM reset since the last run/, 'the reboot ended the previous certification')
  t.equal(await tenantContainers(s.nodeId), 1, 'no duplicate containers after restart')

  // `quorate deploy` while the agent runs: it picks the new deployment up, `undeploy` removes it
  const img2 = helloImage('second tenant\n')
  await publishImage(
    net.verifiers[0].store,
    chainImagePublisher(async body => await chain.send('image.publish', body, tenant)),
    { source: img2.tar, name: 'daemon-test/second' }
  )
  const p2 = await freePort()
  const cli = async (args: string[]): Promise<number | null> =>
    await new Promise(resolve => {
      spawn(join(root, 'bin', 'quorate'), args, { stdio: 'ignore' }).once('exit', resolve)
    })
  t.equal(
    await cli(['deploy', 'daemon-test/second', '--home', dHome, '--port', String(p2), '--', '-p', `127.0.0.1:${p2}`]),
    0
  )
  await until(
    'the second tenant running',
    async () => {
      const x = await status()
      return x.containers.some(c => c.image === 'daemon-test/second') ? x : undefined
    },
    60_000
  )
  t.equal(await (await fetch(`${api}/tenant/${encodeURIComponent('daemon-test/second')}/`)).text(), 'second tenant\n')
  t.equal(await cli(['undeploy', 'daemon-test/second', '--home', dHome]), 0)
  await until(
    'the second tenant stopped',
    async () => {
      const x = await status()
      return x.containers.every(c => c.image !== 'daemon-test/second') ? x : undefined
    },
    60_000
  )
  t.ok(
    await until(
      'one tenant container left in Docker',
      async () => ((await tenantContainers(s.nodeId)) === 1 ? true : undefined),
      30_000
    ),
    'only the configured tenant remains'
  )
  await docker
    .getImage(img2.imageId)
    .remove({ force: true })
    .catch(() => {})

  d2.proc.kill('SIGTERM')
  t.equal(await d2.exited, 0)
})
