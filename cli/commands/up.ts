// `quorate up [--dir D] [--agents N]` — a persistent local network on this machine (cli/localnet.ts):
// the chain, N agents each with its own INSECURE software TPM, vendors and reference values from the
// bundled measured boot, and demo/hello published; returns once every node is certified.
// `quorate down [--dir D]` stops what it started. Re-running `up` resumes the same network.
import type { Argv, CommandModule } from 'yargs'
import { join } from 'node:path'
import { SOFTWARE_TPM_WARNING } from '../../attestation/tpm/simulator.ts'
import {
  DEFAULT_AGENTS,
  MIN_AGENTS,
  LOCALNET_IMAGE,
  down as stopNetwork,
  up as startNetwork,
  type LocalnetStatus
} from '../localnet.ts'
import { emit, progress, type GlobalArgs } from '../output.ts'
import { defaultHome } from './chain.ts'

const defaultDir = (): string => join(defaultHome(), 'localnet')

interface DirArgs extends GlobalArgs {
  dir?: string
}
interface UpArgs extends DirArgs {
  agents?: number
  timeout: number
}

function withDir<T>(y: Argv<T>): Argv<T & { dir: string | undefined }> {
  return y.option('dir', {
    type: 'string',
    describe: 'directory of the network (default: <QUORATE_HOME, then ~/.quorate>/localnet)'
  })
}

function human(s: LocalnetStatus): string {
  const w = Math.max(...s.nodes.map(n => n.name.length))
  const deployOn = s.nodes[s.nodes.length - 1]
  return [
    `local network in ${s.dir}${s.started.length === 0 ? ' (already running; nothing started)' : ''}`,
    `  chain  ${s.rpc}  (pid ${s.chain.pid ?? '?'}, log ${s.chain.log})`,
    ...s.nodes.map(
      n =>
        `  ${n.name.padEnd(w)}  ${n.http}  ${n.certified ? 'certified' : n.state}  ${n.nodeId}  (pid ${n.pid ?? '-'}, log ${n.log})`
    ),
    '',
    `run ${LOCALNET_IMAGE} on ${deployOn.name} and ask it through the node's proxy:`,
    `  quorate deploy ${LOCALNET_IMAGE} --home ${join(s.dir, deployOn.name)} --port 8080 -- -p 127.0.0.1:8080`,
    `  curl ${deployOn.http}/tenant/${encodeURIComponent(LOCALNET_IMAGE)}/`,
    `the chain for other commands: --rpc ${s.rpc}; stop everything: quorate down --dir ${s.dir}`
  ].join('\n')
}

const up: CommandModule<GlobalArgs, UpArgs> = {
  command: 'up',
  describe:
    'start (or resume) a local network in a directory: chain, agents with INSECURE software TPMs, vendors, reference values, demo/hello; returns once every node is certified',
  builder: y =>
    withDir(y)
      .option('agents', {
        type: 'number',
        describe: `agents on a new network (default ${DEFAULT_AGENTS}, at least ${MIN_AGENTS}: the genesis verifiers); more than the network has adds agents`
      })
      .option('timeout', {
        type: 'number',
        default: 180,
        describe: 'seconds to wait for every node to be certified'
      }) as unknown as Argv<UpArgs>,
  handler: async argv => {
    const dir = argv.dir ?? defaultDir()
    process.stderr.write(`WARNING: ${SOFTWARE_TPM_WARNING}\n`)
    const s = await startNetwork({
      dir,
      agents: argv.agents,
      timeoutMs: argv.timeout * 1000,
      say: line => {
        process.stderr.write(line + '\n')
      }
    })
    emit(
      argv,
      {
        dir: s.dir,
        rpc: s.rpc,
        nodes: s.nodes.map(n => ({
          name: n.name,
          nodeId: n.nodeId,
          http: n.http,
          certified: n.certified,
          pid: n.pid,
          log: n.log
        })),
        chain: s.chain,
        started: s.started
      },
      () => human(s)
    )
  }
}

const down: CommandModule<GlobalArgs, DirArgs> = {
  command: 'down',
  describe:
    'stop every process `quorate up` started in the directory (agents, their TPMs, the chain); state stays for the next up',
  builder: y => withDir(y) as unknown as Argv<DirArgs>,
  handler: async argv => {
    const dir = argv.dir ?? defaultDir()
    const r = await stopNetwork(dir, line => {
      progress(argv, line)
    })
    emit(
      argv,
      r,
      r.stopped.length === 0
        ? `nothing was running in ${dir}`
        : `stopped ${r.stopped.length} processes in ${dir}; \`quorate up --dir ${dir}\` resumes the network`
    )
  }
}

export default [up, down]
