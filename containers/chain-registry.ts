// Adapters from the chain client to the gate's narrow interfaces. Structural: any object with
// these query methods works (chain/client's ChainClient does), so containers/ does not depend
// on chain/ at runtime and tests hand in fakes.
import type { CertificationStatus, ImageRecord, ImageRegistry } from './runner.ts'
import type { ImagePublisher } from './publish.ts'

/** The chain queries the gate needs (ChainClient.images / ChainClient.node). */
export interface ChainImageQueries {
  images(q: { name: string }): Promise<
    ReadonlyArray<{
      name: string
      digest: string
      cid: string
      size: number
      height: number
      revokedAt?: number
      publisher?: Uint8Array
    }>
  >
  node(
    nodeId: string
  ): Promise<
    { certified: boolean; effective: string; record?: { expiresAt?: number; statusReason?: string } } | undefined
  >
}

/**
 * The image a name stands for is its most recently published digest. If that one is revoked
 * the name is refused — an older digest is never picked silently (publish a new one instead).
 */
export function pickImage(
  records: ReadonlyArray<{
    name: string
    digest: string
    cid: string
    size: number
    height: number
    revokedAt?: number
  }>
): ImageRecord | undefined {
  let best: (typeof records)[number] | undefined
  for (const r of records) if (best === undefined || r.height > best.height) best = r
  if (best === undefined) return undefined
  return { name: best.name, digest: best.digest, cid: best.cid, size: best.size, revoked: best.revokedAt !== undefined }
}

export function chainImageRegistry(chain: ChainImageQueries): ImageRegistry {
  return {
    getImage: async name => pickImage(await chain.images({ name })),
    isCertified: async (nodeId): Promise<CertificationStatus> => {
      const v = await chain.node(nodeId)
      if (v === undefined) return { certified: false, reason: 'node is not registered on chain' }
      if (!v.certified)
        return {
          certified: false,
          reason: `node status on chain is ${v.effective}${v.record?.statusReason !== undefined ? ` (${v.record.statusReason})` : ''}`
        }
      return { certified: true, expiresAt: v.record?.expiresAt }
    }
  }
}

/** `image.publish` through any sender (ChainClient.send with the publisher's key bound). */
export function chainImagePublisher(
  send: (body: { name: string; digest: string; cid: string; size: number }) => Promise<{ hash: string; height: number }>
): ImagePublisher {
  return {
    publishImage: async rec => {
      const r = await send({ name: rec.name, digest: rec.digest, cid: rec.cid, size: rec.size })
      return { txHash: r.hash, height: r.height }
    }
  }
}

/**
 * Publishing for `app.publish`: the archive's digest, CID and size, once added to the store,
 * complete `spec` (name, version, port, limits, …) into the body `send` records on chain.
 */
export function chainAppPublisher<S extends object>(
  spec: S,
  send: (body: S & { digest: string; cid: string; size: number }) => Promise<{ hash: string; height: number }>
): ImagePublisher {
  return {
    publishImage: async rec => {
      const r = await send({ ...spec, digest: rec.digest, cid: rec.cid, size: rec.size })
      return { txHash: r.hash, height: r.height }
    }
  }
}
