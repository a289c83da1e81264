// TCG PC Client firmware event log: parser and replay (TCG PC Client Platform Firmware Profile
// (PFP) §10). A log starts with one SHA1-format TCG_PCClientPCREvent whose data is the
// TCG_EfiSpecIDEvent ("Spec ID Event03", §10.4.5 (item 1)) listing the hash algorithms and their
// digest sizes; every later record is a TCG_PCR_EVENT2 (§10.2.2) with one digest per bank. A log
// without that header (empty, or the TPM 1.2 SHA1-only format) is refused: it names no banks, so
// nothing in it can be checked against a TPM 2.0 quote. Integers are little-endian. Framing errors
// are DecodeErrors with the byte offset; a payload that does not decode, or an unknown event type,
// is reported on the event and never fatal.
import { digest, toHex } from '../encoding/bytes.ts'
import { DIGEST_SIZE, HASH_ALGS, PCR_COUNT, hashAlgFromId, type HashAlg } from './algs.ts'
import { Reader, StructureError } from './reader.ts'
import { DecodeError, TooLargeError } from '../encoding/errors.ts'

/** Event types (PFP §10.4.1, Table 9). */
export const EVENT_TYPES: Readonly<Record<number, string>> = {
  0x00000000: 'EV_PREBOOT_CERT',
  0x00000001: 'EV_POST_CODE',
  0x00000002: 'EV_UNUSED',
  0x00000003: 'EV_NO_ACTION',
  0x00000004: 'EV_SEPARATOR',
  0x00000005: 'EV_ACTION',
  0x00000006: 'EV_EVENT_TAG',
  0x00000007: 'EV_S_CRTM_CONTENTS',
  0x00000008: 'EV_S_CRTM_VERSION',
  0x00000009: 'EV_CPU_MICROCODE',
  0x0000000a: 'EV_PLATFORM_CONFIG_FLAGS',
  0x0000000b: 'EV_TABLE_OF_DEVICES',
  0x0000000c: 'EV_COMPACT_HASH',
  0x0000000d: 'EV_IPL',
  0x0000000e: 'EV_IPL_PARTITION_DATA',
  0x0000000f: 'EV_NONHOST_CODE',
  0x00000010: 'EV_NONHOST_CONFIG',
  0x00000011: 'EV_NONHOST_INFO',
  0x00000012: 'EV_OMIT_BOOT_DEVICE_EVENTS',
  0x00000013: 'EV_POST_CODE2',
  0x80000000: 'EV_EFI_EVENT_BASE',
  0x80000001: 'EV_EFI_VARIABLE_DRIVER_CONFIG',
  0x80000002: 'EV_EFI_VARIABLE_BOOT',
  0x80000003: 'EV_EFI_BOOT_SERVICES_APPLICATION',
  0x80000004: 'EV_EFI_BOOT_SERVICES_DRIVER',
  0x80000005: 'EV_EFI_RUNTIME_SERVICES_DRIVER',
  0x80000006: 'EV_EFI_GPT_EVENT',
  0x80000007: 'EV_EFI_ACTION',
  0x80000008: 'EV_EFI_PLATFORM_FIRMWARE_BLOB',
  0x80000009: 'EV_EFI_HANDOFF_TABLES',
  0x8000000a: 'EV_EFI_PLATFORM_FIRMWARE_BLOB2',
  0x8000000b: 'EV_EFI_HANDOFF_TABLES2',
  0x8000000c: 'EV_EFI_VARIABLE_BOOT2',
  0x8000000d: 'EV_EFI_GPT_EVENT2',
  0x80000010: 'EV_EFI_HCRTM_EVENT',
  0x800000e0: 'EV_EFI_VARIABLE_AUTHORITY',
  0x800000e1: 'EV_EFI_SPDM_FIRMWARE_BLOB',
  0x800000e2: 'EV_EFI_SPDM_FIRMWARE_CONFIG',
  0x800000e3: 'EV_EFI_SPDM_DEVICE_POLICY',
  0x800000e4: 'EV_EFI_SPDM_DEVICE_AUTHORITY'
}

const EV = Object.fromEntries(Object.entries(EVENT_TYPES).map(([k, v]) => [v, Number(k)])) as Record<string, number>

export function eventTypeName(type: number): string {
  return EVENT_TYPES[type] ?? `UNKNOWN(0x${type.toString(16).padStart(8, '0')})`
}

/** Well-known EV_EVENT_TAG ids (Linux EFI stub). */
const TAGGED_EVENTS: Readonly<Record<number, string>> = {
  0x8f3b22ec: 'Linux initrd',
  0x8f3b22ed: 'LOADED_IMAGE::LoadOptions'
}

export interface SpecIdEvent {
  readonly signature: string
  readonly platformClass: number
  readonly specVersionMajor: number
  readonly specVersionMinor: number
  readonly specErrata: number
  readonly uintnSize: number
  /** algorithmId → digest size, in header order (ids the verifier does not know are kept for framing). */
  readonly algorithms: ReadonlyArray<{
    readonly algorithmId: number
    readonly hash?: HashAlg
    readonly digestSize: number
  }>
  readonly vendorInfo: Uint8Array
}

export type EventPayload =
  | { readonly kind: 'spec-id'; readonly specId: SpecIdEvent }
  | { readonly kind: 'startup-locality'; readonly locality: number }
  | { readonly kind: 'no-action'; readonly signature: string }
  | { readonly kind: 'string'; readonly text: string }
  | { readonly kind: 'separator'; readonly value: number; readonly error: boolean }
  | { readonly kind: 'efi-variable'; readonly variableGuid: string; readonly name: string; readonly data: Uint8Array }
  | {
      readonly kind: 'efi-image-load'
      readonly imageLocation: bigint
      readonly imageLength: bigint
      readonly linkTimeAddress: bigint
      readonly devicePath: Uint8Array
    }
  | { readonly kind: 'firmware-blob'; readonly base: bigint; readonly length: bigint; readonly description?: string }
  | {
      readonly kind: 'event-tag'
      readonly tagId: number
      readonly tagName?: string
      readonly data: Uint8Array
      readonly text?: string
    }

export interface TcgEvent {
  /** Position in the log; 0 is the Spec ID header. */
  readonly index: number
  /** Byte offset of the record in the log. */
  readonly offset: number
  readonly pcr: number
  readonly type: number
  readonly typeName: string
  /** One digest per bank the verifier knows. */
  readonly digests: { readonly [bank in HashAlg]?: Uint8Array }
  readonly data: Uint8Array
  readonly payload?: EventPayload
  /** Why the payload could not be decoded (the event still counts for replay). */
  readonly payloadError?: string
  /** True when the event type is not one the PFP defines. */
  readonly unknownType?: true
}

export interface EventLog {
  /** Always crypto-agile: the only format parseEventLog accepts (kept in the output for readers). */
  readonly format: 'crypto-agile'
  readonly specId: SpecIdEvent
  /** Banks with digests in every event (those that can be replayed). */
  readonly banks: readonly HashAlg[]
  readonly events: readonly TcgEvent[]
  /** Distinct unknown event types seen (reported, not fatal). */
  readonly unknownTypes: readonly number[]
}

export interface EventLogLimits {
  maxBytes: number
  maxEvents: number
  maxEventData: number
}
export const EVENT_LOG_LIMITS: Readonly<EventLogLimits> = Object.freeze({
  maxBytes: 512 << 10,
  maxEvents: 10_000,
  maxEventData: 256 << 10
})

const SPEC_ID_03 = 'Spec ID Event03'
const HEADER = 'Spec ID header event (EV_NO_ACTION on PCR 0, "Spec ID Event03"; TCG PC Client PFP §10.4.5)'

/**
 * Parses a firmware event log. The first record must be the Spec ID header (PFP §10.4.5:
 * EV_NO_ACTION on PCR 0, "Spec ID Event03"); an empty log or one without it is a DecodeError.
 */
export function parseEventLog(bytes: Uint8Array, limits: EventLogLimits = EVENT_LOG_LIMITS): EventLog {
  const r = new Reader(bytes, 'event log')
  if (bytes.length > limits.maxBytes)
    throw new TooLargeError(`event log of ${bytes.length} bytes exceeds the limit of ${limits.maxBytes}`)
  if (bytes.length === 0) throw new DecodeError(`the event log is empty: a TCG PC Client log starts with the ${HEADER}`)
  const events: TcgEvent[] = []
  const unknown = new Set<number>()

  // The first record is always in the SHA1 format (PFP §10.2.1 TCG_PCClientPCREvent). Its PCR
  // and type are checked before its length, so a log that is not one at all says so.
  const notHeader = (what: string): never => {
    throw new StructureError(
      'event log',
      0,
      `the first event is ${what}, not the ${HEADER}; a SHA1-only (TPM 1.2) log is not supported`
    )
  }
  if (bytes.length >= 8) {
    const pcr = r.view.getUint32(0, true)
    const type = r.view.getUint32(4, true)
    if (type !== EV.EV_NO_ACTION || pcr !== 0) notHeader(`${eventTypeName(type)} on PCR ${pcr}`)
  }
  const first = readSha1Event(r, 0, limits)
  if (!startsWithAscii(first.data, SPEC_ID_03))
    notHeader(`EV_NO_ACTION ("${asciiz(first.data.subarray(0, 16))}") on PCR 0`)
  const specId = parseSpecId(first.data, first.offset)
  events.push({ ...first, payload: { kind: 'spec-id', specId } })
  const sizes = new Map<number, number>(specId.algorithms.map(a => [a.algorithmId, a.digestSize]))
  const known = specId.algorithms.filter(a => a.hash !== undefined).map(a => a.hash as HashAlg)
  while (r.remaining > 0) {
    if (events.length >= limits.maxEvents) r.fail(`more than ${limits.maxEvents} events`)
    events.push(decorate(readEvent2(r, events.length, sizes, limits), unknown))
  }
  // A bank can be replayed only if every measured event carries its digest.
  const banks = known.filter(b =>
    events.every(e => e.index === 0 || e.type === EV.EV_NO_ACTION || e.digests[b] !== undefined)
  )
  return { format: 'crypto-agile', specId, banks, events, unknownTypes: [...unknown] }
}

interface RawEvent {
  index: number
  offset: number
  pcr: number
  type: number
  typeName: string
  digests: { [bank in HashAlg]?: Uint8Array }
  data: Uint8Array
}

function readPcrAndType(r: Reader): { pcr: number; type: number } {
  const at = r.pos
  const pcr = r.u32le('pcrIndex')
  // PCR indexes above 23 do not exist on a PC Client TPM; a few logs use 0xffffffff-ish values
  // only on EV_NO_ACTION records, which are never extended. Anything else is corrupt.
  const type = r.u32le('eventType')
  if (pcr >= PCR_COUNT && type !== EV.EV_NO_ACTION) r.fail(`pcrIndex ${pcr} is not 0..${PCR_COUNT - 1}`, at)
  return { pcr, type }
}

function readEventData(r: Reader, limits: EventLogLimits): Uint8Array {
  const at = r.pos
  const size = r.u32le('eventSize')
  if (size > limits.maxEventData) r.fail(`eventSize ${size} exceeds the limit of ${limits.maxEventData}`, at)
  return r.bytes(size, 'event data')
}

function readSha1Event(r: Reader, index: number, limits: EventLogLimits): RawEvent {
  const offset = r.pos
  r.what = `event log record #${index}`
  const { pcr, type } = readPcrAndType(r)
  const sha1 = r.bytes(20, 'SHA1 digest')
  const data = readEventData(r, limits)
  return { index, offset, pcr, type, typeName: eventTypeName(type), digests: { sha1 }, data }
}

function readEvent2(r: Reader, index: number, sizes: ReadonlyMap<number, number>, limits: EventLogLimits): RawEvent {
  const offset = r.pos
  r.what = `event log record #${index}`
  const { pcr, type } = readPcrAndType(r)
  const cat = r.pos
  const count = r.u32le('digests.count')
  if (count > sizes.size)
    r.fail(`digests.count ${count} exceeds the ${sizes.size} algorithms of the Spec ID header`, cat)
  const digests: { [bank in HashAlg]?: Uint8Array } = {}
  const seen = new Set<number>()
  for (let i = 0; i < count; i++) {
    const aat = r.pos
    const alg = r.u16le('digests.hashAlg')
    const size = sizes.get(alg)
    if (size === undefined)
      r.fail(`digest algorithm 0x${alg.toString(16).padStart(4, '0')} is not in the Spec ID header`, aat)
    if (seen.has(alg)) r.fail(`digest algorithm 0x${alg.toString(16).padStart(4, '0')} appears twice`, aat)
    seen.add(alg)
    const d = r.bytes(size, 'digest')
    const h = hashAlgFromId(alg)
    if (h !== undefined) digests[h] = d
  }
  const data = readEventData(r, limits)
  return { index, offset, pcr, type, typeName: eventTypeName(type), digests, data }
}

/** TCG_EfiSpecIdEvent (PFP §10.4.5 (item 1)). */
function parseSpecId(data: Uint8Array, base: number): SpecIdEvent {
  const r = new Reader(data, 'TCG_EfiSpecIdEvent')
  try {
    const sig = r.bytes(16, 'signature')
    const platformClass = r.u32le('platformClass')
    const specVersionMinor = r.u8('specVersionMinor')
    const specVersionMajor = r.u8('specVersionMajor')
    const specErrata = r.u8('specErrata')
    const uintnSize = r.u8('uintnSize')
    const nat = r.pos
    const n = r.u32le('numberOfAlgorithms')
    if (n === 0 || n > 16) r.fail(`numberOfAlgorithms ${n} is not 1..16`, nat)
    const algorithms: Array<{ algorithmId: number; hash?: HashAlg; digestSize: number }> = []
    for (let i = 0; i < n; i++) {
      const aat = r.pos
      const algorithmId = r.u16le('algorithmId')
      const digestSize = r.u16le('digestSize')
      const hash = hashAlgFromId(algorithmId)
      if (hash !== undefined && DIGEST_SIZE[hash] !== digestSize)
        r.fail(`${hash} digestSize ${digestSize} (expected ${DIGEST_SIZE[hash]})`, aat)
      if (digestSize === 0 || digestSize > 128) r.fail(`digestSize ${digestSize} is not 1..128`, aat)
      if (algorithms.some(a => a.algorithmId === algorithmId))
        r.fail(`algorithm 0x${algorithmId.toString(16)} listed twice`, aat)
      algorithms.push(hash !== undefined ? { algorithmId, hash, digestSize } : { algorithmId, digestSize })
    }
    const vendorInfoSize = r.u8('vendorInfoSize')
    const vendorInfo = r.bytes(vendorInfoSize, 'vendorInfo')
    r.end()
    return {
      signature: asciiz(sig),
      platformClass,
      specVersionMajor,
      specVersionMinor,
      specErrata,
      uintnSize,
      algorithms,
      vendorInfo
    }
  } catch (err) {
    // Re-anchor the offset on the whole log: the event data of the header starts 32 bytes in.
    if (err instanceof StructureError)
      throw new StructureError(
        'event log header (TCG_EfiSpecIdEvent)',
        base + 32 + err.offset,
        err.message.replace(/ at offset \d+$/, '').replace(/^TCG_EfiSpecIdEvent: /, '')
      )
    throw err
  }
}

function decorate(e: RawEvent, unknown: Set<number>): TcgEvent {
  const known = EVENT_TYPES[e.type] !== undefined
  if (!known) unknown.add(e.type)
  let payload: EventPayload | undefined
  let payloadError: string | undefined
  try {
    payload = decodePayload(e.type, e.data)
  } catch (err) {
    payloadError = err instanceof StructureError ? err.message : String(err)
  }
  return {
    ...e,
    ...(payload !== undefined ? { payload } : {}),
    ...(payloadError !== undefined ? { payloadError } : {}),
    ...(known ? {} : { unknownType: true as const })
  }
}

function startsWithAscii(b: Uint8Array, s: string): boolean {
  if (b.length < s.length) return false
  for (let i = 0; i < s.length; i++) if (b[i] !== s.charCodeAt(i)) return false
  return true
}

function asciiz(b: Uint8Array): string {
  const end = b.indexOf(0)
  return Buffer.from(end < 0 ? b : b.subarray(0, end)).toString('latin1')
}

function printable(b: Uint8Array): boolean {
  let n = b.length
  while (n > 0 && b[n - 1] === 0) n--
  for (let i = 0; i < n; i++) {
    const c = b[i]
    if (c < 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false
    if (c > 0x7e) return false
  }
  return true
}

function utf16(b: Uint8Array): string {
  let n = b.length - (b.length % 2)
  while (n >= 2 && b[n - 1] === 0 && b[n - 2] === 0) n -= 2
  return Buffer.from(b.subarray(0, n)).toString('utf16le')
}

/** EFI_GUID: UINT32, UINT16, UINT16 little-endian, then 8 bytes in order. */
function guidToString(g: Uint8Array): string {
  const h = (a: number, b: number): string => toHex(g.subarray(a, b))
  const le = (a: number, b: number): string => toHex(g.slice(a, b).reverse())
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${h(8, 10)}-${h(10, 16)}`
}

function decodePayload(type: number, data: Uint8Array): EventPayload | undefined {
  const r = new Reader(data, `${eventTypeName(type)} payload`)
  switch (type) {
    case EV.EV_NO_ACTION: {
      if (startsWithAscii(data, 'StartupLocality\0')) {
        r.pos = 16
        const locality = r.u8('StartupLocality')
        return { kind: 'startup-locality', locality }
      }
      return { kind: 'no-action', signature: asciiz(data.subarray(0, 16)) }
    }
    case EV.EV_SEPARATOR: {
      const v = r.u32le('separator')
      r.end()
      return { kind: 'separator', value: v, error: v !== 0 }
    }
    case EV.EV_S_CRTM_VERSION:
      // PFP §10.4.4: a UCS-2 string (often just a NUL).
      return { kind: 'string', text: utf16(data) }
    case EV.EV_POST_CODE:
    case EV.EV_EFI_ACTION:
    case EV.EV_ACTION:
    case EV.EV_IPL:
    case EV.EV_OMIT_BOOT_DEVICE_EVENTS:
      if (type === EV.EV_POST_CODE && data.length === 16 && !printable(data)) {
        return { kind: 'firmware-blob', base: r.u64le('BlobBase'), length: r.u64le('BlobLength') }
      }
      if (!printable(data)) r.fail('not a printable string')
      return { kind: 'string', text: Buffer.from(data).toString('latin1').replace(/\0+$/, '') }
    case EV.EV_EFI_VARIABLE_DRIVER_CONFIG:
    case EV.EV_EFI_VARIABLE_BOOT:
    case EV.EV_EFI_VARIABLE_BOOT2:
    case EV.EV_EFI_VARIABLE_AUTHORITY: {
      // PFP §10.4.4 UEFI_VARIABLE_DATA
      const guid = r.bytes(16, 'VariableName')
      const nameLen = r.u64le('UnicodeNameLength')
      const dataLen = r.u64le('VariableDataLength')
      if (nameLen * 2n > BigInt(r.remaining)) r.fail(`UnicodeNameLength ${nameLen} exceeds the event`)
      const name = utf16(r.bytes(Number(nameLen) * 2, 'UnicodeName'))
      if (dataLen !== BigInt(r.remaining)) r.fail(`VariableDataLength ${dataLen} but ${r.remaining} bytes remain`)
      return {
        kind: 'efi-variable',
        variableGuid: guidToString(guid),
        name,
        data: r.bytes(r.remaining, 'VariableData')
      }
    }
    case EV.EV_EFI_BOOT_SERVICES_APPLICATION:
    case EV.EV_EFI_BOOT_SERVICES_DRIVER:
    case EV.EV_EFI_RUNTIME_SERVICES_DRIVER: {
      // PFP §10.4.4 UEFI_IMAGE_LOAD_EVENT
      const imageLocation = r.u64le('ImageLocationInMemory')
      const imageLength = r.u64le('ImageLengthInMemory')
      const linkTimeAddress = r.u64le('ImageLinkTimeAddress')
      const dpLen = r.u64le('LengthOfDevicePath')
      if (dpLen !== BigInt(r.remaining)) r.fail(`LengthOfDevicePath ${dpLen} but ${r.remaining} bytes remain`)
      return {
        kind: 'efi-image-load',
        imageLocation,
        imageLength,
        linkTimeAddress,
        devicePath: r.bytes(r.remaining, 'DevicePath')
      }
    }
    case EV.EV_EFI_PLATFORM_FIRMWARE_BLOB: {
      const base = r.u64le('BlobBase')
      const length = r.u64le('BlobLength')
      r.end()
      return { kind: 'firmware-blob', base, length }
    }
    case EV.EV_EFI_PLATFORM_FIRMWARE_BLOB2: {
      const n = r.u8('BlobDescriptionSize')
      const description = asciiz(r.bytes(n, 'BlobDescription'))
      const base = r.u64le('BlobBase')
      const length = r.u64le('BlobLength')
      r.end()
      return { kind: 'firmware-blob', base, length, description }
    }
    case EV.EV_EVENT_TAG: {
      // PFP §10.4.2 TCG_PCClientTaggedEvent
      const tagId = r.u32le('taggedEventID')
      const size = r.u32le('taggedEventDataSize')
      if (size !== r.remaining) r.fail(`taggedEventDataSize ${size} but ${r.remaining} bytes remain`)
      const d = r.bytes(size, 'taggedEventData')
      const tagName = TAGGED_EVENTS[tagId]
      return {
        kind: 'event-tag',
        tagId,
        ...(tagName !== undefined ? { tagName } : {}),
        data: d,
        ...(printable(d) && d.length > 0 ? { text: asciiz(d) } : {})
      }
    }
    default:
      return undefined
  }
}

/** Replayed PCR values per bank: all 24 PCRs, untouched ones at their reset value. */
export type PcrBanks = ReadonlyMap<HashAlg, ReadonlyMap<number, Uint8Array>>

/** Reset value of a PCR (PC Client PTP: 17–22 reset to all ones, the others to zeros). */
export function pcrResetValue(bank: HashAlg, pcr: number, locality = 0): Uint8Array {
  const v = new Uint8Array(DIGEST_SIZE[bank])
  if (pcr >= 17 && pcr <= 22) v.fill(0xff)
  if (pcr === 0 && locality !== 0) v[v.length - 1] = locality // PFP §10.4.5 (item 3) StartupLocality
  return v
}

/**
 * Replays the log into PCR values per bank: PCR ← H(PCR ‖ digest) for every event but
 * EV_NO_ACTION (which is never extended; its StartupLocality form sets PCR 0's initial value).
 */
export function replayEventLog(log: EventLog, banks: readonly HashAlg[] = log.banks): PcrBanks {
  const out = new Map<HashAlg, Map<number, Uint8Array>>()
  const locality = log.events.find(e => e.payload?.kind === 'startup-locality')?.payload
  for (const bank of banks) {
    if (!HASH_ALGS.includes(bank)) continue
    const pcrs = new Map<number, Uint8Array>()
    for (let i = 0; i < PCR_COUNT; i++)
      pcrs.set(i, pcrResetValue(bank, i, locality?.kind === 'startup-locality' ? locality.locality : 0))
    for (const e of log.events) {
      if (e.type === EV.EV_NO_ACTION || e.index === 0) continue
      const d = e.digests[bank]
      if (d === undefined) continue // parseEventLog lists only banks every event has
      const prev = pcrs.get(e.pcr)
      if (prev === undefined) continue
      pcrs.set(e.pcr, digest(bank, prev, d))
    }
    out.set(bank, pcrs)
  }
  return out
}

/** Events that extend a given PCR in a bank (replay order). */
export function eventsForPcr(log: EventLog, pcr: number): TcgEvent[] {
  return log.events.filter(e => e.pcr === pcr && e.type !== EV.EV_NO_ACTION && e.index !== 0)
}

export const EV_NO_ACTION = 0x00000003
export const EV_SEPARATOR = 0x00000004
