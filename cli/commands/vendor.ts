// `quorate vendor register|publish-ekca|publish-firmware|revoke` — a vendor's namespace on chain:
// first come, first served; everything under it is signed by the key that registered it.
import type { Argv, CommandModule } from 'yargs'
import { parseCertificates } from '../../attestation/ekcert.ts'
import { fromHex, sha256, toHex } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { readInputFile } from '../../encoding/files.ts'
import type { GlobalArgs } from '../output.ts'
import { FILE_LIMITS } from '../inputs.ts'
import { pcrRefsFromOptions, type PcrRefArgs } from '../pcr-refs.ts'
import { sendAndReport, withSigner, type SignArgs } from './chain.ts'

interface RegisterArgs extends SignArgs {
  name: string
}
const register: CommandModule<GlobalArgs, RegisterArgs> = {
  command: 'register <name>',
  describe: 'claim a vendor name (first come, first served) for the signing key',
  builder: y =>
    withSigner(y).positional('name', {
      type: 'string',
      demandOption: true,
      describe: 'vendor name to claim (a-z 0-9 . _ -)'
    }) as unknown as Argv<RegisterArgs>,
  handler: async argv => {
    await sendAndReport(argv, 'vendor.register', { name: argv.name }, `registered vendor "${argv.name}"`, {
      vendor: argv.name
    })
  }
}

/** DER certificates from a PEM bundle or a DER file; each parsed once to refuse garbage early (and to name its subject). */
function certificatesFromFile(bytes: Uint8Array, path: string): Array<{ der: Uint8Array; subject: string }> {
  return parseCertificates(bytes, path).map(x => ({
    der: new Uint8Array(x.raw),
    subject: x.subject.replace(/\n/g, ', ')
  }))
}

interface EkcaArgs extends SignArgs {
  vendor: string
  file: string
}
const publishEkca: CommandModule<GlobalArgs, EkcaArgs> = {
  command: 'publish-ekca <file>',
  describe: 'publish EK CA certificate(s) (PEM bundle or DER) that TPM EK certificates chain to',
  builder: y =>
    withSigner(y)
      .positional('file', {
        type: 'string',
        demandOption: true,
        describe: 'PEM bundle or DER file of EK CA certificates (e.g. the ek-ca.pem of quorate tpm simulate)'
      })
      .option('vendor', {
        type: 'string',
        demandOption: true,
        describe: 'your registered vendor name'
      }) as unknown as Argv<EkcaArgs>,
  handler: async argv => {
    const certs = certificatesFromFile(
      await readInputFile(argv.file, { label: 'EK CA file', maxBytes: FILE_LIMITS.certificates }),
      argv.file
    )
    for (const { der, subject } of certs) {
      const fingerprint = toHex(sha256(der))
      await sendAndReport(
        argv,
        'vendor.ekca.publish',
        { vendor: argv.vendor, certificate: der },
        `published EK CA for vendor "${argv.vendor}": ${subject}\n  sha256 fingerprint ${fingerprint}`,
        { vendor: argv.vendor, fingerprint, subject }
      )
    }
  }
}

interface FirmwareArgs extends SignArgs, PcrRefArgs {
  vendor: string
  platform: string
  version: string
}

const publishFirmware: CommandModule<GlobalArgs, FirmwareArgs> = {
  command: 'publish-firmware',
  describe:
    'publish firmware reference values for a platform and version: from a TCG event log (--eventlog) and/or --pcr N=HEX golden values, --event N=HEX event digests',
  builder: y =>
    withSigner(y.version(false))
      .option('vendor', { type: 'string', demandOption: true, describe: 'your registered vendor name' })
      .option('platform', {
        type: 'string',
        demandOption: true,
        describe: 'platform name (agents give "<vendor>/<platform>" as --platform)'
      })
      .option('version', { type: 'string', demandOption: true, describe: 'firmware version, e.g. 2022.11' })
      .option('bank', { type: 'string', default: 'sha256', describe: 'PCR bank of the digests' })
      .option('eventlog', {
        type: 'string',
        describe: 'binary TCG PC Client event log (e.g. /sys/kernel/security/tpm0/binary_bios_measurements)'
      })
      .option('pcrs', { type: 'string', default: '0-7', describe: 'with --eventlog: which PCRs to publish' })
      .option('golden', { type: 'boolean', describe: 'with --eventlog: also publish the replayed final PCR values' })
      .option('pcr', { type: 'string', array: true, describe: 'golden value PCR=HEX; repeatable' })
      .option('event', {
        type: 'string',
        array: true,
        describe: 'allowed event digest PCR=HEX; repeatable'
      }) as unknown as Argv<FirmwareArgs>,
  handler: async argv => {
    const { bank, pcrs } = await pcrRefsFromOptions(argv)
    if (Object.keys(pcrs).length === 0)
      throw new InvalidInputError('no reference values: give --eventlog FILE and/or --pcr N=HEX / --event N=HEX')
    await sendAndReport(
      argv,
      'firmware.publish',
      { vendor: argv.vendor, platform: argv.platform, version: argv.version, bank, pcrs },
      `published firmware ${argv.vendor}/${argv.platform} ${argv.version}: ${Object.entries(pcrs)
        .map(([k, v]) => `PCR ${k} (${v.golden?.length ?? 0} golden, ${v.events?.length ?? 0} events)`)
        .join(', ')}`,
      { vendor: argv.vendor, platform: argv.platform, version: argv.version, pcrs: Object.keys(pcrs).map(Number) }
    )
  }
}

interface RevokeArgs extends SignArgs {
  vendor: string
  platform?: string
  version?: string
  ekca?: string
}
const revoke: CommandModule<GlobalArgs, RevokeArgs> = {
  command: 'revoke',
  describe:
    'revoke firmware reference values (--platform --version) or an EK CA (--ekca SHA256-FINGERPRINT); nodes certified under a revoked platform must re-attest',
  builder: y =>
    withSigner(y.version(false))
      .option('vendor', { type: 'string', demandOption: true, describe: 'your registered vendor name' })
      .option('platform', { type: 'string', describe: 'with --version: the firmware to revoke' })
      .option('version', { type: 'string', describe: 'with --platform: the firmware version to revoke' })
      .option('ekca', {
        type: 'string',
        describe: 'sha256 fingerprint (hex) of the EK CA certificate'
      }) as unknown as Argv<RevokeArgs>,
  handler: async argv => {
    if (argv.ekca !== undefined) {
      const fp = fromHex(argv.ekca.replace(/:/g, ''), '--ekca')
      if (fp.byteLength !== 32) throw new InvalidInputError('--ekca: a sha256 fingerprint has 32 bytes')
      await sendAndReport(
        argv,
        'vendor.ekca.revoke',
        { vendor: argv.vendor, fingerprint: fp },
        `revoked EK CA ${toHex(fp)} of vendor "${argv.vendor}"`,
        { vendor: argv.vendor, fingerprint: toHex(fp) }
      )
      return
    }
    if (argv.platform === undefined || argv.version === undefined)
      throw new InvalidInputError('give --platform and --version (firmware) or --ekca FINGERPRINT')
    await sendAndReport(
      argv,
      'firmware.revoke',
      { vendor: argv.vendor, platform: argv.platform, version: argv.version },
      `revoked firmware ${argv.vendor}/${argv.platform} ${argv.version}`,
      { vendor: argv.vendor, platform: argv.platform, version: argv.version }
    )
  }
}

const vendor: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'vendor <command>',
  describe: 'vendor namespace: register, EK CAs, firmware reference values, revocation',
  builder: y =>
    y.command([register, publishEkca, publishFirmware, revoke] as unknown as CommandModule[]).demandCommand(1),
  handler: () => {}
}

export default [vendor]
