// A fresh software TPM per test (STYLE.md §11, tier 2): the product's simulator
// (attestation/tpm/simulator.ts — swtpm manufactured with EK certificates from a local CA, served
// on free loopback ports), each in its own temp dir that stop() removes; plus a pty bridge that
// makes one look like a character device.
//
//   const sw = await startSwtpm()
//   const tpm = await openTpm({ tcti: sw.tcti })
//   ...
//   await tpm.close(); await sw.stop()
import { existsSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { spawnClean } from '../../encoding/process.ts'
import type { Swtpm } from '../../attestation/tpm/simulator.ts'

export { startSwtpm, createSwtpmCa, type Swtpm, type SwtpmOptions } from '../../attestation/tpm/simulator.ts'

export interface PtyDevice {
  /** `device:<pty>`: the device TCTI, as a node uses it with /dev/tpmrm0. */
  readonly tcti: string
  /** The pty's own path (/dev/pts/N), which descriptors opened by the TCTI point at. */
  readonly path: string
  stop(): void
}

/**
 * swtpm as a character device: socat bridges a raw pseudo-terminal to swtpm's command port, so
 * the device TCTI writes commands to and reads responses from it exactly as from the kernel's
 * /dev/tpmrm0 (one command, one response). There is no resource manager behind it: one client.
 */
export async function ptyDevice(sw: Swtpm): Promise<PtyDevice> {
  const link = join(sw.dir, 'tpm-pty')
  const socat = spawnClean('socat', [`PTY,link=${link},rawer,echo=0`, `TCP:127.0.0.1:${sw.port}`], {
    stdio: ['ignore', 'ignore', 'inherit']
  })
  for (let i = 0; !existsSync(link); i++) {
    if (i > 250 || socat.exitCode !== null) {
      socat.kill()
      throw new Error(`socat did not create ${link} (exit ${String(socat.exitCode)})`)
    }
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const path = readlinkSync(link)
  return {
    tcti: `device:${path}`,
    path,
    stop: () => {
      socat.kill()
    }
  }
}
