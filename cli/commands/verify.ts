// `quorate verify PEER` — one-off remote attestation of another node by this machine: evidence
// challenge (fresh nonce), credential challenge (MakeCredential → the node's ActivateCredential),
// appraisal against the chain's reference values. Exit 0 only if it passes.
// `quorate node status [NODE]` — a node's certification state on chain (committee, expiry, QC).
import type { CommandModule } from 'yargs'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createP2PHost, verifyPeer, tpmMakeCredential, chainAppraiser, dialTarget } from '../../agent/p2p/index.ts'
import { bitmapIndices, decodeCertificate } from '../../attestation/quorum/index.ts'
import { toHex } from '../../encoding/bytes.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { CliExit, emit, progress, type GlobalArgs } from '../output.ts'
import { client, defaultHome, withHome, withRpc, type HomeArgs, type RpcArgs } from './chain.ts'
import { start } from '../node-start.ts'
import { loadKeyFile } from '../inputs.ts'

interface VerifyArgs extends RpcArgs {
  peer: string
  timeout?: number
}

interface ClaimView {
  ok: boolean
  failures: readonly string[]
}

function claimLines(detail: unknown, failed: readonly string[]): string[] {
  const status = (detail as { status?: Record<string, ClaimView> } | undefined)?.status
  if (status === undefined) return failed.map(c => `  ${c.padEnd(11)} FAIL`)
  return Object.entries(status).map(
    ([c, s]) =>
      `  ${c.padEnd(11)} ${s.ok ? 'ok' : 'FAIL'}${s.ok ? '' : '\n' + s.failures.map(f => `      - ${f}`).join('\n')}`
  )
}

const verify: CommandModule<GlobalArgs, VerifyArgs> = {
  command: 'verify <peer>',
  describe:
    'attest another node now: credential + evidence challenge, appraisal against the chain (exit 0 only if it passes)',
  builder: y =>
    withRpc(y)
      .positional('peer', {
        type: 'string',
        demandOption: true,
        describe: 'multiaddr ending in /p2p/<node id>, or a registered node id'
      })
      .option('timeout', { type: 'number', describe: 'per-step timeout in ms (default 10000)' }),
  handler: async argv => {
    const c = client(argv)
    // The verifier needs no identity of its own: an ephemeral libp2p key, dial-only.
    const host = await createP2PHost({ privateKey: await generateKeyPair('Ed25519'), listen: [] })
    try {
      const target = dialTarget(argv.peer)
      const nodeId = target.peerId.toString()
      progress(argv, `looking up ${nodeId} on the chain at ${c.url.origin}…`)
      const view = await c.node(nodeId)
      const record = view?.record
      if (record === undefined)
        progress(argv, `warning: ${nodeId} is not registered on chain; checking the EK and AK it presents`)
      if (!argv.peer.startsWith('/') && (record?.addrs.length ?? 0) === 0)
        throw new InvalidInputError(`node ${nodeId} has no registered addresses; give a multiaddr instead`)
      const r = await verifyPeer({
        host,
        peer: argv.peer,
        addrs: record?.addrs,
        makeCredential: tpmMakeCredential(),
        appraise: chainAppraiser(c),
        registered:
          record !== undefined ? { ekCertificate: record.ekCertificate, akPublic: record.akPublic } : undefined,
        timeoutMs: argv.timeout,
        onProgress: m => {
          progress(argv, m)
        }
      })
      const result = {
        nodeId: r.nodeId,
        pass: r.pass,
        failed: r.failed,
        credentialActivated: r.credentialActivated,
        registered: record !== undefined,
        appraisalDigest: toHex(r.appraisal.digest),
        appraisal: r.appraisal.detail
      }
      emit(argv, result, () =>
        [
          `${r.nodeId}: ${r.pass ? 'PASS' : 'FAIL'}${record === undefined ? ' (not registered on chain)' : ''}`,
          `  credential  ${r.credentialActivated ? 'activated (AK bound to the EK)' : 'NOT activated'}`,
          ...claimLines(r.appraisal.detail, r.failed)
        ].join('\n')
      )
      if (!r.pass) throw new CliExit(1)
    } finally {
      await host.stop()
      c.close()
    }
  }
}

interface StatusArgs extends HomeArgs, RpcArgs {
  node?: string
}

const status: CommandModule<GlobalArgs, StatusArgs> = {
  command: 'status [node]',
  describe: "a node's certification on chain: state, committee, expiry (default: this machine's node)",
  builder: y =>
    withRpc(withHome(y)).positional('node', {
      type: 'string',
      describe: 'node id (default: the key in <home>/node.key)'
    }),
  handler: async argv => {
    let nodeId = argv.node
    if (nodeId === undefined) {
      const path = join(argv.home ?? defaultHome(), 'node.key')
      try {
        nodeId = (await loadKeyFile(path, 'node key')).peerId
      } catch (err) {
        throw new InvalidInputError(
          `name a node, or create this machine's node key first (${path}): ${(err as Error).message}`,
          { cause: err }
        )
      }
    }
    const c = client(argv)
    try {
      const view = await c.node(nodeId)
      if (view === undefined) throw new InvalidInputError(`node ${nodeId} is not known to the chain at ${c.url.origin}`)
      const qc = await c.qc(nodeId)
      let verdicts: { member: string; pass: boolean; failed: readonly string[] }[] | undefined
      // why the last recorded round failed the node: the claims its quorum signed as failed
      let failedClaims: readonly string[] | undefined
      if (qc !== undefined) {
        try {
          // QC v3: one verdict, signed by the members its bitmap names (positions in the committee)
          const c3 = decodeCertificate(qc.qc)
          verdicts = bitmapIndices(c3.signers).map(i => ({
            member: qc.committee[i] ?? `#${i}`,
            pass: c3.outcome === 'pass',
            failed: c3.failedClaims
          }))
          failedClaims = c3.failedClaims
        } catch {
          verdicts = undefined
        }
      }
      const rec = view.record
      const result = {
        nodeId,
        status: view.effective,
        certified: view.certified,
        genesisVerifier: view.genesisVerifier,
        round: rec?.round,
        expiresAt: rec?.expiresAt !== undefined ? new Date(rec.expiresAt).toISOString() : undefined,
        reason: rec?.statusReason,
        committee: rec?.committee,
        securityBits: rec?.securityBits,
        cooldown: view.cooldown,
        addrs: rec?.addrs,
        platform: rec?.platform,
        os: rec?.os,
        pendingRequest:
          view.request !== undefined && view.request.recordedAt === undefined && view.request.closedAt === undefined
            ? { round: view.request.round, height: view.request.height, deadline: view.request.deadline }
            : undefined,
        qc:
          qc !== undefined
            ? { round: qc.round, outcome: qc.outcome, failedClaims, height: qc.height, bytes: qc.qc.length, verdicts }
            : undefined
      }
      emit(argv, result, () =>
        [
          `${nodeId}: ${view.effective}${view.genesisVerifier ? ' (genesis verifier)' : ''}`,
          ...(rec?.round !== undefined ? [`  round       ${rec.round}`] : []),
          ...(result.expiresAt !== undefined ? [`  expires     ${result.expiresAt}`] : []),
          ...(rec?.statusReason !== undefined ? [`  reason      ${rec.statusReason}`] : []),
          ...(rec?.committee !== undefined ? [`  committee   ${rec.committee.join('\n              ')}`] : []),
          ...(rec?.securityBits !== undefined
            ? [
                `  security    ${rec.securityBits} bits (committee of ${rec.committee?.length ?? '?'}; forging a round takes ≥ 2^${rec.securityBits} tries at the genesis adversary fraction)`
              ]
            : []),
          ...(view.cooldown !== undefined
            ? [
                `  cooldown    ${view.cooldown.failures} failed round(s); next request allowed at height ${view.cooldown.allowedAt}`
              ]
            : []),
          ...(qc !== undefined
            ? [
                `  QC          ${qc.outcome} at height ${qc.height} (round ${qc.round}), ${verdicts?.length ?? '?'} verdicts, ${qc.qc.length} bytes`
              ]
            : []),
          ...(qc !== undefined && qc.outcome !== 'pass'
            ? [
                `  failed      ${failedClaims === undefined ? '(the QC does not decode)' : failedClaims.length === 0 ? '(no claim named)' : failedClaims.join(', ')}`
              ]
            : []),
          ...(result.pendingRequest !== undefined
            ? [`  pending     round ${result.pendingRequest.round} requested at height ${result.pendingRequest.height}`]
            : [])
        ].join('\n')
      )
    } finally {
      c.close()
    }
  }
}

const node: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'node <command>',
  describe: 'the node agent: run it (node start), its certification on chain (node status)',
  builder: y => y.command(status).command(start).demandCommand(1, 'name a node command: start, status'),
  handler: () => {}
}

export default [verify, node] as CommandModule[]
