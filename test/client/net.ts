// A network for the client's tests that needs no TPM: a real embedded chain (current rules), four
// genesis verifiers with BLS keys, and nodes certified by a real QC — the committee the chain drew,
// each member's pass verdict signed with its registered BLS key, aggregated and recorded with
// attest.record, which the chain verifies like any other. What is synthetic is only the evidence
// the members would have appraised (the client never sees evidence: it checks the QC and the
// chain state). Each node serves over agent/tls.ts's HTTPS listener with the key its round bound.
// test/client/agents.test.ts runs the same client against real agents with swtpm.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CID } from 'multiformats/cid'
import { sha256 as mhSha256 } from 'multiformats/hashes/sha2'
import {
  CertificateCollector,
  createQuorumRules,
  generateBlsKey,
  proveKeyPossession,
  signMemberVerdict,
  type BlsSigner
} from '../../attestation/quorum/index.ts'
import {
  ChainClient,
  generateChainKey,
  initChainHome,
  startEmbeddedValidator,
  type ChainKey,
  type EmbeddedValidator,
  type CertificationParams
} from '../../chain/index.ts'
import { sha256, toHex, utf8 } from '../../encoding/bytes.ts'
import { silentLogger } from '../../encoding/log.ts'
import { loadTlsIdentity, startHttpsApi, type HttpsApi, type TlsIdentity } from '../../agent/tls.ts'

export const CHAIN_ID = 'client-net'

export interface TestNode {
  readonly key: ChainKey
  readonly nodeId: string
  readonly bls: BlsSigner
  readonly tls: TlsIdentity
  https: HttpsApi
  /** Requests the node's HTTPS listener answered. */
  served: number
  /** Status the app route answers with (default 200). */
  status: number
  /** Statuses answered first, one per request, before `status`. */
  queue: number[]
  /** Seconds of Retry-After sent with a 503. */
  retryAfter?: number
  /** Stops the HTTPS listener (the node "dies"). */
  kill(): Promise<void>
}

export interface ClientNet {
  readonly work: string
  readonly chain: ChainClient
  readonly chainUrl: string
  readonly validator: EmbeddedValidator
  readonly publisher: ChainKey
  addNode(opts?: { os?: string; certify?: boolean; listen?: string; endpoint?: string }): Promise<TestNode>
  /** A new passing round; `tlsKey` (default the node's own) is what the round binds. */
  certify(node: TestNode, tlsKey?: Uint8Array): Promise<void>
  publishApp(name: string): Promise<void>
  /** Publishes OS `os` version "1" and revokes it: every node registered with that OS is revoked. */
  revokeOs(os: string): Promise<void>
  stop(): Promise<void>
}

function placeholderEk(seed: string): Uint8Array {
  const d = sha256(utf8.encode(`quorate/test/client/ek\0${seed}`))
  return new Uint8Array([0x30, 64, ...d, ...d])
}

async function register(chain: ChainClient, key: ChainKey, bls: BlsSigner, extra: Record<string, unknown> = {}) {
  await chain.send(
    'node.register',
    {
      nodeId: key.peerId,
      ekCertificate: placeholderEk(key.peerId),
      akPublic: sha256(utf8.encode(`ak\0${key.peerId}`)),
      addrs: [],
      os: 'verifier-os',
      blsPublicKey: bls.publicKey,
      blsProof: proveKeyPossession(bls, key.peerId),
      ...extra
    },
    key
  )
}

export async function startClientNet(opts: { certification?: Partial<CertificationParams> } = {}): Promise<ClientNet> {
  const work = mkdtempSync(join(tmpdir(), 'quorate-client-'))
  const verifiers = await Promise.all(
    Array.from({ length: 4 }, async () => ({ key: await generateChainKey(), bls: generateBlsKey() }))
  )
  const blsOf = new Map(verifiers.map(v => [v.key.peerId, v.bls]))
  await initChainHome({
    home: join(work, 'chain'),
    chainId: CHAIN_ID,
    verifiers: verifiers.map(v => v.key.peerId),
    ...(opts.certification === undefined ? {} : { certification: opts.certification })
  })
  const validator = await startEmbeddedValidator({
    home: join(work, 'chain'),
    rpc: '127.0.0.1:0',
    rules: createQuorumRules(),
    blockIntervalMs: 20,
    emptyBlockIntervalMs: 200
  })
  const chain = new ChainClient({ url: validator.url })
  const nodes: TestNode[] = []
  const publisher = await generateChainKey()
  for (const v of verifiers) await register(chain, v.key, v.bls)

  const certify = async (n: TestNode, tlsKey?: Uint8Array): Promise<void> => {
    const req = await chain.requestAttestation(n.key, { tlsKey: tlsKey ?? n.tls.spkiSha256 })
    const seed = await chain.waitForSeed(n.nodeId, req.round, { pollMs: 50 })
    const committee = (seed.candidates ?? []).map(c => ({
      nodeId: c.nodeId,
      blsPublicKey: c.blsPublicKey ?? new Uint8Array(0)
    }))
    const collector = new CertificateCollector({ chainId: CHAIN_ID, nodeId: n.nodeId, round: req.round, committee })
    const message = {
      chainId: CHAIN_ID,
      nodeId: n.nodeId,
      round: req.round,
      outcome: 'pass' as const,
      evidenceDigest: sha256(utf8.encode(`evidence of ${n.nodeId} round ${req.round}`)),
      failedClaims: []
    }
    for (const m of committee) {
      const signer = blsOf.get(m.nodeId)
      if (signer !== undefined) collector.add(signMemberVerdict(message, m.nodeId, signer))
    }
    await chain.recordAttestation(publisher, n.nodeId, req.round, collector.certificate().qc)
  }

  const addNode = async (
    o: { os?: string; certify?: boolean; listen?: string; endpoint?: string } = {}
  ): Promise<TestNode> => {
    const key = await generateChainKey()
    const bls = generateBlsKey()
    const tls = await loadTlsIdentity({
      path: join(work, `${key.peerId}.tls.key`),
      nodeId: key.peerId,
      chainId: CHAIN_ID
    })
    const node: TestNode = {
      key,
      nodeId: key.peerId,
      bls,
      tls,
      https: undefined as unknown as HttpsApi,
      served: 0,
      status: 200,
      queue: [],
      kill: async () => {
        await node.https.stop()
      }
    }
    const app = (req: IncomingMessage, res: ServerResponse): void => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        node.served++
        const status = node.queue.shift() ?? node.status
        const text = JSON.stringify({
          node: node.nodeId,
          method: req.method,
          url: req.url,
          body: Buffer.concat(chunks).toString(),
          header: req.headers['x-test'] ?? null
        })
        res.writeHead(status, {
          'content-type': 'application/json',
          ...(status === 503 && node.retryAfter !== undefined ? { 'retry-after': String(node.retryAfter) } : {})
        })
        res.end(text)
      })
    }
    node.https = await startHttpsApi({
      listen: o.listen ?? '127.0.0.1:0',
      identity: tls,
      routes: path => (path.startsWith('/app/') ? app : undefined),
      serving: () => true,
      logger: silentLogger()
    })
    await register(chain, key, bls, { os: o.os ?? 'node-os', endpoint: o.endpoint ?? node.https.url })
    nodes.push(node)
    // a certified node becomes a committee candidate itself: it signs verdicts as members do
    blsOf.set(node.nodeId, bls)
    if (o.certify !== false) await certify(node)
    return node
  }

  return {
    work,
    chain,
    chainUrl: validator.url,
    validator,
    publisher,
    addNode,
    certify,
    publishApp: async name => {
      const cid = CID.create(1, 0x55, await mhSha256.digest(utf8.encode(name))).toString()
      await chain.send(
        'app.publish',
        {
          name,
          version: '1',
          digest: `sha256:${toHex(sha256(utf8.encode(name)))}`,
          cid,
          size: 1024,
          port: 8080,
          limits: { memoryBytes: 64 << 20, pids: 64 },
          idleTimeoutMs: 60_000
        },
        publisher
      )
    },
    revokeOs: async os => {
      await chain.send(
        'os.publish',
        { name: os, version: '1', bank: 'sha256', pcrs: { '11': { golden: [sha256(utf8.encode(os))] } } },
        publisher
      )
      await chain.send('os.revoke', { name: os, version: '1' }, publisher)
    },
    stop: async () => {
      for (const n of nodes) await n.https.stop().catch(() => {})
      chain.close()
      await validator.stop()
      rmSync(work, { recursive: true, force: true })
    }
  }
}
