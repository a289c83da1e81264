// Shared encoding helpers: the only module that attestation/ and chain/ both import.
export * from './bytes.ts'
export * from './canonical.ts'
export * from './errors.ts'
export * from './log.ts'
export * from './varint.ts'
export * from './ed25519.ts'
