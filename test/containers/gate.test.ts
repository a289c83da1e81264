// The gate end to end with real parts: dockerd, two Helia stores on 127.0.0.1, busybox images
// built here (no registry, no base image). The chain and the TPM are fakes of the narrow
// ImageRegistry and Measurer interfaces (a real TPM and chain come in the integration tests).
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, request, type Server } from 'node:http'
import Docker from 'dockerode'
import { createImageStore, type ImageStore } from '../../containers/store.ts'
import {
  createContainerRunner,
  type CertificationStatus,
  type ImageRecord,
  type ImageRegistry,
  type ContainerRunner,
  type LaunchRequest,
  verifiedTag
} from '../../containers/runner.ts'
import { createTenantProxy } from '../../containers/proxy.ts'
import { memoryEventLog, CONTAINER_PCR } from '../../containers/events.ts'
import { publishImage } from '../../containers/publish.ts'
import {
  ContentMismatchError,
  ImageDigestMismatchError,
  ImageNotPublishedError,
  ImageRevokedError,
  NotCertifiedError
} from '../../containers/errors.ts'
import { sha256, concat, toHex } from '../../encoding/bytes.ts'
import { parseContainerLog, replayContainerLog } from '../../attestation/containerlog.ts'
import { busyboxImage, cleanupDocker, freePort, httpdArgs, imageExists, uniqueLabel } from './helpers.ts'

const docker = new Docker()
const label = uniqueLabel('gate')
const dir = mkdtempSync(join(tmpdir(), 'quorate-gate-'))
const stores: ImageStore[] = []
const servers: Server[] = []
t.teardown(async () => {
  for (const s of servers) s.close()
  for (const s of stores) await s.stop().catch(() => {})
  await cleanupDocker(docker, label)
  rmSync(dir, { recursive: true, force: true })
})

/** The chain, faked: published images and this node's certification. */
class FakeRegistry implements ImageRegistry {
  images = new Map<string, ImageRecord>()
  cert: CertificationStatus = { certified: true, expiresAt: Date.now() + 3_600_000 }
  async getImage(name: string): Promise<ImageRecord | undefined> {
    return this.images.get(name)
  }
  async isCertified(): Promise<CertificationStatus> {
    return this.cert
  }
  async publishImage(rec: { name: string; digest: string; cid: string; size: number }): Promise<{ txHash: string }> {
    this.images.set(rec.name, { ...rec, revoked: false })
    return { txHash: 'fake' }
  }
}

/** The TPM, faked: records extends and keeps a software PCR 13. */
class FakeMeasurer {
  extends: { pcr: number; digest: string }[] = []
  pcr13: Uint8Array = new Uint8Array(32)
  async extend(pcr: number, digest: Uint8Array): Promise<void> {
    this.extends.push({ pcr, digest: toHex(digest) })
    if (pcr === CONTAINER_PCR) this.pcr13 = sha256(concat([this.pcr13, digest]))
  }
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        body += c
      })
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body })
      })
    })
      .on('error', reject)
      .end()
  })
}

async function containersOf(runLabel: string): Promise<number> {
  return (await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`quorate.test=${runLabel}`] }) }))
    .length
}

const registry = new FakeRegistry()
const measurer = new FakeMeasurer()
const eventLog = memoryEventLog()
const a = await createImageStore({ dir: join(dir, 'a') }) // the publisher's node
const b = await createImageStore({ dir: join(dir, 'b') }) // the node that runs it
stores.push(a, b)
const runner: ContainerRunner = createContainerRunner({
  docker,
  registry,
  source: b,
  measurer,
  eventLog,
  nodeId: b.peerId,
  labels: { 'quorate.test': label },
  limits: { memoryBytes: 64 << 20, pids: 32 }
})
const proxy = createTenantProxy({ certification: () => runner.certification(), resolve: name => runner.get(name) })
const proxyServer = createServer(proxy.handler)
servers.push(proxyServer)
await new Promise<void>(resolve => proxyServer.listen(0, '127.0.0.1', resolve))
const proxyPort = (proxyServer.address() as { port: number }).port

t.test(
  'happy path: published on A, fetched by B over libp2p, loaded, measured, run, served through the proxy',
  async t => {
    const img = busyboxImage({ testLabel: label, body: 'served by the tenant\n' })
    const pub = await publishImage(a, registry, { source: img.tar, name: 'web' })
    t.equal(pub.digest, img.imageId, 'digest = Docker image ID')
    t.equal(pub.size, img.tar.length)
    const port = await freePort()
    const phases: string[] = []
    const rc = await runner.launch({
      image: 'web',
      args: httpdArgs(port),
      env: ['GREETING=hi'],
      port,
      providers: a.multiaddrs(),
      onProgress: p => {
        if (!phases.includes(p.phase)) phases.push(p.phase)
      }
    })
    t.same(phases, ['check', 'fetch', 'load', 'measure', 'start', 'ready'])
    t.equal(rc.digest, img.imageId)
    t.notOk(
      await b.has(pub.cid),
      'B keeps no second copy in its IPFS store: Docker holds the image (keepImages: false)'
    )

    const direct = await get(rc.url + '/')
    t.equal(direct.body, 'served by the tenant\n')
    const viaProxy = await get(`http://127.0.0.1:${proxyPort}/tenant/web/index.html`)
    t.equal(viaProxy.status, 200)
    t.equal(viaProxy.body, 'served by the tenant\n', "a request through B's proxy gets the container's answer")
    t.equal((await get(`http://127.0.0.1:${proxyPort}/tenant/nope/`)).status, 404)

    // hardened host config as Docker sees it
    const info = await docker.getContainer(rc.id).inspect()
    const hc = info.HostConfig
    t.equal(hc.ReadonlyRootfs, true, 'read-only root')
    t.same(hc.CapDrop, ['ALL'], 'all capabilities dropped')
    t.ok(
      (hc.SecurityOpt ?? []).some((s: string) => s.startsWith('no-new-privileges')),
      'no-new-privileges'
    )
    t.equal(hc.Privileged, false)
    t.equal(hc.Memory, 64 << 20)
    t.equal(hc.PidsLimit, 32)
    t.equal(hc.NetworkMode, 'host')
    t.same(info.Mounts, [], 'no host mounts')

    // the measurement: one extend of PCR 13, and the log replays to it
    t.equal(measurer.extends.length, 1)
    t.equal(measurer.extends[0].pcr, 13)
    const log = await eventLog.read()
    t.equal(toHex(replayContainerLog(log)), toHex(measurer.pcr13), 'container log replays to the PCR')
    const verifierView = parseContainerLog(log)
    t.equal(verifierView.length, 1, "the verifier's parser reads the runner's line")
    t.equal(
      toHex(replayContainerLog(verifierView)),
      toHex(measurer.pcr13),
      "and the verifier's replay gives the measured PCR 13"
    )
    t.equal(
      toHex(verifierView[0].eventDigest),
      measurer.extends[0].digest,
      'the extended digest is the one the verifier computes'
    )
    const ev = JSON.parse(log.trim()) as Record<string, unknown>
    t.same(
      { image: ev.image, digest: ev.digest, cid: ev.cid, args: ev.args },
      { image: 'web', digest: img.imageId, cid: pub.cid, args: httpdArgs(port) }
    )

    t.ok(await runner.stop('web'))
    t.equal(await containersOf(label), 0, 'stopped and removed')
  }
)

t.test('publish a local Docker image (docker save by ID), remove it, run it again from IPFS', async t => {
  const img = busyboxImage({ testLabel: label, body: 'from docker save\n' })
  const { Readable } = await import('node:stream')
  const res = await docker.loadImage(Readable.from([Buffer.from(img.tar)]) as unknown as NodeJS.ReadableStream, {
    quiet: true
  })
  for await (const _ of res as AsyncIterable<unknown>) {
    /* drain */
  }
  // docker's own archive (legacy layout on this engine) must give the same image ID, no tags
  const pub = await publishImage(a, registry, {
    source: img.imageId.slice('sha256:'.length, 'sha256:'.length + 12),
    name: 'from-docker',
    docker
  })
  t.equal(pub.digest, img.imageId, 'image ID computed from docker save output')
  await docker.getImage(img.imageId).remove({ force: true })
  t.notOk(await imageExists(docker, img.imageId))
  const port = await freePort()
  const rc = await runner.launch({ image: 'from-docker', args: httpdArgs(port), port, providers: a.multiaddrs() })
  t.equal((await get(rc.url + '/')).body, 'from docker save\n')
  await runner.stop(rc.id)
})

t.test('refused, with nothing loaded into Docker', async t => {
  const extendsBefore = measurer.extends.length
  const port = await freePort()
  let providers = a.multiaddrs()
  const refuse = async (
    what: string,
    image: string,
    err: unknown,
    build: () => Promise<string | undefined>
  ): Promise<void> => {
    const imageId = await build()
    await t.rejects(runner.launch({ image, args: httpdArgs(port), port, providers }), err as Error, what)
    if (imageId !== undefined) t.notOk(await imageExists(docker, imageId), `${what}: not loaded`)
    t.equal(await containersOf(label), 0, `${what}: no container`)
  }

  await refuse('uncertified node', 'web2', NotCertifiedError, async () => {
    const img = busyboxImage({ testLabel: label, body: 'two' })
    await publishImage(a, registry, { source: img.tar, name: 'web2' })
    registry.cert = { certified: false, reason: 'no attest.record' }
    return img.imageId
  })
  registry.cert = { certified: true, expiresAt: Date.now() - 1 }
  await t.rejects(runner.launch({ image: 'web2', port }), /expired/, 'expired certification counts as uncertified')
  registry.cert = { certified: true, expiresAt: Date.now() + 3_600_000 }

  await refuse('unpublished image', 'ghost', ImageNotPublishedError, async () => undefined)

  await refuse('revoked image', 'web3', ImageRevokedError, async () => {
    const img = busyboxImage({ testLabel: label, body: 'three' })
    const pub = await publishImage(a, registry, { source: img.tar, name: 'web3' })
    registry.images.set('web3', { ...(registry.images.get('web3') as ImageRecord), revoked: true, cid: pub.cid })
    return img.imageId
  })

  await refuse('bytes that do not match the CID', 'web4', ContentMismatchError, async () => {
    // a provider that serves other bytes under the CID: its stored blocks are overwritten
    const evil = await createImageStore({ dir: join(dir, 'evil') })
    stores.push(evil)
    const img = busyboxImage({ testLabel: label, body: 'four' })
    const pub = await publishImage(evil, registry, { source: img.tar, name: 'web4' })
    const { readdirSync, statSync, writeFileSync } = await import('node:fs')
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap(e =>
        e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]
      )
    const leaf = walk(join(dir, 'evil', 'blocks')).sort((x, y) => statSync(y).size - statSync(x).size)[0]
    const bytes = Buffer.alloc(statSync(leaf).size, 0x41)
    writeFileSync(leaf, bytes)
    registry.images.set('web4', { ...(registry.images.get('web4') as ImageRecord), cid: pub.cid })
    providers = evil.multiaddrs()
    return img.imageId
  })
  providers = a.multiaddrs()

  await refuse('a different image under the published name', 'web5', ImageDigestMismatchError, async () => {
    const published = busyboxImage({ testLabel: label, body: 'five' })
    const swapped = busyboxImage({ testLabel: label, body: 'five, swapped' })
    await publishImage(a, registry, { source: published.tar, name: 'web5' })
    const other = await a.add(swapped.tar)
    // the chain says `published`, the CID holds `swapped`
    registry.images.set('web5', { ...(registry.images.get('web5') as ImageRecord), cid: other.cid, size: other.size })
    t.notOk(await imageExists(docker, swapped.imageId), 'swapped image not loaded either')
    return published.imageId
  })
  t.equal(measurer.extends.length, extendsBefore, 'nothing measured for refused launches')
})

t.test('an app reuses only an image this runner loaded from its CID; a tenant reuses what Docker holds', async t => {
  registry.cert = { certified: true, expiresAt: Date.now() + 3_600_000 }
  // a private image on this node, loaded outside the agent: its owner never published its bytes
  const priv = busyboxImage({ testLabel: label, body: 'private\n' })
  const { Readable } = await import('node:stream')
  const res = await docker.loadImage(Readable.from([Buffer.from(priv.tar)]) as unknown as NodeJS.ReadableStream, {
    quiet: true
  })
  for await (const _ of res as AsyncIterable<unknown>) {
    /* drain */
  }
  const port = await freePort()
  const launch = async (image: string, more: Partial<LaunchRequest> = {}) => {
    const phases: string[] = []
    const run = runner.launch({
      image,
      args: httpdArgs(port),
      port,
      providers: a.multiaddrs(),
      onProgress: p => {
        if (!phases.includes(p.phase)) phases.push(p.phase)
      },
      ...more
    })
    return { run, phases }
  }
  const extendsBefore = measurer.extends.length

  // the attacker publishes an app naming the private image's digest, with bytes of its own under the CID
  const decoy = await a.add(busyboxImage({ testLabel: label, body: 'decoy\n' }).tar)
  const steal: ImageRecord = { name: 'steal', digest: priv.imageId, cid: decoy.cid, size: decoy.size, revoked: false }
  const attack = await launch('steal', { record: steal, app: 'steal', args: ['-p', `127.0.0.1:${port}`, '-h', '/'] })
  await t.rejects(attack.run, ImageDigestMismatchError, 'the app is refused: its CID does not hold the digest')
  t.ok(attack.phases.includes('fetch'), 'the image Docker holds was not reused for the app: the CID was fetched')
  t.equal(await containersOf(label), 0, 'no container')
  t.equal(measurer.extends.length, extendsBefore, 'nothing measured')
  t.ok(await imageExists(docker, priv.imageId), 'the private image is left as it was')

  // the operator's own tenant: any image Docker holds under the digest is reused (no fetch)
  const real = await a.add(priv.tar)
  registry.images.set('priv', { name: 'priv', digest: priv.imageId, cid: real.cid, size: real.size, revoked: false })
  const tenant = await launch('priv')
  const rc = await tenant.run
  t.notOk(tenant.phases.includes('fetch'), 'a deployed tenant reuses the loaded image')
  t.equal((await get(`${rc.url}/`)).body, 'private\n')
  await runner.stop(rc.id)
  t.notOk(
    ((await docker.getImage(priv.imageId).inspect()).RepoTags ?? []).includes(verifiedTag(real.cid)),
    'reuse tags nothing'
  )

  // an app whose publisher holds the bytes: fetched and verified once, then reused
  const mine: ImageRecord = { name: 'mine', digest: priv.imageId, cid: real.cid, size: real.size, revoked: false }
  const first = await launch('mine', { record: mine, app: 'mine' })
  await runner.stop((await first.run).id)
  t.ok(first.phases.includes('fetch'), 'first app launch: fetched from the CID')
  t.ok(
    ((await docker.getImage(priv.imageId).inspect()).RepoTags ?? []).includes(verifiedTag(real.cid)),
    'tagged as loaded from that CID'
  )
  const again = await launch('mine', { record: mine, app: 'mine' })
  await runner.stop((await again.run).id)
  t.same(again.phases, ['check', 'measure', 'start', 'ready'], 'the next app launch reuses it (no fetch, no load)')
  // the tag names one CID: another app record with the same digest but other bytes under its CID fetches again
  const other = await launch('steal', { record: steal, app: 'steal' })
  await t.rejects(other.run, ImageDigestMismatchError, 'the tag of another CID does not count')
  t.equal(await containersOf(label), 0)
})

t.test('certification lost → tenant containers stopped, proxy answers 503 with the reason', async t => {
  registry.cert = { certified: true, expiresAt: Date.now() + 3_600_000 }
  const img = busyboxImage({ testLabel: label, body: 'six' })
  await publishImage(a, registry, { source: img.tar, name: 'web6' })
  const port = await freePort()
  await runner.launch({ image: 'web6', args: httpdArgs(port), port, providers: a.multiaddrs() })
  t.equal((await get(`http://127.0.0.1:${proxyPort}/tenant/web6/`)).body, 'six')
  t.equal(await containersOf(label), 1)

  registry.cert = { certified: false, reason: 'QC of failures recorded' }
  const stopWatching = runner.watchCertification({ intervalMs: 100 })
  t.teardown(stopWatching)
  for (let i = 0; i < 100 && (await containersOf(label)) > 0; i++)
    await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(await containersOf(label), 0, 'containers stopped and removed')
  t.equal(runner.list().length, 0)
  const r = await get(`http://127.0.0.1:${proxyPort}/tenant/web6/`)
  t.equal(r.status, 503)
  t.match(JSON.parse(r.body), { error: 'node not certified', reason: 'QC of failures recorded' })
})
