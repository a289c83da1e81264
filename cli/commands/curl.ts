// `quorate curl URL` — a request to one node's URL (https://host:port/path), checked like
// `quorate request`: the node is found by the node id in the certificate it presents, its record
// and QC are verified through the light client, and its TLS key is pinned before the request.
import type { Argv, CommandModule } from 'yargs'
import type { GlobalArgs } from '../output.ts'
import {
  CHECKS_HELP,
  openClient,
  printResponse,
  requestOptions,
  withClientOptions,
  type ClientArgs
} from './request.ts'

interface CurlArgs extends ClientArgs {
  url: string
}

const curl: CommandModule<GlobalArgs, CurlArgs> = {
  command: 'curl <url>',
  describe: "send a request to one node's https URL after checking that node (certificate → node id → chain)",
  builder: y =>
    withClientOptions(y)
      .positional('url', { type: 'string', demandOption: true, describe: 'https://host:port/path of a node' })
      .example('$0 curl https://127.0.0.1:9460/app/hello/ --genesis chain/config/genesis.json', '')
      .epilogue(
        `${CHECKS_HELP.replace('(request only)', '(not checked by curl: the URL names the route)')}\nThe node is identified by the node id extension of the certificate it presents (docs/tls.md); a certificate naming no node, or a node the chain does not certify, is refused.`
      ) as Argv<CurlArgs>,
  handler: async argv => {
    const o = await requestOptions(argv)
    const { client, close } = await openClient(argv)
    try {
      printResponse(argv, await client.requestUrl(argv.url, o))
    } finally {
      close()
    }
  }
}

export default [curl]
