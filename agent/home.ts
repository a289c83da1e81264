// What the agent keeps in its home directory across runs: the node key and the container event
// log of the current TPM boot. Plain functions over paths, so the composition root only calls them.
import { access, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateChainKey, loadChainKey, saveChainKey, type ChainKey } from '../chain/index.ts'
import type { Logger } from '../encoding/log.ts'

/** The node's ed25519 key (its libp2p peer id and chain identity): loaded, or made once and saved. */
export async function loadOrCreateNodeKey(path: string, log: Logger): Promise<ChainKey> {
  if (
    await access(path).then(
      () => true,
      () => false
    )
  )
    return await loadChainKey(path)
  const key = await generateChainKey()
  await saveChainKey(path, key)
  log.info('created a new node key', { nodeId: key.peerId })
  return key
}

/**
 * The container log belongs to one TPM boot: after a TPM reset PCR 13 is zero again, so the log
 * starts over. `rebooted` says the TPM was reset since an earlier run of the agent.
 */
export async function containerLogForBoot(
  home: string,
  resetCount: number
): Promise<{ path: string; rebooted: boolean }> {
  const path = join(home, 'container-events.jsonl')
  const marker = join(home, 'container-events.boot')
  const prev = (await readFile(marker, 'utf8').catch(() => '')).trim()
  const rebooted = prev !== '' && prev !== String(resetCount)
  if (prev !== String(resetCount)) {
    await rm(path, { force: true })
    await writeFile(marker, String(resetCount))
  }
  return { path, rebooted }
}
