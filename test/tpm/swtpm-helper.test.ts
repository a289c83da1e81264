// The swtpm test helper itself: a manufactured TPM with EK certs from the per-run CA, reachable
// by TCTI, restartable (TPM reset), and gone after stop().
import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { X509Certificate } from 'node:crypto'
import { startSwtpm } from '../helpers/swtpm.ts'

const run = promisify(execFile)

async function resetCount(tcti: string): Promise<number> {
  const { stdout } = await run('tpm2_readclock', [], { env: { ...process.env, TPM2TOOLS_TCTI: tcti } })
  const m = /reset_count:\s*(\d+)/.exec(stdout)
  if (m === null) throw new Error(`unexpected tpm2_readclock output: ${stdout}`)
  return Number(m[1])
}

t.test('startSwtpm: manufactured, certified, restartable, removed on stop', async t => {
  const sw = await startSwtpm()
  t.teardown(() => sw.stop())
  t.comment(`manufacture ${sw.timings.manufactureMs} ms, start ${sw.timings.startMs} ms`)
  t.match(sw.tcti, /^swtpm:host=127\.0\.0\.1,port=\d+$/)
  t.equal(sw.ctrlPort, sw.port + 1)
  t.equal(sw.ekCaPems.length, 2)
  const [root, issuer] = sw.ekCaPems.map(p => new X509Certificate(p))
  t.ok(issuer.verify(root.publicKey), 'issuer cert signed by the root CA')
  t.ok(sw.stateDir.startsWith(sw.dir))

  // EK certificate (RSA, NV 0x01c00002) chains to the per-run CA
  const env = { ...process.env, TPM2TOOLS_TCTI: sw.tcti }
  const der = join(sw.dir, 'ek.der')
  await run('tpm2_nvread', ['-C', 'o', '-o', der, '0x01c00002'], { env })
  const ekCert = new X509Certificate(readFileSync(der))
  t.ok(ekCert.verify(issuer.publicKey), 'EK cert signed by the per-run issuer')
  writeFileSync(der, '')

  const before = await resetCount(sw.tcti)
  await sw.restart()
  const after = await resetCount(sw.tcti)
  t.equal(after, before + 1, 'restart is a TPM reset')

  await sw.stop()
  t.notOk(existsSync(sw.dir), 'temp dir removed')
  await t.rejects(run('tpm2_readclock', [], { env, timeout: 5000 }), 'swtpm no longer answers')
  await sw.stop() // idempotent
})

t.test('two instances get their own ports and state', async t => {
  const [a, b] = await Promise.all([startSwtpm({ platformCert: false }), startSwtpm({ platformCert: false })])
  t.teardown(async () => {
    await a.stop()
    await b.stop()
  })
  t.not(a.port, b.port)
  t.not(a.stateDir, b.stateDir)
  t.not(a.ekCaPems[0], b.ekCaPems[0], 'each run its own CA')
})
