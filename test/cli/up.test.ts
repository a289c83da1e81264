// `quorate up` / `quorate down` as a user runs them, with real processes: a local network of the
// fewest agents the certification rules allow comes up certified, serves demo/hello through an
// agent's proxy once deployed, stops with no process left, and resumes with the same node ids on
// the same chain, certified again.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import Docker from 'dockerode'
import { ChainClient } from '../../chain/index.ts'
import { NODE_LABEL } from '../../containers/index.ts'
import { helloImage } from '../../cli/demo.ts'
import { LOCALNET_PAGE, MIN_AGENTS } from '../../cli/localnet.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const work = mkdtempSync(join(tmpdir(), 'quorate-up-test-'))
const dir = join(work, 'net')
const env = { ...process.env, QUORATE_HOME: join(work, 'home'), QUORATE_LOG_LEVEL: 'warn' }

interface Run {
  code: number | null
  stdout: string
  stderr: string
}
async function quorate(args: string[]): Promise<Run> {
  return await new Promise(resolve => {
    const p = spawn(join(root, 'bin', 'quorate'), args, { stdio: ['ignore', 'pipe', 'pipe'], env })
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

interface UpJson {
  dir: string
  rpc: string
  nodes: Array<{ name: string; nodeId: string; http: string; certified: boolean; pid?: number }>
  chain: { pid?: number }
}

function parseUp(r: Run): UpJson {
  if (r.code !== 0) throw new Error(`quorate up exited ${String(r.code)}:\n${r.stderr}`)
  return JSON.parse(r.stdout) as UpJson
}

/** A process that still runs (a zombie has ended). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

/** Every pid the network's files name: agents, swtpms (the chain's is in up's output). */
function pidFiles(nodes: readonly string[]): number[] {
  const out: number[] = []
  for (const n of nodes) {
    for (const f of [join(dir, n, 'agent.pid'), join(dir, n, 'tpm', 'swtpm.pid')]) {
      const pid = Number(readFileSync(f, 'utf8').trim())
      if (Number.isInteger(pid) && pid > 0) out.push(pid)
    }
  }
  return out
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < end) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}${last !== undefined ? ` (last error: ${String(last)})` : ''}`)
}

const docker = new Docker()
let names: string[] = []
let chainPid: number | undefined
t.teardown(async () => {
  await quorate(['down', '--dir', dir])
  for (const pid of [...pidFiles(names), ...(chainPid !== undefined ? [chainPid] : [])]) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
  await docker
    .getImage(helloImage(LOCALNET_PAGE).imageId)
    .remove({ force: true })
    .catch(() => {})
  rmSync(work, { recursive: true, force: true })
})

t.test('up, a request through a node, down, up again', async t => {
  let t0 = Date.now()
  const lap = (what: string): void => {
    t.comment(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    t0 = Date.now()
  }
  const first = parseUp(await quorate(['up', '--dir', dir, '--agents', String(MIN_AGENTS), '--json']))
  lap('up (new network)')
  t.equal(first.dir, dir)
  t.match(first.rpc, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(first.nodes.length, MIN_AGENTS)
  t.ok(
    first.nodes.every(n => n.certified),
    'every node certified when up returns'
  )
  t.equal(new Set(first.nodes.map(n => n.nodeId)).size, MIN_AGENTS, 'distinct node ids')
  names = first.nodes.map(n => n.name)
  chainPid = first.chain.pid
  const chain = new ChainClient({ url: first.rpc })
  t.teardown(() => {
    chain.close()
  })
  // genesis verifiers count as certified anyway: the chain must hold a passing round of each
  for (const n of first.nodes)
    t.equal(
      (await chain.node(n.nodeId))?.record?.status,
      'certified',
      `${n.name}: the chain recorded its passing round`
    )
  t.equal((await chain.images({ name: 'demo/hello' })).length, 1, 'demo/hello is published')

  // run demo/hello on the last node with the deploy command, and ask it through that node's proxy
  const node = first.nodes[first.nodes.length - 1]
  const deployed = await quorate([
    'deploy',
    'demo/hello',
    '--home',
    join(dir, node.name),
    '--port',
    '8080',
    '--',
    '-p',
    '127.0.0.1:8080'
  ])
  t.equal(deployed.code, 0, deployed.stderr)
  const body = await until('demo/hello served through the proxy', async () => {
    const r = await fetch(`${node.http}/tenant/${encodeURIComponent('demo/hello')}/`)
    return r.status === 200 ? await r.text() : undefined
  })
  t.equal(body, LOCALNET_PAGE)
  lap('deploy until served')

  const height = (await chain.status()).height
  const pids = [...pidFiles(names), ...(chainPid !== undefined ? [chainPid] : [])]
  t.equal(pids.length, 2 * MIN_AGENTS + 1, 'an agent and a swtpm per node, and the chain')
  t.ok(pids.every(running))

  const downRun = await quorate(['down', '--dir', dir, '--json'])
  t.equal(downRun.code, 0, downRun.stderr)
  lap('down')
  const stopped = JSON.parse(downRun.stdout) as { stopped: Array<{ what: string; pid: number }> }
  t.same(stopped.stopped.map(s => s.pid).sort(), [...pids].sort(), 'down names every process it stopped')
  t.same(pids.filter(running), [], 'no process left')
  const tenants = await docker.listContainers({
    all: true,
    filters: JSON.stringify({ label: [`${NODE_LABEL}=${node.nodeId}`] })
  })
  t.equal(tenants.length, 0, 'the tenant container went with its agent')
  t.match((await quorate(['down', '--dir', dir])).stdout, /nothing was running/)

  const again = parseUp(await quorate(['up', '--dir', dir, '--json']))
  lap('up (resume)')
  t.same(
    again.nodes.map(n => n.nodeId),
    first.nodes.map(n => n.nodeId),
    'the same node ids'
  )
  t.ok(
    again.nodes.every(n => n.certified),
    'certified again'
  )
  const chain2 = new ChainClient({ url: again.rpc })
  t.teardown(() => {
    chain2.close()
  })
  t.ok((await chain2.status()).height >= height, 'the same chain, not a new one')
  t.equal((await chain2.images({ name: 'demo/hello' })).length, 1, 'nothing published twice')
  chainPid = again.chain.pid

  // up on a running network starts nothing and says so
  const third = await quorate(['up', '--dir', dir])
  t.equal(third.code, 0)
  t.match(third.stdout, /already running; nothing started/)

  // half dead: an agent killed, another node's TPM killed — up restarts those parts only (a node
  // whose TPM went is restarted whole: its TPM reset is a reboot)
  const agentPid = (n: string): number => Number(readFileSync(join(dir, n, 'agent.pid'), 'utf8'))
  const tpmPid = (n: string): number => Number(readFileSync(join(dir, n, 'tpm', 'swtpm.pid'), 'utf8'))
  process.kill(agentPid('node-2'), 'SIGKILL')
  process.kill(tpmPid('node-3'), 'SIGKILL')
  await until('the killed processes gone', async () =>
    running(agentPid('node-2')) || running(tpmPid('node-3')) ? undefined : true
  )
  const healed = parseUp(await quorate(['up', '--dir', dir, '--json']))
  lap('up (half dead)')
  t.same(
    (healed as UpJson & { started: string[] }).started.map(s => s.replace(/ \(pid \d+\)$/, '')).sort(),
    ['node-2 agent', 'node-3 agent', 'node-3 swtpm'],
    'only the missing parts (and the agent of the dead TPM)'
  )
  t.ok(
    healed.nodes.every(n => n.certified),
    'all certified again'
  )
  t.same(
    healed.nodes.map(n => n.nodeId),
    first.nodes.map(n => n.nodeId)
  )
})
