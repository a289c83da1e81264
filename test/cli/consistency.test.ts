// The CLI agrees with itself (issue 12): every command that has a home has the same --home (same
// description, no default of its own: QUORATE_HOME, then ~/.quorate — the agent's default too);
// every command that talks to the chain takes its URL as --rpc (same description and default as
// the agent's chainRpc); an event log file is --eventlog; every required flag is described.
// Each command's builder runs on a fresh yargs and its options are read back and parsed.
import t from 'tap'
import { homedir } from 'node:os'
import { join } from 'node:path'
import yargs, { type Argv, type CommandModule } from 'yargs'
import { loadCommands } from '../../cli/main.ts'
import { defaultHome, defaultRpc, withHome, withRpc } from '../../cli/commands/chain.ts'
import { loadConfig } from '../../agent/config.ts'

interface Leaf {
  path: string
  y: Argv
  argv: string[]
}

/** The options yargs holds after a builder ran (its public getOptions(), plus descriptions). */
function options(y: Argv): {
  keys: string[]
  demanded: string[]
  hidden: Set<string>
  defaults: Record<string, unknown>
  describe: Record<string, string | undefined>
} {
  const o = (y as unknown as { getOptions: () => unknown }).getOptions() as {
    key: Record<string, boolean>
    demandedOptions: Record<string, unknown>
    hiddenOptions: string[]
    default: Record<string, unknown>
  }
  // descriptions are kept by yargs' usage instance (no public getter)
  const usage = (
    y as unknown as {
      getInternalMethods: () => {
        getUsageInstance: () => { getDescriptions: () => Record<string, string | undefined> }
      }
    }
  )
    .getInternalMethods()
    .getUsageInstance()
  return {
    keys: Object.keys(o.key),
    demanded: Object.keys(o.demandedOptions),
    hidden: new Set(o.hiddenOptions),
    defaults: o.default,
    describe: usage.getDescriptions()
  }
}

/** Runs a command module's builder on a fresh yargs over `argv`; returns its leaves (subcommands recursed). */
function leaves(c: CommandModule, prefix: string, argv: string[]): Leaf[] {
  const path = `${prefix} ${String(c.command).split(' ')[0]}`.trim()
  // parse errors (a required flag missing) are no concern here: no exit, no output
  const y = yargs(argv)
    .exitProcess(false)
    .fail(() => {})
  const subs: CommandModule[] = []
  const orig = y.command.bind(y)
  // group commands register their subcommands in the builder: collect them instead
  ;(y as unknown as { command: (x: unknown) => Argv }).command = (x: unknown) => {
    subs.push(...((Array.isArray(x) ? x : [x]) as CommandModule[]))
    return y
  }
  if (typeof c.builder === 'function') c.builder(y as never)
  else if (c.builder !== undefined) y.options(c.builder)
  ;(y as unknown as { command: typeof orig }).command = orig
  if (subs.length > 0) return subs.flatMap(s => leaves(s, path, argv))
  return [{ path, y, argv }]
}

const commands = await loadCommands()
const all = commands.flatMap(c => leaves(c, 'quorate', []))
const HOME = options(withHome(yargs([]))).describe.home
const RPC = options(withRpc(yargs([]))).describe.rpc

t.test('the commands were found', async t => {
  t.ok(all.length > 30, `${all.length} commands`)
  for (const p of [
    'quorate chain query',
    'quorate node start',
    'quorate vendor publish-firmware',
    'quorate tpm simulate',
    'quorate deploy'
  ])
    t.ok(
      all.some(l => l.path === p),
      p
    )
})

t.test("one --home: same description, no default of its own, the agent's default too", async t => {
  let n = 0
  for (const l of all) {
    const o = options(l.y)
    if (!o.keys.includes('home')) continue
    n++
    t.equal(o.describe.home, HOME, `${l.path}: --home described as everywhere`)
    t.equal(o.defaults.home, undefined, `${l.path}: --home has no default of its own`)
  }
  t.ok(n > 15, `${n} commands have --home`)
  const saved = process.env.QUORATE_HOME
  t.teardown(() => {
    if (saved === undefined) delete process.env.QUORATE_HOME
    else process.env.QUORATE_HOME = saved
  })
  delete process.env.QUORATE_HOME
  t.equal(defaultHome(), join(homedir(), '.quorate'))
  t.equal(loadConfig({ env: {} }).home, defaultHome(), 'the agent (node start) defaults to the same home')
  process.env.QUORATE_HOME = '/srv/q'
  t.equal(defaultHome(), '/srv/q')
  t.equal(loadConfig({ env: { QUORATE_HOME: '/srv/q' } }).home, '/srv/q', 'and follows QUORATE_HOME the same way')
})

t.test("one --rpc: the chain's URL wherever a command talks to the chain", async t => {
  let n = 0
  for (const l of all) {
    const o = options(l.y)
    const visible = o.keys.filter(k => !o.hidden.has(k))
    // an option described as the chain's RPC URL is --rpc, under no other name
    for (const k of visible)
      if (k !== 'rpc' && /rpc url/i.test(o.describe[k] ?? ''))
        t.fail(`${l.path}: --${k} is the chain RPC URL; call it --rpc`)
    // signing commands send transactions: they talk to the chain
    if (visible.includes('key') && visible.includes('sync'))
      t.ok(visible.includes('rpc'), `${l.path}: sends transactions, so takes --rpc`)
    if (!visible.includes('rpc')) continue
    n++
    t.equal(o.describe.rpc, RPC, `${l.path}: --rpc described as everywhere`)
    t.equal(o.defaults.rpc, undefined, `${l.path}: --rpc has no default of its own`)
  }
  t.ok(n > 15, `${n} commands take --rpc`)
  const saved = process.env.QUORATE_CHAIN_RPC
  t.teardown(() => {
    if (saved === undefined) delete process.env.QUORATE_CHAIN_RPC
    else process.env.QUORATE_CHAIN_RPC = saved
  })
  delete process.env.QUORATE_CHAIN_RPC
  t.equal(loadConfig({ env: {} }).chainRpc, defaultRpc(), 'the agent defaults to the same chain URL')
})

t.test('--home and --rpc parse to what was given, and to nothing when not (the shared defaults apply)', async t => {
  for (const c of commands) {
    for (const l of leaves(c, 'quorate', ['--home', '/h', '--rpc', 'http://127.0.0.1:1'])) {
      const o = options(l.y)
      const a = (await l.y.parse()) as Record<string, unknown>
      if (o.keys.includes('home')) t.equal(a.home, '/h', `${l.path} --home /h`)
      if (o.keys.includes('rpc') && !o.hidden.has('rpc')) t.equal(a.rpc, 'http://127.0.0.1:1', `${l.path} --rpc URL`)
    }
    for (const l of leaves(c, 'quorate', [])) {
      const a = (await l.y.parse()) as Record<string, unknown>
      t.equal(a.home, undefined, `${l.path}: no --home → the shared default`)
      t.equal(a.rpc, undefined, `${l.path}: no --rpc → the shared default`)
    }
  }
})

t.test('an event log file is --eventlog', async t => {
  for (const l of all) {
    const o = options(l.y)
    const visible = o.keys.filter(k => !o.hidden.has(k))
    t.notOk(visible.includes('event-log'), `${l.path}: no --event-log`)
    for (const k of visible)
      if (
        /event ?log/i.test(o.describe[k] ?? '') &&
        k !== 'eventlog' &&
        k !== 'file' &&
        k !== 'simulate-boot' &&
        k !== 'pcrs' &&
        k !== 'golden'
      )
        t.fail(`${l.path}: --${k} (${o.describe[k]}) looks like an event log option; call it --eventlog`)
  }
})

t.test('every required flag and argument is described', async t => {
  for (const l of all) {
    const o = options(l.y)
    for (const k of o.demanded) t.ok((o.describe[k] ?? '') !== '', `${l.path}: --${k} is described`)
  }
})
