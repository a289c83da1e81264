// `quorate up` / `quorate down` — a persistent local network in one directory, every part its own
// background process: the embedded chain validator, one swtpm per agent (an INSECURE software TPM
// with an EK certificate from the directory's local TPM vendor CA), and the agents (`quorate node
// start`, replaying the bundled OVMF measured boot). Vendors, reference values and the demo's
// small HTTP image (`demo/hello`) are published on the first run.
//
//   D/localnet.json            what was made: chain id, ports, nodes (read again on resume)
//   D/localnet.lock            held (kernel lock) by the `up` or `down` working on D
//   D/chain/                   chain home; data/validator.lock is held by the running validator
//   D/chain.log                the validator's output
//   D/keys/                    the TPM vendor's, the firmware vendor's, the operator's and the tenant's keys
//   D/tpm-ca/                  the TPM vendor's CA (issues every swtpm's EK certificates)
//   D/node-N/                  agent home (node.key, ipfs, …); agent.log, agent.pid
//   D/node-N/tpm/              the swtpm: state, swtpm.log, swtpm.pid
//
// Liveness: the validator is up while someone holds its lock (released by the kernel however it
// ends); an agent or swtpm is up while its pid file names a live process (not a zombie) whose
// command line names its directory, so a reused pid is not mistaken for it. Re-running `up`
// starts whatever is not up, on the same chain, keys and TPM state; `down` stops what is up.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DatabaseSync } from 'node:sqlite'
import type { ChildProcess } from 'node:child_process'
import { startSwtpm, createSwtpmCa } from '../attestation/tpm/simulator.ts'
import { SAMPLE_BOOT_LOG, sampleBootLog } from '../attestation/samples/index.ts'
import { ChainClient, generateChainKey, loadChainKey, saveChainKey, type ChainKey } from '../chain/index.ts'
import { chainPaths, initChainHome } from '../chain/validator.ts'
import { chainImagePublisher, createImageStore, publishImage } from '../containers/index.ts'
import { ConfigError, QuorateError, TransientError } from '../encoding/errors.ts'
import { spawnClean } from '../encoding/process.ts'
import { freePort, helloImage, OS_NAME, PLATFORM, publishTrustAnchors } from './demo.ts'

/** Genesis verifiers: each is certified by the other four, so no committee has fewer than 4 members (3f + 1, f = 1). */
export const GENESIS_VERIFIERS = 5
/** Fewest agents `up` makes: the genesis verifiers. */
export const MIN_AGENTS = GENESIS_VERIFIERS
/** Default: the genesis verifiers and one node that joins through a committee of them. */
export const DEFAULT_AGENTS = GENESIS_VERIFIERS + 1
export const LOCALNET_IMAGE = 'demo/hello'
/** Its page (its own body, so its image ID is not the one-process demo's, which removes its image when done). */
export const LOCALNET_PAGE = 'hello from demo/hello on a quorate local network\n'
const COMMITTEE_SIZE = 7
const LOCALNET_ROUND_DEADLINE_BLOCKS = 80
const STATE_VERSION = 1

/** A process `up` starts or `down` stops could not be made to. */
export class LocalnetError extends QuorateError {
  override readonly code: string = 'ERR_LOCALNET'
}

interface NodeState {
  name: string
  httpPort: number
  tpmPort: number
}
interface State {
  version: number
  chainId: string
  rpcPort: number
  nodes: NodeState[]
}

export interface LocalnetNode {
  name: string
  nodeId: string
  http: string
  certified: boolean
  /** Lifecycle state from the agent's /status (or "down"). */
  state: string
  pid?: number
  log: string
}

export interface LocalnetStatus {
  dir: string
  rpc: string
  chain: { pid?: number; log: string; height?: number }
  nodes: LocalnetNode[]
  /** What this run started (empty when everything was up already). */
  started: string[]
}

export interface UpOptions {
  readonly dir: string
  /** Agents; default DEFAULT_AGENTS on a new network, the existing count on resume (more adds joiners). */
  readonly agents?: number
  /** How long to wait for every node to be certified (ms, default 180 s). */
  readonly timeoutMs?: number
  readonly say: (line: string) => void
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const CLI_MAIN = join(ROOT, 'cli', 'main.ts')

const paths = (
  dir: string
): { state: string; lock: string; chain: string; chainLog: string; keys: string; ca: string } => ({
  state: join(dir, 'localnet.json'),
  lock: join(dir, 'localnet.lock'),
  chain: join(dir, 'chain'),
  chainLog: join(dir, 'chain.log'),
  keys: join(dir, 'keys'),
  ca: join(dir, 'tpm-ca')
})
const nodePaths = (
  dir: string,
  name: string
): { home: string; log: string; pid: string; tpm: string; tpmPid: string; tpmState: string } => {
  const home = join(dir, name)
  return {
    home,
    log: join(home, 'agent.log'),
    pid: join(home, 'agent.pid'),
    tpm: join(home, 'tpm'),
    tpmPid: join(home, 'tpm', 'swtpm.pid'),
    tpmState: join(home, 'tpm', 'state')
  }
}

// ---- locks and liveness -------------------------------------------------------------------------

/**
 * An exclusive lock the kernel drops when its holder ends (a POSIX record lock, taken through
 * SQLite as chain/validator.ts takeLock does); undefined when another process holds it.
 */
function tryLock(path: string): { release(): void } | undefined {
  const db = new DatabaseSync(path, { timeout: 0 })
  try {
    db.exec('PRAGMA locking_mode=EXCLUSIVE')
    db.exec('BEGIN EXCLUSIVE')
    db.exec('COMMIT')
  } catch (err) {
    db.close()
    if ((err as { errcode?: number }).errcode === 5) return undefined // SQLITE_BUSY
    throw new LocalnetError(`cannot take the lock ${path}: ${(err as Error).message}`, { cause: err })
  }
  return {
    release: () => {
      db.close()
    }
  }
}

/** The validator holds data/validator.lock while it runs: probe it (and release at once). */
function chainRunning(dir: string): boolean {
  const data = chainPaths(paths(dir).chain).data
  if (!existsSync(join(data, 'validator.lock'))) return false
  const l = tryLock(join(data, 'validator.lock'))
  if (l === undefined) return true
  l.release()
  return false
}

function chainPid(dir: string): number | undefined {
  const n = Number(readText(join(chainPaths(paths(dir).chain).data, 'validator.pid')))
  return Number.isInteger(n) && n > 0 ? n : undefined
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch {
    return ''
  }
}

/** A live process (not a zombie) whose command line contains `mark`. */
function alive(pid: number | undefined, mark: string): boolean {
  if (pid === undefined) return false
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(mark)
  } catch {
    return false
  }
}

function pidIn(file: string): number | undefined {
  const n = Number(readText(file))
  return Number.isInteger(n) && n > 0 ? n : undefined
}

// ---- processes ----------------------------------------------------------------------------------

/** Starts a detached process (own session, stdin closed, only stdout/stderr into `log`). */
function launch(
  command: string,
  args: readonly string[],
  log: string,
  env: NodeJS.ProcessEnv = process.env
): ChildProcess {
  mkdirSync(dirname(log), { recursive: true })
  const fd = openSync(log, 'a')
  try {
    const child = spawnClean(command, args, { detached: true, stdio: ['ignore', fd, fd], env })
    child.unref()
    return child
  } finally {
    closeSync(fd)
  }
}

/** Resolves when `ready` says so; rejects when the process exits first or the time is up. */
async function waitFor(
  what: string,
  log: string,
  child: ChildProcess,
  ready: () => Promise<boolean>,
  timeoutMs: number
): Promise<void> {
  let exited: string | undefined
  child.once('exit', (code, sig) => {
    exited = sig !== null ? `signal ${sig}` : `exit ${String(code)}`
  })
  child.once('error', err => {
    exited = err.message
  })
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (exited !== undefined)
      throw new LocalnetError(`${what} ended during start (${exited}); read ${log}:\n${tail(log)}`)
    if (await ready()) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new LocalnetError(
    `${what} did not come up within ${Math.round(timeoutMs / 1000)} s; read ${log}:\n${tail(log)}`
  )
}

function tail(log: string, lines = 8): string {
  return readText(log)
    .split('\n')
    .slice(-lines)
    .map(l => `  | ${l}`)
    .join('\n')
}

async function tcpOpen(port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => {
      resolve(false)
    })
  })
}

const quorateArgs = (args: string[]): string[] => ['--no-warnings=ExperimentalWarning', CLI_MAIN, ...args]
const childEnv = (): NodeJS.ProcessEnv => {
  // every setting is given as a flag: an operator's QUORATE_* must not redirect these processes
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('QUORATE_') || k === 'QUORATE_LOG' || k === 'QUORATE_LOG_LEVEL') env[k] = v
  return env
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function terminate(pid: number, mark: string, graceMs: number): Promise<'stopped' | 'killed'> {
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return 'stopped'
  }
  const end = Date.now() + graceMs
  while (Date.now() < end) {
    if (!alive(pid, mark)) return 'stopped'
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  try {
    process.kill(pid, 'SIGKILL')
  } catch {}
  // SIGKILL ends a process unless it is stuck in the kernel (uninterruptible I/O): say so then
  const killEnd = Date.now() + 5000
  while (alive(pid, mark)) {
    if (Date.now() > killEnd)
      throw new LocalnetError(
        `process ${pid} (${mark}) survives SIGKILL; it is stuck in the kernel — see /proc/${pid}/stack`
      )
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return 'killed'
}

// ---- state --------------------------------------------------------------------------------------

function readState(dir: string): State | undefined {
  const p = paths(dir).state
  if (!existsSync(p)) return undefined
  let s: State
  try {
    s = JSON.parse(readFileSync(p, 'utf8')) as State
  } catch (err) {
    throw new ConfigError(`${p} is not a local network's state (${(err as Error).message}); use another --dir`, {
      cause: err
    })
  }
  if (s.version !== STATE_VERSION || !Array.isArray(s.nodes))
    throw new ConfigError(
      `${p}: not a local network this quorate made (version ${String(s.version)}); use another --dir`
    )
  return s
}

function writeState(dir: string, s: State): void {
  const p = paths(dir).state
  // whole or not at all: a crash mid-write must not leave half a state file
  writeFileSync(`${p}.tmp`, JSON.stringify(s, null, 2) + '\n')
  renameSync(`${p}.tmp`, p)
}

async function keyAt(path: string): Promise<ChainKey> {
  if (existsSync(path)) return await loadChainKey(path)
  const k = await generateChainKey()
  await saveChainKey(path, k)
  return k
}

function withDirLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true })
  const lock = tryLock(paths(dir).lock)
  if (lock === undefined)
    throw new LocalnetError(
      `another \`quorate up\` or \`quorate down\` is working on ${dir} right now; wait for it to finish`
    )
  return fn().finally(() => {
    lock.release()
  })
}

/**
 * A round whose committee members are not up yet (the agents of a resumed network start one after
 * the other) stays open until its deadline: 300 blocks by default, 75 s of this network's empty
 * blocks. 80 blocks still leave a round at least 20 s.
 */
function shortenRoundDeadline(genesisFile: string): void {
  const g = JSON.parse(readFileSync(genesisFile, 'utf8')) as { app_state?: { certification?: Record<string, unknown> } }
  if (g.app_state?.certification === undefined)
    throw new LocalnetError(`${genesisFile} has no certification parameters to set`)
  g.app_state.certification.round_deadline_blocks = LOCALNET_ROUND_DEADLINE_BLOCKS
  writeFileSync(genesisFile, JSON.stringify(g, null, 2) + '\n')
}

// ---- up -----------------------------------------------------------------------------------------

/** Creates (first run) or resumes the local network in `o.dir`; resolves once every node is certified. */
export async function up(o: UpOptions): Promise<LocalnetStatus> {
  if (o.agents !== undefined && (!Number.isInteger(o.agents) || o.agents < MIN_AGENTS || o.agents > 32)) {
    throw new ConfigError(
      `--agents must be ${MIN_AGENTS}–32: ${GENESIS_VERIFIERS} genesis verifiers certify each other in committees of 4, and more agents join through them`
    )
  }
  return await withDirLock(o.dir, async () => await upLocked(o))
}

async function upLocked(o: UpOptions): Promise<LocalnetStatus> {
  const { dir, say } = o
  const p = paths(dir)
  const started: string[] = []
  let state = readState(dir)
  if (state !== undefined && o.agents !== undefined && o.agents < state.nodes.length) {
    throw new ConfigError(
      `${dir} holds a network of ${state.nodes.length} agents; it cannot shrink to ${o.agents} (quorate down --dir ${dir}, then remove the directory for a new one)`
    )
  }
  if (state === undefined) {
    if (existsSync(p.chain))
      throw new ConfigError(
        `${dir} holds a chain but no localnet.json: not a network \`quorate up\` made; choose another --dir`
      )
    const n = o.agents ?? DEFAULT_AGENTS
    say(
      `new local network in ${dir}: a chain, ${n} agents (${GENESIS_VERIFIERS} genesis verifiers), ${n} software TPMs`
    )
    const nodes: NodeState[] = []
    for (let i = 1; i <= n; i++) nodes.push({ name: `node-${i}`, httpPort: await freePort(), tpmPort: 0 })
    state = { version: STATE_VERSION, chainId: 'quorate-local', rpcPort: await freePort(), nodes }
    writeState(dir, state)
  } else if (o.agents !== undefined && o.agents > state.nodes.length) {
    for (let i = state.nodes.length + 1; i <= o.agents; i++)
      state.nodes.push({ name: `node-${i}`, httpPort: await freePort(), tpmPort: 0 })
    writeState(dir, state)
    say(`growing the network in ${dir} to ${state.nodes.length} agents (the new ones join through committees)`)
  } else {
    say(`resuming the local network in ${dir}`)
  }
  const rpc = `http://127.0.0.1:${state.rpcPort}`
  // node keys first: the genesis names the first agents as its verifiers (also completes a first
  // run that ended before its chain was made)
  const ids: string[] = []
  for (const n of state.nodes) ids.push((await keyAt(join(nodePaths(dir, n.name).home, 'node.key'))).peerId)
  if (!existsSync(chainPaths(p.chain).genesis)) {
    const made = await initChainHome({
      home: p.chain,
      chainId: state.chainId,
      verifiers: ids.slice(0, GENESIS_VERIFIERS),
      committeeSize: COMMITTEE_SIZE
    })
    shortenRoundDeadline(made.paths.genesis)
  }

  // 1. the chain
  if (!chainRunning(dir)) {
    if (!(await portFree(state.rpcPort))) {
      throw new LocalnetError(
        `the chain's RPC port ${state.rpcPort} is taken by another program; free it (or quorate down --dir ${dir} and remove ${dir} for a new network)`
      )
    }
    const child = launch(
      process.execPath,
      quorateArgs([
        'chain',
        'start',
        '--home',
        p.chain,
        '--listen',
        `127.0.0.1:${state.rpcPort}`,
        '--block-interval',
        '20',
        '--empty-block-interval',
        '250'
      ]),
      p.chainLog,
      childEnv()
    )
    const c = new ChainClient({ url: rpc })
    try {
      await waitFor(
        'the chain',
        p.chainLog,
        child,
        async () =>
          await c.status().then(
            () => true,
            () => false
          ),
        60_000
      )
    } finally {
      c.close()
    }
    started.push(`chain (pid ${child.pid ?? '?'})`)
    say(`chain      started: RPC ${rpc} (log ${p.chainLog})`)
  } else {
    say(`chain      running: RPC ${rpc}`)
  }

  // 2. vendors, reference values and the tenant image: once (what is on chain is not published again)
  const chain = new ChainClient({ url: rpc })
  try {
    const ca = createSwtpmCa(p.ca)
    if ((await chain.os(OS_NAME)).length === 0 || (await chain.ekCas()).length === 0) {
      await publishTrustAnchors(chain, { caPems: ca.pems, bootLog: sampleBootLog() })
      say(
        `published  TPM vendor EK CA, firmware ovmf/q35-smp2 and OS ${OS_NAME} reference values (the bundled OVMF measured boot)`
      )
    }
    if ((await chain.images({ name: LOCALNET_IMAGE })).length === 0) {
      const first = state.nodes[0]
      const np = nodePaths(dir, first.name)
      if (alive(pidIn(np.pid), np.home)) {
        say(
          `WARNING: ${LOCALNET_IMAGE} is not on chain and ${first.name} is running; not publishing it now (quorate down, then up)`
        )
      } else {
        const tenant = await keyAt(join(p.keys, 'tenant.key'))
        const store = await createImageStore({ dir: join(np.home, 'ipfs'), listen: [] })
        try {
          const pub = await publishImage(
            store,
            chainImagePublisher(async body => await chain.send('image.publish', body, tenant)),
            { source: helloImage(LOCALNET_PAGE).tar, name: LOCALNET_IMAGE }
          )
          say(`published  ${LOCALNET_IMAGE} (CID ${pub.cid}) into ${first.name}'s IPFS store and on chain`)
        } finally {
          await store.stop()
        }
      }
    }
  } finally {
    chain.close()
  }

  // 3. TPMs, then agents: a node whose TPM is down is restarted whole (its TPM reset is a reboot).
  //    The agents start back to back, so that a first round finds its committee members up (a
  //    round whose members are still starting stays open until its deadline).
  const toStart: NodeState[] = []
  for (const n of state.nodes) {
    const np = nodePaths(dir, n.name)
    const agentUp = alive(pidIn(np.pid), np.home)
    const tpmUp = alive(pidIn(np.tpmPid), np.tpmState)
    if (agentUp && tpmUp) continue
    if (agentUp) {
      say(`${n.name.padEnd(10)} its TPM is down: stopping the agent to restart both`)
      await terminate(pidIn(np.pid) as number, np.home, 15_000)
    }
    if (!tpmUp) {
      if (!existsSync(join(np.tpmState, 'tpm2-00.permall'))) {
        // manufacture once (EK certificates from the network's TPM vendor CA); served below
        const sw = await startSwtpm({ dir: np.tpm, caDir: p.ca })
        await sw.stop()
      }
      if (n.tpmPort === 0 || !(await portFree(n.tpmPort)) || !(await portFree(n.tpmPort + 1)))
        n.tpmPort = await freePortPair()
      const sw = launch(
        'swtpm',
        [
          'socket',
          '--tpm2',
          '--tpmstate',
          `dir=${np.tpmState}`,
          '--server',
          `type=tcp,port=${n.tpmPort},bindaddr=127.0.0.1`,
          '--ctrl',
          `type=tcp,port=${n.tpmPort + 1},bindaddr=127.0.0.1`,
          '--flags',
          'startup-clear'
        ],
        join(np.tpm, 'swtpm.log')
      )
      writeFileSync(np.tpmPid, `${sw.pid ?? ''}\n`)
      await waitFor(`${n.name}'s swtpm`, join(np.tpm, 'swtpm.log'), sw, async () => await tcpOpen(n.tpmPort), 20_000)
      started.push(`${n.name} swtpm (pid ${sw.pid ?? '?'})`)
    }
    if (!(await portFree(n.httpPort))) n.httpPort = await freePort()
    toStart.push(n)
  }
  writeState(dir, state)
  const children: Array<{ name: string; child: ChildProcess }> = []
  const exits = new Map<string, string>()
  const startAgent = (n: (typeof state.nodes)[number]): void => {
    const np = nodePaths(dir, n.name)
    const args = [
      'node',
      'start',
      '--home',
      np.home,
      '--tcti',
      `swtpm:host=127.0.0.1,port=${n.tpmPort}`,
      '--rpc',
      rpc,
      '--http',
      `127.0.0.1:${n.httpPort}`,
      '--platform',
      PLATFORM,
      '--os',
      OS_NAME,
      '--simulate-boot',
      SAMPLE_BOOT_LOG,
      '--committee-size',
      String(COMMITTEE_SIZE)
    ]
    const child = launch(process.execPath, quorateArgs(args), np.log, childEnv())
    writeFileSync(np.pid, `${child.pid ?? ''}\n`)
    children.push({ name: n.name, child })
    exits.delete(n.name)
    child.once('exit', (code, sig) => {
      exits.set(n.name, sig !== null ? `signal ${sig}` : `exit ${String(code)}`)
    })
    started.push(`${n.name} agent (pid ${child.pid ?? '?'})`)
    say(
      `${n.name.padEnd(10)} agent started${state.nodes.indexOf(n) < GENESIS_VERIFIERS ? ' (genesis verifier)' : ''}: http://127.0.0.1:${n.httpPort} (log ${np.log})`
    )
  }
  for (const n of toStart) startAgent(n)

  // 4. wait until every node is certified
  const timeoutMs = o.timeoutMs ?? 180_000
  if (children.length > 0)
    say(
      `waiting for ${state.nodes.length} nodes to be certified by their committees (up to ${Math.round(timeoutMs / 1000)} s) …`
    )
  const portRetries = new Map<string, number>()
  const end = Date.now() + timeoutMs
  const reported = new Set<string>()
  for (;;) {
    const st = await status(dir, state)
    for (const n of st.nodes) {
      if (n.certified && !reported.has(n.name)) {
        reported.add(n.name)
        say(`${n.name.padEnd(10)} CERTIFIED (${n.nodeId})`)
      }
      const ended = exits.get(n.name)
      if (ended !== undefined) {
        // its HTTP port was free when chosen but another program took it before the agent bound
        // it (ephemeral ports are shared with every outgoing connection): a new port, up to 3 times
        const node = state.nodes.find(x => x.name === n.name)
        const tries = portRetries.get(n.name) ?? 0
        if (node !== undefined && tries < 3 && tail(n.log).includes('EADDRINUSE')) {
          portRetries.set(n.name, tries + 1)
          node.httpPort = await freePort()
          writeState(dir, state)
          say(`${n.name.padEnd(10)} its HTTP port was taken meanwhile; starting it again on ${node.httpPort}`)
          startAgent(node)
          continue
        }
        throw new LocalnetError(`${n.name}'s agent ended (${ended}); read ${n.log}:\n${tail(n.log)}`)
      }
    }
    if (st.nodes.every(n => n.certified)) return { ...st, started }
    if (Date.now() > end) {
      const waiting = st.nodes.filter(n => !n.certified)
      throw new TransientError(
        `not certified after ${Math.round(timeoutMs / 1000)} s: ${waiting.map(n => `${n.name} (${n.state})`).join(', ')}; read ${waiting.map(n => n.log).join(', ')}; \`quorate up --dir ${dir}\` again resumes`
      )
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
}

async function portFree(port: number): Promise<boolean> {
  return !(await tcpOpen(port))
}

async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort()
    if (p < 65535 && (await portFree(p + 1))) return p
  }
  throw new TransientError('no two consecutive free TCP ports on 127.0.0.1 for a swtpm')
}

interface AgentStatusView {
  nodeId?: string
  state?: { kind?: string; reason?: string }
}

/** What runs in `dir` and whether each node is certified (from its agent's /status). */
export async function status(dir: string, state: State | undefined = readState(dir)): Promise<LocalnetStatus> {
  if (state === undefined)
    throw new ConfigError(`no local network in ${dir} (no localnet.json); start one with quorate up --dir ${dir}`)
  const nodes: LocalnetNode[] = []
  for (const n of state.nodes) {
    const np = nodePaths(dir, n.name)
    const pid = pidIn(np.pid)
    const http = `http://127.0.0.1:${n.httpPort}`
    let nodeId = ''
    try {
      nodeId = (await loadChainKey(join(np.home, 'node.key'))).peerId
    } catch {}
    let st = 'down'
    if (alive(pid, np.home)) {
      st = 'starting'
      try {
        const r = await fetch(`${http}/status`, { signal: AbortSignal.timeout(2000) })
        const s = (await r.json()) as AgentStatusView
        st = `${s.state?.kind ?? '?'}${s.state?.reason !== undefined ? `: ${s.state.reason}` : ''}`
      } catch {}
    }
    nodes.push({
      name: n.name,
      nodeId,
      http,
      certified: st === 'certified',
      state: st,
      pid: alive(pid, np.home) ? pid : undefined,
      log: np.log
    })
  }
  const running = chainRunning(dir)
  return {
    dir,
    rpc: `http://127.0.0.1:${state.rpcPort}`,
    chain: { pid: running ? chainPid(dir) : undefined, log: paths(dir).chainLog },
    nodes,
    started: []
  }
}

// ---- down ---------------------------------------------------------------------------------------

export interface DownResult {
  dir: string
  stopped: Array<{ what: string; pid: number; how: 'stopped' | 'killed' }>
}

/** Stops every process of the network in `dir`: agents (they stop their tenants), TPMs, the chain. */
export async function down(dir: string, say: (line: string) => void): Promise<DownResult> {
  const state = readState(dir)
  if (state === undefined) throw new ConfigError(`no local network in ${dir} (no localnet.json); nothing to stop`)
  return await withDirLock(dir, async () => {
    const stopped: DownResult['stopped'] = []
    const stop = async (what: string, pid: number | undefined, mark: string, graceMs: number): Promise<void> => {
      if (pid === undefined || !alive(pid, mark)) return
      const how = await terminate(pid, mark, graceMs)
      stopped.push({ what, pid, how })
      say(`stopped ${what} (pid ${pid}${how === 'killed' ? ', killed after the grace period' : ''})`)
    }
    // agents first (each stops its tenant containers), then their TPMs, then the chain
    await Promise.all(
      state.nodes.map(async n => {
        const np = nodePaths(dir, n.name)
        await stop(`${n.name} agent`, pidIn(np.pid), np.home, 25_000)
      })
    )
    await Promise.all(
      state.nodes.map(async n => {
        const np = nodePaths(dir, n.name)
        await stop(`${n.name} swtpm`, pidIn(np.tpmPid), np.tpmState, 5000)
      })
    )
    if (chainRunning(dir)) {
      const pid = chainPid(dir)
      if (pid === undefined)
        throw new LocalnetError(
          `the chain in ${dir} runs but names no pid in ${join(chainPaths(paths(dir).chain).data, 'validator.pid')}`
        )
      await stop('chain', pid, paths(dir).chain, 10_000)
    }
    return { dir, stopped }
  })
}
