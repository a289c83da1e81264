// Runs `quorate` as a real process (chain start in the background, one-shot commands).
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'quorate')

export function startChainProcess(home: string, extra: string[] = []): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(
    BIN,
    [
      'chain',
      'start',
      '--home',
      home,
      '--rpc',
      '127.0.0.1:0',
      '--block-interval',
      '20',
      '--empty-block-interval',
      '300',
      '--json',
      ...extra
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] }
  )
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    proc.stderr?.on('data', (d: Buffer) => {
      err += d.toString()
    })
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /"rpc":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)
      if (m !== null) resolve({ proc, url: m[1] })
    })
    proc.once('exit', code => {
      reject(new Error(`chain start exited with ${code}: ${err}`))
    })
  })
}

/** Runs a quorate command; resolves with exit code, stdout and stderr (never rejects on exit code). */
export function quorate(
  args: string[],
  env: Record<string, string> = {}
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(BIN, args, { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stdout, stderr })
    })
  })
}
