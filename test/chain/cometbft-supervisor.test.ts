// The supervisor of one CometBFT validator: its cometbft child killed -9 is started again and
// catches up (the app stays up in this process); stop() ends the child and frees the home.
import t from 'tap'
import { ChainClient } from '../../chain/client.ts'
import { startCometValidator } from '../../chain/cometbft/node.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { startLocalNet, waitForHeight } from './cometbft-net.ts'

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('a killed cometbft is restarted by its supervisor and catches up; stop ends it', async t => {
  const net = await startLocalNet(4, { chainId: 'supervise' })
  t.teardown(net.stop)
  const v = net.validators[2]
  const pid = v.cometPid
  t.ok(pid !== undefined && alive(pid), 'cometbft runs')
  const c = new ChainClient({ url: v.rpc })
  t.teardown(() => c.close())
  const k = await generateChainKey()
  await c.send('vendor.register', { name: 'before' }, k)
  process.kill(pid as number, 'SIGKILL')
  while (v.cometPid === pid || v.cometPid === undefined) await new Promise(resolve => setTimeout(resolve, 100))
  t.not(v.cometPid, pid, 'a new cometbft was started')
  const c0 = new ChainClient({ url: net.net.validators[0].rpc })
  t.teardown(() => c0.close())
  const top = (await c0.status()).height
  await waitForHeight(v.rpc, top + 1)
  const r = await c.send('vendor.register', { name: 'after' }, k)
  t.ok(r.height > top, 'the restarted validator takes and commits txs again (the same account, its next sequence)')

  const newPid = v.cometPid as number
  await v.stop()
  t.notOk(alive(newPid), 'stop() ended cometbft')
  const again = await startCometValidator({ home: v.home, rules: createTestOnlyQuorumRules() })
  net.validators[2] = again
  await waitForHeight(again.rpc, r.height + 1)
  t.pass('the home can be started again right after')
})
