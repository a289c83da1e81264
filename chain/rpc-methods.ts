// The methods of the embedded validator's RPC, in CometBFT v0.38's JSON shapes (heights as
// strings, hashes upper-case hex, bytes base64): health, status, abci_info, abci_query,
// broadcast_tx_sync|async|commit, block, tx, commit, validators. chain/rpc.ts carries them over HTTP.
// `commit` and `validators` serve the light client (chain/light): a header with the validator's
// signature over its hash, and the validator set (the genesis validators, power 10 each).
import { sha256 as sha, toBase64, toHex } from '../encoding/bytes.ts'
import type { ChainApp } from './app.ts'
import { MempoolError, type BlockProducer, type StoredBlock, validatorAddress } from './producer.ts'
import { boolParam, bytesParam, internal, intParam, strParam, type Params } from './rpc-jsonrpc.ts'
import type { TxResult } from './types.ts'

export const RPC_VERSION = 'quorate-embedded/0.1.0'

/** A method: params by name; `uri` = they came from a GET query string (see rpc-jsonrpc.ts). */
export interface RpcMethod {
  /** Parameter names in order, for positional (array) params. */
  readonly params: readonly string[]
  call(p: Params, uri: boolean): unknown
}

export interface RpcMethodsOptions {
  producer: BlockProducer
  /** Asks the validator to produce soon (called after a tx entered the mempool). */
  kick: () => void
  /** How long broadcast_tx_commit waits for inclusion (ms). */
  commitTimeoutMs: number
  /** The server's own URL (status.node_info.other.rpc_address); known once it listens. */
  url: () => string
}

const HEX = (b: Uint8Array): string => toHex(b).toUpperCase()
const rfc3339 = (ms: number): string => new Date(ms).toISOString()
const b64OrNull = (b: Uint8Array | undefined): string | null =>
  b === undefined || b.byteLength === 0 ? null : toBase64(b)

export function txResultJson(r: TxResult): Record<string, unknown> {
  return {
    code: r.code,
    data: b64OrNull(r.data),
    log: r.log,
    info: '',
    gas_wanted: '0',
    gas_used: '0',
    events: [],
    codespace: r.codespace
  }
}
const NO_RESULT = txResultJson({ code: 0, log: '', codespace: '' })

export function blockJson(b: StoredBlock, prev: StoredBlock | undefined): Record<string, unknown> {
  const h = b.header
  const id = (hash: Uint8Array): Record<string, unknown> => ({
    hash: HEX(hash),
    parts: { total: hash.byteLength === 0 ? 0 : 1, hash: HEX(hash) }
  })
  const lastCommit =
    prev === undefined
      ? { height: '0', round: 0, block_id: id(new Uint8Array(0)), signatures: [] }
      : {
          height: String(prev.header.height),
          round: 0,
          block_id: id(prev.hash),
          signatures: [
            {
              block_id_flag: 2,
              validator_address: HEX(prev.header.proposer),
              timestamp: rfc3339(prev.header.time),
              signature: toBase64(prev.signature)
            }
          ]
        }
  return {
    block_id: id(b.hash),
    block: {
      header: {
        version: { block: '11', app: '1' },
        chain_id: h.chainId,
        height: String(h.height),
        time: rfc3339(h.time),
        last_block_id: id(h.lastBlockHash),
        last_commit_hash: '',
        data_hash: HEX(h.dataHash),
        validators_hash: '',
        next_validators_hash: '',
        consensus_hash: '',
        app_hash: HEX(h.appHash),
        last_results_hash: HEX(h.lastResultsHash),
        evidence_hash: '',
        proposer_address: HEX(h.proposer)
      },
      data: { txs: b.txs.map(toBase64) },
      evidence: { evidence: [] },
      last_commit: lastCommit
    }
  }
}

/** CometBFT's `commit` result for a block: its header and the validator's signature over its hash. */
export function commitJson(b: StoredBlock): Record<string, unknown> {
  const header = (blockJson(b, undefined).block as { header: unknown }).header
  return {
    signed_header: {
      header,
      commit: {
        height: String(b.header.height),
        round: 0,
        block_id: { hash: HEX(b.hash), parts: { total: 1, hash: HEX(b.hash) } },
        signatures: [
          {
            block_id_flag: 2,
            validator_address: HEX(b.header.proposer),
            timestamp: rfc3339(b.header.time),
            signature: toBase64(b.signature)
          }
        ]
      }
    },
    canonical: true
  }
}

function statusJson(app: ChainApp, producer: BlockProducer, rpcAddress: string): Record<string, unknown> {
  const info = app.info()
  const range = producer.store.range()
  const last = producer.lastBlock
  const first = range === undefined ? undefined : producer.store.block(range.earliest)
  const validatorKey = info.genesis?.validators[0] ?? new Uint8Array(32)
  const address = validatorAddress(validatorKey)
  return {
    node_info: {
      protocol_version: { p2p: '8', block: '11', app: '1' },
      id: toHex(address),
      listen_addr: '',
      network: info.chainId,
      version: RPC_VERSION,
      channels: '',
      moniker: 'quorate-embedded',
      other: { tx_index: 'on', rpc_address: rpcAddress }
    },
    sync_info: {
      latest_block_hash: last === undefined ? '' : HEX(last.hash),
      latest_app_hash: HEX(info.appHash),
      latest_block_height: String(info.height),
      latest_block_time: rfc3339(info.time),
      earliest_block_hash: first === undefined ? '' : HEX(first.hash),
      earliest_app_hash: first === undefined ? '' : HEX(first.header.appHash),
      earliest_block_height: String(range?.earliest ?? 0),
      earliest_block_time: rfc3339(first?.header.time ?? info.time),
      catching_up: false
    },
    validator_info: {
      address: HEX(address),
      pub_key: { type: 'tendermint/PubKeyEd25519', value: toBase64(validatorKey) },
      voting_power: '10'
    }
  }
}

type Outcome = { height: number; index: number; result: TxResult } | { evicted: TxResult }

/** Callers of broadcast_tx_commit waiting for their tx (by hash hex) to be committed or evicted. */
class CommitWaiters {
  readonly #waiters = new Map<string, Set<(o: Outcome) => void>>()

  constructor(producer: BlockProducer) {
    producer.onEvict((hash, result) => {
      this.#settle(toHex(hash), { evicted: result })
    })
    producer.onCommit(b => {
      if (this.#waiters.size === 0) return
      for (let i = 0; i < b.txs.length; i++)
        this.#settle(toHex(sha(b.txs[i])), { height: b.header.height, index: i, result: b.results[i] })
    })
  }

  /** Starts waiting for `hex` (before submitting: its block could come before we would listen). */
  wait(hex: string, timeoutMs: number): { done: Promise<Outcome>; cancel: () => void } {
    let timer: NodeJS.Timeout | undefined
    let settle!: (o: Outcome) => void
    const done = new Promise<Outcome>((resolve, reject) => {
      settle = o => {
        clearTimeout(timer)
        resolve(o)
      }
      timer = setTimeout(() => {
        cancel()
        reject(internal('timed out waiting for tx to be included in a block'))
      }, timeoutMs)
    })
    const set = this.#waiters.get(hex) ?? new Set()
    set.add(settle)
    this.#waiters.set(hex, set)
    const cancel = (): void => {
      clearTimeout(timer)
      set.delete(settle)
      if (set.size === 0 && this.#waiters.get(hex) === set) this.#waiters.delete(hex)
    }
    return { done, cancel }
  }

  #settle(hex: string, o: Outcome): void {
    const set = this.#waiters.get(hex)
    if (set === undefined) return
    this.#waiters.delete(hex)
    for (const w of set) w(o)
  }
}

/** The methods by name (a Map: a method named "constructor" is simply not found). */
export function createRpcMethods(opts: RpcMethodsOptions): ReadonlyMap<string, RpcMethod> {
  const { producer } = opts
  const app = producer.app
  const waiters = new CommitWaiters(producer)

  // The signature is checked off this thread (chain/verify-pool.ts); results come back in the
  // order the txs arrived in, so a batch's txs enter the mempool in the batch's order.
  const submit = async (tx: Uint8Array): Promise<ReturnType<BlockProducer['submit']>> => {
    let r: ReturnType<typeof producer.submit>
    try {
      r = await producer.submitAsync(tx)
    } catch (err) {
      if (err instanceof MempoolError) throw internal(err.message)
      throw err
    }
    if (r.result.code === 0) opts.kick()
    return r
  }
  // async answers like sync here: it answers once checkTx has run, as CometBFT's sync does
  const broadcastTx: RpcMethod = {
    params: ['tx'],
    call: async (p, uri) => {
      const { result, hash } = await submit(bytesParam(p.tx, 'tx', uri, 'base64'))
      return {
        code: result.code,
        data: b64OrNull(result.data),
        log: result.log,
        codespace: result.codespace,
        hash: HEX(hash)
      }
    }
  }

  const methods: Record<string, RpcMethod> = {
    health: { params: [], call: () => ({}) },
    status: { params: [], call: () => statusJson(app, producer, opts.url()) },
    abci_info: {
      params: [],
      call: () => {
        const info = app.info()
        return {
          response: {
            data: 'quorate',
            version: RPC_VERSION,
            app_version: '1',
            last_block_height: String(info.height),
            last_block_app_hash: toBase64(info.appHash)
          }
        }
      }
    },
    abci_query: {
      params: ['path', 'data', 'height', 'prove'],
      call: (p, uri) => {
        const data =
          p.data === undefined || p.data === '' ? new Uint8Array(0) : bytesParam(p.data, 'data', uri, 'hex', 'hex')
        const r = app.query({
          path: strParam(p.path, 'path', uri),
          data,
          height: intParam(p.height, 'height', uri),
          prove: boolParam(p.prove, 'prove')
        })
        const proofOps =
          r.proofOps === undefined
            ? null
            : { ops: r.proofOps.map(o => ({ type: o.type, key: toBase64(o.key), data: toBase64(o.data) })) }
        return {
          response: {
            code: r.code,
            log: r.log,
            info: '',
            index: '0',
            key: b64OrNull(r.key),
            value: b64OrNull(r.value),
            proofOps,
            height: String(r.height),
            codespace: r.code === 0 ? '' : r.codespace
          }
        }
      }
    },
    broadcast_tx_sync: broadcastTx,
    broadcast_tx_async: broadcastTx,
    broadcast_tx_commit: {
      params: ['tx'],
      call: async (p, uri) => {
        const tx = bytesParam(p.tx, 'tx', uri, 'base64')
        const wait = waiters.wait(toHex(sha(tx)), opts.commitTimeoutMs)
        wait.done.catch(() => {}) // awaited below; a timeout while checkTx runs is not unhandled
        let check: Awaited<ReturnType<typeof submit>>
        try {
          check = await submit(tx)
        } catch (err) {
          wait.cancel()
          throw err
        }
        const hash = HEX(check.hash)
        if (check.result.code !== 0) {
          wait.cancel()
          return { check_tx: txResultJson(check.result), tx_result: NO_RESULT, hash, height: '0' }
        }
        const r = await wait.done
        // dropped from the mempool after a block: report it as CometBFT reports a failed recheck
        if ('evicted' in r) return { check_tx: txResultJson(r.evicted), tx_result: NO_RESULT, hash, height: '0' }
        return {
          check_tx: txResultJson(check.result),
          tx_result: txResultJson(r.result),
          hash,
          height: String(r.height)
        }
      }
    },
    block: {
      params: ['height'],
      call: (p, uri) => {
        const latest = app.info().height
        const h = intParam(p.height, 'height', uri) ?? latest
        // as CometBFT: errors of the method itself are -32603
        if (h > latest)
          throw internal(`height ${h} must be less than or equal to the current blockchain height ${latest}`)
        const b = producer.store.block(h)
        if (b === undefined) throw internal(`height ${h} is not available`)
        return blockJson(b, producer.store.block(h - 1))
      }
    },
    commit: {
      params: ['height'],
      call: (p, uri) => {
        const latest = app.info().height
        const h = intParam(p.height, 'height', uri) ?? latest
        if (h > latest)
          throw internal(`height ${h} must be less than or equal to the current blockchain height ${latest}`)
        const b = producer.store.block(h)
        if (b === undefined) throw internal(`height ${h} is not available`)
        return commitJson(b)
      }
    },
    validators: {
      params: ['height', 'page', 'per_page'],
      call: (p, uri) => {
        const info = app.info()
        const h = intParam(p.height, 'height', uri) ?? info.height
        if (h > info.height + 1)
          throw internal(`height ${h} must be less than or equal to the current blockchain height ${info.height}`)
        // the embedded chain's set never changes: the genesis validators
        const validators = (info.genesis?.validators ?? []).map(pk => ({
          address: HEX(validatorAddress(pk)),
          pub_key: { type: 'tendermint/PubKeyEd25519', value: toBase64(pk) },
          voting_power: '10',
          proposer_priority: '0'
        }))
        return {
          block_height: String(h),
          validators,
          count: String(validators.length),
          total: String(validators.length)
        }
      }
    },
    tx: {
      params: ['hash', 'prove'],
      call: (p, uri) => {
        const hash = bytesParam(p.hash, 'hash', uri, 'hash', 'hex')
        const t = producer.store.tx(hash)
        if (t === undefined) throw internal(`tx (${HEX(hash)}) not found`)
        return {
          hash: HEX(hash),
          height: String(t.height),
          index: t.index,
          tx_result: txResultJson(t.result),
          tx: toBase64(t.tx)
        }
      }
    }
  }
  return new Map(Object.entries(methods))
}
