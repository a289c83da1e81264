// Connection admission for the agent's listeners (STYLE §17), decided on the bare TCP socket before
// any TLS handshake or HTTP parsing: how many connections one client holds at once, and how fast it
// may open new ones. A "client" is an address group, not an address: one IPv6 host is routinely
// given a whole /64 (RFC 4291 §2.5.4, RFC 6177), so counting IPv6 addresses one by one would let a
// single attacker with a /64 take every slot. IPv4 counts per address (NAT puts many people behind
// one address already; grouping wider would punish them).
import { isIPv4, isIPv6 } from 'node:net'
import type { Socket } from 'node:net'

/**
 * The group an address's connections are counted under: IPv4 as is; IPv4-mapped IPv6
 * (::ffff:a.b.c.d, RFC 4291 §2.5.5.2, what a dual-stack listener reports) as the IPv4 address it
 * carries; the IPv6 loopback ::1 as itself (a local client, not a /64 of strangers); any other
 * IPv6 address as its /64 prefix (the zone of a link-local address kept, since fe80::/64 exists
 * once per link). Anything else (no address: the socket already closed) is its own group ''.
 */
export function addressGroup(address: string | undefined): string {
  if (address === undefined || address === '') return ''
  if (isIPv4(address)) return address
  const zoneAt = address.indexOf('%')
  const bare = zoneAt < 0 ? address : address.slice(0, zoneAt)
  const zone = zoneAt < 0 ? '' : address.slice(zoneAt)
  if (!isIPv6(bare)) return address
  const words = ipv6Words(bare)
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0) {
    if (words[5] === 0xffff) return `${words[6] >> 8}.${words[6] & 0xff}.${words[7] >> 8}.${words[7] & 0xff}`
    if (words[5] === 0 && words[6] === 0 && words[7] === 1) return '::1'
  }
  return `${words
    .slice(0, 4)
    .map(w => w.toString(16))
    .join(':')}::/64${zone}`
}

/** The eight 16-bit words of a valid IPv6 address (checked by isIPv6 first): '::' expanded, a dotted IPv4 tail split. */
function ipv6Words(address: string): number[] {
  const toWords = (part: string): number[] => {
    if (part === '') return []
    const out: number[] = []
    for (const p of part.split(':')) {
      if (p.includes('.')) {
        const [a, b, c, d] = p.split('.').map(Number)
        out.push((a << 8) | b, (c << 8) | d)
      } else out.push(Number.parseInt(p, 16))
    }
    return out
  }
  const gap = address.indexOf('::')
  if (gap < 0) return toWords(address)
  const head = toWords(address.slice(0, gap))
  const tail = toWords(address.slice(gap + 2))
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

export interface AdmissionInit {
  /** Connections one address group holds at once. */
  readonly perGroup: number
  /** New connections one address group may open per second, on average (a token bucket's refill). */
  readonly ratePerSecond: number
  /** How many it may open at once after a quiet spell (the bucket's size). */
  readonly burst: number
  /** Milliseconds now (tests hand a fake clock to the unit test; the listeners use the real one). */
  readonly now?: () => number
}

interface Bucket {
  tokens: number
  at: number
}

/**
 * Counts open connections and new-connection tokens per address group. `admit` decides for a fresh
 * socket and, when it lets it in, releases the slot when the socket closes. Memory is bounded by
 * what is live: groups with no open connection and a full bucket are forgotten (a full bucket is
 * what a new group starts with, so forgetting it changes nothing).
 */
export class Admission {
  readonly #open = new Map<string, number>()
  readonly #buckets = new Map<string, Bucket>()
  readonly #init: AdmissionInit
  readonly #now: () => number
  #lastSweep = 0

  constructor(init: AdmissionInit) {
    this.#init = init
    this.#now = init.now ?? (() => performance.now())
  }

  /** Why `socket` may not come in ('held' = its group holds its share, 'rate' = its group opens too fast), or undefined after counting it in. */
  admit(socket: Socket): 'held' | 'rate' | undefined {
    const group = addressGroup(socket.remoteAddress)
    const why = this.take(group)
    if (why !== undefined) return why
    socket.once('close', () => {
      this.release(group)
    })
    return undefined
  }

  /** The decision for one new connection from `group`; on success the caller must `release` it later. */
  take(group: string): 'held' | 'rate' | undefined {
    const now = this.#now()
    this.#sweep(now)
    const open = this.#open.get(group) ?? 0
    if (open >= this.#init.perGroup) return 'held'
    const { ratePerSecond, burst } = this.#init
    let b = this.#buckets.get(group)
    if (b === undefined) {
      b = { tokens: burst, at: now }
      this.#buckets.set(group, b)
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * ratePerSecond)
      b.at = now
    }
    if (b.tokens < 1) return 'rate'
    b.tokens -= 1
    this.#open.set(group, open + 1)
    return undefined
  }

  release(group: string): void {
    const left = (this.#open.get(group) ?? 1) - 1
    if (left <= 0) this.#open.delete(group)
    else this.#open.set(group, left)
  }

  /** Groups tracked now (open connections or a bucket not yet full): for tests and metrics. */
  get groups(): number {
    return new Set([...this.#open.keys(), ...this.#buckets.keys()]).size
  }

  /** At most once a second: forget the buckets that have refilled. */
  #sweep(now: number): void {
    if (now - this.#lastSweep < 1000) return
    this.#lastSweep = now
    const { ratePerSecond, burst } = this.#init
    for (const [g, b] of this.#buckets)
      if (b.tokens + ((now - b.at) / 1000) * ratePerSecond >= burst) this.#buckets.delete(g)
  }
}
