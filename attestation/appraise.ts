// Appraisal of evidence against reference values and a policy → one status per claim, in the
// shape of an EAR (IETF RATS "EAT Attestation Results": `ear.status` per submodule), with every
// failure listed — not only the first — each naming its claim and, where there is one, the PCR
// and event. `digest` is sha256 of the canonical encoding of the result (without the digest), so
// committee members that agree produce the same digest.
//
// Claims:
//   identity   EK certificate chains to a published TPM vendor CA; the quote is TPM-generated and
//              signed by a restricted, fixedTPM/fixedParent signing AK; (policy) the AK was bound
//              to the EK by credential activation
//   firmware   the firmware event log replays to the quoted PCRs; each firmware PCR's value is a
//              published golden value or each of its events is in a published firmware RefSet
//   os         the same for the OS PCRs (4, 9, and 8/11/12 when OS references list them)
//   containers the container log replays to PCR 13 and every launched image is allowed
//   freshness  the quote carries the expected nonce (directly or via the committee nonce hash)
//              and the TPM was not reset/restarted since the previous quote
// Hot path: one signature verify plus hashing; EK chains, reference indexes, AK keys and parsed
// event logs are cached by content.
import { createHash } from 'node:crypto'
import { encode, type Canonical } from '../encoding/canonical.ts'
import { canonicalSha256, memoizeCanonical } from './canondigest.ts'
import { BoundedCache, ContentKeys } from './contentkey.ts'
import { equal, toHex } from '../encoding/bytes.ts'
import type { Evidence } from './evidence.ts'
import { committeeNonce } from './evidence.ts'
import { checkQuote, compareClock } from './quote.ts'
import { verifyEkCertificateCached, type VerifiedEk } from './ekcert.ts'
import { parseEventLog, replayEventLog, eventsForPcr, type EventLog, type TcgEvent } from './eventlog.ts'
import { parseContainerLog, replayContainerLog, CONTAINER_PCR, type ContainerLogEntry } from './containerlog.ts'
import { prepareReferences, type PcrIndex, type PreparedReferences, type ReferenceValues } from './refs.ts'

export type Claim = 'identity' | 'firmware' | 'os' | 'containers' | 'freshness'
export const CLAIMS: readonly Claim[] = ['identity', 'firmware', 'os', 'containers', 'freshness']

/** EAR status values we use: all checks passed, or at least one failed. */
export type EarStatus = 'affirming' | 'contraindicated'

export interface ClaimStatus {
  readonly ok: boolean
  readonly 'ear.status': EarStatus
  /** Every failure of this claim, each starting with the claim name. */
  readonly failures: readonly string[]
}

export interface Appraisal {
  readonly profile: 'quorate/appraisal/v1'
  readonly ok: boolean
  readonly 'ear.status': EarStatus
  readonly status: { readonly [c in Claim]: ClaimStatus }
  /** All failures of all claims, in claim order. */
  readonly failures: readonly string[]
  readonly subject: {
    /** sha256 of the EK certificate (hex). */
    readonly ekCertificate: string
    /** AK name (hex) when the AK public area decodes. */
    readonly akName?: string
    readonly nonce: string
    readonly tpm?: { readonly manufacturer?: string; readonly model?: string; readonly version?: string }
  }
  /** TPMS_CLOCK_INFO of the quote, when it is authentic (clock as a decimal string). */
  readonly clock?: {
    readonly clock: string
    readonly resetCount: number
    readonly restartCount: number
    readonly safe: boolean
  }
  /** Hex sha256 of the canonical encoding of everything above. */
  readonly digest: string
}

export interface AppraisalPolicy {
  /** The nonce this verifier sent (with committeeNonces: this member's own nonce). */
  readonly nonce: Uint8Array
  /** Validation time for certificates (default: now). */
  readonly now?: Date | number
  /** Clock info of this node's previous accepted quote: a reset or restart since then fails freshness. */
  readonly previousClock?: { readonly resetCount: number; readonly restartCount: number; readonly clock?: bigint }
  /** Whether MakeCredential/ActivateCredential proved this AK is in the EK's TPM. */
  readonly credentialActivated?: boolean
  /** Fail identity unless credentialActivated (default false). */
  readonly requireCredentialActivation?: boolean
  /** Firmware PCRs (default 0, 1, 2, 3, 5, 6, 7). */
  readonly firmwarePcrs?: readonly number[]
  /** OS PCRs (default 4 and 9, plus 8, 11 and 12 when an OS RefSet lists them). */
  readonly osPcrs?: readonly number[]
  /** Image digests (`sha256:…`) allowed in addition to the published ones. */
  readonly allowedImages?: readonly string[]
  /** Fail firmware when the evidence has no event log (default true). */
  readonly requireEventLog?: boolean
}

export const DEFAULT_FIRMWARE_PCRS: readonly number[] = [0, 1, 2, 3, 5, 6, 7]
export const DEFAULT_OS_PCRS: readonly number[] = [4, 9]
const OPTIONAL_OS_PCRS: readonly number[] = [8, 11, 12]
const MAX_FAILURES_PER_CLAIM = 64

// Frozen, with their canonical encodings remembered: most results reuse them.
const AFFIRMING: ClaimStatus = memoizeCanonical({
  ok: true,
  'ear.status': 'affirming',
  failures: []
}) as unknown as ClaimStatus
const ALL_AFFIRMING = memoizeCanonical({
  identity: AFFIRMING,
  firmware: AFFIRMING,
  os: AFFIRMING,
  containers: AFFIRMING,
  freshness: AFFIRMING
} as unknown as Canonical) as unknown as { readonly [c in Claim]: ClaimStatus }

function short(b: Uint8Array | string): string {
  const h = typeof b === 'string' ? b : toHex(b)
  return h.length > 16 ? `${h.slice(0, 16)}…` : h
}

// Parsing and replaying a log depends only on its bytes: cache by content hash.
interface ParsedLog {
  readonly log: EventLog
  readonly replay: ReadonlyMap<number, Uint8Array> | undefined
  /** Per PCR, its extending events with their sha256 digest in hex (undefined when missing). */
  readonly byPcr: ReadonlyMap<number, ReadonlyArray<{ readonly event: TcgEvent; readonly hex: string | undefined }>>
}
// Parsed logs hold about twice their size; 256 entries and 32 MiB each at most.
const logCache = new BoundedCache<ParsedLog | { error: string }>(256, 32 << 20)
const logKeys = new ContentKeys()
const clogKeys = new ContentKeys()
const certKeys = new ContentKeys()

function parsedLog(bytes: Uint8Array): ParsedLog | { error: string } {
  const key = logKeys.key(bytes)
  const hit = logCache.get(key)
  if (hit !== undefined) return hit
  let v: ParsedLog | { error: string }
  try {
    const log = parseEventLog(bytes)
    const replay = log.banks.includes('sha256') ? replayEventLog(log, ['sha256']).get('sha256') : undefined
    const byPcr = new Map<number, Array<{ event: TcgEvent; hex: string | undefined }>>()
    for (let p = 0; p < 24; p++) {
      const list = eventsForPcr(log, p).map(event => ({
        event,
        hex: event.digests.sha256 !== undefined ? toHex(event.digests.sha256) : undefined
      }))
      if (list.length > 0) byPcr.set(p, list)
    }
    v = { log, replay, byPcr }
  } catch (err) {
    v = { error: (err as Error).message }
  }
  logCache.set(key, v, 2 * bytes.length + 1024)
  return v
}

// The container log only grows between appraisals of a node; parsing is cached by content too.
interface ParsedContainerLog {
  readonly entries: readonly ContainerLogEntry[]
  readonly replay: Uint8Array
}
const clogCache = new BoundedCache<ParsedContainerLog | { error: string }>(256, 32 << 20)

function parsedContainerLog(text: string): ParsedContainerLog | { error: string } {
  const key = clogKeys.key(text)
  const hit = clogCache.get(key)
  if (hit !== undefined) return hit
  let v: ParsedContainerLog | { error: string }
  try {
    const entries = parseContainerLog(text)
    v = { entries, replay: replayContainerLog(entries) }
  } catch (err) {
    v = { error: (err as Error).message }
  }
  clogCache.set(key, v, 2 * text.length + 1024)
  return v
}

// Derived once per prepared reference set, parsed log or AK name (all cached objects themselves).
const osPcrsOf = new WeakMap<PreparedReferences, readonly number[]>()
function defaultOsPcrs(R: PreparedReferences): readonly number[] {
  let list = osPcrsOf.get(R)
  if (list === undefined) {
    list = [...DEFAULT_OS_PCRS, ...OPTIONAL_OS_PCRS.filter(p => R.os.has(p))].sort((a, b) => a - b)
    osPcrsOf.set(R, list)
  }
  return list
}

// Whether a PCR's events are all in a reference depends only on the (cached) parsed log and the
// (cached) reference index: remember the failures per pair, claim and PCR.
const eventChecks = new WeakMap<ParsedLog, WeakMap<PcrIndex, Map<number, readonly string[]>>>()
function eventFailures(log: ParsedLog, ref: PcrIndex, claim: 'firmware' | 'os', p: number): readonly string[] {
  let byRef = eventChecks.get(log)
  if (byRef === undefined) {
    byRef = new WeakMap()
    eventChecks.set(log, byRef)
  }
  let byPcr = byRef.get(ref)
  if (byPcr === undefined) {
    byPcr = new Map()
    byRef.set(ref, byPcr)
  }
  const key = 2 * p + (claim === 'os' ? 1 : 0)
  let out = byPcr.get(key)
  if (out === undefined) {
    const list: string[] = []
    const events = log.byPcr.get(p) ?? []
    // A reference that lists events expects some: an untouched PCR (not even the PFP-mandated
    // EV_SEPARATOR) would otherwise pass vacuously.
    if (events.length === 0 && !ref.allowsNoEvents)
      list.push(`PCR ${p} has no events in the event log, but its published ${claim} reference lists events`)
    for (const { event: e, hex: d } of events) {
      if (d === undefined) list.push(`PCR ${p} event #${e.index} (${e.typeName}) has no sha256 digest`)
      else if (!ref.events.has(d))
        list.push(
          `PCR ${p} event #${e.index} (${e.typeName}) digest ${short(d)} not in any published ${claim} reference`
        )
    }
    out = list
    byPcr.set(key, out)
  }
  return out
}

// The TPM description of a (cached) verified EK: a frozen copy with its encoding remembered, so
// results share it safely and the digest copies its bytes.
const tpmOfEk = new WeakMap<VerifiedEk, VerifiedEk['tpm']>()
function tpmOf(ek: VerifiedEk): VerifiedEk['tpm'] {
  let t = tpmOfEk.get(ek)
  if (t === undefined) {
    t = memoizeCanonical({ ...ek.tpm } as unknown as Canonical) as unknown as VerifiedEk['tpm']
    tpmOfEk.set(ek, t)
  }
  return t
}

const hexOf = new WeakMap<Uint8Array, string>()
function cachedHex(b: Uint8Array): string {
  let h = hexOf.get(b)
  if (h === undefined) {
    h = toHex(b)
    hexOf.set(b, h)
  }
  return h
}

/** Appraises evidence; never throws for bad evidence (every problem becomes a failure). */
export function appraise(
  evidence: Evidence,
  refs: ReferenceValues | PreparedReferences,
  policy: AppraisalPolicy
): Appraisal {
  const R = 'trust' in refs ? refs : prepareReferences(refs)
  const f: Record<Claim, string[]> = { identity: [], firmware: [], os: [], containers: [], freshness: [] }
  const add = (c: Claim, m: string): void => {
    const list = f[c]
    if (list.length < MAX_FAILURES_PER_CLAIM) list.push(`${c}: ${m}`)
    else if (list.length === MAX_FAILURES_PER_CLAIM) list.push(`${c}: … more failures not listed`)
  }
  const now = policy.now ?? Date.now()
  const ekSha256 = certKeys.key(evidence.ekCertificate)

  // identity: EK certificate chain
  let ek: VerifiedEk | undefined
  if (R.trust.anchors.length === 0) add('identity', 'no published TPM vendor CA to check the EK certificate against')
  else {
    try {
      ek = verifyEkCertificateCached(evidence.ekCertificate, R.trust, now, ekSha256)
    } catch (err) {
      add('identity', `EK certificate: ${(err as Error).message}`)
    }
  }
  if (policy.requireCredentialActivation === true && policy.credentialActivated !== true) {
    add('identity', 'the AK is not bound to the EK: credential activation was not proven')
  }

  // freshness: which nonce the quote must carry
  let expected = policy.nonce
  if (evidence.committeeNonces !== undefined) {
    if (!evidence.committeeNonces.some(n => equal(n, policy.nonce)))
      add(
        'freshness',
        `our nonce ${short(policy.nonce)} is not among the ${evidence.committeeNonces.length} committee nonces`
      )
    // with a TLS key hash the quote binds it too (committeeNonce; docs/tls.md): which key the
    // round asked to bind is the member's check (agent/p2p/member.ts), not the appraisal's
    expected = committeeNonce(evidence.committeeNonces, evidence.tlsKey)
    if (!equal(expected, evidence.nonce))
      add(
        'freshness',
        `evidence nonce ${short(evidence.nonce)} is not the hash of the committee nonces${evidence.tlsKey !== undefined ? ' and TLS key' : ''} (${short(expected)})`
      )
  } else if (!equal(evidence.nonce, policy.nonce)) {
    add('freshness', `evidence nonce ${short(evidence.nonce)} is not the expected nonce ${short(policy.nonce)}`)
  }

  // the quote
  const firmwarePcrs = policy.firmwarePcrs ?? DEFAULT_FIRMWARE_PCRS
  const osPcrs = policy.osPcrs ?? defaultOsPcrs(R)
  const owner = (p: number): Claim =>
    firmwarePcrs.includes(p) ? 'firmware' : osPcrs.includes(p) ? 'os' : p === CONTAINER_PCR ? 'containers' : 'firmware'
  const qc = checkQuote(
    {
      attest: evidence.quote.attest,
      signature: evidence.quote.signature,
      akPublic: evidence.akPublic,
      pcrs: evidence.pcrs
    },
    { nonce: expected }
  )
  let authentic = true
  for (const p of qc.problems) {
    switch (p.kind) {
      case 'structure':
      case 'ak':
      case 'signature':
        add('identity', p.message)
        authentic = false
        break
      case 'nonce':
        add('freshness', p.message)
        break
      case 'pcrs':
        if (p.pcr !== undefined) add(owner(p.pcr), p.message)
        else {
          add('firmware', p.message)
          add('os', p.message)
          add('containers', p.message)
        }
        break
    }
  }
  if (!authentic) {
    for (const c of ['firmware', 'os', 'containers', 'freshness'] as const)
      add(c, 'the quote is not authentic (see identity), so its PCR values and nonce are unattested')
  }
  const pcrs = qc.attestedPcrs?.get('sha256')

  // firmware event log
  let log: ParsedLog | undefined
  if (evidence.eventLog !== undefined) {
    const pl = parsedLog(evidence.eventLog)
    if ('error' in pl) add('firmware', `event log: ${pl.error}`)
    else if (pl.replay === undefined)
      add('firmware', 'event log has no sha256 digests for every event, so it cannot be replayed')
    else log = pl
  } else if (policy.requireEventLog ?? true) add('firmware', 'the evidence has no firmware event log')

  const pcrClaim = (claim: 'firmware' | 'os', list: readonly number[], idx: ReadonlyMap<number, PcrIndex>): void => {
    if (pcrs === undefined) return // already failed above: nothing attested to compare
    for (const p of list) {
      const v = pcrs.get(p)
      if (v === undefined) {
        add(claim, `PCR ${p} is not in the quote`)
        continue
      }
      if (log?.replay !== undefined) {
        const r = log.replay.get(p)
        if (r !== undefined && !equal(r, v))
          add(claim, `PCR ${p}: the event log replays to ${short(r)} but the quote says ${short(v)}`)
      }
      const ref = idx.get(p)
      if (ref === undefined) {
        add(claim, `PCR ${p} has no published ${claim} reference`)
        continue
      }
      if (ref.golden.size > 0 && ref.golden.has(toHex(v))) continue
      if (!ref.hasEvents) {
        add(claim, `PCR ${p} value ${short(v)} is not a published ${claim} golden value`)
        continue
      }
      if (log === undefined) {
        add(
          claim,
          `PCR ${p} value ${short(v)} is not a published golden value, and without an event log its events cannot be checked`
        )
        continue
      }
      for (const m of eventFailures(log, ref, claim, p)) add(claim, m)
    }
  }
  pcrClaim('firmware', firmwarePcrs, R.firmware)
  pcrClaim('os', osPcrs, R.os)

  // containers
  let entries: readonly ContainerLogEntry[] = []
  let containerReplay: Uint8Array | undefined
  if (evidence.containerLog !== undefined) {
    const cl = parsedContainerLog(evidence.containerLog)
    if ('error' in cl) add('containers', `container log: ${cl.error}`)
    else {
      entries = cl.entries
      containerReplay = cl.replay
    }
  }
  if (pcrs !== undefined) {
    const v = pcrs.get(CONTAINER_PCR)
    if (v === undefined) {
      if (entries.length > 0)
        add(
          'containers',
          `PCR ${CONTAINER_PCR} is not in the quote, so the ${entries.length} container launches are unattested`
        )
    } else {
      const r = containerReplay ?? replayContainerLog(entries)
      if (!equal(r, v))
        add(
          'containers',
          `PCR ${CONTAINER_PCR}: the container log (${entries.length} launches) replays to ${short(r)} but the quote says ${short(v)}`
        )
    }
  }
  const extra = policy.allowedImages ?? []
  for (const e of entries) {
    if (!R.images.has(e.record.digest) && !extra.includes(e.record.digest)) {
      add(
        'containers',
        `launch #${e.index + 1} image ${e.record.image} digest sha256:${short(e.record.digest.slice(7))} is not an allowed (published) image`
      )
    }
  }

  // freshness: reboot since the previous quote
  const clockInfo = authentic ? qc.attest?.clockInfo : undefined
  if (clockInfo !== undefined && policy.previousClock !== undefined) {
    const ch = compareClock(policy.previousClock, clockInfo)
    if (ch.rebooted)
      add(
        'freshness',
        `the TPM was reset since the previous quote (resetCount ${policy.previousClock.resetCount} → ${clockInfo.resetCount}): the node rebooted`
      )
    if (ch.restarted)
      add(
        'freshness',
        `the TPM was restarted since the previous quote (restartCount ${policy.previousClock.restartCount} → ${clockInfo.restartCount})`
      )
    if (ch.clockWentBack)
      add(
        'freshness',
        `the TPM clock went back since the previous quote (${String(policy.previousClock.clock)} → ${clockInfo.clock})`
      )
  }

  const failures: string[] = []
  for (const c of CLAIMS) for (const m of f[c]) failures.push(m)
  const ok = failures.length === 0
  let status: { readonly [c in Claim]: ClaimStatus }
  if (ok) status = ALL_AFFIRMING
  else {
    const st = {} as Record<Claim, ClaimStatus>
    for (const c of CLAIMS)
      st[c] = f[c].length === 0 ? AFFIRMING : { ok: false, 'ear.status': 'contraindicated', failures: f[c] }
    status = st
  }
  const body = {
    profile: 'quorate/appraisal/v1' as const,
    ok,
    'ear.status': (ok ? 'affirming' : 'contraindicated') as EarStatus,
    status,
    failures,
    subject: {
      ekCertificate: ekSha256,
      ...(qc.akName !== undefined ? { akName: cachedHex(qc.akName) } : {}),
      nonce: toHex(evidence.nonce),
      ...(ek !== undefined ? { tpm: tpmOf(ek) } : {})
    },
    ...(clockInfo !== undefined
      ? {
          clock: {
            clock: clockInfo.clock.toString(),
            resetCount: clockInfo.resetCount,
            restartCount: clockInfo.restartCount,
            safe: clockInfo.safe
          }
        }
      : {})
  }
  // Interfaces lack index signatures, so TypeScript cannot see that the body is a Canonical value.
  const digest = canonicalSha256(body as unknown as Canonical)
  return { ...body, digest }
}

/** Recomputes an appraisal's digest (sha256 of the canonical encoding without `digest`). */
export function appraisalDigest(a: Appraisal): string {
  const { digest: _omit, ...body } = a
  return createHash('sha256')
    .update(encode(JSON.parse(JSON.stringify(body))))
    .digest('hex')
}
