// Files a user names (a command's argument, a config option) are outside input: bounded before
// they are read (STYLE.md §17). Such a path must name a regular file — a FIFO blocks a reader
// forever, /dev/zero never ends, a directory fails with a raw EISDIR — and its size is checked
// before any byte is read; then at most the limit is read, since a file can grow after the check
// and some regular files (securityfs's binary_bios_measurements) report a size of 0. Errors name
// what the file was for (e.g. "--ek-ca") in one line.
import { constants, type Stats } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { InvalidInputError, TooLargeError } from './errors.ts'

/** A file argument that is missing, unreadable or not a regular file. */
export class FileInputError extends InvalidInputError {
  override readonly code: string = 'ERR_FILE_INPUT'
}

export interface InputFileOptions {
  /** What the file is for, as the user gave it: an option ("--ek-ca") or an argument ("event log FILE"). */
  readonly label: string
  /** Largest size accepted, in bytes. */
  readonly maxBytes: number
}

/** 1536 → "1.5 KiB"; for sizes and limits in messages. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`
}

function kind(st: Stats): string {
  if (st.isDirectory()) return 'a directory'
  if (st.isFIFO()) return 'a FIFO'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  if (st.isSocket()) return 'a socket'
  return 'not a regular file'
}

function fsError(label: string, path: string, err: unknown): FileInputError {
  const code = (err as NodeJS.ErrnoException).code
  const why =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'ENOTDIR'
          ? 'a part of the path is not a directory'
          : code === 'ELOOP'
            ? 'too many symbolic links'
            : code === 'ENAMETOOLONG'
              ? 'the path is too long'
              : `cannot read it (${code ?? (err as Error).message})`
  return new FileInputError(`${label}: ${path}: ${why}`, { cause: err })
}

function checkStats(st: Stats, path: string, o: InputFileOptions): void {
  if (!st.isFile()) throw new FileInputError(`${o.label}: ${path} is not a regular file (${kind(st)})`)
  if (st.size > o.maxBytes)
    throw new TooLargeError(
      `${o.label}: ${path} is ${formatBytes(st.size)}, over the limit of ${formatBytes(o.maxBytes)}`
    )
}

/**
 * Checks that `path` names a regular file of at most `maxBytes` without reading it; for files
 * another component streams (an image archive may be large: give `Infinity`).
 */
export async function checkInputFile(path: string, o: InputFileOptions): Promise<Stats> {
  let st: Stats
  try {
    st = await stat(path)
  } catch (err) {
    throw fsError(o.label, path, err)
  }
  checkStats(st, path, o)
  return st
}

/** Reads a regular file of at most `maxBytes`; refuses anything else before reading from it. */
export async function readInputFile(path: string, o: InputFileOptions): Promise<Uint8Array> {
  const before = await checkInputFile(path, o)
  // O_NONBLOCK: if the path was swapped for a FIFO since the stat, opening it cannot block;
  // fstat then refuses it. O_NOCTTY: a terminal never becomes the controlling one.
  let fh: Awaited<ReturnType<typeof open>>
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (err) {
    throw fsError(o.label, path, err)
  }
  try {
    const st = await fh.stat()
    checkStats(st, path, o)
    if (st.ino !== before.ino || st.dev !== before.dev)
      throw new FileInputError(`${o.label}: ${path} was replaced while being opened; try again`)
    // Read up to one byte past the limit: enough to tell a file that grew from one that did not.
    const cap = Math.min(o.maxBytes, Number.MAX_SAFE_INTEGER - 1) + 1
    const chunks: Uint8Array[] = []
    let total = 0
    for (;;) {
      const want = Math.min(1 << 16, cap - total)
      if (want <= 0) break
      const buf = new Uint8Array(Math.min(want, Math.max(st.size - total, 1 << 12)))
      let n: number
      try {
        ;({ bytesRead: n } = await fh.read(buf, 0, buf.length, null))
      } catch (err) {
        throw fsError(o.label, path, err)
      }
      if (n === 0) break
      chunks.push(n === buf.length ? buf : buf.subarray(0, n))
      total += n
    }
    if (total > o.maxBytes)
      throw new TooLargeError(
        `${o.label}: ${path} is over the limit of ${formatBytes(o.maxBytes)} (it grew while being read)`
      )
    if (chunks.length === 1) return chunks[0]
    const out = new Uint8Array(total)
    let at = 0
    for (const c of chunks) {
      out.set(c, at)
      at += c.length
    }
    return out
  } finally {
    await fh.close()
  }
}

/** readInputFile, decoded as UTF-8 (a byte-order mark is dropped). */
export async function readInputText(path: string, o: InputFileOptions): Promise<string> {
  return new TextDecoder('utf-8').decode(await readInputFile(path, o))
}
