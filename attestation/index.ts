// attestation — evidence and its verification (pure, no TPM). Contracts first: types, then functions.
export type { HashAlg } from './algs.ts'
export type { Evidence, EvidenceQuote, EvidencePcrs, EvidenceJson, EvidenceLimits } from './evidence.ts'

export { HASH_ALGS, DIGEST_SIZE, TPM_ALG_HASH, PCR_COUNT, hashAlgFromId, isHashAlg } from './algs.ts'
export {
  EVIDENCE_LIMITS, encodeEvidence, decodeEvidence, evidenceToJson, evidenceFromJson, validateEvidence,
  committeeNonce, evidencePcrMap
} from './evidence.ts'
