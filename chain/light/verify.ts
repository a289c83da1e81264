// Header verification, data in, data out (no I/O): a signed header and a validator set in, a
// VerifiedHeader out, or a HeaderVerificationError naming what is wrong.
//
// Embedded validator (a set of one key, from genesis): the block hash is recomputed from the
// header fields as chain/producer.ts does, and the key's signature over "quorate/block/v1\0" ‖
// hash is checked. The CometBFT-only hashes must be empty.
//
// CometBFT v0.38 (light/verifier.go, types/validator_set.go VerifyCommitLight[Trusting]):
//   - the header hash (cometbft.ts) equals the commit's block id; heights and chain id agree;
//   - the validator set given hashes to the header's validators_hash, has as many entries as the
//     commit has signatures, and validators holding > 2/3 of its power signed a precommit for
//     this block (signatures looked up by index, the sign bytes rebuilt here);
//   - against a trusted header T: the next header (T + 1) must be signed by T's next validators
//     (validators_hash = T.next_validators_hash); a later one (skipping) needs signatures of
//     validators holding > 1/3 of T's next set's power (looked up by address, each counted once).
import { equal } from '../../encoding/bytes.ts'
import { QuorateError } from '../../encoding/errors.ts'
import { blockHash, validatorAddress, verifyBlockSignature } from '../producer.ts'
import { verifyEd25519 } from '../keys.ts'
import { headerHash, precommitSignBytes, validatorSetHash, type CometHeader, type Validator } from './cometbft.ts'
import { timeMs, type Commit, type SignedHeader } from './rpc.ts'

/** An endpoint's header, commit or validator set does not verify: the endpoint lies or is broken. */
export class HeaderVerificationError extends QuorateError {
  override readonly disposition = 'reject' as const
  override readonly code: string = 'ERR_LIGHT_VERIFY'
}
/** Validators of the trusted set signed too little of a newer header to skip to it (bisect instead). */
export class NotEnoughTrustError extends HeaderVerificationError {
  override readonly code: string = 'ERR_LIGHT_NOT_ENOUGH_TRUST'
}

declare const verified: unique symbol
/** A header whose signatures were checked against a set the client trusts. Only verify.ts makes one. */
export interface VerifiedHeader {
  readonly [verified]: true
  readonly engine: 'embedded' | 'cometbft'
  readonly chainId: string
  readonly height: number
  /** Block time, Unix ms. */
  readonly time: number
  /** Block hash (header hash) the validators signed. */
  readonly hash: Uint8Array
  /** App hash after block height − 1 (what state proofs of that height verify against). */
  readonly appHash: Uint8Array
  /** CometBFT: the set that signed it and the hash of the next one; embedded: the genesis key. */
  readonly validators: readonly Validator[]
  readonly nextValidatorsHash: Uint8Array
  readonly header: CometHeader
}

const fail = (m: string): never => {
  throw new HeaderVerificationError(m)
}

function basic(chainId: string, sh: SignedHeader): void {
  const { header, commit } = sh
  if (header.chainId !== chainId) fail(`header is for chain ${JSON.stringify(header.chainId)}, not ${chainId}`)
  if (commit.height !== header.height) fail(`commit is for height ${commit.height}, header for ${header.height}`)
  if (header.height < 1) fail('header height is 0')
}

/** Embedded validator: one key (the only genesis validator) signs every block hash. */
export function verifyEmbedded(chainId: string, key: Uint8Array, sh: SignedHeader): VerifiedHeader {
  basic(chainId, sh)
  const h = sh.header
  for (const [name, v] of [
    ['validators_hash', h.validatorsHash],
    ['next_validators_hash', h.nextValidatorsHash],
    ['consensus_hash', h.consensusHash],
    ['last_commit_hash', h.lastCommitHash],
    ['evidence_hash', h.evidenceHash]
  ] as const)
    if (v.byteLength !== 0) fail(`embedded header has a ${name}; the embedded validator leaves it empty`)
  if (h.time.nanos % 1e6 !== 0) fail('embedded header time has sub-millisecond digits')
  const address = validatorAddress(key)
  if (!equal(h.proposerAddress, address)) fail('embedded header proposer is not the genesis validator')
  const hash = blockHash({
    chainId: h.chainId,
    height: h.height,
    time: timeMs(h.time),
    lastBlockHash: h.lastBlockId.hash,
    dataHash: h.dataHash,
    appHash: h.appHash,
    lastResultsHash: h.lastResultsHash,
    proposer: h.proposerAddress
  })
  if (!equal(hash, sh.commit.blockId.hash)) fail(`block hash of the header fields differs from the commit's block id`)
  const sigs = sh.commit.signatures.filter(s => s.flag === 2)
  if (sigs.length !== 1 || !equal(sigs[0].validatorAddress, address))
    fail('embedded commit must carry exactly one signature, by the genesis validator')
  if (!verifyBlockSignature(key, hash, sigs[0].signature)) fail(`bad validator signature on block ${h.height}`)
  return made('embedded', sh, hash, [{ address, publicKey: key, power: 10 }], new Uint8Array(0))
}

function made(
  engine: VerifiedHeader['engine'],
  sh: SignedHeader,
  hash: Uint8Array,
  validators: readonly Validator[],
  nextValidatorsHash: Uint8Array
): VerifiedHeader {
  return {
    engine,
    chainId: sh.header.chainId,
    height: sh.header.height,
    time: timeMs(sh.header.time),
    hash,
    appHash: sh.header.appHash,
    validators,
    nextValidatorsHash,
    header: sh.header
  } as VerifiedHeader
}

const totalPower = (vals: readonly Validator[]): number => vals.reduce((n, v) => n + v.power, 0)

function voteOk(chainId: string, commit: Commit, i: number, key: Uint8Array): boolean {
  const s = commit.signatures[i]
  const msg = precommitSignBytes(chainId, commit.height, commit.round, commit.blockId, s.timestamp)
  return s.signature.byteLength === 64 && verifyEd25519(key, msg, s.signature)
}

/**
 * CometBFT: the header with its commit signed by > 2/3 of `vals` (the set at its height, which
 * must hash to its validators_hash). Does not by itself connect the header to a trusted one.
 */
export function verifyCometCommit(chainId: string, sh: SignedHeader, vals: readonly Validator[]): VerifiedHeader {
  basic(chainId, sh)
  const { header, commit } = sh
  const hash = headerHash(header)
  if (!equal(hash, commit.blockId.hash)) fail(`header hash differs from the commit's block id at ${header.height}`)
  if (!equal(validatorSetHash(vals), header.validatorsHash))
    fail(`validator set does not hash to validators_hash of block ${header.height}`)
  if (commit.signatures.length !== vals.length)
    fail(`commit has ${commit.signatures.length} signatures for ${vals.length} validators`)
  let signed = 0
  for (let i = 0; i < vals.length; i++) {
    const s = commit.signatures[i]
    if (s.flag !== 2) continue // absent or nil: counts for nothing
    if (!equal(s.validatorAddress, vals[i].address)) fail(`commit signature ${i} names another validator`)
    if (!voteOk(chainId, commit, i, vals[i].publicKey)) fail(`bad precommit signature ${i} on block ${header.height}`)
    signed += vals[i].power
  }
  const total = totalPower(vals)
  if (3 * signed <= 2 * total)
    fail(`block ${header.height} is signed by ${signed} of ${total} voting power, not more than 2/3`)
  return made('cometbft', sh, hash, vals, header.nextValidatorsHash)
}

/**
 * Skipping: validators of the trusted next set `trusted` holding > 1/3 of its power signed this
 * commit (light/verifier.go VerifyNonAdjacent, trust level 1/3). Throws NotEnoughTrustError when
 * they did not (the caller bisects), HeaderVerificationError for a bad signature.
 */
export function verifyTrusting(chainId: string, commit: Commit, trusted: readonly Validator[]): void {
  const byAddress = new Map(trusted.map(v => [Buffer.from(v.address).toString('hex'), v]))
  const seen = new Set<string>()
  let signed = 0
  for (let i = 0; i < commit.signatures.length; i++) {
    const s = commit.signatures[i]
    if (s.flag !== 2) continue
    const a = Buffer.from(s.validatorAddress).toString('hex')
    const v = byAddress.get(a)
    if (v === undefined) continue
    if (seen.has(a)) fail(`validator ${a} signed the commit twice`)
    seen.add(a)
    if (!voteOk(chainId, commit, i, v.publicKey)) fail(`bad precommit signature of trusted validator ${a}`)
    signed += v.power
  }
  const total = totalPower(trusted)
  if (3 * signed <= total)
    throw new NotEnoughTrustError(
      `trusted validators hold ${signed} of ${total} power in the commit of ${commit.height}, not more than 1/3`
    )
}

/** Sequential step: header T + 1 must be signed by T's next validators. */
export function verifyAdjacent(trustedNextValidatorsHash: Uint8Array, untrusted: VerifiedHeader): void {
  if (!equal(untrusted.header.validatorsHash, trustedNextValidatorsHash))
    fail(`validators_hash of block ${untrusted.height} is not the trusted header's next_validators_hash`)
}
