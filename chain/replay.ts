// Rebuilds the state from genesis by re-executing the block log into a fresh app, checking every
// header link and every app hash against what was stored. Proves the block log is the state.
import { existsSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { equal, toHex } from '../encoding/bytes.ts'
import { ConfigError } from '../encoding/errors.ts'
import { createChainApp, type ChainApp } from './app.ts'
import { BlockStore, blockHash, dataHash, EMPTY_HASH, verifyBlockSignature } from './producer.ts'
import type { FaultAppraiser, Genesis, QuorumRules } from './types.ts'

export interface ReplayResult {
  ok: boolean
  heights: number
  appHash: Uint8Array
  /** One message per inconsistency found (empty when ok). */
  mismatches: string[]
}

/** No block log to replay at a path (never started, or not a chain database). */
export class NoBlockLogError extends ConfigError {
  override readonly code: string = 'ERR_NO_BLOCK_LOG'
}

/**
 * Opens the block log read-only. SQLite's own messages ("unable to open database file", "no such
 * table: blocks") do not say that a chain home gets its database only when the validator first
 * starts, so each case is named here.
 */
function openBlockLog(path: string): DatabaseSync {
  // read-only open never creates the file, so a missing one is the common "initialised, never started"
  if (!existsSync(path))
    throw new NoBlockLogError(
      `no chain database at ${path}: the validator creates it when it first starts (\`quorate chain start\`); nothing to replay yet`
    )
  let db: DatabaseSync | undefined
  try {
    db = new DatabaseSync(path, { readOnly: true })
    const t = db.prepare("SELECT 1 AS ok FROM sqlite_master WHERE type = 'table' AND name = 'blocks'").get()
    if (t === undefined)
      throw new NoBlockLogError(
        `${path} holds no block log (no blocks table): it is not a database written by \`quorate chain start\``
      )
    return db
  } catch (err) {
    db?.close()
    if (err instanceof NoBlockLogError) throw err
    throw new NoBlockLogError(`cannot read the chain database ${path}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Replays blocks from the SQLite database at `dbPath` (opened read-only) into `into` (default: a
 * fresh in-memory app) and compares. `into` is left open for the caller to inspect. Throws
 * NoBlockLogError when `dbPath` is missing or not a block log.
 */
export function replayBlockLog(opts: {
  dbPath: string
  genesis: Genesis
  rules: QuorumRules
  appraiser?: FaultAppraiser
  into?: ChainApp
}): ReplayResult & { app: ChainApp } {
  const src = openBlockLog(opts.dbPath)
  const app = opts.into ?? createChainApp({ rules: opts.rules, appraiser: opts.appraiser })
  const mismatches: string[] = []
  try {
    let prevHash: Uint8Array = new Uint8Array(0)
    let prevResults = EMPTY_HASH
    let appHash = app.initChain(opts.genesis)
    let n = 0
    for (const b of new BlockStore(src).blocks()) {
      const h = b.header.height
      if (!equal(blockHash(b.header), b.hash))
        mismatches.push(`height ${h}: stored block hash does not match its header`)
      if (!equal(b.header.lastBlockHash, prevHash)) mismatches.push(`height ${h}: not linked to the previous block`)
      if (!equal(b.header.appHash, appHash))
        mismatches.push(
          `height ${h}: header app hash ${toHex(b.header.appHash)} differs from the replayed ${toHex(appHash)}`
        )
      if (!equal(b.header.lastResultsHash, prevResults))
        mismatches.push(`height ${h}: header results hash differs from the previous block's results`)
      if (!equal(b.header.dataHash, dataHash(b.txs))) mismatches.push(`height ${h}: data hash does not match the txs`)
      if (!opts.genesis.validators.some(v => verifyBlockSignature(v, b.hash, b.signature)))
        mismatches.push(`height ${h}: no genesis validator signed this block`)
      const r = app.finalizeBlock({ height: h, time: b.header.time, hash: b.hash, txs: b.txs })
      appHash = app.commit().appHash
      if (!equal(r.appHash, b.appHash))
        mismatches.push(
          `height ${h}: replayed app hash ${toHex(r.appHash)} differs from the stored ${toHex(b.appHash)}`
        )
      for (let i = 0; i < b.results.length; i++) {
        if (r.txResults[i].code !== b.results[i].code || r.txResults[i].log !== b.results[i].log)
          mismatches.push(`height ${h} tx ${i}: result differs on replay`)
      }
      prevHash = b.hash
      prevResults = b.resultsHash
      n++
      if (mismatches.length > 100) break
    }
    return { ok: mismatches.length === 0, heights: n, appHash, mismatches, app }
  } finally {
    src.close()
  }
}
