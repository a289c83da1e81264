// File arguments that are not small regular files (issue 9 item 11): how long a real `quorate`
// process takes to refuse /dev/zero, a FIFO, a directory, a missing path and a 3 GiB sparse file
// (target: under 1 s each, exit 1 with one line on stderr), and how long the bounded reader
// itself takes to refuse them in process. Process times are mostly Node start and module loading.
import { execFile, execFileSync } from 'node:child_process'
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readInputFile } from '../encoding/files.ts'

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'quorate')

async function timed(args: string[]): Promise<{ ms: number; code: number | null; lines: number }> {
  const t0 = performance.now()
  return await new Promise(resolve => {
    execFile(BIN, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      resolve({
        ms: Math.round(performance.now() - t0),
        code: err === null ? 0 : ((err as { code?: number }).code ?? null),
        lines: stderr.trim().split('\n').length
      })
    })
  })
}

export async function run(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-bench-inputs-'))
  try {
    const fifo = join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    mkdirSync(join(dir, 'dir'))
    const fd = openSync(join(dir, 'sparse'), 'w')
    ftruncateSync(fd, 3 * 2 ** 30)
    closeSync(fd)
    const inputs: Record<string, string> = {
      devZero: '/dev/zero',
      fifo,
      directory: join(dir, 'dir'),
      missing: join(dir, 'missing'),
      sparse3GiB: join(dir, 'sparse')
    }
    const reader: Record<string, number> = {}
    for (const [k, p] of Object.entries(inputs)) {
      const t0 = performance.now()
      await readInputFile(p, { label: '--x', maxBytes: 512 << 10 }).catch(() => undefined)
      reader[k] = Number((performance.now() - t0).toFixed(3))
    }
    const processes: Record<string, unknown> = {}
    for (const [k, p] of Object.entries(inputs)) {
      processes[`eventlog replay ${k}`] = await timed(['eventlog', 'replay', p])
      processes[`vendor publish-ekca ${k}`] = await timed([
        'vendor',
        'publish-ekca',
        p,
        '--vendor',
        'x',
        '--rpc',
        'http://127.0.0.1:9'
      ])
    }
    const ms = Object.values(processes).map(x => (x as { ms: number }).ms)
    return {
      target: 'each refusal under 1000 ms, exit 1, one line',
      readerRefusalMs: reader,
      processes,
      worstProcessMs: Math.max(...ms),
      met: ms.every(x => x < 1000)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
