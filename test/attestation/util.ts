// Small assertion helpers: tap's `t.throws(fn, Class)` also compares `name`, so a subclass
// (StructureError is a DecodeError is an InvalidInputError) would not match its base class.
import type { Test } from 'tap'

/** Asserts fn throws an instance of `cls` (subclasses included); returns the error. */
export function throwsInstance(
  t: Test,
  fn: () => unknown,
  cls: abstract new (...args: never[]) => Error,
  msg: string,
  re?: RegExp
): Error | undefined {
  try {
    fn()
  } catch (err) {
    const ok = err instanceof cls && (re === undefined || re.test((err as Error).message))
    if (ok) t.pass(msg)
    else t.fail(msg, { error: String(err), wanted: cls.name, pattern: String(re) })
    return err as Error
  }
  t.fail(`${msg}: did not throw`)
  return undefined
}

/** Deterministic PRNG (xorshift32) so fuzz failures are reproducible from the seed. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 0x100000000
  }
}

export function randomBytesFrom(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256)
  return b
}

/** A random mutation of `b`: flip bytes, truncate, extend, splice or overwrite a length field. */
export function mutate(rnd: () => number, b: Uint8Array): Uint8Array {
  const out = b.slice()
  const kind = Math.floor(rnd() * 6)
  const at = Math.floor(rnd() * Math.max(1, out.length))
  switch (kind) {
    case 0: {
      const n = 1 + Math.floor(rnd() * 4)
      for (let i = 0; i < n; i++) out[Math.floor(rnd() * out.length)] ^= 1 << Math.floor(rnd() * 8)
      return out
    }
    case 1:
      return out.subarray(0, at)
    case 2: {
      const extra = randomBytesFrom(rnd, 1 + Math.floor(rnd() * 16))
      const r = new Uint8Array(out.length + extra.length)
      r.set(out)
      r.set(extra, out.length)
      return r
    }
    case 3: {
      const r = new Uint8Array(out.length + 4)
      r.set(out.subarray(0, at))
      r.set(randomBytesFrom(rnd, 4), at)
      r.set(out.subarray(at), at + 4)
      return r
    }
    case 4: {
      for (let i = 0; i < 4 && at + i < out.length; i++) out[at + i] = 0xff
      return out
    }
    default: {
      if (out.length > 0) out[at] = Math.floor(rnd() * 256)
      return out
    }
  }
}
