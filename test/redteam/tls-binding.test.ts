// Red team (issue 14): replaying a TPM quote into another round, or under another TLS key, with
// real quotes from swtpm (agent/p2p/responder.ts takes them as a node does). The member's
// binding check (checkEvidenceBinding) must refuse every one on freshness:
//   - round 1's bundle offered whole to a round-2 member;
//   - round 1's quote relabelled with round 2's nonces and a new key (the bundle rebuilt around it);
//   - a fresh round-2 quote that binds the old key while the round named a new one;
//   - a fresh round-2 quote over the new key whose bundle names the old key.
// The genuine round-2 bundle passes (the checks are not refusing everything).
import t from 'tap'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { startSwtpm, type Swtpm } from '../helpers/swtpm.ts'
import { openTpm, type Tpm } from '../../attestation/tpm/index.ts'
import { AttestationResponder, checkEvidenceBinding, EvidenceBindingError } from '../../agent/p2p/index.ts'
import { committeeNonce, type Evidence } from '../../attestation/evidence.ts'
import { spkiSha256 } from '../../agent/tls.ts'

let sw: Swtpm | undefined
let tpm: Tpm | undefined
t.teardown(async () => {
  await tpm?.close()
  await sw?.stop()
})
sw = await startSwtpm()
tpm = await openTpm({ tcti: sw.tcti })
const responder = new AttestationResponder({ tpm, pcrs: [{ hash: 'sha256', pcrs: [0, 7] }] })
const id = await responder.identity()
const registered = { ekCertificate: id.ekCertificate, akPublic: id.akPublic }

const keyHash = (): Uint8Array => spkiSha256(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)
const nonce = (): Uint8Array => new Uint8Array(randomBytes(32))

/** The binding verdict a member with nonce `mine`, in a round that named `tlsKey`, gives. */
function verdict(e: Evidence, mine: Uint8Array, tlsKey: Uint8Array): string {
  try {
    checkEvidenceBinding(e, mine, registered, { tlsKey })
    return 'accepted'
  } catch (err) {
    if (!(err instanceof EvidenceBindingError)) throw err
    return `${err.claim}: ${err.message}`
  }
}

t.test('quotes replayed into another round or under another key are refused (freshness)', async t => {
  const oldKey = keyHash()
  const newKey = keyHash()
  const r1 = [nonce(), nonce()]
  const r2 = [nonce(), nonce()]
  const member = r2[0]
  const round1 = (await responder.evidence(r1, { tlsKey: oldKey })).evidence
  t.equal(verdict(round1, r1[0], oldKey), 'accepted', 'round 1 bundle is genuine for round 1')

  t.match(verdict(round1, member, newKey), /^freshness: my nonce is not among/, 'round 1 bundle replayed whole')

  const relabelled: Evidence = {
    ...round1,
    committeeNonces: r2,
    tlsKey: newKey,
    nonce: committeeNonce(r2, newKey)
  }
  t.match(
    verdict(relabelled, member, newKey),
    /^freshness: the quote was taken for another nonce/,
    'old quote, new labels'
  )

  const staleKey = (await responder.evidence(r2, { tlsKey: oldKey })).evidence
  t.match(
    verdict(staleKey, member, newKey),
    /^freshness: the quote binds TLS key .* not the round's/,
    'fresh quote, old key'
  )

  const genuine = (await responder.evidence(r2, { tlsKey: newKey })).evidence
  const misnamed: Evidence = { ...genuine, tlsKey: oldKey }
  t.match(verdict(misnamed, member, oldKey), /^freshness: evidence nonce is not the hash/, 'new-key quote named as old')

  t.equal(verdict(genuine, member, newKey), 'accepted', 'the genuine round 2 bundle passes')
  t.equal(verdict(genuine, r1[0], newKey).startsWith('freshness'), true, 'and only for round 2 members')
})
