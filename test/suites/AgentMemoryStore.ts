/**
 * The `AgentMemoryStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own agent ids; the
 * sweep test first clears everything expired, so it counts only its own records.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Duration, Effect, FastCheck, Layer, Option, TestClock } from "effect"
import { AgentMemoryStore, DeleteExpiredOptions, MemoryInput, MemoryListOptions } from "../../src/AgentMemory.ts"
import { isJson } from "../../src/Json.ts"
import { UpdateOptions } from "../../src/Record.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

const uuidv7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** Runs the `AgentMemoryStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<AgentMemoryStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`AgentMemoryStore (${label})`, (it) => {
    it.effect("put creates a record and get returns it", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("agent")
        yield* TestClock.setTime(1_700_000_000_000)
        const record = yield* memory.put({ agentId, key: "user.name", value: "Ada" })
        expect(record).toMatchObject({ agentId, key: "user.name", kind: "long_term", value: "Ada", version: 1 })
        expect(record.id).toMatch(uuidv7)
        expect(record.expiresAt).toBeUndefined()
        expect(DateTime.toEpochMillis(record.createdAt)).toBe(1_700_000_000_000)
        expect(yield* memory.get(agentId, "user.name")).toEqual(record)
        expect(yield* memory.find(agentId, "user.name")).toEqual(Option.some(record))
        expect(yield* memory.find(fresh("other"), "user.name")).toEqual(Option.none())
      })
    )

    it.effect("put upserts by (agentId, key): same id, next version, createdAt kept", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("agent")
        yield* TestClock.setTime(1_000)
        const first = yield* memory.put({ agentId, key: "k", kind: "short_term", value: { n: 1 } })
        yield* TestClock.setTime(5_000)
        const second = yield* memory.put({ agentId, key: "k", kind: "episodic", value: [1, 2] })
        expect(second).toMatchObject({ id: first.id, kind: "episodic", value: [1, 2], version: 2 })
        expect(DateTime.toEpochMillis(second.createdAt)).toBe(1_000)
        expect(DateTime.toEpochMillis(second.updatedAt)).toBe(5_000)
        expect(yield* memory.get(agentId, "k")).toEqual(second)
        const page = yield* memory.list(agentId)
        expect(page.items).toEqual([second])
        const custom = yield* memory.put({ agentId, key: "k2", kind: "procedural", value: null })
        expect(custom).toMatchObject({ kind: "procedural", value: null })
      })
    )

    it.effect("expectedVersion is a compare-and-set; without it concurrent puts lose nothing", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("agent")
        const absent = yield* Effect.flip(memory.put({ agentId, key: "k", value: 1 }, { expectedVersion: 1 }))
        expect(absent).toMatchObject({ _tag: "Conflict", entity: "MemoryRecord", expected: 1, actual: 0 })
        expect(yield* memory.find(agentId, "k")).toEqual(Option.none())
        yield* memory.put({ agentId, key: "k", value: 1 })
        yield* memory.put({ agentId, key: "k", value: 2 }, { expectedVersion: 1 })
        const stale = yield* Effect.flip(memory.put({ agentId, key: "k", value: 3 }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", expected: 1, actual: 2 })
        expect(yield* memory.get(agentId, "k")).toMatchObject({ value: 2, version: 2 })
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 32 }, (_, i) => i),
          (i) => Effect.either(memory.put({ agentId, key: "k", value: i })),
          { concurrency: "unbounded" }
        )
        expect(outcomes.filter((o) => o._tag === "Left")).toEqual([])
        expect((yield* memory.get(agentId, "k")).version).toBe(34)
        const fresh1 = yield* Effect.forEach(
          Array.from({ length: 16 }, (_, i) => i),
          (i) => memory.put({ agentId, key: "new", value: i }),
          { concurrency: "unbounded" }
        )
        expect(new Set(fresh1.map((r) => r.id)).size).toBe(1)
        expect(fresh1.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1))
      })
    )

    it.effect("expired records are invisible to every read before any sweep", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("agent")
        yield* TestClock.setTime(10_000)
        const record = yield* memory.put({ agentId, key: "otp", kind: "short_term", value: "1234", ttl: "1 minute" })
        yield* memory.put({ agentId, key: "ms", value: 1, ttl: 1500 })
        yield* memory.put({ agentId, key: "forever", value: 1, ttl: Duration.infinity })
        expect(DateTime.toEpochMillis(record.expiresAt!)).toBe(70_000)
        yield* TestClock.setTime(69_999)
        expect(yield* memory.get(agentId, "otp")).toEqual(record)
        expect((yield* memory.list(agentId)).items.map((r) => r.key)).toEqual(["otp", "forever"])
        yield* TestClock.setTime(70_000)
        expect(yield* Effect.flip(memory.get(agentId, "otp"))).toMatchObject({
          _tag: "NotFound",
          entity: "MemoryRecord"
        })
        expect(yield* memory.find(agentId, "otp")).toEqual(Option.none())
        expect((yield* memory.list(agentId)).items.map((r) => r.key)).toEqual(["forever"])
        expect((yield* memory.list(agentId, { kind: "short_term" })).items).toEqual([])
        const stale = yield* Effect.flip(memory.put({ agentId, key: "otp", value: "x" }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", expected: 1, actual: 0 })
        const renewed = yield* memory.put({ agentId, key: "otp", value: "5678" })
        expect(renewed.id).not.toBe(record.id)
        expect(renewed).toMatchObject({ version: 1, kind: "long_term", value: "5678" })
        expect(renewed.expiresAt).toBeUndefined()
        expect(DateTime.toEpochMillis(renewed.createdAt)).toBe(70_000)
        yield* TestClock.setTime(1_000_000)
        expect(yield* memory.get(agentId, "otp")).toEqual(renewed)
        const zero = yield* memory.put({ agentId, key: "zero", value: 0, ttl: 0 })
        expect(DateTime.toEpochMillis(zero.expiresAt!)).toBe(1_000_000)
        expect(yield* memory.find(agentId, "zero")).toEqual(Option.none())
      })
    )

    it.effect("deleteExpired sweeps in batches, soonest-expired first, and keeps live records", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("agent")
        yield* TestClock.setTime(9_000_000_000_000)
        while ((yield* memory.deleteExpired({ batch: 10_000 })) > 0) {
          // clear what earlier tests left expired
        }
        yield* TestClock.setTime(1_000)
        for (let i = 5; i >= 1; i--) yield* memory.put({ agentId, key: `e${i}`, value: i, ttl: i * 1000 })
        yield* memory.put({ agentId, key: "live", value: true, ttl: "1 hour" })
        yield* memory.put({ agentId, key: "never", value: true })
        yield* TestClock.setTime(10_000)
        expect(yield* memory.deleteExpired({ batch: 2 })).toBe(2)
        yield* TestClock.setTime(1_000)
        expect((yield* memory.list(agentId)).items.map((r) => r.key).sort()).toEqual([
          "e3",
          "e4",
          "e5",
          "live",
          "never"
        ])
        yield* TestClock.setTime(10_000)
        expect(yield* memory.deleteExpired({ batch: 2 })).toBe(2)
        expect(yield* memory.deleteExpired()).toBe(1)
        expect(yield* memory.deleteExpired()).toBe(0)
        yield* TestClock.setTime(1_000)
        expect((yield* memory.list(agentId)).items.map((r) => r.key).sort()).toEqual(["live", "never"])
        for (const options of [{ batch: 0 }, { batch: 10_001 }, { batch: 1.5 }, { batch: "1" }]) {
          expect(yield* Effect.flip(memory.deleteExpired(options as never))).toMatchObject({ _tag: "InvalidInput" })
        }
      })
    )

    it.effect("list filters by kind and key prefix and pages by cursor, both orders", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("agent")
        const other = fresh("agent")
        yield* memory.put({ agentId: other, key: "user.x", value: 0 })
        const keys = ["user.name", "user.city", "task.1", "user%_", "üser.é", "user.🙂", "usera"]
        for (const [i, key] of keys.entries()) {
          yield* TestClock.adjust("1 second")
          yield* memory.put({ agentId, key, kind: i % 2 === 0 ? "long_term" : "episodic", value: i })
        }
        const all = yield* memory.list(agentId)
        expect(all.items.map((r) => r.key)).toEqual(keys)
        expect(all.nextCursor).toEqual(Option.none())
        const user = yield* memory.list(agentId, { prefix: "user." })
        expect(user.items.map((r) => r.key)).toEqual(["user.name", "user.city", "user.🙂"])
        expect((yield* memory.list(agentId, { prefix: "user%" })).items.map((r) => r.key)).toEqual(["user%_"])
        expect((yield* memory.list(agentId, { prefix: "üser" })).items.map((r) => r.key)).toEqual(["üser.é"])
        expect((yield* memory.list(agentId, { prefix: "" })).items.length).toBe(keys.length)
        const episodic = yield* memory.list(agentId, { kind: "episodic", prefix: "user" })
        expect(episodic.items.map((r) => r.key)).toEqual(["user.city", "user%_", "user.🙂"])
        const walk = (order: "asc" | "desc") =>
          Effect.gen(function* () {
            const seen: Array<string> = []
            let cursor: Option.Option<string> = Option.none()
            do {
              const page = yield* memory.list(agentId, {
                limit: 3,
                order,
                ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
              })
              seen.push(...page.items.map((r) => r.key))
              cursor = page.nextCursor
            } while (Option.isSome(cursor))
            return seen
          })
        expect(yield* walk("asc")).toEqual(keys)
        expect(yield* walk("desc")).toEqual([...keys].reverse())
        expect((yield* memory.list(agentId, { offset: 5 })).items.map((r) => r.key)).toEqual(keys.slice(5))
        expect((yield* memory.list("no\u0000such")).items).toEqual([])
        for (const options of [{ limit: 0 }, { cursor: "x" }, { order: "up" }, { kind: "" }, { prefix: "a\u0000" }]) {
          expect(yield* Effect.flip(memory.list(agentId, options as never))).toMatchObject({ _tag: "InvalidInput" })
        }
      })
    )

    it.effect("values round-trip verbatim (U+0000, lone surrogates, key order)", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("agent")
        const value = {
          z: "nul \u0000 inside",
          a: "half \ud83d emoji \udc00",
          "\u0000key": [1.5, 1e300, null, true, { nested: "🙂 é" }],
          "": { "": "" }
        }
        yield* memory.put({ agentId, key: "content", value })
        const read = yield* memory.get(agentId, "content")
        expect(JSON.stringify(read.value)).toBe(JSON.stringify(value))
      })
    )

    it.effect.prop(
      "any JSON value put reads back equal",
      [
        FastCheck.jsonValue({ maxDepth: 3 })
          .map((value) => JSON.parse(JSON.stringify(value)))
          .filter((value) => isJson(value))
      ],
      ([value]) =>
        Effect.gen(function* () {
          const memory = yield* AgentMemoryStore
          const agentId = fresh("prop")
          yield* memory.put({ agentId, key: "v", value })
          expect(JSON.stringify((yield* memory.get(agentId, "v")).value)).toBe(JSON.stringify(value))
        }),
      { fastCheck: { numRuns: 30 } }
    )

    it.effect("delete removes one record; unknown ones are a no-op", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("agent")
        yield* memory.put({ agentId, key: "a", value: 1 })
        yield* memory.put({ agentId, key: "b", value: 2 })
        yield* memory.delete(agentId, "a")
        expect(yield* memory.find(agentId, "a")).toEqual(Option.none())
        expect((yield* memory.list(agentId)).items.map((r) => r.key)).toEqual(["b"])
        yield* memory.delete(agentId, "a")
        yield* memory.delete("no\u0000such", "b")
        expect((yield* memory.put({ agentId, key: "a", value: 3 })).version).toBe(1)
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("bad")
        const valid = { agentId, key: "k", value: 1 }
        const inputs: Array<unknown> = [
          { ...valid, agentId: "" },
          { ...valid, key: "x".repeat(256) },
          { ...valid, key: "a\u0000b" },
          { ...valid, agentId: "\ud800" },
          { ...valid, kind: "" },
          { ...valid, kind: 42 },
          { agentId, key: "k" },
          { ...valid, value: undefined },
          { ...valid, value: () => 1 },
          { ...valid, value: new Date(0) },
          { ...valid, value: { n: Number.NaN } },
          { ...valid, value: JSON.parse('{"__proto__": {"polluted": true}}') },
          { ...valid, ttl: -1 },
          { ...valid, ttl: Number.NaN },
          { ...valid, ttl: "soon" },
          ...BadInput.jsonObjects.map((value) => ({ ...valid, value: { nested: value } })).slice(0, 12)
        ]
        for (const input of inputs) {
          const error = yield* Effect.flip(memory.put(input as never))
          expect(error).toMatchObject({ _tag: "InvalidInput", entity: "MemoryRecord" })
        }
        for (const id of BadInput.ids) {
          expect(yield* Effect.flip(memory.get(id as never, "k"))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(memory.get(agentId, id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(memory.list(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(memory.delete(agentId, id as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        const keyError = yield* Effect.flip(memory.get(agentId, 42 as never))
        expect(keyError).toMatchObject({ _tag: "InvalidInput", message: "key must be a string, got number" })
        const agentError = yield* Effect.flip(memory.list(null as never))
        expect(agentError).toMatchObject({ _tag: "InvalidInput", message: "agentId must be a string, got null" })
        expect((yield* memory.list(agentId)).items).toEqual([])
      })
    )

    it.effect("hostile containers (throwing getters and traps, class instances) are InvalidInput", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("hostile")
        for (const input of BadInput.containers({ agentId, key: "k", value: 1 })) {
          expect(yield* Effect.flip(memory.put(input as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        expect(yield* memory.find(agentId, "k")).toEqual(Option.none())
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const memory = yield* AgentMemoryStore
        const agentId = fresh("bad-input")
        yield* memory.put({ agentId, key: "kept", value: { a: 1 } })
        const snapshot = Effect.map(memory.list(agentId, { limit: 1000 }), (page) =>
          page.items.map((r) => [r.key, r.version, r.value])
        )
        yield* BadInput.run(`AgentMemoryStore (${label})`, snapshot, [
          BadInput.operation("put", MemoryInput, (input) => memory.put(input as never), {
            options: {
              schema: UpdateOptions,
              run: (options) => memory.put({ agentId, key: "kept", value: 2 }, options as never)
            }
          }),
          BadInput.operation("list", MemoryListOptions, (input) => memory.list(agentId, input as never), {
            id: (id) => memory.list(id as never),
            optional: true
          }),
          BadInput.operation("deleteExpired", DeleteExpiredOptions, (input) => memory.deleteExpired(input as never), {
            optional: true
          })
        ])
      })
    )
  })
