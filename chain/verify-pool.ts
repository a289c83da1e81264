// Transaction signature checks off the main thread, for checkTx (issue 11: "the embedded
// validator on both cores").
//
// node:crypto's `verify` with a callback runs in libuv's thread pool (4 threads by default), so
// the JS thread goes on parsing requests and applying blocks while other cores verify ed25519.
// Measured on the 2-vCPU dev VM: ≈ 3,000 verifies/s synchronously vs ≈ 6,200/s through the pool
// (the same 6,000 signatures, one process). A worker_threads pool would do the same work plus a
// structured-clone copy per message; the thread pool needs neither a second isolate nor copies.
//
// Verification is pure, so the outcome does not depend on which thread ran it or when. The caller
// (BlockProducer.submitAsync) applies the results strictly in arrival order, so the mempool
// order is the order txs arrived in, whatever order their verifications finish in.
import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { Buffer } from 'node:buffer'
import { txSignBytes } from './tx.ts'
import type { DecodedTx } from './types.ts'

// RFC 8410 SPKI prefix for a raw 32-byte ed25519 public key
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')
const KEY_CACHE = 10_000
/** Imported public keys by their 32 bytes (importing one costs about as much as a verification). */
const keys = new Map<string, KeyObject>()

function publicKeyObject(raw: Uint8Array): KeyObject | undefined {
  if (raw.byteLength !== 32) return undefined
  const id = Buffer.from(raw.buffer, raw.byteOffset, 32).toString('latin1')
  let k = keys.get(id)
  if (k !== undefined) return k
  try {
    k = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' })
  } catch {
    return undefined
  }
  if (keys.size >= KEY_CACHE) keys.clear()
  keys.set(id, k)
  return k
}

/**
 * The ed25519 check of a decoded tx (as verifyTxSignature in chain/tx.ts: signer's key over
 * "quorate/tx/v1\0" ‖ payload), in libuv's thread pool. Never rejects: a malformed key or
 * signature, or any error, is `false` — the caller then runs the ordinary synchronous check,
 * which gives the refusal its usual code and message.
 */
export function verifyTxSignatureAsync(tx: DecodedTx): Promise<boolean> {
  const key = publicKeyObject(tx.signer)
  if (key === undefined || tx.sig.byteLength !== 64) return Promise.resolve(false)
  // a copy of its own: the tx bytes may be reused by the caller once it has its answer
  const message = txSignBytes(tx.payload)
  const sig = tx.sig.slice()
  return new Promise(resolve => {
    try {
      verify(null, message, key, sig, (err, ok) => resolve(err === null && ok))
    } catch {
      resolve(false)
    }
  })
}
