// The real Appraise for committee members and `quorate verify`: reference values from the chain
// (for the node's registered platform and OS), attestation/appraise, and a summary for the verdict.
import { appraise, CLAIMS, type AppraisalPolicy } from '../../attestation/appraise.ts'
import { parseContainerLog } from '../../attestation/containerlog.ts'
import { prepareReferences, type PreparedReferences } from '../../attestation/refs.ts'
import type { ChainClient } from '../../chain/client.ts'
import { fromHex } from '../../encoding/bytes.ts'
import type { Appraise } from './member.ts'

export interface ChainAppraiserOptions {
  /** Policy beyond nonce and credential activation (PCR sets, allowed images, event log rule). */
  readonly policy?: Omit<AppraisalPolicy, 'nonce' | 'credentialActivated'>
  /** How long fetched reference values are reused (default 10 s). */
  readonly refsTtlMs?: number
}

export function chainAppraiser(
  client: Pick<ChainClient, 'referenceValues' | 'node'> & Partial<Pick<ChainClient, 'images' | 'appVersion'>>,
  opts: ChainAppraiserOptions = {}
): Appraise {
  const ttl = opts.refsTtlMs ?? 10_000
  const cache = new Map<string, { at: number; refs: PreparedReferences }>()
  const imageCache = new Map<string, { at: number; allowed: boolean }>()
  // Images in the node's container log are allowed when published on chain and not revoked. A
  // serverless app's launch is logged as "<name>@<version>" (agent/apps.ts; image names have no
  // '@'): allowed when that version is published with this digest, even if revoked since —
  // otherwise a publisher could revoke an app to decertify every node that ever served it (nodes
  // stop a revoked app at once; that code is part of the measured OS).
  const allowedImages = async (log: string | undefined): Promise<string[]> => {
    if (log === undefined || client.images === undefined) return []
    let launches: Array<{ digest: string; app?: { name: string; version: string } }>
    try {
      const seen = new Map<string, { digest: string; app?: { name: string; version: string } }>()
      for (const e of parseContainerLog(log)) {
        const at = e.record.image.indexOf('@')
        const app = at > 0 ? { name: e.record.image.slice(0, at), version: e.record.image.slice(at + 1) } : undefined
        seen.set(`${e.record.digest} ${e.record.image}`, { digest: e.record.digest, app })
      }
      launches = [...seen.values()]
    } catch {
      return []
    } // appraise reports the malformed log
    const out: string[] = []
    for (const { digest, app } of launches.slice(0, 64)) {
      const key = app === undefined ? digest : `${digest} ${app.name}@${app.version}`
      let hit = imageCache.get(key)
      if (hit === undefined || Date.now() - hit.at > ttl) {
        let allowed: boolean
        if (app !== undefined) {
          // a name or version the chain rejects as malformed is simply not an allowed launch
          const v = await client.appVersion?.(app.name, app.version).catch(() => undefined)
          allowed = v !== undefined && v.digest === digest
        } else allowed = (await client.images({ digest })).some(r => r.revokedAt === undefined)
        hit = { at: Date.now(), allowed }
        imageCache.set(key, hit)
      }
      if (hit.allowed) out.push(digest)
    }
    return out
  }
  return async (evidence, ctx) => {
    const rec = (await client.node(ctx.nodeId))?.record
    // a registration names its platform as "<vendor>/<platform>" (chain/types.ts NodeRegisterBody)
    const slash = rec?.platform?.indexOf('/') ?? -1
    const filter =
      rec?.platform !== undefined && slash > 0
        ? { vendor: rec.platform.slice(0, slash), platform: rec.platform.slice(slash + 1), os: rec.os }
        : { vendor: rec?.platform, os: rec?.os }
    const key = JSON.stringify(filter)
    let hit = cache.get(key)
    if (hit === undefined || Date.now() - hit.at > ttl) {
      const r = await client.referenceValues(filter)
      // appraisal reads sha256 reference sets only; others cannot match a sha256 quote anyway
      const sha256Only = <T extends { bank: string }>(xs: readonly T[]): (T & { bank: 'sha256' })[] =>
        xs.filter((x): x is T & { bank: 'sha256' } => x.bank === 'sha256')
      hit = {
        at: Date.now(),
        refs: prepareReferences({ ekCas: r.ekCas, firmware: sha256Only(r.firmware), os: sha256Only(r.os) })
      }
      cache.set(key, hit)
    }
    const images = await allowedImages(evidence.containerLog)
    const a = appraise(evidence, hit.refs, {
      requireCredentialActivation: true,
      ...opts.policy,
      allowedImages: [...(opts.policy?.allowedImages ?? []), ...images],
      nonce: ctx.nonce,
      credentialActivated: ctx.credentialActivated
    })
    return { ok: a.ok, digest: fromHex(a.digest), failed: CLAIMS.filter(c => !a.status[c].ok), detail: a }
  }
}
