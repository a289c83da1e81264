// Unit tests of the node side (fake TPM): one quote per batch, and a slow TPM never has more
// than one quote in flight and one batch waiting.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { AttestationResponder } from '../../agent/p2p/index.ts'
import { decodeEvidence, committeeNonce } from '../../attestation/evidence.ts'
import { equal } from '../../encoding/bytes.ts'
import { FakeTpm, GatedTpm } from './fakes.ts'

const nonce = (): Uint8Array => new Uint8Array(randomBytes(32))

t.test('evidence: one quote over the hash of all nonces, bundle lists them', async t => {
  const tpm = new FakeTpm('n')
  const r = new AttestationResponder({ tpm })
  const ns = [nonce(), nonce(), nonce()]
  const { bytes, evidence } = await r.evidence(ns)
  t.equal(tpm.quotes, 1)
  t.same(evidence.committeeNonces, ns)
  t.ok(equal(evidence.nonce, committeeNonce(ns)))
  t.same(decodeEvidence(bytes), evidence)
  await t.rejects(r.evidence([]))
})

t.test('slow TPM: requests arriving during a quote share the next one', async t => {
  const tpm = new GatedTpm('slow')
  const r = new AttestationResponder({ tpm, batchWindowMs: 5 })
  const asked: Uint8Array[] = [nonce()]
  const firstGate = tpm.nextQuote()
  const answers: Promise<Uint8Array>[] = [r.evidenceBatched(asked[0])]
  const releaseFirst = await firstGate // the first batch is being quoted now
  for (let i = 1; i < 9; i++) {
    asked.push(nonce())
    answers.push(r.evidenceBatched(asked[i]))
    await new Promise(resolve => setTimeout(resolve, 10)) // longer than the window: without the wait for the TPM, each would be its own batch
  }
  releaseFirst()
  const got = await Promise.all(answers)
  t.equal(tpm.quotes, 2, 'nine verifiers, two quotes')
  got.forEach((b, i) => {
    const e = decodeEvidence(b)
    t.ok(
      e.committeeNonces?.some(n => equal(n, asked[i])),
      `verifier ${i} finds its nonce`
    )
  })
})

t.test('a PCR extended between quote and read: quoted again, bundle consistent', async t => {
  const tpm = new FakeTpm('moving')
  const extended = new Uint8Array(32).fill(5)
  const quote = tpm.quote.bind(tpm)
  let first = true
  tpm.quote = async o => {
    const q = await quote(o)
    if (first) {
      first = false
      tpm.pcr0 = extended
    } // a container launch lands right after the quote
    return q
  }
  const r = new AttestationResponder({ tpm })
  const { evidence } = await r.evidence([nonce()])
  t.equal(tpm.quotes, 2, 'quoted again')
  t.same(evidence.pcrs.sha256?.['0'], extended, 'values match the second quote')
})
