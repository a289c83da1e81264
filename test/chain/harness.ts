// Test harness: an in-memory chain (app + block producer with a fake clock) and key helpers.
import { generateChainKey, type ChainKey } from '../../chain/keys.ts'
import { createChainApp, type ChainApp } from '../../chain/app.ts'
import { BlockProducer } from '../../chain/producer.ts'
import { buildTx } from '../../chain/tx.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import type { FaultAppraiser, Genesis, QuorumRules, TxBodies, TxResult, TxType } from '../../chain/types.ts'
import { encode } from '../../encoding/canonical.ts'

export const CHAIN_ID = 'quorate-test'
export const T0 = Date.UTC(2026, 10, 22)

/** A DER-shaped certificate placeholder (SEQUENCE with n bytes of content). */
export function fakeDer(seed: number, n = 40): Uint8Array {
  const b = new Uint8Array(2 + n)
  b[0] = 0x30
  b[1] = n
  for (let i = 0; i < n; i++) b[2 + i] = (seed * 31 + i) & 0xff
  return b
}

export interface Harness {
  app: ChainApp
  producer: BlockProducer
  genesis: Genesis
  validator: ChainKey
  clock: { now: number }
  seqs: Map<ChainKey, number>
  tx<T extends TxType>(type: T, body: TxBodies[T], key: ChainKey, seq?: number): Uint8Array
  /** Submits txs (checkTx) then produces one block; returns the deliver results. */
  block(txs: Uint8Array[]): TxResult[]
  /** One tx in its own block; returns its result (check failure included). */
  run<T extends TxType>(type: T, body: TxBodies[T], key: ChainKey): TxResult
}

export async function makeChain(
  opts: {
    verifiers?: ChainKey[]
    path?: string
    genesis?: Genesis
    validator?: ChainKey
    rules?: QuorumRules
    appraiser?: FaultAppraiser
  } = {}
): Promise<Harness> {
  const rules = opts.rules ?? createTestOnlyQuorumRules()
  const app = createChainApp({ rules, path: opts.path, appraiser: opts.appraiser })
  const validator = opts.validator ?? (await generateChainKey())
  const genesis: Genesis = opts.genesis ?? {
    chainId: CHAIN_ID,
    genesisTime: T0,
    initialHeight: 1,
    validators: [validator.publicKey],
    verifiers: (opts.verifiers ?? []).map(k => k.peerId).sort()
  }
  if (!app.info().initialized) app.initChain(genesis)
  const clock = { now: T0 + 1000 }
  const producer = new BlockProducer({ app, key: validator, clock: () => clock.now })
  const seqs = new Map<ChainKey, number>()
  const h: Harness = {
    app,
    producer,
    genesis,
    validator,
    clock,
    seqs,
    tx(type, body, key, seq) {
      const s = seq ?? seqs.get(key) ?? 0
      if (seq === undefined) seqs.set(key, s + 1)
      return buildTx(type, body, key, s, genesis.chainId)
    },
    block(txs) {
      const pre: Array<TxResult | undefined> = txs.map(t => {
        const r = producer.submit(t).result
        return r.code === 0 ? undefined : r
      })
      clock.now += 1000
      const b = producer.produce()
      let i = 0
      return pre.map(r => r ?? b.results[i++])
    },
    run(type, body, key) {
      const r = h.block([h.tx(type, body, key)])[0]
      if (r.code !== 0) seqs.set(key, (seqs.get(key) ?? 1) - 1)
      return r
    }
  }
  return h
}

export const testQc = (outcome: 'pass' | 'fail', expiresAt: number, committee?: string[]): Uint8Array =>
  encode({ outcome, expiresAt, committee })
