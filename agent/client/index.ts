// agent/client — how a client reaches an app on a certified node (issues 13 and 14). Contracts
// first (STYLE §2):
//   createClient({ chain, … }) → Client   request(app, { path, method, body, headers }),
//                                         requestUrl(url), verifyNode(id), nodes(), stats(), close()
//   VerifiedChain                         the port it reads the chain through: values proven
//                                         against verified headers (a light client), plus a hint
//                                         of which node ids to look at
//   lightChainView(LightClient, rpcs)     the VerifiedChain clients use (chain/light: headers from genesis)
//   rpcChainView(ChainClient)             a VerifiedChain trusting one RPC's headers (tests only)
//   checkNodeRecord / checkQc             the chain-side checks, data in, data out (verify.ts)
//   PinnedAgent / connectPinned           TLS connections that check the certified key before
//                                         any request byte (tls.ts)
// What is checked, in which order, and what is trusted: docs/clients.md.
export type {
  Client,
  ClientOptions,
  RequestOptions,
  ClientResponse,
  Attempt,
  AttemptOutcome,
  ClientStats
} from './client.ts'
export { createClient, retryAfterMs } from './client.ts'
export type { VerifiedChain } from './chain.ts'
export { rpcChainView, lightChainView } from './chain.ts'
export type { ProvenRead, CertifiedNode, VerifiedNode, RoundInfo } from './verify.ts'
export { checkNodeRecord, checkQc, roundFrom } from './verify.ts'
export type { Pin, TlsPeerIdentity, CertificateIdentityParser, TlsConnectOptions } from './tls.ts'
export { PinnedAgent, connectPinned, openTls, checkPin, nodeCertificateIdentity, spkiSha256 } from './tls.ts'
export type { ClientCheck } from './errors.ts'
export {
  NodeCheckError,
  NodeNotCertifiedError,
  QcCheckError,
  TlsKeyMismatchError,
  TlsIdentityError,
  NoEndpointError,
  UnverifiedChainError,
  AppNotServableError,
  NodeUnreachableError,
  NoNodeServedError
} from './errors.ts'
