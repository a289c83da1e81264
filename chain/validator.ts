// The embedded validator (one machine, the default): a home directory with a CometBFT-like
// genesis and a validator key, the app + block store in one SQLite file (WAL), a block producer
// on a timer and the CometBFT-compatible RPC. For many machines the same ChainApp would be served
// to CometBFT over ABCI instead (a later issue).
//
// Home layout:  config/genesis.json · config/validator.key (libp2p protobuf, 0600) · data/chain.sqlite
import { mkdir, readFile, writeFile, access } from 'node:fs/promises'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { join } from 'node:path'
import { ConfigError } from '../encoding/errors.ts'
import { silentLogger, type Logger } from '../encoding/log.ts'
import { createChainApp, type ChainApp } from './app.ts'
import { genesisFromJson, genesisToJson } from './genesis.ts'
import { generateChainKey, loadChainKey, peerIdToPublicKey, saveChainKey, type ChainKey } from './keys.ts'
import { BlockProducer } from './producer.ts'
import { startRpcServer } from './rpc.ts'
import {
  CHAIN_ID_RE,
  DEFAULT_COMMITTEE_SIZE,
  type CertificationParams,
  type FaultAppraiser,
  type Genesis,
  type QuorumRules
} from './types.ts'

export function chainPaths(home: string): {
  genesis: string
  validatorKey: string
  db: string
  data: string
  config: string
} {
  return {
    config: join(home, 'config'),
    data: join(home, 'data'),
    genesis: join(home, 'config', 'genesis.json'),
    validatorKey: join(home, 'config', 'validator.key'),
    db: join(home, 'data', 'chain.sqlite')
  }
}

export interface InitChainHomeOptions {
  home: string
  chainId?: string
  /** Peer ids of genesis verifiers (treated as certified forever). */
  verifiers?: readonly string[]
  /** Unix ms; default now. */
  genesisTime?: number
  /** Committee size k (default 7). */
  committeeSize?: number
  /** Genesis certification parameters (defaults: DEFAULT_CERTIFICATION). */
  certification?: Partial<CertificationParams>
}

/** Creates a new chain in `home`: genesis.json and a fresh validator key. Refuses to overwrite. */
export async function initChainHome(
  opts: InitChainHomeOptions
): Promise<{ genesis: Genesis; validatorPeerId: string; paths: ReturnType<typeof chainPaths> }> {
  const paths = chainPaths(opts.home)
  try {
    await access(paths.genesis)
    throw new ConfigError(`${paths.genesis} already exists; this home already holds a chain`)
  } catch (err) {
    if (err instanceof ConfigError) throw err
  }
  for (const v of opts.verifiers ?? []) {
    try {
      peerIdToPublicKey(v)
    } catch (err) {
      throw new ConfigError(`genesis verifier ${v}: ${(err as Error).message}`)
    }
  }
  const key = await generateChainKey()
  await mkdir(paths.config, { recursive: true, mode: 0o700 })
  await mkdir(paths.data, { recursive: true, mode: 0o700 })
  await saveChainKey(paths.validatorKey, key)
  const genesis: Genesis = {
    chainId: opts.chainId ?? `quorate-${Math.random().toString(36).slice(2, 8)}`,
    genesisTime: opts.genesisTime ?? Date.now(),
    initialHeight: 1,
    validators: [key.publicKey],
    verifiers: [...new Set(opts.verifiers ?? [])].sort(),
    committeeSize: opts.committeeSize ?? DEFAULT_COMMITTEE_SIZE,
    ...(opts.certification === undefined ? {} : { certification: opts.certification })
  }
  if (!CHAIN_ID_RE.test(genesis.chainId)) throw new ConfigError('chain id must be 1–50 characters A-Z a-z 0-9 . _ -')
  await writeFile(paths.genesis, JSON.stringify(genesisToJson(genesis), null, 2) + '\n', { flag: 'wx' })
  return { genesis, validatorPeerId: key.peerId, paths }
}

export async function readGenesis(home: string): Promise<Genesis> {
  const p = chainPaths(home).genesis
  let text: string
  try {
    text = await readFile(p, 'utf8')
  } catch (err) {
    throw new ConfigError(`no chain in ${home} (missing ${p}); run \`quorate chain init --home ${home}\``, {
      cause: err
    })
  }
  let j: unknown
  try {
    j = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${p} is not JSON`, { cause: err })
  }
  return genesisFromJson(j, p)
}

/** SQLITE_BUSY: the lock database is locked by another connection (process). */
const SQLITE_BUSY = 5

/**
 * One validator per home: an exclusive lock on `data/validator.lock`, held for the validator's
 * life. A pid file cannot say whether its process lives: a killed validator stays a zombie until
 * its parent reaps it (kill(pid, 0) still succeeds), and a pid can be reused by another program.
 * A lock held by the kernel can: POSIX record locks belong to the process and are released when
 * it exits, however it exits, before it becomes a zombie. Node has no flock(2), so the lock is
 * taken through SQLite: a dedicated (empty) database in `locking_mode=EXCLUSIVE` keeps the
 * EXCLUSIVE lock its first write transaction takes until the connection closes. SQLite tracks
 * locks per inode within a process too, so a second validator in the same process is refused as
 * well. The pid file beside it only names the holder in the error; it decides nothing.
 */
export function takeLock(dataDir: string): { release(): void } {
  const path = join(dataDir, 'validator.lock')
  const pidFile = join(dataDir, 'validator.pid')
  let db: DatabaseSync | undefined
  try {
    db = new DatabaseSync(path, { timeout: 0 })
    db.exec('PRAGMA locking_mode=EXCLUSIVE')
    db.exec('BEGIN EXCLUSIVE')
    db.exec('COMMIT')
  } catch (err) {
    db?.close()
    if ((err as { errcode?: number }).errcode === SQLITE_BUSY) {
      let holder = ''
      try {
        holder = readFileSync(pidFile, 'utf8').trim()
      } catch {}
      const who = /^\d+$/.test(holder) ? ` (pid ${holder})` : ''
      throw new ConfigError(
        `another validator${who} is running on this home: it holds the lock ${path}; stop it first`,
        { cause: err }
      )
    }
    throw new ConfigError(`cannot take the validator lock ${path}: ${(err as Error).message}`, { cause: err })
  }
  writeFileSync(pidFile, `${process.pid}\n`)
  const lock = db
  return {
    release: () => {
      rmSync(pidFile, { force: true })
      lock.close()
    }
  }
}
export interface EmbeddedValidatorOptions {
  home: string
  /** RPC listen address, host:port (default 127.0.0.1:0 = ephemeral port). */
  rpc?: string
  rules: QuorumRules
  /** Re-appraisal for verifier.fault (agent/p2p createFaultAppraiser); without it fault proofs are refused. */
  appraiser?: FaultAppraiser
  /** Delay before a block once txs are pending (ms, default 100; 0 = next tick, for tests). */
  blockIntervalMs?: number
  /** Empty blocks when idle (ms, default 1000), so "the next block after a request" always comes. */
  emptyBlockIntervalMs?: number
  maxBlockTxs?: number
  /** checkTx of RPC submissions verifies signatures in libuv's thread pool (default true). */
  verifyOffThread?: boolean
  commitTimeoutMs?: number
  clock?: () => number
  logger?: Logger
}

export interface EmbeddedValidator {
  readonly url: string
  readonly port: number
  readonly chainId: string
  readonly app: ChainApp
  readonly producer: BlockProducer
  stop(): Promise<void>
}

export async function startEmbeddedValidator(opts: EmbeddedValidatorOptions): Promise<EmbeddedValidator> {
  const log = opts.logger ?? silentLogger('quorate:chain:validator')
  const genesis = await readGenesis(opts.home)
  const paths = chainPaths(opts.home)
  const key: ChainKey = await loadChainKey(paths.validatorKey)
  if (!genesis.validators.some(v => Buffer.from(v).equals(Buffer.from(key.publicKey))))
    throw new ConfigError(`${paths.validatorKey} is not a validator of this genesis`)
  await mkdir(paths.data, { recursive: true, mode: 0o700 })
  const lock = takeLock(paths.data)
  let app: ChainApp
  try {
    app = createChainApp({ path: paths.db, rules: opts.rules, appraiser: opts.appraiser, logger: log.child('app') })
  } catch (err) {
    // SQLite alone says "file is not a database" without naming the file; and the lock must go
    lock.release()
    throw new ConfigError(
      `cannot open the chain database ${paths.db}: ${(err as Error).message}; move it aside to start a new chain from genesis`,
      { cause: err }
    )
  }
  try {
    const info = app.info()
    if (!info.initialized) app.initChain(genesis)
    else if (info.chainId !== genesis.chainId)
      throw new ConfigError(`${paths.db} holds chain "${info.chainId}", genesis says "${genesis.chainId}"`)
  } catch (err) {
    app.close()
    lock.release()
    throw err
  }
  const producer = new BlockProducer({
    app,
    key,
    clock: opts.clock,
    maxBlockTxs: opts.maxBlockTxs,
    verifyOffThread: opts.verifyOffThread,
    logger: log.child('producer')
  })
  const fast = opts.blockIntervalMs ?? 100
  const slow = opts.emptyBlockIntervalMs ?? 1000
  let timer: NodeJS.Timeout | undefined
  let timerDue = Infinity
  let lastBlockAt = Date.now()
  let stopped = false
  let failed: Error | undefined

  const produce = (): void => {
    timer = undefined
    timerDue = Infinity
    if (stopped) return
    try {
      const b = producer.produce()
      lastBlockAt = Date.now()
      if (b.txs.length > 0) log.debug('block', { height: b.header.height, txs: b.txs.length })
    } catch (err) {
      // A failing commit (disk full, I/O error) must not be papered over: stop producing.
      failed = err as Error
      log.error('block production failed; the validator stops producing blocks', { err })
      return
    }
    schedule()
  }
  const schedule = (): void => {
    if (stopped || failed !== undefined) return
    const delay = producer.mempoolSize > 0 ? Math.max(0, lastBlockAt + fast - Date.now()) : slow
    const due = Date.now() + delay
    if (timer !== undefined && timerDue <= due) return
    if (timer !== undefined) clearTimeout(timer)
    timerDue = due
    timer = setTimeout(produce, delay)
  }
  let rpc: Awaited<ReturnType<typeof startRpcServer>>
  try {
    rpc = await startRpcServer({
      producer,
      listen: opts.rpc ?? '127.0.0.1:0',
      kick: schedule,
      commitTimeoutMs: opts.commitTimeoutMs,
      logger: log.child('rpc')
    })
  } catch (err) {
    app.close()
    lock.release()
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL')
      throw new ConfigError(
        `cannot serve the RPC on ${opts.rpc ?? '127.0.0.1:0'} (${code}); pick another --rpc address (port 0 = any free port)`,
        { cause: err }
      )
    throw err
  }
  schedule()
  log.info('embedded validator started', { chainId: genesis.chainId, rpc: rpc.url, height: app.info().height })
  return {
    url: rpc.url,
    port: rpc.port,
    chainId: genesis.chainId,
    app,
    producer,
    stop: async () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
      await rpc.close()
      app.close()
      lock.release()
    }
  }
}
