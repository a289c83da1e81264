// The ABCI socket server spoken to directly over its Unix socket, as CometBFT would: framing,
// Echo/Flush/Info, InitChain (idempotent), CheckTx, PrepareProposal's size limit,
// ProcessProposal rejecting a block with an invalid tx, FinalizeBlock + Commit + Query with a
// proof, a FinalizeBlock repeated without Commit (CometBFT restarted), oversized frames; and a
// fuzzed frame decoder.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  Request,
  Response,
  CheckTxType,
  ResponseProcessProposal_ProposalStatus,
  type RequestInitChain
} from 'cosmjs-types/tendermint/abci/types'
import { FrameDecoder, encodeFrame } from '../../chain/abci/frame.ts'
import { startAbciServer, type AbciServer } from '../../chain/abci/server.ts'
import { buildSeedTx, extensionMessage, isSeedTx, seedEntropy, type SeedConfig } from '../../chain/abci/seed.ts'
import { createChainApp } from '../../chain/app.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { verifyStateProof } from '../../chain/store.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { buildTx } from '../../chain/tx.ts'
import { TxCode } from '../../chain/types.ts'
import { DecodeError, TooLargeError } from '../../encoding/errors.ts'
import { encodeUvarint } from '../../encoding/varint.ts'

const CHAIN = 'abci-test'

class AbciConn {
  readonly #sock: Socket
  readonly #frames = new FrameDecoder()
  readonly #waiting: Array<(r: Response) => void> = []
  readonly closed: Promise<void>
  constructor(path: string) {
    this.#sock = connect(path)
    this.closed = new Promise(resolve => this.#sock.once('close', () => resolve()))
    this.#sock.on('data', (d: Buffer) => {
      for (const f of this.#frames.push(d)) this.#waiting.shift()?.(Response.decode(f))
    })
    this.#sock.on('error', () => {})
  }

  async call(req: Partial<Request>): Promise<Response> {
    const p = new Promise<Response>(resolve => this.#waiting.push(resolve))
    this.#sock.write(encodeFrame(Request.encode(Request.fromPartial(req)).finish()))
    return await p
  }

  raw(b: Uint8Array): void {
    this.#sock.write(b)
  }

  /** Sends `body` framed as it is (no encoding) and waits for the answer. */
  async callRaw(body: Uint8Array): Promise<Response> {
    const p = new Promise<Response>(resolve => this.#waiting.push(resolve))
    this.#sock.write(encodeFrame(body))
    return await p
  }
  close(): void {
    this.#sock.destroy()
  }
}

const ts = (ms: number): { seconds: bigint; nanos: number } => ({
  seconds: BigInt(Math.floor(ms / 1000)),
  nanos: (ms % 1000) * 1e6
})

t.test('ABCI server over a Unix socket', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'qabci-'))
  const db = join(dir, 'app.sqlite')
  let opened = 0
  const server: AbciServer = await startAbciServer({
    listen: join(dir, 'abci.sock'),
    openApp: () => {
      opened++
      return createChainApp({ path: db, rules: createTestOnlyQuorumRules() })
    },
    maxFrameBytes: 1 << 20
  })
  const c = new AbciConn(join(dir, 'abci.sock'))
  t.teardown(async () => {
    c.close()
    await server.close()
    await rm(dir, { recursive: true, force: true })
  })
  t.equal(server.address, `unix://${join(dir, 'abci.sock')}`)

  t.equal((await c.call({ echo: { message: 'hello' } })).echo?.message, 'hello', 'echo')
  t.ok((await c.call({ flush: {} })).flush !== undefined, 'flush')
  const info0 = (
    await c.call({ info: { version: '0.38.26', blockVersion: 11n, p2pVersion: 8n, abciVersion: '2.0.0' } })
  ).info
  t.equal(info0?.lastBlockHeight, 0n, 'fresh app: height 0, so CometBFT calls InitChain')

  const validator = await generateChainKey()
  const genesisTime = Date.UTC(2026, 11, 1)
  const initChain: Partial<RequestInitChain> = {
    time: ts(genesisTime),
    chainId: CHAIN,
    initialHeight: 1n,
    validators: [{ pubKey: { ed25519: validator.publicKey }, power: 1n }],
    appStateBytes: Buffer.from(JSON.stringify({ verifiers: [], committee_size: 7 }))
  }
  const ic = (await c.call({ initChain: initChain as RequestInitChain })).initChain
  t.equal(ic?.appHash.byteLength, 32, 'InitChain answers the genesis app hash')
  const again = (await c.call({ initChain: initChain as RequestInitChain })).initChain
  t.same(
    again?.appHash,
    ic?.appHash,
    'InitChain again before any block (a crash right after it) is answered, not refused'
  )
  const other = await c.call({ initChain: { ...initChain, chainId: 'other' } as RequestInitChain })
  t.match(other.exception?.error, /holds "abci-test"/, 'InitChain of another chain is an exception')

  const k = await generateChainKey()
  const tx0 = buildTx('vendor.register', { name: 'acme' }, k, 0, CHAIN)
  const tx1 = buildTx('vendor.register', { name: 'acme2' }, k, 1, CHAIN)
  t.equal((await c.call({ checkTx: { tx: tx0, type: CheckTxType.NEW } })).checkTx?.code, 0, 'CheckTx accepts')
  t.equal(
    (await c.call({ checkTx: { tx: tx0, type: CheckTxType.NEW } })).checkTx?.code,
    TxCode.BAD_SEQUENCE,
    'the same tx again: its sequence is taken in the mempool view'
  )
  t.equal(
    (await c.call({ checkTx: { tx: new Uint8Array([1, 2, 3]), type: CheckTxType.NEW } })).checkTx?.code,
    TxCode.MALFORMED,
    'junk refused'
  )

  // PrepareProposal: within max_tx_bytes; a tx that can never be valid is left out
  const junk = new Uint8Array(randomBytes(100))
  const prep = (
    await c.call({
      prepareProposal: { maxTxBytes: 10_000n, txs: [tx0, junk, tx1], height: 1n, time: ts(genesisTime + 1000) } as never
    })
  ).prepareProposal
  t.same(
    prep?.txs.map(x => Buffer.from(x).toString('hex')),
    [tx0, tx1].map(x => Buffer.from(x).toString('hex')),
    'junk left out of the proposal'
  )
  const small = (
    await c.call({ prepareProposal: { maxTxBytes: BigInt(tx0.byteLength + 3), txs: [tx0, tx1] } as never })
  ).prepareProposal
  t.equal(small?.txs.length, 1, 'only what fits in max_tx_bytes')

  // ProcessProposal: any invalid tx rejects the block; a failing-but-valid tx (bad sequence) does not
  const pp = async (txs: Uint8Array[]): Promise<number | undefined> =>
    (
      await c.call({
        processProposal: {
          txs,
          height: 1n,
          time: ts(genesisTime + 1000),
          hash: new Uint8Array(32),
          proposerAddress: new Uint8Array(20)
        } as never
      })
    ).processProposal?.status
  t.equal(await pp([tx0, tx1]), ResponseProcessProposal_ProposalStatus.ACCEPT, 'valid proposal accepted')
  t.equal(
    await pp([tx0, junk]),
    ResponseProcessProposal_ProposalStatus.REJECT,
    'a proposal with a malformed tx is rejected'
  )
  const forged = new Uint8Array(tx1)
  forged[forged.length - 1] ^= 1
  t.equal(
    await pp([forged]),
    ResponseProcessProposal_ProposalStatus.REJECT,
    'a proposal with a bad signature is rejected'
  )
  t.equal(
    await pp([buildTx('vendor.register', { name: 'x' }, k, 0, 'another-chain')]),
    ResponseProcessProposal_ProposalStatus.REJECT,
    'a tx for another chain is rejected'
  )
  t.equal(
    await pp([tx1]),
    ResponseProcessProposal_ProposalStatus.ACCEPT,
    'a tx out of sequence is still a valid block (it fails in FinalizeBlock)'
  )

  // FinalizeBlock, then CometBFT "restarts" and finalizes the same block again before any Commit
  const fb = {
    txs: [tx0, tx1],
    height: 1n,
    time: ts(genesisTime + 1000),
    hash: new Uint8Array(32).fill(7),
    proposerAddress: new Uint8Array(20)
  } as never
  const f1 = (await c.call({ finalizeBlock: fb })).finalizeBlock
  t.same(
    f1?.txResults.map(r => r.code),
    [0, 0],
    'both txs applied'
  )
  t.equal(f1?.appHash.byteLength, 32)
  const f2 = (await c.call({ finalizeBlock: fb })).finalizeBlock
  t.same(f2?.appHash, f1?.appHash, 'the same block finalized again (no commit in between) gives the same app hash')
  t.equal(opened, 2, 'by reopening the app from its database')
  t.equal((await c.call({ commit: {} })).commit?.retainHeight, 0n, 'commit')
  const info1 = (await c.call({ info: { version: '', blockVersion: 0n, p2pVersion: 0n, abciVersion: '' } })).info
  t.equal(info1?.lastBlockHeight, 1n, 'Info: last committed height')
  t.same(info1?.lastBlockAppHash, f1?.appHash, 'Info: app hash after it')

  const q = (await c.call({ query: { path: '/key', data: Buffer.from('vendor/acme'), prove: true, height: 0n } })).query
  t.equal(q?.code, 0)
  t.equal(q?.height, 1n)
  const op = q?.proofOps?.ops[0]
  t.ok(
    op !== undefined &&
      q !== undefined &&
      f1 !== undefined &&
      verifyStateProof(f1.appHash, 'vendor/acme', q.value, op.data),
    'Query prove=true: the proofOp verifies against the app hash'
  )
  t.equal(
    (await c.call({ query: { path: '/nope', data: new Uint8Array(0), prove: false, height: 0n } })).query?.code,
    TxCode.UNKNOWN_TYPE
  )

  // pipelined requests are answered in order
  const many = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => await c.call({ echo: { message: String(i) } }))
  )
  t.same(
    many.map(r => r.echo?.message),
    Array.from({ length: 50 }, (_, i) => String(i)),
    'pipelined answers in order'
  )

  // a frame over the limit closes that connection, before its body is buffered; others go on
  const bad = new AbciConn(join(dir, 'abci.sock'))
  bad.raw(encodeUvarint(2 << 20))
  await bad.closed
  t.pass('oversized frame: connection closed')
  t.equal(
    (await c.call({ echo: { message: 'still here' } })).echo?.message,
    'still here',
    'other connections unaffected'
  )
})

t.test('frame decoder: split anywhere, strict prefix, bounded, fuzzed', async t => {
  const msgs = Array.from({ length: 40 }, (_, i) => new Uint8Array(randomBytes((i * 37) % 300)))
  const stream = Buffer.concat(msgs.map(encodeFrame))
  let seed = 99
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x80000000
  }
  for (let round = 0; round < 50; round++) {
    const d = new FrameDecoder(1000)
    const got: Uint8Array[] = []
    for (let at = 0; at < stream.length; ) {
      const n = 1 + Math.floor(rnd() * 64)
      got.push(...d.push(stream.subarray(at, at + n)))
      at += n
    }
    if (got.length !== msgs.length || got.some((g, i) => Buffer.compare(g, msgs[i]) !== 0)) {
      t.fail(`round ${round}: frames differ`)
      return
    }
    t.equal(d.buffered, 0)
  }
  t.pass('50 random splittings give back the same frames')
  t.throws(
    () => new FrameDecoder(1000).push(encodeUvarint(1001)),
    TooLargeError,
    'a length over the limit is refused from the prefix alone'
  )
  t.throws(() => new FrameDecoder().push(new Uint8Array([0x83, 0x00])), DecodeError, 'non-minimal length prefix')
  t.throws(() => new FrameDecoder().push(new Uint8Array(9).fill(0xff)), DecodeError, 'over-long length prefix')
  // fuzz: random bytes never throw anything but DecodeError/TooLargeError, never buffer past the bound
  let errors = 0
  for (let i = 0; i < 2000; i++) {
    const d = new FrameDecoder(4096)
    try {
      for (let j = 0; j < 8; j++) {
        d.push(new Uint8Array(randomBytes(Math.floor(rnd() * 512))))
        if (d.buffered > 4096 + 8) throw new Error(`buffered ${d.buffered}`)
      }
    } catch (err) {
      if (!(err instanceof DecodeError) && !(err instanceof TooLargeError)) throw err
      errors++
    }
  }
  t.ok(
    errors > 0,
    `fuzzed: ${errors} of 2000 random streams refused with DecodeError/TooLargeError, none crashed or over-buffered`
  )
  // and random frames into the server's Request decoder only fail with an Error
  for (let i = 0; i < 2000; i++) {
    try {
      Request.decode(new Uint8Array(randomBytes(Math.floor(rnd() * 64))))
    } catch (err) {
      if (!(err instanceof Error)) throw err
    }
  }
  t.pass('random Request bodies: decode returns or throws an Error')
})

t.test('vote-extension seed: extensions, the seed tx in proposals, its checks, FinalizeBlock', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'qabci-seed-'))
  const vals = await Promise.all(
    Array.from({ length: 4 }, async () => ({
      key: await generateChainKey(),
      seedKey: await generateChainKey(),
      address: new Uint8Array(randomBytes(20))
    }))
  )
  const keys = new Map(vals.map(v => [Buffer.from(v.address).toString('hex').toUpperCase(), v.seedKey.publicKey]))
  const cfgOf = (own?: (typeof vals)[number]['seedKey']): SeedConfig => ({ chainId: CHAIN, enableHeight: 1, keys, own })
  const server = await startAbciServer({
    listen: join(dir, 's.sock'),
    seed: cfgOf(vals[0].seedKey),
    openApp: () => createChainApp({ path: join(dir, 'app.sqlite'), rules: createTestOnlyQuorumRules() })
  })
  const c = new AbciConn(join(dir, 's.sock'))
  t.teardown(async () => {
    c.close()
    await server.close()
    await rm(dir, { recursive: true, force: true })
  })
  const t0 = Date.UTC(2026, 11, 1)
  await c.call({
    initChain: {
      time: ts(t0),
      chainId: CHAIN,
      initialHeight: 1n,
      validators: vals.map(v => ({ pubKey: { ed25519: v.key.publicKey }, power: 1n })),
      appStateBytes: Buffer.from('{}')
    } as never
  })

  const ext = (await c.call({ extendVote: { height: 1n } as never })).extendVote?.voteExtension
  t.equal(ext?.byteLength, 64, 'ExtendVote: a 64-byte signature')
  const ext2 = (await c.call({ extendVote: { height: 1n } as never })).extendVote?.voteExtension
  t.same(ext2, ext, 'deterministic: one value per validator and height')
  const verify = async (address: Uint8Array, e: Uint8Array, height = 1n): Promise<number | undefined> =>
    (
      await c.call({
        verifyVoteExtension: { validatorAddress: address, height, voteExtension: e, hash: new Uint8Array(32) }
      })
    ).verifyVoteExtension?.status
  t.equal(await verify(vals[0].address, ext ?? new Uint8Array(0)), 1, "VerifyVoteExtension accepts the validator's own")
  t.equal(await verify(vals[1].address, ext ?? new Uint8Array(0)), 2, "rejects it as another validator's")
  t.equal(await verify(vals[0].address, ext ?? new Uint8Array(0), 2n), 2, 'rejects it for another height')
  t.equal(
    await verify(vals[0].address, new Uint8Array(64)),
    2,
    "rejects anything else (no grinding through the extension's content)"
  )

  // height 1 has no previous extensions; at height 2 the proposer puts them first
  await c.call({ finalizeBlock: { txs: [], height: 1n, time: ts(t0 + 1000), hash: new Uint8Array(32) } as never })
  await c.call({ commit: {} })
  const votes = vals.map(v => ({
    validator: { address: v.address, power: 1n },
    voteExtension: v.seedKey.sign(extensionMessage(CHAIN, 1)),
    extensionSignature: new Uint8Array(64),
    blockIdFlag: 2
  }))
  const k = await generateChainKey()
  const tx = buildTx('vendor.register', { name: 'seeded' }, k, 0, CHAIN)
  const prep = (
    await c.call({
      prepareProposal: {
        maxTxBytes: 100_000n,
        txs: [tx],
        height: 2n,
        time: ts(t0 + 2000),
        localLastCommit: { round: 0, votes: votes.slice(1) }
      } as never
    })
  ).prepareProposal
  t.equal(prep?.txs.length, 2)
  t.ok(prep !== undefined && isSeedTx(prep.txs[0]), 'the proposal starts with the seed tx')
  const cfg = cfgOf()
  const pp = async (txs: Uint8Array[]): Promise<number | undefined> =>
    (
      await c.call({
        processProposal: {
          txs,
          height: 2n,
          time: ts(t0 + 2000),
          hash: new Uint8Array(32),
          proposerAddress: new Uint8Array(20)
        } as never
      })
    ).processProposal?.status
  t.equal(await pp(prep?.txs ?? []), ResponseProcessProposal_ProposalStatus.ACCEPT, 'accepted with 3 of 4 extensions')
  t.equal(await pp([tx]), ResponseProcessProposal_ProposalStatus.REJECT, 'rejected without the seed tx')
  const two = buildSeedTx(
    cfg,
    2,
    votes.slice(2).map(v => ({ address: v.validator.address, ext: v.voteExtension }))
  )
  t.equal(
    await pp([two, tx]),
    ResponseProcessProposal_ProposalStatus.REJECT,
    'rejected with only 2 of 4 (not more than 2/3)'
  )
  const tampered = new Uint8Array(prep?.txs[0] ?? [])
  tampered[tampered.length - 1] ^= 1
  t.equal(await pp([tampered, tx]), ResponseProcessProposal_ProposalStatus.REJECT, 'rejected with a changed extension')
  t.equal(
    await pp([tx, prep?.txs[0] ?? new Uint8Array(0)]),
    ResponseProcessProposal_ProposalStatus.REJECT,
    'rejected with the seed tx anywhere but first'
  )
  const e3 = seedEntropy(cfg, 2, prep?.txs[0] ?? new Uint8Array(0))
  const all = seedEntropy(
    cfg,
    2,
    buildSeedTx(
      cfg,
      2,
      votes.map(v => ({ address: v.validator.address, ext: v.voteExtension }))
    )
  )
  t.ok(
    'entropy' in e3 && 'entropy' in all && Buffer.compare(e3.entropy, all.entropy) !== 0,
    "which extensions are included changes the seed input (the proposer's remaining choice)"
  )

  const fb = (
    await c.call({
      finalizeBlock: {
        txs: prep?.txs ?? [],
        height: 2n,
        time: ts(t0 + 2000),
        hash: new Uint8Array(32).fill(9)
      } as never
    })
  ).finalizeBlock
  t.same(
    fb?.txResults.map(r => r.code),
    [0, 0],
    'one result per tx, the seed tx included'
  )
  await c.call({ commit: {} })
  const checked = (await c.call({ checkTx: { tx: prep?.txs[0] ?? new Uint8Array(0), type: CheckTxType.NEW } })).checkTx
  t.equal(checked?.code, TxCode.MALFORMED, 'a seed tx sent to the mempool is refused')
})

t.test('a CometBFT that reconnects (restarted: empty mempool) gets a fresh mempool view of sequences', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'qabci-re-'))
  const server = await startAbciServer({
    listen: join(dir, 'r.sock'),
    openApp: () => createChainApp({ path: join(dir, 'app.sqlite'), rules: createTestOnlyQuorumRules() })
  })
  t.teardown(async () => {
    await server.close()
    await rm(dir, { recursive: true, force: true })
  })
  const v = await generateChainKey()
  const c1 = new AbciConn(join(dir, 'r.sock'))
  await c1.call({
    initChain: {
      time: ts(Date.UTC(2026, 11, 1)),
      chainId: CHAIN,
      initialHeight: 1n,
      validators: [{ pubKey: { ed25519: v.publicKey }, power: 1n }],
      appStateBytes: Buffer.from('{}')
    } as never
  })
  const k = await generateChainKey()
  const tx = buildTx('vendor.register', { name: 'again' }, k, 0, CHAIN)
  t.equal((await c1.call({ checkTx: { tx, type: CheckTxType.NEW } })).checkTx?.code, 0)
  t.equal(
    (await c1.call({ checkTx: { tx, type: CheckTxType.NEW } })).checkTx?.code,
    TxCode.BAD_SEQUENCE,
    'same session: sequence 0 is taken in the mempool view'
  )
  c1.close()
  await c1.closed
  while (server.connections > 0) await new Promise(resolve => setImmediate(resolve))
  const c2 = new AbciConn(join(dir, 'r.sock'))
  t.teardown(() => c2.close())
  t.equal(
    (await c2.call({ checkTx: { tx, type: CheckTxType.NEW } })).checkTx?.code,
    0,
    'after all connections closed and a new one opened: accepted again'
  )
})

t.test('random frames over the socket: answered or the connection closed, never the server down', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'qabci-fz-'))
  const server = await startAbciServer({
    listen: join(dir, 'f.sock'),
    openApp: () => createChainApp({ rules: createTestOnlyQuorumRules() }),
    maxFrameBytes: 4096
  })
  t.teardown(async () => {
    await server.close()
    await rm(dir, { recursive: true, force: true })
  })
  let seed = 7
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x80000000
  }
  let answered = 0
  let closed = 0
  for (let round = 0; round < 30; round++) {
    const c = new AbciConn(join(dir, 'f.sock'))
    const frames = Array.from({ length: 20 }, () => new Uint8Array(randomBytes(Math.floor(rnd() * 200))))
    // every frame is answered in order (an exception for nonsense) unless the connection closes
    const replies = frames.map(
      async f =>
        await Promise.race([c.callRaw(f).then(() => 'answer' as const), c.closed.then(() => 'closed' as const)])
    )
    for (const r of await Promise.all(replies)) {
      if (r === 'answer') answered++
      else closed++
    }
    c.raw(new Uint8Array(randomBytes(Math.floor(rnd() * 64)))) // and raw garbage after them
    c.close()
  }
  t.equal(answered + closed, 600, 'every frame got an answer or its connection closed')
  t.ok(answered > 0, `${answered} random requests answered, ${closed} ended by a closed connection`)
  const ok = new AbciConn(join(dir, 'f.sock'))
  t.teardown(() => ok.close())
  t.equal(
    (await ok.call({ echo: { message: 'alive' } })).echo?.message,
    'alive',
    'the server still serves new connections'
  )
})
