// Pinned TLS connections: the handshake completes, the server's certificate is checked against
// what the chain certified — sha256 of its SubjectPublicKeyInfo equal to NodeRecord.tlsKey — and
// only then is the socket handed to HTTP. A server with any other key (a man in the middle with
// its own certificate) is disconnected before a single request byte is written: the request does
// not exist on the socket until `PinnedAgent.createConnection` calls back with it.
//
// The certificate's chain is not checked against any CA (nodes' certificates are self-signed):
// the pin replaces it. TLS 1.3's CertificateVerify proves the server holds the pinned key.
// Session resumption is off, so every connection shows its certificate.
import { Agent as HttpsAgent, type AgentOptions } from 'node:https'
import { connect, type TLSSocket } from 'node:tls'
import type { X509Certificate } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { ClientRequestArgs } from 'node:http'
import { equal, sha256, toHex } from '../../encoding/bytes.ts'
import { NodeUnreachableError, TlsIdentityError, TlsKeyMismatchError } from './errors.ts'
import { parseNodeCertificate } from '../tls.ts'

/** What a certificate says about itself (agent/tls.ts writes the node id and chain id extension). */
export interface TlsPeerIdentity {
  /** sha256 of the DER SubjectPublicKeyInfo. */
  readonly spkiSha256: Uint8Array
  readonly nodeId?: string
  readonly chainId?: string
}

/** Reads the node id / chain id extension of a DER certificate (agent/tls.ts); undefined fields when absent. */
export type CertificateIdentityParser = (der: Uint8Array) => { nodeId?: string; chainId?: string }

/**
 * The default parser: agent/tls.ts's node identity extension. A certificate without one (or a
 * malformed one) names nobody; the TLS key check still decides, and a URL lookup needs a name.
 */
export const nodeCertificateIdentity: CertificateIdentityParser = der => {
  try {
    const c = parseNodeCertificate(der)
    return { nodeId: c.nodeId, chainId: c.chainId }
  } catch {
    return {}
  }
}

export function spkiSha256(cert: X509Certificate): Uint8Array {
  return sha256(new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' })))
}

export function peerIdentity(socket: TLSSocket, parse?: CertificateIdentityParser): TlsPeerIdentity {
  const cert = socket.getPeerX509Certificate()
  if (cert === undefined) throw new TlsIdentityError(undefined, 'the server presented no certificate')
  const spki = spkiSha256(cert)
  const ids = parse?.(new Uint8Array(cert.raw)) ?? {}
  return { spkiSha256: spki, ...ids }
}

/** What a connection must present. */
export interface Pin {
  readonly nodeId: string
  readonly chainId: string
  readonly tlsKey: Uint8Array
}

export interface TlsConnectOptions {
  host: string
  port: number
  /** SNI; not sent for IP literals. */
  servername?: string
  timeoutMs?: number
  signal?: AbortSignal
}

/** Opens a TLS 1.3 connection and resolves at 'secureConnect' with the peer identity and handshake time. */
export async function openTls(
  opts: TlsConnectOptions,
  parse?: CertificateIdentityParser
): Promise<{ socket: TLSSocket; identity: TlsPeerIdentity; ms: number }> {
  const t0 = performance.now()
  const isIp = /^[\d.]+$|:/.test(opts.host)
  const socket = connect({
    host: opts.host,
    port: opts.port,
    ...(isIp ? {} : { servername: opts.servername ?? opts.host }),
    minVersion: 'TLSv1.3',
    ALPNProtocols: ['http/1.1'],
    // no CA check: the pin (checked by the caller before any byte is written) replaces it
    rejectUnauthorized: false,
    ...(opts.signal === undefined ? {} : { signal: opts.signal })
  })
  const where = `${opts.host}:${opts.port}`
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new NodeUnreachableError(`TLS handshake with ${where} timed out after ${opts.timeoutMs ?? 5000} ms`))
    }, opts.timeoutMs ?? 5000)
    const fail = (err: Error): void => {
      clearTimeout(timer)
      socket.destroy()
      reject(new NodeUnreachableError(`cannot open TLS to ${where}: ${err.message}`, { cause: err }))
    }
    socket.once('error', fail)
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      socket.off('error', fail)
      const ms = performance.now() - t0
      try {
        resolve({ socket, identity: peerIdentity(socket, parse), ms })
      } catch (err) {
        socket.destroy()
        reject(err as Error)
      }
    })
  })
}

/** Throws unless `identity` is the pinned node's: TLS key first, then the certificate's node and chain id. */
export function checkPin(pin: Pin, identity: TlsPeerIdentity): void {
  if (!equal(identity.spkiSha256, pin.tlsKey))
    throw new TlsKeyMismatchError(
      pin.nodeId,
      `the server's TLS key (SPKI sha256 ${toHex(identity.spkiSha256).slice(0, 16)}…) is not the certified one (${toHex(pin.tlsKey).slice(0, 16)}…): a different server answers at this endpoint`
    )
  if (identity.nodeId !== undefined && identity.nodeId !== pin.nodeId)
    throw new TlsIdentityError(pin.nodeId, `the certificate names node ${identity.nodeId}`)
  if (identity.chainId !== undefined && identity.chainId !== pin.chainId)
    throw new TlsIdentityError(pin.nodeId, `the certificate names chain ${identity.chainId}, not ${pin.chainId}`)
}

/** Opens a TLS connection and checks the pin; the socket is destroyed (nothing written) when it fails. */
export async function connectPinned(
  opts: TlsConnectOptions,
  pin: Pin,
  parse?: CertificateIdentityParser
): Promise<{ socket: TLSSocket; ms: number }> {
  const { socket, identity, ms } = await openTls(opts, parse)
  try {
    checkPin(pin, identity)
  } catch (err) {
    socket.destroy()
    throw err
  }
  return { socket, ms }
}

/**
 * A keep-alive HTTPS agent for one node whose every connection is pinned: createConnection opens
 * TLS, checks the pin, and only then gives the socket to the request. Requests on a kept-alive
 * socket reuse the check made when it opened.
 */
export class PinnedAgent extends HttpsAgent {
  readonly pin: Pin
  readonly #parse: CertificateIdentityParser | undefined
  readonly #onHandshake: ((ms: number) => void) | undefined
  constructor(
    pin: Pin,
    opts: AgentOptions & { parse?: CertificateIdentityParser; onHandshake?: (ms: number) => void } = {}
  ) {
    const { parse, onHandshake, ...agentOpts } = opts
    super({ keepAlive: true, maxCachedSessions: 0, ...agentOpts })
    this.pin = pin
    this.#parse = parse
    this.#onHandshake = onHandshake
  }

  // Node's http.Agent accepts an asynchronous createConnection: return nothing, call back later.
  override createConnection(
    options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void
  ): Duplex | null | undefined {
    const host = options.host ?? options.hostname ?? '127.0.0.1'
    const port = Number(options.port ?? 443)
    connectPinned({ host, port, timeoutMs: options.timeout ?? 5000 }, this.pin, this.#parse).then(
      ({ socket, ms }) => {
        this.#onHandshake?.(ms)
        callback?.(null, socket)
      },
      (err: Error) => {
        callback?.(err, undefined as unknown as Duplex)
      }
    )
    return undefined
  }
}
