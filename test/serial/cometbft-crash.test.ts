// kill -9 of one validator's quorate process (our ABCI app; its cometbft child exits with it)
// while blocks with txs are being made, then restart: CometBFT replays what the app lacks and the
// app comes back to the same app hash as the rest of the network; no tx whose commit was
// acknowledged is lost, on the restarted validator or elsewhere.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ChainClient } from '../../chain/client.ts'
import { generateChainKey, type ChainKey } from '../../chain/keys.ts'
import { startCometValidator } from '../../chain/cometbft/node.ts'
import { writeTestnet } from '../../chain/cometbft/testnet.ts'
import { setTomlValue } from '../../chain/cometbft/config.ts'
import { cometPaths } from '../../chain/cometbft/node.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { fromBase64, toHex } from '../../encoding/bytes.ts'
import { waitForHeight } from '../chain/cometbft-net.ts'
import { seedConfig } from '../../chain/cometbft/node.ts'
import { seedEntropy } from '../../chain/abci/seed.ts'
import { BIN } from '../chain/process.ts'

function startProcess(home: string): Promise<{ proc: ChildProcess; rpc: string; stderr: () => string }> {
  const proc = spawn(BIN, ['chain', 'start', '--engine', 'cometbft', '--home', home, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    proc.stderr?.on('data', (d: Buffer) => {
      err += d.toString()
    })
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /"rpc":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)
      if (m !== null) resolve({ proc, rpc: m[1], stderr: () => err })
    })
    proc.once('exit', code => reject(new Error(`chain start exited with ${code}: ${err}`)))
  })
}

const exited = (p: ChildProcess): Promise<void> =>
  p.exitCode !== null || p.signalCode !== null
    ? Promise.resolve()
    : new Promise(resolve => p.once('exit', () => resolve()))

t.test(
  'kill -9 of a validator app under load: restart replays to the same app hash, no acknowledged tx lost',
  async t => {
    const dir = await mkdtemp(join(tmpdir(), 'qcmt-crash-'))
    const net = await writeTestnet({ dir: join(dir, 'net'), validators: 4, chainId: 'crash', timeoutCommitMs: 100 })
    const inproc = await Promise.all(
      net.validators.slice(0, 3).map(v => startCometValidator({ home: v.home, rules: createTestOnlyQuorumRules() }))
    )
    const victim = net.validators[3]
    // the victim logs its handshake (consensus module), to see what CometBFT replayed
    const cfg = join(victim.home, 'config', 'config.toml')
    await writeFile(
      cfg,
      setTomlValue(await readFile(cfg, 'utf8'), '', 'log_level', 'main:info,state:info,consensus:info,*:error')
    )
    let child = await startProcess(victim.home)
    const c0 = new ChainClient({ url: net.validators[0].rpc })
    const c3 = new ChainClient({ url: victim.rpc })
    t.teardown(async () => {
      c0.close()
      c3.close()
      child.proc.kill('SIGKILL')
      await Promise.all(inproc.map(v => v.stop()))
      await rm(dir, { recursive: true, force: true })
    })
    await Promise.all(net.validators.map(v => waitForHeight(v.rpc, 2)))
    // every block after the first starts with the seed tx: more than 2/3 of the validators' vote extensions
    const seedCfg = await seedConfig(victim.home, 'crash')
    const b2 = await c0.block(2)
    const e =
      seedCfg === undefined ? { error: 'no seed config' } : seedEntropy(seedCfg, 2, b2.txs[0] ?? new Uint8Array(0))
    t.ok('entropy' in e, `block 2 carries a valid seed tx (${'error' in e ? e.error : 'ok'})`)

    // load: six accounts, each sending one tx after another through validator 0 and waiting for its commit
    const acked: Array<{ hash: string; height: number; key: ChainKey; name: string }> = []
    let running = true
    let progressed: (() => void) | undefined
    const sender = async (key: ChainKey, id: number): Promise<void> => {
      for (let i = 0; running; i++) {
        const name = `crash-${id}-${i}`
        const r = await c0.send('vendor.register', { name }, key)
        acked.push({ hash: r.hash, height: r.height, key, name })
        progressed?.()
      }
    }
    const ackedAtLeast = (n: number): Promise<void> =>
      new Promise(resolve => {
        if (acked.length >= n) {
          resolve()
          return
        }
        progressed = () => {
          if (acked.length >= n) {
            progressed = undefined
            resolve()
          }
        }
      })
    const keys = await Promise.all(Array.from({ length: 6 }, async () => await generateChainKey()))
    const senders = keys.map(async (k, i) => {
      await sender(k, i)
    })

    // round 0: the kill lands between FinalizeBlock and Commit for sure — a second connection holds
    // the app database's write lock, so the victim's Commit fails (SQLITE_BUSY) after its
    // FinalizeBlock, and the process is killed there. Round 1: a kill at any moment.
    for (let round = 0; round < 2; round++) {
      await ackedAtLeast(acked.length + 30)
      const before = await c3.status()
      let blocker: DatabaseSync | undefined
      if (round === 0) {
        // busy_timeout: the victim may hold the write lock for its own commit at this instant
        blocker = new DatabaseSync(cometPaths(victim.home).db, { timeout: 5000 })
        blocker.exec('BEGIN IMMEDIATE')
        await new Promise<void>(resolve => {
          const look = (): void => {
            if (/ABCI request failed/.test(child.stderr())) resolve()
            else setTimeout(look, 20)
          }
          look()
        })
      }
      child.proc.kill('SIGKILL')
      await exited(child.proc)
      if (blocker !== undefined) {
        blocker.exec('ROLLBACK')
        blocker.close()
      }
      const ackedAtKill = acked.length
      await ackedAtLeast(ackedAtKill + 20) // the other three go on without it
      child = await startProcess(victim.home)
      const target = (await c0.status()).height
      await waitForHeight(victim.rpc, target, 120_000)
      t.ok(
        target > before.height,
        `round ${round}: the network went on while validator 3 was down (${before.height} → ${target})`
      )
    }
    running = false
    await Promise.all(senders)

    // the restarted app's own app hash (abci_info) equals the one the network put in the next header
    const info = (
      await c3.call<{ response: { last_block_height: string; last_block_app_hash: string } }>('abci_info', {})
    ).response
    const h = Number(info.last_block_height)
    await waitForHeight(net.validators[0].rpc, h + 1)
    const next = await c0.block(h + 1)
    t.equal(
      toHex(fromBase64(info.last_block_app_hash)),
      toHex(next.appHash),
      `app hash after height ${h} on the restarted validator = the network's`
    )
    t.equal(toHex((await c3.block(h)).hash), toHex((await c0.block(h)).hash), 'same block at that height')

    const log = await readFile(join(victim.home, 'cometbft.log'), 'utf8')
    const replays = [
      ...log.matchAll(/ABCI Replay Blocks\s+module=consensus appHeight=(\d+) storeHeight=(\d+) stateHeight=(\d+)/g)
    ].map(m => m.slice(1).map(Number))
    t.comment(`handshakes (appHeight, storeHeight, stateHeight): ${JSON.stringify(replays)}`)
    // after round 0 the app had finalized block store (its Commit failed) but persisted only store − 1
    t.ok(
      replays.some(([app, store]) => app === store - 1),
      "a restart found the app one block behind CometBFT's block store, and CometBFT executed that block again"
    )

    await waitForHeight(victim.rpc, Math.max(...acked.map(a => a.height)))
    let lost = 0
    for (const a of acked) {
      let got = await c3.tx(a.hash)
      // the tx index is written just after the block; give the newest a moment
      for (let i = 0; got === undefined && i < 50; i++) {
        await new Promise(resolve => setTimeout(resolve, 100))
        got = await c3.tx(a.hash)
      }
      if (got?.height !== a.height || got.result.code !== 0) lost++
    }
    t.equal(lost, 0, `all ${acked.length} acknowledged txs are on the restarted validator at their heights`)
    for (const k of keys) {
      const sent = acked.filter(a => a.key === k).length
      t.equal(await c3.account(k.publicKey), sent, "each account's sequence counts exactly its acknowledged txs")
    }
  }
)
