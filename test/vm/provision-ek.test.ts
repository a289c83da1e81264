// scripts/vm/provision-ek-cert.sh — what nixos/test.nix runs against its VM's unmanufactured
// swtpm (virtualisation.tpm.provisioning) — run here against swtpm with the RSA EK certificate
// removed: afterwards the TPM has an EK certificate for exactly the EK the agent derives.
import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { X509Certificate, randomBytes } from 'node:crypto'
import { startSwtpm } from '../helpers/swtpm.ts'
import { openTpm } from '../../attestation/tpm/index.ts'
import { parsePublic } from '../../attestation/tpm2.ts'
import { appraise } from '../../attestation/appraise.ts'
import { validateEvidence } from '../../attestation/evidence.ts'

const run = promisify(execFile)
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'vm', 'provision-ek-cert.sh')

t.test('provision-ek-cert.sh certifies the standard RSA EK into NV 0x01c00002', async t => {
  const sw = await startSwtpm()
  t.teardown(() => sw.stop())
  const env = { ...process.env, TPM2TOOLS_TCTI: sw.tcti }
  // Undo the manufacturer's RSA EK certificate (swtpm_setup defines it under the platform hierarchy).
  await run('tpm2_nvundefine', ['-C', 'p', '0x01c00002'], { env })
  const before = await openTpm({ tcti: sw.tcti })
  t.equal(await before.ekCertificate('rsa2048'), undefined, 'no RSA EK certificate to start with')
  await before.close()

  const caPem = join(sw.dir, 'provision-ca.pem')
  await run(SCRIPT, [caPem], { env, timeout: 60_000 })

  const tpm = await openTpm({ tcti: sw.tcti })
  const der = await tpm.ekCertificate('rsa2048')
  t.ok(der !== undefined && der.length > 100, 'RSA EK certificate present')
  const cert = new X509Certificate(Buffer.from(der ?? new Uint8Array()))
  const ca = new X509Certificate(readFileSync(caPem))
  t.ok(cert.verify(ca.publicKey), 'signed by the provisioning CA')
  const ek = parsePublic(await tpm.ekPublic('rsa2048'))
  t.equal(ek.type, 'rsa')
  if (ek.type === 'rsa')
    t.equal(
      Buffer.from(ek.modulus).toString('base64url'),
      cert.publicKey.export({ format: 'jwk' }).n,
      'the certificate certifies the EK the agent derives'
    )

  // What nixos/test.nix then checks with `quorate evidence verify --ek-ca`: a quote by an AK
  // under that EK appraises with identity and freshness affirming, the CA being the only anchor.
  const ak = await tpm.ensureAk({ ekKind: 'rsa2048' })
  const nonce = randomBytes(16)
  const pcrs = [{ hash: 'sha256' as const, pcrs: [0, 1, 2] }]
  const q = await tpm.quote({ nonce, pcrs })
  const values = (await tpm.pcrRead(pcrs)).banks[0].values
  await tpm.close() // swtpm serves one connection at a time
  const evidence = validateEvidence({
    version: 1,
    nonce,
    quote: q,
    akPublic: ak.public,
    ekCertificate: der ?? new Uint8Array(),
    pcrs: { sha256: Object.fromEntries([...values].map(([i, v]) => [String(i), v])) }
  })
  const a = appraise(
    evidence,
    { ekCas: [new Uint8Array(ca.raw)], firmware: [], os: [] },
    { nonce, requireEventLog: false }
  )
  t.same(a.status.identity.failures, [], 'identity affirming: the provisioned EK certificate chains to its CA')
  t.same(a.status.freshness.failures, [], 'freshness affirming')

  // Run twice = refuse (the index exists): provisioning is a one-time vendor step.
  await t.rejects(
    run(SCRIPT, [], { env: { ...process.env, TPM2TOOLS_TCTI: sw.tcti }, timeout: 60_000 }),
    'a second run fails instead of overwriting'
  )
})
