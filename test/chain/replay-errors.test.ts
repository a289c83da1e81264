// `chain replay` and `chain start` on a home whose database is missing or not a block log: a
// ConfigError naming the file and what to do, not SQLite's bare "unable to open database file".
import t from 'tap'
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { replayBlockLog, NoBlockLogError } from '../../chain/replay.ts'
import { chainPaths, initChainHome, readGenesis, startEmbeddedValidator } from '../../chain/validator.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { ConfigError } from '../../encoding/errors.ts'
import { quorate } from './process.ts'

t.test('replay before the validator ever started: the CLI names the database and the next step', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'quorate-replay-'))
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const home = join(dir, 'h')
  await initChainHome({ home, chainId: 'replay-test' })
  const db = chainPaths(home).db
  const r = await quorate(['chain', 'replay', '--home', home])
  t.equal(r.code, 1)
  t.match(r.stderr, 'no chain database at ' + db)
  t.match(r.stderr, /quorate chain start/)
  t.notMatch(r.stderr, /unable to open database file/)
  const j = await quorate(['chain', 'replay', '--home', home, '--json'])
  t.equal(j.code, 1)
  t.match(JSON.parse(j.stdout), { error: { name: 'NoBlockLogError', code: 'ERR_NO_BLOCK_LOG', disposition: 'stop' } })
  await t.rejects(access(db), 'replay created no database file')

  const none = await quorate(['chain', 'replay', '--home', join(dir, 'nothing-here')])
  t.equal(none.code, 1)
  t.match(none.stderr, /no chain in .*nothing-here.*quorate chain init/, 'a home that does not exist says to init it')
})

t.test('replayBlockLog: missing, empty, garbage and a directory are NoBlockLogErrors naming the path', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'quorate-replay-'))
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const home = join(dir, 'h')
  await initChainHome({ home, chainId: 'replay-test' })
  const genesis = await readGenesis(home)
  const rules = createTestOnlyQuorumRules()
  const empty = join(dir, 'empty.sqlite')
  await writeFile(empty, '')
  const garbage = join(dir, 'garbage.sqlite')
  await writeFile(garbage, 'this is not an SQLite file, just some text that is long enough'.repeat(20))
  for (const [path, re] of [
    [join(dir, 'missing.sqlite'), /^no chain database at .*missing\.sqlite: the validator creates it/],
    [empty, /empty\.sqlite holds no block log/],
    [garbage, /cannot read the chain database .*garbage\.sqlite: file is not a database/],
    [dir, /cannot read the chain database/]
  ] as const) {
    const err = (() => {
      try {
        replayBlockLog({ dbPath: path, genesis, rules })
        return undefined
      } catch (e) {
        return e
      }
    })()
    t.ok(err instanceof NoBlockLogError && err instanceof ConfigError, `${path}: NoBlockLogError`)
    t.match((err as Error).message, re)
  }
})

t.test('start on a database that is not SQLite: a ConfigError naming it, and the lock is released', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'quorate-replay-'))
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const home = join(dir, 'h')
  await initChainHome({ home, chainId: 'replay-test' })
  const p = chainPaths(home)
  await writeFile(p.db, 'garbage '.repeat(200))
  await t.rejects(startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules() }), {
    name: 'ConfigError',
    message: new RegExp(`cannot open the chain database ${p.db}: file is not a database`)
  })
  await t.rejects(access(join(p.data, 'validator.pid')), 'no stale validator lock left behind')
})
