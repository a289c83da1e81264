// Chain account keys: ed25519, stored as libp2p marshals private keys (protobuf), so a node's
// chain account is its libp2p peer id. Signing and verification use node:crypto (≈ 20k sign/s,
// ≈ 7–8k verify/s per core); @libp2p/crypto is used only for the key file format and peer ids.
import { sign as edSign, type KeyObject } from 'node:crypto'
import { readFile, writeFile, mkdir, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { ConfigError, InvalidInputError } from '../encoding/errors.ts'
import { toHex } from '../encoding/bytes.ts'
import { ed25519PrivateKey, publicKeyToPeerId } from '../encoding/ed25519.ts'

/** Peer ids, keys and verification are shared with attestation/quorum (one parser, one cache). */
export { peerIdToPublicKey, publicKeyToPeerId, verifyEd25519 } from '../encoding/ed25519.ts'

/** What signing a transaction needs. */
export interface TxSigner {
  /** Raw 32-byte ed25519 public key (the account). */
  readonly publicKey: Uint8Array
  sign(message: Uint8Array): Uint8Array
}

export interface ChainKey extends TxSigner {
  /** libp2p peer id of this key (base58btc identity multihash, "12D3Koo…"). */
  readonly peerId: string
  /** The private key as @libp2p/crypto `privateKeyToProtobuf` marshals it. */
  readonly protobuf: Uint8Array
}

class Ed25519ChainKey implements ChainKey {
  readonly publicKey: Uint8Array
  readonly peerId: string
  readonly protobuf: Uint8Array
  readonly #key: KeyObject
  constructor(seed: Uint8Array, publicKey: Uint8Array, protobuf: Uint8Array) {
    this.#key = ed25519PrivateKey(seed)
    this.publicKey = publicKey
    this.protobuf = protobuf
    this.peerId = publicKeyToPeerId(publicKey)
  }

  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(edSign(null, message, this.#key))
  }

  toJSON(): Record<string, string> {
    return { peerId: this.peerId, publicKey: toHex(this.publicKey) }
  }
}

export function chainKeyFromProtobuf(bytes: Uint8Array): ChainKey {
  let pk: ReturnType<typeof privateKeyFromProtobuf>
  try {
    pk = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new InvalidInputError('not a libp2p protobuf private key', { cause: err })
  }
  if (pk.type !== 'Ed25519') throw new InvalidInputError(`chain keys must be Ed25519, not ${pk.type}`)
  // libp2p's Ed25519 raw private key is seed (32) ‖ public key (32)
  return new Ed25519ChainKey(pk.raw.subarray(0, 32), pk.publicKey.raw, new Uint8Array(privateKeyToProtobuf(pk)))
}

export async function generateChainKey(): Promise<ChainKey> {
  const pk = await generateKeyPair('Ed25519')
  return chainKeyFromProtobuf(privateKeyToProtobuf(pk))
}

/** Loads a key file; refuses files readable by others (the key is an identity). */
export async function loadChainKey(path: string): Promise<ChainKey> {
  let st: Awaited<ReturnType<typeof stat>>
  try {
    st = await stat(path)
  } catch (err) {
    throw new ConfigError(`no key file at ${path}; create one with \`quorate keys new\``, { cause: err })
  }
  if ((st.mode & 0o077) !== 0)
    throw new ConfigError(
      `key file ${path} is accessible by group/others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`
    )
  return chainKeyFromProtobuf(new Uint8Array(await readFile(path)))
}

/** Writes a key file with mode 0600; never overwrites an existing key unless asked. */
export async function saveChainKey(path: string, key: ChainKey, opts: { overwrite?: boolean } = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  try {
    await writeFile(path, key.protobuf, { mode: 0o600, flag: opts.overwrite === true ? 'w' : 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new ConfigError(`a key already exists at ${path}; refusing to overwrite it`, { cause: err })
    throw err
  }
}
