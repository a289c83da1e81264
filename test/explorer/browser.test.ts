// The dashboard in a real browser (Debian's chromium, driven by playwright-core) over the real
// demo network, run as a user runs it: `quorate demo --keep`. The page is opened as soon as the
// demo's chain answers, while it is still manufacturing TPMs, so certifications must arrive
// without a reload; the tampered node must show as refused with its failing claim; sections must
// be reachable by keyboard and labelled; the demo's own dashboard (--keep) must serve the same,
// with the published app; an agent's /ui must show its own node's decoded event logs, tenants
// and apps.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { chromium, type Page } from 'playwright-core'
import { ChainClient } from '../../chain/index.ts'
import { startExplorerServer, type ExplorerServer } from '../../agent/explorer/server.ts'
import { silentLogger } from '../../encoding/log.ts'

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]
// page.evaluate / waitForFunction callbacks run in the page, where `document` exists; this
// declares the little of it they use (the test's own lib has no DOM)
declare const document: {
  querySelectorAll(s: string): { length: number }
  querySelector(s: string): { getAttribute(a: string): string | null } | null
  activeElement: { id: string; textContent: string | null; closest(s: string): unknown } | null
}
const CLI = join(import.meta.dirname, '..', '..', 'cli', 'main.ts')

interface DemoOut {
  ok: boolean
  dashboard: string
  chain: { url: string; height: number }
  image: { name: string; cid: string }
  request: { node: string; url: string }
  app: { name: string; version: string; cid: string; served: { node: string; url: string } }
  nodes: Array<{ name: string; nodeId: string; role: string }>
}

const certifiedRows = async (page: Page): Promise<number> => await page.locator('tr[data-status="certified"]').count()

t.test('dashboard: the demo network, live, in headless chromium', async t => {
  const profile = mkdtempSync(join(tmpdir(), 'quorate-chromium-'))
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS
  })
  const page = ctx.pages()[0] ?? (await ctx.newPage())
  let ui: ExplorerServer | undefined
  let chain: ChainClient | undefined
  const demo = spawn(process.execPath, [CLI, 'demo', '--keep', '--json', '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(demo, 'exit')
  t.teardown(async () => {
    if (demo.exitCode === null) {
      demo.kill('SIGINT')
      await exited
    }
    await ctx.close().catch(() => {})
    await ui?.stop()
    chain?.close()
    rmSync(profile, { recursive: true, force: true })
  })
  const stderr: string[] = []
  const rpc = new Promise<string>((resolve, reject) => {
    createInterface({ input: demo.stderr }).on('line', l => {
      stderr.push(l)
      const m = /embedded validator at (http:\/\/\S+)/.exec(l)
      if (m !== null) resolve(m[1])
    })
    void exited.then(() => {
      reject(new Error(`demo exited early:\n${stderr.slice(-20).join('\n')}`))
    })
  })
  const result = new Promise<DemoOut>((resolve, reject) => {
    createInterface({ input: demo.stdout }).on('line', l => {
      if (l.startsWith('{')) resolve(JSON.parse(l) as DemoOut)
    })
    void exited.then(() => {
      reject(new Error(`demo exited without a result:\n${stderr.slice(-20).join('\n')}`))
    })
  })

  // 1. the page opens while the demo is still setting up
  chain = new ChainClient({ url: await rpc })
  ui = await startExplorerServer({ chain, listen: '127.0.0.1:0', logger: silentLogger(), pollMs: 100 })
  await page.goto(ui.url + '#/nodes')
  await page.locator('h2#h-nodes').waitFor()
  await page.evaluate(() => {
    ;(globalThis as unknown as { sameDocument: boolean }).sameDocument = true
  })
  const firstSeen = await certifiedRows(page)

  const r = await result
  t.ok(r.ok, 'the demo itself succeeded')
  if (!Array.isArray(r.nodes))
    throw new Error(`the demo printed no result: ${JSON.stringify(r)}\n${stderr.slice(-20).join('\n')}`)
  const honest = r.nodes.filter(n => n.role !== 'tampered')
  await page.waitForFunction(n => document.querySelectorAll('tr[data-status="certified"]').length >= n, honest.length, {
    timeout: 60_000
  })
  t.ok(firstSeen < honest.length, `the page opened with ${firstSeen} certified and showed ${honest.length} later`)
  t.equal(
    await page.evaluate(() => (globalThis as unknown as { sameDocument?: boolean }).sameDocument),
    true,
    'without a reload'
  )
  for (const n of honest)
    t.equal(
      await page.locator(`tr[data-node="${n.nodeId}"]`).getAttribute('data-status'),
      'certified',
      `${n.name} shown certified`
    )

  // round latency beside the certifications: one bar per recorded round
  await page.waitForFunction(() => document.querySelectorAll('#latency-chart rect').length >= 1, undefined, {
    timeout: 30_000
  })
  t.match(
    await page.locator('#latency-chart').getAttribute('aria-label'),
    /^\d+ rounds: median \d+ blocks \([\d.]+ s\) from request to record/,
    'the round latency chart says what it shows'
  )
  // an honest node's page: its rounds with their latency; its logs are on its own agent
  await page.locator(`tr[data-node="${honest[0].nodeId}"] a`).first().click()
  await page.locator('h2#h-node').waitFor()
  t.ok((await page.locator('tr[data-round]').count()) >= 1, 'a node page lists its rounds')
  t.match(
    await page.locator('#logs-elsewhere').innerText(),
    /\/status\/eventlog/,
    'and says where its event log can be seen'
  )
  await page.goto(ui.url + '#/nodes')
  await page.locator('h2#h-nodes').waitFor()

  // 2. the tampered node: refused, failing claim "firmware", on its row and on its own page
  const bad = r.nodes.find(n => n.role === 'tampered')
  if (bad === undefined) throw new Error('the demo has no tampered node')
  const row = page.locator(`tr[data-node="${bad.nodeId}"]`)
  await page.waitForFunction(
    id => document.querySelector(`tr[data-node="${id}"]`)?.getAttribute('data-status') === 'refused',
    bad.nodeId,
    { timeout: 30_000 }
  )
  t.match(await row.innerText(), /failed: firmware/, 'its row names the firmware claim')
  await row.locator('a').first().click()
  await page.locator('h2#h-node').waitFor()
  t.match(
    await page.locator('ul.failed').innerText(),
    /firmware — the measured boot does not match/,
    'its page says in words what failed'
  )

  // 3. keyboard, from a fresh load: Tab reaches the section links in order; Enter follows one
  // and focus moves to what opened; the navigation and the charts are labelled
  await page.goto('about:blank')
  await page.goto(ui.url + '#/nodes')
  await page.locator('h2#h-nodes').waitFor()
  const reached: string[] = []
  for (let i = 0; i < 8 && reached.length < 5; i++) {
    await page.keyboard.press('Tab')
    const label = await page.evaluate(() =>
      document.activeElement?.closest('nav') !== null ? (document.activeElement?.textContent ?? '') : ''
    )
    if (label !== '') reached.push(label)
  }
  t.same(reached, ['Nodes', 'Committees', 'Apps and images', 'Chain', 'Vendors'], 'Tab walks the section links')
  await page.keyboard.press('Shift+Tab')
  await page.keyboard.press('Enter')
  await page.locator('h2#h-chain').waitFor()
  t.equal(
    await page.locator('nav a[aria-current="page"]').innerText(),
    'Chain',
    'Enter opened Chain and its link says it is current'
  )
  t.equal(await page.evaluate(() => document.activeElement?.id), 'main', 'focus moved to the section that opened')
  t.equal(await page.locator('nav[aria-label="Sections"]').count(), 1, 'the navigation is labelled')
  t.ok((await page.locator('svg[role="img"][aria-label]').count()) >= 1, 'charts carry a text label')
  t.ok(
    Number(await page.locator('dd[data-height]').getAttribute('data-height')) >= r.chain.height,
    'the chain page shows the current height'
  )

  // 4. the demo's own dashboard (--keep) serves the same network
  await page.goto(r.dashboard + '#/vendors')
  await page.locator('h2#h-vend').waitFor()
  t.match(await page.locator('main').innerText(), /ovmf/, 'the firmware vendor is listed')
  await page.goto(r.dashboard + '#/images')
  await page.locator('h2#h-img').waitFor()
  t.match(
    await page.locator('main').innerText(),
    new RegExp(r.image.cid.slice(0, 8)),
    'the published image is listed with its CID'
  )
  const appRow = page.locator(`tr[data-app="${r.app.name}"]`)
  await appRow.waitFor()
  t.match(await appRow.innerText(), new RegExp(`runs ${r.app.version}`), 'the published app with its current version')
  t.match(await appRow.innerText(), new RegExp(r.app.cid.slice(0, 8)), 'and its CID')
  t.match(
    await page.locator('#usage-figure').innerText(),
    /Requests per app over time/,
    'the requests-per-app figure is on the page (its data: test/explorer/indexer.test.ts)'
  )
  await page.screenshot({ path: join(profile, 'images.png') })

  // 5. an agent's own /ui: its node page shows the decoded event logs and the tenant it runs
  const runner = r.nodes.find(n => n.name === r.request.node)
  if (runner === undefined) throw new Error(`no node named ${r.request.node}`)
  const agentUi = `${new URL(r.request.url).origin}/ui/`
  await page.goto(`${agentUi}#/node/${runner.nodeId}`)
  await page.locator('table#boot-log').waitFor({ timeout: 30_000 })
  t.ok((await page.locator('#boot-log tr[data-event="EV_SEPARATOR"]').count()) >= 1, 'the firmware log, decoded')
  t.match(
    await page.locator('#boot-log caption').innerText(),
    /\d+ events, \d+ bytes, banks sha256/,
    'with its size and banks'
  )
  t.equal(await page.locator(`#local-tenants tr[data-image="${r.image.name}"]`).count(), 1, 'the tenant it runs')
  t.ok(
    (await page.locator(`#container-log tr[data-image="${r.image.name}"]`).count()) >= 1,
    'and its launch in the container log (PCR 13)'
  )
  t.equal(await page.locator('nav a', { hasText: 'This node' }).count(), 1, "the agent's page links its own node")
  // the node that served the app: the app is listed as loaded there
  const server = r.nodes.find(n => n.name === r.app.served.node)
  if (server === undefined) throw new Error(`no node named ${r.app.served.node}`)
  await page.goto(`${new URL(r.app.served.url).origin}/ui/#/node/${server.nodeId}`)
  await page.locator(`#local-apps tr[data-app="${r.app.name}"]`).waitFor({ timeout: 30_000 })
  t.pass(`${r.app.served.node}'s own page lists the app it loaded`)

  // 6. Ctrl-C ends the kept network cleanly
  demo.kill('SIGINT')
  const [code] = await exited
  t.equal(code, 0, 'demo --keep exits 0 on Ctrl-C')
})
