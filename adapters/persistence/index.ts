/**
 * `effect-agent-stores/persistence`: Effect's own persistence services over the library's stores, so they run on
 * memory, SQLite or PostgreSQL through any bundle. `layerBackingPersistence` (`@effect/experimental`'s
 * `Persistence.BackingPersistence`, with TTL) and `layerResult` (`Persistence.ResultPersistence`, for `PersistedCache`)
 * need `AgentMemoryStore`; `layerKeyValueStore` (`@effect/platform`'s `KeyValueStore`) needs `StateStore`.
 */
export {
  type BackingPersistenceOptions,
  layerBackingPersistence,
  layerBackingPersistenceWith,
  layerResult,
  makeBackingPersistence
} from "./BackingPersistence.ts"
export {
  type KeyValueStoreOptions,
  layerKeyValueStore,
  layerKeyValueStoreWith,
  makeKeyValueStore
} from "./KeyValueStore.ts"
