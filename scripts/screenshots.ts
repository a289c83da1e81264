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
  const r = await new Promise<{ dashboard: string; nodes: Array<{ nodeId: string; role: string }> }>(
    (resolve, reject) => {
      createInterface({ input: demo.stdout }).on('line', l => {
        if (l.startsWith('{')) resolve(JSON.parse(l))
      })
      void exited.then(() => {
        reject(new Error('the demo ended without a result'))
      })
    }
  )
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking']
  })
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } })
  const bad = r.nodes.find(n => n.role === 'tampered')?.nodeId ?? ''
  for (const [name, hash, heading] of [
    ['nodes', '#/nodes', 'h-nodes'],
    ['node-refused', `#/node/${bad}`, 'h-node'],
    ['chain', '#/chain', 'h-chain'],
    ['vendors', '#/vendors', 'h-vend']
  ]) {
    await page.goto(r.dashboard + hash)
    await page.locator(`h2#${heading}`).waitFor()
    await page.screenshot({ path: join(root, 'docs', 'screenshots', `explorer-${name}.png`) })
  }
  await browser.close()
} finally {
  demo.kill('SIGINT')
  await exited
}
