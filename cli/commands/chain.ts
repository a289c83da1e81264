// `quorate chain init|start|status|query|replay` — the registry ledger. Also the small helpers
// the other chain-facing commands (keys, vendor, os) share: home dir, RPC URL, key files.
import type { Argv, CommandModule } from 'yargs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createQuorumRules } from '../../attestation/quorum/index.ts'
import { createFaultAppraiser } from '../../agent/p2p/fault-appraiser.ts'
import { ChainClient, type SendResult } from '../../chain/client.ts'
import { peerIdToPublicKey, type ChainKey } from '../../chain/keys.ts'
import { replayBlockLog } from '../../chain/replay.ts'
import { startCometValidator } from '../../chain/cometbft/node.ts'
import { writeTestnet } from '../../chain/cometbft/testnet.ts'
import { chainPaths, initChainHome, readGenesis, startEmbeddedValidator } from '../../chain/validator.ts'
import { checkGenesisVerifiers } from '../../chain/genesis.ts'
import { DEFAULT_COMMITTEE_SIZE, TX_TYPES, type Genesis, type TxBodies, type TxType } from '../../chain/types.ts'
import { fromHex, toHex, utf8 } from '../../encoding/bytes.ts'
import { decode } from '../../encoding/canonical.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { createLogger } from '../../encoding/log.ts'
import { emit, progress, renderTable, type GlobalArgs } from '../output.ts'
import { loadKeyFile } from '../inputs.ts'

export interface HomeArgs extends GlobalArgs {
  home?: string
}
export interface RpcArgs extends GlobalArgs {
  rpc?: string
}
export interface SignArgs extends HomeArgs, RpcArgs {
  key?: string
  sync?: boolean
}

export const defaultHome = (): string => process.env.QUORATE_HOME ?? join(homedir(), '.quorate')
export const defaultRpc = (): string => process.env.QUORATE_CHAIN_RPC ?? 'http://127.0.0.1:26657'

export function withHome<T>(y: Argv<T>): Argv<T & { home: string | undefined }> {
  return y.option('home', { type: 'string', describe: 'home directory (default: QUORATE_HOME, then ~/.quorate)' })
}
export function withRpc<T>(y: Argv<T>): Argv<T & { rpc: string | undefined }> {
  return y.option('rpc', {
    type: 'string',
    describe: 'chain RPC URL (default: QUORATE_CHAIN_RPC, then http://127.0.0.1:26657)'
  })
}
export function withSigner<T>(
  y: Argv<T>
): Argv<T & { home: string | undefined; rpc: string | undefined; key: string | undefined; sync: boolean | undefined }> {
  return withRpc(withHome(y))
    .option('key', {
      type: 'string',
      describe:
        'signing key: a name under <home>/keys (default "default"; "node" = the agent\'s <home>/node.key) or a file path'
    })
    .option('sync', {
      type: 'boolean',
      describe: 'return once the tx is in the mempool instead of waiting for its block'
    })
}

export function keyPath(argv: HomeArgs & { key?: string }, name?: string): string {
  const k = name ?? argv.key ?? 'default'
  if (k.includes('/') || k.endsWith('.key')) return k
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(k))
    throw new InvalidInputError(`key name ${JSON.stringify(k)} must be 1–64 characters A-Z a-z 0-9 . _ -`)
  // "node" is the agent's identity, which the agent keeps at <home>/node.key
  if (k === 'node') return join(argv.home ?? defaultHome(), 'node.key')
  return join(argv.home ?? defaultHome(), 'keys', `${k}.key`)
}

export async function loadSigner(argv: SignArgs): Promise<ChainKey> {
  return await loadKeyFile(keyPath(argv), '--key')
}
export function client(argv: RpcArgs): ChainClient {
  return new ChainClient({ url: argv.rpc ?? defaultRpc() })
}

/** Signs, sends and reports one transaction. */
export async function sendAndReport<T extends TxType>(
  argv: SignArgs,
  type: T,
  body: TxBodies[T],
  what: string,
  extra: Record<string, unknown> = {}
): Promise<SendResult> {
  const key = await loadSigner(argv)
  const c = client(argv)
  try {
    progress(argv, `sending ${type} signed by ${key.peerId} to ${c.url.origin}…`)
    const r = await c.send(type, body, key, { wait: argv.sync === true ? 'sync' : 'commit' })
    emit(
      argv,
      { type, hash: r.hash, height: r.height, signer: key.peerId, ...extra },
      `${what}\n  tx ${r.hash}${r.height > 0 ? ` committed at height ${r.height}` : ' accepted into the mempool'}`
    )
    return r
  } finally {
    c.close()
  }
}

/** The quorum rules of a chain: its genesis committee size. */
const rulesOf = (g: Genesis): ReturnType<typeof createQuorumRules> =>
  createQuorumRules({ k: g.committeeSize ?? DEFAULT_COMMITTEE_SIZE })

interface InitArgs extends HomeArgs {
  chainId?: string
  verifier?: string[]
  genesisTime?: string
  committeeSize?: number
  insecureBootstrap?: boolean
}
const init: CommandModule<GlobalArgs, InitArgs> = {
  command: 'init',
  describe: 'create a new chain (genesis and validator key) in the home directory',
  builder: y =>
    withHome(y)
      .option('chain-id', { type: 'string', describe: 'chain id (default: quorate-<random>)' })
      .option('verifier', {
        type: 'string',
        array: true,
        describe: 'genesis verifier node id (libp2p peer id), certified forever; repeatable'
      })
      .option('genesis-time', { type: 'string', describe: 'RFC 3339 genesis time (default: now)' })
      .option('committee-size', { type: 'number', describe: 'committee size k (default 7)' })
      .option('insecure-bootstrap', {
        type: 'boolean',
        describe: 'allow fewer than 4 genesis verifiers (first committees then tolerate no liar)'
      }),
  handler: async argv => {
    const home = argv.home ?? defaultHome()
    let genesisTime: number | undefined
    if (argv.genesisTime !== undefined) {
      genesisTime = Date.parse(argv.genesisTime)
      if (!Number.isFinite(genesisTime))
        throw new InvalidInputError(`--genesis-time ${argv.genesisTime} is not an RFC 3339 time`)
    }
    checkGenesisVerifiers(argv.verifier ?? [], { insecureBootstrap: argv.insecureBootstrap })
    if (argv.insecureBootstrap === true && new Set(argv.verifier ?? []).size < 4)
      progress(
        argv,
        'WARNING: --insecure-bootstrap: fewer than 4 genesis verifiers; the first committees tolerate no liar'
      )
    const r = await initChainHome({
      home,
      chainId: argv.chainId,
      verifiers: argv.verifier,
      genesisTime,
      committeeSize: argv.committeeSize
    })
    emit(
      argv,
      {
        home,
        chainId: r.genesis.chainId,
        genesis: r.paths.genesis,
        validator: r.validatorPeerId,
        verifiers: r.genesis.verifiers,
        genesisTime: new Date(r.genesis.genesisTime).toISOString()
      },
      `created chain "${r.genesis.chainId}" in ${home}\n  genesis   ${r.paths.genesis}\n  validator ${r.validatorPeerId} (key ${r.paths.validatorKey}, mode 0600)\n  verifiers ${r.genesis.verifiers.length === 0 ? '(none)' : r.genesis.verifiers.join(', ')}\nstart it with: quorate chain start --home ${home}`
    )
  }
}

interface StartArgs extends HomeArgs {
  listen?: string
  rpc?: string
  blockInterval: number
  emptyBlockInterval: number
  engine: 'embedded' | 'cometbft'
}

/** One CometBFT validator (our ABCI app + a supervised cometbft) until interrupted or cometbft keeps dying. */
async function startCometbft(argv: StartArgs, home: string): Promise<void> {
  const genesis = await readGenesis(home)
  const v = await startCometValidator({
    home,
    rules: rulesOf(genesis),
    appraiser: createFaultAppraiser(),
    logger: createLogger('quorate:chain')
  })
  const info = v.abci.app.info()
  emit(
    argv,
    {
      rpc: v.rpc,
      chainId: v.chainId,
      height: info.height,
      appHash: info.appHash,
      home,
      abci: v.abci.address,
      log: join(home, 'cometbft.log'),
      engine: 'cometbft'
    },
    `chain "${v.chainId}": CometBFT validator in ${home}, app at height ${info.height}; RPC on ${v.rpc}, cometbft log ${join(home, 'cometbft.log')} (Ctrl-C to stop)`
  )
  const failure = await new Promise<Error | undefined>(resolve => {
    const stop = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve(undefined)
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    v.failed.then(resolve, resolve)
  })
  await v.stop()
  if (failure !== undefined) throw failure
  progress(argv, `stopped at height ${v.abci.app.info().height}`)
}

const start: CommandModule<GlobalArgs, StartArgs> = {
  command: 'start',
  describe: 'run the embedded validator: produce blocks and serve the CometBFT-style RPC until interrupted',
  builder: y =>
    withHome(y)
      .option('listen', {
        type: 'string',
        describe: 'RPC listen address host:port (default 127.0.0.1:26657; port 0 = pick a free one)'
      })
      // --rpc is the chain's URL in every other command; here it once meant the listen address
      .option('rpc', { type: 'string', hidden: true, deprecated: 'use --listen' })
      .option('block-interval', {
        type: 'number',
        default: 100,
        describe: 'ms to collect txs before a block (0 = at once)'
      })
      .option('empty-block-interval', { type: 'number', default: 1000, describe: 'ms between empty blocks when idle' })
      .option('engine', {
        choices: ['embedded', 'cometbft'] as const,
        default: 'embedded' as const,
        describe:
          'embedded: this process makes the blocks; cometbft: one validator of a CometBFT network (home from `chain testnet`; RPC and timings from its config.toml)'
      }) as unknown as Argv<StartArgs>,
  handler: async argv => {
    const home = argv.home ?? defaultHome()
    if (argv.engine === 'cometbft') {
      await startCometbft(argv, home)
      return
    }
    const genesis = await readGenesis(home)
    const logger = createLogger('quorate:chain')
    const v = await startEmbeddedValidator({
      home,
      rpc: argv.listen ?? argv.rpc ?? '127.0.0.1:26657',
      rules: rulesOf(genesis),
      appraiser: createFaultAppraiser(),
      blockIntervalMs: argv.blockInterval,
      emptyBlockIntervalMs: argv.emptyBlockInterval,
      logger
    })
    const info = v.app.info()
    emit(
      argv,
      { rpc: v.url, chainId: v.chainId, height: info.height, appHash: info.appHash, db: chainPaths(home).db },
      `chain "${v.chainId}" at height ${info.height}; RPC on ${v.url} (Ctrl-C to stop)`
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
    await v.stop()
    progress(argv, `stopped at height ${v.app.info().height}`)
  }
}

/**
 * The validator set (CometBFT's `validators`) and who is up: who signed the latest block's commit
 * (block_id_flag 2 in the commit for that height). Undefined on the embedded validator, whose RPC has no validator set.
 */
async function validatorSet(
  c: ChainClient,
  height: number
): Promise<Array<{ address: string; power: number; up: boolean }> | undefined> {
  let vs: { validators?: Array<{ address: string; voting_power: string }> }
  try {
    vs = await c.call('validators', { per_page: '100' })
  } catch {
    return undefined
  }
  // The commit for the latest height carries the signatures on that block itself (the block's own
  // last_commit is about its parent, and is empty at height 1).
  const b = await c.call<{
    signed_header?: { commit?: { signatures?: Array<{ block_id_flag: number; validator_address: string }> } }
  }>('commit', { height: String(height) })
  const signed = new Set(
    (b.signed_header?.commit?.signatures ?? []).filter(x => x.block_id_flag === 2).map(x => x.validator_address)
  )
  return (vs.validators ?? []).map(v => ({
    address: v.address,
    power: Number(v.voting_power),
    up: signed.has(v.address)
  }))
}

const status: CommandModule<GlobalArgs, RpcArgs> = {
  command: 'status',
  describe:
    'chain id, latest height, block and app hash; on CometBFT also the validator set and who signed the latest block',
  builder: y => withRpc(y),
  handler: async argv => {
    const c = client(argv)
    try {
      const s = await c.status()
      const validators = s.height >= 1 ? await validatorSet(c, s.height) : undefined
      const out = {
        ...s,
        time: new Date(s.time).toISOString(),
        appHash: toHex(s.appHash).toUpperCase(),
        blockHash: toHex(s.blockHash).toUpperCase(),
        rpc: c.url.origin,
        validators
      }
      const vsText =
        validators === undefined
          ? ''
          : `\n  validators (${validators.filter(v => v.up).length} of ${validators.length} signed the latest block):` +
            validators
              .map(
                v => `\n    ${v.address}  power ${v.power}  ${v.up ? 'up' : 'DOWN (no signature on the latest block)'}`
              )
              .join('')
      emit(
        argv,
        out,
        `chain "${s.chainId}" at height ${s.height} (${out.time})\n  block ${out.blockHash}\n  app   ${out.appHash}\n  node  ${s.nodeVersion} at ${out.rpc}${vsText}`
      )
    } finally {
      c.close()
    }
  }
}

interface TestnetArgs extends GlobalArgs {
  validators: number
  dir: string
  chainId?: string
  verifier?: string[]
  committeeSize?: number
  timeoutCommit: number
  host?: string[]
}
const testnet: CommandModule<GlobalArgs, TestnetArgs> = {
  command: 'testnet',
  describe:
    'write a CometBFT testnet: one home per validator (keys, config with its own ports, genesis carrying our app state); run each with `chain start --engine cometbft --home DIR/nodeI`',
  builder: y =>
    y
      .option('validators', { type: 'number', default: 4, describe: 'number of validators' })
      .option('dir', { type: 'string', demandOption: true, describe: 'new directory for the homes (node0, node1, …)' })
      .option('chain-id', { type: 'string', describe: 'chain id (default: quorate-<random>)' })
      .option('verifier', {
        type: 'string',
        array: true,
        describe: 'genesis verifier node id (libp2p peer id); repeatable'
      })
      .option('committee-size', { type: 'number', describe: 'committee size k (default 7)' })
      .option('timeout-commit', {
        type: 'number',
        default: 150,
        describe: 'ms after a block before the next height starts'
      })
      .option('host', {
        type: 'string',
        array: true,
        describe:
          'address each validator listens on and peers dial: one for all (default 127.0.0.1) or one per validator'
      }) as unknown as Argv<TestnetArgs>,
  handler: async argv => {
    const net = await writeTestnet({
      dir: argv.dir,
      validators: argv.validators,
      chainId: argv.chainId,
      verifiers: argv.verifier,
      committeeSize: argv.committeeSize,
      timeoutCommitMs: argv.timeoutCommit,
      hosts: argv.host
    })
    emit(
      argv,
      {
        chainId: net.chainId,
        validators: net.validators.map(v => ({ home: v.home, rpc: v.rpc, p2p: v.p2p, nodeId: v.nodeId }))
      },
      `wrote CometBFT testnet "${net.chainId}" with ${net.validators.length} validators:\n` +
        net.validators.map(v => `  ${v.home}  rpc ${v.rpc}  p2p ${v.p2p}`).join('\n') +
        `\nstart each with: quorate chain start --engine cometbft --home <home>`
    )
  }
}

const WHAT = [
  'info',
  'vendor',
  'refs',
  'firmware',
  'os',
  'ekcas',
  'node',
  'nodes',
  'candidates',
  'seed',
  'image',
  'qc',
  'account',
  'tx',
  'block',
  'key'
] as const
interface QueryArgs extends RpcArgs {
  what: (typeof WHAT)[number]
  arg?: string
  vendor?: string
  platform?: string
  os?: string
  name?: string
  digest?: string
  round?: number
  all?: boolean
  prove?: boolean
}
const query: CommandModule<GlobalArgs, QueryArgs> = {
  command: 'query <what> [arg]',
  describe:
    'read chain state: info | vendor NAME | refs | firmware VENDOR | os NAME | ekcas | node ID | nodes | candidates | seed ID | image NAME|DIGEST | qc ID | account PEERID|HEX | tx HASH | block [H] | key KEY',
  builder: y =>
    withRpc(y)
      .positional('what', { choices: WHAT, describe: 'what to read' })
      .positional('arg', { type: 'string', describe: 'name, node id, hash, … (see above)' })
      .option('vendor', { type: 'string' })
      .option('platform', { type: 'string' })
      .option('os', { type: 'string' })
      .option('round', { type: 'number' })
      .option('all', { type: 'boolean', describe: 'nodes: every registered node, not only certified ones' })
      .option('prove', {
        type: 'boolean',
        describe: 'key: fetch and check the inclusion proof against the latest app hash'
      }) as Argv<QueryArgs>,
  handler: async argv => {
    const c = client(argv)
    const need = (): string => {
      if (argv.arg === undefined) throw new InvalidInputError(`chain query ${argv.what} needs an argument`)
      return argv.arg
    }
    try {
      let r: unknown
      switch (argv.what) {
        case 'info':
          r = await c.query('/info')
          break
        case 'vendor':
          r = await c.vendor(need())
          break
        case 'refs':
          r = await c.referenceValues({ vendor: argv.vendor, platform: argv.platform, os: argv.os })
          break
        case 'firmware':
          r = await c.firmware(argv.arg ?? argv.vendor ?? need(), argv.platform)
          break
        case 'os':
          r = await c.os(argv.arg ?? argv.os ?? need())
          break
        case 'ekcas':
          r = await c.ekCas(argv.arg ?? argv.vendor)
          break
        case 'node':
          r = await c.node(need())
          break
        case 'nodes':
          r = await c.nodes(argv.all === true ? 'all' : 'certified')
          break
        case 'candidates':
          r = await c.candidates(argv.arg)
          break
        case 'seed':
          r = await c.seed(need(), argv.round)
          break
        case 'image': {
          const a = need()
          r = await c.images(a.startsWith('sha256:') ? { digest: a } : { name: a })
          break
        }
        case 'qc':
          r = await c.qc(need())
          break
        case 'account': {
          const a = need()
          r = { seq: await c.account(/^[0-9a-f]{64}$/i.test(a) ? fromHex(a) : peerIdToPublicKey(a)) }
          break
        }
        case 'tx':
          r = await c.tx(need())
          break
        case 'block':
          r = await c.block(argv.arg === undefined ? undefined : Number(argv.arg))
          break
        case 'key': {
          const k = need()
          if (argv.prove === true) {
            const p = await c.provenValue(k)
            r = p === undefined ? undefined : { ...p, decoded: tryDecode(p.value) }
          } else {
            const q = await c.abciQuery('/key', utf8.encode(k))
            r = q.value === undefined ? undefined : { value: q.value, height: q.height, decoded: tryDecode(q.value) }
          }
          break
        }
      }
      if (r === undefined)
        throw new InvalidInputError(`nothing found for ${argv.what}${argv.arg === undefined ? '' : ` ${argv.arg}`}`)
      emit(argv, r, () => renderTable(r))
    } finally {
      c.close()
    }
  }
}

function tryDecode(b: Uint8Array): unknown {
  try {
    return decode(b)
  } catch {
    return undefined
  }
}

interface ReplayArgs extends HomeArgs {}
const replay: CommandModule<GlobalArgs, ReplayArgs> = {
  command: 'replay',
  describe:
    're-execute the block log from genesis into a fresh state and compare every app hash (run with the chain stopped or live; reads a snapshot)',
  builder: y => withHome(y),
  handler: async argv => {
    const home = argv.home ?? defaultHome()
    const genesis = await readGenesis(home)
    const r = replayBlockLog({
      dbPath: chainPaths(home).db,
      genesis,
      rules: rulesOf(genesis),
      appraiser: createFaultAppraiser()
    })
    r.app.close()
    const out = { ok: r.ok, heights: r.heights, appHash: toHex(r.appHash).toUpperCase(), mismatches: r.mismatches }
    if (!r.ok) {
      emit(
        argv,
        out,
        `replay of ${r.heights} blocks FOUND ${r.mismatches.length} MISMATCH(ES):\n  ${r.mismatches.join('\n  ')}`
      )
      process.exitCode = 1
      return
    }
    emit(
      argv,
      out,
      `replayed ${r.heights} blocks from genesis: every header link and app hash matches (app hash ${out.appHash})`
    )
  }
}

const chain: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'chain <command>',
  describe: `the registry ledger (embedded validator, queries); tx types: ${TX_TYPES.join(', ')}`,
  builder: y => y.command([init, testnet, start, status, query, replay] as unknown as CommandModule[]).demandCommand(1),
  handler: () => {}
}

export default [chain]
