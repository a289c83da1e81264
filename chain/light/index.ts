// chain/light — a light client: chain answers verified from genesis, no RPC endpoint trusted.
//
//   const lc = LightClient.create({ genesis, rpcs: [url1, url2], trustingPeriodMs, maxClockDriftMs, maxHeaderAgeMs })
//   const h = await lc.verifiedHeader()      // newest header, verified; StaleHeaderError if too old
//   const v = await lc.get('node/12D3Koo…')  // VerifiedValue { key, value, height, header, endpoint } | Absent
//   const n = await lc.node(id)              // typed helpers: node/<id>, qc/<id>, cert/<id>, app/<name>
//   lc.trusted()                             // { height, hash } of the newest verified header: save it and
//                                            // pass it as `trust` to a later client (CometBFT chains older
//                                            // than the trusting period need one)
//   lc.close()
//
// Trust: only the genesis (chain id, initial height, genesis validator set). Everything else an
// endpoint says is checked:
//   - Headers. Embedded validator (genesis has exactly one validator, header carries no
//     validators_hash): the block hash is recomputed from the header fields (chain/producer.ts
//     blockHash) and the genesis key's ed25519 signature over "quorate/block/v1\0" ‖ hash is
//     checked. CometBFT v0.38: the header hash (Merkle of the protobuf header fields), the
//     validator set (its hash = validators_hash), > 2/3 of its voting power on precommits
//     (CanonicalVote sign bytes rebuilt here), and a link to the trust root: the next height's
//     validators_hash = next_validators_hash, or skipping — validators holding > 1/3 of a verified
//     header's next set signed the newer one — with bisection when they did not. A header links
//     only from a verified header younger than trustingPeriodMs (TrustExpiredError otherwise), must
//     be later in time than it, and at most maxClockDriftMs in the future. The two header kinds
//     cannot stand in for each other: different signature domains.
//   - Values. abci_query /key prove=true; the quorate:bucket-merkle/v2 inclusion proof
//     (chain/store.ts verifyStateProof) must verify against the app hash of a verified header:
//     the state after block H is committed by header H + 1 (get() waits up to nextHeaderWaitMs for
//     it), or — when the blocks since did not change the state — by the newest verified header.
//     The header used must be no older than maxHeaderAgeMs. VerifiedValue.height is the block
//     after which the value held.
//   - Endpoints. Each answer is tried against the next endpoint when it fails; an endpoint whose
//     answer does not verify (bad signature, proof, set, malformed JSON) is quarantined for
//     quarantineMs. NoVerifiedAnswerError (one line per endpoint) when none verifies; an
//     unverified answer is never returned.
// What it cannot guarantee:
//   - Absence. The store has no absence proofs: "not found" is unverifiable. get() then asks
//     every endpoint and returns Absent (the URLs that said so) only if none had a provable value;
//     a lying endpoint can hide a value only if every endpoint hides it. Callers must treat Absent
//     as "unknown", never as proof (a node that is "absent" is not certified for a client anyway).
//   - Freshness beyond maxHeaderAgeMs: a value may have changed after the header it was proven in.
//   - Liveness: colluding endpoints can refuse to answer (NoVerifiedAnswerError), not lie.
//   - A > 1/3 (skipping) or > 2/3 (adjacent) coalition of validators, or a stolen embedded
//     validator key, can sign a false header. A genesis older than trustingPeriodMs cannot
//     vouch for CometBFT headers (TrustExpiredError): give a newer `trust` header. The embedded
//     chain's single key never changes, so its headers need no trusting period.
//   - For an embedded header, only the fields of the block hash are covered (chain id, height,
//     time, last block hash, data hash, app hash, last results hash, proposer); version and the
//     part-set headers in its JSON are not.
// Cost: a cached, fresh header makes get() one RPC round trip + one proof check; a new header is
// one `commit` call (+ `validators` for CometBFT) and its signature checks.
export {
  LightClient,
  trustRootFromGenesis,
  StaleHeaderError,
  TrustExpiredError,
  NoVerifiedAnswerError,
  type LightClientOptions,
  type TrustRoot,
  type VerifiedValue,
  type Absent
} from './client.ts'
export { HeaderVerificationError, NotEnoughTrustError, type VerifiedHeader } from './verify.ts'
export { RpcAnswerError, RpcUnavailableError, type RpcTransport } from './rpc.ts'
export type { CometHeader, Validator } from './cometbft.ts'
