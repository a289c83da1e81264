// Committees, verdicts and quorum certificates (docs/CONTRACTS.md, attestation/quorum).
// Pure: imports only encoding/, node:crypto, @chainsafe/blst and @libp2p key/peer-id helpers.
//
// API for the chain, the agent and the simulator (issue 10):
//  Sizing (sizing.ts; exact BigInt, no floats in consensus)
//    committeeSizeFor({ fractionNum, fractionDen, securityBits }) → k   (48 for 1/5 at 40 bits)
//    committeeSizeWith(model, candidates) → { k: min(target, candidates), target, securityBits reached }
//    securityBitsAt(k, num, den); forgeProbability / blockedProbability (floats: display, sim)
//  BLS verifier keys (bls.ts; min-pk BLS12-381: 48-byte keys, 96-byte signatures)
//    generateBlsKey() / blsKeyFromSeed(≥32 bytes) / blsKeyFromSecret(32 bytes) → BlsSigner
//      { publicKey, sign(msg), exportSecret() } — the agent stores exportSecret() next to node.key
//    proveKeyPossession(signer, nodeId) → 96-byte PoP for node.register;
//    verifyKeyPossession({ nodeId, blsPublicKey, proof }) (the chain, at node.register)
//  Verdicts (verdict.ts) — no per-verifier field, so identical verdicts aggregate
//    VerdictMessage { chainId, nodeId, round, outcome, evidenceDigest, failedClaims (sorted) }
//    signMemberVerdict(message, memberNodeId, blsSigner) → MemberVerdict (+ member, signature)
//    encodeMemberVerdict / decodeMemberVerdict: the bytes members send (p2p, tx, fault proof)
//    QC v3 = { outcome, evidenceDigest, failedClaims, signers bitmap, aggregate signature }:
//      encodeCertificate / decodeCertificate (≈ 250 bytes at k = 48)
//  Checking (certificate.ts)
//    drawCommittee({ seed, nodeId, candidates: ids, k }) → ids in drawn order
//    verifyCertificate({ qc, chainId, nodeId, round, seed, candidates: [{ nodeId, blsPublicKey }], k, committee? })
//      → { outcome, evidenceDigest, failedClaims, committee, threshold, signers }
//    verifyMemberVerdict({ verdict: bytes | MemberVerdict, ...same committee input }) → { verdict, committee, index }
//    CertificateCollector({ chainId, nodeId, round, committee: [{ nodeId, blsPublicKey }] }):
//      add(verdict) per arrival; outcome(); undecidable(); certificate() → { qc, outcome, message, signers }
//    createQuorumRules() → QuorumRules { committeeSize, drawCommittee, verifyCertificate, verifyVerdict,
//      verifyPossession } — what chain/ is given (chain/types.ts mirrors the type)
//  Node identities stay ed25519 (libp2p peer ids): ed25519Signer, publicKeyFromNodeId (keys.ts).
//  QC v2 / ed25519 verdicts v1 are gone (chain histories are regenerated; nothing reads them).
export {
  selectCommittee,
  threshold,
  faultTolerance,
  DEFAULT_COMMITTEE_SIZE,
  MAX_COMMITTEE_SIZE,
  MIN_COMMITTEE_SIZE
} from './committee.ts'
export {
  committeeSizeFor,
  committeeSizeWith,
  securityBitsAt,
  forgeProbability,
  blockedProbability,
  UnreachableSecurityError,
  DEFAULT_ADVERSARY_MODEL
} from './sizing.ts'
export type { AdversaryModel } from './sizing.ts'
export {
  generateBlsKey,
  blsKeyFromSeed,
  blsKeyFromSecret,
  checkBlsPublicKey,
  blsVerify,
  blsFastAggregateVerify,
  blsAggregate,
  possessionMessage,
  proveKeyPossession,
  verifyKeyPossession,
  InvalidBlsKeyError,
  BadPossessionProofError,
  BLS_PUBLIC_KEY_BYTES,
  BLS_SIGNATURE_BYTES,
  BLS_SECRET_KEY_BYTES,
  BLS_POP_DOMAIN
} from './bls.ts'
export type { BlsSigner } from './bls.ts'
export { ed25519Signer, publicKeyFromNodeId, verifyEd25519, BadNodeIdError } from './keys.ts'
export type { VerdictSigner } from './keys.ts'
export {
  VERDICT_DOMAIN,
  LIMITS as QUORUM_LIMITS,
  encodeVerdictMessage,
  verdictMessageSigningBytes,
  signMemberVerdict,
  messageOf,
  normalizeClaims,
  encodeMemberVerdict,
  decodeMemberVerdict,
  encodeCertificate,
  decodeCertificate,
  signerBitmap,
  bitmapIndices
} from './verdict.ts'
export type { VerdictMessage, MemberVerdict, QuorumCertificate, Outcome } from './verdict.ts'
export {
  createQuorumRules,
  drawCommittee,
  verifyCertificate,
  verifyMemberVerdict,
  CertificateCollector,
  NotCommitteeMemberError,
  DuplicateVerdictError,
  BadVerdictSignatureError,
  WrongSubjectError,
  BelowThresholdError,
  CandidateKeyMismatchError,
  BadSignerBitmapError
} from './certificate.ts'
export type { QuorumRules, BlsCandidate, CommitteeInput, VerifiedCertificate } from './certificate.ts'
