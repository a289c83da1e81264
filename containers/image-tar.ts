// `docker save` archives: computing the Docker image ID while the bytes stream past (one pass),
// and building small image archives without a registry or base image (tests, benchmarks, demo).
//
// The Docker image ID is `sha256:` + sha256 of the image config JSON. manifest.json names the
// config, but may come after it in the archive, so every config candidate (*.json, blobs/…) up
// to a size limit is hashed as it streams and the decision is taken at the end. Extraction
// semantics are followed: the last entry for a path wins, and the config and manifest must be
// regular files not reached through a link, since `docker load` extracts and then opens them.
import { createHash, type Hash } from 'node:crypto'
import { TarReader, normalizeTarPath, type TarEntry, type TarEntrySink } from './tar.ts'
import { InvalidImageTarError } from './errors.ts'
import { TooLargeError } from '../encoding/errors.ts'
import { sha256, toHex, utf8 } from '../encoding/bytes.ts'

export interface ImageTarInfo {
  /** `sha256:<hex>` of the config JSON: the Docker image ID. */
  readonly imageId: string
  /** Path of the config inside the archive. */
  readonly configPath: string
  /** Tags the archive would apply on load (empty when saved by image ID). */
  readonly repoTags: readonly string[]
  readonly layers: readonly string[]
  /** Bytes of the archive. */
  readonly size: number
  readonly entries: number
}

export interface ImageTarLimits {
  /** Largest entry hashed as a config candidate (default 16 MiB; Docker's own limit is 8 MiB). */
  maxConfigBytes?: number
  /** Largest manifest.json (default 1 MiB). */
  maxManifestBytes?: number
}

interface Seen {
  kind: TarEntry['type']
  digest?: string
}

/** Feed the archive with update(); finish() checks the end of the archive and returns the image ID. */
export class ImageTarInspector {
  private readonly reader: TarReader
  private readonly seen = new Map<string, Seen>()
  private manifest: Uint8Array | undefined
  private entries = 0
  private size = 0
  private readonly maxConfig: number
  private readonly maxManifest: number

  constructor(limits: ImageTarLimits = {}) {
    this.maxConfig = limits.maxConfigBytes ?? 16 << 20
    this.maxManifest = limits.maxManifestBytes ?? 1 << 20
    this.reader = new TarReader({ entry: e => this.entry(e) })
  }

  update(chunk: Uint8Array): void {
    this.size += chunk.byteLength
    this.reader.write(chunk)
  }

  private entry(e: TarEntry): TarEntrySink | undefined {
    this.entries++
    const name = normalizeTarPath(e.name)
    if (name === undefined)
      throw new InvalidImageTarError(`tar: entry ${JSON.stringify(e.name)} escapes the archive root`)
    if (name === '') return undefined
    const rec: Seen = { kind: e.type }
    this.seen.set(name, rec) // the last entry for a path wins, as on extraction
    if (e.type !== 'file') return undefined
    if (name === 'manifest.json') {
      if (e.size > this.maxManifest)
        throw new InvalidImageTarError(`manifest.json of ${e.size} bytes exceeds the limit of ${this.maxManifest}`)
      const buf = new Uint8Array(e.size)
      let len = 0
      this.manifest = buf
      return {
        data: c => {
          buf.set(c, len)
          len += c.byteLength
        },
        end: () => {}
      }
    }
    if (e.size > this.maxConfig || !(name.endsWith('.json') || name.startsWith('blobs/'))) return undefined
    const h: Hash = createHash('sha256')
    return {
      data: c => {
        h.update(c)
      },
      end: () => {
        rec.digest = h.digest('hex')
      }
    }
  }

  finish(): ImageTarInfo {
    this.reader.end()
    const mf = this.manifest
    if (mf === undefined || this.seen.get('manifest.json')?.kind !== 'file')
      throw new InvalidImageTarError('not a docker save archive: manifest.json is missing')
    let parsed: unknown
    try {
      parsed = JSON.parse(utf8.decode(mf))
    } catch (err) {
      throw new InvalidImageTarError('manifest.json is not valid JSON', { cause: err })
    }
    if (!Array.isArray(parsed) || parsed.length !== 1)
      throw new InvalidImageTarError(
        `manifest.json must describe exactly one image (found ${Array.isArray(parsed) ? parsed.length : 'no list'})`
      )
    const m = parsed[0] as { Config?: unknown; RepoTags?: unknown; Layers?: unknown }
    if (typeof m !== 'object' || m === null || typeof m.Config !== 'string')
      throw new InvalidImageTarError('manifest.json: Config is missing')
    const repoTags = m.RepoTags === null || m.RepoTags === undefined ? [] : m.RepoTags
    if (!Array.isArray(repoTags) || !repoTags.every(x => typeof x === 'string'))
      throw new InvalidImageTarError('manifest.json: RepoTags must be a list of strings')
    if (!Array.isArray(m.Layers) || !m.Layers.every(x => typeof x === 'string'))
      throw new InvalidImageTarError('manifest.json: Layers must be a list of strings')
    const configPath = normalizeTarPath(m.Config)
    if (configPath === undefined || configPath === '')
      throw new InvalidImageTarError(
        `manifest.json: Config ${JSON.stringify(m.Config)} is not a path inside the archive`
      )
    this.checkNoLinks('manifest.json')
    this.checkNoLinks(configPath)
    const cfg = this.seen.get(configPath)
    if (cfg === undefined || cfg.kind !== 'file')
      throw new InvalidImageTarError(`config ${configPath} named by manifest.json is not a file in the archive`)
    if (cfg.digest === undefined)
      throw new InvalidImageTarError(
        `config ${configPath} is larger than ${this.maxConfig} bytes or not a config candidate`
      )
    return {
      imageId: `sha256:${cfg.digest}`,
      configPath,
      repoTags: repoTags as string[],
      layers: m.Layers as string[],
      size: this.size,
      entries: this.entries
    }
  }

  /** No component of `path` (nor the path itself) may end up a link after extraction. */
  private checkNoLinks(path: string): void {
    const parts = path.split('/')
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/')
      const k = this.seen.get(prefix)?.kind
      if (k === 'symlink' || k === 'hardlink')
        throw new InvalidImageTarError(
          `${path} is reached through a link (${prefix}); refusing an archive that docker load would resolve differently`
        )
      if (i < parts.length && k !== undefined && k !== 'directory')
        throw new InvalidImageTarError(`${prefix} is not a directory but ${path} lies below it`)
    }
  }
}

/** One-shot helper over a whole buffer or stream. */
export async function inspectImageTar(
  source: Uint8Array | AsyncIterable<Uint8Array>,
  limits?: ImageTarLimits
): Promise<ImageTarInfo> {
  const ins = new ImageTarInspector(limits)
  if (source instanceof Uint8Array) ins.update(source)
  else for await (const c of source) ins.update(c)
  return ins.finish()
}

// ---- building archives ----------------------------------------------------------------------

export interface TarFile {
  readonly path: string
  /** Absent for directories. */
  readonly content?: Uint8Array
  readonly mode?: number
  readonly type?: 'file' | 'directory' | 'symlink'
  readonly linkname?: string
}

function octal(h: Uint8Array, off: number, len: number, v: number): void {
  const s = v.toString(8).padStart(len - 1, '0')
  if (s.length > len - 1) throw new TooLargeError(`tar: value ${v} does not fit ${len - 1} octal digits`)
  for (let i = 0; i < s.length; i++) h[off + i] = s.charCodeAt(i)
  h[off + len - 1] = 0
}

const te = new TextEncoder()

function ustarHeader(name: string, size: number, mode: number, typeflag: string, linkname = ''): Uint8Array {
  const h = new Uint8Array(512)
  let n = te.encode(name)
  let prefix = new Uint8Array(0)
  if (n.length > 100) {
    const cut = name.lastIndexOf('/', name.length - 1)
    const pre = te.encode(name.slice(0, cut))
    const rest = te.encode(name.slice(cut + 1))
    if (cut <= 0 || pre.length > 155 || rest.length > 100)
      throw new TooLargeError(`tar: path too long for ustar: ${name}`)
    prefix = pre
    n = rest
  }
  h.set(n, 0)
  octal(h, 100, 8, mode)
  octal(h, 108, 8, 0)
  octal(h, 116, 8, 0)
  octal(h, 124, 12, size)
  octal(h, 136, 12, 0)
  h[156] = typeflag.charCodeAt(0)
  h.set(te.encode(linkname).subarray(0, 100), 157)
  h.set(te.encode('ustar\u0000'), 257)
  h.set(te.encode('00'), 263)
  h.set(prefix, 345)
  for (let i = 148; i < 156; i++) h[i] = 0x20
  let sum = 0
  for (const c of h) sum += c
  octal(h, 148, 7, sum)
  h[155] = 0x20
  return h
}

/** Builds a ustar archive (all files in memory; meant for small test images and the layer of big ones). */
export function buildTar(files: readonly TarFile[]): Uint8Array {
  const parts: Uint8Array[] = []
  for (const f of files) {
    const type = f.type ?? (f.content === undefined ? 'directory' : 'file')
    const body = type === 'file' ? (f.content ?? new Uint8Array(0)) : new Uint8Array(0)
    const name = type === 'directory' && !f.path.endsWith('/') ? f.path + '/' : f.path
    parts.push(
      ustarHeader(
        name,
        body.length,
        f.mode ?? (type === 'directory' ? 0o755 : 0o644),
        type === 'file' ? '0' : type === 'directory' ? '5' : '2',
        f.linkname
      )
    )
    if (body.length > 0) {
      parts.push(body)
      const pad = (512 - (body.length % 512)) % 512
      if (pad > 0) parts.push(new Uint8Array(pad))
    }
  }
  parts.push(new Uint8Array(1024))
  const b = Buffer.concat(parts)
  // A plain Uint8Array view: Buffer#slice would share memory where callers expect a copy.
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

export interface ImageSpec {
  /** Files of the single layer (root filesystem). */
  readonly files: readonly TarFile[]
  readonly cmd?: readonly string[]
  readonly entrypoint?: readonly string[]
  readonly env?: readonly string[]
  readonly user?: string
  readonly workingDir?: string
  readonly labels?: Readonly<Record<string, string>>
  /** 'oci': blobs/sha256/… (docker ≥ 25 save); 'legacy': <id>.json and <layer>/layer.tar. */
  readonly layout?: 'oci' | 'legacy'
  readonly repoTags?: readonly string[]
}

export interface BuiltImage {
  readonly tar: Uint8Array
  /** Docker image ID: `sha256:` + sha256(config JSON). */
  readonly imageId: string
  readonly config: Uint8Array
}

/** Builds a one-layer `docker save` archive; `docker load` accepts it as is (no registry, no base image). */
export function buildImageTar(spec: ImageSpec): BuiltImage {
  const layer = buildTar(spec.files)
  const diffId = toHex(sha256(layer))
  const config = te.encode(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        Cmd: spec.cmd,
        Entrypoint: spec.entrypoint,
        Env: spec.env ?? ['PATH=/bin'],
        User: spec.user,
        WorkingDir: spec.workingDir ?? '/',
        Labels: spec.labels ?? {}
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [{ created_by: 'quorate buildImageTar' }]
    })
  )
  const configHex = toHex(sha256(config))
  const layout = spec.layout ?? 'oci'
  const configPath = layout === 'oci' ? `blobs/sha256/${configHex}` : `${configHex}.json`
  const layerPath = layout === 'oci' ? `blobs/sha256/${diffId}` : `${diffId}/layer.tar`
  const manifest = te.encode(
    JSON.stringify([{ Config: configPath, RepoTags: spec.repoTags ?? null, Layers: [layerPath] }])
  )
  const files: TarFile[] =
    layout === 'oci'
      ? [
          { path: 'blobs' },
          { path: 'blobs/sha256' },
          { path: layerPath, content: layer },
          { path: configPath, content: config },
          { path: 'manifest.json', content: manifest }
        ]
      : [
          { path: diffId },
          { path: layerPath, content: layer },
          { path: configPath, content: config },
          { path: 'manifest.json', content: manifest }
        ]
  return { tar: buildTar(files), imageId: `sha256:${configHex}`, config }
}
