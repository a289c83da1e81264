import t from 'tap'
import { makeChain, fakeDer, testQc, T0 } from './harness.ts'
import { generateChainKey } from '../../chain/keys.ts'
import { buildRawTx, buildTx } from '../../chain/tx.ts'
import { TxCode, type NodeView, type SeedView, type ReferenceValues } from '../../chain/types.ts'
import { decode, encode } from '../../encoding/canonical.ts'
import { toHex } from '../../encoding/bytes.ts'
import { verifyStateProof } from '../../chain/store.ts'
import { PROOF_TYPE } from '../../chain/app.ts'
import { utf8 } from '../../encoding/bytes.ts'

const d32 = (n: number): Uint8Array => new Uint8Array(32).fill(n)
/** A genesis verifier registers with a BLS key (the test double takes any non-zero proof) to become a candidate. */
const bls = (n: number): { blsPublicKey: Uint8Array; blsProof: Uint8Array } => ({
  blsPublicKey: new Uint8Array(48).fill(n + 1),
  blsProof: new Uint8Array(96).fill(1)
})
const q = <T>(
  h: { app: { query: (r: { path: string; data?: Uint8Array }) => { code: number; value?: Uint8Array; log: string } } },
  path: string,
  params: Record<string, unknown> = {}
): T => {
  const r = h.app.query({ path, data: encode(params as never) })
  if (r.code !== 0) throw new Error(`query ${path}: ${r.code} ${r.log}`)
  return decode(r.value ?? new Uint8Array()) as T
}

t.test('vendor namespace, firmware reference values and revocation', async t => {
  const h = await makeChain()
  const acme = await generateChainKey()
  const mallory = await generateChainKey()
  t.equal(h.run('vendor.register', { name: 'acme' }, acme).code, 0)
  const before = h.app.info().appHash
  const dup = h.run('vendor.register', { name: 'acme' }, mallory)
  t.equal(dup.code, TxCode.CONFLICT, 'duplicate name refused')
  t.match(dup.log, /already registered/)
  const fw = {
    vendor: 'acme',
    platform: 'x1',
    version: '1.0',
    bank: 'sha256' as const,
    pcrs: { 0: { golden: [d32(1)] }, 7: { events: [d32(2), d32(3)] } }
  }
  const wrong = h.run('firmware.publish', fw, mallory)
  t.equal(wrong.code, TxCode.UNAUTHORIZED, 'wrong signer for vendor namespace')
  t.match(wrong.log, /only the key that registered vendor "acme"/)
  t.same(h.app.info().appHash, before, 'failed txs change nothing')
  t.equal(h.run('firmware.publish', fw, acme).code, 0)
  t.equal(h.run('vendor.ekca.publish', { vendor: 'acme', certificate: fakeDer(1) }, acme).code, 0)
  t.equal(
    h.run('os.publish', { name: 'nixos', version: '24.11', bank: 'sha256', pcrs: { 11: { golden: [d32(9)] } } }, acme)
      .code,
    0
  )
  const refs = q<ReferenceValues>(h, '/refs', { vendor: 'acme', platform: 'x1' })
  t.equal(refs.firmware.length, 1)
  t.equal(refs.firmware[0].name, 'acme/x1')
  t.same(refs.firmware[0].pcrs['7'].events, [d32(2), d32(3)])
  t.equal(refs.ekCas.length, 1)
  t.equal(refs.os.length, 1)
  t.equal(h.run('firmware.revoke', { vendor: 'acme', platform: 'x1', version: '1.0' }, acme).code, 0)
  t.equal(q<ReferenceValues>(h, '/refs', {}).firmware.length, 0, 'revoked set no longer served')
  t.equal(h.run('firmware.publish', fw, acme).code, TxCode.CONFLICT, 'revoked version cannot come back')
})

t.test('bad input changes nothing and says why', async t => {
  const h = await makeChain()
  const k = await generateChainKey()
  const other = await generateChainKey()
  t.equal(h.run('vendor.register', { name: 'v1' }, k).code, 0)
  const hash0 = h.app.info().appHash
  const cases: Array<[string, Uint8Array, number, RegExp]> = []
  // bad signature: signed by another key but claims k as signer
  cases.push([
    'bad signature',
    buildRawTx(
      { v: 1, type: 'vendor.register', chainId: h.genesis.chainId, signer: k.publicKey, seq: 1, body: { name: 'zz' } },
      other
    ),
    TxCode.BAD_SIGNATURE,
    /bad signature/
  ])
  cases.push([
    'replay',
    buildTx('vendor.register', { name: 'v1' }, k, 0, h.genesis.chainId),
    TxCode.BAD_SEQUENCE,
    /out of order/
  ])
  cases.push([
    'future seq',
    buildTx('vendor.register', { name: 'v2' }, k, 5, h.genesis.chainId),
    TxCode.BAD_SEQUENCE,
    /next sequence is 1/
  ])
  cases.push(['malformed', new Uint8Array([0xa1, 0x61]), TxCode.MALFORMED, /malformed/])
  cases.push(['oversized', new Uint8Array(70_000), TxCode.TOO_LARGE, /exceeds the limit/])
  cases.push([
    'unknown type',
    buildRawTx({ v: 1, type: 'bank.send', chainId: h.genesis.chainId, signer: k.publicKey, seq: 1, body: {} }, k),
    TxCode.UNKNOWN_TYPE,
    /unknown transaction type/
  ])
  cases.push([
    'wrong chain',
    buildTx('vendor.register', { name: 'v3' }, k, 1, 'other-chain'),
    TxCode.WRONG_CHAIN,
    /other-chain/
  ])
  cases.push([
    'version',
    buildRawTx(
      { v: 2, type: 'vendor.register', chainId: h.genesis.chainId, signer: k.publicKey, seq: 1, body: { name: 'v4' } },
      k
    ),
    TxCode.UNSUPPORTED_VERSION,
    /version 2/
  ])
  cases.push([
    'bad body',
    buildRawTx(
      {
        v: 1,
        type: 'vendor.register',
        chainId: h.genesis.chainId,
        signer: k.publicKey,
        seq: 1,
        body: { name: 'UPPER CASE' }
      },
      k
    ),
    TxCode.INVALID_BODY,
    /name/
  ])
  cases.push([
    'extra field',
    buildRawTx(
      {
        v: 1,
        type: 'vendor.register',
        chainId: h.genesis.chainId,
        signer: k.publicKey,
        seq: 1,
        body: { name: 'ok', x: 1 }
      },
      k
    ),
    TxCode.INVALID_BODY,
    /unknown field/
  ])
  for (const [name, tx, code, re] of cases) {
    const check = h.app.checkTx(tx)
    t.equal(check.code, code, `${name}: checkTx code`)
    t.match(check.log, re, `${name}: says why`)
  }
  // The same txs forced into a block (as a faulty proposer might) fail in finalize too.
  h.clock.now += 1000
  const r = h.app.finalizeBlock({
    height: h.app.info().height + 1,
    time: h.clock.now,
    hash: new Uint8Array(32),
    txs: cases.map(c => c[1])
  })
  t.same(
    r.txResults.map(x => x.code),
    cases.map(c => c[2]),
    'finalize refuses them with the same codes'
  )
  t.same(r.appHash, hash0, 'state unchanged')
  h.app.commit()
  t.same(h.app.info().appHash, hash0)
})

t.test('node registration, attestation request, seed, record, expiry, revocation', async t => {
  const gv = await generateChainKey()
  const h = await makeChain({ verifiers: [gv] })
  const node = await generateChainKey()
  const acme = await generateChainKey()
  t.equal(
    h.run(
      'node.register',
      { nodeId: gv.peerId, ekCertificate: fakeDer(99), akPublic: new Uint8Array([9]), addrs: [], ...bls(0) },
      gv
    ).code,
    0
  )
  t.equal(h.run('vendor.register', { name: 'acme' }, acme).code, 0)
  t.equal(
    h.run(
      'firmware.publish',
      { vendor: 'acme', platform: 'x1', version: '1', bank: 'sha256', pcrs: { 0: { golden: [d32(1)] } } },
      acme
    ).code,
    0
  )
  const reg = {
    nodeId: node.peerId,
    ekCertificate: fakeDer(3),
    akPublic: new Uint8Array([1, 2, 3]),
    addrs: ['/ip4/127.0.0.1/tcp/4001'],
    platform: 'acme/x1'
  }
  t.equal(h.run('node.register', reg, acme).code, TxCode.UNAUTHORIZED, 'only the node registers itself')
  t.equal(h.run('node.register', reg, node).code, 0)
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('pass', T0 + 1e9) }, node).code,
    TxCode.NOT_FOUND
  )
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code, 0)
  const reqHeight = h.app.info().height
  // seed is fixed by the next block
  let seed = q<SeedView>(h, '/seed', { nodeId: node.peerId })
  t.equal(seed.status, 'pending')
  h.block([])
  seed = q<SeedView>(h, '/seed', { nodeId: node.peerId })
  t.equal(seed.status, 'ready')
  t.equal(seed.requestHeight, reqHeight)
  t.equal(seed.seedHeight, reqHeight + 1)
  t.same(
    seed.candidates?.map(c => c.nodeId),
    [gv.peerId],
    'candidates = genesis verifiers, excluding the node'
  )
  const block = h.producer.store.block(reqHeight + 1)
  const { committeeSeed } = await import('../../chain/seed.ts')
  t.same(
    seed.seed,
    committeeSeed(block!.hash, node.peerId, 1),
    'seed derives from the hash of the block after the request'
  )
  t.equal(
    h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code,
    TxCode.CONFLICT,
    'rounds must increase'
  )
  const bad = h.run(
    'attest.record',
    {
      nodeId: node.peerId,
      round: 1,
      qc: testQc('pass', T0 + 1e9, ['12D3KooWRDnDMPnnTGH6FAGDZVtEm31iPuCeP53fMiBgY4kbZNmv'])
    },
    node
  )
  t.equal(bad.code, TxCode.QC_REJECTED)
  t.match(bad.log, /not a candidate/)
  const expires = h.clock.now + 10_000
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('pass', expires) }, gv).code,
    0,
    'anyone may submit the QC'
  )
  let view = q<NodeView>(h, '/node', { nodeId: node.peerId })
  t.equal(view.effective, 'certified')
  t.equal(view.record?.expiresAt, expires)
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('pass', expires) }, gv).code,
    TxCode.CONFLICT,
    'no second record for a round'
  )
  t.same(
    q<{ nodes: NodeView[] }>(h, '/nodes')
      .nodes.map(n => n.nodeId)
      .sort(),
    [gv.peerId, node.peerId].sort()
  )
  // revocation of the platform's firmware ends certification
  t.equal(h.run('firmware.revoke', { vendor: 'acme', platform: 'x1', version: '1' }, acme).code, 0)
  view = q<NodeView>(h, '/node', { nodeId: node.peerId })
  t.equal(view.effective, 'revoked')
  t.match(view.record?.statusReason, /firmware acme\/x1 1 revoked/)
  // re-attest, then let it expire
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 2 }, node).code, 0)
  h.block([])
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 2, qc: testQc('pass', h.clock.now + 1500) }, node).code,
    0
  )
  t.equal(q<NodeView>(h, '/node', { nodeId: node.peerId }).effective, 'certified')
  h.block([])
  h.block([])
  t.equal(q<NodeView>(h, '/node', { nodeId: node.peerId }).effective, 'expired')
  // a failing QC
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 3 }, node).code, 0)
  t.equal(h.run('attest.record', { nodeId: node.peerId, round: 3, qc: testQc('fail', 0) }, node).code, 0)
  t.equal(q<NodeView>(h, '/node', { nodeId: node.peerId }).effective, 'failed')
})

t.test('images by name and digest; proofs of inclusion', async t => {
  const h = await makeChain()
  const pub = await generateChainKey()
  const other = await generateChainKey()
  const digest = 'sha256:' + 'ab'.repeat(32)
  const cid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
  t.equal(h.run('image.publish', { name: 'library/hello', digest, cid, size: 1234 }, pub).code, 0)
  t.equal(
    h.run('image.publish', { name: 'library/hello', digest: 'sha256:' + 'cd'.repeat(32), cid, size: 1 }, other).code,
    TxCode.UNAUTHORIZED,
    'name belongs to its first publisher'
  )
  t.equal(
    h.run('image.publish', { name: 'library/hello', digest, cid: 'not-a-cid', size: 1 }, pub).code,
    TxCode.INVALID_BODY
  )
  const byName = q<{ images: Array<{ cid: string }> }>(h, '/image', { name: 'library/hello' })
  t.equal(byName.images[0].cid, cid)
  const byDigest = q<{ images: Array<{ name: string }> }>(h, '/image', { digest })
  t.equal(byDigest.images[0].name, 'library/hello')
  const key = `img/library/hello#${digest}`
  const r = h.app.query({ path: '/key', data: utf8.encode(key), prove: true })
  t.equal(r.code, 0)
  t.equal(r.proofOps?.[0].type, PROOF_TYPE)
  const root = h.app.info().appHash
  t.ok(verifyStateProof(root, key, r.value!, r.proofOps![0].data), 'proof verifies against the app hash')
  const tampered = new Uint8Array(r.value!)
  tampered[3] ^= 1
  t.notOk(verifyStateProof(root, key, tampered, r.proofOps![0].data), 'tampered value does not verify')
  t.equal(h.app.query({ path: '/nope' }).code, TxCode.UNKNOWN_TYPE)
  t.equal(h.app.query({ path: '/vendor', data: encode({ name: 'none' }) }).code, TxCode.NOT_FOUND)
  t.equal(toHex(h.app.info().appHash).length, 64)
})

t.test('revocation ends the certification of the nodes it concerns, and of nodes that named nothing', async t => {
  const gv = await generateChainKey()
  const h = await makeChain({ verifiers: [gv] })
  const os = await generateChainKey()
  const nodes = await Promise.all([0, 1, 2].map(async () => await generateChainKey()))
  t.equal(
    h.run('os.publish', { name: 'nixos', version: '1', bank: 'sha256', pcrs: { 11: { golden: [d32(1)] } } }, os).code,
    0
  )
  t.equal(
    h.run('os.publish', { name: 'other', version: '1', bank: 'sha256', pcrs: { 11: { golden: [d32(2)] } } }, os).code,
    0
  )
  const osOf = ['nixos', 'other', undefined]
  for (const [i, n] of nodes.entries()) {
    const body = {
      nodeId: n.peerId,
      ekCertificate: fakeDer(i),
      akPublic: new Uint8Array([i]),
      addrs: [] as string[],
      os: osOf[i]
    }
    if (body.os === undefined) delete body.os
    t.equal(h.run('node.register', body, n).code, 0)
    t.equal(h.run('attest.request', { nodeId: n.peerId, round: 1 }, n).code, 0)
  }
  h.block([])
  for (const n of nodes)
    t.equal(h.run('attest.record', { nodeId: n.peerId, round: 1, qc: testQc('pass', h.clock.now + 1e9) }, n).code, 0)
  t.equal(
    h.run('os.revoke', { name: 'nixos', version: '1' }, nodes[0]).code,
    TxCode.UNAUTHORIZED,
    'only the OS publisher revokes'
  )
  t.equal(h.run('os.revoke', { name: 'nixos', version: '1' }, os).code, 0)
  const eff = nodes.map(n => q<NodeView>(h, '/node', { nodeId: n.peerId }).effective)
  t.same(
    eff,
    ['revoked', 'certified', 'revoked'],
    'nixos node and the node that named no OS lose certification; the other stays'
  )
  // a reboot (reset) ends certification at once
  t.equal(h.run('attest.request', { nodeId: nodes[1].peerId, round: 2, reset: true }, nodes[1]).code, 0)
  t.equal(q<NodeView>(h, '/node', { nodeId: nodes[1].peerId }).effective, 'pending')
})

// ---- issue 10: certification rules (DESIGN.md "Certification rules") ----
const RULES = { roundDeadlineBlocks: 3, cooldownBaseBlocks: 2, cooldownMaxBlocks: 16 }

async function certChain(certification: Record<string, unknown> = RULES) {
  const gv = await generateChainKey()
  const validator = await generateChainKey()
  const genesis = {
    chainId: 'quorate-test',
    genesisTime: T0,
    initialHeight: 1,
    validators: [validator.publicKey],
    verifiers: [gv.peerId],
    certification
  }
  const h = await makeChain({ genesis, validator })
  const node = await generateChainKey()
  t.equal(
    h.run(
      'node.register',
      { nodeId: node.peerId, ekCertificate: fakeDer(7), akPublic: new Uint8Array([7]), addrs: [] },
      node
    ).code,
    0
  )
  return { h, gv, node, view: () => q<NodeView>(h, '/node', { nodeId: node.peerId }) }
}

t.test('genesis certification parameters are checked; a bad genesis changes nothing', async t => {
  const { createChainApp } = await import('../../chain/app.ts')
  const { createTestOnlyQuorumRules } = await import('../../chain/testing.ts')
  const v = await generateChainKey()
  const base = { chainId: 'c', genesisTime: T0, initialHeight: 1, validators: [v.publicKey], verifiers: [] }
  for (const [certification, re] of [
    [{ adversaryFraction: { num: 1, den: 3 } }, /adversaryFraction/],
    [{ securityBits: 0 }, /securityBits/],
    [{ roundDeadlineBlocks: 1 }, /roundDeadlineBlocks/],
    [{ cooldownBaseBlocks: 10, cooldownMaxBlocks: 5 }, /cooldownMaxBlocks/],
    [{ rules: 'lax' }, /rules must be/]
  ] as const) {
    const app = createChainApp({ rules: createTestOnlyQuorumRules() })
    t.throws(
      () => app.initChain({ ...base, certification: certification as never }),
      re,
      `refused: ${JSON.stringify(certification)}`
    )
    t.equal(app.info().initialized, false, 'nothing stored')
    app.close()
  }
  const { genesisFromJson, genesisToJson } = await import('../../chain/genesis.ts')
  const j = genesisToJson({ ...base, certification: { rules: 'legacy', adversaryFraction: { num: 1, den: 10 } } })
  t.same((j.app_state as Record<string, unknown>).certification, {
    rules: 'legacy',
    adversary_fraction: '1/10',
    security_bits: 40,
    round_deadline_blocks: 300,
    cooldown_base_blocks: 10,
    cooldown_max_blocks: 14400,
    cert_ttl_ms: 86_400_000,
    fault_window_blocks: 100_000,
    silence_window_rounds: 32
  })
  t.same(genesisFromJson(j).certification?.adversaryFraction, { num: 1, den: 10 }, 'genesis.json round trip')
  t.throws(() => genesisFromJson({ ...j, app_state: { certification: { adversary_fraction: '0.2' } } }), /num\/den/)
  t.throws(() => genesisFromJson({ ...j, app_state: { certification: { deadline: 5 } } }), /unknown field "deadline"/)
})

t.test('a round the node drops is closed as failed by the chain at its deadline', async t => {
  const { h, node, view } = await certChain()
  const r = h.run('attest.request', { nodeId: node.peerId, round: 1 }, node)
  t.equal(r.code, 0)
  const at = h.app.info().height
  t.same(decode(r.data!), { opened: true, round: 1, deadline: at + 3 }, 'the request says its deadline')
  const early = h.run('attest.request', { nodeId: node.peerId, round: 2 }, node)
  t.equal(early.code, TxCode.TOO_EARLY, 'no second round while one is open')
  t.match(early.log, new RegExp(`open until height ${at + 3}.*allowed at height ${at + 4}`))
  // the node never records; blocks go by
  while (h.app.info().height < at + 3) h.block([])
  t.equal(view().effective, 'pending', 'still open at its deadline')
  h.block([])
  const v = view()
  t.equal(v.effective, 'failed', 'closed in the first block after the deadline')
  t.equal(v.request?.closedAt, at + 4)
  t.match(v.request?.closeReason, /no quorum recorded by the deadline/)
  t.same(v.cooldown, { failures: 1, allowedAt: at + 4 + 4 }, 'cooldown base × 2^1')
  t.equal(
    h.app.query({ path: '/key', data: utf8.encode(`rdl/${at + 3}/${node.peerId}`) }).code,
    TxCode.NOT_FOUND,
    'deadline index entry removed'
  )
  const late = h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('pass', h.clock.now + 1e6) }, node)
  t.equal(late.code, TxCode.CONFLICT, 'a QC for a closed round is refused')
  t.match(late.log, /closed at height/)
})

t.test('cooldown: refused with the height it is allowed at, doubling, capped, cleared by a pass', async t => {
  const { h, node, view } = await certChain()
  let round = 0
  const fail = (): void => {
    t.equal(h.run('attest.request', { nodeId: node.peerId, round: ++round }, node).code, 0)
    h.block([])
    t.equal(h.run('attest.record', { nodeId: node.peerId, round, qc: testQc('fail', 0) }, node).code, 0)
  }
  fail()
  const c1 = view().cooldown!
  t.equal(c1.failures, 1)
  t.equal(c1.allowedAt, h.app.info().height + 4)
  const refused = h.run('attest.request', { nodeId: node.peerId, round: round + 1 }, node)
  t.equal(refused.code, TxCode.TOO_EARLY)
  t.match(refused.log, new RegExp(`allowed at height ${c1.allowedAt}$`))
  const hash = h.app.info().appHash
  t.same(h.app.info().appHash, hash, 'a refusal changes nothing')
  while (h.app.info().height + 1 < c1.allowedAt) h.block([])
  fail()
  const c2 = view().cooldown!
  t.same([c2.failures, c2.allowedAt - h.app.info().height], [2, 8], 'second failure: base × 2^2')
  while (h.app.info().height + 1 < c2.allowedAt) h.block([])
  fail()
  while (h.app.info().height + 1 < view().cooldown!.allowedAt) h.block([])
  fail()
  t.same(
    [view().cooldown!.failures, view().cooldown!.allowedAt - h.app.info().height],
    [4, 16],
    'capped at cooldownMaxBlocks (2 × 2^4 = 32 > 16)'
  )
  while (h.app.info().height + 1 < view().cooldown!.allowedAt) h.block([])
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: ++round }, node).code, 0)
  h.block([])
  t.equal(h.run('attest.record', { nodeId: node.peerId, round, qc: testQc('pass', h.clock.now + 1e6) }, node).code, 0)
  t.equal(view().effective, 'certified')
  t.equal(view().cooldown, undefined, 'a pass clears the failures')
  t.equal(
    h.run('attest.request', { nodeId: node.peerId, round: ++round }, node).code,
    0,
    'the next round opens at once'
  )
})

t.test('reset: ends the certification at once, closes an open round, opens one only when allowed', async t => {
  const { h, node, view } = await certChain()
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code, 0)
  h.block([])
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 1, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
    0
  )
  t.equal(view().record?.expiresAt, h.clock.now + 86_400_000, 'the chain caps the lifetime at certTtlMs')
  // a re-attestation round is open when the node reboots
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 2 }, node).code, 0)
  h.block([])
  const r = h.run('attest.request', { nodeId: node.peerId, round: 3, reset: true }, node)
  t.equal(r.code, 0, 'a reset is not refused while a round is open')
  t.same(
    decode(r.data!),
    { opened: false, allowedAt: h.app.info().height + 4 },
    'the open round was closed as failed: cooldown, no new round'
  )
  const v = view()
  t.equal(v.effective, 'registered', 'certification ended at once')
  t.match(v.request?.closeReason, /abandoned by a reset/)
  t.equal(v.request?.round, 2)
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 2, qc: testQc('pass', h.clock.now + 1e9) }, node).code,
    TxCode.CONFLICT,
    'evidence from before the reboot cannot certify after it'
  )
  t.equal(
    h.run('attest.request', { nodeId: node.peerId, round: 3 }, node).code,
    TxCode.TOO_EARLY,
    'a plain request still waits'
  )
  while (h.app.info().height + 1 < v.cooldown!.allowedAt) h.block([])
  const again = h.run('attest.request', { nodeId: node.peerId, round: 3, reset: true }, node)
  t.same((decode(again.data!) as { opened: boolean }).opened, true, 'after the cooldown a reset opens a round')
})

t.test('legacy rules: no deadline, no cooldown (the hole the simulator shows)', async t => {
  const { h, node, view } = await certChain({ rules: 'legacy' })
  for (let round = 1; round <= 3; round++) {
    t.equal(h.run('attest.request', { nodeId: node.peerId, round }, node).code, 0, `round ${round} requested at once`)
  }
  for (let i = 0; i < 10; i++) h.block([])
  t.equal(view().effective, 'pending', 'never closed')
  t.equal(view().cooldown, undefined)
  t.equal(h.run('attest.record', { nodeId: node.peerId, round: 3, qc: testQc('fail', 0) }, node).code, 0)
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 4 }, node).code, 0, 'retry right after a failure')
})

t.test('committee size from the adversary model; fewer candidates record the level reached', async t => {
  const verifiers = await Promise.all(Array.from({ length: 60 }, async () => await generateChainKey()))
  const h = await makeChain({ verifiers })
  h.block(
    verifiers.map((v, i) =>
      h.tx(
        'node.register',
        { nodeId: v.peerId, ekCertificate: fakeDer(i), akPublic: new Uint8Array([i]), addrs: [], ...bls(i) },
        v
      )
    )
  )
  const node = await generateChainKey()
  t.equal(
    h.run(
      'node.register',
      { nodeId: node.peerId, ekCertificate: fakeDer(1), akPublic: new Uint8Array([1]), addrs: [] },
      node
    ).code,
    0
  )
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code, 0)
  h.block([])
  const seed = q<SeedView>(h, '/seed', { nodeId: node.peerId })
  t.equal(seed.candidateCount, 60, 'every genesis verifier with a BLS key is a candidate')
  t.ok(seed.k! >= 40 && seed.k! < 60, `k = ${seed.k} for F = 1/5 at 40 bits`)
  t.equal(seed.committee?.length, seed.k)
  t.same(
    seed.candidates?.map(c => c.nodeId),
    seed.committee,
    'the seed view lists the committee, in drawn order'
  )
  t.ok(seed.securityBits! >= 40, `${seed.securityBits} bits`)
})

// ---- issue 10: accountable verdicts (verifier.fault) and silence ----
/** A test appraiser: evidence is canonical { pcr0 }; firmware passes when pcr0 is a golden PCR 0 of the refs. */
const testAppraiser = {
  appraise: (input: { evidence: Uint8Array; refs: ReferenceValues }): { failedClaims: string[] } => {
    let pcr0: Uint8Array
    try {
      pcr0 = (decode(input.evidence) as { pcr0: Uint8Array }).pcr0
    } catch {
      return { failedClaims: ['containers', 'firmware', 'freshness', 'identity', 'os'] }
    }
    const ok = input.refs.firmware.some(f => (f.pcrs['0']?.golden ?? []).some(g => toHex(g) === toHex(pcr0)))
    return { failedClaims: ok ? [] : ['firmware'] }
  }
}

async function faultChain(silenceWindowRounds = 32) {
  const verifiers = await Promise.all([0, 1, 2, 3].map(async () => await generateChainKey()))
  const validator = await generateChainKey()
  const genesis = {
    chainId: 'quorate-test',
    genesisTime: T0,
    initialHeight: 1,
    validators: [validator.publicKey],
    verifiers: verifiers.map(v => v.peerId).sort(),
    certification: { ...RULES, silenceWindowRounds }
  }
  const h = await makeChain({ genesis, validator, appraiser: testAppraiser })
  h.block(
    verifiers.map((v, i) =>
      h.tx(
        'node.register',
        { nodeId: v.peerId, ekCertificate: fakeDer(i), akPublic: new Uint8Array([i]), addrs: [], ...bls(i) },
        v
      )
    )
  )
  const acme = await generateChainKey()
  t.equal(h.run('vendor.register', { name: 'acme' }, acme).code, 0)
  t.equal(
    h.run(
      'firmware.publish',
      { vendor: 'acme', platform: 'x1', version: '1', bank: 'sha256', pcrs: { 0: { golden: [d32(1)] } } },
      acme
    ).code,
    0
  )
  const node = await generateChainKey()
  t.equal(
    h.run(
      'node.register',
      { nodeId: node.peerId, ekCertificate: fakeDer(9), akPublic: new Uint8Array([9]), addrs: [], platform: 'acme/x1' },
      node
    ).code,
    0
  )
  let round = 0
  /** One round of the node, recorded with a pass QC signed by `signers` (default: the whole committee). */
  const passRound = (signers?: (committee: string[]) => string[]): { round: number; committee: string[] } => {
    t.equal(h.run('attest.request', { nodeId: node.peerId, round: ++round }, node).code, 0)
    h.block([])
    const committee = q<SeedView>(h, '/seed', { nodeId: node.peerId }).committee ?? []
    const qc = encode({ outcome: 'pass', expiresAt: h.clock.now + 1e9, signers: signers?.(committee) ?? committee })
    t.equal(h.run('attest.record', { nodeId: node.peerId, round, qc }, node).code, 0)
    return { round, committee }
  }
  return { h, verifiers, node, acme, passRound }
}

t.test('verifier.fault: a lying verdict removes its member from the candidates; a false claim is refused', async t => {
  const { createHash } = await import('node:crypto')
  const { encodeTestOnlyVerdict } = await import('../../chain/testing.ts')
  const { h, node, passRound } = await faultChain()
  const { round, committee } = passRound()
  t.equal(committee.length, 4)
  const bad = encode({ pcr0: d32(9) })
  const good = encode({ pcr0: d32(1) })
  const digest = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest())
  const fault = (
    member: string,
    outcome: 'pass' | 'fail',
    evidence: Uint8Array,
    failedClaims: string[] = [],
    at = digest(evidence)
  ) =>
    h.run(
      'verifier.fault',
      {
        nodeId: node.peerId,
        round,
        evidence,
        verdict: encodeTestOnlyVerdict({ member, outcome, evidenceDigest: at, failedClaims })
      },
      node
    )
  // refusals first: each changes nothing
  const hash0 = h.app.info().appHash
  const falseClaim = fault(committee[0], 'pass', good)
  t.equal(falseClaim.code, TxCode.NO_FAULT, 'a pass on good evidence is no fault')
  t.match(falseClaim.log, /agrees with .* pass verdict/)
  t.equal(
    fault(committee[0], 'fail', good, ['freshness']).code,
    TxCode.NO_FAULT,
    'a freshness failure cannot be decided by the chain'
  )
  const mismatch = fault(committee[0], 'pass', bad, [], digest(good))
  t.equal(mismatch.code, TxCode.INVALID_BODY)
  t.match(mismatch.log, /not what the verdict judged/)
  const outsider = await generateChainKey()
  t.equal(fault(outsider.peerId, 'pass', bad).code, TxCode.INVALID_BODY, 'not a committee member')
  t.equal(
    h.run(
      'verifier.fault',
      {
        nodeId: node.peerId,
        round: round + 7,
        evidence: bad,
        verdict: encodeTestOnlyVerdict({ member: committee[0], outcome: 'pass' })
      },
      node
    ).code,
    TxCode.NOT_FOUND,
    'a round not on record'
  )
  t.same(h.app.info().appHash, hash0, 'refused fault claims change nothing')
  // a member that passed bad firmware, and one that failed good firmware, are proven faulty
  const liar = fault(committee[0], 'pass', bad)
  t.equal(liar.code, 0, liar.log)
  t.same(decode(liar.data!), { member: committee[0], claims: ['firmware'] })
  t.equal(fault(committee[1], 'fail', good, ['firmware']).code, 0, 'failing good firmware is a fault too')
  t.equal(fault(committee[0], 'pass', bad).code, TxCode.CONFLICT, 'once is enough')
  const v = q<NodeView>(h, '/node', { nodeId: committee[0] })
  t.same(
    { reason: v.fault?.reason, round: v.fault?.round, claims: v.fault?.claims },
    { reason: 'fault', round, claims: ['firmware'] },
    'on record'
  )
  // the next committee is drawn without them
  const next = passRound()
  t.same([...next.committee].sort(), committee.slice(2).sort(), 'the liars are no longer candidates')
})

t.test('verifier.fault judges against the reference values in force during the round', async t => {
  const { createHash } = await import('node:crypto')
  const { encodeTestOnlyVerdict } = await import('../../chain/testing.ts')
  const { h, node, acme } = await faultChain()
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code, 0)
  h.block([])
  const committee = q<SeedView>(h, '/seed', { nodeId: node.peerId }).committee ?? []
  // the firmware is revoked while the round is open: a member judging after that fails it honestly
  t.equal(h.run('firmware.revoke', { vendor: 'acme', platform: 'x1', version: '1' }, acme).code, 0)
  t.equal(
    h.run('attest.record', { nodeId: node.peerId, round: 1, qc: encode({ outcome: 'fail', expiresAt: 0 }) }, node).code,
    0
  )
  const good = encode({ pcr0: d32(1) })
  const evidenceDigest = new Uint8Array(createHash('sha256').update(good).digest())
  const r = h.run(
    'verifier.fault',
    {
      nodeId: node.peerId,
      round: 1,
      evidence: good,
      verdict: encodeTestOnlyVerdict({
        member: committee[0],
        outcome: 'fail',
        evidenceDigest,
        failedClaims: ['firmware']
      })
    },
    node
  )
  t.equal(r.code, TxCode.NO_FAULT, 'failing firmware revoked mid-round is no fault')
  const p = h.run(
    'verifier.fault',
    {
      nodeId: node.peerId,
      round: 1,
      evidence: good,
      verdict: encodeTestOnlyVerdict({ member: committee[1], outcome: 'pass', evidenceDigest })
    },
    node
  )
  t.equal(p.code, TxCode.NO_FAULT, 'neither is passing it (it was good when the round began)')
})

t.test('chronic silence drops a verifier from the candidates', async t => {
  const { h, passRound } = await faultChain(4)
  let first: string[] = []
  for (let i = 0; i < 4; i++) {
    const { committee } = passRound(c => {
      if (first.length === 0) first = c
      return c.filter(m => m !== first[0])
    })
    t.equal(committee.length, 4)
  }
  const v = q<NodeView>(h, '/node', { nodeId: first[0] })
  t.same(
    { reason: v.fault?.reason, rounds: v.fault?.rounds, missed: v.fault?.missed },
    { reason: 'silence', rounds: 4, missed: 4 },
    'missing from every QC of its window'
  )
  t.equal(q<NodeView>(h, '/node', { nodeId: first[1] }).fault, undefined, 'the members that signed stay')
  t.notOk(passRound().committee.includes(first[0]), 'no longer drawn')
})

t.test('BLS key registration, AK binding record, and a removed verifier stays removed', async t => {
  const { h, verifiers, node, passRound } = await faultChain()
  const k = verifiers[0]
  const reg = { nodeId: k.peerId, ekCertificate: fakeDer(0), akPublic: new Uint8Array([0]), addrs: [] }
  const half = h.run('node.register', { ...reg, blsPublicKey: new Uint8Array(48).fill(1) }, k)
  t.equal(half.code, TxCode.INVALID_BODY, 'a BLS key without its proof')
  t.match(half.log, /come together/)
  const zero = h.run(
    'node.register',
    { ...reg, blsPublicKey: new Uint8Array(48).fill(1), blsProof: new Uint8Array(96) },
    k
  )
  t.equal(zero.code, TxCode.UNAUTHORIZED, 'a proof of possession that does not verify')
  t.match(zero.log, /proof of possession/)
  // the AK–EK binding: recorded with the first pass, kept while EK and AK stay, gone when the AK changes
  passRound()
  const bound = q<NodeView>(h, '/node', { nodeId: node.peerId }).record?.akBound
  t.ok(bound !== undefined, 'recorded with the first pass')
  const nreg = {
    nodeId: node.peerId,
    ekCertificate: fakeDer(9),
    akPublic: new Uint8Array([9]),
    addrs: ['/ip4/127.0.0.1/tcp/9'],
    platform: 'acme/x1'
  }
  t.equal(h.run('node.register', nreg, node).code, 0)
  t.same(q<NodeView>(h, '/node', { nodeId: node.peerId }).record?.akBound, bound, 'new addresses keep it')
  t.equal(h.run('node.register', { ...nreg, akPublic: new Uint8Array([10]) }, node).code, 0)
  t.equal(
    q<NodeView>(h, '/node', { nodeId: node.peerId }).record?.akBound,
    undefined,
    'another AK must be proven again'
  )
  // a verifier removed for silence does not come back by registering its key again
  const dropped = verifiers[1]
  const { encodeTestOnlyVerdict } = await import('../../chain/testing.ts')
  const { createHash } = await import('node:crypto')
  const { round, committee } = passRound()
  const bad = encode({ pcr0: d32(9) })
  const m = committee.find(x => x === dropped.peerId) ?? committee[0]
  const who = verifiers.find(x => x.peerId === m)!
  t.equal(
    h.run(
      'verifier.fault',
      {
        nodeId: node.peerId,
        round,
        evidence: bad,
        verdict: encodeTestOnlyVerdict({
          member: m,
          outcome: 'pass',
          evidenceDigest: new Uint8Array(createHash('sha256').update(bad).digest())
        })
      },
      node
    ).code,
    0
  )
  const i = verifiers.indexOf(who)
  t.equal(
    h.run(
      'node.register',
      {
        nodeId: who.peerId,
        ekCertificate: fakeDer(i),
        akPublic: new Uint8Array([i]),
        addrs: ['/ip4/127.0.0.1/tcp/1'],
        ...bls(i + 10)
      },
      who
    ).code,
    0
  )
  t.notOk(
    q<{ candidates: Array<{ nodeId: string }> }>(h, '/candidates').candidates.some(c => c.nodeId === who.peerId),
    'a new BLS key does not make it a candidate again'
  )
  t.notOk(passRound().committee.includes(who.peerId))
})

t.test('an ended round is kept for fault proofs only for faultWindowBlocks', async t => {
  const verifiers = await Promise.all([0, 1, 2, 3].map(async () => await generateChainKey()))
  const validator = await generateChainKey()
  const genesis = {
    chainId: 'quorate-test',
    genesisTime: T0,
    initialHeight: 1,
    validators: [validator.publicKey],
    verifiers: verifiers.map(v => v.peerId).sort(),
    certification: { ...RULES, faultWindowBlocks: 3 }
  }
  const h = await makeChain({ genesis, validator, appraiser: testAppraiser })
  h.block(
    verifiers.map((v, i) =>
      h.tx(
        'node.register',
        { nodeId: v.peerId, ekCertificate: fakeDer(i), akPublic: new Uint8Array([i]), addrs: [], ...bls(i) },
        v
      )
    )
  )
  const node = await generateChainKey()
  t.equal(
    h.run(
      'node.register',
      { nodeId: node.peerId, ekCertificate: fakeDer(9), akPublic: new Uint8Array([9]), addrs: [] },
      node
    ).code,
    0
  )
  t.equal(h.run('attest.request', { nodeId: node.peerId, round: 1 }, node).code, 0)
  h.block([])
  t.equal(
    h.run(
      'attest.record',
      { nodeId: node.peerId, round: 1, qc: encode({ outcome: 'pass', expiresAt: h.clock.now + 1e9 }) },
      node
    ).code,
    0
  )
  const ended = h.app.info().height
  const key = `rnd/${node.peerId}/1`
  t.equal(h.app.query({ path: '/key', data: utf8.encode(key) }).code, 0, 'kept after it ended')
  while (h.app.info().height < ended + 3) h.block([])
  t.equal(h.app.query({ path: '/key', data: utf8.encode(key) }).code, 0, 'still kept at the last height of the window')
  h.block([])
  t.equal(h.app.query({ path: '/key', data: utf8.encode(key) }).code, TxCode.NOT_FOUND, 'pruned after it')
  const { encodeTestOnlyVerdict } = await import('../../chain/testing.ts')
  const r = h.run(
    'verifier.fault',
    {
      nodeId: node.peerId,
      round: 1,
      evidence: new Uint8Array([1]),
      verdict: encodeTestOnlyVerdict({ member: verifiers[0].peerId, outcome: 'pass' })
    },
    node
  )
  t.equal(r.code, TxCode.NOT_FOUND)
  t.match(r.log, /kept for 3 blocks/)
})

t.test('verifier.fault is refused on a legacy chain and on a chain started without an appraiser', async t => {
  const { encodeTestOnlyVerdict } = await import('../../chain/testing.ts')
  const body = (nodeId: string) => ({
    nodeId,
    round: 1,
    evidence: new Uint8Array([1]),
    verdict: encodeTestOnlyVerdict({ member: nodeId, outcome: 'pass' })
  })
  const legacy = await certChain({ rules: 'legacy' })
  const r1 = legacy.h.run('verifier.fault', body(legacy.node.peerId), legacy.node)
  t.equal(r1.code, TxCode.UNKNOWN_TYPE)
  t.match(r1.log, /legacy rules/)
  const bare = await certChain()
  const r2 = bare.h.run('verifier.fault', body(bare.node.peerId), bare.node)
  t.equal(r2.code, TxCode.NOT_READY)
  t.match(r2.log, /without a fault appraiser/)
})
