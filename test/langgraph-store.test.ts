/**
 * `LangGraphStore` (LangGraph's `BaseStore` over `AgentMemoryStore`, `VectorStore` and `Embeddings`) on every backend,
 * built inside the test's Effect program (`LangGraphStore.make`), so the TestClock drives its times and TTLs. The
 * tests of a backend share its stores: each uses an agent (and collection) of its own.
 */
import { expect, layer } from "@effect/vitest"
import { InvalidNamespaceError } from "@langchain/langgraph-checkpoint"
import { Duration, Effect, Layer, TestClock } from "effect"
import { LangGraphStore, type LangGraphStoreOptions } from "../adapters/langgraph/LangGraphStore.ts"
import { AdapterError } from "../adapters/Runner.ts"
import * as MemoryAgentMemoryStore from "../layers/memory/MemoryAgentMemoryStore.ts"
import * as MemoryVectorStore from "../layers/memory/MemoryVectorStore.ts"
import type { SqlOptions } from "../layers/sql/Kit.ts"
import * as SqlAgentMemoryStore from "../layers/sql/SqlAgentMemoryStore.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import { layerLocal } from "../src/Embeddings.ts"
import { onEveryBackend } from "./backends.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

/** A store of its own agent (and collection), on the test's runtime. */
const storeWith = (options: LangGraphStoreOptions = {}) => LangGraphStore.make({ agentId: fresh("lg"), ...options })

/** The Promise a store call returns, as an Effect (a rejection is a defect). */
const call = <A>(promise: () => Promise<A>) => Effect.promise(promise)
/** The error a store call rejects with. */
const rejection = (promise: () => Promise<unknown>) =>
  Effect.promise(() =>
    promise().then(
      () => undefined,
      (error: unknown) => error
    )
  )

const keysOf = (items: ReadonlyArray<{ readonly key: string }>) => items.map((item) => item.key)

await onEveryBackend(
  {
    memory: Layer.merge(MemoryAgentMemoryStore.layerWithDatabase, MemoryVectorStore.layerWithDatabase),
    sql: (options: SqlOptions) =>
      Layer.merge(SqlAgentMemoryStore.layerWith(options), SqlVectorStore.layerWith(options)),
    schemas: [SqlAgentMemoryStore.schema, SqlVectorStore.schema]
  },
  ({ label, layer: stores }) =>
    layer(Layer.merge(stores, layerLocal()), { timeout: "60 seconds" })(`LangGraphStore (${label})`, (it) => {
      it.effect("put, get and delete an item; a put again keeps createdAt and moves updatedAt", () =>
        Effect.gen(function* () {
          const store = yield* storeWith()
          yield* TestClock.setTime(1_000)
          yield* call(() => store.put(["users", "u1"], "prefs", { theme: "dark" }))
          const first = yield* call(() => store.get(["users", "u1"], "prefs"))
          expect(first).toEqual({
            namespace: ["users", "u1"],
            key: "prefs",
            value: { theme: "dark" },
            createdAt: new Date(1_000),
            updatedAt: new Date(1_000)
          })
          yield* TestClock.setTime(5_000)
          yield* call(() => store.put(["users", "u1"], "prefs", { theme: "light" }))
          expect(yield* call(() => store.get(["users", "u1"], "prefs"))).toMatchObject({
            value: { theme: "light" },
            createdAt: new Date(1_000),
            updatedAt: new Date(5_000)
          })
          expect(yield* call(() => store.get(["users", "u2"], "prefs"))).toBeNull()
          yield* call(() => store.delete(["users", "u1"], "prefs"))
          expect(yield* call(() => store.get(["users", "u1"], "prefs"))).toBeNull()
          // Keys may hold the separators that labels cannot.
          yield* call(() => store.put(["users"], "a.b:c", { ok: true }))
          expect(yield* call(() => store.get(["users"], "a.b:c"))).toMatchObject({ namespace: ["users"], key: "a.b:c" })
        })
      )

      it.effect("search: a namespace prefix covers its sub-namespaces only, filters, offset and limit", () =>
        Effect.gen(function* () {
          const store = yield* storeWith()
          yield* call(() => store.put(["docs", "a"], "1", { kind: "report", score: 5 }))
          yield* call(() => store.put(["docs", "a"], "2", { kind: "memo", score: 1 }))
          yield* call(() => store.put(["docs", "b"], "3", { kind: "report", score: 3 }))
          yield* call(() => store.put(["docsx"], "4", { kind: "report", score: 9 }))
          expect(keysOf(yield* call(() => store.search(["docs"])))).toEqual(["1", "2", "3"])
          expect(keysOf(yield* call(() => store.search(["docs", "a"])))).toEqual(["1", "2"])
          expect(keysOf(yield* call(() => store.search([])))).toEqual(["1", "2", "3", "4"])
          expect(keysOf(yield* call(() => store.search(["docs"], { filter: { kind: "report" } })))).toEqual(["1", "3"])
          expect(keysOf(yield* call(() => store.search([], { filter: { score: { $gte: 3 } } })))).toEqual([
            "1",
            "3",
            "4"
          ])
          expect(keysOf(yield* call(() => store.search([], { filter: { kind: { $in: ["memo"] } } })))).toEqual(["2"])
          expect(keysOf(yield* call(() => store.search([], { offset: 1, limit: 2 })))).toEqual(["2", "3"])
          // Without an index a query is ignored: items come unscored.
          const unscored = yield* call(() => store.search(["docs"], { query: "report" }))
          expect(unscored.map((item) => item.score)).toEqual([undefined, undefined, undefined])
          const error = yield* rejection(() => store.search([], { filter: { score: { $near: 1 } } }))
          expect(error).toBeInstanceOf(AdapterError)
          expect((error as AdapterError).cause).toMatchObject({ _tag: "InvalidInput" })
        })
      )

      it.effect("listNamespaces: prefix and suffix (with wildcards), maxDepth, offset and limit", () =>
        Effect.gen(function* () {
          const store = yield* storeWith()
          for (const namespace of [["a", "x", "v1"], ["a", "y", "v1"], ["a", "y", "v2"], ["b", "x", "v1"], ["b"]]) {
            yield* call(() => store.put(namespace, "k", { n: 1 }))
          }
          expect(yield* call(() => store.listNamespaces())).toEqual([
            ["a", "x", "v1"],
            ["a", "y", "v1"],
            ["a", "y", "v2"],
            ["b"],
            ["b", "x", "v1"]
          ])
          expect(yield* call(() => store.listNamespaces({ prefix: ["a"] }))).toHaveLength(3)
          expect(yield* call(() => store.listNamespaces({ suffix: ["v1"] }))).toEqual([
            ["a", "x", "v1"],
            ["a", "y", "v1"],
            ["b", "x", "v1"]
          ])
          expect(yield* call(() => store.listNamespaces({ prefix: ["*", "x"] }))).toEqual([
            ["a", "x", "v1"],
            ["b", "x", "v1"]
          ])
          expect(yield* call(() => store.listNamespaces({ maxDepth: 1 }))).toEqual([["a"], ["b"]])
          expect(yield* call(() => store.listNamespaces({ offset: 1, limit: 2 }))).toEqual([
            ["a", "y", "v1"],
            ["a", "y", "v2"]
          ])
        })
      )

      it.effect("TTL: an item expires a put's ttl (or the default) after the put; sweep deletes it", () =>
        Effect.gen(function* () {
          const store = yield* storeWith({ defaultTtl: "1 hour", index: { fields: ["text"] } })
          yield* TestClock.setTime(0)
          yield* call(() => store.put(["notes"], "short", { text: "call the dentist" }, undefined, { ttl: "1 minute" }))
          yield* call(() => store.put(["notes"], "default", { text: "buy milk" }))
          yield* call(() =>
            store.put(["notes"], "forever", { text: "my name is Ada" }, undefined, { ttl: Duration.infinity })
          )
          yield* TestClock.setTime(120_000)
          expect(yield* call(() => store.get(["notes"], "short"))).toBeNull()
          expect(keysOf(yield* call(() => store.search(["notes"])))).toEqual(["default", "forever"])
          expect(keysOf(yield* call(() => store.search(["notes"], { query: "dentist" })))).not.toContain("short")
          yield* TestClock.setTime(3_600_001)
          expect(keysOf(yield* call(() => store.search(["notes"])))).toEqual(["forever"])
          expect(yield* call(() => store.sweep())).toBe(2)
          expect(keysOf(yield* call(() => store.search(["notes"], { query: "milk" })))).toEqual(["forever"])
        })
      )

      it.effect(
        "semantic search ranks indexed fields, follows re-puts and deletes, honours filter and index: false",
        () =>
          Effect.gen(function* () {
            const store = yield* storeWith({ index: { fields: ["text"] } })
            yield* call(() =>
              store.put(["memories", "u1"], "food", { text: "Ada likes pizza and pasta", topic: "food" })
            )
            yield* call(() =>
              store.put(["memories", "u1"], "pet", { text: "Ada has a cat named Turing", topic: "pets" })
            )
            yield* call(() => store.put(["memories", "u2"], "food", { text: "Bob likes pizza", topic: "food" }))
            yield* call(() => store.put(["memories", "u1"], "secret", { text: "pizza pizza pizza" }, false))
            const hits = yield* call(() => store.search(["memories", "u1"], { query: "the cat named Turing" }))
            expect(keysOf(hits)).toEqual(["pet", "food"])
            expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score!)
            expect(keysOf(yield* call(() => store.search(["memories"], { query: "pizza", limit: 2 })))).toEqual([
              "food",
              "food"
            ])
            expect(
              keysOf(yield* call(() => store.search(["memories"], { query: "pizza", filter: { topic: "pets" } })))
            ).toEqual(["pet"])
            yield* call(() => store.put(["memories", "u1"], "pet", { text: "Ada adopted a dog", topic: "pets" }))
            const [top] = yield* call(() => store.search(["memories", "u1"], { query: "dog" }))
            expect(top).toMatchObject({ key: "pet", value: { text: "Ada adopted a dog" } })
            yield* call(() => store.delete(["memories", "u1"], "pet"))
            expect(keysOf(yield* call(() => store.search(["memories", "u1"], { query: "dog" })))).toEqual(["food"])
          })
      )

      it.effect("a batch reads before it writes, and the last put of a key wins", () =>
        Effect.gen(function* () {
          const store = yield* storeWith()
          yield* call(() => store.put(["b"], "k", { v: 0 }))
          const [before, , , after] = yield* call(() =>
            store.batch([
              { namespace: ["b"], key: "k" },
              { namespace: ["b"], key: "k", value: { v: 1 } },
              { namespace: ["b"], key: "k", value: { v: 2 } },
              { namespacePrefix: ["b"], limit: 10, offset: 0 }
            ])
          )
          expect(before).toMatchObject({ value: { v: 0 } })
          expect(after).toMatchObject([{ value: { v: 0 } }])
          expect(yield* call(() => store.get(["b"], "k"))).toMatchObject({ value: { v: 2 } })
        })
      )

      it.effect("bad namespaces, values and overlong keys are refused before anything is written", () =>
        Effect.gen(function* () {
          const store = yield* storeWith()
          expect(yield* rejection(() => store.put(["a.b"], "k", { v: 1 }))).toBeInstanceOf(InvalidNamespaceError)
          expect(yield* rejection(() => store.put([], "k", { v: 1 }))).toBeInstanceOf(InvalidNamespaceError)
          expect(yield* rejection(() => store.put(["langgraph"], "k", { v: 1 }))).toBeInstanceOf(InvalidNamespaceError)
          expect(yield* rejection(() => store.put(["a"], "k", [1] as never))).toBeInstanceOf(TypeError)
          const long = yield* rejection(() => store.put(["a"], "k".repeat(300), { v: 1 }))
          expect(long).toBeInstanceOf(RangeError)
          expect(String(long)).toContain("more than 255")
          const bad = yield* rejection(() => store.put(["a"], "k\u0000", { v: 1 }))
          expect(bad).toBeInstanceOf(AdapterError)
          expect(String(bad)).toContain("LangGraphStore.batch: key must be well-formed Unicode without U+0000")
          expect(yield* call(() => store.search([]))).toEqual([])
        })
      )
    })
)
