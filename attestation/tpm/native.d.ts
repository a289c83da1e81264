// Types of the native binding (src/quorate_tpm.cc). All methods return promises settled off the
// event loop; calls on one Context are serialized by a mutex. Failures reject with a NativeError.
// Hash algorithms and ECC curves are TPM_ALG_ID / TPM_ECC_CURVE numbers (sha256 = 0x000b).

/** [hashAlgId, [pcr, ...]] per bank. */
export type NativeSelection = Array<[number, number[]]>

export interface NativeError extends Error {
  /** TSS2_RC (0 when the failure is the binding's own, e.g. "the TPM connection is closed"). */
  rc: number
  /** Tss2_RC_Decode(rc). */
  rcText: string
  /** The ESYS function or step that failed, e.g. "Esys_Quote". */
  op: string
}

export interface NativePublic {
  handle: number
  /** TPMT_PUBLIC, marshaled. */
  public: Uint8Array
  /** TPM2B_NAME body. */
  name: Uint8Array
  /** Whether the key has the AK shape: restricted ECDSA P-256/SHA-256 signing key, no policy. */
  isAk: boolean
  notAkReason: string
  created?: boolean
}

export interface NativeContext {
  /** Tss2_TctiLdr_Initialize(tcti) + Esys_Initialize. */
  open(tcti: string): Promise<void>
  /** Esys_Finalize + Tss2_TctiLdr_Finalize; later calls reject. */
  close(): Promise<void>
  getRandom(bytes: number): Promise<Uint8Array>
  readClock(): Promise<{ time: bigint; clock: bigint; resetCount: number; restartCount: number; safe: boolean }>
  /** TPM2_CAP_TPM_PROPERTIES from `first`, `count` properties: [[property, value], ...]. */
  properties(first: number, count: number): Promise<Array<[number, number]>>
  /** TPM2_CAP_HANDLES of the type of `first` (0x80000000 transient, 0x81000000 persistent, 0x02000000 loaded sessions, ...). */
  handles(first: number): Promise<number[]>
  /** Loops TPM2_PCR_Read past its 8-digest limit; values: [[hashAlgId, pcr, digest], ...]. */
  pcrRead(selection: NativeSelection): Promise<{ updateCounter: number; values: Array<[number, number, Uint8Array]> }>
  pcrExtend(pcr: number, digests: Array<[number, Uint8Array]>): Promise<void>
  /** EK from the TCG template (0 = RSA-2048 L-1, 1 = ECC P-384 H-3), flushed; TPMT_PUBLIC bytes. */
  ekPublic(ekKind: 0 | 1 | number): Promise<Uint8Array>
  /** NV index contents read in TPM2_PT_NV_BUFFER_MAX chunks, or undefined when not defined / not written. */
  nvRead(nvIndex: number): Promise<Uint8Array | undefined>
  readPublic(handle: number): Promise<NativePublic | undefined>
  /** Reuses the AK at `handle` or creates one under the EK and persists it (EvictControl). */
  ensureAk(handle: number, ekKind: 0 | 1 | number): Promise<NativePublic>
  /** Removes an owner persistent object; false when none was there. */
  evict(handle: number): Promise<boolean>
  /** TPM2_Quote with the AK's scheme; TPMS_ATTEST (as signed) and marshaled TPMT_SIGNATURE. */
  quote(
    akHandle: number,
    nonce: Uint8Array,
    selection: NativeSelection
  ): Promise<{ attest: Uint8Array; signature: Uint8Array }>
  /** TPM2_ActivateCredential(AK, EK with a PolicySecret(endorsement) session); returns certInfo. */
  activateCredential(
    akHandle: number,
    ekKind: 0 | 1 | number,
    credentialBlob: Uint8Array,
    encryptedSecret: Uint8Array
  ): Promise<Uint8Array>
}

export interface NativeModule {
  Context: new () => NativeContext
  decodeRc(rc: number): string
}

export const ADDON_PATH: string
export function loadNative(): NativeModule
export function createContext(): NativeContext
export function decodeRc(rc: number): string
