// The bulk channel: a provider's block frames over a direct TLS 1.3 connection instead of the
// libp2p stream that asked for them (transfer.ts). The libp2p stream stays the place where peers
// are authenticated; it carries a one-time pre-shared key, and the TLS handshake with that key
// (PSK with ECDHE) proves to each side that the other is the peer of that stream. Blocks are
// verified against their CIDs exactly as on the libp2p stream, so the channel adds speed, not
// trust: ~500 MB/s through OpenSSL on a kernel socket against ~200 MB/s for one libp2p stream
// (JS TLS over a duplex plus yamux) on this machine.
//
// The provider listens lazily (on the first offer), on the IP hosts its libp2p host announces,
// never wider. A requester connects to the host it dialed over libp2p and the offered port, so a
// provider cannot point it anywhere else.
import { createServer, connect, type Server, type TLSSocket } from 'node:tls'
import { randomBytes } from 'node:crypto'
import type { CID } from 'multiformats/cid'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Readable } from 'node:stream'
import { sendDag, type BulkOffer, type BulkProvider, type LocalBlocks } from './transfer.ts'
import { FetchError } from './errors.ts'
import { toHex } from '../encoding/bytes.ts'
import { silentLogger, type Logger } from '../encoding/log.ts'

const TLS = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256' } as const
/** How long an offer can be taken up, by default. */
const TICKET_TTL_MS = 10_000
/** Offers not yet taken up, at most (a peer asking again and again cannot grow this). */
const MAX_TICKETS = 64
const HANDSHAKE_TIMEOUT_MS = 5_000
/** Raw leaves up to this size are read into pooled buffers (our importer makes 1 MiB leaves). */
const LEAF_BUFFER = (1 << 20) + 1
const POOLED_BUFFERS = 32
const RAW = 0x55
/** A requester that stops reading for this long is dropped. */
const IDLE_TIMEOUT_MS = 30_000

interface Ticket { readonly key: Buffer, readonly root: CID, readonly expires: number }

export interface BulkServerInit {
  readonly blocks: LocalBlocks
  /** How long an offer can be taken up (default 10 s). */
  readonly ticketTtlMs?: number
  /** The clock offers expire by (tests). */
  readonly now?: () => number
  /** IP hosts to listen on (those of the libp2p host); read at the first offer. */
  readonly hosts: () => string[]
  /** TCP port (default 0: an ephemeral one); a fixed port is what a firewall or NAT can forward. */
  readonly port?: number
  readonly logger?: Logger
  /** Connections served at once (default 8). */
  readonly maxConnections?: number
}

/** The provider side: offers one-time TLS-PSK channels and streams the offered DAG on each. */
export class BulkServer implements BulkProvider {
  readonly #init: BulkServerInit
  readonly #log: Logger
  readonly #tickets = new Map<string, Ticket>()
  readonly #roots = new WeakMap<TLSSocket, CID>()
  readonly #sockets = new Set<TLSSocket>()
  #servers: Promise<{ port: number, servers: Server[] } | undefined> | undefined
  #stopped = false
  #served = 0
  /** Read buffers for raw leaves, reused once the socket has taken their bytes. */
  readonly #pool = new BufferPool(LEAF_BUFFER, POOLED_BUFFERS)

  readonly #now: () => number

  constructor (init: BulkServerInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
    this.#log = init.logger ?? silentLogger('quorate:containers:bulk')
  }

  async offer (root: CID): Promise<BulkOffer | undefined> {
    if (this.#stopped) return undefined
    this.#servers ??= this.#listen()
    const listening = await this.#servers
    if (listening === undefined) return undefined
    const now = this.#now()
    for (const [id, t] of this.#tickets) if (t.expires <= now) this.#tickets.delete(id)
    if (this.#tickets.size >= MAX_TICKETS) return undefined // the requester falls back to the libp2p stream
    const id = randomBytes(16)
    const key = randomBytes(32)
    this.#tickets.set(id.toString('hex'), { key, root, expires: now + (this.#init.ticketTtlMs ?? TICKET_TTL_MS) })
    return { port: listening.port, id: new Uint8Array(id), key: new Uint8Array(key) }
  }

  /** Listens on every announced host with one port; undefined (no bulk offers) when none works. */
  async #listen (): Promise<{ port: number, servers: Server[] } | undefined> {
    const hosts = [...new Set(this.#init.hosts())]
    const servers: Server[] = []
    let port = this.#init.port ?? 0
    for (const host of hosts) {
      const server = this.#createServer()
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen(port, host, () => { server.off('error', reject); resolve() })
        })
      } catch (err) {
        this.#log.warn('bulk channel cannot listen on a host; peers dialing it use the libp2p stream', { host, port, error: (err as Error).message })
        continue
      }
      const addr = server.address()
      if (port === 0 && typeof addr === 'object' && addr !== null) port = addr.port
      servers.push(server)
    }
    if (servers.length === 0) return undefined
    if (this.#stopped) { for (const s of servers) s.close(); return undefined }
    this.#log.debug('bulk channel listening', { hosts, port })
    return { port, servers }
  }

  #createServer (): Server {
    const server = createServer({
      ...TLS,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      pskCallback: (socket, identity) => {
        const t = this.#tickets.get(identity)
        if (t === undefined) return null
        this.#tickets.delete(identity) // one use, whatever happens next
        if (t.expires <= this.#now()) return null
        this.#roots.set(socket, t.root)
        return t.key
      }
    }, socket => { void this.#serve(socket) })
    server.maxConnections = this.#init.maxConnections ?? 8
    server.on('tlsClientError', err => { this.#log.debug('bulk handshake refused', { error: err.message }) })
    return server
  }

  async #serve (socket: TLSSocket): Promise<void> {
    const root = this.#roots.get(socket)
    if (root === undefined) { socket.destroy(); return }
    this.#sockets.add(socket)
    socket.setTimeout(IDLE_TIMEOUT_MS, () => { socket.destroy(new Error('requester stopped reading')) })
    socket.on('error', () => {}) // reported through the write that fails
    socket.resume() // nothing is expected from the requester
    const pool = this.#pool
    const blocks = this.#init.blocks
    const pooled: LocalBlocks = {
      get: async (cid, signal) => {
        // raw leaves only: a dag-pb node's parsed links are views of its bytes, which must stay
        if (blocks.readInto === undefined || cid.code !== RAW) return await blocks.get(cid, signal)
        const buf = pool.acquire()
        const n = await blocks.readInto(cid, buf, signal).catch((err: unknown) => { pool.release(buf); throw err })
        if (n === undefined || n < 0) { pool.release(buf); return n === undefined ? undefined : await blocks.get(cid, signal) }
        return buf.subarray(0, n)
      }
    }
    try {
      await sendDag(async f => { await writeFrame(socket, f, view => { pool.release(view) }) }, root, pooled)
      await new Promise<void>(resolve => { socket.end(resolve) })
      this.#served++
    } catch (err) {
      this.#log.debug('serving a bulk channel failed', { root: root.toString(), error: (err as Error).message })
      socket.destroy()
    } finally {
      this.#sockets.delete(socket)
    }
  }

  /** DAGs sent whole over bulk channels so far. */
  get served (): number { return this.#served }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#tickets.clear()
    for (const s of this.#sockets) s.destroy()
    const listening = await this.#servers?.catch(() => undefined)
    await Promise.all((listening?.servers ?? []).map(async s => { await new Promise<void>(resolve => { s.close(() => { resolve() }) }) }))
  }
}

/**
 * Fixed-size buffers handed out and taken back, so that streaming a 200 MB image does not
 * allocate (and page-fault, and collect) 200 fresh 1 MiB buffers. Buffers not returned are
 * simply collected; at most `keep` are held.
 */
class BufferPool {
  readonly #free: Buffer[] = []
  readonly #mine = new WeakSet<ArrayBufferLike>()
  readonly #size: number
  readonly #keep: number
  constructor (size: number, keep: number) { this.#size = size; this.#keep = keep }
  acquire (): Buffer {
    const b = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#size)
    this.#mine.add(b.buffer)
    return b
  }

  /** Takes back the buffer behind a view it handed out; ignores anything else. */
  release (view: Uint8Array): void {
    if (!this.#mine.has(view.buffer) || this.#free.length >= this.#keep) return
    this.#mine.delete(view.buffer)
    this.#free.push(Buffer.from(view.buffer, 0, this.#size))
  }
}

/**
 * Writes one frame's pieces in one go (corked), then waits while the socket's buffer is full.
 * `written` gets each piece back once the socket no longer needs it.
 */
async function writeFrame (socket: TLSSocket, f: Uint8ArrayList, written?: (piece: Uint8Array) => void): Promise<void> {
  if (socket.destroyed) throw new Error('bulk channel closed')
  socket.cork()
  let ok = true
  for (const piece of f) ok = socket.write(piece, written === undefined ? undefined : () => { written(piece) })
  socket.uncork()
  if (ok) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => { socket.off('drain', onDrain); socket.off('close', onClose); if (err !== undefined) reject(err); else resolve() }
    const onDrain = (): void => { done() }
    const onClose = (): void => { done(new Error('bulk channel closed')) }
    socket.once('drain', onDrain)
    socket.once('close', onClose)
  })
}

/** The IP host of a multiaddr (/ip4, /ip6, /dns*), where a requester connects for a bulk channel. */
export function hostOf (ma: Multiaddr): string | undefined {
  for (const c of ma.getComponents()) {
    if (c.name === 'ip4' || c.name === 'ip6' || c.name === 'dns' || c.name === 'dns4' || c.name === 'dns6') return c.value
  }
  return undefined
}

/**
 * The requester side: connects to the offered channel (on the host it dialed over libp2p) and
 * returns the socket once both sides proved the key. The caller reads block frames from it
 * (transfer.ts receiveDag) and destroys it.
 */
export async function connectBulk (host: string, offer: BulkOffer, opts: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<TLSSocket> {
  opts.signal?.throwIfAborted()
  const identity = toHex(offer.id)
  const key = Buffer.from(offer.key)
  const socket = connect({
    ...TLS,
    host,
    port: offer.port,
    // the PSK authenticates the server; a hint, if any, must not select another key
    pskCallback: () => ({ psk: key, identity }),
    checkServerIdentity: () => undefined
  })
  const timeoutMs = opts.timeoutMs ?? HANDSHAKE_TIMEOUT_MS
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { finish(new FetchError(`bulk channel to ${host}:${offer.port}: no TLS handshake within ${timeoutMs} ms`)) }, timeoutMs)
      const onAbort = (): void => { finish(opts.signal?.reason instanceof Error ? opts.signal.reason : new FetchError('aborted')) }
      const finish = (err?: Error): void => {
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
        socket.off('secureConnect', onConnect)
        socket.off('error', onError)
        if (err === undefined) resolve(); else reject(err)
      }
      const onConnect = (): void => { finish() }
      const onError = (err: Error): void => { finish(new FetchError(`bulk channel to ${host}:${offer.port} failed: ${err.message}`, { cause: err })) }
      socket.once('secureConnect', onConnect)
      socket.once('error', onError)
      opts.signal?.addEventListener('abort', onAbort, { once: true })
    })
  } catch (err) {
    socket.destroy()
    throw err
  }
  // defence in depth: the handshake can only succeed with our key, and TLS 1.3 PSK is what we asked for
  if (socket.getProtocol() !== 'TLSv1.3') { socket.destroy(); throw new FetchError(`bulk channel negotiated ${String(socket.getProtocol())}, not TLS 1.3`) }
  socket.setTimeout(IDLE_TIMEOUT_MS, () => { socket.destroy(new FetchError(`bulk channel to ${host}:${offer.port} went silent for ${IDLE_TIMEOUT_MS} ms`)) })
  return socket
}

/**
 * A socket's bytes as batches: everything received since the consumer last asked, without a
 * promise per TLS record (a 1 MiB block arrives as 64 of them). Reading pauses while more than
 * `maxBuffered` bytes wait, so a slow consumer pushes back on the provider.
 */
export function socketBatches (socket: Readable, maxBuffered = 8 << 20): AsyncIterable<Uint8ArrayList> {
  let pending = new Uint8ArrayList()
  let ended = false
  let failure: Error | undefined
  let wake: (() => void) | undefined
  const poke = (): void => { const w = wake; wake = undefined; w?.() }
  socket.on('data', (chunk: Buffer) => {
    pending.append(chunk)
    if (pending.byteLength >= maxBuffered) socket.pause()
    poke()
  })
  socket.on('end', () => { ended = true; poke() })
  socket.on('close', () => { ended = true; poke() })
  socket.on('error', (err: Error) => { failure ??= err; poke() })
  return {
    async * [Symbol.asyncIterator] () {
      for (;;) {
        if (pending.byteLength > 0) {
          const out = pending
          pending = new Uint8ArrayList()
          if (socket.isPaused()) socket.resume()
          yield out
          continue
        }
        if (failure !== undefined) throw new FetchError(`bulk channel failed: ${failure.message}`, { cause: failure })
        if (ended) return
        await new Promise<void>(resolve => { wake = resolve })
      }
    }
  }
}
