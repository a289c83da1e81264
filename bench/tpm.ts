// TPM quote latency through our Node-API addon vs a `tpm2_quote` process, on the same swtpm, the
// same persistent AK and the same PCR selection. Targets (issue 2): addon p50 ≤ 1 ms and ≥ 20×
// faster than the process. Reports numbers only; nothing is asserted (shared, noisy machine).
//   node_modules/.bin/node bench/tpm.ts
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { startSwtpm } from '../test/helpers/swtpm.ts'
import { openTpm, DEFAULT_AK_HANDLE } from '../attestation/tpm/index.ts'

const execFileP = promisify(execFile)

function stats(ms: number[]): { n: number; p50: number; p95: number; mean: number; min: number } {
  const s = [...ms].sort((a, b) => a - b)
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]
  const r = (x: number): number => Number(x.toFixed(3))
  return {
    n: s.length,
    p50: r(q(0.5)),
    p95: r(q(0.95)),
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
    min: r(s[0])
  }
}

export async function run(opts: { quotes?: number; processes?: number } = {}): Promise<Record<string, unknown>> {
  const nQuotes = opts.quotes ?? 200
  const nProc = opts.processes ?? 20
  const sw = await startSwtpm({ platformCert: false })
  const dir = mkdtempSync(join(tmpdir(), 'quorate-bench-tpm-'))
  try {
    const sel = [{ hash: 'sha256' as const, pcrs: [0, 1, 2] }]
    const tpm = await openTpm({ tcti: sw.tcti })
    let ensureAkMs: number
    let addon: ReturnType<typeof stats>
    let other: Record<string, unknown>
    try {
      let t = performance.now()
      await tpm.ensureAk()
      ensureAkMs = performance.now() - t
      for (let i = 0; i < 10; i++) await tpm.quote({ nonce: randomBytes(32), pcrs: sel }) // warm-up
      const ms: number[] = []
      for (let i = 0; i < nQuotes; i++) {
        const nonce = randomBytes(32)
        t = performance.now()
        await tpm.quote({ nonce, pcrs: sel })
        ms.push(performance.now() - t)
      }
      addon = stats(ms)
      const timeIt = async (n: number, fn: () => Promise<unknown>): Promise<number> => {
        const xs: number[] = []
        for (let i = 0; i < n; i++) {
          const t0 = performance.now()
          await fn()
          xs.push(performance.now() - t0)
        }
        return stats(xs).p50
      }
      other = {
        getRandom32P50Ms: await timeIt(50, async () => await tpm.getRandom(32)),
        pcrRead24P50Ms: await timeIt(
          50,
          async () => await tpm.pcrRead([{ hash: 'sha256', pcrs: Array.from({ length: 24 }, (_, i) => i) }])
        ),
        readClockP50Ms: await timeIt(50, async () => await tpm.readClock())
      }
    } finally {
      await tpm.close()
    }

    const env = { ...process.env, TPM2TOOLS_TCTI: sw.tcti }
    const handle = '0x' + DEFAULT_AK_HANDLE.toString(16)
    const pms: number[] = []
    for (let i = 0; i < nProc + 2; i++) {
      const nonce = randomBytes(32).toString('hex')
      const t = performance.now()
      await execFileP(
        'tpm2_quote',
        ['-c', handle, '-l', 'sha256:0,1,2', '-q', nonce, '-m', join(dir, 'msg'), '-s', join(dir, 'sig')],
        { env }
      )
      if (i >= 2) pms.push(performance.now() - t) // first two: page cache warm-up
    }
    const proc = stats(pms)
    return {
      what: 'ECDSA P-256 quote of sha256:0,1,2 with a persistent AK on swtpm (loopback TCP)',
      addonQuoteMs: addon,
      tpm2QuoteProcessMs: proc,
      speedupP50: Number((proc.p50 / addon.p50).toFixed(1)),
      targets: { addonP50MsAtMost: 1, speedupAtLeast: 20 },
      meetsTargets: addon.p50 <= 1 && proc.p50 / addon.p50 >= 20,
      ensureAkCreateMs: Number(ensureAkMs.toFixed(1)),
      ...other,
      swtpmManufactureMs: sw.timings.manufactureMs,
      swtpmStartMs: sw.timings.startMs
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    await sw.stop()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(JSON.stringify(await run(), null, 2) + '\n')
}
