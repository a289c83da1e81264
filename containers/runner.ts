// The gate: a node runs a tenant image only when, in this order,
//   1. its own certification on chain is valid now,
//   2. the image is published on chain and not revoked,
//   3. the bytes fetched from IPFS peers match the CID (every block verified),
//   4. the archive's config digest (the Docker image ID) equals the on-chain digest, computed
//      while the bytes stream past, and
//   5. after `docker load`, the image ID Docker reports equals it.
// Then the launch is measured (PCR 13 + container event log) before the container starts with a
// hardened host config (STYLE §5: check policy, measure, then start).
//
// Bytes are streamed into `docker load` while they are fetched and hashed, but the archive's
// last 1024 bytes (at least the end-of-archive marker) are held back until checks 3 and 4 pass.
// On any failure the upload is aborted mid-archive: Docker extracts the whole archive into a
// temporary directory before it reads manifest.json, so an aborted upload loads nothing.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type Docker from 'dockerode'
import type { Logger } from '../encoding/log.ts'
import { silentLogger } from '../encoding/log.ts'
import { InvalidInputError, QuorateError } from '../encoding/errors.ts'
import { buildImageTar, ImageTarInspector } from './image-tar.ts'
import { parseCid } from './transfer.ts'
import { relaySocketPath, startRelay, stopLeftoverRelays, type Relay } from './relay.ts'
import { CONTAINER_PCR, launchEvent, type EventLogWriter } from './events.ts'
import { containerEventDigest, containerLaunchLine } from '../attestation/containerlog.ts'
import {
  ContainerStartError,
  ContentMismatchError,
  DockerError,
  DockerImageMismatchError,
  ImageDigestMismatchError,
  ImageNotPublishedError,
  ImageRevokedError,
  InvalidImageTarError,
  MeasurementError,
  NotCertifiedError,
  UnsupportedEngineError
} from './errors.ts'
import type { FetchProgress } from './transfer.ts'

/**
 * Docker repository of the tags the runner puts on images it loaded from bytes verified against a
 * CID (`quorate/verified:<cid>`; a sha2-256 CID, the only kind accepted, is a valid Docker tag:
 * under 128 characters of [A-Za-z0-9]).
 * App launches reuse only an image tagged with their record's CID.
 */
export const VERIFIED_REPO = 'quorate/verified'
export const verifiedTag = (cid: string): string => `${VERIFIED_REPO}:${cid}`

// ---- what the runner needs from others (STYLE §4: narrow, so tests hand in fakes) ------------

/** An `image.publish` record as the chain holds it. */
export interface ImageRecord {
  readonly name: string
  /** Docker image ID: `sha256:<hex>` of the config JSON. */
  readonly digest: string
  readonly cid: string
  readonly size: number
  readonly revoked: boolean
  readonly publisher?: string
}

export interface CertificationStatus {
  readonly certified: boolean
  readonly reason?: string
  /** Milliseconds since the epoch. */
  readonly expiresAt?: number
}

/** The chain, as the gate sees it (the agent wires chain/client into this). */
export interface ImageRegistry {
  getImage(name: string, opts?: { signal?: AbortSignal }): Promise<ImageRecord | undefined>
  isCertified(nodeId: string, opts?: { signal?: AbortSignal }): Promise<CertificationStatus>
}

/** The TPM, as the gate sees it (the agent wires attestation/tpm into this). */
export interface Measurer {
  extend(pcr: number, digest: Uint8Array): Promise<void>
}

/** Where image bytes come from (ImageStore implements it). */
export interface ImageSource {
  fetch(
    cid: string,
    opts?: {
      providers?: readonly string[]
      keep?: boolean
      signal?: AbortSignal
      onProgress?: (p: FetchProgress) => void
    }
  ): AsyncIterable<Uint8Array>
}

/** The subset of dockerode the runner uses. */
export type DockerClient = Pick<
  Docker,
  'loadImage' | 'getImage' | 'createContainer' | 'getContainer' | 'listContainers' | 'info'
>

// ---- options and results ------------------------------------------------------------------------

export interface ContainerLimits {
  /** Memory limit in bytes (swap disabled); default 256 MiB. */
  readonly memoryBytes?: number
  /** Most processes/threads; default 128. */
  readonly pids?: number
  /** CPU in units of 1e-9 CPUs; default unlimited. */
  readonly nanoCpus?: number
  /** Size of the writable /tmp tmpfs; default 64 MiB (0: no /tmp). */
  readonly tmpfsBytes?: number
}

export interface ContainerRunnerInit {
  readonly docker: DockerClient
  readonly registry: ImageRegistry
  readonly source: ImageSource
  readonly measurer: Measurer
  readonly eventLog: EventLogWriter
  /** This node's id (libp2p peer id), as the chain knows it. */
  readonly nodeId: string
  /**
   * Tenant networking: 'host' (default; tenants bind 127.0.0.1 and share the node's loopback),
   * 'isolated' (Docker's 'none' — loopback only — reached through a relay on a unix socket, see
   * relay.ts), 'none' (no network at all), or a Docker network name.
   */
  readonly network?: string
  /**
   * Where this node's 'isolated' tenants' relay sockets live (default
   * <tmpdir>/quorate-relays/<node id prefix>). One directory per node: stopAll also stops relays
   * an earlier run left there.
   */
  readonly relayDir?: string
  /**
   * 'isolated' only: how many network namespaces to keep made ahead of time (default 1; 0: none).
   * Docker takes ~150 ms longer to start a container in a new namespace than to let it join an
   * existing one; a launch takes a pooled holder's namespace (loopback only, used by no one) and
   * the pool is refilled in the background. An empty pool falls back to a new namespace.
   */
  readonly netnsPool?: number
  /**
   * The static executable the namespace holders run (`<it> sleep <forever>`, busybox-style; default
   * /bin/busybox). Without it the pool stays empty: every isolated launch makes its namespace.
   */
  readonly holderBinary?: string
  readonly limits?: ContainerLimits
  /** Labels added to every container (tests: quorate.test=<run>). */
  readonly labels?: Readonly<Record<string, string>>
  /** Reuse an image Docker already holds under the on-chain digest (default true). */
  readonly reuseLoaded?: boolean
  /**
   * Also keep a fetched image's blocks in the IPFS store, so that this node serves it to peers
   * and can load it again without them (default false: Docker's image store is the node's copy,
   * and a second one doubles the disk an image takes and the writes of every launch).
   */
  readonly keepImages?: boolean
  readonly logger?: Logger
  readonly now?: () => number
}

export type LaunchPhase = 'check' | 'fetch' | 'load' | 'measure' | 'start' | 'ready'
export interface LaunchProgress {
  readonly phase: LaunchPhase
  readonly bytes?: number
  readonly total?: number
}

export interface LaunchRequest {
  /** Image name as published on chain. */
  readonly image: string
  /** Command arguments (Docker Cmd); the image's entrypoint stays. */
  readonly args?: readonly string[]
  /** Environment ("KEY=value"); measured only as a digest. */
  readonly env?: readonly string[]
  /** Port the container answers on at 127.0.0.1 (its own loopback when isolated). */
  readonly port: number
  /** Path probed until the container answers (default '/'). */
  readonly healthPath?: string
  /** IPFS peers (multiaddrs) that hold the image. */
  readonly providers?: readonly string[]
  readonly user?: string
  readonly limits?: ContainerLimits
  readonly labels?: Readonly<Record<string, string>>
  /** How long to wait for the first answer (default 20 s). */
  readonly readyTimeoutMs?: number
  readonly signal?: AbortSignal
  readonly onProgress?: (p: LaunchProgress) => void
  /**
   * Launch exactly this chain record (an app version, agent/apps.ts) instead of looking `image`
   * up with registry.getImage; every other step of the gate (certification now, revocation, CID,
   * digest and size checks, the measured line) still applies.
   */
  readonly record?: ImageRecord
  /** Keep the fetched blocks in the IPFS store (default: the runner's keepImages). */
  readonly keep?: boolean
  /** The serverless app this container serves (agent/apps.ts); get() and tenants leave it alone. */
  readonly app?: string
}

/** How a kept container is woken (see ContainerRunner.restart). */
export interface RestartOptions {
  readonly healthPath?: string
  readonly readyTimeoutMs?: number
  readonly signal?: AbortSignal
}

export interface RunningContainer {
  readonly id: string
  readonly containerName: string
  readonly image: string
  readonly digest: string
  readonly cid: string
  readonly port: number
  /** http://127.0.0.1:<port>, or unix:<socket> for an isolated tenant. */
  readonly url: string
  /** The relay socket of an isolated tenant (requests go there instead of the port). */
  readonly socketPath?: string
  readonly args: readonly string[]
  readonly startedAt: number
  /** The measured event line (what was extended into PCR 13). */
  readonly event: string
  /** The serverless app it serves (LaunchRequest.app). */
  readonly app?: string
}

export interface ContainerRunner {
  launch(req: LaunchRequest): Promise<RunningContainer>
  list(): RunningContainer[]
  /** The running container for an image name (the most recent). */
  get(image: string): RunningContainer | undefined
  stop(idOrImage: string): Promise<boolean>
  /** Stops and removes every tenant container of this node (also ones left by an earlier run). */
  stopAll(reason: string): Promise<number>
  logs(idOrImage: string, opts?: { tail?: number }): Promise<string>
  /** The last known certification (what the proxy consults). */
  certification(): CertificationStatus
  /** The agent reports certification changes; losing it stops every tenant container. */
  setCertification(status: CertificationStatus): Promise<void>
  /** Polls the registry (and the expiry) every intervalMs; returns a function that stops watching. */
  watchCertification(opts?: { intervalMs?: number }): () => void
  /** True while the runner holds this container (running, paused or halted); stopAll ends that. */
  holds(id: string): boolean
  /** docker pause: the processes are frozen, memory stays; wake with unpause (no probe needed). */
  pause(id: string): Promise<void>
  unpause(id: string): Promise<void>
  /**
   * docker stop, keeping the container (and its measured launch); wake with restart. graceSeconds
   * (default 2) before SIGKILL; 0 for a paused container, whose frozen processes cannot act on
   * SIGTERM anyway.
   */
  halt(id: string, opts?: { graceSeconds?: number }): Promise<void>
  /** Starts a halted container again and waits until it answers; only while certified. */
  restart(id: string, opts?: RestartOptions): Promise<RunningContainer>
  /**
   * 'isolated': fills the pool of network-namespace holders (while certified) and resolves once it
   * is full or cannot be filled; otherwise resolves at once. Launches refill it by themselves.
   */
  fillNetnsPool(): Promise<void>
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/
const HOLD_BACK = 1024
/** Longest wait for one Docker call when stopping and removing tenants (seconds of grace: 2). */
const DOCKER_CALL_MS = 5_000
/** Upload writes to `docker load` of about this size (see fetchAndLoad). */
const UPLOAD_WRITE = 1 << 20
export const MANAGED_LABEL = 'quorate.managed'
export const NODE_LABEL = 'quorate.node'
/** MANAGED_LABEL's value on a network-namespace holder (tenants: 'true'; `quorate containers ls` lists those). */
export const HOLDER_MANAGED = 'netns-holder'
/** On a tenant that joined a holder's network namespace: the holder's container id. */
export const NETNS_LABEL = 'quorate.netns'
/** Repository of the holder image the runner builds from holderBinary. */
export const HOLDER_REPO = 'quorate/netns-holder'

/**
 * A network-namespace holder: it only keeps a namespace (loopback only, Docker's 'none') alive
 * for one tenant to join. It runs the node's own static busybox `sleep` (no tenant code), as
 * nobody, read-only, without capabilities, in 8 MiB with at most 4 processes; it listens on
 * nothing. Used by one tenant, removed with it.
 */
export function holderHostConfig(): Docker.HostConfig {
  return hardenedHostConfig('none', { memoryBytes: 8 << 20, pids: 4, tmpfsBytes: 0, nanoCpus: 100_000_000 })
}

/** The hardened host config every tenant container gets. */
export function hardenedHostConfig(network: string, limits: ContainerLimits = {}): Docker.HostConfig {
  const mem = limits.memoryBytes ?? 256 << 20
  const tmpfs = limits.tmpfsBytes ?? 64 << 20
  return {
    ReadonlyRootfs: true,
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges:true'],
    Privileged: false,
    Memory: mem,
    MemorySwap: mem, // equal to Memory: no swap
    PidsLimit: limits.pids ?? 128,
    ...(limits.nanoCpus !== undefined ? { NanoCpus: limits.nanoCpus } : {}),
    NetworkMode: network,
    Binds: [],
    Mounts: [],
    Tmpfs: tmpfs > 0 ? { '/tmp': `rw,noexec,nosuid,nodev,size=${tmpfs}` } : {},
    IpcMode: 'private',
    PublishAllPorts: false,
    RestartPolicy: { Name: 'no' },
    LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } }
  }
}

/** Demultiplexes Docker's attach/logs stream (8-byte headers) of a non-TTY container. */
export function demuxDockerLogs(buf: Uint8Array): string {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  const parts: Buffer[] = []
  let p = 0
  while (
    p + 8 <= b.length &&
    (b[p] === 0 || b[p] === 1 || b[p] === 2) &&
    b[p + 1] === 0 &&
    b[p + 2] === 0 &&
    b[p + 3] === 0
  ) {
    const n = b.readUInt32BE(p + 4)
    parts.push(b.subarray(p + 8, p + 8 + n))
    p += 8 + n
  }
  if (p < b.length) parts.push(b.subarray(p))
  return Buffer.concat(parts).toString('utf8')
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(t)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Where a tenant answers: its port on 127.0.0.1, or its relay socket. */
interface TenantAddress {
  readonly port: number
  readonly socketPath?: string
}

/** One GET; resolves with the status code, rejects on connection errors or timeout. */
function probe(to: TenantAddress, path: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const where = to.socketPath !== undefined ? { socketPath: to.socketPath } : { host: '127.0.0.1', port: to.port }
    const req = httpRequest({ ...where, path, method: 'GET', timeout: timeoutMs }, res => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('timeout', () => {
      req.destroy(new Error('timeout'))
    })
    req.on('error', reject)
    req.end()
  })
}

class Runner implements ContainerRunner {
  private readonly init: ContainerRunnerInit
  private readonly log: Logger
  private readonly running = new Map<string, RunningContainer>()
  private readonly relays = new Map<string, Relay>()
  private engine: Promise<void> | undefined
  private cert: CertificationStatus = { certified: false, reason: 'certification not checked yet' }
  private readonly now: () => number
  /** Network-namespace holders made ahead of time, each for one isolated tenant. */
  private readonly pool: string[] = []
  /** Tenant container id → the holder whose namespace it joined (removed with it). */
  private readonly holderOf = new Map<string, string>()
  /** Bumped by stopAll: a holder made while it ran is removed, not pooled. */
  private poolGen = 0
  private filling: Promise<void> | undefined
  private holderImage: Promise<string | undefined> | undefined

  private get relayDir(): string {
    return (
      this.init.relayDir ?? join(tmpdir(), 'quorate-relays', this.init.nodeId.slice(-16).replace(/[^a-zA-Z0-9]/g, '_'))
    )
  }

  constructor(init: ContainerRunnerInit) {
    this.init = init
    this.log = init.logger ?? silentLogger('quorate:containers:runner')
    this.now = init.now ?? Date.now
  }

  certification(): CertificationStatus {
    const c = this.cert
    if (c.certified && c.expiresAt !== undefined && c.expiresAt <= this.now())
      return { certified: false, reason: `certification expired at ${new Date(c.expiresAt).toISOString()}` }
    return c
  }

  async setCertification(status: CertificationStatus): Promise<void> {
    this.cert = status
    const now = this.certification()
    // Also clears containers an earlier run of the agent left behind (found by label).
    if (!now.certified) await this.stopAll(`certification lost: ${now.reason ?? 'unknown'}`)
    else void this.fillNetnsPool()
  }

  private get poolSize(): number {
    const n = this.init.netnsPool ?? 1
    return (this.init.network ?? 'host') === 'isolated' && Number.isInteger(n) && n > 0 ? n : 0
  }

  fillNetnsPool(): Promise<void> {
    if (this.poolSize === 0 || !this.certification().certified) return Promise.resolve()
    this.filling ??= (async () => {
      try {
        while (this.pool.length < this.poolSize && this.certification().certified) {
          const gen = this.poolGen
          const id = await this.makeHolder()
          if (id === undefined) return
          if (gen !== this.poolGen || !this.certification().certified) {
            await this.removeHolder(id) // stopAll ran meanwhile
            return
          }
          this.pool.push(id)
        }
      } catch (err) {
        this.log.warn('making a network-namespace holder failed; isolated launches make their own namespace', {
          error: (err as Error).message
        })
      } finally {
        this.filling = undefined
      }
    })()
    return this.filling
  }

  /** The holder image's ID, loaded into Docker once (undefined: no holder binary on this node). */
  private async holderImageId(): Promise<string | undefined> {
    this.holderImage ??= (async () => {
      const path = this.init.holderBinary ?? '/bin/busybox'
      let bin: Uint8Array
      try {
        bin = readFileSync(path)
      } catch (err) {
        this.log.warn('no network-namespace holders: their executable is missing', {
          path,
          error: (err as Error).message
        })
        return undefined
      }
      const img = buildImageTar({
        files: [{ path: 'bin' }, { path: 'bin/busybox', content: bin, mode: 0o755 }],
        entrypoint: ['/bin/busybox'],
        cmd: ['sleep', '2147483647'],
        user: '65534:65534',
        labels: { 'quorate.role': HOLDER_MANAGED }
      })
      const { docker } = this.init
      if (!(await this.hasImage(img.imageId))) {
        const res = await docker.loadImage(PassThrough.from([img.tar]), { quiet: true })
        for await (const _ of res as AsyncIterable<unknown>) {
          /* drain */
        }
        if (!(await this.hasImage(img.imageId)))
          throw new DockerError(`docker did not load the network-namespace holder image ${img.imageId}`)
      }
      // tagged, so that pruning dangling images leaves it
      await docker.getImage(img.imageId).tag({ repo: HOLDER_REPO, tag: img.imageId.slice(7, 19) })
      return img.imageId
    })()
    try {
      return await this.holderImage
    } catch (err) {
      this.holderImage = undefined // Docker failed: try again next time
      throw err
    }
  }

  /** A running holder of a fresh network namespace (loopback only). */
  private async makeHolder(): Promise<string | undefined> {
    const image = await this.holderImageId()
    if (image === undefined) return undefined
    const c = await this.init.docker.createContainer({
      name: `quorate-netns-${randomBytes(6).toString('hex')}`,
      Image: image,
      Labels: { ...this.init.labels, [MANAGED_LABEL]: HOLDER_MANAGED, [NODE_LABEL]: this.init.nodeId },
      HostConfig: holderHostConfig()
    })
    try {
      await c.start()
    } catch (err) {
      await this.removeHolder(c.id)
      throw err
    }
    return c.id
  }

  /** A pooled holder that still runs (a dockerd restart ends them) and its process, or undefined. */
  private async takeHolder(): Promise<{ id: string; pid: number } | undefined> {
    for (let id = this.pool.shift(); id !== undefined; id = this.pool.shift()) {
      try {
        const st = (await this.init.docker.getContainer(id).inspect()).State
        if (st.Running) return { id, pid: st.Pid }
      } catch {}
      await this.removeHolder(id)
    }
    return undefined
  }

  /** Holders only sleep: no grace, just gone. */
  private async removeHolder(id: string): Promise<void> {
    await this.init.docker
      .getContainer(id)
      .remove({ force: true, abortSignal: AbortSignal.timeout(DOCKER_CALL_MS) })
      .catch((err: unknown) => {
        if ((err as { statusCode?: number }).statusCode !== 404)
          this.log.warn('could not remove a network-namespace holder', { id, error: (err as Error).message })
      })
  }

  watchCertification(opts: { intervalMs?: number } = {}): () => void {
    let busy = false
    const tick = async (): Promise<void> => {
      if (busy) return
      busy = true
      try {
        const st = await this.init.registry.isCertified(this.init.nodeId)
        await this.setCertification(st)
      } catch (err) {
        // A chain that does not answer is not a loss of certification; the expiry still applies.
        this.log.warn('certification check failed', { error: (err as Error).message })
        if (!this.certification().certified && this.running.size > 0)
          await this.stopAll('certification expired').catch(() => {})
      } finally {
        busy = false
      }
    }
    const t = setInterval(() => {
      void tick()
    }, opts.intervalMs ?? 5000)
    t.unref()
    void tick()
    return () => {
      clearInterval(t)
    }
  }

  list(): RunningContainer[] {
    return [...this.running.values()]
  }

  get(image: string): RunningContainer | undefined {
    let best: RunningContainer | undefined
    for (const c of this.running.values())
      if (c.app === undefined && c.image === image && (best === undefined || c.startedAt > best.startedAt)) best = c
    return best
  }

  holds(id: string): boolean {
    return this.running.has(id)
  }

  private held(id: string): RunningContainer {
    const rc = this.running.get(id)
    if (rc === undefined) throw new InvalidInputError(`container ${id} is not one this runner holds`)
    return rc
  }

  async pause(id: string): Promise<void> {
    this.held(id)
    try {
      await this.init.docker.getContainer(id).pause({ abortSignal: AbortSignal.timeout(DOCKER_CALL_MS) })
    } catch (err) {
      throw new DockerError(`pausing container ${id} failed: ${(err as Error).message}`, { cause: err })
    }
  }

  async unpause(id: string): Promise<void> {
    this.held(id)
    const effective = this.certification()
    if (!effective.certified) throw new NotCertifiedError(effective.reason)
    try {
      await this.init.docker.getContainer(id).unpause({ abortSignal: AbortSignal.timeout(DOCKER_CALL_MS) })
    } catch (err) {
      throw new DockerError(`unpausing container ${id} failed: ${(err as Error).message}`, { cause: err })
    }
  }

  async halt(id: string, opts: { graceSeconds?: number } = {}): Promise<void> {
    this.held(id)
    const c = this.init.docker.getContainer(id)
    try {
      await c.stop({ t: opts.graceSeconds ?? 2, abortSignal: AbortSignal.timeout(DOCKER_CALL_MS) })
    } catch (err) {
      // 304: already stopped
      if ((err as { statusCode?: number }).statusCode !== 304)
        throw new DockerError(`stopping container ${id} failed: ${(err as Error).message}`, { cause: err })
    }
    // an isolated tenant's relay entered the old process's network namespace: it ends with it
    await this.relays.get(id)?.stop()
    this.relays.delete(id)
  }

  async restart(id: string, opts: RestartOptions = {}): Promise<RunningContainer> {
    let rc = this.held(id)
    const effective = this.certification()
    if (!effective.certified) throw new NotCertifiedError(effective.reason)
    const container = this.init.docker.getContainer(id)
    try {
      await container.start()
      if ((this.init.network ?? 'host') === 'isolated') {
        const relay = await startRelay({
          pid: (await container.inspect()).State.Pid,
          port: rc.port,
          socketPath: relaySocketPath(this.relayDir, id),
          signal: opts.signal
        })
        this.relays.set(id, relay)
        rc = { ...rc, url: `unix:${relay.socketPath}`, socketPath: relay.socketPath }
      }
      await this.waitReady(container, rc, opts.healthPath ?? '/', opts.readyTimeoutMs ?? 20_000, opts.signal)
    } catch (err) {
      if (err instanceof QuorateError || (err as Error).name === 'AbortError') throw err
      throw new ContainerStartError(`container ${id} did not start again: ${(err as Error).message}`, { cause: err })
    }
    if (!this.running.has(id)) {
      // stopAll ran meanwhile (certification lost): it is not ours to keep
      await this.discard(id)
      throw new NotCertifiedError(this.certification().reason)
    }
    this.running.set(id, rc)
    return rc
  }

  private find(idOrImage: string): RunningContainer | undefined {
    return (
      this.running.get(idOrImage) ??
      [...this.running.values()].find(c => c.id.startsWith(idOrImage) || c.containerName === idOrImage) ??
      this.get(idOrImage)
    )
  }

  async launch(req: LaunchRequest): Promise<RunningContainer> {
    const { docker, registry, nodeId } = this.init
    const signal = req.signal
    const progress = req.onProgress ?? (() => {})
    if (!Number.isInteger(req.port) || req.port <= 0 || req.port > 65535)
      throw new InvalidInputError(`port ${req.port} is not a TCP port`)
    progress({ phase: 'check' })

    // 1. this node's certification, now
    const cert = await registry.isCertified(nodeId, { signal })
    this.cert = cert
    const effective = this.certification()
    if (!effective.certified) throw new NotCertifiedError(effective.reason)

    // 2. published, not revoked (an app version's record comes with the request)
    const rec = req.record ?? (await registry.getImage(req.image, { signal }))
    if (rec === undefined) throw new ImageNotPublishedError(req.image)
    if (rec.revoked) throw new ImageRevokedError(req.image, rec.digest)
    if (!DIGEST_RE.test(rec.digest))
      throw new ImageDigestMismatchError(rec.digest, '(the chain record holds no valid sha256 digest)')
    parseCid(rec.cid)

    // The measured line, built (and checked the way the verifier parses it) before anything is fetched.
    const args = [...(req.args ?? [])]
    const line = containerLaunchLine(
      launchEvent({ image: rec.name, digest: rec.digest, cid: rec.cid, args, env: req.env })
    )

    // 3–5. fetch, verify, load (or reuse what Docker already holds under exactly this ID). A
    // deployed tenant is the operator's choice: any image Docker holds under the digest will do.
    // An app's digest is the publisher's choice: reuse only an image this runner loaded from
    // exactly the record's CID (tagged VERIFIED_REPO:<cid> after a verified load), so a publisher
    // cannot run a private image it does not hold just by naming its digest.
    await this.checkEngine()
    const appLaunch = req.app !== undefined || req.record !== undefined
    const have = this.init.reuseLoaded !== false && (await this.hasImage(rec.digest, appLaunch ? rec.cid : undefined))
    if (!have) await this.fetchAndLoad(rec, req, progress)
    else this.log.info('image already loaded; reusing', { image: rec.name, digest: rec.digest })

    // measure, then start
    progress({ phase: 'measure' })
    try {
      await this.init.measurer.extend(CONTAINER_PCR, containerEventDigest(line))
      await this.init.eventLog.append(line)
    } catch (err) {
      throw new MeasurementError(
        `measuring the launch of ${rec.name} failed: ${(err as Error).message}; the container was not started`,
        { cause: err }
      )
    }

    progress({ phase: 'start' })
    const containerName = `quorate-${rec.name.replace(/[^a-zA-Z0-9_.-]/g, '_').slice(0, 40)}-${randomBytes(4).toString('hex')}`
    const network = this.init.network ?? 'host'
    const taken = network === 'isolated' && this.poolSize > 0 ? await this.takeHolder() : undefined
    const holder = taken?.id
    let container: Docker.Container
    try {
      container = await docker.createContainer({
        name: containerName,
        Image: rec.digest,
        ...(req.args !== undefined ? { Cmd: args } : {}),
        Env: [...(req.env ?? [])],
        ...(req.user !== undefined ? { User: req.user } : {}),
        Labels: {
          ...this.init.labels,
          ...req.labels,
          [MANAGED_LABEL]: 'true',
          [NODE_LABEL]: nodeId,
          'quorate.image': rec.name,
          'quorate.digest': rec.digest,
          'quorate.cid': rec.cid,
          'quorate.port': String(req.port),
          ...(req.app !== undefined ? { 'quorate.app': req.app } : {}),
          ...(holder !== undefined ? { [NETNS_LABEL]: holder } : {})
        },
        // isolated: the namespace of a pooled holder (made ahead of time), or a new one ('none')
        HostConfig: hardenedHostConfig(
          holder !== undefined ? `container:${holder}` : network === 'isolated' ? 'none' : network,
          { ...this.init.limits, ...req.limits }
        ),
        NetworkDisabled: network === 'none'
      })
      if (holder !== undefined) this.holderOf.set(container.id, holder)
    } catch (err) {
      if (holder !== undefined) await this.removeHolder(holder)
      throw new DockerError(`creating the container for ${rec.name} failed: ${(err as Error).message}`, { cause: err })
    }
    let rc: RunningContainer = {
      id: container.id,
      containerName,
      image: rec.name,
      digest: rec.digest,
      cid: rec.cid,
      port: req.port,
      url: `http://127.0.0.1:${req.port}`,
      args,
      startedAt: this.now(),
      event: line,
      ...(req.app !== undefined ? { app: req.app } : {})
    }
    // In a holder's namespace the relay can start while the container does (it enters the same
    // namespace through the holder's process); otherwise once the container runs.
    let early: Promise<Relay> | undefined
    try {
      early =
        taken !== undefined
          ? startRelay({
              pid: taken.pid,
              port: req.port,
              socketPath: relaySocketPath(this.relayDir, container.id),
              signal
            })
          : undefined
      early?.catch(() => {}) // awaited below, or stopped on failure
      await container.start()
      if (network === 'isolated') {
        const relay =
          early !== undefined
            ? await early
            : await startRelay({
                pid: (await container.inspect()).State.Pid,
                port: req.port,
                socketPath: relaySocketPath(this.relayDir, container.id),
                signal
              })
        this.relays.set(container.id, relay)
        rc = { ...rc, url: `unix:${relay.socketPath}`, socketPath: relay.socketPath }
      }
      await this.waitReady(container, rc, req.healthPath ?? '/', req.readyTimeoutMs ?? 20_000, signal)
    } catch (err) {
      void this.fillNetnsPool()
      const logs = await this.containerLogs(container, 20).catch(() => '')
      await early?.then(
        async r => {
          await r.stop()
        },
        () => {}
      )
      await this.relays.get(container.id)?.stop()
      this.relays.delete(container.id)
      await container.remove({ force: true }).catch(() => {})
      if (holder !== undefined) await this.removeHolder(holder)
      this.holderOf.delete(container.id)
      if (err instanceof QuorateError || (err as Error).name === 'AbortError') throw err
      throw new ContainerStartError(
        `container for ${rec.name} did not start: ${(err as Error).message}${logs !== '' ? `\n${logs}` : ''}`,
        { cause: err }
      )
    }
    // Certification may have ended while we were starting.
    this.running.set(rc.id, rc)
    if (!this.certification().certified) {
      await this.stop(rc.id)
      throw new NotCertifiedError(this.certification().reason)
    }
    progress({ phase: 'ready' })
    void this.fillNetnsPool() // after the start, not competing with it
    this.log.info('tenant container running', { image: rc.image, digest: rc.digest, id: rc.id, port: rc.port })
    return rc
  }

  /**
   * Once per runner (retried while Docker does not answer): step 5 compares the image ID Docker
   * reports with the image config digest on chain, which is what the classic image store uses as
   * the ID. Docker's containerd image store ("containerd-snapshotter") reports manifest digests
   * instead, so every launch would end in DockerImageMismatchError; say so before fetching.
   */
  private async checkEngine(): Promise<void> {
    this.engine ??= (async () => {
      let info: { DriverStatus?: unknown; Driver?: unknown }
      try {
        info = (await this.init.docker.info()) as { DriverStatus?: unknown; Driver?: unknown }
      } catch (err) {
        throw new DockerError(`Docker does not answer: ${(err as Error).message}`, { cause: err })
      }
      const status = Array.isArray(info.DriverStatus) ? (info.DriverStatus as unknown[]) : []
      const containerdStore = status.some(
        kv => Array.isArray(kv) && kv.some(v => typeof v === 'string' && v.startsWith('io.containerd.snapshotter'))
      )
      if (containerdStore) {
        throw new UnsupportedEngineError(
          `Docker uses the containerd image store (storage driver ${String(info.Driver)}), where image IDs are manifest digests; the gate checks Docker's image ID against the image config digest on chain and needs the classic image store: set "features": { "containerd-snapshotter": false } in /etc/docker/daemon.json and restart dockerd`
        )
      }
    })()
    try {
      await this.engine
    } catch (err) {
      if (!(err instanceof UnsupportedEngineError)) this.engine = undefined // Docker down: ask again next time
      throw err
    }
  }

  /** Docker holds the image under exactly `digest` (and, given `cid`, this runner loaded it from that CID). */
  private async hasImage(digest: string, cid?: string): Promise<boolean> {
    try {
      const info = await this.init.docker.getImage(digest).inspect()
      return info.Id === digest && (cid === undefined || (info.RepoTags ?? []).includes(verifiedTag(cid)))
    } catch {
      return false
    }
  }

  private async fetchAndLoad(
    rec: ImageRecord,
    req: LaunchRequest,
    progress: (p: LaunchProgress) => void
  ): Promise<void> {
    const { docker, source } = this.init
    const signal = req.signal
    const upload = new PassThrough({ highWaterMark: 4 << 20 })
    // Aborted uploads reject this promise; it is always awaited before launch() returns.
    const loading = (async () => {
      const res = await docker.loadImage(upload, { quiet: true })
      let out = ''
      for await (const c of res as AsyncIterable<Buffer | string>) out += c.toString()
      return out
    })()
    let loadFailed: unknown
    loading.catch((err: unknown) => {
      loadFailed = err
    })
    const inspector = new ImageTarInspector()
    const held: Uint8Array[] = []
    let heldBytes = 0
    let bytes = 0
    const write = async (b: Uint8Array): Promise<void> => {
      if (b.byteLength === 0) return
      if (!upload.write(b)) {
        await Promise.race([
          once(upload, 'drain', { signal }),
          loading.then(
            () => {},
            () => {}
          )
        ])
      }
      if (loadFailed !== undefined)
        throw new DockerError(`docker load failed: ${(loadFailed as Error).message}`, { cause: loadFailed })
    }
    try {
      progress({ phase: 'fetch', bytes: 0, total: rec.size })
      for await (const chunk of source.fetch(rec.cid, {
        providers: req.providers,
        keep: req.keep ?? this.init.keepImages === true,
        signal,
        onProgress: p => {
          progress({ phase: 'fetch', bytes: p.bytes, total: rec.size })
        }
      })) {
        inspector.update(chunk)
        bytes += chunk.byteLength
        if (bytes > rec.size)
          throw new ContentMismatchError(`content of ${rec.cid} is larger than the ${rec.size} bytes recorded on chain`)
        // Hold back at least the archive's last HOLD_BACK bytes until the checks pass. Chunks
        // (a fetch yields the pieces blocks arrived in, ~16 KiB) are queued and released in
        // writes of about UPLOAD_WRITE: one small write per piece costs Docker's HTTP upload
        // more (chunked encoding, a syscall each) than joining them.
        held.push(chunk)
        heldBytes += chunk.byteLength
        if (heldBytes >= UPLOAD_WRITE + HOLD_BACK) {
          let n = 0
          let out = 0
          while (n < held.length - 1 && heldBytes - out - held[n].byteLength >= HOLD_BACK) out += held[n++].byteLength
          if (n > 0) {
            const release = held.splice(0, n)
            heldBytes -= out
            await write(release.length === 1 ? release[0] : Buffer.concat(release, out))
          }
        }
      }
      if (bytes !== rec.size)
        throw new ContentMismatchError(`content of ${rec.cid} is ${bytes} bytes but the chain records ${rec.size}`)
      const info = inspector.finish()
      if (info.imageId !== rec.digest) throw new ImageDigestMismatchError(rec.digest, info.imageId)
      if (info.repoTags.length > 0)
        throw new InvalidImageTarError(
          `the archive would tag images on this host (${info.repoTags.join(', ')}); publish archives saved by image ID`
        )
    } catch (err) {
      upload.destroy(err instanceof Error ? err : new Error(String(err)))
      await loading.catch(() => {})
      throw err
    }
    progress({ phase: 'load' })
    upload.end(Buffer.concat(held))
    let out: string
    try {
      out = await loading
    } catch (err) {
      throw new DockerError(`docker load failed: ${(err as Error).message}`, { cause: err })
    }
    const reported: string[] = []
    for (const line of out.split('\n')) {
      if (line.trim() === '') continue
      let msg: { stream?: string; error?: string }
      try {
        msg = JSON.parse(line)
      } catch {
        continue
      }
      if (typeof msg.error === 'string') throw new DockerError(`docker load failed: ${msg.error}`)
      const m = /Loaded image ID: (sha256:[0-9a-f]{64})/.exec(msg.stream ?? '')
      if (m !== null) reported.push(m[1])
    }
    const wrong = reported.filter(id => id !== rec.digest)
    let actual: string | undefined
    try {
      actual = (await docker.getImage(rec.digest).inspect()).Id
    } catch {
      actual = undefined
    }
    if (wrong.length > 0 || actual !== rec.digest) {
      for (const id of wrong)
        await docker
          .getImage(id)
          .remove({ force: true })
          .catch(() => {})
      throw new DockerImageMismatchError(
        `docker reported ${[...reported, actual ?? 'no image'].join(', ')} after loading, expected ${rec.digest}; removed what it loaded`
      )
    }
    // loaded from bytes verified against the CID: an app launch of this CID may reuse it
    try {
      await docker.getImage(rec.digest).tag({ repo: VERIFIED_REPO, tag: rec.cid })
    } catch (err) {
      this.log.warn('tagging the verified image failed; app launches of it fetch it again', {
        digest: rec.digest,
        cid: rec.cid,
        err
      })
    }
  }

  private async waitReady(
    container: Docker.Container,
    to: RunningContainer,
    path: string,
    timeoutMs: number,
    signal?: AbortSignal
  ): Promise<void> {
    const deadline = this.now() + timeoutMs
    const url = to.url + path
    let lastErr = 'no answer'
    let n = 0
    for (;;) {
      signal?.throwIfAborted()
      try {
        await probe(to, path, 1000)
        return
      } catch (err) {
        lastErr = (err as Error).message
      }
      if (++n % 10 === 0) {
        const st = await container.inspect()
        if (!st.State.Running)
          throw new ContainerStartError(`container exited with code ${st.State.ExitCode} before answering on ${url}`)
      }
      if (this.now() > deadline)
        throw new ContainerStartError(`container did not answer on ${url} within ${timeoutMs} ms (${lastErr})`)
      await sleep(Math.min(20 * n, 100), signal)
    }
  }

  private async containerLogs(container: Docker.Container, tail: number): Promise<string> {
    const buf = await container.logs({ stdout: true, stderr: true, tail, follow: false })
    return demuxDockerLogs(buf)
  }

  async logs(idOrImage: string, opts: { tail?: number } = {}): Promise<string> {
    const rc = this.find(idOrImage)
    return await this.containerLogs(this.init.docker.getContainer(rc?.id ?? idOrImage), opts.tail ?? 100)
  }

  /** Stops (2 s grace) and removes a container; a container already gone is not an error. */
  private async discard(id: string): Promise<void> {
    const c = this.init.docker.getContainer(id)
    // Bounded: a Docker engine that stops answering (seen right after a dockerd restart) must
    // not hold up certification loss or the agent's shutdown.
    await c.stop({ t: 2, abortSignal: AbortSignal.timeout(DOCKER_CALL_MS) }).catch(() => {})
    await this.relays.get(id)?.stop()
    this.relays.delete(id)
    await c.remove({ force: true, abortSignal: AbortSignal.timeout(DOCKER_CALL_MS) }).catch((err: unknown) => {
      if ((err as { statusCode?: number }).statusCode !== 404)
        this.log.warn('could not remove a tenant container', { id, error: (err as Error).message })
    })
    // its network namespace is used by no one else: the holder goes with it
    const holder = this.holderOf.get(id)
    this.holderOf.delete(id)
    if (holder !== undefined) await this.removeHolder(holder)
  }

  async stop(idOrImage: string): Promise<boolean> {
    const rc = this.find(idOrImage)
    if (rc === undefined) return false
    this.running.delete(rc.id)
    await this.discard(rc.id)
    this.log.info('tenant container stopped', { image: rc.image, id: rc.id })
    return true
  }

  async stopAll(reason: string): Promise<number> {
    const ids = new Set(this.running.keys())
    this.running.clear()
    // namespace holders, pooled or left by an earlier run (a pool is refilled by the next launch
    // or certification, or by fillNetnsPool)
    this.poolGen++
    const holders = new Set(this.pool.splice(0))
    try {
      // any value of the label: tenants ('true') and namespace holders
      const filters = JSON.stringify({ label: [MANAGED_LABEL, `${NODE_LABEL}=${this.init.nodeId}`] })
      for (const c of await this.init.docker.listContainers({
        all: true,
        filters,
        abortSignal: AbortSignal.timeout(DOCKER_CALL_MS)
      }))
        if (c.Labels[MANAGED_LABEL] === HOLDER_MANAGED) holders.add(c.Id)
        else if (c.Labels[MANAGED_LABEL] === 'true') ids.add(c.Id)
    } catch (err) {
      this.log.warn('listing tenant containers failed', { error: (err as Error).message })
    }
    await Promise.all(
      [...ids].map(async id => {
        await this.discard(id)
      })
    )
    for (const h of this.holderOf.values()) holders.add(h)
    this.holderOf.clear()
    await Promise.all(
      [...holders].map(async id => {
        await this.removeHolder(id)
      })
    )
    // a holder being made right now is removed by its maker (poolGen moved on): wait for that,
    // bounded, so that an agent stopping leaves none behind
    const making = this.filling
    if (making !== undefined) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        making,
        new Promise<void>(resolve => {
          timer = setTimeout(resolve, DOCKER_CALL_MS)
        })
      ])
      clearTimeout(timer)
    }
    const leftover = stopLeftoverRelays(this.relayDir)
    if (leftover > 0) this.log.warn('stopped relays an earlier run left', { count: leftover })
    if (ids.size > 0) this.log.warn('stopped tenant containers', { count: ids.size, reason })
    return ids.size
  }
}

export function createContainerRunner(init: ContainerRunnerInit): ContainerRunner {
  return new Runner(init)
}
