// agent/p2p — the libp2p side of attestation: the host, the protocols, the node side
// (AttestationResponder), the verifier side (CommitteeMember, verifyPeer) and the round driver.
//
// Wiring (what the agent does):
//   const host = await createP2PHost({ privateKey, listen, logger })
//   const responder = new AttestationResponder({ tpm /* openTpm() */, logs: { eventLog, containerLog } })
//   await responder.register(host)                      // serves verifiers that dial in (quorate verify)
//   const member = new CommitteeMember({ signer: ed25519Signer(privateKey), chain: memberChainPort(client),
//     appraise: chainAppraiser(client), makeCredential: tpmMakeCredential(), verdictTtlMs })
//   await member.register(host)                         // serves nodes being certified (they dial out)
//   const r = await runCertificationRound({ host, responder, chain: chainPort(client, signer), onProgress, signal })
//
// Protocols and messages: see messages.ts. One quote per round: responder.evidence(nonces).
export { createP2PHost, dialTarget } from './host.ts'
export type { P2PHost, P2PHostOptions } from './host.ts'
export { Framed, StreamTimeoutError, StreamClosedError, PeerRefusedError } from './framing.ts'
export { PROTOCOL_CERTIFY, PROTOCOL_CREDENTIAL, PROTOCOL_EVIDENCE, MESSAGE_LIMITS } from './messages.ts'
export type { CredentialChallenge, EkKind } from './messages.ts'
export { AttestationResponder, NoEkCertificateError, DEFAULT_QUOTE_PCRS } from './responder.ts'
export type {
  AttesterTpm,
  EventLogSource,
  ResponderOptions,
  ProtocolHost,
  PcrSelection,
  Identity
} from './responder.ts'
export {
  CommitteeMember,
  checkEvidenceBinding,
  EvidenceBindingError,
  MalformedEvidenceError,
  NotOnCommitteeError,
  UnknownRoundError,
  PeerMismatchError,
  RoundAlreadyJudgedError
} from './member.ts'
export type { MemberChainPort, MemberOptions, Appraise, AppraisalSummary, MakeCredential } from './member.ts'
export { runCertificationRound, RoundFailedError } from './round.ts'
export type { ChainPort, DialingHost, RoundOptions, RoundProgress, RoundResult } from './round.ts'
export { verifyPeer } from './verifier.ts'
export { tpmMakeCredential } from './credential.ts'
export type { VerifyPeerOptions, VerifyPeerResult } from './verifier.ts'
export { chainPort, memberChainPort } from './chain-port.ts'
export { loadOrCreateBlsKey, blsRegistration } from './bls-key.ts'
export { createFaultAppraiser } from './fault-appraiser.ts'
export type { ChainReader, ChainWriter } from './chain-port.ts'
export { chainAppraiser } from './appraiser.ts'
export type { ChainAppraiserOptions } from './appraiser.ts'
