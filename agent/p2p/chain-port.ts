// Adapts chain/client's ChainClient to the two narrow ports of this module: the node's round
// driver (ChainPort) and a committee member's reads (MemberChainPort).
import { ChainQueryError, TxRejectedError, type ChainClient } from '../../chain/client.ts'
import { TxCode } from '../../chain/types.ts'
import { decode } from '../../encoding/canonical.ts'
import { equal } from '../../encoding/bytes.ts'
import type { TxSigner } from '../../chain/keys.ts'
import { DEFAULT_COMMITTEE_SIZE } from '../../attestation/quorum/committee.ts'
import type { ChainPort } from './round.ts'
import type { MemberChainPort } from './member.ts'

export type ChainReader = Pick<ChainClient, 'node' | 'seed' | 'waitForSeed' | 'chainId' | 'waitForHeight'>
export type ChainWriter = ChainReader & Pick<ChainClient, 'send'>

function committeeSize(s: object, fallback: number): number {
  const k = (s as { k?: unknown }).k
  return typeof k === 'number' && Number.isSafeInteger(k) && k > 0 ? k : fallback
}

/** The round driver's port: the node signs attest.request / attest.record with its own key. */
export function chainPort(client: ChainWriter, key: TxSigner, opts: { k?: number; pollMs?: number } = {}): ChainPort {
  return {
    async requestAttestation(nodeId, o) {
      for (;;) {
        o?.signal?.throwIfAborted()
        const view = await client.node(nodeId)
        // a round of ours still open (one a reboot's reset opened, or one this agent left when it
        // stopped) is driven on rather than waited out: a new request would be refused until its
        // deadline and then cost a failed round
        const open = view?.request
        if (
          open !== undefined &&
          open.deadline !== undefined &&
          open.recordedAt === undefined &&
          open.closedAt === undefined
        ) {
          // ...unless it asked to bind another TLS key than ours (the key file was replaced): its
          // members would fail our quote, so let the chain close it at its deadline and ask anew
          const same =
            open.tlsKey === undefined || o?.tlsKey === undefined
              ? open.tlsKey === o?.tlsKey
              : equal(open.tlsKey, o.tlsKey)
          if (same) return { round: open.round }
          await client.waitForHeight(open.deadline + 1, { signal: o?.signal, pollMs: opts.pollMs })
          continue
        }
        const round = (view?.request?.round ?? view?.record?.round ?? 0) + 1
        try {
          await client.send(
            'attest.request',
            o?.tlsKey === undefined ? { nodeId, round } : { nodeId, round, tlsKey: o.tlsKey },
            key
          )
          return { round }
        } catch (err) {
          // a round still open or a cooldown after failed rounds: the refusal names the height
          // a request is allowed at; wait for it (as long as the caller lets us) and ask again
          const at =
            err instanceof TxRejectedError && err.txCode === TxCode.TOO_EARLY
              ? /allowed at height (\d+)/.exec(err.log)
              : null
          if (at === null) throw err
          await client.waitForHeight(Number(at[1]) - 1, { signal: o?.signal, pollMs: opts.pollMs })
        }
      }
    },
    async waitForRound(nodeId, round, o) {
      const s = await client.waitForSeed(nodeId, round, { signal: o?.signal, pollMs: opts.pollMs })
      if (s.seed === undefined || s.candidates === undefined)
        throw new ChainQueryError(`seed view for ${nodeId} round ${round} is incomplete`)
      const blsKeys = new Map<string, Uint8Array>()
      for (const c of s.candidates) if (c.blsPublicKey !== undefined) blsKeys.set(c.nodeId, c.blsPublicKey)
      return {
        chainId: await client.chainId(),
        seed: s.seed,
        k: committeeSize(s, opts.k ?? DEFAULT_COMMITTEE_SIZE),
        candidates: s.candidates.map(c => c.nodeId),
        blsKeys
      }
    },
    async addresses(nodeId) {
      return (await client.node(nodeId))?.record?.addrs ?? []
    },
    async recordAttestation(nodeId, round, qc, o) {
      o?.signal?.throwIfAborted()
      const r = await client.send('attest.record', { nodeId, round, qc }, key)
      let expiresAt: number | undefined
      try {
        const d = r.data === undefined ? undefined : (decode(r.data) as { expiresAt?: unknown })
        if (typeof d?.expiresAt === 'number') expiresAt = d.expiresAt
      } catch {}
      return { height: r.height, txHash: r.hash, expiresAt }
    }
  }
}

/**
 * A member's reads: the committee draw of a request and the node's registration. With `key` (the
 * member's node key) and a client that can send, it can also record a QC the node did not.
 */
export function memberChainPort(
  client: ChainReader & Partial<Pick<ChainClient, 'send'>>,
  opts: { k?: number; key?: TxSigner } = {}
): MemberChainPort {
  const key = opts.key
  const send = client.send
  const recordQc =
    key === undefined || send === undefined
      ? undefined
      : async (nodeId: string, round: number, qc: Uint8Array): Promise<boolean> => {
          const req = (await client.node(nodeId))?.request
          if (req === undefined || req.round !== round || req.recordedAt !== undefined || req.closedAt !== undefined)
            return false
          await send.call(client, 'attest.record', { nodeId, round, qc }, key)
          return true
        }
  return {
    ...(recordQc === undefined ? {} : { recordQc }),
    async roundInfo(nodeId, round) {
      const s = await client.seed(nodeId, round)
      if (s.status !== 'ready' || s.seed === undefined || s.candidates === undefined || s.round !== round)
        return undefined
      return {
        seed: s.seed,
        candidates: s.candidates.map(c => c.nodeId),
        k: committeeSize(s, opts.k ?? DEFAULT_COMMITTEE_SIZE),
        ...(s.tlsKey === undefined ? {} : { tlsKey: s.tlsKey })
      }
    },
    async nodeRecord(nodeId) {
      const r = (await client.node(nodeId))?.record
      return r === undefined
        ? undefined
        : { ekCertificate: r.ekCertificate, akPublic: r.akPublic, akBound: r.akBound !== undefined }
    }
  }
}
