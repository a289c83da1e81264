// An attester TPM that counts its quotes (the one-quote-per-round property) and credential
// activations (none once the chain records the AK–EK binding), for tests and benches.
import type { Tpm } from '../../attestation/tpm/index.ts'
import type { AttesterTpm } from '../../agent/p2p/index.ts'

export function countingTpm(tpm: Tpm): { tpm: AttesterTpm; quotes: () => number; activations: () => number } {
  let quotes = 0
  let activations = 0
  return {
    tpm: {
      quote: async o => {
        quotes++
        return await tpm.quote(o)
      },
      pcrRead: async s => await tpm.pcrRead(s),
      activateCredential: async o => {
        activations++
        return await tpm.activateCredential(o)
      },
      ekCertificate: async k => await tpm.ekCertificate(k),
      ekPublic: async k => await tpm.ekPublic(k),
      ensureAk: async o => await tpm.ensureAk(o)
    },
    quotes: () => quotes,
    activations: () => activations
  }
}
