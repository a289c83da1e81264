// Whole-system TPM tests (STYLE.md §11, tier 3): a real UEFI measured boot under QEMU (TCG) + OVMF
// + swtpm. The guest is Debian's kernel (cached by scripts/vm/fetch-kernel.sh, never installed
// into the host's /boot) and a busybox + tpm2-tools initramfs built here with cpio, whose /init
// (scripts/vm/init.sh) quotes sha256 PCRs 0-9 with a host-chosen nonce and prints the evidence
// pieces on the serial console.
//
//   const kernel = await ensureKernel()
//   const tpm = await manufactureVmTpm()
//   const img = await buildInitramfs({ dir, kernel, label: 'A' })
//   const boot = await bootMeasured({ kernel, initrd: img.path, tpm, nonce })
//   boot.pieces.attest / .signature / .akPublic / .pcrs / .eventLog ...
//   tpm.remove()
//
// The nonce travels by QEMU fw_cfg (opt/quorate/nonce), NOT on the kernel command line: the
// kernel's EFI stub measures its command line into PCR 9 (event "LOADED_IMAGE::LoadOptions"), so a
// nonce there would make PCR 9 different on every boot and impossible to publish beforehand.
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process'
import { spawnClean } from '../../encoding/process.ts'
import {
  mkdtempSync,
  mkdirSync,
  rmSync,
  writeFileSync,
  readFileSync,
  existsSync,
  copyFileSync,
  chmodSync,
  lutimesSync,
  readdirSync,
  lstatSync,
  realpathSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname, basename, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { concat, fromHex, sha256, toHex } from '../../encoding/bytes.ts'

const execFileP = promisify(execFile)
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

// Host tools and firmware: Debian's paths (scripts/setup.sh installs them), overridable for other
// distributions or a Nix devShell (where busybox must be a static build, e.g. pkgsStatic.busybox).
export const OVMF_CODE = process.env.QUORATE_OVMF_CODE ?? '/usr/share/OVMF/OVMF_CODE_4M.fd'
export const OVMF_VARS = process.env.QUORATE_OVMF_VARS ?? '/usr/share/OVMF/OVMF_VARS_4M.fd'
const BUSYBOX = process.env.QUORATE_VM_BUSYBOX ?? '/usr/bin/busybox'
const TPM2 = process.env.QUORATE_VM_TPM2 ?? '/usr/bin/tpm2'
/** The guest's kernel command line. Part of the OS image: it is measured into PCR 9. */
export const DEFAULT_CMDLINE = 'console=ttyS0 panic=-1 rdinit=/init loglevel=1'
/** The PCRs /init quotes (sha256 bank): everything firmware, boot loader and EFI stub measure. */
export const QUOTED_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
/** Length of the image label baked into /etc/quorate-image; variants keep it so the size stays. */
export const LABEL_LENGTH = 24

// ---------------------------------------------------------------------------------------------
// Prerequisites

function which(exe: string): string {
  return execFileSync('sh', ['-c', 'command -v "$1"', 'sh', exe], { encoding: 'utf8' }).trim()
}

/** What is missing to boot a VM here (executables, OVMF images); empty when everything is there. */
export function vmPrerequisitesMissing(): string[] {
  const missing: string[] = []
  for (const exe of ['qemu-system-x86_64', 'swtpm', 'swtpm_setup', 'swtpm_localca', 'cpio', 'ldd']) {
    try {
      which(exe)
    } catch {
      missing.push(exe)
    }
  }
  for (const f of [OVMF_CODE, OVMF_VARS, BUSYBOX, TPM2]) {
    if (!existsSync(f)) missing.push(f)
  }
  return missing
}

// ---------------------------------------------------------------------------------------------
// Kernel

export interface VmKernel {
  /** e.g. 6.1.0-56-amd64 */
  readonly version: string
  readonly vmlinuz: string
  /** qemu_fw_cfg.ko of the same kernel (the guest reads the nonce through it). */
  readonly fwCfgModule: string
  /** sha256 of vmlinuz, hex. */
  readonly sha256: string
}

/**
 * The cached Debian kernel, fetched on first use by scripts/vm/fetch-kernel.sh (apt-get download
 * + dpkg-deb -x into a scratch dir). Cache: QUORATE_VM_CACHE or /var/cache/quorate-vm.
 */
export async function ensureKernel(opts: { cacheDir?: string; pkg?: string } = {}): Promise<VmKernel> {
  const env = { ...process.env }
  if (opts.pkg !== undefined) env.QUORATE_VM_KERNEL_PKG = opts.pkg
  const pkg = env.QUORATE_VM_KERNEL_PKG ?? 'linux-image-6.1.0-56-amd64'
  const version = pkg.replace(/^linux-image-/, '')
  const args = opts.cacheDir === undefined ? [] : [opts.cacheDir]
  const { stdout } = await execFileP(join(ROOT, 'scripts/vm/fetch-kernel.sh'), args, { env, timeout: 300_000 })
  const cache = stdout.trim().split('\n').pop() ?? ''
  const vmlinuz = join(cache, `vmlinuz-${version}`)
  const fwCfgModule = join(cache, `qemu_fw_cfg-${version}.ko`)
  if (!existsSync(vmlinuz) || !existsSync(fwCfgModule))
    throw new Error(`fetch-kernel.sh did not leave ${vmlinuz} and ${fwCfgModule}`)
  // The guest loads no TPM driver module: QEMU's tpm-tis device needs CONFIG_TCG_TIS built in
  // (Debian's kernels have it, and CRB, built in; securityfs for the event log too).
  const kconfig = join(cache, `config-${version}`)
  if (existsSync(kconfig)) {
    const text = readFileSync(kconfig, 'utf8')
    for (const opt of ['CONFIG_TCG_TPM', 'CONFIG_TCG_TIS', 'CONFIG_SECURITYFS', 'CONFIG_EFI_STUB']) {
      if (!new RegExp(`^${opt}=y$`, 'm').test(text))
        throw new Error(
          `kernel ${version}: ${opt} is not built in (=y); the measured-boot initramfs loads no modules but qemu_fw_cfg`
        )
    }
  }
  return { version, vmlinuz, fwCfgModule, sha256: toHex(sha256(readFileSync(vmlinuz))) }
}

// ---------------------------------------------------------------------------------------------
// Initramfs

export interface Initramfs {
  readonly path: string
  readonly size: number
  /** sha256 of the file: what the EFI stub measures into PCR 9 ("Linux initrd" event). */
  readonly digest: Uint8Array
  readonly label: string
}

function sharedLibraries(exe: string): string[] {
  // ldd lists "name => /path (addr)" for libraries and "/lib64/ld-linux... (addr)" for the loader.
  const out = execFileSync('ldd', [exe], { encoding: 'utf8' })
  const libs: string[] = []
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line)
    if (m !== null) libs.push(m[1])
  }
  return libs
}

function padLabel(label: string): string {
  if (!/^[\x20-\x7e]*$/.test(label) || label.length > LABEL_LENGTH)
    throw new Error(`initramfs label must be printable ASCII of at most ${LABEL_LENGTH} characters`)
  return label.padEnd(LABEL_LENGTH, '.')
}

function setEpoch(dir: string): void {
  // Reproducible archive: every mtime 0 (cpio --reproducible renumbers inodes and drops dev numbers).
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (lstatSync(p).isDirectory()) setEpoch(p)
    lutimesSync(p, 0, 0)
  }
  lutimesSync(dir, 0, 0)
}

function listTree(dir: string, prefix = '.'): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const rel = `${prefix}/${name}`
    out.push(rel)
    if (lstatSync(join(dir, name)).isDirectory()) out.push(...listTree(join(dir, name), rel))
  }
  return out
}

/**
 * Builds the measured-boot initramfs (newc cpio, uncompressed, reproducible) in `dir`:
 * busybox-static, tpm2-tools' `tpm2` with every shared library ldd names plus the device TCTI
 * the loader dlopens, qemu_fw_cfg.ko, /init = scripts/vm/init.sh, /etc/quorate-image = label.
 */
export async function buildInitramfs(opts: { dir: string; kernel: VmKernel; label?: string }): Promise<Initramfs> {
  const label = padLabel(opts.label ?? 'quorate-test-image')
  const tree = mkdtempSync(join(opts.dir, 'initramfs-tree-'))
  try {
    for (const d of ['bin', 'lib', 'lib64', 'lib/modules', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root'])
      mkdirSync(join(tree, d), { recursive: true })
    copyFileSync(BUSYBOX, join(tree, 'bin/busybox'))
    copyFileSync(TPM2, join(tree, 'bin/tpm2'))
    // The TCTI loader dlopen()s the device TCTI at run time, so ldd cannot see it: it lives next
    // to libtss2-tctildr, which ldd does list.
    const tpm2Libs = sharedLibraries(TPM2)
    const tctildr = tpm2Libs.find(l => basename(l).startsWith('libtss2-tctildr.so'))
    if (tctildr === undefined) throw new Error(`${TPM2} does not link libtss2-tctildr`)
    const tcti = join(dirname(tctildr), 'libtss2-tcti-device.so.0')
    for (const lib of new Set([...tpm2Libs, ...sharedLibraries(tcti), tcti])) {
      const into = lib.startsWith('/lib64/') ? 'lib64' : 'lib'
      copyFileSync(realpathSync(lib), join(tree, into, basename(lib)))
    }
    copyFileSync(opts.kernel.fwCfgModule, join(tree, 'lib/modules/qemu_fw_cfg.ko'))
    copyFileSync(join(ROOT, 'scripts/vm/init.sh'), join(tree, 'init'))
    chmodSync(join(tree, 'init'), 0o755)
    chmodSync(join(tree, 'bin/busybox'), 0o755)
    chmodSync(join(tree, 'bin/tpm2'), 0o755)
    writeFileSync(join(tree, 'etc/quorate-image'), label)
    setEpoch(tree)
    const path = join(opts.dir, `initrd-${label.replace(/[^A-Za-z0-9_-]/g, '_')}.cpio`)
    await new Promise<void>((resolve, reject) => {
      const p = spawn('cpio', ['-o', '-H', 'newc', '--reproducible', '-R', '0:0', '--quiet', '-O', path], {
        cwd: tree,
        stdio: ['pipe', 'ignore', 'pipe']
      })
      let err = ''
      p.stderr.on('data', (d: Buffer) => {
        err += d.toString()
      })
      p.on('error', reject)
      p.on('exit', code => {
        code === 0 ? resolve() : reject(new Error(`cpio exited ${code}: ${err}`))
      })
      p.stdin.end(listTree(tree).join('\n') + '\n')
    })
    const bytes = readFileSync(path)
    return { path, size: bytes.length, digest: sha256(bytes), label }
  } finally {
    rmSync(tree, { recursive: true, force: true })
  }
}

/**
 * A copy of `src` whose /etc/quorate-image says `label` instead: same size (so QEMU's patched
 * kernel setup header and therefore PCR 4 stay the same), different content (so PCR 9 differs).
 * This is the "someone changed the initrd" case.
 */
export function modifiedInitramfs(src: Initramfs, dir: string, label: string): Initramfs {
  const next = padLabel(label)
  const bytes = readFileSync(src.path)
  const old = Buffer.from(src.label)
  const at = bytes.indexOf(old)
  if (at < 0 || bytes.indexOf(old, at + 1) >= 0) throw new Error('initramfs label not found exactly once')
  Buffer.from(next).copy(bytes, at)
  const path = join(dir, `initrd-${next.replace(/[^A-Za-z0-9_-]/g, '_')}.cpio`)
  writeFileSync(path, bytes)
  return { path, size: bytes.length, digest: sha256(bytes), label: next }
}

// ---------------------------------------------------------------------------------------------
// OS reference values the image publisher can compute without booting

/**
 * PCR 9 as Linux's EFI stub (6.1+) leaves it after a direct kernel boot by OVMF, and the two event
 * digests behind it: TCG_PCR_EVENT2 tagged events "LOADED_IMAGE::LoadOptions" = sha256 of the
 * UCS-2 load options OVMF passes (the command line + " initrd=initrd" when an initrd is given,
 * NUL-terminated) and "Linux initrd" = sha256 of the initrd file. Checked against a real boot in
 * test/vm/measured-boot.test.ts.
 */
export function predictPcr9(cmdline: string, initrdDigest: Uint8Array): { events: Uint8Array[]; value: Uint8Array } {
  const loadOptions = Buffer.from(`${cmdline} initrd=initrd\0`, 'utf16le')
  const events = [sha256(loadOptions), initrdDigest]
  let pcr: Uint8Array = new Uint8Array(32)
  for (const e of events) pcr = sha256(concat([pcr, e]))
  return { events, value: pcr }
}

// ---------------------------------------------------------------------------------------------
// The VM's TPM

export interface VmTpm {
  /** swtpm state dir (NV with EK certificates; kept across boots like a real machine's TPM). */
  readonly stateDir: string
  readonly dir: string
  /** The per-run local CA that issued the EK certificate: root first, then the issuer (PEM). */
  readonly ekCaPems: string[]
  /** Removes the state and CA. */
  remove(): void
}

/**
 * Manufactures a software TPM for VMs: swtpm_setup with an RSA-2048 and an ECC EK, EK and platform
 * certificates from a per-run local CA (as test/helpers/swtpm.ts does; here the TPM is served
 * per boot over a unix control socket, the way QEMU's tpm-emulator backend expects).
 */
export async function manufactureVmTpm(opts: { pcrBanks?: string } = {}): Promise<VmTpm> {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-vmtpm-'))
  track.dirs.add(dir)
  const stateDir = join(dir, 'state')
  const caDir = join(dir, 'ca')
  mkdirSync(stateDir)
  mkdirSync(caDir)
  writeFileSync(
    join(dir, 'swtpm-localca.conf'),
    [
      `statedir = ${caDir}`,
      `signingkey = ${join(caDir, 'signkey.pem')}`,
      `issuercert = ${join(caDir, 'issuercert.pem')}`,
      `certserial = ${join(caDir, 'certserial')}`,
      ''
    ].join('\n')
  )
  writeFileSync(
    join(dir, 'swtpm-localca.options'),
    ['--platform-manufacturer Quorate', '--platform-version 2.1', '--platform-model qemu-q35', ''].join('\n')
  )
  writeFileSync(
    join(dir, 'swtpm_setup.conf'),
    [
      `create_certs_tool = ${which('swtpm_localca')}`,
      `create_certs_tool_config = ${join(dir, 'swtpm-localca.conf')}`,
      `create_certs_tool_options = ${join(dir, 'swtpm-localca.options')}`,
      ''
    ].join('\n')
  )
  try {
    await execFileP(
      'swtpm_setup',
      [
        '--tpm2',
        '--tpm-state',
        stateDir,
        '--config',
        join(dir, 'swtpm_setup.conf'),
        '--create-ek-cert',
        '--create-platform-cert',
        '--pcr-banks',
        opts.pcrBanks ?? 'sha256',
        '--logfile',
        join(dir, 'setup.log')
      ],
      { timeout: 60_000 }
    )
  } catch (err) {
    const log = existsSync(join(dir, 'setup.log')) ? readFileSync(join(dir, 'setup.log'), 'utf8').slice(-1500) : ''
    rmSync(dir, { recursive: true, force: true })
    track.dirs.delete(dir)
    throw new Error(`swtpm_setup failed: ${(err as Error).message}\n${log}`, { cause: err })
  }
  const ekCaPems = [
    readFileSync(join(caDir, 'swtpm-localca-rootca-cert.pem'), 'utf8'),
    readFileSync(join(caDir, 'issuercert.pem'), 'utf8')
  ]
  return {
    stateDir,
    dir,
    ekCaPems,
    remove() {
      if (process.env.QUORATE_KEEP_VM !== '1') rmSync(dir, { recursive: true, force: true })
      track.dirs.delete(dir)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Serial console protocol

/** What the guest's /init printed, decoded. Byte formats are tpm2-tools' "tss" formats. */
export interface MeasuredBootPieces {
  /** The nonce the guest says it used (echoed, hex). */
  readonly nonceEcho: string
  /** TPMS_ATTEST bytes as signed (tpm2_quote -m). */
  readonly attest: Uint8Array
  /** TPMT_SIGNATURE (tpm2_quote -s, default tss format). */
  readonly signature: Uint8Array
  /** TPMT_PUBLIC of the AK (tpm2_createak -u writes a TPM2B_PUBLIC; the size prefix is removed). */
  readonly akPublic: Uint8Array
  /** TPMT_PUBLIC of the RSA EK. */
  readonly ekPublic: Uint8Array
  /** DER EK certificate read from NV 0x01c00002; undefined when the TPM has none. */
  readonly ekCertificate?: Uint8Array
  /** sha256 PCR values read by the guest from sysfs after the quote. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>
  /** /sys/kernel/security/tpm0/binary_bios_measurements (TCG PC Client crypto-agile log). */
  readonly eventLog: Uint8Array
  /** The image label the guest booted (/etc/quorate-image). */
  readonly imageLabel: string
  /** TPM2_PT_LOCKOUT_COUNTER at boot (undefined when the guest could not read it). */
  readonly lockoutCounter?: number
}

/** Largest serial output kept; the protocol itself needs ~10 kB. */
export const SERIAL_LIMIT = 4 << 20
const BLOCK_LIMIT = 1 << 20

export class SerialProtocolError extends Error {
  override readonly name = 'SerialProtocolError'
}

function stripTpm2b(b: Uint8Array, what: string): Uint8Array {
  if (b.length < 2) throw new SerialProtocolError(`${what}: shorter than a TPM2B size`)
  const n = (b[0] << 8) | b[1]
  if (n !== b.length - 2) throw new SerialProtocolError(`${what}: TPM2B size ${n} does not match ${b.length - 2} bytes`)
  return b.slice(2)
}

/**
 * Parses the guest's serial console output. Strict: every block must be present exactly once and
 * be valid base64; the PCR list must name each quoted PCR once with a 32-byte value. Throws
 * SerialProtocolError (or, if the guest reported a failure, one carrying its message).
 */
export function parseSerial(text: string): MeasuredBootPieces {
  if (text.length > SERIAL_LIMIT) throw new SerialProtocolError(`serial output larger than ${SERIAL_LIMIT} characters`)
  const lines = text.split(/\r?\n/).map(l => l.replace(/\r/g, ''))
  const fail = lines.find(l => l.startsWith('QUORATE: FAIL '))
  if (fail !== undefined || lines.includes('=====QUORATE-FAIL====='))
    throw new SerialProtocolError(`guest failed: ${fail ?? 'no reason given'}`)
  if (!lines.includes('=====QUORATE-DONE=====')) throw new SerialProtocolError('guest did not finish (no DONE marker)')
  const blocks = new Map<string, Uint8Array>()
  let open: string | undefined
  let acc: string[] = []
  let accLen = 0
  for (const line of lines) {
    const begin = /^=====BEGIN ([a-z0-9.]{1,32})=====$/.exec(line)
    const end = /^=====END ([a-z0-9.]{1,32})=====$/.exec(line)
    if (begin !== null) {
      if (open !== undefined) throw new SerialProtocolError(`block ${begin[1]} begins inside ${open}`)
      if (blocks.has(begin[1])) throw new SerialProtocolError(`block ${begin[1]} appears twice`)
      open = begin[1]
      acc = []
      accLen = 0
    } else if (end !== null) {
      if (open !== end[1]) throw new SerialProtocolError(`END ${end[1]} without its BEGIN`)
      const b64 = acc.join('')
      if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
        throw new SerialProtocolError(`block ${open} is not valid base64`)
      blocks.set(open, new Uint8Array(Buffer.from(b64, 'base64')))
      open = undefined
    } else if (open !== undefined) {
      // Only base64 lines belong to a block; a stray kernel message line is skipped (if it tore a
      // base64 line apart, the content checks below or the quote verification catch it).
      if (/^[A-Za-z0-9+/=]+$/.test(line)) {
        accLen += line.length
        if (accLen > BLOCK_LIMIT) throw new SerialProtocolError(`block ${open} larger than ${BLOCK_LIMIT} characters`)
        acc.push(line)
      }
    }
  }
  if (open !== undefined) throw new SerialProtocolError(`block ${open} not terminated`)
  const need = (name: string): Uint8Array => {
    const b = blocks.get(name)
    if (b === undefined) throw new SerialProtocolError(`block ${name} missing`)
    return b
  }
  const pcrs = new Map<number, Uint8Array>()
  for (const l of new TextDecoder().decode(need('pcrs.txt')).split('\n')) {
    if (l.trim() === '') continue
    const m = /^sha256 (\d{1,2}) ([0-9A-Fa-f]{64})$/.exec(l.trim())
    if (m === null) throw new SerialProtocolError(`pcrs.txt: bad line ${JSON.stringify(l.slice(0, 100))}`)
    const i = Number(m[1])
    if (pcrs.has(i)) throw new SerialProtocolError(`pcrs.txt: PCR ${i} twice`)
    pcrs.set(i, fromHex(m[2]))
  }
  for (const i of QUOTED_PCRS) if (!pcrs.has(i)) throw new SerialProtocolError(`pcrs.txt: PCR ${i} missing`)
  const nonceLine = lines.find(l => l.startsWith('QUORATE: nonce '))
  const labelLine = lines.find(l => l.startsWith('QUORATE: init '))
  const lockout = /^QUORATE: lockout-counter (0x[0-9a-fA-F]{1,8}|\d{1,10})$/.exec(
    lines.find(l => l.startsWith('QUORATE: lockout-counter ')) ?? ''
  )
  const cert = need('ekcert.der')
  const attest = need('quote.msg')
  const signature = need('quote.sig')
  const eventLog = need('eventlog.bin')
  if (attest.length < 10) throw new SerialProtocolError('quote.msg too short')
  if (signature.length < 4) throw new SerialProtocolError('quote.sig too short')
  if (eventLog.length < 32) throw new SerialProtocolError('eventlog.bin too short')
  return {
    nonceEcho: nonceLine?.slice('QUORATE: nonce '.length).trim() ?? '',
    attest,
    signature,
    akPublic: stripTpm2b(need('ak.pub'), 'ak.pub'),
    ekPublic: stripTpm2b(need('ek.pub'), 'ek.pub'),
    ...(cert.length > 0 ? { ekCertificate: cert } : {}),
    pcrs,
    eventLog,
    imageLabel: labelLine?.slice('QUORATE: init '.length).trim() ?? '',
    ...(lockout !== null ? { lockoutCounter: Number(lockout[1]) } : {})
  }
}

// ---------------------------------------------------------------------------------------------
// Booting

export interface BootOptions {
  readonly kernel: VmKernel
  readonly initrd: string
  readonly tpm: VmTpm
  readonly nonce: Uint8Array
  readonly cmdline?: string
  /** -m (MiB). Default 1024, as the shared fixture (PCR 4 depends on it). */
  readonly memoryMb?: number
  /** -smp. Default 2, as the shared fixture (PCR 0 depends on it). */
  readonly smp?: number
  /** QEMU accelerator. Default QUORATE_VM_ACCEL or 'tcg' (software emulation, works everywhere). */
  readonly accel?: string
  /** Per attempt. Default 150 s (a boot takes 20-40 s under TCG on a loaded 2-core machine). */
  readonly timeoutMs?: number
  /** Attempts in all (a timeout or a garbled console is retried). Default 2. */
  readonly attempts?: number
  readonly signal?: AbortSignal
  /** Called with each line the guest prints (debugging, progress). */
  readonly onLine?: (line: string) => void
}

export interface BootResult {
  readonly pieces: MeasuredBootPieces
  readonly serial: string
  /** Milliseconds of the successful attempt (QEMU start to exit). */
  readonly durationMs: number
  readonly attempts: number
  /** Why earlier attempts failed (empty when the first one succeeded). */
  readonly failures: readonly string[]
  /** The exact QEMU argument list of the successful attempt. */
  readonly qemuArgs: readonly string[]
}

const track = { procs: new Set<ChildProcess>(), dirs: new Set<string>(), hooked: false }
function hookExit(): void {
  if (track.hooked) return
  track.hooked = true
  // A crashed or timed-out test must not leave QEMU or swtpm running, or state behind.
  process.on('exit', () => {
    for (const p of track.procs)
      try {
        p.kill('SIGKILL')
      } catch {}
    if (process.env.QUORATE_KEEP_VM !== '1')
      for (const d of track.dirs)
        try {
          rmSync(d, { recursive: true, force: true })
        } catch {}
  })
}

function waitExit(p: ChildProcess, ms: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true)
  return new Promise(resolve => {
    const t = setTimeout(() => {
      p.off('exit', on)
      resolve(false)
    }, ms)
    const on = (): void => {
      clearTimeout(t)
      resolve(true)
    }
    p.once('exit', on)
  })
}

async function kill(p: ChildProcess | undefined): Promise<void> {
  if (p === undefined) return
  if (p.exitCode === null && p.signalCode === null) {
    p.kill('SIGTERM')
    if (!(await waitExit(p, 2000))) {
      p.kill('SIGKILL')
      await waitExit(p, 2000)
    }
  }
  track.procs.delete(p)
}

async function bootOnce(
  opts: BootOptions,
  runDir: string
): Promise<{ serial: string; durationMs: number; args: string[] }> {
  const sock = join(runDir, 'swtpm.sock')
  const vars = join(runDir, 'OVMF_VARS.fd')
  copyFileSync(OVMF_VARS, vars)
  rmSync(sock, { force: true })
  // swtpm serves QEMU's tpm-emulator backend: the control channel on a unix socket, the data
  // channel handed over by QEMU (CMD_SET_DATAFD). --terminate: exit when QEMU disconnects.
  const swtpm = spawnClean(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${opts.tpm.stateDir}`,
      '--ctrl',
      `type=unixio,path=${sock}`,
      '--terminate',
      '--log',
      `file=${join(runDir, 'swtpm.log')},level=1`
    ],
    { stdio: 'ignore' }
  )
  track.procs.add(swtpm)
  let qemu: ChildProcess | undefined
  try {
    for (let i = 0; i < 100 && !existsSync(sock); i++) {
      if (swtpm.exitCode !== null) throw new Error(`swtpm exited (${swtpm.exitCode}) before listening`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    if (!existsSync(sock)) throw new Error('swtpm did not create its control socket within 5 s')
    const accel = opts.accel ?? process.env.QUORATE_VM_ACCEL ?? 'tcg'
    const args = [
      '-accel',
      accel,
      ...(accel === 'tcg' ? ['-cpu', 'max'] : ['-cpu', 'host']),
      '-machine',
      'q35',
      '-m',
      String(opts.memoryMb ?? 1024),
      '-smp',
      String(opts.smp ?? 2),
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-serial',
      'stdio',
      '-monitor',
      'none',
      '-drive',
      `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      '-drive',
      `if=pflash,format=raw,unit=1,file=${vars}`,
      '-chardev',
      `socket,id=chrtpm,path=${sock}`,
      '-tpmdev',
      'emulator,id=tpm0,chardev=chrtpm',
      '-device',
      'tpm-tis,tpmdev=tpm0',
      '-fw_cfg',
      `name=opt/quorate/nonce,string=${toHex(opts.nonce)}`,
      '-kernel',
      opts.kernel.vmlinuz,
      '-initrd',
      opts.initrd,
      '-append',
      opts.cmdline ?? DEFAULT_CMDLINE
    ]
    const t0 = performance.now()
    qemu = spawnClean('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    qemu.stdin?.on('error', () => {}) // QEMU may exit before the acknowledgement is written
    track.procs.add(qemu)
    let serial = ''
    let stderr = ''
    let partial = ''
    // The guest prints an end marker and waits for an acknowledgement on its console before it
    // powers off: once the marker has arrived, every byte before it has too (a guest that
    // powered off at once could cut off output still queued in its tty layer). The guest's own
    // power-off sends TPM2_Shutdown; only if it does not come is QEMU stopped from here.
    let finished = false
    let fallback: NodeJS.Timeout | undefined
    qemu.stdout?.on('data', (d: Buffer) => {
      if (serial.length > SERIAL_LIMIT) return
      const s = d.toString('latin1')
      serial += s
      if (!finished && (serial.includes('=====QUORATE-DONE=====') || serial.includes('=====QUORATE-FAIL====='))) {
        finished = true
        qemu?.stdin?.write('ack\n')
        fallback = setTimeout(() => {
          qemu?.kill('SIGTERM')
        }, 30_000)
      }
      if (opts.onLine !== undefined) {
        const parts = (partial + s).split('\n')
        partial = parts.pop() ?? ''
        for (const l of parts) opts.onLine(l.replace(/\r$/, ''))
      }
    })
    qemu.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 8192) stderr += d.toString()
    })
    const timeoutMs = opts.timeoutMs ?? 150_000
    const exited = await new Promise<boolean>(resolve => {
      const timer = setTimeout(() => {
        resolve(false)
      }, timeoutMs)
      const onAbort = (): void => {
        clearTimeout(timer)
        resolve(false)
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      qemu?.once('close', () => {
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
        resolve(true)
      })
    })
    clearTimeout(fallback)
    const durationMs = Math.round(performance.now() - t0)
    if (!exited) {
      throw new Error(
        opts.signal?.aborted === true
          ? 'boot aborted'
          : `VM did not finish within ${timeoutMs} ms; last output: ${JSON.stringify(serial.slice(-400))}`
      )
    }
    if (!finished && qemu.exitCode !== 0)
      throw new Error(`qemu exited ${qemu.exitCode ?? qemu.signalCode}: ${stderr.slice(-1000)}`)
    return { serial, durationMs, args }
  } finally {
    await kill(qemu)
    await kill(swtpm)
  }
}

/**
 * Boots the kernel + initrd once under QEMU/OVMF with a swtpm served from `tpm`'s state, and
 * returns the decoded pieces. Retries (fresh QEMU and swtpm process, same TPM state) when a boot
 * times out or its console output does not parse — slow or garbled boots happen on loaded hosts.
 */
export async function bootMeasured(opts: BootOptions): Promise<BootResult> {
  hookExit()
  const attempts = opts.attempts ?? 2
  const errors: string[] = []
  for (let attempt = 1; attempt <= attempts; attempt++) {
    opts.signal?.throwIfAborted()
    const runDir = mkdtempSync(join(tmpdir(), 'quorate-vm-'))
    track.dirs.add(runDir)
    try {
      const r = await bootOnce(opts, runDir)
      try {
        const pieces = parseSerial(r.serial)
        if (pieces.nonceEcho.toLowerCase() !== toHex(opts.nonce))
          throw new SerialProtocolError(`guest used nonce ${pieces.nonceEcho}, not ours`)
        return {
          pieces,
          serial: r.serial,
          durationMs: r.durationMs,
          attempts: attempt,
          failures: errors,
          qemuArgs: r.args
        }
      } catch (err) {
        throw new Error(`${(err as Error).message}; console tail: ${JSON.stringify(r.serial.slice(-600))}`, {
          cause: err
        })
      }
    } catch (err) {
      errors.push(`attempt ${attempt}: ${(err as Error).message}`)
      if (opts.signal?.aborted === true) break
    } finally {
      if (process.env.QUORATE_KEEP_VM !== '1') rmSync(runDir, { recursive: true, force: true })
      track.dirs.delete(runDir)
    }
  }
  throw new Error(`measured boot failed:\n  ${errors.join('\n  ')}`)
}
