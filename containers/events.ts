// The container event log (docs/CONTRACTS.md): JSON lines, one record per launch,
//   {"type":"container.launch","image":name,"digest":"sha256:…","cid":"…","args":[...],"envDigest":hex}
// Each line's UTF-8 bytes (without the newline) are hashed with sha256 and extended into the
// container PCR 13, so a verifier replays the log and compares with the quoted PCR value.
import { appendFile, readFile } from 'node:fs/promises'
import { sha256, toHex, utf8, concat } from '../encoding/bytes.ts'
import { encode } from '../encoding/canonical.ts'
import { DecodeError } from '../encoding/errors.ts'

/** PCR 13: not resettable at locality 0 (unlike 16/23); go-tpm-tools' launcher uses it too. */
export const CONTAINER_PCR = 13

export interface ContainerLaunchEvent {
  readonly type: 'container.launch'
  readonly image: string
  readonly digest: string
  readonly cid: string
  readonly args: readonly string[]
  /** Hex sha256 over the environment (see envDigest). */
  readonly envDigest: string
}

/**
 * Hex sha256 of the canonical CBOR encoding of the environment list ("KEY=value" strings, in
 * the order passed to Docker). Values may be secrets, so only this digest is logged and measured.
 */
export function envDigest (env: readonly string[]): string {
  return toHex(sha256(encode([...env])))
}

export function launchEvent (input: { image: string, digest: string, cid: string, args?: readonly string[], env?: readonly string[] }): ContainerLaunchEvent {
  return { type: 'container.launch', image: input.image, digest: input.digest, cid: input.cid, args: [...(input.args ?? [])], envDigest: envDigest(input.env ?? []) }
}

/** The exact line (fixed key order, no whitespace) whose bytes are measured. */
export function eventLine (e: ContainerLaunchEvent): string {
  return JSON.stringify({ type: e.type, image: e.image, digest: e.digest, cid: e.cid, args: e.args, envDigest: e.envDigest })
}

export function eventDigest (line: string): Uint8Array {
  return sha256(utf8.encode(line))
}

/** Parses a log (JSON lines); strict: every non-empty line must be a container.launch record. */
export function parseEventLog (text: string): { line: string, event: ContainerLaunchEvent }[] {
  const out: { line: string, event: ContainerLaunchEvent }[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    if (line === '') continue
    let v: unknown
    try { v = JSON.parse(line) } catch { throw new DecodeError(`container log line ${i + 1} is not JSON`) }
    const e = v as Partial<ContainerLaunchEvent>
    if (typeof e !== 'object' || e === null || e.type !== 'container.launch' || typeof e.image !== 'string' || typeof e.digest !== 'string' ||
      typeof e.cid !== 'string' || !Array.isArray(e.args) || !e.args.every(a => typeof a === 'string') || typeof e.envDigest !== 'string') {
      throw new DecodeError(`container log line ${i + 1} is not a container.launch record`)
    }
    out.push({ line, event: e as ContainerLaunchEvent })
  }
  return out
}

/** Replays the log: PCR_new = sha256(PCR_old ‖ sha256(line)), from 32 zero bytes (PCR 13 at reset). */
export function replayEventLog (text: string, initial: Uint8Array = new Uint8Array(32)): Uint8Array {
  let pcr = initial
  for (const { line } of parseEventLog(text)) pcr = sha256(concat([pcr, eventDigest(line)]))
  return pcr
}

/** Where launch records are appended. */
export interface EventLogWriter {
  append (line: string): Promise<void>
  read (): Promise<string>
}

export function memoryEventLog (): EventLogWriter & { readonly lines: string[] } {
  const lines: string[] = []
  return { lines, append: async l => { lines.push(l) }, read: async () => lines.map(l => l + '\n').join('') }
}

/** Appends to a file (created if missing); each append is one write of one line. */
export function fileEventLog (path: string): EventLogWriter {
  return {
    append: async l => { await appendFile(path, l + '\n', { mode: 0o644 }) },
    read: async () => { try { return await readFile(path, 'utf8') } catch (err) { if ((err as NodeJS.ErrnoException).code === 'ENOENT') return ''; throw err } }
  }
}
