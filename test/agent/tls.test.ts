// agent/tls.ts and encoding/der.ts without a network: the node certificate builds, parses back
// (node id, chain id, SPKI hash), Node's TLS accepts it with a pinned key (both ways a client can
// pin), the key file is made 0600 and refused when others can read it or it is not P-256, and
// the certificate parser survives random and mutated input with its own errors only (fuzz).
import t from 'tap'
import { X509Certificate, createHash, generateKeyPairSync, createPublicKey } from 'node:crypto'
import { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs'
import { createServer } from 'node:tls'
import { connect, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  buildNodeCertificate,
  certificatePem,
  checkPeerCertificate,
  loadOrCreateTlsKey,
  parseNodeCertificate,
  pinnedCheckServerIdentity,
  spkiSha256,
  startHttpsApi,
  verifyTlsSocket,
  NODE_IDENTITY_OID,
  QUORATE_OID_ARC,
  TlsCertificateError,
  TlsPinError
} from '../../agent/tls.ts'
import * as der from '../../encoding/der.ts'
import { loadConfig } from '../../agent/config.ts'
import { equal, toHex } from '../../encoding/bytes.ts'
import { ConfigError, QuorateError } from '../../encoding/errors.ts'
import { silentLogger } from '../../encoding/log.ts'

const dir = mkdtempSync(join(tmpdir(), 'quorate-tls-'))
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true })
})
const newKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
const key = newKey()
const NODE = '12D3KooWQuorateTestNode'
const CHAIN = 'tls-test-chain'
const cert = buildNodeCertificate({ key, nodeId: NODE, chainId: CHAIN })

t.test('DER: OIDs with 128-bit arcs and both time forms round-trip', async t => {
  const o = der.oid(NODE_IDENTITY_OID)
  t.equal(der.oidText(der.readOne(o, der.TAG.OID, 'oid').contents, 'oid'), NODE_IDENTITY_OID)
  t.ok(NODE_IDENTITY_OID.startsWith(`${QUORATE_OID_ARC}.`), 'the extension sits under the arc')
  t.equal(QUORATE_OID_ARC, `2.25.${BigInt('0xa7a3ae231647495bba83f174024f6751').toString()}`, 'arc = 2.25.<UUID>')
  t.equal(der.oidText(der.readOne(der.oid('1.2.840.10045.4.3.2'), 6, 'o').contents, 'o'), '1.2.840.10045.4.3.2')
  t.equal(der.time(new Date('2049-12-31T23:59:59Z'))[0], der.TAG.UTC_TIME, 'UTCTime through 2049')
  t.equal(der.time(new Date('2050-01-01T00:00:00Z'))[0], der.TAG.GENERALIZED_TIME, 'GeneralizedTime from 2050')
  t.throws(() => der.readTlv(Uint8Array.of(0x30, 0x80, 0, 0), 0, 'x'), /indefinite/, 'BER indefinite length refused')
  t.throws(
    () => der.readTlv(Uint8Array.of(0x04, 0x81, 0x05, 1, 2, 3, 4, 5), 0, 'x'),
    /shortest/,
    'long form for a short length refused'
  )
  t.throws(() => der.readTlv(Uint8Array.of(0x04, 0x05, 1), 0, 'x'), /claims 5 bytes/, 'a length past the end refused')
  t.equal(toHex(der.integer(128)), '02020080', 'a positive INTEGER with the high bit set gets a leading zero')
})

t.test('the certificate builds and parses back: node id, chain id, SPKI hash', async t => {
  const x = new X509Certificate(cert)
  t.ok(x.verify(x.publicKey), 'self-signed with the node key (ECDSA-SHA256)')
  t.equal(x.subject, `CN=quorate node ${NODE}`)
  t.ok(
    new Date(x.validTo).getTime() > Date.now() + 365 * 24 * 3600_000,
    'valid for years (clients pin the key, not dates)'
  )
  t.ok(new Date(x.validFrom).getTime() <= Date.now(), 'and valid now')
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' })
  const hash = new Uint8Array(createHash('sha256').update(spki).digest())
  const p = parseNodeCertificate(cert)
  t.equal(p.nodeId, NODE)
  t.equal(p.chainId, CHAIN)
  t.ok(equal(p.spkiSha256, hash), 'spkiSha256 = sha256(DER SubjectPublicKeyInfo)')
  t.ok(equal(spkiSha256(key), hash), 'the same as the key-side hash the round binds')
  t.ok(equal(parseNodeCertificate(x).spkiSha256, hash), 'from an X509Certificate too')
  t.not(toHex(buildNodeCertificate({ key, nodeId: NODE, chainId: CHAIN })), toHex(cert), 'a fresh serial each time')
})

t.test('checkPeerCertificate: the certified key passes, anything else is refused with every reason', async t => {
  t.equal(checkPeerCertificate(cert, { spkiSha256: spkiSha256(key), nodeId: NODE, chainId: CHAIN }).nodeId, NODE)
  const err = t.throws(() =>
    checkPeerCertificate(cert, { spkiSha256: spkiSha256(newKey()), nodeId: 'someone-else', chainId: 'other-chain' })
  ) as Error
  t.type(err, TlsPinError)
  t.match(err.message, /not the certified key/)
  t.match(err.message, /expected someone-else/)
  t.match(err.message, /expected other-chain/)
  // a man in the middle's own certificate naming the right node and chain: its key gives it away
  const mitm = buildNodeCertificate({ key: newKey(), nodeId: NODE, chainId: CHAIN })
  t.throws(() => checkPeerCertificate(mitm, { spkiSha256: spkiSha256(key), nodeId: NODE, chainId: CHAIN }), TlsPinError)
})

t.test('a certificate without the extension is not a node certificate; an oversized one is not read', async t => {
  // the last arc of the extension id changed: same certificate otherwise (the parser does not check signatures)
  const oid = der.oid(NODE_IDENTITY_OID)
  const at = Buffer.from(cert).indexOf(Buffer.from(oid))
  t.ok(at > 0)
  const other = new Uint8Array(cert)
  other[at + oid.length - 1] = 2
  t.throws(() => parseNodeCertificate(other), { name: 'TlsCertificateError', message: /no node identity extension/ })
  t.throws(() => parseNodeCertificate(new Uint8Array(20 << 10)), { name: 'TooLargeError' })
})

async function tlsServer(k = key, c = cert): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer(
    { key: k.export({ type: 'pkcs8', format: 'pem' }), cert: certificatePem(c), minVersion: 'TLSv1.3' },
    s => {
      s.end('hello')
    }
  )
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => await new Promise<void>(resolve => server.close(() => resolve()))
  }
}

t.test(
  'node:tls accepts it with a checkServerIdentity that pins the SPKI (client holding the certificate)',
  async t => {
    const srv = await tlsServer()
    t.teardown(srv.close)
    const ok = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect(
        {
          host: '127.0.0.1',
          port: srv.port,
          ca: [certificatePem(cert)],
          checkServerIdentity: pinnedCheckServerIdentity({ spkiSha256: spkiSha256(key), nodeId: NODE })
        },
        () => resolve(s)
      )
      s.once('error', reject)
    })
    t.equal(ok.authorized, true, 'chain (the certificate itself) and pin both pass')
    t.equal(ok.getProtocol(), 'TLSv1.3')
    ok.destroy()
    const refused = await new Promise<Error>((resolve, reject) => {
      const s = connect(
        {
          host: '127.0.0.1',
          port: srv.port,
          ca: [certificatePem(cert)],
          checkServerIdentity: pinnedCheckServerIdentity({ spkiSha256: spkiSha256(newKey()) })
        },
        () => reject(new Error('connected with a wrong pin'))
      )
      s.once('error', resolve)
    })
    t.type(refused, TlsPinError, 'a wrong pin ends the handshake with the pin error')
  }
)

t.test('verifyTlsSocket: self-signed is fine, the key decides (client knowing only the hash)', async t => {
  const srv = await tlsServer()
  t.teardown(srv.close)
  const s = await new Promise<TLSSocket>((resolve, reject) => {
    const c = connect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false }, () => resolve(c))
    c.once('error', reject)
  })
  t.equal(verifyTlsSocket(s, { spkiSha256: spkiSha256(key), nodeId: NODE, chainId: CHAIN }).chainId, CHAIN)
  t.throws(() => verifyTlsSocket(s, { spkiSha256: spkiSha256(newKey()) }), TlsPinError)
  s.destroy()
})

t.test('the key file: made 0600, loaded again, refused when readable by others or not P-256', async t => {
  const path = join(dir, 'tls.key')
  const a = await loadOrCreateTlsKey(path)
  t.equal(a.created, true)
  t.equal(statSync(path).mode & 0o777, 0o600)
  const b = await loadOrCreateTlsKey(path)
  t.equal(b.created, false)
  t.ok(equal(spkiSha256(a.key), spkiSha256(b.key)), 'the same key on the next start')
  chmodSync(path, 0o644)
  await t.rejects(loadOrCreateTlsKey(path), { name: 'ConfigError', message: /chmod 600/ })
  const rsa = join(dir, 'rsa.key')
  const rk = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey
  writeFileSync(rsa, rk.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  await t.rejects(loadOrCreateTlsKey(rsa), { name: 'ConfigError', message: /not an ECDSA P-256 key/ })
  const junk = join(dir, 'junk.key')
  writeFileSync(junk, 'not a key', { mode: 0o600 })
  await t.rejects(loadOrCreateTlsKey(junk), { name: 'ConfigError', message: /not a PEM private key/ })
})

t.test('config: plain HTTP off loopback is refused; HTTPS may listen anywhere', async t => {
  const e = t.throws(() => loadConfig({ env: {}, flags: { httpListen: '0.0.0.0:8460' } })) as Error
  t.type(e, ConfigError)
  t.match(e.message, /not a loopback address/)
  t.equal(loadConfig({ env: {}, flags: { httpListen: '127.0.0.1:8460' } }).httpListen, '127.0.0.1:8460')
  t.equal(loadConfig({ env: { QUORATE_HTTPS: '0.0.0.0:9460' } }).httpsListen, '0.0.0.0:9460')
  t.throws(() => loadConfig({ env: {}, flags: { httpsListen: 'nope' } }), /httpsListen/)
  t.throws(() => loadConfig({ env: {}, flags: { httpsEndpoint: 'http://x:1' } }), /httpsEndpoint/)
})

/** A small deterministic PRNG (xorshift32), so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

t.test('fuzz: random and mutated certificates give a certificate or the parser’s own errors', async t => {
  const rnd = prng(0x5eed1234)
  const surprises: string[] = []
  let parsed = 0
  const tryOne = (b: Uint8Array, label: string): void => {
    try {
      parseNodeCertificate(b)
      parsed++
    } catch (err) {
      if (!(err instanceof QuorateError) || err.disposition !== 'reject')
        surprises.push(`${label}: ${(err as Error).name} ${(err as Error).message}`)
    }
  }
  for (let i = 0; i < 1500; i++) {
    const b = new Uint8Array(rnd() % 1200)
    for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff
    if (i % 2 === 0 && b.length > 2) b[0] = 0x30 // a SEQUENCE header gets the parser further
    tryOne(b, `random #${i}`)
  }
  for (let i = 0; i < 3000; i++) {
    const b = new Uint8Array(cert)
    const kind = rnd() % 4
    const n = 1 + (rnd() % 4)
    for (let j = 0; j < n; j++) {
      const at = rnd() % b.length
      if (kind === 0) b[at] ^= 1 << (rnd() % 8)
      else if (kind === 1) b[at] = rnd() & 0xff
      else if (kind === 2) b[at] = [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff][rnd() % 7]
    }
    const m = kind === 3 ? b.subarray(0, rnd() % b.length) : b
    tryOne(m, `mutation #${i} (kind ${kind})`)
  }
  t.same(surprises, [], 'only InvalidInputError subclasses (TlsCertificateError, DecodeError, TooLargeError)')
  t.ok(
    parsed > 0,
    `some mutations still parse (${parsed}): flips in the signature or serial are harmless to the parser`
  )
  t.ok(parsed < 4500, 'and most do not')
})

t.test('a wrong shape at each level of the extension is named', async t => {
  const ext = (value: Uint8Array): Uint8Array => {
    // rebuild only the extension value, keeping the rest of a real certificate
    const id = der.sequence(der.integer(1), der.utf8String(NODE), der.utf8String(CHAIN))
    const b = Buffer.from(cert)
    const at = b.indexOf(Buffer.from(id))
    t.ok(at > 0)
    if (value.length !== id.length) throw new Error('test helper: same length only')
    const out = new Uint8Array(cert)
    out.set(value, at)
    return out
  }
  const same = (s: string): string => s.padEnd(NODE.length, 'x').slice(0, NODE.length)
  t.throws(() => parseNodeCertificate(ext(der.sequence(der.integer(2), der.utf8String(NODE), der.utf8String(CHAIN)))), {
    message: /version 2/
  })
  t.throws(
    () =>
      parseNodeCertificate(
        ext(der.sequence(der.integer(1), der.tlv(der.TAG.OCTET_STRING, Buffer.from(same('a'))), der.utf8String(CHAIN)))
      ),
    TlsCertificateError
  )
  const bad = new Uint8Array(Buffer.from(NODE))
  bad[0] = 0xff // not UTF-8
  t.throws(
    () =>
      parseNodeCertificate(ext(der.sequence(der.integer(1), der.tlv(der.TAG.UTF8_STRING, bad), der.utf8String(CHAIN)))),
    {
      message: /UTF-8/
    }
  )
})

t.test('the HTTPS listener: closed before the handshake while unbound, and per address beyond its share', async t => {
  let serving = false
  const api = await startHttpsApi({
    listen: '127.0.0.1:0',
    identity: { key, certificate: cert, spkiSha256: spkiSha256(key), created: false },
    routes: () => undefined,
    serving: () => serving,
    logger: silentLogger(),
    maxConnectionsPerPeer: 2
  })
  t.teardown(api.stop)
  const open = async (): Promise<TLSSocket> =>
    await new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: api.port, rejectUnauthorized: false }, () => resolve(s))
      s.once('error', reject)
    })
  await t.rejects(open(), 'no handshake while the key is not certified')
  t.equal(api.refused, 1)
  serving = true
  const a = await open()
  const b = await open()
  await t.rejects(open(), 'a third connection from the same address is closed')
  t.equal(api.refused, 2)
  a.destroy()
  // the server frees the slot when it sees the close, which may come after our next connect: try
  // until it has (each try is refused at once or completes; bounded)
  let c: TLSSocket | undefined
  for (let i = 0; i < 100 && c === undefined; i++) c = await open().catch(() => undefined)
  if (c === undefined) throw new Error('the slot was never freed')
  t.equal(c.getProtocol(), 'TLSv1.3', 'a slot freed by a closed connection is usable again')
  b.destroy()
  c.destroy()
})
