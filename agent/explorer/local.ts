// What the agent that serves /ui knows about its own node and the chain does not: the firmware
// event log it booted with and the container event log it keeps (both of which it hands to each
// committee), and the apps and tenants it runs. Decoded here, on the server, into plain rows the
// page shows as they are, so the page's bundle carries no parser. Read-only.
import { parseEventLog, parseContainerLog, type TcgEvent, type EventPayload } from '../../attestation/index.ts'
import { toHex, toBase64 } from '../../encoding/bytes.ts'
import type { DecodedBootLog, DecodedContainerLog, LocalView } from './types.ts'

export type { DecodedBootLog, DecodedContainerLog, LocalView }

/** How a payload reads in one line (the page shows it beside the event's PCR and type). */
function describe(p: EventPayload | undefined, e: TcgEvent): string {
  if (p === undefined) return e.payloadError === undefined ? '' : `undecoded: ${e.payloadError}`
  switch (p.kind) {
    case 'spec-id':
      return `${p.specId.signature} (spec ${p.specId.specVersionMajor}.${p.specId.specVersionMinor}, banks ${p.specId.algorithms.map(a => a.hash ?? `0x${a.algorithmId.toString(16)}`).join(', ')})`
    case 'startup-locality':
      return `startup locality ${p.locality}`
    case 'no-action':
      return p.signature
    case 'string':
      return p.text
    case 'separator':
      return p.error ? 'separator (error)' : 'separator'
    case 'efi-variable':
      return `${p.name} (${p.data.length} bytes)`
    case 'efi-image-load':
      return `image of ${p.imageLength} bytes`
    case 'firmware-blob':
      return p.description ?? `firmware blob of ${p.length} bytes`
    case 'event-tag':
      return p.tagName ?? p.text ?? `tag 0x${p.tagId.toString(16)}`
  }
}

/** The boot event log as rows; a log that does not parse is reported, not thrown. */
export function decodeBootLog(bytes: Uint8Array | undefined, opts: { raw?: boolean } = {}): DecodedBootLog {
  if (bytes === undefined) return { present: false, events: [] }
  const raw = opts.raw === true ? toBase64(bytes) : undefined
  try {
    const log = parseEventLog(bytes)
    return {
      present: true,
      bytes: bytes.length,
      banks: [...log.banks],
      events: log.events.map(e => ({
        index: e.index,
        pcr: e.pcr,
        type: e.typeName,
        sha256: e.digests.sha256 === undefined ? undefined : toHex(e.digests.sha256),
        description: describe(e.payload, e)
      })),
      raw
    }
  } catch (err) {
    return { present: true, bytes: bytes.length, events: [], error: (err as Error).message, raw }
  }
}

/** The container event log (JSON lines) as rows; a log that does not parse is reported, not thrown. */
export function decodeContainerLog(text: string | undefined): DecodedContainerLog {
  if (text === undefined || text === '') return { entries: [] }
  try {
    return {
      entries: parseContainerLog(text).map(e => ({
        index: e.index,
        image: e.record.image,
        digest: e.record.digest,
        cid: e.record.cid,
        args: [...e.record.args],
        sha256: toHex(e.eventDigest)
      }))
    }
  } catch (err) {
    return { entries: [], error: (err as Error).message }
  }
}

/** The fields of the agent's /status that the node page shows (agent/agent.ts AgentStatus, apps from agent/apps.ts). */
export interface LocalStatus {
  nodeId: string
  state: { kind: string; reason?: string }
  containers: ReadonlyArray<{ image: string; digest: string; cid: string; url?: string }>
  apps?: unknown
}

function appsOf(apps: unknown): LocalView['apps'] {
  if (!Array.isArray(apps)) return []
  const out: LocalView['apps'] = []
  for (const a of apps as unknown[]) {
    if (a === null || typeof a !== 'object') continue
    const r = a as Record<string, unknown>
    const name = typeof r.name === 'string' ? r.name : typeof r.app === 'string' ? r.app : undefined
    if (name === undefined) continue
    out.push({
      name,
      state: typeof r.state === 'string' ? r.state : 'unknown',
      version: typeof r.version === 'string' ? r.version : undefined,
      digest: typeof r.digest === 'string' ? r.digest : undefined,
      requests: typeof r.requests === 'number' ? r.requests : undefined
    })
  }
  return out
}

/** The node page's view of the serving agent (GET /ui/api/local). */
export function localView(status: LocalStatus, bootLog: Uint8Array | undefined, containerLog: string): LocalView {
  return {
    nodeId: status.nodeId,
    state: status.state.kind,
    stateReason: status.state.reason,
    containers: status.containers.map(c => ({ image: c.image, digest: c.digest, cid: c.cid, url: c.url })),
    apps: appsOf(status.apps),
    bootLog: decodeBootLog(bootLog),
    containerLog: decodeContainerLog(containerLog)
  }
}

/** GET /status/eventlog: both logs decoded, with the bytes as the committee receives them. */
export function eventLogView(
  nodeId: string,
  bootLog: Uint8Array | undefined,
  containerLog: string
): { nodeId: string; boot: DecodedBootLog; containers: DecodedContainerLog & { text: string } } {
  return {
    nodeId,
    boot: decodeBootLog(bootLog, { raw: true }),
    containers: { ...decodeContainerLog(containerLog), text: containerLog }
  }
}
