// Contract suite for ChainClient against any node that runs this app: the embedded validator
// today (contract-embedded.test.ts), a CometBFT node serving the app over ABCI later (STYLE.md §12).
// Uses only what both must provide: CometBFT JSON-RPC and the app's queries.
import type tapT from 'tap'
import { ChainClient, TxRejectedError } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { TxCode, type AppPublishBody } from '../../chain/types.ts'
import { sha256, toHex } from '../../encoding/bytes.ts'
import { encodeTestOnlyQc } from '../../chain/testing.ts'
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

    // ---- apps, usage, endpoint and TLS key (issues 13 and 14) ----
    const owner = await generateChainKey()
    const app = `app-${toHex(owner.publicKey).slice(0, 8)}`
    const body = (version: string): AppPublishBody => ({
      name: app,
      version,
      digest: `sha256:${'ab'.repeat(32)}`,
      cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
      size: 1024,
      port: 8080,
      limits: { memoryBytes: 64 << 20, pids: 16 },
      idleTimeoutMs: 60_000
    })
    t.ok((await c.publishApp(owner, body('1'))).height > 0, 'app.publish')
    t.equal((await c.publishApp(owner, body('2'))).code, 0)
    const taken = await c.publishApp(await generateChainKey(), body('3')).catch((err: unknown) => err)
    t.ok(
      taken instanceof TxRejectedError && taken.txCode === TxCode.UNAUTHORIZED,
      "another key cannot publish an owner's app"
    )
    const reused = await c.publishApp(owner, body('1')).catch((err: unknown) => err)
    t.ok(reused instanceof TxRejectedError && reused.txCode === TxCode.CONFLICT, 'a version is never reused')
    const notOwner = await c.revokeApp(await generateChainKey(), app).catch((err: unknown) => err)
    t.ok(notOwner instanceof TxRejectedError && notOwner.txCode === TxCode.UNAUTHORIZED, 'only the owner revokes')
    t.equal((await c.app(app))?.record.current, '2')
    t.ok(
      (await c.apps()).some(a => a.record.name === app && a.current?.version === '2'),
      'listed with its current version'
    )
    await c.revokeApp(owner, app, '2')
    const view = await c.app(app)
    t.equal(view?.record.current, '1', 'revoking the current version falls back to the newest in force')
    t.ok((await c.appVersion(app, '2'))?.revokedAt !== undefined)
    t.equal(await c.app(`${app}-none`), undefined)
    const provenApp = await c.provenValue(`app/${app}`)
    t.equal(provenApp?.verified, true, 'app/<name> is provable')

    const node = await generateChainKey()
    await c.send(
      'node.register',
      {
        nodeId: node.peerId,
        ekCertificate: fakeDer(2),
        akPublic: new Uint8Array([2]),
        addrs: [],
        endpoint: 'https://node.example.com:8443'
      },
      node
    )
    t.equal((await c.node(node.peerId))?.record?.endpoint, 'https://node.example.com:8443', 'node() has the endpoint')
    const http = await c
      .send(
        'node.register',
        {
          nodeId: node.peerId,
          ekCertificate: fakeDer(2),
          akPublic: new Uint8Array([2]),
          addrs: [],
          endpoint: 'http://198.18.1.2'
        },
        node
      )
      .catch((err: unknown) => err)
    t.ok(http instanceof TxRejectedError && http.txCode === TxCode.INVALID_BODY, 'plain http off loopback is refused')
    const now = (await c.status()).time
    const period = { from: now - 10_000, to: now, apps: [{ app, requests: 3, bytesIn: 30, bytesOut: 300 }] }
    const forged = await c
      .send('usage.record', { nodeId: node.peerId, ...period }, await generateChainKey())
      .catch((err: unknown) => err)
    t.ok(forged instanceof TxRejectedError && forged.txCode === TxCode.UNAUTHORIZED, 'usage signed by another key')
    const uncertified = await c.recordUsage(node, period).catch((err: unknown) => err)
    t.ok(
      uncertified instanceof TxRejectedError && uncertified.txCode === TxCode.UNAUTHORIZED,
      'usage from a node that is not certified'
    )
    // certified by a passing round (the test-only rules accept this QC)
    const { round } = await c.requestAttestation(node)
    await c.waitForSeed(node.peerId, round)
    await c.recordAttestation(node, node.peerId, round, encodeTestOnlyQc({ outcome: 'pass', expiresAt: now + 1e9 }))
    t.equal((await c.node(node.peerId))?.effective, 'certified')
    await c.recordUsage(node, period)
    const overlap = await c.recordUsage(node, period).catch((err: unknown) => err)
    t.ok(overlap instanceof TxRejectedError && overlap.txCode === TxCode.CONFLICT, 'periods never overlap')
    const usage = await c.appUsage(app)
    t.same(
      usage && [usage.totals.requests, usage.totals.bytesOut, usage.totals.nodes, usage.recent.length],
      [3, 300, 1, 1],
      'appUsage: totals and recent records'
    )
    const short = await c.requestAttestation(node, { tlsKey: new Uint8Array(31) }).catch((err: unknown) => err)
    t.ok(short instanceof TxRejectedError && short.txCode === TxCode.INVALID_BODY, 'a 31-byte tlsKey is refused')
    const tlsKey = new Uint8Array(32).fill(7)
    await c.requestAttestation(node, { tlsKey })
    t.same((await c.seed(node.peerId)).tlsKey, tlsKey, 'the round carries the TLS key it binds')
    t.equal((await c.node(node.peerId))?.record?.tlsKey, undefined, 'only a passing QC records it on the node')
  })
}
