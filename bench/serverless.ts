// Serverless benchmarks (issue 13), side by side in one run, with a ~2 MB keep-alive test app
// (bench/keepalive/: a static Go server, built here into a temporary directory). Requests go to
// GET /app/<name>/ as on the agent: the tenant proxy resolving through the app loader
// (agent/apps.ts) over the real runner, Docker and IPFS; chain and TPM are faked, as in
// bench/containers.ts, since neither is on these paths once a node is certified.
//   coldStart  the first request for an app this node does not hold: fetched from a peer (a
//              providing node in a worker thread), verified, loaded, measured, started, answered
//              — vs plain `docker load` + `docker run` of the same tar to its first response
//              (target p50 ≤ 600 ms)
//   localStart the same with the image already in Docker (≤ 250 ms), vs plain `docker run`; also
//              with the agent's default isolated networking (a relay into the app's own network
//              namespace): joining one a pooled holder made ahead of time (the default), and
//              without the pool (Docker makes the namespace at start, network 'none'), alternating
//   wake       the first request after the loader scaled the app to zero on its idle timeout:
//              paused (cgroup freezer) or stopped (process gone, container kept), with the memory
//              a paused app keeps (≤ 30 ms); removed is the localStart path
//   hotPath    wrk at 64 connections straight to the container vs through the proxy
//              (≥ 0.8× direct throughput, ≤ 0.3 ms added p50 latency), with a bare TCP pipe in
//              one Node thread as the ceiling of any proxy here, and one connection for latency
// The plain path polls readiness on the runner's own schedule (at once, then 20, 40, … up to
// 100 ms apart), so neither side gets a finer clock.
// Run alone: node_modules/.bin/node bench/serverless.ts   (QUORATE_BENCH_REPS=5, QUORATE_BENCH_WRK_S=5,
// QUORATE_BENCH_SERVERLESS=component,agent)
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, createReadStream, readFileSync } from 'node:fs'
import { createServer, request as httpRequest, Agent as HttpAgent, type Server } from 'node:http'
import { createServer as createNetServer, connect } from 'node:net'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Docker from 'dockerode'
import { createImageStore } from '../containers/store.ts'
import {
  createContainerRunner,
  hardenedHostConfig,
  type CertificationStatus,
  type ContainerRunner
} from '../containers/runner.ts'
import { memoryEventLog } from '../containers/events.ts'
import { createTenantProxy } from '../containers/proxy.ts'
import { silentLogger } from '../encoding/log.ts'
import { AppLoader, type AppVersion, type ScaleDown } from '../agent/apps.ts'
import { cleanupDocker, freePort, uniqueLabel } from '../test/containers/helpers.ts'
import { startProvider, waitReady } from './containers.ts'
import { buildKeepalive, keepaliveArgs, keepaliveImage } from './keepalive/image.ts'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../test/helpers/network.ts'
import { Agent } from '../agent/agent.ts'
import { loadConfig } from '../agent/config.ts'
import { generateChainKey, saveChainKey } from '../chain/index.ts'
import { publishImage } from '../containers/publish.ts'

const execFileP = promisify(execFile)

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d
const stats = (xs: readonly number[]): { p50Ms: number; minMs: number; maxMs: number; runsMs: number[] } => ({
  p50Ms: round(median(xs)),
  minMs: round(Math.min(...xs)),
  maxMs: round(Math.max(...xs)),
  runsMs: xs.map(x => round(x))
})

interface WrkResult {
  requestsPerSec: number
  p50Ms: number
  p99Ms: number
  /** Answers other than 2xx/3xx (e.g. the proxy's 503 when its in-flight limits refuse). */
  non2xx: number
  /** Connect, read, write errors and timeouts. */
  socketErrors: number
  requests: number
  /** CPU this process spent per request during the run (set for the servers this process runs). */
  cpuUsPerRequest?: number
}

function toMs(v: string, unit: string): number {
  const x = Number(v)
  return unit === 'us' ? x / 1000 : unit === 's' ? x * 1000 : x
}

/** One wrk run (2 threads, `connections` connections) with its latency distribution. */
async function wrk(url: string, seconds: number, connections = 64): Promise<WrkResult> {
  const { stdout } = await execFileP(
    'wrk',
    [`-t${Math.min(2, connections)}`, `-c${connections}`, `-d${seconds}s`, '--latency', url],
    {
      timeout: (seconds + 30) * 1000
    }
  )
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout)
  const p50 = /\n\s+50%\s+([\d.]+)(us|ms|s)\b/.exec(stdout)
  const p99 = /\n\s+99%\s+([\d.]+)(us|ms|s)\b/.exec(stdout)
  if (rps === null || p50 === null || p99 === null || Number(rps[1]) === 0)
    throw new Error(`unexpected wrk output:\n${stdout}`)
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const socketErrors = sockErr === null ? 0 : sockErr.slice(1).reduce((a, b) => a + Number(b), 0)
  return {
    requestsPerSec: Math.round(Number(rps[1])),
    p50Ms: round(toMs(p50[1], p50[2]), 3),
    p99Ms: round(toMs(p99[1], p99[2]), 3),
    non2xx: Number(non2xx?.[1] ?? 0),
    socketErrors,
    requests: Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0)
  }
}

/** wrk against a server this process runs, with this process's CPU time per request. */
async function wrkHere(url: string, seconds: number, connections = 64): Promise<WrkResult> {
  const c0 = process.cpuUsage()
  const r = await wrk(url, seconds, connections)
  const c = process.cpuUsage(c0)
  return { ...r, cpuUsPerRequest: round((c.user + c.system) / Math.max(1, r.requests)) }
}

/** Memory a container's cgroup holds now (bytes), from Docker's stats. */
async function containerMemory(docker: Docker, id: string): Promise<number> {
  const s = (await docker.getContainer(id).stats({ stream: false })) as { memory_stats?: { usage?: number } }
  return s.memory_stats?.usage ?? 0
}

async function componentPath(): Promise<Record<string, unknown>> {
  const reps = Number(process.env.QUORATE_BENCH_REPS ?? 5)
  const wrkSeconds = Number(process.env.QUORATE_BENCH_WRK_S ?? 5)
  const docker = new Docker()
  const label = uniqueLabel('bench-serverless')
  const dir = mkdtempSync(join(tmpdir(), 'quorate-bench-serverless-'))
  const load0 = loadavg()[0]
  const binary = await buildKeepalive()
  const img = keepaliveImage({ binary, labels: { 'quorate.test': label }, tag: label })
  const tarPath = join(dir, 'app.tar')
  writeFileSync(tarPath, img.tar)
  const provider = await startProvider(join(dir, 'provider'))
  const b = await createImageStore({ dir: join(dir, 'node') })
  const fronts: Server[] = []
  let runner: ContainerRunner | undefined
  let isolatedRunner: ContainerRunner | undefined
  let pooledRunner: ContainerRunner | undefined
  let loader: AppLoader | undefined
  try {
    const pub = await provider.add(tarPath)
    if (pub.imageId !== img.imageId) throw new Error('the provider computed another image ID')
    const appPort = await freePort()
    const app: AppVersion = {
      name: 'keepalive',
      version: '1',
      digest: img.imageId,
      cid: pub.cid,
      size: pub.size,
      port: appPort,
      args: keepaliveArgs(appPort),
      limits: { memoryBytes: 64 << 20, pids: 64 },
      idleTimeoutMs: 1000
    }
    const cert: CertificationStatus = { certified: true, expiresAt: Date.now() + 3_600_000 }
    const r = createContainerRunner({
      docker,
      registry: { getImage: async () => undefined, isCertified: async () => cert },
      source: b,
      measurer: { extend: async () => {} },
      eventLog: memoryEventLog(),
      nodeId: b.peerId,
      network: 'host',
      labels: { 'quorate.test': label }
    })
    runner = r
    await r.setCertification(cert)
    // The agent's /app/ route: the tenant proxy resolving through the app loader (agent/apps.ts),
    // with limits that admit wrk's 64 connections for one app (the agent's defaults, 64 in flight
    // and 16 per tenant, would answer most of them 503 at once).
    const proxy = createTenantProxy({
      prefix: '/app/',
      certification: () => r.certification(),
      resolve: n => {
        if (loader === undefined) throw new Error('no loader')
        return loader.resolve(n)
      },
      account: (n, i, o) => {
        loader?.account(n, i, o)
      },
      maxConcurrent: 256,
      maxPerTenant: 128
    })
    // when each launch phase of the last first request began, relative to the request
    let requestAt = 0
    let lastPhases: Record<string, number> = {}
    const phaseRuns = (): { add(): void; medians(): Record<string, number> } => {
      const acc: Record<string, number[]> = {}
      return {
        add: () => {
          for (const [k, v] of Object.entries(lastPhases)) (acc[k] ??= []).push(v)
        },
        medians: () => Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, round(median(v))]))
      }
    }
    // the agent's default networking: the app in Docker's 'none' network, reached through a relay
    const isolated = createContainerRunner({
      docker,
      registry: { getImage: async () => undefined, isCertified: async () => cert },
      source: b,
      measurer: { extend: async () => {} },
      eventLog: memoryEventLog(),
      nodeId: b.peerId,
      network: 'isolated',
      relayDir: join(dir, 'relays'),
      netnsPool: 0,
      labels: { 'quorate.test': label }
    })
    isolatedRunner = isolated
    await isolated.setCertification(cert)
    // the same with the agent's default pool of network-namespace holders (a node id of its own:
    // the other runners' stopAll would remove its holders)
    const pooled = createContainerRunner({
      docker,
      registry: { getImage: async () => undefined, isCertified: async () => cert },
      source: b,
      measurer: { extend: async () => {} },
      eventLog: memoryEventLog(),
      nodeId: `${b.peerId}-pool`,
      network: 'isolated',
      relayDir: join(dir, 'relays-pool'),
      netnsPool: 1,
      labels: { 'quorate.test': label }
    })
    pooledRunner = pooled
    await pooled.setCertification(cert)
    const newLoader = (scaleDown: ScaleDown, version: AppVersion = app, on: ContainerRunner = r): AppLoader => {
      loader?.stop()
      const l = new AppLoader({
        directory: { app: async name => (name === version.name ? { current: version, revoked: false } : undefined) },
        runner: on,
        images: {
          remove: async i => {
            await docker
              .getImage(i.digest)
              .remove({ force: true })
              .catch(() => {})
          }
        },
        providers: async () => provider.addrs,
        inFlight: n => proxy.inFlightOf(n),
        memoryBudgetBytes: 1 << 30,
        diskBudgetBytes: 1 << 30,
        scaleDown,
        idleCheckMs: 50,
        onProgress: (_, phase) => {
          lastPhases[phase] ??= performance.now() - requestAt
        },
        logger: silentLogger('quorate:bench:apps')
      })
      l.start()
      loader = l
      return l
    }
    const front = createServer(proxy.handler)
    fronts.push(front)
    await new Promise<void>(resolve => front.listen(0, '127.0.0.1', resolve))
    const appUrl = `http://127.0.0.1:${(front.address() as { port: number }).port}/app/${app.name}/`
    const removeImage = async (): Promise<void> => {
      await docker
        .getImage(img.imageId)
        .remove({ force: true })
        .catch(() => {})
    }
    /** The first request for an app this node does not run: one GET, answered once it started. */
    const firstRequest = async (): Promise<number> => {
      const t0 = performance.now()
      requestAt = t0
      lastPhases = {}
      const res = await fetch(appUrl)
      const body = await res.text()
      const ms = performance.now() - t0
      if (res.status !== 200 || body !== 'ok\n')
        throw new Error(`the app answered ${res.status} ${JSON.stringify(body)}`)
      return ms
    }
    const plainRun = async (load: boolean): Promise<{ ms: number; id: string }> => {
      const port = await freePort()
      const t0 = performance.now()
      if (load) {
        const res = await docker.loadImage(createReadStream(tarPath), { quiet: true })
        for await (const _ of res as AsyncIterable<unknown>) {
          /* drain */
        }
      }
      const c = await docker.createContainer({
        Image: img.imageId,
        Cmd: keepaliveArgs(port),
        Labels: { 'quorate.test': label },
        HostConfig: hardenedHostConfig('host', { memoryBytes: 64 << 20, pids: 64 })
      })
      await c.start()
      await waitReady(`http://127.0.0.1:${port}/`)
      return { ms: performance.now() - t0, id: c.id }
    }
    const stopApps = async (): Promise<void> => {
      loader?.stop()
      await r.stopAll('bench: next run')
      await isolated.stopAll('bench: next run')
      await pooled.stopAll('bench: next run')
    }

    // (a) cold start: nothing local, neither in the node's store nor in Docker ------------------
    const cold: number[] = []
    const coldPlain: number[] = []
    const coldPhases = phaseRuns()
    for (let i = -1; i < reps; i++) {
      // i = -1: warm-up (connections, JIT), not counted
      await b.unpin(pub.cid)
      await removeImage()
      newLoader('pause')
      const g = await firstRequest()
      await stopApps()
      await removeImage()
      const p = await plainRun(true)
      await docker.getContainer(p.id).remove({ force: true })
      await removeImage()
      if (i >= 0) {
        cold.push(g)
        coldPlain.push(p.ms)
        coldPhases.add()
      }
    }

    // (b) start with the image already in Docker ------------------------------------------------
    const local: number[] = []
    const localPlain: number[] = []
    const localPhases = phaseRuns()
    await plainRun(true).then(async p => {
      await docker.getContainer(p.id).remove({ force: true })
    })
    for (let i = -1; i < reps; i++) {
      newLoader('pause')
      const g = await firstRequest()
      if (i >= 0) localPhases.add()
      await stopApps()
      const p = await plainRun(false)
      await docker.getContainer(p.id).remove({ force: true })
      if (i >= 0) {
        local.push(g)
        localPlain.push(p.ms)
      }
    }

    // the same with the agent's default isolated networking (relay started per container):
    // without the pool, then with it (refilled between requests, as a launch does after it)
    const localIsolated: number[] = []
    const isolatedPhases = phaseRuns()
    const localPooled: number[] = []
    const pooledPhases = phaseRuns()
    for (let i = -1; i < reps; i++) {
      newLoader('pause', app, isolated)
      const g = await firstRequest()
      if (i >= 0) {
        localIsolated.push(g)
        isolatedPhases.add()
      }
      await stopApps()
      await pooled.fillNetnsPool()
      newLoader('pause', app, pooled)
      const gp = await firstRequest()
      if (i >= 0) {
        localPooled.push(gp)
        pooledPhases.add()
      }
      await stopApps()
    }

    // (c) wake of an idle app, scaled to zero by the loader after its idle timeout ---------------
    const wake: Record<string, { ms: number[]; loaderMs: number[]; idleMemoryBytes: number }> = {}
    let runningMem = 0
    for (const mode of ['pause', 'stop'] as const) {
      const l = newLoader(mode)
      await firstRequest()
      const idleState = mode === 'pause' ? 'paused' : 'stopped'
      const w = { ms: [] as number[], loaderMs: [] as number[], idleMemoryBytes: 0 }
      for (let i = -1; i < reps; i++) {
        const id = (await l.resolve(app.name)).id
        if (mode === 'pause') runningMem = await containerMemory(docker, id)
        // the loader's own idle sweep scales it down (idle timeout 1 s, checked every 50 ms)
        for (let n = 0; l.list().find(a => a.name === app.name)?.state !== idleState; n++) {
          if (n > 400) throw new Error(`the app was not ${idleState} after 20 s idle`)
          await new Promise(resolve => setTimeout(resolve, 50))
        }
        if (mode === 'pause') w.idleMemoryBytes = await containerMemory(docker, id)
        const ms = await firstRequest()
        if (i >= 0) {
          w.ms.push(ms)
          w.loaderMs.push(l.list().find(a => a.name === app.name)?.lastWake?.ms ?? NaN)
        }
      }
      wake[idleState] = w
      await stopApps()
    }

    // (d) hot path: wrk at 64 connections, direct vs through the proxy --------------------------
    // (an idle timeout longer than the run: wrk straight to the container does not count as use)
    newLoader('pause', { ...app, idleTimeoutMs: 3_600_000 })
    await firstRequest()
    const port = appPort
    // the ceiling of any proxy in one Node thread: bytes piped both ways, no HTTP parsing at all
    const pipe = createNetServer(sock => {
      const up = connect(port, '127.0.0.1')
      sock.pipe(up).pipe(sock)
      sock.on('error', () => up.destroy())
      up.on('error', () => sock.destroy())
    })
    await new Promise<void>(resolve => pipe.listen(0, '127.0.0.1', resolve))
    const pipeUrl = `http://127.0.0.1:${(pipe.address() as { port: number }).port}/`
    // the floor of an HTTP proxy in Node: server + keep-alive client, nothing else
    const pool = new HttpAgent({ keepAlive: true })
    const minimal = createServer((req, res) => {
      const up = httpRequest(
        { host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers, agent: pool },
        ur => {
          res.writeHead(ur.statusCode ?? 502, ur.headers)
          ur.pipe(res)
        }
      )
      up.on('error', () => res.destroy())
      req.pipe(up)
    })
    await new Promise<void>(resolve => minimal.listen(0, '127.0.0.1', resolve))
    const minimalUrl = `http://127.0.0.1:${(minimal.address() as { port: number }).port}/`
    const direct: WrkResult[] = []
    const proxied: WrkResult[] = []
    const piped: WrkResult[] = []
    const minimalRuns: WrkResult[] = []
    await wrk(`http://127.0.0.1:${port}/`, 1) // warm-up
    await wrk(appUrl, 1)
    await wrk(minimalUrl, 1)
    for (let i = 0; i < 3; i++) {
      direct.push(await wrk(`http://127.0.0.1:${port}/`, wrkSeconds))
      proxied.push(await wrkHere(appUrl, wrkSeconds))
      minimalRuns.push(await wrkHere(minimalUrl, wrkSeconds))
      piped.push(await wrkHere(pipeUrl, wrkSeconds))
    }
    minimal.close()
    pool.destroy()
    // one connection: the latency a request pays for the proxy when nothing queues
    const single = { direct: await wrk(`http://127.0.0.1:${port}/`, 2, 1), proxied: await wrk(appUrl, 2, 1) }
    pipe.close()
    await stopApps()
    const med = (xs: WrkResult[], k: 'requestsPerSec' | 'p50Ms' | 'p99Ms'): number => median(xs.map(x => x[k]))
    const ratio = med(proxied, 'requestsPerSec') / med(direct, 'requestsPerSec')
    const addedP50 = med(proxied, 'p50Ms') - med(direct, 'p50Ms')

    const coldS = stats(cold)
    const localS = stats(local)
    const pausedS = stats(wake.paused.ms)
    return {
      app: {
        bytes: pub.size,
        binaryBytes: readFileSync(binary).byteLength,
        server: 'bench/keepalive (Go, keep-alive)'
      },
      loadAvgAtStart: round(load0, 2),
      loadAvgAtEnd: round(loadavg()[0], 2),
      path: 'GET /app/<name>/ through the tenant proxy and the app loader (agent/apps.ts) with the real runner, in this process; chain and TPM faked (as in bench/containers.ts); the providing node in a worker thread',
      coldStart: {
        firstRequest: coldS,
        phaseStartMs: coldPhases.medians(),
        plainDockerLoadRun: stats(coldPlain),
        ratio: round(median(cold) / median(coldPlain), 2),
        target: { p50Ms: 600 },
        met: coldS.p50Ms <= 600
      },
      localStart: {
        firstRequest: localS,
        phaseStartMs: localPhases.medians(),
        plainDockerRun: stats(localPlain),
        isolated: {
          ...stats(localPooled),
          phaseStartMs: pooledPhases.medians(),
          note: 'joining the network namespace of a pooled holder made ahead of time (netnsPool 1, the default)',
          met: stats(localPooled).p50Ms <= 250,
          withoutPool: { ...stats(localIsolated), phaseStartMs: isolatedPhases.medians(), note: 'netnsPool 0' }
        },
        target: { p50Ms: 250 },
        met: localS.p50Ms <= 250
      },
      wake: {
        paused: { ...pausedS, loaderMs: stats(wake.paused.loaderMs), idleMemoryBytes: wake.paused.idleMemoryBytes },
        stopped: { ...stats(wake.stopped.ms), loaderMs: stats(wake.stopped.loaderMs), idleMemoryBytes: 0 },
        removed: { p50Ms: localS.p50Ms, idleMemoryBytes: 0, note: 'the localStart path' },
        runningMemoryBytes: runningMem,
        target: { p50Ms: 30 },
        met: pausedS.p50Ms <= 30
      },
      hotPath: {
        connections: 64,
        seconds: wrkSeconds,
        direct,
        proxied,
        throughputRatio: round(ratio, 2),
        addedP50Ms: round(addedP50, 3),
        tcpPipeCeiling: {
          runs: piped,
          throughputRatio: round(med(piped, 'requestsPerSec') / med(direct, 'requestsPerSec'), 2),
          addedP50Ms: round(med(piped, 'p50Ms') - med(direct, 'p50Ms'), 3),
          note: 'net.Socket piped both ways in this process, no HTTP parsing: what any proxy in one Node thread can reach here'
        },
        minimalNodeProxy: {
          runs: minimalRuns,
          throughputRatio: round(med(minimalRuns, 'requestsPerSec') / med(direct, 'requestsPerSec'), 2),
          note: 'http.createServer + http.request over a keep-alive Agent, no checks: the floor of an HTTP proxy in Node; compare cpuUsPerRequest with proxied'
        },
        oneConnection: { ...single, addedP50Ms: round(single.proxied.p50Ms - single.direct.p50Ms, 3) },
        proxyLimits: { maxConcurrent: 256, maxPerTenant: 128 },
        target: { throughputRatio: 0.8, addedP50Ms: 0.3 },
        met: ratio >= 0.8 && addedP50 <= 0.3 && proxied.every(x => x.non2xx === 0 && x.socketErrors === 0)
      }
    }
  } finally {
    loader?.stop()
    for (const f of fronts) f.close()
    await runner?.stopAll('bench done').catch(() => {})
    await isolatedRunner?.stopAll('bench done').catch(() => {})
    await pooledRunner?.stopAll('bench done').catch(() => {})
    await b.stop().catch(() => {})
    await provider.stop().catch(() => {})
    await cleanupDocker(docker, label).catch(() => {})
    await docker
      .getImage(img.imageId)
      .remove({ force: true })
      .catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * The same first request against a whole agent as operators run it (certified by a small attested
 * network, chain queries over RPC, providers found on chain, the default isolated networking with
 * its relay), the image published on another node (a genesis verifier). Each cold run publishes a
 * new app, so nothing is held from the run before.
 */
async function agentPath(): Promise<Record<string, unknown>> {
  const reps = Number(process.env.QUORATE_BENCH_REPS ?? 5)
  const wrkSeconds = Number(process.env.QUORATE_BENCH_WRK_S ?? 5)
  const label = uniqueLabel('bench-serverless-agent')
  const binary = await buildKeepalive()
  const docker = new Docker()
  const net = await startTestNetwork({ verifiers: 3 })
  const digests: string[] = []
  const phaseAt = new Map<string, Map<string, number>>()
  let node: Agent | undefined
  try {
    const sw = await net.newSwtpm()
    const home = join(net.work, 'node')
    await saveChainKey(join(home, 'node.key'), await generateChainKey())
    node = new Agent({
      config: loadConfig({
        env: {},
        flags: {
          home,
          tcti: sw.tcti,
          chainRpc: net.chainUrl,
          httpListen: `127.0.0.1:${await freePort()}`,
          platform: PLATFORM,
          osImage: OS_IMAGE,
          roundTimeoutMs: 5000,
          appScaleDown: 'pause'
        }
      }),
      logger: silentLogger('quorate:bench:node'),
      simulatedBootLog: net.bootLog,
      manual: true,
      onEvent: e => {
        // when each launch phase of an app began (the agent reports apps as image "app:<name>")
        if (e.type === 'tenant' && e.image.startsWith('app:')) {
          const m = phaseAt.get(e.image.slice(4)) ?? new Map<string, number>()
          if (!m.has(e.phase)) m.set(e.phase, performance.now())
          phaseAt.set(e.image.slice(4), m)
        }
      }
    })
    await node.start()
    const cert = await node.certify()
    if (cert.outcome !== 'pass') throw new Error(`the bench node was not certified (${cert.outcome})`)
    const publisher = net.verifiers[0]
    const tenant = await generateChainKey()
    const publish = async (name: string): Promise<void> => {
      const img = keepaliveImage({ binary, labels: { 'quorate.test': label }, tag: `${label}-${name}` })
      digests.push(img.imageId)
      await publishImage(
        publisher.store,
        {
          publishImage: async rec => {
            const sent = await net.chain.send(
              'app.publish',
              {
                name,
                version: '1',
                digest: rec.digest,
                cid: rec.cid,
                size: rec.size,
                port: 8080,
                args: keepaliveArgs(8080),
                limits: { memoryBytes: 64 << 20, pids: 64 },
                idleTimeoutMs: 1000
              },
              tenant
            )
            return { txHash: sent.hash, height: sent.height }
          }
        },
        { source: img.tar, name }
      )
    }
    const base = node.httpUrl ?? ''
    const get = async (name: string): Promise<number> => {
      const t0 = performance.now()
      const res = await fetch(`${base}/app/${name}/`)
      const body = await res.text()
      const ms = performance.now() - t0
      if (res.status !== 200 || body !== 'ok\n') throw new Error(`${name} answered ${res.status} ${body}`)
      return ms
    }
    const stateOf = (name: string): string | undefined => node?.status().apps.find(a => a.name === name)?.state
    const cold: number[] = []
    const wake: number[] = []
    const phases: Record<string, number[]> = {}
    for (let i = -1; i < reps; i++) {
      const name = `keepalive-${i + 1}`
      await publish(name)
      const t0 = performance.now()
      const ms = await get(name)
      if (i >= 0) {
        cold.push(ms)
        for (const [ph, at] of phaseAt.get(name) ?? []) (phases[ph] ??= []).push(at - t0)
      }
      // idle for its timeout (1 s): the agent pauses it; then the next request wakes it
      for (let n = 0; stateOf(name) !== 'paused'; n++) {
        if (n > 400) throw new Error(`${name} was not paused after 20 s idle`)
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      const w = await get(name)
      if (i >= 0) wake.push(w)
    }
    // the hot path through the agent as configured by default (isolated app behind its relay):
    // no direct figure to compare (the app has no port on the node), so throughput and latency only
    const hot = await wrk(`${base}/app/keepalive-1/`, wrkSeconds).catch((err: unknown) => ({
      error: (err as Error).message.slice(0, 300)
    }))
    const coldS = stats(cold)
    return {
      path: 'GET /app/<name>/ on a certified agent (in this process, with 3 genesis verifiers, embedded chain, swtpm), default isolated networking; the image on a verifier node',
      coldStart: {
        firstRequest: coldS,
        phaseStartMs: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(median(v))])),
        target: { p50Ms: 600 },
        met: coldS.p50Ms <= 600
      },
      wakePaused: { ...stats(wake), target: { p50Ms: 30 }, met: median(wake) <= 30 },
      hotPath64: hot
    }
  } finally {
    await node?.stop().catch(() => {})
    await net.stop().catch(() => {})
    for (const d of digests)
      await docker
        .getImage(d)
        .remove({ force: true })
        .catch(() => {})
    await cleanupDocker(docker, label).catch(() => {})
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const parts = (process.env.QUORATE_BENCH_SERVERLESS ?? 'component,agent').split(',')
  const out: Record<string, unknown> = parts.includes('component') ? { ...(await componentPath()) } : {}
  if (parts.includes('agent')) {
    try {
      out.agent = await agentPath()
    } catch (err) {
      out.agent = { error: (err as Error).message }
    }
  }
  return out
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${JSON.stringify(await run(), null, 2)}\n`)
}
