// `quorate evidence verify FILE --nonce HEX --ek-ca PEM… [--refs FILE]` — appraise an evidence
// bundle (JSON file, as `quorate tpm quote --out` writes it) against reference values, offline.
// Prints every claim's status and failures; exit code 0 only when every claim passes.
// `quorate evidence show FILE` — what a bundle contains, decoded (quote fields, AK, EK subject).
import type { CommandModule } from 'yargs'
import { evidenceFromJson, decodeEvidence, type Evidence } from '../../attestation/evidence.ts'
import { parseAttest, parseSignature, parsePublic, objectName, objectAttributes } from '../../attestation/tpm2.ts'
import { parseEventLog } from '../../attestation/eventlog.ts'
import { parseContainerLog } from '../../attestation/containerlog.ts'
import { appraise, CLAIMS, type Appraisal } from '../../attestation/appraise.ts'
import { referenceValuesFromJson, type ReferenceValues } from '../../attestation/refs.ts'
import { parseCertificates } from '../../attestation/ekcert.ts'
import { fromHex, toHex } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { readInputFile, readInputText } from '../../encoding/files.ts'
import { CliExit, emit, type GlobalArgs } from '../output.ts'
import { FILE_LIMITS } from '../inputs.ts'

interface VerifyArgs extends GlobalArgs {
  file: string
  nonce: string
  ekCa?: string[]
  refs?: string
  activated?: boolean
  image?: string[]
  previousReset?: number
  previousRestart?: number
}

export function renderAppraisal(a: Appraisal): string {
  const lines = [`appraisal: ${a.ok ? 'PASS' : 'FAIL'} (${a['ear.status']})`]
  for (const c of CLAIMS) {
    const s = a.status[c]
    lines.push(`  ${c.padEnd(11)} ${s.ok ? 'ok' : 'FAIL'}`)
    for (const f of s.failures) lines.push(`      - ${f}`)
  }
  if (a.subject.akName !== undefined) lines.push(`AK name      ${a.subject.akName}`)
  if (a.subject.tpm !== undefined)
    lines.push(
      `TPM          ${[a.subject.tpm.manufacturer, a.subject.tpm.model, a.subject.tpm.version].filter(Boolean).join(' ')}`
    )
  if (a.clock !== undefined)
    lines.push(
      `TPM clock    ${a.clock.clock} ms  resetCount ${a.clock.resetCount}  restartCount ${a.clock.restartCount}`
    )
  lines.push(`digest       ${a.digest}`)
  return lines.join('\n')
}

const verify: CommandModule<GlobalArgs, VerifyArgs> = {
  command: 'verify <file>',
  describe: 'appraise an evidence bundle against reference values (exit 0 only if every claim passes)',
  builder: y =>
    y
      .positional('file', {
        type: 'string',
        demandOption: true,
        describe: 'evidence bundle: JSON (quorate tpm quote --out) or canonical CBOR'
      })
      .option('nonce', {
        type: 'string',
        demandOption: true,
        describe: 'the nonce you challenged with (hex); with committee nonces: your own'
      })
      .option('ek-ca', {
        type: 'string',
        array: true,
        describe: 'TPM vendor EK CA certificate(s), PEM or DER files (added to --refs ekCas)'
      })
      .option('refs', {
        type: 'string',
        describe: 'reference values JSON: { ekCas, firmware: RefSet[], os: RefSet[], containers? }'
      })
      .option('activated', {
        type: 'boolean',
        describe: 'credential activation for this AK was proven (identity requires it when given false)'
      })
      .option('image', {
        type: 'string',
        array: true,
        describe: 'allowed container image digest(s) sha256:… in addition to the refs'
      })
      .option('previous-reset', {
        type: 'number',
        describe: 'resetCount of the previous quote (a change fails freshness: reboot)'
      })
      .option('previous-restart', { type: 'number', describe: 'restartCount of the previous quote' }),
  handler: async argv => {
    const evidence = await loadEvidence(argv.file)
    let nonce: Uint8Array
    try {
      nonce = fromHex(argv.nonce, '--nonce')
    } catch (err) {
      throw new InvalidInputError((err as Error).message)
    }
    const base: ReferenceValues =
      argv.refs !== undefined
        ? referenceValuesFromJson(await readInputText(argv.refs, { label: '--refs', maxBytes: FILE_LIMITS.refs }))
        : { ekCas: [], firmware: [], os: [] }
    const cas: Uint8Array[] = []
    for (const p of argv.ekCa ?? []) {
      const bytes = await readInputFile(p, { label: '--ek-ca', maxBytes: FILE_LIMITS.certificates })
      cas.push(...parseCertificates(bytes, `--ek-ca ${p}`).map(c => new Uint8Array(c.raw)))
    }
    const refs: ReferenceValues = { ...base, ekCas: [...base.ekCas, ...cas] }
    if (refs.ekCas.length === 0) throw new InvalidInputError('no EK CA: give --ek-ca PEM (or ekCas in --refs)')
    const previousClock =
      argv.previousReset !== undefined
        ? { resetCount: argv.previousReset, restartCount: argv.previousRestart ?? 0 }
        : undefined
    const a = appraise(evidence, refs, {
      nonce,
      ...(argv.activated !== undefined
        ? { credentialActivated: argv.activated, requireCredentialActivation: true }
        : {}),
      ...(argv.image !== undefined ? { allowedImages: argv.image } : {}),
      ...(previousClock !== undefined ? { previousClock } : {})
    })
    emit(argv, a, () => renderAppraisal(a))
    if (!a.ok) throw new CliExit(1)
  }
}

interface ShowArgs extends GlobalArgs {
  file: string
}

/** What a bundle says, decoded but NOT verified (use `evidence verify` for that). */
export function describeEvidence(e: Evidence): Record<string, unknown> {
  const out: Record<string, unknown> = { version: e.version, nonce: toHex(e.nonce) }
  try {
    const a = parseAttest(e.quote.attest)
    out.quote = {
      magic: '0x' + a.magic.toString(16),
      type: '0x' + a.type.toString(16),
      qualifiedSigner: toHex(a.qualifiedSigner),
      extraData: toHex(a.extraData),
      clockInfo: { ...a.clockInfo, clock: a.clockInfo.clock.toString() },
      firmwareVersion: '0x' + a.firmwareVersion.toString(16),
      pcrSelect: a.quote?.pcrSelect,
      pcrDigest: a.quote !== undefined ? toHex(a.quote.pcrDigest) : undefined
    }
  } catch (err) {
    out.quote = { error: (err as Error).message }
  }
  try {
    const s = parseSignature(e.quote.signature)
    out.signature = { sigAlg: s.sigAlg, ...(s.sigAlg !== 'null' ? { hash: s.hash } : {}) }
  } catch (err) {
    out.signature = { error: (err as Error).message }
  }
  try {
    const p = parsePublic(e.akPublic)
    const attrs = objectAttributes(p.objectAttributes)
    out.ak = {
      type: p.type,
      name: toHex(objectName(e.akPublic, p)),
      attributes: Object.keys(attrs).filter(k => attrs[k as keyof typeof attrs])
    }
  } catch (err) {
    out.ak = { error: (err as Error).message }
  }
  try {
    const c = parseCertificates(e.ekCertificate)[0]
    out.ekCertificate = {
      subject: c.subject,
      issuer: c.issuer,
      serialNumber: c.serialNumber,
      notAfter: c.validTo,
      key: c.publicKey.asymmetricKeyType
    }
  } catch (err) {
    out.ekCertificate = { error: (err as Error).message }
  }
  out.pcrs = Object.fromEntries(
    Object.entries(e.pcrs).map(([b, v]) => [
      b,
      Object.fromEntries(Object.entries(v ?? {}).map(([k, d]) => [k, toHex(d)]))
    ])
  )
  if (e.eventLog !== undefined) {
    try {
      const l = parseEventLog(e.eventLog)
      out.eventLog = { bytes: e.eventLog.length, format: l.format, events: l.events.length, banks: l.banks }
    } catch (err) {
      out.eventLog = { bytes: e.eventLog.length, error: (err as Error).message }
    }
  }
  if (e.containerLog !== undefined) {
    try {
      out.containers = parseContainerLog(e.containerLog).map(x => ({
        image: x.record.image,
        digest: x.record.digest,
        cid: x.record.cid
      }))
    } catch (err) {
      out.containers = { error: (err as Error).message }
    }
  }
  if (e.committeeNonces !== undefined) out.committeeNonces = e.committeeNonces.map(toHex)
  return out
}

const show: CommandModule<GlobalArgs, ShowArgs> = {
  command: 'show <file>',
  describe: 'decode an evidence bundle (not a verification)',
  builder: y =>
    y.positional('file', { type: 'string', demandOption: true, describe: 'evidence bundle: JSON or canonical CBOR' }),
  handler: async argv => {
    const d = describeEvidence(await loadEvidence(argv.file))
    emit(argv, d, () =>
      Object.entries(d)
        .map(
          ([k, v]) =>
            `${k.padEnd(16)} ${typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v)}`
        )
        .join('\n')
    )
  }
}

async function loadEvidence(path: string): Promise<Evidence> {
  const raw = await readInputFile(path, { label: 'evidence bundle', maxBytes: FILE_LIMITS.evidence })
  return raw.length > 0 && (raw[0] === 0x7b || raw[0] === 0x20 || raw[0] === 0x0a)
    ? evidenceFromJson(new TextDecoder().decode(raw))
    : decodeEvidence(raw)
}

const evidence: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'evidence <command>',
  describe: 'evidence bundles: decode and appraise offline',
  builder: y => y.command(verify).command(show).demandCommand(1, 'name an evidence command: verify, show'),
  handler: () => {}
}

export default [evidence]
