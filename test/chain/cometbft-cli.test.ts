// `quorate chain testnet` and `quorate chain status` against CometBFT validators.
import t from 'tap'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { quorate } from './process.ts'
import { startLocalNet } from './cometbft-net.ts'

t.test('chain testnet --json writes one home per validator with its own ports', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'qcli-tn-'))
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const r = await quorate([
    'chain',
    'testnet',
    '--validators',
    '3',
    '--dir',
    join(dir, 'net'),
    '--chain-id',
    'cli-tn',
    '--json'
  ])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { chainId: string; validators: Array<{ home: string; rpc: string; p2p: string }> }
  t.equal(out.chainId, 'cli-tn')
  t.same(
    out.validators.map(v => v.home),
    [0, 1, 2].map(i => join(dir, 'net', `node${i}`))
  )
  t.ok(
    out.validators.every(v => /^http:\/\/127\.0\.0\.1:\d+$/.test(v.rpc)),
    'RPCs on 127.0.0.1'
  )
  const ports = out.validators.flatMap(v => [new URL(v.rpc).port, v.p2p.split(':')[1]])
  t.equal(new Set(ports).size, 6, 'every p2p and RPC port distinct')

  const again = await quorate(['chain', 'testnet', '--validators', '3', '--dir', join(dir, 'net')])
  t.not(again.code, 0, 'refuses a directory that is not empty')
  t.match(again.stderr, /not empty/)
  const bad = await quorate(['chain', 'testnet', '--validators', '0', '--dir', join(dir, 'zero')])
  t.not(bad.code, 0)
  t.match(bad.stderr, /1–64/, 'a bad validator count is a clear error')
  t.same(await readdir(dir), ['net'], 'nothing written by the refused commands')
  t.same((await readdir(join(dir, 'net'))).sort(), ['node0', 'node1', 'node2'], 'the first testnet untouched')
})

t.test('chain status lists the validator set and who is up', async t => {
  const net = await startLocalNet(4, { chainId: 'cli-status' })
  t.teardown(net.stop)
  const r = await quorate(['chain', 'status', '--rpc', net.net.validators[1].rpc, '--json'])
  t.equal(r.code, 0, r.stderr)
  const s = JSON.parse(r.stdout) as {
    chainId: string
    validators?: Array<{ address: string; power: number; up: boolean }>
  }
  t.equal(s.chainId, 'cli-status')
  t.equal(s.validators?.length, 4, 'four validators')
  t.ok(
    s.validators?.every(v => v.power === 1),
    'with their voting power'
  )
  t.ok((s.validators?.filter(v => v.up).length ?? 0) >= 3, 'more than 2/3 signed the latest block')
  const text = await quorate(['chain', 'status', '--rpc', net.net.validators[0].rpc])
  t.match(text.stdout, /validators \(\d of 4 signed the latest block\)/)
})
