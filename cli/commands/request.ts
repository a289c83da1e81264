// `quorate request APP [PATH]` — send a request to a serverless app on the fastest certified node,
// after checking that node the way docs/clients.md describes (light client from genesis, QC
// re-verified, TLS key pinned), failing over to the next node. `quorate curl URL` (curl.ts) uses
// the same options for one node's URL.
import type { Argv, CommandModule } from 'yargs'
import { existsSync } from 'node:fs'
import { createClient, lightChainView, type Client, type ClientResponse } from '../../agent/client/index.ts'
import { LightClient } from '../../chain/light/index.ts'
import { chainPaths } from '../../chain/index.ts'
import { ConfigError, InvalidInputError } from '../../encoding/errors.ts'
import { readInputFile, readInputText } from '../../encoding/files.ts'
import { emit, progress, CliExit, type GlobalArgs } from '../output.ts'
import { defaultHome, defaultRpc, withHome, withRpc } from './chain.ts'

export const CHECKS_HELP = `Before any byte of the request goes to a node, the client checks, in this order:
  1. the chain: every value below is proven (Merkle proof) against a block header the light client
     verified from the genesis file (validator signatures), from --rpc or any --extra-rpc —
     no RPC is trusted, and a header older than a minute is refused as stale;
  2. the app is published on chain and not revoked (request only);
  3. the node's certification: status certified, unexpired at the verified block time, not
     revoked or failed, an https endpoint and the TLS key hash its round bound;
  4. its quorum certificate, re-verified here: the round's committee (in its seed's draw order)
     and each member's BLS key from chain, > 2/3 signers, the aggregate signature;
  5. the TLS handshake: sha256 of the server's public key (SPKI) must be the certified one — a
     server with another key is disconnected before the request is written.
A node that fails a check is skipped (the reason is listed); one that cannot be reached or answers
5xx/503 is failed over to the next. Nothing here can be turned off. See docs/clients.md.`

export interface ClientArgs extends GlobalArgs {
  rpc?: string
  extraRpc?: string[]
  genesis?: string
  home?: string
  data?: string
  method?: string
  header?: string[]
  timeout?: number
  minSecurityBits?: number
}

export function withClientOptions<T>(y: Argv<T>): Argv<T & ClientArgs> {
  return withRpc(withHome(y))
    .option('extra-rpc', {
      type: 'string',
      array: true,
      describe:
        'more chain RPC endpoints for the light client, repeatable; none is trusted, an answer from any of them must verify'
    })
    .option('genesis', {
      type: 'string',
      describe:
        "the chain's genesis.json, the client's only trust root (default: QUORATE_GENESIS, then <home>/config/genesis.json)"
    })
    .option('data', { alias: 'd', type: 'string', describe: 'request body; @FILE reads a file' })
    .option('method', { alias: 'X', type: 'string', describe: 'HTTP method (default GET, or POST with --data)' })
    .option('header', { alias: 'H', type: 'string', array: true, describe: 'request header "name: value", repeatable' })
    .option('timeout', { type: 'number', describe: 'per-attempt timeout in ms (default 30000)' })
    .option('min-security-bits', {
      type: 'number',
      describe:
        "refuse nodes whose certifying committee reached fewer bits of security (the record's securityBits; default 0)"
    }) as Argv<T & ClientArgs>
}

const MAX_BODY = 16 << 20

async function genesisOf(argv: ClientArgs): Promise<Record<string, unknown>> {
  const path = argv.genesis ?? process.env.QUORATE_GENESIS ?? chainPaths(argv.home ?? defaultHome()).genesis
  if (argv.genesis === undefined && process.env.QUORATE_GENESIS === undefined && !existsSync(path))
    throw new ConfigError(
      `no genesis file at ${path}: a client trusts only the chain's genesis — give it with --genesis FILE (a chain's is <chain home>/config/genesis.json; \`quorate up\` keeps it at <dir>/chain/config/genesis.json)`
    )
  const text = await readInputText(path, { label: '--genesis', maxBytes: 4 << 20 })
  try {
    return JSON.parse(text) as Record<string, unknown>
  } catch (err) {
    throw new InvalidInputError(`--genesis ${path} is not JSON: ${(err as Error).message}`)
  }
}

export async function requestOptions(
  argv: ClientArgs
): Promise<{ method?: string; body?: Uint8Array; headers: Record<string, string> }> {
  const headers: Record<string, string> = Object.create(null) as Record<string, string>
  for (const h of argv.header ?? []) {
    const i = h.indexOf(':')
    const name = i < 0 ? '' : h.slice(0, i).trim().toLowerCase()
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]{1,128}$/.test(name))
      throw new InvalidInputError(`--header ${JSON.stringify(h.slice(0, 80))} is not "name: value"`)
    if (name === 'host' || name === 'content-length')
      throw new InvalidInputError(`--header ${name} is set by the client itself`)
    headers[name] = h.slice(i + 1).trim()
  }
  let body: Uint8Array | undefined
  if (argv.data !== undefined)
    body = argv.data.startsWith('@')
      ? await readInputFile(argv.data.slice(1), { label: '--data @FILE', maxBytes: MAX_BODY })
      : new TextEncoder().encode(argv.data)
  return {
    ...(argv.method === undefined ? {} : { method: argv.method.toUpperCase() }),
    ...(body === undefined ? {} : { body }),
    headers
  }
}

/** A client over a light client from the genesis, with every --rpc. */
export async function openClient(argv: ClientArgs): Promise<{ client: Client; close: () => void }> {
  const rpcs = [argv.rpc ?? defaultRpc(), ...(argv.extraRpc ?? [])]
  for (const r of rpcs)
    if (!/^https?:\/\//.test(r))
      throw new InvalidInputError(`RPC ${JSON.stringify(r.slice(0, 80))} is not an http(s) URL`)
  const lc = LightClient.create({ genesis: await genesisOf(argv), rpcs })
  const view = lightChainView(lc, rpcs)
  const client = createClient({
    chain: view,
    ...(argv.timeout === undefined ? {} : { timeoutMs: argv.timeout }),
    ...(argv.minSecurityBits === undefined ? {} : { minSecurityBits: argv.minSecurityBits })
  })
  progress(argv, `checking nodes with ${view.describe}…`)
  return {
    client,
    close: () => {
      client.close()
      view.close?.()
      lc.close()
    }
  }
}

/** Prints a response: the body on stdout (JSON: status, node, attempts, headers, body), the route on stderr. */
export function printResponse(argv: GlobalArgs, r: ClientResponse): void {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(r.body)
  if (argv.json === true)
    emit(argv, { status: r.status, node: r.node, attempts: r.attempts, headers: r.headers, body: text }, '')
  else {
    progress(
      argv,
      `HTTP ${r.status} from node ${r.node} (${r.attempts.length} attempt(s): ${r.attempts.map(a => `${a.outcome}${a.status === undefined ? '' : ` ${a.status}`}`).join(', ')})`
    )
    process.stdout.write(r.body)
  }
  if (r.status >= 400) throw new CliExit(1)
}

interface RequestArgs extends ClientArgs {
  app: string
  path?: string
}

const request: CommandModule<GlobalArgs, RequestArgs> = {
  command: 'request <app> [path]',
  describe: 'send a request to a serverless app on the fastest certified node, checked before sending',
  builder: y =>
    withClientOptions(y)
      .positional('app', { type: 'string', demandOption: true, describe: 'app name as published on chain' })
      .positional('path', { type: 'string', describe: 'path under the app, with any query (default /)' })
      .example('$0 request hello /greet --rpc http://127.0.0.1:26657 --genesis chain/config/genesis.json', '')
      .example('$0 request echo / -d @body.json -H "content-type: application/json" --json', '')
      .epilogue(CHECKS_HELP) as Argv<RequestArgs>,
  handler: async argv => {
    const path = argv.path ?? '/'
    const o = await requestOptions(argv)
    const { client, close } = await openClient(argv)
    try {
      printResponse(argv, await client.request(argv.app, { path: path.startsWith('/') ? path : `/${path}`, ...o }))
    } finally {
      close()
    }
  }
}

export default [request]
