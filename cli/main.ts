// quorate — the command line. Thin commands over the modules below (cli → agent → …).
// Each file in cli/commands exports a default array of yargs command modules.
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import type { CommandModule } from 'yargs'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join, dirname } from 'node:path'
import { CliExit, describeError } from './output.ts'

const dir = join(dirname(fileURLToPath(import.meta.url)), 'commands')

/**
 * Which file defines each top-level command, so a command loads only its own module (each
 * pulls in libp2p, Helia, dockerode… and loading all costs ~1.8 s of CPU). Anything not listed
 * (--help, typos) loads every file; test/cli/main.test.ts checks this table is complete.
 */
export const COMMAND_FILES: Readonly<Record<string, string>> = {
  chain: 'chain.ts',
  keys: 'keys.ts',
  vendor: 'vendor.ts',
  os: 'os.ts',
  tpm: 'tpm.ts',
  evidence: 'evidence.ts',
  eventlog: 'eventlog.ts',
  image: 'image.ts',
  app: 'app.ts',
  deploy: 'containers.ts',
  undeploy: 'containers.ts',
  containers: 'containers.ts',
  demo: 'demo.ts',
  explorer: 'explorer.ts',
  verify: 'verify.ts',
  node: 'verify.ts',
  sim: 'sim.ts',
  up: 'up.ts',
  down: 'up.ts',
  request: 'request.ts',
  curl: 'curl.ts'
}

export async function loadCommands(first?: string): Promise<CommandModule[]> {
  const out: CommandModule[] = []
  const only = first !== undefined && !first.startsWith('-') ? COMMAND_FILES[first] : undefined
  for (const f of readdirSync(dir)
    .filter(f => f.endsWith('.ts'))
    .sort()) {
    if (only !== undefined && f !== only) continue
    const mod = (await import(join(dir, f))) as { default?: CommandModule[] }
    if (Array.isArray(mod.default)) out.push(...mod.default)
  }
  return out
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const jsonMode = argv.includes('--json')
  let cli = yargs(hideBin(process.argv))
    .scriptName('quorate')
    .usage(
      '$0 <command> [options]\n\nAttestation-gated worker node agent: measures a node into its TPM, gets it certified\nby a randomly drawn committee of peers under a > 2/3 quorum recorded on chain, and only\nthen runs tenant containers fetched from IPFS and checked against the chain.'
    )
    .option('json', { type: 'boolean', describe: 'print one JSON object per result on stdout', global: true })
    .strict()
    .demandCommand(1, 'name a command; see --help')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .epilogue(
      'Environment: QUORATE_TCTI (TPM, e.g. swtpm:host=127.0.0.1,port=2321), QUORATE_HOME, QUORATE_CHAIN_RPC, QUORATE_LOG (debug namespaces, e.g. quorate:*)'
    )
  for (const c of await loadCommands(argv[0])) cli = cli.command(c)
  try {
    await cli
      .fail((msg, err) => {
        throw err ?? new CliExit(2, msg)
      })
      .parseAsync()
  } catch (err) {
    if (err instanceof CliExit) {
      if (err.message !== '') process.stderr.write(`quorate: ${err.message}\n`)
      process.exitCode = err.exitCode
      return
    }
    const d = describeError(err)
    if (jsonMode) process.stdout.write(JSON.stringify({ error: d.json }) + '\n')
    process.stderr.write(`quorate: ${d.message}\n`)
    process.exitCode = 1
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main()
