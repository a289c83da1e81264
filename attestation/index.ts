// attestation — evidence and its verification (pure, no TPM). Data in, data out: functions take
// bytes and reference values and return verified types. Contracts first: types, then functions.
export type { HashAlg } from './algs.ts'
export type { Evidence, EvidenceQuote, EvidencePcrs, EvidenceJson, EvidenceLimits } from './evidence.ts'
export type {
  Attest,
  ClockInfo,
  PcrSelection,
  QuoteInfo,
  TpmPublic,
  RsaPublic,
  EccPublic,
  KeyedHashPublic,
  SymCipherPublic,
  TpmSignature,
  SymDef,
  Scheme,
  ObjectAttributes
} from './tpm2.ts'
export type {
  VerifiedQuote,
  QuoteInput,
  QuoteOptions,
  QuoteCheck,
  QuoteProblem,
  QuoteProblemKind,
  ClockChange
} from './quote.ts'
export type { EkTrustStore, VerifiedEk, VerifyEkOptions, CertInput, PemBlock } from './ekcert.ts'
export type { MakeCredentialInput, MadeCredential } from './credential.ts'
export type { EventLog, TcgEvent, EventPayload, SpecIdEvent, PcrBanks, EventLogLimits } from './eventlog.ts'
export type { ContainerLaunch, ContainerLogEntry, ContainerLogLimits } from './containerlog.ts'
export type { ReferenceValues, RefSet, PcrReference, ImageReference, PreparedReferences } from './refs.ts'
export type { Appraisal, AppraisalPolicy, Claim, ClaimStatus, EarStatus } from './appraise.ts'

export { HASH_ALGS, DIGEST_SIZE, TPM_ALG_HASH, PCR_COUNT, hashAlgFromId, isHashAlg } from './algs.ts'
export { StructureError } from './reader.ts'
export {
  EVIDENCE_LIMITS,
  encodeEvidence,
  decodeEvidence,
  evidenceToJson,
  evidenceFromJson,
  validateEvidence,
  committeeNonce,
  evidencePcrMap
} from './evidence.ts'
export {
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  TPM_ALG,
  TPM_ECC,
  TPMA_OBJECT,
  objectAttributes,
  parseAttest,
  marshalAttest,
  parsePublic,
  parsePublic2b,
  marshalPublic,
  parseSignature,
  marshalSignature,
  objectName,
  publicToKeyObject
} from './tpm2.ts'
export { checkQuote, verifyQuote, computePcrDigest, compareClock, QuoteError, DEFAULT_AK_ATTRIBUTES } from './quote.ts'
export {
  createEkTrustStore,
  verifyEkCertificate,
  verifyEkCertificateCached,
  checkEkPublic,
  parseCertificates,
  decodePem,
  PemError,
  PEM_LIMITS,
  EkCertificateError,
  UnknownIssuerError,
  CertificateExpiredError,
  CertificateNotYetValidError,
  EkKeyMismatchError
} from './ekcert.ts'
export { makeCredential, kdfa, kdfe } from './credential.ts'
export {
  parseEventLog,
  replayEventLog,
  eventsForPcr,
  eventTypeName,
  pcrResetValue,
  EVENT_TYPES,
  EVENT_LOG_LIMITS
} from './eventlog.ts'
export {
  CONTAINER_PCR,
  CONTAINER_LOG_LIMITS,
  containerLaunchLine,
  containerEventDigest,
  envDigest,
  parseContainerLog,
  replayContainerLog
} from './containerlog.ts'
export { referenceValuesFromJson, referenceValuesToJson, prepareReferences } from './refs.ts'
export { appraise, appraisalDigest, CLAIMS, DEFAULT_FIRMWARE_PCRS, DEFAULT_OS_PCRS } from './appraise.ts'
