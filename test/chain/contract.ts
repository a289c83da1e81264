// Contract suite for ChainClient against any node that runs this app: the embedded validator
// today (contract-embedded.test.ts), a CometBFT node serving the app over ABCI later (STYLE.md §12).
// Uses only what both must provide: CometBFT JSON-RPC and the app's queries.
import type tapT from 'tap'
import { ChainClient, TxRejectedError } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { TxCode } from '../../chain/types.ts'
import { sha256, toHex } from '../../encoding/bytes.ts'
import { fakeDer } from './harness.ts'

export interface ContractTarget {
  url: string
  stop(): Promise<void>
}

/**
 * A committed tx by hash. CometBFT's indexer writes the tx index after the block's commit event
 * that answers broadcast_tx_commit, so right after it the tx may not be found yet: ask again.
 */
async function committedTx(c: ChainClient, hash: string): Promise<Awaited<ReturnType<ChainClient['tx']>>> {
  for (let i = 0; ; i++) {
    const info = await c.tx(hash)
    if (info !== undefined || i >= 100) return info
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

export function chainClientContract(tap: typeof tapT, name: string, start: () => Promise<ContractTarget>): void {
  tap.test(`ChainClient contract: ${name}`, async t => {
    const target = await start()
    const c = new ChainClient({ url: target.url })
    t.teardown(async () => {
      c.close()
      await target.stop()
    })

    const st = await c.status()
    t.match(st.chainId, /.+/, 'status has a chain id')
    t.equal(st.appHash.byteLength, 32, 'status has the latest app hash')

    const k = await generateChainKey()
    const name = `v${toHex(k.publicKey).slice(0, 12)}`
    const r = await c.send('vendor.register', { name }, k)
    t.ok(r.height > 0)
    const info = await committedTx(c, r.hash)
    t.equal(info?.height, r.height, 'tx by hash')
    t.equal(info?.result.code, 0)
    t.same(info?.tx !== undefined && toHex(sha256(info.tx)).toUpperCase(), r.hash, 'hash = sha256(tx), upper-case hex')
    const b = await c.block(r.height)
    t.ok(
      b.txs.some(x => toHex(sha256(x)).toUpperCase() === r.hash),
      'the block holds the tx'
    )
    const prev = await c.block(r.height - 1).catch(() => undefined)
    if (prev !== undefined) t.same(b.lastBlockHash, prev.hash, 'hash-linked')

    const e = await c.send('vendor.register', { name }, await generateChainKey()).catch((err: unknown) => err)
    t.ok(e instanceof TxRejectedError && e.txCode === TxCode.CONFLICT, 'duplicate name refused with its code')
    const wrong = await c
      .send('vendor.ekca.publish', { vendor: name, certificate: fakeDer(1) }, await generateChainKey())
      .catch((err: unknown) => err)
    t.ok(wrong instanceof TxRejectedError && wrong.txCode === TxCode.UNAUTHORIZED, 'wrong signer refused')
    const chainId = await c.chainId()
    const stale = await c.broadcastTxSync(buildTx('vendor.register', { name: `${name}x` }, k, 0, chainId))
    t.equal(stale.code, TxCode.BAD_SEQUENCE, 'replayed sequence refused at check')
    const junk = await c.broadcastTxSync(new Uint8Array([1, 2, 3]))
    t.equal(junk.code, TxCode.MALFORMED, 'malformed tx refused at check')

    t.equal((await c.vendor(name))?.name, name, 'typed query')
    t.equal(await c.vendor(`${name}-none`), undefined, 'not found is undefined')
    const q = await c.abciQuery('/no-such-path')
    t.equal(q.code, TxCode.UNKNOWN_TYPE, 'unknown query path has a code')
    const proven = await c.provenValue(`vendor/${name}`)
    t.equal(proven?.verified, true, 'inclusion proof verifies against the status app hash')
  })
}
