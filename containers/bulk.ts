// The bulk channel: a provider's block frames on a direct TCP connection instead of the libp2p
// stream that asked for them (transfer.ts). The libp2p stream stays the place where peers are
// authenticated: over it the provider hands the requester a one-time ticket (16-byte id, 32-byte
// secret, valid for seconds, for one root), and the requester opens the channel by presenting it.
//
//   requester → provider: id (16 bytes) ‖ secret (32 bytes)
//   provider → requester: 0x01 (ticket taken), then the block frames of the DAG; or it closes
//
// The channel is not encrypted, on purpose. What it carries is public and self-certifying: the
// block protocol serves any complete DAG to any peer that asks, and the requester trusts no byte
// until it hashed to the CID it expected (every block, exactly as on the libp2p stream). So TLS
// would add no integrity the CIDs do not give and no secrecy the protocol does not already give
// away; what it cost was measured: ~130 ms of CPU per 200 MB on the two sides together and ~10 %
// on a gated launch (bench/containers.ts, docs/STATUS.md) — P2P image distributors (Kraken,
// Dragonfly, Spegel) make the same choice, plain transport with digest checks. An observer on the
// path sees which image moves; one that also alters bytes makes the fetch fail (as it could by
// dropping packets). A stolen ticket yields only public content, once; the requester then fetches
// over the libp2p stream. If images ever get access control, this channel needs encryption again.
//
// The provider listens lazily (on the first offer), on the IP hosts its libp2p host announces,
// never wider. A requester connects to the host it dialed over libp2p and the offered port, so a
// provider cannot point it anywhere else.
import { createServer, connect, type Server, type Socket } from 'node:net'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { CID } from 'multiformats/cid'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Readable } from 'node:stream'
import { sendDag, type BulkOffer, type BulkProvider, type LocalBlocks } from './transfer.ts'
import { FetchError } from './errors.ts'
import { StreamClosedError } from '../encoding/frames.ts'
import { silentLogger, type Logger } from '../encoding/log.ts'

/** What the requester sends first: the ticket's id and secret. */
const ID_BYTES = 16
const SECRET_BYTES = 32
const TICKET_BYTES = ID_BYTES + SECRET_BYTES
/** The provider's answer to a valid ticket, before the first block frame. */
const TICKET_TAKEN = 0x01
/** How long an offer can be taken up, by default. */
const TICKET_TTL_MS = 10_000
/** Offers not yet taken up, at most (a peer asking again and again cannot grow this). */
const MAX_TICKETS = 64
/** How long a requester waits for its ticket to be taken. */
const HANDSHAKE_TIMEOUT_MS = 5_000
/** How long a connection may take to present its ticket (a requester sends it with the connect). */
const TICKET_TIMEOUT_MS = 2_000
/** Raw leaves up to this size are read into pooled buffers (our importer makes 1 MiB leaves). */
const LEAF_BUFFER = (1 << 20) + 1
const POOLED_BUFFERS = 32
const RAW = 0x55
/** A requester that stops reading for this long is dropped. */
const IDLE_TIMEOUT_MS = 30_000

interface Ticket {
  readonly secret: Buffer
  readonly root: CID
  readonly expires: number
}

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
  /** How long a connection may take to present its ticket (default 2 s). */
  readonly ticketTimeoutMs?: number
  /** Connections served at once (default 8). */
  readonly maxConnections?: number
}

/** The provider side: offers one-time tickets and streams the offered DAG to whoever presents one. */
export class BulkServer implements BulkProvider {
  readonly #init: BulkServerInit
  readonly #log: Logger
  readonly #tickets = new Map<string, Ticket>()
  readonly #sockets = new Set<Socket>()
  #servers: Promise<{ port: number; servers: Server[] } | undefined> | undefined
  #stopped = false
  #served = 0
  /** Read buffers for raw leaves, reused once the socket has taken their bytes. */
  readonly #pool = new BufferPool(LEAF_BUFFER, POOLED_BUFFERS)

  readonly #now: () => number

  constructor(init: BulkServerInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
    this.#log = init.logger ?? silentLogger('quorate:containers:bulk')
  }

  async offer(root: CID): Promise<BulkOffer | undefined> {
    if (this.#stopped) return undefined
    this.#servers ??= this.#listen()
    const listening = await this.#servers
    if (listening === undefined) return undefined
    const now = this.#now()
    for (const [id, t] of this.#tickets) if (t.expires <= now) this.#tickets.delete(id)
    if (this.#tickets.size >= MAX_TICKETS) return undefined // the requester falls back to the libp2p stream
    const id = randomBytes(ID_BYTES)
    const secret = randomBytes(SECRET_BYTES)
    this.#tickets.set(id.toString('hex'), { secret, root, expires: now + (this.#init.ticketTtlMs ?? TICKET_TTL_MS) })
    return { port: listening.port, id: new Uint8Array(id), key: new Uint8Array(secret) }
  }

  /** Listens on every announced host with one port; undefined (no bulk offers) when none works. */
  async #listen(): Promise<{ port: number; servers: Server[] } | undefined> {
    const hosts = [...new Set(this.#init.hosts())]
    const servers: Server[] = []
    let port = this.#init.port ?? 0
    for (const host of hosts) {
      const server = this.#createServer()
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen(port, host, () => {
            server.off('error', reject)
            resolve()
          })
        })
      } catch (err) {
        this.#log.warn('bulk channel cannot listen on a host; peers dialing it use the libp2p stream', {
          host,
          port,
          error: (err as Error).message
        })
        continue
      }
      const addr = server.address()
      if (port === 0 && typeof addr === 'object' && addr !== null) port = addr.port
      servers.push(server)
    }
    if (servers.length === 0) return undefined
    if (this.#stopped) {
      for (const s of servers) s.close()
      return undefined
    }
    this.#log.debug('bulk channel listening', { hosts, port })
    return { port, servers }
  }

  #createServer(): Server {
    const server = createServer(socket => {
      void this.#accept(socket)
    })
    server.maxConnections = this.#init.maxConnections ?? 8
    return server
  }

  /** Reads the ticket (exactly TICKET_BYTES, within the ticket timeout); serves its root or closes. */
  async #accept(socket: Socket): Promise<void> {
    this.#sockets.add(socket)
    socket.on('error', () => {}) // reported through the read or write that fails
    try {
      const presented = await readPrefix(socket, TICKET_BYTES, this.#init.ticketTimeoutMs ?? TICKET_TIMEOUT_MS)
      // exactly the ticket: bytes already behind it (put back by readPrefix) refuse it too
      const root = presented === undefined ? undefined : this.#take(presented, socket.readableLength === 0)
      if (root === undefined) {
        this.#log.debug('bulk ticket refused', { from: socket.remoteAddress })
        socket.destroy()
        return
      }
      await this.#serve(socket, root)
    } finally {
      this.#sockets.delete(socket)
    }
  }

  /** The root of a valid, unexpired ticket; the ticket is used up whether it was valid or not. */
  #take(presented: Buffer, alone: boolean): CID | undefined {
    const id = presented.subarray(0, ID_BYTES).toString('hex')
    const t = this.#tickets.get(id)
    if (t === undefined) return undefined
    this.#tickets.delete(id) // one use, whatever happens next
    if (!alone || t.expires <= this.#now() || !timingSafeEqual(t.secret, presented.subarray(ID_BYTES))) return undefined
    return t.root
  }

  async #serve(socket: Socket, root: CID): Promise<void> {
    socket.setTimeout(IDLE_TIMEOUT_MS, () => {
      socket.destroy(new Error('requester stopped reading'))
    })
    // The requester sends nothing after its ticket: a byte more ends the channel.
    socket.once('data', () => {
      socket.destroy(new Error('requester sent data after its ticket'))
    })
    socket.resume()
    const pool = this.#pool
    const blocks = this.#init.blocks
    const pooled: LocalBlocks = {
      get: async (cid, signal) => {
        // raw leaves only: a dag-pb node's parsed links are views of its bytes, which must stay
        if (blocks.readInto === undefined || cid.code !== RAW) return await blocks.get(cid, signal)
        const buf = pool.acquire()
        const n = await blocks.readInto(cid, buf, signal).catch((err: unknown) => {
          pool.release(buf)
          throw err
        })
        if (n === undefined || n < 0) {
          pool.release(buf)
          return n === undefined ? undefined : await blocks.get(cid, signal)
        }
        return buf.subarray(0, n)
      }
    }
    try {
      socket.write(Uint8Array.of(TICKET_TAKEN))
      await sendDag(
        async f => {
          await writeFrame(socket, f, view => {
            pool.release(view)
          })
        },
        root,
        pooled
      )
      await new Promise<void>(resolve => {
        socket.end(resolve)
      })
      this.#served++
    } catch (err) {
      this.#log.debug('serving a bulk channel failed', { root: root.toString(), error: (err as Error).message })
      socket.destroy()
    }
  }

  /** DAGs sent whole over bulk channels so far. */
  get served(): number {
    return this.#served
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#tickets.clear()
    for (const s of this.#sockets) s.destroy()
    const listening = await this.#servers?.catch(() => undefined)
    await Promise.all(
      (listening?.servers ?? []).map(async s => {
        await new Promise<void>(resolve => {
          s.close(() => {
            resolve()
          })
        })
      })
    )
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
  constructor(size: number, keep: number) {
    this.#size = size
    this.#keep = keep
  }
  acquire(): Buffer {
    const b = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#size)
    this.#mine.add(b.buffer)
    return b
  }

  /** Takes back the buffer behind a view it handed out; ignores anything else. */
  release(view: Uint8Array): void {
    if (!this.#mine.has(view.buffer) || this.#free.length >= this.#keep) return
    this.#mine.delete(view.buffer)
    this.#free.push(Buffer.from(view.buffer, 0, this.#size))
  }
}

/**
 * Writes one frame's pieces in one go (corked), then waits while the socket's buffer is full.
 * `written` gets each piece back once the socket no longer needs it.
 */
async function writeFrame(socket: Socket, f: Uint8ArrayList, written?: (piece: Uint8Array) => void): Promise<void> {
  if (socket.destroyed) throw new StreamClosedError('bulk channel closed')
  socket.cork()
  let ok = true
  for (const piece of f)
    ok = socket.write(
      piece,
      written === undefined
        ? undefined
        : () => {
            written(piece)
          }
    )
  socket.uncork()
  if (ok) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      socket.off('drain', onDrain)
      socket.off('close', onClose)
      if (err !== undefined) reject(err)
      else resolve()
    }
    const onDrain = (): void => {
      done()
    }
    const onClose = (): void => {
      done(new StreamClosedError('bulk channel closed'))
    }
    socket.once('drain', onDrain)
    socket.once('close', onClose)
  })
}

/** The IP host of a multiaddr (/ip4, /ip6, /dns*), where a requester connects for a bulk channel. */
export function hostOf(ma: Multiaddr): string | undefined {
  for (const c of ma.getComponents()) {
    if (c.name === 'ip4' || c.name === 'ip6' || c.name === 'dns' || c.name === 'dns4' || c.name === 'dns6')
      return c.value
  }
  return undefined
}

/**
 * The first `n` bytes a socket receives, or undefined when it closes, fails or stays silent for
 * `timeoutMs` first. Bytes after them are put back, and the socket is left paused.
 */
export async function readPrefix(
  socket: Socket,
  n: number,
  timeoutMs: number,
  signal?: AbortSignal
): Promise<Buffer | undefined> {
  return await new Promise<Buffer | undefined>((resolve, reject) => {
    const got: Buffer[] = []
    let have = 0
    const finish = (out: Buffer | undefined, err?: Error): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.off('data', onData)
      socket.off('end', onGone)
      socket.off('close', onGone)
      socket.off('error', onGone)
      socket.pause()
      if (err !== undefined) reject(err)
      else resolve(out)
    }
    const onData = (chunk: Buffer): void => {
      got.push(chunk)
      have += chunk.byteLength
      if (have < n) return
      const all = got.length === 1 ? chunk : Buffer.concat(got)
      finish(all.subarray(0, n)) // detached and paused first: an unshift on a flowing socket emits at once
      if (all.byteLength > n) socket.unshift(all.subarray(n))
    }
    const onGone = (): void => {
      finish(undefined)
    }
    const onAbort = (): void => {
      finish(undefined, signal?.reason instanceof Error ? signal.reason : new FetchError('aborted'))
    }
    const timer = setTimeout(onGone, timeoutMs)
    socket.on('data', onData)
    socket.once('end', onGone)
    socket.once('close', onGone)
    socket.once('error', onGone)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * The requester side: connects to the offered channel (on the host it dialed over libp2p),
 * presents the ticket and returns the socket once the provider took it. The caller reads block
 * frames from it (transfer.ts receiveDag, through socketBatches) and destroys it.
 */
export async function connectBulk(
  host: string,
  offer: BulkOffer,
  opts: { signal?: AbortSignal; timeoutMs?: number } = {}
): Promise<Socket> {
  opts.signal?.throwIfAborted()
  if (offer.id.byteLength !== ID_BYTES || offer.key.byteLength !== SECRET_BYTES)
    throw new FetchError('malformed bulk offer: ticket of the wrong size')
  const where = `bulk channel to ${host}:${offer.port}`
  const timeoutMs = opts.timeoutMs ?? HANDSHAKE_TIMEOUT_MS
  const socket = connect({ host, port: offer.port })
  let failure: Error | undefined
  socket.once('error', (err: Error) => {
    failure ??= err
  })
  socket.setNoDelay(true)
  socket.write(Buffer.concat([offer.id, offer.key]))
  let answer: Buffer | undefined
  try {
    answer = await readPrefix(socket, 1, timeoutMs, opts.signal)
  } catch (err) {
    socket.destroy()
    throw err
  }
  if (answer?.[0] !== TICKET_TAKEN) {
    socket.destroy()
    if (failure !== undefined) throw new FetchError(`${where} failed: ${failure.message}`, { cause: failure })
    throw new FetchError(
      answer === undefined
        ? `${where}: the provider did not take the ticket (closed, or nothing within ${timeoutMs} ms)`
        : `${where}: the provider answered 0x${answer[0].toString(16)}, not 0x01`
    )
  }
  socket.setTimeout(IDLE_TIMEOUT_MS, () => {
    socket.destroy(new FetchError(`${where} went silent for ${IDLE_TIMEOUT_MS} ms`))
  })
  return socket
}

/**
 * A socket's bytes as batches: everything received since the consumer last asked, without a
 * promise per chunk the socket reads (a 1 MiB block arrives in 16 or more). Reading pauses while more than
 * `maxBuffered` bytes wait, so a slow consumer pushes back on the provider.
 */
export function socketBatches(socket: Readable, maxBuffered = 8 << 20): AsyncIterable<Uint8ArrayList> {
  let pending = new Uint8ArrayList()
  let ended = false
  let failure: Error | undefined
  let wake: (() => void) | undefined
  const poke = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  socket.on('data', (chunk: Buffer) => {
    pending.append(chunk)
    if (pending.byteLength >= maxBuffered) socket.pause()
    poke()
  })
  socket.on('end', () => {
    ended = true
    poke()
  })
  socket.on('close', () => {
    ended = true
    poke()
  })
  socket.on('error', (err: Error) => {
    failure ??= err
    poke()
  })
  socket.resume() // a socket handed over paused (readPrefix) flows from here
  return {
    async *[Symbol.asyncIterator]() {
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
        await new Promise<void>(resolve => {
          wake = resolve
        })
      }
    }
  }
}
