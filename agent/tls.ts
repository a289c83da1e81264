// The node's TLS identity (issue 14): an ECDSA P-256 key kept in <home>/tls.key (mode 0600, made on
// first start, never sent anywhere) and a self-signed X.509 v3 certificate for it, carrying the
// node id (libp2p peer id) and the chain id in one non-critical extension under quorate's OID arc
// (docs/tls.md). The certificate itself is not what clients trust: a certification round's TPM
// quote binds sha256 of the key's SubjectPublicKeyInfo (attestation/evidence.ts bindingNonce), the
// chain records it on the node with the passing QC (NodeRecord.tlsKey), and a client pins that
// hash — so the dates, names and issuer in the certificate do not matter to anyone.
//
// Also here: what a client needs to check a peer's certificate (parseNodeCertificate,
// checkPeerCertificate, verifyTlsSocket, pinnedCheckServerIdentity) and the HTTPS listener that
// serves a node's tenant and app routes over TLS 1.3 with that key.
import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject
} from 'node:crypto'
import { chmod, open, readFile, stat } from 'node:fs/promises'
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { PeerCertificate, TLSSocket } from 'node:tls'
import * as der from '../encoding/der.ts'
import { equal, sha256, toHex } from '../encoding/bytes.ts'
import { ConfigError, DecodeError, InvalidInputError, TooLargeError } from '../encoding/errors.ts'
import type { Logger } from '../encoding/log.ts'
import { Admission } from './connlimit.ts'
import { listenExplained } from './http.ts'

/**
 * quorate's OID arc: 2.25.<UUID as an integer> (ITU-T X.667 §6.3 / Rec. X.667 — no registration;
 * the UUID a7a3ae23-1647-495b-ba83-f174024f6751 was drawn at random for this project).
 */
export const QUORATE_OID_ARC = '2.25.222830951603173701442400874132822517585'
/** The certificate extension naming the node and its chain: arc.1 (docs/tls.md). */
export const NODE_IDENTITY_OID = `${QUORATE_OID_ARC}.1`

/** ecdsa-with-SHA256 (RFC 5758 §3.2); the AlgorithmIdentifier carries no parameters. */
const ECDSA_SHA256 = '1.2.840.10045.4.3.2'

/** Certificates bigger than this are refused before parsing (a node's is about 500 bytes). */
export const MAX_CERTIFICATE_BYTES = 16 << 10
/** Bounds of the node id and chain id in the extension. */
export const MAX_ID_CHARS = 256

export class TlsCertificateError extends DecodeError {
  override readonly code: string = 'ERR_TLS_CERTIFICATE'
}

/** The peer's TLS key or identity is not the one expected (a man in the middle, or the wrong node). */
export class TlsPinError extends InvalidInputError {
  override readonly code: string = 'ERR_TLS_PIN'
}

// ---- the key ----

/** sha256 of the DER SubjectPublicKeyInfo of a key (what the quote binds and the chain records). */
export function spkiSha256(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  return sha256(new Uint8Array(pub.export({ type: 'spki', format: 'der' })))
}

function checkP256(key: KeyObject, path: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new ConfigError(
      `${path} is not an ECDSA P-256 key (${key.asymmetricKeyType ?? 'unknown'} ${key.asymmetricKeyDetails?.namedCurve ?? ''}); remove it and the agent makes a new one (then certifies it in a new round)`
    )
}

/**
 * The node's TLS key from `path` (PKCS#8 PEM), or a new ECDSA P-256 key written there with mode
 * 0600 (created exclusively: two agents on one home cannot both write one). A key file others can
 * read is refused: the key is what clients pin.
 */
export async function loadOrCreateTlsKey(path: string, log?: Logger): Promise<{ key: KeyObject; created: boolean }> {
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  if (st !== undefined) {
    if (!st.isFile()) throw new ConfigError(`${path} is not a regular file`)
    if ((st.mode & 0o077) !== 0)
      throw new ConfigError(
        `${path} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it, or remove it for a new key`
      )
    if (st.size > 16 << 10) throw new ConfigError(`${path} is ${st.size} bytes, not a TLS key`)
    let key: KeyObject
    try {
      key = createPrivateKey(await readFile(path, 'utf8'))
    } catch (err) {
      throw new ConfigError(`${path}: not a PEM private key (${(err as Error).message})`, { cause: err })
    }
    checkP256(key, path)
    return { key, created: false }
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const fh = await open(path, 'wx', 0o600)
  try {
    await fh.writeFile(pem)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await chmod(path, 0o600) // the umask cannot widen it, but an odd one could narrow it oddly
  log?.info('created a new TLS key', { path, spkiSha256: toHex(spkiSha256(privateKey)) })
  return { key: privateKey, created: true }
}

// ---- the certificate ----

export interface NodeCertificateInit {
  /** The node's TLS private key (ECDSA P-256). */
  readonly key: KeyObject
  readonly nodeId: string
  readonly chainId: string
  readonly notBefore?: Date
  readonly notAfter?: Date
}

function identityExtensionValue(nodeId: string, chainId: string): Uint8Array {
  // NodeIdentity ::= SEQUENCE { version INTEGER (1), nodeId UTF8String, chainId UTF8String }
  return der.sequence(der.integer(1), der.utf8String(nodeId), der.utf8String(chainId))
}

function checkId(s: string, what: string): void {
  if (s.length === 0 || s.length > MAX_ID_CHARS)
    throw new InvalidInputError(`${what} must be 1-${MAX_ID_CHARS} characters`)
}

/**
 * A self-signed X.509 v3 certificate (RFC 5280 §4.1) for the node's key, DER. Subject and issuer
 * are CN=quorate node <nodeId>; extensions: basicConstraints (not a CA), keyUsage
 * digitalSignature (critical), and the node identity extension (not critical, so a client that
 * does not know it still completes the handshake). Validity by default runs from an hour ago for
 * ten years: clients pin the key the chain recorded, not dates.
 */
export function buildNodeCertificate(init: NodeCertificateInit): Uint8Array {
  checkP256(init.key, 'the TLS key')
  checkId(init.nodeId, 'node id')
  checkId(init.chainId, 'chain id')
  const now = Date.now()
  const notBefore = init.notBefore ?? new Date(now - 3600_000)
  const notAfter = init.notAfter ?? new Date(now + 10 * 365 * 24 * 3600_000)
  const serial = new Uint8Array(randomBytes(16))
  serial[0] &= 0x7f // positive, ≤ 20 octets (RFC 5280 §4.1.2.2)
  serial[0] |= 0x01 // and no leading zero byte to strip
  const name = der.sequence(
    der.set(der.sequence(der.oid('2.5.4.3'), der.utf8String(`quorate node ${init.nodeId}`.slice(0, 64))))
  )
  const algorithm = der.sequence(der.oid(ECDSA_SHA256))
  const spki = new Uint8Array(createPublicKey(init.key).export({ type: 'spki', format: 'der' }))
  const extensions = der.sequence(
    der.sequence(der.oid('2.5.29.19'), der.octetString(der.sequence())), // basicConstraints: cA FALSE (default)
    der.sequence(
      der.oid('2.5.29.15'),
      der.boolean(true),
      der.octetString(der.tlv(der.TAG.BIT_STRING, Uint8Array.of(7, 0x80)))
    ), // digitalSignature
    der.sequence(der.oid(NODE_IDENTITY_OID), der.octetString(identityExtensionValue(init.nodeId, init.chainId)))
  )
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // v3
    der.integer(serial),
    algorithm,
    name,
    der.sequence(der.time(notBefore), der.time(notAfter)),
    name,
    spki,
    der.explicit(3, extensions)
  )
  const signature = new Uint8Array(sign('sha256', tbs, { key: init.key, dsaEncoding: 'der' }))
  return der.sequence(tbs, algorithm, der.bitString(signature))
}

/** What a client learns from a node's certificate. */
export interface NodeCertificate {
  /** sha256 of the certificate key's DER SubjectPublicKeyInfo: compare with NodeRecord.tlsKey. */
  readonly spkiSha256: Uint8Array
  readonly nodeId: string
  readonly chainId: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly certificate: X509Certificate
}

/** The extension id's encoded contents, compared as bytes (no OID text per extension). */
const NODE_IDENTITY_OID_BYTES = der.readOne(der.oid(NODE_IDENTITY_OID), der.TAG.OID, 'oid').contents

/**
 * The node identity extension's value (exactly once) and the SubjectPublicKeyInfo's encoding, as
 * the certificate carries it — what the TLS handshake's CertificateVerify is checked with.
 */
function readIdentityExtension(cert: Uint8Array): { nodeId: string; chainId: string; spki: Uint8Array } {
  const what = 'certificate'
  const outer = der.readOne(cert, der.TAG.SEQUENCE, what)
  const parts = der.children(outer.contents, what, 3)
  if (parts.length !== 3 || parts[0].tag !== der.TAG.SEQUENCE)
    throw new TlsCertificateError('certificate: expected SEQUENCE { tbsCertificate, signatureAlgorithm, signature }')
  const tbs = der.children(parts[0].contents, 'tbsCertificate', 10)
  // version [0] EXPLICIT (optional), serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
  const spkiTlv = tbs[tbs[0]?.tag === 0xa0 ? 6 : 5]
  if (spkiTlv?.tag !== der.TAG.SEQUENCE)
    throw new TlsCertificateError('tbsCertificate: no subjectPublicKeyInfo where RFC 5280 §4.1 puts it')
  const spki = parts[0].contents.subarray(spkiTlv.start, spkiTlv.end)
  const exts = tbs.find(t => t.tag === 0xa3)
  if (exts === undefined)
    throw new TlsCertificateError('certificate has no extensions (not a quorate node certificate)')
  const list = der.readOne(exts.contents, der.TAG.SEQUENCE, 'extensions')
  let found: { nodeId: string; chainId: string; spki: Uint8Array } | undefined
  for (const e of der.children(list.contents, 'extensions', 64)) {
    if (e.tag !== der.TAG.SEQUENCE) throw new TlsCertificateError('extensions: an extension is not a SEQUENCE')
    const f = der.children(e.contents, 'extension', 3)
    if (f.length < 2 || f[0].tag !== der.TAG.OID)
      throw new TlsCertificateError('extension: expected { OID, critical?, value }')
    if (!equal(f[0].contents, NODE_IDENTITY_OID_BYTES)) continue
    if (found !== undefined) throw new TlsCertificateError('the node identity extension appears twice')
    const value = f[f.length - 1]
    if (value.tag !== der.TAG.OCTET_STRING || (f.length === 3 && f[1].tag !== der.TAG.BOOLEAN))
      throw new TlsCertificateError('node identity extension: expected { OID, critical?, OCTET STRING }')
    const seq = der.readOne(value.contents, der.TAG.SEQUENCE, 'node identity')
    const v = der.children(seq.contents, 'node identity', 3)
    if (
      v.length !== 3 ||
      v[0].tag !== der.TAG.INTEGER ||
      v[1].tag !== der.TAG.UTF8_STRING ||
      v[2].tag !== der.TAG.UTF8_STRING
    )
      throw new TlsCertificateError('node identity: expected SEQUENCE { version, nodeId, chainId }')
    const version = der.smallInteger(v[0].contents, 'node identity version')
    if (version !== 1) throw new TlsCertificateError(`node identity version ${version} (this client reads 1)`)
    const nodeId = der.utf8Text(v[1].contents, 'node id')
    const chainId = der.utf8Text(v[2].contents, 'chain id')
    if (nodeId.length === 0 || nodeId.length > MAX_ID_CHARS || chainId.length === 0 || chainId.length > MAX_ID_CHARS)
      throw new TlsCertificateError(`node identity: node id and chain id must be 1-${MAX_ID_CHARS} characters`)
    found = { nodeId, chainId, spki }
  }
  if (found === undefined)
    throw new TlsCertificateError(`certificate has no node identity extension (${NODE_IDENTITY_OID})`)
  return found
}

/**
 * Reads a node certificate (DER): the SPKI hash of its key and the node id / chain id extension.
 * Checks the structure, not trust: trust comes from comparing spkiSha256 with what the chain
 * recorded (checkPeerCertificate). Throws TlsCertificateError (or TooLargeError) on anything else.
 */
export function parseNodeCertificate(input: Uint8Array | X509Certificate): NodeCertificate {
  const raw = input instanceof X509Certificate ? new Uint8Array(input.raw) : input
  if (!(raw instanceof Uint8Array)) throw new TlsCertificateError('certificate: expected DER bytes')
  if (raw.length > MAX_CERTIFICATE_BYTES)
    throw new TooLargeError(`certificate of ${raw.length} bytes exceeds ${MAX_CERTIFICATE_BYTES}`)
  let identity: { nodeId: string; chainId: string; spki: Uint8Array }
  try {
    identity = readIdentityExtension(raw)
  } catch (err) {
    if (err instanceof TlsCertificateError) throw err
    throw new TlsCertificateError(`not a node certificate: ${(err as Error).message}`, { cause: err })
  }
  // OpenSSL reads the whole certificate too (what a TLS stack would accept), and its key must be
  // one a TLS 1.3 server can sign with; the hash is of the SPKI bytes as carried (the same bytes
  // Node's key export gives for the node's own uncompressed P-256 key)
  let x509: X509Certificate
  try {
    x509 = input instanceof X509Certificate ? input : new X509Certificate(raw)
  } catch (err) {
    throw new TlsCertificateError(`certificate: ${(err as Error).message}`, { cause: err })
  }
  return {
    spkiSha256: sha256(identity.spki),
    nodeId: identity.nodeId,
    chainId: identity.chainId,
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    certificate: x509
  }
}

/** What a client expects of a node's certificate: the key hash the chain recorded, and who it is. */
export interface PeerExpectation {
  /** NodeRecord.tlsKey: sha256 of the SPKI the certifying round bound. */
  readonly spkiSha256: Uint8Array
  readonly nodeId?: string
  readonly chainId?: string
}

/**
 * Checks a peer certificate against what the chain says: the key's SPKI hash must equal the
 * certified one, and (when given) the extension must name the expected node and chain. Every
 * mismatch is listed. Returns the parsed certificate; throws TlsPinError / TlsCertificateError.
 */
export function checkPeerCertificate(input: Uint8Array | X509Certificate, expected: PeerExpectation): NodeCertificate {
  const c = parseNodeCertificate(input)
  const problems: string[] = []
  if (!equal(c.spkiSha256, expected.spkiSha256))
    problems.push(
      `TLS key ${toHex(c.spkiSha256).slice(0, 16)}… is not the certified key ${toHex(expected.spkiSha256).slice(0, 16)}…`
    )
  if (expected.nodeId !== undefined && c.nodeId !== expected.nodeId)
    problems.push(`certificate names node ${c.nodeId}, expected ${expected.nodeId}`)
  if (expected.chainId !== undefined && c.chainId !== expected.chainId)
    problems.push(`certificate names chain ${c.chainId}, expected ${expected.chainId}`)
  if (problems.length > 0) throw new TlsPinError(`peer certificate refused: ${problems.join('; ')}`)
  return c
}

/**
 * Checks a connected TLS socket before anything is written to it: TLS 1.3, and the peer
 * certificate passes checkPeerCertificate. Use with `rejectUnauthorized: false` (the certificate
 * is self-signed; the handshake still proves the peer holds the key), on 'secureConnect'.
 */
export function verifyTlsSocket(socket: TLSSocket, expected: PeerExpectation): NodeCertificate {
  const protocol = socket.getProtocol()
  if (protocol !== 'TLSv1.3') throw new TlsPinError(`peer negotiated ${protocol ?? 'no TLS'}, TLS 1.3 required`)
  const cert = socket.getPeerX509Certificate()
  if (cert === undefined) throw new TlsPinError('peer presented no certificate')
  return checkPeerCertificate(cert, expected)
}

/**
 * A tls.connect checkServerIdentity that pins the key instead of checking names (for clients that
 * already hold the node's certificate and pass it as `ca`: Node calls checkServerIdentity only
 * after the chain verified).
 */
export function pinnedCheckServerIdentity(
  expected: PeerExpectation
): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    try {
      checkPeerCertificate(new Uint8Array(cert.raw), expected)
      return undefined
    } catch (err) {
      return err as Error
    }
  }
}

// ---- the agent's identity and HTTPS listener ----

export interface TlsIdentity {
  readonly key: KeyObject
  /** DER of the self-signed certificate. */
  readonly certificate: Uint8Array
  readonly spkiSha256: Uint8Array
  readonly created: boolean
}

/** The node's key from <home>/tls.key (made if missing) and a fresh certificate naming node and chain. */
export async function loadTlsIdentity(opts: {
  path: string
  nodeId: string
  chainId: string
  logger?: Logger
}): Promise<TlsIdentity> {
  const { key, created } = await loadOrCreateTlsKey(opts.path, opts.logger)
  return {
    key,
    certificate: buildNodeCertificate({ key, nodeId: opts.nodeId, chainId: opts.chainId }),
    spkiSha256: spkiSha256(key),
    created
  }
}

export function certificatePem(certificate: Uint8Array): string {
  const b64 = Buffer.from(certificate).toString('base64')
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

/** How often the listener closes connections past headersTimeout or requestTimeout. */
const CONNECTIONS_CHECKING_MS = 1000

export interface HttpsApiInit {
  /** host:port; port 0 = any free port. */
  readonly listen: string
  readonly identity: TlsIdentity
  /** The tenant and app routes (the same handler the local HTTP API hands /tenant/ and /app/ to). */
  readonly routes: (path: string) => Handler | undefined
  /**
   * Whether connections are accepted now: false until the chain recorded this key with a passing
   * certification (a new key is never served before its round); a refused connection is closed
   * before the handshake, so nothing is ever signed with an unbound key.
   */
  readonly serving: () => boolean
  readonly logger: Logger
  /**
   * Bounds (STYLE §17): connections at once (default 256), and from one address group (default 64;
   * an IPv4 address, an IPv6 /64: agent/connlimit.ts addressGroup).
   */
  readonly maxConnections?: number
  readonly maxConnectionsPerPeer?: number
  /**
   * New connections (each a TLS handshake, the server's costliest step) one address group may open
   * per second (default 64), and at once after a quiet spell (default 128); more are closed before
   * the handshake. A handshake costs the server ~1 ms of CPU (an ECDSA signature, an ECDH).
   */
  readonly handshakesPerSecond?: number
  readonly handshakeBurst?: number
}

export interface HttpsApi {
  /** https://host:port as clients reach it (node.register endpoint). */
  readonly url: string
  readonly port: number
  /** Connections closed before the handshake: the key not yet certified, the address group over its share or opening too fast. */
  readonly refused: number
  /** Switches new connections to another key and certificate (the key file was replaced). */
  setIdentity(identity: TlsIdentity): void
  stop(): Promise<void>
}

/** The HTTPS listener: TLS 1.3 only, the node's key and certificate, tenant and app routes only. */
export async function startHttpsApi(init: HttpsApiInit): Promise<HttpsApi> {
  const i = init.listen.lastIndexOf(':')
  const host = init.listen.slice(0, i).replace(/^\[(.*)\]$/, '$1')
  const port = Number(init.listen.slice(i + 1))
  let refused = 0
  const context = (id: TlsIdentity) =>
    ({
      key: id.key.export({ type: 'pkcs8', format: 'pem' }),
      cert: certificatePem(id.certificate),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3'
    }) as const
  const server: Server = createServer(
    {
      ...context(init.identity),
      handshakeTimeout: 10_000,
      // Node checks headersTimeout and requestTimeout only this often (default 30 s): a client
      // trickling its headers would hold the connection ~40 s instead of 10
      connectionsCheckingInterval: CONNECTIONS_CHECKING_MS
    },
    (req, res) => {
      const path = (req.url ?? '/').split('?')[0]
      void (async () => {
        try {
          const h = init.routes(path)
          if (h === undefined) {
            const text = JSON.stringify({ error: 'not found', routes: ['/tenant/<image>/…', '/app/<name>/…'] })
            res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
            res.end(text)
            return
          }
          await h(req, res)
        } catch (err) {
          init.logger.warn('https handler failed', { path, err })
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'application/json' })
            res.end(JSON.stringify({ error: (err as Error).message }))
          } else res.destroy()
        }
      })()
    }
  )
  server.maxConnections = init.maxConnections ?? 256
  server.headersTimeout = 10_000
  server.requestTimeout = 60_000
  const admission = new Admission({
    perGroup: init.maxConnectionsPerPeer ?? 64,
    ratePerSecond: init.handshakesPerSecond ?? 64,
    burst: init.handshakeBurst ?? 128
  })
  // before the TLS handshake: a key the chain has not bound is not used at all, no address group
  // holds more than its share of the connections, and none makes the server handshake faster than
  // its rate
  server.prependListener('connection', (socket: Socket) => {
    if (!init.serving() || admission.admit(socket) !== undefined) {
      refused++
      socket.destroy()
    }
  })
  await listenExplained(
    server,
    host,
    port,
    `the HTTPS endpoint cannot listen on ${init.listen}`,
    'give a free one with --https host:port (QUORATE_HTTPS, config httpsListen; port 0 = any free port)'
  )
  const bound = (server.address() as AddressInfo).port
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${bound}`
  init.logger.info('https endpoint listening', { url, spkiSha256: toHex(init.identity.spkiSha256) })
  return {
    url,
    port: bound,
    get refused() {
      return refused
    },
    setIdentity: id => {
      server.setSecureContext(context(id))
      init.logger.info('https endpoint switched to a new TLS key', { spkiSha256: toHex(id.spkiSha256) })
    },
    stop: async () => {
      const closed = new Promise<void>(resolve =>
        server.close(() => {
          resolve()
        })
      )
      server.closeIdleConnections()
      const force = setTimeout(() => {
        server.closeAllConnections()
      }, 2000)
      await closed
      clearTimeout(force)
    }
  }
}
