// A local CometBFT testnet: `cometbft testnet` makes the keys (validator and node keys), the
// genesis and one config per validator; we then give every node its own ports on one host,
// the persistent peers, our app state in the genesis and block timings for a registry (blocks as
// soon as txs wait, an empty block each second when idle, so "the block after a request" always
// comes). One home per validator: D/node0 … D/node{n-1}, each `quorate chain start --engine
// cometbft --home D/nodeI`.
import { execFile } from 'node:child_process'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ConfigError, InvalidInputError } from '../../encoding/errors.ts'
import { genesisToJson } from '../genesis.ts'
import { generateChainKey, peerIdToPublicKey, saveChainKey, type ChainKey } from '../keys.ts'
import { toBase64 } from '../../encoding/bytes.ts'
import { CHAIN_ID_RE, DEFAULT_COMMITTEE_SIZE, type Genesis } from '../types.ts'
import { cometbftBinary } from './binary.ts'
import { getTomlString, setTomlValues, tcpHostPort } from './config.ts'

const run = promisify(execFile)

export interface TestnetOptions {
  dir: string
  validators: number
  chainId?: string
  /** Genesis verifiers (peer ids). */
  verifiers?: readonly string[]
  committeeSize?: number
  /** Host each node listens on and peers dial: one for all (default 127.0.0.1) or one per validator. */
  hosts?: readonly string[]
  /** Ports (p2p, rpc) per node; default: free ports on the host now. */
  ports?: ReadonlyArray<{ p2p: number; rpc: number }>
  /** Wait after a block before the next height starts (ms, default 150). */
  timeoutCommitMs?: number
  /** Empty block interval when no tx waits (ms, default 1000). */
  emptyBlocksIntervalMs?: number
  /** Largest block (bytes, default 4 MiB). */
  maxBlockBytes?: number
}

export interface TestnetValidator {
  home: string
  rpc: string
  p2p: string
  nodeId: string
  moniker: string
}
export interface Testnet {
  chainId: string
  validators: TestnetValidator[]
}

async function freePort(host: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, host, () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

/** CometBFT's duration syntax. */
const dur = (ms: number): string => `${ms}ms`

export async function writeTestnet(opts: TestnetOptions): Promise<Testnet> {
  const n = opts.validators
  if (!Number.isSafeInteger(n) || n < 1 || n > 64) throw new InvalidInputError('--validators must be an integer 1–64')
  const chainId = opts.chainId ?? `quorate-${Math.random().toString(36).slice(2, 8)}`
  if (!CHAIN_ID_RE.test(chainId)) throw new InvalidInputError('chain id must be 1–50 characters A-Z a-z 0-9 . _ -')
  for (const v of opts.verifiers ?? []) {
    try {
      peerIdToPublicKey(v)
    } catch (err) {
      throw new InvalidInputError(`genesis verifier ${v}: ${(err as Error).message}`)
    }
  }
  if (opts.hosts !== undefined && opts.hosts.length !== 1 && opts.hosts.length !== n)
    throw new InvalidInputError(`give one host or one per validator (${n}), not ${opts.hosts.length}`)
  const hostOf = (i: number): string => opts.hosts?.[opts.hosts.length === 1 ? 0 : i] ?? '127.0.0.1'
  await mkdir(opts.dir, { recursive: true })
  if ((await readdir(opts.dir)).length > 0)
    throw new ConfigError(`${opts.dir} is not empty; a testnet is written into a new directory`)
  const bin = cometbftBinary()
  try {
    await run(bin, ['testnet', '--v', String(n), '--o', opts.dir, '--starting-ip-address', '127.0.0.1'], {
      timeout: 60_000
    })
  } catch (err) {
    throw new ConfigError(`cometbft testnet failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, {
      cause: err
    })
  }

  const ports =
    opts.ports ??
    (await Promise.all(
      Array.from({ length: n }, async (_, i) => ({ p2p: await freePort(hostOf(i)), rpc: await freePort(hostOf(i)) }))
    ))
  if (ports.length !== n) throw new InvalidInputError(`give ports for each of the ${n} validators`)
  const homes = Array.from({ length: n }, (_, i) => join(opts.dir, `node${i}`))
  // node ids in validator order, from the peer list `cometbft testnet` wrote (id@ip:port, node0 first)
  const peers =
    getTomlString(await readFile(join(homes[0], 'config', 'config.toml'), 'utf8'), 'p2p', 'persistent_peers') ?? ''
  const ids = peers.split(',').map(p => p.split('@')[0])
  if (ids.length !== n || !ids.every(id => /^[0-9a-f]{40}$/.test(id)))
    throw new ConfigError(`unexpected persistent_peers from cometbft testnet: ${peers}`)

  const genesisPath = (h: string): string => join(h, 'config', 'genesis.json')
  const g = JSON.parse(await readFile(genesisPath(homes[0]), 'utf8')) as Record<string, unknown>
  const ours: Genesis = {
    chainId,
    genesisTime: Date.now(),
    initialHeight: 1,
    validators: [],
    verifiers: [...new Set(opts.verifiers ?? [])].sort(),
    committeeSize: opts.committeeSize ?? DEFAULT_COMMITTEE_SIZE
  }
  g.chain_id = chainId
  g.initial_height = '1'
  // one seed key per validator (chain/abci/seed.ts): its vote extensions feed the committee seed
  const gvs = g.validators as Array<{ address: string; name: string }>
  const seedKeys: ChainKey[] = []
  const seedMap: Record<string, string> = {}
  for (let i = 0; i < n; i++) {
    const v = gvs.find(x => x.name === `node${i}`)
    if (v === undefined) throw new ConfigError(`cometbft testnet wrote no validator named node${i}`)
    const k = await generateChainKey()
    seedKeys.push(k)
    seedMap[v.address.toUpperCase()] = toBase64(k.publicKey)
  }
  g.app_state = { ...(genesisToJson(ours).app_state as Record<string, unknown>), seed_keys: seedMap }
  const params = g.consensus_params as { block: { max_bytes: string }; abci: { vote_extensions_enable_height: string } }
  params.block.max_bytes = String(opts.maxBlockBytes ?? 4 * 1024 * 1024)
  params.abci.vote_extensions_enable_height = '1'
  const genesisText = JSON.stringify(g, null, 2) + '\n'

  const validators: TestnetValidator[] = []
  for (let i = 0; i < n; i++) {
    const home = homes[i]
    const host = hostOf(i)
    const peerList = ids
      .map((id, j) => `${id}@${hostOf(j)}:${ports[j].p2p}`)
      .filter((_, j) => j !== i)
      .join(',')
    const cfgPath = join(home, 'config', 'config.toml')
    const text = setTomlValues(await readFile(cfgPath, 'utf8'), {
      '': {
        moniker: `node${i}`,
        proxy_app: `unix://${join(home, 'data', 'abci.sock')}`,
        log_level: 'main:info,state:info,*:error'
      },
      rpc: {
        laddr: `tcp://${host}:${ports[i].rpc}`,
        max_subscription_clients: 1000,
        max_subscriptions_per_client: 1000,
        timeout_broadcast_tx_commit: '30s'
      },
      p2p: {
        laddr: `tcp://${host}:${ports[i].p2p}`,
        external_address: `${host}:${ports[i].p2p}`,
        persistent_peers: peerList,
        addr_book_strict: false,
        allow_duplicate_ip: true,
        pex: false,
        flush_throttle_timeout: '10ms',
        send_rate: 52428800,
        recv_rate: 52428800
      },
      mempool: { size: 50000, cache_size: 100000 },
      consensus: {
        timeout_propose: '2s',
        timeout_prevote: '1s',
        timeout_precommit: '1s',
        timeout_commit: dur(opts.timeoutCommitMs ?? 150),
        create_empty_blocks: true,
        create_empty_blocks_interval: dur(opts.emptyBlocksIntervalMs ?? 1000),
        peer_gossip_sleep_duration: '20ms'
      }
    })
    await writeFile(cfgPath, text)
    await writeFile(genesisPath(home), genesisText)
    await saveChainKey(join(home, 'config', 'seed.key'), seedKeys[i])
    validators.push({
      home,
      rpc: `http://${host}:${ports[i].rpc}`,
      p2p: `${host}:${ports[i].p2p}`,
      nodeId: ids[i],
      moniker: `node${i}`
    })
  }
  return { chainId, validators }
}

/** The RPC URL a CometBFT home serves (from its config.toml). */
export async function rpcUrlOf(home: string): Promise<string> {
  const text = await readFile(join(home, 'config', 'config.toml'), 'utf8').catch((err: unknown) => {
    throw new ConfigError(`${home} is not a CometBFT home (no config/config.toml)`, { cause: err })
  })
  const laddr = getTomlString(text, 'rpc', 'laddr')
  if (laddr === undefined) throw new ConfigError(`${home}/config/config.toml has no [rpc] laddr`)
  const { host, port } = tcpHostPort(laddr)
  return `http://${host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${port}`
}
