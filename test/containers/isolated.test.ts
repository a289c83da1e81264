// The 'isolated' network mode with real parts (dockerd, a Helia store, busybox images built
// here): the tenant runs with Docker's network mode 'none' and is reached only through the relay
// socket (socat inside its network namespace). What must hold: requests reach it through the
// runner and the proxy; it cannot reach a service on the node's 127.0.0.1 — which the same image
// in 'host' mode can (the control that shows the probe works); stopping it stops the relay;
// relays left by an earlier run are stopped by stopAll.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn, execFileSync } from 'node:child_process'
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import Docker from 'dockerode'
import { createImageStore } from '../../containers/store.ts'
import { createContainerRunner, type CertificationStatus, type ImageRecord } from '../../containers/runner.ts'
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

async function launch(
  network: string,
  name: string
): Promise<{
  runner: ReturnType<typeof createContainerRunner>
  rc: Awaited<ReturnType<ReturnType<typeof createContainerRunner>['launch']>>
}> {
  const port = await freePort()
  const img = probeImage(port)
  const { cid, size } = await store.add(img.tar)
  const record: ImageRecord = { name, digest: img.imageId, cid, size, revoked: false }
  const cert: CertificationStatus = { certified: true, expiresAt: Date.now() + 3_600_000 }
  const runner = createContainerRunner({
    docker,
    registry: { getImage: async n => (n === name ? record : undefined), isCertified: async () => cert },
    source: store,
    measurer: { extend: async () => {} },
    eventLog: memoryEventLog(),
    nodeId: store.peerId,
    network,
    relayDir,
    labels: { 'quorate.test': label }
  })
  await runner.setCertification(cert)
  const rc = await runner.launch({ image: name, port, readyTimeoutMs: 30_000 })
  return { runner, rc }
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
