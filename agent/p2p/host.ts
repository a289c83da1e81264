// The node's libp2p host: TCP + TLS 1.3 (preferred) or noise + yamux + identify, nothing else. No bootstrap list, DHT,
// relay, autoNAT, UPnP or mDNS: peers are dialled at the addresses they registered on chain,
// given to us by the caller. The same node can be handed to Helia (it accepts an existing libp2p).
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey, PeerId } from '@libp2p/interface'
import type { Logger } from '../../encoding/log.ts'
import { silentLogger } from '../../encoding/log.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import { createLocalLibp2p, type LocalLibp2p } from '../../containers/libp2p.ts'

export interface P2PHostOptions {
  /** The node key (ed25519): its peer id is the node id on chain. */
  readonly privateKey: PrivateKey
  /** Listen addresses; default `/ip4/127.0.0.1/tcp/0` (ephemeral port on loopback). */
  readonly listen?: readonly string[]
  /** Addresses to announce instead of the listen addresses (e.g. the public one). */
  readonly announce?: readonly string[]
  readonly logger?: Logger
}

export type P2PHost = LocalLibp2p

/**
 * The node's host: the node's configuration (containers/libp2p.ts, shared with the image store,
 * which runs on this host in the agent) with an Ed25519 key required and a connection limit.
 */
export async function createP2PHost(opts: P2PHostOptions): Promise<P2PHost> {
  if (opts.privateKey.type !== 'Ed25519')
    throw new InvalidInputError('the node key must be Ed25519 (its peer id is the node id)')
  const log = opts.logger ?? silentLogger('quorate:p2p')
  const host = await createLocalLibp2p({
    privateKey: opts.privateKey,
    listen: opts.listen,
    announce: opts.announce,
    // Attestation streams are short; keep the peer count modest and never go looking for peers.
    maxConnections: 256
  })
  log.info('libp2p host started', {
    peerId: host.peerId.toString(),
    addrs: host.getMultiaddrs().map(a => a.toString())
  })
  return host
}

/**
 * A dial target from a node id and/or multiaddrs: `/ip4/…/tcp/…/p2p/<id>`, or a bare node id
 * plus the addresses registered for it on chain.
 */
export function dialTarget(peer: string, addrs: readonly string[] = []): { peerId: PeerId; addrs: Multiaddr[] } {
  try {
    if (peer.startsWith('/')) {
      const ma = multiaddr(peer)
      const id = ma.getComponents().findLast(c => c.name === 'p2p')?.value
      if (id === undefined) throw new InvalidInputError(`multiaddr ${peer} has no /p2p/<node id> part`)
      return { peerId: peerIdFromString(id), addrs: [ma] }
    }
    const peerId = peerIdFromString(peer)
    return { peerId, addrs: addrs.map(a => (a.includes('/p2p/') ? multiaddr(a) : multiaddr(`${a}/p2p/${peer}`))) }
  } catch (err) {
    if (err instanceof InvalidInputError) throw err
    throw new InvalidInputError(`cannot dial ${JSON.stringify(peer)}: ${(err as Error).message}`, { cause: err })
  }
}
