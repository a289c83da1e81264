// Serverless apps (issue 13): an app published on chain runs on this node only while requests for
// it arrive. The first request for an app that is not running starts the gate once (single
// flight: chain check → fetch from peers → verify → load → measure → start → ready, all in
// containers/runner.ts); requests arriving meanwhile wait in a bounded queue and are all answered
// by that one launch. An app idle for its idleTimeoutMs is scaled to zero:
//
//   running ──idle──▶ paused ──memory needed──▶ stopped ──disk needed──▶ removed
//      ▲                │                          │                        │
//      └──── unpause ───┘◀──── start + probe ──────┘◀──── full launch ──────┘
//
// Pausing frees no memory but wakes fastest, so an idle app is paused while the memory budget
// holds; a launch that needs memory stops the least recently used paused (or idle running) apps;
// one that needs disk removes the least recently used images of apps that are not running.
// Revocation of the running version (or the whole app) stops it at once, and later requests
// get 410; certification loss stops every app (the runner's stopAll) and requests get 503.
//
// The chain and Docker come in through narrow ports (STYLE §4): AppDirectory, AppRunner,
// ImageJanitor. The agent wires the chain client, the runner and the image store into them.
import { QuorateError } from '../encoding/errors.ts'
import type { Logger } from '../encoding/log.ts'
import { NAME_RE } from '../chain/bodies.ts'
import type { ContainerRunner, ImageRecord, LaunchPhase, RunningContainer } from '../containers/index.ts'
import {
  ContainerStartError,
  ContentMismatchError,
  DockerImageMismatchError,
  ImageDigestMismatchError,
  InvalidImageTarError,
  MeasurementError,
  NotCertifiedError
} from '../containers/index.ts'

// ---- ports -------------------------------------------------------------------------------

/** What the loader reads of an app version record (chain/types.ts AppVersionRecord). */
export interface AppVersion {
  readonly name: string
  readonly version: string
  readonly digest: string
  readonly cid: string
  readonly size: number
  readonly port: number
  readonly args?: readonly string[]
  readonly env?: readonly string[]
  readonly healthPath?: string
  readonly limits: { readonly memoryBytes: number; readonly pids: number; readonly nanoCpus?: number }
  readonly idleTimeoutMs: number
}

/** An app as the chain holds it now: the version to run, or revoked (whole app or every version). */
export interface AppLookup {
  readonly current?: AppVersion
  readonly revoked: boolean
}

/** The chain, as the loader sees it (the agent wires ChainClient.app into it). */
export interface AppDirectory {
  app(name: string, opts?: { signal?: AbortSignal }): Promise<AppLookup | undefined>
}

/** The chain client's app query (ChainClient.app), structurally: what chainAppDirectory reads. */
export interface ChainAppQueries {
  app(
    name: string
  ): Promise<{ record: { revokedAt?: number }; current?: AppVersion & { revokedAt?: number } } | undefined>
}

/** AppDirectory over the chain client: the current version, unless the app or that version is revoked. */
export function chainAppDirectory(chain: ChainAppQueries): AppDirectory {
  return {
    app: async name => {
      const view = await chain.app(name)
      if (view === undefined) return undefined
      const current = view.current
      const revoked = view.record.revokedAt !== undefined || current === undefined || current.revokedAt !== undefined
      return revoked ? { revoked: true } : { current, revoked: false }
    }
  }
}

/** The runner, as the loader uses it. */
export type AppRunner = Pick<
  ContainerRunner,
  'launch' | 'stop' | 'holds' | 'pause' | 'unpause' | 'halt' | 'restart' | 'certification'
>

/** Removes an app's image from this node (Docker's copy, and the IPFS blocks if kept). */
export interface ImageJanitor {
  remove(image: { digest: string; cid: string }): Promise<void>
}

// ---- policy and options ------------------------------------------------------------------

/** Which apps this node serves: all, none, only those listed, or all but those listed. */
export type AppsPolicy = 'all' | 'none' | 'allow' | 'deny'
/** What an idle app becomes: 'auto' pauses and lets budget pressure stop or remove it. */
export type ScaleDown = 'auto' | 'pause' | 'stop' | 'remove'

export interface AppLoaderInit {
  readonly directory: AppDirectory
  readonly runner: AppRunner
  readonly images: ImageJanitor
  /** Peers that may hold an app's image (multiaddrs with /p2p/). */
  readonly providers: (app: string) => Promise<string[]>
  /** Requests in flight for an app (the proxy's count): an app serving one is never idle. */
  readonly inFlight: (app: string) => number
  readonly policy?: AppsPolicy
  readonly list?: readonly string[]
  /** Sum of memory limits of running and paused apps. */
  readonly memoryBudgetBytes: number
  /** Sum of image sizes of apps this node holds. */
  readonly diskBudgetBytes: number
  /** Requests that may wait for one app's launch (beyond: 503 + Retry-After). */
  readonly queueMax?: number
  readonly scaleDown?: ScaleDown
  /**
   * Keep the blocks of a fetched app image in the IPFS store too (default true), so this node
   * serves it to peers; the disk budget then counts the image twice (Docker's copy and the blocks).
   */
  readonly keepBlocks?: boolean
  /** How often the chain is asked whether held apps were revoked or replaced (default 1 s). */
  readonly pollMs?: number
  /** How often idle apps are looked for (default 250 ms). */
  readonly idleCheckMs?: number
  /** How long a launch the gate refused (tampered content, start failure) is not tried again (default 5 s). */
  readonly failureHoldMs?: number
  readonly signal?: AbortSignal
  readonly onProgress?: (app: string, phase: LaunchPhase) => void
  readonly logger: Logger
  readonly now?: () => number
}

// ---- errors: each carries the HTTP status the proxy answers with -------------------------

/** Why a request for an app cannot be served; `status` and `retryAfter` are what the client gets. */
export class AppUnavailableError extends QuorateError {
  override readonly code: string = 'ERR_APP_UNAVAILABLE'
  readonly status: number = 503
  /** Seconds, sent as Retry-After. */
  retryAfter?: number
}

/** 404: no app of that name on chain. */
export class UnknownAppError extends AppUnavailableError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_UNKNOWN_APP'
  override readonly status = 404
  constructor(name: string) {
    super(`no app ${JSON.stringify(name)} is published on chain`)
  }
}

/** 410: the app, or every version of it, is revoked on chain. */
export class AppRevokedError extends AppUnavailableError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_APP_REVOKED'
  override readonly status = 410
  constructor(name: string) {
    super(`app ${JSON.stringify(name)} is revoked on chain; no node runs it`)
  }
}

/** 403: this node's policy or budgets refuse the app (other nodes may serve it). */
export class AppRefusedError extends AppUnavailableError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_APP_REFUSED'
  override readonly status = 403
}

/** 503 + Retry-After: the app's queue is full, or its budget is held by apps serving requests. */
export class AppBusyError extends AppUnavailableError {
  override readonly disposition = 'retry' as const
  override readonly code: string = 'ERR_APP_BUSY'
  constructor(message: string, retryAfter = 1) {
    super(message)
    this.retryAfter = retryAfter
  }
}

/** 502 (the gate refused: content, digest, start) or 503 (not certified, Docker or peers unreachable). */
export class AppLaunchError extends AppUnavailableError {
  override readonly code: string = 'ERR_APP_LAUNCH'
  override readonly status: number
  constructor(name: string, cause: unknown) {
    const refused =
      cause instanceof ContentMismatchError ||
      cause instanceof ImageDigestMismatchError ||
      cause instanceof DockerImageMismatchError ||
      cause instanceof InvalidImageTarError ||
      cause instanceof ContainerStartError ||
      cause instanceof MeasurementError
    super(`app ${JSON.stringify(name)} could not be started: ${(cause as Error).message}`, { cause })
    this.status = refused ? 502 : 503
    if (!refused) this.retryAfter = cause instanceof NotCertifiedError ? 30 : 5
  }
}

// ---- status ------------------------------------------------------------------------------

export type AppState = 'starting' | 'running' | 'paused' | 'stopped' | 'removed'
export type WakeKind = 'launch' | 'unpause' | 'restart'

/** One app in /status. */
export interface AppStatus {
  readonly name: string
  readonly version?: string
  readonly digest?: string
  readonly state: AppState
  /** ISO time of the last request, if any. */
  readonly lastRequest?: string
  readonly requests: number
  readonly bytesIn: number
  readonly bytesOut: number
  readonly memoryBytes?: number
  /** How the app last came up and how long that took (request to ready). */
  readonly lastWake?: { readonly kind: WakeKind; readonly ms: number }
  /** Why its last launch failed. */
  readonly lastError?: string
}

interface Entry {
  readonly name: string
  version?: AppVersion
  state: AppState
  container?: RunningContainer
  pending?: Promise<RunningContainer>
  waiting: number
  lastUsed: number
  lastRequest?: number
  requests: number
  bytesIn: number
  bytesOut: number
  lastWake?: { kind: WakeKind; ms: number }
  failed?: { version: string; error: AppUnavailableError; until: number }
  /** Set while the poller or the idle sweep changes its container. */
  busy?: Promise<void>
  /** When the chain last confirmed `version` is current. */
  checkedAt?: number
}

interface HeldImage {
  readonly digest: string
  readonly cid: string
  readonly size: number
  lastUsed: number
}

export class AppLoader {
  readonly #init: AppLoaderInit
  readonly #log: Logger
  readonly #now: () => number
  readonly #apps = new Map<string, Entry>()
  readonly #images = new Map<string, HeldImage>()
  readonly #listed: ReadonlySet<string>
  #timers: NodeJS.Timeout[] = []
  #polling = false
  readonly #pollMs: number

  constructor(init: AppLoaderInit) {
    this.#init = init
    this.#log = init.logger
    this.#now = init.now ?? Date.now
    this.#listed = new Set(init.list ?? [])
    this.#pollMs = init.pollMs ?? 1000
  }

  /** Starts the idle sweep and the revocation poll. */
  start(): void {
    const idle = setInterval(() => {
      void this.sweepIdle()
    }, this.#init.idleCheckMs ?? 250)
    const poll = setInterval(() => {
      void this.poll()
    }, this.#pollMs)
    idle.unref()
    poll.unref()
    this.#timers = [idle, poll]
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
  }

  /**
   * The running container of an app: synchronously when it runs (the proxy's hot path), else a
   * promise of the one launch or wake every concurrent caller shares.
   */
  resolve(name: string): RunningContainer | Promise<RunningContainer> {
    const e = this.#apps.get(name)
    const c = e?.container
    if (e !== undefined && e.state === 'running' && c !== undefined && this.#init.runner.holds(c.id)) {
      const now = this.#now()
      e.lastRequest = now
      e.lastUsed = now
      return c
    }
    return this.#acquire(name)
  }

  /** Counts a proxied request's bytes (the proxy calls it when the request ends). */
  account(name: string, bytesIn: number, bytesOut: number): void {
    const e = this.#apps.get(name)
    if (e === undefined) return
    e.requests++
    e.bytesIn += bytesIn
    e.bytesOut += bytesOut
    e.lastRequest = this.#now()
  }

  list(): AppStatus[] {
    return [...this.#apps.values()].map(e => ({
      name: e.name,
      version: e.version?.version,
      digest: e.version?.digest,
      state: this.#stateOf(e),
      lastRequest: e.lastRequest !== undefined ? new Date(e.lastRequest).toISOString() : undefined,
      requests: e.requests,
      bytesIn: e.bytesIn,
      bytesOut: e.bytesOut,
      memoryBytes: e.version?.limits.memoryBytes,
      lastWake: e.lastWake,
      lastError: e.failed?.error.message
    }))
  }

  /** Bytes of memory limits held by running, paused and starting apps. */
  memoryInUse(): number {
    let n = 0
    for (const e of this.#apps.values()) if (this.#holdsMemory(e)) n += e.version?.limits.memoryBytes ?? 0
    return n
  }

  /** Bytes of app images this node holds. */
  diskInUse(): number {
    let n = 0
    for (const i of this.#images.values()) n += i.size
    return n
  }

  // ---- acquire: policy, queue, single flight ------------------------------------------------

  #allowed(name: string): boolean {
    switch (this.#init.policy ?? 'all') {
      case 'all':
        return true
      case 'none':
        return false
      case 'allow':
        return this.#listed.has(name)
      case 'deny':
        return !this.#listed.has(name)
    }
  }

  async #acquire(name: string): Promise<RunningContainer> {
    // a string the chain would refuse as an app name (an encoded slash, `..`, upper case) is no
    // app: 404 here, not a failed chain lookup (a 503 that sends clients to other nodes)
    if (!NAME_RE.test(name)) throw new UnknownAppError(name.slice(0, 80))
    if (!this.#allowed(name))
      throw new AppRefusedError(
        `this node's policy (${this.#init.policy ?? 'all'}) does not serve app ${JSON.stringify(name)}`
      )
    let e = this.#apps.get(name)
    if (e === undefined) {
      e = { name, state: 'removed', waiting: 0, lastUsed: this.#now(), requests: 0, bytesIn: 0, bytesOut: 0 }
      this.#apps.set(name, e)
    }
    const max = this.#init.queueMax ?? 64
    if (e.waiting >= max)
      throw new AppBusyError(`app ${JSON.stringify(name)} is starting and ${e.waiting} requests already wait for it`, 1)
    e.waiting++
    try {
      const entry = e
      e.pending ??= (async () => {
        try {
          return await this.#bringUp(entry)
        } finally {
          entry.pending = undefined
        }
      })()
      const c = await e.pending
      const now = this.#now()
      e.lastRequest = now
      e.lastUsed = now
      return c
    } finally {
      e.waiting--
      // a name that never ran here (unknown, revoked, refused) leaves no entry: requests for
      // made-up names must not grow the table
      if (e.waiting === 0 && e.pending === undefined && e.version === undefined && e.container === undefined)
        this.#apps.delete(name)
    }
  }

  async #bringUp(e: Entry): Promise<RunningContainer> {
    const t0 = performance.now()
    await e.busy // a pause or halt in progress finishes first
    let v: AppVersion
    const kept = e.container !== undefined && (e.state === 'paused' || e.state === 'stopped')
    if (kept && e.version !== undefined && e.checkedAt !== undefined && this.#now() - e.checkedAt < this.#pollMs * 2) {
      // the poll asked the chain about this version moments ago: a wake costs no chain query
      v = e.version
    } else {
      const look = await this.#init.directory.app(e.name, { signal: this.#init.signal }).catch((err: unknown) => {
        throw new AppLaunchError(e.name, err)
      })
      if (look === undefined) throw new UnknownAppError(e.name)
      if (look.revoked || look.current === undefined) {
        await this.#retire(e, 'revoked on chain')
        throw new AppRevokedError(e.name)
      }
      v = look.current
      e.checkedAt = this.#now()
    }
    if (e.failed !== undefined && e.failed.version === v.version && e.failed.until > this.#now()) throw e.failed.error
    // a new current version replaces whatever this node holds of an older one
    if (e.version !== undefined && e.version.version !== v.version)
      await this.#retire(e, `version ${v.version} published`)
    const memory = this.#init.memoryBudgetBytes
    const disk = this.#init.diskBudgetBytes
    const over: string[] = []
    if (v.limits.memoryBytes > memory)
      over.push(`its memory limit ${v.limits.memoryBytes} B exceeds this node's memory budget ${memory} B`)
    const copies = this.#init.keepBlocks !== false ? 2 : 1
    if (v.size * copies > disk)
      over.push(
        `its image (${v.size} B, ${copies} cop${copies === 1 ? 'y' : 'ies'}) exceeds this node's disk budget ${disk} B`
      )
    if (over.length > 0) throw new AppRefusedError(`app ${JSON.stringify(e.name)} is refused: ${over.join('; ')}`)

    const held = e.container !== undefined && this.#init.runner.holds(e.container.id) ? e.container : undefined
    if (held === undefined && e.state !== 'removed') e.state = 'removed' // the runner let it go (stopAll)
    this.#makeRoomInMemory(e, v.limits.memoryBytes)
    const before = e.state
    e.version = v
    e.state = 'starting'
    let kind: WakeKind
    try {
      if (held !== undefined && before === 'paused') {
        kind = 'unpause'
        await this.#init.runner.unpause(held.id)
      } else if (held !== undefined && before === 'stopped') {
        kind = 'restart'
        e.container = await this.#init.runner.restart(held.id, {
          healthPath: v.healthPath,
          signal: this.#init.signal
        })
      } else {
        kind = 'launch'
        await this.#makeRoomOnDisk(e, v)
        e.container = await this.#launch(e, v)
        const copies = this.#init.keepBlocks !== false ? 2 : 1
        this.#images.set(v.digest, { digest: v.digest, cid: v.cid, size: v.size * copies, lastUsed: this.#now() })
      }
    } catch (err) {
      e.state = held !== undefined && this.#init.runner.holds(held.id) ? before : 'removed'
      if (e.state === 'removed') e.container = undefined
      const error = err instanceof AppUnavailableError ? err : new AppLaunchError(e.name, err)
      if (error.status === 502)
        e.failed = { version: v.version, error, until: this.#now() + (this.#init.failureHoldMs ?? 5000) }
      this.#log.warn('app not started', { app: e.name, version: v.version, error: error.message })
      throw error
    }
    e.failed = undefined
    const img = this.#images.get(v.digest)
    if (img !== undefined) img.lastUsed = this.#now()
    e.state = 'running'
    e.lastWake = { kind, ms: Math.round((performance.now() - t0) * 10) / 10 }
    this.#log.info('app up', { app: e.name, version: v.version, wake: kind, ms: e.lastWake.ms })
    const c = e.container
    if (c === undefined) throw new AppLaunchError(e.name, new Error('no container after start'))
    return c
  }

  async #launch(e: Entry, v: AppVersion): Promise<RunningContainer> {
    const record: ImageRecord = {
      name: `${v.name}@${v.version}`,
      digest: v.digest,
      cid: v.cid,
      size: v.size,
      revoked: false
    }
    return await this.#init.runner.launch({
      image: record.name,
      record,
      app: e.name,
      port: v.port,
      args: v.args,
      env: v.env,
      healthPath: v.healthPath,
      limits: {
        memoryBytes: v.limits.memoryBytes,
        pids: v.limits.pids,
        ...(v.limits.nanoCpus !== undefined ? { nanoCpus: v.limits.nanoCpus } : {})
      },
      providers: await this.#init.providers(e.name),
      // nodes that ran an app keep its blocks (within the disk budget) and serve them to peers
      keep: this.#init.keepBlocks !== false,
      signal: this.#init.signal,
      onProgress: p => {
        this.#init.onProgress?.(e.name, p.phase)
      }
    })
  }

  // ---- budgets -------------------------------------------------------------------------------

  #holdsMemory(e: Entry): boolean {
    if (e.state === 'starting') return true
    if (e.state !== 'running' && e.state !== 'paused') return false
    return e.container !== undefined && this.#init.runner.holds(e.container.id)
  }

  /** Stops least recently used paused (then idle running) apps until `need` fits; 503 when it cannot. */
  #makeRoomInMemory(self: Entry, need: number): void {
    const budget = this.#init.memoryBudgetBytes
    let used = this.memoryInUse() - (this.#holdsMemory(self) ? (self.version?.limits.memoryBytes ?? 0) : 0)
    if (used + need <= budget) return
    const candidates = [...this.#apps.values()]
      .filter(
        x =>
          x !== self &&
          x.pending === undefined &&
          x.busy === undefined &&
          this.#holdsMemory(x) &&
          (x.state === 'paused' || (x.state === 'running' && this.#init.inFlight(x.name) === 0))
      )
      .sort((a, b) => (a.state === b.state ? a.lastUsed - b.lastUsed : a.state === 'paused' ? -1 : 1))
    const victims: Entry[] = []
    for (const x of candidates) {
      if (used + need <= budget) break
      victims.push(x)
      used -= x.version?.limits.memoryBytes ?? 0
    }
    if (used + need > budget)
      throw new AppBusyError(
        `app ${JSON.stringify(self.name)} needs ${need} B of memory; apps serving requests hold ${used} B of this node's ${budget} B budget`,
        5
      )
    // halted in the background: the launch is counted against the budget from now on
    for (const x of victims) this.#change(x, 'stop', 'memory budget')
  }

  /** Removes least recently used images of apps that are not running until `v` fits; 503 when it cannot. */
  async #makeRoomOnDisk(self: Entry, v: AppVersion): Promise<void> {
    if (this.#images.has(v.digest)) return
    const budget = this.#init.diskBudgetBytes
    const need = v.size * (this.#init.keepBlocks !== false ? 2 : 1)
    let used = this.diskInUse()
    if (used + need <= budget) return
    const inUse = new Set<string>()
    for (const x of this.#apps.values())
      if (x !== self && x.version !== undefined && (x.state !== 'removed' || x.pending !== undefined))
        if (x.state !== 'stopped') inUse.add(x.version.digest)
    const lru = [...this.#images.values()].filter(i => !inUse.has(i.digest)).sort((a, b) => a.lastUsed - b.lastUsed)
    for (const img of lru) {
      if (used + need <= budget) break
      // stopped containers of that image go first (Docker keeps an image a container uses)
      for (const x of this.#apps.values())
        if (x !== self && x.state === 'stopped' && x.version?.digest === img.digest)
          await this.#retire(x, 'disk budget')
      await this.#init.images.remove(img).catch((err: unknown) => {
        this.#log.warn('could not remove an app image', { digest: img.digest, err })
      })
      this.#images.delete(img.digest)
      used -= img.size
      this.#log.info('evicted app image', { digest: img.digest, size: img.size })
    }
    if (used + need > budget)
      throw new AppBusyError(
        `app ${JSON.stringify(self.name)} needs ${need} B of disk; images of running apps hold ${used} B of this node's ${budget} B budget`,
        5
      )
  }

  // ---- scale to zero, revocation ------------------------------------------------------------

  #stateOf(e: Entry): AppState {
    if (e.state === 'starting' || e.state === 'removed') return e.state
    return e.container !== undefined && this.#init.runner.holds(e.container.id) ? e.state : 'removed'
  }

  /** Pauses, halts or removes an app's container in the background (one change at a time). */
  #change(e: Entry, to: 'pause' | 'stop' | 'remove', why: string): void {
    const c = e.container
    if (c === undefined) return
    const wasPaused = e.state === 'paused'
    const run = (async () => {
      try {
        if (to === 'pause') {
          await this.#init.runner.pause(c.id)
          e.state = 'paused'
        } else if (to === 'stop') {
          // a paused app's processes are frozen: SIGTERM would only wait out the grace period
          await this.#init.runner.halt(c.id, { graceSeconds: wasPaused ? 0 : 2 })
          e.state = 'stopped'
        } else {
          await this.#retire(e, why)
        }
        this.#log.info('app scaled down', { app: e.name, to, why })
      } catch (err) {
        this.#log.warn('scaling an app down failed; removing it', { app: e.name, to, err })
        await this.#retire(e, why)
      }
    })()
    e.busy = run.finally(() => {
      e.busy = undefined
    })
    // nothing may serve it while it changes
    e.state = to === 'pause' ? 'paused' : to === 'stop' ? 'stopped' : 'removed'
  }

  async #retire(e: Entry, why: string): Promise<void> {
    const c = e.container
    e.container = undefined
    e.state = 'removed'
    if (c !== undefined) {
      await this.#init.runner.stop(c.id).catch((err: unknown) => {
        this.#log.warn('could not stop an app container', { app: e.name, err })
      })
      this.#log.info('app stopped', { app: e.name, why })
    }
  }

  /** Scales down apps idle for their idleTimeoutMs (no request, none in flight). */
  async sweepIdle(): Promise<void> {
    const now = this.#now()
    const mode = this.#init.scaleDown ?? 'auto'
    for (const e of this.#apps.values()) {
      if (e.state !== 'running' || e.pending !== undefined || e.busy !== undefined || e.version === undefined) continue
      if (now - (e.lastRequest ?? e.lastUsed) < e.version.idleTimeoutMs) continue
      if (this.#init.inFlight(e.name) > 0) continue
      this.#change(e, mode === 'auto' ? 'pause' : mode, 'idle')
    }
    await Promise.all([...this.#apps.values()].map(async e => await e.busy))
  }

  /**
   * Asks the chain about every app this node holds: a revoked app (or version) is stopped at once,
   * a replaced version is removed (the next request launches the new one). While the node is not
   * certified the runner has stopped everything; the entries follow.
   */
  async poll(): Promise<void> {
    if (this.#polling) return
    this.#polling = true
    try {
      if (!this.#init.runner.certification().certified) {
        for (const e of this.#apps.values())
          if (e.pending === undefined && e.container !== undefined && !this.#init.runner.holds(e.container.id)) {
            e.container = undefined
            e.state = 'removed'
          }
      }
      const held = [...this.#apps.values()].filter(e => e.container !== undefined && e.pending === undefined)
      await Promise.all(
        held.map(async e => {
          let look: AppLookup | undefined
          try {
            look = await this.#init.directory.app(e.name, { signal: this.#init.signal })
          } catch (err) {
            this.#log.debug('app poll failed; will retry', { app: e.name, err })
            return
          }
          if (look === undefined || look.revoked || look.current === undefined) {
            this.#log.warn('app revoked on chain; stopping it', { app: e.name })
            await e.busy
            await this.#retire(e, 'revoked on chain')
          } else if (e.version !== undefined && look.current.version !== e.version.version) {
            await e.busy
            await this.#retire(e, `version ${look.current.version} published`)
          } else e.checkedAt = this.#now()
        })
      )
    } finally {
      this.#polling = false
    }
  }
}
