// EK certificate chains: the recorded swtpm EK certificates (RSA and ECC P-384, critical TPM SAN)
// chain to the recorded local CA; clear errors for unknown issuer (naming the DN), expired, not
// yet valid, wrong key / EK public mismatch, bad signature; untrusted intermediates; the cache.
import t from 'tap'
import forge from 'node-forge'
import {
  createEkTrustStore,
  verifyEkCertificate,
  verifyEkCertificateCached,
  checkEkPublic,
  parseCertificates,
  UnknownIssuerError,
  CertificateExpiredError,
  CertificateNotYetValidError,
  EkKeyMismatchError
} from '../../attestation/ekcert.ts'
import { parsePublic2b } from '../../attestation/tpm2.ts'
import { DecodeError } from '../../encoding/errors.ts'
import { ekFixture, ekCaDers } from './scenario.ts'
import { softAk } from './forge.ts'
import { throwsInstance, prng, mutate } from './util.ts'

const [root, issuer] = ekCaDers()
const rsa = ekFixture('ek-rsa.der')
const ecc = ekFixture('ek-ecc-p384.der')

t.test('recorded swtpm EK certificates chain to the local CA (RSA and ECC P-384)', async t => {
  const store = createEkTrustStore([root, issuer])
  const r = verifyEkCertificate(rsa, store)
  t.equal(r.keyType, 'rsa')
  t.same(r.chain, ['CN=unknown', 'CN=swtpm-localca'])
  t.same(r.tpm, { manufacturer: 'id:00001014', model: 'swtpm', version: 'id:20191023' })
  const e = verifyEkCertificate(ecc, store)
  t.equal(e.keyType, 'ec')
  t.equal(e.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1')
  // only the issuing CA published: still anchored
  t.ok(verifyEkCertificate(rsa, createEkTrustStore([issuer])))
  // PEM input, padded DER (as read from NV) too
  const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(root).toString('base64')}\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n${Buffer.from(issuer).toString('base64')}\n-----END CERTIFICATE-----\n`
  t.equal(createEkTrustStore([pem]).anchors.length, 2)
  t.ok(verifyEkCertificate(new Uint8Array([...rsa, 0, 0, 0, 0]), store), 'NV padding after the DER is ignored')
})

t.test('unknown issuer names the issuer DN; root-only store with the intermediate supplied works', async t => {
  throwsInstance(
    t,
    () => verifyEkCertificate(rsa, createEkTrustStore([root])),
    UnknownIssuerError,
    'root only, no intermediate',
    /unknown issuer "CN=swtpm-localca" of "CN=unknown"/
  )
  t.ok(
    verifyEkCertificate(rsa, createEkTrustStore([root]), { intermediates: [issuer] }),
    'intermediate given as untrusted path element'
  )
  const other = makeCa('Other Vendor CA')
  throwsInstance(
    t,
    () => verifyEkCertificate(rsa, createEkTrustStore([other.der])),
    UnknownIssuerError,
    'unrelated CA',
    /no published TPM vendor CA issued it/
  )
})

t.test('time: expired and not yet valid (leaf and CA)', async t => {
  const store = createEkTrustStore([root, issuer])
  throwsInstance(
    t,
    () => verifyEkCertificate(rsa, store, { now: Date.parse('2020-01-01') }),
    CertificateNotYetValidError,
    'before notBefore',
    /not valid before 2026-11-22T00:42:39/
  )
  const ca = makeCa('Short CA')
  const leaf = makeLeaf(ca, { notBefore: new Date('2024-01-01'), notAfter: new Date('2025-01-01') })
  const s2 = createEkTrustStore([ca.der])
  throwsInstance(
    t,
    () => verifyEkCertificate(leaf, s2, { now: Date.parse('2026-06-01') }),
    CertificateExpiredError,
    'expired leaf',
    /expired on 2025-01-01/
  )
  t.ok(verifyEkCertificate(leaf, s2, { now: Date.parse('2024-06-01') }))
  const oldCa = makeCa('Old CA', new Date('2020-01-01'), new Date('2021-01-01'))
  const leaf2 = makeLeaf(oldCa, { notBefore: new Date('2020-02-01'), notAfter: new Date('2030-01-01') })
  throwsInstance(
    t,
    () => verifyEkCertificate(leaf2, createEkTrustStore([oldCa.der]), { now: Date.parse('2024-01-01') }),
    CertificateExpiredError,
    'expired CA',
    /EK CA certificate "CN=Old CA" expired/
  )
})

t.test('critical TPM-specific extensions are tolerated; CA:FALSE issuers and bad signatures refused', async t => {
  const ca = makeCa('Crit CA')
  const leaf = makeLeaf(ca, { criticalUnknown: true })
  t.ok(verifyEkCertificate(leaf, createEkTrustStore([ca.der])), 'unknown critical extension does not stop validation')
  const notCa = makeCa('Not a CA', undefined, undefined, false)
  const leaf3 = makeLeaf(notCa, {})
  throwsInstance(
    t,
    () => verifyEkCertificate(leaf3, createEkTrustStore([notCa.der])),
    UnknownIssuerError,
    'issuer without CA:TRUE',
    /not a CA certificate/
  )
  const impostor = makeCa('Crit CA') // same DN, other key
  throwsInstance(
    t,
    () => verifyEkCertificate(leaf, createEkTrustStore([impostor.der])),
    UnknownIssuerError,
    'same DN, wrong key',
    /does not verify|unknown issuer/
  )
  throwsInstance(
    t,
    () => verifyEkCertificate(ca.der, createEkTrustStore([ca.der])),
    EkKeyMismatchError,
    'a CA certificate is not an EK certificate',
    /is a CA certificate/
  )
})

t.test('EK public area must be the certified key', async t => {
  const store = createEkTrustStore([root, issuer])
  const ekPub = parsePublic2b(ekFixture('ek-rsa.pub'))
  t.ok(verifyEkCertificate(rsa, store, { ekPublic: ekPub }), 'recorded EK matches')
  throwsInstance(
    t,
    () => verifyEkCertificate(ecc, store, { ekPublic: ekPub }),
    EkKeyMismatchError,
    'RSA EK vs ECC certificate',
    /EK is RSA but the certificate holds a ec key/
  )
  const otherRsa = makeLeaf(makeCa('X'), {})
  throwsInstance(
    t,
    () => checkEkPublic(ekPub, parseCertificates(otherRsa)[0].publicKey),
    EkKeyMismatchError,
    'other RSA key',
    /not the key in the EK certificate/
  )
  throwsInstance(
    t,
    () => checkEkPublic(softAk().pub, parseCertificates(ecc)[0].publicKey),
    EkKeyMismatchError,
    'other ECC key',
    /not the key/
  )
})

t.test('cache: same result, and time is still checked on a hit', async t => {
  const store = createEkTrustStore([root, issuer])
  const a = verifyEkCertificateCached(rsa, store)
  t.equal(verifyEkCertificateCached(rsa, store), a, 'second call served from cache')
  throwsInstance(
    t,
    () => verifyEkCertificateCached(rsa, store, Date.parse('2020-01-01')),
    CertificateNotYetValidError,
    'outside the window: re-validated'
  )
})

t.test('garbage certificates are DecodeErrors (fuzz)', async t => {
  const store = createEkTrustStore([root, issuer])
  throwsInstance(t, () => verifyEkCertificate(new Uint8Array([1, 2, 3]), store), DecodeError, 'not DER')
  throwsInstance(
    t,
    () => createEkTrustStore(['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----']),
    DecodeError,
    'bad PEM body'
  )
  const rnd = prng(99)
  let bad = 0
  for (let i = 0; i < 1000; i++) {
    try {
      verifyEkCertificate(mutate(rnd, rsa), store)
    } catch (err) {
      if (
        !(err instanceof DecodeError) &&
        !(err instanceof UnknownIssuerError) &&
        !(err instanceof EkKeyMismatchError) &&
        !(err instanceof CertificateExpiredError) &&
        !(err instanceof CertificateNotYetValidError)
      ) {
        bad++
        if (bad < 4) t.fail(String(err))
      }
    }
  }
  t.equal(bad, 0, 'only our error classes')
})

// --- test CA helpers (node-forge, RSA) ---------------------------------------------------------
interface Ca {
  der: Uint8Array
  key: forge.pki.rsa.PrivateKey
  cert: forge.pki.Certificate
}
const keys = forge.pki.rsa.generateKeyPair({ bits: 1024, e: 0x10001 }) // test-only speed; one key pair reused by leaves
function makeCa(cn: string, notBefore = new Date('2020-01-01'), notAfter = new Date('2099-01-01'), isCa = true): Ca {
  const k = forge.pki.rsa.generateKeyPair({ bits: 1024, e: 0x10001 })
  const c = forge.pki.createCertificate()
  c.publicKey = k.publicKey
  c.serialNumber = '01'
  c.validity.notBefore = notBefore
  c.validity.notAfter = notAfter
  c.setSubject([{ name: 'commonName', value: cn }])
  c.setIssuer([{ name: 'commonName', value: cn }])
  c.setExtensions([
    { name: 'basicConstraints', cA: isCa, critical: true },
    { name: 'keyUsage', keyCertSign: true, critical: true }
  ])
  c.sign(k.privateKey, forge.md.sha256.create())
  return {
    der: new Uint8Array(Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(c)).getBytes(), 'binary')),
    key: k.privateKey,
    cert: c
  }
}
function makeLeaf(ca: Ca, o: { notBefore?: Date; notAfter?: Date; criticalUnknown?: boolean }): Uint8Array {
  const c = forge.pki.createCertificate()
  c.publicKey = keys.publicKey
  c.serialNumber = '02'
  c.validity.notBefore = o.notBefore ?? new Date('2020-01-01')
  c.validity.notAfter = o.notAfter ?? new Date('2099-01-01')
  c.setSubject([])
  c.setIssuer(ca.cert.subject.attributes)
  const ext: Array<Record<string, unknown>> = [{ name: 'basicConstraints', cA: false, critical: true }]
  // a critical extension nobody knows (like the TPM SAN with directoryName attributes)
  if (o.criticalUnknown === true)
    ext.push({
      id: '2.23.133.99.1',
      critical: true,
      value: forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.OCTETSTRING, false, 'tpm')
    })
  c.setExtensions(ext)
  c.sign(ca.key, forge.md.sha256.create())
  return new Uint8Array(Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(c)).getBytes(), 'binary'))
}
