/**
 * The `StateStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own key prefix.
 */
import { expect, layer } from "@effect/vitest"
import { Arbitrary, DateTime, Effect, FastCheck, type Layer, Option, Schema, TestClock } from "effect"
import { Json } from "../../src/Json.ts"
import type { Page } from "../../src/Page.ts"
import { type StateEntry, StateListOptions, StateStore, StateWriteOptions } from "../../src/State.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}/`

/** A caller's Schema whose encoded form differs from its type (a date as an ISO string). */
const Cursor = Schema.Struct({ at: Schema.DateFromString, offset: Schema.Int })

/** Runs the `StateStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<StateStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`StateStore (${label})`, (it) => {
    it.effect("set creates version 1, a later set the next version; get and find read it", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const key = `${fresh("basic")}plan`
        yield* TestClock.setTime(1_000)
        const first = yield* state.set(key, { step: 1, done: ["a"] })
        expect(first).toMatchObject({ key, value: { step: 1, done: ["a"] }, version: 1 })
        expect(DateTime.toEpochMillis(first.createdAt)).toBe(1_000)
        expect(yield* state.get(key)).toEqual(first)
        expect(yield* state.find(key)).toEqual(Option.some(first))
        yield* TestClock.setTime(2_000)
        const second = yield* state.set(key, "replaced")
        expect(second).toMatchObject({ key, value: "replaced", version: 2 })
        expect(DateTime.toEpochMillis(second.createdAt)).toBe(1_000)
        expect(DateTime.toEpochMillis(second.updatedAt)).toBe(2_000)
        // A clock that goes back never moves updatedAt back.
        yield* TestClock.setTime(0)
        const third = yield* state.set(key, null)
        expect(third.version).toBe(3)
        expect(third.value).toBeNull()
        expect(DateTime.toEpochMillis(third.updatedAt)).toBe(2_000)
        expect(yield* state.get(key)).toEqual(third)
      })
    )

    it.effect("an unknown key: get is NotFound, find is None, delete is a no-op", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const key = `${fresh("unknown")}k`
        expect(yield* Effect.flip(state.get(key))).toMatchObject({ _tag: "NotFound", entity: "State", id: key })
        expect(yield* state.find(key)).toEqual(Option.none())
        yield* state.delete(key)
        // Keys no entry can have are unknown keys too, on every backend.
        expect(yield* state.find("")).toEqual(Option.none())
        expect(yield* state.find("x".repeat(256))).toEqual(Option.none())
        expect(yield* state.find("a\u0000b")).toEqual(Option.none())
      })
    )

    it.effect("expectedVersion: a compare-and-set; 0 means absent; a mismatch is Conflict and writes nothing", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const key = `${fresh("cas")}counter`
        const created = yield* state.set(key, 1, { expectedVersion: 0 })
        expect(created.version).toBe(1)
        expect(yield* Effect.flip(state.set(key, 99, { expectedVersion: 0 }))).toMatchObject({
          _tag: "Conflict",
          entity: "State",
          id: key,
          expected: 0,
          actual: 1
        })
        expect((yield* state.set(key, 2, { expectedVersion: 1 })).version).toBe(2)
        expect(yield* Effect.flip(state.set(key, 99, { expectedVersion: 1 }))).toMatchObject({
          _tag: "Conflict",
          expected: 1,
          actual: 2
        })
        expect(yield* state.get(key)).toMatchObject({ value: 2, version: 2 })
        const missing = `${fresh("cas")}missing`
        expect(yield* Effect.flip(state.set(missing, 1, { expectedVersion: 3 }))).toMatchObject({
          _tag: "Conflict",
          expected: 3,
          actual: 0
        })
        expect(yield* state.find(missing)).toEqual(Option.none())
      })
    )

    it.effect("delete with expectedVersion deletes only at that version; a key created again starts at 1", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const key = `${fresh("delete")}k`
        yield* state.set(key, "a")
        yield* state.set(key, "b")
        expect(yield* Effect.flip(state.delete(key, { expectedVersion: 1 }))).toMatchObject({
          _tag: "Conflict",
          expected: 1,
          actual: 2
        })
        expect((yield* state.get(key)).value).toBe("b")
        yield* state.delete(key, { expectedVersion: 2 })
        expect(yield* state.find(key)).toEqual(Option.none())
        expect(yield* Effect.flip(state.delete(key, { expectedVersion: 2 }))).toMatchObject({
          _tag: "Conflict",
          actual: 0
        })
        yield* state.delete(key, { expectedVersion: 0 })
        expect((yield* state.set(key, "c")).version).toBe(1)
        yield* state.delete(key)
        expect(yield* state.find(key)).toEqual(Option.none())
      })
    )

    it.effect("concurrent compare-and-set increments: exactly one winner per version, no update lost", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const key = `${fresh("race")}n`
        yield* state.set(key, 0)
        const increment = Effect.gen(function* () {
          while (true) {
            const current = yield* state.get(key)
            const result = yield* Effect.either(
              state.set(key, (current.value as number) + 1, { expectedVersion: current.version })
            )
            if (result._tag === "Right") return result.right.version
            expect(result.left._tag).toBe("Conflict")
          }
        })
        const versions = yield* Effect.all(
          Array.from({ length: 16 }, () => increment),
          { concurrency: "unbounded" }
        )
        expect([...versions].sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i + 2))
        expect(yield* state.get(key)).toMatchObject({ value: 16, version: 17 })
        // Blind sets never conflict and never lose a version.
        yield* Effect.all(
          Array.from({ length: 16 }, (_, i) => state.set(key, i)),
          { concurrency: "unbounded" }
        )
        expect((yield* state.get(key)).version).toBe(33)
      })
    )

    it.effect("list pages by key in code point order, within a prefix, both orders", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const base = fresh("list")
        const names = ["a", "b/1", "b/2", "b/10", "c", "é", "\uffff", "😀", "b"]
        for (const name of names) yield* state.set(base + name, name)
        // A neighbour prefix that must not leak in.
        yield* state.set(`${base.slice(0, -1)}0x`, "neighbour")
        const codePointOrder = [...names].sort((x, y) => {
          const a = Array.from(x, (c) => c.codePointAt(0)!)
          const b = Array.from(y, (c) => c.codePointAt(0)!)
          for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!
          return a.length - b.length
        })
        const all = yield* state.list({ prefix: base })
        expect(all.items.map((e) => e.value)).toEqual(codePointOrder)
        expect(all.nextCursor).toEqual(Option.none())
        const seen: Array<unknown> = []
        let cursor: string | undefined
        do {
          const page: Page<StateEntry> = yield* state.list({ prefix: base, limit: 2, ...(cursor ? { cursor } : {}) })
          seen.push(...page.items.map((e) => e.value))
          cursor = Option.getOrUndefined(page.nextCursor)
        } while (cursor !== undefined)
        expect(seen).toEqual(codePointOrder)
        const desc: Array<unknown> = []
        cursor = undefined
        do {
          const page: Page<StateEntry> = yield* state.list({
            prefix: base,
            limit: 3,
            order: "desc",
            ...(cursor ? { cursor } : {})
          })
          desc.push(...page.items.map((e) => e.value))
          cursor = Option.getOrUndefined(page.nextCursor)
        } while (cursor !== undefined)
        expect(desc).toEqual([...codePointOrder].reverse())
        expect((yield* state.list({ prefix: `${base}b/` })).items.map((e) => e.value)).toEqual(["b/1", "b/10", "b/2"])
        expect((yield* state.list({ prefix: `${base}b`, offset: 1, limit: 2 })).items.map((e) => e.value)).toEqual([
          "b/1",
          "b/10"
        ])
        expect((yield* state.list({ prefix: `${base}zz` })).items).toEqual([])
        // A prefix ending in the last code point.
        yield* state.set(`${base}\u{10ffff}x`, "max")
        expect((yield* state.list({ prefix: `${base}\u{10ffff}` })).items.map((e) => e.value)).toEqual(["max"])
      })
    )

    it.effect("values round-trip verbatim: U+0000, lone surrogates, nesting, numbers", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const base = fresh("verbatim")
        const value = {
          text: "nul \u0000 lone \ud800 pair 😀 \\u0000",
          nested: { list: [1, -0.5, 1e300, true, null, { "": "empty key", "\u0000": "nul key" }] }
        }
        expect((yield* state.set(`${base}v`, value)).value).toEqual(value)
        expect((yield* state.get(`${base}v`)).value).toEqual(value)
        const samples = FastCheck.sample(Arbitrary.make(Json), { numRuns: 50, seed: 7 })
        for (const [i, json] of samples.entries()) {
          const input = JSON.parse(JSON.stringify(json))
          yield* state.set(`${base}p${i}`, input)
          expect((yield* state.get(`${base}p${i}`)).value).toEqual(input)
        }
      })
    )

    it.effect(
      "getAs/setAs encode and decode with the caller's Schema; a stored value that does not match is DecodeError",
      () =>
        Effect.gen(function* () {
          const state = yield* StateStore
          const key = `${fresh("typed")}cursor`
          const at = new Date(1_700_000_000_000)
          const saved = yield* state.setAs(Cursor, key, { at, offset: 3 })
          expect(saved).toMatchObject({ key, version: 1, value: { at, offset: 3 } })
          expect((yield* state.get(key)).value).toEqual({ at: at.toISOString(), offset: 3 })
          expect(yield* state.getAs(Cursor, key)).toEqual(saved)
          expect(yield* state.findAs(Cursor, key)).toEqual(Option.some(saved))
          expect((yield* state.setAs(Cursor, key, { at, offset: 4 }, { expectedVersion: 1 })).version).toBe(2)
          expect(yield* Effect.flip(state.setAs(Cursor, key, { at, offset: 5 }, { expectedVersion: 1 }))).toMatchObject(
            {
              _tag: "Conflict"
            }
          )
          yield* state.set(key, { at: at.toISOString(), offset: "three" })
          const error = yield* Effect.flip(state.getAs(Cursor, key))
          expect(error).toMatchObject({ _tag: "DecodeError", entity: "State", id: key })
          expect(yield* Effect.flip(state.getAs(Cursor, `${key}-missing`))).toMatchObject({ _tag: "NotFound" })
          expect(yield* state.findAs(Cursor, `${key}-missing`)).toEqual(Option.none())
          // A value that is not of the Schema's type is InvalidInput, nothing written.
          expect(yield* Effect.flip(state.setAs(Cursor, key, { at: "x", offset: 1 } as never))).toMatchObject({
            _tag: "InvalidInput"
          })
          expect(yield* Effect.flip(state.setAs("not a schema" as never, key, 1))).toMatchObject({
            _tag: "InvalidInput"
          })
          expect(yield* Effect.flip(state.getAs({} as never, key))).toMatchObject({ _tag: "InvalidInput" })
          expect((yield* state.get(key)).version).toBe(3)
        })
    )

    it.effect("bad keys, values and options are InvalidInput and write nothing", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const key = `${fresh("bad")}k`
        for (const id of BadInput.ids) {
          expect(yield* Effect.flip(state.get(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(state.find(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(state.delete(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(state.set(id as never, 1))).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const bad of ["", "x".repeat(256), "a\u0000", "\udc00"]) {
          expect(yield* Effect.flip(state.set(bad, 1))).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const value of [undefined, Number.NaN, new Date(0), new Map(), () => 1, 1n, { a: undefined }]) {
          expect(yield* Effect.flip(state.set(key, value))).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const value of BadInput.containers({ a: 1 })) {
          expect(yield* Effect.flip(state.set(key, value))).toMatchObject({ _tag: "InvalidInput" })
        }
        expect(yield* Effect.flip(state.list({ cursor: "nope" }))).toMatchObject({ _tag: "InvalidInput" })
        expect(yield* Effect.flip(state.list({ prefix: "\u0000" }))).toMatchObject({ _tag: "InvalidInput" })
        expect(yield* state.find(key)).toEqual(Option.none())
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const state = yield* StateStore
        const base = fresh("bad-input")
        const key = `${base}k`
        yield* state.set(key, { a: 1 })
        const snapshot = Effect.map(state.list({ prefix: base }), (page) =>
          page.items.map((e) => [e.key, e.version, e.value])
        )
        yield* BadInput.run(`StateStore (${label})`, snapshot, [
          BadInput.operation("set", Json, (input) => state.set(key, input), {
            id: (id) => state.set(id as never, 1),
            options: { schema: StateWriteOptions, run: (options) => state.set(key, 2, options as never) },
            valid: FastCheck.jsonValue({ maxDepth: 2 }).map((value) => JSON.parse(JSON.stringify(value)))
          }),
          BadInput.operation("list", StateListOptions, (input) => state.list(input as never), { optional: true }),
          BadInput.operation("delete", StateWriteOptions, (input) => state.delete(key, input as never), {
            id: (id) => state.delete(id as never),
            optional: true
          })
        ])
      })
    )
  })
