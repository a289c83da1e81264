// MakeCredential (TPM 2.0 Part 1 §24): our output and tpm2_makecredential's both decrypt with a
// software ActivateCredential (test-only, below) using the EK private key; ECC (ECDH + KDFe) for
// P-256 and the P-384 high template; and a round trip through a real TPM (swtpm + our addon).
import t from 'tap'
import {
  generateKeyPairSync,
  privateDecrypt,
  createDecipheriv,
  createHmac,
  createECDH,
  constants,
  randomBytes,
  type KeyObject
} from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeCredential, kdfa, kdfe } from '../../attestation/credential.ts'
import {
  TPM_ALG,
  TPM_ECC,
  marshalPublic,
  parsePublic,
  parsePublic2b,
  objectName,
  type TpmPublic,
  type RsaPublic,
  type EccPublic
} from '../../attestation/tpm2.ts'
import { Reader, Writer } from '../../attestation/reader.ts'
import { DIGEST_SIZE, hashAlgFromId, type HashAlg } from '../../attestation/algs.ts'
import { equal, leftPad, toHex } from '../../encoding/bytes.ts'
import { InvalidInputError, DecodeError } from '../../encoding/errors.ts'
import { throwsInstance } from './util.ts'
import { softAk } from './forge.ts'
import { ekFixture } from './scenario.ts'

// TCG EK Credential Profile templates: L-1 (RSA 2048, sha256, AES-128-CFB) and H-3 (ECC P-384, sha384, AES-256-CFB).
const EK_ATTRS = 0x000300b2
const POLICY_A_SHA256 = new Uint8Array(
  Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex')
)

function rsaEk(): { priv: KeyObject; pub: RsaPublic } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const n = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).n ?? '', 'base64url'))
  return {
    priv: privateKey,
    pub: {
      type: 'rsa',
      nameAlg: 0x000b,
      objectAttributes: EK_ATTRS,
      authPolicy: POLICY_A_SHA256,
      symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
      scheme: { scheme: TPM_ALG.NULL },
      keyBits: 2048,
      exponent: 0,
      modulus: n
    }
  }
}

function eccEk(curve: 'P-256' | 'P-384'): { priv: Uint8Array; pub: EccPublic } {
  const ecdh = createECDH(curve === 'P-256' ? 'prime256v1' : 'secp384r1')
  ecdh.generateKeys()
  const size = curve === 'P-256' ? 32 : 48
  const p = ecdh.getPublicKey()
  const hi = curve === 'P-384'
  return {
    priv: new Uint8Array(ecdh.getPrivateKey()),
    pub: {
      type: 'ecc',
      nameAlg: hi ? 0x000c : 0x000b,
      objectAttributes: EK_ATTRS,
      authPolicy: hi ? new Uint8Array(48) : POLICY_A_SHA256,
      symmetric: { algorithm: TPM_ALG.AES, keyBits: hi ? 256 : 128, mode: TPM_ALG.CFB },
      scheme: { scheme: TPM_ALG.NULL },
      curve: hi ? TPM_ECC.NIST_P384 : TPM_ECC.NIST_P256,
      kdf: { scheme: TPM_ALG.NULL },
      x: new Uint8Array(p.subarray(1, 1 + size)),
      y: new Uint8Array(p.subarray(1 + size))
    }
  }
}

/** Software TPM2_ActivateCredential (Part 3 §12.5), test only: recovers the credential or throws. */
function activateCredentialSoftware(
  ek: TpmPublic,
  ekPriv: KeyObject | Uint8Array,
  name: Uint8Array,
  credentialBlob: Uint8Array,
  encryptedSecret: Uint8Array
): Uint8Array {
  const hash = hashAlgFromId(ek.nameAlg) as HashAlg
  const sym = ek.type === 'rsa' || ek.type === 'ecc' ? ek.symmetric : undefined
  if (sym === undefined) throw new Error('no symmetric')
  let seed: Uint8Array
  if (ek.type === 'rsa') {
    seed = new Uint8Array(
      privateDecrypt(
        {
          key: ekPriv as KeyObject,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: hash,
          oaepLabel: Buffer.from('IDENTITY\0')
        },
        encryptedSecret
      )
    )
  } else if (ek.type === 'ecc') {
    const r = new Reader(encryptedSecret, 'TPMS_ECC_POINT')
    const x = r.tpm2b('x')
    const y = r.tpm2b('y')
    r.end()
    const ecdh = createECDH(ek.curve === TPM_ECC.NIST_P256 ? 'prime256v1' : 'secp384r1')
    ecdh.setPrivateKey(ekPriv as Uint8Array)
    // A TPM2B_ECC_PARAMETER may come without its leading zero bytes (tpm2-tools writes OpenSSL's
    // minimal big-endian form, ~1 point in 128): the curve point needs them; KDFe takes x as sent.
    const size = ek.curve === TPM_ECC.NIST_P256 ? 32 : 48
    const z = new Uint8Array(
      ecdh.computeSecret(Buffer.concat([Buffer.from([4]), leftPad(x, size, 'x'), leftPad(y, size, 'y')]))
    )
    seed = kdfe(hash, z, 'IDENTITY', x, ek.x, DIGEST_SIZE[hash] * 8)
  } else throw new Error('bad ek')
  const r = new Reader(credentialBlob, 'TPM2B_ID_OBJECT')
  const hmac = r.tpm2b('integrityHMAC')
  const encIdentity = r.bytes(r.remaining)
  const hmacKey = kdfa(hash, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), DIGEST_SIZE[hash] * 8)
  const expect = new Uint8Array(createHmac(hash, hmacKey).update(encIdentity).update(name).digest())
  if (!equal(expect, hmac)) throw new Error('integrity HMAC mismatch')
  const symKey = kdfa(hash, seed, 'STORAGE', name, new Uint8Array(0), sym.keyBits)
  const d = createDecipheriv(`aes-${sym.keyBits}-cfb`, symKey, Buffer.alloc(16))
  const plain = new Uint8Array(Buffer.concat([d.update(encIdentity), d.final()]))
  const pr = new Reader(plain, 'TPM2B_DIGEST')
  const cred = pr.tpm2b('credential')
  pr.end()
  return cred
}

/** tpm2_makecredential -T none: returns the blob and secret bodies from its output file. */
function toolMakeCredential(
  ek: TpmPublic,
  name: Uint8Array,
  secret: Uint8Array
): { credentialBlob: Uint8Array; encryptedSecret: Uint8Array } {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-mc-'))
  try {
    writeFileSync(join(dir, 'ek.pub'), new Writer().tpm2b(marshalPublic(ek)).finish())
    writeFileSync(join(dir, 'secret'), secret)
    execFileSync(
      'tpm2_makecredential',
      ['-T', 'none', '-u', join(dir, 'ek.pub'), '-s', join(dir, 'secret'), '-n', toHex(name), '-o', join(dir, 'out')],
      { stdio: ['ignore', 'ignore', 'ignore'] }
    )
    const r = new Reader(new Uint8Array(readFileSync(join(dir, 'out'))), 'tpm2_makecredential output')
    if (r.u32() !== 0xbadcc0de || r.u32() !== 1) throw new Error('unexpected tpm2_makecredential file header')
    const credentialBlob = r.tpm2b('TPM2B_ID_OBJECT')
    const encryptedSecret = r.tpm2b('TPM2B_ENCRYPTED_SECRET')
    r.end()
    return { credentialBlob, encryptedSecret }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const haveTool = (() => {
  try {
    execFileSync('tpm2_makecredential', ['-v'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

t.test('KDFa is SP800-108 counter HMAC with the label NUL and the bit length', async t => {
  const k = kdfa('sha256', new Uint8Array(32).fill(1), 'STORAGE', new Uint8Array([1, 2]), new Uint8Array(0), 128)
  t.equal(k.length, 16)
  const h = createHmac('sha256', Buffer.alloc(32, 1))
    .update(Buffer.from('00000001', 'hex'))
    .update('STORAGE\0')
    .update(Buffer.from([1, 2]))
    .update(Buffer.from('00000080', 'hex'))
    .digest()
  t.same(toHex(k), h.subarray(0, 16).toString('hex'))
  t.equal(
    kdfa('sha256', new Uint8Array(32), 'X', new Uint8Array(0), new Uint8Array(0), 512).length,
    64,
    'multiple rounds'
  )
})

t.test('RSA EK: our MakeCredential and tpm2_makecredential both activate in software', async t => {
  const ek = rsaEk()
  const ak = softAk()
  const secret = new Uint8Array(randomBytes(32))
  const ours = makeCredential({ ekPublic: marshalPublic(ek.pub), objectName: ak.name, credential: secret })
  t.equal(ours.encryptedSecret.length, 256)
  t.same(activateCredentialSoftware(ek.pub, ek.priv, ak.name, ours.credentialBlob, ours.encryptedSecret), secret)
  t.throws(
    () => activateCredentialSoftware(ek.pub, ek.priv, softAk().name, ours.credentialBlob, ours.encryptedSecret),
    /HMAC/,
    'bound to the AK name'
  )
  const flipped = ours.credentialBlob.slice()
  flipped[flipped.length - 1] ^= 1
  t.throws(
    () => activateCredentialSoftware(ek.pub, ek.priv, ak.name, flipped, ours.encryptedSecret),
    /HMAC/,
    'integrity protected'
  )
  if (!haveTool) {
    t.comment('tpm2_makecredential not installed: skipped')
    return
  }
  const theirs = toolMakeCredential(ek.pub, ak.name, secret)
  t.equal(theirs.credentialBlob.length, ours.credentialBlob.length, 'same blob layout as tpm2-tools')
  t.same(activateCredentialSoftware(ek.pub, ek.priv, ak.name, theirs.credentialBlob, theirs.encryptedSecret), secret)
})

t.test('ECC EKs (P-256 low, P-384 high template): ECDH + KDFe', async t => {
  for (const curve of ['P-256', 'P-384'] as const) {
    const ek = eccEk(curve)
    const ak = softAk()
    const secret = new Uint8Array(randomBytes(16))
    const ours = makeCredential({ ekPublic: ek.pub, objectName: ak.name, credential: secret })
    t.same(
      activateCredentialSoftware(ek.pub, ek.priv, ak.name, ours.credentialBlob, ours.encryptedSecret),
      secret,
      `${curve} ours`
    )
    if (haveTool) {
      // 30 fresh ephemeral keys: a coordinate with a leading zero byte (sent shortened) turns up
      // in about one run in five
      let recovered = 0
      let short = 0
      for (let i = 0; i < 30; i++) {
        const theirs = toolMakeCredential(ek.pub, ak.name, secret)
        const r = new Reader(theirs.encryptedSecret, 'TPMS_ECC_POINT')
        if (r.tpm2b('x').length < (curve === 'P-256' ? 32 : 48) || r.tpm2b('y').length < (curve === 'P-256' ? 32 : 48))
          short++
        if (
          equal(
            activateCredentialSoftware(ek.pub, ek.priv, ak.name, theirs.credentialBlob, theirs.encryptedSecret),
            secret
          )
        )
          recovered++
      }
      t.equal(recovered, 30, `${curve} tpm2_makecredential, 30 times (${short} with a shortened coordinate)`)
    }
  }
})

t.test('the recorded swtpm RSA EK public area is accepted', async t => {
  const ek = parsePublic2b(ekFixture('ek-rsa.pub'))
  t.equal(ek.type, 'rsa')
  const out = makeCredential({ ekPublic: ek, objectName: softAk().name, credential: new Uint8Array(32).fill(7) })
  t.equal(out.encryptedSecret.length, 256)
})

t.test('bad inputs are refused with InvalidInputError', async t => {
  const ek = rsaEk()
  const name = softAk().name
  throwsInstance(
    t,
    () => makeCredential({ ekPublic: ek.pub, objectName: name, credential: new Uint8Array(0) }),
    InvalidInputError,
    'empty credential'
  )
  throwsInstance(
    t,
    () => makeCredential({ ekPublic: ek.pub, objectName: name, credential: new Uint8Array(33) }),
    InvalidInputError,
    'credential larger than the digest'
  )
  throwsInstance(
    t,
    () =>
      makeCredential({
        ekPublic: { ...ek.pub, objectAttributes: 0x00040072 },
        objectName: name,
        credential: new Uint8Array(8)
      }),
    InvalidInputError,
    'signing key is not an EK'
  )
  throwsInstance(
    t,
    () =>
      makeCredential({
        ekPublic: { ...ek.pub, symmetric: undefined },
        objectName: name,
        credential: new Uint8Array(8)
      }),
    InvalidInputError,
    'EK without symmetric definition'
  )
  throwsInstance(
    t,
    () => makeCredential({ ekPublic: softAk().pub, objectName: name, credential: new Uint8Array(8) }),
    InvalidInputError,
    'AK is not an EK'
  )
  throwsInstance(
    t,
    () => makeCredential({ ekPublic: new Uint8Array([0, 1, 2]), objectName: name, credential: new Uint8Array(8) }),
    DecodeError,
    'garbage EK public area'
  )
})

const ADDON = new URL('../../attestation/tpm/build/Release/quorate_tpm.node', import.meta.url)
t.test(
  'round trip through a real TPM: swtpm ActivateCredential recovers our credential',
  { skip: existsSync(ADDON) ? false : 'TPM addon not built' },
  async t => {
    const { openTpm } = await import('../../attestation/tpm/index.ts')
    const { startSwtpm } = await import('../helpers/swtpm.ts')
    const sw = await startSwtpm({ platformCert: false })
    t.teardown(() => sw.stop())
    const tpm = await openTpm({ tcti: sw.tcti })
    t.teardown(() => tpm.close())
    const ak = await tpm.ensureAk()
    t.same(objectName(ak.public), ak.name, "our AK name computation equals the TPM's")
    for (const ekKind of ['rsa2048', 'ecc-p384'] as const) {
      const ekPublic = await tpm.ekPublic(ekKind)
      const secret = new Uint8Array(randomBytes(32))
      const blob = makeCredential({ ekPublic, objectName: ak.name, credential: secret })
      const got = await tpm.activateCredential({ ...blob, ekKind })
      t.same(got, secret, `${ekKind}: the TPM recovers the credential`)
      const wrong = makeCredential({ ekPublic, objectName: softAk().name, credential: secret })
      await t.rejects(
        tpm.activateCredential({ ...wrong, ekKind }),
        `${ekKind}: a credential for another name is refused`
      )
    }
    t.equal(
      parsePublic(await tpm.ekPublic('ecc-p384')).nameAlg,
      0x000c,
      'swtpm ECC EK uses the P-384 high template (sha384)'
    )
  }
)
