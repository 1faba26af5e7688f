/**
 * `@effect/experimental`'s `Persistence.BackingPersistence` over `AgentMemoryStore`, so `Persistence.layerResult`,
 * `PersistedCache` and the rest of Effect's persistence run on the library's memory, SQLite or PostgreSQL stores.
 *
 * Each persistence store (`make(storeId)`) is one agent's records (agent `"persistence/<storeId>"` by default): a key is
 * a record key, a value its JSON value, a TTL its expiry. `AgentMemoryStore` fits because it expires records against
 * the Effect `Clock` (an expired entry is gone for every read at once, and `deleteExpired` sweeps it), which `StateStore`
 * does not do. A key that is not a storable Text of at most 255 characters is stored under `sha256:<hex of the key>`.
 */
import * as Persistence from "@effect/experimental/Persistence"
import { type Duration, Effect, Layer, Option } from "effect"
import { AgentMemoryStore } from "../../src/AgentMemory.ts"
import { sha256Hex } from "../../src/CanonicalJson.ts"
import { isStorableText } from "../../src/Json.ts"
import { maxLimit } from "../../src/Page.ts"

/** Options of `layerBackingPersistenceWith`. */
export interface BackingPersistenceOptions {
  /** What a store id is prefixed with to name its agent (default `"persistence/"`). */
  readonly agentPrefix?: string
}

/** The record key of a persistence key: the key itself, or its hash when it cannot be one. */
const recordKey = (key: string): string =>
  isStorableText(key) && key.length > 0 && key.length <= 255 && !key.startsWith("sha256:")
    ? key
    : `sha256:${sha256Hex(key)}`

/** A `BackingPersistence` over the `AgentMemoryStore` in context. */
export const makeBackingPersistence = (
  options: BackingPersistenceOptions = {}
): Effect.Effect<Persistence.BackingPersistence, never, AgentMemoryStore> =>
  Effect.map(AgentMemoryStore, (memories) =>
    Persistence.BackingPersistence.of({
      [Persistence.BackingPersistenceTypeId]: Persistence.BackingPersistenceTypeId,
      make: (storeId) =>
        Effect.sync(() => {
          const agentId = `${options.agentPrefix ?? "persistence/"}${storeId}`
          const backingError = (method: string) => (cause: unknown) =>
            Persistence.PersistenceBackingError.make(method, cause)
          const get = (method: string) => (key: string) =>
            memories
              .find(agentId, recordKey(key))
              .pipe(Effect.map(Option.map((record) => record.value)), Effect.mapError(backingError(method)))
          const set =
            (method: string) =>
            ([key, value, ttl]: readonly [string, unknown, Option.Option<Duration.Duration>]) =>
              Effect.try({
                // As JSON, as every backing persistence stores values (undefined fields dropped, dates as text).
                try: () => JSON.parse(JSON.stringify(value)) as unknown,
                catch: backingError(method)
              }).pipe(
                Effect.flatMap((json) =>
                  memories
                    .put({
                      agentId,
                      key: recordKey(key),
                      value: json,
                      ...(Option.isSome(ttl) ? { ttl: ttl.value } : {})
                    })
                    .pipe(Effect.mapError(backingError(method)))
                ),
                Effect.asVoid
              )
          return {
            get: get("get"),
            getMany: (keys) => Effect.forEach(keys, get("getMany"), { concurrency: 16 }),
            set: (key, value, ttl) => set("set")([key, value, ttl]),
            setMany: (entries) => Effect.forEach(entries, set("setMany"), { concurrency: 16, discard: true }),
            remove: (key) => memories.delete(agentId, recordKey(key)).pipe(Effect.mapError(backingError("remove"))),
            clear: Effect.gen(function* () {
              while (true) {
                const page = yield* memories.list(agentId, { limit: maxLimit })
                if (page.items.length === 0) return
                yield* Effect.forEach(page.items, (record) => memories.delete(agentId, record.key), { discard: true })
              }
            }).pipe(Effect.mapError(backingError("clear")))
          }
        })
    })
  )

/** `Persistence.BackingPersistence` over `AgentMemoryStore`, with `options`. */
export const layerBackingPersistenceWith = (
  options: BackingPersistenceOptions
): Layer.Layer<Persistence.BackingPersistence, never, AgentMemoryStore> =>
  Layer.effect(Persistence.BackingPersistence, makeBackingPersistence(options))

/** `Persistence.BackingPersistence` over `AgentMemoryStore` (store `s` is agent `persistence/s`). */
export const layerBackingPersistence: Layer.Layer<Persistence.BackingPersistence, never, AgentMemoryStore> =
  layerBackingPersistenceWith({})

/** `Persistence.ResultPersistence` (what `PersistedCache` uses) over `AgentMemoryStore`. */
export const layerResult: Layer.Layer<Persistence.ResultPersistence, never, AgentMemoryStore> =
  Persistence.layerResult.pipe(Layer.provide(layerBackingPersistence))
