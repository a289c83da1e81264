// The one libp2p host configuration of a node: the image store's own host (store.ts) and the
// agent's host (agent/p2p/host.ts), which the agent hands to the image store, are both built
// here, so blocks travel with the same encrypters and stream windows whichever host carries them.
// It lives in containers/ because the image traffic is what shaped it (TLS first, large yamux
// windows) and because agent/ may import containers/ but not the other way round (STYLE §1).
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { tls } from '@libp2p/tls'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, type Identify } from '@libp2p/identify'
import type { PrivateKey } from '@libp2p/interface'

export interface LocalLibp2pOptions {
  /** The host key; a fresh one when absent. */
  readonly privateKey?: PrivateKey
  /** Listen addresses; default `/ip4/127.0.0.1/tcp/0` (ephemeral port on loopback). */
  readonly listen?: readonly string[]
  /** Addresses to announce instead of the listen addresses (e.g. the public one). */
  readonly announce?: readonly string[]
  /** Connection limit; libp2p's default when absent. */
  readonly maxConnections?: number
}

export type LocalLibp2p = Libp2p<{ identify: Identify }>

const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']

/**
 * A started libp2p host for local/configured peers only: TCP, TLS 1.3 (libp2p TLS spec)
 * preferred over noise, yamux, identify; nothing that reaches out (no bootstrap list, DHT,
 * relay, autoNAT, UPnP or mDNS). TLS comes first because its record encryption runs natively
 * (AES-GCM in OpenSSL): ~1.6–1.8× noise's throughput here (noise encrypts 64 KiB messages from
 * JS). Peers without TLS still connect over noise.
 */
export async function createLocalLibp2p(opts: LocalLibp2pOptions = {}): Promise<LocalLibp2p> {
  return await createLibp2p({
    privateKey: opts.privateKey,
    addresses: {
      listen: [...(opts.listen ?? ['/ip4/127.0.0.1/tcp/0'])],
      ...(opts.announce !== undefined ? { announce: [...opts.announce] } : {})
    },
    transports: [tcp()],
    connectionEncrypters: [tls(), noise()],
    // Larger stream windows: one stream carries a whole image (yamux's default is 256 KiB).
    streamMuxers: [yamux({ streamOptions: { initialStreamWindowSize: 4 << 20, maxStreamWindowSize: 16 << 20 } })],
    // Loopback peers skip libp2p's per-host limits (5 inbound connections a second, pending and
    // total caps): they are this machine's own processes — local tools, co-located nodes, every
    // peer of a test network — and all share one address, so the limit refused them in bursts.
    connectionManager: {
      allow: LOOPBACK,
      ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {})
    },
    services: { identify: identify() }
  })
}
