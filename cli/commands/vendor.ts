// `quorate vendor register|publish-ekca|publish-firmware|revoke` — a vendor's namespace on chain:
// first come, first served; everything under it is signed by the key that registered it.
import type { Argv, CommandModule } from 'yargs'
import { readFile } from 'node:fs/promises'
import { X509Certificate } from 'node:crypto'
import { parseEventLog, replayEventLog, eventsForPcr } from '../../attestation/eventlog.ts'
import { isHashAlg } from '../../attestation/algs.ts'
import { fromHex, sha256, toHex } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import type { HashBank, PcrRefs } from '../../chain/types.ts'
import { progress, type GlobalArgs } from '../output.ts'
import { pcrRefsFromArgs, sendAndReport, withSigner, type SignArgs } from './chain.ts'

interface RegisterArgs extends SignArgs { name: string }
const register: CommandModule<GlobalArgs, RegisterArgs> = {
  command: 'register <name>',
  describe: 'claim a vendor name (first come, first served) for the signing key',
  builder: y => withSigner(y).positional('name', { type: 'string', demandOption: true }) as unknown as Argv<RegisterArgs>,
  handler: async argv => { await sendAndReport(argv, 'vendor.register', { name: argv.name }, `registered vendor "${argv.name}"`, { vendor: argv.name }) }
}

/** DER certificates from a PEM bundle or a DER file; each parsed once to refuse garbage early. */
export function certificatesFromFile (bytes: Uint8Array, path: string): Uint8Array[] {
  const text = Buffer.from(bytes).toString('latin1')
  const pems = [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map(m => new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ''), 'base64')))
  const ders = pems.length > 0 ? pems : [bytes]
  for (const d of ders) {
    try { new X509Certificate(d) } catch (err) { throw new InvalidInputError(`${path}: not an X.509 certificate (PEM or DER): ${(err as Error).message}`) }
  }
  return ders
}

interface EkcaArgs extends SignArgs { vendor: string, file: string }
const publishEkca: CommandModule<GlobalArgs, EkcaArgs> = {
  command: 'publish-ekca <file>',
  describe: 'publish EK CA certificate(s) (PEM bundle or DER) that TPM EK certificates chain to',
  builder: y => withSigner(y).positional('file', { type: 'string', demandOption: true }).option('vendor', { type: 'string', demandOption: true }) as unknown as Argv<EkcaArgs>,
  handler: async argv => {
    const certs = certificatesFromFile(new Uint8Array(await readFile(argv.file)), argv.file)
    for (const cert of certs) {
      const subject = new X509Certificate(cert).subject.replace(/\n/g, ', ')
      await sendAndReport(argv, 'vendor.ekca.publish', { vendor: argv.vendor, certificate: cert },
        `published EK CA for vendor "${argv.vendor}": ${subject}\n  sha256 fingerprint ${toHex(sha256(cert))}`, { vendor: argv.vendor, fingerprint: toHex(sha256(cert)), subject })
    }
  }
}

interface FirmwareArgs extends SignArgs { vendor: string, platform: string, version: string, bank: string, eventlog?: string, pcrs: string, golden?: boolean, pcr?: string[], event?: string[] }

export function pcrRange (s: string): Set<number> {
  const out = new Set<number>()
  for (const part of s.split(',')) {
    const m = /^(\d{1,2})(?:-(\d{1,2}))?$/.exec(part.trim())
    if (m === null) throw new InvalidInputError(`--pcrs ${JSON.stringify(s)}: expected a list like 0-7 or 0,2,4`)
    for (let i = Number(m[1]); i <= Number(m[2] ?? m[1]); i++) if (i <= 23) out.add(i)
  }
  return out
}

/** Reference values from a TCG event log: each PCR's event digests, and (with golden) the replayed final value. */
export function refsFromEventLog (bytes: Uint8Array, bank: HashBank, pcrs: Set<number>, golden: boolean): PcrRefs {
  const log = parseEventLog(bytes)
  if (!log.banks.includes(bank)) throw new InvalidInputError(`the event log has no ${bank} digests (banks: ${log.banks.join(', ') || 'none'})`)
  const out: PcrRefs = {}
  const finals = golden ? replayEventLog(log, [bank]).get(bank) : undefined
  for (const pcr of [...pcrs].sort((a, b) => a - b)) {
    const seen = new Map<string, Uint8Array>()
    for (const e of eventsForPcr(log, pcr)) { const d = e.digests[bank]; if (d !== undefined) seen.set(toHex(d), d) }
    if (seen.size === 0) continue
    const entry: { golden?: Uint8Array[], events?: Uint8Array[] } = { events: [...seen.values()] }
    const f = finals?.get(pcr)
    if (f !== undefined) entry.golden = [f]
    out[String(pcr)] = entry
  }
  return out
}

const publishFirmware: CommandModule<GlobalArgs, FirmwareArgs> = {
  command: 'publish-firmware',
  describe: 'publish firmware reference values for a platform and version: from a TCG event log (--eventlog) and/or --pcr N=HEX golden values, --event N=HEX event digests',
  builder: y => withSigner(y.version(false))
    .option('vendor', { type: 'string', demandOption: true })
    .option('platform', { type: 'string', demandOption: true })
    .option('version', { type: 'string', demandOption: true })
    .option('bank', { type: 'string', default: 'sha256', describe: 'PCR bank of the digests' })
    .option('eventlog', { type: 'string', describe: 'binary TCG PC Client event log (e.g. /sys/kernel/security/tpm0/binary_bios_measurements)' })
    .option('pcrs', { type: 'string', default: '0-7', describe: 'with --eventlog: which PCRs to publish' })
    .option('golden', { type: 'boolean', describe: 'with --eventlog: also publish the replayed final PCR values' })
    .option('pcr', { type: 'string', array: true, describe: 'golden value PCR=HEX; repeatable' })
    .option('event', { type: 'string', array: true, describe: 'allowed event digest PCR=HEX; repeatable' }) as unknown as Argv<FirmwareArgs>,
  handler: async argv => {
    if (!isHashAlg(argv.bank)) throw new InvalidInputError(`--bank ${argv.bank}: expected sha1, sha256, sha384 or sha512`)
    const bank = argv.bank
    let pcrs: PcrRefs = {}
    if (argv.eventlog !== undefined) {
      pcrs = refsFromEventLog(new Uint8Array(await readFile(argv.eventlog)), bank, pcrRange(argv.pcrs), argv.golden === true)
      progress(argv, `event log ${argv.eventlog}: ${Object.entries(pcrs).map(([k, v]) => `PCR ${k}: ${v.events?.length ?? 0} event digests`).join(', ')}`)
    }
    for (const [k, v] of Object.entries(pcrRefsFromArgs(argv.pcr ?? [], argv.event ?? [], bank))) {
      const e = pcrs[k] ??= {}
      if (v.golden !== undefined) e.golden = [...(e.golden ?? []), ...v.golden]
      if (v.events !== undefined) e.events = [...(e.events ?? []), ...v.events]
    }
    if (Object.keys(pcrs).length === 0) throw new InvalidInputError('no reference values: give --eventlog FILE and/or --pcr N=HEX / --event N=HEX')
    await sendAndReport(argv, 'firmware.publish', { vendor: argv.vendor, platform: argv.platform, version: argv.version, bank, pcrs },
      `published firmware ${argv.vendor}/${argv.platform} ${argv.version}: ${Object.entries(pcrs).map(([k, v]) => `PCR ${k} (${v.golden?.length ?? 0} golden, ${v.events?.length ?? 0} events)`).join(', ')}`,
      { vendor: argv.vendor, platform: argv.platform, version: argv.version, pcrs: Object.keys(pcrs).map(Number) })
  }
}

interface RevokeArgs extends SignArgs { vendor: string, platform?: string, version?: string, ekca?: string }
const revoke: CommandModule<GlobalArgs, RevokeArgs> = {
  command: 'revoke',
  describe: 'revoke firmware reference values (--platform --version) or an EK CA (--ekca SHA256-FINGERPRINT); nodes certified under a revoked platform must re-attest',
  builder: y => withSigner(y.version(false))
    .option('vendor', { type: 'string', demandOption: true })
    .option('platform', { type: 'string' }).option('version', { type: 'string' })
    .option('ekca', { type: 'string', describe: 'sha256 fingerprint (hex) of the EK CA certificate' }) as unknown as Argv<RevokeArgs>,
  handler: async argv => {
    if (argv.ekca !== undefined) {
      const fp = fromHex(argv.ekca.replace(/:/g, ''), '--ekca')
      if (fp.byteLength !== 32) throw new InvalidInputError('--ekca: a sha256 fingerprint has 32 bytes')
      await sendAndReport(argv, 'vendor.ekca.revoke', { vendor: argv.vendor, fingerprint: fp }, `revoked EK CA ${toHex(fp)} of vendor "${argv.vendor}"`, { vendor: argv.vendor, fingerprint: toHex(fp) })
      return
    }
    if (argv.platform === undefined || argv.version === undefined) throw new InvalidInputError('give --platform and --version (firmware) or --ekca FINGERPRINT')
    await sendAndReport(argv, 'firmware.revoke', { vendor: argv.vendor, platform: argv.platform, version: argv.version },
      `revoked firmware ${argv.vendor}/${argv.platform} ${argv.version}`, { vendor: argv.vendor, platform: argv.platform, version: argv.version })
  }
}

const vendor: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'vendor <command>',
  describe: 'vendor namespace: register, EK CAs, firmware reference values, revocation',
  builder: y => y.command([register, publishEkca, publishFirmware, revoke] as unknown as CommandModule[]).demandCommand(1),
  handler: () => {}
}

export default [vendor]
