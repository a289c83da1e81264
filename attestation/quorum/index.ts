// Committees, verdicts and quorum certificates (docs/CONTRACTS.md, attestation/quorum).
// Pure: imports only encoding/, node:crypto and @libp2p key/peer-id helpers.
export { selectCommittee, threshold, faultTolerance, DEFAULT_COMMITTEE_SIZE, MAX_COMMITTEE_SIZE, MIN_COMMITTEE_SIZE } from './committee.ts'
export {
  committeeSizeFor, committeeSizeWith, securityBitsAt, forgeProbability, blockedProbability, UnreachableSecurityError, DEFAULT_ADVERSARY_MODEL
} from './sizing.ts'
export type { AdversaryModel } from './sizing.ts'
export { ed25519Signer, publicKeyFromNodeId, verifyEd25519, BadNodeIdError } from './keys.ts'
export type { VerdictSigner } from './keys.ts'
export {
  encodeVerdict, decodeVerdict, signVerdict, verdictSigningBytes,
  encodeQuorumCertificate, encodeQcEntries, decodeQuorumCertificate, LIMITS as QUORUM_LIMITS, VERDICT_SIGNATURE_DOMAIN
} from './verdict.ts'
export type { Verdict, SignedVerdict, QuorumCertificate, QcEntry } from './verdict.ts'
export {
  verifyQuorumCertificate, createQuorumRules, checkSignedVerdict, QuorumCollector,
  NotCommitteeMemberError, DuplicateVerdictError, BadVerdictSignatureError, WrongSubjectError,
  ExpiredVerdictError, BelowThresholdError, CandidateKeyMismatchError
} from './certificate.ts'
export type { Candidate, VerifyCertificateInput, VerifiedCertificate, QuorumRules } from './certificate.ts'
