// CometBFT v0.38's hashes and sign bytes, computed here so the light client trusts no RPC for them:
//   - header hash: RFC 6962 Merkle root of the 14 header fields, each protobuf-encoded as
//     CometBFT's types/block.go Header.Hash does (scalars wrapped in gogoproto StringValue,
//     Int64Value, BytesValue; time as google.protobuf.Timestamp; last_block_id as BlockID);
//   - validator-set hash: Merkle root of each validator's SimpleValidator bytes (types/validator.go
//     Validator.Bytes: pub_key as tendermint.crypto.PublicKey{ed25519}, voting_power), in set order
//     (voting power descending, then address ascending);
//   - precommit sign bytes: the length-delimited protobuf CanonicalVote (types/canonical.go,
//     types/vote.go VoteSignBytes): type, height and round as sfixed64, block id, timestamp, chain id.
// Proto3 leaves zero scalars out; gogoproto non-nullable messages (a BlockID's part_set_header,
// a vote's timestamp) are always written, even when empty.
import { sha256 } from '../../encoding/bytes.ts'

/** A protobuf Timestamp: whole seconds since the epoch and nanoseconds (CometBFT keeps ns). */
export interface Time {
  seconds: number
  nanos: number
}

export interface PartSetHeader {
  total: number
  hash: Uint8Array
}
export interface BlockId {
  hash: Uint8Array
  parts: PartSetHeader
}

export interface CometHeader {
  version: { block: number; app: number }
  chainId: string
  height: number
  time: Time
  lastBlockId: BlockId
  lastCommitHash: Uint8Array
  dataHash: Uint8Array
  validatorsHash: Uint8Array
  nextValidatorsHash: Uint8Array
  consensusHash: Uint8Array
  appHash: Uint8Array
  lastResultsHash: Uint8Array
  evidenceHash: Uint8Array
  proposerAddress: Uint8Array
}

export interface Validator {
  address: Uint8Array
  publicKey: Uint8Array
  power: number
}

/** A growing protobuf writer (only the wire types we need: varint, fixed64, length-delimited). */
class Pb {
  readonly #parts: number[] = []

  #varint(v: number): void {
    // values here are non-negative safe integers (heights, powers, lengths, seconds)
    let n = v
    while (n >= 0x80) {
      this.#parts.push((n % 0x80) | 0x80)
      n = Math.floor(n / 0x80)
    }
    this.#parts.push(n)
  }
  #tag(field: number, wire: number): void {
    this.#varint((field << 3) | wire)
  }
  uint(field: number, v: number): this {
    if (v !== 0) {
      this.#tag(field, 0)
      this.#varint(v)
    }
    return this
  }
  sfixed64(field: number, v: number): this {
    if (v !== 0) {
      this.#tag(field, 1)
      let n = BigInt.asUintN(64, BigInt(v))
      for (let i = 0; i < 8; i++) {
        this.#parts.push(Number(n & 0xffn))
        n >>= 8n
      }
    }
    return this
  }
  /** Length-delimited; `always` writes it even when empty (non-nullable messages). */
  bytes(field: number, b: Uint8Array, always = false): this {
    if (b.byteLength > 0 || always) {
      this.#tag(field, 2)
      this.#varint(b.byteLength)
      for (const x of b) this.#parts.push(x)
    }
    return this
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s))
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.#parts)
  }
  /** The message prefixed by its length as a varint (protoio.MarshalDelimited). */
  delimited(): Uint8Array {
    const body = this.finish()
    const p = new Pb()
    p.#varint(body.byteLength)
    const head = p.finish()
    const out = new Uint8Array(head.byteLength + body.byteLength)
    out.set(head)
    out.set(body, head.byteLength)
    return out
  }
}

// ---- RFC 6962 Merkle tree (crypto/merkle/tree.go HashFromByteSlices) ----
const LEAF = Uint8Array.of(0)
const INNER = Uint8Array.of(1)

export function merkleRoot(items: readonly Uint8Array[]): Uint8Array {
  if (items.length === 0) return sha256(new Uint8Array(0))
  if (items.length === 1) return sha256(LEAF, items[0])
  // split at the largest power of two smaller than n
  let k = 1
  while (k * 2 < items.length) k *= 2
  return sha256(INNER, merkleRoot(items.slice(0, k)), merkleRoot(items.slice(k)))
}

const timestamp = (t: Time): Uint8Array => new Pb().uint(1, t.seconds).uint(2, t.nanos).finish()
const partSetHeader = (p: PartSetHeader): Uint8Array => new Pb().uint(1, p.total).bytes(2, p.hash).finish()
const blockIdBytes = (b: BlockId): Uint8Array =>
  new Pb().bytes(1, b.hash).bytes(2, partSetHeader(b.parts), true).finish()
const wrapBytes = (b: Uint8Array): Uint8Array => new Pb().bytes(1, b).finish()

/** types/block.go Header.Hash. */
export function headerHash(h: CometHeader): Uint8Array {
  return merkleRoot([
    new Pb().uint(1, h.version.block).uint(2, h.version.app).finish(),
    new Pb().string(1, h.chainId).finish(),
    new Pb().uint(1, h.height).finish(),
    timestamp(h.time),
    blockIdBytes(h.lastBlockId),
    wrapBytes(h.lastCommitHash),
    wrapBytes(h.dataHash),
    wrapBytes(h.validatorsHash),
    wrapBytes(h.nextValidatorsHash),
    wrapBytes(h.consensusHash),
    wrapBytes(h.appHash),
    wrapBytes(h.lastResultsHash),
    wrapBytes(h.evidenceHash),
    wrapBytes(h.proposerAddress)
  ])
}

const compareBytes = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return a.byteLength - b.byteLength
}

/** The order CometBFT keeps a validator set in: voting power descending, then address ascending. */
export function sortValidators(vals: readonly Validator[]): Validator[] {
  return [...vals].sort((a, b) => b.power - a.power || compareBytes(a.address, b.address))
}

/** types/validator_set.go ValidatorSet.Hash, over `vals` in the order given. */
export function validatorSetHash(vals: readonly Validator[]): Uint8Array {
  return merkleRoot(
    vals.map(v => new Pb().bytes(1, new Pb().bytes(1, v.publicKey).finish(), true).uint(2, v.power).finish())
  )
}

/** SignedMsgType precommit (types/types.proto). */
const PRECOMMIT = 2

/** types/vote.go VoteSignBytes of a precommit for `blockId` (undefined: a nil vote). */
export function precommitSignBytes(
  chainId: string,
  height: number,
  round: number,
  blockId: BlockId | undefined,
  time: Time
): Uint8Array {
  const pb = new Pb().uint(1, PRECOMMIT).sfixed64(2, height).sfixed64(3, round)
  if (blockId !== undefined) pb.bytes(4, blockIdBytes(blockId), true)
  return pb.bytes(5, timestamp(time), true).string(6, chainId).delimited()
}
