// Container event log (docs/CONTRACTS.md): JSON lines, one `container.launch` record per launch,
// each extended into PCR 13 (sha256 bank) as sha256 of the line's UTF-8 bytes (no newline). PCR 13
// is not resettable at locality 0 (TCG PC Client PTP), so a node cannot rewind it. The parser is
// strict: a line must be exactly what containerLaunchLine writes (fixed key order, no extra
// whitespace or fields), so no two parsers can read the same measured bytes differently.
import { encode } from '../encoding/canonical.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../encoding/errors.ts'
import { sha256, toHex, utf8 } from '../encoding/bytes.ts'

export const CONTAINER_PCR = 13

export interface ContainerLaunch {
  readonly type: 'container.launch'
  /** Image name as published (e.g. `acme/web:1.2`). */
  readonly image: string
  /** Image digest `sha256:<64 hex>` (the docker image id / config digest as published on chain). */
  readonly digest: string
  /** IPFS CID the image content was fetched as. */
  readonly cid: string
  readonly args: readonly string[]
  /** Hex sha256 over the environment (see envDigest). */
  readonly envDigest: string
}

export interface ContainerLogEntry {
  readonly index: number
  readonly record: ContainerLaunch
  /** The line as measured (no newline). */
  readonly line: string
  /** sha256 of the line's UTF-8 bytes: the value extended into PCR 13. */
  readonly eventDigest: Uint8Array
}

export interface ContainerLogLimits {
  maxBytes: number
  maxRecords: number
  maxLine: number
  maxArgs: number
}
export const CONTAINER_LOG_LIMITS: Readonly<ContainerLogLimits> = Object.freeze({
  maxBytes: 256 << 10,
  maxRecords: 4096,
  maxLine: 16 << 10,
  maxArgs: 256
})

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/
const HEX64_RE = /^[0-9a-f]{64}$/

function check(r: ContainerLaunch, limits: ContainerLogLimits, what: string): void {
  const bad = (m: string): never => {
    throw new InvalidInputError(`${what}: ${m}`)
  }
  if (r.type !== 'container.launch') bad(`type ${JSON.stringify(r.type)} is not "container.launch"`)
  if (typeof r.image !== 'string' || r.image.length === 0 || r.image.length > 512)
    bad('image must be a non-empty string of at most 512 characters')
  if (typeof r.digest !== 'string' || !DIGEST_RE.test(r.digest))
    bad(`digest must be "sha256:" and 64 lowercase hex digits, got ${JSON.stringify(r.digest)}`)
  if (typeof r.cid !== 'string' || !/^[A-Za-z0-9]{1,256}$/.test(r.cid)) bad('cid must be 1-256 alphanumeric characters')
  if (!Array.isArray(r.args) || r.args.length > limits.maxArgs || !r.args.every(a => typeof a === 'string'))
    bad(`args must be an array of at most ${limits.maxArgs} strings`)
  if (typeof r.envDigest !== 'string' || !HEX64_RE.test(r.envDigest)) bad('envDigest must be 64 lowercase hex digits')
}

/** The exact line measured for a launch (fixed key order, no newline). */
export function containerLaunchLine(r: ContainerLaunch, limits: ContainerLogLimits = CONTAINER_LOG_LIMITS): string {
  check(r, limits, 'container launch record')
  const line = JSON.stringify({
    type: r.type,
    image: r.image,
    digest: r.digest,
    cid: r.cid,
    args: [...r.args],
    envDigest: r.envDigest
  })
  if (Buffer.byteLength(line) > limits.maxLine)
    throw new TooLargeError(`container launch record of ${Buffer.byteLength(line)} bytes exceeds ${limits.maxLine}`)
  return line
}

/** The digest extended into PCR 13 for a line: sha256 of its UTF-8 bytes. */
export function containerEventDigest(line: string): Uint8Array {
  return sha256(utf8.encode(line))
}

/** Hex sha256 of the canonical encoding of the sorted `KEY=value` list (what envDigest holds). */
export function envDigest(env: Readonly<Record<string, string>> | readonly string[]): string {
  const list = Array.isArray(env)
    ? [...(env as readonly string[])]
    : Object.entries(env as Record<string, string>).map(([k, v]) => `${k}=${v}`)
  list.sort()
  return toHex(sha256(encode(list)))
}

/** Parses the log strictly. Empty text is an empty log; the last line may end with a newline. */
export function parseContainerLog(
  text: string,
  limits: ContainerLogLimits = CONTAINER_LOG_LIMITS
): ContainerLogEntry[] {
  if (typeof text !== 'string') throw new DecodeError('container log: expected text')
  const size = Buffer.byteLength(text)
  if (size > limits.maxBytes)
    throw new TooLargeError(`container log of ${size} bytes exceeds the limit of ${limits.maxBytes}`)
  if (text === '') return []
  const body = text.endsWith('\n') ? text.slice(0, -1) : text
  const lines = body.split('\n')
  if (lines.length > limits.maxRecords)
    throw new TooLargeError(`container log of ${lines.length} records exceeds the limit of ${limits.maxRecords}`)
  return lines.map((line, index) => {
    const what = `container log line ${index + 1}`
    if (line === '') throw new DecodeError(`${what}: empty line`)
    if (Buffer.byteLength(line) > limits.maxLine)
      throw new TooLargeError(`${what}: ${Buffer.byteLength(line)} bytes exceeds ${limits.maxLine}`)
    let v: unknown
    try {
      v = JSON.parse(line)
    } catch (err) {
      throw new DecodeError(`${what}: not JSON (${(err as Error).message})`)
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new DecodeError(`${what}: not a JSON object`)
    const record = v as ContainerLaunch
    let canonical: string
    try {
      canonical = containerLaunchLine(record, limits)
    } catch (err) {
      throw new DecodeError(`${what}: ${(err as Error).message.replace(/^container launch record: /, '')}`)
    }
    if (canonical !== line)
      throw new DecodeError(
        `${what}: not in the canonical form (fields type,image,digest,cid,args,envDigest in that order, no spaces, nothing else)`
      )
    return { index, record, line, eventDigest: containerEventDigest(line) }
  })
}

/** PCR 13 after extending every entry into a zero PCR (sha256 bank). */
export function replayContainerLog(entries: readonly ContainerLogEntry[] | string): Uint8Array {
  const list = typeof entries === 'string' ? parseContainerLog(entries) : entries
  let pcr: Uint8Array = new Uint8Array(32)
  for (const e of list) pcr = sha256(pcr, e.eventDigest)
  return pcr
}
