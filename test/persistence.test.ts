/**
 * `effect-agent-stores/persistence` on every backend, driven by Effect's own consumers: `PersistedCache` over
 * `Persistence.layerResult` over our `BackingPersistence` (on `AgentMemoryStore`), the backing store directly (TTL on
 * the TestClock, `clear` of one store only, keys that cannot be record keys), and `KeyValueStore.forSchema` over our
 * `KeyValueStore` (on `StateStore`). The tests of a backend share its stores: each uses store ids and keys of its own.
 */
import * as PersistedCache from "@effect/experimental/PersistedCache"
import * as Persistence from "@effect/experimental/Persistence"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Option, PrimaryKey, Schema, TestClock } from "effect"
import { layerBackingPersistence, layerKeyValueStore, layerResult } from "../adapters/persistence/index.ts"
import * as MemoryAgentMemoryStore from "../layers/memory/MemoryAgentMemoryStore.ts"
import * as MemoryStateStore from "../layers/memory/MemoryStateStore.ts"
import type { SqlOptions } from "../layers/sql/Kit.ts"
import * as SqlAgentMemoryStore from "../layers/sql/SqlAgentMemoryStore.ts"
import * as SqlStateStore from "../layers/sql/SqlStateStore.ts"
import { AgentMemoryStore } from "../src/AgentMemory.ts"
import { StateStore } from "../src/State.ts"
import { onEveryBackend } from "./backends.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

/** A request `PersistedCache` can persist: its result (or failure) is stored under its primary key. */
class GetUser extends Schema.TaggedRequest<GetUser>()("GetUser", {
  failure: Schema.String,
  success: Schema.Struct({ name: Schema.String, visits: Schema.Number }),
  payload: { id: Schema.Number, store: Schema.String }
}) {
  [PrimaryKey.symbol]() {
    return `user-${this.id}`
  }
}

const Profile = Schema.Struct({ name: Schema.String, tags: Schema.Array(Schema.String) })

await onEveryBackend(
  {
    memory: Layer.merge(MemoryAgentMemoryStore.layerWithDatabase, MemoryStateStore.layerWithDatabase),
    sql: (options: SqlOptions) => Layer.merge(SqlAgentMemoryStore.layerWith(options), SqlStateStore.layerWith(options)),
    schemas: [SqlAgentMemoryStore.schema, SqlStateStore.schema]
  },
  ({ label, layer: stores }) =>
    layer(Layer.mergeAll(layerResult, layerBackingPersistence, layerKeyValueStore).pipe(Layer.provideMerge(stores)), {
      timeout: "60 seconds"
    })(`persistence (${label})`, (it) => {
      it.scoped("PersistedCache: a result is looked up once, survives a new cache, and expires with its TTL", () =>
        Effect.gen(function* () {
          const storeId = fresh("users")
          let lookups = 0
          const cache = PersistedCache.make({
            storeId,
            lookup: (request: GetUser) =>
              request.id < 0
                ? Effect.fail(`no user ${request.id}`)
                : Effect.sync(() => ({ name: `user ${request.id}`, visits: ++lookups })),
            timeToLive: () => "1 minute"
          })
          yield* TestClock.setTime(0)
          const first = yield* cache
          expect(yield* first.get(new GetUser({ id: 1, store: storeId }))).toEqual({ name: "user 1", visits: 1 })
          expect(yield* Effect.exit(first.get(new GetUser({ id: -1, store: storeId })))).toEqual(
            Exit.fail("no user -1")
          )
          // A second cache (a restarted process: nothing in memory) reads both results back from the stores.
          const second = yield* cache
          expect(yield* second.get(new GetUser({ id: 1, store: storeId }))).toEqual({ name: "user 1", visits: 1 })
          expect(yield* Effect.exit(second.get(new GetUser({ id: -1, store: storeId })))).toEqual(
            Exit.fail("no user -1")
          )
          expect(lookups).toBe(1)
          yield* TestClock.setTime(Duration.toMillis("61 seconds"))
          const third = yield* cache
          expect(yield* third.get(new GetUser({ id: 1, store: storeId }))).toEqual({ name: "user 1", visits: 2 })
          yield* third.invalidate(new GetUser({ id: 1, store: storeId }))
          expect(yield* (yield* cache).get(new GetUser({ id: 1, store: storeId }))).toEqual({
            name: "user 1",
            visits: 3
          })
        })
      )

      it.scoped("BackingPersistence: get, getMany, set with TTL, setMany, remove, clear of one store only", () =>
        Effect.gen(function* () {
          const backing = yield* Persistence.BackingPersistence
          const store = yield* backing.make(fresh("kv"))
          const other = yield* backing.make(fresh("kv"))
          yield* TestClock.setTime(1_000)
          yield* store.set("a", { n: 1, skipped: undefined, at: new Date(0) }, Option.none())
          yield* store.set("short", "soon gone", Option.some(Duration.seconds(10)))
          yield* store.setMany([
            ["b", [1, 2], Option.none()],
            ["c", null, Option.some(Duration.minutes(1))]
          ])
          yield* other.set("a", "other", Option.none())
          // Values are stored as JSON, as Effect's other backings store them.
          expect(yield* store.get("a")).toEqual(Option.some({ n: 1, at: "1970-01-01T00:00:00.000Z" }))
          expect(yield* store.getMany(["b", "c", "missing", "short"])).toEqual([
            Option.some([1, 2]),
            Option.some(null),
            Option.none(),
            Option.some("soon gone")
          ])
          yield* TestClock.setTime(11_000)
          expect(yield* store.get("short")).toEqual(Option.none())
          // A key that cannot be a record key is kept under its hash.
          const long = "k".repeat(1_000)
          for (const key of [long, "", "nul\u0000key"]) {
            yield* store.set(key, key.length, Option.none())
            expect(yield* store.get(key)).toEqual(Option.some(key.length))
          }
          yield* store.remove("b")
          expect(yield* store.get("b")).toEqual(Option.none())
          yield* store.clear
          expect(yield* store.getMany(["a", "c", long])).toEqual([Option.none(), Option.none(), Option.none()])
          expect(yield* other.get("a")).toEqual(Option.some("other"))
          const failed = yield* Effect.flip(store.set("bad", undefined, Option.none()))
          expect(failed).toMatchObject({ _tag: "PersistenceError", reason: "BackingError", method: "set" })
        })
      )

      it.effect("the backing store is an agent's records, so AgentMemoryStore reads them", () =>
        Effect.gen(function* () {
          const storeId = fresh("visible")
          const store = yield* Effect.scoped(Effect.flatMap(Persistence.BackingPersistence, (b) => b.make(storeId)))
          yield* store.set("greeting", { text: "hello" }, Option.some(Duration.hours(1)))
          const record = yield* (yield* AgentMemoryStore).get(`persistence/${storeId}`, "greeting")
          expect(record).toMatchObject({ value: { text: "hello" } })
          expect(record.expiresAt).toBeDefined()
        })
      )

      it.effect("KeyValueStore: forSchema, strings and bytes, has/size/modify, clear of its prefix only", () =>
        Effect.gen(function* () {
          const kv = KeyValueStore.prefix(yield* KeyValueStore.KeyValueStore, `${fresh("t")}/`)
          const profiles = kv.forSchema(Profile)
          yield* profiles.set("ada", { name: "Ada", tags: ["math"] })
          expect(yield* profiles.get("ada")).toEqual(Option.some({ name: "Ada", tags: ["math"] }))
          expect(yield* profiles.modify("ada", (p) => ({ ...p, tags: [...p.tags, "engines"] }))).toEqual(
            Option.some({ name: "Ada", tags: ["math", "engines"] })
          )
          expect(yield* profiles.get("nobody")).toEqual(Option.none())
          expect(
            yield* Effect.flip(
              profiles
                .get("ada")
                .pipe(Effect.zipRight(kv.set("bad", '{"name":1}')), Effect.zipRight(profiles.get("bad")))
            )
          ).toMatchObject({ _tag: "ParseError" })
          // (`KeyValueStore.prefix` leaves getUint8Array unprefixed: bytes are tested on the store itself.)
          const raw = yield* KeyValueStore.KeyValueStore
          const [bytesKey, textKey] = [fresh("bytes"), fresh("text")]
          const bytes = new Uint8Array([0, 1, 2, 254, 255])
          yield* raw.set(bytesKey, bytes)
          expect(yield* raw.getUint8Array(bytesKey)).toEqual(Option.some(bytes))
          expect(yield* raw.get(bytesKey)).toEqual(Option.some("AAEC/v8="))
          yield* raw.set(textKey, "héllo \u0000 world")
          expect(yield* raw.get(textKey)).toEqual(Option.some("héllo \u0000 world"))
          expect(yield* raw.getUint8Array(textKey)).toEqual(Option.some(new TextEncoder().encode("héllo \u0000 world")))
          yield* kv.set("text", "t")
          expect(yield* kv.has("text")).toBe(true)
          yield* kv.remove("text")
          expect(yield* kv.has("text")).toBe(false)
          expect(yield* Effect.flip((yield* KeyValueStore.KeyValueStore).set("k".repeat(300), "x"))).toMatchObject({
            _tag: "BadArgument",
            module: "KeyValueStore",
            method: "set"
          })
        })
      )

      it.effect("KeyValueStore keys are state keys under kv/: clear and size leave other state alone", () =>
        Effect.gen(function* () {
          const kv = yield* KeyValueStore.KeyValueStore
          const state = yield* StateStore
          const outside = fresh("outside")
          yield* state.set(outside, 1)
          yield* kv.clear
          yield* kv.set("one", "1")
          yield* kv.set("two", "2")
          expect(yield* kv.size).toBe(2)
          expect((yield* state.get("kv/one")).value).toBe("1")
          yield* kv.clear
          expect(yield* kv.isEmpty).toBe(true)
          expect((yield* state.get(outside)).value).toBe(1)
        })
      )
    })
)
