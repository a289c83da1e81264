// A small push-mode tar reader (POSIX.1-2001 ustar + pax extended headers, GNU long names),
// enough to read `docker save` archives while they stream past, without buffering entries.
// Bytes are fed with write(); every entry is announced to the visitor, which may return a sink
// for its data. Strict where it matters for us: header checksums, octal/base-256 sizes, pax
// record framing, size limits on metadata, and a proper end-of-archive (two zero blocks).
import { InvalidImageTarError } from './errors.ts'

const BLOCK = 512

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other'

export interface TarEntry {
  /** Path as stored (pax `path` / GNU long name applied), not normalized. */
  readonly name: string
  readonly type: TarEntryType
  /** The raw typeflag character. */
  readonly typeflag: string
  readonly size: number
  readonly mode: number
  readonly linkname: string
}

export interface TarEntrySink {
  data(chunk: Uint8Array): void
  end(): void
}

export interface TarVisitor {
  /** Called for every entry header; return a sink to receive its data, or undefined to skip it. */
  entry(e: TarEntry): TarEntrySink | undefined
}

export interface TarLimits {
  /** Largest pax header or GNU long name/link payload (default 1 MiB). */
  maxMetaBytes?: number
  /** Most entries in one archive (default 100000). */
  maxEntries?: number
}

/** Zero padding accepted after the end-of-archive marker (a tar record is 10 KiB by default). */
const MAX_TRAILING = 1 << 20

type State = 'header' | 'data' | 'meta' | 'padding' | 'zero' | 'end'

function fail(msg: string, offset: number): never {
  throw new InvalidImageTarError(`tar: ${msg} at byte ${offset}`)
}

const td = new TextDecoder('utf-8', { fatal: true })

function cstr(b: Uint8Array, start: number, len: number): string {
  let end = start
  while (end < start + len && b[end] !== 0) end++
  return td.decode(b.subarray(start, end))
}

/** Octal numeric field, or GNU base-256 when the high bit of the first byte is set. */
function num(b: Uint8Array, start: number, len: number, what: string, offset: number): number {
  if ((b[start] & 0x80) !== 0) {
    if ((b[start] & 0x40) !== 0) fail(`negative base-256 ${what}`, offset)
    let v = b[start] & 0x3f
    for (let i = start + 1; i < start + len; i++) {
      v = v * 256 + b[i]
      if (v > Number.MAX_SAFE_INTEGER) fail(`${what} too large`, offset)
    }
    return v
  }
  let i = start
  const end = start + len
  while (i < end && b[i] === 0x20) i++ // leading spaces
  let v = 0
  let digits = 0
  for (; i < end; i++) {
    const c = b[i]
    if (c === 0 || c === 0x20) break
    if (c < 0x30 || c > 0x37) fail(`invalid octal digit in ${what}`, offset)
    v = v * 8 + (c - 0x30)
    digits++
  }
  for (; i < end; i++) if (b[i] !== 0 && b[i] !== 0x20) fail(`garbage after ${what}`, offset)
  if (digits === 0 && what !== 'mode') return 0
  return v
}

function checksumOk(h: Uint8Array, offset: number): boolean {
  const stored = num(h, 148, 8, 'checksum', offset)
  let unsigned = 0
  let signed = 0
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]
    unsigned += c
    signed += c > 127 ? c - 256 : c
  }
  return stored === unsigned || stored === signed
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false
  return true
}

/** Parses pax extended header records: "<len> <key>=<value>\n", len counting the whole record. */
export function parsePax(b: Uint8Array, offset = 0): Map<string, string> {
  const out = new Map<string, string>()
  let p = 0
  while (p < b.length) {
    let sp = p
    while (sp < b.length && b[sp] >= 0x30 && b[sp] <= 0x39) sp++
    if (sp === p || sp >= b.length || b[sp] !== 0x20 || sp - p > 9) fail('malformed pax record length', offset + p)
    const len = Number(td.decode(b.subarray(p, sp)))
    if (len <= sp - p + 1 || p + len > b.length || b[p + len - 1] !== 0x0a) fail('malformed pax record', offset + p)
    const rec = b.subarray(sp + 1, p + len - 1)
    const eq = rec.indexOf(0x3d)
    if (eq <= 0) fail('pax record without key', offset + p)
    let key: string, value: string
    try {
      key = td.decode(rec.subarray(0, eq))
      value = td.decode(rec.subarray(eq + 1))
    } catch {
      fail('pax record is not UTF-8', offset + p)
    }
    out.set(key, value)
    p += len
  }
  return out
}

export class TarReader {
  private readonly visitor: TarVisitor
  private readonly maxMeta: number
  private readonly maxEntries: number
  private state: State = 'header'
  private readonly hdr = new Uint8Array(BLOCK)
  private hdrLen = 0
  private remaining = 0
  private padding = 0
  private sink: TarEntrySink | undefined
  private meta: { kind: 'pax' | 'paxGlobal' | 'longName' | 'longLink'; buf: Uint8Array; len: number } | undefined
  private pendingPax: Map<string, string> | undefined
  private pendingLongName: string | undefined
  private pendingLongLink: string | undefined
  private entries = 0
  /** Bytes consumed so far. */
  offset = 0
  /** Where the end-of-archive marker ended. */
  private endOffset = 0

  constructor(visitor: TarVisitor, limits: TarLimits = {}) {
    this.visitor = visitor
    this.maxMeta = limits.maxMetaBytes ?? 1 << 20
    this.maxEntries = limits.maxEntries ?? 100_000
  }

  /** True once the end-of-archive marker (two zero blocks) has been read. */
  get done(): boolean {
    return this.state === 'end'
  }

  write(chunk: Uint8Array): void {
    let p = 0
    while (p < chunk.length) {
      switch (this.state) {
        case 'header':
        case 'zero': {
          const n = Math.min(BLOCK - this.hdrLen, chunk.length - p)
          this.hdr.set(chunk.subarray(p, p + n), this.hdrLen)
          this.hdrLen += n
          p += n
          this.offset += n
          if (this.hdrLen === BLOCK) {
            this.hdrLen = 0
            this.header()
          }
          break
        }
        case 'data': {
          const n = Math.min(this.remaining, chunk.length - p)
          if (n > 0) this.sink?.data(chunk.subarray(p, p + n))
          this.remaining -= n
          p += n
          this.offset += n
          if (this.remaining === 0) this.endData()
          break
        }
        case 'meta': {
          const m = this.meta as NonNullable<TarReader['meta']> // set whenever state is 'meta'
          const n = Math.min(this.remaining, chunk.length - p)
          m.buf.set(chunk.subarray(p, p + n), m.len)
          m.len += n
          this.remaining -= n
          p += n
          this.offset += n
          if (this.remaining === 0) this.endMeta()
          break
        }
        case 'padding': {
          const n = Math.min(this.padding, chunk.length - p)
          this.padding -= n
          p += n
          this.offset += n
          if (this.padding === 0) this.state = 'header'
          break
        }
        case 'end': {
          // Only zero padding may follow the end-of-archive marker (writers pad to a record size,
          // 10 KiB by default); more than MAX_TRAILING is not padding (a 3 GiB file of zeros).
          for (; p < chunk.length; p++, this.offset++) {
            if (chunk[p] !== 0) fail('data after the end-of-archive marker', this.offset)
            if (this.offset - this.endOffset >= MAX_TRAILING)
              fail(`more than ${MAX_TRAILING >> 10} KiB of zeros after the end-of-archive marker`, this.offset)
          }
          break
        }
      }
    }
  }

  /** Declares the input complete; throws when the archive is truncated. */
  end(): void {
    if (this.state !== 'end')
      fail(
        this.state === 'zero'
          ? 'archive ends after a single zero block'
          : 'archive is truncated (no end-of-archive marker)',
        this.offset
      )
  }

  private header(): void {
    const h = this.hdr
    const at = this.offset - BLOCK
    if (isZero(h)) {
      if (this.state === 'zero') {
        this.state = 'end'
        this.endOffset = this.offset
        return
      }
      if (
        this.meta !== undefined ||
        this.pendingPax !== undefined ||
        this.pendingLongName !== undefined ||
        this.pendingLongLink !== undefined
      )
        fail('extended header without an entry', at)
      this.state = 'zero'
      return
    }
    if (this.state === 'zero') fail('a single zero block inside the archive', at)
    if (!checksumOk(h, at)) fail('header checksum mismatch (not a tar archive, or corrupted)', at)
    if (++this.entries > this.maxEntries) fail(`more than ${this.maxEntries} entries`, at)
    const magic = cstr(h, 257, 6)
    const ustar = magic === 'ustar'
    const gnu = magic === 'ustar ' || (h[257] === 0x75 && h[262] === 0x20)
    let name: string, linkname: string
    try {
      name = cstr(h, 0, 100)
      if (ustar && !gnu && h[345] !== 0) name = cstr(h, 345, 155) + '/' + name
      linkname = cstr(h, 157, 100)
    } catch {
      fail('header name is not UTF-8', at)
    }
    const typeflag = h[156] === 0 ? '0' : String.fromCharCode(h[156])
    let size = num(h, 124, 12, 'size', at)
    const mode = num(h, 100, 8, 'mode', at)

    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > this.maxMeta) fail(`extended header of ${size} bytes exceeds the limit of ${this.maxMeta}`, at)
      this.meta = {
        kind: typeflag === 'x' ? 'pax' : typeflag === 'g' ? 'paxGlobal' : typeflag === 'L' ? 'longName' : 'longLink',
        buf: new Uint8Array(size),
        len: 0
      }
      this.remaining = size
      this.padding = (BLOCK - (size % BLOCK)) % BLOCK
      if (size === 0) this.endMeta()
      else this.state = 'meta'
      return
    }

    const pax = this.pendingPax
    if (this.pendingLongName !== undefined) name = this.pendingLongName
    if (this.pendingLongLink !== undefined) linkname = this.pendingLongLink
    if (pax !== undefined) {
      const pp = pax.get('path')
      if (pp !== undefined) name = pp
      const pl = pax.get('linkpath')
      if (pl !== undefined) linkname = pl
      const ps = pax.get('size')
      if (ps !== undefined) {
        if (!/^[0-9]{1,16}$/.test(ps) || !Number.isSafeInteger(Number(ps))) fail('invalid pax size', at)
        size = Number(ps)
      }
    }
    this.pendingPax = undefined
    this.pendingLongName = undefined
    this.pendingLongLink = undefined

    const type: TarEntryType =
      typeflag === '0' || typeflag === '7'
        ? 'file'
        : typeflag === '5'
          ? 'directory'
          : typeflag === '2'
            ? 'symlink'
            : typeflag === '1'
              ? 'hardlink'
              : 'other'
    // Links, directories and devices carry no data, whatever the size field says (POSIX ustar).
    if (
      type === 'symlink' ||
      type === 'hardlink' ||
      type === 'directory' ||
      typeflag === '3' ||
      typeflag === '4' ||
      typeflag === '6'
    )
      size = 0
    this.sink = this.visitor.entry({ name, type, typeflag, size, mode, linkname })
    this.remaining = size
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK
    if (size === 0) this.endData()
    else this.state = 'data'
  }

  private endData(): void {
    this.sink?.end()
    this.sink = undefined
    this.state = this.padding > 0 ? 'padding' : 'header'
  }

  private endMeta(): void {
    const m = this.meta as NonNullable<TarReader['meta']> // set by header() before endMeta runs
    this.meta = undefined
    const at = this.offset
    if (m.kind === 'pax') this.pendingPax = parsePax(m.buf, at)
    else if (m.kind === 'paxGlobal')
      parsePax(m.buf, at) // validated, otherwise ignored (no global keys matter to us)
    else {
      let s: string
      try {
        s = cstr(m.buf, 0, m.buf.length)
      } catch {
        fail('GNU long name is not UTF-8', at)
      }
      if (m.kind === 'longName') this.pendingLongName = s
      else this.pendingLongLink = s
    }
    this.state = this.padding > 0 ? 'padding' : 'header'
  }
}

/**
 * Normalizes an archive path the way an extractor resolves it (POSIX clean: no `.`, `..` folded,
 * no leading or trailing `/`). Returns undefined for paths escaping the archive root.
 */
export function normalizeTarPath(p: string): string | undefined {
  const out: string[] = []
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue
    if (seg === '..') {
      if (out.length === 0) return undefined
      out.pop()
      continue
    }
    out.push(seg)
  }
  return out.join('/')
}
