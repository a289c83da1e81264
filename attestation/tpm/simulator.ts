// A software TPM for demos, local networks and tests: swtpm manufactured by swtpm_setup with
// RSA-2048 and ECC P-384 EKs and their certificates (NV 0x01c00002 / 0x01c00016) issued by a
// local CA, then served by `swtpm socket` on loopback TCP ports. INSECURE by nature — its keys
// live in files and anyone can make one — so whoever starts one outside a test announces it
// loudly (SOFTWARE_TPM_WARNING; the agent also refuses to treat it as hardware: TpmInfo.isSoftware).
//
//   const sw = await startSwtpm({ dir: '/tmp/tpm1' })      // manufactured once, reused after
//   const tpm = await openTpm({ tcti: sw.tcti })
//   …
//   await sw.stop()
//
// Nothing under /etc or /var/lib/swtpm-localca is read or written: the CA and every config file
// live in the simulator's directory. swtpm serves one data connection at a time, but its TCTI
// (tpm2-tss) connects per command, so several clients can share one swtpm, command by command.
// There is no resource manager: transient objects are shared (3 slots).
import { execFile, type ChildProcess } from 'node:child_process'
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import { ConfigError, QuorateError, TransientError } from '../../encoding/errors.ts'
import { spawnClean } from '../../encoding/process.ts'

const execFileP = promisify(execFile)

/** What to print (stderr) wherever a software TPM is started outside a test. */
export const SOFTWARE_TPM_WARNING =
  'INSECURE: SOFTWARE TPM (swtpm). Its keys are files on this machine and its EK CA is a local one; ' +
  'a node on it proves nothing about hardware. For demos and tests only.'

/** swtpm or swtpm_setup failed, or is not installed. */
export class SimulatorError extends QuorateError {
  override readonly code: string = 'ERR_TPM_SIMULATOR'
}

export interface SwtpmOptions {
  /**
   * Directory for the TPM state, its CA (unless caDir) and config files. Given: kept after stop(),
   * and a TPM already manufactured there is served again (same EKs). Default: a temp dir that
   * stop() removes.
   */
  dir?: string
  /** Loopback TCP port of the TPM; the control port is port + 1. Default: a free pair. */
  port?: number
  /** PCR banks to activate (swtpm_setup --pcr-banks). Default sha1,sha256 like most hardware TPMs. */
  pcrBanks?: string
  /** Also write a platform certificate (NV 0x01c08000). Default true. */
  platformCert?: boolean
  /** Keep a temp dir on stop() (debugging). Default false, or QUORATE_KEEP_SWTPM=1. */
  keep?: boolean
  /**
   * A CA made by createSwtpmCa() to issue the EK certificates, shared by several swtpms (one "TPM
   * vendor"); default a CA of this simulator's own (in <dir>/ca). Not removed by stop().
   * Manufacture sequentially when sharing (swtpm-localca keeps the serial number in the CA dir).
   */
  caDir?: string
}

export interface Swtpm {
  /** TCTI string for openTpm / tpm2-tools: `swtpm:host=127.0.0.1,port=N`. */
  readonly tcti: string
  readonly port: number
  readonly ctrlPort: number
  /** The TPM state directory (swtpm --tpmstate dir=...). */
  readonly stateDir: string
  /** The directory holding state, CA and config. */
  readonly dir: string
  /** The CA's certificates (PEM) that issued the EK certificates: root first, then the issuer. */
  readonly ekCaPems: string[]
  /** The same certificates in one PEM file, to publish as the TPM vendor's EK CAs. */
  readonly ekCaFile: string
  /** False when the TPM in `dir` was manufactured before and is served again. */
  readonly manufactured: boolean
  /** Milliseconds spent manufacturing (swtpm_setup; 0 when reused) and starting the server. */
  readonly timings: { manufactureMs: number; startMs: number }
  /**
   * TPM reset: stops the swtpm process and starts it again on the same state and ports, which
   * issues a new TPM2_Startup(CLEAR) — resetCount increments, PCRs are back to their initial
   * values, persistent objects and NV remain. Open openTpm connections keep working.
   */
  restart(): Promise<void>
  /** Stops swtpm; removes a temp dir. Idempotent. */
  stop(): Promise<void>
}

// ---- children that must not outlive this process ----
const live = new Set<{ proc?: ChildProcess; dir: string; remove: boolean }>()
let exitHookInstalled = false
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // A process that ends without stop() (a crash, process.exit) must not leave swtpm behind.
  process.on('exit', () => {
    for (const r of live) {
      try {
        r.proc?.kill('SIGKILL')
      } catch {}
      if (r.remove)
        try {
          rmSync(r.dir, { recursive: true, force: true })
        } catch {}
    }
  })
}

async function listenFree(port: number): Promise<number | undefined> {
  return await new Promise(resolve => {
    const s = createServer()
    s.once('error', () => {
      resolve(undefined)
    })
    s.listen(port, '127.0.0.1', () => {
      const a = s.address()
      const p = typeof a === 'object' && a !== null ? a.port : undefined
      s.close(() => {
        resolve(p)
      })
    })
  })
}

/** Two consecutive free loopback ports (server, ctrl). Racy by nature; startSwtpm retries. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await listenFree(0)
    if (p === undefined || p >= 65535) continue
    if ((await listenFree(p + 1)) === p + 1) return p
  }
  throw new TransientError('no two consecutive free TCP ports on 127.0.0.1 for swtpm')
}

/** An executable on PATH (swtpm_setup runs the CA tool by absolute path). */
function onPath(name: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (d !== '' && existsSync(join(d, name))) return join(d, name)
  }
  return undefined
}

// swtpm_setup runs swtpm as a double-forked grandchild and, when done, polls kill(pid, 0) until it
// is gone — up to ~0.6 s when the orphan's zombie is not reaped promptly (as under a container's
// PID 1). A child-subreaper wrapper that reaps every descendant at once cuts swtpm_setup from
// ~0.6 s to ~0.06 s. Falls back to running it directly without a usable python3.
const REAPER = [
  'import ctypes, os, sys',
  'ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER',
  'pid = os.fork()',
  'if pid == 0:',
  '    os.execvp(sys.argv[1], sys.argv[1:])',
  'code = 1',
  'while True:',
  '    try:',
  '        p, st = os.waitpid(-1, 0)',
  '    except ChildProcessError:',
  '        break',
  '    if p == pid:',
  '        code = os.waitstatus_to_exitcode(st)',
  'sys.exit(code if code >= 0 else 1)'
].join('\n')

async function runReaped(cmd: string, args: string[]): Promise<void> {
  const python = onPath('python3')
  if (python !== undefined) await execFileP(python, ['-c', REAPER, cmd, ...args], { timeout: 60_000 })
  else await execFileP(cmd, args, { timeout: 60_000 })
}

/** Sends TPM2_GetRandom(8) and waits for a response: swtpm is up and past TPM2_Startup. */
async function probe(port: number, timeoutMs: number): Promise<boolean> {
  // TPM 2.0 Part 3 §16.1: tag ST_NO_SESSIONS, size 12, TPM_CC_GetRandom (0x17b), bytesRequested 8
  const cmd = Buffer.from('80010000000c0000017b0008', 'hex')
  return await new Promise(resolve => {
    const sock = connect({ host: '127.0.0.1', port })
    const timer = setTimeout(() => {
      sock.destroy()
      resolve(false)
    }, timeoutMs)
    let got = Buffer.alloc(0)
    sock.on('connect', () => {
      sock.write(cmd)
    })
    sock.on('data', d => {
      got = Buffer.concat([got, d])
      if (got.length >= 10) {
        clearTimeout(timer)
        sock.destroy()
        resolve(got.readUInt32BE(6) === 0)
      }
    })
    sock.on('error', () => {
      clearTimeout(timer)
      resolve(false)
    })
  })
}

function spawnSwtpm(stateDir: string, logFile: string, port: number): ChildProcess {
  // spawnClean: a swtpm started while another TPM command is in flight must not keep that
  // command's socket (this hung a verifier's ActivateCredential in CI)
  return spawnClean(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--flags',
      'startup-clear',
      '--log',
      `file=${logFile},level=1`
    ],
    { stdio: 'ignore' }
  )
}

async function waitReady(proc: ChildProcess, port: number, logFile: string): Promise<void> {
  const deadline = Date.now() + 10_000
  let exited = false
  let spawnError: Error | undefined
  const onExit = (): void => {
    exited = true
  }
  const onError = (err: Error): void => {
    spawnError = err
    exited = true
  }
  proc.once('exit', onExit)
  proc.once('error', onError)
  try {
    while (Date.now() < deadline) {
      if (exited) {
        const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-500) : ''
        throw new SimulatorError(
          `swtpm exited during start (port ${port})${spawnError !== undefined ? `: ${spawnError.message}` : ''}: ${log}`
        )
      }
      if (await probe(port, 1000)) return
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    throw new TransientError(`swtpm did not answer on 127.0.0.1:${port} within 10 s`)
  } finally {
    proc.off('exit', onExit)
    proc.off('error', onError)
  }
}

async function stopProc(proc: ChildProcess | undefined): Promise<void> {
  if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
  await new Promise<void>(resolve => {
    const t = setTimeout(() => {
      try {
        proc.kill('SIGKILL')
      } catch {}
    }, 2000)
    proc.once('exit', () => {
      clearTimeout(t)
      resolve()
    })
    proc.kill('SIGTERM')
  })
}

// ---- the local EK CA ----
// Made here instead of by swtpm-localca, which has certtool generate two RSA-3072 keys (~0.3 s of
// CPU per swtpm). Same shape: a self-signed root "swtpm-localca-rootca" and an issuing CA
// "swtpm-localca" it signs, both CA:TRUE with keyCertSign|cRLSign, here ECDSA P-256 / SHA-256
// (~2 ms). swtpm-localca finds signkey.pem + issuercert.pem in its statedir and only issues the
// EK/platform certificates (signed by swtpm_cert with that key). Minimal DER (RFC 5280 §4.1).
function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  const n = body.length
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff])
  return Buffer.concat([Buffer.from([tag]), len, body])
}
const seq = (...p: Buffer[]): Buffer => der(0x30, ...p)
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number)
  const out = [40 * a + b]
  for (const v of rest) {
    const bytes = [v & 0x7f]
    for (let x = v >> 7; x > 0; x >>= 7) bytes.unshift((x & 0x7f) | 0x80)
    out.push(...bytes)
  }
  return der(0x06, Buffer.from(out))
}
const name = (cn: string): Buffer => seq(der(0x31, seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn, 'utf8')))))
const utcTime = (d: Date): Buffer => der(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'))
const ext = (id: string, critical: boolean, value: Buffer): Buffer =>
  seq(oid(id), ...(critical ? [der(0x01, Buffer.from([0xff]))] : []), der(0x04, value))

function caCert(subject: string, issuer: string, pub: KeyObject, signer: KeyObject, issuerPub: KeyObject): Buffer {
  const spki = pub.export({ type: 'spki', format: 'der' })
  // SKI method 1 of RFC 5280 §4.2.1.2: SHA-1 of the subjectPublicKey bits (the SPKI's BIT STRING body)
  const keyId = (k: KeyObject): Buffer =>
    createHash('sha1')
      .update(k.export({ type: 'spki', format: 'der' }).subarray(-65))
      .digest()
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'))
  const now = new Date(Date.now() - 60_000)
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, Buffer.concat([Buffer.from([0x01]), randomBytes(8)])),
    ecdsaSha256,
    name(issuer),
    seq(utcTime(now), utcTime(new Date(now.getTime() + 10 * 365 * 86400_000))),
    name(subject),
    spki,
    der(
      0xa3,
      seq(
        ext('2.5.29.19', true, seq(der(0x01, Buffer.from([0xff])))),
        ext('2.5.29.15', true, der(0x03, Buffer.from([0x01, 0x06]))),
        ext('2.5.29.14', false, der(0x04, keyId(pub))),
        ext('2.5.29.35', false, seq(der(0x80, keyId(issuerPub))))
      )
    )
  )
  const sig = sign('sha256', tbs, signer)
  return seq(tbs, ecdsaSha256, der(0x03, Buffer.concat([Buffer.from([0]), sig])))
}

const pem = (label: string, d: Buffer): string =>
  `-----BEGIN ${label}-----\n${d
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '')}\n-----END ${label}-----\n`

const ROOT_CERT = 'swtpm-localca-rootca-cert.pem'
const ISSUER_CERT = 'issuercert.pem'

function caPems(caDir: string): string[] {
  try {
    return [readFileSync(join(caDir, ROOT_CERT), 'utf8'), readFileSync(join(caDir, ISSUER_CERT), 'utf8')]
  } catch (err) {
    throw new SimulatorError(`no EK CA in ${caDir} (${(err as Error).message})`, { cause: err })
  }
}

/**
 * A CA (root + issuing CA) for one or several swtpms — one "TPM vendor"; returns its dir and
 * certificates (PEM, root first). An existing CA in `dir` is kept.
 */
export function createSwtpmCa(dir: string = mkdtempSync(join(tmpdir(), 'quorate-swtpm-ca-'))): {
  dir: string
  pems: string[]
} {
  mkdirSync(dir, { recursive: true })
  if (!existsSync(join(dir, 'signkey.pem'))) {
    const root = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const issuer = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    writeFileSync(
      join(dir, ROOT_CERT),
      pem(
        'CERTIFICATE',
        caCert('swtpm-localca-rootca', 'swtpm-localca-rootca', root.publicKey, root.privateKey, root.publicKey)
      )
    )
    writeFileSync(
      join(dir, ISSUER_CERT),
      pem(
        'CERTIFICATE',
        caCert('swtpm-localca', 'swtpm-localca-rootca', issuer.publicKey, root.privateKey, root.publicKey)
      )
    )
    writeFileSync(join(dir, 'signkey.pem'), issuer.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    writeFileSync(join(dir, 'certserial'), '1')
  }
  return { dir, pems: caPems(dir) }
}

/** swtpm writes its NVRAM here once manufactured (libtpms' file name for TPM 2.0 state). */
const STATE_FILE = 'tpm2-00.permall'

async function manufacture(dir: string, stateDir: string, caDir: string, opts: SwtpmOptions): Promise<void> {
  const localca = onPath('swtpm_localca') ?? '/usr/bin/swtpm_localca'
  if (onPath('swtpm_setup') === undefined || !existsSync(localca))
    throw new SimulatorError(
      'swtpm_setup / swtpm_localca not found on PATH: install swtpm and swtpm-tools (npm run setup does)'
    )
  // swtpm-localca issues the EK (and platform) certificates with the CA made by createSwtpmCa().
  writeFileSync(
    join(dir, 'swtpm-localca.conf'),
    [
      `statedir = ${caDir}`,
      `signingkey = ${join(caDir, 'signkey.pem')}`,
      `issuercert = ${join(caDir, ISSUER_CERT)}`,
      `certserial = ${join(caDir, 'certserial')}`,
      ''
    ].join('\n')
  )
  writeFileSync(
    join(dir, 'swtpm-localca.options'),
    ['--platform-manufacturer Quorate', '--platform-version 2.1', '--platform-model swtpm', ''].join('\n')
  )
  writeFileSync(
    join(dir, 'swtpm_setup.conf'),
    [
      `create_certs_tool = ${localca}`,
      `create_certs_tool_config = ${join(dir, 'swtpm-localca.conf')}`,
      `create_certs_tool_options = ${join(dir, 'swtpm-localca.options')}`,
      ''
    ].join('\n')
  )
  mkdirSync(stateDir, { recursive: true })
  const args = [
    '--tpm2',
    '--tpm-state',
    stateDir,
    '--config',
    join(dir, 'swtpm_setup.conf'),
    '--create-ek-cert',
    '--pcr-banks',
    opts.pcrBanks ?? 'sha1,sha256',
    '--logfile',
    join(dir, 'setup.log')
  ]
  if (opts.platformCert ?? true) args.push('--create-platform-cert')
  try {
    await runReaped('swtpm_setup', args)
  } catch (err) {
    const log = existsSync(join(dir, 'setup.log')) ? readFileSync(join(dir, 'setup.log'), 'utf8').slice(-1500) : ''
    throw new SimulatorError(`swtpm_setup failed: ${(err as Error).message}\n${log}`, { cause: err })
  }
}

/**
 * Manufactures a software TPM (EK certificates from a local CA) — or, with a `dir` that already
 * holds one, reuses it — and serves it on loopback ports.
 */
export async function startSwtpm(opts: SwtpmOptions = {}): Promise<Swtpm> {
  installExitHook()
  if (opts.port !== undefined && (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65534)) {
    throw new ConfigError(`port ${opts.port}: give 1–65534 (the control port is the next one)`)
  }
  // A chosen port that is taken is refused before anything is made.
  const portTaken = async (p: number): Promise<boolean> =>
    (await listenFree(p)) !== p || (await listenFree(p + 1)) !== p + 1
  if (opts.port !== undefined && (await portTaken(opts.port)))
    throw new ConfigError(`port ${opts.port} or ${opts.port + 1} on 127.0.0.1 is in use; choose another port`)
  const temp = opts.dir === undefined
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'quorate-swtpm-'))
  mkdirSync(dir, { recursive: true })
  const rec: { proc?: ChildProcess; dir: string; remove: boolean } = {
    dir,
    remove: temp && !(opts.keep ?? process.env.QUORATE_KEEP_SWTPM === '1')
  }
  live.add(rec)
  const stateDir = join(dir, 'state')
  const caDir = opts.caDir ?? join(dir, 'ca')
  const logFile = join(dir, 'swtpm.log')
  const ekCaFile = join(dir, 'ek-ca.pem')
  try {
    const t0 = performance.now()
    const manufactured = !existsSync(join(stateDir, STATE_FILE))
    if (manufactured) {
      if (opts.caDir === undefined) createSwtpmCa(caDir)
      await manufacture(dir, stateDir, caDir, opts)
    }
    const ekCaPems = caPems(caDir)
    writeFileSync(ekCaFile, ekCaPems.join(''))
    const t1 = performance.now()

    let port = 0
    for (let attempt = 0; ; attempt++) {
      port = opts.port ?? (await freePortPair())
      const proc = spawnSwtpm(stateDir, logFile, port)
      rec.proc = proc
      try {
        await waitReady(proc, port, logFile)
        break
      } catch (err) {
        await stopProc(proc)
        // ports taken between probe and bind: try other ports (not when the caller chose one)
        if (attempt >= 4 || opts.port !== undefined || err instanceof SimulatorError) throw err
      }
    }
    const t2 = performance.now()

    let stopped = false
    return {
      tcti: `swtpm:host=127.0.0.1,port=${port}`,
      port,
      ctrlPort: port + 1,
      stateDir,
      dir,
      ekCaPems,
      ekCaFile,
      manufactured,
      timings: { manufactureMs: Math.round(t1 - t0), startMs: Math.round(t2 - t1) },
      async restart() {
        if (stopped) throw new SimulatorError('restart after stop')
        await stopProc(rec.proc)
        // The old process's sockets may linger briefly; retry the same ports for a while.
        let lastErr: unknown
        for (let attempt = 0; attempt < 20; attempt++) {
          const proc = spawnSwtpm(stateDir, logFile, port)
          rec.proc = proc
          try {
            await waitReady(proc, port, logFile)
            return
          } catch (err) {
            lastErr = err
            await stopProc(proc)
            await new Promise(resolve => setTimeout(resolve, 100))
          }
        }
        throw new SimulatorError(`swtpm restart on port ${port} failed`, { cause: lastErr })
      },
      async stop() {
        if (stopped) return
        stopped = true
        await stopProc(rec.proc)
        if (rec.remove) rmSync(dir, { recursive: true, force: true })
        live.delete(rec)
      }
    }
  } catch (err) {
    await stopProc(rec.proc)
    if (rec.remove) rmSync(dir, { recursive: true, force: true })
    live.delete(rec)
    throw err
  }
}
