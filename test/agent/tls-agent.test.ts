// Attested TLS on the real agent (issue 14): swtpm, the embedded chain, three genesis verifiers on
// loopback. A round binds the agent's TLS key: the chain records sha256(SPKI) with the passing QC,
// and the HTTPS endpoint registered on chain presents a certificate for exactly that key, naming
// the node and the chain. Before the chain records the key, the endpoint accepts no connection.
// A replaced key file: the restarted agent serves nothing with the new key until a new round
// binds it — then the chain, the endpoint and the certificate agree on the new key.
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync, statSync } from 'node:fs'
import { connect, type TLSSocket } from 'node:tls'
import { join } from 'node:path'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'
import { Agent } from '../../agent/agent.ts'
import { loadConfig } from '../../agent/config.ts'
import { verifyTlsSocket, spkiSha256, TlsPinError } from '../../agent/tls.ts'
import { equal, toHex } from '../../encoding/bytes.ts'
import { silentLogger } from '../../encoding/log.ts'
import { freePort } from '../../cli/demo.ts'

const net = await startTestNetwork({ verifiers: 3 })
let node: Agent | undefined
t.teardown(async () => {
  await node?.stop()
  await net.stop()
})

const sw = await net.newSwtpm()
const home = join(net.work, 'node')
const makeAgent = async (): Promise<Agent> =>
  new Agent({
    config: loadConfig({
      env: {},
      flags: {
        home,
        tcti: sw.tcti,
        chainRpc: net.chainUrl,
        httpListen: `127.0.0.1:${await freePort()}`,
        httpsListen: '127.0.0.1:0',
        platform: PLATFORM,
        osImage: OS_IMAGE,
        roundTimeoutMs: 5000
      }
    }),
    logger: silentLogger(),
    simulatedBootLog: net.bootLog,
    manual: true
  })

/** Connects to an https:// URL; resolves with the socket after the handshake, or the error. */
async function handshake(url: string, opts: { maxVersion?: 'TLSv1.2' } = {}): Promise<TLSSocket> {
  const u = new URL(url)
  return await new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, ...opts }, () => {
      resolve(s)
    })
    s.once('error', reject)
  })
}

/** One GET over a pinned TLS connection: nothing is written before the certificate passed. */
async function pinnedGet(url: string, expected: Parameters<typeof verifyTlsSocket>[1]): Promise<string> {
  const s = await handshake(url)
  try {
    verifyTlsSocket(s, expected)
    const u = new URL(url)
    s.write(`GET ${u.pathname} HTTP/1.1\r\nhost: ${u.host}\r\nconnection: close\r\n\r\n`)
    const chunks: Buffer[] = []
    for await (const c of s) chunks.push(c as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  } finally {
    s.destroy()
  }
}

t.test('a round binds the TLS key: the chain records it, the endpoint presents it', async t => {
  const a = (node = await makeAgent())
  await a.start()
  const url = a.httpsUrl ?? ''
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/, 'an HTTPS endpoint on loopback')
  const keyFile = join(home, 'tls.key')
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'tls.key is made with mode 0600')
  t.equal((await net.chain.node(a.nodeId))?.record?.endpoint, url, 'node.register names the HTTPS endpoint')
  t.equal(a.status().https?.serving, false, 'not serving before a round bound the key')
  await t.rejects(handshake(url), 'no TLS connection before the chain recorded the key')

  const r = await a.certify()
  t.equal(r.outcome, 'pass', `certified (${r.pass} pass / ${r.fail} fail)`)
  const rec = (await net.chain.node(a.nodeId))?.record
  const mine = a.tlsKey ?? new Uint8Array(0)
  t.ok(rec?.tlsKey !== undefined && equal(rec.tlsKey, mine), 'NodeRecord.tlsKey is the agent key hash')
  t.equal(a.status().https?.serving, true)
  t.equal(a.status().https?.tlsKey, toHex(mine))

  const s = await handshake(url)
  t.equal(s.getProtocol(), 'TLSv1.3')
  const cert = verifyTlsSocket(s, {
    spkiSha256: rec?.tlsKey ?? new Uint8Array(32),
    nodeId: a.nodeId,
    chainId: 'test-net'
  })
  s.destroy()
  t.equal(cert.nodeId, a.nodeId, 'the certificate names the node')
  t.equal(cert.chainId, 'test-net', 'and the chain')
  t.ok(equal(cert.spkiSha256, rec?.tlsKey ?? new Uint8Array(0)), 'the key the endpoint presents is the certified one')

  const other = spkiSha256(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)
  const s2 = await handshake(url)
  t.throws(() => verifyTlsSocket(s2, { spkiSha256: other }), TlsPinError, 'a client pinning another key refuses it')
  s2.destroy()

  await t.rejects(handshake(url, { maxVersion: 'TLSv1.2' }), 'TLS 1.2 is refused')
  const tenant = await pinnedGet(`${url}/tenant/none/`, { spkiSha256: mine, nodeId: a.nodeId })
  t.match(tenant, /^HTTP\/1\.1 (404|503)/, 'tenant routes are served over HTTPS (no such tenant here)')
  const app = await pinnedGet(`${url}/app/no-such-app/`, { spkiSha256: mine })
  t.match(app, /^HTTP\/1\.1 (404|503)/, 'app routes too')
  t.notMatch(app, /"routes"/, 'answered by the apps handler, not as an unknown route')
  const status = await pinnedGet(`${url}/status`, { spkiSha256: mine })
  t.match(status, /^HTTP\/1\.1 404/, 'the local API (status, metrics) is not on the HTTPS endpoint')
})

t.test('a replaced key is not served until a new round binds it', async t => {
  const old = node?.tlsKey ?? new Uint8Array(0)
  await node?.stop()
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  writeFileSync(join(home, 'tls.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  const fresh = spkiSha256(privateKey)
  const a = (node = await makeAgent())
  await a.start()
  t.ok(equal(a.tlsKey ?? new Uint8Array(0), fresh), 'the agent loaded the replaced key')
  const before = (await net.chain.node(a.nodeId))?.record?.tlsKey
  t.ok(before !== undefined && equal(before, old), 'the chain still records the old key')
  t.equal(a.status().https?.serving, false)
  await t.rejects(handshake(a.httpsUrl ?? ''), 'the new key is not used before its round')

  const r = await a.certify()
  t.equal(r.outcome, 'pass')
  const after = (await net.chain.node(a.nodeId))?.record?.tlsKey
  t.ok(after !== undefined && equal(after, fresh), 'the new round recorded the new key')
  const s = await handshake(a.httpsUrl ?? '')
  const cert = verifyTlsSocket(s, { spkiSha256: after ?? new Uint8Array(32), nodeId: a.nodeId })
  s.destroy()
  t.ok(equal(cert.spkiSha256, fresh), 'and the endpoint presents it')
})

t.test('a key replaced while the agent runs: the endpoint stops serving until a round binds the new key', async t => {
  const a = node as Agent
  t.equal(a.status().https?.serving, true, 'serving the key certified above')
  t.equal(await a.reloadTlsKey(), false, 'the same file: nothing to do')
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  writeFileSync(join(home, 'tls.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  const fresh = spkiSha256(privateKey)
  t.equal(await a.reloadTlsKey(), true, 'the agent notices the new key')
  t.equal(a.status().https?.serving, false, 'and stops serving at once')
  await t.rejects(handshake(a.httpsUrl ?? ''), 'no connection with the unbound key')
  const r = await a.certify()
  t.equal(r.outcome, 'pass')
  const rec = (await net.chain.node(a.nodeId))?.record
  t.ok(rec?.tlsKey !== undefined && equal(rec.tlsKey, fresh), 'the round bound the new key')
  const s = await handshake(a.httpsUrl ?? '')
  t.ok(equal(verifyTlsSocket(s, { spkiSha256: fresh, nodeId: a.nodeId }).spkiSha256, fresh), 'the endpoint presents it')
  s.destroy()
})
