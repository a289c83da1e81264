// containers/ — tenant images from IPFS, gated by this node's certification and the chain.
// Contracts first (STYLE §2): the interfaces others implement or call, then the factories.
// Nothing here imports agent/ or cli/; the chain and the TPM come in through the narrow
// ImageRegistry / ImagePublisher / Measurer interfaces, wired by the agent.

// ---- contracts ----------------------------------------------------------------------------
export type {
  ImageRecord,
  CertificationStatus,
  ImageRegistry,
  Measurer,
  ImageSource,
  DockerClient,
  ContainerLimits,
  ContainerRunnerInit,
  LaunchPhase,
  LaunchProgress,
  LaunchRequest,
  RunningContainer,
  ContainerRunner
} from './runner.ts'
export type { ImageStore, ImageStoreInit, AddResult, AddProgress, FetchOptions, StoredContent } from './store.ts'
export type { FetchProgress, LocalBlocks } from './transfer.ts'
export type { LocalLibp2p, LocalLibp2pOptions } from './libp2p.ts'
export type { TenantProxy, TenantProxyInit } from './proxy.ts'
export type { ContainerLaunchEvent, EventLogWriter } from './events.ts'
export type { ImageTarInfo, ImageTarLimits, ImageSpec, BuiltImage, TarFile } from './image-tar.ts'
export type { ImagePublisher, PublishRequest, PublishResult, PublishProgress } from './publish.ts'
export type { ChainImageQueries } from './chain-registry.ts'
export type { Deployment } from './deployments.ts'

// ---- errors -------------------------------------------------------------------------------
export * from './errors.ts'

// ---- factories and functions --------------------------------------------------------------
export { createImageStore } from './store.ts'
export { createLocalLibp2p } from './libp2p.ts'
export { createContainerRunner, hardenedHostConfig, demuxDockerLogs, MANAGED_LABEL, NODE_LABEL } from './runner.ts'
export { createTenantProxy } from './proxy.ts'
export { publishImage, imageSourceStream, checkImageName } from './publish.ts'
export { CONTAINER_PCR, launchEvent, memoryEventLog, fileEventLog } from './events.ts'
export { ImageTarInspector, inspectImageTar, buildImageTar, buildTar } from './image-tar.ts'
export { BLOCKS_PROTOCOL, parseCid } from './transfer.ts'
export { chainImageRegistry, chainImagePublisher, pickImage } from './chain-registry.ts'
export { readDeployments, upsertDeployment, removeDeployment, validateDeployment } from './deployments.ts'
