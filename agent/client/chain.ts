// What the client reads from a chain, as a narrow port (STYLE §4): state values proven against
// a verified header, and a hint of which nodes to look at. A light client (chain/light) is the
// implementation clients use; `rpcChainView` over a ChainClient checks each proof against the
// app hash *the same RPC* reports, so it trusts that RPC's headers — for tests that say so and
// for a node's own validator, never for a client facing an unknown RPC.
import { ChainClient } from '../../chain/index.ts'
import type { LightClient } from '../../chain/light/index.ts'
import type { ProvenRead } from './verify.ts'
import { UnverifiedChainError } from './errors.ts'

export interface VerifiedChain {
  /** The chain id the verified headers carry (from the genesis the client trusts). */
  chainId(): Promise<string>
  /** The value at a state key, proven against the app hash of a verified header. */
  read(key: string): Promise<ProvenRead>
  /**
   * Node ids to consider (certified ones, as an RPC lists them). Only a hint: each is then read
   * with a proof, so a lying list can hide nodes but never add one.
   */
  nodeIds(): Promise<string[]>
  /** Which of its sources this view is (shown in errors and the CLI). */
  readonly describe: string
  /** Releases what the view opened itself (not the light client or ChainClient it was given). */
  close?(): void
}

/** A VerifiedChain that trusts one RPC's headers (tests, a node's own validator). */
export function rpcChainView(client: ChainClient): VerifiedChain {
  let chainId: Promise<string> | undefined
  const times = new Map<number, number>()
  const timeAt = async (height: number): Promise<number> => {
    const t = times.get(height)
    if (t !== undefined) return t
    const b = await client.block(height)
    if (times.size > 64) times.clear()
    times.set(height, b.time)
    return b.time
  }
  return {
    describe: `the RPC at ${client.url.origin} (its headers trusted)`,
    chainId: async () => await (chainId ??= client.chainId()),
    read: async key => {
      const r = await client.provenValue(key)
      if (r === undefined) {
        const s = await client.status()
        return { value: undefined, height: s.height, time: await timeAt(s.height) }
      }
      if (!r.verified) throw new UnverifiedChainError(`the proof of ${key} at height ${r.height} does not verify`)
      return { value: r.value, height: r.height, time: await timeAt(r.height) }
    },
    nodeIds: async () => (await client.nodes('certified')).filter(v => !v.genesisVerifier).map(v => v.nodeId)
  }
}

/**
 * The VerifiedChain clients use: every value from the light client (proven against headers it
 * verified from genesis, from any of its RPCs). Node ids come from each RPC's list of certified
 * nodes, united: one RPC hiding a node does not hide it from the client.
 */
export function lightChainView(lc: LightClient, rpcs: readonly string[]): VerifiedChain {
  const lists = rpcs.map(url => new ChainClient({ url }))
  return {
    describe: `a light client from genesis over ${rpcs.length} RPC endpoint(s) (${rpcs.join(', ')})`,
    chainId: async () => lc.root.chainId,
    read: async key => {
      let v: Awaited<ReturnType<LightClient['get']>>
      try {
        v = await lc.get(key)
      } catch (err) {
        throw new UnverifiedChainError(`no verified answer for ${key}: ${(err as Error).message}`, { cause: err })
      }
      if ('value' in v) return { value: v.value, height: v.height, time: v.header.time }
      const h = await lc.verifiedHeader()
      return { value: undefined, height: h.height, time: h.time }
    },
    nodeIds: async () => {
      const ids = new Set<string>()
      const failures: string[] = []
      await Promise.all(
        lists.map(async c => {
          try {
            for (const v of await c.nodes('certified')) if (!v.genesisVerifier) ids.add(v.nodeId)
          } catch (err) {
            failures.push(`${c.url.origin}: ${(err as Error).message}`)
          }
        })
      )
      if (failures.length === lists.length && lists.length > 0)
        throw new UnverifiedChainError(`no RPC listed the certified nodes: ${failures.join('; ')}`)
      return [...ids].sort()
    },
    close: () => {
      for (const c of lists) c.close()
    }
  }
}
