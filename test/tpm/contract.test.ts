// The Tpm contract suite against swtpm (through its own TCTI, and through the device TCTI over a
// pty, the way a node talks to /dev/tpmrm0), and against a real TPM when QUORATE_TEST_DEVICE_TCTI
// is set (e.g. QUORATE_TEST_DEVICE_TCTI=device:/dev/tpmrm0; it extends PCR 23 and uses handle
// 0x81000AFF as scratch).
import t from 'tap'
import { startSwtpm, ptyDevice } from '../helpers/swtpm.ts'
import { openTpm, type Tpm } from '../../attestation/tpm/index.ts'
import { tpmContract } from './contract.ts'

t.test('swtpm', async t => {
  const sw = await startSwtpm({ platformCert: false })
  t.teardown(() => sw.stop())
  const tpm: Tpm = await openTpm({ tcti: sw.tcti })
  t.teardown(() => tpm.close())
  tpmContract(t, () => tpm, { scratchAkHandle: 0x81000aff, ekCaPems: sw.ekCaPems })
})

t.test('swtpm through the device TCTI (a pty bridged to swtpm)', async t => {
  const sw = await startSwtpm({ platformCert: false })
  t.teardown(() => sw.stop())
  const dev = await ptyDevice(sw)
  t.teardown(() => {
    dev.stop()
  })
  const tpm: Tpm = await openTpm({ tcti: dev.tcti })
  t.teardown(() => tpm.close())
  tpmContract(t, () => tpm, { scratchAkHandle: 0x81000aff, ekCaPems: sw.ekCaPems })
})

const device = process.env.QUORATE_TEST_DEVICE_TCTI
t.test(
  'device TPM',
  { skip: device === undefined || device === '' ? 'set QUORATE_TEST_DEVICE_TCTI to run against a real TPM' : false },
  async t => {
    const tpm: Tpm = await openTpm({ tcti: device })
    t.teardown(() => tpm.close())
    t.comment(JSON.stringify(await tpm.info()))
    tpmContract(t, () => tpm, { scratchAkHandle: 0x81000aff })
  }
)
