// PCR reference values from the command line, shared by `quorate vendor publish-firmware` and
// `quorate os publish`: --bank, --eventlog FILE (with --pcrs and --golden), --pcr N=HEX, --event N=HEX.
import { DIGEST_SIZE, isHashAlg, type HashAlg } from '../attestation/algs.ts'
import { parseEventLog, replayEventLog, eventsForPcr } from '../attestation/eventlog.ts'
import type { HashBank, PcrRefs } from '../chain/types.ts'
import { fromHex, toHex } from '../encoding/bytes.ts'
import { InvalidInputError } from '../encoding/errors.ts'
import { readInputFile } from '../encoding/files.ts'
import { progress, type GlobalArgs } from './output.ts'
import { FILE_LIMITS } from './inputs.ts'

function pcrRange(s: string): Set<number> {
  const out = new Set<number>()
  for (const part of s.split(',')) {
    const m = /^(\d{1,2})(?:-(\d{1,2}))?$/.exec(part.trim())
    if (m === null) throw new InvalidInputError(`--pcrs ${JSON.stringify(s)}: expected a list like 0-7 or 0,2,4`)
    for (let i = Number(m[1]); i <= Number(m[2] ?? m[1]); i++) if (i <= 23) out.add(i)
  }
  return out
}

/** Reference values from a TCG event log: each PCR's event digests, and (with golden) the replayed final value. */
export function refsFromEventLog(bytes: Uint8Array, bank: HashBank, pcrs: Set<number>, golden: boolean): PcrRefs {
  const log = parseEventLog(bytes)
  if (!log.banks.includes(bank))
    throw new InvalidInputError(`the event log has no ${bank} digests (banks: ${log.banks.join(', ') || 'none'})`)
  const out: PcrRefs = {}
  const finals = golden ? replayEventLog(log, [bank]).get(bank) : undefined
  for (const pcr of [...pcrs].sort((a, b) => a - b)) {
    const seen = new Map<string, Uint8Array>()
    for (const e of eventsForPcr(log, pcr)) {
      const d = e.digests[bank]
      if (d !== undefined) seen.set(toHex(d), d)
    }
    if (seen.size === 0) continue
    const entry: { golden?: Uint8Array[]; events?: Uint8Array[] } = { events: [...seen.values()] }
    const f = finals?.get(pcr)
    if (f !== undefined) entry.golden = [f]
    out[String(pcr)] = entry
  }
  return out
}

/** --pcr N=HEX golden values and --event N=HEX event digests, each checked against the bank's digest size. */
function pcrRefsFromArgs(
  golden: readonly string[],
  events: readonly string[],
  bank: HashAlg
): Record<string, { golden?: Uint8Array[]; events?: Uint8Array[] }> {
  const out: Record<string, { golden?: Uint8Array[]; events?: Uint8Array[] }> = {}
  const add = (spec: string, kind: 'golden' | 'events', flag: string): void => {
    const m = /^(\d{1,2})=(?:0x)?([0-9a-fA-F]+)$/.exec(spec)
    if (m === null || Number(m[1]) > 23)
      throw new InvalidInputError(`${flag} ${JSON.stringify(spec)}: expected PCR=HEX, e.g. 7=ab12… (PCR 0–23)`)
    const d = fromHex(m[2], flag)
    if (d.byteLength !== DIGEST_SIZE[bank])
      throw new InvalidInputError(
        `${flag} ${spec}: a ${bank} digest has ${DIGEST_SIZE[bank]} bytes, not ${d.byteLength}`
      )
    const e = (out[String(Number(m[1]))] ??= {})
    const list = (e[kind] ??= [])
    if (!list.some(x => toHex(x) === toHex(d))) list.push(d)
  }
  for (const g of golden) add(g, 'golden', '--pcr')
  for (const e of events) add(e, 'events', '--event')
  return out
}

export interface PcrRefArgs extends GlobalArgs {
  bank: string
  eventlog?: string
  pcrs: string
  golden?: boolean
  pcr?: string[]
  event?: string[]
}

/**
 * The bank and reference values the options describe: the event log's first (if given), then the
 * --pcr/--event values appended per PCR. May be empty; the caller says what was missing.
 */
export async function pcrRefsFromOptions(argv: PcrRefArgs): Promise<{ bank: HashAlg; pcrs: PcrRefs }> {
  if (!isHashAlg(argv.bank)) throw new InvalidInputError(`--bank ${argv.bank}: expected sha1, sha256, sha384 or sha512`)
  const bank = argv.bank
  let pcrs: PcrRefs = {}
  if (argv.eventlog !== undefined) {
    pcrs = refsFromEventLog(
      await readInputFile(argv.eventlog, { label: '--eventlog', maxBytes: FILE_LIMITS.eventLog }),
      bank,
      pcrRange(argv.pcrs),
      argv.golden === true
    )
    progress(
      argv,
      `event log ${argv.eventlog}: ${Object.entries(pcrs)
        .map(([k, v]) => `PCR ${k}: ${v.events?.length ?? 0} event digests`)
        .join(', ')}`
    )
  }
  for (const [k, v] of Object.entries(pcrRefsFromArgs(argv.pcr ?? [], argv.event ?? [], bank))) {
    const e = (pcrs[k] ??= {})
    if (v.golden !== undefined) e.golden = [...(e.golden ?? []), ...v.golden]
    if (v.events !== undefined) e.events = [...(e.events ?? []), ...v.events]
  }
  return { bank, pcrs }
}
