// `quorate keys new|show` — ed25519 account keys, stored as libp2p marshals private keys (0600),
// so a node's chain account is its libp2p peer id.
import type { CommandModule } from 'yargs'
import { generateChainKey, saveChainKey, type ChainKey } from '../../chain/keys.ts'
import { toHex } from '../../encoding/bytes.ts'
import { emit, type GlobalArgs } from '../output.ts'
import { loadKeyFile } from '../inputs.ts'
import { keyPath, withHome, type HomeArgs } from './chain.ts'

interface KeyArgs extends HomeArgs {
  name?: string
  force?: boolean
}

function report(argv: KeyArgs, path: string, key: ChainKey, title: string): void {
  emit(
    argv,
    { path, peerId: key.peerId, publicKey: toHex(key.publicKey) },
    `${title}\n  peer id / account ${key.peerId}\n  public key        ${toHex(key.publicKey)}`
  )
}

const create: CommandModule<GlobalArgs, KeyArgs> = {
  command: 'new [name]',
  describe: 'create an ed25519 key (default name "default") under <home>/keys, mode 0600',
  builder: y =>
    withHome(y)
      .positional('name', { type: 'string', describe: 'key name or file path' })
      .option('force', { type: 'boolean', describe: 'overwrite an existing key (its identity is lost)' }),
  handler: async argv => {
    const path = keyPath(argv, argv.name)
    const key = await generateChainKey()
    await saveChainKey(path, key, { overwrite: argv.force === true })
    report(argv, path, key, `created key ${path}`)
  }
}

const show: CommandModule<GlobalArgs, KeyArgs> = {
  command: 'show [name]',
  describe: 'print the peer id (chain account) and public key of a key',
  builder: y => withHome(y).positional('name', { type: 'string', describe: 'key name or file path' }),
  handler: async argv => {
    const path = keyPath(argv, argv.name)
    const key = await loadKeyFile(path, 'key')
    report(argv, path, key, path)
  }
}

const keys: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'keys <command>',
  describe: 'ed25519 account keys (libp2p-compatible)',
  builder: y => y.command([create, show] as unknown as CommandModule[]).demandCommand(1),
  handler: () => {}
}

export default [keys]
