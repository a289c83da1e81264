// Stateless validation of transaction bodies: one parser per type, strict (unknown fields are
// refused), returning the typed body or throwing InvalidInputError with what is wrong.
import { Buffer } from 'node:buffer'
import { CID } from 'multiformats/cid'
import { base32 } from 'multiformats/bases/base32'
import { base36 } from 'multiformats/bases/base36'
import { base58btc } from 'multiformats/bases/base58'
import { is, type Canonical } from '../encoding/canonical.ts'
import { InvalidInputError } from '../encoding/errors.ts'
import { peerIdToPublicKey } from './keys.ts'
import type { AppLimits, AppUsage, HashBank, PcrRefs, TxBodies, TxType } from './types.ts'
import { MAX_USAGE_APPS, TX_TYPES } from './types.ts'

export const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/
/** Container image names as Docker writes them (lowercase path components, optional tag). */
export const IMAGE_NAME_RE = /^[a-z0-9][a-z0-9._/:-]{0,254}$/
export const IMAGE_DIGEST_RE = /^sha256:[0-9a-f]{64}$/
const BANK_BYTES: Record<HashBank, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 }
const MAX_CERT = 16 * 1024
/** app.publish bounds: args and env items (each item ≤ MAX_APP_ITEM_BYTES of UTF-8). */
export const MAX_APP_ITEMS = 64
export const MAX_APP_ITEM_BYTES = 4096
export const MIN_APP_MEMORY = 4 * 1024 * 1024
export const MAX_APP_MEMORY = 64 * 1024 * 1024 * 1024
export const MAX_APP_PIDS = 65_536
export const MIN_APP_IDLE_MS = 1000
export const MAX_APP_IDLE_MS = 24 * 3600_000
export const MAX_ENDPOINT_CHARS = 256
/** An environment item: a POSIX-style variable name, "=", then any value. */
const ENV_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}=/
const HEALTH_PATH_RE = /^\/[\x21-\x7e]{0,255}$/

class Body {
  readonly m: Record<string, Canonical>
  readonly what: string
  constructor(v: Canonical, what: string, allowed: readonly string[]) {
    if (!is.map(v)) throw new InvalidInputError(`${what}: body must be a map`)
    this.m = v
    this.what = what
    for (const k of Object.keys(v))
      if (!allowed.includes(k)) throw new InvalidInputError(`${what}: unknown field ${JSON.stringify(k)}`)
  }

  has(k: string): boolean {
    return Object.hasOwn(this.m, k)
  }
  raw(k: string): Canonical {
    if (!this.has(k)) throw new InvalidInputError(`${this.what}.${k}: missing`)
    return this.m[k]
  }

  str(k: string, re: RegExp, hint: string): string {
    const v = this.raw(k)
    if (typeof v !== 'string' || !re.test(v)) throw new InvalidInputError(`${this.what}.${k}: expected ${hint}`)
    return v
  }

  bytes(k: string, min: number, max: number): Uint8Array {
    const v = this.raw(k)
    if (!(v instanceof Uint8Array) || v.byteLength < min || v.byteLength > max)
      throw new InvalidInputError(`${this.what}.${k}: expected ${min}–${max} bytes`)
    return v
  }

  uint(k: string, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw(k)
    if (!is.uint(v) || v > max) throw new InvalidInputError(`${this.what}.${k}: expected an unsigned integer ≤ ${max}`)
    return v
  }
}

function der(b: Uint8Array, what: string): Uint8Array {
  // X.509 DER: a SEQUENCE (0x30) with a definite long-form length covering the whole input.
  // Full parsing happens in appraisal; the chain only refuses what cannot be a certificate.
  if (b.byteLength < 4 || b[0] !== 0x30)
    throw new InvalidInputError(`${what}: not a DER certificate (expected a SEQUENCE)`)
  let len: number
  let off: number
  if (b[1] < 0x80) {
    len = b[1]
    off = 2
  } else {
    const n = b[1] & 0x7f
    if (n === 0 || n > 3 || b.byteLength < 2 + n)
      throw new InvalidInputError(`${what}: not a DER certificate (bad length)`)
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]
    off = 2 + n
  }
  if (off + len !== b.byteLength)
    throw new InvalidInputError(`${what}: DER length ${len} does not cover the ${b.byteLength - off} bytes given`)
  return b
}

export function parseBank(v: Canonical, what: string): HashBank {
  if (v !== 'sha1' && v !== 'sha256' && v !== 'sha384' && v !== 'sha512')
    throw new InvalidInputError(`${what}: expected sha1, sha256, sha384 or sha512`)
  return v
}

export function parsePcrs(v: Canonical, bank: HashBank, what: string): PcrRefs {
  if (!is.map(v)) throw new InvalidInputError(`${what}: expected a map of PCR index → { golden?, events? }`)
  const keys = Object.keys(v)
  if (keys.length === 0) throw new InvalidInputError(`${what}: no PCRs given`)
  const out: PcrRefs = {}
  for (const k of keys) {
    if (!/^(0|[1-9][0-9]?)$/.test(k) || Number(k) > 23)
      throw new InvalidInputError(`${what}: PCR index ${JSON.stringify(k)} is not 0–23`)
    const e = v[k]
    if (!is.map(e)) throw new InvalidInputError(`${what}.${k}: expected { golden?, events? }`)
    const entry: { golden?: Uint8Array[]; events?: Uint8Array[] } = {}
    for (const f of Object.keys(e)) {
      if (f !== 'golden' && f !== 'events')
        throw new InvalidInputError(`${what}.${k}: unknown field ${JSON.stringify(f)}`)
      const list = e[f]
      if (!is.array(list) || list.length === 0)
        throw new InvalidInputError(`${what}.${k}.${f}: expected a non-empty list of digests`)
      for (const d of list) {
        if (!(d instanceof Uint8Array) || d.byteLength !== BANK_BYTES[bank])
          throw new InvalidInputError(`${what}.${k}.${f}: every digest must be ${BANK_BYTES[bank]} bytes (${bank})`)
      }
      entry[f] = list as Uint8Array[]
    }
    if (entry.golden === undefined && entry.events === undefined)
      throw new InvalidInputError(`${what}.${k}: give golden values, event digests or both`)
    out[k] = entry
  }
  return out
}

function nodeId(b: Body, k: string): string {
  const v = b.str(k, /^[1-9A-HJ-NP-Za-km-z]{40,64}$/, 'an Ed25519 libp2p peer id')
  try {
    peerIdToPublicKey(v)
  } catch (err) {
    throw new InvalidInputError(`${b.what}.${k}: ${(err as Error).message}`)
  }
  return v
}

type Parsers = { [T in TxType]: (v: Canonical) => TxBodies[T] }

const parsers: Parsers = {
  'vendor.register': v => {
    const b = new Body(v, 'vendor.register', ['name'])
    return { name: b.str('name', NAME_RE, 'a name of 1–64 characters a-z 0-9 . _ - (starting with a letter or digit)') }
  },
  'vendor.ekca.publish': v => {
    const b = new Body(v, 'vendor.ekca.publish', ['vendor', 'certificate'])
    return {
      vendor: b.str('vendor', NAME_RE, 'a vendor name'),
      certificate: der(b.bytes('certificate', 4, MAX_CERT), 'vendor.ekca.publish.certificate')
    }
  },
  'vendor.ekca.revoke': v => {
    const b = new Body(v, 'vendor.ekca.revoke', ['vendor', 'fingerprint'])
    return { vendor: b.str('vendor', NAME_RE, 'a vendor name'), fingerprint: b.bytes('fingerprint', 32, 32) }
  },
  'firmware.publish': v => {
    const b = new Body(v, 'firmware.publish', ['vendor', 'platform', 'version', 'bank', 'pcrs'])
    const bank = parseBank(b.raw('bank'), 'firmware.publish.bank')
    return {
      vendor: b.str('vendor', NAME_RE, 'a vendor name'),
      platform: b.str('platform', NAME_RE, 'a platform name (a-z 0-9 . _ -)'),
      version: b.str('version', VERSION_RE, 'a version (A-Z a-z 0-9 . _ + -)'),
      bank,
      pcrs: parsePcrs(b.raw('pcrs'), bank, 'firmware.publish.pcrs')
    }
  },
  'firmware.revoke': v => {
    const b = new Body(v, 'firmware.revoke', ['vendor', 'platform', 'version'])
    return {
      vendor: b.str('vendor', NAME_RE, 'a vendor name'),
      platform: b.str('platform', NAME_RE, 'a platform name'),
      version: b.str('version', VERSION_RE, 'a version')
    }
  },
  'os.publish': v => {
    const b = new Body(v, 'os.publish', ['name', 'version', 'bank', 'pcrs'])
    const bank = parseBank(b.raw('bank'), 'os.publish.bank')
    return {
      name: b.str('name', NAME_RE, 'an OS name'),
      version: b.str('version', VERSION_RE, 'a version'),
      bank,
      pcrs: parsePcrs(b.raw('pcrs'), bank, 'os.publish.pcrs')
    }
  },
  'os.revoke': v => {
    const b = new Body(v, 'os.revoke', ['name', 'version'])
    return { name: b.str('name', NAME_RE, 'an OS name'), version: b.str('version', VERSION_RE, 'a version') }
  },
  'image.publish': v => {
    const b = new Body(v, 'image.publish', ['name', 'digest', 'cid', 'size'])
    const cid = b.str('cid', /^[A-Za-z0-9]{8,128}$/, 'a CID string')
    if (!isCidString(cid)) throw new InvalidInputError(`image.publish.cid: ${JSON.stringify(cid)} is not a valid CID`)
    return {
      name: b.str('name', IMAGE_NAME_RE, 'an image name (a-z 0-9 . _ / : -)'),
      digest: b.str('digest', IMAGE_DIGEST_RE, '"sha256:" and 64 lowercase hex digits'),
      cid,
      size: b.uint('size')
    }
  },
  'image.revoke': v => {
    const b = new Body(v, 'image.revoke', ['name', 'digest'])
    return {
      name: b.str('name', IMAGE_NAME_RE, 'an image name'),
      digest: b.str('digest', IMAGE_DIGEST_RE, '"sha256:" and 64 lowercase hex digits')
    }
  },
  'node.register': v => {
    const b = new Body(v, 'node.register', [
      'nodeId',
      'ekCertificate',
      'akPublic',
      'addrs',
      'platform',
      'os',
      'blsPublicKey',
      'blsProof',
      'endpoint'
    ])
    const addrs = b.raw('addrs')
    if (
      !is.array(addrs) ||
      addrs.length > 32 ||
      !addrs.every(a => typeof a === 'string' && a.startsWith('/') && a.length <= 256 && /^[\x21-\x7e]+$/.test(a))
    ) {
      throw new InvalidInputError('node.register.addrs: expected up to 32 multiaddr strings ("/ip4/…")')
    }
    const out: TxBodies['node.register'] = {
      nodeId: nodeId(b, 'nodeId'),
      ekCertificate: der(b.bytes('ekCertificate', 4, MAX_CERT), 'node.register.ekCertificate'),
      akPublic: b.bytes('akPublic', 1, 1024),
      addrs: addrs as string[]
    }
    if (b.has('platform'))
      out.platform = b.str(
        'platform',
        /^[a-z0-9][a-z0-9._-]{0,63}\/[a-z0-9][a-z0-9._-]{0,63}$/,
        '"<vendor>/<platform>"'
      )
    if (b.has('os')) out.os = b.str('os', NAME_RE, 'an OS name')
    // BLS12-381: a compressed G1 public key and a G2 signature as proof of possession (checked by the quorum rules)
    if (b.has('blsPublicKey') !== b.has('blsProof'))
      throw new InvalidInputError('node.register: blsPublicKey and blsProof come together')
    if (b.has('blsPublicKey')) {
      out.blsPublicKey = b.bytes('blsPublicKey', 48, 48)
      out.blsProof = b.bytes('blsProof', 96, 96)
    }
    if (b.has('endpoint')) out.endpoint = parseEndpoint(b.raw('endpoint'), 'node.register.endpoint')
    return out
  },
  'attest.request': v => {
    const b = new Body(v, 'attest.request', ['nodeId', 'round', 'reset', 'tlsKey'])
    const out: TxBodies['attest.request'] = { nodeId: nodeId(b, 'nodeId'), round: b.uint('round') }
    if (b.has('reset')) {
      const r = b.raw('reset')
      if (typeof r !== 'boolean') throw new InvalidInputError('attest.request.reset: expected a boolean')
      out.reset = r
    }
    // sha256 of the TLS key's DER SubjectPublicKeyInfo
    if (b.has('tlsKey')) out.tlsKey = b.bytes('tlsKey', 32, 32)
    return out
  },
  'attest.record': v => {
    const b = new Body(v, 'attest.record', ['nodeId', 'round', 'qc'])
    return { nodeId: nodeId(b, 'nodeId'), round: b.uint('round'), qc: b.bytes('qc', 1, 60 * 1024) }
  },
  'verifier.fault': v => {
    const b = new Body(v, 'verifier.fault', ['nodeId', 'round', 'verdict', 'evidence'])
    // the evidence must fit the transaction (64 KiB): event logs of real machines may not (see chain/README.md)
    return {
      nodeId: nodeId(b, 'nodeId'),
      round: b.uint('round'),
      verdict: b.bytes('verdict', 1, 1024),
      evidence: b.bytes('evidence', 1, 62 * 1024)
    }
  },
  'app.publish': v => {
    const b = new Body(v, 'app.publish', [
      'name',
      'version',
      'digest',
      'cid',
      'size',
      'port',
      'args',
      'env',
      'healthPath',
      'limits',
      'idleTimeoutMs'
    ])
    const cid = b.str('cid', /^[A-Za-z0-9]{8,128}$/, 'a CID string')
    if (!isCidString(cid)) throw new InvalidInputError(`app.publish.cid: ${JSON.stringify(cid)} is not a valid CID`)
    const size = b.uint('size')
    if (size === 0) throw new InvalidInputError('app.publish.size: expected the archive size in bytes (> 0)')
    const port = b.uint('port', 65_535)
    if (port === 0) throw new InvalidInputError('app.publish.port: expected a TCP port 1–65535')
    const idleTimeoutMs = b.uint('idleTimeoutMs', MAX_APP_IDLE_MS)
    if (idleTimeoutMs < MIN_APP_IDLE_MS)
      throw new InvalidInputError(`app.publish.idleTimeoutMs: expected ${MIN_APP_IDLE_MS}–${MAX_APP_IDLE_MS} ms`)
    const out: TxBodies['app.publish'] = {
      name: b.str('name', NAME_RE, 'an app name of 1–64 characters a-z 0-9 . _ - (starting with a letter or digit)'),
      version: b.str('version', VERSION_RE, 'a version (A-Z a-z 0-9 . _ + -, up to 64 characters)'),
      digest: b.str('digest', IMAGE_DIGEST_RE, '"sha256:" and 64 lowercase hex digits (the image ID)'),
      cid,
      size,
      port,
      limits: appLimits(b.raw('limits')),
      idleTimeoutMs
    }
    if (b.has('args')) out.args = strList(b.raw('args'), 'app.publish.args')
    if (b.has('env')) {
      const env = strList(b.raw('env'), 'app.publish.env')
      const bad = env.find(e => !ENV_RE.test(e))
      if (bad !== undefined)
        throw new InvalidInputError(
          `app.publish.env: ${JSON.stringify(bad.slice(0, 64))} is not KEY=value (KEY: A-Z a-z 0-9 _, not starting with a digit)`
        )
      out.env = env
    }
    if (b.has('healthPath'))
      out.healthPath = b.str(
        'healthPath',
        HEALTH_PATH_RE,
        'a path starting with "/" (printable ASCII, ≤ 256 characters)'
      )
    return out
  },
  'app.revoke': v => {
    const b = new Body(v, 'app.revoke', ['name', 'version'])
    const out: TxBodies['app.revoke'] = { name: b.str('name', NAME_RE, 'an app name') }
    if (b.has('version')) out.version = b.str('version', VERSION_RE, 'a version')
    return out
  },
  'usage.record': v => {
    const b = new Body(v, 'usage.record', ['nodeId', 'from', 'to', 'apps'])
    const from = b.uint('from')
    const to = b.uint('to')
    if (from >= to)
      throw new InvalidInputError('usage.record: from must be before to (the period is [from, to) in Unix ms)')
    const apps = b.raw('apps')
    if (!is.array(apps) || apps.length === 0 || apps.length > MAX_USAGE_APPS)
      throw new InvalidInputError(`usage.record.apps: expected 1–${MAX_USAGE_APPS} per-app summaries`)
    const seen = new Set<string>()
    const list: AppUsage[] = apps.map((a, i) => {
      const u = new Body(a, `usage.record.apps[${i}]`, ['app', 'requests', 'bytesIn', 'bytesOut'])
      const app = u.str('app', NAME_RE, 'an app name')
      if (seen.has(app)) throw new InvalidInputError(`usage.record.apps: app "${app}" is listed twice`)
      seen.add(app)
      return { app, requests: u.uint('requests'), bytesIn: u.uint('bytesIn'), bytesOut: u.uint('bytesOut') }
    })
    return { nodeId: nodeId(b, 'nodeId'), from, to, apps: list }
  }
}

/** A bounded list of strings (args, env): ≤ MAX_APP_ITEMS items of ≤ MAX_APP_ITEM_BYTES UTF-8 bytes, no NUL. */
function strList(v: Canonical, what: string): string[] {
  if (!is.array(v) || v.length > MAX_APP_ITEMS)
    throw new InvalidInputError(`${what}: expected a list of up to ${MAX_APP_ITEMS} strings`)
  for (const x of v) {
    if (typeof x !== 'string' || x.includes('\0') || Buffer.byteLength(x) > MAX_APP_ITEM_BYTES)
      throw new InvalidInputError(`${what}: every item must be a string of ≤ ${MAX_APP_ITEM_BYTES} bytes without NUL`)
  }
  return v as string[]
}

function appLimits(v: Canonical): AppLimits {
  const b = new Body(v, 'app.publish.limits', ['memoryBytes', 'pids', 'nanoCpus'])
  const memoryBytes = b.uint('memoryBytes', MAX_APP_MEMORY)
  if (memoryBytes < MIN_APP_MEMORY)
    throw new InvalidInputError(`app.publish.limits.memoryBytes: expected ${MIN_APP_MEMORY}–${MAX_APP_MEMORY} bytes`)
  const pids = b.uint('pids', MAX_APP_PIDS)
  if (pids === 0) throw new InvalidInputError(`app.publish.limits.pids: expected 1–${MAX_APP_PIDS}`)
  const out: AppLimits = { memoryBytes, pids }
  if (b.has('nanoCpus')) {
    // at most 1024 CPUs (Docker's NanoCpus unit: 1e-9 CPU)
    const n = b.uint('nanoCpus', 1024 * 1e9)
    if (n === 0) throw new InvalidInputError('app.publish.limits.nanoCpus: expected > 0 (leave it out for no limit)')
    out.nanoCpus = n
  }
  return out
}

/**
 * node.register endpoint: https:// on any host, or http:// only on a loopback host (127.0.0.0/8,
 * [::1], localhost: plain HTTP is for local use). No credentials, query or fragment.
 */
export function parseEndpoint(v: Canonical, what: string): string {
  if (typeof v !== 'string' || v.length > MAX_ENDPOINT_CHARS || !/^[\x21-\x7e]+$/.test(v))
    throw new InvalidInputError(`${what}: expected a URL of ≤ ${MAX_ENDPOINT_CHARS} printable ASCII characters`)
  if (/[?#@\\]/.test(v)) throw new InvalidInputError(`${what}: a node endpoint has no credentials, query or fragment`)
  let u: URL
  try {
    u = new URL(v)
  } catch {
    throw new InvalidInputError(`${what}: ${JSON.stringify(v.slice(0, 64))} is not a URL`)
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new InvalidInputError(`${what}: expected an https:// URL (http:// only on a loopback host)`)
  if (!v.toLowerCase().startsWith(`${u.protocol}//`) || u.hostname === '')
    throw new InvalidInputError(`${what}: expected ${u.protocol}//host[:port][/path]`)
  if (u.protocol === 'http:' && !isLoopbackHost(u.hostname))
    throw new InvalidInputError(
      `${what}: plain http:// is allowed only on a loopback host (127.0.0.1, [::1], localhost); use https://`
    )
  return v
}

function isLoopbackHost(h: string): boolean {
  return h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

/**
 * Accepts exactly what CID.parse(s) (no base argument) accepts, without its per-CID string cache
 * (a WeakMap entry per parsed CID, the larger part of its cost): base58btc v0 ("Q…"), or a
 * base58btc/base32/base36 multibase string of a CID whose bytes decode with nothing left over.
 */
export function isCidString(s: string): boolean {
  try {
    let bytes: Uint8Array
    switch (s[0]) {
      case 'Q':
        bytes = base58btc.decode(`${base58btc.prefix}${s}`)
        break
      case base58btc.prefix:
        bytes = base58btc.decode(s)
        break
      case base32.prefix:
        bytes = base32.decode(s)
        break
      case base36.prefix:
        bytes = base36.decode(s)
        break
      default:
        return false
    }
    const cid = CID.decode(bytes)
    return cid.version !== 0 || s[0] === 'Q'
  } catch {
    return false
  }
}

export function isTxType(t: string): t is TxType {
  return (TX_TYPES as readonly string[]).includes(t)
}

export function parseBody<T extends TxType>(type: T, body: Canonical): TxBodies[T] {
  return (parsers[type] as (v: Canonical) => TxBodies[T])(body)
}
