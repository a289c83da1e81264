// The TPM, as the rest of quorate sees it (docs/CONTRACTS.md "attestation/tpm"). A thin layer
// over our Node-API addon (src/quorate_tpm.cc: tpm2-tss ESYS + TCTI loader): input validation,
// TPM-neutral names (hash algorithms, EK kinds), per-connection queuing, and TpmError.
//
//   const tpm = await openTpm({ tcti: 'swtpm:host=127.0.0.1,port=2321' })
//   const ak = await tpm.ensureAk()
//   const { attest, signature } = await tpm.quote({ nonce, pcrs: [{ hash: 'sha256', pcrs: [0, 1, 2] }] })
//   await tpm.close()
//
// Every call is queued per connection (one TPM command stream at a time; the addon also holds a
// mutex) and runs off the event loop. No call leaves a transient object or session in the TPM.
// Several connections (processes) may share one TPM: with /dev/tpmrm0 the kernel resource manager
// isolates them; swtpm has no resource manager, but its TCTI connects per command, so clients
// interleave command by command and see each other's transient objects (3 slots in all).
import { createContext, decodeRc as nativeDecodeRc } from './native.js'
import type { NativeContext, NativePublic, NativeSelection } from './native.js'
import { QuorateError, ConfigError, InvalidInputError } from '../../encoding/errors.ts'
import type { Disposition } from '../../encoding/errors.ts'
import { silentLogger } from '../../encoding/log.ts'
import type { Logger } from '../../encoding/log.ts'
import { DIGEST_SIZE as HASH_SIZE, TPM_ALG_HASH as HASH_ID, hashAlgFromId, isHashAlg, type HashAlg } from '../algs.ts'

export type { HashAlg }
export interface PcrSelection {
  readonly hash: HashAlg
  readonly pcrs: readonly number[]
}
export interface PcrBankValues {
  readonly hash: HashAlg
  readonly values: ReadonlyMap<number, Uint8Array>
}
export interface PcrReadResult {
  readonly updateCounter: number
  readonly banks: readonly PcrBankValues[]
}
/** The EKs swtpm certifies: RSA-2048 (template L-1, cert at NV 0x01c00002) and ECC P-384 (template H-3, cert at NV 0x01c00016). */
export type EkKind = 'rsa2048' | 'ecc-p384'
export interface ClockInfo {
  clock: bigint
  resetCount: number
  restartCount: number
  safe: boolean
}
export interface TpmInfo {
  /** TPM_PT_MANUFACTURER as ASCII, NULs and trailing spaces removed (swtpm: "IBM"). */
  manufacturer: string
  /** TPM_PT_VENDOR_STRING_1..4 concatenated, NULs removed (swtpm: "SW  TPM"). */
  vendor: string
  /** TPM_PT_FIRMWARE_VERSION_1/2 as four 16-bit parts "a.b.c.d". */
  firmwareVersion: string
  /** A software TPM (swtpm / the IBM simulator): fine for tests, worthless as a root of trust. */
  isSoftware: boolean
  /** TPM_PT_REVISION / 100, e.g. 1.64, and TPM_PT_YEAR. */
  specRevision?: number
  specYear?: number
}
export interface AkInfo {
  handle: number
  /** TPMT_PUBLIC bytes (marshaled). */
  public: Uint8Array
  /** TPM2B_NAME body: nameAlg (0x000b) ‖ sha256(TPMT_PUBLIC). */
  name: Uint8Array
  /** True when ensureAk created it now, false when an existing AK was reused. */
  created?: boolean
}
export interface QuoteResult {
  /** TPMS_ATTEST bytes exactly as signed (TPM2B_ATTEST body). */
  attest: Uint8Array
  /** TPMT_SIGNATURE bytes (marshaled). */
  signature: Uint8Array
}
export interface TransientState {
  /** Transient objects loaded in the TPM (0x80xxxxxx). */
  objects: number[]
  /** Loaded (0x02xxxxxx / 0x03xxxxxx) and context-saved sessions. */
  sessions: number[]
}

export interface Tpm {
  readonly tcti: string
  info(): Promise<TpmInfo>
  getRandom(bytes: number): Promise<Uint8Array>
  readClock(): Promise<ClockInfo>
  /** Any selection; the TPM returns ≤ 8 digests per PCR_Read, so this loops (one PCR state: restarts if the update counter moves). */
  pcrRead(selection: readonly PcrSelection[]): Promise<PcrReadResult>
  /** TPM2_PCR_Extend of each bank given (digests for banks the TPM has not allocated are ignored by the TPM). */
  pcrExtend(pcr: number, digests: Partial<Record<HashAlg, Uint8Array>>): Promise<void>
  /** TPMT_PUBLIC of the EK created from the standard TCG template (default rsa2048); cached per connection. */
  ekPublic(kind?: EkKind): Promise<Uint8Array>
  /** DER EK certificate read from its NV index in chunks, or undefined when the TPM has none. */
  ekCertificate(kind?: EkKind): Promise<Uint8Array | undefined>
  /**
   * The AK (restricted ECDSA P-256 / SHA-256 signing key, created under the EK) at a persistent
   * handle (default DEFAULT_AK_HANDLE). Reuses an existing AK there; refuses (TpmError) when the
   * handle holds some other key.
   */
  ensureAk(opts?: { handle?: number; ekKind?: EkKind }): Promise<AkInfo>
  quote(opts: { nonce: Uint8Array; pcrs: readonly PcrSelection[]; akHandle?: number }): Promise<QuoteResult>
  /** TPM2_ActivateCredential with the AK and the EK (policy session); returns the decrypted secret. */
  activateCredential(opts: {
    credentialBlob: Uint8Array
    encryptedSecret: Uint8Array
    ekKind?: EkKind
    akHandle?: number
  }): Promise<Uint8Array>
  /** Transient objects and sessions now in the TPM (leak checks; a resource manager hides others' objects). */
  transientHandles(): Promise<TransientState>
  /** Persistent object handles (0x81xxxxxx). */
  persistentHandles(): Promise<number[]>
  /** Removes an owner-hierarchy persistent object; false when none was there. */
  evict(handle: number): Promise<boolean>
  close(): Promise<void>
}

/**
 * Default persistent handle of quorate's AK: 0x81000A01, in the owner range 0x81000000–0x817FFFFF
 * and outside the TCG-reserved EK handles (0x81010001 RSA EK, 0x81010016 P-384 EK, …) and the
 * usual SRK handle 0x81000001.
 */
export const DEFAULT_AK_HANDLE = 0x81000a01
/** TCG EK Credential Profile: NV indexes of the EK certificates. */
export const EK_CERT_NV_INDEX: Readonly<Record<EkKind, number>> = { rsa2048: 0x01c00002, 'ecc-p384': 0x01c00016 }

const EK_KIND_ID: Readonly<Record<EkKind, number>> = { rsa2048: 0, 'ecc-p384': 1 }

// TPM 2.0 Part 2 §6.6: warnings that mean "try again", and the TCTI layer's retryable codes.
const RETRY_RCS = new Set([
  0x901 /* MEMORY */, 0x902 /* OBJECT_MEMORY */, 0x903 /* SESSION_MEMORY */, 0x908 /* YIELDED */, 0x909 /* CANCELED */,
  0x90a /* TESTING */, 0x920 /* NV_RATE */, 0x922 /* RETRY */
])
// Warnings after which the command was not executed and that clear by themselves soon: slots taken
// by another client of a TPM without resource manager (swtpm), self-test, RETRY. Retried in place.
const BUSY_RCS = new Set([0x901, 0x902, 0x903, 0x908, 0x90a, 0x922])
const BUSY_ATTEMPTS = 8
const TCTI_LAYER = 0x0a0000
const TSS_TRY_AGAIN = 9
const TSS_IO_ERROR = 10

/** A TPM command (or the TSS around it) failed. `rc` is the TSS2_RC, `rcText` its Tss2_RC_Decode text. */
export class TpmError extends QuorateError {
  override readonly code: string = 'ERR_TPM'
  override readonly disposition: Disposition
  readonly rc: number
  readonly rcText: string
  /** The ESYS function or step that failed, e.g. `Esys_Quote`. */
  readonly op: string
  constructor(message: string, opts: { rc: number; rcText: string; op: string; cause?: unknown }) {
    super(message, { cause: opts.cause })
    this.rc = opts.rc
    this.rcText = opts.rcText
    this.op = opts.op
    this.disposition = classify(opts.rc)
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), rc: this.rc, rcText: this.rcText, op: this.op }
  }
}

function classify(rc: number): Disposition {
  if (rc === 0) return 'stop'
  const layer = rc & 0xff0000
  if (layer === 0 && RETRY_RCS.has(rc & 0xfff)) return 'retry'
  if (layer === TCTI_LAYER && ((rc & 0xffff) === TSS_TRY_AGAIN || (rc & 0xffff) === TSS_IO_ERROR)) return 'retry'
  // A format-one error about a command parameter (bit 6): the input was refused (e.g. a
  // credential blob that fails the integrity check in ActivateCredential).
  if (layer === 0 && (rc & 0x80) !== 0 && (rc & 0x40) !== 0) return 'reject'
  return 'stop'
}

// ---- the native addon (native.js / native.d.ts: the publishable part of this package) ----
/** Tss2_RC_Decode of a TSS2_RC. */
export function decodeRc(rc: number): string {
  return nativeDecodeRc(rc)
}

/** A TPM warning meaning "not executed, try again shortly" (see BUSY_RCS). */
/** TPM 2.0 Part 2 §6.6.3: the NV index or persistent handle is already defined. */
const TPM_RC_NV_DEFINED = 0x14c

function isBusy(err: unknown): boolean {
  const rc = (err as { rc?: unknown } | null)?.rc
  return typeof rc === 'number' && (rc & 0xff0000) === 0 && BUSY_RCS.has(rc & 0xfff)
}

/** A TCTI-layer I/O failure: the connection to the TPM is gone (not a TPM error). */
function isTransportError(err: unknown): boolean {
  const rc = (err as { rc?: unknown } | null)?.rc
  return typeof rc === 'number' && (rc & 0xff0000) === TCTI_LAYER && (rc & 0xffff) === TSS_IO_ERROR
}

function toTpmError(err: unknown): unknown {
  if (err instanceof QuorateError) return err
  if (err instanceof Error && typeof (err as { rc?: unknown }).rc === 'number') {
    const e = err as Error & { rc: number; rcText: string; op: string }
    return new TpmError(e.message, { rc: e.rc, rcText: e.rcText, op: e.op, cause: err })
  }
  if (err instanceof TypeError || err instanceof RangeError) return new InvalidInputError(err.message, { cause: err })
  return err
}

// ---- input validation (nothing reaches the TPM unless it passes) ----
function hashAlg(h: unknown): HashAlg {
  if (!isHashAlg(h)) throw new InvalidInputError(`unknown hash algorithm ${String(h)} (sha1, sha256, sha384, sha512)`)
  return h
}

function ekKind(k: EkKind | undefined): EkKind {
  const kind = k ?? 'rsa2048'
  if (!Object.hasOwn(EK_KIND_ID, kind))
    throw new InvalidInputError(`unknown EK kind ${String(kind)} (rsa2048, ecc-p384)`)
  return kind
}

function persistentHandle(h: number | undefined, what: string): number {
  const handle = h ?? DEFAULT_AK_HANDLE
  if (!Number.isInteger(handle) || handle < 0x81000000 || handle > 0x817fffff) {
    throw new InvalidInputError(`${what} must be an owner persistent handle 0x81000000–0x817fffff, got ${String(h)}`)
  }
  return handle
}

function bytes(b: unknown, what: string, max: number): Uint8Array {
  if (!(b instanceof Uint8Array)) throw new InvalidInputError(`${what} must be a Uint8Array`)
  if (b.byteLength > max) throw new InvalidInputError(`${what} is ${b.byteLength} bytes; at most ${max} allowed`)
  return b
}

/** Merges the selection per bank (first-mention order), validating names and indexes. */
function nativeSelection(sel: readonly PcrSelection[]): NativeSelection {
  if (!Array.isArray(sel)) throw new InvalidInputError('PCR selection must be an array of { hash, pcrs }')
  const banks = new Map<HashAlg, Set<number>>()
  for (const s of sel) {
    const h = hashAlg(s?.hash)
    if (!Array.isArray(s.pcrs)) throw new InvalidInputError(`pcrs of the ${h} selection must be an array`)
    const set = banks.get(h) ?? new Set<number>()
    for (const p of s.pcrs) {
      if (!Number.isInteger(p) || p < 0 || p > 31)
        throw new InvalidInputError(`PCR index ${String(p)} out of range 0–31`)
      set.add(p)
    }
    banks.set(h, set)
  }
  return [...banks].map(([h, set]) => [HASH_ID[h], [...set].sort((a, b) => a - b)])
}

/** Parses a PCR range list "0-9,13" into indexes (CLI and config helper). */
export function parsePcrList(s: string): number[] {
  const out = new Set<number>()
  for (const part of s
    .split(',')
    .map(p => p.trim())
    .filter(p => p !== '')) {
    const m = /^(\d{1,2})(?:-(\d{1,2}))?$/.exec(part)
    if (m === null) throw new InvalidInputError(`bad PCR list element "${part}" (expected e.g. 0-9,13)`)
    const a = Number(m[1])
    const b = m[2] === undefined ? a : Number(m[2])
    if (a > b || b > 31) throw new InvalidInputError(`bad PCR range "${part}" (0–31, low-high)`)
    for (let i = a; i <= b; i++) out.add(i)
  }
  return [...out].sort((x, y) => x - y)
}

function ascii4(v: number): string {
  let s = ''
  for (const shift of [24, 16, 8, 0]) {
    const c = (v >>> shift) & 0xff
    if (c !== 0) s += String.fromCharCode(c)
  }
  return s
}

// TPM 2.0 Part 2 §6.13 TPM_PT: PT_FIXED group
const PT_FIXED = 0x100
const PT = {
  REVISION: 0x102,
  YEAR: 0x104,
  MANUFACTURER: 0x105,
  VENDOR_1: 0x106,
  VENDOR_4: 0x109,
  FIRMWARE_1: 0x10b,
  FIRMWARE_2: 0x10c
}

class TpmConnection implements Tpm {
  readonly tcti: string
  readonly #ctx: NativeContext
  readonly #log: Logger
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false
  #broken = false
  readonly #ekPublic = new Map<EkKind, Promise<Uint8Array>>()

  constructor(tcti: string, ctx: NativeContext, log: Logger) {
    this.tcti = tcti
    this.#ctx = ctx
    this.#log = log
  }

  /**
   * Runs one addon job after the previous one settled (per-connection serialization).
   * When the transport broke (TCTI I/O error: the TPM daemon restarted or went away), the
   * connection is reopened and the job retried once if it is `idempotent` (reads, quotes);
   * state-changing jobs (extend, AK creation, evict, ActivateCredential) are not retried, as the
   * TPM may have executed them. If reopening fails, the next call tries again.
   */
  #run<T>(fn: (ctx: NativeContext) => Promise<T>, idempotent = true): Promise<T> {
    if (this.#closed) return Promise.reject(new ConfigError(`TPM connection ${this.tcti} is closed`))
    const p = this.#queue
      .then(async () => {
        for (let attempt = 0, busy = 0; ; attempt++) {
          if (this.#broken) await this.#reopen()
          try {
            return await fn(this.#ctx)
          } catch (err) {
            if (isBusy(err) && ++busy < BUSY_ATTEMPTS) {
              attempt--
              await new Promise(resolve => setTimeout(resolve, 2 + Math.random() * 8 * busy))
              continue
            }
            if (!isTransportError(err)) throw err
            this.#broken = true // ESYS refuses further calls after a failed transmit: reopen before the next one
            if (!idempotent || attempt >= 1) throw err
            this.#log.warn('TPM transport broke; reconnecting', { tcti: this.tcti, error: (err as Error).message })
          }
        }
      })
      .catch((err: unknown) => {
        throw toTpmError(err)
      })
    this.#queue = p.catch(() => {})
    return p
  }

  async #reopen(): Promise<void> {
    await this.#ctx.close()
    await this.#ctx.open(this.tcti)
    this.#broken = false
  }

  async info(): Promise<TpmInfo> {
    const props = new Map(await this.#run(c => c.properties(PT_FIXED, 0x80)))
    const get = (p: number): number => props.get(p) ?? 0
    const manufacturer = ascii4(get(PT.MANUFACTURER)).trimEnd()
    let vendor = ''
    for (let p = PT.VENDOR_1; p <= PT.VENDOR_4; p++) vendor += ascii4(get(p))
    const f1 = get(PT.FIRMWARE_1)
    const f2 = get(PT.FIRMWARE_2)
    const firmwareVersion = `${f1 >>> 16}.${f1 & 0xffff}.${f2 >>> 16}.${f2 & 0xffff}`
    // swtpm/libtpms and the IBM reference simulator report "IBM"; Microsoft's simulator "MSFT"
    // with vendor "SIM"/"Simulator"-like strings. Virtual TPMs of clouds (GOOG, MSFT Hyper-V) are not flagged.
    const isSoftware = manufacturer === 'IBM' || /\bSW\b|SIM/i.test(vendor)
    return {
      manufacturer,
      vendor: vendor.trim(),
      firmwareVersion,
      isSoftware,
      specRevision: get(PT.REVISION) / 100,
      specYear: get(PT.YEAR)
    }
  }

  async getRandom(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0 || n > 65536)
      throw new InvalidInputError(`getRandom: byte count ${String(n)} out of range 0–65536`)
    if (n === 0) return new Uint8Array(0)
    return await this.#run(c => c.getRandom(n))
  }

  async readClock(): Promise<ClockInfo> {
    const t = await this.#run(c => c.readClock())
    return { clock: t.clock, resetCount: t.resetCount, restartCount: t.restartCount, safe: t.safe }
  }

  async pcrRead(selection: readonly PcrSelection[]): Promise<PcrReadResult> {
    const sel = nativeSelection(selection)
    if (sel.every(([, pcrs]) => pcrs.length === 0))
      return {
        updateCounter: 0,
        banks: sel.map(([id]) => ({ hash: hashAlgFromId(id) ?? 'sha256', values: new Map() }))
      }
    const r = await this.#run(c => c.pcrRead(sel))
    const banks = sel.map(([id]) => ({ id, values: new Map<number, Uint8Array>() }))
    for (const [alg, pcr, d] of r.values) banks.find(b => b.id === alg)?.values.set(pcr, d)
    return {
      updateCounter: r.updateCounter,
      banks: banks.map(b => ({
        hash: hashAlgFromId(b.id) ?? 'sha256',
        values: new Map([...b.values].sort((x, y) => x[0] - y[0]))
      }))
    }
  }

  async pcrExtend(pcr: number, digests: Partial<Record<HashAlg, Uint8Array>>): Promise<void> {
    if (!Number.isInteger(pcr) || pcr < 0 || pcr > 31)
      throw new InvalidInputError(`PCR index ${String(pcr)} out of range 0–31`)
    const list: Array<[number, Uint8Array]> = []
    for (const [k, v] of Object.entries(digests ?? {})) {
      if (v === undefined) continue
      const h = hashAlg(k)
      const d = bytes(v, `${h} digest`, 64)
      if (d.byteLength !== HASH_SIZE[h])
        throw new InvalidInputError(`${h} digest must be ${HASH_SIZE[h]} bytes, got ${d.byteLength}`)
      list.push([HASH_ID[h], d])
    }
    if (list.length === 0) throw new InvalidInputError('pcrExtend: at least one digest is required')
    await this.#run(c => c.pcrExtend(pcr, list), false)
  }

  async ekPublic(kind?: EkKind): Promise<Uint8Array> {
    const k = ekKind(kind)
    let p = this.#ekPublic.get(k)
    if (p === undefined) {
      p = this.#run(c => c.ekPublic(EK_KIND_ID[k]))
      this.#ekPublic.set(k, p)
      p.catch(() => {
        this.#ekPublic.delete(k)
      })
    }
    return (await p).slice()
  }

  async ekCertificate(kind?: EkKind): Promise<Uint8Array | undefined> {
    const k = ekKind(kind)
    return await this.#run(c => c.nvRead(EK_CERT_NV_INDEX[k]))
  }

  async ensureAk(opts: { handle?: number; ekKind?: EkKind } = {}): Promise<AkInfo> {
    const handle = persistentHandle(opts.handle, 'AK handle')
    const k = ekKind(opts.ekKind)
    // Two clients racing to create the AK: the loser's EvictControl fails with NV_DEFINED, and the
    // native code then reads the winner's AK back — unless that read found the TPM's slots busy.
    // Looking again is then safe: the handle is taken, so the next call reuses what is there.
    let r: NativePublic
    for (let attempt = 1; ; attempt++) {
      try {
        r = await this.#run(c => c.ensureAk(handle, EK_KIND_ID[k]), false)
        break
      } catch (err) {
        if (attempt >= 3 || (err as { rc?: unknown }).rc !== TPM_RC_NV_DEFINED) throw err
      }
    }
    if (r.created === true)
      this.#log.info('created and persisted the AK', { handle: `0x${handle.toString(16)}`, ek: k })
    return { handle: r.handle, public: r.public, name: r.name, created: r.created === true }
  }

  async quote(opts: { nonce: Uint8Array; pcrs: readonly PcrSelection[]; akHandle?: number }): Promise<QuoteResult> {
    const handle = persistentHandle(opts.akHandle, 'AK handle')
    const nonce = bytes(opts.nonce, 'nonce', 64)
    const sel = nativeSelection(opts.pcrs)
    return await this.#run(c => c.quote(handle, nonce, sel))
  }

  async activateCredential(opts: {
    credentialBlob: Uint8Array
    encryptedSecret: Uint8Array
    ekKind?: EkKind
    akHandle?: number
  }): Promise<Uint8Array> {
    const handle = persistentHandle(opts.akHandle, 'AK handle')
    const k = ekKind(opts.ekKind)
    const blob = bytes(opts.credentialBlob, 'credentialBlob', 66 + 2 + 64) // TPM2B_ID_OBJECT: integrity HMAC + encrypted TPM2B_DIGEST
    const secret = bytes(opts.encryptedSecret, 'encryptedSecret', 512)
    if (blob.byteLength === 0 || secret.byteLength === 0)
      throw new InvalidInputError('credentialBlob and encryptedSecret must not be empty')
    return await this.#run(c => c.activateCredential(handle, EK_KIND_ID[k], blob, secret), false)
  }

  async transientHandles(): Promise<TransientState> {
    return await this.#run(async c => {
      const objects = await c.handles(0x80000000)
      const loaded = await c.handles(0x02000000)
      const saved = await c.handles(0x03000000)
      return { objects, sessions: [...loaded, ...saved] }
    })
  }

  async persistentHandles(): Promise<number[]> {
    return await this.#run(c => c.handles(0x81000000))
  }

  async evict(handle: number): Promise<boolean> {
    const h = persistentHandle(handle, 'handle')
    return await this.#run(c => c.evict(h), false)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const p = this.#queue.then(async () => {
      await this.#ctx.close()
    }) // after queued jobs; no reopen
    this.#queue = p.catch(() => {})
    await p.catch((err: unknown) => {
      throw toTpmError(err)
    })
    this.#log.debug('closed', { tcti: this.tcti })
  }
}

/** The TCTI to use when none is given: QUORATE_TCTI, then TPM2TOOLS_TCTI, then device:/dev/tpmrm0. */
export function defaultTcti(env: NodeJS.ProcessEnv = process.env): string {
  const t = env.QUORATE_TCTI ?? env.TPM2TOOLS_TCTI
  return t !== undefined && t !== '' ? t : 'device:/dev/tpmrm0'
}

/** Opens a TPM by TCTI string (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `tabrmd:`, …). */
export async function openTpm(opts: { tcti?: string; logger?: Logger } = {}): Promise<Tpm> {
  const tcti = opts.tcti ?? defaultTcti()
  if (typeof tcti !== 'string' || tcti === '' || tcti.length > 4096 || tcti.includes('\0'))
    throw new InvalidInputError('tcti must be a non-empty string')
  const log = (opts.logger ?? silentLogger('quorate')).child('attestation').child('tpm')
  let ctx: NativeContext
  try {
    ctx = createContext()
  } catch (err) {
    throw new ConfigError((err as Error).message, { cause: err })
  }
  try {
    await ctx.open(tcti)
  } catch (err) {
    const e = toTpmError(err)
    if (e instanceof TpmError) {
      throw new TpmError(
        `cannot open the TPM at "${tcti}": ${e.message}. Check QUORATE_TCTI / --tcti and that the TPM (or swtpm) is reachable.`,
        { rc: e.rc, rcText: e.rcText, op: e.op, cause: err }
      )
    }
    throw e
  }
  log.debug('opened', { tcti })
  return new TpmConnection(tcti, ctx, log)
}
