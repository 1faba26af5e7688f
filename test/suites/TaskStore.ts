/**
 * The `TaskStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own conversation ids.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Duration, Effect, type Layer, Option, Schema, TestClock } from "effect"
import { UpdateOptions } from "../../src/Record.ts"
import {
  ClaimNextOptions,
  ReleaseStaleOptions,
  TaskInput,
  TaskListOptions,
  TaskStatus,
  TaskStore,
  UpdateStatusOptions
} from "../../src/Task.ts"
import * as BadInput from "./BadInput.ts"
import { fresh } from "./SessionStore.ts"

const ids = (tasks: ReadonlyArray<{ readonly id: string }>) => tasks.map((task) => task.id)

/** Runs the `TaskStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<TaskStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`TaskStore (${label})`, (it) => {
    it.effect("save creates with defaults; get and find return it; content round-trips verbatim", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        yield* TestClock.setTime(1_700_000_000_000)
        const conversationId = fresh("conv")
        const description = "read \u0000 bytes, half \ud83d emoji, \udc00 too"
        const task = yield* tasks.save({ conversationId, description, metadata: { out: "a\u0000b", "k\u0000": 1 } })
        expect(task).toMatchObject({
          conversationId,
          description,
          status: "pending",
          priority: "normal",
          dependsOn: [],
          iterations: 0,
          metadata: { out: "a\u0000b", "k\u0000": 1 },
          version: 1
        })
        expect(task.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/)
        expect(DateTime.toEpochMillis(task.createdAt)).toBe(1_700_000_000_000)
        expect(task.startedAt).toBeUndefined()
        expect(yield* tasks.get(task.id)).toEqual(task)
        expect(yield* tasks.find(task.id)).toEqual(Option.some(task))
        expect(yield* tasks.find(fresh("missing"))).toEqual(Option.none())
        expect(yield* Effect.flip(tasks.get("no\u0000such"))).toMatchObject({ _tag: "NotFound", entity: "Task" })
        const summary = yield* tasks.updateStatus(task.id, "completed", { summary: "done \u0000 \ud800" })
        expect((yield* tasks.get(task.id)).summary).toBe("done \u0000 \ud800")
        expect(summary.summary).toBe("done \u0000 \ud800")
      })
    )

    it.effect("save replaces a stored task: version + 1, createdAt kept, expectedVersion compare-and-set", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        yield* TestClock.setTime(10_000)
        const id = fresh("task")
        const conversationId = fresh("conv")
        const first = yield* tasks.save({ id, conversationId, description: "v1", planId: "p", assignedTo: "a" })
        yield* TestClock.adjust("1 second")
        const second = yield* tasks.save(
          { id, conversationId, description: "v2", priority: "high" },
          { expectedVersion: 1 }
        )
        expect(second).toMatchObject({ id, description: "v2", priority: "high", version: 2, status: "pending" })
        expect(second.planId).toBeUndefined()
        expect(second.assignedTo).toBeUndefined()
        expect(second.createdAt).toEqual(first.createdAt)
        expect(DateTime.toEpochMillis(second.updatedAt)).toBe(11_000)
        const stale = yield* Effect.flip(tasks.save({ id, conversationId, description: "v3" }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", entity: "Task", id, expected: 1, actual: 2 })
        const absent = yield* Effect.flip(
          tasks.save({ id: fresh("absent"), conversationId, description: "x" }, { expectedVersion: 1 })
        )
        expect(absent).toMatchObject({ _tag: "Conflict", expected: 1, actual: 0 })
        expect(yield* tasks.get(id)).toEqual(second)
        yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => i),
          (i) => tasks.save({ id, conversationId, description: `c${i}` }),
          { concurrency: "unbounded", discard: true }
        )
        expect((yield* tasks.get(id)).version).toBe(12)
      })
    )

    it.effect("unknown dependencies or parent, dependency cycles and parent cycles are InvalidInput", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const conversationId = fresh("conv")
        const a = yield* tasks.save({ conversationId, description: "a" })
        const b = yield* tasks.save({ conversationId, description: "b", dependsOn: [a.id], parentId: a.id })
        const c = yield* tasks.save({ conversationId, description: "c", dependsOn: [b.id], parentId: b.id })
        expect(c.dependsOn).toEqual([b.id])
        const missing = fresh("missing")
        const unknown = yield* Effect.flip(tasks.save({ conversationId, description: "x", dependsOn: [a.id, missing] }))
        expect(unknown).toMatchObject({ _tag: "InvalidInput", message: "dependsOn names a task that does not exist" })
        const orphan = yield* Effect.flip(tasks.save({ conversationId, description: "x", parentId: missing }))
        expect(orphan).toMatchObject({ _tag: "InvalidInput", message: "parentId names a task that does not exist" })
        const cycle = yield* Effect.flip(tasks.save({ id: a.id, conversationId, description: "a", dependsOn: [c.id] }))
        expect(cycle).toMatchObject({ _tag: "InvalidInput", message: "dependsOn would make a dependency cycle" })
        const self = yield* Effect.flip(tasks.save({ id: a.id, conversationId, description: "a", dependsOn: [a.id] }))
        expect(self._tag).toBe("InvalidInput")
        const ancestor = yield* Effect.flip(tasks.save({ id: a.id, conversationId, description: "a", parentId: c.id }))
        expect(ancestor).toMatchObject({
          _tag: "InvalidInput",
          message: "parentId would make the task its own ancestor"
        })
        expect(yield* tasks.get(a.id)).toEqual(a)
        expect((yield* tasks.list({ conversationId })).items).toHaveLength(3)
        // Order of dependencies is kept; duplicates collapse.
        const d = yield* tasks.save({ conversationId, description: "d", dependsOn: [c.id, a.id, c.id] })
        expect(d.dependsOn).toEqual([c.id, a.id])
        const relinked = yield* tasks.save({ id: d.id, conversationId, description: "d", dependsOn: [b.id] })
        expect(relinked.dependsOn).toEqual([b.id])
        expect((yield* tasks.get(d.id)).dependsOn).toEqual([b.id])
      })
    )

    it.effect("updateStatus sets startedAt and completedAt as the status implies; illegal moves name both states", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        yield* TestClock.setTime(50_000)
        const task = yield* tasks.save({ conversationId: fresh("conv"), description: "work" })
        yield* TestClock.adjust("1 second")
        const started = yield* tasks.updateStatus(task.id, "in_progress")
        expect(started).toMatchObject({ status: "in_progress", iterations: 1, version: 2 })
        expect(DateTime.toEpochMillis(started.startedAt!)).toBe(51_000)
        yield* TestClock.adjust("1 second")
        const done = yield* tasks.updateStatus(task.id, "completed", { expectedVersion: 2, summary: "ok" })
        expect(done).toMatchObject({ status: "completed", summary: "ok", version: 3 })
        expect(DateTime.toEpochMillis(done.completedAt!)).toBe(52_000)
        expect(done.startedAt).toEqual(started.startedAt)
        const illegal = yield* Effect.flip(tasks.updateStatus(task.id, "pending"))
        expect(illegal).toMatchObject({ _tag: "InvalidInput", message: "status cannot move from completed to pending" })
        const stale = yield* Effect.flip(tasks.updateStatus(task.id, "completed", { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", expected: 1, actual: 3 })
        expect(yield* tasks.get(task.id)).toEqual(done)
        const other = yield* tasks.save({ conversationId: fresh("conv"), description: "retry" })
        yield* tasks.updateStatus(other.id, "in_progress")
        yield* tasks.updateStatus(other.id, "failed")
        const again = yield* tasks.updateStatus(other.id, "pending")
        expect(again.startedAt).toBeUndefined()
        expect(again.completedAt).toBeUndefined()
        expect(yield* Effect.flip(tasks.updateStatus(fresh("none"), "completed"))).toMatchObject({ _tag: "NotFound" })
        const bad = yield* Effect.flip(tasks.updateStatus(task.id, "finished" as never))
        expect(bad._tag).toBe("InvalidInput")
        const racing = yield* tasks.save({ conversationId: fresh("conv"), description: "race" })
        yield* Effect.forEach(
          ["in_progress", "blocked", "in_progress", "blocked", "in_progress"] as const,
          (status) => tasks.updateStatus(racing.id, status),
          { concurrency: "unbounded", discard: true }
        )
        expect((yield* tasks.get(racing.id)).version).toBe(6)
      })
    )

    it.effect("claimNext takes the highest priority, oldest ready task; dependencies gate it", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const conversationId = fresh("conv")
        yield* TestClock.setTime(100_000)
        const low = yield* tasks.save({ conversationId, description: "low", priority: "low" })
        yield* TestClock.adjust("1 second")
        const first = yield* tasks.save({ conversationId, description: "first" })
        yield* TestClock.adjust("1 second")
        const urgent = yield* tasks.save({
          conversationId,
          description: "urgent",
          priority: "urgent",
          dependsOn: [first.id]
        })
        yield* TestClock.adjust("1 second")
        const second = yield* tasks.save({ conversationId, description: "second", planId: "plan-x" })
        const claim = (agentId: string) => tasks.claimNext({ agentId, conversationId })
        const got = yield* claim("agent-1")
        expect(Option.getOrThrow(got)).toMatchObject({
          id: first.id,
          status: "in_progress",
          assignedTo: "agent-1",
          iterations: 1,
          version: 2
        })
        expect(Option.getOrThrow(yield* claim("agent-2")).id).toBe(second.id)
        expect(Option.getOrThrow(yield* claim("agent-2")).id).toBe(low.id)
        expect(yield* claim("agent-3")).toEqual(Option.none())
        yield* tasks.updateStatus(first.id, "completed")
        expect(Option.getOrThrow(yield* claim("agent-3")).id).toBe(urgent.id)
        expect(yield* claim("agent-3")).toEqual(Option.none())
        const planned = yield* tasks.save({ conversationId, description: "in plan", planId: "plan-y" })
        yield* tasks.save({ conversationId, description: "other plan", planId: "plan-z" })
        const byPlan = yield* tasks.claimNext({ agentId: "a", conversationId, planId: "plan-y" })
        expect(Option.getOrThrow(byPlan).id).toBe(planned.id)
        expect(yield* Effect.flip(tasks.claimNext({ agentId: "" }))).toMatchObject({ _tag: "InvalidInput" })
      })
    )

    it.effect("releaseStale returns abandoned in-progress tasks to pending (time from Clock)", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const conversationId = fresh("conv")
        yield* TestClock.setTime(1_000_000_000)
        const old = yield* tasks.save({ conversationId, description: "old" })
        const recent = yield* tasks.save({ conversationId, description: "recent" })
        yield* tasks.claimNext({ agentId: "gone", conversationId })
        yield* TestClock.adjust("10 minutes")
        yield* tasks.claimNext({ agentId: "alive", conversationId })
        yield* TestClock.adjust("1 minute")
        const refused = yield* Effect.flip(tasks.releaseStale({ olderThan: "5 minutes" as never }))
        expect(refused._tag).toBe("InvalidInput")
        const freed = yield* tasks.releaseStale({ olderThan: 5 * 60_000 })
        expect(ids(freed.filter((t) => t.conversationId === conversationId))).toEqual([old.id])
        expect(freed.find((t) => t.id === old.id)).toMatchObject({ status: "pending", version: 3 })
        expect((yield* tasks.get(old.id)).assignedTo).toBeUndefined()
        expect((yield* tasks.get(recent.id)).status).toBe("in_progress")
        const none = yield* tasks.releaseStale({ olderThan: Duration.minutes(5) })
        expect(none.filter((t) => t.conversationId === conversationId)).toEqual([])
      })
    )

    it.effect("list filters by conversation, plan, status, assignee and parent, and pages by cursor", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const conversationId = fresh("conv")
        const parent = yield* tasks.save({ conversationId, description: "parent" })
        const made = [parent]
        for (let i = 0; i < 6; i++) {
          yield* TestClock.adjust("1 second")
          made.push(
            yield* tasks.save({
              conversationId,
              description: `t${i}`,
              planId: i % 2 === 0 ? "even" : "odd",
              parentId: parent.id,
              ...(i < 2 ? { assignedTo: "bob" } : {})
            })
          )
        }
        yield* tasks.updateStatus(made[3]!.id, "blocked")
        expect(ids((yield* tasks.list({ conversationId })).items)).toEqual(ids(made))
        expect(ids((yield* tasks.list({ conversationId, planId: "even" })).items)).toEqual(
          ids([made[1]!, made[3]!, made[5]!])
        )
        expect(ids((yield* tasks.list({ conversationId, status: "blocked" })).items)).toEqual([made[3]!.id])
        expect(ids((yield* tasks.list({ conversationId, assignedTo: "bob" })).items)).toEqual(ids(made.slice(1, 3)))
        expect(ids((yield* tasks.list({ parentId: parent.id })).items)).toEqual(ids(made.slice(1)))
        const desc = yield* tasks.list({ conversationId, order: "desc", limit: 2 })
        expect(ids(desc.items)).toEqual(ids(made.slice(-2).reverse()))
        const seen: Array<string> = []
        let cursor: Option.Option<string> = Option.none()
        do {
          const page = yield* tasks.list({
            conversationId,
            limit: 3,
            ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
          })
          seen.push(...ids(page.items))
          cursor = page.nextCursor
        } while (Option.isSome(cursor))
        expect(seen).toEqual(ids(made))
        const malformed = yield* Effect.flip(tasks.list({ cursor: "not a cursor" }))
        expect(malformed).toMatchObject({ _tag: "InvalidInput" })
      })
    )

    it.effect("delete takes subtasks along and unblocks dependents; deleteByConversation and deleteByPlan", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const conversationId = fresh("conv")
        const root = yield* tasks.save({ conversationId, description: "root" })
        const child = yield* tasks.save({ conversationId, description: "child", parentId: root.id })
        const grandchild = yield* tasks.save({ conversationId, description: "grandchild", parentId: child.id })
        const dependent = yield* tasks.save({ conversationId, description: "dep", dependsOn: [root.id] })
        yield* tasks.delete(root.id)
        for (const gone of [root, child, grandchild]) expect(yield* tasks.find(gone.id)).toEqual(Option.none())
        expect((yield* tasks.get(dependent.id)).dependsOn).toEqual([])
        expect(Option.getOrThrow(yield* tasks.claimNext({ agentId: "x", conversationId })).id).toBe(dependent.id)
        yield* tasks.delete(root.id)
        const other = fresh("conv")
        const kept = yield* tasks.save({ conversationId: other, description: "kept", planId: "keep" })
        yield* tasks.save({ conversationId: other, description: "planned", planId: fresh("plan") })
        const plan = fresh("plan")
        yield* tasks.save({ conversationId: other, description: "p1", planId: plan })
        yield* tasks.save({ conversationId: other, description: "p2", planId: plan })
        yield* tasks.deleteByPlan(plan)
        expect((yield* tasks.list({ conversationId: other })).items).toHaveLength(2)
        expect((yield* tasks.list({ planId: plan })).items).toEqual([])
        yield* tasks.deleteByConversation(conversationId)
        expect((yield* tasks.list({ conversationId })).items).toEqual([])
        expect(yield* tasks.get(kept.id)).toEqual(kept)
      })
    )

    it.effect("claims from 8 fibers never hand out one task twice", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const conversationId = fresh("conv")
        const made = yield* Effect.forEach(
          Array.from({ length: 60 }, (_, i) => i),
          (i) => tasks.save({ conversationId, description: `t${i}` })
        )
        const claimed = yield* Effect.forEach(
          Array.from({ length: 8 }, (_, w) => w),
          (w) =>
            Effect.gen(function* () {
              const mine: Array<string> = []
              while (true) {
                const next = yield* tasks.claimNext({ agentId: `w${w}`, conversationId })
                if (Option.isNone(next)) return mine
                mine.push(next.value.id)
                yield* Effect.yieldNow()
              }
            }),
          { concurrency: "unbounded" }
        )
        expect(claimed.flat().sort()).toEqual(ids(made).sort())
      })
    )

    it.effect("bad input is InvalidInput and writes nothing (generated)", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const conversationId = fresh("bad")
        const existing = yield* tasks.save({ conversationId, description: "keep" })
        const snapshot = Effect.all([tasks.list({ limit: 1000, order: "desc" }), tasks.get(existing.id)])
        yield* BadInput.run(`TaskStore (${label})`, snapshot, [
          BadInput.operation("save", TaskInput, (input) => tasks.save(input as never), {
            options: {
              schema: UpdateOptions,
              run: (options) => tasks.save({ id: existing.id, conversationId, description: "x" }, options as never)
            }
          }),
          BadInput.operation("updateStatus", TaskStatus, (input) => tasks.updateStatus(existing.id, input as never), {
            id: (id) => tasks.updateStatus(id as never, "completed"),
            options: {
              schema: UpdateStatusOptions,
              run: (options) => tasks.updateStatus(existing.id, "blocked", options as never)
            }
          }),
          BadInput.operation("list", Schema.UndefinedOr(TaskListOptions), (input) => tasks.list(input as never)),
          BadInput.operation("claimNext", ClaimNextOptions, (input) => tasks.claimNext(input as never)),
          BadInput.operation("releaseStale", ReleaseStaleOptions, (input) => tasks.releaseStale(input as never)),
          BadInput.operation("deleteByConversation", Schema.String.pipe(Schema.minLength(1)), (input) =>
            tasks.deleteByConversation(input as never)
          ),
          BadInput.operation("delete", Schema.String, (input) => tasks.delete(input as never), {
            id: (id) => tasks.delete(id as never)
          })
        ])
      })
    )
  })
