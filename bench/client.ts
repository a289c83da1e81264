// Client benchmarks (issue 14), on loopback against a real embedded chain and a node serving
// over agent/tls.ts's HTTPS listener with the TLS key its QC bound (test/client/net.ts: the
// committee's verdicts are real BLS signatures the chain verified; no TPM is involved in what a
// client does). Side by side in one run:
//   firstVerified   a client's first verified connection to a node: node record, QC, round and
//                   members' keys proven through the light client (headers from genesis), the QC
//                   re-verified, then a TLS handshake with the key pinned. Target p50 ≤ 20 ms.
//                   `cold` also verifies the newest header (a light client just created);
//                   `firstRequest` is a new client's whole first request() (discovery included).
//   request         one GET on an open connection through the client (every check cached) vs the
//                   same GET with a plain keep-alive HTTPS agent. Target: added p50 ≤ 0.1 ms.
//   node_modules/.bin/node bench/run.ts client
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { startClientNet } from '../test/client/net.ts'
import { createClient, lightChainView, connectPinned } from '../agent/client/index.ts'
import { LightClient } from '../chain/light/index.ts'
import { readGenesis } from '../chain/index.ts'

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(3))
}
const stats = (xs: number[]): { p50: number; p90: number; n: number } => ({
  p50: pct(xs, 50),
  p90: pct(xs, 90),
  n: xs.length
})

async function plainGet(agent: HttpsAgent, url: URL): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = httpsRequest(
      { host: url.hostname, port: Number(url.port), path: url.pathname, agent, rejectUnauthorized: false },
      res => {
        // read the body as the client does (it hands it back)
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.once('end', () => {
          Buffer.concat(chunks)
          resolve()
        })
        res.once('error', reject)
      }
    )
    req.once('error', reject)
    req.end()
  })
}

export async function run(): Promise<Record<string, unknown>> {
  const net = await startClientNet()
  try {
    await net.publishApp('echo')
    // a few certified nodes so the committee has the candidates a small network has
    const node = await net.addNode()
    const extra = [await net.addNode(), await net.addNode()]
    for (const n of extra) await n.kill()
    const genesis = await readGenesis(join(net.work, 'chain'))
    const rpcs = [net.chainUrl]
    const url = new URL(node.https.url)

    // ---- first verified connection ----
    const N = 40
    const warmLc = LightClient.create({ genesis, rpcs })
    const warmView = lightChainView(warmLc, rpcs)
    await warmLc.verifiedHeader()
    const chainId = await warmView.chainId()
    const first: number[] = []
    const chainPart: number[] = []
    const tlsPart: number[] = []
    const cold: number[] = []
    const firstRequest: number[] = []
    let committee = 0
    for (let i = 0; i < N; i++) {
      // warm light client (its newest header verified), a new client: proofs + QC + TLS
      const c = createClient({ chain: warmView })
      const t0 = performance.now()
      const v = await c.verifyNode(node.nodeId)
      const t1 = performance.now()
      const { socket } = await connectPinned(
        { host: url.hostname, port: Number(url.port) },
        { nodeId: node.nodeId, chainId, tlsKey: v.tlsKey }
      )
      const t2 = performance.now()
      socket.destroy()
      c.close()
      committee = v.committee.length
      first.push(t2 - t0)
      chainPart.push(t1 - t0)
      tlsPart.push(t2 - t1)
      // a light client just created: the newest header verified too
      const lc = LightClient.create({ genesis, rpcs })
      const view = lightChainView(lc, rpcs)
      const c2 = createClient({ chain: view })
      const u0 = performance.now()
      const v2 = await c2.verifyNode(node.nodeId)
      const s2 = await connectPinned(
        { host: url.hostname, port: Number(url.port) },
        { nodeId: node.nodeId, chainId, tlsKey: v2.tlsKey }
      )
      cold.push(performance.now() - u0)
      s2.socket.destroy()
      c2.close()
      // a whole first request(): app check, node list, record, QC, pinned handshake, the GET
      const c3 = createClient({ chain: warmView })
      const w0 = performance.now()
      await c3.request('echo', { path: '/' })
      firstRequest.push(performance.now() - w0)
      c3.close()
      view.close?.()
      lc.close()
    }

    // ---- a request on a verified connection vs plain TLS ----
    const client = createClient({ chain: { ...warmView, nodeIds: async () => [node.nodeId] }, recheckMs: 3600_000 })
    const plain = new HttpsAgent({ keepAlive: true, maxSockets: 1 })
    const path = new URL('/app/echo/', url)
    await client.request('echo', { path: '/' })
    await plainGet(plain, path)
    const M = 2000
    const viaClient: number[] = []
    const viaPlain: number[] = []
    for (let block = 0; block < M / 100; block++) {
      // interleaved blocks: the machine's noise falls on both alike
      for (let i = 0; i < 100; i++) {
        const t0 = performance.now()
        await client.request('echo', { path: '/' })
        viaClient.push(performance.now() - t0)
      }
      for (let i = 0; i < 100; i++) {
        const t0 = performance.now()
        await plainGet(plain, path)
        viaPlain.push(performance.now() - t0)
      }
    }
    const s = client.stats()
    client.close()
    plain.destroy()
    warmView.close?.()
    warmLc.close()

    const c = stats(viaClient)
    const p = stats(viaPlain)
    return {
      committee,
      firstVerified: {
        ...stats(first),
        chainAndQc: stats(chainPart),
        tlsHandshake: stats(tlsPart),
        cold: stats(cold),
        firstRequest: stats(firstRequest),
        target: 'p50 ≤ 20 ms'
      },
      request: {
        verified: c,
        plainTls: p,
        addedP50Ms: Number((c.p50 - p.p50).toFixed(3)),
        checksDuringRun: { qcChecks: s.qcChecks, tlsHandshakes: s.tlsHandshakes, recordChecks: s.recordChecks },
        target: 'added p50 ≤ 0.1 ms'
      }
    }
  } finally {
    await net.stop()
  }
}
