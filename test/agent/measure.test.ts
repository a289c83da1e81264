// agent/measure.ts fails with the one MeasurementError (containers/errors.ts): the class the
// runner throws when a launch cannot be measured, with the same code and disposition.
import t from 'tap'
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { readBootEventLog, simulateMeasuredBoot } from '../../agent/measure.ts'
import { MeasurementError } from '../../containers/errors.ts'
import { silentLogger } from '../../encoding/log.ts'

t.test('a recorded boot is never replayed into a hardware TPM', async t => {
  let extended = 0
  const hardware = {
    info: async () => ({ isSoftware: false }),
    pcrRead: async () => {
      throw new Error('not reached')
    },
    pcrExtend: async () => {
      extended++
    }
  } as unknown as Parameters<typeof simulateMeasuredBoot>[0]
  const err = await simulateMeasuredBoot(hardware, new Uint8Array(0), silentLogger()).then(
    () => undefined,
    (e: unknown) => e
  )
  t.ok(err instanceof MeasurementError, 'MeasurementError from containers/errors.ts')
  t.equal((err as MeasurementError).code, 'ERR_MEASUREMENT')
  t.equal((err as MeasurementError).disposition, 'stop')
  t.equal(extended, 0, 'nothing was extended')
})

t.test('an unreadable boot log is a MeasurementError; a missing one is no log', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-measure-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  t.equal(await readBootEventLog(join(dir, 'absent')), undefined)
  mkdirSync(join(dir, 'a-directory'))
  await t.rejects(readBootEventLog(join(dir, 'a-directory')), MeasurementError)
  // a FIFO would block the reader forever: refused before it is opened
  execFileSync('mkfifo', [join(dir, 'fifo')])
  await t.rejects(readBootEventLog(join(dir, 'fifo')), /firmware event log: .*fifo is not a regular file \(a FIFO\)/)
})
