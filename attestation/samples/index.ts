// Sample measured boots that ship with quorate, for the demo, `quorate tpm simulate` networks and
// tests: what firmware measured on a real (virtual) machine, to replay into a software TPM and to
// publish reference values from. See measured-boot/README.md for how each was recorded.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The folder of the sample boots, one subfolder each. */
export const SAMPLE_BOOTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'measured-boot')

/** A genuine UEFI measured boot: QEMU q35, 2 CPUs, Debian's OVMF 2022.11, Linux 6.1 (eventlog.bin, pcrs_guest.txt, eventlog.yaml). */
export const OVMF_Q35_SMP2_DIR = join(SAMPLE_BOOTS_DIR, 'ovmf-q35-smp2')

/** Its TCG PC Client firmware event log (crypto-agile, sha256 bank). */
export const SAMPLE_BOOT_LOG = join(OVMF_Q35_SMP2_DIR, 'eventlog.bin')

/** The sample event log's bytes. */
export function sampleBootLog (): Uint8Array {
  return new Uint8Array(readFileSync(SAMPLE_BOOT_LOG))
}
