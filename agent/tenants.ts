// The tenants this node runs: what should run (the config's deployments, `<home>/deployments.json`
// written by `quorate deploy`, and those added through deploy()), launched through the container
// gate, relaunched when Docker lost them, stopped when no longer deployed. The gate itself (check →
// verify → measure → start) is containers/runner.ts; this module only decides what to ask it.
// Its ports are narrow (STYLE §4) so that the agent is the only place that knows Docker and chain.
import type Docker from 'dockerode'
import { readDeployments, type Deployment } from '../containers/deployments.ts'
import type { ContainerRunner, LaunchPhase, RunningContainer } from '../containers/index.ts'
import type { Logger } from '../encoding/log.ts'
import type { Counter, Gauge, Metrics } from './metrics.ts'

/** Whether a tenant container still runs; throws when Docker cannot be asked. */
export interface ContainerProbe {
  running(id: string): Promise<boolean>
}

/** The probe over Docker: a container Docker no longer knows (404) is not running. */
export function dockerProbe(docker: Pick<Docker, 'getContainer'>): ContainerProbe {
  return {
    running: async id => {
      try {
        return (await docker.getContainer(id).inspect()).State.Running
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return false
        throw err
      }
    }
  }
}

export interface TenantsInit {
  readonly runner: Pick<ContainerRunner, 'launch' | 'list' | 'get' | 'stop'>
  readonly probe: ContainerProbe
  /** Deployments from the agent's configuration. */
  readonly configured: readonly Deployment[]
  /** `<home>/deployments.json`, re-read on every reconcile. */
  readonly deploymentsFile: string
  /** Peers that may hold an image (multiaddrs with /p2p/), asked at each launch. */
  readonly providers: () => Promise<string[]>
  readonly metrics: Metrics
  /** Aborted when the agent stops: launches end, refusals are no longer worth a warning. */
  readonly signal: AbortSignal
  readonly onProgress?: (image: string, phase: LaunchPhase) => void
  /** What the chain says of an image name (ImageRegistry.getImage), for why(). */
  readonly images?: { getImage(name: string): Promise<ChainImage | undefined> }
  readonly logger: Logger
  readonly now?: () => number
}

/** What why() needs of an image's chain record. */
export interface ChainImage {
  readonly cid: string
  readonly revoked: boolean
}

export interface LaunchOptions {
  readonly signal?: AbortSignal
  readonly onProgress?: (phase: LaunchPhase) => void
}

interface TenantMetrics {
  launches: Counter
  relaunches: Counter
  launchSeconds: Gauge
  fetched: Counter
}

function tenantMetrics(m: Metrics): TenantMetrics {
  return {
    launches: m.counter('quorate_tenant_launches_total', 'tenant launches by outcome'),
    relaunches: m.counter('quorate_tenant_relaunches_total', 'tenant containers found dead and relaunched'),
    launchSeconds: m.gauge(
      'quorate_tenant_launch_seconds',
      'how long the last launch of each image took, gate check to ready'
    ),
    fetched: m.counter(
      'quorate_image_fetched_bytes_total',
      'tenant image bytes fetched from peers (and verified) for launches'
    )
  }
}

/** How long a why() answer is reused, how many are kept, how many chain lookups run at once. */
const WHY_TTL_MS = 2000
const WHY_CACHE_MAX = 256
const WHY_MAX_LOOKUPS = 4

export class Tenants {
  readonly #init: TenantsInit
  readonly #m: TenantMetrics
  #added: Deployment[] = []
  /** The last refused launch of each deployed image (cleared when one starts). */
  readonly #failed = new Map<string, { message: string; at: number }>()
  /** why()'s recent chain lookups (a 404 flood for one name asks the chain once per WHY_TTL_MS). */
  readonly #looked = new Map<string, { at: number; rec: Promise<ChainImage | undefined | null> }>()
  #looking = 0

  constructor(init: TenantsInit) {
    this.#init = init
    this.#m = tenantMetrics(init.metrics)
  }

  /** Runs a tenant now (through the gate, so only while certified) and again on every reconcile. */
  async deploy(d: Deployment, opts: LaunchOptions = {}): Promise<RunningContainer> {
    this.#added = [...this.#added.filter(x => x.image !== d.image), d]
    return await this.#launch(d, opts)
  }

  /** Relaunches tenants Docker lost, starts what is missing and stops what is no longer wanted. */
  async reconcile(): Promise<void> {
    const { runner, logger: log } = this.#init
    const fromFile = await readDeployments(this.#init.deploymentsFile).catch((err: unknown) => {
      log.warn('cannot read deployments.json; keeping the current tenants', { err })
      return undefined
    })
    if (fromFile === undefined) return
    // a tenant that died (crashed, or dockerd restarted without live-restore) is relaunched
    // through the gate, which measures the new launch like the first
    for (const c of runner.list()) {
      if (c.app !== undefined) continue // serverless apps are agent/apps.ts's
      let running: boolean
      try {
        running = await this.#init.probe.running(c.id)
      } catch (err) {
        log.warn('cannot reach Docker to check tenants; will retry', { err })
        return
      }
      if (!running) {
        log.warn('tenant container is gone; relaunching', { image: c.image, id: c.id })
        this.#m.relaunches.inc({ image: c.image })
        await runner.stop(c.id).catch(() => {})
      }
    }
    const wanted = new Map<string, Deployment>()
    for (const d of [...this.#init.configured, ...fromFile, ...this.#added]) wanted.set(d.image, d)
    for (const d of wanted.values()) {
      if (runner.get(d.image) !== undefined) continue
      await this.#launch(d, { signal: this.#init.signal }).catch((err: unknown) => {
        if (!this.#init.signal.aborted) log.warn('tenant launch refused', { image: d.image, err })
      })
    }
    for (const image of this.#failed.keys()) if (!wanted.has(image)) this.#failed.delete(image)
    for (const c of runner.list()) {
      if (wanted.has(c.image) || c.app !== undefined) continue
      log.info('stopping a tenant that is no longer deployed', { image: c.image })
      await runner.stop(c.id).catch((err: unknown) => {
        log.warn('could not stop tenant', { image: c.image, err })
      })
    }
  }

  /**
   * Why no container of `image` runs here, in a sentence (the tenant proxy's 404): not deployed on
   * this node, not published or revoked on chain, its last launch refused (and why), or not
   * launched yet. undefined when it runs.
   */
  async why(image: string): Promise<string | undefined> {
    if (this.#init.runner.get(image) !== undefined) return undefined
    const fromFile = await readDeployments(this.#init.deploymentsFile).catch(() => [] as Deployment[])
    const deployed = [...this.#init.configured, ...fromFile, ...this.#added].some(d => d.image === image)
    const rec = await this.#lookUp(image)
    const q = JSON.stringify(image)
    // null: the chain could not be asked; undefined: no record
    const onChain =
      rec === null
        ? ''
        : rec === undefined
          ? 'not published on chain (quorate image publish)'
          : rec.revoked
            ? `revoked on chain (${rec.cid})`
            : `published on chain as ${rec.cid}`
    if (!deployed)
      return `image ${q} is not deployed on this node (quorate deploy ${image} --port P)${onChain === '' ? '' : `; it is ${onChain}`}`
    const failed = this.#failed.get(image)
    if (failed !== undefined) {
      const ago = Math.max(0, Math.round(((this.#init.now?.() ?? Date.now()) - failed.at) / 1000))
      return `image ${q} is deployed here but its last launch (${ago} s ago) failed: ${failed.message}`
    }
    return `image ${q} is deployed here and not launched yet (the agent launches deployments within seconds once certified)${onChain === '' ? '' : `; it is ${onChain}`}`
  }

  /**
   * The chain's record of a name for why(): null when the chain cannot be asked now. Made-up names
   * cost a query each, so at most WHY_MAX_LOOKUPS run at once (the rest answer null), and an
   * answer is reused for WHY_TTL_MS (WHY_CACHE_MAX names kept).
   */
  async #lookUp(image: string): Promise<ChainImage | undefined | null> {
    const images = this.#init.images
    if (images === undefined) return null
    const now = this.#init.now?.() ?? Date.now()
    const hit = this.#looked.get(image)
    if (hit !== undefined && now - hit.at < WHY_TTL_MS) return await hit.rec
    if (this.#looking >= WHY_MAX_LOOKUPS) return null
    for (const [k, v] of this.#looked) if (now - v.at >= WHY_TTL_MS) this.#looked.delete(k)
    if (this.#looked.size >= WHY_CACHE_MAX) this.#looked.delete(this.#looked.keys().next().value as string)
    this.#looking++
    const rec = images
      .getImage(image)
      .catch(() => null)
      .finally(() => {
        this.#looking--
      })
    this.#looked.set(image, { at: now, rec })
    return await rec
  }

  async #launch(d: Deployment, opts: LaunchOptions): Promise<RunningContainer> {
    const providers = [...(d.providers ?? []), ...(await this.#init.providers())]
    const t0 = performance.now()
    let fetched = 0
    const started = this.#init.runner.launch({
      image: d.image,
      port: d.port,
      args: d.args,
      env: d.env,
      healthPath: d.healthPath,
      user: d.user,
      limits:
        d.memoryBytes !== undefined || d.pids !== undefined ? { memoryBytes: d.memoryBytes, pids: d.pids } : undefined,
      providers,
      signal: opts.signal === undefined ? this.#init.signal : AbortSignal.any([opts.signal, this.#init.signal]),
      onProgress: p => {
        if (p.phase === 'fetch' && p.bytes !== undefined) fetched = p.bytes
        opts.onProgress?.(p.phase)
        this.#init.onProgress?.(d.image, p.phase)
      }
    })
    let outcome = 'refused'
    try {
      const c = await started.catch((err: unknown) => {
        if (!this.#init.signal.aborted)
          this.#failed.set(d.image, { message: (err as Error).message, at: this.#init.now?.() ?? Date.now() })
        throw err
      })
      this.#failed.delete(d.image)
      outcome = 'started'
      this.#m.launchSeconds.set(Math.round(performance.now() - t0) / 1000, { image: d.image })
      return c
    } finally {
      this.#m.launches.inc({ outcome })
      this.#m.fetched.inc({}, fetched)
    }
  }
}
