// The embedded validator's core: a mempool and a block producer over a ChainApp, with the block
// store in the app's SQLite database, written in the same SQLite transaction as the state, so a
// crash leaves either the whole block (state, block, tx index) or none of it.
//
// Headers follow CometBFT's semantics: block H carries the app hash and results hash *after*
// block H−1, so the block hash is known before execution and handed to finalizeBlock (the
// committee seed is derived from it). The app hash after H is stored with the block and shown by
// `status` as latest_app_hash.
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { hash as cryptoHash } from 'node:crypto'
import { Buffer } from 'node:buffer'
import { sha256, utf8, concat, equal } from '../encoding/bytes.ts'
import { encode, decode, type Canonical } from '../encoding/canonical.ts'
import { QuorateError, TransientError } from '../encoding/errors.ts'
import { silentLogger, type Logger } from '../encoding/log.ts'
import type { ChainApp } from './app.ts'
import type { ChainKey } from './keys.ts'
import { verifyEd25519 } from './keys.ts'
import type { BlockHeader, DecodedTx, TxResult } from './types.ts'
import { decodeTx, verifyTxSignature } from './tx.ts'
import { verifyTxSignatureAsync } from './verify-pool.ts'

const BLOCK_SIGN_DOMAIN = utf8.encode('quorate/block/v1\0')
export const EMPTY_HASH = sha256(new Uint8Array(0))
/** Rows per multi-row txindex INSERT. */
const TX_BATCH = 64

export interface StoredBlock {
  header: BlockHeader
  hash: Uint8Array
  txs: Uint8Array[]
  results: TxResult[]
  /** App hash after this block. */
  appHash: Uint8Array
  resultsHash: Uint8Array
  /** Validator's ed25519 signature over "quorate/block/v1\0" ‖ hash. */
  signature: Uint8Array
}

export interface CommittedTx {
  hash: Uint8Array
  height: number
  index: number
  result: TxResult
  tx: Uint8Array
}

export class MempoolError extends TransientError {
  override readonly code: string = 'ERR_MEMPOOL'
}

export function validatorAddress(publicKey: Uint8Array): Uint8Array {
  return sha256(publicKey).subarray(0, 20)
}
export function blockHash(h: BlockHeader): Uint8Array {
  return sha256(encodeHeader(h))
}
export function encodeHeader(h: BlockHeader): Uint8Array {
  return encode({
    chainId: h.chainId,
    height: h.height,
    time: h.time,
    lastBlockHash: h.lastBlockHash,
    dataHash: h.dataHash,
    appHash: h.appHash,
    lastResultsHash: h.lastResultsHash,
    proposer: h.proposer
  })
}
const NO_DATA = new Uint8Array(0)
/** The stored form of a block's results (what resultsHash hashes). */
export function encodeResults(results: readonly TxResult[]): Uint8Array {
  return encode(results.map(r => [r.code, r.data ?? NO_DATA, r.log]))
}
export function resultsHash(results: readonly TxResult[]): Uint8Array {
  return sha256(encodeResults(results))
}
export function dataHash(txs: readonly Uint8Array[]): Uint8Array {
  return dataHashOf(txs.map(t => sha256(t)))
}
export function dataHashOf(txHashes: readonly Uint8Array[]): Uint8Array {
  return sha256(encode(txHashes))
}
export function verifyBlockSignature(publicKey: Uint8Array, hash: Uint8Array, sig: Uint8Array): boolean {
  return verifyEd25519(publicKey, concat([BLOCK_SIGN_DOMAIN, hash]), sig)
}

function decodeResults(b: Uint8Array): TxResult[] {
  return (decode(b, { maxBytes: 1 << 28, maxItems: 1 << 20 }) as Canonical[][]).map(r => {
    const [code, data, log] = r as [number, Uint8Array, string]
    return data.byteLength === 0
      ? { code, log, codespace: code === 0 ? '' : 'quorate' }
      : { code, log, data, codespace: code === 0 ? '' : 'quorate' }
  })
}

interface BlockRow {
  height: number
  hash: Uint8Array
  header: Uint8Array
  txs: Uint8Array
  results: Uint8Array
  app_hash: Uint8Array
  results_hash: Uint8Array
  sig: Uint8Array
}

export function decodeBlockRow(r: BlockRow): StoredBlock {
  const h = decode(new Uint8Array(r.header)) as unknown as BlockHeader
  return {
    header: {
      chainId: h.chainId,
      height: h.height,
      time: h.time,
      lastBlockHash: h.lastBlockHash,
      dataHash: h.dataHash,
      appHash: h.appHash,
      lastResultsHash: h.lastResultsHash,
      proposer: h.proposer
    },
    hash: new Uint8Array(r.hash),
    txs: decode(new Uint8Array(r.txs), { maxBytes: 1 << 30, maxItems: 1 << 20 }) as Uint8Array[],
    results: decodeResults(new Uint8Array(r.results)),
    appHash: new Uint8Array(r.app_hash),
    resultsHash: new Uint8Array(r.results_hash),
    signature: new Uint8Array(r.sig)
  }
}

export function ensureBlockTables(db: DatabaseSync): void {
  db.exec(`CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, txs BLOB NOT NULL,
    results BLOB NOT NULL, app_hash BLOB NOT NULL, results_hash BLOB NOT NULL, sig BLOB NOT NULL)`)
  db.exec(
    'CREATE TABLE IF NOT EXISTS txindex (hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID'
  )
}

/** Reads blocks and txs from a block store (also used by replay, read-only). */
export class BlockStore {
  readonly #byHeight: StatementSync
  readonly #txByHash: StatementSync
  readonly #range: StatementSync
  readonly #minmax: StatementSync
  constructor(db: DatabaseSync) {
    this.#byHeight = db.prepare('SELECT * FROM blocks WHERE height = ?')
    this.#txByHash = db.prepare('SELECT height, idx FROM txindex WHERE hash = ?')
    this.#range = db.prepare('SELECT * FROM blocks WHERE height >= ? ORDER BY height')
    this.#minmax = db.prepare('SELECT MIN(height) AS lo, MAX(height) AS hi FROM blocks')
  }

  block(height: number): StoredBlock | undefined {
    const r = this.#byHeight.get(height) as BlockRow | undefined
    return r === undefined ? undefined : decodeBlockRow(r)
  }

  *blocks(from = 0): Generator<StoredBlock> {
    for (const r of this.#range.iterate(from) as Iterable<BlockRow>) yield decodeBlockRow(r)
  }

  range(): { earliest: number; latest: number } | undefined {
    const r = this.#minmax.get() as { lo: number | null; hi: number | null }
    return r.lo === null || r.hi === null ? undefined : { earliest: r.lo, latest: r.hi }
  }

  tx(hash: Uint8Array): CommittedTx | undefined {
    const r = this.#txByHash.get(hash) as { height: number; idx: number } | undefined
    if (r === undefined) return undefined
    const b = this.block(r.height)
    if (b === undefined) return undefined
    return { hash, height: r.height, index: r.idx, result: b.results[r.idx], tx: b.txs[r.idx] }
  }
}

export interface BlockProducerOptions {
  app: ChainApp
  /** The validator key (signs block hashes). */
  key: ChainKey
  /** Proposer clock (Unix ms); block time = max(clock, previous + 1). */
  clock?: () => number
  maxBlockTxs?: number
  maxBlockBytes?: number
  maxMempoolTxs?: number
  /** Txs of submitAsync waiting for their signature check at once (default 8,192); more are refused. */
  maxVerifying?: number
  /** submitAsync checks signatures in libuv's thread pool (default true); false = on this thread (for comparison). */
  verifyOffThread?: boolean
  logger?: Logger
}

/** A submitAsync tx waiting for its signature check (and for those that arrived before it). */
interface Verifying {
  tx: Uint8Array
  hex: string
  hash: Uint8Array
  /** undefined while the check runs. */
  ok: boolean | undefined
  resolve: (r: { result: TxResult; hash: Uint8Array }) => void
  reject: (err: unknown) => void
}

export class BlockProducer {
  readonly app: ChainApp
  readonly store: BlockStore
  readonly #key: ChainKey
  /** validatorAddress of the key: the proposer of every block this producer makes. */
  readonly #proposer: Uint8Array
  readonly #clock: () => number
  readonly #maxTxs: number
  readonly #maxBytes: number
  readonly #maxMempool: number
  readonly #maxVerifying: number
  readonly #offThread: boolean
  /** submitAsync's txs in arrival order; [#head] is the oldest still waiting. */
  #verifying: Array<Verifying | undefined> = []
  #head = 0
  readonly #log: Logger
  readonly #insBlock: StatementSync
  readonly #insTx: StatementSync
  readonly #insTxMany: StatementSync
  #mempool: Array<{ tx: Uint8Array; hash: Uint8Array; hex: string }> = []
  readonly #inMempool = new Set<string>()
  #last: StoredBlock | undefined
  readonly #listeners = new Set<(b: StoredBlock) => void>()
  readonly #evictListeners = new Set<(hash: Uint8Array, result: TxResult) => void>()

  constructor(opts: BlockProducerOptions) {
    this.app = opts.app
    this.#key = opts.key
    this.#proposer = validatorAddress(opts.key.publicKey)
    this.#clock = opts.clock ?? Date.now
    this.#maxTxs = opts.maxBlockTxs ?? 5000
    this.#maxBytes = opts.maxBlockBytes ?? 8 * 1024 * 1024
    this.#maxMempool = opts.maxMempoolTxs ?? 50_000
    this.#maxVerifying = opts.maxVerifying ?? 8192
    this.#offThread = opts.verifyOffThread ?? true
    this.#log = opts.logger ?? silentLogger('quorate:chain:producer')
    ensureBlockTables(this.app.db)
    this.store = new BlockStore(this.app.db)
    this.#insBlock = this.app.db.prepare(
      'INSERT INTO blocks (height, hash, header, txs, results, app_hash, results_hash, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'
    )
    this.#insTx = this.app.db.prepare('INSERT OR IGNORE INTO txindex (hash, height, idx) VALUES (?, ?, ?)')
    this.#insTxMany = this.app.db.prepare(
      'INSERT OR IGNORE INTO txindex (hash, height, idx) VALUES ' + Array(TX_BATCH).fill('(?, ?, ?)').join(', ')
    )
    const info = this.app.info()
    if (!info.initialized) throw new QuorateError('the chain app is not initialized (no genesis)')
    const r = this.store.range()
    this.#last = r === undefined ? undefined : this.store.block(r.latest)
    const lastHeight = this.#last?.header.height ?? (info.genesis?.initialHeight ?? 1) - 1
    if (lastHeight !== info.height)
      throw new QuorateError(
        `block store (height ${lastHeight}) and state (height ${info.height}) disagree; the database is corrupt`
      )
    if (this.#last !== undefined && !equal(this.#last.appHash, info.appHash))
      throw new QuorateError('the app hash of the last block differs from the state; the database is corrupt')
  }

  get mempoolSize(): number {
    return this.#mempool.length
  }
  get lastBlock(): StoredBlock | undefined {
    return this.#last
  }

  onCommit(fn: (b: StoredBlock) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }
  /** A mempool tx no longer passes checkTx after a block (e.g. its sequence was taken) and was dropped. */
  onEvict(fn: (hash: Uint8Array, result: TxResult) => void): () => void {
    this.#evictListeners.add(fn)
    return () => this.#evictListeners.delete(fn)
  }

  /** submitAsync's txs whose signature check has not been applied yet. */
  get verifyingSize(): number {
    return this.#verifying.length - this.#head
  }

  /**
   * checkTx and, if it passes, into the mempool. Throws MempoolError if it is already there or the
   * mempool is full. Runs at once: with submitAsync txs still waiting, it goes ahead of them (one
   * caller should use one of the two).
   */
  submit(tx: Uint8Array): { result: TxResult; hash: Uint8Array } {
    // hex first: Buffer.from(hex) takes its bytes from Node's buffer pool (no allocation of its own)
    const hex = cryptoHash('sha256', tx, 'hex')
    return this.#admit(tx, hex, Buffer.from(hex, 'hex'), false)
  }

  /**
   * submit with the signature checked in libuv's thread pool (chain/verify-pool.ts), so other
   * cores verify while this thread goes on. The checkTx results are applied strictly in the order
   * of the calls — the mempool order is the arrival order — and are exactly submit's: a tx whose
   * check fails (or that does not decode) gets the ordinary synchronous checkTx and its refusal.
   * Rejects with MempoolError if the tx is already in the mempool, the mempool is full, or
   * `maxVerifying` txs are already waiting. `tx` must not be changed afterwards (as with submit:
   * the mempool and the verification cache keep that very array).
   */
  submitAsync(tx: Uint8Array): Promise<{ result: TxResult; hash: Uint8Array }> {
    const hex = cryptoHash('sha256', tx, 'hex')
    if (this.#inMempool.has(hex)) return Promise.reject(new MempoolError('tx already exists in cache'))
    if (this.verifyingSize >= this.#maxVerifying)
      return Promise.reject(
        new MempoolError(`${this.verifyingSize} transactions are waiting for their signature check; retry shortly`)
      )
    const hash: Uint8Array = Buffer.from(hex, 'hex')
    let decoded: DecodedTx | undefined
    try {
      decoded = decodeTx(tx, hash)
    } catch {
      decoded = undefined
    }
    return new Promise((resolve, reject) => {
      const v: Verifying = { tx, hex, hash, ok: decoded === undefined ? false : undefined, resolve, reject }
      this.#verifying.push(v)
      if (decoded === undefined || !this.#offThread) {
        if (decoded !== undefined) v.ok = verifyTxSignature(decoded)
        this.#drain()
      } else
        void verifyTxSignatureAsync(decoded).then(ok => {
          v.ok = ok
          this.#drain()
        })
    })
  }

  /** Applies the checked txs at the head of the arrival queue, in order, up to the first still running. */
  #drain(): void {
    while (this.#head < this.#verifying.length) {
      const v = this.#verifying[this.#head]
      if (v === undefined || v.ok === undefined) break
      this.#verifying[this.#head++] = undefined
      try {
        v.resolve(this.#admit(v.tx, v.hex, v.hash, v.ok))
      } catch (err) {
        v.reject(err)
      }
    }
    if (this.#head === this.#verifying.length) {
      this.#verifying = []
      this.#head = 0
    } else if (this.#head >= 1024) {
      this.#verifying = this.#verifying.slice(this.#head)
      this.#head = 0
    }
  }

  #admit(
    tx: Uint8Array,
    hex: string,
    hash: Uint8Array,
    signatureChecked: boolean
  ): { result: TxResult; hash: Uint8Array } {
    if (this.#inMempool.has(hex)) throw new MempoolError('tx already exists in cache')
    if (this.#mempool.length >= this.#maxMempool) throw new MempoolError(`mempool is full: ${this.#mempool.length} txs`)
    const result = this.app.checkTx(tx, hash, signatureChecked)
    if (result.code === 0) {
      this.#mempool.push({ tx, hash, hex })
      this.#inMempool.add(hex)
    }
    return { result, hash }
  }

  /** Proposes, executes and commits one block with what the mempool holds (possibly none). */
  produce(): StoredBlock {
    const info = this.app.info()
    const take: Uint8Array[] = []
    const hashes: Uint8Array[] = []
    let bytes = 0
    let n = 0
    for (const m of this.#mempool) {
      if (take.length >= this.#maxTxs || bytes + m.tx.byteLength > this.#maxBytes) break
      take.push(m.tx)
      hashes.push(m.hash)
      bytes += m.tx.byteLength
      n++
    }
    const rest = this.#mempool.slice(n)
    for (const m of this.#mempool.slice(0, n)) this.#inMempool.delete(m.hex)
    const header: BlockHeader = {
      chainId: info.chainId,
      height: info.height + 1,
      time: Math.max(this.#clock(), info.time + 1),
      lastBlockHash: this.#last?.hash ?? new Uint8Array(0),
      dataHash: dataHashOf(hashes),
      appHash: info.appHash,
      lastResultsHash: this.#last?.resultsHash ?? EMPTY_HASH,
      proposer: this.#proposer
    }
    const hash = blockHash(header)
    const { txResults, appHash } = this.app.finalizeBlock({ height: header.height, time: header.time, hash, txs: take })
    const encodedResults = encodeResults(txResults)
    const block: StoredBlock = {
      header,
      hash,
      txs: take,
      results: txResults,
      appHash,
      resultsHash: sha256(encodedResults),
      signature: this.#key.sign(concat([BLOCK_SIGN_DOMAIN, hash]))
    }
    this.app.commit(() => {
      this.#insBlock.run(
        header.height,
        hash,
        encodeHeader(header),
        encode(take),
        encodedResults,
        appHash,
        block.resultsHash,
        block.signature
      )
      // TX_BATCH rows per statement (rows keep their order, so the first of duplicates wins as before)
      let i = 0
      const params: Array<Uint8Array | number> = new Array<Uint8Array | number>(3 * TX_BATCH)
      for (; i + TX_BATCH <= take.length; i += TX_BATCH) {
        for (let j = 0; j < TX_BATCH; j++) {
          params[3 * j] = hashes[i + j]
          params[3 * j + 1] = header.height
          params[3 * j + 2] = i + j
        }
        this.#insTxMany.run(...params)
      }
      for (; i < take.length; i++) this.#insTx.run(hashes[i], header.height, i)
    })
    this.#last = block
    // Re-check what is left against the new state (sequences moved on); drop what no longer passes.
    this.#mempool = []
    this.app.resetCheckState()
    const evicted: Array<[Uint8Array, TxResult]> = []
    for (const m of rest) {
      const r = this.app.checkTx(m.tx, m.hash)
      if (r.code === 0) this.#mempool.push(m)
      else {
        this.#inMempool.delete(m.hex)
        evicted.push([m.hash, r])
      }
    }
    this.#log.debug('block', { height: header.height, txs: take.length })
    for (const fn of this.#listeners) fn(block)
    for (const [h, r] of evicted) for (const fn of this.#evictListeners) fn(h, r)
    return block
  }
}
