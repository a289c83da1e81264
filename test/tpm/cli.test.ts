// `quorate tpm …` end to end against swtpm: the evidence bundle parses strictly and its quote
// verifies against the AK public it carries.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { verify, X509Certificate } from 'node:crypto'
import { startSwtpm } from '../helpers/swtpm.ts'
import { evidenceFromJson } from '../../attestation/evidence.ts'
import { parsePublic, eccKey, ecdsaSignature, parseQuoteAttest } from './structs.ts'

const run = promisify(execFile)
const bin = join(import.meta.dirname, '..', '..', 'bin', 'quorate')
const sw = await startSwtpm({ platformCert: false })
t.teardown(() => sw.stop())
const dir = mkdtempSync(join(tmpdir(), 'quorate-cli-tpm-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const env = { ...process.env, QUORATE_TCTI: sw.tcti }

t.test('tpm info --json', async t => {
  const { stdout, stderr } = await run(bin, ['tpm', 'info', '--json'], { env })
  const info = JSON.parse(stdout)
  t.equal(info.manufacturer, 'IBM')
  t.equal(info.isSoftware, true)
  t.match(stderr, /SOFTWARE TPM/, 'software TPM announced')
  t.equal(info.ekCertificates.rsa2048 > 0, true)
})

t.test('tpm quote --out evidence.json', async t => {
  const out = join(dir, 'evidence.json')
  const nonce = '00112233445566778899aabbccddeeff'
  await run(bin, ['tpm', 'quote', '--nonce', nonce, '--pcrs', '0-9,13', '--out', out, '--tcti', sw.tcti])
  const ev = evidenceFromJson(readFileSync(out, 'utf8'))
  t.equal(Buffer.from(ev.nonce).toString('hex'), nonce)
  t.same(Object.keys(ev.pcrs.sha256 ?? {}).map(Number), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13])
  const sig = ecdsaSignature(ev.quote.signature)
  t.ok(
    verify('sha256', ev.quote.attest, { key: eccKey(parsePublic(ev.akPublic)), dsaEncoding: 'ieee-p1363' }, sig.p1363),
    'quote verifies with the bundled AK'
  )
  t.same(parseQuoteAttest(ev.quote.attest).extraData.toString('hex'), nonce)
  t.ok(
    new X509Certificate(ev.ekCertificate).verify(new X509Certificate(sw.ekCaPems[1]).publicKey),
    'bundled EK cert from the CA'
  )
})

t.test('bad input: clear error, exit code 1', async t => {
  const err = (await run(bin, ['tpm', 'quote', '--nonce', 'zz'], { env }).catch((e: unknown) => e)) as {
    code?: number
    stderr?: string
  }
  t.equal(err.code, 1)
  t.match(err.stderr ?? '', /nonce/)
  const err2 = (await run(bin, ['tpm', 'pcrs', '--pcrs', '5-1'], { env }).catch((e: unknown) => e)) as {
    code?: number
    stderr?: string
  }
  t.equal(err2.code, 1)
  t.match(err2.stderr ?? '', /PCR range/)
})
