// `quorate app publish|list|inspect|revoke|usage` — serverless apps (issue 13): the image goes
// into the local IPFS store (<home>/ipfs, which the agent serves to peers) like `image publish`,
// and app.publish records digest + CID + size with how to run it (port, args, env, limits, idle
// timeout). Certified nodes start the current version on its first request.
import { chainAppPublisher } from '../../containers/chain-registry.ts'
import type { Argv, CommandModule } from 'yargs'
import { createImageStore } from '../../containers/store.ts'
import { publishImage } from '../../containers/publish.ts'
import { NAME_RE, VERSION_RE, parseBody } from '../../chain/bodies.ts'
import { publicKeyToPeerId } from '../../chain/keys.ts'
import type { AppPublishBody, AppRecord, AppVersionRecord } from '../../chain/types.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { checkInputFile } from '../../encoding/files.ts'
import { emit, progress, type GlobalArgs } from '../output.ts'
import {
  client,
  loadSigner,
  sendAndReport,
  withHome,
  withRpc,
  withSigner,
  type RpcArgs,
  type SignArgs
} from './chain.ts'
import { ipfsDir } from './image.ts'

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  ki: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gi: 1024 ** 3,
  gib: 1024 ** 3
}

/** "256MiB", "256m", "1.5GiB", "4194304" → bytes (k/m/g and KiB/MiB/GiB are binary, KB/MB/GB decimal). */
export function parseBytes(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(s.trim())
  const unit = m === null ? undefined : UNITS[m[2].toLowerCase()]
  if (m === null || unit === undefined)
    throw new InvalidInputError(`${what}: ${JSON.stringify(s)} is not a size (e.g. 256MiB, 512m, 1GiB)`)
  const n = Math.round(Number(m[1]) * unit)
  if (!Number.isSafeInteger(n)) throw new InvalidInputError(`${what}: ${s} is too large`)
  return n
}

const DURATION: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
/** "5m", "30s", "1h", "250ms", "1.5h" → ms (a bare number is ms). */
export function parseDuration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(s.trim())
  if (m === null) throw new InvalidInputError(`${what}: ${JSON.stringify(s)} is not a duration (e.g. 30s, 5m, 1h)`)
  return Math.round(Number(m[1]) * DURATION[m[2] ?? 'ms'])
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`
const mib = (n: number): string => `${(n / 1024 ** 2).toFixed(n % 1024 ** 2 === 0 ? 0 : 1)} MiB`
const peer = (owner: Uint8Array): string => publicKeyToPeerId(owner)
const dur = (ms: number): string =>
  ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`
/** A valid CID to check a body before the archive is read (the real one replaces it). */
const PLACEHOLDER_CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

function describeVersion(v: AppVersionRecord, current: boolean): string {
  const cpus = v.limits.nanoCpus === undefined ? '' : `, ${v.limits.nanoCpus / 1e9} CPU`
  return [
    `${current ? '*' : ' '} ${v.version}${v.revokedAt !== undefined ? ` REVOKED at height ${v.revokedAt}` : ''} (height ${v.height})`,
    `    digest ${v.digest}`,
    `    cid    ${v.cid} (${mb(v.size)})`,
    `    port ${v.port}, health ${v.healthPath ?? '/'}, idle ${dur(v.idleTimeoutMs)}, memory ${mib(v.limits.memoryBytes)}, pids ${v.limits.pids}${cpus}`,
    ...(v.args !== undefined && v.args.length > 0 ? [`    args   ${JSON.stringify(v.args)}`] : []),
    ...(v.env !== undefined && v.env.length > 0 ? [`    env    ${v.env.map(e => e.split('=')[0]).join(', ')}`] : [])
  ].join('\n')
}

interface PublishArgs extends SignArgs {
  name: string
  tar: string
  version: string
  port: number
  arg?: string[]
  env?: string[]
  memory: string
  pids: number
  cpus?: number
  idle: string
  health?: string
  ipfsDir?: string
}
const publish: CommandModule<GlobalArgs, PublishArgs> = {
  command: 'publish <name>',
  describe:
    'add an app image (a `docker save` archive) to the IPFS store and record app.publish: the new version becomes current',
  builder: y =>
    withSigner(y.version(false))
      .positional('name', { type: 'string', demandOption: true, describe: 'app name (a-z 0-9 . _ -)' })
      .option('tar', { type: 'string', demandOption: true, describe: 'docker save archive of the image (saved by ID)' })
      .option('version', {
        type: 'string',
        demandOption: true,
        describe: 'version (A-Z a-z 0-9 . _ + -), never reused'
      })
      .option('port', { type: 'number', demandOption: true, describe: 'TCP port the container answers on (127.0.0.1)' })
      .option('arg', {
        type: 'string',
        array: true,
        describe: 'container argument (repeat; after the entrypoint; --arg=-x for one starting with -)'
      })
      .option('env', { type: 'string', array: true, describe: 'environment variable KEY=value (repeat)' })
      .option('memory', { type: 'string', default: '256MiB', describe: 'memory limit (4MiB–64GiB)' })
      .option('pids', { type: 'number', default: 128, describe: 'process limit (1–65536)' })
      .option('cpus', { type: 'number', describe: 'CPU limit (e.g. 0.5; default unlimited)' })
      .option('idle', { type: 'string', default: '5m', describe: 'stop after this long without requests (1s–24h)' })
      .option('health', { type: 'string', describe: 'path probed until the app answers (default /)' })
      .option('ipfs-dir', { type: 'string', describe: 'IPFS store directory (default <home>/ipfs)' })
      .example(
        '$0 app publish hello --tar hello.tar --version 1 --port 8080 --memory 64MiB --idle 30s',
        'publish version 1 of app "hello"'
      ) as unknown as Argv<PublishArgs>,
  handler: async argv => {
    if (!Number.isSafeInteger(argv.port)) throw new InvalidInputError('--port: expected a TCP port 1–65535')
    if (!Number.isSafeInteger(argv.pids)) throw new InvalidInputError('--pids: expected an integer 1–65536')
    if (argv.cpus !== undefined && !(argv.cpus > 0 && argv.cpus <= 1024))
      throw new InvalidInputError('--cpus: expected a number of CPUs > 0 (e.g. 0.5)')
    const spec: Omit<AppPublishBody, 'digest' | 'cid' | 'size'> = {
      name: argv.name,
      version: argv.version,
      port: argv.port,
      limits: {
        memoryBytes: parseBytes(argv.memory, '--memory'),
        pids: argv.pids,
        ...(argv.cpus === undefined ? {} : { nanoCpus: Math.round(argv.cpus * 1e9) })
      },
      idleTimeoutMs: parseDuration(argv.idle, '--idle'),
      ...(argv.arg === undefined ? {} : { args: argv.arg.map(String) }),
      ...(argv.env === undefined ? {} : { env: argv.env.map(String) }),
      ...(argv.health === undefined ? {} : { healthPath: argv.health })
    }
    // the chain's own rules, before the archive is read or anything is sent
    parseBody('app.publish', {
      ...spec,
      digest: `sha256:${'0'.repeat(64)}`,
      cid: PLACEHOLDER_CID,
      size: 1
    } as unknown as Parameters<typeof parseBody>[1])
    await checkInputFile(argv.tar, { label: 'app image archive', maxBytes: Infinity })
    const key = await loadSigner(argv)
    const c = client(argv)
    const store = await createImageStore({ dir: ipfsDir(argv), listen: [] })
    try {
      let body: AppPublishBody | undefined
      const r = await publishImage(
        store,
        chainAppPublisher(spec, async (b: AppPublishBody) => {
          body = b
          progress(argv, `recording app.publish ${argv.name} ${argv.version} on chain…`)
          return await c.send('app.publish', b, key, { wait: argv.sync === true ? 'sync' : 'commit' })
        }),
        { source: argv.tar, name: argv.name }
      )
      emit(
        argv,
        { ...body, txHash: r.txHash, height: r.height, signer: key.peerId },
        `published app ${argv.name} version ${argv.version}\n  digest ${r.digest}\n  cid    ${r.cid}\n  size   ${mb(r.size)}\n  tx     ${r.txHash ?? '?'}${(r.height ?? 0) > 0 ? ` at height ${r.height}` : ' (in the mempool)'}`
      )
    } finally {
      c.close()
      await store.stop()
    }
  }
}

const list: CommandModule<GlobalArgs, RpcArgs> = {
  command: 'list',
  describe: 'apps on chain with their current version',
  builder: y => withRpc(withHome(y)) as unknown as Argv<RpcArgs>,
  handler: async argv => {
    const c = client(argv)
    try {
      const apps = await c.apps()
      const rows = apps.map(a => ({
        name: a.record.name,
        owner: peer(a.record.owner),
        current: a.record.current,
        versions: a.record.versions.length,
        revoked: a.record.revokedAt !== undefined,
        digest: a.current?.digest,
        port: a.current?.port
      }))
      emit(argv, { apps: rows }, () =>
        rows.length === 0
          ? 'no apps on chain'
          : rows
              .map(
                r =>
                  `${r.name}  ${r.revoked ? 'REVOKED' : r.current === undefined ? '(no version in force)' : `version ${r.current}  ${r.digest ?? ''}`}  (${r.versions} version${r.versions === 1 ? '' : 's'})`
              )
              .join('\n')
      )
    } finally {
      c.close()
    }
  }
}

interface NameArgs extends RpcArgs {
  name: string
}
const withAppName = (y: Argv<GlobalArgs>): Argv<NameArgs> =>
  withRpc(withHome(y)).positional('name', {
    type: 'string',
    demandOption: true,
    describe: 'app name'
  }) as unknown as Argv<NameArgs>

/** What `get` finds for the app named on the command line; a clear error when the chain has no such app. */
async function findApp<T>(
  argv: NameArgs,
  c: ReturnType<typeof client>,
  get: (name: string) => Promise<T | undefined>
): Promise<T> {
  const found = await get(appName(argv.name))
  if (found === undefined) throw new InvalidInputError(`no app named ${argv.name} on the chain at ${c.url.origin}`)
  return found
}

const appName = (n: string): string => {
  if (!NAME_RE.test(n)) throw new InvalidInputError(`${JSON.stringify(n)} is not an app name (a-z 0-9 . _ -)`)
  return n
}

const inspect: CommandModule<GlobalArgs, NameArgs> = {
  command: 'inspect <name>',
  describe: 'an app: owner, current version and every version with how it runs',
  builder: withAppName,
  handler: async argv => {
    const c = client(argv)
    try {
      const v = await findApp(argv, c, async n => await c.app(n))
      const r: AppRecord = v.record
      emit(
        argv,
        { ...v, owner: peer(r.owner) },
        () =>
          `${r.name}${r.revokedAt !== undefined ? ` REVOKED at height ${r.revokedAt}` : ''}\n  owner   ${peer(r.owner)}\n  current ${r.current ?? '(none)'}\n  versions (newest last):\n${v.versions.map(x => describeVersion(x, x.version === r.current)).join('\n')}`
      )
    } finally {
      c.close()
    }
  }
}

interface RevokeArgs extends SignArgs {
  name: string
  version?: string
}
const revoke: CommandModule<GlobalArgs, RevokeArgs> = {
  command: 'revoke <name>',
  describe:
    'revoke one version (the newest version still in force becomes current) or, without --version, the whole app for good',
  builder: y =>
    withSigner(y.version(false))
      .positional('name', { type: 'string', demandOption: true, describe: 'app name' })
      .option('version', { type: 'string', describe: 'revoke only this version' }) as unknown as Argv<RevokeArgs>,
  handler: async argv => {
    appName(argv.name)
    if (argv.version !== undefined && !VERSION_RE.test(argv.version))
      throw new InvalidInputError(`--version: ${JSON.stringify(argv.version)} is not a version`)
    await sendAndReport(
      argv,
      'app.revoke',
      argv.version === undefined ? { name: argv.name } : { name: argv.name, version: argv.version },
      argv.version === undefined ? `revoked app ${argv.name} (every version)` : `revoked ${argv.name} ${argv.version}`,
      { name: argv.name, ...(argv.version === undefined ? {} : { version: argv.version }) }
    )
  }
}

const usage: CommandModule<GlobalArgs, NameArgs> = {
  command: 'usage <name>',
  describe: "an app's usage as nodes recorded it on chain (usage.record): totals, per node, recent periods",
  builder: withAppName,
  handler: async argv => {
    const c = client(argv)
    try {
      const u = await findApp(argv, c, async n => await c.appUsage(n))
      const t = u.totals
      const iso = (ms: number | undefined): string => (ms === undefined ? '?' : new Date(ms).toISOString())
      emit(argv, u, () =>
        [
          `${t.app}: ${t.requests} requests, ${t.bytesIn} bytes in, ${t.bytesOut} bytes out — ${t.records} record${t.records === 1 ? '' : 's'} from ${t.nodes} node${t.nodes === 1 ? '' : 's'}${t.records > 0 ? `, ${iso(t.from)} – ${iso(t.to)}` : ''}`,
          ...u.nodes.map(n => `  ${n.nodeId}  ${n.requests} requests  ${n.bytesIn} in  ${n.bytesOut} out`),
          ...(u.recent.length > 0 ? ['recent:'] : []),
          ...u.recent.map(
            r => `  ${iso(r.from)} – ${iso(r.to)}  ${r.nodeId}  ${r.requests} requests (height ${r.height})`
          )
        ].join('\n')
      )
    } finally {
      c.close()
    }
  }
}

const app: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'app <command>',
  describe: 'serverless apps: published on chain, started by certified nodes on their first request',
  builder: y => y.command([publish, list, inspect, revoke, usage] as unknown as CommandModule[]).demandCommand(1),
  handler: () => {}
}

export default [app]
