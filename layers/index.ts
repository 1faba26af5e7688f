/** Every layer: the bundles, the per-store layers of each backend, the session broker and the backend description. */
export * from "./memory/index.ts"
export * as SessionBrokerLayers from "./SessionBroker.ts"
export * from "./sql/index.ts"
export * as StorageBackendLayers from "./StorageBackend.ts"
export * from "./Stores.ts"
