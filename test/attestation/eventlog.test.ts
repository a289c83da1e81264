// TCG PC Client event log (PFP §10): the genuine OVMF fixture parses into 25 events with decoded
// payloads and replays to the guest's PCRs 0–9 exactly; odd logs (header only, unknown event
// type, StartupLocality) behave; an empty log and one without the Spec ID header are refused;
// malformed logs are DecodeErrors with offsets; bounded fuzz.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import {
  parseEventLog,
  replayEventLog,
  eventsForPcr,
  eventTypeName,
  pcrResetValue
} from '../../attestation/eventlog.ts'
import { StructureError } from '../../attestation/reader.ts'
import { DecodeError, InvalidInputError, TooLargeError } from '../../encoding/errors.ts'
import { toHex } from '../../encoding/bytes.ts'
import { fixtureEventLog, fixturePcrs, OVMF } from './scenario.ts'
import { throwsInstance, prng, randomBytesFrom, mutate } from './util.ts'

const bin = fixtureEventLog()
const header = bin.subarray(0, 32 + 33) // TCG_PCClientPCREvent header (32 bytes) + 33-byte Spec ID event

function le32(n: number): number[] {
  return [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff]
}
/** A TCG_PCR_EVENT2 with one sha256 digest. */
function event2(pcr: number, type: number, digest: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array([...le32(pcr), ...le32(type), ...le32(1), 0x0b, 0x00, ...digest, ...le32(data.length), ...data])
}
function cat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

t.test('the OVMF fixture: header, 25 events, decoded payloads', async t => {
  const log = parseEventLog(bin)
  t.equal(log.format, 'crypto-agile')
  t.equal(log.events.length, 25)
  t.same(log.banks, ['sha256'])
  t.equal(log.specId?.signature, 'Spec ID Event03')
  t.same(log.specId?.algorithms, [{ algorithmId: 0x000b, hash: 'sha256', digestSize: 32 }])
  t.equal(log.specId?.uintnSize, 2)
  t.same(log.unknownTypes, [])
  const e = log.events
  t.equal(e[1].typeName, 'EV_S_CRTM_VERSION')
  t.same(e[1].payload, { kind: 'string', text: '' })
  t.equal(e[2].typeName, 'EV_EFI_PLATFORM_FIRMWARE_BLOB')
  t.same(e[2].payload, { kind: 'firmware-blob', base: 0x820000n, length: 0xe0000n })
  t.equal(
    toHex(e[1].digests.sha256 ?? new Uint8Array()),
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7'
  )
  const sb = e[4].payload
  t.ok(
    sb?.kind === 'efi-variable' &&
      sb.name === 'SecureBoot' &&
      sb.variableGuid === '8be4df61-93ca-11d2-aa0d-00e098032b8c' &&
      sb.data.length === 1
  )
  const dbVar = e[7].payload
  t.ok(
    dbVar?.kind === 'efi-variable' &&
      dbVar.name === 'db' &&
      dbVar.variableGuid === 'd719b2cb-3d3a-4596-a3bc-dad00e67656f'
  )
  t.equal(e[10].typeName, 'EV_EFI_BOOT_SERVICES_APPLICATION')
  const img = e[10].payload
  t.ok(img?.kind === 'efi-image-load' && img.imageLength === 0x7dd7c0n && img.devicePath.length > 0)
  t.same(e[13].payload, { kind: 'string', text: 'Calling EFI Application from Boot Option' })
  t.same(e[9].payload, { kind: 'separator', value: 0, error: false })
  const tag = e[22].payload
  t.ok(tag?.kind === 'event-tag' && tag.tagName === 'Linux initrd' && tag.text === 'Linux initrd')
  t.same(e[24].payload, { kind: 'string', text: 'Exit Boot Services Returned with Success' })
  t.notOk(
    e.some(x => x.payloadError !== undefined),
    'every payload decodes'
  )
  // the YAML from tpm2_eventlog lists the same types in the same order
  const yamlTypes = [...readFileSync(join(OVMF, 'eventlog.yaml'), 'utf8').matchAll(/EventType: (\S+)/g)].map(m => m[1])
  t.same(
    e.map(x => x.typeName),
    yamlTypes
  )
})

t.test('replay reproduces the guest PCRs 0-9 exactly', async t => {
  const pcrs = replayEventLog(parseEventLog(bin)).get('sha256')
  const want = fixturePcrs()
  for (let i = 0; i <= 9; i++)
    t.equal(toHex(pcrs?.get(i) ?? new Uint8Array()), toHex(want.get(i) ?? new Uint8Array(1)), `PCR ${i}`)
  t.same(pcrs?.get(17), new Uint8Array(32).fill(0xff), 'PCR 17 resets to ones')
  t.equal(eventsForPcr(parseEventLog(bin), 0).length, 4, 'PCR 0: S-CRTM version, 2 blobs, separator')
})

t.test('an empty log, and a log without the Spec ID header, are refused', async t => {
  throwsInstance(
    t,
    () => parseEventLog(new Uint8Array(0)),
    DecodeError,
    'empty',
    /the event log is empty: .*Spec ID Event03/
  )
  // SHA1-only legacy (TPM 1.2) log: every record a TCG_PCClientPCREvent, no Spec ID header
  const sha1ev = (pcr: number, type: number, dg: Uint8Array, data: Uint8Array) =>
    new Uint8Array([...le32(pcr), ...le32(type), ...dg, ...le32(data.length), ...data])
  const s1 = cat(
    sha1ev(0, 8, new Uint8Array(20).fill(1), new Uint8Array([0, 0])),
    sha1ev(0, 4, new Uint8Array(20).fill(2), new Uint8Array(4))
  )
  throwsInstance(
    t,
    () => parseEventLog(s1),
    StructureError,
    'SHA1-only log',
    /first event is EV_S_CRTM_VERSION on PCR 0, not the Spec ID header .*not supported at offset 0/
  )
  // the TPM 1.2 header ("Spec ID Event02") names no TPM 2.0 banks either
  const v02 = header.slice()
  v02.set(Buffer.from('Spec ID Event02'), 32)
  throwsInstance(
    t,
    () => parseEventLog(v02),
    StructureError,
    'Spec ID Event02',
    /first event is EV_NO_ACTION \("Spec ID Event02"\) on PCR 0/
  )
  // the header on another PCR is not the header
  const pcr1 = header.slice()
  pcr1[0] = 1
  throwsInstance(
    t,
    () => parseEventLog(pcr1),
    StructureError,
    'header on PCR 1',
    /first event is EV_NO_ACTION on PCR 1, not the Spec ID header/
  )
  // the genuine log still parses from its first byte on
  t.equal(parseEventLog(bin).events.length, 25)
})

t.test('odd logs: header only, unknown type, StartupLocality', async t => {
  const only = parseEventLog(header)
  t.equal(only.events.length, 1)
  t.same(only.banks, ['sha256'])
  t.same(replayEventLog(only).get('sha256')?.get(7), new Uint8Array(32), 'nothing extended')

  const d = new Uint8Array(32).fill(0xab)
  const withUnknown = cat(header, event2(3, 0x12345678, d, new Uint8Array([1, 2, 3])))
  const u = parseEventLog(withUnknown)
  t.equal(u.events[1].typeName, 'UNKNOWN(0x12345678)')
  t.equal(u.events[1].unknownType, true)
  t.same(u.unknownTypes, [0x12345678])
  t.same(
    replayEventLog(u).get('sha256')?.get(3),
    new Uint8Array(createHash('sha256').update(new Uint8Array(32)).update(d).digest()),
    'unknown events are still replayed'
  )

  // a payload that does not decode is reported on the event, not fatal
  const badVar = cat(header, event2(7, 0x80000001, d, new Uint8Array(20)))
  const bv = parseEventLog(badVar)
  t.match(bv.events[1].payloadError, /UnicodeName|VariableDataLength|truncated/)

  // StartupLocality (PFP §10.4.5 (item 3)): EV_NO_ACTION, PCR 0 starts at ...03
  const loc = new Uint8Array([...Buffer.from('StartupLocality\0'), 3])
  const nz = new Uint8Array([
    ...le32(0),
    ...le32(3),
    ...le32(1),
    0x0b,
    0x00,
    ...new Uint8Array(32),
    ...le32(loc.length),
    ...loc
  ])
  const sl = parseEventLog(cat(header, nz, event2(0, 8, d, new Uint8Array(2))))
  t.same(sl.events[1].payload, { kind: 'startup-locality', locality: 3 })
  const init = pcrResetValue('sha256', 0, 3)
  t.equal(init[31], 3)
  t.same(replayEventLog(sl).get('sha256')?.get(0), new Uint8Array(createHash('sha256').update(init).update(d).digest()))
  t.equal(eventTypeName(0x800000e0), 'EV_EFI_VARIABLE_AUTHORITY')
})

t.test('malformed logs are DecodeErrors naming the record and offset', async t => {
  throwsInstance(
    t,
    () => parseEventLog(bin.subarray(0, bin.length - 1)),
    StructureError,
    'truncated last event',
    /event log record #24: event data truncated .* at offset \d+/
  )
  const badPcr = bin.slice()
  badPcr[65] = 99 // record #1's pcrIndex
  throwsInstance(t, () => parseEventLog(badPcr), DecodeError, 'PCR index 99', /pcrIndex 99 is not 0..23 at offset 65/)
  const badAlg = cat(
    header,
    new Uint8Array([...le32(0), ...le32(8), ...le32(1), 0x04, 0x00, ...new Uint8Array(20), ...le32(0)])
  )
  throwsInstance(t, () => parseEventLog(badAlg), DecodeError, 'digest alg not in header', /not in the Spec ID header/)
  const hugeSize = cat(
    header,
    new Uint8Array([...le32(0), ...le32(8), ...le32(1), 0x0b, 0x00, ...new Uint8Array(32), ...le32(0xfffffff0)])
  )
  throwsInstance(t, () => parseEventLog(hugeSize), DecodeError, 'huge eventSize', /eventSize \d+ exceeds/)
  const count = cat(header, new Uint8Array([...le32(0), ...le32(8), ...le32(1000), 0x0b, 0x00]))
  throwsInstance(t, () => parseEventLog(count), DecodeError, 'digest count', /digests.count 1000/)
  const badHeader = header.slice()
  badHeader[32 + 24] = 0 // numberOfAlgorithms = 0
  throwsInstance(t, () => parseEventLog(badHeader), DecodeError, 'no algorithms in header', /numberOfAlgorithms 0/)
  throwsInstance(t, () => parseEventLog(new Uint8Array(600 << 10)), TooLargeError, 'size limit')
})

t.test('fuzz: random + mutated logs only throw DecodeError, and finish', async t => {
  const rnd = prng(0x10ee)
  let bad = 0
  let ok = 0
  for (let i = 0; i < 3000; i++) {
    const input =
      i % 4 === 0
        ? randomBytesFrom(rnd, Math.floor(rnd() * 300))
        : i % 4 === 1
          ? cat(header, randomBytesFrom(rnd, Math.floor(rnd() * 200)))
          : mutate(rnd, bin)
    try {
      const log = parseEventLog(input)
      replayEventLog(log)
      ok++
    } catch (err) {
      if (!(err instanceof InvalidInputError)) {
        bad++
        if (bad < 5) t.fail(String(err))
      }
    }
  }
  t.equal(bad, 0, 'no unexpected exception')
  t.ok(ok > 100, `${ok} inputs parsed`)
})
