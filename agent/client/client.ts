// The client: finds certified nodes on chain, orders them by measured TLS handshake time, checks
// each node before sending to it, and fails over. Per node, in this order (docs/clients.md):
//   1. node/<id>, proven against a verified header: certified, unexpired at that header's time,
//      an https endpoint and the TLS key hash its certification bound (verify.ts checkNodeRecord);
//   2. its QC re-verified here: the round's committee and members' BLS keys read with proofs, the
//      aggregate signature checked by attestation/quorum (verify.ts checkQc);
//   3. the TLS handshake: the server's SPKI sha256 must equal the certified key before the
//      request is written (tls.ts PinnedAgent).
// Results are cached per node until its certification expires or `recheckMs` passes; then the
// record is read again and, if its bytes are unchanged, kept (no QC re-check, connections kept);
// if it changed, everything about the node is dropped and checked afresh. Connections are
// kept alive, so a request on an open connection does no check at all.
import { request as httpsRequest } from 'node:https'
import type { IncomingHttpHeaders } from 'node:http'
import { equal } from '../../encoding/bytes.ts'
import { decode } from '../../encoding/canonical.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import type { Logger } from '../../encoding/log.ts'
import { silentLogger } from '../../encoding/log.ts'
import type { AppRecord, NodeRecord } from '../../chain/types.ts'
import { createQuorumRules, type QuorumRules } from '../../attestation/quorum/index.ts'
import type { VerifiedChain } from './chain.ts'
import {
  AppNotServableError,
  NodeNotCertifiedError,
  NoNodeServedError,
  NodeCheckError,
  NodeUnreachableError,
  UnverifiedChainError
} from './errors.ts'
import {
  checkNodeRecord,
  checkQc,
  roundFrom,
  type CertifiedNode,
  type ProvenRead,
  type VerifiedNode
} from './verify.ts'
import { checkPin, nodeCertificateIdentity, openTls, PinnedAgent, type CertificateIdentityParser } from './tls.ts'

export interface ClientOptions {
  chain: VerifiedChain
  /** Default createQuorumRules() (attestation/quorum), the rules the chain itself runs. */
  rules?: Pick<QuorumRules, 'verifyCertificate' | 'drawCommittee'>
  /** Reads the node id / chain id extension of a node's certificate (agent/tls.ts). */
  parseCertificate?: CertificateIdentityParser
  /**
   * Refuse certifications whose committee reached fewer bits of security than this (the record's
   * securityBits: a small network draws small committees). Default 0: any certification.
   */
  minSecurityBits?: number
  /** A checked node's record is read again after this long (default 10 s). */
  recheckMs?: number
  /** A verified header older than this (by the local clock) is refused as stale (default 5 min). */
  maxStaleMs?: number
  /** Handshake times are measured once per node and kept this long (default 10 min). */
  probeTtlMs?: number
  /** At most this many node records are read per discovery (default 16; checked nodes first). */
  maxCandidates?: number
  /** At most this many candidates are probed for latency per discovery (default 8). */
  maxProbe?: number
  /** Nodes tried per request (default 4). */
  maxAttempts?: number
  /** A 503's Retry-After up to this long is waited for when every node was busy (default 2000 ms). */
  maxRetryAfterMs?: number
  /** Per-attempt timeout (default 30 s). */
  timeoutMs?: number
  /** Largest response body read (default 64 MiB). */
  maxResponseBytes?: number
  logger?: Logger
}

export interface RequestOptions {
  /** Path under the app (default "/"), may carry a query. */
  path?: string
  method?: string
  body?: Uint8Array | string
  headers?: Record<string, string>
  signal?: AbortSignal
}

export type AttemptOutcome = 'served' | 'server-error' | 'busy' | 'unreachable' | 'refused'
export interface Attempt {
  node: string
  endpoint: string
  outcome: AttemptOutcome
  ms: number
  status?: number
  /** For refused: the check that failed; for unreachable: why. */
  check?: string
  error?: string
}

export interface ClientResponse {
  status: number
  node: string
  attempts: Attempt[]
  headers: IncomingHttpHeaders
  body: Uint8Array
}

export interface ClientStats {
  /** Node records read and checked (step 1). */
  recordChecks: number
  /** QCs re-verified (step 2). */
  qcChecks: number
  /** Pinned TLS handshakes for requests (step 3), and latency probes. */
  tlsHandshakes: number
  probes: number
  requests: number
}

export interface Client {
  /** Sends to the app `app` (route /app/<app><path>) on the best certified node, failing over. */
  request(app: string, opts?: RequestOptions): Promise<ClientResponse>
  /**
   * Sends to one node at `url` (https://host:port/path): the node is found by the node id in the
   * certificate it presents, then checked like any other (record, QC, TLS key).
   */
  requestUrl(url: string, opts?: Omit<RequestOptions, 'path'>): Promise<ClientResponse>
  /** Steps 1–2 for one node (cached like request's). */
  verifyNode(nodeId: string): Promise<VerifiedNode>
  /** Certified nodes with an endpoint, fastest first (probing those not yet measured). */
  nodes(): Promise<Array<{ nodeId: string; endpoint: string; handshakeMs?: number }>>
  stats(): ClientStats
  /** Closes kept-alive connections. */
  close(): void
}

interface Entry {
  certified: CertifiedNode
  verified?: VerifiedNode
  /** Local clock (ms) the record was last read at. */
  checkedAt: number
  agent?: PinnedAgent
  /** The QC check in progress. */
  verifying?: Promise<VerifiedNode>
  probeMs?: number
  probedAt?: number
}

/** The chain's app name (chain/bodies.ts NAME_RE): 1–64 characters. */
const APP_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/

export function createClient(opts: ClientOptions): Client {
  return new ClientImpl(opts)
}

class ClientImpl implements Client {
  readonly #chain: VerifiedChain
  readonly #rules: Pick<QuorumRules, 'verifyCertificate' | 'drawCommittee'>
  readonly #parse: CertificateIdentityParser
  readonly #o: Required<Omit<ClientOptions, 'chain' | 'rules' | 'parseCertificate' | 'logger'>>
  readonly #log: Logger
  readonly #entries = new Map<string, Entry>()
  readonly #stats: ClientStats = { recordChecks: 0, qcChecks: 0, tlsHandshakes: 0, probes: 0, requests: 0 }
  #ids: { at: number; ids: string[] } | undefined
  /** Apps found published (local clock ms of the check), re-checked after recheckMs. */
  readonly #apps = new Map<string, number>()
  readonly #pending = new Map<string, Promise<Entry>>()
  #chainId: string | undefined

  constructor(opts: ClientOptions) {
    this.#chain = opts.chain
    this.#rules = opts.rules ?? createQuorumRules()
    this.#parse = opts.parseCertificate ?? nodeCertificateIdentity
    this.#log = opts.logger ?? silentLogger('quorate:client')
    this.#o = {
      minSecurityBits: opts.minSecurityBits ?? 0,
      recheckMs: opts.recheckMs ?? 10_000,
      maxStaleMs: opts.maxStaleMs ?? 300_000,
      probeTtlMs: opts.probeTtlMs ?? 600_000,
      maxCandidates: opts.maxCandidates ?? 16,
      maxProbe: opts.maxProbe ?? 8,
      maxAttempts: opts.maxAttempts ?? 4,
      maxRetryAfterMs: opts.maxRetryAfterMs ?? 2000,
      timeoutMs: opts.timeoutMs ?? 30_000,
      maxResponseBytes: opts.maxResponseBytes ?? 64 << 20
    }
  }

  stats(): ClientStats {
    return { ...this.#stats }
  }

  close(): void {
    for (const e of this.#entries.values()) e.agent?.destroy()
    this.#entries.clear()
  }

  async #chainIdOf(): Promise<string> {
    return (this.#chainId ??= await this.#chain.chainId())
  }

  /** A proven read, refused when its header is older than maxStaleMs by the local clock. */
  async #read(key: string): Promise<ProvenRead> {
    let r: ProvenRead
    try {
      r = await this.#chain.read(key)
    } catch (err) {
      if (err instanceof NodeCheckError) throw err
      throw new UnverifiedChainError(`reading ${key} from ${this.#chain.describe}: ${(err as Error).message}`, {
        cause: err
      })
    }
    const age = Date.now() - r.time
    if (age > this.#o.maxStaleMs)
      throw new UnverifiedChainError(
        `the newest verified header (height ${r.height}) is ${Math.round(age / 1000)} s old: the chain view is stale`
      )
    return r
  }

  #drop(nodeId: string): void {
    this.#entries.get(nodeId)?.agent?.destroy()
    this.#entries.delete(nodeId)
  }

  /** Step 1, cached: the node's record, re-read after recheckMs or past its expiry (one read at a time per node). */
  async #certified(nodeId: string): Promise<Entry> {
    const pending = this.#pending.get(nodeId)
    if (pending !== undefined) return await pending
    const p = this.#certifiedNow(nodeId).finally(() => {
      this.#pending.delete(nodeId)
    })
    this.#pending.set(nodeId, p)
    return await p
  }

  async #certifiedNow(nodeId: string): Promise<Entry> {
    const now = Date.now()
    const e = this.#entries.get(nodeId)
    if (e !== undefined && now < e.checkedAt + this.#o.recheckMs && now < e.certified.expiresAt) return e
    const read = await this.#read(`node/${nodeId}`)
    this.#stats.recordChecks++
    let certified: CertifiedNode
    try {
      certified = checkNodeRecord(nodeId, read)
      const bits = certified.record.securityBits ?? 0
      if (bits < this.#o.minSecurityBits)
        throw new NodeNotCertifiedError(
          nodeId,
          `its committee reached ${bits} bits of security; this client requires ${this.#o.minSecurityBits}`
        )
    } catch (err) {
      this.#drop(nodeId)
      throw err
    }
    if (e !== undefined && equal(e.certified.recordHash, certified.recordHash)) {
      // unchanged record, still certified at the newer header: keep the QC check and connections
      e.certified = certified
      if (e.verified !== undefined) e.verified = { ...e.verified, height: certified.height, time: certified.time }
      e.checkedAt = now
      return e
    }
    if (e !== undefined) this.#log.info('node record changed; checking it again', { nodeId })
    this.#drop(nodeId)
    const fresh: Entry = { certified, checkedAt: now }
    this.#entries.set(nodeId, fresh)
    return fresh
  }

  /**
   * Step 2, once per record (one check at a time per entry): the QC re-verified. `prefetched`:
   * qc/<id> and req/<id> read while the record was (a first connection then costs two round trips
   * to the chain, not three).
   */
  async #verified(e: Entry, prefetched?: Promise<[ProvenRead, ProvenRead]>): Promise<VerifiedNode> {
    if (e.verified !== undefined) return e.verified
    e.verifying ??= this.#verifyQc(e, prefetched).finally(() => {
      delete e.verifying
    })
    return await e.verifying
  }

  async #verifyQc(e: Entry, prefetched?: Promise<[ProvenRead, ProvenRead]>): Promise<VerifiedNode> {
    const node = e.certified
    const id = node.nodeId
    const [qc, req] = await (prefetched ?? this.#prefetch(id))
    let roundKey = `req/${id}`
    let roundBytes = req.value
    const reqRound = req.value === undefined ? undefined : decodeOr<{ round?: unknown }>(id, req.value, `req/${id}`)
    if (reqRound?.round !== node.round) {
      roundKey = `rnd/${id}/${node.round}`
      roundBytes = (await this.#read(roundKey)).value
    }
    if (roundBytes === undefined)
      throw new NodeCheckError('qc', id, `the chain keeps no record of round ${node.round} (${roundKey})`)
    const round = roundFrom(id, node.round, roundBytes, roundKey)
    const members = round.committee ?? round.candidates ?? []
    const memberKeys = new Map<string, Uint8Array>()
    await Promise.all(
      members.map(async m => {
        const r = await this.#read(`node/${m}`)
        if (r.value === undefined) return
        const rec = decodeOr<Partial<NodeRecord>>(id, r.value, `node/${m}`)
        if (rec.blsPublicKey instanceof Uint8Array) memberKeys.set(m, rec.blsPublicKey)
      })
    )
    this.#stats.qcChecks++
    const v = checkQc(node, {
      chainId: await this.#chainIdOf(),
      qcBytes: qc.value,
      round,
      memberKeys,
      rules: this.#rules
    })
    if (this.#entries.get(id) === e) e.verified = v
    return v
  }

  #prefetch(nodeId: string): Promise<[ProvenRead, ProvenRead]> {
    return Promise.all([this.#read(`qc/${nodeId}`), this.#read(`req/${nodeId}`)])
  }

  /** Record and QC of a node not yet checked: its QC's reads start with the record's. */
  async #checked(nodeId: string): Promise<{ e: Entry; v: VerifiedNode }> {
    const cached = this.#entries.get(nodeId)?.verified
    const pre = cached === undefined ? this.#prefetch(nodeId) : undefined
    pre?.catch(() => {})
    const e = await this.#certified(nodeId)
    return { e, v: await this.#verified(e, e.verified === undefined ? pre : undefined) }
  }

  async verifyNode(nodeId: string): Promise<VerifiedNode> {
    return (await this.#checked(nodeId)).v
  }

  #agent(e: Entry, chainId: string): PinnedAgent {
    e.agent ??= new PinnedAgent(
      { nodeId: e.certified.nodeId, chainId, tlsKey: e.certified.tlsKey },
      {
        parse: this.#parse,
        onHandshake: () => {
          this.#stats.tlsHandshakes++
        }
      }
    )
    return e.agent
  }

  /** Candidates with a good record, fastest measured handshake first. */
  async #candidates(refusals: string[]): Promise<Entry[]> {
    const now = Date.now()
    if (this.#ids === undefined || now > this.#ids.at + this.#o.recheckMs) {
      try {
        this.#ids = { at: now, ids: await this.#chain.nodeIds() }
      } catch (err) {
        throw new UnverifiedChainError(`listing nodes from ${this.#chain.describe}: ${(err as Error).message}`, {
          cause: err
        })
      }
    }
    // at most maxCandidates records are read: the nodes already checked, then others at random
    // (a large network's whole list would cost one proof per node)
    const known = this.#ids.ids.filter(id => this.#entries.has(id))
    const rest = this.#ids.ids.filter(id => !this.#entries.has(id))
    for (let i = rest.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[rest[i], rest[j]] = [rest[j], rest[i]]
    }
    const pick = [...known, ...rest].slice(0, this.#o.maxCandidates)
    const good: Entry[] = []
    await Promise.all(
      pick.map(async id => {
        try {
          good.push(await this.#certified(id))
        } catch (err) {
          if (!(err instanceof NodeCheckError)) throw err
          refusals.push(err.message)
        }
      })
    )
    const unmeasured = good.filter(e => e.probedAt === undefined || now > e.probedAt + this.#o.probeTtlMs)
    if (good.length > 1 && unmeasured.length > 0) await this.#probe(unmeasured.slice(0, this.#o.maxProbe), refusals)
    return good
      .filter(e => this.#entries.get(e.certified.nodeId) === e)
      .sort((a, b) => (a.probeMs ?? Number.MAX_VALUE) - (b.probeMs ?? Number.MAX_VALUE))
  }

  /** Latency: one pinned TLS handshake per node, timed (a node with another key is dropped here). */
  async #probe(entries: Entry[], refusals: string[]): Promise<void> {
    const chainId = await this.#chainIdOf()
    await Promise.all(
      entries.map(async e => {
        const c = e.certified
        this.#stats.probes++
        try {
          const { socket, identity, ms } = await openTls(
            { host: hostOf(c.endpoint), port: portOf(c.endpoint), timeoutMs: 2000 },
            this.#parse
          )
          socket.destroy()
          checkPin({ nodeId: c.nodeId, chainId, tlsKey: c.tlsKey }, identity)
          e.probeMs = ms
        } catch (err) {
          if (err instanceof NodeCheckError) {
            refusals.push(err.message)
            this.#drop(c.nodeId)
            return
          }
          e.probeMs = Number.MAX_SAFE_INTEGER // unreachable now: tried last
        }
        e.probedAt = Date.now()
      })
    )
  }

  async nodes(): Promise<Array<{ nodeId: string; endpoint: string; handshakeMs?: number }>> {
    const list = await this.#candidates([])
    return list.map(e => ({
      nodeId: e.certified.nodeId,
      endpoint: e.certified.endpoint.href,
      ...(e.probeMs === undefined || e.probeMs === Number.MAX_SAFE_INTEGER ? {} : { handshakeMs: round2(e.probeMs) })
    }))
  }

  async request(app: string, opts: RequestOptions = {}): Promise<ClientResponse> {
    if (!APP_NAME_RE.test(app))
      throw new InvalidInputError(`app name ${JSON.stringify(app.slice(0, 70))} is not a valid name (a-z 0-9 . _ -)`)
    const path = opts.path ?? '/'
    if (!path.startsWith('/'))
      throw new InvalidInputError(`path ${JSON.stringify(path.slice(0, 70))} must start with /`)
    const refusals: string[] = []
    // the app check and node discovery read the chain at the same time; no node is sent anything
    // before both are done
    const found = this.#candidates(refusals)
    found.catch(() => {})
    await this.#checkApp(app)
    const list = await found
    return await this.#send(list, `/app/${app}${path}`, opts, refusals, `app ${app}`)
  }

  async requestUrl(url: string, opts: Omit<RequestOptions, 'path'> = {}): Promise<ClientResponse> {
    let u: URL
    try {
      u = new URL(url)
    } catch {
      throw new InvalidInputError(`${JSON.stringify(url.slice(0, 100))} is not a URL`)
    }
    if (u.protocol !== 'https:')
      throw new InvalidInputError(`${u.origin} is not https: a node's TLS key can only be checked over https`)
    const t0 = performance.now()
    const { socket, identity } = await openTls({ host: hostOf(u), port: portOf(u), timeoutMs: 5000 }, this.#parse)
    socket.destroy()
    this.#stats.probes++
    if (identity.nodeId === undefined)
      throw new NodeCheckError(
        'tls-identity',
        undefined,
        `the certificate at ${u.host} names no node (no quorate node id extension)`
      )
    const { e, v: verified } = await this.#checked(identity.nodeId)
    try {
      checkPin({ nodeId: identity.nodeId, chainId: await this.#chainIdOf(), tlsKey: e.certified.tlsKey }, identity)
    } catch (err) {
      const a: Attempt = { node: identity.nodeId, endpoint: u.origin, outcome: 'refused', ms: ms(t0) }
      throw Object.assign(err as Error, { attempts: [{ ...a, check: (err as NodeCheckError).check }] })
    }
    // the node is reached at the URL's address, not necessarily the endpoint it registered
    const target: Entry = {
      certified: { ...e.certified, endpoint: new URL(u.origin) },
      verified,
      checkedAt: e.checkedAt
    }
    try {
      return await this.#send([target], `${u.pathname}${u.search}`, opts, [], u.origin)
    } finally {
      target.agent?.destroy()
    }
  }

  async #checkApp(app: string): Promise<void> {
    const now = Date.now()
    const seen = this.#apps.get(app)
    if (seen !== undefined && now < seen + this.#o.recheckMs) return
    const r = await this.#read(`app/${app}`)
    if (r.value === undefined) throw new AppNotServableError(app, 'not published on chain')
    let rec: Partial<AppRecord>
    try {
      rec = decode(r.value, { maxBytes: 1 << 20, maxItems: 1 << 16 }) as Partial<AppRecord>
    } catch (err) {
      throw new UnverifiedChainError(`app/${app} does not decode: ${(err as Error).message}`)
    }
    if (rec.revokedAt !== undefined) throw new AppNotServableError(app, `revoked at height ${rec.revokedAt}`)
    if (rec.current === undefined) throw new AppNotServableError(app, 'every version is revoked')
    if (this.#apps.size >= 1024) this.#apps.clear()
    this.#apps.set(app, now)
  }

  async #send(
    list: Entry[],
    path: string,
    opts: Omit<RequestOptions, 'path'>,
    refusals: string[],
    what: string
  ): Promise<ClientResponse> {
    const attempts: Attempt[] = []
    const chainId = await this.#chainIdOf()
    const body = typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body
    const busy: Array<{ e: Entry; after: number }> = []
    let lastAnswer: Omit<ClientResponse, 'attempts'> | undefined
    const tryOne = async (e: Entry): Promise<ClientResponse | undefined> => {
      const c = e.certified
      const t0 = performance.now()
      const base = { node: c.nodeId, endpoint: c.endpoint.origin }
      try {
        await this.#verified(e)
      } catch (err) {
        if (!(err instanceof NodeCheckError)) throw err
        this.#drop(c.nodeId)
        refusals.push(err.message)
        attempts.push({ ...base, outcome: 'refused', check: err.check, error: err.message, ms: ms(t0) })
        return undefined
      }
      let res: { status: number; headers: IncomingHttpHeaders; body: Uint8Array }
      try {
        this.#stats.requests++
        res = await this.#http(this.#agent(e, chainId), c.endpoint, path, opts, body)
      } catch (err) {
        if (err instanceof NodeCheckError) {
          this.#drop(c.nodeId)
          refusals.push(err.message)
          attempts.push({ ...base, outcome: 'refused', check: err.check, error: err.message, ms: ms(t0) })
        } else {
          // unreachable now: measured again before it is preferred
          e.probeMs = Number.MAX_SAFE_INTEGER
          attempts.push({ ...base, outcome: 'unreachable', error: (err as Error).message, ms: ms(t0) })
        }
        return undefined
      }
      const a: Attempt = { ...base, outcome: 'served', status: res.status, ms: ms(t0) }
      attempts.push(a)
      lastAnswer = { status: res.status, node: c.nodeId, headers: res.headers, body: res.body }
      if (res.status === 503) {
        a.outcome = 'busy'
        const after = retryAfterMs(res.headers['retry-after'])
        if (after !== undefined) busy.push({ e, after })
        return undefined
      }
      if (res.status >= 500) {
        a.outcome = 'server-error'
        return undefined
      }
      return { status: res.status, node: c.nodeId, attempts, headers: res.headers, body: res.body }
    }
    for (const e of list) {
      if (attempts.length >= this.#o.maxAttempts) break
      opts.signal?.throwIfAborted()
      const r = await tryOne(e)
      if (r !== undefined) return r
    }
    // every node tried was busy: wait for the soonest Retry-After if it is short, and try it again
    busy.sort((a, b) => a.after - b.after)
    const soonest = busy[0]
    if (
      soonest !== undefined &&
      soonest.after <= this.#o.maxRetryAfterMs &&
      attempts.length < this.#o.maxAttempts + 1
    ) {
      await new Promise(resolve => setTimeout(resolve, soonest.after))
      const r = await tryOne(soonest.e)
      if (r !== undefined) return r
    }
    // every node answered, with a server error or busy: the last answer is the result
    if (lastAnswer !== undefined) return { ...lastAnswer, attempts }
    if (list.length === 0 && refusals.length === 0)
      throw new NoNodeServedError(
        `no certified node with an https endpoint found for ${what} on ${this.#chain.describe}`,
        attempts,
        refusals
      )
    throw new NoNodeServedError(`no node served ${what} (${attempts.length} attempt(s))`, attempts, refusals)
  }

  /**
   * One HTTP exchange over the node's pinned agent. A kept-alive socket the server closed just as
   * the request went out (ECONNRESET before any answer) is not the node failing: tried once more,
   * on a new connection.
   */
  async #http(
    agent: PinnedAgent,
    endpoint: URL,
    path: string,
    opts: Omit<RequestOptions, 'path'>,
    body: Uint8Array | undefined
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Uint8Array }> {
    try {
      return await this.#httpOnce(agent, endpoint, path, opts, body)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (!(err as { reusedSocket?: boolean }).reusedSocket || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw err
      return await this.#httpOnce(agent, endpoint, path, opts, body)
    }
  }

  async #httpOnce(
    agent: PinnedAgent,
    endpoint: URL,
    path: string,
    opts: Omit<RequestOptions, 'path'>,
    body: Uint8Array | undefined
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Uint8Array }> {
    const prefix = endpoint.pathname.replace(/\/+$/, '')
    return await new Promise((resolve, reject) => {
      const req = httpsRequest(
        {
          host: hostOf(endpoint),
          port: portOf(endpoint),
          path: `${prefix}${path}`,
          method: opts.method ?? (body === undefined ? 'GET' : 'POST'),
          headers: {
            ...opts.headers,
            host: endpoint.host,
            ...(body === undefined ? {} : { 'content-length': String(body.byteLength) })
          },
          agent,
          timeout: this.#o.timeoutMs,
          ...(opts.signal === undefined ? {} : { signal: opts.signal })
        },
        res => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (c: Buffer) => {
            size += c.byteLength
            if (size > this.#o.maxResponseBytes) {
              res.destroy(new InvalidInputError(`response larger than ${this.#o.maxResponseBytes} bytes`))
              return
            }
            chunks.push(c)
          })
          res.once('error', reject)
          res.once('end', () => {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: new Uint8Array(Buffer.concat(chunks)) })
          })
        }
      )
      req.once('timeout', () => {
        req.destroy(new NodeUnreachableError(`no answer from ${endpoint.origin} within ${this.#o.timeoutMs} ms`))
      })
      req.once('error', err => {
        reject(Object.assign(err, { reusedSocket: req.reusedSocket }))
      })
      req.end(body)
    })
  }
}

/** A chain record decoded, or the QC check fails naming it. */
function decodeOr<T>(nodeId: string, bytes: Uint8Array, key: string): T {
  try {
    return decode(bytes, { maxBytes: 1 << 20, maxItems: 1 << 16 }) as T
  } catch (err) {
    throw new NodeCheckError('qc', nodeId, `${key} does not decode: ${(err as Error).message}`)
  }
}

function hostOf(u: URL): string {
  return u.hostname.replace(/^\[(.*)\]$/, '$1')
}
function portOf(u: URL): number {
  return u.port === '' ? 443 : Number(u.port)
}
const ms = (t0: number): number => round2(performance.now() - t0)
const round2 = (x: number): number => Math.round(x * 100) / 100

/** Retry-After in ms: delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function retryAfterMs(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v
  if (s === undefined) return undefined
  if (/^\d{1,9}$/.test(s.trim())) return Number(s.trim()) * 1000
  const t = Date.parse(s)
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now())
}
