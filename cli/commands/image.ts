// `quorate image publish|serve|list|inspect|revoke` — tenant images: content into the node's IPFS
// store (<home>/ipfs, the directory the agent serves from), digest + CID on chain.
import type { Argv, CommandModule } from 'yargs'
import { join } from 'node:path'
import Docker from 'dockerode'
import { createImageStore, type ImageStore } from '../../containers/store.ts'
import { publishImage, imageSourceStream } from '../../containers/publish.ts'
import { inspectImageTar } from '../../containers/image-tar.ts'
import { chainImagePublisher, pickImage, type ChainImageQueries } from '../../containers/chain-registry.ts'
import { CID } from 'multiformats/cid'
import { stat } from 'node:fs/promises'
import { IMAGE_NAME_RE } from '../../chain/bodies.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { checkInputFile, FileInputError } from '../../encoding/files.ts'
import { emit, progress, type GlobalArgs } from '../output.ts'
import {
  client,
  defaultHome,
  loadSigner,
  sendAndReport,
  withHome,
  withRpc,
  withSigner,
  type HomeArgs,
  type SignArgs
} from './chain.ts'

export const ipfsDir = (argv: HomeArgs & { ipfsDir?: string }): string =>
  argv.ipfsDir ?? join(argv.home ?? defaultHome(), 'ipfs')

const exists = async (path: string): Promise<boolean> =>
  await stat(path).then(
    () => true,
    () => false
  )

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`
}

/** Progress lines at most every 500 ms (stderr). */
function throttled(
  argv: GlobalArgs,
  fmt: (bytes: number, total?: number) => string
): (bytes: number, total?: number) => void {
  let last = 0
  return (bytes, total) => {
    const now = Date.now()
    if (now - last < 500 && bytes !== total) return
    last = now
    progress(argv, fmt(bytes, total))
  }
}

async function openStore(argv: HomeArgs & { ipfsDir?: string }, listen: string[] = []): Promise<ImageStore> {
  return await createImageStore({ dir: ipfsDir(argv), listen })
}

interface PublishArgs extends SignArgs {
  source: string
  name: string
  chain?: boolean
  serve?: boolean
  ipfsDir?: string
  listen?: string
}
const publish: CommandModule<GlobalArgs, PublishArgs> = {
  command: 'publish <source>',
  describe:
    'add a Docker image (local image name/ID, or a `docker save` tar) to the IPFS store and record image.publish on chain',
  builder: y =>
    withSigner(y)
      .positional('source', {
        type: 'string',
        demandOption: true,
        describe: 'local Docker image (saved by ID) or path of a docker save archive'
      })
      .option('name', { type: 'string', demandOption: true, describe: 'image name on chain (a-z 0-9 . _ / : -)' })
      .option('chain', {
        type: 'boolean',
        default: true,
        describe: 'record image.publish on chain (--no-chain: only add to the store)'
      })
      .option('serve', { type: 'boolean', describe: 'stay running and serve the content to peers until interrupted' })
      .option('listen', {
        type: 'string',
        default: '/ip4/127.0.0.1/tcp/0',
        describe: 'libp2p listen address with --serve'
      })
      .option('ipfs-dir', {
        type: 'string',
        describe: 'IPFS store directory (default <home>/ipfs)'
      }) as unknown as Argv<PublishArgs>,
  handler: async argv => {
    // A path must be a regular file (docker save archives are large: no size limit); anything
    // else that exists is refused before the store opens or anything is sent.
    if (await exists(argv.source)) await checkInputFile(argv.source, { label: 'image archive', maxBytes: Infinity })
    else if (/^[./~]/.test(argv.source)) throw new FileInputError(`image archive: ${argv.source}: no such file`)
    const store = await openStore(argv, argv.serve === true ? [argv.listen ?? '/ip4/127.0.0.1/tcp/0'] : [])
    try {
      let publisher: ReturnType<typeof chainImagePublisher> | undefined
      let c: ReturnType<typeof client> | undefined
      if (argv.chain !== false) {
        const key = await loadSigner(argv)
        c = client(argv)
        const cc = c
        publisher = chainImagePublisher(
          async body => await cc.send('image.publish', body, key, { wait: argv.sync === true ? 'sync' : 'commit' })
        )
      }
      const show = throttled(
        argv,
        (b, t) => `read ${mb(b)}${t !== undefined ? ` of ${mb(t)} (${Math.round((100 * b) / t)}%)` : ''}`
      )
      const r = await publishImage(store, publisher, {
        source: argv.source,
        name: argv.name,
        docker: new Docker(),
        onProgress: p => {
          if (p.phase === 'read') show(p.bytes, p.total)
          else progress(argv, 'recording image.publish on chain…')
        }
      }).finally(() => {
        c?.close()
      })
      emit(
        argv,
        { ...r, providers: argv.serve === true ? store.multiaddrs() : undefined },
        `${argv.chain !== false ? 'published' : 'added'} ${r.name}\n  digest ${r.digest}\n  cid    ${r.cid}\n  size   ${mb(r.size)}${r.txHash !== undefined ? `\n  tx     ${r.txHash} at height ${r.height ?? '?'}` : ''}`
      )
      if (argv.serve === true) {
        progress(argv, `serving ${r.cid} at:\n  ${store.multiaddrs().join('\n  ')}\n(interrupt to stop)`)
        await new Promise<void>(resolve => {
          process.once('SIGINT', resolve)
          process.once('SIGTERM', resolve)
        })
      }
    } finally {
      await store.stop()
    }
  }
}

interface ServeArgs extends HomeArgs {
  ipfsDir?: string
  listen?: string[]
}
/**
 * `image serve`: the store's content to peers until interrupted, without publishing anything —
 * how an image published from a home no agent uses (or from a machine that went away and came
 * back) gets a provider again. Deployments name it with `quorate deploy … --provider <multiaddr>`.
 */
const serve: CommandModule<GlobalArgs, ServeArgs> = {
  command: 'serve',
  describe:
    'serve what the local IPFS store holds to peers until interrupted (give a printed multiaddr to `deploy --provider`)',
  builder: y =>
    withHome(y)
      .option('listen', {
        type: 'string',
        array: true,
        default: ['/ip4/127.0.0.1/tcp/0'],
        describe: 'libp2p listen multiaddr (repeatable; tcp/0 = any free port)'
      })
      .option('ipfs-dir', {
        type: 'string',
        describe: 'IPFS store directory (default <home>/ipfs)'
      })
      .example('$0 image serve --home ./pub', 'serve the images published from ./pub')
      .epilog(
        'An agent serves its own <home>/ipfs to peers on its libp2p host, and agents look for images at every registered node: publishing with the --home of a running agent gives the image its first provider. Otherwise run `image serve` and deploy with --provider <multiaddr>.'
      ) as unknown as Argv<ServeArgs>,
  handler: async argv => {
    const dir = ipfsDir(argv)
    if (!(await exists(dir)))
      throw new InvalidInputError(`${dir}: no IPFS store here; add an image first (quorate image publish … --home)`)
    const store = await createImageStore({ dir, listen: argv.listen ?? ['/ip4/127.0.0.1/tcp/0'] })
    try {
      const items = await store.list()
      const addrs = store.multiaddrs()
      emit(
        argv,
        { dir, peerId: store.peerId, multiaddrs: addrs, images: items },
        `serving ${items.length} image${items.length === 1 ? '' : 's'} from ${dir} at:\n  ${addrs.join('\n  ')}${items.map(i => `\n  ${i.cid}  ${i.size !== undefined ? mb(i.size) : '?'}  ${i.imageId ?? ''}`).join('')}\n(interrupt to stop; deploy with --provider ${addrs[0] ?? '<multiaddr>'})`
      )
      await new Promise<void>(resolve => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
    } finally {
      await store.stop()
    }
  }
}

interface ListArgs extends HomeArgs {
  name?: string
  rpc?: string
  ipfsDir?: string
}
const list: CommandModule<GlobalArgs, ListArgs> = {
  command: 'list',
  describe: 'images held in the local IPFS store; with --name, the chain records of that name',
  builder: y =>
    withRpc(withHome(y))
      .option('name', { type: 'string', describe: 'list the chain records of this image name' })
      .option('ipfs-dir', {
        type: 'string',
        describe: 'IPFS store directory (default <home>/ipfs)'
      }) as unknown as Argv<ListArgs>,
  handler: async argv => {
    if (argv.name !== undefined) {
      const c = client(argv)
      try {
        const recs = await (c satisfies ChainImageQueries).images({ name: argv.name })
        const current = pickImage(recs)
        const latest = Math.max(...recs.map(x => x.height))
        const rows = recs.map(r => ({
          name: r.name,
          digest: r.digest,
          cid: r.cid,
          size: r.size,
          height: r.height,
          revoked: r.revokedAt !== undefined,
          current: r.digest === current?.digest && r.height === latest
        }))
        emit(
          argv,
          { images: rows },
          rows.length === 0
            ? `no image named ${argv.name} on chain`
            : rows
                .map(
                  r =>
                    `${r.current ? '*' : ' '} ${r.name} ${r.digest} ${r.cid} ${mb(r.size)} height ${r.height}${r.revoked ? ' REVOKED' : ''}`
                )
                .join('\n')
        )
      } finally {
        c.close()
      }
      return
    }
    const store = await openStore(argv)
    try {
      const items = await store.list()
      emit(
        argv,
        { dir: ipfsDir(argv), images: items },
        items.length === 0
          ? `no images in ${ipfsDir(argv)}`
          : items.map(i => `${i.cid}  ${i.size !== undefined ? mb(i.size) : '?'}  ${i.imageId ?? ''}`).join('\n')
      )
    } finally {
      await store.stop()
    }
  }
}

interface InspectArgs extends HomeArgs {
  target: string
  rpc?: string
}
const inspect: CommandModule<GlobalArgs, InspectArgs> = {
  command: 'inspect <target>',
  describe: 'what an archive is (path: image ID, tags, layers — nothing published), or an image name on chain',
  builder: y =>
    withRpc(withHome(y)).positional('target', {
      type: 'string',
      demandOption: true,
      describe: 'path of a docker save archive, or an image name'
    }) as unknown as Argv<InspectArgs>,
  handler: async argv => {
    if (await exists(argv.target)) {
      await checkInputFile(argv.target, { label: 'image archive', maxBytes: Infinity })
      const { stream, total } = await imageSourceStream(argv.target)
      const info = await inspectImageTar(stream)
      emit(
        argv,
        { file: argv.target, ...info },
        `${argv.target}\n  image ID ${info.imageId}\n  config   ${info.configPath}\n  layers   ${info.layers.length}\n  tags     ${info.repoTags.join(', ') || '(none)'}\n  size     ${mb(total ?? info.size)}`
      )
      return
    }
    // Not a file: an image name, or a path that names nothing.
    if (!IMAGE_NAME_RE.test(argv.target))
      throw new FileInputError(`image archive: ${argv.target}: no such file (and not an image name: a-z 0-9 . _ / : -)`)
    const c = client(argv)
    try {
      const recs = await (c satisfies ChainImageQueries).images({ name: argv.target })
      const cur = pickImage(recs)
      if (cur === undefined)
        throw new InvalidInputError(
          `${argv.target}: no such file, and no image of that name is published on the chain at ${c.url.origin}`
        )
      let cidInfo = ''
      try {
        const cid = CID.parse(cur.cid)
        cidInfo = `CIDv${cid.version}, codec 0x${cid.code.toString(16)}`
      } catch {
        cidInfo = 'unparseable CID'
      }
      emit(
        argv,
        { ...cur, published: true, versions: recs.length },
        `${cur.name}${cur.revoked ? ' (REVOKED)' : ''}\n  digest ${cur.digest}\n  cid    ${cur.cid} (${cidInfo})\n  size   ${mb(cur.size)}\n  versions on chain: ${recs.length}`
      )
    } finally {
      c.close()
    }
  }
}

interface RevokeArgs extends SignArgs {
  name: string
  digest: string
}
const revoke: CommandModule<GlobalArgs, RevokeArgs> = {
  command: 'revoke',
  describe: 'revoke a published image digest; nodes refuse to run it from then on',
  builder: y =>
    withSigner(y)
      .option('name', { type: 'string', demandOption: true, describe: 'image name on chain' })
      .option('digest', {
        type: 'string',
        demandOption: true,
        describe: 'sha256:… image ID'
      }) as unknown as Argv<RevokeArgs>,
  handler: async argv => {
    await sendAndReport(
      argv,
      'image.revoke',
      { name: argv.name, digest: argv.digest },
      `revoked ${argv.name} ${argv.digest}`,
      { name: argv.name, digest: argv.digest }
    )
  }
}

const image: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'image <command>',
  describe: 'tenant images: IPFS content + digest on chain',
  builder: y => y.command([publish, serve, list, inspect, revoke] as unknown as CommandModule[]).demandCommand(1),
  handler: () => {}
}

export default [image]
