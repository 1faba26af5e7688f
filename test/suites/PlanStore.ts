/**
 * The `PlanStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own conversation ids.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, type Layer, Option, Schema, TestClock } from "effect"
import { PlanInput, PlanListOptions, PlanStore, StepPatch } from "../../src/Plan.ts"
import { UpdateOptions } from "../../src/Record.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

const uuidv7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** Content that must round-trip exactly: U+0000, a lone surrogate, an emoji, other scripts. */
const hostileText = "nul \u0000 half \ud83d emoji \u{1f600} ünïcødé 漢字 \\ \" '"

/** Runs the `PlanStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<PlanStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`PlanStore (${label})`, (it) => {
    it.effect("save creates a plan with defaults; get and find return it", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        yield* TestClock.setTime(1_700_000_000_000)
        const conversationId = fresh("conv")
        const plan = yield* plans.save({
          conversationId,
          title: "ship it",
          steps: [{ description: "write" }, { id: "review", description: "review", status: "in_progress" }]
        })
        expect(plan.id).toMatch(uuidv7)
        expect(plan).toMatchObject({ conversationId, title: "ship it", status: "draft", metadata: {}, version: 1 })
        expect(plan.description).toBeUndefined()
        expect(plan.steps.map((s) => [s.description, s.status])).toEqual([
          ["write", "pending"],
          ["review", "in_progress"]
        ])
        expect(plan.steps[0]!.id).toMatch(uuidv7)
        expect(plan.steps[1]!.id).toBe("review")
        expect(DateTime.toEpochMillis(plan.createdAt)).toBe(1_700_000_000_000)
        expect(yield* plans.get(plan.id)).toEqual(plan)
        expect(yield* plans.find(plan.id)).toEqual(Option.some(plan))
      })
    )

    it.effect("save with a given id creates, then replaces keeping createdAt; expectedVersion is compare-and-set", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        const id = fresh("plan")
        const conversationId = fresh("conv")
        yield* TestClock.setTime(10_000)
        const first = yield* plans.save({ id, conversationId, title: "v1", steps: [{ id: "a", description: "a" }] })
        expect(first).toMatchObject({ id, version: 1 })
        yield* TestClock.adjust("3 seconds")
        const second = yield* plans.save(
          { id, conversationId, title: "v2", status: "active", description: "d", metadata: { k: [1] } },
          { expectedVersion: 1 }
        )
        expect(second).toMatchObject({ id, title: "v2", status: "active", description: "d", steps: [], version: 2 })
        expect(DateTime.toEpochMillis(second.createdAt)).toBe(10_000)
        expect(DateTime.toEpochMillis(second.updatedAt)).toBe(13_000)
        expect(yield* plans.get(id)).toEqual(second)

        const stale = yield* Effect.flip(plans.save({ id, conversationId, title: "v3" }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", entity: "Plan", id, expected: 1, actual: 2 })
        const missing = fresh("plan")
        const absent = yield* Effect.flip(
          plans.save({ id: missing, conversationId, title: "x" }, { expectedVersion: 1 })
        )
        expect(absent).toMatchObject({ _tag: "Conflict", id: missing, expected: 1, actual: 0 })
        expect(yield* plans.find(missing)).toEqual(Option.none())
        expect(yield* plans.get(id)).toEqual(second)
        const third = yield* plans.save({ id, conversationId, title: "v3" })
        expect(third.version).toBe(3)
      })
    )

    it.effect("content round-trips verbatim", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        const conversationId = fresh("conv")
        const plan = yield* plans.save({
          conversationId,
          title: "unicode ✓ 漢字",
          description: hostileText,
          steps: [{ id: "s", description: hostileText, result: hostileText }],
          metadata: { [hostileText]: hostileText, nested: { n: 1.5, a: [null, true] } }
        })
        const stored = yield* plans.get(plan.id)
        expect(stored).toEqual(plan)
        expect(stored.description).toBe(hostileText)
        expect(stored.steps[0]).toEqual({ id: "s", description: hostileText, status: "pending", result: hostileText })
        expect(stored.metadata[hostileText]).toBe(hostileText)
        const listed = yield* plans.list({ conversationId })
        expect(listed.items).toEqual([plan])
        const updated = yield* plans.updateStep(plan.id, "s", { result: `${hostileText}!` })
        expect((yield* plans.get(plan.id)).steps[0]!.result).toBe(`${hostileText}!`)
        expect(updated.steps[0]!.result).toBe(`${hostileText}!`)
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        const id = fresh("bad")
        const conversationId = fresh("conv")
        const inputs: Array<unknown> = [
          { id, title: "no conversation" },
          { id, conversationId: "", title: "t" },
          { id, conversationId, title: "nul \u0000" },
          { id, conversationId, title: "t", status: "done" },
          { id, conversationId, title: "t", steps: [{ description: "a", status: "waiting" }] },
          {
            id,
            conversationId,
            title: "t",
            steps: [
              { id: "x", description: "a" },
              { id: "x", description: "b" }
            ]
          },
          { id, conversationId, title: "t", steps: [{ id: "", description: "a" }] },
          { id, conversationId, title: "t", steps: Array.from({ length: 1001 }, () => ({ description: "s" })) },
          { id, conversationId, title: "t", metadata: { d: new Date(0) } },
          { id: "\ud800", conversationId, title: "t" },
          ...BadInput.jsonObjects.map((metadata) => ({ id, conversationId, title: "t", metadata })),
          ...BadInput.containers({ id, conversationId, title: "t" })
        ]
        const outcomes = yield* Effect.forEach(inputs, (input) => Effect.either(plans.save(input as never)))
        const accepted = outcomes.flatMap((outcome, i) => (outcome._tag === "Left" ? [] : [i]))
        expect(accepted, "indexes of inputs not refused").toEqual([])
        expect(outcomes.every((outcome) => outcome._tag === "Left" && outcome.left._tag === "InvalidInput")).toBe(true)
        const duplicate = yield* Effect.flip(
          plans.save({
            id,
            conversationId,
            title: "t",
            steps: [
              { id: "x", description: "a" },
              { id: "x", description: "b" }
            ]
          })
        )
        expect(duplicate).toMatchObject({
          _tag: "InvalidInput",
          message: "steps[1].id must be unique, steps[0] has it too"
        })
        expect(yield* plans.find(id)).toEqual(Option.none())
        expect((yield* plans.list({ conversationId })).items).toEqual([])
        expect((yield* Effect.flip(plans.get(42 as never)))._tag).toBe("InvalidInput")
        expect((yield* Effect.flip(plans.list({ limit: 0 })))._tag).toBe("InvalidInput")
        expect((yield* Effect.flip(plans.list({ cursor: "nope" })))._tag).toBe("InvalidInput")
      })
    )

    it.effect("get of an unknown id is NotFound; find is None; delete removes and is a no-op when absent", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        const id = fresh("missing")
        expect(yield* Effect.flip(plans.get(id))).toMatchObject({ _tag: "NotFound", entity: "Plan", id })
        expect(yield* plans.find(id)).toEqual(Option.none())
        expect(yield* Effect.flip(plans.get("no\u0000such"))).toMatchObject({ _tag: "NotFound" })
        yield* plans.delete(id)
        const plan = yield* plans.save({ conversationId: fresh("conv"), title: "t" })
        yield* plans.delete(plan.id)
        expect(yield* plans.find(plan.id)).toEqual(Option.none())
      })
    )

    it.effect("list is oldest first, filters by conversation and status, and pages by cursor", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        const conversationId = fresh("conv")
        const made = []
        for (let i = 0; i < 7; i++) {
          yield* TestClock.adjust("1 second")
          made.push(yield* plans.save({ conversationId, title: `p${i}`, status: i % 2 === 0 ? "active" : "draft" }))
        }
        yield* plans.save({ conversationId: fresh("other"), title: "elsewhere" })
        const all = yield* plans.list({ conversationId })
        expect(all.items.map((p) => p.id)).toEqual(made.map((p) => p.id))
        expect(all.nextCursor).toEqual(Option.none())
        const active = yield* plans.list({ conversationId, status: "active" })
        expect(active.items.map((p) => p.id)).toEqual(made.filter((_, i) => i % 2 === 0).map((p) => p.id))
        const seen: Array<string> = []
        let cursor: Option.Option<string> = Option.none()
        do {
          const page = yield* plans.list({
            conversationId,
            limit: 3,
            ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
          })
          seen.push(...page.items.map((p) => p.id))
          cursor = page.nextCursor
        } while (Option.isSome(cursor))
        expect(seen).toEqual(made.map((p) => p.id))
        const desc = yield* plans.list({ conversationId, order: "desc", limit: 2 })
        expect(desc.items.map((p) => p.id)).toEqual([made[6]!.id, made[5]!.id])
        const rest = yield* plans.list({ conversationId, order: "desc", cursor: Option.getOrThrow(desc.nextCursor) })
        expect(rest.items.map((p) => p.id)).toEqual(
          made
            .slice(0, 5)
            .reverse()
            .map((p) => p.id)
        )
      })
    )

    it.effect("updateStep patches one step, clears a result with null and bumps the plan's version", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        yield* TestClock.setTime(50_000)
        const plan = yield* plans.save({
          conversationId: fresh("conv"),
          title: "t",
          steps: [
            { id: "a", description: "first" },
            { id: "b", description: "second", result: "old" }
          ]
        })
        yield* TestClock.adjust("2 seconds")
        const done = yield* plans.updateStep(plan.id, "a", { status: "completed", result: "ok" })
        expect(done.steps).toEqual([
          { id: "a", description: "first", status: "completed", result: "ok" },
          { id: "b", description: "second", status: "pending", result: "old" }
        ])
        expect(done.version).toBe(2)
        expect(DateTime.toEpochMillis(done.updatedAt)).toBe(52_000)
        const cleared = yield* plans.updateStep(
          plan.id,
          "b",
          { result: null, description: "2nd" },
          { expectedVersion: 2 }
        )
        expect(cleared.steps[1]).toEqual({ id: "b", description: "2nd", status: "pending" })
        expect(yield* plans.get(plan.id)).toEqual(cleared)
      })
    )

    it.effect(
      "updateStep: unknown plan or step is NotFound, a stale version a Conflict, a bad patch InvalidInput",
      () =>
        Effect.gen(function* () {
          const plans = yield* PlanStore
          const plan = yield* plans.save({
            conversationId: fresh("conv"),
            title: "t",
            steps: [{ id: "a", description: "a" }]
          })
          const missing = fresh("plan")
          expect(yield* Effect.flip(plans.updateStep(missing, "a", { status: "completed" }))).toMatchObject({
            _tag: "NotFound",
            entity: "Plan",
            id: missing
          })
          expect(yield* Effect.flip(plans.updateStep(plan.id, "zz", { status: "completed" }))).toMatchObject({
            _tag: "NotFound",
            entity: "PlanStep",
            id: "zz"
          })
          expect(
            yield* Effect.flip(plans.updateStep(plan.id, "a", { status: "completed" }, { expectedVersion: 7 }))
          ).toMatchObject({ _tag: "Conflict", expected: 7, actual: 1 })
          for (const patch of [{ status: "finished" }, { result: 42 }, { description: null }, new Date(0), null]) {
            expect((yield* Effect.flip(plans.updateStep(plan.id, "a", patch as never)))._tag).toBe("InvalidInput")
          }
          expect((yield* Effect.flip(plans.updateStep(plan.id, 7 as never, {})))._tag).toBe("InvalidInput")
          expect(yield* plans.get(plan.id)).toEqual(plan)
        })
    )

    it.effect("concurrent step updates are never lost", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        const steps = Array.from({ length: 16 }, (_, i) => ({ id: `s${i}`, description: `step ${i}` }))
        const plan = yield* plans.save({ conversationId: fresh("conv"), title: "race", steps })
        // Two rounds per step, all 32 updates at once: each round's write must survive the others.
        yield* Effect.forEach(
          [...steps, ...steps].map((step, i) => [step.id, i] as const),
          ([stepId, i]) =>
            i < steps.length
              ? plans.updateStep(plan.id, stepId, { status: "in_progress" })
              : plans.updateStep(plan.id, stepId, { result: `result of ${stepId}` }),
          { concurrency: "unbounded", discard: true }
        )
        const after = yield* plans.get(plan.id)
        expect(after.version).toBe(1 + 2 * steps.length)
        expect(after.steps).toEqual(
          steps.map((step) => ({ ...step, status: "in_progress", result: `result of ${step.id}` }))
        )
      })
    )

    it.effect("concurrent step updates at one expectedVersion: exactly one wins", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        const steps = Array.from({ length: 8 }, (_, i) => ({ id: `s${i}`, description: `step ${i}` }))
        const plan = yield* plans.save({ conversationId: fresh("conv"), title: "cas", steps })
        const outcomes = yield* Effect.forEach(
          steps,
          (step) => Effect.either(plans.updateStep(plan.id, step.id, { status: "completed" }, { expectedVersion: 1 })),
          { concurrency: "unbounded" }
        )
        const won = outcomes.filter((o) => o._tag === "Right")
        expect(won.length).toBe(1)
        expect(outcomes.filter((o) => o._tag === "Left").every((o) => o.left._tag === "Conflict")).toBe(true)
        const after = yield* plans.get(plan.id)
        expect(after.version).toBe(2)
        expect(after.steps.filter((s) => s.status === "completed").length).toBe(1)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const plans = yield* PlanStore
        const conversationId = fresh("bad-input")
        const existing = yield* plans.save({ conversationId, title: "kept", steps: [{ id: "a", description: "a" }] })
        const snapshot = Effect.map(plans.list({ limit: 1000, order: "desc" }), (page) =>
          page.items.map((p) => [p.id, p.version, p.steps])
        )
        yield* BadInput.run(`PlanStore (${label})`, snapshot, [
          BadInput.operation("save", PlanInput, (input) => plans.save(input as never), {
            options: {
              schema: UpdateOptions,
              run: (options) => plans.save({ id: existing.id, conversationId, title: "x" }, options as never)
            }
          }),
          BadInput.operation("updateStep", StepPatch, (input) => plans.updateStep(existing.id, "a", input as never), {
            id: (id) => plans.updateStep(id as never, "a", { status: "completed" }),
            options: {
              schema: UpdateOptions,
              run: (options) => plans.updateStep(existing.id, "a", { status: "failed" }, options as never)
            }
          }),
          BadInput.operation("list", Schema.UndefinedOr(PlanListOptions), (input) => plans.list(input as never), {
            id: (id) => plans.get(id as never)
          })
        ])
      })
    )
  })
