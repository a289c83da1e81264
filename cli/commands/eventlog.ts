// `quorate eventlog show FILE` — the decoded TCG PC Client firmware event log (PFP §10);
// `quorate eventlog replay FILE` — PCR values the log replays to, per bank. FILE is a binary log
// (e.g. /sys/kernel/security/tpm0/binary_bios_measurements). `--json` prints the objects.
import type { CommandModule } from 'yargs'
import { parseEventLog, replayEventLog, type TcgEvent, type EventPayload } from '../../attestation/eventlog.ts'
import { toHex } from '../../encoding/bytes.ts'
import { readInputFile } from '../../encoding/files.ts'
import { emit, type GlobalArgs } from '../output.ts'
import { FILE_LIMITS } from '../inputs.ts'

interface FileArgs extends GlobalArgs {
  file: string
  pcr?: number[]
}

async function load(path: string): Promise<ReturnType<typeof parseEventLog>> {
  return parseEventLog(await readInputFile(path, { label: 'event log', maxBytes: FILE_LIMITS.eventLog }))
}

function payloadText(p: EventPayload | undefined): string {
  if (p === undefined) return ''
  switch (p.kind) {
    case 'spec-id':
      return `${p.specId.signature} algorithms ${p.specId.algorithms.map(a => `${a.hash ?? '0x' + a.algorithmId.toString(16)}/${a.digestSize}`).join(',')}`
    case 'startup-locality':
      return `StartupLocality ${p.locality}`
    case 'no-action':
      return p.signature
    case 'string':
      return JSON.stringify(p.text)
    case 'separator':
      return p.error ? 'error separator' : 'separator'
    case 'efi-variable':
      return `${p.name} {${p.variableGuid}} ${p.data.length} bytes`
    case 'efi-image-load':
      return `image at 0x${p.imageLocation.toString(16)} length 0x${p.imageLength.toString(16)}, device path ${p.devicePath.length} bytes`
    case 'firmware-blob':
      return `${p.description !== undefined ? p.description + ' ' : ''}blob 0x${p.base.toString(16)} length 0x${p.length.toString(16)}`
    case 'event-tag':
      return `tag 0x${p.tagId.toString(16)}${p.tagName !== undefined ? ` (${p.tagName})` : ''}${p.text !== undefined ? ` ${JSON.stringify(p.text)}` : ''}`
  }
}

function eventJson(e: TcgEvent): Record<string, unknown> {
  return {
    index: e.index,
    offset: e.offset,
    pcr: e.pcr,
    type: e.typeName,
    digests: Object.fromEntries(Object.entries(e.digests).map(([k, v]) => [k, toHex(v)])),
    size: e.data.length,
    ...(e.payload !== undefined ? { payload: e.payload } : {}),
    ...(e.payloadError !== undefined ? { payloadError: e.payloadError } : {}),
    ...(e.unknownType === true ? { unknownType: true } : {})
  }
}

const show: CommandModule<GlobalArgs, FileArgs> = {
  command: 'show <file>',
  describe: 'decode a TCG PC Client firmware event log (crypto-agile, starting with the Spec ID header)',
  builder: y =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'binary event log' })
      .option('pcr', { type: 'number', array: true, describe: 'only events of these PCRs' }),
  handler: async argv => {
    const log = await load(argv.file)
    const events = log.events.filter(e => argv.pcr === undefined || argv.pcr.includes(e.pcr))
    const unknownTypes = log.unknownTypes.map(t => '0x' + t.toString(16))
    emit(
      argv,
      { format: log.format, banks: log.banks, specId: log.specId, unknownTypes, events: events.map(eventJson) },
      () =>
        [
          `${log.format} log, ${log.events.length} events, banks ${log.banks.join(',') || '(none)'}${unknownTypes.length > 0 ? `, unknown event types ${unknownTypes.join(',')}` : ''}`,
          ...events.map(e => {
            const d = log.banks.map(b => `${b}:${toHex(e.digests[b] ?? new Uint8Array()).slice(0, 16)}…`).join(' ')
            return `#${String(e.index).padStart(3)} PCR ${String(e.pcr).padStart(2)} ${e.typeName.padEnd(34)} ${d}  ${payloadText(e.payload)}${e.payloadError !== undefined ? ` [undecoded: ${e.payloadError}]` : ''}`
          })
        ].join('\n')
    )
  }
}

const replay: CommandModule<GlobalArgs, FileArgs> = {
  command: 'replay <file>',
  describe: 'replay a firmware event log into PCR values per bank',
  builder: y =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'binary event log' })
      .option('pcr', { type: 'number', array: true, describe: 'only these PCRs (default: those the log extends)' }),
  handler: async argv => {
    const log = await load(argv.file)
    const touched = [...new Set(log.events.filter(e => e.type !== 3).map(e => e.pcr))].sort((a, b) => a - b)
    const pcrs = argv.pcr ?? touched
    const banks = replayEventLog(log)
    const out: Record<string, Record<string, string>> = {}
    for (const [bank, values] of banks)
      out[bank] = Object.fromEntries(pcrs.map(p => [String(p), toHex(values.get(p) ?? new Uint8Array())]))
    emit(argv, { pcrs: out }, () =>
      Object.entries(out)
        .flatMap(([bank, v]) => Object.entries(v).map(([p, h]) => `${bank} ${p.padStart(2)} ${h}`))
        .join('\n')
    )
  }
}

const eventlog: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'eventlog <command>',
  describe: 'TCG firmware event logs: decode and replay',
  builder: y => y.command(show).command(replay).demandCommand(1, 'name an eventlog command: show, replay'),
  handler: () => {}
}

export default [eventlog]
