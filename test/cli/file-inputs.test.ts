// Every command that reads a file a user names refuses what is not a small regular file before
// reading it (issue 9 item 11, STYLE.md §17): /dev/zero, a FIFO, a directory, a missing path and
// a 3 GiB sparse file each end the command with a one-line error naming the option, and nothing
// reaches the chain. Commands run in process through yargs with the real command modules (one
// process start costs seconds of CPU); two run as real processes to see what a user sees.
import t from 'tap'
import { execFile } from 'node:child_process'
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  ftruncateSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import yargs from 'yargs'
import { loadCommands } from '../../cli/main.ts'
import { CliExit, describeError } from '../../cli/output.ts'
import { createQuorumRules } from '../../attestation/quorum/index.ts'
import {
  ChainClient,
  generateChainKey,
  initChainHome,
  saveChainKey,
  startEmbeddedValidator
} from '../../chain/index.ts'
import { evidenceToJson } from '../../attestation/evidence.ts'
import { toHex } from '../../encoding/bytes.ts'
import { FileInputError, formatBytes, readInputFile } from '../../encoding/files.ts'
import { TooLargeError } from '../../encoding/errors.ts'
import { scenario, FIXTURES, OVMF } from '../attestation/scenario.ts'

const BIN = fileURLToPath(new URL('../../bin/quorate', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'quorate-file-inputs-'))
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true })
})

// the bad inputs
const fifo = join(dir, 'fifo')
await new Promise<void>((resolve, reject) => {
  execFile('mkfifo', [fifo], err => {
    if (err === null) resolve()
    else reject(err)
  })
})
const directory = join(dir, 'a-directory')
mkdirSync(directory)
const sparse = join(dir, 'sparse.bin')
const fd = openSync(sparse, 'w')
ftruncateSync(fd, 3 * 2 ** 30) // 3 GiB of holes: nothing on disk, every byte a reader would get
closeSync(fd)
const BAD: Record<string, string> = {
  '/dev/zero': '/dev/zero',
  FIFO: fifo,
  directory,
  missing: join(dir, 'missing.bin'),
  'sparse 3 GiB': sparse
}
const WHY: Record<string, RegExp> = {
  '/dev/zero': /is not a regular file \(a character device\)/,
  FIFO: /is not a regular file \(a FIFO\)/,
  directory: /is not a regular file \(a directory\)/,
  missing: /no such file|no key file/,
  'sparse 3 GiB': /is 3 GiB, over the limit of/
}

// good inputs for the other arguments of a command
const s = scenario()
const evFile = join(dir, 'evidence.json')
writeFileSync(evFile, JSON.stringify(evidenceToJson(s.evidence)))
const refsFile = join(dir, 'refs.json')
writeFileSync(refsFile, JSON.stringify({ ekCas: [], firmware: [], os: [] }))
const rootCa = join(FIXTURES, 'ek', 'rootca.pem')
const eventLog = join(OVMF, 'eventlog.bin')

// a chain, a funded vendor key and a registered vendor, to see that nothing is sent
const home = join(dir, 'home')
await initChainHome({ home: join(home, 'chain'), chainId: 'file-inputs' })
const v = await startEmbeddedValidator({
  home: join(home, 'chain'),
  rules: createQuorumRules({ k: 7 }),
  blockIntervalMs: 0,
  emptyBlockIntervalMs: 200
})
t.teardown(async () => {
  await v.stop()
})
const chain = new ChainClient({ url: v.url })
t.teardown(() => {
  chain.close()
})
const key = await generateChainKey()
await saveChainKey(join(home, 'keys', 'default.key'), key)
await chain.send('vendor.register', { name: 'acme' }, key)
const seq0 = await chain.account(key.publicKey)
const at = ['--home', home, '--rpc', v.url]

/** Each command with the file under test in one position (X), and what the error must name. */
const CASES: Array<{ name: string; label: string; args: (x: string) => string[] }> = [
  { name: 'eventlog show', label: 'event log', args: x => ['eventlog', 'show', x] },
  { name: 'eventlog replay', label: 'event log', args: x => ['eventlog', 'replay', x] },
  {
    name: 'evidence verify FILE',
    label: 'evidence bundle',
    args: x => ['evidence', 'verify', x, '--nonce', toHex(s.nonce), '--ek-ca', rootCa]
  },
  {
    name: 'evidence verify --ek-ca',
    label: '--ek-ca',
    args: x => ['evidence', 'verify', evFile, '--nonce', toHex(s.nonce), '--ek-ca', x]
  },
  {
    name: 'evidence verify --refs',
    label: '--refs',
    args: x => ['evidence', 'verify', evFile, '--nonce', toHex(s.nonce), '--ek-ca', rootCa, '--refs', x]
  },
  { name: 'evidence show', label: 'evidence bundle', args: x => ['evidence', 'show', x] },
  {
    name: 'vendor publish-ekca',
    label: 'EK CA file',
    args: x => ['vendor', 'publish-ekca', x, '--vendor', 'acme', ...at]
  },
  {
    name: 'vendor publish-firmware --eventlog',
    label: '--eventlog',
    args: x => [
      'vendor',
      'publish-firmware',
      '--vendor',
      'acme',
      '--platform',
      'p',
      '--version',
      '1',
      '--eventlog',
      x,
      ...at
    ]
  },
  {
    name: 'os publish --eventlog',
    label: '--eventlog',
    args: x => ['os', 'publish', '--name', 'img', '--version', '1', '--eventlog', x, ...at]
  },
  { name: 'vendor register --key', label: '--key', args: x => ['vendor', 'register', 'other', '--key', x, ...at] },
  { name: 'keys show', label: 'key', args: x => ['keys', 'show', x, '--home', home] },
  {
    name: 'tpm quote --eventlog',
    label: '--eventlog',
    args: x => ['tpm', 'quote', '--nonce', '00'.repeat(16), '--eventlog', x, '--tcti', 'swtpm:host=127.0.0.1,port=1']
  },
  { name: 'image inspect', label: 'image archive', args: x => ['image', 'inspect', x, ...at] },
  { name: 'image publish', label: 'image archive', args: x => ['image', 'publish', x, '--name', 'demo/x', ...at] },
  { name: 'node start --config', label: '--config', args: x => ['node', 'start', '--config', x] },
  {
    name: 'node start --simulate-boot',
    label: '--simulate-boot',
    args: x => ['node', 'start', '--home', join(dir, 'agent'), '--simulate-boot', x]
  }
]

// only the files of the commands under test (each loads its own module, as `quorate X` does)
const commands = (
  await Promise.all(
    ['eventlog', 'evidence', 'vendor', 'os', 'keys', 'tpm', 'image', 'node'].map(async n => await loadCommands(n))
  )
).flat()

/** Runs one command line in this process; resolves with its error (undefined on success). */
async function inProcess(args: string[]): Promise<{ error?: unknown; stdout: string }> {
  let out = ''
  const orig = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()
    return true
  }) as typeof process.stdout.write
  try {
    let y = yargs(args)
      .option('json', { type: 'boolean', global: true })
      .strict()
      .fail((msg, err) => {
        throw err ?? new CliExit(2, msg)
      })
    for (const c of commands) y = y.command(c)
    // A command that blocks on its input (a FIFO) would hang the file: say which one instead.
    let timer: NodeJS.Timeout | undefined
    const hung = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`quorate ${args.join(' ')} did not return: it blocked on its input`))
      }, 30_000)
    })
    try {
      await Promise.race([y.parseAsync(), hung])
    } finally {
      clearTimeout(timer)
    }
    return { stdout: out }
  } catch (error) {
    return { error, stdout: out }
  } finally {
    process.stdout.write = orig
  }
}

for (const c of CASES) {
  t.test(c.name, async t => {
    for (const [what, path] of Object.entries(BAD)) {
      // keys and --key: a missing key is loadChainKey's "no key file at …; create one"
      const r = await inProcess(c.args(path))
      t.ok(r.error !== undefined, `${what}: refused`)
      if (r.error === undefined) continue
      t.notOk(r.error instanceof CliExit && r.error.exitCode === 0, `${what}: non-zero exit`)
      const line = describeError(r.error).message
      t.notMatch(line, /\n/, `${what}: one line`)
      // An image archive has no size limit (images are GBs): 3 GiB of zeros is refused by the tar
      // reader, which reads 1 MiB of zeros past the end-of-archive marker before it gives up.
      if (c.label === 'image archive' && what === 'sparse 3 GiB') {
        t.match(line, /zeros after the end-of-archive marker/, `${what}: says why`)
        continue
      }
      t.match(line, WHY[what], `${what}: says why`)
      if (what !== 'missing' || !c.label.includes('key'))
        t.ok(line.includes(`${c.label}: ${path}`), `${what}: names ${c.label} and the path (${line})`)
      t.equal(r.stdout, '', `${what}: prints no result`)
    }
  })
}

t.test('nothing reached the chain', async t => {
  t.equal(await chain.account(key.publicKey), seq0, 'the vendor key sent no transaction')
  t.same(await chain.ekCas('acme'), [], 'no EK CA published')
  t.same(await chain.firmware('acme'), [], 'no firmware published')
  t.same(await chain.os('img'), [], 'no OS published')
  t.same(await chain.vendor('other'), undefined, 'no vendor registered')
})

t.test('good files still pass through the same reader', async t => {
  const r = await inProcess(['eventlog', 'replay', eventLog, '--json'])
  t.equal(r.error, undefined)
  t.equal(JSON.parse(r.stdout).pcrs.sha256['0'].length, 64)
  const ev = await inProcess([
    'evidence',
    'verify',
    evFile,
    '--nonce',
    toHex(s.nonce),
    '--ek-ca',
    rootCa,
    '--ek-ca',
    join(FIXTURES, 'ek', 'issuer.pem'),
    '--refs',
    refsFile,
    '--json'
  ])
  t.ok(ev.error instanceof CliExit && ev.error.exitCode === 1, 'appraised (fails on the empty refs, as it should)')
  t.match(JSON.parse(ev.stdout).status.identity.ok, true)
})

t.test('readInputFile: the limit is read at most, and a file that grew is refused', async t => {
  const f = join(dir, 'ten.bin')
  writeFileSync(f, Buffer.alloc(10, 7))
  t.same(await readInputFile(f, { label: '--x', maxBytes: 10 }), new Uint8Array(10).fill(7))
  await t.rejects(readInputFile(f, { label: '--x', maxBytes: 9 }), TooLargeError)
  await t.rejects(
    readInputFile(f, { label: '--x', maxBytes: 9 }),
    /--x: .*ten.bin is 10 bytes, over the limit of 9 bytes/
  )
  // a regular file that reports size 0 but has content (securityfs does this) is read to the limit
  const proc = '/proc/self/status'
  const got = await readInputFile(proc, { label: '--status', maxBytes: 1 << 20 })
  t.match(new TextDecoder().decode(got), /^Name:/)
  await t.rejects(
    readInputFile(proc, { label: '--status', maxBytes: 16 }),
    /--status: \/proc\/self\/status is over the limit of 16 bytes \(it grew while being read\)/
  )
  await t.rejects(readInputFile(fifo, { label: '--x', maxBytes: 16 }), FileInputError)
  t.equal(formatBytes(512 << 10), '512 KiB')
  t.equal(formatBytes(3 * 2 ** 30), '3 GiB')
})

t.test('what a user sees: exit 1 and one line on stderr', async t => {
  for (const args of [
    ['eventlog', 'replay', fifo],
    ['evidence', 'verify', evFile, '--nonce', '00', '--ek-ca', '/dev/zero']
  ]) {
    const r = await new Promise<{ code: number | null; stderr: string; stdout: string }>(resolve => {
      execFile(BIN, args, { timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? null), stdout, stderr })
      })
    })
    t.equal(r.code, 1, args.join(' '))
    t.equal(r.stdout, '')
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`)
    t.match(
      r.stderr,
      args.includes('--ek-ca')
        ? /^quorate: FileInputError: --ek-ca: \/dev\/zero is not a regular file/
        : /^quorate: FileInputError: event log: .*fifo is not a regular file \(a FIFO\)/
    )
  }
  t.ok(readFileSync(eventLog).length > 0)
})
