// The chain's re-appraisal for fault proofs (chain/types.ts FaultAppraiser), built from the same
// attestation/appraise the committee members run (agent/p2p/appraiser.ts) with the same default
// policy, so a member that followed the protocol is never found at fault. Pure: evidence bytes,
// reference values and an image lookup in, failed claims out — every validator agrees.
//
// What it cannot replay — the member's own nonce and the credential it issued — it assumes good
// (freshness and identity are not judged by the chain; see FAULT_CLAIMS). Evidence not from the
// node's registered EK and AK proves nothing about the node: every claim fails.
import { appraise, CLAIMS, type AppraisalPolicy } from '../../attestation/appraise.ts'
import { parseContainerLog } from '../../attestation/containerlog.ts'
import { decodeEvidence, type Evidence } from '../../attestation/evidence.ts'
import { prepareReferences } from '../../attestation/refs.ts'
import type { FaultAppraiser } from '../../chain/types.ts'
import { equal } from '../../encoding/bytes.ts'

export function createFaultAppraiser(
  opts: { policy?: Omit<AppraisalPolicy, 'nonce' | 'credentialActivated' | 'allowedImages'> } = {}
): FaultAppraiser {
  return {
    appraise({ evidence: bytes, registered, refs, imageAllowed, time }) {
      const all = { failedClaims: [...CLAIMS] }
      let evidence: Evidence
      try {
        evidence = decodeEvidence(bytes)
      } catch {
        return all
      }
      if (!equal(evidence.ekCertificate, registered.ekCertificate) || !equal(evidence.akPublic, registered.akPublic))
        return all
      let images: string[] = []
      if (evidence.containerLog !== undefined) {
        try {
          // with the logged image string: an app launch ("<name>@<version>") is judged as the members do
          images = [
            ...new Set(
              parseContainerLog(evidence.containerLog)
                .filter(e => imageAllowed(e.record.digest, e.record.image))
                .map(e => e.record.digest)
            )
          ]
        } catch {} // appraise reports the malformed log
      }
      const sha256Only = <T extends { bank: string }>(xs: readonly T[]): (T & { bank: 'sha256' })[] =>
        xs.filter((x): x is T & { bank: 'sha256' } => x.bank === 'sha256')
      const a = appraise(
        evidence,
        prepareReferences({ ekCas: refs.ekCas, firmware: sha256Only(refs.firmware), os: sha256Only(refs.os) }),
        {
          ...opts.policy,
          // a committee quote answers every member's nonce; any of them stands for the member's
          nonce: evidence.committeeNonces?.[0] ?? evidence.nonce,
          credentialActivated: true,
          allowedImages: images,
          // block time, never the machine's clock: every validator (and a replay) must agree
          now: time
        }
      )
      return { failedClaims: CLAIMS.filter(c => !a.status[c].ok) }
    }
  }
}
