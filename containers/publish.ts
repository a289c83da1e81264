// Publishing: a local Docker image (saved by image ID) or a `docker save` archive is added to
// the IPFS store — one pass computes the CID and the image ID — and `image.publish
// {name, digest, cid, size}` is recorded on chain, signed by the publisher (ImagePublisher,
// wired to chain/client by the caller).
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import type Docker from 'dockerode'
import { InvalidInputError } from '../encoding/errors.ts'
import { DockerError, InvalidImageTarError } from './errors.ts'
import type { ImageStore } from './store.ts'

/** The chain, as publishing sees it. */
export interface ImagePublisher {
  publishImage(
    rec: { readonly name: string; readonly digest: string; readonly cid: string; readonly size: number },
    opts?: { signal?: AbortSignal }
  ): Promise<{ readonly txHash?: string; readonly height?: number }>
}

export interface PublishProgress {
  readonly phase: 'read' | 'publish'
  readonly bytes: number
  readonly total?: number
}

export interface PublishRequest {
  /** Path of a `docker save` archive, a local Docker image (name, tag or ID), or the bytes. */
  readonly source: string | Uint8Array | AsyncIterable<Uint8Array>
  readonly name: string
  /** Needed when `source` names a Docker image. */
  readonly docker?: Pick<Docker, 'getImage'>
  readonly signal?: AbortSignal
  readonly onProgress?: (p: PublishProgress) => void
}

export interface PublishResult {
  readonly name: string
  readonly digest: string
  readonly cid: string
  readonly size: number
  readonly txHash?: string
  readonly height?: number
}

const NAME_RE = /^[a-z0-9][a-z0-9._/:-]{0,127}$/

export function checkImageName(name: string): void {
  if (!NAME_RE.test(name))
    throw new InvalidInputError(
      `image name ${JSON.stringify(name)} is invalid: 1–128 characters of a-z 0-9 . _ / : -, starting with a letter or digit`
    )
}

/** Opens the archive: a file when the path exists, otherwise `docker save` of the image by its ID. */
export async function imageSourceStream(
  source: string,
  docker?: Pick<Docker, 'getImage'>
): Promise<{ stream: AsyncIterable<Uint8Array>; total?: number; from: 'file' | 'docker' }> {
  const st = await stat(source).catch(() => undefined)
  if (st !== undefined) {
    if (!st.isFile()) throw new InvalidInputError(`${source} is not a file`)
    return { stream: createReadStream(source, { highWaterMark: 1 << 20 }), total: st.size, from: 'file' }
  }
  if (docker === undefined)
    throw new InvalidInputError(`${source} is neither a file nor (without Docker) a local image`)
  // Image references never start with / or . (and dockerode mangles such paths into host names).
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$/.test(source))
    throw new InvalidInputError(`${source}: no such file, and not a Docker image reference`)
  let id: string
  let size: number | undefined
  try {
    const info = await docker.getImage(source).inspect()
    id = info.Id
    size = info.Size
  } catch (err) {
    throw new InvalidInputError(`${source} is neither a file nor a local Docker image`, { cause: err })
  }
  try {
    // Saved by ID so the archive carries no RepoTags (nodes refuse archives that would tag images).
    const stream = (await docker.getImage(id).get()) as Readable
    return { stream, total: size, from: 'docker' }
  } catch (err) {
    throw new DockerError(`docker save ${id} failed: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Adds the archive to the store and records it on chain. A refused publish (an archive that would
 * tag images, a transaction the chain refuses, an abort) leaves the store as it was: content that
 * was not complete in the store before is unpinned again.
 */
export async function publishImage(
  store: Pick<ImageStore, 'add' | 'list' | 'unpin'>,
  publisher: ImagePublisher | undefined,
  req: PublishRequest
): Promise<PublishResult> {
  checkImageName(req.name)
  let stream: Uint8Array | AsyncIterable<Uint8Array>
  let total: number | undefined
  if (typeof req.source === 'string') ({ stream, total } = await imageSourceStream(req.source, req.docker))
  else {
    stream = req.source
    total = req.source instanceof Uint8Array ? req.source.byteLength : undefined
  }
  const held = new Set((await store.list()).map(c => c.cid))
  const added = await store.add(stream, {
    signal: req.signal,
    onProgress: p => req.onProgress?.({ phase: 'read', bytes: p.bytes, total })
  })
  try {
    if (added.image.repoTags.length > 0) {
      throw new InvalidImageTarError(
        `the archive carries RepoTags (${added.image.repoTags.join(', ')}), which would tag images on every node; save it by image ID (docker save <id>) or publish the local image by name`
      )
    }
    const rec = { name: req.name, digest: added.image.imageId, cid: added.cid, size: added.size }
    if (publisher === undefined) return rec
    req.onProgress?.({ phase: 'publish', bytes: added.size, total: added.size })
    const tx = await publisher.publishImage(rec, { signal: req.signal })
    return { ...rec, ...tx }
  } catch (err) {
    if (!held.has(added.cid)) await store.unpin(added.cid).catch(() => {})
    throw err
  }
}
