// Benchmarks for containers/: the gated launch path (fetch from a local peer + verify + load +
// measure + start, until the container answers) against a plain `docker load` + `docker run` of
// the same archive with the same host config (also with keepImages, which stores the blocks for
// peers as well); and IPFS fetch throughput between two local peers (our CID-verified block
// stream over its direct bulk channel and over libp2p, storing the blocks or only verifying them
// as a launch does, and Helia's bitswap for comparison).
// The providing peer runs in a worker thread (its own event loop), as another node would.
// Run alone: node_modules/.bin/node bench/containers.ts   (QUORATE_BENCH_BIG_MB=200 by default)
import { Worker } from 'node:worker_threads'
import { mkdtempSync, rmSync, writeFileSync, createReadStream } from 'node:fs'
import { tmpdir, loadavg, cpus } from 'node:os'
import { join } from 'node:path'
import { request, createServer } from 'node:http'
import Docker from 'dockerode'
import { createImageStore } from '../containers/store.ts'
import {
  createContainerRunner,
  hardenedHostConfig,
  type CertificationStatus,
  type ImageRecord
} from '../containers/runner.ts'
import { memoryEventLog } from '../containers/events.ts'
import { createTenantProxy } from '../containers/proxy.ts'
import { busyboxImage, cleanupDocker, freePort, httpdArgs, uniqueLabel } from '../test/containers/helpers.ts'

export interface Provider {
  addrs: string[]
  add(path: string): Promise<{ cid: string; size: number; imageId: string }>
  stop(): Promise<void>
}

/** A providing node in a worker thread. */
export async function startProvider(dir: string): Promise<Provider> {
  const storeUrl = new URL('../containers/store.ts', import.meta.url).href
  const w = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads')
    const { readFile } = require('node:fs/promises')
    ;(async () => {
      const { createImageStore } = await import(workerData.storeUrl)
      const store = await createImageStore({ dir: workerData.dir })
      // the ceiling: the same host streaming raw bytes (no blocks, no verification, no disk)
      const chunk = new Uint8Array(1 << 20).fill(7)
      await store.libp2p.handle('/quorate/bench-raw/1', async stream => {
        let mb = 0
        for await (const c of stream) { mb = c.subarray().reduce((a, b) => a * 256 + b, 0); break }
        for (let i = 0; i < mb; i++) if (!stream.send(chunk)) await stream.onDrain()
        await stream.close()
      })
      parentPort.on('message', async m => {
        if (m.type === 'add') {
          const r = await store.add(new Uint8Array(await readFile(m.path)))
          parentPort.postMessage({ type: 'added', cid: r.cid, size: r.size, imageId: r.image.imageId })
        } else if (m.type === 'stop') { await store.stop(); parentPort.postMessage({ type: 'stopped' }) }
      })
      parentPort.postMessage({ type: 'ready', addrs: store.multiaddrs() })
    })().catch(err => { parentPort.postMessage({ type: 'error', error: String(err && err.stack || err) }) })
  `,
    { eval: true, workerData: { storeUrl, dir } }
  )
  const next = (type: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const on = (m: Record<string, unknown>): void => {
        if (m.type === 'error') {
          w.off('message', on)
          reject(new Error(String(m.error)))
        } else if (m.type === type) {
          w.off('message', on)
          resolve(m)
        }
      }
      w.on('message', on)
    })
  const ready = await next('ready')
  return {
    addrs: ready.addrs as string[],
    add: async path => {
      const p = next('added')
      w.postMessage({ type: 'add', path })
      const m = await p
      return { cid: m.cid as string, size: m.size as number, imageId: m.imageId as string }
    },
    stop: async () => {
      const p = next('stopped')
      w.postMessage({ type: 'stop' })
      await p
      await w.terminate()
    }
  }
}

function probe(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 1000 }, res => {
      res.resume()
      resolve()
    })
    req.on('timeout', () => {
      req.destroy(new Error('timeout'))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The same readiness schedule the runner uses. */
export async function waitReady(url: string): Promise<void> {
  for (let n = 1; ; n++) {
    try {
      await probe(url)
      return
    } catch {}
    if (n > 1000) throw new Error(`${url} never answered`)
    await new Promise(resolve => setTimeout(resolve, Math.min(20 * n, 100)))
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d

export async function run(): Promise<Record<string, unknown>> {
  const docker = new Docker()
  const label = uniqueLabel('bench')
  const dir = mkdtempSync(join(tmpdir(), 'quorate-bench-containers-'))
  const bigMb = Number(process.env.QUORATE_BENCH_BIG_MB ?? 200)
  const provider = await startProvider(join(dir, 'a'))
  const b = await createImageStore({ dir: join(dir, 'b') })
  const results: Record<string, unknown> = {}
  try {
    for (const [key, padBytes, reps] of [
      ['2MB', 0, 3],
      [`${bigMb}MB`, bigMb * 1e6, 3]
    ] as const) {
      const img = busyboxImage({ testLabel: label, padBytes, body: `bench ${key}\n` })
      const tarPath = join(dir, `${key}.tar`)
      writeFileSync(tarPath, img.tar)
      const pub = await provider.add(tarPath)
      if (pub.imageId !== img.imageId) throw new Error('provider computed another image ID')
      const record: ImageRecord = {
        name: `bench-${key.toLowerCase()}`,
        digest: img.imageId,
        cid: pub.cid,
        size: pub.size,
        revoked: false
      }
      const cert: CertificationStatus = { certified: true, expiresAt: Date.now() + 3_600_000 }
      const runnerFor = (keepImages: boolean): ReturnType<typeof createContainerRunner> =>
        createContainerRunner({
          docker,
          registry: { getImage: async () => record, isCertified: async () => cert },
          source: b,
          measurer: { extend: async () => {} },
          eventLog: memoryEventLog(),
          nodeId: b.peerId,
          keepImages,
          labels: { 'quorate.test': label }
        })
      const runner = runnerFor(false) // the agent's default
      const keeping = padBytes > 0 ? runnerFor(true) : undefined
      const gated: number[] = []
      const gatedKeep: number[] = []
      const plain: number[] = []
      const phases: Record<string, number[]> = {}
      for (let i = -1; i < reps; i++) {
        // i = -1: warm-up (connection, JIT), not counted
        // gated: nothing local — neither in B's store nor in Docker
        for (const r of keeping === undefined ? [runner] : [runner, keeping]) {
          await b.unpin(pub.cid)
          await docker
            .getImage(img.imageId)
            .remove({ force: true })
            .catch(() => {})
          const port = await freePort()
          const t0 = performance.now()
          const at: Record<string, number> = {}
          const rc = await r.launch({
            image: record.name,
            args: httpdArgs(port),
            port,
            providers: provider.addrs,
            onProgress: p => {
              at[p.phase] ??= performance.now() - t0
            }
          })
          const ms = performance.now() - t0
          if (i >= 0 && r === runner) {
            gated.push(ms)
            for (const [ph, t] of Object.entries(at)) (phases[ph] ??= []).push(t)
          }
          if (i >= 0 && r === keeping) gatedKeep.push(ms)
          await r.stop(rc.id)
          await docker
            .getImage(img.imageId)
            .remove({ force: true })
            .catch(() => {})
        }

        // plain: docker load of the tar file + docker run with the same host config
        const port = await freePort()
        const t1 = performance.now()
        const res = await docker.loadImage(createReadStream(tarPath), { quiet: true })
        for await (const _ of res as AsyncIterable<unknown>) {
          /* drain */
        }
        const c = await docker.createContainer({
          Image: img.imageId,
          Cmd: httpdArgs(port),
          Labels: { 'quorate.test': label },
          HostConfig: hardenedHostConfig('host')
        })
        await c.start()
        await waitReady(`http://127.0.0.1:${port}/`)
        if (i >= 0) plain.push(performance.now() - t1)
        await c.remove({ force: true })
        await docker
          .getImage(img.imageId)
          .remove({ force: true })
          .catch(() => {})
      }
      results[key] = {
        bytes: pub.size,
        gatedMs: round(median(gated)),
        plainMs: round(median(plain)),
        ratio: round(median(gated) / median(plain), 2),
        bestRatio: round(Math.min(...gated) / Math.min(...plain), 2),
        gatedRunsMs: gated.map(x => round(x)),
        plainRunsMs: plain.map(x => round(x)),
        gatedPhaseStartMs: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(median(v))])),
        ...(gatedKeep.length > 0
          ? {
              keepImages: {
                gatedMs: round(median(gatedKeep)),
                ratio: round(median(gatedKeep) / median(plain), 2),
                gatedRunsMs: gatedKeep.map(x => round(x))
              }
            }
          : {})
      }
    }

    // Tenant requests through the agent's proxy: host networking vs an isolated tenant behind its
    // relay (socat in the tenant's network namespace; one socat child per connection)
    const proxied: Record<string, unknown> = {}
    const page = busyboxImage({ testLabel: label, body: 'ok\n' })
    writeFileSync(join(dir, 'proxy.tar'), page.tar)
    const pagePub = await provider.add(join(dir, 'proxy.tar'))
    for (const network of ['host', 'isolated']) {
      const name = `bench-proxy-${network}`
      const record: ImageRecord = { name, digest: page.imageId, cid: pagePub.cid, size: pagePub.size, revoked: false }
      const cert: CertificationStatus = { certified: true, expiresAt: Date.now() + 3_600_000 }
      const runner = createContainerRunner({
        docker,
        registry: { getImage: async () => record, isCertified: async () => cert },
        source: b,
        measurer: { extend: async () => {} },
        eventLog: memoryEventLog(),
        nodeId: b.peerId,
        network,
        relayDir: join(dir, 'relays'),
        labels: { 'quorate.test': label }
      })
      await runner.setCertification(cert)
      const port = await freePort()
      const rc = await runner.launch({ image: name, args: httpdArgs(port), port, providers: provider.addrs })
      const proxy = createTenantProxy({ certification: () => runner.certification(), resolve: n => runner.get(n) })
      const front = createServer(proxy.handler)
      await new Promise<void>(resolve => front.listen(0, '127.0.0.1', resolve))
      const url = `http://127.0.0.1:${(front.address() as { port: number }).port}/tenant/${encodeURIComponent(name)}/`
      const lat: number[] = []
      for (let i = 0; i < 200; i++) {
        const r = await fetch(url)
        await r.text()
      } // warm-up
      const t0 = performance.now()
      for (let i = 0; i < 2000; i++) {
        const t1 = performance.now()
        const r = await fetch(url)
        if ((await r.text()) !== 'ok\n') throw new Error(`proxy answered ${r.status}`)
        lat.push(performance.now() - t1)
      }
      proxied[network] = {
        requestsPerSec: round(2000 / ((performance.now() - t0) / 1000)),
        p50Ms: round(median(lat), 3),
        p99Ms: round([...lat].sort((x, y) => x - y)[Math.floor(lat.length * 0.99)], 3)
      }
      front.close()
      await runner.stop(rc.id)
    }
    results.proxy = {
      ...proxied,
      note: 'sequential GETs of a 3-byte page through createTenantProxy, client to proxy kept alive; busybox httpd closes every connection, so each request opens one to the tenant (through a fresh socat child when isolated: Docker network none + relay on a unix socket)'
    }
    // IPFS fetch between two local peers: the big image, block stream vs bitswap
    const fetchMbps = async (
      via: 'bulk' | 'bulk, verify only' | 'stream' | 'bitswap',
      cid: string,
      reps: number
    ): Promise<number[]> => {
      const out: number[] = []
      for (let i = 0; i < reps; i++) {
        const c = await createImageStore({ dir: join(dir, `fetch-${via.replace(/\W+/g, '-')}-${i}`) })
        try {
          const t0 = performance.now()
          let n = 0
          for await (const chunk of c.fetch(cid, {
            providers: provider.addrs,
            via: via === 'bitswap' ? 'bitswap' : 'stream',
            bulk: via.startsWith('bulk'),
            keep: via !== 'bulk, verify only'
          }))
            n += chunk.byteLength
          out.push(round(n / ((performance.now() - t0) / 1000) / 1e6))
        } finally {
          await c.stop()
        }
      }
      return out
    }
    const raw: number[] = []
    for (let i = 0; i < 3; i++) {
      const { multiaddr } = await import('@multiformats/multiaddr')
      const st = await b.libp2p.dialProtocol(multiaddr(provider.addrs[0]), '/quorate/bench-raw/1')
      st.send(Uint8Array.from([bigMb >> 8, bigMb & 0xff]))
      const t0 = performance.now()
      let n = 0
      for await (const c of st) n += c.byteLength
      raw.push(round(n / ((performance.now() - t0) / 1000) / 1e6))
    }
    const big = busyboxImage({ testLabel: label, padBytes: bigMb * 1e6 })
    writeFileSync(join(dir, 'fetch.tar'), big.tar)
    const f = await provider.add(join(dir, 'fetch.tar'))
    const bulk = await fetchMbps('bulk', f.cid, 3)
    const verifyOnly = await fetchMbps('bulk, verify only', f.cid, 3)
    const stream = await fetchMbps('stream', f.cid, 3)
    const small = busyboxImage({ testLabel: label, padBytes: 30e6 })
    writeFileSync(join(dir, 'fetch-small.tar'), small.tar)
    const fs = await provider.add(join(dir, 'fetch-small.tar'))
    const bitswap = await fetchMbps('bitswap', fs.cid, 1)
    results.ipfsFetch = {
      bulkMBps: median(bulk),
      bulkRunsMBps: bulk,
      bulkVerifyOnlyMBps: median(verifyOnly),
      bulkVerifyOnlyRunsMBps: verifyOnly,
      streamMBps: median(stream),
      streamRunsMBps: stream,
      streamBytes: f.size,
      rawLibp2pStreamMBps: median(raw),
      rawLibp2pRunsMBps: raw,
      bitswapMBps: median(bitswap),
      bitswapBytes: fs.size,
      note: 'bulk = our block protocol asked over libp2p, blocks over the offered direct TCP channel (the default), every block sha2-256-verified and written to blockstore-fs; bulk, verify only = the same without writing (keep: false, what a launch does by default); stream = the same blocks on the libp2p stream (TLS 1.3 + yamux over TCP), written; raw = that libp2p connection streaming bytes with no protocol, verification or disk; provider in a worker thread, requester in the main thread, 127.0.0.1'
    }
    results.targets = { gatedVsPlainRatio: '≤ 1.10 (big image; keepImages false, the default)', ipfsFetchMBps: '≥ 300' }
    results.machine = { cpus: cpus().length, loadavg1: round(loadavg()[0], 2) }
  } finally {
    await b.stop().catch(() => {})
    await provider.stop().catch(() => {})
    await cleanupDocker(docker, label)
    rmSync(dir, { recursive: true, force: true })
  }
  return results
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(await run(), null, 2) + '\n')
}
