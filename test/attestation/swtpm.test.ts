// Device tier (STYLE.md §11): a real TPM (swtpm, through our addon) reproduces the OVMF boot by
// extending every fixture event into its PCRs, launches two "containers" into PCR 13, quotes
// with its AK, and the pure verifier appraises that genuine evidence against the fixture
// references: every claim passes; a TPM reset is then visible as a freshness failure.
import t from 'tap'
import { existsSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { appraise } from '../../attestation/appraise.ts'
import { checkQuote } from '../../attestation/quote.ts'
import { createEkTrustStore, verifyEkCertificate } from '../../attestation/ekcert.ts'
import { parseEventLog, eventsForPcr } from '../../attestation/eventlog.ts'
import { parseContainerLog } from '../../attestation/containerlog.ts'
import { encodeEvidence, decodeEvidence, committeeNonce, type Evidence } from '../../attestation/evidence.ts'
import { objectName, parsePublic } from '../../attestation/tpm2.ts'
import { fixtureEventLog, fixtureRefs, containerLog } from './scenario.ts'

const ADDON = new URL('../../attestation/tpm/build/Release/quorate_tpm.node', import.meta.url)

t.test(
  'a real TPM quote over a replayed OVMF boot appraises clean',
  { skip: existsSync(ADDON) ? false : 'TPM addon not built' },
  async t => {
    const { openTpm } = await import('../../attestation/tpm/index.ts')
    const { startSwtpm } = await import('../helpers/swtpm.ts')
    const sw = await startSwtpm({ platformCert: false })
    t.teardown(() => sw.stop())
    let tpm = await openTpm({ tcti: sw.tcti })
    t.teardown(() => tpm.close())

    const log = parseEventLog(fixtureEventLog())
    for (let pcr = 0; pcr <= 9; pcr++)
      for (const e of eventsForPcr(log, pcr)) await tpm.pcrExtend(pcr, { sha256: e.digests.sha256 as Uint8Array })
    const clog = containerLog()
    for (const e of parseContainerLog(clog)) await tpm.pcrExtend(13, { sha256: e.eventDigest })

    const ak = await tpm.ensureAk()
    t.same(objectName(ak.public), ak.name, 'AK name computed like the TPM')
    const ekCertificate = await tpm.ekCertificate('rsa2048')
    if (ekCertificate === undefined) throw new Error('swtpm has no EK certificate')
    const store = createEkTrustStore(sw.ekCaPems)
    t.ok(
      verifyEkCertificate(ekCertificate, store, { ekPublic: await tpm.ekPublic('rsa2048') }),
      'EK certificate chains and matches the TPM EK'
    )

    // one quote for a committee of three
    const members = [0, 1, 2].map(() => new Uint8Array(randomBytes(32)))
    const nonce = committeeNonce(members)
    const sel = [{ hash: 'sha256' as const, pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13] }]
    const q = await tpm.quote({ nonce, pcrs: sel })
    const read = await tpm.pcrRead(sel)
    const values: Record<string, Uint8Array> = {}
    for (const [i, v] of read.banks[0].values) values[String(i)] = v
    const evidence: Evidence = decodeEvidence(
      encodeEvidence({
        version: 1,
        nonce,
        quote: q,
        pcrs: { sha256: values },
        akPublic: ak.public,
        ekCertificate,
        eventLog: fixtureEventLog(),
        containerLog: clog,
        committeeNonces: members
      })
    )
    const vq = checkQuote(
      { attest: q.attest, signature: q.signature, akPublic: ak.public, pcrs: evidence.pcrs },
      { nonce }
    )
    t.same(vq.problems, [], 'the TPM quote verifies')
    t.equal(parsePublic(ak.public).type, 'ecc')

    const refsWithCa = { ...fixtureRefs(), ekCas: sw.ekCaPems.map(p => new Uint8Array(Buffer.from(p))) }
    const results = members.map(m => appraise(evidence, refsWithCa, { nonce: m }))
    for (const a of results) t.equal(a.ok, true, a.failures.join('\n') || 'member affirms')
    t.equal(new Set(results.map(a => a.digest)).size, 1, 'members that agree produce one digest')
    const clock = vq.attest?.clockInfo
    if (clock === undefined) throw new Error('no clock info')

    // TPM reset (reboot): resetCount moves, PCRs are back at zero
    await tpm.close()
    await sw.restart()
    tpm = await openTpm({ tcti: sw.tcti })
    const n2 = new Uint8Array(randomBytes(32))
    const q2 = await tpm.quote({ nonce: n2, pcrs: sel })
    const read2 = await tpm.pcrRead(sel)
    const v2: Record<string, Uint8Array> = {}
    for (const [i, v] of read2.banks[0].values) v2[String(i)] = v
    const a2 = appraise(
      { ...evidence, nonce: n2, quote: q2, pcrs: { sha256: v2 }, committeeNonces: undefined },
      refsWithCa,
      { nonce: n2, previousClock: clock }
    )
    t.equal(a2.status.identity.ok, true, 'same TPM, same AK')
    t.match(a2.status.freshness.failures, [
      /the TPM was reset since the previous quote \(resetCount \d+ → \d+\): the node rebooted/
    ])
    t.match(
      a2.status.firmware.failures.join('\n'),
      /PCR 0: the event log replays to 3e695b1035f9b7fa… but the quote says 0000000000000000…/,
      'PCRs were reset with the TPM'
    )
  }
)
