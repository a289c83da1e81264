// Hash algorithms as the TPM names them (TPM 2.0 Part 2 §6.3 TPM_ALG_ID) and their digest sizes.
export type HashAlg = 'sha1' | 'sha256' | 'sha384' | 'sha512'

export const HASH_ALGS: readonly HashAlg[] = ['sha1', 'sha256', 'sha384', 'sha512']

/** TPM_ALG_ID values of the hash algorithms (Part 2 §6.3). */
export const TPM_ALG_HASH: Readonly<Record<HashAlg, number>> = {
  sha1: 0x0004,
  sha256: 0x000b,
  sha384: 0x000c,
  sha512: 0x000d
}

export const DIGEST_SIZE: Readonly<Record<HashAlg, number>> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 }

export function hashAlgFromId(id: number): HashAlg | undefined {
  switch (id) {
    case 0x0004:
      return 'sha1'
    case 0x000b:
      return 'sha256'
    case 0x000c:
      return 'sha384'
    case 0x000d:
      return 'sha512'
    default:
      return undefined
  }
}

export function isHashAlg(s: unknown): s is HashAlg {
  return s === 'sha1' || s === 'sha256' || s === 'sha384' || s === 'sha512'
}

/** Number of PCRs of a PC Client TPM (TCG PC Client PTP §4.6: 24 PCRs per bank). */
export const PCR_COUNT = 24
