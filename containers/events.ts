// The container event log (docs/CONTRACTS.md): JSON lines, one record per launch,
//   {"type":"container.launch","image":name,"digest":"sha256:…","cid":"…","args":[...],"envDigest":hex}
// Each line's UTF-8 bytes (without the newline) are hashed with sha256 and extended into the
// container PCR 13, so a verifier replays the log and compares with the quoted PCR value.
//
// One format, one implementation: lines are written, digested, parsed and replayed with
// attestation/containerlog.ts (containerLaunchLine, containerEventDigest, parseContainerLog,
// replayContainerLog), the verifier's own code, so what a node measures is by construction what
// the verifier accepts. This file holds only what the node side adds: the record from a launch
// request, and where the lines are kept.
import { appendFile, readFile } from 'node:fs/promises'
import { CONTAINER_PCR, envDigest, type ContainerLaunch } from '../attestation/containerlog.ts'

/** PCR 13: not resettable at locality 0 (unlike 16/23); go-tpm-tools' launcher uses it too. */
export { CONTAINER_PCR }

export type ContainerLaunchEvent = ContainerLaunch

/** The launch record; the environment is logged and measured only as its digest (values may be secrets). */
export function launchEvent(input: {
  image: string
  digest: string
  cid: string
  args?: readonly string[]
  env?: readonly string[]
}): ContainerLaunchEvent {
  return {
    type: 'container.launch',
    image: input.image,
    digest: input.digest,
    cid: input.cid,
    args: [...(input.args ?? [])],
    envDigest: envDigest(input.env ?? [])
  }
}

/** Where launch records are appended. */
export interface EventLogWriter {
  append(line: string): Promise<void>
  read(): Promise<string>
}

export function memoryEventLog(): EventLogWriter & { readonly lines: string[] } {
  const lines: string[] = []
  return {
    lines,
    append: async l => {
      lines.push(l)
    },
    read: async () => lines.map(l => l + '\n').join('')
  }
}

/** Appends to a file (created if missing); each append is one write of one line. */
export function fileEventLog(path: string): EventLogWriter {
  return {
    append: async l => {
      await appendFile(path, l + '\n', { mode: 0o644 })
    },
    read: async () => {
      try {
        return await readFile(path, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return ''
        throw err
      }
    }
  }
}
