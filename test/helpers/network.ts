// A small attested network on 127.0.0.1 for integration tests and benchmarks: an embedded chain
// whose genesis verifiers are in-process agents (each with its own swtpm replaying the OVMF
// measured boot), a TPM vendor's EK CA, firmware and OS reference values from that boot.
// Everything it starts, stop() stops.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSwtpm, createSwtpmCa, type Swtpm } from './swtpm.ts'
import { createQuorumRules } from '../../attestation/quorum/index.ts'
import {
  initChainHome,
  startEmbeddedValidator,
  ChainClient,
  generateChainKey,
  saveChainKey,
  type EmbeddedValidator,
  type ChainKey
} from '../../chain/index.ts'
import { Agent } from '../../agent/agent.ts'
import { loadConfig } from '../../agent/config.ts'
import { silentLogger, type Logger } from '../../encoding/log.ts'
import { FIXTURE, freePort, publishTrustAnchors, PLATFORM, OS_NAME as OS_IMAGE } from '../../cli/demo.ts'

export { PLATFORM, OS_NAME as OS_IMAGE } from '../../cli/demo.ts'

export interface TestNetwork {
  readonly work: string
  readonly chain: ChainClient
  readonly chainUrl: string
  readonly bootLog: Uint8Array
  readonly verifiers: Agent[]
  /** One more manufactured swtpm from the same TPM vendor CA (for the node under test). */
  newSwtpm(): Promise<Swtpm>
  /** Stops the chain (it can be started again on the same port with restartChain). */
  stopChain(): Promise<void>
  restartChain(): Promise<void>
  stop(): Promise<void>
}

export async function startTestNetwork(
  opts: { verifiers?: number; k?: number; logger?: (name: string) => Logger } = {}
): Promise<TestNetwork> {
  const n = opts.verifiers ?? 3
  const k = opts.k ?? 7
  const work = mkdtempSync(join(tmpdir(), 'quorate-net-'))
  const swtpms: Swtpm[] = []
  const agents: Agent[] = []
  const bootLog = new Uint8Array(readFileSync(FIXTURE))
  const ca = createSwtpmCa(join(work, 'tpm-ca'))
  const chainHome = join(work, 'chain')
  const keys: ChainKey[] = await Promise.all(Array.from({ length: n }, async () => await generateChainKey()))
  await initChainHome({ home: chainHome, chainId: 'test-net', verifiers: keys.map(x => x.peerId), committeeSize: k })
  const rpcPort = await freePort()
  const start = async (): Promise<EmbeddedValidator> =>
    await startEmbeddedValidator({
      home: chainHome,
      rpc: `127.0.0.1:${rpcPort}`,
      rules: createQuorumRules({ k }),
      blockIntervalMs: 20,
      emptyBlockIntervalMs: 200
    })
  let validator: EmbeddedValidator | undefined = await start()
  const chain = new ChainClient({ url: validator.url })
  const stop = async (): Promise<void> => {
    await Promise.all(
      agents.map(async a => {
        await a.stop().catch(() => {})
      })
    )
    await validator?.stop().catch(() => {})
    chain.close()
    await Promise.all(
      swtpms.map(async s => {
        await s.stop()
      })
    )
    rmSync(work, { recursive: true, force: true })
  }
  try {
    await publishTrustAnchors(chain, { caPems: ca.pems, bootLog })
    for (let i = 0; i < n; i++) {
      const sw = await startSwtpm({ caDir: ca.dir })
      swtpms.push(sw)
      const home = join(work, `verifier-${i}`)
      await saveChainKey(join(home, 'node.key'), keys[i])
      const a = new Agent({
        config: loadConfig({
          env: {},
          flags: {
            home,
            tcti: sw.tcti,
            chainRpc: validator.url,
            httpListen: `127.0.0.1:${await freePort()}`,
            platform: PLATFORM,
            osImage: OS_IMAGE,
            roundTimeoutMs: 5000,
            committeeSize: k
          }
        }),
        logger: opts.logger?.(`verifier-${i}`) ?? silentLogger(),
        simulatedBootLog: bootLog
      })
      agents.push(a)
      await a.start()
    }
  } catch (err) {
    await stop()
    throw err
  }
  return {
    work,
    chain,
    chainUrl: validator.url,
    bootLog,
    verifiers: agents,
    newSwtpm: async () => {
      const s = await startSwtpm({ caDir: ca.dir })
      swtpms.push(s)
      return s
    },
    stopChain: async () => {
      await validator?.stop()
      validator = undefined
    },
    restartChain: async () => {
      validator = await start()
    },
    stop
  }
}
