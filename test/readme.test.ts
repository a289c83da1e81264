// README.md's "A one-machine network by hand" works literally: its sh blocks, extracted in order
// and run as one bash script from the clone's root (with `quorate` on PATH and a fresh HOME), end
// with a certified node serving a tenant's page through its proxy. Nothing is substituted.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import Docker from 'dockerode'
import { ChainClient, loadChainKey } from '../chain/index.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const SECTION = 'A one-machine network by hand'

/** The fenced sh blocks under the heading `title`, up to the next heading (headings inside fences are code). */
function shBlocks(markdown: string, title: string): string[] {
  const blocks: string[] = []
  let inSection = false
  let fence: { lang: string; lines: string[] } | undefined
  for (const line of markdown.split('\n')) {
    if (fence !== undefined) {
      if (!line.startsWith('```')) {
        fence.lines.push(line)
        continue
      }
      if (inSection && fence.lang === 'sh') blocks.push(fence.lines.join('\n'))
      fence = undefined
      continue
    }
    if (line.startsWith('```')) {
      fence = { lang: line.slice(3).trim(), lines: [] }
      continue
    }
    const h = /^(#{1,6}) (.*)$/.exec(line)
    if (h !== null) inSection = h[2].trim() === title
  }
  return blocks.filter(b => b !== '')
}

t.test("the extraction finds the section's sh blocks only", async t => {
  const md = [
    '# x',
    '```sh',
    'no',
    '```',
    `### ${SECTION}`,
    'text',
    '```sh',
    'a',
    '# a comment, not a heading',
    '```',
    '```json',
    '{}',
    '```',
    '```sh',
    'b',
    '```',
    '## next',
    '```sh',
    'c',
    '```'
  ].join('\n')
  t.same(shBlocks(md, SECTION), ['a\n# a comment, not a heading', 'b'])
})

const script = shBlocks(readFileSync(join(root, 'README.md'), 'utf8'), SECTION)
const work = mkdtempSync(join(tmpdir(), 'quorate-readme-'))
const home = join(work, 'home')
const docker = new Docker()
let group: number | undefined

/** True while any process of the script's process group lives. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

t.teardown(async () => {
  if (group !== undefined && groupAlive(group)) {
    // the agents stop their tenant containers on SIGTERM
    process.kill(-group, 'SIGTERM')
    const end = Date.now() + 30_000
    while (groupAlive(group) && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 100))
    if (groupAlive(group)) process.kill(-group, 'SIGKILL')
  }
  await docker
    .getImage('quorate-hello:1')
    .remove({ force: true })
    .catch(() => {})
  rmSync(work, { recursive: true, force: true })
})

t.test('README: the by-hand network ends with a certified node serving a request', async t => {
  t.ok(script.length >= 1, 'the section has sh blocks')
  const file = join(work, 'readme.sh')
  writeFileSync(file, ['set -e', ...script].join('\n') + '\n')
  // a fresh HOME (the script's ~), quorate on PATH, no QUORATE_* of the caller's
  const env: NodeJS.ProcessEnv = {
    PATH: `${join(root, 'bin')}:${process.env.PATH ?? ''}`,
    HOME: home,
    QUORATE_LOG_LEVEL: 'warn'
  }
  let out = ''
  const proc = spawn('bash', [file], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  group = proc.pid
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  proc.stderr.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const code = await new Promise<number | null>(resolve => {
    const timer = setTimeout(() => {
      t.comment('the script did not finish in 240 s')
      resolve(null)
    }, 240_000)
    proc.once('exit', c => {
      clearTimeout(timer)
      resolve(c)
    })
  })
  if (code !== 0) {
    t.comment(out.slice(-4000))
    for (const f of ['chain.log', 'node-5/agent.log', 'node-1/agent.log'])
      t.comment(`${f}:\n${readFileSync(join(home, 'quorate-net', f), 'utf8').slice(-2000)}`)
  }
  t.equal(code, 0, 'the script ran to its end')
  t.match(out, /hello from a certified node/, "the last command got the tenant's page through node-5's proxy")

  const nodeId = (await loadChainKey(join(home, 'quorate-net', 'node-5', 'node.key'))).peerId
  const chain = new ChainClient({ url: 'http://127.0.0.1:26657' })
  t.teardown(() => {
    chain.close()
  })
  t.equal((await chain.node(nodeId))?.record?.status, 'certified', 'node-5 passed a round, on chain')
})
