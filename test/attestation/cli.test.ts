// `quorate evidence verify` and `quorate eventlog show|replay` through the real CLI entry.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { evidenceToJson, encodeEvidence } from '../../attestation/evidence.ts'
import { referenceValuesToJson } from '../../attestation/refs.ts'
import { toHex } from '../../encoding/bytes.ts'
import { scenario, FIXTURES, OVMF } from './scenario.ts'
import { CliExit } from '../../cli/output.ts'
import { DecodeError } from '../../encoding/errors.ts'

const execFileP = promisify(execFile)
const BIN = fileURLToPath(new URL('../../bin/quorate', import.meta.url))

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(BIN, args, { timeout: 60_000 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

const dir = mkdtempSync(join(tmpdir(), 'quorate-cli-att-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const s = scenario()
const evFile = join(dir, 'evidence.json')
const cborFile = join(dir, 'evidence.cbor')
const refsFile = join(dir, 'refs.json')
writeFileSync(evFile, JSON.stringify(evidenceToJson(s.evidence), null, 2))
writeFileSync(cborFile, encodeEvidence(s.evidence))
const { ekCas: _cas, ...refsNoCa } = referenceValuesToJson(s.refs)
writeFileSync(refsFile, JSON.stringify({ ...refsNoCa, ekCas: [] }))
const caArgs = ['--ek-ca', join(FIXTURES, 'ek', 'rootca.pem'), '--ek-ca', join(FIXTURES, 'ek', 'issuer.pem')]

t.test('evidence verify: pass → exit 0, JSON result', async t => {
  const r = await run([
    'evidence',
    'verify',
    evFile,
    '--nonce',
    toHex(s.nonce),
    ...caArgs,
    '--refs',
    refsFile,
    '--json'
  ])
  t.equal(r.code, 0, r.stderr)
  const a = JSON.parse(r.stdout)
  t.equal(a.ok, true)
  t.equal(a.status.firmware['ear.status'], 'affirming')
  t.match(a.digest, /^[0-9a-f]{64}$/)
})

// Each CLI start loads every command module (seconds on a busy machine): one real process run
// above, the rest in process through yargs with just our command modules.
async function inProcess(args: string[]): Promise<{ code: number; stdout: string; error?: Error }> {
  const { default: yargs } = await import('yargs')
  const mods = [
    ...(await import('../../cli/commands/evidence.ts')).default,
    ...(await import('../../cli/commands/eventlog.ts')).default
  ]
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
        throw err ?? new Error(msg)
      })
    for (const m of mods) y = y.command(m)
    await y.parseAsync()
    return { code: 0, stdout: out }
  } catch (err) {
    const code = err instanceof CliExit ? err.exitCode : 1
    return { code, stdout: out, error: err as Error }
  } finally {
    process.stdout.write = orig
  }
}

t.test('evidence verify: failures → exit 1, every failure printed (canonical CBOR input)', async t => {
  const r = await inProcess(['evidence', 'verify', cborFile, '--nonce', '00'.repeat(32), ...caArgs])
  t.equal(r.code, 1)
  t.match(r.stdout, /appraisal: FAIL/)
  t.match(r.stdout, /freshness\s+FAIL\n\s+- freshness: evidence nonce/)
  t.match(r.stdout, /- firmware: PCR 0 has no published firmware reference/)
  t.match(r.stdout, /identity\s+ok/)
  const ok = await inProcess(['evidence', 'verify', evFile, '--nonce', toHex(s.nonce), ...caArgs, '--refs', refsFile])
  t.equal(ok.code, 0, ok.error?.message ?? 'passes')
  t.match(ok.stdout, /appraisal: PASS/)
  const bad = join(dir, 'bad.json')
  writeFileSync(bad, '{"version": 2}')
  const r2 = await inProcess(['evidence', 'verify', bad, '--nonce', '00'.repeat(8), ...caArgs])
  t.ok(r2.error instanceof DecodeError, 'bad bundle: DecodeError')
  const noCa = await inProcess(['evidence', 'verify', evFile, '--nonce', toHex(s.nonce)])
  t.match(noCa.error?.message, /no EK CA/)
})

t.test('evidence show decodes without verifying', async t => {
  const r = await inProcess(['evidence', 'show', evFile, '--json'])
  t.equal(r.code, 0, r.error?.message ?? 'shows')
  const d = JSON.parse(r.stdout)
  t.equal(d.quote.type, '0x8018')
  t.equal(d.signature.sigAlg, 'ecdsa')
  t.ok(d.ak.attributes.includes('restricted'))
  t.equal(d.ekCertificate.issuer, 'CN=swtpm-localca')
  t.same(d.eventLog, { bytes: 1932, format: 'crypto-agile', events: 25, banks: ['sha256'] })
  t.equal(d.containers.length, 2)
})

t.test('eventlog show / replay', async t => {
  const log = join(OVMF, 'eventlog.bin')
  const show = await inProcess(['eventlog', 'show', log, '--json'])
  t.equal(show.code, 0, show.error?.message ?? 'shows')
  const j = JSON.parse(show.stdout)
  t.equal(j.events.length, 25)
  t.equal(j.events[10].type, 'EV_EFI_BOOT_SERVICES_APPLICATION')
  const replay = await inProcess(['eventlog', 'replay', log, '--json'])
  const want = Object.fromEntries(
    readFileSync(join(OVMF, 'pcrs_guest.txt'), 'utf8')
      .trim()
      .split('\n')
      .map(l => l.split(' '))
      .filter(([b, i]) => b === 'sha256' && Number(i) <= 9 && Number(i) !== 8)
      .map(([, i, h]) => [i, h.toLowerCase()])
  )
  t.same(JSON.parse(replay.stdout).pcrs.sha256, want)
  const human = await inProcess(['eventlog', 'show', log, '--pcr', '9'])
  t.match(human.stdout, /PCR  9 EV_EVENT_TAG .*Linux initrd/)
  const missing = await inProcess(['eventlog', 'show', join(dir, 'nope.bin')])
  t.match(missing.error?.message, /^event log: .*nope.bin: no such file$/)
})

t.test('eventlog replay refuses an empty log and one without the Spec ID header', async t => {
  const empty = join(dir, 'empty.bin')
  writeFileSync(empty, '')
  const r = await inProcess(['eventlog', 'replay', empty, '--json'])
  t.equal(r.code, 1)
  t.equal(r.stdout, '', 'no {"pcrs":{}} printed')
  t.ok(r.error instanceof DecodeError)
  t.match(r.error?.message, /event log is empty/)
  const noHeader = join(dir, 'no-header.bin')
  writeFileSync(noHeader, readFileSync(join(OVMF, 'eventlog.bin')).subarray(65)) // the genuine log minus its header
  const r2 = await inProcess(['eventlog', 'show', noHeader])
  t.equal(r2.code, 1)
  t.match(r2.error?.message, /first event is EV_S_CRTM_VERSION on PCR 0, not the Spec ID header/)
})
