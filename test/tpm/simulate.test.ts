// `quorate tpm simulate --dir D`: manufactures a software TPM whose EK certificate chains to the CA
// file it prints, serves it until SIGTERM (then exits 0 and the port is closed), announces itself
// as INSECURE, and serves the same TPM again from the same directory.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { openTpm } from '../../attestation/tpm/index.ts'
import { parseCertificates } from '../../attestation/ekcert.ts'

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'quorate')
const dir = mkdtempSync(join(tmpdir(), 'quorate-simulate-'))
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true })
})

interface Simulated {
  proc: ChildProcess
  info: { tcti: string; port: number; ekCaFile: string; manufactured: boolean; dir: string }
  stderr: () => string
  exit: Promise<number | null>
}

/** Starts `quorate tpm simulate`, resolves once it printed its JSON line (or rejects when it exits first). */
async function simulate(args: string[]): Promise<Simulated> {
  const proc = spawn(BIN, ['tpm', 'simulate', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exit = new Promise<number | null>(resolve => {
    proc.once('exit', code => {
      resolve(code)
    })
  })
  const info = await new Promise<Simulated['info']>((resolve, reject) => {
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      if (!out.includes('\n')) return
      const line = JSON.parse(out.split('\n')[0])
      // with --json an error is a JSON line too ({"error": …}); the exit code follows
      if (line.error !== undefined)
        void exit.then(code => {
          reject(new Error(`tpm simulate exited ${String(code)}: ${line.error.message as string}`))
        })
      else resolve(line)
    })
    void exit.then(code => {
      reject(new Error(`tpm simulate exited ${String(code)}: ${err}`))
    })
  })
  return { proc, info, stderr: () => err, exit }
}

async function ekCertificate(tcti: string): Promise<Uint8Array> {
  const tpm = await openTpm({ tcti })
  try {
    const c = await tpm.ekCertificate('rsa2048')
    if (c === undefined) throw new Error('no EK certificate')
    return c
  } finally {
    await tpm.close()
  }
}

const refused = async (port: number): Promise<boolean> =>
  await new Promise(resolve => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', () => {
      resolve(true)
    })
  })

const tpmDir = join(dir, 'tpm')
let firstCert: Uint8Array | undefined

t.test('manufactures, prints the TCTI and CA file, stops on SIGTERM', async t => {
  const s = await simulate(['--dir', tpmDir])
  t.teardown(() => {
    s.proc.kill('SIGKILL')
  })
  t.equal(s.info.manufactured, true)
  t.match(s.info.tcti, /^swtpm:host=127\.0\.0\.1,port=\d+$/)
  t.match(s.stderr(), /INSECURE: SOFTWARE TPM/, 'announced loudly')
  firstCert = await ekCertificate(s.info.tcti)
  const [root, issuer] = parseCertificates(readFileSync(s.info.ekCaFile), 'ek-ca.pem')
  t.ok(issuer.verify(root.publicKey), 'the CA file holds the root and the issuer it signed')
  t.ok(new X509Certificate(firstCert).verify(issuer.publicKey), 'the EK certificate chains to the CA file')
  s.proc.kill('SIGTERM')
  t.equal(await s.exit, 0, 'clean exit on SIGTERM')
  t.ok(await refused(s.info.port), 'the TPM port is closed')
})

t.test('the same directory serves the same TPM again, on a chosen port', async t => {
  const port = await new Promise<number>(resolve => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port
      srv.close(() => {
        resolve(p)
      })
    })
  })
  const s = await simulate(['--dir', tpmDir, '--port', String(port)])
  t.teardown(() => {
    s.proc.kill('SIGKILL')
  })
  t.equal(s.info.manufactured, false, 'reused')
  t.equal(s.info.port, port)
  t.same(await ekCertificate(s.info.tcti), firstCert, 'same EK certificate')
  s.proc.kill('SIGINT')
  t.equal(await s.exit, 0, 'clean exit on SIGINT')
})

t.test('a port in use is a clear error', async t => {
  const srv = createServer()
  await new Promise<void>(resolve => {
    srv.listen(0, '127.0.0.1', resolve)
  })
  t.teardown(() => {
    srv.close()
  })
  const port = (srv.address() as AddressInfo).port
  await t.rejects(
    simulate(['--dir', join(dir, 'other'), '--port', String(port)]),
    new RegExp(`exited 1: .*port ${port} or ${port + 1} on 127\\.0\\.0\\.1 is in use`, 's')
  )
  t.notOk(existsSync(join(dir, 'other')), 'nothing was made')
})
