/**
 * The `TemplateStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own template names and categories.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, type Layer, Option, Schema, TestClock } from "effect"
import { PageOptions } from "../../src/Page.ts"
import {
  TemplateInput,
  TemplateListOptions,
  TemplateStore,
  TemplateVars,
  TemplateVersionOptions,
  templateVariables
} from "../../src/Plan.ts"
import { UpdateOptions } from "../../src/Record.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

/** Content that must round-trip exactly: U+0000, a lone surrogate, an emoji, other scripts. */
const hostileText = "nul \u0000 half \ud83d emoji \u{1f600} ünïcødé 漢字 \\ \" '"

/** Runs the `TemplateStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<TemplateStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`TemplateStore (${label})`, (it) => {
    it.effect("save creates version 1 with variables derived from the content", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        yield* TestClock.setTime(1_700_000_000_000)
        const name = fresh("greeting")
        const saved = yield* templates.save({
          name,
          description: "says hi",
          content: "Hello {{ user }}, your order {{order.id}} ships {{when}}. Bye {{user}}!",
          category: "mail"
        })
        expect(saved).toMatchObject({ name, description: "says hi", category: "mail", version: 1 })
        expect(saved.variables).toEqual(["user", "order.id", "when"])
        expect(saved.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/)
        expect(DateTime.toEpochMillis(saved.createdAt)).toBe(1_700_000_000_000)
        expect(yield* templates.get(saved.id)).toEqual(saved)
        expect(yield* templates.getByName(name)).toEqual(saved)
        expect(yield* templates.find(saved.id)).toEqual(Option.some(saved))
      })
    )

    it.effect("every save keeps the previous version: history, get with a version", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const name = fresh("report")
        yield* TestClock.setTime(5_000)
        const v1 = yield* templates.save({ name, content: "v1 {{a}}" })
        yield* TestClock.adjust("1 second")
        const v2 = yield* templates.save({ name, content: "v2 {{b}}" })
        yield* TestClock.adjust("1 second")
        const v3 = yield* templates.save({ id: v1.id, name, content: "v3" }, { expectedVersion: 2 })
        expect([v2.id, v3.id]).toEqual([v1.id, v1.id])
        expect([v2.version, v3.version]).toEqual([2, 3])
        expect(DateTime.toEpochMillis(v3.createdAt)).toBe(5_000)
        expect(DateTime.toEpochMillis(v3.updatedAt)).toBe(7_000)
        expect(yield* templates.get(v1.id)).toEqual(v3)
        expect(yield* templates.get(v1.id, { version: 1 })).toEqual(v1)
        expect(yield* templates.get(v1.id, { version: 2 })).toEqual(v2)
        expect(yield* Effect.flip(templates.get(v1.id, { version: 4 }))).toMatchObject({ _tag: "NotFound" })
        const byName = yield* templates.history(name)
        expect(byName.items).toEqual([v1, v2, v3])
        expect((yield* templates.history(v1.id)).items).toEqual([v1, v2, v3])
        const newest = yield* templates.history(name, { order: "desc", limit: 2 })
        expect(newest.items).toEqual([v3, v2])
        const rest = yield* templates.history(name, { order: "desc", cursor: Option.getOrThrow(newest.nextCursor) })
        expect(rest.items).toEqual([v1])
        expect(rest.nextCursor).toEqual(Option.none())
        expect(yield* Effect.flip(templates.history(fresh("none")))).toMatchObject({ _tag: "NotFound" })
        const stale = yield* Effect.flip(templates.save({ name, content: "late" }, { expectedVersion: 2 }))
        expect(stale).toMatchObject({ _tag: "Conflict", id: v1.id, expected: 2, actual: 3 })
        expect(
          yield* Effect.flip(templates.save({ name: fresh("new"), content: "x" }, { expectedVersion: 1 }))
        ).toMatchObject({ _tag: "Conflict", expected: 1, actual: 0 })
        expect((yield* templates.get(v1.id)).version).toBe(3)
      })
    )

    it.effect("names are unique: a rename onto another template's name is a Conflict and writes nothing", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const first = yield* templates.save({ name: fresh("first"), content: "1" })
        const second = yield* templates.save({ name: fresh("second"), content: "2" })
        const error = yield* Effect.flip(templates.save({ id: second.id, name: first.name, content: "2b" }))
        expect(error).toMatchObject({ _tag: "Conflict", entity: "Template", id: first.name, reason: "exists" })
        expect(yield* templates.get(second.id)).toEqual(second)
        expect((yield* templates.history(second.id)).items).toEqual([second])
        const given = yield* Effect.flip(templates.save({ id: fresh("tpl"), name: first.name, content: "x" }))
        expect(given).toMatchObject({ _tag: "Conflict", reason: "exists" })
        const renamed = yield* templates.save({ id: second.id, name: fresh("renamed"), content: "2c" })
        expect(renamed).toMatchObject({ id: second.id, version: 2 })
        expect(yield* templates.getByName(renamed.name)).toEqual(renamed)
        expect(yield* Effect.flip(templates.getByName(second.name))).toMatchObject({ _tag: "NotFound" })
        expect((yield* templates.history(second.id)).items.map((t) => t.name)).toEqual([second.name, renamed.name])
      })
    )

    it.effect("render substitutes variables; extra ones are ignored, values are not rescanned", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const name = fresh("render")
        const saved = yield* templates.save({ name, content: "Dear {{name}}, {{ count }} items ({{ok}}): {{name}}." })
        const vars = { name: "Ada {{count}}", count: 3, ok: true, unused: "x" }
        const expected = "Dear Ada {{count}}, 3 items (true): Ada {{count}}."
        expect(yield* templates.render(name, vars)).toBe(expected)
        expect(yield* templates.render(saved.id, vars)).toBe(expected)
        yield* templates.save({ name, content: "v2 {{name}}" })
        expect(yield* templates.render(name, vars)).toBe("v2 Ada {{count}}")
        expect(yield* templates.render(name, vars, { version: 1 })).toBe(expected)
        expect(yield* Effect.flip(templates.render(fresh("none"), {}))).toMatchObject({ _tag: "NotFound" })
      })
    )

    it.effect("render with missing variables is one InvalidInput naming every missing one", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const name = fresh("missing")
        yield* templates.save({ name, content: "{{a}} {{b}} {{c}} {{a}}" })
        const error = yield* Effect.flip(templates.render(name, { b: "here" }))
        expect(error).toMatchObject({ _tag: "InvalidInput", entity: "Template", message: "vars is missing a, c" })
        if (error._tag === "InvalidInput") {
          expect(error.issues).toEqual([
            { path: ["vars", "a"], message: "is missing" },
            { path: ["vars", "c"], message: "is missing" }
          ])
        }
        for (const vars of [{ a: {} }, { a: null }, { a: Number.NaN }, new Map(), null, "a=1"]) {
          expect((yield* Effect.flip(templates.render(name, vars as never)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("escaping: \\{{ is a literal {{, and a {{ that opens no placeholder is literal", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const name = fresh("escape")
        const content = 'Use \\{{name}} for {{name}}; JSON {{"a": 1}} and {{ not valid }} stay; {{}}'
        const saved = yield* templates.save({ name, content })
        expect(saved.variables).toEqual(["name"])
        expect(saved.content).toBe(content)
        expect(yield* templates.render(name, { name: "X" })).toBe(
          'Use {{name}} for X; JSON {{"a": 1}} and {{ not valid }} stay; {{}}'
        )
        expect(templateVariables("\\{{a}} {{b}}{{c}}\\{{b}}")).toEqual(["b", "c"])
      })
    )

    it.effect("content and description round-trip verbatim", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const name = fresh("verbatim")
        const content = `${hostileText} {{v}} ${hostileText}`
        const saved = yield* templates.save({ name, content, description: hostileText })
        const stored = yield* templates.get(saved.id)
        expect(stored).toEqual(saved)
        expect(stored.content).toBe(content)
        expect(stored.description).toBe(hostileText)
        expect(yield* templates.render(name, { v: hostileText })).toBe(`${hostileText} ${hostileText} ${hostileText}`)
        expect((yield* templates.history(name)).items).toEqual([saved])
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const name = fresh("bad")
        const inputs: Array<unknown> = [
          { name, content: 42 },
          { name: "", content: "x" },
          { name: "nul \u0000", content: "x" },
          { name: "\ud800", content: "x" },
          { name, content: "x", category: "a\u0000" },
          { name, content: "x", description: null },
          { name },
          { id: "", name, content: "x" },
          ...BadInput.containers({ name, content: "x" })
        ]
        const outcomes = yield* Effect.forEach(inputs, (input) => Effect.either(templates.save(input as never)))
        const accepted = outcomes.flatMap((outcome, i) => (outcome._tag === "Left" ? [] : [i]))
        expect(accepted, "indexes of inputs not refused").toEqual([])
        expect(outcomes.every((outcome) => outcome._tag === "Left" && outcome.left._tag === "InvalidInput")).toBe(true)
        expect(yield* Effect.flip(templates.getByName(name))).toMatchObject({ _tag: "NotFound" })
        expect((yield* Effect.flip(templates.get(1 as never)))._tag).toBe("InvalidInput")
        expect((yield* Effect.flip(templates.get("x", { version: 0 })))._tag).toBe("InvalidInput")
        expect((yield* Effect.flip(templates.list({ cursor: "bad" })))._tag).toBe("InvalidInput")
        expect((yield* Effect.flip(templates.history(name, { limit: 5000 })))._tag).toBe("InvalidInput")
      })
    )

    it.effect(
      "list is by name, filters by category and pages by cursor; delete removes a template and its history",
      () =>
        Effect.gen(function* () {
          const templates = yield* TemplateStore
          const category = fresh("cat")
          const prefix = fresh("t")
          const names = ["c", "a", "e", "b", "d"].map((n) => `${prefix}-${n}`)
          const made = []
          for (const name of names) made.push(yield* templates.save({ name, content: name, category }))
          yield* templates.save({ name: `${prefix}-other`, content: "x", category: fresh("cat") })
          const sorted = [...made].sort((a, b) => (a.name < b.name ? -1 : 1))
          const all = yield* templates.list({ category })
          expect(all.items).toEqual(sorted)
          const seen: Array<string> = []
          let cursor: Option.Option<string> = Option.none()
          do {
            const page = yield* templates.list({
              category,
              limit: 2,
              ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
            })
            seen.push(...page.items.map((t) => t.name))
            cursor = page.nextCursor
          } while (Option.isSome(cursor))
          expect(seen).toEqual(sorted.map((t) => t.name))
          const desc = yield* templates.list({ category, order: "desc", limit: 2 })
          expect(desc.items.map((t) => t.name)).toEqual([sorted[4]!.name, sorted[3]!.name])

          const gone = made[0]!
          yield* templates.save({ id: gone.id, name: gone.name, content: "v2" })
          yield* templates.delete(gone.id)
          yield* templates.delete(gone.id)
          expect(yield* templates.find(gone.id)).toEqual(Option.none())
          expect(yield* Effect.flip(templates.history(gone.id))).toMatchObject({ _tag: "NotFound" })
          expect((yield* templates.list({ category })).items.length).toBe(4)
          const reborn = yield* templates.save({ name: gone.name, content: "again" })
          expect(reborn.version).toBe(1)
          expect(reborn.id).not.toBe(gone.id)
        })
    )

    it.effect("concurrent saves of one name make consecutive versions, none lost", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const name = fresh("busy")
        const saved = yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => i),
          (i) => templates.save({ name, content: `version from ${i}` }),
          { concurrency: "unbounded" }
        )
        expect(new Set(saved.map((t) => t.id)).size).toBe(1)
        expect(saved.map((t) => t.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
        const history = yield* templates.history(name)
        expect(history.items.map((t) => t.version)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
        expect(new Set(history.items.map((t) => t.content)).size).toBe(12)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const templates = yield* TemplateStore
        const existing = yield* templates.save({ name: fresh("bad-input"), content: "{{x}}" })
        const snapshot = Effect.map(templates.list({ limit: 1000, order: "desc" }), (page) =>
          page.items.map((t) => [t.id, t.version, t.name])
        )
        yield* BadInput.run(`TemplateStore (${label})`, snapshot, [
          BadInput.operation("save", TemplateInput, (input) => templates.save(input as never), {
            options: {
              schema: UpdateOptions,
              run: (options) => templates.save({ id: existing.id, name: existing.name, content: "y" }, options as never)
            }
          }),
          BadInput.operation("render", TemplateVars, (input) => templates.render(existing.id, input as never), {
            id: (id) => templates.render(id as never, { x: "1" })
          }),
          BadInput.operation(
            "get",
            Schema.UndefinedOr(TemplateVersionOptions),
            (input) => templates.get(existing.id, input as never),
            {
              id: (id) => templates.get(id as never)
            }
          ),
          BadInput.operation(
            "history",
            Schema.UndefinedOr(PageOptions),
            (input) => templates.history(existing.id, input as never),
            {
              id: (id) => templates.history(id as never)
            }
          ),
          BadInput.operation(
            "list",
            Schema.UndefinedOr(TemplateListOptions),
            (input) => templates.list(input as never),
            {
              id: (id) => templates.delete(id as never)
            }
          )
        ])
      })
    )
  })
