// Committee-seed entropy on CometBFT that no single proposer chooses.
//
// The block hash is the proposer's to grind (it picks and orders the txs), so on CometBFT the
// app's seed input is not the block hash but the validators' vote extensions:
//   ExtendVote(H)        each validator extends its precommit for block H with
//                        ext = ed25519_sign(seedKey, "quorate/seed/v1\0" ‖ chainId ‖ be64(H)),
//                        a deterministic signature (RFC 8032): one possible value per validator
//                        and height, unknown to the others until it is sent, after H is decided.
//   VerifyVoteExtension  accepts only that exact signature from that validator's genesis seed key.
//   PrepareProposal(H+1) the proposer puts the extensions CometBFT collected with the commit of
//                        H (≥ 2/3 of the voting power, each signed) in a first "seed tx".
//   ProcessProposal(H+1) rejects a block without it, with a bad or unknown signature, or with
//                        ≤ 2/3 of the validators.
//   FinalizeBlock(H+1)   hands the app sha256("quorate/cometbft-seed/v1" ‖ chainId ‖ be64(H) ‖
//                        the (address, ext) pairs in address order) as the block's seed input.
// What the proposer of H+1 still chooses: which of the extensions it received to include, as long
// as they are more than 2/3 — with 4 equal validators one of at most 5 subsets (≤ 2.3 bits), and
// colluding proposers who let rounds pass get one such choice each. It cannot make up or change a
// value. Seed keys are per validator in genesis app_state.seed_keys ({ address hex: base64 key });
// voting power is taken as equal (the testnet writes equal powers; validator updates are not
// supported by this app).
import { Buffer } from 'node:buffer'
import { concat, sha256, utf8 } from '../../encoding/bytes.ts'
import { decode, encode } from '../../encoding/canonical.ts'
import { verifyEd25519, type TxSigner } from '../keys.ts'

const EXT_DOMAIN = utf8.encode('quorate/seed/v1\0')
const ENTROPY_DOMAIN = utf8.encode('quorate/cometbft-seed/v1')
/** First bytes of the seed tx; no app tx starts so (they are canonical CBOR maps, 0xa_). */
export const SEED_TX_PREFIX = utf8.encode('quorate/seed-tx/v1\0')

export interface SeedConfig {
  chainId: string
  /** From vote_extensions_enable_height: extensions of height ≥ this exist. */
  enableHeight: number
  /** Validator address (upper-case hex, as CometBFT prints it) → seed public key. */
  keys: ReadonlyMap<string, Uint8Array>
  /** This validator's seed key (absent on a node that does not vote). */
  own?: TxSigner
}

const be64 = (n: number): Uint8Array => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, BigInt(n))
  return b
}
const hexUp = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase()

export function extensionMessage(chainId: string, height: number): Uint8Array {
  return concat([EXT_DOMAIN, utf8.encode(chainId), be64(height)])
}

export function makeExtension(cfg: SeedConfig, height: number): Uint8Array {
  if (cfg.own === undefined || cfg.enableHeight === 0 || height < cfg.enableHeight) return new Uint8Array(0)
  return cfg.own.sign(extensionMessage(cfg.chainId, height))
}

export function verifyExtension(cfg: SeedConfig, address: Uint8Array, height: number, ext: Uint8Array): boolean {
  const key = cfg.keys.get(hexUp(address))
  return key !== undefined && ext.byteLength === 64 && verifyEd25519(key, extensionMessage(cfg.chainId, height), ext)
}

/** Does a proposal at `height` need the seed tx (the previous height had extensions)? */
export const seedRequired = (cfg: SeedConfig, height: number): boolean =>
  cfg.enableHeight > 0 && height - 1 >= cfg.enableHeight

export const isSeedTx = (tx: Uint8Array): boolean =>
  tx.byteLength >= SEED_TX_PREFIX.byteLength &&
  Buffer.from(tx.subarray(0, SEED_TX_PREFIX.byteLength)).equals(SEED_TX_PREFIX)

/** The seed tx from the extensions of the previous height's commit (only those that verify). */
export function buildSeedTx(
  cfg: SeedConfig,
  height: number,
  votes: ReadonlyArray<{ address: Uint8Array; ext: Uint8Array }>
): Uint8Array {
  const pairs = votes
    .filter(v => verifyExtension(cfg, v.address, height - 1, v.ext))
    .map(v => [new Uint8Array(v.address), new Uint8Array(v.ext)] as [Uint8Array, Uint8Array])
    .sort((a, b) => Buffer.compare(a[0], b[0]))
  return concat([SEED_TX_PREFIX, encode(pairs)])
}

/** The block's seed input from a seed tx, or a reason it is invalid at `height`. */
export function seedEntropy(
  cfg: SeedConfig,
  height: number,
  tx: Uint8Array
): { entropy: Uint8Array } | { error: string } {
  if (!isSeedTx(tx)) return { error: 'the first tx is not the seed tx' }
  let pairs: Array<[Uint8Array, Uint8Array]>
  try {
    const d = decode(tx.subarray(SEED_TX_PREFIX.byteLength), { maxBytes: 64 * 1024, maxItems: 1024 })
    if (
      !Array.isArray(d) ||
      !d.every(p => Array.isArray(p) && p.length === 2 && p[0] instanceof Uint8Array && p[1] instanceof Uint8Array)
    )
      return { error: 'seed tx is not a list of [address, extension]' }
    pairs = d as Array<[Uint8Array, Uint8Array]>
  } catch (err) {
    return { error: `seed tx: ${(err as Error).message}` }
  }
  for (let i = 0; i < pairs.length; i++) {
    if (i > 0 && Buffer.compare(pairs[i - 1][0], pairs[i][0]) >= 0)
      return { error: 'seed tx addresses must be sorted and distinct' }
    if (!verifyExtension(cfg, pairs[i][0], height - 1, pairs[i][1]))
      return { error: `seed tx: extension of ${hexUp(pairs[i][0])} does not verify` }
  }
  if (3 * pairs.length <= 2 * cfg.keys.size)
    return { error: `seed tx has ${pairs.length} of ${cfg.keys.size} validators' extensions; more than 2/3 are needed` }
  return { entropy: sha256(ENTROPY_DOMAIN, utf8.encode(cfg.chainId), be64(height - 1), ...pairs.flat()) }
}
