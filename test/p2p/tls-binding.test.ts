// The TLS key binding of a certification round (issue 14), over the wire: the embedded chain and
// three genesis verifiers that are real agents (swtpm, full appraisal), and a node driven by hand
// — its own swtpm with the measured boot, libp2p host, responder — so that it can lie. Honest, the
// round passes and the chain records the key the quote bound; a node whose attest.request names
// one key while its quote binds another is failed by the committee (freshness), and the chain
// records no certification for it. The member's check itself is shown case by case first.
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'
import {
  createP2PHost,
  AttestationResponder,
  runCertificationRound,
  chainPort,
  checkEvidenceBinding,
  EvidenceBindingError,
  type ChainPort,
  type P2PHost
} from '../../agent/p2p/index.ts'
import {
  committeeNonce,
  decodeEvidence,
  encodeEvidence,
  evidenceFromJson,
  evidenceToJson,
  TLS_BINDING_DOMAIN,
  type Evidence
} from '../../attestation/evidence.ts'
import { openTpm, type Tpm } from '../../attestation/tpm/index.ts'
import { simulateMeasuredBoot } from '../../agent/measure.ts'
import { defaults } from '../../agent/config.ts'
import { spkiSha256 } from '../../agent/tls.ts'
import { generateChainKey } from '../../chain/index.ts'
import { equal, sha256, utf8 } from '../../encoding/bytes.ts'
import { encode } from '../../encoding/canonical.ts'
import { silentLogger } from '../../encoding/log.ts'

const keyHash = (): Uint8Array => spkiSha256(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)

t.test('qualifying data: sha256(domain ‖ sha256(canonical(nonces)) ‖ tlsKey); without a key, as before', async t => {
  const nonces = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)]
  const k = keyHash()
  t.same(committeeNonce(nonces), sha256(encode(nonces)), 'no key: unchanged')
  t.same(committeeNonce(nonces, k), sha256(utf8.encode(TLS_BINDING_DOMAIN), sha256(encode(nonces)), k))
  t.notSame(committeeNonce(nonces, k), committeeNonce(nonces, keyHash()), 'another key, another quote nonce')
  t.throws(() => committeeNonce(nonces, new Uint8Array(31)), /32 expected/)
})

t.test('the evidence bundle carries tlsKey: 32 bytes, only beside committee nonces, in both encodings', async t => {
  const k = keyHash()
  const base = {
    version: 1 as const,
    nonce: committeeNonce([new Uint8Array(32)], k),
    quote: { attest: new Uint8Array(8), signature: new Uint8Array(8) },
    pcrs: {},
    akPublic: new Uint8Array(1),
    ekCertificate: new Uint8Array(1),
    committeeNonces: [new Uint8Array(32)],
    tlsKey: k
  }
  t.same(decodeEvidence(encodeEvidence(base)).tlsKey, k, 'CBOR round trip')
  t.same(evidenceFromJson(evidenceToJson(base)).tlsKey, k, 'JSON round trip')
  t.throws(() => encodeEvidence({ ...base, tlsKey: new Uint8Array(31) }), /tlsKey/, 'not 32 bytes: refused')
  t.throws(
    () => encodeEvidence({ ...base, committeeNonces: undefined }),
    /only bound with committeeNonces/,
    'without committee nonces: refused'
  )
})

t.test('a member refuses a quote that does not bind exactly the round’s key (freshness)', async t => {
  const mine = new Uint8Array(32).fill(7)
  const k = keyHash()
  const other = keyHash()
  const ev = (tlsKey?: Uint8Array, nonceKey?: Uint8Array): Evidence => ({
    version: 1,
    nonce: committeeNonce([mine], nonceKey),
    quote: { attest: new Uint8Array(8), signature: new Uint8Array(8) },
    pcrs: {},
    akPublic: new Uint8Array(1),
    ekCertificate: new Uint8Array(1),
    committeeNonces: [mine],
    ...(tlsKey === undefined ? {} : { tlsKey })
  })
  const why = (e: Evidence, round: { tlsKey?: Uint8Array }): string => {
    try {
      checkEvidenceBinding(e, mine, undefined, round)
      return 'accepted'
    } catch (err) {
      if (!(err instanceof EvidenceBindingError)) throw err
      return `${err.claim}: ${err.message}`
    }
  }
  t.match(why(ev(other, other), { tlsKey: k }), /^freshness: the quote binds TLS key .* not the round's/)
  t.match(why(ev(undefined, undefined), { tlsKey: k }), /^freshness: the quote binds no TLS key/)
  t.match(why(ev(k, k), {}), /^freshness: the quote binds a TLS key the round did not ask to bind/)
  t.match(
    why(ev(k, undefined), { tlsKey: k }),
    /^freshness: evidence nonce is not the hash of the committee nonces and the TLS key/,
    'the key named in the bundle but left out of the quote nonce'
  )
  // the right key and nonce get past the binding to the quote itself (unreadable here)
  t.match(why(ev(k, k), { tlsKey: k }), /^freshness: quote is unreadable/)
})

t.test('over the wire with real agents as the committee', async t => {
  const net = await startTestNetwork({ verifiers: 3 })
  let host: P2PHost | undefined
  let tpm: Tpm | undefined
  t.teardown(async () => {
    await host?.stop()
    await tpm?.close()
    await net.stop()
  })
  const sw = await net.newSwtpm()
  tpm = await openTpm({ tcti: sw.tcti })
  await simulateMeasuredBoot(tpm, net.bootLog, silentLogger())
  const key = await generateChainKey()
  host = await createP2PHost({ privateKey: privateKeyFromProtobuf(key.protobuf), listen: ['/ip4/127.0.0.1/tcp/0'] })
  const bootLog = net.bootLog
  const responder = new AttestationResponder({
    tpm,
    logs: { eventLog: async () => bootLog },
    pcrs: [{ hash: 'sha256', pcrs: [...defaults.pcrs] }]
  })
  await responder.register(host)
  const id = await responder.identity()
  await net.chain.send(
    'node.register',
    {
      nodeId: key.peerId,
      ekCertificate: id.ekCertificate,
      akPublic: id.akPublic,
      addrs: host.getMultiaddrs().map(a => a.toString()),
      platform: PLATFORM,
      os: OS_IMAGE
    },
    key
  )
  const honest = chainPort(net.chain, key, { pollMs: 50 })
  const mine = keyHash()

  const ok = await runCertificationRound({ host, responder, chain: honest, tlsKey: mine, verdictTimeoutMs: 10_000 })
  t.equal(ok.outcome, 'pass', `the honest round passes (${ok.pass} pass / ${ok.fail} fail)`)
  const rec = (await net.chain.node(key.peerId))?.record
  t.ok(rec?.tlsKey !== undefined && equal(rec.tlsKey, mine), 'the chain records the key the quote bound')

  // the request names one key (say, the one a client would be shown), the quote binds another
  const shown = keyHash()
  const liar: ChainPort = {
    ...honest,
    requestAttestation: async (nodeId, o) => await honest.requestAttestation(nodeId, { ...o, tlsKey: shown })
  }
  const bad = await runCertificationRound({ host, responder, chain: liar, tlsKey: mine, verdictTimeoutMs: 10_000 })
  t.equal(bad.outcome, 'fail', 'the committee fails it')
  t.same(bad.failedClaims, ['freshness'], 'on freshness alone: the rest of the evidence is genuine')
  t.equal(bad.pass, 0, 'no member passed it')
  const view = await net.chain.node(key.peerId)
  t.not(view?.effective, 'certified', 'the failed round ends the certification')
  const seed = await net.chain.seed(key.peerId, bad.round)
  t.ok(seed.tlsKey !== undefined && equal(seed.tlsKey, shown), 'the round on chain named the shown key')
  t.equal(
    view?.record?.tlsKey,
    undefined,
    'the chain records no TLS key for a failed node (the shown one least of all)'
  )
})
