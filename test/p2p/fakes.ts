// Fakes for unit tests of agent/p2p: a TPM that counts quotes and builds real TPMS_ATTEST bytes
// (unsigned), a credential scheme tied to the EK certificate, an appraiser comparing one PCR to a
// golden value, and an in-memory chain that verifies QCs v3 (BLS) with the real QuorumRules and,
// like the chain, records the AK–EK binding once a QC passed a node.
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { marshalAttest, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE } from '../../attestation/tpm2.ts'
import {
  createQuorumRules,
  selectCommittee,
  ed25519Signer,
  generateBlsKey,
  type VerdictSigner,
  type BlsSigner
} from '../../attestation/quorum/index.ts'
import { concat, equal, sha256, utf8 } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import type { AttesterTpm, Appraise, MakeCredential, ChainPort, MemberChainPort } from '../../agent/p2p/index.ts'

export class FakeTpm implements AttesterTpm {
  quotes = 0
  activations = 0
  readonly ekCert: Uint8Array
  readonly akPublic: Uint8Array
  pcr0: Uint8Array
  constructor(name: string, pcr0: Uint8Array = new Uint8Array(32)) {
    this.ekCert = utf8.encode(`ek certificate of ${name}`)
    this.akPublic = sha256(utf8.encode(`ak of ${name}`))
    this.pcr0 = pcr0
  }

  async quote(opts: { nonce: Uint8Array }): Promise<{ attest: Uint8Array; signature: Uint8Array }> {
    this.quotes++
    const attest = marshalAttest({
      magic: TPM_GENERATED_VALUE,
      type: TPM_ST_ATTEST_QUOTE,
      qualifiedSigner: new Uint8Array(34),
      extraData: opts.nonce,
      clockInfo: { clock: 1000n, resetCount: 1, restartCount: 0, safe: true },
      firmwareVersion: 1n,
      quote: { pcrSelect: [{ hash: 'sha256', pcrs: [0] }], pcrDigest: sha256(this.pcr0) }
    })
    return { attest, signature: new Uint8Array(8) }
  }

  async pcrRead(): Promise<{ updateCounter: number; banks: { hash: 'sha256'; values: Map<number, Uint8Array> }[] }> {
    return { updateCounter: 1, banks: [{ hash: 'sha256', values: new Map([[0, this.pcr0]]) }] }
  }

  async activateCredential(opts: { credentialBlob: Uint8Array; encryptedSecret: Uint8Array }): Promise<Uint8Array> {
    this.activations++
    if (!equal(opts.encryptedSecret, sha256(this.ekCert))) throw new InvalidInputError('credential is not for this EK')
    return opts.credentialBlob
  }

  async ekCertificate(): Promise<Uint8Array> {
    return this.ekCert
  }
  async ekPublic(): Promise<Uint8Array> {
    return sha256(this.ekCert)
  }
  async ensureAk(): Promise<{ handle: number; public: Uint8Array; name: Uint8Array }> {
    return { handle: 0x81000a01, public: this.akPublic, name: concat([new Uint8Array([0, 11]), sha256(this.akPublic)]) }
  }
}

/** "MakeCredential": the secret travels in the clear, encryptedSecret names the EK. Counts calls. */
export function fakeMakeCredential(): MakeCredential & { calls: number } {
  const f = Object.assign(
    async (input: { ekCertificate: Uint8Array }) => {
      f.calls++
      const secret = sha256(utf8.encode(`secret ${Math.random()}`))
      return {
        credentialBlob: secret,
        encryptedSecret: sha256(input.ekCertificate),
        ekKind: 'rsa2048' as const,
        secret
      }
    },
    { calls: 0 }
  )
  return f
}

export const GOLDEN_PCR0 = new Uint8Array(32)

export const fakeAppraise: Appraise = async evidence => {
  const pcr0 = evidence.pcrs.sha256?.['0']
  const ok = pcr0 !== undefined && equal(pcr0, GOLDEN_PCR0)
  const failed = ok ? [] : ['firmware']
  return { ok, failed, digest: sha256(encode({ ok, failed, nonce: evidence.nonce })) }
}

export const FAKE_CHAIN_ID = 'fake-chain'
/** Every fake node's BLS verdict key, by node id (what node.register would put on chain). */
const blsKeys = new Map<string, BlsSigner>()

export async function nodeKey(): Promise<{ key: Ed25519PrivateKey; signer: VerdictSigner; bls: BlsSigner }> {
  const key = await generateKeyPair('Ed25519')
  const signer = ed25519Signer(key)
  const bls = generateBlsKey()
  blsKeys.set(signer.nodeId, bls)
  return { key, signer, bls }
}

/** The identity part of CommitteeMember options for a node made by nodeKey(). */
export function memberKeys(signer: VerdictSigner): { signer: VerdictSigner; bls: BlsSigner; chainId: string } {
  const bls = blsKeys.get(signer.nodeId)
  if (bls === undefined) throw new Error(`no BLS key for ${signer.nodeId}: make it with nodeKey()`)
  return { signer, bls, chainId: FAKE_CHAIN_ID }
}

/** In-memory chain: rounds, registrations, addresses, and attest.record checked by the real rules. */
export class FakeChain implements ChainPort, MemberChainPort {
  readonly k: number
  readonly nodes = new Map<
    string,
    { ekCertificate: Uint8Array; akPublic: Uint8Array; addrs: string[]; publicKey: Uint8Array }
  >()
  readonly rounds = new Map<string, { seed: Uint8Array; candidates: string[] }>()
  readonly records: {
    nodeId: string
    round: number
    outcome: string
    expiresAt: number
    qcBytes: number
    by?: 'member'
  }[] = []
  readonly #waiting = new Map<string, Array<(r: FakeChain['records'][number]) => void>>()
  readonly lastRound = new Map<string, number>()
  /** Nodes a passing QC certified: the AK–EK binding is on record (as chain/app.ts does). */
  readonly bound = new Set<string>()
  #seedCounter = 0
  constructor(k: number) {
    this.k = k
  }

  register(
    nodeId: string,
    r: { ekCertificate: Uint8Array; akPublic: Uint8Array; addrs: string[]; publicKey: Uint8Array }
  ): void {
    this.nodes.set(nodeId, r)
  }

  async requestAttestation(nodeId: string): Promise<{ round: number }> {
    const round = (this.lastRound.get(nodeId) ?? 0) + 1
    this.lastRound.set(nodeId, round)
    const seed = sha256(utf8.encode(`block hash ${this.#seedCounter++}`), utf8.encode(nodeId))
    this.rounds.set(`${nodeId}/${round}`, { seed, candidates: [...this.nodes.keys()].filter(id => id !== nodeId) })
    return { round }
  }

  async waitForRound(
    nodeId: string,
    round: number
  ): Promise<{ chainId: string; seed: Uint8Array; k: number; candidates: string[]; blsKeys: Map<string, Uint8Array> }> {
    const r = this.rounds.get(`${nodeId}/${round}`)
    if (r === undefined) throw new Error('no such round')
    const keys = new Map<string, Uint8Array>()
    for (const id of r.candidates) {
      const b = blsKeys.get(id)
      if (b !== undefined) keys.set(id, b.publicKey)
    }
    return { chainId: FAKE_CHAIN_ID, seed: r.seed, k: this.k, candidates: r.candidates, blsKeys: keys }
  }

  async addresses(nodeId: string): Promise<string[]> {
    return this.nodes.get(nodeId)?.addrs ?? []
  }

  async recordAttestation(
    nodeId: string,
    round: number,
    qc: Uint8Array
  ): Promise<{ height: number; expiresAt: number }> {
    return this.#record(nodeId, round, qc)
  }

  #record(nodeId: string, round: number, qc: Uint8Array, by?: 'member'): { height: number; expiresAt: number } {
    const r = this.rounds.get(`${nodeId}/${round}`)
    if (r === undefined) throw new Error('no such round')
    const res = createQuorumRules().verifyCertificate({
      qc,
      chainId: FAKE_CHAIN_ID,
      nodeId,
      round,
      seed: r.seed,
      k: this.k,
      candidates: r.candidates.map(id => ({
        nodeId: id,
        blsPublicKey: blsKeys.get(id)?.publicKey ?? new Uint8Array(0)
      }))
    })
    const expiresAt = Date.now() + 24 * 3600_000
    const rec = {
      nodeId,
      round,
      outcome: res.outcome,
      expiresAt,
      qcBytes: qc.length,
      ...(by === undefined ? {} : { by })
    }
    this.records.push(rec)
    if (res.outcome === 'pass') this.bound.add(nodeId)
    for (const w of this.#waiting.get(`${nodeId}/${round}`) ?? []) w(rec)
    this.#waiting.delete(`${nodeId}/${round}`)
    return { height: this.records.length, expiresAt }
  }

  /** A member's backup attest.record: only while the round is not recorded yet. */
  async recordQc(nodeId: string, round: number, qc: Uint8Array): Promise<boolean> {
    if (this.records.some(r => r.nodeId === nodeId && r.round === round)) return false
    this.#record(nodeId, round, qc, 'member')
    return true
  }

  /** Resolves when round `round` of `nodeId` is recorded (at once if it is). */
  async waitRecorded(nodeId: string, round: number): Promise<FakeChain['records'][number]> {
    const done = this.records.find(r => r.nodeId === nodeId && r.round === round)
    if (done !== undefined) return done
    return await new Promise(resolve => {
      const k = `${nodeId}/${round}`
      this.#waiting.set(k, [...(this.#waiting.get(k) ?? []), resolve])
    })
  }

  async roundInfo(
    nodeId: string,
    round: number
  ): Promise<{ seed: Uint8Array; candidates: string[]; k: number } | undefined> {
    const r = this.rounds.get(`${nodeId}/${round}`)
    return r === undefined ? undefined : { seed: r.seed, candidates: r.candidates, k: this.k }
  }

  async nodeRecord(
    nodeId: string
  ): Promise<{ ekCertificate: Uint8Array; akPublic: Uint8Array; akBound: boolean } | undefined> {
    const n = this.nodes.get(nodeId)
    return n === undefined ? undefined : { ...n, akBound: this.bound.has(nodeId) }
  }

  committeeOf(nodeId: string, round: number): string[] {
    const r = this.rounds.get(`${nodeId}/${round}`)
    return r === undefined ? [] : selectCommittee(r.seed, r.candidates, this.k)
  }
}

/** A TPM whose quotes wait until the test releases them (a slow hardware TPM, deterministically). */
export class GatedTpm extends FakeTpm {
  #gate: { release: () => void; started: Promise<void>; onStart: () => void } | undefined
  /** Resolves when the next quote has started; call the returned function to let it finish. */
  nextQuote(): Promise<() => void> {
    let onStart!: () => void
    const started = new Promise<void>(resolve => {
      onStart = resolve
    })
    let release!: () => void
    const released = new Promise<void>(resolve => {
      release = resolve
    })
    this.#gate = { release, started, onStart }
    this.#released = released
    return started.then(() => release)
  }

  #released: Promise<void> = Promise.resolve()
  override async quote(opts: { nonce: Uint8Array }): Promise<{ attest: Uint8Array; signature: Uint8Array }> {
    const g = this.#gate
    this.#gate = undefined
    if (g !== undefined) {
      g.onStart()
      await this.#released
    }
    return await super.quote(opts)
  }
}
