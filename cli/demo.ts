// `npm run demo` — the whole story on 127.0.0.1 with real parts: an embedded chain (SQLite), a
// swtpm per agent, libp2p between agents, Helia for the image, and the real dockerd.
//
//   1. chain        embedded validator; genesis names the first agents as verifiers
//   2. TPM vendor   registers and publishes the EK CA certificates of its (software) TPMs
//   3. fw vendor    publishes firmware reference values from a genuine OVMF measured boot
//   4. operator     publishes the node image's reference values (PCRs 4 and 9)
//   5. agents       each with its own swtpm replaying that boot: register, certified by committees
//   6. tenant       publishes a small HTTP image to IPFS (on one node) and on chain
//   7. run          a certified node fetches, verifies, measures and runs it; a request through its proxy
//   8. tampered     a node whose firmware measurements differ is refused and never runs the image
//   9. serverless   an app no node was told to run: a request to a certified node loads it on
//                   request (fetched from a peer, verified, measured, started); the tampered node
//                   refuses the same request with its reason
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { X509Certificate } from 'node:crypto'
import Docker from 'dockerode'
import { startSwtpm, createSwtpmCa, type Swtpm } from '../attestation/tpm/simulator.ts'
import { SAMPLE_BOOT_LOG } from '../attestation/samples/index.ts'
import { parseEventLog, EV_NO_ACTION } from '../attestation/eventlog.ts'
import { refsFromEventLog } from './pcr-refs.ts'
import { createQuorumRules, decodeCertificate, threshold } from '../attestation/quorum/index.ts'
import {
  initChainHome,
  startEmbeddedValidator,
  startCometValidator,
  writeTestnet,
  ChainClient,
  generateChainKey,
  saveChainKey,
  type ChainKey,
  type CometValidator,
  type EmbeddedValidator,
  type PcrRefs
} from '../chain/index.ts'
import type { AppPublishBody } from '../chain/types.ts'
import { buildImageTar, publishImage, DockerError } from '../containers/index.ts'
import { chainAppPublisher, chainImagePublisher } from '../containers/chain-registry.ts'
import { toHex, sha256 } from '../encoding/bytes.ts'
import { InvalidInputError, QuorateError } from '../encoding/errors.ts'
import { createLogger } from '../encoding/log.ts'
import { Agent, type AgentEvent } from '../agent/agent.ts'
import { createFaultAppraiser } from '../agent/p2p/index.ts'
import { loadConfig } from '../agent/config.ts'

export interface DemoOptions {
  /** Honest agents (≥ 6); the first five are genesis verifiers, so every committee has ≥ 4 members. */
  readonly nodes: number
  readonly committeeSize: number
  readonly keep: boolean
  /** embedded (default): one validator in this process; cometbft: 4 CometBFT validators, agents spread over 3 of them, the 4th killed mid-demo. */
  readonly chain?: 'embedded' | 'cometbft'
  readonly say: (line: string) => void
  /** Called with the result while the network still runs; cleanup waits for it (demo --keep). */
  readonly hold?: (result: DemoResult) => Promise<void>
}

export interface DemoNodeResult {
  name: string
  nodeId: string
  role: 'genesis verifier' | 'joiner' | 'tampered'
  certified: boolean
  committeeSize: number
  pass: number
  fail: number
  /** Verdicts the certificate holds (its signers): the threshold's, not the whole committee's. */
  signers: number
  /** Identical verdicts needed from this committee: ⌊2n/3⌋ + 1 of its n members. */
  threshold: number
  failedClaims: string[]
  ranImage: boolean
}

export interface DemoResult {
  ok: boolean
  chain: { url: string; height: number }
  nodes: DemoNodeResult[]
  image: {
    name: string
    cid: string
    digest: string
    size: number
    publishedOn: string
    transfer: 'bulk' | 'stream' | 'reused'
  }
  request: { node: string; url: string; status: number; body: string; network: string }
  /** The same request at a certified node that does not run the image: its 404 and why. */
  notDeployed: { node: string; status: number; reason: string }
  /** The running node's next round, whose quote covers the container PCR. */
  reattest: { outcome: string; pass: number; fail: number; failedClaims: string[] }
  refused: { node: string; failedClaims: string[]; imageRefused: string }
  /** Step 9: an app published on chain that no node was told to run, requested from two nodes. */
  app: {
    name: string
    version: string
    cid: string
    digest: string
    served: { node: string; url: string; status: number; body: string; firstMs: number; againMs: number }
    refused: { node: string; url: string; status: number; reason: string }
  }
  seconds: number
}

export const FIXTURE = SAMPLE_BOOT_LOG
/** What agents register as: "<vendor>/<platform>" of the firmware, and the node image name. */
export const PLATFORM = 'ovmf/q35-smp2'
export const OS_NAME = 'quorate-node'
const TPM_VENDOR = 'swtpm-demo'
const IMAGE = 'demo/hello'
const APP = 'hello'

/** The claims a QC (v3: one verdict every signer signed) names as failed. */
function failedClaims(qc: Uint8Array): string[] {
  return [...decodeCertificate(qc).failedClaims]
}

/** How many committee members' verdicts a QC holds (the set bits of its signer bitmap). */
function signerCount(qc: Uint8Array): number {
  let n = 0
  for (let b of decodeCertificate(qc).signers) for (; b !== 0; b &= b - 1) n++
  return n
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => {
        resolve(port)
      })
    })
  })
}

/** Reference values per PCR from a boot log: every event digest, and the replayed final value. */
export function refsFromLog(log: Uint8Array, pcrs: readonly number[]): PcrRefs {
  return refsFromEventLog(log, 'sha256', new Set(pcrs), true)
}

/**
 * Steps 2–4 of the story, shared with the test network: the TPM vendor registers and publishes
 * its EK CA certificates; the firmware vendor "ovmf" publishes every event digest and final value
 * of PCRs 0–3 and 5–7 from the boot log; an operator publishes the node image (PCRs 4 and 9).
 */
export async function publishTrustAnchors(
  chain: ChainClient,
  o: { caPems: readonly string[]; bootLog: Uint8Array }
): Promise<{ cas: number; firmwarePcrs: string[] }> {
  const tpmVendor = await generateChainKey()
  await chain.send('vendor.register', { name: TPM_VENDOR }, tpmVendor)
  for (const pem of o.caPems) {
    await chain.send(
      'vendor.ekca.publish',
      { vendor: TPM_VENDOR, certificate: new Uint8Array(new X509Certificate(pem).raw) },
      tpmVendor
    )
  }
  const fwVendor = await generateChainKey()
  await chain.send('vendor.register', { name: 'ovmf' }, fwVendor)
  const fwRefs = refsFromLog(o.bootLog, [0, 1, 2, 3, 5, 6, 7])
  await chain.send(
    'firmware.publish',
    { vendor: 'ovmf', platform: 'q35-smp2', version: '2022.11', bank: 'sha256', pcrs: fwRefs },
    fwVendor
  )
  await chain.send(
    'os.publish',
    { name: OS_NAME, version: '1', bank: 'sha256', pcrs: refsFromLog(o.bootLog, [4, 9]) },
    await generateChainKey()
  )
  return { cas: o.caPems.length, firmwarePcrs: Object.keys(fwRefs) }
}

/**
 * The tampered node's boot log: one PCR 0 firmware event (a firmware volume blob) carries a
 * different digest — as if the firmware had been modified. The log stays well-formed, so the
 * node's own replay and quote agree; only the reference values can tell.
 */
export function tamperedLog(log: Uint8Array): Uint8Array {
  const parsed = parseEventLog(log)
  const victim =
    parsed.events.find(e => e.pcr === 0 && e.type !== EV_NO_ACTION && e.typeName.includes('BLOB')) ??
    parsed.events.find(e => e.pcr === 0 && e.type !== EV_NO_ACTION)
  if (victim?.digests.sha256 === undefined)
    throw new InvalidInputError('the event log has no PCR 0 event to tamper with')
  const out = new Uint8Array(log)
  const d = victim.digests.sha256
  // find the digest bytes inside the record and flip them to another value
  for (let i = victim.offset; i + d.length <= out.length; i++) {
    if (out.subarray(i, i + d.length).every((b, j) => b === d[j])) {
      out.set(sha256(new TextEncoder().encode('modified firmware volume')), i)
      return out
    }
  }
  throw new InvalidInputError('could not locate the event digest to tamper with')
}

/** The tenant's image: Debian's busybox-static serving one page, no base image, no registry. */
export function helloImage(body = 'hello from a tenant container on an attested quorate node\n'): {
  tar: Uint8Array
  imageId: string
} {
  const busybox = readFileSync('/bin/busybox')
  const built = buildImageTar({
    files: [
      { path: 'bin' },
      { path: 'bin/busybox', content: busybox, mode: 0o755 },
      { path: 'www' },
      { path: 'www/index.html', content: new TextEncoder().encode(body) }
    ],
    entrypoint: ['/bin/busybox', 'httpd', '-f', '-h', '/www'],
    labels: { 'quorate.demo': '1' }
  })
  return { tar: built.tar, imageId: built.imageId }
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = Date.now()
  const say = o.say
  const work = mkdtempSync(join(tmpdir(), 'quorate-demo-'))
  const logger = createLogger('quorate:demo', {
    level: process.env.QUORATE_LOG_LEVEL === undefined ? 'error' : undefined
  })
  const swtpms: Swtpm[] = []
  const agents: Agent[] = []
  let validator: EmbeddedValidator | undefined
  const comet: CometValidator[] = []
  let client: ChainClient | undefined
  const imageIds: string[] = []
  const cleanup = async (): Promise<void> => {
    await Promise.all(
      agents.map(async a => {
        await a.stop().catch(() => {})
      })
    )
    if (!o.keep)
      for (const id of imageIds)
        await new Docker()
          .getImage(id)
          .remove({ force: true })
          .catch(() => {})
    await validator?.stop().catch(() => {})
    await Promise.all(
      comet.map(async v => {
        await v.stop().catch(() => {})
      })
    )
    client?.close()
    await Promise.all(
      swtpms.map(async s => {
        await s.stop().catch(() => {})
      })
    )
    if (!o.keep) rmSync(work, { recursive: true, force: true })
  }
  const onSignal = (): void => {
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const docker = new Docker()
    await docker.ping().catch((err: unknown) => {
      throw new DockerError(`no Docker engine answers (${(err as Error).message}); run: npm run setup`, { cause: err })
    })
    const bootLog = new Uint8Array(readFileSync(FIXTURE))

    // 1. chain ----------------------------------------------------------------------------------
    const names = Array.from({ length: o.nodes }, (_, i) => `node-${i + 1}`)
    const keys = new Map<string, ChainKey>()
    for (const n of [...names, 'node-x']) keys.set(n, await generateChainKey())
    // five: a genesis verifier is certified by the other four, so no committee is smaller than 4 (3f + 1, f = 1)
    const genesisVerifiers = names.slice(0, 5)
    const chainHome = join(work, 'chain')
    await initChainHome({
      home: chainHome,
      chainId: 'quorate-demo',
      verifiers: genesisVerifiers.map(n => (keys.get(n) as ChainKey).peerId),
      committeeSize: o.committeeSize
    })
    let chainUrl: string
    /** The RPC agent i uses: with CometBFT spread over validators 0–2 (validator 3 is killed mid-demo). */
    let rpcFor: (i: number) => string
    if (o.chain === 'cometbft') {
      const net = await writeTestnet({
        dir: join(work, 'net'),
        validators: 4,
        chainId: 'quorate-demo',
        verifiers: genesisVerifiers.map(n => (keys.get(n) as ChainKey).peerId),
        committeeSize: o.committeeSize,
        timeoutCommitMs: 100
      })
      for (const v of net.validators)
        comet.push(
          await startCometValidator({
            home: v.home,
            rules: createQuorumRules({ k: o.committeeSize }),
            appraiser: createFaultAppraiser(),
            logger: logger.child('chain')
          })
        )
      for (const v of comet) {
        const c = new ChainClient({ url: v.rpc })
        try {
          while ((await c.status().catch(() => ({ height: 0 }))).height < 1)
            await new Promise(resolve => setTimeout(resolve, 100))
        } finally {
          c.close()
        }
      }
      chainUrl = comet[0].rpc
      rpcFor = i => comet[i % 3].rpc
      say(
        `[1/9] chain      4 CometBFT validators (${comet.map(v => v.rpc).join(', ')}; chain id quorate-demo, k = ${o.committeeSize}, genesis verifiers: ${genesisVerifiers.join(', ')})`
      )
    } else {
      validator = await startEmbeddedValidator({
        home: chainHome,
        rules: createQuorumRules({ k: o.committeeSize }),
        appraiser: createFaultAppraiser(),
        blockIntervalMs: 20,
        emptyBlockIntervalMs: 200,
        logger: logger.child('chain')
      })
      const url = validator.url
      chainUrl = url
      rpcFor = () => url
      say(
        `[1/9] chain      embedded validator at ${validator.url} (chain id quorate-demo, k = ${o.committeeSize}, genesis verifiers: ${genesisVerifiers.join(', ')})`
      )
    }
    client = new ChainClient({ url: chainUrl })
    const chain = client
    /**
     * Waits until the RPC node i uses has committed `height` (a tx sent through another CometBFT
     * validator may reach it a block later; the embedded chain has one RPC, so nothing waits).
     */
    const caughtUp = async (i: number, height: number | undefined): Promise<void> => {
      const url = rpcFor(i)
      if (url === chainUrl || height === undefined) return
      const c = new ChainClient({ url })
      try {
        const deadline = Date.now() + 15_000
        while ((await c.status().catch(() => ({ height: 0 }))).height < height) {
          if (Date.now() > deadline)
            throw new QuorateError(`the validator at ${url} did not reach height ${height} within 15 s`)
          await new Promise(resolve => setTimeout(resolve, 50))
        }
      } finally {
        c.close()
      }
    }

    // TPMs: one swtpm per agent, manufactured with EK certificates
    say(`       manufacturing ${o.nodes + 1} software TPMs (swtpm, EK certificates from the TPM vendor's CA) …`)
    const tpmCa = createSwtpmCa(join(work, 'tpm-vendor-ca'))
    for (let i = 0; i < o.nodes + 1; i++) swtpms.push(await startSwtpm({ caDir: tpmCa.dir }))

    // 2–4. TPM vendor, firmware vendor, operator
    const anchors = await publishTrustAnchors(chain, { caPems: tpmCa.pems, bootLog })
    say(`[2/9] TPM vendor "${TPM_VENDOR}" registered and published ${anchors.cas} EK CA certificate(s)`)
    say(
      `[3/9] firmware vendor "ovmf" published reference values for q35-smp2 2022.11 (PCRs ${anchors.firmwarePcrs.join(', ')}; from a genuine OVMF measured boot)`
    )
    say(`[4/9] operator published node image "${OS_NAME}" v1 (PCRs 4 and 9: kernel, command line, initrd)`)

    // 5. agents ---------------------------------------------------------------------------------
    const events: string[] = []
    const mkAgent = async (name: string, tpm: Swtpm, log: Uint8Array): Promise<Agent> => {
      const home = join(work, name)
      await saveChainKey(join(home, 'node.key'), keys.get(name) as ChainKey)
      const config = loadConfig({
        env: {},
        flags: {
          home,
          tcti: tpm.tcti,
          chainRpc: rpcFor(Math.max(0, names.indexOf(name))),
          httpListen: `127.0.0.1:${await freePort()}`,
          committeeSize: o.committeeSize,
          certificationTtlMs: 10 * 60_000,
          roundTimeoutMs: 10_000,
          platform: PLATFORM,
          osImage: OS_NAME,
          pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13]
        }
      })
      const a = new Agent({
        config,
        logger: logger.child(name),
        simulatedBootLog: log,
        manual: true,
        onEvent: (e: AgentEvent) => {
          if (e.type === 'warning') events.push(`${name}: ${e.message}`)
        }
      })
      agents.push(a)
      await a.start()
      return a
    }
    const byName = new Map<string, Agent>()
    for (let i = 0; i < o.nodes; i++) byName.set(names[i], await mkAgent(names[i], swtpms[i], bootLog))
    say(
      `[5/9] ${o.nodes} agents started, each with its own swtpm replaying the OVMF measured boot; registered on chain`
    )
    if (comet.length === 4) {
      // kill -9 of validator 3's cometbft, and it stays down: three of four (> 2/3) go on
      const v3 = comet[3]
      const pid = v3.cometPid
      if (pid !== undefined) process.kill(pid, 'SIGKILL')
      await v3.stop()
      say(`       validator node3 killed (kill -9 of its cometbft, not restarted); the other three go on`)
    }
    if (events.length > 0)
      say(`       (every agent announced: INSECURE software TPM — as it should outside real hardware)`)

    const results: DemoNodeResult[] = []
    for (const name of names) {
      const a = byName.get(name) as Agent
      const r = await a.certify()
      const role = genesisVerifiers.includes(name) ? 'genesis verifier' : 'joiner'
      const failed = failedClaims(r.qc)
      results.push({
        name,
        nodeId: a.nodeId,
        role,
        certified: r.outcome === 'pass',
        committeeSize: r.committee.length,
        pass: r.pass,
        fail: r.fail,
        signers: signerCount(r.qc),
        threshold: threshold(r.committee.length),
        failedClaims: failed,
        ranImage: false
      })
      say(
        `       ${name} (${a.nodeId.slice(0, 16)}…) ${r.outcome === 'pass' ? 'CERTIFIED' : 'REFUSED'}: committee of ${r.committee.length} [${r.committee.map(m => nameOf(m)).join(', ')}], ${r.pass} pass / ${r.fail} fail${r.unresponsive.length > 0 ? `, ${r.unresponsive.length} silent` : ''}; certificate: ${signerCount(r.qc)} verdicts (threshold ${threshold(r.committee.length)} of ${r.committee.length})`
      )
    }
    say(
      `       k = ${o.committeeSize} is a committee's largest size: one is drawn from the certified nodes other than the node itself, so while fewer are certified committees are smaller (never under 4 here)`
    )
    say(
      `       a certificate holds the signed verdicts that reached the threshold (> 2/3 of the committee, all alike), often just that many: the chain checks those; later ones are not recorded`
    )
    function nameOf(nodeId: string): string {
      for (const [n, k] of keys) if (k.peerId === nodeId) return n
      return nodeId.slice(0, 10)
    }

    // 6. tenant publishes -----------------------------------------------------------------------
    const tenant = await generateChainKey()
    const img = helloImage()
    // start from a Docker engine that does not hold the image, so the whole gated path runs
    await new Docker()
      .getImage(img.imageId)
      .remove({ force: true })
      .catch(() => {})
    imageIds.push(img.imageId)
    const publisherNode = byName.get(names[0]) as Agent
    const pub = await publishImage(
      publisherNode.store,
      chainImagePublisher(async body => await chain.send('image.publish', body, tenant)),
      { source: img.tar, name: IMAGE }
    )
    say(
      `[6/9] tenant published "${IMAGE}": ${pub.size} bytes, CID ${pub.cid}, image ${pub.digest.slice(0, 19)}… (IPFS on ${names[0]}, record on chain)`
    )

    // 7. a certified node runs it -----------------------------------------------------------------
    const runnerName = names[o.nodes - 1]
    await caughtUp(o.nodes - 1, pub.height)
    const runner = byName.get(runnerName) as Agent
    const port = await freePort()
    const phases: string[] = []
    const c = await runner.deploy(
      { image: IMAGE, port, args: ['-p', `127.0.0.1:${port}`] },
      {
        onProgress: p => {
          if (phases.at(-1) !== p) phases.push(p)
        }
      }
    )
    results[o.nodes - 1].ranImage = true
    say(
      `[7/9] ${runnerName} gate passed (${phases.join(' → ')}): container ${c.id.slice(0, 12)} measured into PCR 13 and started`
    )
    const served = publisherNode.store.served()
    const transfer = served.bulk > 0 ? 'bulk' : served.stream > 0 ? 'stream' : 'reused'
    say(
      transfer === 'reused'
        ? `       Docker already held exactly this image ID: ${runnerName} reused it (nothing fetched)`
        : `       ${names[0]} sent the image ${transfer === 'bulk' ? 'over its direct bulk channel (a one-time ticket offered over libp2p)' : 'on the libp2p stream'}; ${runnerName} checked every block against the CID`
    )
    say(
      c.socketPath !== undefined
        ? "       network isolated: the tenant has its own loopback only, reached through a relay socket (no path to the node's 127.0.0.1)"
        : `       network ${runner.config.containerNetwork}: the tenant shares the node's loopback`
    )
    const url = `${runner.httpUrl ?? ''}/tenant/${encodeURIComponent(IMAGE)}/`
    const resp = await fetch(url)
    const body = await resp.text()
    say(`       GET ${url} → ${resp.status} ${JSON.stringify(body.trim())}`)
    // a certified node that was not told to run it says why nothing answers there
    const elsewhere = byName.get(names[1]) as Agent
    const hereUrl = `${elsewhere.httpUrl ?? ''}/tenant/${encodeURIComponent(IMAGE)}/`
    const here = await fetch(hereUrl)
    const hereText = await here.text()
    let notHere = hereText.trim()
    try {
      notHere = (JSON.parse(hereText) as { reason?: string }).reason ?? notHere
    } catch {}
    say(`       the same request at ${names[1]} → ${here.status}: ${notHere}`)
    // the next quote covers PCR 13: the committee replays the container log against it
    const again = await runner.certify()
    const reattest = {
      outcome: again.outcome,
      pass: again.pass,
      fail: again.fail,
      failedClaims: failedClaims(again.qc)
    }
    say(
      `       ${runnerName} re-attested with the container running: ${again.outcome === 'pass' ? 'CERTIFIED' : 'REFUSED'} (${again.pass} pass / ${again.fail} fail; container log replayed to PCR 13)`
    )

    // 8. tampered node --------------------------------------------------------------------------
    const bad = await mkAgent('node-x', swtpms[o.nodes], tamperedLog(bootLog))
    const rx = await bad.certify()
    const failedX = failedClaims(rx.qc)
    results.push({
      name: 'node-x',
      nodeId: bad.nodeId,
      role: 'tampered',
      certified: rx.outcome === 'pass',
      committeeSize: rx.committee.length,
      pass: rx.pass,
      fail: rx.fail,
      signers: signerCount(rx.qc),
      threshold: threshold(rx.committee.length),
      failedClaims: failedX,
      ranImage: false
    })
    say(
      `[8/9] node-x (tampered PCR 0 firmware event) ${rx.outcome === 'pass' ? 'CERTIFIED (unexpected!)' : 'REFUSED'}: committee of ${rx.committee.length}, ${rx.pass} pass / ${rx.fail} fail, failing claim(s): ${failedX.join(', ') || 'none'}`
    )
    let imageRefused = ''
    try {
      const p2 = await freePort()
      await bad.deploy({ image: IMAGE, port: p2, args: ['-p', `127.0.0.1:${p2}`] })
      results[results.length - 1].ranImage = true
      imageRefused = 'ran (unexpected!)'
    } catch (err) {
      imageRefused = (err as Error).message
    }
    say(`       node-x asked to run "${IMAGE}": refused — ${imageRefused}`)

    // 9. serverless: an app no node was told to run ------------------------------------------------
    const appImg = helloImage('hello from a serverless app, loaded on request by a certified quorate node\n')
    await new Docker()
      .getImage(appImg.imageId)
      .remove({ force: true })
      .catch(() => {})
    imageIds.push(appImg.imageId)
    const appPub = await publishImage(
      publisherNode.store,
      chainAppPublisher(
        {
          name: APP,
          version: '1',
          port: 8080,
          args: ['-p', '127.0.0.1:8080'],
          limits: { memoryBytes: 64 << 20, pids: 64 },
          idleTimeoutMs: 60_000
        },
        async (body: AppPublishBody) => await chain.send('app.publish', body, tenant)
      ),
      { source: appImg.tar, name: APP }
    )
    say(
      `[9/9] tenant published app "${APP}" v1: ${appPub.size} bytes, CID ${appPub.cid} (IPFS on ${names[0]}, app.publish on chain); no node was told to run it`
    )
    const serverName = names[1]
    await caughtUp(1, appPub.height)
    const server = byName.get(serverName) as Agent
    const appUrl = `${server.httpUrl ?? ''}/app/${APP}/`
    const a0 = performance.now()
    const appResp = await fetch(appUrl)
    const appBody = await appResp.text()
    const firstMs = performance.now() - a0
    const a1 = performance.now()
    const second = await fetch(appUrl)
    await second.text()
    const againMs = performance.now() - a1
    say(
      `       GET ${appUrl} (${serverName}, certified) → ${appResp.status} ${JSON.stringify(appBody.trim().slice(0, 120))}`
    )
    say(
      `       loaded on request in ${Math.round(firstMs)} ms (chain check → fetch from a peer → verify → load → measure → start); the next request ${Math.round(againMs)} ms`
    )
    const badUrl = `${bad.httpUrl ?? ''}/app/${APP}/`
    const badResp = await fetch(badUrl)
    const badText = await badResp.text()
    let badReason = badText.trim()
    try {
      const j = JSON.parse(badText) as { error?: string; reason?: string }
      badReason = [j.error, j.reason].filter(x => x !== undefined).join(': ')
    } catch {}
    say(`       GET ${badUrl} (node-x, tampered) → ${badResp.status} refused: ${badReason}`)

    const status = await chain.status()
    const ok =
      results.filter(r => r.role !== 'tampered').every(r => r.certified) &&
      !results[results.length - 1].certified &&
      resp.status === 200 &&
      body.includes('hello') &&
      !results[results.length - 1].ranImage &&
      reattest.outcome === 'pass' &&
      appResp.status === 200 &&
      appBody.includes('serverless app') &&
      second.status === 200 &&
      badResp.status === 503
    const result: DemoResult = {
      ok,
      chain: { url: chainUrl, height: status.height },
      nodes: results,
      image: { name: IMAGE, cid: pub.cid, digest: pub.digest, size: pub.size, publishedOn: names[0], transfer },
      request: {
        node: runnerName,
        url,
        status: resp.status,
        body,
        network: c.socketPath !== undefined ? 'isolated' : runner.config.containerNetwork
      },
      notDeployed: { node: names[1], status: here.status, reason: notHere },
      reattest,
      refused: { node: 'node-x', failedClaims: failedX, imageRefused },
      app: {
        name: APP,
        version: '1',
        cid: appPub.cid,
        digest: appPub.digest,
        served: {
          node: serverName,
          url: appUrl,
          status: appResp.status,
          body: appBody,
          firstMs: Math.round(firstMs),
          againMs: Math.round(againMs * 10) / 10
        },
        refused: { node: 'node-x', url: badUrl, status: badResp.status, reason: badReason }
      },
      seconds: Math.round((Date.now() - t0) / 100) / 10
    }
    if (o.hold !== undefined) {
      // the caller keeps the network up (demo --keep) and ends the hold on its own signal
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      await o.hold(result)
    }
    return result
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await cleanup()
  }
}

export function summaryTable(r: DemoResult): string {
  const rows = [
    ['node', 'role', 'node id', 'certified', 'committee', 'pass', 'fail', 'in QC', 'failed claims', 'ran image']
  ]
  for (const n of r.nodes)
    rows.push([
      n.name,
      n.role,
      `${n.nodeId.slice(0, 14)}…`,
      n.certified ? 'yes' : 'NO',
      String(n.committeeSize),
      String(n.pass),
      String(n.fail),
      `${n.signers} (≥ ${n.threshold})`,
      n.failedClaims.join(',') || '-',
      n.ranImage ? 'yes' : '-'
    ])
  const w = rows[0].map((_, i) => Math.max(...rows.map(x => x[i].length)))
  const line = (x: string[]): string => x.map((c, i) => c.padEnd(w[i])).join('  ')
  return (
    [line(rows[0]), w.map(n => '-'.repeat(n)).join('  '), ...rows.slice(1).map(line)].join('\n') +
    `\n\nimage ${r.image.name}  CID ${r.image.cid}  digest ${r.image.digest}\n` +
    `request via ${r.request.node}: HTTP ${r.request.status} ${JSON.stringify(r.request.body.trim())}\n` +
    `refused: ${r.refused.node} failed ${r.refused.failedClaims.join(', ')}; image refused: ${r.refused.imageRefused}\n` +
    `app ${r.app.name} v${r.app.version} via ${r.app.served.node}: HTTP ${r.app.served.status}, loaded on request in ${r.app.served.firstMs} ms; via ${r.app.refused.node}: HTTP ${r.app.refused.status} (${r.app.refused.reason})\n` +
    `chain height ${r.chain.height}; ${r.seconds} s; ${r.ok ? 'DEMO OK' : 'DEMO FAILED'}`
  )
}

export { toHex }
