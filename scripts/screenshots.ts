// Screenshots of the explorer's main pages for docs/ (README links them): runs `quorate demo
// --keep`, opens its dashboard in Debian's chromium and saves small PNGs. `node scripts/screenshots.ts`.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const root = join(import.meta.dirname, '..')
const demo = spawn(
  process.execPath,
  [join(root, 'cli/main.ts'), 'demo', '--keep', '--json', '--listen', '127.0.0.1:0'],
  { stdio: ['ignore', 'pipe', 'inherit'] }
)
const exited = once(demo, 'exit')
try {
  const r = await new Promise<{
    dashboard: string
    nodes: Array<{ name: string; nodeId: string; role: string }>
    request: { node: string; url: string }
  }>((resolve, reject) => {
    createInterface({ input: demo.stdout }).on('line', l => {
      if (l.startsWith('{')) resolve(JSON.parse(l))
    })
    void exited.then(() => {
      reject(new Error('the demo ended without a result'))
    })
  })
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking']
  })
  const page = await browser.newPage({ viewport: { width: 1100, height: 860 } })
  const bad = r.nodes.find(n => n.role === 'tampered')?.nodeId ?? ''
  // the node that ran the demo's tenant, on its own agent's /ui (its decoded event logs)
  const runner = r.nodes.find(n => n.name === r.request.node)?.nodeId ?? ''
  const agentUi = `${new URL(r.request.url).origin}/ui/`
  for (const [name, url, ready] of [
    ['nodes', `${r.dashboard}#/nodes`, 'h2#h-nodes'],
    ['node-refused', `${r.dashboard}#/node/${bad}`, 'h2#h-node'],
    ['apps', `${r.dashboard}#/images`, 'h2#h-img'],
    ['chain', `${r.dashboard}#/chain`, 'h2#h-chain'],
    ['vendors', `${r.dashboard}#/vendors`, 'h2#h-vend'],
    ['agent-node', `${agentUi}#/node/${runner}`, 'table#boot-log']
  ]) {
    await page.goto(url)
    await page.locator(ready).waitFor()
    // the agent's own node: its logs and tenants, below the chain's view of the node
    if (name === 'agent-node') await page.locator('#h-local').evaluate(e => e.scrollIntoView())
    await page.screenshot({ path: join(root, 'docs', 'screenshots', `explorer-${name}.png`) })
  }
  await browser.close()
} finally {
  demo.kill('SIGINT')
  await exited
}
