// `quorate request` and `quorate curl` as a user runs them: a separate process, the light client
// from the genesis file, --json output with the node that answered and the attempts; refusals
// exit non-zero and name the check that failed.
import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startClientNet } from './net.ts'

const BIN = fileURLToPath(new URL('../../bin/quorate', import.meta.url))
const net = await startClientNet()
t.teardown(async () => {
  await net.stop()
})
await net.publishApp('echo')
const node = await net.addNode()
const genesis = join(net.work, 'chain', 'config', 'genesis.json')

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return await new Promise(resolve => {
    execFile(BIN, args, { timeout: 60_000, env: { ...process.env, QUORATE_HOME: net.work } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

t.test('request --json: status, the node, the attempts', async t => {
  const r = await run([
    'request',
    'echo',
    '/cli?q=1',
    '--rpc',
    net.chainUrl,
    '--genesis',
    genesis,
    '-d',
    'hi',
    '-H',
    'x-test: 1',
    '--json'
  ])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as {
    status: number
    node: string
    attempts: Array<{ outcome: string }>
    body: string
  }
  t.equal(out.status, 200)
  t.equal(out.node, node.nodeId)
  t.same(
    out.attempts.map(a => a.outcome),
    ['served']
  )
  const echoed = JSON.parse(out.body) as { url: string; method: string; body: string; header: string }
  t.same([echoed.url, echoed.method, echoed.body, echoed.header], ['/app/echo/cli?q=1', 'POST', 'hi', '1'])
})

t.test('--extra-rpc: an RPC that is down is passed over for another', async t => {
  const r = await run([
    'request',
    'echo',
    '/extra',
    '--rpc',
    'http://127.0.0.1:1',
    '--extra-rpc',
    net.chainUrl,
    '--genesis',
    genesis,
    '--json'
  ])
  t.equal(r.code, 0, r.stderr)
  t.equal((JSON.parse(r.stdout) as { node: string }).node, node.nodeId)
})

t.test('curl URL: the node found by its certificate, checked, served', async t => {
  const r = await run(['curl', `${node.https.url}/app/echo/by-url`, '--rpc', net.chainUrl, '--genesis', genesis])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /"url":"\/app\/echo\/by-url"/)
  t.match(r.stderr, new RegExp(`HTTP 200 from node ${node.nodeId}`))
})

t.test('refusals exit non-zero and say which check failed', async t => {
  const app = await run(['request', 'missing-app', '--rpc', net.chainUrl, '--genesis', genesis])
  t.not(app.code, 0)
  t.match(app.stderr, /app check failed: app "missing-app": not published on chain/)
  const noGenesis = await run(['request', 'echo', '--rpc', net.chainUrl, '--home', join(net.work, 'nowhere')])
  t.not(noGenesis.code, 0)
  t.match(noGenesis.stderr, /no genesis file .*--genesis FILE/)
  const notHttps = await run(['curl', 'http://127.0.0.1:1/', '--rpc', net.chainUrl, '--genesis', genesis])
  t.not(notHttps.code, 0)
  t.match(notHttps.stderr, /not https/)
})
