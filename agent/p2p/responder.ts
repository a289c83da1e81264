// Node side of attestation: answers credential challenges (TPM2_ActivateCredential) and evidence
// challenges with ONE quote per batch of nonces: the quote's nonce is
// committeeNonce(nonces) = sha256(canonical(nonces)), and every member gets the same bundle with
// the nonce list so it can check its own nonce is in it (docs/CONTRACTS.md). A hardware TPM signs
// a few quotes per second, so quotes are never taken per verifier.
import type { Stream, Connection } from '@libp2p/interface'
import { encodeEvidence, committeeNonce, EVIDENCE_LIMITS, type Evidence } from '../../attestation/evidence.ts'
import { parseAttest } from '../../attestation/tpm2.ts'
import { computePcrDigest } from '../../attestation/quote.ts'
import { DIGEST_SIZE, HASH_ALGS, type HashAlg } from '../../attestation/algs.ts'
import type { PcrSelection } from '../../attestation/tpm2.ts'
import { equal } from '../../encoding/bytes.ts'
import type { Logger } from '../../encoding/log.ts'
import { silentLogger } from '../../encoding/log.ts'
import { QuorateError, TransientError } from '../../encoding/errors.ts'
import { Framed } from './framing.ts'
import {
  PROTOCOL_CREDENTIAL,
  PROTOCOL_EVIDENCE,
  MESSAGE_LIMITS,
  decodeCredentialRequest,
  encodeActivated,
  decodeNonceRequest,
  encodeEvidenceMsg,
  refuse,
  type CredentialChallenge,
  type EkKind
} from './messages.ts'

export type { HashAlg, PcrSelection }

/** The TPM methods the responder uses (a subset of attestation/tpm `Tpm`). */
export interface AttesterTpm {
  quote(opts: {
    nonce: Uint8Array
    pcrs: readonly PcrSelection[]
    akHandle?: number
  }): Promise<{ attest: Uint8Array; signature: Uint8Array }>
  pcrRead(
    selection: readonly PcrSelection[]
  ): Promise<{ updateCounter: number; banks: readonly { hash: HashAlg; values: ReadonlyMap<number, Uint8Array> }[] }>
  activateCredential(opts: {
    credentialBlob: Uint8Array
    encryptedSecret: Uint8Array
    ekKind?: EkKind
    akHandle?: number
  }): Promise<Uint8Array>
  ekCertificate(kind?: EkKind): Promise<Uint8Array | undefined>
  ekPublic(kind?: EkKind): Promise<Uint8Array>
  ensureAk(opts?: { handle?: number }): Promise<{ handle: number; public: Uint8Array; name: Uint8Array }>
}

/** Where the node's event logs come from (firmware log file, the container log of the agent). */
export interface EventLogSource {
  eventLog?(): Promise<Uint8Array | undefined>
  containerLog?(): Promise<string | undefined>
}

/** A libp2p node, as far as the responder needs one. */
export interface ProtocolHost {
  handle(
    protocol: string,
    handler: (stream: Stream, connection: Connection) => void | Promise<void>,
    opts?: { maxInboundStreams?: number }
  ): Promise<void>
  unhandle(protocol: string): Promise<void>
}

export interface ResponderOptions {
  readonly tpm: AttesterTpm
  readonly logs?: EventLogSource
  /** PCRs to quote; default sha256 0–14 (firmware, boot chain, OS, container PCR 13). */
  readonly pcrs?: readonly PcrSelection[]
  /** Which EK certificate to present; default rsa2048. */
  readonly ekKind?: EkKind
  /** How long the evidence protocol gathers nonces before quoting once (default 25 ms). */
  readonly batchWindowMs?: number
  /** Per-message deadline on served streams (default 10 s). */
  readonly timeoutMs?: number
  readonly logger?: Logger
}

export class NoEkCertificateError extends QuorateError {
  override readonly code: string = 'ERR_NO_EK_CERTIFICATE'
}

export const DEFAULT_QUOTE_PCRS: readonly PcrSelection[] = [
  { hash: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] }
]

export interface Identity {
  ekCertificate: Uint8Array
  ekPublic: Uint8Array
  akPublic: Uint8Array
  akName: Uint8Array
  akHandle: number
}

/** Whether PCR values read now hash to the quote's signed pcrDigest (TPM 2.0 Part 2 §10.12.1). */
function matchesQuote(
  attest: Uint8Array,
  banks: readonly { hash: HashAlg; values: ReadonlyMap<number, Uint8Array> }[]
): boolean {
  try {
    const q = parseAttest(attest).quote
    if (q === undefined) return true // not a quote: let the verifiers say so
    const hash = HASH_ALGS.find(a => DIGEST_SIZE[a] === q.pcrDigest.length)
    if (hash === undefined) return true
    const d = computePcrDigest(hash, q.pcrSelect, (bank, pcr) => banks.find(b => b.hash === bank)?.values.get(pcr))
    return d !== undefined && equal(d, q.pcrDigest)
  } catch {
    return true
  }
}

interface Batch {
  nonces: Uint8Array[]
  waiters: { resolve: (b: Uint8Array) => void; reject: (e: unknown) => void }[]
}

export class AttestationResponder {
  readonly #tpm: AttesterTpm
  readonly #logs: EventLogSource
  readonly #pcrs: readonly PcrSelection[]
  readonly #ekKind: EkKind
  readonly #window: number
  readonly #timeout: number
  readonly #log: Logger
  #identity: Promise<Identity> | undefined
  #pending: Batch | undefined
  #tpmIdle: Promise<void> = Promise.resolve()
  /** Quotes taken so far (observability and tests: one per batch). */
  quotesTaken = 0

  constructor(opts: ResponderOptions) {
    this.#tpm = opts.tpm
    this.#logs = opts.logs ?? {}
    this.#pcrs = opts.pcrs ?? DEFAULT_QUOTE_PCRS
    this.#ekKind = opts.ekKind ?? 'rsa2048'
    this.#window = opts.batchWindowMs ?? 25
    this.#timeout = opts.timeoutMs ?? 10_000
    this.#log = opts.logger ?? silentLogger('quorate:p2p:responder')
  }

  get ekKind(): EkKind {
    return this.#ekKind
  }

  /** EK certificate and AK (created and persisted on first use), cached. */
  async identity(): Promise<Identity> {
    this.#identity ??= (async () => {
      const ak = await this.#tpm.ensureAk()
      const ekCertificate = await this.#tpm.ekCertificate(this.#ekKind)
      if (ekCertificate === undefined)
        throw new NoEkCertificateError(
          `the TPM holds no ${this.#ekKind} EK certificate; verifiers cannot tie it to a vendor`
        )
      return {
        ekCertificate,
        ekPublic: await this.#tpm.ekPublic(this.#ekKind),
        akPublic: ak.public,
        akName: ak.name,
        akHandle: ak.handle
      }
    })()
    try {
      return await this.#identity
    } catch (err) {
      this.#identity = undefined
      throw err
    }
  }

  /** TPM2_ActivateCredential: recovers a verifier's secret, proving the AK lives beside the EK. */
  async activate(c: CredentialChallenge): Promise<Uint8Array> {
    const id = await this.identity()
    return await this.#tpm.activateCredential({
      credentialBlob: c.credentialBlob,
      encryptedSecret: c.encryptedSecret,
      ekKind: c.ekKind,
      akHandle: id.akHandle
    })
  }

  /**
   * Takes ONE quote over committeeNonce(nonces, tlsKey) and builds the bundle every member receives.
   * PCRs are read after the quote and checked against its signed pcrDigest; if one moved in
   * between (a container launch extending PCR 13), it quotes again (at most 3 attempts).
   */
  async evidence(
    nonces: readonly Uint8Array[],
    opts: { tlsKey?: Uint8Array } = {}
  ): Promise<{ bytes: Uint8Array; evidence: Evidence }> {
    if (nonces.length === 0) throw new TransientError('no nonces to quote over')
    const id = await this.identity()
    const nonce = committeeNonce(nonces, opts.tlsKey)
    for (let attempt = 0; ; attempt++) {
      const quote = await this.#tpm.quote({ nonce, pcrs: this.#pcrs, akHandle: id.akHandle })
      this.quotesTaken++
      const after = await this.#tpm.pcrRead(this.#pcrs)
      if (attempt < 2 && !matchesQuote(quote.attest, after.banks)) continue
      const pcrs: Record<string, Record<string, Uint8Array>> = {}
      for (const bank of after.banks) {
        const out: Record<string, Uint8Array> = {}
        for (const [i, v] of bank.values) out[String(i)] = v
        pcrs[bank.hash] = out
      }
      const eventLog = await this.#logs.eventLog?.()
      const containerLog = await this.#logs.containerLog?.()
      const evidence: Evidence = {
        version: 1,
        nonce,
        quote,
        pcrs,
        akPublic: id.akPublic,
        ekCertificate: id.ekCertificate,
        ...(eventLog !== undefined ? { eventLog } : {}),
        ...(containerLog !== undefined ? { containerLog } : {}),
        committeeNonces: [...nonces],
        ...(opts.tlsKey !== undefined ? { tlsKey: opts.tlsKey } : {})
      }
      return { bytes: encodeEvidence(evidence), evidence }
    }
  }

  /**
   * Evidence for one verifier nonce, batched with others: a batch collects nonces for the window
   * and, if the TPM is still busy with the previous quote, until it is free — so a slow hardware
   * TPM sees at most one quote in flight and one batch waiting, whatever the request rate.
   */
  async evidenceBatched(nonce: Uint8Array): Promise<Uint8Array> {
    return await new Promise<Uint8Array>((resolve, reject) => {
      let batch = this.#pending
      if (batch === undefined) {
        const b: Batch = { nonces: [], waiters: [] }
        this.#pending = batch = b
        setTimeout(() => {
          void this.#flush(b)
        }, this.#window)
      }
      if (batch.nonces.length >= EVIDENCE_LIMITS.maxCommitteeNonces) {
        reject(new TransientError('too many verifiers waiting for a quote; try again shortly'))
        return
      }
      batch.nonces.push(nonce)
      batch.waiters.push({ resolve, reject })
    })
  }

  async #flush(batch: Batch): Promise<void> {
    await this.#tpmIdle
    if (this.#pending === batch) this.#pending = undefined
    const p = this.evidence(batch.nonces)
    this.#tpmIdle = p.then(
      () => {},
      () => {}
    )
    try {
      const r = await p
      for (const w of batch.waiters) w.resolve(r.bytes)
    } catch (err) {
      for (const w of batch.waiters) w.reject(err)
    }
  }

  /** Serves the credential and evidence protocols (verifiers that dial this node, `quorate verify`). */
  async register(host: ProtocolHost): Promise<void> {
    await host.handle(
      PROTOCOL_CREDENTIAL,
      async stream => {
        await this.#serve(stream, 'credential', async f => {
          const c = decodeCredentialRequest(await f.read(MESSAGE_LIMITS.small, AbortSignal.timeout(this.#timeout)))
          return encodeActivated(await this.activate(c))
        })
      },
      { maxInboundStreams: 32 }
    )
    await host.handle(
      PROTOCOL_EVIDENCE,
      async stream => {
        await this.#serve(stream, 'evidence', async f => {
          const nonce = decodeNonceRequest(await f.read(MESSAGE_LIMITS.small, AbortSignal.timeout(this.#timeout)))
          return encodeEvidenceMsg({
            evidence: await this.evidenceBatched(nonce),
            ekPublic: (await this.identity()).ekPublic
          })
        })
      },
      { maxInboundStreams: 32 }
    )
  }

  async unregister(host: ProtocolHost): Promise<void> {
    await host.unhandle(PROTOCOL_CREDENTIAL)
    await host.unhandle(PROTOCOL_EVIDENCE)
  }

  async #serve(stream: Stream, what: string, fn: (f: Framed) => Promise<Uint8Array>): Promise<void> {
    const f = new Framed(stream)
    try {
      await f.write(await fn(f))
      await f.close()
    } catch (err) {
      this.#log.warn(`${what} request refused`, { error: err })
      await refuse(f, err)
    }
  }
}
