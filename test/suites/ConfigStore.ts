/**
 * The `ConfigStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own document names.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, FastCheck, Layer, Option, Schema, TestClock } from "effect"
import { ConfigStore } from "../../src/Config.ts"
import { isJson, Json } from "../../src/Json.ts"
import { PageOptions } from "../../src/Page.ts"
import { UpdateOptions } from "../../src/Record.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

/** A caller's config Schema, version 1 of an app's settings. */
const AppConfig = Schema.Struct({
  model: Schema.String,
  temperature: Schema.Number.pipe(Schema.between(0, 2)),
  tools: Schema.Array(Schema.String)
})

/** The same settings after the app added a required field. */
const AppConfigV2 = Schema.Struct({ ...AppConfig.fields, retries: Schema.Int })

/** A Schema whose encoded form differs from its type (dates as ISO strings). */
const Schedule = Schema.Struct({ start: Schema.DateFromString, every: Schema.Number })

const app = { model: "gpt-4o", temperature: 0.2, tools: ["search"] }

/** Runs the `ConfigStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<ConfigStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`ConfigStore (${label})`, (it) => {
    it.effect("save creates version 1 and get decodes it with the caller's Schema", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("app")
        yield* TestClock.setTime(1_700_000_000_000)
        const saved = yield* configs.save(AppConfig, name, app)
        expect(saved).toMatchObject({ name, version: 1, value: app })
        expect(DateTime.toEpochMillis(saved.createdAt)).toBe(1_700_000_000_000)
        expect(DateTime.toEpochMillis(saved.updatedAt)).toBe(1_700_000_000_000)
        expect(yield* configs.get(AppConfig, name)).toEqual(saved)
        expect(yield* configs.find(AppConfig, name)).toEqual(Option.some(saved))
      })
    )

    it.effect("every save is a new version and the old ones are kept", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("versions")
        yield* TestClock.setTime(1_000)
        yield* configs.save(AppConfig, name, app)
        yield* TestClock.setTime(2_000)
        const second = yield* configs.save(AppConfig, name, { ...app, temperature: 0.7 })
        expect(second.version).toBe(2)
        expect(DateTime.toEpochMillis(second.createdAt)).toBe(1_000)
        expect(DateTime.toEpochMillis(second.updatedAt)).toBe(2_000)
        yield* TestClock.setTime(3_000)
        yield* configs.save(AppConfig, name, { ...app, tools: [] })
        expect((yield* configs.get(AppConfig, name)).value).toEqual({ ...app, tools: [] })
        const first = yield* configs.get(AppConfig, name, { version: 1 })
        expect(first).toMatchObject({ version: 1, value: app })
        expect(yield* configs.find(AppConfig, name, { version: 4 })).toEqual(Option.none())
        const history = yield* configs.history(name)
        expect(history.items.map((r) => [r.version, r.value, DateTime.toEpochMillis(r.updatedAt)])).toEqual([
          [1, app, 1_000],
          [2, { ...app, temperature: 0.7 }, 2_000],
          [3, { ...app, tools: [] }, 3_000]
        ])
        expect(history.items.every((r) => DateTime.toEpochMillis(r.createdAt) === 1_000)).toBe(true)
        expect(history.nextCursor).toEqual(Option.none())
      })
    )

    it.effect("history pages by version cursor, both orders", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("paged")
        for (let i = 0; i < 7; i++) yield* configs.save(AppConfig, name, { ...app, tools: [`t${i}`] })
        const walk = (order: "asc" | "desc") =>
          Effect.gen(function* () {
            const versions: Array<number> = []
            let cursor: Option.Option<string> = Option.none()
            do {
              const page = yield* configs.history(name, {
                limit: 3,
                order,
                ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
              })
              versions.push(...page.items.map((r) => r.version))
              cursor = page.nextCursor
            } while (Option.isSome(cursor))
            return versions
          })
        expect(yield* walk("asc")).toEqual([1, 2, 3, 4, 5, 6, 7])
        expect(yield* walk("desc")).toEqual([7, 6, 5, 4, 3, 2, 1])
        const skipped = yield* configs.history(name, { offset: 5 })
        expect(skipped.items.map((r) => r.version)).toEqual([6, 7])
        expect((yield* configs.history(fresh("none"))).items).toEqual([])
        expect((yield* configs.history("no\u0000such")).items).toEqual([])
        for (const options of [{ limit: 0 }, { cursor: "nope" }, { order: "up" }, { offset: -1 }]) {
          expect((yield* Effect.flip(configs.history(name, options as never)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("a stale expectedVersion is a Conflict and writes nothing", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("cas")
        const missing = yield* Effect.flip(configs.save(AppConfig, name, app, { expectedVersion: 1 }))
        expect(missing).toMatchObject({ _tag: "Conflict", entity: "Config", id: name, expected: 1, actual: 0 })
        yield* configs.save(AppConfig, name, app)
        yield* configs.save(AppConfig, name, app, { expectedVersion: 1 })
        const stale = yield* Effect.flip(configs.save(AppConfig, name, { ...app, model: "x" }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", expected: 1, actual: 2 })
        expect(yield* configs.get(AppConfig, name)).toMatchObject({ version: 2, value: app })
        expect((yield* configs.history(name)).items.length).toBe(2)
      })
    )

    it.effect("concurrent saves all succeed with distinct versions", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("race")
        const saved = yield* Effect.forEach(
          Array.from({ length: 24 }, (_, i) => i),
          (i) => configs.save(AppConfig, name, { ...app, tools: [`${i}`] }),
          { concurrency: "unbounded" }
        )
        expect(saved.map((d) => d.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1))
        const history = yield* configs.history(name, { limit: 100 })
        expect(history.items.map((r) => r.version)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1))
        for (const doc of saved) {
          expect((yield* configs.get(AppConfig, name, { version: doc.version })).value).toEqual(doc.value)
        }
      })
    )

    it.effect("a stored document that no longer decodes is a DecodeError naming the field", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("drift")
        yield* configs.save(AppConfig, name, app)
        const error = yield* Effect.flip(configs.get(AppConfigV2, name))
        expect(error._tag).toBe("DecodeError")
        if (error._tag === "DecodeError") {
          expect(error).toMatchObject({ entity: "Config", id: name })
          expect(error.issues).toEqual([{ path: ["retries"], message: "is missing" }])
          expect(error.message).toContain("retries is missing")
        }
        const narrowed = Schema.Struct({ ...AppConfig.fields, temperature: Schema.Number.pipe(Schema.between(1, 2)) })
        const range = yield* Effect.flip(configs.find(narrowed, name))
        expect(range._tag).toBe("DecodeError")
        if (range._tag === "DecodeError") expect(range.issues[0]!.path).toEqual(["temperature"])
        const throwing = Schema.Unknown.pipe(
          Schema.filter(() => {
            throw new Error("boom")
          })
        )
        expect((yield* Effect.flip(configs.get(throwing, name)))._tag).toBe("DecodeError")
        expect((yield* configs.get(AppConfig, name)).value).toEqual(app)
      })
    )

    it.effect("values are stored in their Schema's encoded form and decoded back", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("schedule")
        const start = new Date("2024-05-01T10:00:00.000Z")
        const saved = yield* configs.save(Schedule, name, { start, every: 60 })
        expect(saved.value.start).toEqual(start)
        const read = yield* configs.get(Schedule, name)
        expect(read.value.start).toBeInstanceOf(Date)
        expect(read.value).toEqual({ start, every: 60 })
        const [revision] = (yield* configs.history(name)).items
        expect(revision!.value).toEqual({ start: "2024-05-01T10:00:00.000Z", every: 60 })
      })
    )

    it.effect("content round-trips verbatim (U+0000, lone surrogates, key order)", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("content")
        const value = {
          z: "nul \u0000 inside",
          a: "half \ud83d emoji \udc00",
          "\u0000key": [1.5, -0, 1e300, null, true, { nested: "🙂 é" }],
          "": { "": "" }
        }
        yield* configs.save(Json, name, value)
        const read = yield* configs.get(Json, name)
        expect(JSON.stringify(read.value)).toBe(JSON.stringify(value))
        expect(Object.keys(read.value as object)).toEqual(Object.keys(value))
      })
    )

    it.effect.prop(
      "any JSON value saved reads back equal",
      [
        FastCheck.jsonValue({ maxDepth: 3 })
          .map((value) => JSON.parse(JSON.stringify(value)))
          .filter((value) => isJson(value))
      ],
      ([value]) =>
        Effect.gen(function* () {
          const configs = yield* ConfigStore
          const name = fresh("prop")
          yield* configs.save(Json, name, value)
          expect(JSON.stringify((yield* configs.get(Json, name)).value)).toBe(JSON.stringify(value))
        }),
      { fastCheck: { numRuns: 30 } }
    )

    it.effect("get of an unknown name is NotFound; find is None", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("missing")
        expect(yield* Effect.flip(configs.get(AppConfig, name))).toMatchObject({ _tag: "NotFound", entity: "Config" })
        expect(yield* configs.find(AppConfig, name)).toEqual(Option.none())
        expect(yield* Effect.flip(configs.get(AppConfig, "a\u0000b"))).toMatchObject({ _tag: "NotFound" })
        expect(yield* Effect.flip(configs.get(AppConfig, ""))).toMatchObject({ _tag: "NotFound" })
      })
    )

    it.effect("delete removes every version; a later save starts again at 1", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("gone")
        const other = fresh("kept")
        yield* configs.save(AppConfig, name, app)
        yield* configs.save(AppConfig, name, app)
        yield* configs.save(AppConfig, other, app)
        yield* configs.delete(name)
        expect(yield* configs.find(AppConfig, name)).toEqual(Option.none())
        expect((yield* configs.history(name)).items).toEqual([])
        expect((yield* configs.get(AppConfig, other)).version).toBe(1)
        yield* configs.delete(name)
        yield* configs.delete("no\u0000such")
        expect((yield* configs.save(AppConfig, name, app)).version).toBe(1)
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("bad")
        const values: Array<unknown> = [
          { ...app, temperature: 3 },
          { ...app, tools: "search" },
          { model: "m" },
          null,
          new Date(0),
          [app]
        ]
        for (const value of values) {
          const error = yield* Effect.flip(configs.save(AppConfig, name, value as never))
          expect(error).toMatchObject({ _tag: "InvalidInput", entity: "Config" })
        }
        const range = yield* Effect.flip(configs.save(AppConfig, name, { ...app, temperature: 3 }))
        expect(range._tag === "InvalidInput" && range.issues[0]!.path).toEqual(["value", "temperature"])
        for (const value of [() => 1, new Date(0), { n: Number.NaN }, { u: undefined }, new Map(), 1n]) {
          expect(yield* Effect.flip(configs.save(Schema.Unknown, name, value))).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const bad of ["", "x".repeat(256), "a\u0000b", "\ud800", 42, null, undefined, {}]) {
          expect(yield* Effect.flip(configs.save(AppConfig, bad as never, app))).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const schema of [null, {}, "schema", 42]) {
          const error = yield* Effect.flip(configs.save(schema as never, name, app))
          expect(error).toMatchObject({ _tag: "InvalidInput", message: "schema must be a Schema" })
          expect(yield* Effect.flip(configs.get(schema as never, name))).toMatchObject({ _tag: "InvalidInput" })
        }
        const throwing = Schema.Unknown.pipe(
          Schema.filter(() => {
            throw new Error("boom")
          })
        )
        expect(yield* Effect.flip(configs.save(throwing, name, 1))).toMatchObject({ _tag: "InvalidInput" })
        for (const id of BadInput.ids) {
          expect(yield* Effect.flip(configs.get(AppConfig, id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(configs.history(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(configs.delete(id as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        expect(yield* configs.find(AppConfig, name)).toEqual(Option.none())
      })
    )

    it.effect("hostile containers (throwing getters and traps, class instances) are InvalidInput", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("hostile")
        for (const value of BadInput.containers(app)) {
          expect(yield* Effect.flip(configs.save(AppConfig, name, value as never))).toMatchObject({
            _tag: "InvalidInput"
          })
        }
        expect(yield* configs.find(AppConfig, name)).toEqual(Option.none())
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const configs = yield* ConfigStore
        const name = fresh("bad-input")
        yield* configs.save(AppConfig, name, app)
        const snapshot = Effect.map(configs.history(name, { limit: 1000 }), (page) =>
          page.items.map((r) => [r.version, r.value])
        )
        yield* BadInput.run(`ConfigStore (${label})`, snapshot, [
          BadInput.operation("save", AppConfig, (input) => configs.save(AppConfig, name, input as never), {
            id: (id) => configs.save(AppConfig, id as never, app),
            options: { schema: UpdateOptions, run: (options) => configs.save(AppConfig, name, app, options as never) }
          }),
          BadInput.operation("history", PageOptions, (input) => configs.history(name, input as never), {
            id: (id) => configs.history(id as never),
            optional: true
          })
        ])
      })
    )
  })
