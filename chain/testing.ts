// TEST DOUBLE — for unit tests of chain/ only. The real QuorumRules live in attestation/quorum
// and are injected by the composition root. This double checks no signatures: it accepts any
// "QC" that is canonical CBOR `{ outcome, expiresAt, committee? }` whose committee members are
// all candidates, so state-machine tests can drive certification without verifier nodes.
import { decode, encode, asMap, is } from '../encoding/canonical.ts'
import { InvalidInputError } from '../encoding/errors.ts'
import type { QuorumRules } from './types.ts'

export function encodeTestOnlyQc (qc: { outcome: 'pass' | 'fail', expiresAt: number, committee?: string[] }): Uint8Array {
  return encode({ outcome: qc.outcome, expiresAt: qc.expiresAt, committee: qc.committee })
}

export function createTestOnlyQuorumRules (): QuorumRules & { calls: number } {
  const rules = {
    calls: 0,
    verifyCertificate (input: Parameters<QuorumRules['verifyCertificate']>[0]): ReturnType<QuorumRules['verifyCertificate']> {
      rules.calls++
      let m
      try { m = asMap(decode(input.qc), 'test qc') } catch (err) { throw new InvalidInputError(`test qc: ${(err as Error).message}`) }
      const outcome = m.outcome
      const expiresAt = m.expiresAt
      if ((outcome !== 'pass' && outcome !== 'fail') || !is.uint(expiresAt ?? null)) throw new InvalidInputError('test qc: needs outcome and expiresAt')
      const ids = new Set(input.candidates.map(c => c.nodeId))
      const committee = is.array(m.committee ?? null) ? (m.committee as string[]) : input.candidates.slice(0, 7).map(c => c.nodeId)
      for (const c of committee) if (!ids.has(c)) throw new InvalidInputError(`test qc: ${c} is not a candidate`)
      return { outcome, expiresAt: expiresAt as number, committee }
    }
  }
  return rules
}
