/**
 * `TaskStore.claimNext` under contention: 2,000 tasks with dependencies claimed until none is left by 8 fibers
 * (memory, SQLite, PostgreSQL over 8 connections) and by 4 processes on one SQLite file. Every task is claimed
 * exactly once and never before its dependencies completed.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as MemoryTaskStore from "../layers/memory/MemoryTaskStore.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlTaskStore from "../layers/sql/SqlTaskStore.ts"
import { type Task, type TaskPriority, TaskStore } from "../src/Task.ts"
import { Child } from "./child.ts"
import { pgReady, pgUrl } from "./pg.ts"

const count = 2_000
const pgPrefix = `c${process.pid}_${Date.now().toString(36)}`

const pgReachable = await pgReady("task-claims PostgreSQL test")

afterAll(async () => {
  if (pgReachable !== undefined) return
  await Effect.runPromise(
    Effect.flatMap(SqlClient, (sql) =>
      Effect.forEach(
        [...SqlTaskStore.schema.tables].reverse().concat(`${SqlTaskStore.schema.name}_migrations`),
        (table) => sql`DROP TABLE IF EXISTS ${sql(`${pgPrefix}_${table}`)} CASCADE`,
        { discard: true }
      )
    ).pipe(Effect.provide(PgDatabase.layer({ url: pgUrl })), Effect.scoped)
  )
})

/** A deterministic pseudo-random sequence (mulberry32). */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const priorities: ReadonlyArray<TaskPriority> = ["low", "normal", "high", "urgent"]

/** Saves `count` tasks of a fresh conversation, each depending on up to 3 of the 30 tasks saved before it. */
const seed = Effect.gen(function* () {
  const tasks = yield* TaskStore
  const next = random(42)
  const conversationId = `claims-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9)}`
  const made: Array<Task> = []
  for (let i = 0; i < count; i++) {
    const dependsOn = new Set<string>()
    if (i > 0)
      for (let k = Math.floor(next() * 4); k > 0; k--)
        dependsOn.add(made[Math.max(0, i - 1 - Math.floor(next() * 30))]!.id)
    made.push(
      yield* tasks.save({
        conversationId,
        description: `task ${i}`,
        priority: priorities[Math.floor(next() * 4)]!,
        dependsOn: [...dependsOn]
      })
    )
  }
  return { conversationId, made }
})

/**
 * Checks the stored outcome: every task claimed by exactly one claimer and completed after one claim. (Times are
 * not compared: a claimer reads the Clock before its statement waits for the lock, so they prove no order.)
 */
const verify = (conversationId: string, made: ReadonlyArray<Task>, claimedIds: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const tasks = yield* TaskStore
    expect(claimedIds.length).toBe(count)
    expect(new Set(claimedIds).size).toBe(count)
    expect([...claimedIds].sort()).toEqual(made.map((task) => task.id).sort())
    const stored = new Map<string, Task>()
    let cursor: Option.Option<string> = Option.none()
    do {
      const page = yield* tasks.list({
        conversationId,
        limit: 1000,
        ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
      })
      for (const task of page.items) stored.set(task.id, task)
      cursor = page.nextCursor
    } while (Option.isSome(cursor))
    expect(stored.size).toBe(count)
    for (const task of stored.values()) {
      expect(task.status).toBe("completed")
      expect(task.iterations).toBe(1)
    }
  })

/** 8 fibers claim and complete until nothing is pending; a claim whose dependency is not yet completing fails. */
const fibers = Effect.gen(function* () {
  const tasks = yield* TaskStore
  const { conversationId, made } = yield* seed
  const dependencies = new Map(made.map((task) => [task.id, task.dependsOn]))
  const completing = new Set<string>()
  const claimedIds: Array<string> = []
  yield* Effect.forEach(
    Array.from({ length: 8 }, (_, w) => `fiber-${w}`),
    (agentId) =>
      Effect.gen(function* () {
        for (;;) {
          const claimed = yield* tasks.claimNext({ agentId, conversationId })
          if (Option.isNone(claimed)) {
            const pending = yield* tasks.list({ conversationId, status: "pending", limit: 1 })
            if (pending.items.length === 0) return
            yield* Effect.sleep("1 millis")
            continue
          }
          const id = claimed.value.id
          claimedIds.push(id)
          const early = dependencies.get(id)!.filter((dep) => !completing.has(dep))
          if (early.length > 0) return yield* Effect.die(`${id} claimed before ${early.join(", ")} completed`)
          // Marked before the store completes it, so a claim that sees it completed always finds it here.
          completing.add(id)
          yield* tasks.updateStatus(id, "completed")
        }
      }),
    { concurrency: "unbounded", discard: true }
  )
  yield* verify(conversationId, made, claimedIds)
})

describe("TaskStore.claimNext: 2,000 tasks with dependencies, 8 fibers", () => {
  it.live("memory", () => fibers.pipe(Effect.provide(MemoryTaskStore.layer)), 120_000)

  it.live(
    "sqlite file",
    () => {
      const filename = join(mkdtempSync(join(tmpdir(), "agent-claims-")), "tasks.db")
      return fibers.pipe(Effect.provide(SqlTaskStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename })))))
    },
    120_000
  )

  it.live.skipIf(pgReachable !== undefined)(
    "postgres, 8 connections",
    () =>
      fibers.pipe(
        Effect.provide(
          SqlTaskStore.layerWith({ tablePrefix: pgPrefix }).pipe(
            Layer.provide(PgDatabase.layer({ url: pgUrl, maxConnections: 8 }))
          )
        )
      ),
    300_000
  )
})

describe("TaskStore.claimNext: 2,000 tasks with dependencies, 4 processes on one SQLite file", () => {
  it("each task is claimed once, after its dependencies completed", async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "agent-claims-")), "tasks.db")
    const setup = SqlTaskStore.layer.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename })))
    const { conversationId, made } = await Effect.runPromise(Effect.provide(seed, setup))
    const child = fileURLToPath(new URL("./fixtures/task-child.ts", import.meta.url))
    const outputs = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        new Child(`claiming child process-${i}`, child, [filename, `process-${i}`, conversationId]).done(270_000)
      )
    )
    const lines = outputs.map((output) => output.trim().split("\n"))
    for (const own of lines) expect(own[own.length - 1]).toBe("done")
    const all = lines.flatMap((own) => own.slice(0, -1))
    expect(all.filter((line) => line.startsWith("early "))).toEqual([])
    const claimedIds = all
    console.log(`task-claims: claims per process ${lines.map((own) => own.length - 1).join(", ")}`)
    await Effect.runPromise(Effect.provide(verify(conversationId, made, claimedIds), setup))
  }, 300_000)
})
