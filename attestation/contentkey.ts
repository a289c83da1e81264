// Content keys for the appraisal caches: sha256 (hex) of bytes or text, with a small ring of
// recently seen inputs compared byte for byte first. A verifier re-appraising the same nodes sees
// the same EK certificate and event log again and again; comparing with memcmp is far cheaper
// than hashing them each time, and a miss only costs the hash it would have paid anyway.
import { hash } from 'node:crypto'

export class ContentKeys {
  private readonly ring: Array<{ value: Buffer | string; key: string } | undefined>
  private next = 0

  constructor(size = 8) {
    this.ring = new Array(size).fill(undefined)
  }

  key(v: Uint8Array | string): string {
    if (typeof v === 'string') {
      for (const e of this.ring) if (e !== undefined && e.value === v) return e.key
    } else {
      const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength)
      for (const e of this.ring)
        if (e !== undefined && typeof e.value !== 'string' && e.value.length === b.length && e.value.equals(b))
          return e.key
    }
    const key = hash('sha256', v, 'hex')
    // keep a copy: the caller may reuse or mutate its buffer
    this.ring[this.next] = { value: typeof v === 'string' ? v : Buffer.from(v), key }
    this.next = (this.next + 1) % this.ring.length
    return key
  }
}

/**
 * A Map with an entry limit and a byte budget (oldest entries go first), so caches of parsed
 * logs stay bounded even when every node sends a maximal log.
 */
export class BoundedCache<V> {
  private readonly map = new Map<string, { value: V; size: number }>()
  private total = 0
  private readonly maxEntries: number
  private readonly maxBytes: number

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
  }

  get(key: string): V | undefined {
    return this.map.get(key)?.value
  }

  set(key: string, value: V, size: number): void {
    const old = this.map.get(key)
    if (old !== undefined) {
      this.total -= old.size
      this.map.delete(key)
    }
    if (size > this.maxBytes) return
    this.map.set(key, { value, size })
    this.total += size
    for (const [k, e] of this.map) {
      if (this.map.size <= this.maxEntries && this.total <= this.maxBytes) break
      this.map.delete(k)
      this.total -= e.size
    }
  }

  get size(): number {
    return this.map.size
  }
  get bytes(): number {
    return this.total
  }
}
