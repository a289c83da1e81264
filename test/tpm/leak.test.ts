// No transient object or session may survive any call, successful or failing: swtpm has 3 object
// slots and no resource manager, so a single leak breaks later commands. Also a bounded fuzz of
// ActivateCredential inputs (external data from verifiers): never a crash, never a leak.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startSwtpm } from '../helpers/swtpm.ts'
import { openTpm, TpmError } from '../../attestation/tpm/index.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { makeCredential } from './structs.ts'

const sw = await startSwtpm({ platformCert: false })
t.teardown(() => sw.stop())
const tpm = await openTpm({ tcti: sw.tcti })
t.teardown(() => tpm.close())

const clean = { objects: [], sessions: [] }

t.test('50 quotes, activations, ensureAk and failures leave nothing loaded', async t => {
  const ak = await tpm.ensureAk()
  const sel = [{ hash: 'sha256' as const, pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13] }]
  for (let i = 0; i < 50; i++) await tpm.quote({ nonce: randomBytes(32), pcrs: sel })
  await Promise.all(Array.from({ length: 10 }, async () => await tpm.quote({ nonce: randomBytes(16), pcrs: sel })))
  t.same(await tpm.transientHandles(), clean, 'after quotes')

  for (const ekKind of ['rsa2048', 'ecc-p384', 'rsa2048', 'ecc-p384'] as const) {
    const secret = randomBytes(16)
    const cred = await makeCredential(await tpm.ekPublic(ekKind), ak.name, secret)
    t.same(Buffer.from(await tpm.activateCredential({ ...cred, ekKind })), secret)
  }
  t.same(await tpm.transientHandles(), clean, 'after activations')

  // new AKs (EK created, policy session, Create, Load, EvictControl), reuse, and refusal
  for (const [handle, ekKind] of [
    [0x81000b01, 'rsa2048'],
    [0x81000b02, 'ecc-p384']
  ] as const) {
    t.equal((await tpm.ensureAk({ handle, ekKind })).created, true)
    t.equal((await tpm.ensureAk({ handle, ekKind })).created, false)
  }
  await t.rejects(tpm.ensureAk({ handle: 0x81010016 }), TpmError)
  t.same(await tpm.transientHandles(), clean, 'after ensureAk')

  // failing paths: a policy session and an EK are live when ActivateCredential fails
  const wrong = await makeCredential(
    await tpm.ekPublic('ecc-p384'),
    Buffer.concat([Buffer.from('000b', 'hex'), randomBytes(32)]),
    randomBytes(16)
  )
  for (let i = 0; i < 5; i++) await t.rejects(tpm.activateCredential({ ...wrong, ekKind: 'ecc-p384' }), TpmError)
  await t.rejects(tpm.activateCredential({ ...wrong, ekKind: 'ecc-p384', akHandle: 0x81000c99 }), TpmError)
  await t.rejects(tpm.quote({ nonce: randomBytes(8), pcrs: sel, akHandle: 0x81000c99 }), TpmError)
  t.same(await tpm.transientHandles(), clean, 'after failures')

  for (const h of [0x81000b01, 0x81000b02]) t.equal(await tpm.evict(h), true)
  // the TPM still works: the three slots are free
  t.equal((await tpm.quote({ nonce: randomBytes(8), pcrs: sel })).attest.length > 0, true)
})

t.test('fuzz: random and mutated credential blobs never crash or leak', async t => {
  const ak = await tpm.ensureAk()
  const good = await makeCredential(await tpm.ekPublic('rsa2048'), ak.name, randomBytes(32))
  let refused = 0
  let other = 0
  for (let i = 0; i < 40; i++) {
    let credentialBlob: Uint8Array
    let encryptedSecret: Uint8Array
    if (i % 2 === 0) {
      credentialBlob = randomBytes(Math.floor(Math.random() * 140))
      encryptedSecret = randomBytes(Math.floor(Math.random() * 300))
    } else {
      credentialBlob = Buffer.from(good.credentialBlob)
      encryptedSecret = Buffer.from(good.encryptedSecret)
      const target = i % 4 === 1 ? credentialBlob : encryptedSecret
      const pos = Math.floor(Math.random() * target.length)
      target[pos] ^= 1 + Math.floor(Math.random() * 255)
    }
    try {
      await tpm.activateCredential({ credentialBlob, encryptedSecret, ekKind: 'rsa2048' })
      other++ // a mutation that still decrypts would be a TPM bug
    } catch (e) {
      if (e instanceof TpmError || e instanceof InvalidInputError) refused++
      else {
        t.fail(`unexpected error ${String(e)}`)
        other++
      }
    }
  }
  t.equal(refused, 40, 'every corrupted input refused with TpmError/InvalidInputError')
  t.equal(other, 0)
  t.same(await tpm.transientHandles(), clean)
})

t.test('two clients on one swtpm (no resource manager): busy slots are retried, one AK created', async t => {
  const other = await openTpm({ tcti: sw.tcti })
  t.teardown(() => other.close())
  const handle = 0x81000b10
  const made = await Promise.all([
    tpm.ensureAk({ handle }),
    other.ensureAk({ handle }),
    tpm.ensureAk({ handle, ekKind: 'ecc-p384' })
  ])
  t.equal(made.filter(a => a.created === true).length, 1, 'exactly one creation')
  t.same(made[0].public, made[1].public)
  const ak = made[0]
  const sel = [{ hash: 'sha256' as const, pcrs: [0, 1, 2] }]
  const jobs: Array<Promise<unknown>> = []
  for (let i = 0; i < 10; i++) {
    jobs.push(tpm.quote({ nonce: randomBytes(16), pcrs: sel, akHandle: handle }))
    jobs.push(other.quote({ nonce: randomBytes(16), pcrs: sel, akHandle: handle }))
  }
  for (const [c, ekKind] of [
    [tpm, 'rsa2048'],
    [other, 'ecc-p384'],
    [other, 'rsa2048']
  ] as const) {
    jobs.push(
      (async () => {
        const secret = randomBytes(16)
        const cred = await makeCredential(await c.ekPublic(ekKind), ak.name, secret)
        t.same(Buffer.from(await c.activateCredential({ ...cred, ekKind, akHandle: handle })), secret)
      })()
    )
  }
  const settled = await Promise.allSettled(jobs)
  t.same(
    settled.filter(s => s.status === 'rejected').map(s => String((s as PromiseRejectedResult).reason)),
    [],
    'no call failed'
  )
  t.same(await tpm.transientHandles(), clean)
  t.equal(await tpm.evict(handle), true)
})
