// The node's IPFS store: Helia over a filesystem blockstore and datastore, on a libp2p host that
// talks to local/configured peers only (no bootstrap, DHT, autoNAT, UPnP, relay, routers or
// gateways). Images are imported as UnixFS files with raw leaves (IPIP-499 profile
// unixfs-v1-2025: CIDv1, 1 MiB chunks, 1024 links per node), so the same bytes give the same CID
// on every node. Fetching uses our CID-verified block stream (transfer.ts) and falls back to
// Helia's bitswap; both verify every block against its CID before it is stored or used.
import { access, mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { createHeliaLight, HeliaInit } from 'helia'
import { withBitswap } from '@helia/bitswap'
import type { UnixFS } from '@helia/unixfs'
import { importByteStream } from 'ipfs-unixfs-importer'
import { FsBlockstore } from 'blockstore-fs'
import { NextToLast } from 'blockstore-fs/sharding'
import { FsDatastore } from 'datastore-fs'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, PrivateKey, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { Logger } from '../encoding/log.ts'
import { silentLogger } from '../encoding/log.ts'
import { ImageTarInspector, type ImageTarInfo } from './image-tar.ts'
import {
  BLOCKS_PROTOCOL,
  askForBlocks,
  parseCid,
  readLocalFile,
  receiveDag,
  serveBlocks,
  type BlocksAnswer,
  type FetchProgress,
  type ReceiveOptions
} from './transfer.ts'
import { FrameReader } from '../encoding/frames.ts'
import { BulkServer, connectBulk, hostOf, socketBatches } from './bulk.ts'
import { createLocalLibp2p } from './libp2p.ts'
import { ContentMismatchError, FetchError, ProviderRefusedError } from './errors.ts'
import { InvalidInputError } from '../encoding/errors.ts'

export interface ImageStoreInit {
  /** Data directory: blocks/, data/ and (for an own libp2p host) peer.key. */
  readonly dir: string
  /** An existing libp2p host to share (the agent's); the caller starts and stops it. */
  readonly libp2p?: Libp2p
  /** Listen addresses when the store creates its own host (default /ip4/127.0.0.1/tcp/0). */
  readonly listen?: readonly string[]
  readonly logger?: Logger
  /**
   * Offer requesters the direct bulk channel for blocks (default true; see bulk.ts), optionally on
   * a fixed port (default an ephemeral one) and on given hosts (default those the libp2p host
   * announces).
   */
  readonly bulk?: boolean | { readonly port?: number; readonly hosts?: readonly string[] }
}

export interface AddProgress {
  readonly bytes: number
}

export interface AddResult {
  readonly cid: string
  readonly size: number
  /** What the archive is, computed while it was imported. */
  readonly image: ImageTarInfo
}

export interface FetchOptions {
  /** Multiaddrs (with /p2p/<peer id>) of peers that hold the content. */
  readonly providers?: readonly string[]
  /**
   * 'stream' (default): our verified block stream — over a direct bulk channel when the provider
   * offers one (bulk.ts), else over the libp2p stream — then bitswap; 'bitswap': bitswap only.
   */
  readonly via?: 'stream' | 'bitswap'
  /** Ask providers for the direct bulk channel (default true); false keeps blocks on libp2p. */
  readonly bulk?: boolean
  /** Bitswap only: give up when no block arrives for this long (default 30 s). */
  readonly stallTimeoutMs?: number
  /**
   * Keep the fetched blocks (default true): the content is then complete here, read from disk next
   * time and served to peers. false only verifies and yields them (the block stream writes
   * nothing; bitswap's blocks still land in Helia's blockstore, but the content is not marked
   * complete) — for a caller that keeps the bytes elsewhere, like Docker's image store.
   */
  readonly keep?: boolean
  readonly signal?: AbortSignal
  readonly onProgress?: (p: FetchProgress) => void
}

export interface StoredContent {
  readonly cid: string
  readonly size?: number
  readonly imageId?: string
  readonly storedAt?: number
}

export interface ImageStore {
  readonly peerId: string
  readonly libp2p: Libp2p
  /** Addresses peers can fetch from (with /p2p/<peer id>). */
  multiaddrs(): string[]
  /** Imports a `docker save` archive; one pass computes the CID and the image ID. */
  add(
    source: Uint8Array | AsyncIterable<Uint8Array>,
    opts?: { signal?: AbortSignal; onProgress?: (p: AddProgress) => void }
  ): Promise<AddResult>
  /** True when the whole DAG is held locally. */
  has(cid: string): Promise<boolean>
  /** The file's bytes from the local store only. */
  cat(cid: string, opts?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>
  /**
   * The file's bytes in order, from the local store or fetched from providers as verified blocks
   * arrive (stored, and marked complete at the end, unless opts.keep is false). A block not
   * matching its CID throws ContentMismatchError.
   */
  fetch(cid: string, opts?: FetchOptions): AsyncIterable<Uint8Array>
  /** Content held completely in this store. */
  list(): Promise<StoredContent[]>
  /** DAGs this store sent to peers: over the libp2p stream, over the bulk channel. */
  served(): { stream: number; bulk: number }
  /** Forgets that the content is complete (it is fetched again next time; blocks stay until removed). */
  unpin(cid: string): Promise<void>
  stop(): Promise<void>
}

type HeliaLight = ReturnType<typeof createHeliaLight>
type HeliaClass = new (init: HeliaInit & { name: string; version: string }) => HeliaLight

/**
 * Helia's class without helia's index: `import 'helia'` also loads @helia/http and @helia/libp2p
 * with their public-network defaults (webrtc, kad-dht, autoNAT, …) for createHelia, ~75 MB of RSS
 * in every agent although only createHeliaLight (= `new Helia(init)`) is used here. helia's
 * package.json exports only ".", so the sibling file is resolved from the entry point's URL; if a
 * future helia moves it, we fall back to the index (correct, just heavier).
 */
let heliaClass: Promise<(init: HeliaInit) => HeliaLight> | undefined
async function loadHeliaLight(): Promise<(init: HeliaInit) => HeliaLight> {
  heliaClass ??= (async () => {
    try {
      const entry = import.meta.resolve('helia')
      const [cls, ver] = await Promise.all([
        import(new URL('./helia.js', entry).href) as Promise<{ Helia?: HeliaClass }>,
        import(new URL('./version.js', entry).href) as Promise<{ name?: string; version?: string }>
      ])
      const Helia = cls.Helia
      if (typeof Helia === 'function' && typeof ver.name === 'string' && typeof ver.version === 'string') {
        const { name, version } = ver
        return (init: HeliaInit) => new Helia({ name, version, ...init })
      }
    } catch {
      /* the index below */
    }
    const { createHeliaLight } = await import('helia')
    return createHeliaLight
  })()
  return await heliaClass
}

/** Providers asked at once for a CID (see askFirst). */
const ASK_AT_ONCE = 4

/** A provider that said yes, with the stream it said it on. */
interface Asked {
  readonly ma: Multiaddr
  readonly stream: Stream
  readonly answer: BlocksAnswer
}

const IMPORT_OPTIONS = {
  profile: 'unixfs-v1-2025',
  rawLeaves: true,
  cidVersion: 1,
  reduceSingleLeafToSelf: true
} as const

async function loadOrCreateKey(path: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(new Uint8Array(await readFile(path)))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const key = await generateKeyPair('Ed25519')
    await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600 })
    return key
  }
}

/** The image store's own host when none is shared (moved to libp2p.ts; the tests import it from here). */
export { createLocalLibp2p }

class HeliaImageStore implements ImageStore {
  readonly libp2p: Libp2p
  private readonly ownsLibp2p: boolean
  private readonly helia: HeliaLight
  /** @helia/unixfs (~11 MB RSS) is loaded on the first bitswap fetch only. */
  private fs: UnixFS | undefined
  private readonly blocks: FsBlockstore
  private readonly blocksDir: string
  private readonly sharding: NextToLast
  private readonly completeDir: string
  private readonly log: Logger
  /** Offers the direct bulk channel to requesters (see bulk.ts); set once the host runs. */
  bulk: BulkServer | undefined
  servedOnStream = 0

  constructor(
    libp2p: Libp2p,
    ownsLibp2p: boolean,
    helia: HeliaLight,
    blocks: { store: FsBlockstore; dir: string; sharding: NextToLast; completeDir: string },
    log: Logger
  ) {
    this.libp2p = libp2p
    this.ownsLibp2p = ownsLibp2p
    this.helia = helia
    this.blocks = blocks.store
    this.blocksDir = blocks.dir
    this.sharding = blocks.sharding
    this.completeDir = blocks.completeDir
    this.log = log
  }

  get peerId(): string {
    return this.libp2p.peerId.toString()
  }

  multiaddrs(): string[] {
    return this.libp2p.getMultiaddrs().map(m => m.toString())
  }

  private readonly dirsMade = new Set<string>()

  /**
   * Writes a verified block straight into blockstore-fs' file layout (its put() goes through a
   * temp file, rename and mkdir per block). A torn write is harmless: content is marked complete
   * only after every write finished, and local reads verify each block against its CID again.
   */
  async putLocal(cid: CID, pieces: readonly Uint8Array[]): Promise<void> {
    const { dir, file } = this.sharding.encode(cid)
    const d = join(this.blocksDir, dir)
    if (!this.dirsMade.has(d)) {
      await mkdir(d, { recursive: true })
      this.dirsMade.add(d)
    }
    // The pieces as received (writev), not joined first: no 1 MiB copy per block.
    const fh = await open(join(d, file), 'w')
    try {
      let total = 0
      for (const p of pieces) total += p.byteLength
      const { bytesWritten } = await fh.writev(pieces, 0)
      if (bytesWritten !== total)
        await fh.write(Buffer.concat(pieces).subarray(bytesWritten), 0, total - bytesWritten, bytesWritten) // a short write: the rest
    } finally {
      await fh.close()
    }
  }

  async getLocal(cid: CID, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    signal?.throwIfAborted()
    // One read per block, straight from blockstore-fs' file layout (its get() streams 64 KiB pieces).
    const { dir, file } = this.sharding.encode(cid)
    try {
      // the Buffer itself: new Uint8Array(buffer) would copy the whole block
      return await readFile(join(this.blocksDir, dir, file))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async readInto(cid: CID, into: Uint8Array, signal?: AbortSignal): Promise<number | undefined> {
    signal?.throwIfAborted()
    const { dir, file } = this.sharding.encode(cid)
    let fh: Awaited<ReturnType<typeof open>>
    try {
      fh = await open(join(this.blocksDir, dir, file), 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    try {
      let n = 0
      for (;;) {
        // a regular file fills the buffer in one read; loop for the exception
        const { bytesRead } = await fh.read(into, n, into.byteLength - n, n)
        if (bytesRead === 0) return n
        n += bytesRead
        if (n === into.byteLength) return -1 // as big as the buffer: maybe bigger, get() it whole
      }
    } finally {
      await fh.close()
    }
  }

  async add(
    source: Uint8Array | AsyncIterable<Uint8Array>,
    opts: { signal?: AbortSignal; onProgress?: (p: AddProgress) => void } = {}
  ): Promise<AddResult> {
    const inspector = new ImageTarInspector()
    let bytes = 0
    const src = source instanceof Uint8Array ? [source] : source
    async function* tee(): AsyncGenerator<Uint8Array> {
      for await (const c of src) {
        opts.signal?.throwIfAborted()
        inspector.update(c)
        bytes += c.byteLength
        opts.onProgress?.({ bytes })
        yield c
      }
    }
    // Straight into the filesystem blockstore (Helia's wrapper would re-read and re-hash for pins).
    const { cid } = await importByteStream(tee(), this.blocks, { ...IMPORT_OPTIONS, signal: opts.signal } as Parameters<
      typeof importByteStream
    >[2])
    const image = inspector.finish()
    await this.markComplete(cid, { size: bytes, imageId: image.imageId })
    this.log.info('image added', { cid: cid.toString(), size: bytes, imageId: image.imageId })
    return { cid: cid.toString(), size: bytes, image }
  }

  /** Completeness markers instead of Helia pins: a pin re-reads and re-hashes every block. */
  private markerPath(cid: CID): string {
    return join(this.completeDir, cid.toV1().toString())
  }

  private async markComplete(cid: CID, meta: { size: number; imageId?: string }): Promise<void> {
    await writeFile(this.markerPath(cid), JSON.stringify({ ...meta, at: Date.now() }))
  }

  async list(): Promise<StoredContent[]> {
    const out: StoredContent[] = []
    for (const name of await readdir(this.completeDir)) {
      try {
        const m = JSON.parse(await readFile(join(this.completeDir, name), 'utf8')) as {
          size?: number
          imageId?: string
          at?: number
        }
        out.push({ cid: name, size: m.size, imageId: m.imageId, storedAt: m.at })
      } catch {
        out.push({ cid: name })
      }
    }
    return out
  }

  async isComplete(cid: CID): Promise<boolean> {
    try {
      await access(this.markerPath(cid))
      return true
    } catch {
      return false
    }
  }

  async has(cid: string): Promise<boolean> {
    return await this.isComplete(parseCid(cid))
  }

  async *cat(cid: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
    const root = parseCid(cid)
    if (!(await this.isComplete(root))) throw new FetchError(`${cid} is not in the local store`)
    yield* this.readLocal(root, opts)
  }

  private readLocal(root: CID, opts: { signal?: AbortSignal }): AsyncGenerator<Uint8Array> {
    return readLocalFile(root, { get: async (c, s) => await this.getLocal(c, s) }, opts)
  }

  async *fetch(cidStr: string, opts: FetchOptions = {}): AsyncGenerator<Uint8Array> {
    const cid = parseCid(cidStr)
    // one CID parse and one marker check, not has() then cat() repeating both
    if (await this.isComplete(cid)) {
      yield* this.readLocal(cid, opts)
      return
    }
    const providers = [...new Set(opts.providers ?? [])].map(a => {
      // a peer listed twice (deployment and chain) is asked once
      try {
        return multiaddr(a)
      } catch (err) {
        throw new InvalidInputError(`provider ${JSON.stringify(a)} is not a multiaddr`, { cause: err })
      }
    })
    const failures: string[] = []
    let refused = 0
    if (opts.via !== 'bitswap') {
      const failed = (ma: Multiaddr, err: unknown): void => {
        if (err instanceof ProviderRefusedError) refused++
        failures.push(`${ma.toString()}: ${(err as Error).message}`)
        this.log.debug('provider failed, trying others', { provider: ma.toString(), error: (err as Error).message })
      }
      const queue = [...providers]
      for (;;) {
        const asked = await this.askFirst(queue, cid, opts.bulk !== false, opts.signal, failed)
        if (asked === undefined) break
        let yielded = false
        try {
          for await (const chunk of this.streamFrom(asked, cid, opts)) {
            yielded = true
            yield chunk
          }
          return
        } catch (err) {
          // Content that does not match (or frames that break the protocol) is never retried
          // elsewhere mid-file: the caller already consumed part of it. A provider that fails
          // before its first block is skipped.
          if (
            yielded ||
            err instanceof ContentMismatchError ||
            err instanceof InvalidInputError ||
            opts.signal?.aborted === true
          )
            throw err
          failed(asked.ma, err)
        }
      }
      opts.signal?.throwIfAborted()
    }
    // Every provider speaks our protocol and said it lacks the content: bitswap would not find it either.
    if (providers.length > 0 && refused === providers.length)
      throw new FetchError(`no provider holds ${cidStr}: ${failures.join('; ')}`)
    // Bitswap: connect to the providers, then let Helia fetch (and verify) block by block,
    // giving up when no block arrives for stallTimeoutMs.
    let connected = 0
    for (const ma of providers) {
      try {
        await this.libp2p.dial(ma, { signal: opts.signal })
        connected++
      } catch (err) {
        failures.push(`${ma.toString()}: ${(err as Error).message}`)
      }
    }
    if (connected === 0)
      throw new FetchError(
        `no provider reachable for ${cidStr}${failures.length > 0 ? `: ${failures.join('; ')}` : ''}`
      )
    let bytes = 0
    let blocks = 0
    const stall = new AbortController()
    const stallMs = opts.stallTimeoutMs ?? 30_000
    let timer = setTimeout(() => {
      stall.abort()
    }, stallMs)
    const signal = opts.signal === undefined ? stall.signal : AbortSignal.any([opts.signal, stall.signal])
    try {
      if (this.fs === undefined) {
        const { unixfs } = await import('@helia/unixfs')
        this.fs = unixfs(this.helia)
      }
      for await (const chunk of this.fs.cat(cid, { signal })) {
        clearTimeout(timer)
        bytes += chunk.byteLength
        blocks++
        opts.onProgress?.({ bytes, blocks })
        yield chunk
        timer = setTimeout(() => {
          stall.abort()
        }, stallMs)
      }
    } catch (err) {
      if (opts.signal?.aborted === true) throw err
      if (stall.signal.aborted)
        throw new FetchError(
          `no block of ${cidStr} arrived over bitswap for ${stallMs} ms${failures.length > 0 ? ` (${failures.join('; ')})` : ''}`,
          { cause: err }
        )
      if (/hash|CID|multihash/i.test((err as Error).message))
        throw new ContentMismatchError(`content does not match ${cidStr}: ${(err as Error).message}`, { cause: err })
      throw new FetchError(`fetching ${cidStr} over bitswap failed: ${(err as Error).message}`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
    if (opts.keep !== false) await this.markComplete(cid, { size: bytes })
  }

  /**
   * Asks the providers in `queue` for `cid`, ASK_AT_ONCE at a time and in order, and returns the
   * first that answers yes; the ones still being asked then are cancelled and put back at the
   * front of `queue`, each one that failed is reported to `failed` and not put back. Undefined
   * when every provider failed. (In a network where most nodes do not hold an image, asking one
   * by one would pay a round trip — or a dial timeout for a peer that is down — per refusal.)
   */
  private async askFirst(
    queue: Multiaddr[],
    cid: CID,
    bulk: boolean,
    signal: AbortSignal | undefined,
    failed: (ma: Multiaddr, err: unknown) => void
  ): Promise<Asked | undefined> {
    return await new Promise<Asked | undefined>(resolve => {
      const running = new Map<Multiaddr, AbortController>()
      let settled = false
      const settle = (r: Asked | undefined): void => {
        settled = true
        resolve(r)
      }
      const start = (): void => {
        while (running.size < ASK_AT_ONCE && queue.length > 0) {
          const ma = queue.shift() as Multiaddr // length checked by the loop condition
          const cancel = new AbortController()
          running.set(ma, cancel)
          this.ask(
            ma,
            cid,
            bulk && hostOf(ma) !== undefined,
            signal === undefined ? cancel.signal : AbortSignal.any([signal, cancel.signal])
          ).then(
            r => {
              running.delete(ma)
              if (settled) {
                r.stream.abort(new Error('another provider answered first'))
                return
              }
              for (const [other, c] of [...running].reverse()) {
                c.abort()
                queue.unshift(other)
              }
              running.clear()
              settle({ ma, ...r })
            },
            (err: unknown) => {
              running.delete(ma)
              if (settled) return
              failed(ma, err)
              start()
              if (running.size === 0) settle(undefined)
            }
          )
        }
      }
      start()
      if (running.size === 0) settle(undefined)
    })
  }

  /**
   * The file from one provider over our block protocol, once it said yes (askFirst): reads the
   * blocks on the offered bulk channel, or when it offered none or the channel cannot be opened,
   * from a libp2p stream. Stores blocks (unless opts.keep is false) and marks the content
   * complete at the end.
   */
  private async *streamFrom(asked: Asked, cid: CID, opts: FetchOptions): AsyncGenerator<Uint8Array> {
    const keep = opts.keep !== false
    const receive = {
      store: keep
        ? async (c: CID, b: readonly Uint8Array[]) => {
            await this.putLocal(c, b)
          }
        : undefined,
      signal: opts.signal,
      onProgress: opts.onProgress
    }
    const ma = asked.ma
    let { stream, answer } = asked
    // a bulk offer comes only when askFirst asked for one, i.e. when `ma` names a host
    const host = answer.kind === 'bulk' ? hostOf(ma) : undefined
    if (answer.kind === 'bulk' && host !== undefined) {
      await stream.close().catch(() => {})
      const socket = await connectBulk(host, answer.offer, { signal: opts.signal }).catch((err: unknown) => {
        if (opts.signal?.aborted === true) throw err
        this.log.warn('bulk channel unavailable; fetching over the libp2p stream', {
          provider: ma.toString(),
          error: (err as Error).message
        })
        return undefined
      })
      if (socket !== undefined) {
        yield* this.receive(
          new FrameReader(socketBatches(socket)),
          cid,
          receive,
          () => {
            socket.destroy()
          },
          () => {
            socket.destroy()
          }
        )
        return
      }
      ;({ stream, answer } = await this.ask(ma, cid, false, opts.signal))
    }
    if (answer.kind !== 'blocks') throw new FetchError('provider offered a bulk channel that was not asked for') // askForBlocks refuses it first
    const s = stream
    yield* this.receive(
      answer.reader,
      cid,
      receive,
      () => {
        void s.close().catch(() => {})
      },
      err => {
        s.abort(err)
      }
    )
  }

  /** Opens a block-protocol stream to `ma` and asks for `cid`; the stream is aborted if asking fails or `signal` fires first. */
  private async ask(
    ma: Multiaddr,
    cid: CID,
    bulk: boolean,
    signal?: AbortSignal
  ): Promise<{ stream: Stream; answer: BlocksAnswer }> {
    const stream = await this.libp2p.dialProtocol(ma, BLOCKS_PROTOCOL, { signal })
    // a provider that never answers is let go when the signal fires (askFirst cancels the others)
    const onAbort = (): void => {
      stream.abort(signal?.reason instanceof Error ? signal.reason : new Error('asking was cancelled'))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return { stream, answer: await askForBlocks(stream, cid, { bulk, signal }) }
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Verified blocks from `reader` (a libp2p stream or a bulk socket): `fail` on an error, `done`
   * in any case; marks the content complete when all arrived and were stored.
   */
  private async *receive(
    reader: FrameReader,
    cid: CID,
    opts: ReceiveOptions,
    done: () => void,
    fail: (err: Error) => void
  ): AsyncGenerator<Uint8Array> {
    let size = 0
    let failed = false
    try {
      for await (const chunk of receiveDag(reader, cid, opts)) {
        size += chunk.byteLength
        yield chunk
      }
    } catch (err) {
      failed = true
      fail(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      if (!failed) done()
    }
    if (opts.store !== undefined) await this.markComplete(cid, { size })
  }

  served(): { stream: number; bulk: number } {
    return { stream: this.servedOnStream, bulk: this.bulk?.served ?? 0 }
  }

  async unpin(cid: string): Promise<void> {
    await rm(this.markerPath(parseCid(cid)), { force: true })
  }

  async stop(): Promise<void> {
    await this.libp2p.unhandle(BLOCKS_PROTOCOL).catch(() => {})
    await this.bulk?.stop()
    await this.helia.stop()
    if (this.ownsLibp2p) await this.libp2p.stop()
  }
}

/** The IP hosts of the host's TCP listen addresses: where the bulk channel listens, never wider. */
function announcedHosts(libp2p: Libp2p): string[] {
  const out: string[] = []
  for (const ma of libp2p.getMultiaddrs()) {
    const cs = ma.getComponents()
    if ((cs[0]?.name === 'ip4' || cs[0]?.name === 'ip6') && cs[1]?.name === 'tcp' && cs[0].value !== undefined)
      out.push(cs[0].value)
  }
  return out
}

export async function createImageStore(init: ImageStoreInit): Promise<ImageStore> {
  const log = init.logger ?? silentLogger('quorate:containers:store')
  await mkdir(init.dir, { recursive: true, mode: 0o700 })
  const sharding = new NextToLast()
  const blocksDir = join(init.dir, 'blocks')
  const blocks = new FsBlockstore(blocksDir, { shardingStrategy: sharding })
  const datastore = new FsDatastore(join(init.dir, 'data'))
  const completeDir = join(init.dir, 'complete')
  await mkdir(completeDir, { recursive: true })
  await blocks.open()
  await datastore.open()
  const owns = init.libp2p === undefined
  const libp2p =
    init.libp2p ??
    (await createLocalLibp2p({ listen: init.listen, privateKey: await loadOrCreateKey(join(init.dir, 'peer.key')) }))
  // Helia without its libp2p mixin (which would create its own host with public defaults):
  // no routers, bitswap over the given host, talking to peers we connect to explicitly.
  const helia = (await loadHeliaLight())({ blockstore: blocks, datastore, routers: [] })
  Object.defineProperty(helia, 'libp2p', { value: libp2p, enumerable: true })
  // The type asks for Helia's own libp2p mixin; the property defined above is what bitswap reads.
  withBitswap(helia as Parameters<typeof withBitswap>[0])
  const store = new HeliaImageStore(libp2p, owns, helia, { store: blocks, dir: blocksDir, sharding, completeDir }, log)
  try {
    await libp2p.start()
    await helia.start()
    const local = {
      get: async (c: CID, s?: AbortSignal) => await store.getLocal(c, s),
      readInto: async (c: CID, b: Uint8Array, s?: AbortSignal) => await store.readInto(c, b, s),
      complete: async (c: CID) => await store.isComplete(c)
    }
    const bulk = typeof init.bulk === 'object' ? init.bulk : {}
    store.bulk =
      init.bulk === false
        ? undefined
        : new BulkServer({
            blocks: local,
            hosts: () => (bulk.hosts !== undefined ? [...bulk.hosts] : announcedHosts(libp2p)),
            port: bulk.port,
            logger: log.child('bulk')
          })
    await libp2p.handle(
      BLOCKS_PROTOCOL,
      stream => {
        serveBlocks(stream, local, { bulk: store.bulk }).then(
          did => {
            if (did === 'blocks') store.servedOnStream++
          },
          (err: unknown) => {
            log.debug('serving blocks failed', { error: (err as Error).message })
            stream.abort(err instanceof Error ? err : new Error(String(err)))
          }
        )
      },
      { maxInboundStreams: 8 }
    )
  } catch (err) {
    await helia.stop().catch(() => {})
    if (owns) await Promise.resolve(libp2p.stop()).catch(() => {})
    throw err
  }
  return store
}
