// Device tests of attestation/tpm against a real swtpm (its own state for this file).
import t from 'tap'
import { createHash, randomBytes, verify, X509Certificate } from 'node:crypto'
import { startSwtpm } from '../helpers/swtpm.ts'
import { openTpm, TpmError, DEFAULT_AK_HANDLE, parsePcrList, defaultTcti } from '../../attestation/tpm/index.ts'
import type { Tpm } from '../../attestation/tpm/index.ts'
import { InvalidInputError, ConfigError } from '../../encoding/errors.ts'
import { createContext } from '../../attestation/tpm/native.js'
import { parsePublic, eccKey, ecdsaSignature, parseQuoteAttest, makeCredential } from './structs.ts'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

const run = promisify(execFile)

const sw = await startSwtpm()
t.teardown(() => sw.stop())
let tpm: Tpm = await openTpm({ tcti: sw.tcti })
t.teardown(() => tpm.close())

const sha256 = (...p: Uint8Array[]): Buffer => {
  const h = createHash('sha256')
  for (const x of p) h.update(x)
  return h.digest()
}

t.test('info: swtpm is a software TPM', async t => {
  const info = await tpm.info()
  t.equal(info.manufacturer, 'IBM')
  t.match(info.vendor, /TPM/)
  t.match(info.firmwareVersion, /^\d+\.\d+\.\d+\.\d+$/)
  t.equal(info.isSoftware, true)
  t.equal(tpm.tcti, sw.tcti)
})

t.test('getRandom', async t => {
  const a = await tpm.getRandom(100)
  const b = await tpm.getRandom(100)
  t.equal(a.length, 100, 'loops past the 48-byte TPM limit')
  t.not(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'))
  t.equal((await tpm.getRandom(0)).length, 0)
  await t.rejects(tpm.getRandom(-1), InvalidInputError)
  await t.rejects(tpm.getRandom(1.5), InvalidInputError)
})

t.test('readClock', async t => {
  const c1 = await tpm.readClock()
  await new Promise(resolve => setTimeout(resolve, 20))
  const c2 = await tpm.readClock()
  t.type(c1.clock, 'bigint')
  t.ok(c2.clock >= c1.clock)
  t.equal(c2.resetCount, c1.resetCount)
  t.type(c1.safe, 'boolean')
})

t.test('pcrRead: more than 8 PCRs, two banks', async t => {
  const all = Array.from({ length: 24 }, (_, i) => i)
  const r = await tpm.pcrRead([
    { hash: 'sha256', pcrs: all },
    { hash: 'sha1', pcrs: all }
  ])
  t.equal(r.banks.length, 2)
  t.equal(r.banks[0].hash, 'sha256')
  t.equal(r.banks[0].values.size, 24)
  t.equal(r.banks[1].hash, 'sha1')
  t.equal(r.banks[1].values.size, 24)
  t.same([...r.banks[0].values.keys()], all, 'ascending PCR order')
  for (const v of r.banks[0].values.values()) t.equal(v.length, 32)
  for (const v of r.banks[1].values.values()) t.equal(v.length, 20)
  t.same(r.banks[0].values.get(0), new Uint8Array(32), 'PCR 0 starts at zero')
  t.same(r.banks[0].values.get(17), new Uint8Array(32).fill(0xff), 'PCR 17 (DRTM) starts at all ones')
  // duplicates and a bank named twice merge
  const d = await tpm.pcrRead([
    { hash: 'sha256', pcrs: [3, 3] },
    { hash: 'sha256', pcrs: [1] }
  ])
  t.same([...d.banks[0].values.keys()], [1, 3])
  await t.rejects(tpm.pcrRead([{ hash: 'sha384', pcrs: [0] }]), TpmError, 'inactive bank is an error, not silence')
  await t.rejects(tpm.pcrRead([{ hash: 'md5' as 'sha1', pcrs: [0] }]), InvalidInputError)
  await t.rejects(tpm.pcrRead([{ hash: 'sha256', pcrs: [32] }]), InvalidInputError)
})

t.test('pcrExtend: new = H(old ‖ digest), per bank', async t => {
  const before = await tpm.pcrRead([
    { hash: 'sha256', pcrs: [16] },
    { hash: 'sha1', pcrs: [16] }
  ])
  const d256 = randomBytes(32)
  await tpm.pcrExtend(16, { sha256: d256 })
  const after = await tpm.pcrRead([
    { hash: 'sha256', pcrs: [16] },
    { hash: 'sha1', pcrs: [16] }
  ])
  const old = before.banks[0].values.get(16) ?? new Uint8Array()
  t.same(Buffer.from(after.banks[0].values.get(16) ?? []), sha256(old, d256))
  t.same(after.banks[1].values.get(16), before.banks[1].values.get(16), 'sha1 bank untouched')
  t.equal(after.updateCounter, before.updateCounter, 'PCR 16 is a no-increment PCR (PC Client)')
  const c0 = (await tpm.pcrRead([{ hash: 'sha256', pcrs: [12] }])).updateCounter
  await tpm.pcrExtend(12, { sha256: d256 })
  t.ok(
    (await tpm.pcrRead([{ hash: 'sha256', pcrs: [12] }])).updateCounter > c0,
    'PCR 12 extend moves the update counter'
  )

  const d1 = randomBytes(20)
  const d2 = randomBytes(32)
  await tpm.pcrExtend(16, { sha1: d1, sha256: d2 })
  const again = await tpm.pcrRead([{ hash: 'sha1', pcrs: [16] }])
  const sha1 = createHash('sha1')
    .update(before.banks[1].values.get(16) ?? new Uint8Array())
    .update(d1)
    .digest()
  t.same(Buffer.from(again.banks[0].values.get(16) ?? []), sha1)

  await t.rejects(tpm.pcrExtend(16, { sha256: new Uint8Array(31) }), InvalidInputError)
  await t.rejects(tpm.pcrExtend(16, {}), InvalidInputError)
  await t.rejects(tpm.pcrExtend(40, { sha256: d256 }), InvalidInputError)
  // TPM 2.0 Part 3 §22.2: digests for banks that are not allocated are ignored
  const p0 = await tpm.pcrRead([{ hash: 'sha256', pcrs: [0] }])
  await tpm.pcrExtend(0, { sha384: randomBytes(48) })
  t.same(
    (await tpm.pcrRead([{ hash: 'sha256', pcrs: [0] }])).banks[0].values.get(0),
    p0.banks[0].values.get(0),
    'inactive bank: ignored'
  )
})

t.test('EK certificate ↔ EK public from the template (RSA-2048 and ECC P-384)', async t => {
  const [root, issuer] = sw.ekCaPems.map(p => new X509Certificate(p))
  for (const kind of ['rsa2048', 'ecc-p384'] as const) {
    const der = await tpm.ekCertificate(kind)
    if (der === undefined) {
      t.fail(`${kind}: no EK certificate`)
      continue
    }
    const cert = new X509Certificate(der)
    t.ok(cert.verify(issuer.publicKey), `${kind}: cert issued by the per-run CA`)
    t.ok(issuer.verify(root.publicKey))
    const pub = parsePublic(await tpm.ekPublic(kind))
    const jwk = cert.publicKey.export({ format: 'jwk' })
    if (kind === 'rsa2048') {
      t.equal(pub.rsa?.keyBits, 2048)
      t.equal(pub.attributes, 0x000300b2, 'template L-1 attributes')
      t.equal(
        pub.authPolicy.toString('hex'),
        '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa',
        'PolicyA'
      )
      t.equal(pub.rsa?.modulus.toString('base64url'), jwk.n, 'cert key == created EK (modulus)')
    } else {
      t.equal(pub.nameAlg, 0x000c, 'SHA-384 name')
      t.equal(pub.attributes, 0x000300f2, 'template H-3 attributes')
      t.equal(jwk.crv, 'P-384')
      t.equal(pub.ecc?.x.toString('base64url'), jwk.x, 'cert key == created EK (x)')
      t.equal(pub.ecc?.y.toString('base64url'), jwk.y, 'cert key == created EK (y)')
    }
    t.same(await tpm.ekPublic(kind), await tpm.ekPublic(kind), 'deterministic / cached')
  }
  await t.rejects(tpm.ekPublic('rsa4096' as 'rsa2048'), InvalidInputError)
})

t.test('NV reads span several TPM2_NV_Read chunks (2000 bytes > NV_BUFFER_MAX 1024)', async t => {
  const env = { ...process.env, TPM2TOOLS_TCTI: sw.tcti }
  const data = randomBytes(2000)
  const file = join(sw.dir, 'nv.bin')
  writeFileSync(file, data)
  await run('tpm2_nvdefine', ['0x01500001', '-C', 'o', '-s', '2000', '-a', 'ownerread|ownerwrite|authread|authwrite'], {
    env
  })
  await run('tpm2_nvwrite', ['0x01500001', '-C', 'o', '-i', file], { env })
  const ctx = createContext()
  await ctx.open(sw.tcti)
  t.teardown(() => ctx.close())
  t.same(Buffer.from((await ctx.nvRead(0x01500001)) ?? []), data)
  t.equal(await ctx.nvRead(0x01500002), undefined, 'undefined index')
})

t.test('ensureAk: creates once, then reuses; refuses a non-AK handle', async t => {
  const a = await tpm.ensureAk()
  t.equal(a.handle, DEFAULT_AK_HANDLE)
  t.equal(a.created, true)
  const p = parsePublic(a.public)
  t.equal(p.type, 0x0023)
  t.equal(p.ecc?.curve, 0x0003, 'NIST P-256')
  t.equal(p.ecc?.scheme, 0x0018, 'ECDSA')
  t.equal(p.ecc?.schemeHash, 0x000b, 'SHA-256')
  t.equal(p.attributes & 0x00050000, 0x00050000, 'restricted | sign')
  t.equal(Buffer.from(a.name).toString('hex'), '000b' + sha256(a.public).toString('hex'), 'name = nameAlg ‖ H(public)')
  const b = await tpm.ensureAk()
  t.equal(b.created, false)
  t.same(b.public, a.public)
  t.ok((await tpm.persistentHandles()).includes(DEFAULT_AK_HANDLE))
  // 0x81010001 holds swtpm_setup's persisted RSA EK: a decryption key, not an AK
  await t.rejects(tpm.ensureAk({ handle: 0x81010001 }), { name: 'TpmError', message: /not an AK/ })
  await t.rejects(tpm.ensureAk({ handle: 0x80000001 }), InvalidInputError)
  // another AK under the ECC EK, then evicted
  const c = await tpm.ensureAk({ handle: 0x81000a02, ekKind: 'ecc-p384' })
  t.equal(c.created, true)
  t.not(Buffer.from(c.public).toString('hex'), Buffer.from(a.public).toString('hex'))
  t.equal(await tpm.evict(0x81000a02), true)
  t.equal(await tpm.evict(0x81000a02), false)
  t.notOk((await tpm.persistentHandles()).includes(0x81000a02))
})

t.test('quote: signature verifies against the AK public; nonce and PCR digest inside', async t => {
  const ak = await tpm.ensureAk()
  const key = eccKey(parsePublic(ak.public))
  const nonce = randomBytes(32)
  const sel = [{ hash: 'sha256' as const, pcrs: parsePcrList('0-9,13,16') }]
  const pcrs = await tpm.pcrRead(sel)
  const q = await tpm.quote({ nonce, pcrs: sel })
  const sig = ecdsaSignature(q.signature)
  t.equal(sig.alg, 0x0018, 'ECDSA')
  t.equal(sig.hash, 0x000b, 'SHA-256')
  t.ok(verify('sha256', q.attest, { key, dsaEncoding: 'ieee-p1363' }, sig.p1363), 'signature verifies')
  const tampered = Buffer.from(q.attest)
  tampered[tampered.length - 1] ^= 1
  t.notOk(verify('sha256', tampered, { key, dsaEncoding: 'ieee-p1363' }, sig.p1363), 'tampered attest fails')
  const a = parseQuoteAttest(q.attest)
  t.equal(a.magic, 0xff544347, 'TPM_GENERATED_VALUE')
  t.equal(a.type, 0x8018, 'TPM_ST_ATTEST_QUOTE')
  t.same(a.extraData, nonce)
  const clock = await tpm.readClock()
  t.equal(a.resetCount, clock.resetCount)
  const expected = sha256(...[...pcrs.banks[0].values.values()])
  t.same(a.pcrDigest, expected, 'PCR digest = H(selected PCR values in order)')
  await t.rejects(tpm.quote({ nonce: new Uint8Array(65), pcrs: sel }), InvalidInputError)
  // Many concurrent callers: the per-connection queue serializes them
  const many = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => await tpm.quote({ nonce: Buffer.from([i]), pcrs: sel }))
  )
  t.same(
    many.map(m => parseQuoteAttest(m.attest).extraData[0]),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
  )
})

t.test('activateCredential with both EKs (MakeCredential by tpm2-tools)', async t => {
  const ak = await tpm.ensureAk()
  for (const ekKind of ['rsa2048', 'ecc-p384'] as const) {
    const secret = randomBytes(32)
    const cred = await makeCredential(await tpm.ekPublic(ekKind), ak.name, secret)
    const got = await tpm.activateCredential({ ...cred, ekKind })
    t.same(Buffer.from(got), secret, `${ekKind}: secret recovered`)
  }
  // a credential for another key name is refused by the TPM's integrity check
  const wrongName = Buffer.concat([Buffer.from('000b', 'hex'), randomBytes(32)])
  const bad = await makeCredential(await tpm.ekPublic('rsa2048'), wrongName, randomBytes(16))
  const err = await tpm.activateCredential({ ...bad, ekKind: 'rsa2048' }).catch((e: unknown) => e)
  t.type(err, TpmError)
  if (err instanceof TpmError) {
    t.ok(err.rc !== 0)
    t.match(err.rcText, /integrity/i)
    t.equal(err.op, 'Esys_ActivateCredential')
    t.equal(err.disposition, 'reject')
  }
})

t.test('errors: TpmError carries rc and decoded text', async t => {
  const err = await tpm.quote({ nonce: new Uint8Array(8), pcrs: [], akHandle: 0x81000999 }).catch((e: unknown) => e)
  t.type(err, TpmError)
  if (err instanceof TpmError) {
    t.equal(err.rc, 0x18b, 'TPM_RC_HANDLE (handle 1)')
    t.match(err.rcText, /handle/)
    t.match(err.message, /0x81000999/)
    t.equal(err.code, 'ERR_TPM')
    t.same(err.toJSON().rc, 0x18b)
  }
  // the connection is fine afterwards
  t.equal((await tpm.getRandom(4)).length, 4)
  await t.rejects(openTpm({ tcti: 'swtpm:host=127.0.0.1,port=1' }), {
    name: 'TpmError',
    message: /cannot open the TPM/
  })
  await t.rejects(openTpm({ tcti: 'nosuchtcti:x' }), TpmError)
})

t.test('nothing transient is left behind', async t => {
  t.same(await tpm.transientHandles(), { objects: [], sessions: [] })
})

t.test('TPM reset (swtpm restart): resetCount increments, PCRs reset, AK persists', async t => {
  const ak = await tpm.ensureAk()
  const before = await tpm.readClock()
  await sw.restart()
  const mid = await tpm.readClock()
  t.equal(mid.resetCount, before.resetCount + 1, 'an open connection keeps working across a TPM reset')
  t.ok(
    (await tpm.quote({ nonce: new Uint8Array(8), pcrs: [{ hash: 'sha256', pcrs: [0] }] })).attest.length > 0,
    'cached AK handle still valid'
  )

  await tpm.close()
  await t.rejects(tpm.getRandom(1), ConfigError, 'closed connection refuses work')
  await tpm.close() // idempotent
  await sw.restart()
  tpm = await openTpm({ tcti: sw.tcti })
  const after = await tpm.readClock()
  t.equal(after.resetCount, before.resetCount + 2)
  const p16 = await tpm.pcrRead([{ hash: 'sha256', pcrs: [16] }])
  t.same(p16.banks[0].values.get(16), new Uint8Array(32), 'PCR 16 back to zero')
  const again = await tpm.ensureAk()
  t.equal(again.created, false)
  t.same(again.public, ak.public)
})

t.test('parsePcrList and defaultTcti', async t => {
  t.same(parsePcrList('0-3,7, 13'), [0, 1, 2, 3, 7, 13])
  t.same(parsePcrList(''), [])
  for (const bad of ['3-1', '0-32', 'a', '1,,x', '-1', '100']) t.throws(() => parsePcrList(bad), InvalidInputError, bad)
  t.equal(defaultTcti({ QUORATE_TCTI: 'a', TPM2TOOLS_TCTI: 'b' }), 'a')
  t.equal(defaultTcti({ TPM2TOOLS_TCTI: 'b' }), 'b')
  t.equal(defaultTcti({}), 'device:/dev/tpmrm0')
  // bounded fuzz: random strings never crash, only InvalidInputError or a sorted list within 0–31
  const bad: string[] = []
  let parsed = 0
  for (let i = 0; i < 2000; i++) {
    const s = Array.from(
      { length: Math.floor(Math.random() * 12) },
      () => '0123456789,- x'[Math.floor(Math.random() * 14)]
    ).join('')
    try {
      const l = parsePcrList(s)
      parsed++
      if (!l.every((v, j) => v >= 0 && v <= 31 && (j === 0 || v > l[j - 1]))) bad.push(s)
    } catch (e) {
      if (!(e instanceof InvalidInputError)) bad.push(s)
    }
  }
  t.same(bad, [], 'fuzz: only sorted in-range lists or InvalidInputError')
  t.ok(parsed > 0, 'fuzz produced some valid lists')
})

t.test('TpmError disposition by response code', async t => {
  const d = (rc: number): string => new TpmError('x', { rc, rcText: '', op: 'test' }).disposition
  t.equal(d(0x922), 'retry', 'TPM_RC_RETRY')
  t.equal(d(0x908), 'retry', 'TPM_RC_YIELDED')
  t.equal(d(0x90a), 'retry', 'TPM_RC_TESTING')
  t.equal(d(0x0a000a), 'retry', 'TCTI I/O error')
  t.equal(d(0x0a0009), 'retry', 'TCTI try again')
  t.equal(d(0x2df), 'reject', 'TPM_RC_INTEGRITY on parameter 2')
  t.equal(d(0x18b), 'stop', 'TPM_RC_HANDLE (a handle, not a parameter)')
  t.equal(d(0x101), 'stop', 'TPM_RC_FAILURE')
  t.equal(d(0x070018), 'stop', 'ESYS bad TR')
  t.equal(d(0), 'stop')
})
