// One CometBFT validator: our ABCI app (chain/abci) in this process and a supervised `cometbft
// start` child talking to it over a Unix socket in the home. The child's output goes to
// <home>/cometbft.log. If the child dies, it is started again (1 s, 2 s, 4 s … 30 s apart); five
// deaths within five minutes stop the validator (e.g. CometBFT panics on an app hash mismatch:
// restarting would not help). stop(): SIGTERM to cometbft, SIGKILL after 10 s, then the app.
//
// Home = a CometBFT home (config/config.toml, config/genesis.json, keys, data/) plus our
// data/app.sqlite, data/abci.sock and data/validator.lock (one quorate process per home).
import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../../encoding/errors.ts'
import { silentLogger, type Logger } from '../../encoding/log.ts'
import { createChainApp } from '../app.ts'
import { startAbciServer, type AbciServer } from '../abci/server.ts'
import type { SeedConfig } from '../abci/seed.ts'
import { loadChainKey } from '../keys.ts'
import { fromBase64 } from '../../encoding/bytes.ts'
import { readGenesis, takeLock } from '../validator.ts'
import type { FaultAppraiser, QuorumRules } from '../types.ts'
import { cometbftBinary } from './binary.ts'
import { rpcUrlOf } from './testnet.ts'

export interface CometValidatorOptions {
  home: string
  rules: QuorumRules
  /** Re-appraisal for verifier.fault; without it fault proofs are refused. */
  appraiser?: FaultAppraiser
  logger?: Logger
  /** Restart cometbft when it dies (default true). */
  restart?: boolean
}

export interface CometValidator {
  readonly home: string
  readonly rpc: string
  readonly chainId: string
  readonly abci: AbciServer
  /** pid of the running cometbft child (undefined between restarts). */
  readonly cometPid: number | undefined
  /** Resolves when the validator stopped by itself (too many cometbft deaths), with the reason. */
  readonly failed: Promise<Error>
  stop(): Promise<void>
}

export function cometPaths(home: string): { db: string; socket: string; log: string; data: string } {
  return {
    data: join(home, 'data'),
    db: join(home, 'data', 'app.sqlite'),
    socket: join(home, 'data', 'abci.sock'),
    log: join(home, 'cometbft.log')
  }
}

/**
 * The vote-extension seed settings of a home: seed keys from genesis app_state.seed_keys, the
 * enable height from consensus_params.abci, this validator's key from config/seed.key. Undefined
 * when the genesis has no seed keys (the block hash is the seed input then).
 */
export async function seedConfig(home: string, chainId: string): Promise<SeedConfig | undefined> {
  const g = JSON.parse(await readFile(join(home, 'config', 'genesis.json'), 'utf8')) as {
    app_state?: { seed_keys?: Record<string, string> }
    consensus_params?: { abci?: { vote_extensions_enable_height?: string } }
  }
  const map = g.app_state?.seed_keys
  if (map === undefined) return undefined
  const keys = new Map<string, Uint8Array>()
  for (const [addr, k] of Object.entries(map)) {
    const pk = fromBase64(k, `genesis app_state.seed_keys.${addr}`)
    if (!/^[0-9A-Fa-f]{40}$/.test(addr) || pk.byteLength !== 32)
      throw new ConfigError(
        `genesis app_state.seed_keys: ${addr} must be a validator address (40 hex) with a 32-byte ed25519 key`
      )
    keys.set(addr.toUpperCase(), pk)
  }
  const enableHeight = Number(g.consensus_params?.abci?.vote_extensions_enable_height ?? '0')
  if (!Number.isSafeInteger(enableHeight) || enableHeight < 0)
    throw new ConfigError('genesis consensus_params.abci.vote_extensions_enable_height must be a non-negative integer')
  const keyFile = join(home, 'config', 'seed.key')
  const own = await access(keyFile).then(
    async () => await loadChainKey(keyFile),
    () => undefined
  )
  return { chainId, enableHeight, keys, own }
}

const STOP_GRACE_MS = 10_000
const MAX_DEATHS = 5
const DEATH_WINDOW_MS = 5 * 60_000

export async function startCometValidator(opts: CometValidatorOptions): Promise<CometValidator> {
  const log = opts.logger ?? silentLogger('quorate:chain:cometbft')
  const home = opts.home
  try {
    await access(join(home, 'config', 'config.toml'))
  } catch (err) {
    throw new ConfigError(
      `${home} is not a CometBFT home (no config/config.toml); write one with \`quorate chain testnet\``,
      { cause: err }
    )
  }
  const genesis = await readGenesis(home)
  const rpc = await rpcUrlOf(home)
  const bin = cometbftBinary()
  const paths = cometPaths(home)
  const lock = takeLock(paths.data)
  let abci: AbciServer
  try {
    abci = await startAbciServer({
      listen: paths.socket,
      seed: await seedConfig(home, genesis.chainId),
      openApp: () =>
        createChainApp({ path: paths.db, rules: opts.rules, appraiser: opts.appraiser, logger: log.child('app') }),
      logger: log.child('abci')
    })
    const info = abci.app.info()
    if (info.initialized && info.chainId !== genesis.chainId) {
      await abci.close()
      throw new ConfigError(`${paths.db} holds chain "${info.chainId}", genesis says "${genesis.chainId}"`)
    }
  } catch (err) {
    lock.release()
    throw err
  }

  let child: ChildProcess | undefined
  let stopping = false
  let timer: NodeJS.Timeout | undefined
  const deaths: number[] = []
  let reportFailure!: (e: Error) => void
  const failed = new Promise<Error>(resolve => {
    reportFailure = resolve
  })

  const launch = (): void => {
    const out = openSync(paths.log, 'a')
    try {
      child = spawn(bin, ['start', '--home', home, '--proxy_app', abci.address], { stdio: ['ignore', out, out] })
    } finally {
      closeSync(out)
    }
    const c = child
    log.info('cometbft started', { pid: c.pid, home })
    c.once('exit', (code, signal) => {
      if (child === c) child = undefined
      if (stopping) return
      const now = Date.now()
      deaths.push(now)
      while (deaths.length > 0 && deaths[0] < now - DEATH_WINDOW_MS) deaths.shift()
      log.error('cometbft exited', { code, signal, log: paths.log, deaths: deaths.length })
      if (opts.restart === false || deaths.length >= MAX_DEATHS) {
        reportFailure(
          new ConfigError(
            `cometbft exited (code ${code ?? 'none'}, signal ${signal ?? 'none'}) ${deaths.length} time(s) within ${DEATH_WINDOW_MS / 60_000} min; see ${paths.log}`
          )
        )
        return
      }
      const delay = Math.min(30_000, 1000 * 2 ** (deaths.length - 1))
      timer = setTimeout(() => {
        timer = undefined
        if (!stopping) launch()
      }, delay)
    })
  }
  launch()

  return {
    home,
    rpc,
    chainId: genesis.chainId,
    abci,
    get cometPid() {
      return child?.pid
    },
    failed,
    stop: async () => {
      stopping = true
      if (timer !== undefined) clearTimeout(timer)
      const c = child
      if (c !== undefined && c.exitCode === null && c.signalCode === null) {
        const exited = new Promise<void>(resolve => c.once('exit', () => resolve()))
        c.kill('SIGTERM')
        const kill = setTimeout(() => c.kill('SIGKILL'), STOP_GRACE_MS)
        await exited
        clearTimeout(kill)
      }
      await abci.close()
      lock.release()
    }
  }
}
