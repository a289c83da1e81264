// The public surface of attestation/quorum (docs/CONTRACTS.md): exactly these names, so an
// export nobody uses (or one removed by mistake) shows up here. Helpers that stay module-private
// are still exercised through the functions that use them.
import t from 'tap'
import * as quorum from '../../attestation/quorum/index.ts'
import * as keys from '../../attestation/quorum/keys.ts'
import * as verdict from '../../attestation/quorum/verdict.ts'
import * as eventlog from '../../attestation/eventlog.ts'
import type { QuorumRules as ChainQuorumRules } from '../../chain/types.ts'

t.test('attestation/quorum exports exactly its contract', async t => {
  t.same(Object.keys(quorum).sort(), [
    'BadNodeIdError', 'BadVerdictSignatureError', 'BelowThresholdError', 'CandidateKeyMismatchError', 'DEFAULT_COMMITTEE_SIZE',
    'DuplicateVerdictError', 'ExpiredVerdictError', 'MAX_COMMITTEE_SIZE', 'NotCommitteeMemberError', 'QUORUM_LIMITS', 'QuorumCollector',
    'VERDICT_SIGNATURE_DOMAIN', 'WrongSubjectError', 'checkSignedVerdict', 'createQuorumRules', 'decodeQuorumCertificate', 'decodeVerdict',
    'ed25519Signer', 'encodeQcEntries', 'encodeQuorumCertificate', 'encodeVerdict', 'faultTolerance', 'publicKeyFromNodeId', 'selectCommittee',
    'signVerdict', 'threshold', 'verdictSigningBytes', 'verifyEd25519', 'verifyQuorumCertificate',
    'MIN_COMMITTEE_SIZE', 'committeeSizeFor', 'committeeSizeWith', 'securityBitsAt', 'forgeProbability', 'blockedProbability',
    'UnreachableSecurityError', 'DEFAULT_ADVERSARY_MODEL',
    'generateBlsKey', 'blsKeyFromSeed', 'blsKeyFromSecret', 'checkBlsPublicKey', 'blsVerify', 'blsFastAggregateVerify', 'blsAggregate',
    'possessionMessage', 'proveKeyPossession', 'verifyKeyPossession', 'InvalidBlsKeyError', 'BadPossessionProofError',
    'BLS_PUBLIC_KEY_BYTES', 'BLS_SIGNATURE_BYTES', 'BLS_SECRET_KEY_BYTES', 'BLS_POP_DOMAIN',
    'VERDICT_V3_DOMAIN', 'QUORUM_LIMITS_V3', 'encodeVerdictMessage', 'verdictMessageSigningBytes', 'signMemberVerdict', 'messageOf',
    'normalizeClaims', 'encodeMemberVerdict', 'decodeMemberVerdict', 'encodeCertificate', 'decodeCertificate', 'signerBitmap', 'bitmapIndices',
    'drawCommittee', 'verifyCertificate', 'verifyMemberVerdict', 'CertificateCollector', 'BadSignerBitmapError'
  ].sort())
})

t.test('removed or private helpers are not exported by their modules', async t => {
  t.notOk('encodeSignedVerdict' in verdict, 'encodeSignedVerdict removed (unused: verdicts travel in VerdictMsg)')
  t.notOk('decodeSignedVerdict' in verdict, 'decodeSignedVerdict removed')
  t.notOk('nodeIdFromPublicKey' in keys, 'nodeIdFromPublicKey is private to keys.ts')
  t.notOk('guidToString' in eventlog, 'guidToString is private to eventlog.ts')
})

t.test('ed25519Signer derives the node id from the public key (the private nodeIdFromPublicKey)', async t => {
  const s = quorum.ed25519Signer(new Uint8Array(32).fill(7))
  t.match(s.nodeId, /^12D3KooW/)
  t.same([...quorum.publicKeyFromNodeId(s.nodeId)], [...s.publicKey], 'round trip through the node id')
})

t.test('createQuorumRules() is a chain QuorumRules (chain/types.ts mirrors the type; tsc checks this line)', async t => {
  const rules: ChainQuorumRules = quorum.createQuorumRules()
  t.same(Object.keys(rules).sort(), ['committeeSize', 'drawCommittee', 'verifyCertificate', 'verifyPossession', 'verifyVerdict'])
})
