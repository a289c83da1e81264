// `quorate tpm info|pcrs|quote` — look at the TPM and produce an evidence bundle by hand.
// `quorate tpm simulate --dir D` — an INSECURE software TPM (swtpm with an EK certificate chain)
// for local networks and trying quorate without TPM hardware.
import type { CommandModule, Argv } from 'yargs'
import { writeFileSync } from 'node:fs'
import { openTpm, parsePcrList, defaultTcti, DEFAULT_AK_HANDLE } from '../../attestation/tpm/index.ts'
import type { Tpm, HashAlg, EkKind, PcrReadResult } from '../../attestation/tpm/index.ts'
import { evidenceToJson, validateEvidence, EVIDENCE_LIMITS } from '../../attestation/evidence.ts'
import { readInputFile } from '../../encoding/files.ts'
import { startSwtpm, SOFTWARE_TPM_WARNING } from '../../attestation/tpm/simulator.ts'
import { fromHex, toHex } from '../../encoding/bytes.ts'
import { InvalidInputError, TransientError } from '../../encoding/errors.ts'
import { emit, progress } from '../output.ts'
import type { GlobalArgs } from '../output.ts'

interface TpmArgs extends GlobalArgs {
  tcti?: string
}
interface PcrsArgs extends TpmArgs {
  bank: string
  pcrs: string
}
interface QuoteArgs extends TpmArgs {
  nonce: string
  bank: string
  pcrs: string
  out?: string
  akHandle?: string
  ek: string
  eventlog?: string
  eventLog?: string
}

const BANKS = ['sha1', 'sha256', 'sha384', 'sha512'] as const
const EK_KINDS = ['rsa2048', 'ecc-p384'] as const

function withTcti<T>(y: Argv<T>): Argv<T & { tcti: string | undefined }> {
  return y.option('tcti', {
    type: 'string',
    describe: 'TCTI of the TPM (default: QUORATE_TCTI, TPM2TOOLS_TCTI, device:/dev/tpmrm0)'
  })
}

async function withTpm<T>(argv: TpmArgs, fn: (tpm: Tpm) => Promise<T>): Promise<T> {
  const tcti = argv.tcti ?? defaultTcti()
  // A raw /dev/tpm0 or a TCP TPM that accepts but does not answer would otherwise wait silently.
  const slow = setTimeout(() => {
    process.stderr.write(
      `still waiting for the TPM at ${tcti} (is it busy, or is another process holding /dev/tpm0?)\n`
    )
  }, 3000)
  slow.unref()
  try {
    const tpm = await openTpm({ tcti })
    try {
      return await fn(tpm)
    } finally {
      await tpm.close()
    }
  } finally {
    clearTimeout(slow)
  }
}

function parseHandle(s: string | undefined): number {
  if (s === undefined) return DEFAULT_AK_HANDLE
  const n = /^0x[0-9a-f]{1,8}$/i.test(s) ? parseInt(s, 16) : /^\d+$/.test(s) ? Number(s) : NaN
  if (!Number.isInteger(n)) throw new InvalidInputError(`--ak-handle: "${s}" is not a handle (e.g. 0x81000a01)`)
  return n
}

const hex8 = (n: number): string => '0x' + n.toString(16).padStart(8, '0')

/** Announced loudly (stderr, also with --json): a software TPM is no root of trust. */
function warnSoftware(isSoftware: boolean): void {
  if (isSoftware)
    process.stderr.write(
      'WARNING: this is a SOFTWARE TPM (swtpm): its quotes prove nothing about a machine. Use it for tests only.\n'
    )
}

const info: CommandModule<GlobalArgs, TpmArgs> = {
  command: 'info',
  describe: 'manufacturer, firmware, clock, persistent handles, EK certificates and the AK',
  builder: y => withTcti(y),
  handler: async argv => {
    const r = await withTpm(argv, async tpm => {
      const i = await tpm.info()
      const clock = await tpm.readClock()
      const persistent = await tpm.persistentHandles()
      const ekCertificates: Record<string, number | null> = {}
      for (const k of EK_KINDS) ekCertificates[k] = (await tpm.ekCertificate(k))?.length ?? null
      return {
        ...i,
        tcti: tpm.tcti,
        clock,
        persistentHandles: persistent.map(hex8),
        ekCertificates,
        akHandle: hex8(DEFAULT_AK_HANDLE),
        akPresent: persistent.includes(DEFAULT_AK_HANDLE)
      }
    })
    warnSoftware(r.isSoftware)
    emit(argv, r, () =>
      [
        `TPM          ${r.tcti}`,
        `manufacturer ${r.manufacturer}  vendor "${r.vendor}"  firmware ${r.firmwareVersion}${r.isSoftware ? '  (SOFTWARE TPM)' : ''}`,
        `clock        ${r.clock.clock} ms  resetCount ${r.clock.resetCount}  restartCount ${r.clock.restartCount}  safe ${r.clock.safe ? 'yes' : 'no'}`,
        `persistent   ${r.persistentHandles.join(' ') || '(none)'}`,
        `EK certs     ${EK_KINDS.map(k => `${k}: ${r.ekCertificates[k] === null ? 'none' : `${r.ekCertificates[k]} bytes`}`).join(', ')}`,
        `AK           ${r.akHandle} ${r.akPresent ? 'present' : 'not created yet (quorate tpm quote creates it)'}`
      ].join('\n')
    )
  }
}

function bankArg(s: string): HashAlg {
  if (!(BANKS as readonly string[]).includes(s))
    throw new InvalidInputError(`--bank must be one of ${BANKS.join(', ')}`)
  return s as HashAlg
}

const pcrs: CommandModule<GlobalArgs, PcrsArgs> = {
  command: 'pcrs',
  describe: 'read PCR values',
  builder: y =>
    withTcti(y)
      .option('bank', { type: 'string', default: 'sha256', describe: 'PCR bank' })
      .option('pcrs', { type: 'string', default: '0-23', describe: 'PCR list, e.g. 0-9,13' }),
  handler: async argv => {
    const bank = bankArg(argv.bank)
    const list = parsePcrList(argv.pcrs)
    const r = await withTpm(argv, async tpm => await tpm.pcrRead([{ hash: bank, pcrs: list }]))
    const values: Record<string, string> = {}
    for (const [i, v] of r.banks[0].values) values[String(i)] = toHex(v)
    emit(argv, { bank, updateCounter: r.updateCounter, pcrs: values }, () =>
      Object.entries(values)
        .map(([i, v]) => `${bank}:${i.padStart(2)} ${v}`)
        .join('\n')
    )
  }
}

/** pcrRead → quote → pcrRead, until no PCR changed in between (the values must match the quote). */
async function consistentQuote(
  tpm: Tpm,
  nonce: Uint8Array,
  bank: HashAlg,
  list: number[],
  akHandle: number
): Promise<{ quote: { attest: Uint8Array; signature: Uint8Array }; values: PcrReadResult }> {
  const sel = [{ hash: bank, pcrs: list }]
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = await tpm.pcrRead(sel)
    const quote = await tpm.quote({ nonce, pcrs: sel, akHandle })
    const after = await tpm.pcrRead(sel)
    if (after.updateCounter === before.updateCounter) return { quote, values: after }
  }
  throw new TransientError('PCRs kept changing while quoting; try again')
}

const quote: CommandModule<GlobalArgs, QuoteArgs> = {
  command: 'quote',
  describe: 'quote PCRs with the AK (created under the EK on first use) and write an evidence bundle',
  builder: y =>
    withTcti(y)
      .option('nonce', { type: 'string', demandOption: true, describe: 'verifier nonce, hex (8–64 bytes)' })
      .option('pcrs', { type: 'string', default: '0-9,13', describe: 'PCR list' })
      .option('bank', { type: 'string', default: 'sha256', describe: 'PCR bank' })
      .option('out', { type: 'string', describe: 'write the evidence bundle (JSON) to this file instead of stdout' })
      .option('ak-handle', { type: 'string', describe: `persistent AK handle (default ${hex8(DEFAULT_AK_HANDLE)})` })
      .option('ek', {
        type: 'string',
        default: 'rsa2048',
        choices: EK_KINDS,
        describe: 'EK whose certificate goes into the bundle (and the AK parent when it is created)'
      })
      .option('eventlog', {
        type: 'string',
        describe: 'TCG event log to include, e.g. /sys/kernel/security/tpm0/binary_bios_measurements'
      })
      .option('event-log', { type: 'string', hidden: true, deprecated: 'use --eventlog' }),
  handler: async argv => {
    let nonce: Uint8Array
    try {
      nonce = fromHex(argv.nonce, '--nonce')
    } catch (e) {
      throw new InvalidInputError((e as Error).message)
    }
    if (nonce.length < 8 || nonce.length > 64)
      throw new InvalidInputError(`--nonce must be 8–64 bytes, got ${nonce.length}`)
    const bank = bankArg(argv.bank)
    const list = parsePcrList(argv.pcrs)
    if (list.length === 0) throw new InvalidInputError('--pcrs selects no PCR')
    const ek = argv.ek as EkKind
    const akHandle = parseHandle(argv.akHandle)
    const eventLogPath = argv.eventlog ?? argv.eventLog
    const eventLog =
      eventLogPath === undefined
        ? undefined
        : await readInputFile(eventLogPath, { label: '--eventlog', maxBytes: EVIDENCE_LIMITS.maxEventLog })
    const r = await withTpm(argv, async tpm => {
      const i = await tpm.info()
      warnSoftware(i.isSoftware)
      const ekCertificate = await tpm.ekCertificate(ek)
      if (ekCertificate === undefined)
        throw new InvalidInputError(
          `the TPM has no ${ek} EK certificate (NV index missing); try --ek ${ek === 'rsa2048' ? 'ecc-p384' : 'rsa2048'}`
        )
      const ak = await tpm.ensureAk({ handle: akHandle, ekKind: ek })
      if (ak.created === true) progress(argv, `created the AK at ${hex8(akHandle)}`)
      const q = await consistentQuote(tpm, nonce, bank, list, akHandle)
      const values: Record<string, Uint8Array> = {}
      for (const [idx, v] of q.values.banks[0].values) values[String(idx)] = v
      return validateEvidence({
        version: 1,
        nonce,
        quote: q.quote,
        pcrs: { [bank]: values },
        akPublic: ak.public,
        ekCertificate,
        eventLog
      })
    })
    const json = evidenceToJson(r)
    if (argv.out !== undefined) {
      writeFileSync(argv.out, JSON.stringify(json, null, 2) + '\n')
      emit(
        argv,
        { out: argv.out, nonce: json.nonce, pcrs: list, bank },
        `wrote evidence to ${argv.out} (${bank} PCRs ${argv.pcrs})`
      )
    } else {
      emit(argv, json, JSON.stringify(json, null, 2))
    }
  }
}

interface SimulateArgs extends GlobalArgs {
  dir: string
  port?: number
}

const simulate: CommandModule<GlobalArgs, SimulateArgs> = {
  command: 'simulate',
  describe:
    'INSECURE: manufacture (or reuse) a software TPM with an EK certificate chain in --dir and serve it until interrupted',
  builder: y =>
    y
      .option('dir', {
        type: 'string',
        demandOption: true,
        describe: 'directory of the TPM state and its local EK CA (created; reused when it holds a TPM)'
      })
      .option('port', {
        type: 'number',
        describe: 'TCP port on 127.0.0.1 (the control port is the next one; default: a free pair)'
      }),
  handler: async argv => {
    process.stderr.write(`WARNING: ${SOFTWARE_TPM_WARNING}\n`)
    const sw = await startSwtpm({ dir: argv.dir, ...(argv.port !== undefined ? { port: argv.port } : {}) })
    try {
      emit(
        argv,
        {
          tcti: sw.tcti,
          port: sw.port,
          ctrlPort: sw.ctrlPort,
          dir: sw.dir,
          stateDir: sw.stateDir,
          ekCaFile: sw.ekCaFile,
          manufactured: sw.manufactured,
          pid: process.pid
        },
        [
          `software TPM ${sw.manufactured ? 'manufactured' : 'reused'} in ${sw.dir} (EK certificates from its local CA)`,
          `  TCTI     ${sw.tcti}`,
          `  EK CA    ${sw.ekCaFile}  (publish it as the TPM vendor's: quorate vendor publish-ekca ${sw.ekCaFile} --vendor NAME)`,
          `use it:   export QUORATE_TCTI=${sw.tcti}   (or --tcti)`,
          'serving until interrupted (Ctrl-C)'
        ].join('\n')
      )
      await new Promise<void>(resolve => {
        const stop = (): void => {
          process.off('SIGINT', stop)
          process.off('SIGTERM', stop)
          resolve()
        }
        process.on('SIGINT', stop)
        process.on('SIGTERM', stop)
      })
    } finally {
      await sw.stop()
    }
    progress(argv, `stopped the software TPM; its state stays in ${sw.dir}`)
  }
}

const tpm: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'tpm <command>',
  describe: 'the TPM: info, PCRs, quotes (evidence bundles); simulate: an INSECURE software TPM',
  builder: y =>
    y
      .command(info as unknown as CommandModule<GlobalArgs, TpmArgs>)
      .command(pcrs as unknown as CommandModule<GlobalArgs, PcrsArgs>)
      .command(quote as unknown as CommandModule<GlobalArgs, QuoteArgs>)
      .command(simulate as unknown as CommandModule<GlobalArgs, SimulateArgs>)
      .demandCommand(1, 'name a tpm command: info, pcrs, quote, simulate'),
  handler: () => {}
}

export default [tpm]
