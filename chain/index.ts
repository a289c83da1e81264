// chain/ — the registry ledger. Contracts first: types, then the factories.
//
//   createChainApp        the deterministic state machine (ABCI-shaped; in memory or SQLite)
//   startEmbeddedValidator one-machine validator: blocks, SQLite block store, CometBFT-style RPC
//   startCometValidator   one validator of a CometBFT network: our ABCI app + a supervised cometbft
//   writeTestnet          a local CometBFT testnet (one home per validator)
//   ChainClient           the only way the rest of the project talks to a chain (embedded or CometBFT)
//   buildTx               sign a transaction; keys are libp2p-compatible ed25519 keys
export type {
  TxType,
  TxBodies,
  HashBank,
  PcrRef,
  PcrRefs,
  RefSet,
  ReferenceValues,
  DecodedTx,
  TxResult,
  TxCodeValue,
  VendorRegisterBody,
  EkCaPublishBody,
  EkCaRevokeBody,
  FirmwarePublishBody,
  FirmwareRevokeBody,
  OsPublishBody,
  OsRevokeBody,
  ImagePublishBody,
  ImageRevokeBody,
  NodeRegisterBody,
  AttestRequestBody,
  AttestRecordBody,
  VendorRecord,
  EkCaRecord,
  FirmwareRecord,
  OsRecord,
  OwnerRecord,
  ImageRecord,
  NodeStatus,
  NodeRecord,
  AttestRequestRecord,
  QcRecord,
  EffectiveStatus,
  NodeView,
  SeedView,
  QuorumRules,
  Genesis,
  BlockHeader,
  CertificationParams,
  AdversaryModel,
  QuorumCommitteeInput,
  FaultAppraiser,
  VerifierFaultBody,
  CooldownRecord,
  RoundArchive,
  FaultRecord,
  SilenceRecord
} from './types.ts'
export { TX_TYPES, TX_VERSION, MAX_TX_BYTES, TxCode, DEFAULT_CERTIFICATION, FAULT_CLAIMS } from './types.ts'
export type {
  ChainApp,
  ChainAppOptions,
  AppInfo,
  FinalizeBlockRequest,
  FinalizeBlockResponse,
  QueryRequest,
  QueryResponse,
  ProofOp
} from './app.ts'
export { createChainApp, CODESPACE } from './app.ts'
export type { EmbeddedValidator, EmbeddedValidatorOptions, InitChainHomeOptions } from './validator.ts'
export { startEmbeddedValidator, initChainHome, readGenesis, chainPaths } from './validator.ts'
export type { CometValidator, CometValidatorOptions } from './cometbft/node.ts'
export { startCometValidator } from './cometbft/node.ts'
export type { Testnet, TestnetOptions, TestnetValidator } from './cometbft/testnet.ts'
export { writeTestnet } from './cometbft/testnet.ts'
export type { AbciServer, AbciServerOptions } from './abci/server.ts'
export { startAbciServer } from './abci/server.ts'
export type {
  ChainClientOptions,
  ChainStatus,
  BroadcastResult,
  CommitResult,
  AbciQueryResult,
  BlockInfo,
  TxInfo,
  SendResult
} from './client.ts'
export {
  ChainClient,
  ChainUnavailableError,
  ChainRpcError,
  TxRejectedError,
  ChainQueryError,
  parseTime
} from './client.ts'
export { buildTx, decodeTx, txHash, verifyTxSignature } from './tx.ts'
export type { ChainKey, TxSigner } from './keys.ts'
export {
  generateChainKey,
  loadChainKey,
  saveChainKey,
  chainKeyFromProtobuf,
  peerIdToPublicKey,
  publicKeyToPeerId,
  verifyEd25519
} from './keys.ts'
export { committeeSeed } from './seed.ts'
export { verifyStateProof, PROOF_TYPE } from './store.ts'
export type { ReplayResult } from './replay.ts'
export { replayBlockLog, NoBlockLogError } from './replay.ts'
export type { StoredBlock, CommittedTx, BlockProducerOptions } from './producer.ts'
export { BlockProducer, BlockStore, MempoolError } from './producer.ts'
export {
  genesisFromJson,
  genesisToJson,
  resolveCertification,
  checkGenesisVerifiers,
  MIN_GENESIS_VERIFIERS
} from './genesis.ts'
