// The 'isolated' network mode with real parts (dockerd, a Helia store, busybox images built
// here): the tenant runs with Docker's network mode 'none' and is reached only through the relay
// socket (socat inside its network namespace). What must hold: requests reach it through the
// runner and the proxy; it cannot reach a service on the node's 127.0.0.1 — which the same image
// in 'host' mode can (the control that shows the probe works); stopping it stops the relay;
// relays left by an earlier run are stopped by stopAll. With the pool of network-namespace
// holders (made ahead of time): every tenant joins a namespace of its own that no other tenant
// shares, still cut off from the node's loopback; the holder goes with its tenant, and stopAll
// removes pooled holders and ones an earlier run left.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn, execFileSync } from 'node:child_process'
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import Docker from 'dockerode'
import { createImageStore } from '../../containers/store.ts'
import {
  createContainerRunner,
  HOLDER_MANAGED,
  MANAGED_LABEL,
  NETNS_LABEL,
  NODE_LABEL,
  type CertificationStatus,
  type ContainerRunner,
  type ImageRecord,
  type RunningContainer
} from '../../containers/runner.ts'
import { createTenantProxy } from '../../containers/proxy.ts'
import { memoryEventLog } from '../../containers/events.ts'
import { buildImageTar } from '../../containers/image-tar.ts'
import { relaySocketPath, startRelay, stopLeftoverRelays } from '../../containers/relay.ts'
import { ContainerStartError } from '../../containers/errors.ts'
import { BUSYBOX, cleanupDocker, freePort, uniqueLabel } from './helpers.ts'

const docker = new Docker()
const label = uniqueLabel('isolated')
const dir = mkdtempSync(join(tmpdir(), 'quorate-iso-'))
const relayDir = join(dir, 'run')

// A secret on the node's loopback, as swtpm, the chain RPC and the agent API are.
const secret = createServer((_req: IncomingMessage, res: ServerResponse) => {
  res.end('node secret\n')
})
await new Promise<void>(resolve => secret.listen(0, '127.0.0.1', resolve))
const secretPort = (secret.address() as { port: number }).port

const store = await createImageStore({ dir: join(dir, 'store') })
t.teardown(async () => {
  secret.close()
  await store.stop().catch(() => {})
  await cleanupDocker(docker, label)
  rmSync(dir, { recursive: true, force: true })
})

/**
 * An image whose server says what it saw: at start it tries the node's secret port on
 * 127.0.0.1 and serves the outcome as /www/index.html (from /tmp: the root is read-only).
 */
function probeImage(port: number): ReturnType<typeof buildImageTar> {
  const script = [
    'mkdir -p /tmp/www',
    // nc, not wget: busybox-static's wget crashes resolving even a numeric address (static NSS)
    `if printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 2 127.0.0.1 ${secretPort} > /tmp/www/index.html; then :; else echo unreachable > /tmp/www/index.html; fi`,
    `exec /bin/busybox httpd -f -h /tmp/www -p 127.0.0.1:${port}`
  ].join('; ')
  return buildImageTar({
    files: [{ path: 'bin' }, { path: 'bin/busybox', content: readFileSync(BUSYBOX), mode: 0o755 }, { path: 'tmp' }],
    entrypoint: ['/bin/busybox', 'sh', '-c', script],
    labels: { 'quorate.test': label, 'quorate.probe': String(port) }
  })
}

function get(opts: { socketPath?: string; port?: number; path: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(
      {
        ...(opts.socketPath !== undefined ? { socketPath: opts.socketPath } : { host: '127.0.0.1', port: opts.port }),
        path: opts.path
      },
      res => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => {
          body += c
        })
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body })
        })
      }
    )
      .on('error', reject)
      .end()
  })
}

const cert: CertificationStatus = { certified: true, expiresAt: Date.now() + 3_600_000 }
const records = new Map<string, ImageRecord>()

function newRunner(network: string, netnsPool = 0, nodeId = store.peerId): ContainerRunner {
  return createContainerRunner({
    docker,
    registry: { getImage: async n => records.get(n), isCertified: async () => cert },
    source: store,
    measurer: { extend: async () => {} },
    eventLog: memoryEventLog(),
    nodeId,
    network,
    relayDir,
    netnsPool,
    labels: { 'quorate.test': label }
  })
}

/** Publishes a probe image under `name` and launches it. */
async function launchOn(runner: ContainerRunner, name: string): Promise<RunningContainer> {
  const port = await freePort()
  const img = probeImage(port)
  const { cid, size } = await store.add(img.tar)
  records.set(name, { name, digest: img.imageId, cid, size, revoked: false })
  return await runner.launch({ image: name, port, readyTimeoutMs: 30_000 })
}

async function launch(network: string, name: string): Promise<{ runner: ContainerRunner; rc: RunningContainer }> {
  const runner = newRunner(network) // without the pool: each isolated tenant in a new namespace
  await runner.setCertification(cert)
  return { runner, rc: await launchOn(runner, name) }
}

/** The network namespace of a container's process (net:[inode]). */
async function netns(id: string): Promise<string> {
  return readlinkSync(`/proc/${(await docker.getContainer(id).inspect()).State.Pid}/ns/net`)
}

async function holdersOf(nodeId: string): Promise<string[]> {
  const filters = JSON.stringify({ label: [`${MANAGED_LABEL}=${HOLDER_MANAGED}`, `${NODE_LABEL}=${nodeId}`] })
  return (await docker.listContainers({ all: true, filters })).map(c => c.Id)
}

t.test("host mode (the control): the tenant reaches the node's loopback", async t => {
  const { runner, rc } = await launch('host', 'iso/host')
  t.equal(rc.socketPath, undefined)
  t.match(
    (await get({ port: rc.port, path: '/' })).body,
    /node secret/,
    'the probe works: in host mode the secret is reachable'
  )
  await runner.stop(rc.id)
})

t.test("isolated mode: reachable through the relay only, and the node's loopback is out of reach", async t => {
  const { runner, rc } = await launch('isolated', 'iso/isolated')
  t.ok(rc.socketPath !== undefined && rc.socketPath.startsWith(relayDir), 'a relay socket in the run directory')
  t.match(rc.url, /^unix:/)
  const inspect = await docker.getContainer(rc.id).inspect()
  t.equal(inspect.HostConfig.NetworkMode, 'none', 'Docker network mode none')
  t.equal(
    (await get({ socketPath: rc.socketPath, path: '/' })).body,
    'unreachable\n',
    'the tenant could not reach 127.0.0.1 of the node'
  )
  await t.rejects(get({ port: rc.port, path: '/' }), "nothing answers on the node's 127.0.0.1:<port>")

  const proxy = createTenantProxy({ certification: () => runner.certification(), resolve: n => runner.get(n) })
  const front = createServer(proxy.handler)
  await new Promise<void>(resolve => front.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    front.close()
  })
  const r = await get({
    port: (front.address() as { port: number }).port,
    path: `/tenant/${encodeURIComponent('iso/isolated')}/`
  })
  t.same(r, { status: 200, body: 'unreachable\n' }, 'the proxy reaches it through the relay')

  const socketPath = rc.socketPath as string
  await runner.stop(rc.id)
  t.notOk(existsSync(socketPath), 'stopping the tenant removes its relay socket')
  t.notOk(existsSync(`${socketPath}.pid`), 'and the pid file')
})

t.test('stopAll stops relays an earlier run left behind', async t => {
  // a relay like one a crashed agent would leave: socat on a socket in the run directory
  const sock = join(relayDir, 'leftover00000.sock')
  const child = spawn('socat', [`UNIX-LISTEN:${sock},fork`, 'TCP4:127.0.0.1:9'], { detached: true, stdio: 'ignore' })
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise(resolve => setTimeout(resolve, 20))
  writeFileSync(`${sock}.pid`, `${child.pid ?? 0}\n`)
  const exited = new Promise(resolve => child.once('exit', resolve))
  t.equal(stopLeftoverRelays(relayDir), 1, 'one leftover relay stopped')
  await exited
  t.notOk(existsSync(sock), 'its socket is gone')
  t.equal(stopLeftoverRelays(relayDir), 0, 'nothing left')
  t.notOk(existsSync(relayDir), 'and the emptied relay directory is removed')
})

t.test('a relay that cannot start is a ContainerStartError saying why; nothing is left behind', async t => {
  const socketPath = join(relayDir, 'nosuchpid00.sock')
  // a pid that is not running: nsenter cannot open its namespace
  await t.rejects(startRelay({ pid: 4_000_000, port: 8080, socketPath }), {
    name: 'ContainerStartError',
    message: /relay into the container could not start .*nsenter/s
  })
  t.notOk(existsSync(socketPath), 'no socket')
  t.notOk(existsSync(`${socketPath}.pid`), 'no pid file')
  await t.rejects(
    startRelay({ pid: 1, port: 8080, socketPath }),
    ContainerStartError,
    "pid 1 (the host's init) is refused"
  )
  await t.rejects(startRelay({ pid: 1234, port: 70000, socketPath }), /not a TCP port/)
  t.throws(() => relaySocketPath('/' + 'x'.repeat(120), 'abcdef0123456789'), /longer than a unix socket path/)
})

t.test('a relay does not inherit descriptors its starter held open without close-on-exec', async t => {
  // A native library's descriptor (tpm2-tss's swtpm socket, /dev/tpmrm0) stands in as fd 77 on a
  // marker file, opened by bash without close-on-exec before it runs node.
  const marker = join(dir, 'inherited-marker')
  writeFileSync(marker, 'x')
  const relayUrl = new URL('../../containers/relay.ts', import.meta.url).href
  const script = `
    import { readdirSync, readlinkSync } from 'node:fs'
    import { spawn } from 'node:child_process'
    const { startRelay } = await import(${JSON.stringify(relayUrl)})
    const fds = pid => readdirSync('/proc/' + pid + '/fd').map(f => { try { return readlinkSync('/proc/' + pid + '/fd/' + f) } catch { return '' } })
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' })
    const r = await startRelay({ pid: sleeper.pid, port: 9, socketPath: ${JSON.stringify(join(relayDir, 'inherit00000.sock'))} })
    console.log(JSON.stringify({ self: fds(process.pid), relay: fds(r.pid) }))
    await r.stop(); sleeper.kill()
  `
  const out = execFileSync(
    'bash',
    ['-c', `exec 77<${JSON.stringify(marker)}; exec "$0" --input-type=module -e "$1"`, process.execPath, script],
    { encoding: 'utf8' }
  )
  const { self, relay } = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { self: string[]; relay: string[] }
  t.ok(self.includes(marker), 'the starting process holds the inherited descriptor (the control)')
  t.notOk(relay.includes(marker), 'the relay does not')
})

t.test('pooled namespaces: each tenant joins a holder of its own, removed with it; no way out to the node', async t => {
  const nodeId = `pool-${label}`
  const runner = newRunner('isolated', 2, nodeId)
  await runner.setCertification(cert)
  await runner.fillNetnsPool()
  const pooled = await holdersOf(nodeId)
  t.equal(pooled.length, 2, 'the pool holds two namespace holders')
  const h = await docker.getContainer(pooled[0]).inspect()
  t.equal(h.HostConfig.NetworkMode, 'none', 'a holder has loopback only')
  t.ok(h.HostConfig.ReadonlyRootfs === true && h.HostConfig.CapDrop?.includes('ALL'), 'read-only, no capabilities')
  t.equal(h.Config.User, '65534:65534', 'runs as nobody')
  t.equal(h.HostConfig.Memory, 8 << 20, 'in 8 MiB')
  t.same(h.Config.ExposedPorts ?? {}, {}, 'exposes nothing')

  const a = await launchOn(runner, 'iso/pool-a')
  const b = await launchOn(runner, 'iso/pool-b')
  const ia = await docker.getContainer(a.id).inspect()
  const ib = await docker.getContainer(b.id).inspect()
  const ha = ia.Config.Labels[NETNS_LABEL]
  const hb = ib.Config.Labels[NETNS_LABEL]
  t.ok(pooled.includes(ha) && pooled.includes(hb), 'both took pooled holders')
  t.not(ha, hb, 'not the same holder')
  t.equal(ia.HostConfig.NetworkMode, `container:${ha}`, "a joined its holder's namespace")
  t.equal(ib.HostConfig.NetworkMode, `container:${hb}`, "b joined its holder's namespace")
  const [na, nb, nha, self] = [await netns(a.id), await netns(b.id), await netns(ha), readlinkSync('/proc/self/ns/net')]
  t.equal(na, nha, 'a runs in the namespace its holder made')
  t.not(na, nb, 'two tenants never share a namespace')
  t.not(na, self, "nor the node's")
  t.not(nb, self, "nor the node's (b)")
  for (const rc of [a, b])
    t.equal(
      (await get({ socketPath: rc.socketPath, path: '/' })).body,
      'unreachable\n',
      `${rc.image} is reached through its relay and could not reach 127.0.0.1 of the node`
    )

  await runner.stop(a.id)
  await t.rejects(docker.getContainer(ha).inspect(), /no such container/i, 'the holder goes with its tenant')
  t.ok((await docker.getContainer(hb).inspect()).State.Running, "b's holder stays while b runs")

  // launches refilled the pool in the background: wait for it, then a fresh runner for the same
  // node (an agent restarted) finds the holders and the tenant by label
  await runner.fillNetnsPool()
  const before = await holdersOf(nodeId)
  t.equal(before.length, 3, "b's holder and a full pool of two")
  t.notOk(before.includes(ha), 'the used holder is not pooled again')
  const restarted = newRunner('isolated', 2, nodeId)
  t.equal(await restarted.stopAll('test: restart'), 1, 'stopAll counts tenants, not holders')
  t.same(await holdersOf(nodeId), [], 'holders an earlier run left (pooled and in use) are removed')
  await runner.stopAll('test done')
})

t.test('an empty pool falls back to a new namespace; a pool of 0 never makes holders', async t => {
  const nodeId = `nopool-${label}`
  const runner = newRunner('isolated', 0, nodeId)
  await runner.setCertification(cert)
  await runner.fillNetnsPool()
  t.same(await holdersOf(nodeId), [], 'no holders')
  const rc = await launchOn(runner, 'iso/nopool')
  const i = await docker.getContainer(rc.id).inspect()
  t.equal(i.HostConfig.NetworkMode, 'none', 'a namespace of its own, made by Docker at start')
  t.equal(i.Config.Labels[NETNS_LABEL], undefined, 'no holder')
  t.equal((await get({ socketPath: rc.socketPath, path: '/' })).body, 'unreachable\n', 'still cut off from the node')
  await runner.stopAll('test done')
  t.same(await holdersOf(nodeId), [], 'none made after the launch either')
})

t.test('stopAll while a holder is being made leaves none behind', async t => {
  const nodeId = `racing-${label}`
  const runner = newRunner('isolated', 2, nodeId)
  await runner.setCertification(cert) // starts filling in the background
  const filled = runner.fillNetnsPool() // the same fill, in progress
  t.equal(await runner.stopAll('test: stopping'), 0, 'no tenants')
  t.same(await holdersOf(nodeId), [], 'no holder once stopAll returned')
  await filled
  t.same(await holdersOf(nodeId), [], 'nor after the fill ended')
})
