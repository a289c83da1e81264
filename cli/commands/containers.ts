// `quorate deploy|undeploy` — what this node runs (node configuration: <home>/deployments.json,
// read by the agent, which launches each entry through the gate once certified). The chain
// decides what MAY run (published, not revoked); the operator decides what this node DOES run.
// `quorate containers ls|logs|stop` — the tenant containers on this host's Docker engine
// (found by the quorate.managed label, so they work whether or not the agent is up).
import type { Argv, CommandModule } from 'yargs'
import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import Docker from 'dockerode'
import { upsertDeployment, removeDeployment, readDeployments } from '../../containers/deployments.ts'
import { demuxDockerLogs, MANAGED_LABEL } from '../../containers/runner.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { emit, type GlobalArgs } from '../output.ts'
import { defaultHome, withHome, type HomeArgs } from './chain.ts'

const deploymentsPath = (argv: HomeArgs): string => join(argv.home ?? defaultHome(), 'deployments.json')

function parseSize(s: string): number {
  const m = /^(\d+)\s*([kmg]?)i?b?$/i.exec(s.trim())
  if (m === null) throw new InvalidInputError(`${s} is not a size (e.g. 256m, 1g)`)
  return Number(m[1]) * ({ '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 } as Record<string, number>)[m[2].toLowerCase()]
}

interface DeployArgs extends HomeArgs {
  name: string
  port: number
  arg?: string[]
  env?: string[]
  provider?: string[]
  memory?: string
  pids?: number
  healthPath?: string
  user?: string
  list?: boolean
}
const deploy: CommandModule<GlobalArgs, DeployArgs> = {
  command: 'deploy [name] [-- args..]',
  describe:
    'run a published image on this node: adds it to <home>/deployments.json; the agent launches it through the gate once certified',
  builder: y =>
    withHome(y)
      .positional('name', { type: 'string', describe: 'image name on chain' })
      .option('port', {
        type: 'number',
        describe: 'port the tenant listens on at 127.0.0.1 (inside its own network namespace when isolated)'
      })
      .option('arg', {
        type: 'string',
        array: true,
        describe: 'container argument (Cmd): --arg=VALUE, repeatable; or put them after --'
      })
      .option('env', { type: 'string', array: true, describe: 'KEY=value; repeatable (only its digest is measured)' })
      .option('provider', {
        type: 'string',
        array: true,
        describe: 'IPFS peer holding the image (multiaddr with /p2p/); repeatable'
      })
      .option('memory', { type: 'string', describe: 'memory limit (e.g. 256m)' })
      .option('pids', { type: 'number', describe: 'process limit' })
      .option('health-path', { type: 'string', describe: 'path probed until the container answers (default /)' })
      .option('user', { type: 'string', describe: 'user[:group] inside the container' })
      .option('list', { type: 'boolean', describe: 'show the deployments instead' }) as unknown as Argv<DeployArgs>,
  handler: async argv => {
    const path = deploymentsPath(argv)
    if (argv.list === true || argv.name === undefined) {
      const list = await readDeployments(path)
      emit(
        argv,
        { path, deployments: list },
        list.length === 0
          ? `no deployments in ${path}`
          : list
              .map(
                d => `${d.image} on 127.0.0.1:${d.port}${d.args !== undefined ? ` args ${JSON.stringify(d.args)}` : ''}`
              )
              .join('\n')
      )
      return
    }
    if (argv.port === undefined)
      throw new InvalidInputError('--port is required: the port the container answers on at 127.0.0.1')
    // Container arguments: --arg=VALUE (repeatable), or everything after `--`.
    const after = argv._.slice(1).map(String)
    const args = [...(argv.arg ?? []), ...after]
    await mkdir(argv.home ?? defaultHome(), { recursive: true })
    const list = await upsertDeployment(path, {
      image: argv.name,
      port: argv.port,
      ...(args.length > 0 ? { args } : {}),
      ...(argv.env !== undefined ? { env: argv.env } : {}),
      ...(argv.provider !== undefined ? { providers: argv.provider } : {}),
      ...(argv.memory !== undefined ? { memoryBytes: parseSize(argv.memory) } : {}),
      ...(argv.pids !== undefined ? { pids: argv.pids } : {}),
      ...(argv.healthPath !== undefined ? { healthPath: argv.healthPath } : {}),
      ...(argv.user !== undefined ? { user: argv.user } : {})
    })
    emit(
      argv,
      { path, deployments: list },
      `deployed ${argv.name} (port ${argv.port}) in ${path}; a running agent applies it within seconds (it re-reads the file every 5 s while certified) and launches it through the gate`
    )
  }
}

interface UndeployArgs extends HomeArgs {
  name: string
}
const undeploy: CommandModule<GlobalArgs, UndeployArgs> = {
  command: 'undeploy <name>',
  describe: 'remove an image from <home>/deployments.json (a running agent stops it within seconds)',
  builder: y => withHome(y).positional('name', { type: 'string', demandOption: true }) as unknown as Argv<UndeployArgs>,
  handler: async argv => {
    const removed = await removeDeployment(deploymentsPath(argv), argv.name)
    emit(
      argv,
      { name: argv.name, removed },
      removed ? `undeployed ${argv.name}; a running agent stops it within seconds` : `${argv.name} was not deployed`
    )
  }
}

interface Row {
  id: string
  name: string
  image: string
  digest: string
  cid: string
  port: string
  state: string
  status: string
}

async function managed(docker: Docker): Promise<Row[]> {
  const list = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${MANAGED_LABEL}=true`] }) })
  return list.map(c => ({
    id: c.Id.slice(0, 12),
    name: (c.Names[0] ?? '').replace(/^\//, ''),
    image: c.Labels['quorate.image'] ?? '',
    digest: c.Labels['quorate.digest'] ?? '',
    cid: c.Labels['quorate.cid'] ?? '',
    port: c.Labels['quorate.port'] ?? '',
    state: c.State,
    status: c.Status
  }))
}

/** The container `target` (id prefix, name or image name) names among `rows`. */
function pick(rows: readonly Row[], target: string): Row {
  const hits = rows.filter(r => r.id.startsWith(target) || r.name === target || r.image === target)
  if (hits.length === 0)
    throw new InvalidInputError(`no tenant container matches ${JSON.stringify(target)} (see quorate containers ls)`)
  if (hits.length > 1 && !hits.every(h => h.image === target))
    throw new InvalidInputError(`${JSON.stringify(target)} matches ${hits.length} containers; use an id`)
  return hits[0]
}

async function resolve(docker: Docker, target: string): Promise<Row> {
  return pick(await managed(docker), target)
}

const ls: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'ls',
  describe: 'tenant containers on this host',
  handler: async argv => {
    const rows = await managed(new Docker())
    emit(
      argv,
      { containers: rows },
      rows.length === 0
        ? 'no tenant containers'
        : rows
            .map(
              r =>
                `${r.id}  ${r.image.padEnd(20)} 127.0.0.1:${r.port.padEnd(6)} ${r.state.padEnd(8)} ${r.digest.slice(0, 19)}  ${r.status}`
            )
            .join('\n')
    )
  }
}

interface LogsArgs extends GlobalArgs {
  target: string
  tail: number
}
const logs: CommandModule<GlobalArgs, LogsArgs> = {
  command: 'logs <target>',
  describe: 'output of a tenant container (id, name or image name)',
  builder: y =>
    y
      .positional('target', { type: 'string', demandOption: true })
      .option('tail', { type: 'number', default: 100 }) as unknown as Argv<LogsArgs>,
  handler: async argv => {
    const docker = new Docker()
    const row = await resolve(docker, argv.target)
    const buf = await docker.getContainer(row.id).logs({ stdout: true, stderr: true, tail: argv.tail, follow: false })
    const text = demuxDockerLogs(buf)
    emit(argv, { id: row.id, image: row.image, logs: text }, text === '' ? '(no output)' : text)
  }
}

const stop: CommandModule<GlobalArgs, LogsArgs> = {
  command: 'stop <target>',
  describe:
    'stop and remove a tenant container (id, name, or image name: all of that image); undeploy it too or the agent relaunches it',
  builder: y => y.positional('target', { type: 'string', demandOption: true }) as unknown as Argv<LogsArgs>,
  handler: async argv => {
    const docker = new Docker()
    const all = await managed(docker) // listed once: pick and the image's other containers
    const first = pick(all, argv.target)
    const rows = all.filter(r => r.id === first.id || (first.image === argv.target && r.image === argv.target))
    for (const r of rows) {
      const c = docker.getContainer(r.id)
      await c.stop({ t: 2 }).catch(() => {})
      await c.remove({ force: true })
    }
    emit(
      argv,
      { stopped: rows.map(r => r.id) },
      `stopped and removed ${rows.map(r => `${r.id} (${r.image})`).join(', ')}`
    )
  }
}

const containers: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'containers <command>',
  describe: 'tenant containers on this host',
  builder: y => y.command([ls, logs, stop] as unknown as CommandModule[]).demandCommand(1),
  handler: () => {}
}

export default [deploy, undeploy, containers]
