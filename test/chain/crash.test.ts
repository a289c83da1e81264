// Crash safety with a real process: kill -9 `quorate chain start` while clients submit; after a
// restart every tx acknowledged as committed is there at its height, the app hash of every height
// is unchanged, and replaying the block log from genesis rebuilds the same state.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { BIN, startChainProcess as startChain } from './process.ts'
import { ChainClient } from '../../chain/client.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { toHex } from '../../encoding/bytes.ts'

t.test('kill -9 while clients submit, restart, everything acked is there', async t => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-crash-'))
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
  })
  await promisify(execFile)(BIN, ['chain', 'init', '--home', home, '--chain-id', 'crash-test', '--insecure-bootstrap'])
  const first = await startChain(home)
  const c = new ChainClient({ url: first.url, timeoutMs: 5000 })
  const keys = await Promise.all([0, 1, 2, 3].map(async () => await generateChainKey()))
  const acked: Array<{ hash: string; height: number }> = []
  let stop = false
  const workers = keys.map(async (k, w) => {
    for (let i = 0; !stop; i++) {
      try {
        const r = await c.send(
          'image.publish',
          {
            name: `w${w}/img`,
            digest: 'sha256:' + (w * 100000 + i).toString(16).padStart(64, '0'),
            cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
            size: i
          },
          k
        )
        acked.push(r)
      } catch {
        if (stop) return
      } // after the kill the chain is gone; before it, a slow commit is retried
    }
  })
  const deadline = Date.now() + 120_000
  while (acked.length < 40 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  // snapshot app hashes per height while submissions continue, then kill -9 mid-flight
  const s = await c.status()
  const blocks = new Map<number, { hash: string; appHash: string }>()
  for (let h = 1; h <= s.height; h++) {
    const b = await c.block(h)
    blocks.set(h, { hash: toHex(b.hash), appHash: toHex(b.appHash) })
  }
  const ackedBeforeKill = acked.length
  first.proc.kill('SIGKILL')
  stop = true
  await Promise.all(workers)
  c.close()
  t.ok(
    acked.length >= ackedBeforeKill && ackedBeforeKill >= 40,
    `${acked.length} txs acknowledged as committed before the kill`
  )

  const second = await startChain(home)
  t.teardown(() => {
    second.proc.kill('SIGKILL')
  })
  const c2 = new ChainClient({ url: second.url })
  let missing = 0
  for (const a of acked) {
    const tx = await c2.tx(a.hash)
    if (tx === undefined || tx.height !== a.height || tx.result.code !== 0) missing++
  }
  t.equal(missing, 0, 'every acknowledged tx is committed at the height it was acked with')
  let changed = 0
  for (const [h, b] of blocks) {
    const now = await c2.block(h)
    if (toHex(now.hash) !== b.hash || toHex(now.appHash) !== b.appHash) changed++
  }
  t.equal(changed, 0, `block hashes and app hashes of heights 1–${s.height} unchanged`)
  t.ok((await c2.status()).height >= s.height)
  c2.close()
  second.proc.kill('SIGTERM')
  await new Promise(resolve => second.proc.once('exit', resolve))
  const { stdout } = await promisify(execFile)(BIN, ['chain', 'replay', '--home', home, '--json'])
  const r = JSON.parse(stdout) as { ok: boolean; heights: number; mismatches: string[] }
  t.equal(r.ok, true, 'replaying the block log from genesis rebuilds the same state')
  t.same(r.mismatches, [])
  t.ok(r.heights >= s.height)
})
