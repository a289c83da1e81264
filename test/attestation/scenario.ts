// A complete, valid attestation scenario for tests and the benchmark: the real OVMF event log
// fixture, its PCR values, a two-launch container log in PCR 13, a quote forged with a software
// AK (see forge.ts), the recorded swtpm EK certificate and reference values derived from the log.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join, dirname } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Evidence } from '../../attestation/evidence.ts'
import type { ReferenceValues, RefSet } from '../../attestation/refs.ts'
import { parseEventLog, eventsForPcr } from '../../attestation/eventlog.ts'
import { containerLaunchLine, envDigest, replayContainerLog } from '../../attestation/containerlog.ts'
import { parseCertificates } from '../../attestation/ekcert.ts'
import { softAk, forgeQuote, type SoftAk, type ForgeOptions } from './forge.ts'
import { OVMF_Q35_SMP2_DIR } from '../../attestation/samples/index.ts'

const here = dirname(fileURLToPath(import.meta.url))
export const FIXTURES = join(here, '..', 'fixtures')
export const OVMF = OVMF_Q35_SMP2_DIR

export function fixtureEventLog(): Uint8Array {
  return new Uint8Array(readFileSync(join(OVMF, 'eventlog.bin')))
}

/** pcrs_guest.txt as index → value (sha256 bank). */
export function fixturePcrs(): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  for (const line of readFileSync(join(OVMF, 'pcrs_guest.txt'), 'utf8').trim().split('\n')) {
    const [bank, idx, hex] = line.trim().split(/\s+/)
    if (bank === 'sha256') out.set(Number(idx), new Uint8Array(Buffer.from(hex, 'hex')))
  }
  return out
}

export function ekFixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(FIXTURES, 'ek', name)))
}
export function ekCaDers(): Uint8Array[] {
  return ['rootca.pem', 'issuer.pem'].map(
    f => new Uint8Array(parseCertificates(readFileSync(join(FIXTURES, 'ek', f), 'utf8'))[0].raw)
  )
}

export const IMAGE_A = 'sha256:' + 'a1'.repeat(32)
export const IMAGE_B = 'sha256:' + 'b2'.repeat(32)

export function containerLog(): string {
  const env = envDigest({ PORT: '8080' })
  return (
    [
      containerLaunchLine({
        type: 'container.launch',
        image: 'acme/web:1.0',
        digest: IMAGE_A,
        cid: 'bafkreiaaaa',
        args: ['--port', '8080'],
        envDigest: env
      }),
      containerLaunchLine({
        type: 'container.launch',
        image: 'acme/worker:2.1',
        digest: IMAGE_B,
        cid: 'bafkreibbbb',
        args: [],
        envDigest: env
      })
    ].join('\n') + '\n'
  )
}

/** Reference values that allow exactly the fixture boot: firmware by events, OS by events + golden. */
export function fixtureRefs(): ReferenceValues {
  const log = parseEventLog(fixtureEventLog())
  const pcrs = fixturePcrs()
  const set = (name: string, version: string, list: number[], golden: number[] = []): RefSet => ({
    name,
    version,
    bank: 'sha256',
    pcrs: Object.fromEntries(
      list.map(p => [
        String(p),
        {
          events: eventsForPcr(log, p).map(e => e.digests.sha256 as Uint8Array),
          ...(golden.includes(p) ? { golden: [pcrs.get(p) as Uint8Array] } : {})
        }
      ])
    )
  })
  return {
    ekCas: ekCaDers(),
    firmware: [set('ovmf', '2022.11', [0, 1, 2, 3, 5, 6, 7])],
    os: [set('debian-6.1', '6.1.0-56', [4, 9], [9])],
    containers: {
      images: [
        { name: 'acme/web:1.0', digest: IMAGE_A },
        { name: 'acme/worker:2.1', digest: IMAGE_B }
      ]
    }
  }
}

export interface Scenario {
  ak: SoftAk
  nonce: Uint8Array
  evidence: Evidence
  refs: ReferenceValues
  pcrs: Map<number, Uint8Array>
}

/** The valid scenario; `over` changes the forged quote (e.g. clock, selection). */
export function scenario(over: Partial<ForgeOptions> = {}, ak: SoftAk = softAk()): Scenario {
  const nonce = new Uint8Array(randomBytes(32))
  const all = fixturePcrs()
  const cl = containerLog()
  const pcrs = new Map<number, Uint8Array>()
  for (let i = 0; i <= 9; i++) pcrs.set(i, all.get(i) as Uint8Array)
  pcrs.set(13, replayContainerLog(cl))
  const q = forgeQuote(ak, { nonce, pcrs, ...over })
  const evidence: Evidence = {
    version: 1,
    nonce,
    quote: { attest: q.attest, signature: q.signature },
    pcrs: q.pcrs,
    akPublic: q.akPublic,
    ekCertificate: ekFixture('ek-rsa.der'),
    eventLog: fixtureEventLog(),
    containerLog: cl
  }
  return { ak, nonce, evidence, refs: fixtureRefs(), pcrs }
}
