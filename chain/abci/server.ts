// ABCI 2.0 socket server (CometBFT v0.38): serves a ChainApp to a CometBFT node. CometBFT opens
// four connections (consensus, mempool, info/query, snapshot) and pipelines requests on each;
// answers go back in order on the connection they came on. Our app is synchronous: requests are
// answered as they are read, in turns of at most 5 ms per connection (so a CheckTx flood cannot
// hold back FinalizeBlock), the answers of a turn in one write; Flush is answered like any other
// request (everything before it is already written).
//
// What each call does (spec/abci/abci++_methods.md of v0.38):
//   Info           last committed height and app hash — CometBFT replays the blocks we lack
//   InitChain      our genesis from genesis.json's app_state; answers the genesis app hash
//   CheckTx        mempool admission (NEW and RECHECK alike: the app re-derives sequences after a commit)
//   PrepareProposal the mempool's txs that can be valid, within max_tx_bytes
//   ProcessProposal REJECT when a tx can never be valid (bad encoding, signature, chain…)
//   ExtendVote / VerifyVoteExtension / the first "seed tx": committee-seed entropy, ./seed.ts
//   FinalizeBlock  executes the decided block: results, events, app hash (not yet persisted)
//   Commit         persists the finalized block in one SQLite transaction
//   Query          app queries; prove=true → our Merkle proof as a proofOp
// A crash between FinalizeBlock and Commit loses the unpersisted block; CometBFT finalizes it again
// on restart and checks that the app hash comes out the same (the app is deterministic).
import { createServer, type Server, type Socket } from 'node:net'
import { hash as cryptoHash } from 'node:crypto'
import { rmSync } from 'node:fs'
import {
  Request,
  Response,
  CheckTxType,
  ResponseProcessProposal_ProposalStatus,
  ResponseVerifyVoteExtension_VerifyStatus,
  ResponseOfferSnapshot_Result,
  ResponseApplySnapshotChunk_Result,
  type Event,
  type ExecTxResult,
  type RequestFinalizeBlock,
  type RequestInitChain,
  type RequestPrepareProposal,
  type RequestProcessProposal,
  type RequestQuery
} from 'cosmjs-types/tendermint/abci/types'
import { BlockIDFlag } from 'cosmjs-types/tendermint/types/validator'
import { toBase64 } from '../../encoding/bytes.ts'
import { ConfigError, QuorateError } from '../../encoding/errors.ts'
import { silentLogger, type Logger } from '../../encoding/log.ts'
import type { ChainApp } from '../app.ts'
import { genesisFromJson } from '../genesis.ts'
import { TxCode, type TxResult } from '../types.ts'
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeFrame } from './frame.ts'
import {
  buildSeedTx,
  isSeedTx,
  makeExtension,
  seedEntropy,
  seedRequired,
  verifyExtension,
  type SeedConfig
} from './seed.ts'

export const ABCI_APP_VERSION = 1n
export const ABCI_APP_NAME = 'quorate'
/** CometBFT opens 4; a restarted CometBFT may connect before the old sockets are seen closed. */
const MAX_CONNECTIONS = 16
/** Tx instances remembered between CheckTx/ProcessProposal and FinalizeBlock (the app's verification cache is keyed by instance). */
const SEEN_TXS = 65_536
/** Longest a connection's requests run before the other connections get a turn (ms). */
const TURN_MS = 5

export interface AbciServerOptions {
  /** Opens the app (again after a crash of CometBFT between FinalizeBlock and Commit, to drop the unpersisted block). */
  openApp: () => ChainApp
  /** A Unix socket path, or host:port (loopback only unless you mean it). */
  listen: string
  maxFrameBytes?: number
  /** Vote-extension seed (./seed.ts); without it the seed input is the block hash, as on the embedded validator. */
  seed?: SeedConfig
  logger?: Logger
}

export interface AbciServer {
  /** As CometBFT's proxy_app wants it: unix:///path or tcp://host:port. */
  readonly address: string
  readonly app: ChainApp
  /** Connections open now (CometBFT holds four while it runs). */
  readonly connections: number
  close(): Promise<void>
}

class AbciError extends QuorateError {
  override readonly code: string = 'ERR_ABCI'
}

const empty = new Uint8Array(0)
const toMs = (t: { seconds: bigint; nanos: number } | undefined): number =>
  t === undefined ? 0 : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)
const txKey = (tx: Uint8Array): string => cryptoHash('sha256', tx, 'base64')

const noEvents: Event[] = []
function execResult(r: TxResult): ExecTxResult {
  return {
    code: r.code,
    data: r.data ?? empty,
    log: r.log,
    info: '',
    gasWanted: 0n,
    gasUsed: 0n,
    events: noEvents,
    codespace: r.codespace
  }
}
/** One event per block (CometBFT indexes tx hash and height by itself; per-tx events would cost every node a write per tx). */
function blockEvent(results: readonly ExecTxResult[]): Event {
  const failed = results.filter(r => r.code !== 0).length
  return {
    type: 'quorate.block',
    attributes: [
      { key: 'txs', value: String(results.length), index: false },
      { key: 'failed', value: String(failed), index: false }
    ]
  }
}

/** The JSON genesis CometBFT hands InitChain, in the shape chain/genesis.ts reads from genesis.json. */
function genesisFromInitChain(req: RequestInitChain): ReturnType<typeof genesisFromJson> {
  let appState: unknown = {}
  if (req.appStateBytes.byteLength > 0) {
    try {
      appState = JSON.parse(Buffer.from(req.appStateBytes).toString('utf8'))
    } catch (err) {
      throw new ConfigError('InitChain: app_state in genesis.json is not JSON', { cause: err })
    }
  }
  const validators = req.validators.map((v, i) => {
    if (v.pubKey.ed25519 === undefined)
      throw new ConfigError(`InitChain: validator ${i} has no ed25519 key (only ed25519 validators are supported)`)
    return { pub_key: { type: 'tendermint/PubKeyEd25519', value: toBase64(v.pubKey.ed25519) }, power: String(v.power) }
  })
  return genesisFromJson(
    {
      chain_id: req.chainId,
      genesis_time: new Date(toMs(req.time)).toISOString(),
      initial_height: String(req.initialHeight),
      validators,
      app_state: appState
    },
    'genesis (InitChain)'
  )
}

export async function startAbciServer(opts: AbciServerOptions): Promise<AbciServer> {
  const log = opts.logger ?? silentLogger('quorate:chain:abci')
  const maxFrame = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  let app = opts.openApp()
  /** Height finalized but not yet committed. */
  let pending: number | undefined
  /** Tx bytes → the instance the app saw at CheckTx or ProcessProposal (its verification cache is by instance). */
  const seen = new Map<string, Uint8Array>()
  const remember = (key: string, tx: Uint8Array): void => {
    if (seen.size >= SEEN_TXS) {
      const first = seen.keys().next()
      if (first.done !== true) seen.delete(first.value)
    }
    seen.set(key, tx)
  }

  const info = (): Response['info'] => {
    const i = app.info()
    // before the first block (even with initial_height > 1) say 0, so CometBFT calls InitChain
    const committed = i.initialized && i.height >= (i.genesis?.initialHeight ?? 1)
    return {
      data: ABCI_APP_NAME,
      version: '0.1.0',
      appVersion: ABCI_APP_VERSION,
      lastBlockHeight: committed ? BigInt(i.height) : 0n,
      lastBlockAppHash: committed ? i.appHash : empty
    }
  }

  const initChain = (req: RequestInitChain): Response['initChain'] => {
    const genesis = genesisFromInitChain(req)
    const i = app.info()
    // CometBFT calls InitChain again when no block was committed since (a crash right after it)
    if (i.initialized) {
      if (i.chainId !== genesis.chainId || i.height !== genesis.initialHeight - 1)
        throw new AbciError(
          `InitChain for chain "${genesis.chainId}", but the app database holds "${i.chainId}" at height ${i.height}`
        )
      return { validators: [], appHash: i.appHash }
    }
    return { validators: [], appHash: app.initChain(genesis) }
  }

  const checkTx = (tx: Uint8Array, type: CheckTxType): Response['checkTx'] => {
    const key = txKey(tx)
    const inst = seen.get(key) ?? tx
    const r = app.checkTx(inst)
    // the app verified it (a sequence out of order is still a well-signed tx): keep the instance
    if ((r.code === 0 || r.code === TxCode.BAD_SEQUENCE) && type === CheckTxType.NEW) remember(key, inst)
    return {
      code: r.code,
      data: r.data ?? empty,
      log: r.log,
      info: '',
      gasWanted: 0n,
      gasUsed: 0n,
      events: [],
      codespace: r.codespace
    }
  }

  /** Proto size of a tx inside the Data message (field tag + length + bytes), as CometBFT counts max_tx_bytes. */
  const protoSize = (n: number): number => 1 + (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4) + n

  const seed = opts.seed
  const seedTxResult: ExecTxResult = {
    code: 0,
    data: empty,
    log: 'committee seed entropy (vote extensions of the previous height)',
    info: '',
    gasWanted: 0n,
    gasUsed: 0n,
    events: [],
    codespace: ''
  }

  const prepareProposal = (req: RequestPrepareProposal): Response['prepareProposal'] => {
    const max = Number(req.maxTxBytes)
    const txs: Uint8Array[] = []
    let size = 0
    if (seed !== undefined && seedRequired(seed, Number(req.height))) {
      const votes = req.localLastCommit.votes
        .filter(v => v.blockIdFlag === BlockIDFlag.BLOCK_ID_FLAG_COMMIT)
        .map(v => ({ address: v.validator.address, ext: v.voteExtension }))
      const st = buildSeedTx(seed, Number(req.height), votes)
      txs.push(st)
      size += protoSize(st.byteLength)
    }
    for (const tx of req.txs) {
      const s = protoSize(tx.byteLength)
      if (size + s > max) break
      const key = txKey(tx)
      const inst = seen.get(key) ?? tx
      if (app.validateTx(inst).code !== 0) continue
      remember(key, inst)
      txs.push(inst)
      size += s
    }
    return { txs }
  }

  const processProposal = (req: RequestProcessProposal): Response['processProposal'] => {
    let first = 0
    if (seed !== undefined && seedRequired(seed, Number(req.height))) {
      const e = req.txs.length === 0 ? { error: 'no seed tx' } : seedEntropy(seed, Number(req.height), req.txs[0])
      if ('error' in e) {
        log.warn('rejecting a proposal without a valid seed tx', {
          height: Number(req.height),
          error: e.error,
          proposer: Buffer.from(req.proposerAddress).toString('hex')
        })
        return { status: ResponseProcessProposal_ProposalStatus.REJECT }
      }
      first = 1
    }
    for (const [i, tx] of req.txs.entries()) {
      if (i < first) continue
      const key = txKey(tx)
      const inst = seen.get(key) ?? tx
      const r = app.validateTx(inst)
      if (r.code !== 0) {
        log.warn('rejecting a proposal with an invalid tx', {
          height: Number(req.height),
          index: i,
          code: r.code,
          log: r.log,
          proposer: Buffer.from(req.proposerAddress).toString('hex')
        })
        return { status: ResponseProcessProposal_ProposalStatus.REJECT }
      }
      remember(key, inst)
    }
    return { status: ResponseProcessProposal_ProposalStatus.ACCEPT }
  }

  const finalizeBlock = (req: RequestFinalizeBlock): Response['finalizeBlock'] => {
    const height = Number(req.height)
    if (pending !== undefined) {
      // CometBFT restarted between our FinalizeBlock and Commit and finalizes the block again:
      // drop the unpersisted one by reopening the app from its database.
      log.warn('finalizing again without a commit in between; reopening the app from its database', { pending, height })
      app.close()
      app = opts.openApp()
      pending = undefined
    }
    let hash = req.hash
    let blockTxs = req.txs
    if (seed !== undefined && blockTxs.length > 0 && isSeedTx(blockTxs[0])) {
      const e = seedEntropy(seed, height, blockTxs[0])
      // a decided block: every node reaches the same verdict, so a fallback stays deterministic
      if ('entropy' in e) hash = e.entropy
      else
        log.error('decided block carries an invalid seed tx; its block hash is the seed input', {
          height,
          error: e.error
        })
      blockTxs = blockTxs.slice(1)
    }
    const txs = blockTxs.map(tx => {
      const key = txKey(tx)
      const inst = seen.get(key)
      if (inst === undefined) return tx
      seen.delete(key)
      return inst
    })
    const r = app.finalizeBlock({ height, time: toMs(req.time), hash, txs })
    pending = height
    const txResults = r.txResults.map(execResult)
    if (blockTxs !== req.txs) txResults.unshift(seedTxResult)
    return { events: [blockEvent(txResults)], txResults, validatorUpdates: [], appHash: r.appHash }
  }

  const commit = (): Response['commit'] => {
    app.commit()
    pending = undefined
    app.resetCheckState()
    return { retainHeight: 0n }
  }

  const query = (req: RequestQuery): Response['query'] => {
    const r = app.query({ path: req.path, data: req.data, height: Number(req.height), prove: req.prove })
    return {
      code: r.code,
      log: r.log,
      info: '',
      index: 0n,
      key: r.key ?? empty,
      value: r.value ?? empty,
      proofOps:
        r.proofOps === undefined
          ? undefined
          : { ops: r.proofOps.map(o => ({ type: o.type, key: o.key, data: o.data })) },
      height: BigInt(r.height),
      codespace: r.code === 0 ? '' : r.codespace
    }
  }

  const handle = (req: Request): Response => {
    if (req.flush !== undefined) return Response.fromPartial({ flush: {} })
    if (req.echo !== undefined) return Response.fromPartial({ echo: { message: req.echo.message } })
    if (req.checkTx !== undefined) return { checkTx: checkTx(req.checkTx.tx, req.checkTx.type) }
    if (req.info !== undefined) return { info: info() }
    if (req.initChain !== undefined) return { initChain: initChain(req.initChain) }
    if (req.query !== undefined) return { query: query(req.query) }
    if (req.prepareProposal !== undefined) return { prepareProposal: prepareProposal(req.prepareProposal) }
    if (req.processProposal !== undefined) return { processProposal: processProposal(req.processProposal) }
    if (req.finalizeBlock !== undefined) return { finalizeBlock: finalizeBlock(req.finalizeBlock) }
    if (req.commit !== undefined) return { commit: commit() }
    if (req.extendVote !== undefined)
      return {
        extendVote: { voteExtension: seed === undefined ? empty : makeExtension(seed, Number(req.extendVote.height)) }
      }
    if (req.verifyVoteExtension !== undefined) {
      const v = req.verifyVoteExtension
      const good =
        seed === undefined
          ? v.voteExtension.byteLength === 0
          : verifyExtension(seed, v.validatorAddress, Number(v.height), v.voteExtension)
      return {
        verifyVoteExtension: {
          status: good
            ? ResponseVerifyVoteExtension_VerifyStatus.ACCEPT
            : ResponseVerifyVoteExtension_VerifyStatus.REJECT
        }
      }
    }
    // no state sync: no snapshots offered, none accepted
    if (req.listSnapshots !== undefined) return { listSnapshots: { snapshots: [] } }
    if (req.offerSnapshot !== undefined) return { offerSnapshot: { result: ResponseOfferSnapshot_Result.REJECT } }
    if (req.loadSnapshotChunk !== undefined) return { loadSnapshotChunk: { chunk: empty } }
    if (req.applySnapshotChunk !== undefined)
      return {
        applySnapshotChunk: { result: ResponseApplySnapshotChunk_Result.ABORT, refetchChunks: [], rejectSenders: [] }
      }
    throw new AbciError('unknown ABCI request')
  }

  const sockets = new Set<Socket>()
  const onConnection = (sock: Socket): void => {
    if (sockets.size >= MAX_CONNECTIONS) {
      log.warn('refusing an ABCI connection: too many open', { open: sockets.size })
      sock.destroy()
      return
    }
    // a CometBFT (re)starting: its mempool is empty, so the app's mempool view of sequences goes too
    if (sockets.size === 0) app.resetCheckState()
    sockets.add(sock)
    sock.setNoDelay?.(true)
    const frames = new FrameDecoder(maxFrame)
    sock.on('close', () => sockets.delete(sock))
    sock.on('error', err => log.debug('ABCI connection error', { err: err.message }))
    // Frames read but not yet answered. A connection gets at most TURN_MS of work at a time, then
    // the others get theirs: a flood of CheckTx on the mempool connection must not hold back the
    // consensus connection's ProcessProposal or FinalizeBlock (its round would time out).
    const queue: Uint8Array[] = []
    let scheduled = false
    let blockedOnWrite = false
    const work = (): void => {
      scheduled = false
      const out: Uint8Array[] = []
      const until = performance.now() + TURN_MS
      while (queue.length > 0 && performance.now() < until) {
        const f = queue.shift() as Uint8Array
        let res: Response
        try {
          res = handle(Request.decode(f))
        } catch (err) {
          // CometBFT treats an exception as fatal for this connection; it is logged on both sides
          log.error('ABCI request failed', { err: (err as Error).message })
          res = { exception: { error: (err as Error).message } }
        }
        // handle() answers complete messages, so no fromPartial copy on this hot path
        out.push(encodeFrame(Response.encode(res).finish()))
      }
      if (out.length > 0 && !sock.destroyed) {
        const ok = sock.write(out.length === 1 ? out[0] : Buffer.concat(out))
        if (!ok && !blockedOnWrite) {
          blockedOnWrite = true
          sock.once('drain', () => {
            blockedOnWrite = false
            if (queue.length === 0) sock.resume()
          })
        }
      }
      if (queue.length > 0) {
        scheduled = true
        setImmediate(work)
      } else if (!blockedOnWrite) sock.resume()
    }
    sock.on('data', (chunk: Buffer) => {
      try {
        queue.push(...frames.push(chunk))
      } catch (err) {
        log.error('closing an ABCI connection that broke the framing', { err: (err as Error).message })
        sock.destroy()
        return
      }
      // read no more until this is answered (bounds what a connection buffers to one read)
      if (queue.length > 0) sock.pause()
      if (!scheduled) work()
    })
  }

  const server: Server = createServer(onConnection)
  let address: string
  const i = opts.listen.lastIndexOf(':')
  if (opts.listen.startsWith('/') || i < 0) {
    if (Buffer.byteLength(opts.listen) > 100)
      throw new ConfigError(
        `ABCI socket path ${opts.listen} is too long for a Unix socket (at most 100 bytes); use a shorter home`
      )
    rmSync(opts.listen, { force: true }) // a socket left by a killed run; the caller holds the home's lock
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(opts.listen, () => {
        server.off('error', reject)
        resolve()
      })
    })
    address = `unix://${opts.listen}`
  } else {
    const host = opts.listen.slice(0, i).replace(/^\[|\]$/g, '')
    const port = Number(opts.listen.slice(i + 1))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    const a = server.address()
    address = `tcp://${host}:${typeof a === 'object' && a !== null ? a.port : port}`
  }
  log.info('ABCI server listening', { address, height: app.info().height })
  return {
    address,
    get app() {
      return app
    },
    get connections() {
      return sockets.size
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve => server.close(() => resolve()))
      app.close()
    }
  }
}
