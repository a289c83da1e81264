// Tier 3 (STYLE.md §11): a real UEFI measured boot, appraised on the host.
//
// QEMU (TCG) + OVMF + swtpm boot Debian's kernel with a busybox + tpm2-tools initramfs whose /init
// quotes sha256 PCRs 0-9 with a nonce the host chose (test/helpers/qemu.ts, scripts/vm/init.sh).
// The host then checks the quote (signature under the AK, nonce, PCR digest), the EK certificate
// chain, replays the firmware event log to the quoted PCRs, and appraises the evidence bundle with
// attestation/appraise against reference values published on an embedded chain and read back
// through ChainClient:
//   - TPM vendor: the per-run CA that issued the swtpm's EK certificate (vendor.ekca.publish);
//   - firmware: the PCR values recorded in attestation/samples/measured-boot (the same OVMF, q35, -smp 2)
//     — independent of this run, as a vendor's published values would be (firmware.publish);
//   - os: PCR 9 as the image publisher computes it from the command line and the initrd bytes
//     alone (predictPcr9), without booting (os.publish).
// Two boots on the same TPM: the published initrd passes; an initrd of the same size with one
// changed byte fails, and the failure names PCR 9 and the initrd event only. The same bundles
// then go through the operator's `quorate evidence verify`.
//
// PCR 4 is not appraised here (policy osPcrs = [9]): under QEMU's direct kernel boot it holds the
// Authenticode hash of a kernel whose setup header QEMU patched per boot (-m, initrd size), which
// no publisher can compute from the image alone. The NixOS image (nixos/image.nix) boots a UKI
// from disk, where PCR 4 is predictable.
import { OVMF_Q35_SMP2_DIR } from '../../attestation/samples/index.ts'
import t, { type Test } from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { randomBytes, X509Certificate } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { equal, fromHex } from '../../encoding/bytes.ts'
import { checkQuote, compareClock, type VerifiedQuote } from '../../attestation/quote.ts'
import { parseEventLog, replayEventLog, eventsForPcr, type EventLog } from '../../attestation/eventlog.ts'
import { parsePublic } from '../../attestation/tpm2.ts'
import { appraise, type Appraisal } from '../../attestation/appraise.ts'
import type { ReferenceValues } from '../../attestation/refs.ts'
import type { ReferenceValues as ChainReferenceValues } from '../../chain/types.ts'
import { validateEvidence, evidenceToJson, type Evidence } from '../../attestation/evidence.ts'
import { referenceValuesToJson } from '../../attestation/refs.ts'
import { createQuorumRules } from '../../attestation/quorum/index.ts'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { ChainClient } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import {
  vmPrerequisitesMissing,
  ensureKernel,
  buildInitramfs,
  modifiedInitramfs,
  manufactureVmTpm,
  bootMeasured,
  parseSerial,
  predictPcr9,
  SerialProtocolError,
  DEFAULT_CMDLINE,
  QUOTED_PCRS,
  type MeasuredBootPieces
} from '../helpers/qemu.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const QUORATE = join(HERE, '..', '..', 'bin', 'quorate')
const execFileP = promisify(execFile)
const FIXTURE = OVMF_Q35_SMP2_DIR

// ---------------------------------------------------------------------------------------------
// What the vendor and the image publisher put on chain, and what a verifier checks.

type PcrRefs = Record<string, { golden?: Uint8Array[]; events?: Uint8Array[] }>

/** Firmware reference values: the fixture's PCRs 0-3 and 5-7 (4 and 9 belong to the OS image, 8 is unused by OVMF). */
function fixtureFirmwarePcrs(): PcrRefs {
  const pcrs: PcrRefs = {}
  for (const line of readFileSync(join(FIXTURE, 'pcrs_guest.txt'), 'utf8').split('\n')) {
    const m = /^sha256 (\d+) ([0-9A-Fa-f]{64})$/.exec(line.trim())
    if (m !== null && [0, 1, 2, 3, 5, 6, 7].includes(Number(m[1]))) pcrs[m[1]] = { golden: [fromHex(m[2])] }
  }
  return pcrs
}

/** OS reference values for an image: PCR 9's final value and its two events, computed without booting. */
function osPcrs(initrdDigest: Uint8Array): PcrRefs {
  const p9 = predictPcr9(DEFAULT_CMDLINE, initrdDigest)
  return { 9: { golden: [p9.value], events: p9.events } }
}

/**
 * The chain's reference values as attestation/ takes them. chain/types RefSet.bank is any hash
 * bank, attestation/refs RefSet.bank only 'sha256' (the one the appraisal replays), so sets for
 * other banks are dropped here; the composition root needs the same adapter (or one shared type).
 */
function forAppraisal(r: ChainReferenceValues): ReferenceValues {
  const sha256Only = (sets: ChainReferenceValues['os']): ReferenceValues['os'] =>
    sets.flatMap(s =>
      s.bank === 'sha256' ? [{ name: s.name, version: s.version, bank: 'sha256' as const, pcrs: s.pcrs }] : []
    )
  return { ekCas: r.ekCas, firmware: sha256Only(r.firmware), os: sha256Only(r.os) }
}

function evidenceOf(pieces: MeasuredBootPieces, nonce: Uint8Array): Evidence {
  const pcrs: Record<string, Uint8Array> = {}
  for (const [i, v] of pieces.pcrs) pcrs[String(i)] = v
  return validateEvidence({
    version: 1,
    nonce,
    quote: { attest: pieces.attest, signature: pieces.signature },
    pcrs: { sha256: pcrs },
    akPublic: pieces.akPublic,
    ekCertificate: pieces.ekCertificate ?? new Uint8Array(),
    eventLog: pieces.eventLog
  })
}

/** The checks behind the appraisal, asserted one by one on the raw pieces (so a failure says which). */
function checkPieces(
  t: Test,
  pieces: MeasuredBootPieces,
  nonce: Uint8Array,
  ekCaPems: string[]
): { quote: VerifiedQuote; log: EventLog } {
  // Identity: the EK certificate chains to the per-run CA and certifies the EK the guest used.
  t.ok(pieces.ekCertificate, 'guest read the EK certificate from NV 0x01c00002')
  const [root, issuer] = ekCaPems.map(p => new X509Certificate(p))
  const ek = new X509Certificate(Buffer.from(pieces.ekCertificate ?? new Uint8Array()))
  t.ok(ek.verify(issuer.publicKey) && issuer.verify(root.publicKey), 'EK certificate chains to the EK CA')
  const ekPub = parsePublic(pieces.ekPublic)
  t.equal(ekPub.type, 'rsa', 'EK is the RSA-2048 EK')
  if (ekPub.type === 'rsa') {
    const jwk = ek.publicKey.export({ format: 'jwk' })
    t.equal(Buffer.from(ekPub.modulus).toString('base64url'), jwk.n, 'EK certificate certifies the EK the guest used')
  }

  // Quote: signature under the AK, AK attributes, our nonce, reported PCRs hash to pcrDigest.
  const pcrs: Record<string, Uint8Array> = {}
  for (const [i, v] of pieces.pcrs) pcrs[String(i)] = v
  const check = checkQuote(
    { attest: pieces.attest, signature: pieces.signature, akPublic: pieces.akPublic, pcrs: { sha256: pcrs } },
    { nonce }
  )
  t.same(check.problems, [], 'quote verifies: signature, AK attributes, nonce, PCR digest')
  if (check.verified === undefined) throw new Error(`quote did not verify: ${JSON.stringify(check.problems)}`)
  t.equal(parsePublic(pieces.akPublic).type, 'ecc', 'AK is an ECC key')
  t.same(check.verified.selection, [{ hash: 'sha256', pcrs: QUOTED_PCRS }], 'quote covers sha256 PCRs 0-9')

  // The firmware event log replays to the quoted values, PCR by PCR.
  const log = parseEventLog(pieces.eventLog)
  const replayed = replayEventLog(log, ['sha256']).get('sha256')
  const quoted = check.verified.pcrs.get('sha256')
  const mismatched = QUOTED_PCRS.filter(
    i => !equal(replayed?.get(i) ?? new Uint8Array(), quoted?.get(i) ?? new Uint8Array(1))
  )
  t.same(mismatched, [], 'event log replays to every quoted PCR (0-9)')
  return { quote: check.verified, log }
}

// ---------------------------------------------------------------------------------------------
// Host-only parts (no VM): the serial protocol and the PCR 9 prediction.

function b64Block(name: string, bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes)
    .toString('base64')
    .replace(/(.{76})/g, '$1\r\n')
  return `=====BEGIN ${name}=====\r\n${b64}\r\n=====END ${name}=====\r\n`
}

function syntheticSerial(over: Partial<Record<string, Uint8Array>> = {}): string {
  const tpm2b = (b: Uint8Array): Uint8Array => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
  const pcrs = QUOTED_PCRS.map(i => `sha256 ${i} ${'AB'.repeat(32)}`).join('\n') + '\n'
  const parts: Record<string, Uint8Array> = {
    'quote.msg': randomBytes(129),
    'quote.sig': randomBytes(72),
    'ak.pub': tpm2b(randomBytes(88)),
    'ek.pub': tpm2b(randomBytes(314)),
    'ekcert.der': randomBytes(100),
    'pcrs.txt': Buffer.from(pcrs),
    'eventlog.bin': randomBytes(200),
    ...over
  } as Record<string, Uint8Array>
  return (
    'EFI stub: Measured initrd data into PCR 9\r\nQUORATE: init quorate-test-image.......\r\nQUORATE: lockout-counter 0x2\r\nQUORATE: nonce 0011\r\n' +
    Object.entries(parts)
      .map(([k, v]) => b64Block(k, v))
      .join('') +
    '=====QUORATE-DONE=====\r\n[    6.39] reboot: Power down\r\n'
  )
}

t.test('serial protocol: parses what /init prints, rejects the rest', async t => {
  const ak = randomBytes(88)
  const p = parseSerial(syntheticSerial({ 'ak.pub': Buffer.concat([Buffer.from([0, 88]), ak]) }))
  t.ok(equal(p.akPublic, ak), 'AK TPM2B size prefix removed')
  t.equal(p.nonceEcho, '0011')
  t.equal(p.pcrs.size, 10)
  t.equal(p.imageLabel, 'quorate-test-image.......')
  t.equal(p.lockoutCounter, 2, 'lockout counter (hex) decoded')

  t.throws(
    () => parseSerial(syntheticSerial().replace('=====QUORATE-DONE=====', '')),
    SerialProtocolError,
    'unfinished boot'
  )
  t.throws(
    () => parseSerial(syntheticSerial() + 'QUORATE: FAIL quote\r\n'),
    /guest failed: QUORATE: FAIL quote/,
    'guest failure is reported with its reason'
  )
  t.throws(
    () => parseSerial(syntheticSerial({ 'ak.pub': Buffer.from([0, 9, 1, 2]) })),
    /TPM2B size/,
    'wrong TPM2B size'
  )
  t.throws(() => parseSerial(syntheticSerial({ 'pcrs.txt': Buffer.from('sha256 0 00\n') })), /bad line/, 'bad PCR line')
  const dup = syntheticSerial().replace(
    '=====QUORATE-DONE=====',
    b64Block('quote.sig', randomBytes(8)) + '=====QUORATE-DONE====='
  )
  t.throws(() => parseSerial(dup), /appears twice/, 'duplicate block')
  t.throws(
    () => parseSerial(syntheticSerial().replace(/=====END eventlog.bin=====\r\n/, '')),
    /begins inside|not terminated/,
    'unterminated block'
  )
  const missing = syntheticSerial().replace(/=====BEGIN ekcert\.der=====[\s\S]*?=====END ekcert\.der=====\r\n/, '')
  t.throws(() => parseSerial(missing), /block ekcert.der missing/, 'missing block')
  // A kernel message line in the middle of a block is skipped, not decoded.
  const noisy = syntheticSerial().replace(
    '=====BEGIN quote.sig=====\r\n',
    '=====BEGIN quote.sig=====\r\n[    5.1] random: crng init done\r\n'
  )
  t.equal(parseSerial(noisy).signature.length, 72)
})

t.test('serial protocol: bounded fuzz never crashes or hangs', async t => {
  const base = syntheticSerial()
  let rejected = 0
  let accepted = 0
  const t0 = performance.now()
  for (let i = 0; i < 600; i++) {
    let s: string
    if (i % 3 === 0) {
      s = randomBytes(1 + (i % 400)).toString('latin1')
    } else {
      const chars = base.split('')
      for (let k = 0; k < 1 + (i % 8); k++) {
        const at = randomBytes(4).readUInt32BE() % chars.length
        const op = i % 4
        if (op === 0) chars[at] = String.fromCharCode(randomBytes(1)[0])
        else if (op === 1) chars.splice(at, 1 + (i % 30))
        else if (op === 2) chars.splice(at, 0, ...'=====BEGIN x=====\r\n'.split(''))
        else chars.splice(at, 0, ...chars.slice(0, 40))
      }
      s = chars.join('')
    }
    try {
      parseSerial(s)
      accepted++
    } catch (err) {
      if (!(err instanceof SerialProtocolError) && !(err instanceof TypeError)) throw err
      rejected++
    }
  }
  t.equal(
    accepted + rejected,
    600,
    `600 inputs handled (${rejected} rejected, ${accepted} accepted) in ${Math.round(performance.now() - t0)} ms`
  )
  t.throws(() => parseSerial('x'.repeat((4 << 20) + 1)), /larger than/, 'oversized console output rejected up front')
})

t.test('PCR 9 prediction matches the recorded fixture boot', async t => {
  // The fixture was recorded with command line "console=ttyS0 panic=-1 rdinit=/init".
  const log = parseEventLog(readFileSync(join(FIXTURE, 'eventlog.bin')))
  const ev = eventsForPcr(log, 9)
  t.equal(ev.length, 2, 'EFI stub measured two events into PCR 9')
  const initrd = ev[1].digests.sha256 ?? new Uint8Array()
  const p = predictPcr9('console=ttyS0 panic=-1 rdinit=/init', initrd)
  t.ok(
    equal(p.events[0], ev[0].digests.sha256 ?? new Uint8Array()),
    'LoadOptions digest = sha256(UCS-2 "<cmdline> initrd=initrd\\0")'
  )
  t.ok(
    equal(p.value, replayEventLog(log, ['sha256']).get('sha256')?.get(9) ?? new Uint8Array()),
    'predicted PCR 9 = replayed PCR 9'
  )
  t.notOk(
    equal(predictPcr9('console=ttyS0 panic=-1 rdinit=/init quiet', initrd).value, p.value),
    'another command line, another PCR 9'
  )
})

// ---------------------------------------------------------------------------------------------
// The real boot.

const missing = vmPrerequisitesMissing()
if (missing.length > 0) {
  const msg = `MEASURED-BOOT VM TEST SKIPPED: missing ${missing.join(', ')} (install qemu-system-x86 ovmf swtpm swtpm-tools cpio busybox-static tpm2-tools)`
  process.stderr.write(`\n${'!'.repeat(msg.length)}\n${msg}\n${'!'.repeat(msg.length)}\n\n`)
}

t.test(
  'real measured boot: QEMU + OVMF + swtpm, appraised against reference values on chain',
  { skip: missing.length > 0 ? `missing ${missing.join(', ')}` : false, timeout: 420_000 },
  async t => {
    const kernel = await ensureKernel()
    t.comment(`kernel ${kernel.version} sha256 ${kernel.sha256.slice(0, 16)}…`)
    const dir = mkdtempSync(join(tmpdir(), 'quorate-mb-'))
    t.teardown(() => {
      rmSync(dir, { recursive: true, force: true })
    })
    const tpm = await manufactureVmTpm()
    t.teardown(() => {
      tpm.remove()
    })

    const published = await buildInitramfs({ dir, kernel, label: 'quorate-test-image v1' })
    const rebuilt = await buildInitramfs({
      dir: mkdtempSync(join(dir, 'again-')),
      kernel,
      label: 'quorate-test-image v1'
    })
    t.ok(
      equal(rebuilt.digest, published.digest),
      'the initramfs build is reproducible (a publisher and a node get the same bytes)'
    )
    const tampered = modifiedInitramfs(published, dir, 'quorate-test-image v2')
    t.equal(tampered.size, published.size, 'tampered initrd has the same size (PCR 4 unaffected)')
    t.notOk(equal(tampered.digest, published.digest), 'but different content')

    // The chain, and what the TPM vendor, the firmware vendor and the image publisher put on it
    // before any boot.
    const home = join(dir, 'chain')
    await initChainHome({ home, chainId: 'vm-test' })
    const chain = await startEmbeddedValidator({
      home,
      rules: createQuorumRules(),
      blockIntervalMs: 0,
      emptyBlockIntervalMs: 500
    })
    t.teardown(async () => {
      await chain.stop()
    })
    const client = new ChainClient({ url: chain.url })
    t.teardown(() => {
      client.close()
    })
    const tpmVendor = await generateChainKey()
    await client.send('vendor.register', { name: 'swtpm-test' }, tpmVendor)
    for (const pem of tpm.ekCaPems)
      await client.send(
        'vendor.ekca.publish',
        { vendor: 'swtpm-test', certificate: new Uint8Array(new X509Certificate(pem).raw) },
        tpmVendor
      )
    const fwVendor = await generateChainKey()
    await client.send('vendor.register', { name: 'ovmf' }, fwVendor)
    await client.send(
      'firmware.publish',
      { vendor: 'ovmf', platform: 'q35-smp2', version: '2022.11', bank: 'sha256', pcrs: fixtureFirmwarePcrs() },
      fwVendor
    )
    const publisher = await generateChainKey()
    await client.send(
      'os.publish',
      { name: 'quorate-test-image', version: 'v1', bank: 'sha256', pcrs: osPcrs(published.digest) },
      publisher
    )
    const refs = forAppraisal(
      await client.referenceValues({ vendor: 'ovmf', platform: 'q35-smp2', os: 'quorate-test-image' })
    )
    t.equal(refs.ekCas.length, 2, 'EK CA root and issuer on chain')
    t.equal(refs.firmware.length, 1, 'firmware reference values on chain')
    t.same(
      Object.keys(refs.firmware[0].pcrs).sort(),
      ['0', '1', '2', '3', '5', '6', '7'],
      'firmware references for PCRs 0-3, 5-7'
    )
    t.equal(refs.os.length, 1, 'OS reference values on chain')
    const policy = { osPcrs: [9] } as const

    // Boot 1: the published image.
    const nonce1 = randomBytes(32)
    const b1 = await bootMeasured({ kernel, initrd: published.path, tpm, nonce: nonce1 })
    t.comment(`boot 1: ${b1.durationMs} ms, ${b1.attempts} attempt(s), event log ${b1.pieces.eventLog.length} B`)
    for (const f of b1.failures) t.comment(`boot 1 retried after: ${f}`)
    t.equal(b1.pieces.imageLabel, published.label, 'guest booted the published initrd')
    const c1 = checkPieces(t, b1.pieces, nonce1, tpm.ekCaPems)
    const initrdEvent1 = eventsForPcr(c1.log, 9).find(
      e => e.payload?.kind === 'event-tag' && e.payload.tagName === 'Linux initrd'
    )
    t.ok(
      initrdEvent1 !== undefined && equal(initrdEvent1.digests.sha256 ?? new Uint8Array(), published.digest),
      'the "Linux initrd" event digest is sha256 of the initrd file'
    )
    const ev1 = evidenceOf(b1.pieces, nonce1)
    const a1: Appraisal = appraise(ev1, refs, { ...policy, nonce: nonce1 })
    t.same(a1.failures, [], 'appraisal of the published image: no failures')
    t.equal(a1.ok, true, 'certifiable')
    t.same(
      Object.fromEntries(Object.entries(a1.status).map(([c, s]) => [c, s['ear.status']])),
      {
        identity: 'affirming',
        firmware: 'affirming',
        os: 'affirming',
        containers: 'affirming',
        freshness: 'affirming'
      },
      'every claim affirming'
    )

    // The same evidence against someone else's nonce is a replay.
    const stale = appraise(ev1, refs, { ...policy, nonce: randomBytes(32) })
    t.same(
      Object.entries(stale.status)
        .filter(([, s]) => !s.ok)
        .map(([c]) => c),
      ['freshness'],
      'evidence replayed to another verifier fails freshness only'
    )

    // Boot 2: same machine (same TPM), the initrd changed by one byte.
    const nonce2 = randomBytes(32)
    const b2 = await bootMeasured({ kernel, initrd: tampered.path, tpm, nonce: nonce2 })
    t.comment(`boot 2: ${b2.durationMs} ms, ${b2.attempts} attempt(s)`)
    for (const f of b2.failures) t.comment(`boot 2 retried after: ${f}`)
    t.equal(b2.pieces.imageLabel, tampered.label, 'guest booted the tampered initrd')
    t.equal(b2.pieces.lockoutCounter, 0, 'boot 1 shut the TPM down orderly: no dictionary-attack failure counted')
    const c2 = checkPieces(t, b2.pieces, nonce2, tpm.ekCaPems)
    const a2 = appraise(evidenceOf(b2.pieces, nonce2), refs, { ...policy, nonce: nonce2 })
    t.equal(a2.ok, false, 'the tampered image is not certifiable')
    t.same(
      Object.entries(a2.status)
        .filter(([, s]) => !s.ok)
        .map(([c]) => c),
      ['os'],
      'only the os claim fails (identity, firmware, freshness hold)'
    )
    const initrdEvent2 = eventsForPcr(c2.log, 9).find(
      e => e.payload?.kind === 'event-tag' && e.payload.tagName === 'Linux initrd'
    )
    t.ok(
      a2.status.os.failures.length > 0 && a2.status.os.failures.every(f => f.startsWith('os: PCR 9')),
      `every os failure names PCR 9: ${JSON.stringify(a2.status.os.failures)}`
    )
    t.ok(
      initrdEvent2 !== undefined && a2.status.os.failures.some(f => f.includes(`event #${initrdEvent2.index} `)),
      'the failing event is the initrd event'
    )
    t.equal(a2.status.os.failures.length, 1, 'one failure: the command line event is still a published one')
    t.same(
      QUOTED_PCRS.filter(
        i => !equal(b1.pieces.pcrs.get(i) ?? new Uint8Array(), b2.pieces.pcrs.get(i) ?? new Uint8Array(1))
      ),
      [9],
      'only PCR 9 differs between the two boots'
    )

    // A verifier that saw boot 1 sees the reboot (TPM2_Startup(CLEAR) by the firmware).
    t.equal(
      compareClock(c1.quote.clockInfo, c2.quote.clockInfo).rebooted,
      true,
      `resetCount moved ${c1.quote.clockInfo.resetCount} → ${c2.quote.clockInfo.resetCount}`
    )
    const a2seen = appraise(evidenceOf(b2.pieces, nonce2), refs, {
      ...policy,
      nonce: nonce2,
      previousClock: c1.quote.clockInfo
    })
    t.ok(
      a2seen.status.freshness.failures.some(f => f.includes('rebooted')),
      'with the previous quote known, freshness reports the reboot'
    )
    t.ok(equal(b1.pieces.ekPublic, b2.pieces.ekPublic), 'same EK across boots (same TPM)')
    t.notOk(equal(b1.pieces.akPublic, b2.pieces.akPublic), 'a fresh AK per boot (tpm2_createak makes a new key)')

    // The operator's path: the same bundles through `quorate evidence verify`. Its default policy
    // appraises OS PCRs 4 and 9, so these OS references also carry PCR 4 as recorded from boot 1
    // (under QEMU's direct kernel boot it cannot be computed from the image alone, see the top).
    const pcr4 = b1.pieces.pcrs.get(4) ?? new Uint8Array(32)
    const cliRefs: ReferenceValues = {
      ekCas: [],
      firmware: refs.firmware,
      os: refs.os.map(o => ({ ...o, pcrs: { ...o.pcrs, 4: { golden: [pcr4] } } }))
    }
    writeFileSync(join(dir, 'refs.json'), JSON.stringify(referenceValuesToJson(cliRefs)))
    writeFileSync(join(dir, 'ek-ca.pem'), tpm.ekCaPems.join(''))
    writeFileSync(join(dir, 'boot1.json'), JSON.stringify(evidenceToJson(ev1)))
    writeFileSync(join(dir, 'boot2.json'), JSON.stringify(evidenceToJson(evidenceOf(b2.pieces, nonce2))))
    const cli = async (file: string, nonce: Uint8Array): Promise<{ code: number; appraisal: Appraisal }> => {
      const args = [
        'evidence',
        'verify',
        join(dir, file),
        '--nonce',
        Buffer.from(nonce).toString('hex'),
        '--refs',
        join(dir, 'refs.json'),
        '--ek-ca',
        join(dir, 'ek-ca.pem'),
        '--json'
      ]
      try {
        const { stdout } = await execFileP(QUORATE, args, { timeout: 60_000 })
        return { code: 0, appraisal: JSON.parse(stdout) as Appraisal }
      } catch (err) {
        const e = err as { code?: number; stdout?: string; message: string }
        if (typeof e.code !== 'number' || e.stdout === undefined || e.stdout === '') throw err
        return { code: e.code, appraisal: JSON.parse(e.stdout) as Appraisal }
      }
    }
    const v1 = await cli('boot1.json', nonce1)
    t.equal(v1.code, 0, `quorate evidence verify passes boot 1: ${JSON.stringify(v1.appraisal.failures)}`)
    const v2 = await cli('boot2.json', nonce2)
    t.equal(v2.code, 1, 'quorate evidence verify exits 1 for boot 2')
    t.ok(
      v2.appraisal.failures.length > 0 && v2.appraisal.failures.every(f => f.startsWith('os: PCR 9')),
      `and names PCR 9 only: ${JSON.stringify(v2.appraisal.failures)}`
    )

    // Publishing the tampered image's values makes it pass: the failure was about the reference
    // values, nothing else.
    await client.send(
      'os.publish',
      { name: 'quorate-test-image', version: 'v2', bank: 'sha256', pcrs: osPcrs(tampered.digest) },
      publisher
    )
    const refs2 = forAppraisal(
      await client.referenceValues({ vendor: 'ovmf', platform: 'q35-smp2', os: 'quorate-test-image' })
    )
    t.same(
      appraise(evidenceOf(b2.pieces, nonce2), refs2, { ...policy, nonce: nonce2 }).failures,
      [],
      'once v2 is published, boot 2 appraises clean'
    )
  }
)
