// The node's chain port against the embedded chain under the current rules: a round still open is
// driven on instead of requested again, and a refusal for an open round or a cooldown is waited
// out until the height it names, then the request goes through.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateChainKey } from '../../chain/keys.ts'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { ChainClient } from '../../chain/client.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { chainPort } from '../../agent/p2p/index.ts'

const home = mkdtempSync(join(tmpdir(), 'quorate-chain-port-'))
await initChainHome({
  home,
  chainId: 'port',
  certification: { roundDeadlineBlocks: 3, cooldownBaseBlocks: 2, cooldownMaxBlocks: 8 }
})
const v = await startEmbeddedValidator({
  home,
  rules: createTestOnlyQuorumRules(),
  blockIntervalMs: 5,
  emptyBlockIntervalMs: 30
})
const c = new ChainClient({ url: v.url })
t.teardown(async () => {
  c.close()
  await v.stop()
  rmSync(home, { recursive: true, force: true })
})

t.test('open round resumed; deadline closure and cooldown waited out', async t => {
  const node = await generateChainKey()
  await c.send(
    'node.register',
    { nodeId: node.peerId, ekCertificate: new Uint8Array([0x30, 2, 1, 2]), akPublic: new Uint8Array([1]), addrs: [] },
    node
  )
  const port = chainPort(c, node, { pollMs: 10 })
  const first = await port.requestAttestation(node.peerId)
  t.equal(first.round, 1)
  const open = (await c.node(node.peerId))?.request
  t.equal(open?.deadline, (open?.height ?? 0) + 3)
  t.same(await port.requestAttestation(node.peerId), { round: 1 }, 'the open round is driven on, not requested again')
  // the node drops it: the chain closes it at its deadline, and a cooldown follows
  await c.waitForHeight((open?.deadline ?? 0) + 1, { pollMs: 10 })
  const closed = await c.node(node.peerId)
  t.equal(closed?.request?.closedAt, (open?.deadline ?? 0) + 1)
  const allowedAt = closed?.cooldown?.allowedAt ?? 0
  t.equal(allowedAt, (open?.deadline ?? 0) + 1 + 4, 'base × 2^1 blocks')
  const second = await port.requestAttestation(node.peerId, { signal: AbortSignal.timeout(20_000) })
  t.equal(second.round, 2)
  const req = (await c.node(node.peerId))?.request
  t.equal(req?.round, 2)
  t.ok(
    (req?.height ?? 0) >= allowedAt,
    `requested at height ${req?.height}, allowed at ${allowedAt}: the port waited for it`
  )
})
