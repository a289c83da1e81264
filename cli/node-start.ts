// `quorate node start` — the long-running agent (agent/agent.ts), with config in layers:
// defaults → --config FILE (JSON) → QUORATE_* environment → flags. SIGTERM/SIGINT stop it
// gracefully: stop accepting, abort the round in flight, stop tenants per policy, close the TPM.
import type { CommandModule } from 'yargs'
import { Agent } from '../agent/agent.ts'
import { loadConfig, type AgentConfig } from '../agent/config.ts'
import { createLogger } from '../encoding/log.ts'
import type { GlobalArgs } from './output.ts'
import { stat } from 'node:fs/promises'
import { checkInputFile } from '../encoding/files.ts'
import { FILE_LIMITS } from './inputs.ts'
import { withHome, withRpc } from './commands/chain.ts'

interface StartArgs extends GlobalArgs {
  config?: string
  home?: string
  tcti?: string
  rpc?: string
  chain?: string
  listen?: string[]
  http?: string
  https?: string
  committeeSize?: number
  k?: number
  platform?: string
  os?: string
  'simulate-boot'?: string
  eventlog?: string
  'event-log'?: string
}

export const start: CommandModule<GlobalArgs, StartArgs> = {
  command: 'start',
  describe: 'run the agent: measure, register, get certified by a committee, serve tenants (until SIGTERM)',
  // --home and --rpc as every command has them (same defaults, through the agent's config layers)
  builder: y =>
    withRpc(withHome(y))
      .option('config', { type: 'string', describe: 'JSON config file (also QUORATE_CONFIG)' })
      .option('tcti', {
        type: 'string',
        describe: 'TPM TCTI, e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321'
      })
      .option('chain', { type: 'string', hidden: true, deprecated: 'use --rpc' })
      .option('listen', { type: 'string', array: true, describe: 'libp2p listen multiaddrs' })
      .option('bulk-port', {
        type: 'number',
        describe:
          'TCP port of the bulk channel that sends images to peers, on the libp2p hosts (default 0: ephemeral; fix it to forward it through a firewall/NAT)'
      })
      .option('keep-images', {
        type: 'boolean',
        describe:
          'also keep fetched tenant images in the IPFS store, to serve them to peers (default false: Docker holds them)'
      })
      .option('network', {
        type: 'string',
        describe: 'tenant networking: isolated (default), host, none or a Docker network name'
      })
      .option('http', { type: 'string', describe: 'local HTTP API host:port (status, metrics, tenant proxy)' })
      .option('https', {
        type: 'string',
        describe: 'HTTPS endpoint host:port for clients (TLS 1.3, the attested key; default: --http port + 1000)'
      })
      .option('committee-size', { type: 'number', describe: 'committee size k (as chain init --committee-size)' })
      .option('k', { type: 'number', hidden: true, deprecated: 'use --committee-size' })
      .option('platform', {
        type: 'string',
        describe: 'firmware platform as "<vendor>/<platform>" (reference-value lookup)'
      })
      .option('os', { type: 'string', describe: 'OS image name (reference-value lookup)' })
      .option('eventlog', {
        type: 'string',
        describe: 'firmware event log path (default /sys/kernel/security/tpm0/binary_bios_measurements)'
      })
      .option('event-log', { type: 'string', hidden: true, deprecated: 'use --eventlog' })
      .option('simulate-boot', {
        type: 'string',
        describe: 'SOFTWARE TPM ONLY: replay this recorded TCG event log into the TPM at start'
      })
      .epilogue(
        'Status: GET http://<http>/status (JSON), GET /metrics (Prometheus); tenants: /tenant/<image>/…'
      ) as never,
  handler: async argv => {
    const flags: Partial<Record<keyof AgentConfig, unknown>> = {
      home: argv.home,
      tcti: argv.tcti,
      chainRpc: argv.rpc ?? argv.chain,
      listen: argv.listen,
      bulkPort: argv['bulk-port'],
      containerNetwork: argv.network,
      keepImages: argv['keep-images'],
      httpListen: argv.http,
      httpsListen: argv.https,
      committeeSize: argv.committeeSize ?? argv.k,
      platform: argv.platform,
      osImage: argv.os,
      eventLogPath: argv.eventlog ?? argv['event-log'],
      simulateBoot: argv['simulate-boot']
    }
    // Files named by the operator are checked before the agent reads them (STYLE.md §17); the
    // firmware log may be absent (the agent then says so), but not a FIFO or a device.
    const configFile = argv.config ?? process.env.QUORATE_CONFIG
    if (configFile !== undefined && configFile !== '')
      await checkInputFile(configFile, { label: '--config', maxBytes: FILE_LIMITS.config })
    const config = loadConfig({ file: argv.config, flags })
    if (config.simulateBoot !== '')
      await checkInputFile(config.simulateBoot, { label: '--simulate-boot', maxBytes: FILE_LIMITS.eventLog })
    if (
      await stat(config.eventLogPath).then(
        () => true,
        () => false
      )
    )
      await checkInputFile(config.eventLogPath, { label: '--eventlog', maxBytes: FILE_LIMITS.eventLog })
    const logger = createLogger('quorate:agent')
    const agent = new Agent({
      config,
      logger,
      onEvent: e => {
        if (e.type === 'warning') process.stderr.write(`quorate: WARNING: ${e.message}\n`)
        if (e.type === 'state' && argv.json !== true)
          process.stderr.write(`quorate: state ${e.state.kind}${'reason' in e.state ? ` (${e.state.reason})` : ''}\n`)
      }
    })
    let stopping = false
    const stop = (sig: string): void => {
      if (stopping) return
      stopping = true
      process.stderr.write(`quorate: ${sig}: stopping\n`)
      void agent.stop().then(
        () => {
          process.exit(0)
        },
        (err: unknown) => {
          process.stderr.write(`quorate: stop failed: ${String(err)}\n`)
          process.exit(1)
        }
      )
    }
    process.on('SIGTERM', () => {
      stop('SIGTERM')
    })
    process.on('SIGINT', () => {
      stop('SIGINT')
    })
    try {
      await agent.start()
    } catch (err) {
      // start() closed what it had opened; should a library still hold a handle, the failed
      // agent ends anyway once the error is printed (exit 1)
      setTimeout(() => {
        process.exit(1)
      }, 5000).unref()
      throw err
    }
    const s = agent.status()
    if (argv.json === true)
      process.stdout.write(JSON.stringify({ started: true, nodeId: s.nodeId, http: s.http, p2p: s.p2p }) + '\n')
    else process.stdout.write(`quorate agent ${s.nodeId}\n  http ${s.http ?? ''}\n  p2p  ${s.p2p.join(' ')}\n`)
    // runs until a signal
    await new Promise(() => {})
  }
}
