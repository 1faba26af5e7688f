/** Every layer: the bundles and the per-store layers of each backend. */
export * from "./memory/index.ts"
export * from "./sql/index.ts"
export * from "./Stores.ts"
