// A refused node says why (issue 12): a node whose firmware measurements differ from the published
// reference values is failed by its committee, and both its agent's GET /status and
// `quorate node status` name the failed claim of that round.
import t from 'tap'
import { spawn } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startTestNetwork, PLATFORM, OS_IMAGE } from '../helpers/network.ts'
import { Agent } from '../../agent/agent.ts'
import { loadConfig } from '../../agent/config.ts'
import { freePort, tamperedLog } from '../../cli/demo.ts'
import { silentLogger } from '../../encoding/log.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const net = await startTestNetwork({ verifiers: 4 })
const sw = await net.newSwtpm()
const agent = new Agent({
  config: loadConfig({
    env: {},
    flags: {
      home: join(net.work, 'tampered'),
      tcti: sw.tcti,
      chainRpc: net.chainUrl,
      httpListen: `127.0.0.1:${await freePort()}`,
      platform: PLATFORM,
      osImage: OS_IMAGE,
      roundTimeoutMs: 10_000
    }
  }),
  logger: silentLogger(),
  simulatedBootLog: tamperedLog(net.bootLog),
  manual: true
})
t.teardown(async () => {
  await agent.stop()
  await net.stop()
})
await agent.start()

async function quorate(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return await new Promise(resolve => {
    const p = spawn(join(root, 'bin', 'quorate'), args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    p.once('exit', code => {
      resolve({ code, stdout, stderr })
    })
  })
}

t.test('the failed claims of the last round, in /status and node status', async t => {
  const r = await agent.certify()
  t.equal(r.outcome, 'fail', 'the committee fails the tampered firmware')
  t.same(r.failedClaims, ['firmware'])

  const s = (await (await fetch(`${agent.httpUrl ?? ''}/status`)).json()) as {
    lastRound?: { outcome: string; failedClaims: string[] }
  }
  t.equal(s.lastRound?.outcome, 'fail')
  t.same(s.lastRound?.failedClaims, ['firmware'], '/status names the failed claim')

  const human = await quorate(['node', 'status', agent.nodeId, '--rpc', net.chainUrl])
  t.equal(human.code, 0, human.stderr)
  t.match(human.stdout, /\n {2}failed {6}firmware\n/, 'node status names the failed claim')
  const json = await quorate(['node', 'status', agent.nodeId, '--rpc', net.chainUrl, '--json'])
  t.equal(json.code, 0, json.stderr)
  const view = JSON.parse(json.stdout) as { status: string; qc?: { outcome: string; failedClaims?: string[] } }
  t.equal(view.status, 'failed')
  t.same(view.qc?.failedClaims, ['firmware'], 'and its --json')
})
