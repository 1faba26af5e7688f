/**
 * `LockStore` under contention: 8 contenders (fibers on memory, a SQLite file and PostgreSQL over 8
 * connections; 4 processes on one SQLite file) hammer one key for a few seconds, half through `acquire` +
 * `release`, half through `withLock`, recording each holding's interval (the host's monotonic clock) and fencing
 * token, while a pauser takes the key with a short TTL and sleeps past it. Intervals never overlap, tokens
 * strictly increase in time order, and each paused holder's release is `LockLost` after another owner took over.
 * Then the restart case: tokens keep increasing after the store is rebuilt on the same file.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as MemoryLockStore from "../layers/memory/MemoryLockStore.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlLockStore from "../layers/sql/SqlLockStore.ts"
import { LockStore } from "../src/Lock.ts"
import { Child } from "./child.ts"
import { check, contender, type Holding, micros, pauser } from "./fixtures/locks.ts"
import { pgReady, pgUrl } from "./pg.ts"

const seconds = 3
const pgPrefix = `l${process.pid}_${Date.now().toString(36)}`
const pgReachable = await pgReady("locks-contention PostgreSQL test")

afterAll(async () => {
  if (pgReachable !== undefined) return
  await Effect.runPromise(
    Effect.flatMap(SqlClient, (sql) =>
      Effect.forEach(
        ["locks", "locks_migrations", "counters", "kernel_migrations"],
        (table) => sql`DROP TABLE IF EXISTS ${sql(`${pgPrefix}_${table}`)} CASCADE`,
        { discard: true }
      )
    ).pipe(Effect.provide(PgDatabase.layer({ url: pgUrl })), Effect.scoped)
  )
})

/** 8 contender fibers and a pauser on one key for `seconds`; the verdict of `check`. */
const fibers = Effect.gen(function* () {
  const key = `hot-${Date.now().toString(36)}`
  const holdings: Array<Holding> = []
  const record = (holding: Holding) => holdings.push(holding)
  const deadline = micros() + seconds * 1_000_000
  yield* Effect.all(
    [
      // The contenders start just after the pauser, so its first pause holds the key while they wait (waiting is
      // backoff, not a queue: in a tight loop the pauser might otherwise never get the key).
      ...Array.from({ length: 8 }, (_, i) => Effect.delay(contender(key, `fiber-${i}`, deadline, record), "50 millis")),
      pauser(key, "pauser", deadline, record)
    ],
    { concurrency: "unbounded", discard: true }
  )
  const { problems, summary } = check(holdings)
  console.log(`locks-contention: ${summary}`)
  expect(problems).toEqual([])
  expect(holdings.filter((h) => !h.pauser).length).toBeGreaterThan(20)
  expect(holdings.filter((h) => h.pauser).length).toBeGreaterThanOrEqual(1)
})

describe("LockStore: 8 contenders on one key", () => {
  it.live("memory, 8 fibers", () => fibers.pipe(Effect.provide(MemoryLockStore.layer)), 60_000)

  it.live(
    "sqlite file, 8 fibers",
    () => {
      const filename = join(mkdtempSync(join(tmpdir(), "agent-locks-")), "locks.db")
      return fibers.pipe(Effect.provide(SqlLockStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename })))))
    },
    60_000
  )

  it.live.skipIf(pgReachable !== undefined)(
    "postgres, 8 connections, database clock",
    () =>
      fibers.pipe(
        Effect.provide(
          SqlLockStore.layerWith({ tablePrefix: pgPrefix }).pipe(
            Layer.provide(PgDatabase.layer({ url: pgUrl, maxConnections: 8 }))
          )
        )
      ),
    60_000
  )

  it("sqlite file, 4 processes", async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "agent-locks-")), "locks.db")
    // Migrated once before the children start.
    await Effect.runPromise(
      Effect.provide(LockStore, SqlLockStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename }))))
    )
    const key = `hot-${Date.now().toString(36)}`
    const script = fileURLToPath(new URL("./fixtures/locks-child.ts", import.meta.url))
    const children = Array.from(
      { length: 4 },
      (_, i) => new Child(`lock child process-${i}`, script, [filename, key, `process-${i}`, i === 0 ? "1" : "0"])
    )
    try {
      // Started together once all are ready (starting a child takes seconds on a busy machine).
      await Promise.all(children.map((child) => child.waitFor((line) => line === "ready", 60_000, "ready")))
      const deadline = micros() + seconds * 1_000_000
      for (const child of children) child.process.stdin.write(`go ${deadline}\n`)
    } catch (error) {
      await Promise.all(children.map((child) => child.kill()))
      throw error
    }
    const outputs = await Promise.all(children.map((child) => child.done(60_000)))
    const lines = outputs.map((output) => output.trim().split("\n").slice(1))
    for (const own of lines) expect(own[own.length - 1]).toBe("done")
    const holdings: Array<Holding> = lines.flatMap((own) => own.slice(0, -1).map((line) => JSON.parse(line)))
    const { problems, summary } = check(holdings)
    console.log(`locks-contention (4 processes): ${summary}`)
    expect(problems).toEqual([])
    expect(new Set(holdings.filter((h) => !h.pauser).map((h) => h.owner)).size).toBe(4)
    expect(holdings.filter((h) => h.pauser).length).toBeGreaterThanOrEqual(1)
  }, 150_000)

  it.live("fencing tokens keep increasing when the store is rebuilt on the same file", () =>
    Effect.gen(function* () {
      const filename = join(mkdtempSync(join(tmpdir(), "agent-locks-")), "locks.db")
      const store = () => SqlLockStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename })))
      const cycle = Effect.gen(function* () {
        const locks = yield* LockStore
        const lease = yield* locks.acquire("restart", { owner: "a", ttl: 1_000 })
        yield* locks.release(lease)
        return lease.token
      })
      const first = yield* Effect.provide(Effect.zip(cycle, cycle), store())
      const second = yield* Effect.provide(cycle, store())
      expect(first).toEqual([1, 2])
      expect(second).toBe(3)
    })
  )
})
