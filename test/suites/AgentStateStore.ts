/**
 * The `AgentStateStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own agent and task ids.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, type Layer, Option, Schema, TestClock } from "effect"
import { UpdateOptions } from "../../src/Record.ts"
import { AgentStateInput, AgentStateListOptions, AgentStateStore } from "../../src/Task.ts"
import * as BadInput from "./BadInput.ts"
import { fresh } from "./SessionStore.ts"

const Context = Schema.Struct({ step: Schema.Number, notes: Schema.Array(Schema.String) })

/** Runs the `AgentStateStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<AgentStateStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`AgentStateStore (${label})`, (it) => {
    it.effect("save creates, then replaces with version + 1; context round-trips verbatim", () =>
      Effect.gen(function* () {
        const states = yield* AgentStateStore
        yield* TestClock.setTime(5_000)
        const agentId = fresh("agent")
        const context = { out: "bin\u0000ary", half: "\ud83d", nested: [1, { "k\u0000": null }] }
        const first = yield* states.save({ agentId, status: "thinking", taskId: "t1", context })
        expect(first).toMatchObject({ agentId, status: "thinking", taskId: "t1", iteration: 0, context, version: 1 })
        expect(DateTime.toEpochMillis(first.createdAt)).toBe(5_000)
        expect(yield* states.get(agentId)).toEqual(first)
        expect(yield* states.find(agentId)).toEqual(Option.some(first))
        yield* TestClock.adjust("1 second")
        const second = yield* states.save({ agentId, status: "acting", iteration: 3, conversationId: "c" })
        expect(second).toMatchObject({ status: "acting", iteration: 3, conversationId: "c", context: {}, version: 2 })
        expect(second.taskId).toBeUndefined()
        expect(second.createdAt).toEqual(first.createdAt)
        expect(DateTime.toEpochMillis(second.updatedAt)).toBe(6_000)
        expect(yield* states.get(agentId)).toEqual(second)
        const scalar = yield* states.save({ agentId, status: "x", context: [1, "two"] })
        expect(scalar.context).toEqual([1, "two"])
      })
    )

    it.effect("expectedVersion is a compare-and-set; without it no concurrent save is lost", () =>
      Effect.gen(function* () {
        const states = yield* AgentStateStore
        const agentId = fresh("agent")
        const absent = yield* Effect.flip(states.save({ agentId, status: "s" }, { expectedVersion: 1 }))
        expect(absent).toMatchObject({ _tag: "Conflict", entity: "AgentState", id: agentId, expected: 1, actual: 0 })
        expect(yield* states.find(agentId)).toEqual(Option.none())
        yield* states.save({ agentId, status: "s1" })
        yield* states.save({ agentId, status: "s2" }, { expectedVersion: 1 })
        const stale = yield* Effect.flip(states.save({ agentId, status: "s3" }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", expected: 1, actual: 2 })
        expect((yield* states.get(agentId)).status).toBe("s2")
        yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => i),
          (i) => states.save({ agentId, status: `c${i}`, iteration: i }),
          { concurrency: "unbounded", discard: true }
        )
        expect((yield* states.get(agentId)).version).toBe(14)
      })
    )

    it.effect("get of an unknown agent is NotFound; delete removes; unknown deletes are no-ops", () =>
      Effect.gen(function* () {
        const states = yield* AgentStateStore
        const agentId = fresh("agent")
        expect(yield* Effect.flip(states.get(agentId))).toMatchObject({
          _tag: "NotFound",
          entity: "AgentState",
          id: agentId
        })
        yield* states.save({ agentId, status: "s" })
        yield* states.delete(agentId)
        expect(yield* states.find(agentId)).toEqual(Option.none())
        yield* states.delete(agentId)
        yield* states.delete("no\u0000such")
        expect(yield* Effect.flip(states.delete(42 as never))).toMatchObject({ _tag: "InvalidInput" })
      })
    )

    it.effect("list filters by task, conversation and status, and pages by cursor", () =>
      Effect.gen(function* () {
        const states = yield* AgentStateStore
        const taskId = fresh("task")
        const made = []
        for (let i = 0; i < 7; i++) {
          yield* TestClock.adjust("1 second")
          made.push(
            yield* states.save({
              agentId: fresh("agent"),
              taskId,
              conversationId: i % 2 === 0 ? `${taskId}-even` : `${taskId}-odd`,
              status: i < 3 ? "idle" : "busy"
            })
          )
        }
        const agents = (items: ReadonlyArray<{ readonly agentId: string }>) => items.map((s) => s.agentId)
        expect(agents((yield* states.list({ taskId })).items)).toEqual(agents(made))
        expect(agents((yield* states.list({ conversationId: `${taskId}-odd` })).items)).toEqual(
          agents([made[1]!, made[3]!, made[5]!])
        )
        expect(agents((yield* states.list({ taskId, status: "idle" })).items)).toEqual(agents(made.slice(0, 3)))
        const seen: Array<string> = []
        let cursor: Option.Option<string> = Option.none()
        do {
          const page = yield* states.list({
            taskId,
            limit: 2,
            order: "desc",
            ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
          })
          seen.push(...agents(page.items))
          cursor = page.nextCursor
        } while (Option.isSome(cursor))
        expect(seen).toEqual(agents(made).reverse())
      })
    )

    it.effect("getAs / saveAs type the context; a stored context that does not decode names the field", () =>
      Effect.gen(function* () {
        const states = yield* AgentStateStore
        const agentId = fresh("agent")
        const saved = yield* states.saveAs(Context, { agentId, status: "s", context: { step: 2, notes: ["a"] } })
        expect(saved.context).toEqual({ step: 2, notes: ["a"] })
        const typed = yield* states.getAs(Context, agentId)
        expect(typed.context.step).toBe(2)
        const wrong = yield* Effect.flip(
          states.saveAs(Context, { agentId, status: "s", context: { step: "two", notes: [] } as never })
        )
        expect(wrong).toMatchObject({ _tag: "InvalidInput", message: 'context.step must be a number, got "two"' })
        yield* states.save({ agentId, status: "s", context: { step: 1, notes: [3] } })
        const error = yield* Effect.flip(states.getAs(Context, agentId))
        expect(error._tag).toBe("DecodeError")
        if (error._tag === "DecodeError") expect(error.message).toContain("notes[0]")
        expect(yield* Effect.flip(states.getAs(Context, fresh("none")))).toMatchObject({ _tag: "NotFound" })
      })
    )

    it.effect("bad input is InvalidInput and writes nothing (generated)", () =>
      Effect.gen(function* () {
        const states = yield* AgentStateStore
        const agentId = fresh("bad")
        yield* states.save({ agentId, status: "keep" })
        const snapshot = Effect.all([states.list({ limit: 1000, order: "desc" }), states.get(agentId)])
        yield* BadInput.run(`AgentStateStore (${label})`, snapshot, [
          BadInput.operation("save", AgentStateInput, (input) => states.save(input as never), {
            options: {
              schema: UpdateOptions,
              run: (options) => states.save({ agentId, status: "x" }, options as never)
            }
          }),
          BadInput.operation("list", Schema.UndefinedOr(AgentStateListOptions), (input) => states.list(input as never)),
          BadInput.operation("get", Schema.String, (input) => states.get(input as never), {
            id: (id) => states.find(id as never)
          })
        ])
      })
    )
  })
