// The container event log (docs/CONTRACTS.md): JSON lines, one record per launch,
//   {"type":"container.launch","image":name,"digest":"sha256:…","cid":"…","args":[...],"envDigest":hex}
// Each line's UTF-8 bytes (without the newline) are hashed with sha256 and extended into the
// container PCR 13, so a verifier replays the log and compares with the quoted PCR value.
//
// One format, one implementation: the lines are written with attestation/containerlog.ts, the
// verifier's own parser, so what a node measures is by construction what the verifier accepts.
// The names below are thin wrappers kept for containers' callers (runner, agent, tests).
import { appendFile, readFile } from 'node:fs/promises'
import {
  CONTAINER_PCR, containerEventDigest, containerLaunchLine, envDigest as attestationEnvDigest,
  parseContainerLog, replayContainerLog, type ContainerLaunch
} from '../attestation/containerlog.ts'

/** PCR 13: not resettable at locality 0 (unlike 16/23); go-tpm-tools' launcher uses it too. */
export { CONTAINER_PCR }

export type ContainerLaunchEvent = ContainerLaunch

/**
 * Hex sha256 of the canonical CBOR encoding of the sorted environment list ("KEY=value"
 * strings; attestation's envDigest). Values may be secrets, so only this digest is logged and measured.
 */
export function envDigest (env: readonly string[]): string {
  return attestationEnvDigest(env)
}

export function launchEvent (input: { image: string, digest: string, cid: string, args?: readonly string[], env?: readonly string[] }): ContainerLaunchEvent {
  return { type: 'container.launch', image: input.image, digest: input.digest, cid: input.cid, args: [...(input.args ?? [])], envDigest: envDigest(input.env ?? []) }
}

/**
 * The exact line (fixed key order, no whitespace) whose bytes are measured. Throws
 * InvalidInputError / TooLargeError for a record the verifier would refuse (bad digest, more than
 * 256 args, a line over 16 KiB, …).
 */
export function eventLine (e: ContainerLaunchEvent): string {
  return containerLaunchLine(e)
}

/** sha256 of the line's UTF-8 bytes: the value extended into PCR 13. */
export function eventDigest (line: string): Uint8Array {
  return containerEventDigest(line)
}

/** Parses a log strictly (attestation's parseContainerLog): every line must be a canonical container.launch record. */
export function parseEventLog (text: string): { line: string, event: ContainerLaunchEvent }[] {
  return parseContainerLog(text).map(e => ({ line: e.line, event: e.record }))
}

/** Replays the log: PCR_new = sha256(PCR_old ‖ sha256(line)), from 32 zero bytes (PCR 13 at reset). */
export function replayEventLog (text: string): Uint8Array {
  return replayContainerLog(text)
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
