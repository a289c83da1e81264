// The whole story as a test: the same code `npm run demo` runs, with real swtpm, libp2p, Helia,
// SQLite and dockerd. Asserts every outcome the demo promises.
import t from 'tap'
import { runDemo } from '../cli/demo.ts'

t.test('demo: honest nodes certified, tenant served, tampered node refused, app loaded on request', async t => {
  const lines: string[] = []
  const r = await runDemo({
    nodes: 6,
    committeeSize: 7,
    keep: false,
    say: l => {
      lines.push(l)
    }
  })
  t.ok(r.ok, 'the demo reports success')
  const honest = r.nodes.filter(n => n.role !== 'tampered')
  t.equal(honest.length, 6)
  for (const n of r.nodes)
    t.ok(n.committeeSize >= 4, `${n.name}: committee of ${n.committeeSize} (≥ 4: tolerates a liar)`)
  for (const n of honest) {
    t.ok(n.certified, `${n.name} certified`)
    t.ok(n.pass > (2 * n.committeeSize) / 3, `${n.name}: more than 2/3 of its committee passed it`)
    t.equal(n.fail, 0)
    t.ok(
      n.signers >= n.threshold && n.signers <= n.pass,
      `${n.name}: its certificate holds ${n.signers} verdicts, at least the threshold (${n.threshold}) and only passing ones`
    )
  }
  t.ok(
    lines.some(l => /certificate: \d+ verdicts \(threshold \d+ of \d+\)$/.test(l)),
    'each certification line shows the certificate against its threshold'
  )
  t.ok(
    lines.some(l => /k = 7 is a committee's largest size/.test(l)),
    'the demo explains k against the committee sizes it shows'
  )
  t.ok(
    lines.some(l => /a certificate holds the signed verdicts that reached the threshold/.test(l)),
    'and what a certificate holds'
  )
  const joiner = honest.find(n => n.role === 'joiner')
  t.ok(
    joiner !== undefined && joiner.committeeSize >= 4,
    'a joiner is certified by a committee drawn from the certified nodes'
  )
  t.match(r.image.cid, /^bafy/)
  t.match(r.image.digest, /^sha256:[0-9a-f]{64}$/)
  t.equal(r.request.status, 200)
  t.match(r.request.body, /hello from a tenant container/)
  t.equal(r.request.network, 'isolated', 'the tenant ran isolated, reached through its relay')
  t.equal(r.image.transfer, 'bulk', 'the image travelled over the bulk channel')
  t.equal(r.notDeployed.status, 404, 'a certified node not running the image answers 404')
  t.match(
    r.notDeployed.reason,
    /^image "demo\/hello" is not deployed on this node .*; it is published on chain as bafy/,
    'and says why: not deployed there, though published'
  )
  t.equal(r.reattest.outcome, 'pass', 'the next quote covers PCR 13 and the container log replays to it')
  t.same(r.reattest.failedClaims, [])
  const bad = r.nodes.find(n => n.role === 'tampered')
  t.ok(bad !== undefined && !bad.certified, 'the tampered node is refused')
  t.same(r.refused.failedClaims, ['firmware'], 'its committee names the firmware claim')
  t.notOk(bad?.ranImage, 'it never runs the image')
  t.match(r.refused.imageRefused, /not certified/)
  // 9. serverless: an app no node was told to run, loaded on request by a certified node
  t.equal(r.app.name, 'hello')
  t.match(r.app.cid, /^bafy/)
  t.not(r.app.digest, r.image.digest, 'the app is another image than the deployed tenant')
  t.equal(r.app.served.status, 200, 'a certified node serves the app on its first request')
  t.match(r.app.served.body, /hello from a serverless app/)
  t.not(r.app.served.node, r.request.node, 'served by a node that never ran anything before')
  t.equal(r.app.refused.status, 503, 'the tampered node refuses the same request')
  t.match(r.app.refused.reason, /not certified/, 'and says why')
  t.ok(
    lines.some(l => /^\[9\/9\] tenant published app "hello" v1: .*no node was told to run it$/.test(l)),
    'the publish line'
  )
  t.ok(
    lines.some(l => /GET http:\/\/127\.0\.0\.1:\d+\/app\/hello\/ \(node-2, certified\) → 200 /.test(l)),
    'the served line'
  )
  t.ok(
    lines.some(l => /loaded on request in \d+ ms \(chain check → fetch from a peer/.test(l)),
    'the load-on-request line'
  )
  t.ok(
    lines.some(l => /\/app\/hello\/ \(node-x, tampered\) → 503 refused: .*not certified/.test(l)),
    'the refused line, with its reason'
  )
  for (let i = 1; i <= 9; i++)
    t.ok(
      lines.some(l => l.startsWith(`[${i}/9]`)),
      `progress was reported for step ${i}`
    )
})
