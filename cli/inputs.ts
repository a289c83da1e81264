// The limits of the files commands read, and the key-file check, in one place: every file a user
// names goes through encoding/files.ts (regular file, size checked, at most the limit read).
import { stat } from 'node:fs/promises'
import { EVENT_LOG_LIMITS } from '../attestation/eventlog.ts'
import { EVIDENCE_LIMITS } from '../attestation/evidence.ts'
import { PEM_LIMITS } from '../attestation/ekcert.ts'
import { loadChainKey, type ChainKey } from '../chain/keys.ts'
import { checkInputFile } from '../encoding/files.ts'

export const FILE_LIMITS = Object.freeze({
  /** A TCG event log (EVENT_LOG_LIMITS: PC Client logs are tens of KiB). */
  eventLog: EVENT_LOG_LIMITS.maxBytes,
  /** An evidence bundle: canonical CBOR up to EVIDENCE_LIMITS.maxBytes, or its JSON form (base64 and indentation). */
  evidence: 2 * EVIDENCE_LIMITS.maxBytes,
  /** Reference values JSON (referenceValuesFromJson's own limit). */
  refs: 16 << 20,
  /** A PEM bundle or DER certificate (parseCertificates' own limit). */
  certificates: PEM_LIMITS.chars,
  /** An ed25519 key as libp2p marshals it is 68 bytes. */
  key: 4 << 10,
  /** The agent's JSON config file. */
  config: 1 << 20
})

/**
 * Loads a chain key file named by `label` (--key, or `keys show`'s argument). A missing file is
 * left to loadChainKey, whose message says how to create one; anything else that is not a small
 * regular file is refused before it is opened.
 */
export async function loadKeyFile(path: string, label: string): Promise<ChainKey> {
  const exists = await stat(path).then(
    () => true,
    () => false
  )
  if (exists) await checkInputFile(path, { label, maxBytes: FILE_LIMITS.key })
  return await loadChainKey(path)
}
