// One-off remote attestation of another node by this machine (`quorate verify PEER`): evidence
// challenge with a fresh nonce, credential challenge binding the AK to the EK, then appraisal.
// The same checks a committee member makes; no verdict is signed or sent.
import { randomBytes } from 'node:crypto'
import { decodeEvidence, type Evidence } from '../../attestation/evidence.ts'
import { equalConstantTime } from '../../encoding/bytes.ts'
import { Framed } from './framing.ts'
import { dialTarget } from './host.ts'
import {
  ALL_CLAIMS,
  checkEvidenceBinding,
  EvidenceBindingError,
  MalformedEvidenceError,
  failedAppraisal,
  type Appraise,
  type AppraisalSummary,
  type MakeCredential
} from './member.ts'
import {
  PROTOCOL_CREDENTIAL,
  PROTOCOL_EVIDENCE,
  MESSAGE_LIMITS,
  encodeNonceRequest,
  decodeEvidenceMsg,
  encodeCredentialRequest,
  decodeActivated
} from './messages.ts'
import type { DialingHost } from './round.ts'

export interface VerifyPeerOptions {
  readonly host: DialingHost
  /** A multiaddr ending in /p2p/<node id>, or a node id (then `addrs` are dialled). */
  readonly peer: string
  readonly addrs?: readonly string[]
  readonly makeCredential: MakeCredential
  readonly appraise: Appraise
  /** The node's registration on chain; when given, the evidence must present the same EK and AK. */
  readonly registered?: { ekCertificate: Uint8Array; akPublic: Uint8Array }
  /** Per-step deadline (default 10 s). */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  readonly onProgress?: (msg: string) => void
}

export interface VerifyPeerResult {
  readonly nodeId: string
  readonly pass: boolean
  readonly failed: readonly string[]
  readonly appraisal: AppraisalSummary
  readonly evidence?: Evidence
  readonly credentialActivated: boolean
}

export async function verifyPeer(opts: VerifyPeerOptions): Promise<VerifyPeerResult> {
  const target = dialTarget(opts.peer, opts.addrs ?? [])
  const nodeId = target.peerId.toString()
  const step = (): AbortSignal =>
    AbortSignal.any([
      AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      ...(opts.signal !== undefined ? [opts.signal] : [])
    ])
  const progress = opts.onProgress ?? (() => {})

  const nonce = new Uint8Array(randomBytes(32))
  progress(`evidence challenge to ${nodeId}`)
  const ev = new Framed(await opts.host.dialProtocol(target.addrs, PROTOCOL_EVIDENCE, { signal: step() }))
  let evidenceBytes: Uint8Array
  let ekPublic: Uint8Array | undefined
  try {
    await ev.write(encodeNonceRequest(nonce))
    const msg = decodeEvidenceMsg(await ev.read(MESSAGE_LIMITS.evidence, step()))
    evidenceBytes = msg.evidence
    ekPublic = msg.ekPublic
    await ev.close()
  } catch (err) {
    ev.abort(err as Error)
    throw err
  }

  const failWith = (err: EvidenceBindingError, evidence?: Evidence, activated = false): VerifyPeerResult => {
    // as a committee member judges it: evidence that does not decode leaves no claim standing
    const failed = err instanceof MalformedEvidenceError ? [...ALL_CLAIMS] : [err.claim]
    return {
      nodeId,
      pass: false,
      failed,
      appraisal: failedAppraisal(err.message, failed),
      evidence,
      credentialActivated: activated
    }
  }
  let evidence: Evidence
  try {
    evidence = decodeEvidence(evidenceBytes)
    checkEvidenceBinding(evidence, nonce, opts.registered)
  } catch (err) {
    if (err instanceof EvidenceBindingError) return failWith(err)
    return failWith(new MalformedEvidenceError(err))
  }

  progress('credential challenge (MakeCredential → ActivateCredential)')
  if (ekPublic === undefined)
    return failWith(new EvidenceBindingError('identity', 'the node did not present its EK public area'), evidence)
  let cred: Awaited<ReturnType<MakeCredential>>
  try {
    cred = await opts.makeCredential({ ekCertificate: evidence.ekCertificate, ekPublic, akPublic: evidence.akPublic })
  } catch (err) {
    return failWith(
      new EvidenceBindingError('identity', `cannot challenge the EK: ${(err as Error).message}`),
      evidence
    )
  }
  const cs = new Framed(await opts.host.dialProtocol(target.addrs, PROTOCOL_CREDENTIAL, { signal: step() }))
  let secret: Uint8Array
  try {
    await cs.write(
      encodeCredentialRequest({
        credentialBlob: cred.credentialBlob,
        encryptedSecret: cred.encryptedSecret,
        ekKind: cred.ekKind
      })
    )
    secret = decodeActivated(await cs.read(MESSAGE_LIMITS.small, step()))
    await cs.close()
  } catch (err) {
    cs.abort(err as Error)
    throw err
  }
  if (!equalConstantTime(secret, cred.secret))
    return failWith(
      new EvidenceBindingError('identity', 'credential not activated: the AK is not proven to live beside the EK'),
      evidence
    )

  progress('appraising evidence against reference values')
  const appraisal = await opts.appraise(evidence, { nodeId, nonce, credentialActivated: true, signal: opts.signal })
  return {
    nodeId,
    pass: appraisal.ok,
    failed: appraisal.ok ? [] : appraisal.failed,
    appraisal,
    evidence,
    credentialActivated: true
  }
}
