// The "measuring" step. On real hardware the firmware has already measured the boot chain
// into PCRs 0–9 and written the TCG event log; the agent only reads the log. With a software TPM
// (swtpm, demos and tests) nothing measured anything, so the agent can replay a recorded boot log
// into the TPM — loudly, and only into PCRs that are still in their reset state, so it can never
// paper over a real measurement.
import { parseEventLog, EV_NO_ACTION, EVENT_LOG_LIMITS } from '../attestation/eventlog.ts'
import { FileInputError, readInputFile } from '../encoding/files.ts'
import { MeasurementError } from '../containers/errors.ts'
import { equal } from '../encoding/bytes.ts'
import type { Tpm } from '../attestation/tpm/index.ts'
import type { Logger } from '../encoding/log.ts'

/**
 * Reads the firmware event log — a regular file of at most the event log limit (securityfs
 * reports size 0 and is read up to the limit); undefined when the platform exposes none.
 */
export async function readBootEventLog(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readInputFile(path, { label: 'firmware event log', maxBytes: EVENT_LOG_LIMITS.maxBytes })
  } catch (err) {
    if (err instanceof FileInputError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')
      return undefined
    throw new MeasurementError(`cannot read the firmware event log: ${(err as Error).message}`, { cause: err })
  }
}

export interface SimulatedBootResult {
  extended: number
  skipped: boolean
}

/**
 * Extends every measured event of `log` (sha256 bank) into the TPM, as firmware would have.
 * Refuses a hardware TPM. Skips (returns skipped) when the log's PCRs are already non-zero —
 * the agent restarted without a TPM reset and the boot is already measured.
 */
export async function simulateMeasuredBoot(
  tpm: Pick<Tpm, 'info' | 'pcrRead' | 'pcrExtend'>,
  log: Uint8Array,
  logger: Logger
): Promise<SimulatedBootResult> {
  const info = await tpm.info()
  if (!info.isSoftware) throw new MeasurementError('refusing to replay a recorded boot log into a hardware TPM')
  const parsed = parseEventLog(log)
  const events = parsed.events.filter(e => e.type !== EV_NO_ACTION && e.digests.sha256 !== undefined)
  const pcrs = [...new Set(events.map(e => e.pcr))].sort((a, b) => a - b)
  const now = await tpm.pcrRead([{ hash: 'sha256', pcrs }])
  const values = now.banks.find(b => b.hash === 'sha256')?.values ?? new Map<number, Uint8Array>()
  const zero = new Uint8Array(32)
  if ([...values.values()].some(v => !equal(v, zero))) {
    logger.info('PCRs already hold a measured boot; not replaying the boot log again')
    return { extended: 0, skipped: true }
  }
  logger.warn(
    'SOFTWARE TPM: replaying a recorded measured boot into it — this node proves nothing about real hardware',
    { events: events.length }
  )
  for (const e of events) await tpm.pcrExtend(e.pcr, { sha256: e.digests.sha256 as Uint8Array })
  return { extended: events.length, skipped: false }
}
