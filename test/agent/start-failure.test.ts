// A fatal start-up error ends the agent (issue 12): `quorate node start` whose HTTP port is taken
// exits non-zero, names the flag to change, and leaves nothing listening — its libp2p host, IPFS
// store and TPM connection are closed before the process ends.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startSwtpm } from '../../attestation/tpm/simulator.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const work = mkdtempSync(join(tmpdir(), 'quorate-start-failure-'))
const sw = await startSwtpm()
const busy: Server = createServer()
await new Promise<void>(resolve => {
  busy.listen(0, '127.0.0.1', () => {
    resolve()
  })
})
const port = (busy.address() as { port: number }).port
t.teardown(async () => {
  busy.close()
  await sw.stop()
  rmSync(work, { recursive: true, force: true })
})

t.test('the HTTP port in use: exit 1, the error names --http, the process ends', async t => {
  const args = [
    'node',
    'start',
    '--home',
    join(work, 'node'),
    '--tcti',
    sw.tcti,
    '--rpc',
    'http://127.0.0.1:9',
    '--http',
    `127.0.0.1:${port}`
  ]
  const p = spawn(join(root, 'bin', 'quorate'), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, QUORATE_LOG_LEVEL: 'error' }
  })
  let stderr = ''
  p.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  // the process must end by itself; tap's own timeout fails the test if it does not
  const code = await new Promise<number | null>(resolve => {
    p.once('exit', c => {
      resolve(c)
    })
  })
  t.equal(code, 1, 'exits non-zero')
  t.match(stderr, new RegExp(`127\\.0\\.0\\.1:${port}`), 'names the address')
  t.match(stderr, /EADDRINUSE/, 'says why')
  t.match(stderr, /--http/, 'names the flag to set')
  // the TPM connection was closed: the swtpm (one connection at a time) answers another client
  const { openTpm } = await import('../../attestation/tpm/index.ts')
  const tpm = await openTpm({ tcti: sw.tcti })
  t.ok((await tpm.info()).isSoftware, 'the TPM is free for the next agent')
  await tpm.close()
})
