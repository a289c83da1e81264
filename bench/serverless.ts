// Serverless benchmarks (issue 13), side by side in one run, with a ~2 MB keep-alive test app
// (bench/keepalive/: a static Go server, built here into a temporary directory):
//   coldStart  the app fetched from a peer (a providing node in a worker thread), verified,
//              loaded, measured and started through the gate, to its first response through the
//              tenant proxy — vs plain `docker load` + `docker run` of the same tar to its first
//              response (target p50 ≤ 600 ms)
//   localStart the image already in Docker: gate + start to the first response (≤ 250 ms), vs
//              plain `docker run`
//   wake       an idle app brought back to its first response, for each way of idling it:
//              paused (cgroup freezer), stopped (process gone, container kept), removed (the
//              localStart path) — with the memory each keeps while idle (≤ 30 ms)
//   hotPath    wrk at 64 connections straight to the container vs through the tenant proxy
//              (≥ 0.8× direct throughput, ≤ 0.3 ms added p50 latency)
// Readiness is polled on the runner's own schedule (at once, then 20, 40, … up to 100 ms apart)
// for both the gated and the plain path, so neither gets a finer clock.
// Run alone: node_modules/.bin/node bench/serverless.ts   (QUORATE_BENCH_REPS=5, QUORATE_BENCH_WRK_S=5)
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, createReadStream, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
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
  type ContainerRunner,
  type ImageRecord
} from '../containers/runner.ts'
import { memoryEventLog } from '../containers/events.ts'
import { createTenantProxy } from '../containers/proxy.ts'
import { cleanupDocker, freePort, uniqueLabel } from '../test/containers/helpers.ts'
import { startProvider, waitReady } from './containers.ts'
import { buildKeepalive, keepaliveArgs, keepaliveImage } from './keepalive/image.ts'

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

/** GET until the first answer, on the runner's schedule; resolves with the body. */
async function firstResponse(url: string): Promise<string> {
  for (let n = 1; ; n++) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) })
      const body = await r.text()
      if (r.status === 200) return body
    } catch {}
    if (n > 500) throw new Error(`${url} never answered 200`)
    await new Promise(resolve => setTimeout(resolve, Math.min(20 * n, 100)))
  }
}

interface WrkResult {
  requestsPerSec: number
  p50Ms: number
  p99Ms: number
  errors: number
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
  if (rps === null || p50 === null || p99 === null) throw new Error(`unexpected wrk output:\n${stdout}`)
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const errors = Number(non2xx?.[1] ?? 0) + (sockErr === null ? 0 : sockErr.slice(1).reduce((a, b) => a + Number(b), 0))
  return {
    requestsPerSec: Math.round(Number(rps[1])),
    p50Ms: round(toMs(p50[1], p50[2]), 3),
    p99Ms: round(toMs(p99[1], p99[2]), 3),
    errors
  }
}

/** Memory a container's cgroup holds now (bytes), from Docker's stats. */
async function containerMemory(docker: Docker, id: string): Promise<number> {
  const s = (await docker.getContainer(id).stats({ stream: false })) as { memory_stats?: { usage?: number } }
  return s.memory_stats?.usage ?? 0
}

export async function run(): Promise<Record<string, unknown>> {
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
  try {
    const pub = await provider.add(tarPath)
    if (pub.imageId !== img.imageId) throw new Error('the provider computed another image ID')
    const record: ImageRecord = {
      name: 'bench/keepalive',
      digest: img.imageId,
      cid: pub.cid,
      size: pub.size,
      revoked: false
    }
    const cert: CertificationStatus = { certified: true, expiresAt: Date.now() + 3_600_000 }
    const r = createContainerRunner({
      docker,
      registry: { getImage: async () => record, isCertified: async () => cert },
      source: b,
      measurer: { extend: async () => {} },
      eventLog: memoryEventLog(),
      nodeId: b.peerId,
      network: 'host',
      labels: { 'quorate.test': label }
    })
    runner = r
    await r.setCertification(cert)
    // the agent's proxy in front of the runner, as agent/http.ts mounts it
    // with limits that admit wrk's 64 connections for one app (the agent's defaults, 64 in flight
    // and 16 per tenant, would answer most of them 503 at once)
    const proxy = createTenantProxy({
      certification: () => r.certification(),
      resolve: n => r.get(n),
      maxConcurrent: 256,
      maxPerTenant: 128
    })
    const front = createServer(proxy.handler)
    fronts.push(front)
    await new Promise<void>(resolve => front.listen(0, '127.0.0.1', resolve))
    const appUrl = `http://127.0.0.1:${(front.address() as { port: number }).port}/tenant/${encodeURIComponent(record.name)}/`
    const removeImage = async (): Promise<void> => {
      await docker
        .getImage(img.imageId)
        .remove({ force: true })
        .catch(() => {})
    }
    const gatedLaunch = async (): Promise<{ ms: number; id: string }> => {
      const port = await freePort()
      const t0 = performance.now()
      const rc = await r.launch({ image: record.name, args: keepaliveArgs(port), port, providers: provider.addrs })
      const body = await firstResponse(appUrl)
      const ms = performance.now() - t0
      if (body !== 'ok\n') throw new Error(`the app answered ${JSON.stringify(body)}`)
      return { ms, id: rc.id }
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
        HostConfig: hardenedHostConfig('host')
      })
      await c.start()
      await waitReady(`http://127.0.0.1:${port}/`)
      return { ms: performance.now() - t0, id: c.id }
    }

    // (a) cold start: nothing local, neither in the node's store nor in Docker ------------------
    const cold: number[] = []
    const coldPlain: number[] = []
    for (let i = -1; i < reps; i++) {
      // i = -1: warm-up (connections, JIT), not counted
      await b.unpin(pub.cid)
      await removeImage()
      const g = await gatedLaunch()
      await r.stop(g.id)
      await removeImage()
      const p = await plainRun(true)
      await docker.getContainer(p.id).remove({ force: true })
      await removeImage()
      if (i >= 0) {
        cold.push(g.ms)
        coldPlain.push(p.ms)
      }
    }

    // (b) start with the image already in Docker ------------------------------------------------
    const local: number[] = []
    const localPlain: number[] = []
    await plainRun(true).then(async p => {
      await docker.getContainer(p.id).remove({ force: true })
    })
    for (let i = -1; i < reps; i++) {
      const g = await gatedLaunch()
      await r.stop(g.id)
      const p = await plainRun(false)
      await docker.getContainer(p.id).remove({ force: true })
      if (i >= 0) {
        local.push(g.ms)
        localPlain.push(p.ms)
      }
    }

    // (c) wake of an idle app: paused / stopped, to the first response through the proxy ---------
    const woke = await gatedLaunch()
    const c = docker.getContainer(woke.id)
    const wakePaused: number[] = []
    const wakeStopped: number[] = []
    let runningMem = 0
    let pausedMem = 0
    for (let i = -1; i < reps; i++) {
      runningMem = await containerMemory(docker, woke.id)
      await c.pause()
      pausedMem = await containerMemory(docker, woke.id)
      let t0 = performance.now()
      await c.unpause()
      await firstResponse(appUrl)
      if (i >= 0) wakePaused.push(performance.now() - t0)
      await c.stop({ t: 0 })
      t0 = performance.now()
      await c.start()
      await firstResponse(appUrl)
      if (i >= 0) wakeStopped.push(performance.now() - t0)
    }

    // (d) hot path: wrk at 64 connections, direct vs through the proxy --------------------------
    const port = r.get(record.name)?.port
    if (port === undefined) throw new Error('the app is not running for the hot path')
    // the ceiling of any proxy in one Node thread: bytes piped both ways, no HTTP parsing at all
    const pipe = createNetServer(sock => {
      const up = connect(port, '127.0.0.1')
      sock.pipe(up).pipe(sock)
      sock.on('error', () => up.destroy())
      up.on('error', () => sock.destroy())
    })
    await new Promise<void>(resolve => pipe.listen(0, '127.0.0.1', resolve))
    const pipeUrl = `http://127.0.0.1:${(pipe.address() as { port: number }).port}/`
    const direct: WrkResult[] = []
    const proxied: WrkResult[] = []
    const piped: WrkResult[] = []
    await wrk(`http://127.0.0.1:${port}/`, 1) // warm-up
    await wrk(appUrl, 1)
    for (let i = 0; i < 3; i++) {
      direct.push(await wrk(`http://127.0.0.1:${port}/`, wrkSeconds))
      proxied.push(await wrk(appUrl, wrkSeconds))
      piped.push(await wrk(pipeUrl, wrkSeconds))
    }
    // one connection: the latency a request pays for the proxy when nothing queues
    const single = { direct: await wrk(`http://127.0.0.1:${port}/`, 2, 1), proxied: await wrk(appUrl, 2, 1) }
    pipe.close()
    await r.stop(woke.id)
    const med = (xs: WrkResult[], k: 'requestsPerSec' | 'p50Ms' | 'p99Ms'): number => median(xs.map(x => x[k]))
    const ratio = med(proxied, 'requestsPerSec') / med(direct, 'requestsPerSec')
    const addedP50 = med(proxied, 'p50Ms') - med(direct, 'p50Ms')

    const coldS = stats(cold)
    const localS = stats(local)
    const pausedS = stats(wakePaused)
    return {
      app: {
        bytes: pub.size,
        binaryBytes: readFileSync(binary).byteLength,
        server: 'bench/keepalive (Go, keep-alive)'
      },
      loadAvgAtStart: round(load0, 2),
      loadAvgAtEnd: round(loadavg()[0], 2),
      path: 'runner + tenant proxy in this process (/tenant/<name>/), the provider node in a worker thread',
      coldStart: {
        gated: coldS,
        plainDockerLoadRun: stats(coldPlain),
        ratio: round(median(cold) / median(coldPlain), 2),
        target: { p50Ms: 600 },
        met: coldS.p50Ms <= 600
      },
      localStart: {
        gated: localS,
        plainDockerRun: stats(localPlain),
        target: { p50Ms: 250 },
        met: localS.p50Ms <= 250
      },
      wake: {
        paused: { ...pausedS, idleMemoryBytes: pausedMem },
        stopped: { ...stats(wakeStopped), idleMemoryBytes: 0 },
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
        tcpPipeCeiling: {
          runs: piped,
          throughputRatio: round(med(piped, 'requestsPerSec') / med(direct, 'requestsPerSec'), 2),
          addedP50Ms: round(med(piped, 'p50Ms') - med(direct, 'p50Ms'), 3),
          note: 'net.Socket piped both ways in this process, no HTTP parsing: what any proxy in one Node thread can reach here'
        },
        oneConnection: { ...single, addedP50Ms: round(single.proxied.p50Ms - single.direct.p50Ms, 3) },
        proxyLimits: { maxConcurrent: 256, maxPerTenant: 128 },
        throughputRatio: round(ratio, 2),
        addedP50Ms: round(addedP50, 3),
        target: { throughputRatio: 0.8, addedP50Ms: 0.3 },
        met: ratio >= 0.8 && addedP50 <= 0.3 && proxied.every(x => x.errors === 0)
      }
    }
  } finally {
    for (const f of fronts) f.close()
    await runner?.stopAll('bench done').catch(() => {})
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

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${JSON.stringify(await run(), null, 2)}\n`)
}
