// Agent configuration in layers (STYLE §9): typed defaults → config file (JSON) → QUORATE_*
// environment → flags. Validated once, here, at the edge; the result is a frozen object passed
// down. No module reads process.env for its settings after this point.
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../encoding/errors.ts'
import { parsePcrList as parseTpmPcrList } from '../attestation/tpm/index.ts'

export interface DeploySpec {
  readonly image: string
  /** Port the container answers on at 127.0.0.1 (its own loopback when isolated, the node's with host networking). */
  readonly port: number
  readonly args?: readonly string[]
  readonly env?: readonly string[]
}

export interface AgentConfig {
  /** State directory: keys, IPFS blocks, container log, agent state. */
  readonly home: string
  /** TPM to use (tpm2-tss TCTI string). */
  readonly tcti: string
  /** Chain RPC endpoint (CometBFT JSON-RPC; the embedded validator or a CometBFT node). */
  readonly chainRpc: string
  /** libp2p listen multiaddrs. */
  readonly listen: readonly string[]
  /**
   * TCP port of the bulk channel that sends images to peers (containers/bulk.ts), on the hosts
   * libp2p listens on; 0 = an ephemeral port. Fix it where a firewall or NAT must forward it.
   */
  readonly bulkPort: number
  /**
   * Local HTTP API (status, metrics, tenant proxy). host:port, loopback only (plain HTTP). The
   * default 127.0.0.1:8460, when no file, variable or flag chose it and it is taken (another agent
   * on this machine), becomes any free port (the agent prints its URL; httpListenUnchosen); a
   * chosen address that is taken fails, naming --http.
   */
  readonly httpListen: string
  /**
   * HTTPS endpoint for clients (tenant and app routes, TLS 1.3 with the node's attested key,
   * agent/tls.ts). host:port; '' = httpListen's host and port + 1000 (8460 → 9460: not the next
   * port, which agents started side by side on consecutive HTTP ports would take from each
   * other; any free port if taken, or when httpListen's port is 0); port 0 = any free port.
   */
  readonly httpsListen: string
  /** The https:// URL registered as the node's endpoint on chain; '' = https://<httpsListen host>:<bound port>. */
  readonly httpsEndpoint: string
  /** Committee size k (f = ⌊(k−1)/3⌋). */
  readonly committeeSize: number
  /** How long a certification lasts (ms), asked of verifiers. */
  readonly certificationTtlMs: number
  /** Re-attest when this much of the certification remains (ms). */
  readonly reattestBeforeExpiryMs: number
  /** Timeout for one certification round (ms). */
  readonly roundTimeoutMs: number
  /** PCRs quoted (sha256 bank). */
  readonly pcrs: readonly number[]
  /** Platform and OS image names the node claims (reference-value lookup keys). */
  readonly platform: string
  readonly osImage: string
  /** Where the firmware event log is read (TCG binary format). */
  readonly eventLogPath: string
  /** Tenant images to run once certified (names published on chain) and how to start them. */
  readonly deploy: readonly DeploySpec[]
  /** Software TPM only: a recorded TCG event log replayed into the TPM at start ('' = none). */
  readonly simulateBoot: string
  /**
   * Tenant networking: 'isolated' (default: loopback only, reached through a relay socket —
   * containers/relay.ts), 'host' (shares the node's loopback: tenants can reach swtpm, the chain
   * RPC and the agent API), 'none', or a Docker network name.
   */
  readonly containerNetwork: string
  /**
   * 'isolated' only: network namespaces made ahead of time by single-use holders, so that a
   * tenant starts ~150 ms sooner (containers/runner.ts netnsPool); 0–8, default 1; 0: none.
   */
  readonly netnsPool: number
  /**
   * Keep fetched tenant images in the IPFS store too (default false): this node then serves them
   * to peers and reloads them without any; Docker's image store holds them either way.
   */
  readonly keepImages: boolean
  /** Stop tenant containers when the agent stops ('stop') or leave them running ('keep'). */
  readonly onShutdown: 'stop' | 'keep'
  /** Tenant requests the proxy serves at once, all tenants together. */
  readonly proxyMaxInFlight: number
  /**
   * Tenant requests in flight for one tenant: a slow or flooded tenant keeps to this, so the
   * others still find slots (containers/proxy.ts also keeps each to a fair share under pressure).
   */
  readonly proxyMaxInFlightPerTenant: number
  /** Extra peers to dial (multiaddrs), besides those found on chain. */
  readonly peers: readonly string[]
  /**
   * Serverless apps (agent/apps.ts) this node serves at /app/<name>/: 'all', 'none', 'allow' (only
   * those in appsList) or 'deny' (all but those in appsList).
   */
  readonly appsPolicy: 'all' | 'none' | 'allow' | 'deny'
  readonly appsList: readonly string[]
  /** Sum of the memory limits of running and paused apps; an app whose limit alone exceeds it is refused. */
  readonly memoryBudgetBytes: number
  /** Sum of the image sizes of apps this node holds (Docker's copy and the IPFS blocks kept for peers). */
  readonly diskBudgetBytes: number
  /** Requests that may wait for one app's start; beyond it they get 503 with Retry-After. */
  readonly appQueueMax: number
  /** What an idle app becomes: 'auto' (paused; stopped or removed under budget pressure), 'pause', 'stop', 'remove'. */
  readonly appScaleDown: 'auto' | 'pause' | 'stop' | 'remove'
  /** How often the chain is asked whether apps this node holds were revoked or replaced (ms). */
  readonly appPollMs: number
  /** Period of the node's usage.record (ms). */
  readonly usagePeriodMs: number
}

export const defaults: AgentConfig = Object.freeze({
  // The one default home of every command (cli/commands/chain.ts defaultHome agrees): QUORATE_HOME,
  // then ~/.quorate. A system service names its state directory (NixOS: /var/lib/quorate).
  home: join(homedir(), '.quorate'),
  tcti: 'device:/dev/tpmrm0',
  chainRpc: 'http://127.0.0.1:26657',
  listen: ['/ip4/127.0.0.1/tcp/0'],
  bulkPort: 0,
  httpListen: '127.0.0.1:8460',
  httpsListen: '',
  httpsEndpoint: '',
  committeeSize: 7,
  certificationTtlMs: 10 * 60_000,
  reattestBeforeExpiryMs: 2 * 60_000,
  roundTimeoutMs: 15_000,
  pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13],
  platform: 'default',
  osImage: 'default',
  eventLogPath: '/sys/kernel/security/tpm0/binary_bios_measurements',
  deploy: [],
  simulateBoot: '',
  containerNetwork: 'isolated',
  netnsPool: 1,
  keepImages: false,
  onShutdown: 'stop',
  proxyMaxInFlight: 64,
  proxyMaxInFlightPerTenant: 16,
  peers: [],
  appsPolicy: 'all',
  appsList: [],
  memoryBudgetBytes: 1024 * 1024 * 1024,
  diskBudgetBytes: 4 * 1024 * 1024 * 1024,
  appQueueMax: 64,
  appScaleDown: 'auto',
  appPollMs: 1000,
  usagePeriodMs: 10 * 60_000
})

type Raw = Record<string, unknown>

const envNames: Record<keyof AgentConfig, string> = {
  home: 'QUORATE_HOME',
  tcti: 'QUORATE_TCTI',
  chainRpc: 'QUORATE_CHAIN_RPC',
  listen: 'QUORATE_LISTEN',
  bulkPort: 'QUORATE_BULK_PORT',
  httpListen: 'QUORATE_HTTP',
  httpsListen: 'QUORATE_HTTPS',
  httpsEndpoint: 'QUORATE_HTTPS_ENDPOINT',
  committeeSize: 'QUORATE_COMMITTEE_SIZE',
  certificationTtlMs: 'QUORATE_CERT_TTL_MS',
  reattestBeforeExpiryMs: 'QUORATE_REATTEST_BEFORE_MS',
  roundTimeoutMs: 'QUORATE_ROUND_TIMEOUT_MS',
  pcrs: 'QUORATE_PCRS',
  platform: 'QUORATE_PLATFORM',
  osImage: 'QUORATE_OS_IMAGE',
  eventLogPath: 'QUORATE_EVENT_LOG',
  deploy: 'QUORATE_DEPLOY',
  simulateBoot: 'QUORATE_SIMULATE_BOOT',
  containerNetwork: 'QUORATE_CONTAINER_NETWORK',
  netnsPool: 'QUORATE_NETNS_POOL',
  keepImages: 'QUORATE_KEEP_IMAGES',
  onShutdown: 'QUORATE_ON_SHUTDOWN',
  proxyMaxInFlight: 'QUORATE_PROXY_MAX_IN_FLIGHT',
  proxyMaxInFlightPerTenant: 'QUORATE_PROXY_MAX_IN_FLIGHT_PER_TENANT',
  peers: 'QUORATE_PEERS',
  appsPolicy: 'QUORATE_APPS_POLICY',
  appsList: 'QUORATE_APPS_LIST',
  memoryBudgetBytes: 'QUORATE_MEMORY_BUDGET_BYTES',
  diskBudgetBytes: 'QUORATE_DISK_BUDGET_BYTES',
  appQueueMax: 'QUORATE_APP_QUEUE_MAX',
  appScaleDown: 'QUORATE_APP_SCALE_DOWN',
  appPollMs: 'QUORATE_APP_POLL_MS',
  usagePeriodMs: 'QUORATE_USAGE_PERIOD_MS'
}

/** Parses a PCR list like `0-9,11,13` (the TPM module's parser; a config allows PCRs 0–23 only). */
export function parsePcrList(s: string): number[] {
  let list: number[]
  try {
    list = parseTpmPcrList(s)
  } catch (err) {
    throw new ConfigError(`PCR list: ${(err as Error).message}`, { cause: err })
  }
  const bad = list.filter(p => p > 23)
  if (bad.length > 0) throw new ConfigError(`PCR list: "${s}" is outside 0-23`)
  return list
}

function coerce(key: keyof AgentConfig, v: unknown, from: string): unknown {
  const d = defaults[key]
  if (Array.isArray(d)) {
    if (Array.isArray(v)) return v
    if (typeof v === 'string' && key === 'deploy') {
      try {
        return JSON.parse(v) as unknown
      } catch {
        throw new ConfigError(`${from}: deploy must be a JSON list like [{"image":"name","port":8080}]`)
      }
    }
    if (typeof v === 'string')
      return key === 'pcrs'
        ? parsePcrList(v)
        : v
            .split(',')
            .map(s => s.trim())
            .filter(Boolean)
    if (typeof v === 'number' && key === 'pcrs') return [v]
    throw new ConfigError(`${from}: ${key} must be a list`)
  }
  if (typeof d === 'boolean') {
    if (typeof v === 'boolean') return v
    if (v === 'true' || v === '1') return true
    if (v === 'false' || v === '0') return false
    throw new ConfigError(`${from}: ${key} must be true or false, got ${JSON.stringify(v)}`)
  }
  if (typeof d === 'number') {
    const n = typeof v === 'string' ? Number(v) : v
    if (typeof n !== 'number' || !Number.isFinite(n))
      throw new ConfigError(`${from}: ${key} must be a number, got ${JSON.stringify(v)}`)
    return n
  }
  if (typeof v !== 'string') throw new ConfigError(`${from}: ${key} must be a string, got ${JSON.stringify(v)}`)
  return v
}

function layer(into: Raw, src: Raw, from: string): void {
  for (const [k, v] of Object.entries(src)) {
    if (v === undefined) continue
    if (!Object.hasOwn(defaults, k))
      throw new ConfigError(`${from}: unknown setting "${k}" (known: ${Object.keys(defaults).join(', ')})`)
    into[k] = coerce(k as keyof AgentConfig, v, from)
  }
}

export interface LoadConfigOptions {
  file?: string
  env?: Record<string, string | undefined>
  flags?: Partial<Record<keyof AgentConfig, unknown>>
}

export function loadConfig(opts: LoadConfigOptions = {}): AgentConfig {
  const cfg: Raw = { ...defaults }
  const chosen = new Set<string>() // settings the config file gives
  const env = opts.env ?? process.env
  const file = opts.file ?? env.QUORATE_CONFIG
  if (file !== undefined && file !== '') {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'))
    } catch (err) {
      throw new ConfigError(`config file ${file}: ${(err as Error).message}`, { cause: err })
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new ConfigError(`config file ${file}: expected a JSON object`)
    layer(cfg, parsed as Raw, `config file ${file}`)
    for (const [k, v] of Object.entries(parsed)) if (v !== undefined) chosen.add(k)
  }
  const fromEnv: Raw = {}
  for (const [k, name] of Object.entries(envNames))
    if (env[name] !== undefined && env[name] !== '') fromEnv[k] = env[name]
  // tpm2-tools' variable is honoured after ours, as DESIGN says
  if (fromEnv.tcti === undefined && env.TPM2TOOLS_TCTI !== undefined && env.TPM2TOOLS_TCTI !== '')
    fromEnv.tcti = env.TPM2TOOLS_TCTI
  layer(cfg, fromEnv, 'environment')
  layer(cfg, (opts.flags ?? {}) as Raw, 'flags')
  const out = validate(cfg as unknown as AgentConfig)
  if (!chosen.has('httpListen') && fromEnv.httpListen === undefined && opts.flags?.httpListen === undefined)
    unchosenHttp.add(out)
  return out
}

/** Configurations whose httpListen nobody chose (loadConfig left the default). */
const unchosenHttp = new WeakSet<AgentConfig>()

/**
 * Whether httpListen is the default that no file, variable or flag chose: the agent then takes any
 * free port when 127.0.0.1:8460 is taken (another agent on this machine); a chosen address that is
 * taken fails, naming --http.
 */
export function httpListenUnchosen(c: AgentConfig): boolean {
  return unchosenHttp.has(c)
}

/** Whether a listen host is a loopback address (where plain HTTP may listen). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

/** HTTPS_PORT_OFFSET: the derived HTTPS port is httpListen's port plus this. */
export const HTTPS_PORT_OFFSET = 1000

/** The HTTPS listen address: httpsListen, or (when '') httpListen's host and port + HTTPS_PORT_OFFSET (0 stays 0). */
export function httpsListenAddress(c: Pick<AgentConfig, 'httpListen' | 'httpsListen'>): {
  listen: string
  derived: boolean
} {
  if (c.httpsListen !== '') return { listen: c.httpsListen, derived: false }
  const [host, port] = c.httpListen.split(':')
  const p = Number(port)
  return { listen: `${host}:${p === 0 || p + HTTPS_PORT_OFFSET > 65535 ? 0 : p + HTTPS_PORT_OFFSET}`, derived: true }
}

export function validate(c: AgentConfig): AgentConfig {
  const errs: string[] = []
  if (!Number.isInteger(c.committeeSize) || c.committeeSize < 1 || c.committeeSize > 100)
    errs.push(`committeeSize must be an integer 1-100 (got ${c.committeeSize})`)
  if (c.certificationTtlMs < 10_000) errs.push('certificationTtlMs must be at least 10000')
  if (c.reattestBeforeExpiryMs >= c.certificationTtlMs)
    errs.push('reattestBeforeExpiryMs must be less than certificationTtlMs')
  if (c.roundTimeoutMs < 100) errs.push('roundTimeoutMs must be at least 100')
  if (!Number.isInteger(c.bulkPort) || c.bulkPort < 0 || c.bulkPort > 65535)
    errs.push(`bulkPort must be a TCP port, or 0 for an ephemeral one (got ${c.bulkPort})`)
  if (!/^[^:]+:\d+$/.test(c.httpListen)) errs.push(`httpListen must be host:port (got ${c.httpListen})`)
  else if (!isLoopback(c.httpListen.split(':')[0]))
    errs.push(
      `httpListen ${c.httpListen} is not a loopback address: plain HTTP stays on 127.0.0.1 (or ::1, localhost); clients reach the node over HTTPS (httpsListen)`
    )
  if (c.httpsListen !== '' && !/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):\d+$/.test(c.httpsListen))
    errs.push(`httpsListen must be host:port or [ipv6]:port (got ${c.httpsListen})`)
  if (c.httpsEndpoint !== '' && !/^https:\/\/[^/?#\s]+\/?$/.test(c.httpsEndpoint))
    errs.push(`httpsEndpoint must be an https:// URL without a path (got ${c.httpsEndpoint})`)
  if (!/^https?:\/\//.test(c.chainRpc)) errs.push(`chainRpc must be an http(s) URL (got ${c.chainRpc})`)
  if (!/^(device|swtpm|mssim|tabrmd|libtpms|cmd)(:|$)/.test(c.tcti))
    errs.push(`tcti "${c.tcti}" is not a TCTI string like device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321`)
  if (c.onShutdown !== 'stop' && c.onShutdown !== 'keep') errs.push('onShutdown must be "stop" or "keep"')
  if (!Number.isInteger(c.netnsPool) || c.netnsPool < 0 || c.netnsPool > 8)
    errs.push(`netnsPool must be an integer 0-8 (got ${c.netnsPool})`)
  if (!Number.isInteger(c.proxyMaxInFlight) || c.proxyMaxInFlight < 1)
    errs.push(`proxyMaxInFlight must be a positive integer (got ${c.proxyMaxInFlight})`)
  if (
    !Number.isInteger(c.proxyMaxInFlightPerTenant) ||
    c.proxyMaxInFlightPerTenant < 1 ||
    c.proxyMaxInFlightPerTenant > c.proxyMaxInFlight
  ) {
    errs.push(
      `proxyMaxInFlightPerTenant must be an integer from 1 to proxyMaxInFlight (${c.proxyMaxInFlight}) (got ${c.proxyMaxInFlightPerTenant})`
    )
  }
  c.deploy.forEach((d, i) => {
    const x = d as unknown as Record<string, unknown>
    if (x === null || typeof x !== 'object') {
      errs.push(`deploy[${i}] must be an object {image, port, args?, env?}`)
      return
    }
    if (typeof x.image !== 'string' || x.image === '')
      errs.push(`deploy[${i}].image must be an image name published on chain`)
    if (typeof x.port !== 'number' || !Number.isInteger(x.port) || x.port < 1 || x.port > 65535)
      errs.push(`deploy[${i}].port must be a TCP port`)
    for (const k of ['args', 'env'])
      if (x[k] !== undefined && (!Array.isArray(x[k]) || !(x[k] as unknown[]).every(a => typeof a === 'string')))
        errs.push(`deploy[${i}].${k} must be a list of strings`)
  })
  for (const p of c.pcrs) if (!Number.isInteger(p) || p < 0 || p > 23) errs.push(`pcrs: ${p} is not a PCR index 0-23`)
  if (!['all', 'none', 'allow', 'deny'].includes(c.appsPolicy))
    errs.push(`appsPolicy must be all, none, allow or deny (got ${JSON.stringify(c.appsPolicy)})`)
  if (!['auto', 'pause', 'stop', 'remove'].includes(c.appScaleDown))
    errs.push(`appScaleDown must be auto, pause, stop or remove (got ${JSON.stringify(c.appScaleDown)})`)
  for (const k of ['memoryBudgetBytes', 'diskBudgetBytes', 'appQueueMax', 'appPollMs', 'usagePeriodMs'] as const)
    if (!Number.isSafeInteger(c[k]) || c[k] < 1) errs.push(`${k} must be a positive integer (got ${c[k]})`)
  if (errs.length > 0) throw new ConfigError(`invalid configuration:\n  - ${errs.join('\n  - ')}`)
  return Object.freeze({
    ...c,
    listen: Object.freeze([...c.listen]),
    pcrs: Object.freeze([...c.pcrs]),
    deploy: Object.freeze([...c.deploy]),
    peers: Object.freeze([...c.peers]),
    appsList: Object.freeze([...c.appsList])
  })
}
