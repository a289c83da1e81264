// `quorate chain query` without --json prints tables (a list: one row per record, a column per
// field; a record: aligned key/value lines), not raw JSON; --json still prints the object.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import yargs from 'yargs'
import { loadCommands } from '../../cli/main.ts'
import { renderTable } from '../../cli/output.ts'
import { createQuorumRules } from '../../attestation/quorum/index.ts'
import { ChainClient, generateChainKey, initChainHome, startEmbeddedValidator } from '../../chain/index.ts'
import { FIXTURES } from '../attestation/scenario.ts'

t.test('renderTable', async t => {
  t.equal(
    renderTable([
      { a: 1, b: 'x' },
      { a: 22, c: new Uint8Array([1, 2]) }
    ]),
    'a   b  c\n--  -  ----\n1   x  -\n22  -  0102'
  )
  t.equal(renderTable({ name: 'acme', height: 3, owner: { k: 1 } }), 'name    acme\nheight  3\nowner   {"k":1}')
  t.equal(renderTable({ ekCas: [] }), 'ekCas:\n(none)')
  t.equal(renderTable(7), '7')
})

t.test('chain query prints tables without --json', async t => {
  const home = mkdtempSync(join(tmpdir(), 'quorate-query-table-'))
  t.teardown(() => {
    rmSync(home, { recursive: true, force: true })
  })
  await initChainHome({ home, chainId: 'query-table' })
  const v = await startEmbeddedValidator({
    home,
    rules: createQuorumRules({ k: 7 }),
    blockIntervalMs: 0,
    emptyBlockIntervalMs: 200
  })
  t.teardown(async () => {
    await v.stop()
  })
  const c = new ChainClient({ url: v.url })
  t.teardown(() => {
    c.close()
  })
  const key = await generateChainKey()
  await c.send('vendor.register', { name: 'acme' }, key)
  for (const f of ['rootca.pem', 'issuer.pem']) {
    await c.send(
      'vendor.ekca.publish',
      { vendor: 'acme', certificate: new Uint8Array(new X509Certificate(readFileSync(join(FIXTURES, 'ek', f))).raw) },
      key
    )
  }
  const commands = await loadCommands('chain')
  const query = async (args: string[]): Promise<string> => {
    let out = ''
    const orig = process.stdout.write.bind(process.stdout)
    process.stdout.write = ((chunk: string | Uint8Array) => {
      out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()
      return true
    }) as typeof process.stdout.write
    try {
      let y = yargs(['chain', 'query', ...args, '--rpc', v.url])
        .option('json', { type: 'boolean', global: true })
        .strict()
        .fail((msg, err) => {
          throw err ?? new Error(msg)
        })
      for (const m of commands) y = y.command(m)
      await y.parseAsync()
    } finally {
      process.stdout.write = orig
    }
    return out
  }
  const cas = await query(['ekcas', 'acme'])
  const lines = cas.trimEnd().split('\n')
  t.match(lines[0], /^height\s+vendor\s+certificate\s+fingerprint/, `a header row: ${lines[0]}`)
  t.match(lines[1], /^-+( +-+)+$/, 'a rule under it')
  t.equal(lines.length, 4, 'one row per EK CA')
  t.notMatch(cas, /^\s*[[{]/m, 'no JSON')
  t.ok(
    lines.every(l => l.length < 200),
    'long values are cut'
  )
  const vendor = await query(['vendor', 'acme'])
  t.match(vendor, /^name\s+acme$/m, 'a record as key/value lines')
  const json = JSON.parse(await query(['ekcas', 'acme', '--json']))
  t.equal(json.length, 2, '--json prints the list')
})
