// Reference values (docs/CONTRACTS.md), the shape the chain stores: published TPM vendor EK CAs,
// firmware and OS reference sets (allowed final PCR values and/or allowed event digests per PCR)
// and allowed container images. A strict decoder for the JSON file form (hex digests, EK CAs as
// PEM or base64 DER) and a prepared (indexed, cached) form the appraisal's hot path uses.
import { DecodeError, TooLargeError } from '../encoding/errors.ts'
import { fromBase64, fromHex, toHex } from '../encoding/bytes.ts'
import { PCR_COUNT } from './algs.ts'
import { createEkTrustStore, decodePem, type EkTrustStore, type PemBlock } from './ekcert.ts'

export interface PcrReference {
  /** Allowed final PCR values. */
  readonly golden?: readonly Uint8Array[]
  /** Allowed event digests for this PCR (every event of the PCR must be one of them). */
  readonly events?: readonly Uint8Array[]
}

export interface RefSet {
  readonly name: string
  readonly version: string
  readonly bank: 'sha256'
  /** Keyed by the decimal PCR index. */
  readonly pcrs: Readonly<Record<string, PcrReference>>
}

export interface ImageReference {
  readonly name: string
  readonly digest: string
  readonly cid?: string
}

export interface ReferenceValues {
  /** Published TPM vendor EK CA certificates (DER). */
  readonly ekCas: readonly Uint8Array[]
  readonly firmware: readonly RefSet[]
  readonly os: readonly RefSet[]
  /** Allowed container images (published, not revoked). */
  readonly containers?: { readonly images: readonly ImageReference[] }
}

function fail(m: string): never {
  throw new DecodeError(`reference values: ${m}`)
}
function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
}
function onlyKeys(o: Record<string, unknown>, keys: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${what}: unknown field ${JSON.stringify(k)}`)
}

const MAX_SETS = 4096
const MAX_DIGESTS = 4096

function digestList(v: unknown, what: string, decode: (x: unknown, what: string) => Uint8Array): Uint8Array[] {
  if (!Array.isArray(v)) fail(`${what}: expected an array`)
  if (v.length > MAX_DIGESTS)
    throw new TooLargeError(`reference values: ${what} lists ${v.length} digests (limit ${MAX_DIGESTS})`)
  return v.map((x, i) => {
    const d = decode(x, `${what}[${i}]`)
    if (d.length !== 32) fail(`${what}[${i}]: expected a 32-byte sha256 digest`)
    return d
  })
}

function refSet(v: unknown, what: string, decode: (x: unknown, what: string) => Uint8Array): RefSet {
  if (!isObj(v)) fail(`${what}: expected an object`)
  onlyKeys(v, ['name', 'version', 'bank', 'pcrs'], what)
  if (typeof v.name !== 'string' || v.name === '') fail(`${what}.name: expected a non-empty string`)
  if (typeof v.version !== 'string') fail(`${what}.version: expected a string`)
  if (v.bank !== 'sha256') fail(`${what}.bank: only "sha256" is supported`)
  if (!isObj(v.pcrs)) fail(`${what}.pcrs: expected an object`)
  const pcrs: Record<string, PcrReference> = {}
  for (const [idx, ref] of Object.entries(v.pcrs)) {
    if (!/^(0|[1-9][0-9]?)$/.test(idx) || Number(idx) >= PCR_COUNT)
      fail(`${what}.pcrs: PCR index ${JSON.stringify(idx)} is not 0..${PCR_COUNT - 1}`)
    if (!isObj(ref)) fail(`${what}.pcrs.${idx}: expected an object`)
    onlyKeys(ref, ['golden', 'events'], `${what}.pcrs.${idx}`)
    const r: { golden?: Uint8Array[]; events?: Uint8Array[] } = {}
    if (ref.golden !== undefined) r.golden = digestList(ref.golden, `${what}.pcrs.${idx}.golden`, decode)
    if (ref.events !== undefined) r.events = digestList(ref.events, `${what}.pcrs.${idx}.events`, decode)
    if (r.golden === undefined && r.events === undefined) fail(`${what}.pcrs.${idx}: needs golden and/or events`)
    pcrs[idx] = r
  }
  return { name: v.name, version: v.version, bank: 'sha256', pcrs }
}

/**
 * Strictly validates reference values. Digests may be Uint8Array (in-memory, from the chain) or
 * hex strings (JSON files); EK CAs may be DER bytes, base64 DER or PEM text.
 */
export function referenceValuesFromJson(input: unknown): ReferenceValues {
  let j = input
  if (typeof input === 'string') {
    if (input.length > 16 << 20) throw new TooLargeError('reference values: JSON larger than 16 MiB')
    try {
      j = JSON.parse(input)
    } catch (err) {
      fail(`not valid JSON (${(err as Error).message})`)
    }
  }
  if (!isObj(j)) fail('expected an object')
  onlyKeys(j, ['ekCas', 'firmware', 'os', 'containers'], 'reference values')
  const decode = (x: unknown, what: string): Uint8Array => {
    if (x instanceof Uint8Array) return x
    if (typeof x !== 'string') fail(`${what}: expected a hex string`)
    try {
      return fromHex(x, what)
    } catch (err) {
      return fail((err as Error).message)
    }
  }
  const ekCas: Uint8Array[] = []
  if (!Array.isArray(j.ekCas)) fail('ekCas: expected an array')
  for (const [i, c] of j.ekCas.entries()) {
    if (c instanceof Uint8Array) ekCas.push(c)
    else if (typeof c === 'string' && c.includes('-----BEGIN')) {
      let blocks: PemBlock[] = []
      try {
        blocks = decodePem(c, { label: 'CERTIFICATE', what: `ekCas[${i}]` })
      } catch (err) {
        fail((err as Error).message)
      }
      if (blocks.length === 0) fail(`ekCas[${i}]: no PEM certificate found`)
      for (const b of blocks) ekCas.push(b.der)
    } else if (typeof c === 'string') {
      try {
        ekCas.push(fromBase64(c, `ekCas[${i}]`))
      } catch (err) {
        fail((err as Error).message)
      }
    } else fail(`ekCas[${i}]: expected PEM text or base64 DER`)
  }
  const sets = (v: unknown, what: string): RefSet[] => {
    if (v === undefined) return []
    if (!Array.isArray(v)) fail(`${what}: expected an array`)
    if (v.length > MAX_SETS) throw new TooLargeError(`reference values: ${v.length} ${what} sets (limit ${MAX_SETS})`)
    return v.map((s, i) => refSet(s, `${what}[${i}]`, decode))
  }
  const out: { ekCas: Uint8Array[]; firmware: RefSet[]; os: RefSet[]; containers?: { images: ImageReference[] } } = {
    ekCas,
    firmware: sets(j.firmware, 'firmware'),
    os: sets(j.os, 'os')
  }
  if (j.containers !== undefined) {
    const c = j.containers
    if (!isObj(c)) fail('containers: expected an object')
    onlyKeys(c, ['images'], 'containers')
    if (!Array.isArray(c.images)) fail('containers.images: expected an array')
    out.containers = {
      images: c.images.map((im: unknown, i: number) => {
        if (!isObj(im)) fail(`containers.images[${i}]: expected an object`)
        onlyKeys(im, ['name', 'digest', 'cid'], `containers.images[${i}]`)
        if (typeof im.name !== 'string') fail(`containers.images[${i}].name: expected a string`)
        if (typeof im.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(im.digest))
          fail(`containers.images[${i}].digest: expected sha256:<64 hex>`)
        if (im.cid !== undefined && typeof im.cid !== 'string') fail(`containers.images[${i}].cid: expected a string`)
        return im.cid !== undefined
          ? { name: im.name, digest: im.digest, cid: im.cid as string }
          : { name: im.name, digest: im.digest }
      })
    }
  }
  return out
}

/** JSON form of reference values (hex digests, base64 DER CAs). */
export function referenceValuesToJson(r: ReferenceValues): Record<string, unknown> {
  const set = (s: RefSet): Record<string, unknown> => ({
    name: s.name,
    version: s.version,
    bank: s.bank,
    pcrs: Object.fromEntries(
      Object.entries(s.pcrs).map(([k, v]) => [
        k,
        {
          ...(v.golden !== undefined ? { golden: v.golden.map(toHex) } : {}),
          ...(v.events !== undefined ? { events: v.events.map(toHex) } : {})
        }
      ])
    )
  })
  return {
    ekCas: r.ekCas.map(c => Buffer.from(c).toString('base64')),
    firmware: r.firmware.map(set),
    os: r.os.map(set),
    ...(r.containers !== undefined ? { containers: { images: r.containers.images.map(i => ({ ...i })) } } : {})
  }
}

/** Per PCR: allowed golden values and event digests (hex) across a kind of RefSets, and who allows them. */
export interface PcrIndex {
  readonly golden: ReadonlyMap<string, readonly string[]>
  readonly events: ReadonlySet<string>
  /** True when some RefSet lists events for this PCR. */
  readonly hasEvents: boolean
  /** True when some RefSet lists an empty events list: "no events" is an allowed state. */
  readonly allowsNoEvents: boolean
}

export interface PreparedReferences {
  readonly source: ReferenceValues
  readonly trust: EkTrustStore
  /** Published CA certificates that could not be parsed (skipped). */
  readonly invalidCas: readonly string[]
  readonly firmware: ReadonlyMap<number, PcrIndex>
  readonly os: ReadonlyMap<number, PcrIndex>
  /** Allowed image digests (`sha256:…`) → names. */
  readonly images: ReadonlyMap<string, readonly string[]>
}

function index(sets: readonly RefSet[]): Map<number, PcrIndex> {
  const tmp = new Map<
    number,
    { golden: Map<string, string[]>; events: Set<string>; hasEvents: boolean; allowsNoEvents: boolean }
  >()
  for (const s of sets) {
    for (const [k, ref] of Object.entries(s.pcrs)) {
      const p = Number(k)
      const e = tmp.get(p) ?? {
        golden: new Map<string, string[]>(),
        events: new Set<string>(),
        hasEvents: false,
        allowsNoEvents: false
      }
      tmp.set(p, e)
      for (const g of ref.golden ?? []) {
        const h = toHex(g)
        e.golden.set(h, [...(e.golden.get(h) ?? []), `${s.name}@${s.version}`])
      }
      if (ref.events !== undefined) {
        e.hasEvents = true
        if (ref.events.length === 0) e.allowsNoEvents = true
        for (const d of ref.events) e.events.add(toHex(d))
      }
    }
  }
  return tmp
}

const prepared = new WeakMap<ReferenceValues, PreparedReferences>()

/** Indexes reference values once (cached per object): trust store, PCR indexes, image set. */
export function prepareReferences(refs: ReferenceValues): PreparedReferences {
  const hit = prepared.get(refs)
  if (hit !== undefined) return hit
  const images = new Map<string, string[]>()
  for (const im of refs.containers?.images ?? []) images.set(im.digest, [...(images.get(im.digest) ?? []), im.name])
  // A malformed CA published by one vendor must not stop appraisals against the others.
  const cas: Uint8Array[] = []
  const invalidCas: string[] = []
  for (const [i, c] of refs.ekCas.entries()) {
    try {
      createEkTrustStore([c])
      cas.push(c)
    } catch (err) {
      invalidCas.push(`ekCas[${i}]: ${(err as Error).message}`)
    }
  }
  const p: PreparedReferences = {
    source: refs,
    trust: createEkTrustStore(cas),
    invalidCas,
    firmware: index(refs.firmware),
    os: index(refs.os),
    images
  }
  prepared.set(refs, p)
  return p
}
