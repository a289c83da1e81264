// The light client: follows headers from genesis, checks state proofs against them, and asks
// several RPC endpoints, trusting none (see index.ts for the contract).
import { equal, fromHex, toHex, utf8 } from '../../encoding/bytes.ts'
import { InvalidInputError, QuorateError, TransientError } from '../../encoding/errors.ts'
import { PROOF_TYPE, verifyStateProof, dec } from '../store.ts'
import { validatorAddress } from '../producer.ts'
import { TxCode, type AppRecord, type Genesis, type NodeRecord, type QcRecord } from '../types.ts'
import { sortValidators, validatorSetHash, type Validator } from './cometbft.ts'
import {
  decodeQuery,
  decodeSignedHeader,
  decodeValidatorsPage,
  ed25519Key,
  httpTransport,
  int,
  RpcAnswerError,
  RpcUnavailableError,
  time,
  timeMs,
  VALIDATORS_PER_PAGE,
  type Commit,
  type RpcTransport,
  type SignedHeader
} from './rpc.ts'
import {
  HeaderVerificationError,
  NotEnoughTrustError,
  verifyAdjacent,
  verifyCometCommit,
  verifyEmbedded,
  verifyTrusting,
  type VerifiedHeader
} from './verify.ts'

/** The newest header an endpoint offers is older than maxHeaderAgeMs (it lags, or replays the past). */
export class StaleHeaderError extends TransientError {
  override readonly code: string = 'ERR_LIGHT_STALE_HEADER'
}
/** The trusted header is older than the trusting period: a new trust root is needed. */
export class TrustExpiredError extends QuorateError {
  override readonly code: string = 'ERR_LIGHT_TRUST_EXPIRED'
}
/** No endpoint gave a verified answer; `failures` has one line per endpoint. */
export class NoVerifiedAnswerError extends TransientError {
  override readonly code: string = 'ERR_LIGHT_NO_VERIFIED_ANSWER'
  readonly failures: readonly string[]
  constructor(what: string, failures: readonly string[]) {
    super(`no RPC endpoint gave a verified answer for ${what}: ${failures.join('; ')}`)
    this.failures = failures
  }
}

/** The trust root: a chain id, the first height and the genesis validator set. */
export interface TrustRoot {
  chainId: string
  initialHeight: number
  /** Unix ms. */
  genesisTime: number
  validators: Validator[]
}

/** Reads the trust root from genesis.json (either engine) or a parsed Genesis. */
export function trustRootFromGenesis(g: Genesis | Record<string, unknown>): TrustRoot {
  if ('validators' in g && Array.isArray(g.validators) && g.validators[0] instanceof Uint8Array) {
    const gen = g as Genesis
    return {
      chainId: gen.chainId,
      initialHeight: gen.initialHeight,
      genesisTime: gen.genesisTime,
      validators: sortValidators(gen.validators.map(k => ({ address: validatorAddress(k), publicKey: k, power: 10 })))
    }
  }
  const o = g as Record<string, unknown>
  if (typeof o.chain_id !== 'string' || o.chain_id.length === 0 || o.chain_id.length > 50)
    throw new InvalidInputError('genesis: chain_id missing or invalid')
  if (!Array.isArray(o.validators) || o.validators.length === 0)
    throw new InvalidInputError('genesis: needs at least one validator')
  try {
    const validators = o.validators.map((v: unknown, i) => {
      const x = v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {}
      const publicKey = ed25519Key(x.pub_key, `genesis validators[${i}].pub_key`)
      const power = int(x.power, `genesis validators[${i}].power`)
      if (power === 0) throw new InvalidInputError(`genesis validators[${i}] has no power`)
      return { address: validatorAddress(publicKey), publicKey, power }
    })
    return {
      chainId: o.chain_id,
      initialHeight: o.initial_height === undefined ? 1 : int(o.initial_height, 'genesis initial_height') || 1,
      genesisTime: timeMs(time(o.genesis_time, 'genesis genesis_time')),
      validators: sortValidators(validators)
    }
  } catch (err) {
    if (err instanceof RpcAnswerError) throw new InvalidInputError(err.message, { cause: err })
    throw err
  }
}

export interface LightClientOptions {
  /** genesis.json (parsed) of either engine, or a Genesis. The only thing trusted. */
  genesis: Genesis | Record<string, unknown>
  /** RPC endpoints (http(s) URLs); none is trusted. */
  rpcs: readonly string[]
  /** A verified header vouches for later ones only this long (default 14 days). */
  trustingPeriodMs?: number
  /**
   * A CometBFT header trusted out of band (its height and block hash, e.g. saved from trusted() of
   * an earlier run): headers after it link from it instead of genesis, so a client can start on a
   * chain whose genesis is older than the trusting period. It must itself carry > 2/3 of its set.
   */
  trust?: { height: number; hash: Uint8Array | string }
  /** Headers from up to this far in the future are accepted (default 10 s). */
  maxClockDriftMs?: number
  /** verifiedHeader() and get() refuse headers older than this (default 60 s). */
  maxHeaderAgeMs?: number
  /** Per-request timeout (default 5 s). */
  timeoutMs?: number
  /** How long get() waits for the header that commits the state it was answered from (default 5 s). */
  nextHeaderWaitMs?: number
  /** An endpoint that answered falsely is skipped this long (default 60 s). */
  quarantineMs?: number
  /** Clock (Unix ms), for tests. */
  now?: () => number
  /** Transports by URL (tests); default JSON-RPC over HTTP. */
  transport?: (url: string, timeoutMs: number) => RpcTransport
}

export interface VerifiedValue {
  key: string
  value: Uint8Array
  /** The state the value was proven in: after this block. */
  height: number
  /** The verified header (height + 1) whose app hash the proof checks against. */
  header: VerifiedHeader
  /** The endpoint that answered (for logs; its answer was verified, not trusted). */
  endpoint: string
}

/** Several endpoints agree there is no value (an unverifiable claim: the store has no absence proofs). */
export interface Absent {
  key: string
  /** Endpoints that said "not found"; none could prove the key had a value. */
  endpoints: string[]
}

interface Endpoint {
  transport: RpcTransport
  /** Quarantined until (Unix ms) after a false answer, with the reason. */
  badUntil: number
  reason?: string
}

/** Headers kept in the cache (the newest; the trust root is kept apart). */
const CACHE = 256

export class LightClient {
  readonly root: TrustRoot
  readonly #opts: Required<Omit<LightClientOptions, 'genesis' | 'rpcs' | 'transport' | 'trust'>>
  readonly #endpoints: Endpoint[]
  /** Verified headers by height. */
  readonly #headers = new Map<number, VerifiedHeader>()
  /** The embedded validator's key, when genesis has one validator (an embedded chain may be it). */
  readonly #soleKey: Uint8Array | undefined
  #latest: VerifiedHeader | undefined
  readonly #topInFlight = new Map<Endpoint, Promise<VerifiedHeader>>()
  readonly #trust: { height: number; hash: Uint8Array } | undefined

  private constructor(opts: LightClientOptions) {
    this.root = trustRootFromGenesis(opts.genesis)
    if (opts.rpcs.length === 0) throw new InvalidInputError('a light client needs at least one RPC endpoint')
    this.#opts = {
      trustingPeriodMs: opts.trustingPeriodMs ?? 14 * 24 * 3600_000,
      maxClockDriftMs: opts.maxClockDriftMs ?? 10_000,
      maxHeaderAgeMs: opts.maxHeaderAgeMs ?? 60_000,
      timeoutMs: opts.timeoutMs ?? 5000,
      nextHeaderWaitMs: opts.nextHeaderWaitMs ?? 5000,
      quarantineMs: opts.quarantineMs ?? 60_000,
      now: opts.now ?? Date.now
    }
    if (opts.trust !== undefined) {
      const { height, hash } = opts.trust
      let b: Uint8Array
      try {
        b = typeof hash === 'string' ? fromHex(hash, 'trust.hash') : hash
      } catch (err) {
        throw new InvalidInputError((err as Error).message, { cause: err })
      }
      if (!Number.isSafeInteger(height) || height < this.root.initialHeight || b.byteLength !== 32)
        throw new InvalidInputError('trust needs a height ≥ the initial height and a 32-byte block hash')
      this.#trust = { height, hash: b }
    }
    const mk = opts.transport ?? httpTransport
    this.#endpoints = opts.rpcs.map(u => ({ transport: mk(u, this.#opts.timeoutMs), badUntil: 0 }))
    this.#soleKey = this.root.validators.length === 1 ? this.root.validators[0].publicKey : undefined
  }

  static create(opts: LightClientOptions): LightClient {
    return new LightClient(opts)
  }

  close(): void {
    for (const e of this.#endpoints) e.transport.close()
  }

  /** The newest verified header's height and hash: save it, pass it as `trust` next time. */
  trusted(): { height: number; hash: string } | undefined {
    return this.#latest === undefined ? undefined : { height: this.#latest.height, hash: toHex(this.#latest.hash) }
  }

  /** Endpoints with the reason each is quarantined (if it is). */
  endpoints(): Array<{ url: string; quarantined: boolean; reason?: string }> {
    const now = this.#opts.now()
    return this.#endpoints.map(e =>
      e.badUntil > now
        ? { url: e.transport.url, quarantined: true, reason: e.reason }
        : { url: e.transport.url, quarantined: false }
    )
  }

  /** The newest verified header from any endpoint; StaleHeaderError if every endpoint's is too old. */
  async verifiedHeader(opts: { signal?: AbortSignal } = {}): Promise<VerifiedHeader> {
    return await this.#each('the latest header', async ep => await this.#top(ep, opts.signal))
  }

  /** The newest header of `ep`, verified and fresh. */
  async #top(ep: Endpoint, signal?: AbortSignal): Promise<VerifiedHeader> {
    const fetch = async (): Promise<VerifiedHeader> =>
      await this.#verify(ep, decodeSignedHeader(await ep.transport.call('commit', {}, signal)), signal)
    let h: VerifiedHeader
    if (signal === undefined) {
      // parallel reads of a fresh client share one fetch of the newest header per endpoint
      let p = this.#topInFlight.get(ep)
      if (p === undefined) {
        p = fetch().finally(() => this.#topInFlight.delete(ep))
        this.#topInFlight.set(ep, p)
      }
      h = await p
    } else h = await fetch()
    this.#fresh(h, ep)
    return h
  }

  /** The header at `height`, verified (from the cache when it is there). */
  async headerAt(height: number, opts: { signal?: AbortSignal } = {}): Promise<VerifiedHeader> {
    const c = this.#headers.get(height)
    if (c !== undefined) return c
    return await this.#each(`header ${height}`, async ep => await this.#headerFrom(ep, height, 0, opts.signal))
  }

  /**
   * The value at a state key, proven against the app hash of a verified, fresh header. Returns
   * Absent when no endpoint had a value: every endpoint is asked then, but absence is not proven.
   */
  async get(key: string, opts: { signal?: AbortSignal } = {}): Promise<VerifiedValue | Absent> {
    if (!/^[\x21-\x7e]{1,512}$/.test(key))
      throw new InvalidInputError('a state key is 1–512 printable ASCII characters')
    const absent: string[] = []
    const failures: string[] = []
    let stale = 0
    const now = this.#opts.now()
    for (const ep of this.#order(now)) {
      // without a fresh verified header, fetch the newest one alongside the query (it commits the
      // queried state whenever the last block did not change it)
      const top =
        this.#latest === undefined || this.#latest.time < this.#opts.now() - this.#opts.maxHeaderAgeMs
          ? this.#top(ep, opts.signal)
          : undefined
      top?.catch(() => {})
      try {
        const q = decodeQuery(
          await ep.transport.call(
            'abci_query',
            { path: '/key', data: toHex(utf8.encode(key)), prove: true },
            opts.signal
          )
        )
        if (q.code === TxCode.NOT_FOUND) {
          absent.push(ep.transport.url)
          continue
        }
        if (q.code !== 0) throw new RpcUnavailableError(`abci_query failed with code ${q.code}: ${q.log.slice(0, 200)}`)
        if (!equal(q.key, utf8.encode(key))) throw new HeaderVerificationError('the answer is for another key')
        const op = q.proofOps.find(o => o.type === PROOF_TYPE)
        if (op === undefined) throw new HeaderVerificationError(`the answer carries no ${PROOF_TYPE} proof`)
        const ok = (h: VerifiedHeader | undefined): h is VerifiedHeader =>
          h !== undefined &&
          h.time >= this.#opts.now() - this.#opts.maxHeaderAgeMs &&
          verifyStateProof(h.appHash, key, q.value, op.data)
        // the state after block H is committed by header H + 1; an unchanged state also by the newest header
        let h: VerifiedHeader | undefined = this.#headers.get(q.height + 1)
        if (!ok(h)) h = this.#latest
        if (!ok(h) && top !== undefined) h = await top
        if (!ok(h)) {
          const next = await this.#headerFrom(ep, q.height + 1, this.#opts.nextHeaderWaitMs, opts.signal)
          this.#fresh(next, ep)
          if (!verifyStateProof(next.appHash, key, q.value, op.data))
            throw new HeaderVerificationError(
              `the proof for ${key} does not verify against the app hash of verified block ${next.height}`
            )
          h = next
        }
        return { key, value: q.value, height: h.height - 1, header: h, endpoint: ep.transport.url }
      } catch (err) {
        if (err instanceof StaleHeaderError) stale++
        failures.push(this.#blame(ep, err))
      }
    }
    if (absent.length > 0 && failures.length === 0) return { key, endpoints: absent }
    if (stale > 0 && stale === failures.length && absent.length === 0)
      throw new StaleHeaderError(`every endpoint's newest header is too old: ${failures.join('; ')}`)
    if (absent.length > 0) failures.push(`${absent.length} endpoint(s) said not found`)
    if (failures.length === 0) failures.push('every endpoint is quarantined after a false answer')
    throw new NoVerifiedAnswerError(`state key ${key}`, failures)
  }

  /** A record the chain stores at `key` (canonical CBOR), decoded; undefined when absent (unproven). */
  async record<T>(
    key: string,
    opts: { signal?: AbortSignal } = {}
  ): Promise<{ record: T; proof: VerifiedValue } | undefined> {
    const v = await this.get(key, opts)
    if (!('value' in v)) return undefined
    let record: T
    try {
      record = dec<T>(v.value)
    } catch (err) {
      throw new InvalidInputError(`verified value at ${key} is not canonical CBOR: ${(err as Error).message}`)
    }
    return { record, proof: v }
  }

  /** node/<id>: registration and certification status. */
  async node(
    nodeId: string,
    opts: { signal?: AbortSignal } = {}
  ): Promise<{ record: NodeRecord; proof: VerifiedValue } | undefined> {
    return await this.record<NodeRecord>(`node/${nodeId}`, opts)
  }
  /** qc/<id>: the quorum certificate last recorded for a node. */
  async qc(
    nodeId: string,
    opts: { signal?: AbortSignal } = {}
  ): Promise<{ record: QcRecord; proof: VerifiedValue } | undefined> {
    return await this.record<QcRecord>(`qc/${nodeId}`, opts)
  }
  /** cert/<id>: present while a node's certification is in force ({ expiresAt }). */
  async cert(
    nodeId: string,
    opts: { signal?: AbortSignal } = {}
  ): Promise<{ record: { expiresAt: number; blsPublicKey?: Uint8Array }; proof: VerifiedValue } | undefined> {
    return await this.record(`cert/${nodeId}`, opts)
  }
  /** app/<name>: an app's owner and current version. */
  async app(
    name: string,
    opts: { signal?: AbortSignal } = {}
  ): Promise<{ record: AppRecord; proof: VerifiedValue } | undefined> {
    return await this.record<AppRecord>(`app/${name}`, opts)
  }

  // ---- internals ----
  #order(now: number): Endpoint[] {
    return this.#endpoints.filter(e => e.badUntil <= now)
  }

  /** One line about an endpoint's failure; quarantines it when it answered falsely. */
  #blame(ep: Endpoint, err: unknown): string {
    const m = err instanceof Error ? err.message : String(err)
    if (err instanceof HeaderVerificationError || err instanceof RpcAnswerError) {
      ep.badUntil = this.#opts.now() + this.#opts.quarantineMs
      ep.reason = m
    }
    if (err instanceof TrustExpiredError) throw err
    return `${ep.transport.url}: ${m}`
  }

  async #each<T>(what: string, fn: (ep: Endpoint) => Promise<T>): Promise<T> {
    const failures: string[] = []
    let stale = 0
    const eps = this.#order(this.#opts.now())
    for (const ep of eps) {
      try {
        return await fn(ep)
      } catch (err) {
        if (err instanceof StaleHeaderError) stale++
        failures.push(this.#blame(ep, err))
      }
    }
    if (stale > 0 && stale === failures.length)
      throw new StaleHeaderError(`every endpoint's newest header is too old: ${failures.join('; ')}`)
    if (eps.length === 0) failures.push('every endpoint is quarantined after a false answer')
    throw new NoVerifiedAnswerError(what, failures)
  }

  #fresh(h: VerifiedHeader, ep: Endpoint): void {
    const age = this.#opts.now() - h.time
    if (age > this.#opts.maxHeaderAgeMs)
      throw new StaleHeaderError(
        `${ep.transport.url}: newest header (block ${h.height}) is ${Math.round(age / 1000)} s old, over ${this.#opts.maxHeaderAgeMs / 1000} s`
      )
  }

  /** The header at `height` from `ep`, verified; waits up to `waitMs` for it to exist. */
  async #headerFrom(ep: Endpoint, height: number, waitMs: number, signal?: AbortSignal): Promise<VerifiedHeader> {
    const c = this.#headers.get(height)
    if (c !== undefined) return c
    if (height < this.root.initialHeight) throw new InvalidInputError(`no header below ${this.root.initialHeight}`)
    const until = this.#opts.now() + waitMs
    for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
      let raw: unknown
      try {
        raw = await ep.transport.call('commit', { height: String(height) }, signal)
      } catch (err) {
        if (!(err instanceof RpcUnavailableError) || this.#opts.now() + delay > until) throw err
        await new Promise(resolve => setTimeout(resolve, delay))
        continue
      }
      const sh = decodeSignedHeader(raw)
      if (sh.header.height !== height)
        throw new HeaderVerificationError(`asked for block ${height}, got ${sh.header.height}`)
      return await this.#verify(ep, sh, signal)
    }
  }

  /** Verifies a signed header against the trust root and the cache; caches it. */
  async #verify(ep: Endpoint, sh: SignedHeader, signal?: AbortSignal): Promise<VerifiedHeader> {
    const cached = this.#headers.get(sh.header.height)
    if (cached !== undefined) {
      if (!equal(cached.hash, sh.commit.blockId.hash))
        throw new HeaderVerificationError(`block ${sh.header.height} differs from the verified one (a fork, or a lie)`)
      return cached
    }
    if (sh.header.height < this.root.initialHeight)
      throw new HeaderVerificationError(`block ${sh.header.height} is below the initial height`)
    let h: VerifiedHeader
    // an embedded header leaves validators_hash empty; its signature domain differs from CometBFT's votes,
    // so neither kind can pass for the other
    if (sh.header.validatorsHash.byteLength === 0) {
      if (this.#soleKey === undefined)
        throw new HeaderVerificationError('an embedded-validator header, but genesis has more than one validator')
      h = verifyEmbedded(this.root.chainId, this.#soleKey, sh)
    } else {
      const vals = await this.#validators(ep, sh.header.height, sh.header.validatorsHash, signal)
      h = verifyCometCommit(this.root.chainId, sh, vals)
      if (this.#trust !== undefined && h.height === this.#trust.height) {
        if (!equal(h.hash, this.#trust.hash))
          throw new HeaderVerificationError(`block ${h.height} is not the header trusted at that height`)
      } else await this.#connect(ep, h, sh.commit, signal)
    }
    const now = this.#opts.now()
    if (h.time > now + this.#opts.maxClockDriftMs)
      throw new HeaderVerificationError(`block ${h.height} is from the future (${h.time - now} ms ahead)`)
    this.#remember(h)
    return h
  }

  /** Connects a CometBFT header (signed by its own set) to the trust root through verified headers. */
  async #connect(ep: Endpoint, h: VerifiedHeader, commit: Commit, signal?: AbortSignal): Promise<void> {
    const now = this.#opts.now()
    // the highest verified header below h (or the trust root)
    const below = (): VerifiedHeader | undefined => {
      let a: VerifiedHeader | undefined
      for (const x of this.#headers.values()) if (x.height < h.height && (a === undefined || x.height > a.height)) a = x
      return a
    }
    let anchor = below()
    // a header trusted out of band stands in for genesis once it is loaded
    const trust = this.#trust
    if (trust !== undefined && trust.height < h.height && (anchor?.height ?? 0) < trust.height) {
      await this.#headerFrom(ep, trust.height, 0, signal)
      anchor = below()
    }
    const anchorTime = anchor?.time ?? this.root.genesisTime
    if (anchorTime + this.#opts.trustingPeriodMs <= now)
      throw new TrustExpiredError(
        `the trusted header (block ${anchor?.height ?? 'genesis'}) is older than the trusting period; start from a newer trust root`
      )
    if (anchor !== undefined && h.time <= anchor.time)
      throw new HeaderVerificationError(`block ${h.height} is not later than verified block ${anchor.height}`)
    const anchorHeight = anchor?.height ?? this.root.initialHeight - 1
    const nextHash = anchor?.nextValidatorsHash ?? validatorSetHash(this.root.validators)
    if (h.height === anchorHeight + 1) {
      verifyAdjacent(nextHash, h)
      return
    }
    const trusted =
      anchor === undefined
        ? this.root.validators
        : equal(anchor.nextValidatorsHash, anchor.header.validatorsHash)
          ? anchor.validators
          : await this.#validators(ep, anchor.height + 1, anchor.nextValidatorsHash, signal)
    try {
      verifyTrusting(this.root.chainId, commit, trusted)
    } catch (err) {
      if (!(err instanceof NotEnoughTrustError)) throw err
      // bisection: verify a header halfway, then try again from it
      const pivot = Math.floor((anchorHeight + h.height) / 2)
      if (pivot <= anchorHeight) throw err
      await this.#headerFrom(ep, pivot, 0, signal)
      await this.#connect(ep, h, commit, signal)
    }
  }

  #remember(h: VerifiedHeader): void {
    this.#headers.set(h.height, h)
    if (this.#latest === undefined || h.height > this.#latest.height) this.#latest = h
    if (this.#headers.size > CACHE) {
      const lowest = Math.min(...this.#headers.keys())
      this.#headers.delete(lowest)
    }
  }

  /** The validator set at `height`, all pages, checked against `expectHash`. */
  async #validators(ep: Endpoint, height: number, expectHash: Uint8Array, signal?: AbortSignal): Promise<Validator[]> {
    const vals: Validator[] = []
    for (let page = 1; ; page++) {
      const p = decodeValidatorsPage(
        await ep.transport.call(
          'validators',
          { height: String(height), page: String(page), per_page: String(VALIDATORS_PER_PAGE) },
          signal
        )
      )
      vals.push(...p.validators)
      if (vals.length >= p.total || p.validators.length === 0) break
    }
    if (!equal(validatorSetHash(vals), expectHash))
      throw new HeaderVerificationError(`the validator set of block ${height} does not hash to the header's`)
    return vals
  }
}
