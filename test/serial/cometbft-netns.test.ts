// Four CometBFT validators on four "hosts": each in its own network namespace, joined by veth
// pairs to a bridge in a hub namespace, with addresses from 198.18.0.0/15 that exist only inside
// these namespaces. Each node registers the address the others reach (198.18.0.N), not
// 127.0.0.1. Partitions cut a validator's link at the bridge.
//   one of four cut off   → the other three go on; healed → it catches up, same blocks and app hash
//   two of four cut off   → no side has more than 2/3: no blocks, no fork; healed → blocks resume
// Needs root (ip netns), like the dockerd and swtpm tests.
import t from 'tap'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeTestnet } from '../../chain/cometbft/testnet.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildTx } from '../../chain/tx.ts'
import { toBase64 } from '../../encoding/bytes.ts'
import { BIN } from '../chain/process.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const NODE = join(HERE, '..', '..', 'node_modules', '.bin', 'node')
const tag = `q${process.pid % 100000}`
const HUB = `${tag}hub`
const ns = (i: number): string => `${tag}v${i}`
const hubSide = (i: number): string => `${tag}h${i}`
const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}
const addr = (i: number): string => `198.18.0.${i + 1}`

function makeNetwork(n: number): void {
  ip('netns', 'add', HUB)
  ip('-n', HUB, 'link', 'set', 'lo', 'up')
  ip('-n', HUB, 'link', 'add', 'br0', 'type', 'bridge')
  ip('-n', HUB, 'addr', 'add', '198.18.0.254/24', 'dev', 'br0')
  ip('-n', HUB, 'link', 'set', 'br0', 'up')
  for (let i = 0; i < n; i++) {
    ip('netns', 'add', ns(i))
    ip('-n', ns(i), 'link', 'set', 'lo', 'up')
    ip('link', 'add', `${tag}x${i}`, 'type', 'veth', 'peer', 'name', hubSide(i))
    ip('link', 'set', `${tag}x${i}`, 'netns', ns(i))
    ip('link', 'set', hubSide(i), 'netns', HUB)
    ip('-n', ns(i), 'addr', 'add', `${addr(i)}/24`, 'dev', `${tag}x${i}`)
    ip('-n', ns(i), 'link', 'set', `${tag}x${i}`, 'up')
    ip('-n', HUB, 'link', 'set', hubSide(i), 'master', 'br0')
    ip('-n', HUB, 'link', 'set', hubSide(i), 'up')
  }
}
function removeNetwork(n: number): void {
  for (const name of [HUB, ...Array.from({ length: n }, (_, i) => ns(i))]) {
    try {
      ip('netns', 'del', name)
    } catch {}
  }
}
const cut = (i: number): void => {
  ip('-n', HUB, 'link', 'set', hubSide(i), 'down')
}
const heal = (i: number): void => {
  ip('-n', HUB, 'link', 'set', hubSide(i), 'up')
}

/** JSON-RPC from inside the hub namespace, through netns-relay.ts. */
class Relay {
  readonly #proc: ChildProcess
  readonly #waiting = new Map<number, (r: { result?: unknown; error?: unknown }) => void>()
  #id = 0
  #buf = ''
  constructor() {
    this.#proc = spawn('ip', ['netns', 'exec', HUB, NODE, join(HERE, '..', 'chain', 'netns-relay.ts')], {
      stdio: ['pipe', 'pipe', 'inherit']
    })
    this.#proc.stdout?.on('data', (d: Buffer) => {
      this.#buf += d.toString()
      for (let i = this.#buf.indexOf('\n'); i >= 0; i = this.#buf.indexOf('\n')) {
        const line = this.#buf.slice(0, i)
        this.#buf = this.#buf.slice(i + 1)
        const r = JSON.parse(line) as { id: number; result?: unknown; error?: unknown }
        this.#waiting.get(r.id)?.(r)
        this.#waiting.delete(r.id)
      }
    })
  }

  async call<T>(url: string, method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#id
    const p = new Promise<{ result?: unknown; error?: unknown }>(resolve => this.#waiting.set(id, resolve))
    this.#proc.stdin?.write(JSON.stringify({ id, url, method, params }) + '\n')
    const r = await p
    if (r.error !== undefined) throw new Error(`${method} at ${url}: ${JSON.stringify(r.error)}`)
    return r.result as T
  }

  async height(url: string): Promise<number> {
    return await this.call<{ sync_info: { latest_block_height: string } }>(url, 'status').then(
      s => Number(s.sync_info.latest_block_height),
      () => -1
    )
  }

  async block(url: string, h: number): Promise<{ hash: string; appHash: string }> {
    const b = await this.call<{ block_id: { hash: string }; block: { header: { app_hash: string } } }>(url, 'block', {
      height: String(h)
    })
    return { hash: b.block_id.hash, appHash: b.block.header.app_hash }
  }

  close(): void {
    this.#proc.kill()
  }
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

t.test('validators in their own network namespaces: partitions and healing', async t => {
  const n = 4
  removeNetwork(n)
  makeNetwork(n)
  const dir = await mkdtemp(join(tmpdir(), 'qnetns-'))
  const procs: ChildProcess[] = []
  const relay = new Relay()
  t.teardown(async () => {
    relay.close()
    await Promise.all(
      procs.map(async p => {
        if (p.exitCode !== null || p.signalCode !== null) return
        const e = new Promise(resolve => p.once('exit', resolve))
        p.kill('SIGTERM')
        await e
      })
    )
    removeNetwork(n)
    await rm(dir, { recursive: true, force: true })
  })

  const net = await writeTestnet({
    dir: join(dir, 'net'),
    validators: n,
    chainId: 'netns',
    hosts: Array.from({ length: n }, (_, i) => addr(i)),
    ports: Array.from({ length: n }, () => ({ p2p: 26656, rpc: 26657 })),
    timeoutCommitMs: 100
  })
  const urls = net.validators.map(v => v.rpc)
  t.same(
    urls,
    Array.from({ length: n }, (_, i) => `http://${addr(i)}:26657`),
    'each validator serves on its own 198.18 address'
  )
  for (let i = 0; i < n; i++) {
    const p = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns(i),
        BIN,
        'chain',
        'start',
        '--engine',
        'cometbft',
        '--home',
        net.validators[i].home,
        '--json'
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] }
    )
    procs.push(p)
  }
  const heights = async (): Promise<number[]> => await Promise.all(urls.map(async u => await relay.height(u)))
  await until('every validator made block 2', async () => (await heights()).every(h => h >= 2))
  const peers = await relay.call<{ peers: Array<{ remote_ip: string }> }>(urls[0], 'net_info')
  t.same(
    peers.peers.map(p => p.remote_ip).sort(),
    [addr(1), addr(2), addr(3)],
    'peers reach each other on their namespace addresses'
  )

  // txs change the app hash while a validator is away
  const key = await generateChainKey()
  let seq = 0
  const send = async (): Promise<void> => {
    const tx = buildTx('vendor.register', { name: `netns-${seq}` }, key, seq, 'netns')
    const r = await relay.call<{ code: number; log: string }>(urls[0], 'broadcast_tx_sync', { tx: toBase64(tx) })
    if (r.code !== 0) throw new Error(`tx refused: ${r.log}`)
    seq++
  }

  // 1. one of four cut off: the others go on
  cut(3)
  const at3 = await relay.height(urls[3])
  for (let i = 0; i < 5; i++) await send()
  await until('the three reach 4 blocks past the cut-off one', async () =>
    (await heights()).slice(0, 3).every(h => h >= at3 + 4)
  )
  t.ok((await relay.height(urls[3])) <= at3 + 1, 'the cut-off validator makes no blocks alone')
  heal(3)
  const target = Math.max(...(await heights()).slice(0, 3))
  await until('the healed validator caught up', async () => (await relay.height(urls[3])) >= target, 90_000)
  const b3 = await relay.block(urls[3], target)
  const b0 = await relay.block(urls[0], target)
  t.equal(b3.hash, b0.hash, `healed validator: same block ${target}`)
  t.equal(b3.appHash, b0.appHash, `healed validator: same app hash at ${target}`)

  // 2. two of four cut off: neither side has more than 2/3 — no blocks, no fork
  cut(2)
  cut(3)
  const before = await heights()
  await send().catch(() => {}) // a tx waiting in node 0's mempool must not get a block either
  // blocks come every second when idle; watch for several of those intervals
  const deadline = Date.now() + 4000
  let grew = false
  while (Date.now() < deadline) {
    const now = await heights()
    if (now.some((h, i) => h > before[i] + 1)) grew = true
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  t.notOk(
    grew,
    `no blocks during the 2-2 partition (heights ${before.join(',')} → ${(await heights()).join(',')}; -1 = not reachable from the hub; one block in flight at the cut may finish)`
  )
  heal(2)
  heal(3)
  const resumed = Math.max(...(await heights())) + 2
  await until('blocks resume on all four after healing', async () => (await heights()).every(h => h >= resumed), 90_000)
  t.pass(`blocks resumed: all at ≥ ${resumed}`)
  const top = Math.min(...(await heights()))
  let forks = 0
  for (let h = 1; h <= top; h++) {
    const bs = await Promise.all(urls.map(async u => await relay.block(u, h)))
    if (new Set(bs.map(b => b.hash)).size !== 1 || new Set(bs.map(b => b.appHash)).size !== 1) forks++
  }
  t.equal(forks, 0, `all four hold the same ${top} blocks and app hashes (no fork)`)
})
