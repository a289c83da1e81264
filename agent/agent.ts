// The agent: the one composition root that starts and stops every long-lived part in order
// (STYLE §7) and drives the lifecycle in agent/lifecycle.ts:
//
//   TPM → node key → (simulated boot, software TPM only) → libp2p host (attestation protocols +
//   IPFS) → chain client → container runner + tenant proxy → HTTP API → register → certify →
//   run the deployed tenants → re-attest before expiry, watch the chain, stop tenants when
//   certification ends.
//
// Stopping is the reverse: stop accepting (HTTP, protocols), abort the round in flight, stop
// tenants per policy, close the IPFS store and libp2p, close the TPM.
//
// The parts it wires do their own work: agent/certification.ts what a round does to the state,
// the gate and the metrics; agent/tenants.ts which tenants run (Docker reconciliation);
// agent/home.ts the node key and the container log kept across runs.
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import Docker from 'dockerode'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { openTpm, type Tpm, type TpmInfo } from '../attestation/tpm/index.ts'
import { createQuorumRules, MIN_COMMITTEE_SIZE } from '../attestation/quorum/index.ts'
import { ChainClient, type ChainKey } from '../chain/index.ts'
import {
  createImageStore,
  createContainerRunner,
  createTenantProxy,
  fileEventLog,
  CONTAINER_PCR,
  type ImageStore,
  type ContainerRunner,
  type TenantProxy,
  type RunningContainer,
  type ImageRegistry
} from '../containers/index.ts'
import { chainImageRegistry } from '../containers/chain-registry.ts'
import type { Deployment } from '../containers/deployments.ts'
import {
  createP2PHost,
  AttestationResponder,
  CommitteeMember,
  runCertificationRound,
  tpmMakeCredential,
  chainPort,
  memberChainPort,
  loadOrCreateBlsKey,
  blsRegistration,
  chainAppraiser,
  type P2PHost,
  type RoundProgress,
  type RoundResult
} from './p2p/index.ts'
import { QuorateError, TransientError } from '../encoding/errors.ts'
import { equal, toHex } from '../encoding/bytes.ts'
import { createLogger, type Logger } from '../encoding/log.ts'
import type { AgentConfig } from './config.ts'
import { Lifecycle, type AgentState } from './lifecycle.ts'
import { Certification } from './certification.ts'
import { Tenants, dockerProbe, type LaunchOptions } from './tenants.ts'
import { AppLoader, chainAppDirectory, type AppStatus } from './apps.ts'
import { UsageReporter } from './usage.ts'
import type { UsageRecordBody } from '../chain/types.ts'
import { containerLogForBoot, loadOrCreateNodeKey } from './home.ts'
import { Metrics } from './metrics.ts'
import { startHttpApi, type HttpApi, type HttpApiInit } from './http.ts'
import {
  loadOrCreateTlsKey,
  loadTlsIdentity,
  spkiSha256,
  startHttpsApi,
  type HttpsApi,
  type TlsIdentity
} from './tls.ts'
import { httpListenUnchosen, httpsListenAddress } from './config.ts'
import { createExplorer, type Explorer } from './explorer/server.ts'
import { eventLogView, localView } from './explorer/local.ts'
import { readBootEventLog, simulateMeasuredBoot } from './measure.ts'

/** A tenant the node runs once certified (containers/deployments.ts): image name on chain and how to start it. */
export type { Deployment }

export interface AgentInit {
  readonly config: AgentConfig
  readonly logger?: Logger
  /** Software TPM only: a recorded TCG event log to replay into the TPM (demo, tests). */
  readonly simulatedBootLog?: Uint8Array
  /** Reports lifecycle and round progress to a person waiting (the demo, `node start`). */
  readonly onEvent?: (e: AgentEvent) => void
  /** Do not run the automatic certify / re-attest loop (tests drive `certify()` themselves). */
  readonly manual?: boolean
}

export type AgentEvent =
  | { type: 'state'; state: AgentState }
  | { type: 'round'; progress: RoundProgress }
  | { type: 'tenant'; image: string; phase: string }
  | { type: 'warning'; message: string }

export interface AgentStatus {
  nodeId: string
  state: AgentState
  since: string
  tpm: { tcti: string; software: boolean; manufacturer?: string; resetCount?: number }
  p2p: string[]
  http?: string
  /** The HTTPS endpoint for clients, its TLS key hash (sha256 of the SPKI, hex) and whether the chain has certified that key (only then it serves). */
  https?: { url: string; tlsKey: string; serving: boolean }
  chain: string
  /** The last recorded round; `failedClaims` says why a refused node was refused (the claims its committee's quorum failed). */
  lastRound?: {
    round: number
    outcome: string
    failedClaims: readonly string[]
    committee: readonly string[]
    pass: number
    fail: number
    unresponsive: readonly string[]
    expiresAt: number
  }
  containers: Array<{ image: string; id: string; digest: string; cid: string; url: string }>
  /** Serverless apps this node has served since it started (agent/apps.ts). */
  apps: AppStatus[]
  verifier: { sessions: number }
}

/** How long a node waits for MIN_COMMITTEE_SIZE committee candidates before a round with fewer (see #awaitCandidates). */
const CANDIDATE_GRACE_MS = 15_000

/** How long /ui keeps following the chain after its last viewer left. */
const UI_IDLE_MS = 60_000

/** How long one shutdown step may take before stop() logs it and goes on (see #stopStep). */
const STOP_STEP_MS = 10_000

export class Agent {
  readonly config: AgentConfig
  readonly lifecycle = new Lifecycle()
  readonly metrics = new Metrics()
  readonly #m = {
    state: this.metrics.gauge('quorate_agent_state', 'current lifecycle state (1 = in this state)'),
    containers: this.metrics.gauge('quorate_tenant_containers', 'running tenant containers'),
    sessions: this.metrics.counter(
      'quorate_verifier_sessions_total',
      'certification sessions served as a committee member'
    ),
    inFlight: this.metrics.gauge('quorate_proxy_in_flight', 'tenant requests being proxied'),
    refused: this.metrics.counter(
      'quorate_proxy_refused_total',
      'tenant requests refused (503) for want of a slot, by the limit that refused them'
    ),
    apps: this.metrics.gauge('quorate_apps', 'serverless apps by state (running, paused, stopped, starting, removed)'),
    appRequests: this.metrics.counter('quorate_app_requests_total', 'requests served per serverless app'),
    appWake: this.metrics.gauge(
      'quorate_app_wake_ms',
      'how long the last start of each app took, request to ready, by kind (launch, unpause, restart)'
    ),
    appRefused: this.metrics.counter(
      'quorate_app_proxy_refused_total',
      'app requests refused (503) for want of a proxy slot, by the limit that refused them'
    ),
    served: this.metrics.counter(
      'quorate_image_dags_served_total',
      'whole images (DAGs) this node sent to peers, by channel (bulk: direct connection, stream: libp2p)'
    )
  }
  readonly #log: Logger
  readonly #init: AgentInit
  #tpm?: Tpm
  #tpmInfo?: TpmInfo
  #resetCount?: number
  #key?: ChainKey
  #host?: P2PHost
  #store?: ImageStore
  #runner?: ContainerRunner
  #docker = new Docker()
  #registry?: ImageRegistry
  #proxy?: TenantProxy
  #apps?: AppLoader
  #appProxy?: TenantProxy
  #usage?: UsageReporter
  #http?: HttpApi
  #https?: HttpsApi
  #tls?: TlsIdentity
  /** The chain recorded this TLS key with a passing certification: the HTTPS endpoint serves. */
  #tlsBound = false
  #chainId?: string
  #explorer?: Explorer
  #chain?: ChainClient
  #responder?: AttestationResponder
  #member?: CommitteeMember
  /** BLS verdict key (node.bls beside node.key), registered on chain with a proof of possession. */
  #bls?: Awaited<ReturnType<typeof loadOrCreateBlsKey>>['signer']
  #bootLog?: Uint8Array
  #certification?: Certification
  #tenants?: Tenants
  #timers = new Set<NodeJS.Timeout>()
  #abort = new AbortController()
  #roundInFlight?: Promise<RoundResult | undefined>
  #cycleInFlight?: Promise<void>
  #stopped = false
  #candidatesWaitSince?: number

  constructor(init: AgentInit) {
    this.config = init.config
    this.#init = init
    this.#log = init.logger ?? createLogger('quorate:agent')
    this.lifecycle.onChange((s, prev) => {
      this.#log.info('state', { state: s })
      this.#m.state.set(0, { state: prev.kind })
      this.#m.state.set(1, { state: s.kind })
      this.#init.onEvent?.({ type: 'state', state: s })
    })
  }

  get nodeId(): string {
    if (this.#key === undefined) throw new QuorateError('agent not started')
    return this.#key.peerId
  }

  get key(): ChainKey {
    if (this.#key === undefined) throw new QuorateError('agent not started')
    return this.#key
  }

  get tpm(): Tpm {
    if (this.#tpm === undefined) throw new QuorateError('agent not started')
    return this.#tpm
  }

  get store(): ImageStore {
    if (this.#store === undefined) throw new QuorateError('agent not started')
    return this.#store
  }

  get runner(): ContainerRunner {
    if (this.#runner === undefined) throw new QuorateError('agent not started')
    return this.#runner
  }

  get httpUrl(): string | undefined {
    return this.#http?.url
  }

  /** The HTTPS endpoint (https://host:port) clients use, once started. */
  get httpsUrl(): string | undefined {
    return this.#https?.url
  }

  /** sha256 of the DER SPKI of the node's TLS key (what its rounds bind), once started. */
  get tlsKey(): Uint8Array | undefined {
    return this.#tls?.spkiSha256
  }

  multiaddrs(): string[] {
    return this.#host?.getMultiaddrs().map(a => a.toString()) ?? []
  }

  /**
   * Boot → measure → register; then (unless manual) the certification loop runs in the background.
   * A start that fails closes whatever it had opened (libp2p, IPFS, HTTP, TPM) before it throws,
   * so the process that ran it can end.
   */
  async start(): Promise<void> {
    try {
      await this.#start()
    } catch (err) {
      await this.stop().catch((e: unknown) => {
        this.#log.warn('cleanup after a failed start failed', { err: e })
      })
      throw err
    }
  }

  async #start(): Promise<void> {
    const c = this.config
    await mkdir(c.home, { recursive: true, mode: 0o700 })

    // booting: TPM, node key, chain client
    this.#tpm = await openTpm({ tcti: c.tcti, logger: this.#log.child('tpm') })
    this.#tpmInfo = await this.#tpm.info()
    if (this.#tpmInfo.isSoftware) {
      const msg = `INSECURE: ${c.tcti} is a SOFTWARE TPM (${this.#tpmInfo.manufacturer.trim()} ${this.#tpmInfo.vendor.trim()}); its attestation proves nothing about real hardware`
      this.#log.warn(msg)
      this.#init.onEvent?.({ type: 'warning', message: msg })
    }
    this.#key = await loadOrCreateNodeKey(join(c.home, 'node.key'), this.#log)
    const bls = await loadOrCreateBlsKey(join(c.home, 'node.bls'))
    this.#bls = bls.signer
    if (bls.created) this.#log.info('created a new BLS verdict key', { path: join(c.home, 'node.bls') })
    this.#chain = new ChainClient({ url: c.chainRpc })

    // measuring
    this.lifecycle.to({ kind: 'measuring' })
    const clock = await this.#tpm.readClock()
    this.#resetCount = clock.resetCount
    const simulated =
      this.#init.simulatedBootLog ??
      (c.simulateBoot !== '' ? new Uint8Array(await readFile(c.simulateBoot)) : undefined)
    if (simulated !== undefined) {
      await simulateMeasuredBoot(this.#tpm, simulated, this.#log.child('measure'))
      this.#bootLog = simulated
    } else {
      this.#bootLog = await readBootEventLog(c.eventLogPath)
      if (this.#bootLog === undefined)
        this.#log.warn('no firmware event log found; firmware claims can only pass on golden PCR values', {
          path: c.eventLogPath
        })
    }
    const { path: containerLogPath, rebooted } = await containerLogForBoot(c.home, clock.resetCount)

    // the libp2p host: attestation protocols (node side and verifier side) and IPFS share it
    const host = (this.#host = await createP2PHost({
      privateKey: privateKeyFromProtobuf(this.#key.protobuf),
      listen: c.listen,
      logger: this.#log.child('p2p')
    }))
    const events = fileEventLog(containerLogPath)
    const responder = (this.#responder = new AttestationResponder({
      tpm: this.#tpm,
      logs: {
        eventLog: async () => this.#bootLog,
        containerLog: async () => {
          const t = await events.read()
          return t === '' ? undefined : t
        }
      },
      pcrs: [{ hash: 'sha256', pcrs: [...c.pcrs] }],
      logger: this.#log.child('responder')
    }))
    await responder.register(host)
    const key = this.#key
    const chain0 = this.#chain
    this.#member = new CommitteeMember({
      signer: { nodeId: key.peerId, publicKey: key.publicKey, sign: m => key.sign(m) },
      bls: bls.signer,
      chainId: async () => await chain0.chainId(),
      chain: memberChainPort(this.#chain, { key }), // with the node key: records a QC a node handed over but did not record
      appraise: chainAppraiser(this.#chain),
      makeCredential: tpmMakeCredential(),
      logger: this.#log.child('member')
    })
    await this.#member.register(host)
    this.#store = await createImageStore({
      dir: join(c.home, 'ipfs'),
      libp2p: this.#host,
      bulk: { port: c.bulkPort },
      logger: this.#log.child('ipfs')
    })

    // tenants: the gate consults the chain; the TPM measures each launch into the container PCR
    const chain = this.#chain
    const tpm = this.#tpm
    const registry = (this.#registry = chainImageRegistry(chain))
    this.#runner = createContainerRunner({
      docker: this.#docker,
      registry,
      source: this.#store,
      measurer: {
        extend: async (pcr, digest) => {
          await tpm.pcrExtend(pcr, { sha256: digest })
        }
      },
      eventLog: events,
      nodeId: key.peerId,
      network: c.containerNetwork,
      netnsPool: c.netnsPool,
      keepImages: c.keepImages,
      logger: this.#log.child('containers')
    })
    const runner = this.#runner
    this.#certification = new Certification({
      lifecycle: this.lifecycle,
      gate: runner,
      metrics: this.metrics,
      round: async onProgress =>
        await this.#boundRound(
          await runCertificationRound({
            host,
            responder,
            chain: chainPort(chain, key, { k: c.committeeSize, pollMs: 50 }),
            tlsKey: this.#tls?.spkiSha256,
            verdictTimeoutMs: c.roundTimeoutMs,
            signal: this.#abort.signal,
            logger: this.#log.child('round'),
            onProgress
          })
        ),
      onProgress: p => {
        this.#init.onEvent?.({ type: 'round', progress: p })
      }
    })
    this.#tenants = new Tenants({
      runner,
      probe: dockerProbe(this.#docker),
      configured: c.deploy,
      deploymentsFile: join(c.home, 'deployments.json'),
      providers: async () => await this.#peerAddrs(),
      images: registry,
      metrics: this.metrics,
      signal: this.#abort.signal,
      onProgress: (image, phase) => {
        this.#init.onEvent?.({ type: 'tenant', image, phase })
      },
      logger: this.#log.child('tenants')
    })
    // containers of an earlier run of this agent are not ours to trust: remove them (no duplicates)
    const leftover = await this.#runner.stopAll('agent restart')
    if (leftover > 0) this.#log.info('removed tenant containers left by an earlier run', { count: leftover })
    this.#proxy = createTenantProxy({
      certification: () => this.#runner?.certification() ?? { certified: false, reason: 'agent starting' },
      resolve: image => this.#runner?.get(image),
      why: async image => await this.#tenants?.why(image), // the 404's reason: not deployed, not published, revoked, launch failed
      maxConcurrent: c.proxyMaxInFlight,
      maxPerTenant: c.proxyMaxInFlightPerTenant,
      logger: this.#log.child('proxy')
    })
    this.#startApps(chain, key)
    // the explorer's pages at /ui: lazy, so it reads the chain only while someone looks
    const explorer = (this.#explorer = createExplorer({
      chain,
      logger: this.#log.child('explorer'),
      lazy: { idleMs: UI_IDLE_MS },
      local: async () => localView(this.status(), this.#bootLog, await events.read())
    }))
    const httpInit: HttpApiInit = {
      listen: c.httpListen,
      status: () => this.status(),
      ui: (req, res, path) => {
        explorer.handle(req, res, path)
      },
      eventLog: async () => eventLogView(this.nodeId, this.#bootLog, await events.read()),
      metrics: () => this.#renderMetrics(),
      tenant: this.#proxy.handler,
      app: this.#appProxy?.handler,
      logger: this.#log.child('http')
    }
    try {
      this.#http = await startHttpApi(httpInit)
    } catch (err) {
      // the default address taken is most likely another agent on this machine: any free port
      // then (printed at start, in /status); an address anyone chose (even 127.0.0.1:8460) fails naming --http
      if (!httpListenUnchosen(c) || !(err instanceof QuorateError)) throw err
      const listen = `${c.httpListen.slice(0, c.httpListen.lastIndexOf(':'))}:0`
      this.#http = await startHttpApi({ ...httpInit, listen })
      this.#log.info('the default HTTP port is taken; the HTTP API listens on any free port (set --http to choose)', {
        taken: c.httpListen,
        url: this.#http.url
      })
    }
    await this.#startHttps()

    // registering
    this.lifecycle.to({ kind: 'registering' })
    await this.#retrying('register', async () => {
      await this.register()
    })
    if (rebooted) {
      // The TPM was reset since this agent last ran (a reboot): whatever was certified before
      // describes another boot. End it on chain now instead of letting it run to expiry.
      const view = await this.#chainClient().node(this.nodeId)
      if (view?.effective === 'certified') {
        await this.#chainClient().requestAttestation(this.key, { reset: true })
        this.#log.warn('TPM reset since the last run (reboot): ended the previous certification on chain')
      }
    }
    this.lifecycle.to({ kind: 'awaiting-certification', round: 0 })
    if (this.#init.manual !== true) this.#schedule(0)
  }

  /** node.register on chain, when the registration is missing or differs (addresses, AK, EK). */
  async register(): Promise<void> {
    const chain = this.#chainClient()
    const responder = this.#responder
    if (responder === undefined) throw new QuorateError('agent not started')
    const id = await responder.identity()
    const addrs = this.multiaddrs()
    const view = await chain.node(this.nodeId)
    const r = view?.record
    const bls = this.#bls
    if (bls === undefined) throw new QuorateError('agent not started')
    const endpoint = this.#endpoint()
    const same =
      r !== undefined &&
      r.endpoint === endpoint &&
      equal(r.akPublic, id.akPublic) &&
      equal(r.ekCertificate, id.ekCertificate) &&
      r.blsPublicKey !== undefined &&
      equal(r.blsPublicKey, bls.publicKey) &&
      r.platform === this.config.platform &&
      r.os === this.config.osImage &&
      JSON.stringify(r.addrs) === JSON.stringify(addrs)
    if (same) return
    await chain.send(
      'node.register',
      {
        nodeId: this.nodeId,
        ekCertificate: id.ekCertificate,
        akPublic: id.akPublic,
        addrs,
        platform: this.config.platform,
        os: this.config.osImage,
        ...blsRegistration(bls, this.nodeId),
        ...(endpoint === undefined ? {} : { endpoint })
      },
      this.key
    )
    this.#log.info('registered on chain', { addrs })
  }

  /**
   * The TLS identity and the HTTPS endpoint (agent/tls.ts): the key from <home>/tls.key, a
   * certificate naming this node and the chain, TLS 1.3 on httpsListen (the derived default port
   * falls back to any free one when taken). It accepts connections only once the chain recorded
   * this key with a passing certification (#tlsBound).
   */
  async #startHttps(): Promise<void> {
    const chain = this.#chainClient()
    let chainId = ''
    await this.#retrying('chain id', async () => {
      chainId = await chain.chainId()
    })
    this.#chainId = chainId
    this.#tls = await loadTlsIdentity({
      path: join(this.config.home, 'tls.key'),
      nodeId: this.nodeId,
      chainId,
      logger: this.#log.child('tls')
    })
    const { listen, derived } = httpsListenAddress(this.config)
    const init = {
      listen,
      identity: this.#tls,
      routes: (path: string) => this.#http?.clientRoute(path), // the local API's /tenant/ and /app/ handlers
      serving: () => this.#tlsBound,
      logger: this.#log.child('https')
    }
    try {
      this.#https = await startHttpsApi(init)
    } catch (err) {
      if (!derived || !(err instanceof QuorateError)) throw err
      this.#log.info('the derived HTTPS port is taken; HTTPS on any free port', { listen })
      this.#https = await startHttpsApi({ ...init, listen: `${listen.slice(0, listen.lastIndexOf(':'))}:0` })
    }
    if (this.#endpoint() === undefined)
      this.#log.warn(
        'HTTPS listens on a wildcard address: set httpsEndpoint to the URL clients reach, or none can find this node',
        {
          url: this.#https.url
        }
      )
  }

  /**
   * Reads <home>/tls.key again (the certification loop does, each pass): when it holds another key
   * than the one in use (replaced, or removed and made anew), the endpoint switches to it and
   * accepts no connection until a round binds it. True when the key changed.
   */
  async reloadTlsKey(): Promise<boolean> {
    const https = this.#https
    const chainId = this.#chainId
    if (https === undefined || chainId === undefined || this.#tls === undefined) return false
    const { key } = await loadOrCreateTlsKey(join(this.config.home, 'tls.key'), this.#log.child('tls'))
    if (equal(spkiSha256(key), this.#tls.spkiSha256)) return false
    const next = await loadTlsIdentity({
      path: join(this.config.home, 'tls.key'),
      nodeId: this.nodeId,
      chainId,
      logger: this.#log.child('tls')
    })
    this.#tlsBound = false
    this.#tls = next
    https.setIdentity(next)
    this.#log.warn('tls.key holds a new key: HTTPS refuses connections until a round binds it', {
      spkiSha256: toHex(next.spkiSha256)
    })
    return true
  }

  /**
   * The endpoint registered on chain: httpsEndpoint, or the HTTPS listener's URL — none when that
   * names a wildcard address (0.0.0.0, ::), which no client can dial: the node then serves no
   * clients until httpsEndpoint says where it is reached (warned at start).
   */
  #endpoint(): string | undefined {
    if (this.config.httpsEndpoint !== '') return this.config.httpsEndpoint
    const url = this.#https?.url
    return url === undefined || /^https:\/\/(0\.0\.0\.0|\[::\]):/.test(url) ? undefined : url
  }

  /**
   * After a round: the HTTPS endpoint serves only if the chain now records this node's current
   * TLS key (a pass records the key its request named; anything else leaves it unserved).
   */
  async #boundRound(r: RoundResult): Promise<RoundResult> {
    // a chain read that fails here must not turn a recorded round into an error: the loop asks again
    await this.#refreshTlsBound().catch((err: unknown) => {
      this.#log.warn('could not read the TLS key on chain after the round; will ask again', { err })
    })
    return r
  }

  async #refreshTlsBound(): Promise<void> {
    const mine = this.#tls?.spkiSha256
    const rec = (await this.#chainClient().node(this.nodeId))?.record
    const bound = mine !== undefined && rec?.tlsKey !== undefined && equal(rec.tlsKey, mine)
    if (bound !== this.#tlsBound)
      this.#log.info(bound ? 'TLS key certified: HTTPS serves' : 'TLS key not certified: HTTPS refuses connections')
    this.#tlsBound = bound
  }

  /** One certification round now. Resolves with its result (pass or fail). */
  async certify(): Promise<RoundResult> {
    const cert = this.#certification
    if (cert === undefined) throw new QuorateError('agent not started')
    const run = cert.run()
    this.#roundInFlight = run
    try {
      return await run
    } finally {
      this.#roundInFlight = undefined
    }
  }

  /** Sends the usage record of the period so far now (as at the end of each usagePeriodMs). */
  async flushUsage(): Promise<UsageRecordBody | undefined> {
    if (this.#usage === undefined) throw new QuorateError('agent not started')
    return await this.#usage.flush()
  }

  /** Runs a tenant now (if certified) and again whenever certification is regained. */
  async deploy(d: Deployment, opts: LaunchOptions = {}): Promise<RunningContainer> {
    if (this.#tenants === undefined) throw new QuorateError('agent not started')
    return await this.#tenants.deploy(d, opts)
  }

  /**
   * Serverless apps: loaded on their first request at /app/<name>/, scaled to zero when idle,
   * stopped on revocation (agent/apps.ts); their traffic is recorded on chain every usagePeriodMs.
   */
  #startApps(chain: ChainClient, key: ChainKey): void {
    const c = this.config
    const runner = this.runner
    const store = this.store
    const docker = this.#docker
    const usage = (this.#usage = new UsageReporter({
      nodeId: key.peerId,
      send: async body => {
        await chain.send('usage.record', body, key)
      },
      periodMs: c.usagePeriodMs,
      logger: this.#log.child('usage')
    }))
    const apps = (this.#apps = new AppLoader({
      directory: chainAppDirectory(chain),
      runner,
      images: {
        remove: async img => {
          await docker.getImage(img.digest).remove({ force: false })
          await store.unpin(img.cid)
        }
      },
      providers: async name => await this.#appProviders(name),
      inFlight: name => this.#appProxy?.inFlightOf(name) ?? 0,
      policy: c.appsPolicy,
      list: c.appsList,
      memoryBudgetBytes: c.memoryBudgetBytes,
      diskBudgetBytes: c.diskBudgetBytes,
      queueMax: c.appQueueMax,
      scaleDown: c.appScaleDown,
      pollMs: c.appPollMs,
      signal: this.#abort.signal,
      onProgress: (name, phase) => {
        this.#init.onEvent?.({ type: 'tenant', image: `app:${name}`, phase })
      },
      logger: this.#log.child('apps')
    }))
    this.#appProxy = createTenantProxy({
      prefix: '/app/',
      certification: () => runner.certification(),
      resolve: name => apps.resolve(name),
      account: (name, bytesIn, bytesOut) => {
        apps.account(name, bytesIn, bytesOut)
        usage.add(name, bytesIn, bytesOut)
      },
      // one app may use every slot of the app proxy; the fair share still applies between apps
      maxConcurrent: c.proxyMaxInFlight,
      maxPerTenant: c.proxyMaxInFlight,
      logger: this.#log.child('app-proxy')
    })
    apps.start()
    usage.start()
  }

  /** Providers of an app's image: nodes that recorded usage of it first (they ran it and keep its blocks), then every other. */
  async #appProviders(name: string): Promise<string[]> {
    const all = await this.#peerAddrs()
    const usage = await this.#chainClient()
      .appUsage(name)
      .catch(() => undefined)
    const ran = new Set((usage?.nodes ?? []).map(n => n.nodeId))
    if (ran.size === 0) return all
    const first = all.filter(a => ran.has(a.slice(a.lastIndexOf('/p2p/') + 5)))
    return [...first, ...all.filter(a => !first.includes(a))]
  }

  /** Providers for an image: every registered node's addresses (cheap at demo scale; the store dials only what it needs). */
  async #peerAddrs(): Promise<string[]> {
    const nodes = await this.#chainClient().nodes('all')
    const out: string[] = []
    for (const n of nodes) {
      if (n.nodeId === this.nodeId) continue
      for (const a of n.record?.addrs ?? []) out.push(a.includes('/p2p/') ? a : `${a}/p2p/${n.nodeId}`)
    }
    return out
  }

  // The background loop: certify, run tenants, re-attest before expiry, watch the chain.
  #schedule(delayMs: number): void {
    if (this.#stopped) return
    const t = setTimeout(() => {
      this.#timers.delete(t)
      const run = this.#cycle()
      this.#cycleInFlight = run
      void run.finally(() => {
        if (this.#cycleInFlight === run) this.#cycleInFlight = undefined
      })
    }, delayMs)
    this.#timers.add(t)
  }

  async #cycle(): Promise<void> {
    if (this.#stopped) return
    try {
      const s = this.lifecycle.state
      if (s.kind === 'certified') {
        // still certified on chain? (revocations and QCs of failure end it before expiry)
        if (this.#registry === undefined) throw new QuorateError('agent not started')
        const st = await this.#registry.isCertified(this.nodeId)
        const now = Date.now()
        if (!st.certified) {
          await this.#refreshTlsBound()
          await this.#certification?.lost(st)
          this.#schedule(1000)
          return
        }
        // re-attest before the certificate expires, and at least every certificationTtlMs
        // (members choose how long their verdicts last; the node may want fresher evidence)
        const due =
          Math.min(s.expiresAt, this.lifecycle.since + this.config.certificationTtlMs) -
          this.config.reattestBeforeExpiryMs
        if (!this.#tlsBound) await this.#refreshTlsBound()
        // a replaced TLS key is bound by a round now, not at the next re-attestation
        if (due > now && !(await this.reloadTlsKey())) {
          await this.#tenants?.reconcile()
          this.#schedule(Math.min(5000, due - now))
          return
        }
      }
      if (s.kind === 'degraded' && s.previous === 'registering') await this.register()
      if (s.kind !== 'certified' && (await this.#awaitCandidates(s))) return
      const r = await this.certify()
      if (r.outcome === 'pass') {
        await this.#tenants?.reconcile()
        this.#schedule(1000)
      } else {
        this.#schedule(30_000)
      }
    } catch (err) {
      if (this.#stopped) return
      const reason = err instanceof Error ? err.message : String(err)
      this.#log.warn('certification cycle failed; will retry', { err })
      const cur = this.lifecycle.state.kind
      if (cur !== 'degraded' && this.lifecycle.can('degraded'))
        this.lifecycle.to({ kind: 'degraded', reason, previous: cur })
      else if (cur === 'degraded')
        this.lifecycle.to({
          kind: 'degraded',
          reason,
          previous: (this.lifecycle.state as { previous: AgentState['kind'] }).previous
        })
      this.#schedule(err instanceof TransientError ? 2000 : 5000)
    }
  }

  /**
   * The chain fixes a round's committee when the round opens: opened with no candidate it stays
   * open and empty until its deadline; opened while the peers of a network starting together are
   * still registering, its committee is needlessly small. So a node that is not certified waits
   * for as many candidates (certified nodes and genesis verifiers with a BLS key) as could serve,
   * up to MIN_COMMITTEE_SIZE — at most CANDIDATE_GRACE_MS, and for one at least. True when it
   * waits (the next cycle is scheduled).
   */
  async #awaitCandidates(s: AgentState): Promise<boolean> {
    const chain = this.#chainClient()
    const others = (await chain.candidates(this.nodeId)).length
    const possible = (await chain.nodes('certified')).filter(n => n.nodeId !== this.nodeId).length
    const need = Math.max(1, Math.min(MIN_COMMITTEE_SIZE, possible))
    this.#candidatesWaitSince ??= Date.now()
    if (others >= need || (others > 0 && Date.now() - this.#candidatesWaitSince >= CANDIDATE_GRACE_MS)) {
      this.#candidatesWaitSince = undefined
      return false
    }
    const reason = `waiting for committee candidates to register: ${others} of ${need} (certified nodes or genesis verifiers with a BLS key)`
    if (!(s.kind === 'degraded' && s.reason === reason) && this.lifecycle.can('degraded'))
      this.lifecycle.to({ kind: 'degraded', reason, previous: s.kind === 'degraded' ? s.previous : s.kind })
    this.#schedule(1000)
    return true
  }

  async #retrying(what: string, fn: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await fn()
        return
      } catch (err) {
        if (this.#stopped || attempt >= 30 || !(err instanceof TransientError)) throw err
        this.#log.warn(`${what} failed; retrying`, { attempt, err })
        await new Promise(resolve => setTimeout(resolve, Math.min(5000, 200 * attempt)))
      }
    }
  }

  #chainClient(): ChainClient {
    if (this.#chain === undefined) throw new QuorateError('agent not started')
    return this.#chain
  }

  #renderMetrics(): string {
    this.#m.containers.set(this.#runner?.list().length ?? 0)
    this.#m.sessions.setTotal(this.#member?.sessions ?? 0)
    this.#m.inFlight.set(this.#proxy?.inFlight ?? 0)
    for (const [limit, n] of Object.entries(this.#proxy?.refused() ?? {})) this.#m.refused.setTotal(n, { limit })
    const served = this.#store?.served()
    if (served !== undefined) for (const [channel, n] of Object.entries(served)) this.#m.served.setTotal(n, { channel })
    const apps = this.#apps?.list() ?? []
    for (const state of ['starting', 'running', 'paused', 'stopped', 'removed'])
      this.#m.apps.set(apps.filter(a => a.state === state).length, { state })
    for (const a of apps) {
      this.#m.appRequests.setTotal(a.requests, { app: a.name })
      if (a.lastWake !== undefined) this.#m.appWake.set(a.lastWake.ms, { app: a.name, kind: a.lastWake.kind })
    }
    for (const [limit, n] of Object.entries(this.#appProxy?.refused() ?? {})) this.#m.appRefused.setTotal(n, { limit })
    return this.metrics.render()
  }

  status(): AgentStatus {
    const r = this.#certification?.last
    return {
      nodeId: this.#key?.peerId ?? '',
      state: this.lifecycle.state,
      since: new Date(this.lifecycle.since).toISOString(),
      tpm: {
        tcti: this.config.tcti,
        software: this.#tpmInfo?.isSoftware ?? false,
        manufacturer: this.#tpmInfo?.manufacturer,
        resetCount: this.#resetCount
      },
      p2p: this.multiaddrs(),
      http: this.#http?.url,
      https:
        this.#https === undefined || this.#tls === undefined
          ? undefined
          : { url: this.#https.url, tlsKey: toHex(this.#tls.spkiSha256), serving: this.#tlsBound },
      chain: this.config.chainRpc,
      lastRound:
        r === undefined
          ? undefined
          : {
              round: r.round,
              outcome: r.outcome,
              failedClaims: r.failedClaims,
              committee: r.committee,
              pass: r.pass,
              fail: r.fail,
              unresponsive: r.unresponsive,
              expiresAt: r.expiresAt
            },
      containers: (this.#runner?.list() ?? []).map(c => ({
        image: c.image,
        id: c.id,
        digest: c.digest,
        cid: c.cid,
        url: c.url
      })),
      apps: this.#apps?.list() ?? [],
      verifier: { sessions: this.#member?.sessions ?? 0 }
    }
  }

  /** Graceful stop: stop accepting, abort the round in flight, stop tenants per policy, close everything. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    if (this.lifecycle.can('stopping')) this.lifecycle.to({ kind: 'stopping' })
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    // Every step is bounded: a peer, Docker or the TPM that stops answering must not keep the
    // agent (or `systemctl stop`) from ending; a step that overruns is logged by name.
    await this.#stopStep('http api', async () => {
      await this.#explorer?.stop() // ends the /ui event streams, which would hold the listener open
      await this.#http?.stop()
    })
    await this.#stopStep('https endpoint', async () => {
      await this.#https?.stop()
    })
    this.#abort.abort(new QuorateError('agent stopping'))
    await this.#stopStep('attestation round', async () => {
      await this.#roundInFlight
    })
    await this.#stopStep('certification cycle', async () => {
      await this.#cycleInFlight
    })
    const host = this.#host
    if (host !== undefined) {
      await this.#stopStep('attestation member', async () => {
        await this.#member?.unregister(host)
      })
      await this.#stopStep('attestation responder', async () => {
        await this.#responder?.unregister(host)
      })
    }
    this.#apps?.stop()
    this.#usage?.stop()
    await this.#stopStep(
      'usage record',
      async () => {
        await this.#usage?.flush()
      },
      3000
    )
    this.#appProxy?.close()
    this.#proxy?.close()
    if (this.config.onShutdown === 'stop')
      await this.#stopStep(
        'tenant containers',
        async () => {
          await this.#runner?.stopAll('agent stopping')
        },
        20_000
      )
    await this.#stopStep('image store', async () => {
      await this.#store?.stop()
    })
    await this.#stopStep('p2p host', async () => {
      await host?.stop()
    })
    this.#chain?.close()
    await this.#stopStep('tpm', async () => {
      await this.#tpm?.close()
    })
    this.lifecycle.to({ kind: 'stopped' })
  }

  async #stopStep(step: string, fn: () => Promise<void>, limitMs = STOP_STEP_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const overran = new Promise<'overran'>(resolve => {
      timer = setTimeout(() => {
        resolve('overran')
      }, limitMs)
    })
    const done = fn().then(
      () => 'done' as const,
      (err: unknown) => {
        if (!(err instanceof QuorateError && err.message === 'agent stopping'))
          this.#log.warn('shutdown step failed; going on', { step, err })
        return 'failed' as const
      }
    )
    const r = await Promise.race([done, overran])
    clearTimeout(timer)
    if (r === 'overran') this.#log.warn('shutdown step did not finish in time; going on', { step, limitMs })
  }
}

/** The quorum rules the chain needs, for a composition root that embeds a validator. */
export { createQuorumRules, CONTAINER_PCR }
