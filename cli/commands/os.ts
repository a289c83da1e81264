// `quorate os publish|revoke` — OS image reference values (PCRs 4, 8, 9, 11, 12 for a NixOS UKI).
// An OS name belongs to the key that first published it.
import type { Argv, CommandModule } from 'yargs'
import { InvalidInputError } from '../../encoding/errors.ts'
import type { GlobalArgs } from '../output.ts'
import { pcrRefsFromOptions, type PcrRefArgs } from '../pcr-refs.ts'
import { sendAndReport, withSigner, type SignArgs } from './chain.ts'

interface PublishArgs extends SignArgs, PcrRefArgs {
  name: string
  version: string
}
const publish: CommandModule<GlobalArgs, PublishArgs> = {
  command: 'publish',
  describe:
    'publish OS reference values: --pcr N=HEX golden values, --event N=HEX event digests, and/or the events of PCRs 4,8,9,11,12 from a TCG event log',
  builder: y =>
    withSigner(y.version(false))
      .option('name', {
        type: 'string',
        demandOption: true,
        describe: 'OS image name (the name agents give as --os; yours once first published)'
      })
      .option('version', { type: 'string', demandOption: true, describe: 'version of the OS image, e.g. 24.11' })
      .option('bank', { type: 'string', default: 'sha256' })
      .option('pcr', { type: 'string', array: true, describe: 'golden value PCR=HEX; repeatable' })
      .option('event', { type: 'string', array: true, describe: 'allowed event digest PCR=HEX; repeatable' })
      .option('eventlog', { type: 'string', describe: 'binary TCG event log of a boot of this OS image' })
      .option('pcrs', { type: 'string', default: '4,8,9,11,12', describe: 'with --eventlog: which PCRs to publish' })
      .option('golden', {
        type: 'boolean',
        describe: 'with --eventlog: also publish the replayed final PCR values'
      }) as unknown as Argv<PublishArgs>,
  handler: async argv => {
    const { bank, pcrs } = await pcrRefsFromOptions(argv)
    if (Object.keys(pcrs).length === 0)
      throw new InvalidInputError('no reference values: give --eventlog FILE, --pcr N=HEX and/or --event N=HEX')
    await sendAndReport(
      argv,
      'os.publish',
      { name: argv.name, version: argv.version, bank, pcrs },
      `published OS ${argv.name} ${argv.version}: PCRs ${Object.keys(pcrs).join(', ')}`,
      { name: argv.name, version: argv.version, pcrs: Object.keys(pcrs).map(Number) }
    )
  }
}

interface RevokeArgs extends SignArgs {
  name: string
  version: string
}
const revoke: CommandModule<GlobalArgs, RevokeArgs> = {
  command: 'revoke',
  describe: 'revoke an OS version; nodes that run it must re-attest',
  builder: y =>
    withSigner(y.version(false))
      .option('name', { type: 'string', demandOption: true, describe: 'OS image name' })
      .option('version', {
        type: 'string',
        demandOption: true,
        describe: 'the version to revoke'
      }) as unknown as Argv<RevokeArgs>,
  handler: async argv => {
    await sendAndReport(
      argv,
      'os.revoke',
      { name: argv.name, version: argv.version },
      `revoked OS ${argv.name} ${argv.version}`,
      { name: argv.name, version: argv.version }
    )
  }
}

const os: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'os <command>',
  describe: 'OS image reference values',
  builder: y => y.command([publish, revoke] as unknown as CommandModule[]).demandCommand(1),
  handler: () => {}
}

export default [os]
