// The agent as operators run it: `quorate node start` as its own process against a small
// attested network. Reports the time from spawn to certified, and the resident memory of the
// idle, certified agent (target: under 200 MB RSS), sampled from /proc over a quiet period.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../test/helpers/network.ts'
import { FIXTURE, freePort } from '../cli/demo.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

export async function run(): Promise<Record<string, unknown>> {
  const net = await startTestNetwork({ verifiers: 3 })
  const sw = await net.newSwtpm()
  const http = await freePort()
  const cfg = join(net.work, 'agent.json')
  writeFileSync(
    cfg,
    JSON.stringify({
      home: join(net.work, 'agent'),
      tcti: sw.tcti,
      chainRpc: net.chainUrl,
      httpListen: `127.0.0.1:${http}`,
      platform: PLATFORM,
      osImage: OS_IMAGE,
      simulateBoot: FIXTURE
    })
  )
  const t0 = performance.now()
  const proc = spawn(join(root, 'bin', 'quorate'), ['node', 'start', '--config', cfg, '--json'], {
    stdio: ['ignore', 'ignore', 'ignore']
  })
  try {
    let certifiedMs = NaN
    for (let i = 0; i < 600; i++) {
      const s = await fetch(`http://127.0.0.1:${http}/status`)
        .then(async r => (await r.json()) as { state: { kind: string } })
        .catch(() => undefined)
      if (s?.state.kind === 'certified') {
        certifiedMs = performance.now() - t0
        break
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    const samples: number[] = []
    for (let i = 0; i < 20; i++) {
      await new Promise(resolve => setTimeout(resolve, 500))
      if (proc.pid !== undefined) samples.push(rssMiB(proc.pid))
    }
    const max = Math.max(...samples)
    return {
      spawnToCertifiedMs: Math.round(certifiedMs),
      idleRssMiB: {
        max: Number(max.toFixed(1)),
        last: Number((samples.at(-1) ?? NaN).toFixed(1)),
        samples: samples.length
      },
      target: { idleRssMiB: 200 },
      meetsTarget: max < 200
    }
  } finally {
    proc.kill('SIGTERM')
    await new Promise(resolve => proc.once('exit', resolve))
    await net.stop()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(JSON.stringify(await run(), null, 2))
