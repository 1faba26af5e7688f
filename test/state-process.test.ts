/**
 * `CheckpointStore` and `StateStore` across processes on one SQLite file: 4 processes saving checkpoints of one
 * thread form one unbroken chain with gapless seq, and their compare-and-set increments lose nothing. Also: the
 * statement behind `latest` reads through the head row's key, never a scan, so it costs the same at any history
 * length.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Kit from "../layers/sql/Kit.ts"
import * as SqlCheckpointStore from "../layers/sql/SqlCheckpointStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlSessionStore from "../layers/sql/SqlSessionStore.ts"
import * as SqlStateStore from "../layers/sql/SqlStateStore.ts"
import { SessionStore } from "../src/Session.ts"
import { CheckpointStore, StateStore } from "../src/State.ts"
import { Child } from "./child.ts"

const PROCESSES = 4
const EACH = 25

const stores = (filename: string) =>
  Layer.mergeAll(SqlCheckpointStore.layer, SqlSessionStore.layer, SqlStateStore.layer).pipe(
    Layer.provideMerge(SqliteDatabase.layer({ filename }))
  )

describe("State across processes (SQLite file)", () => {
  it("4 processes saving to one thread: one chain, seq gapless; CAS increments all counted", async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "agent-stores-state-")), "state.db")
    const threadId = await Effect.runPromise(
      Effect.gen(function* () {
        const session = yield* (yield* SessionStore).create({})
        yield* (yield* StateStore).set("counter", 0)
        return session.id
      }).pipe(Effect.provide(stores(filename)))
    )
    const child = fileURLToPath(new URL("./fixtures/state-child.ts", import.meta.url))
    const outputs = await Promise.all(
      Array.from({ length: PROCESSES }, (_, i) =>
        new Child(`checkpoint child ${i}`, child, [filename, threadId, `p${i}`, String(EACH)]).done(270_000)
      )
    )
    for (const output of outputs) expect(output.trim().split("\n").pop()).toBe("done")
    await Effect.runPromise(
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const latest = Option.getOrThrow(yield* checkpoints.latest(threadId))
        const total = PROCESSES * EACH
        expect(latest.seq).toBe(total)
        const chain = (yield* checkpoints.history(latest.id, { limit: 1000 })).items
        // Every checkpoint is on the one chain (each save continued the latest), newest to root, seq gapless.
        expect(chain.map((c) => c.seq)).toEqual(Array.from({ length: total }, (_, i) => total - i))
        expect(chain[chain.length - 1]!.parentId).toBeUndefined()
        const labels = new Map<string, Array<number>>()
        for (const c of [...chain].reverse()) {
          const { i, label } = c.state as { label: string; i: number }
          labels.set(label, [...(labels.get(label) ?? []), i])
        }
        for (let p = 0; p < PROCESSES; p++) {
          expect(labels.get(`p${p}`)).toEqual(Array.from({ length: EACH }, (_, i) => i))
        }
        const counter = yield* (yield* StateStore).get("counter")
        expect(counter).toMatchObject({ value: total, version: total + 1 })
      }).pipe(Effect.provide(stores(filename)))
    )
  }, 300_000)

  it("latest reads the head row by its key and the checkpoint by its key: no scan at any history length", async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "agent-stores-state-")), "plan.db")
    const plan = await Effect.runPromise(
      Effect.gen(function* () {
        const session = yield* (yield* SessionStore).create({})
        const checkpoints = yield* CheckpointStore
        for (let i = 0; i < 200; i++) yield* checkpoints.save({ threadId: session.id, state: i })
        const { db } = yield* SqliteDatabase.SqliteDatabase
        db.exec("ANALYZE")
        const text = Kit.resolve(SqlCheckpointStore.statements.latest.text, Kit.defaultPrefix, "sqlite")
        return db
          .prepare(`EXPLAIN QUERY PLAN ${text}`)
          .all(session.id, "")
          .map((row) => (row as { detail: string }).detail)
      }).pipe(Effect.provide(stores(filename)))
    )
    expect(plan.some((step) => /SCAN/.test(step))).toBe(false)
    expect(plan.filter((step) => /^SEARCH/.test(step)).length).toBe(3)
  })
})
