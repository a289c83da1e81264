// Transactions on the wire: canonical CBOR `{ payload, sig }` where payload is the canonical
// encoding of `{ v, type, chainId, signer, seq, body }` and sig is ed25519 over
// "quorate/tx/v1\0" ‖ payload. The decoder is strict, so a payload has exactly one encoding and
// the signature covers exactly what is applied. The tx hash is sha256 of the whole tx (as CometBFT).
import { encode, decode, asMap, field, is, onlyKeys, type Canonical } from '../encoding/canonical.ts'
import { sha256, utf8, concat } from '../encoding/bytes.ts'
import { DecodeError, TooLargeError } from '../encoding/errors.ts'
import { verifyEd25519, type TxSigner } from './keys.ts'
import { MAX_TX_BYTES, TX_VERSION, type DecodedTx, type TxBodies, type TxType } from './types.ts'

const SIGN_DOMAIN = utf8.encode('quorate/tx/v1\0')

export function txSignBytes(payload: Uint8Array): Uint8Array {
  return concat([SIGN_DOMAIN, payload])
}

/**
 * Builds and signs a transaction. `seq` is the signer's next sequence number (0 for a new account;
 * query `/account`). Returns the wire bytes to broadcast.
 */
export function buildTx<T extends TxType>(
  type: T,
  body: TxBodies[T],
  key: TxSigner,
  seq: number,
  chainId: string
): Uint8Array {
  return buildRawTx(
    { v: TX_VERSION, type, chainId, signer: key.publicKey, seq, body: body as unknown as Canonical },
    key
  )
}

/** Lower-level builder (any type/version/body), used by tests to craft bad transactions. */
export function buildRawTx(
  tx: { v: number; type: string; chainId: string; signer: Uint8Array; seq: number; body: Canonical },
  key: TxSigner
): Uint8Array {
  const payload = encode({ v: tx.v, type: tx.type, chainId: tx.chainId, signer: tx.signer, seq: tx.seq, body: tx.body })
  return encode({ payload, sig: key.sign(txSignBytes(payload)) })
}

export function txHash(tx: Uint8Array): Uint8Array {
  return sha256(tx)
}

/**
 * Strict decoding; does not verify the signature (see verifyTxSignature). Byte fields (payload,
 * sig, signer, body bytes) are views into `bytes`, which must not be mutated afterwards.
 */
export function decodeTx(bytes: Uint8Array, knownHash?: Uint8Array): DecodedTx {
  if (bytes.byteLength > MAX_TX_BYTES)
    throw new TooLargeError(`transaction of ${bytes.byteLength} bytes exceeds the limit of ${MAX_TX_BYTES}`)
  const outer = asMap(decode(bytes, { maxBytes: MAX_TX_BYTES, maxDepth: 4, maxItems: 4, shareBytes: true }), 'tx')
  onlyKeys(outer, ['payload', 'sig'], 'tx')
  const payload = field(outer, 'payload', 'tx', is.bytes, 'bytes')
  const sig = field(outer, 'sig', 'tx', is.bytes, 'bytes')
  const m = asMap(
    decode(payload, { maxBytes: MAX_TX_BYTES, maxDepth: 12, maxItems: 4096, shareBytes: true }),
    'tx.payload'
  )
  onlyKeys(m, ['v', 'type', 'chainId', 'signer', 'seq', 'body'], 'tx.payload')
  const v = field(m, 'v', 'tx.payload', is.uint, 'unsigned integer')
  const type = field(m, 'type', 'tx.payload', is.string, 'string')
  const chainId = field(m, 'chainId', 'tx.payload', is.string, 'string')
  const signer = field(m, 'signer', 'tx.payload', is.bytes, 'bytes')
  const seq = field(m, 'seq', 'tx.payload', is.uint, 'unsigned integer')
  if (!Object.hasOwn(m, 'body')) throw new DecodeError('tx.payload.body: missing')
  if (signer.byteLength !== 32) throw new DecodeError('tx.payload.signer: expected a 32-byte ed25519 public key')
  if (sig.byteLength !== 64) throw new DecodeError('tx.sig: expected a 64-byte ed25519 signature')
  return { v, type, chainId, signer, seq, body: m.body, sig, payload, hash: knownHash ?? sha256(bytes) }
}

// Scratch for the signed message (domain ‖ payload): verification is synchronous, so a view of
// it can be handed to verify without allocating a copy per transaction.
let signScratch = new Uint8Array(4096)
signScratch.set(SIGN_DOMAIN)

export function verifyTxSignature(tx: DecodedTx): boolean {
  const n = SIGN_DOMAIN.byteLength + tx.payload.byteLength
  if (n > signScratch.byteLength) {
    signScratch = new Uint8Array(Math.max(n, 2 * signScratch.byteLength))
    signScratch.set(SIGN_DOMAIN)
  }
  signScratch.set(tx.payload, SIGN_DOMAIN.byteLength)
  return verifyEd25519(tx.signer, signScratch.subarray(0, n), tx.sig)
}
