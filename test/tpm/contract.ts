// The Tpm contract as a reusable suite (STYLE.md §12): the same checks against swtpm and, when
// QUORATE_TEST_DEVICE_TCTI names one (e.g. device:/dev/tpmrm0), a real TPM. Only what any TPM 2.0
// must do; swtpm specifics (manufacturer, the per-run CA, restarts) stay in tpm.test.ts.
// Changes on the TPM are limited to PCR 23 (application PCR, resettable) and a scratch AK handle
// that is evicted at the end.
import { createHash, randomBytes, verify, X509Certificate } from 'node:crypto'
import type { Test } from 'tap'
import type { Tpm } from '../../attestation/tpm/index.ts'
import { parsePublic, eccKey, ecdsaSignature, parseQuoteAttest, makeCredential } from './structs.ts'

type T = Test

export interface ContractOptions {
  /** A persistent handle the suite may create and evict. */
  scratchAkHandle: number
  /** PEMs that must have issued the EK certificate (skip the chain check when absent). */
  ekCaPems?: string[]
}

const sha256 = (...p: Uint8Array[]): Buffer => {
  const h = createHash('sha256')
  for (const x of p) h.update(x)
  return h.digest()
}

export function tpmContract(t: T, getTpm: () => Tpm, opts: ContractOptions): void {
  t.test('contract: random, clock, info', async t => {
    const tpm = getTpm()
    t.equal((await tpm.getRandom(64)).length, 64)
    const c = await tpm.readClock()
    t.equal(typeof c.clock, 'bigint')
    const i = await tpm.info()
    t.ok(i.manufacturer.length > 0, `manufacturer ${i.manufacturer}`)
  })

  t.test('contract: PCRs 0-23 in one read; extend PCR 23', async t => {
    const tpm = getTpm()
    const all = Array.from({ length: 24 }, (_, i) => i)
    const r = await tpm.pcrRead([{ hash: 'sha256', pcrs: all }])
    t.same([...r.banks[0].values.keys()], all)
    const old = r.banks[0].values.get(23) ?? new Uint8Array()
    const d = randomBytes(32)
    await tpm.pcrExtend(23, { sha256: d })
    const now = await tpm.pcrRead([{ hash: 'sha256', pcrs: [23] }])
    t.same(Buffer.from(now.banks[0].values.get(23) ?? []), sha256(old, d))
  })

  t.test('contract: EK certificate certifies the template EK', async t => {
    const tpm = getTpm()
    let found = 0
    for (const kind of ['rsa2048', 'ecc-p384'] as const) {
      const der = await tpm.ekCertificate(kind)
      if (der === undefined) {
        t.comment(`no ${kind} EK certificate on this TPM`)
        continue
      }
      found++
      const cert = new X509Certificate(der)
      const jwk = cert.publicKey.export({ format: 'jwk' })
      const pub = parsePublic(await tpm.ekPublic(kind))
      if (kind === 'rsa2048') t.equal(pub.rsa?.modulus.toString('base64url'), jwk.n, `${kind}: same key`)
      else t.equal(pub.ecc?.x.toString('base64url'), jwk.x, `${kind}: same key`)
      if (opts.ekCaPems !== undefined) {
        const issuer = new X509Certificate(opts.ekCaPems[opts.ekCaPems.length - 1])
        t.ok(cert.verify(issuer.publicKey), `${kind}: issued by the expected CA`)
      }
    }
    t.ok(found > 0, 'at least one EK certificate')
  })

  t.test('contract: AK, quote, ActivateCredential, no leftovers', async t => {
    const tpm = getTpm()
    const handle = opts.scratchAkHandle
    await tpm.evict(handle)
    const ak = await tpm.ensureAk({ handle })
    t.equal(ak.created, true)
    const nonce = randomBytes(32)
    const q = await tpm.quote({ nonce, pcrs: [{ hash: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }], akHandle: handle })
    t.ok(
      verify(
        'sha256',
        q.attest,
        { key: eccKey(parsePublic(ak.public)), dsaEncoding: 'ieee-p1363' },
        ecdsaSignature(q.signature).p1363
      ),
      'quote verifies'
    )
    t.same(parseQuoteAttest(q.attest).extraData, nonce)
    const secret = randomBytes(32)
    const cred = await makeCredential(await tpm.ekPublic('rsa2048'), ak.name, secret)
    t.same(Buffer.from(await tpm.activateCredential({ ...cred, akHandle: handle })), secret)
    t.equal(await tpm.evict(handle), true)
    t.same(await tpm.transientHandles(), { objects: [], sessions: [] })
  })
}
