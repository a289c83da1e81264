// The real MakeCredential for committee members and `quorate verify`: checks that the EK public
// area the node presents is the key in its EK certificate (so only that TPM can decrypt), then
// wraps a fresh 32-byte secret for the AK's name (TPM 2.0 Part 1 §24, Part 3 §12.6).
import { X509Certificate, randomBytes } from 'node:crypto'
import { makeCredential } from '../../attestation/credential.ts'
import { checkEkPublic } from '../../attestation/ekcert.ts'
import { objectName, parsePublic } from '../../attestation/tpm2.ts'
import { InvalidInputError } from '../../encoding/errors.ts'
import type { MakeCredential } from './member.ts'

export function tpmMakeCredential(): MakeCredential {
  return async ({ ekCertificate, ekPublic, akPublic }) => {
    let cert: X509Certificate
    try {
      cert = new X509Certificate(Buffer.from(ekCertificate))
    } catch (err) {
      throw new InvalidInputError(`EK certificate is not X.509 DER: ${(err as Error).message}`, { cause: err })
    }
    const ek = parsePublic(ekPublic)
    checkEkPublic(ek, cert.publicKey)
    const secret = new Uint8Array(randomBytes(32))
    const made = makeCredential({ ekPublic: ek, objectName: objectName(akPublic), credential: secret })
    return {
      credentialBlob: made.credentialBlob,
      encryptedSecret: made.encryptedSecret,
      ekKind: ek.type === 'rsa' ? 'rsa2048' : 'ecc-p384',
      secret
    }
  }
}
