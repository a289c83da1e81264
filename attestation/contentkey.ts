// Content keys for the appraisal caches: sha256 (hex) of bytes or text, with a small ring of
// recently seen inputs compared byte for byte first. A verifier re-appraising the same nodes sees
// the same EK certificate and event log again and again; comparing with memcmp is far cheaper
// than hashing them each time, and a miss only costs the hash it would have paid anyway.
import { hash } from 'node:crypto'

export class ContentKeys {
  private readonly ring: Array<{ value: Buffer | string, key: string } | undefined>
  private next = 0

  constructor (size = 8) { this.ring = new Array(size).fill(undefined) }

  key (v: Uint8Array | string): string {
    if (typeof v === 'string') {
      for (const e of this.ring) if (e !== undefined && e.value === v) return e.key
    } else {
      const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength)
      for (const e of this.ring) if (e !== undefined && typeof e.value !== 'string' && e.value.length === b.length && e.value.equals(b)) return e.key
    }
    const key = hash('sha256', v, 'hex')
    // keep a copy: the caller may reuse or mutate its buffer
    this.ring[this.next] = { value: typeof v === 'string' ? v : Buffer.from(v), key }
    this.next = (this.next + 1) % this.ring.length
    return key
  }
}
