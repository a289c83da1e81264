// The agent's BLS verdict key: a 32-byte secret stored next to node.key (mode 0600), created on
// first start. Its public key goes on chain with node.register, with a proof of possession bound
// to the node id (rogue-key defence), so verdicts from this node can be aggregated.
import { readFile, writeFile, stat } from 'node:fs/promises'
import { blsKeyFromSecret, generateBlsKey, proveKeyPossession, type BlsSigner } from '../../attestation/quorum/bls.ts'
import { ConfigError } from '../../encoding/errors.ts'

export async function loadOrCreateBlsKey(path: string): Promise<{ signer: BlsSigner; created: boolean }> {
  const st = await stat(path).catch(() => undefined)
  if (st === undefined) {
    const signer = generateBlsKey()
    try {
      await writeFile(path, signer.exportSecret(), { mode: 0o600, flag: 'wx' })
      return { signer, created: true }
    } catch (err) {
      // another process created it first: use theirs
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  } else if (!st.isFile() || st.size !== 32) {
    throw new ConfigError(
      `${path} is not a 32-byte BLS secret key file; move it away to create a new key (the node then re-registers)`
    )
  }
  try {
    return { signer: blsKeyFromSecret(new Uint8Array(await readFile(path))), created: false }
  } catch (err) {
    throw new ConfigError(`${path}: ${(err as Error).message}`, { cause: err })
  }
}

/** The node.register fields for a BLS key: the public key and its proof of possession for `nodeId`. */
export function blsRegistration(signer: BlsSigner, nodeId: string): { blsPublicKey: Uint8Array; blsProof: Uint8Array } {
  return { blsPublicKey: signer.publicKey, blsProof: proveKeyPossession(signer, nodeId) }
}
