/**
 * `EventStore` on SQL beyond the contract: triggers refuse raw `UPDATE`/`DELETE`
 * of events (SQLite and PostgreSQL), 4 processes racing on one SQLite file, 8
 * connections racing on PostgreSQL (with `readAll` polled meanwhile), and a
 * subscriber in a second process on PostgreSQL receiving every event exactly
 * once, woken by `LISTEN/NOTIFY` well before the poll fallback.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { tablesOf, withRequired } from "../layers/Registry.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlEventStore from "../layers/sql/SqlEventStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { EventStore, type StoredEvent } from "../src/Event.ts"
import { Child } from "./child.ts"
import { dropPrefix, pgReady, pgUrl } from "./pg.ts"

const child = fileURLToPath(new URL("./fixtures/events-child.ts", import.meta.url))
const pgReachable = await pgReady("EventStore SQL tests")
const prefixes: Array<string> = []
const pgPrefix = (name: string) => {
  const prefix = `ev${name}${process.pid}_${Date.now().toString(36)}`
  prefixes.push(prefix)
  return prefix
}

afterAll(async () => {
  if (pgReachable !== undefined) return
  for (const prefix of prefixes) await dropPrefix(prefix, tablesOf(prefix, withRequired([SqlEventStore.schema])))
})

const tmpFile = (name: string) => join(mkdtempSync(join(tmpdir(), "agent-events-")), name)

/** The raw statements a database owner could try, each of which the triggers must refuse. */
const tampering = (prefix: string, stream: string, pg: boolean) => [
  `UPDATE "${prefix}_events" SET payload = '"forged"' WHERE stream_id = '${stream}'`,
  `UPDATE "${prefix}_events" SET seq = seq + 100 WHERE stream_id = '${stream}'`,
  `DELETE FROM "${prefix}_events" WHERE stream_id = '${stream}'`,
  `DELETE FROM "${prefix}_events" WHERE stream_id = '${stream}' AND seq = 2`,
  `UPDATE "${prefix}_event_streams" SET truncated_before = 100 WHERE stream_id = '${stream}'`,
  `UPDATE "${prefix}_event_streams" SET version = 0 WHERE stream_id = '${stream}'`,
  `UPDATE "${prefix}_event_streams" SET truncated_before = 1 WHERE stream_id = '${stream}'`,
  `DELETE FROM "${prefix}_event_streams" WHERE stream_id = '${stream}'`,
  ...(pg ? [`TRUNCATE "${prefix}_events"`, `TRUNCATE "${prefix}_event_streams"`] : [])
]

const triggerTest = (prefix: string, pg: boolean) =>
  Effect.gen(function* () {
    const events = yield* EventStore
    const sql = yield* SqlClient
    const stream = "tamper-1"
    yield* events.append(
      stream,
      [1, 2, 3, 4].map((n) => ({ type: "n", payload: n }))
    )
    yield* events.truncateBefore(stream, 2)
    const before = yield* events.read(stream)
    expect(before.map((e) => e.seq)).toEqual([2, 3, 4, 5])
    for (const statement of tampering(prefix, stream, pg)) {
      const error = yield* Effect.flip(sql.unsafe(statement))
      expect(String((error as { cause?: unknown }).cause ?? error), statement).toMatch(
        /append-only|only move forward|cannot be deleted/
      )
    }
    expect(yield* events.read(stream)).toEqual(before)
    expect((yield* events.streams({ prefix: stream })).items[0]).toMatchObject({ version: 5, truncatedBefore: 2 })
    // The one removal still works: the trigger lets truncateBefore delete below the mark it raised.
    expect(yield* events.truncateBefore(stream, 4)).toEqual({ truncatedBefore: 4, removed: 2 })
    expect((yield* events.read(stream)).map((e) => e.seq)).toEqual([4, 5, 6])
    // Inserting is appending: allowed (the log is append-only, not frozen).
    yield* events.append(stream, [{ type: "n", payload: 7 }], { expectedVersion: 6 })
  })

describe("EventStore triggers", () => {
  it.effect("SQLite refuses UPDATE and DELETE of events and rewinding a stream (raw SQL)", () =>
    triggerTest("agent", false).pipe(
      Effect.provide(SqlEventStore.layer.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename: tmpFile("t.db") }))))
    )
  )
  it.effect.skipIf(pgReachable !== undefined)(
    "PostgreSQL refuses UPDATE, DELETE and TRUNCATE of events and rewinding a stream (raw SQL)",
    () => {
      const prefix = pgPrefix("trg")
      return triggerTest(prefix, true).pipe(
        Effect.provide(
          SqlEventStore.layerWith({ tablePrefix: prefix }).pipe(Layer.provideMerge(PgDatabase.layer({ url: pgUrl })))
        )
      )
    }
  )
})

/** Appends inside a caller's transaction: rolled back, nothing is written or delivered; committed, both. */
const transactionTest = Effect.gen(function* () {
  const events = yield* EventStore
  const sql = yield* SqlClient
  const stream = `tx-${Date.now().toString(36)}`
  const delivered: Array<number> = []
  const subscriber = yield* Effect.fork(
    Stream.runForEach(Stream.take(events.subscribe(stream), 2), (e) => Effect.sync(() => delivered.push(e.seq)))
  )
  yield* Effect.sleep("50 millis")
  const failed = yield* Effect.flip(
    sql.withTransaction(
      Effect.zipRight(events.append(stream, [{ type: "rolled back", payload: 1 }]), Effect.fail("abort" as const))
    )
  )
  expect(failed).toBe("abort")
  yield* Effect.sleep("100 millis")
  expect(yield* events.version(stream)).toBe(0)
  expect(delivered).toEqual([])
  yield* sql.withTransaction(
    Effect.gen(function* () {
      yield* events.append(stream, [{ type: "kept", payload: 1 }])
      yield* events.append(stream, [{ type: "kept", payload: 2 }], { expectedVersion: 1 })
    })
  )
  yield* Fiber.join(subscriber)
  expect(delivered).toEqual([1, 2])
  expect((yield* events.read(stream)).map((e) => e.type)).toEqual(["kept", "kept"])
})

describe("EventStore inside a caller's transaction", () => {
  it.live("SQLite: a rolled-back append leaves nothing, a subscriber receives only the committed ones", () =>
    transactionTest.pipe(
      Effect.provide(SqlEventStore.layer.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename: tmpFile("tx.db") }))))
    )
  )
  it.live.skipIf(pgReachable !== undefined)(
    "PostgreSQL: a rolled-back append leaves nothing, a subscriber receives only the committed ones",
    () => {
      const prefix = pgPrefix("tx")
      return transactionTest.pipe(
        Effect.provide(
          SqlEventStore.layerWith({ tablePrefix: prefix }).pipe(Layer.provideMerge(PgDatabase.layer({ url: pgUrl })))
        )
      )
    }
  )
})

/** Checks a raced stream: gapless, each event written at the version its writer read, wins adding up. */
const checkRace = (stored: ReadonlyArray<StoredEvent>, wins: number, target: number) => {
  expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1))
  expect(stored.length).toBeGreaterThanOrEqual(target)
  expect(wins).toBe(stored.length)
  for (const e of stored) expect((e.payload as { at: number }).at, `seq ${e.seq}`).toBe(e.seq - 1)
}

/** Polls `readAll` until `finished()` and a final empty read, returning every position seen (failing on a skip). */
const pollAll = (events: EventStore["Type"], after: number, finished: () => boolean) =>
  Effect.gen(function* () {
    const seen: Array<number> = []
    let cursor = after
    while (true) {
      const last = finished()
      const batch = yield* events.readAll({ after: cursor, limit: 1000 })
      for (const e of batch) {
        seen.push(e.position)
        cursor = e.position
      }
      if (batch.length === 0) {
        if (last) return seen
        yield* Effect.sleep("2 millis")
      }
    }
  })

describe("EventStore across processes and connections", () => {
  it("4 processes on one SQLite file: one winner per version, gapless; readAll polled meanwhile skips nothing", async () => {
    const filename = tmpFile("race.db")
    const go = `${filename}.go`
    const store = SqlEventStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename })))
    await Effect.runPromise(Effect.scoped(Layer.build(store)))
    const target = 80
    const children = Array.from(
      { length: 4 },
      (_, i) => new Child(`events race p${i}`, child, ["race", filename, "race", `p${i}`, String(target), go])
    )
    await Promise.all(children.map((c) => c.waitFor((line) => line === "ready", 120_000, "ready")))
    writeFileSync(go, "go")
    let finished = false
    const outputs = Promise.all(children.map((c) => c.done(240_000))).finally(() => (finished = true))
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const events = yield* EventStore
        const seen = yield* pollAll(events, 0, () => finished)
        return { seen, stored: yield* events.read("race", { limit: 1000 }) }
      }).pipe(Effect.provide(store))
    )
    const wins = (await outputs).map((out) => Number(/wins (\d+)/.exec(out)![1]))
    checkRace(
      result.stored,
      wins.reduce((a, b) => a + b, 0),
      target
    )
    expect(wins.filter((w) => w > 0).length).toBeGreaterThan(1)
    expect(result.seen).toEqual(result.stored.map((e) => e.position))
  }, 300_000)

  it.skipIf(pgReachable !== undefined)(
    "8 connections on PostgreSQL: one winner per version, gapless; readAll polled meanwhile skips nothing",
    async () => {
      const tablePrefix = pgPrefix("race")
      const store = () =>
        SqlEventStore.layerWith({ tablePrefix }).pipe(
          Layer.provide(PgDatabase.layer({ url: pgUrl, maxConnections: 1 }))
        )
      const target = 80
      const writer = (w: number) =>
        Effect.gen(function* () {
          const events = yield* EventStore
          let wins = 0
          while (true) {
            const version = yield* events.version("race")
            if (version >= target) return wins
            const result = yield* Effect.either(
              events.append("race", [{ type: "race", payload: { writer: w, at: version } }], {
                expectedVersion: version
              })
            )
            if (result._tag === "Right") wins++
            else if (result.left._tag !== "Conflict") return yield* result.left
            // Other streams too, so positions interleave across streams.
            yield* events.append(`other-${w}`, [{ type: "other", payload: w }])
          }
        }).pipe(Effect.provide(store()))
      await Effect.runPromise(Effect.scoped(Layer.build(store())))
      let finished = false
      const result = await Effect.runPromise(
        Effect.gen(function* () {
          const reader = yield* Effect.fork(Effect.flatMap(EventStore, (events) => pollAll(events, 0, () => finished)))
          const wins = yield* Effect.forEach(
            Array.from({ length: 8 }, (_, w) => w),
            writer,
            {
              concurrency: "unbounded"
            }
          ).pipe(Effect.ensuring(Effect.sync(() => (finished = true))))
          const seen = yield* reader.await.pipe(Effect.flatten)
          const events = yield* EventStore
          const all: Array<StoredEvent> = []
          let after = 0
          while (true) {
            const batch = yield* events.readAll({ after, limit: 1000 })
            if (batch.length === 0) break
            all.push(...batch)
            after = batch[batch.length - 1]!.position
          }
          const others = yield* Effect.forEach(wins, (_, w) => events.read(`other-${w}`, { limit: 1000 }))
          return { wins, seen, all, stored: yield* events.read("race", { limit: 1000 }), others: others.flat() }
        }).pipe(Effect.provide(store()))
      )
      checkRace(
        result.stored,
        result.wins.reduce((a, b) => a + b, 0),
        target
      )
      expect(result.wins.filter((w) => w > 0).length).toBeGreaterThan(1)
      expect(result.seen).toEqual(result.all.map((e) => e.position))
      // Every event of every stream, each once, in strictly increasing positions.
      expect(result.all.map((e) => e.position)).toEqual(
        [...result.stored, ...result.others].map((e) => e.position).sort((a, b) => a - b)
      )
      for (let i = 1; i < result.all.length; i++) {
        expect(result.all[i]!.position).toBeGreaterThan(result.all[i - 1]!.position)
      }
    },
    300_000
  )

  it.skipIf(pgReachable !== undefined)(
    "PostgreSQL: a subscriber in a second process receives every event exactly once, in order, within milliseconds",
    async () => {
      const tablePrefix = pgPrefix("sub")
      const store = SqlEventStore.layerWith({ tablePrefix }).pipe(Layer.provide(PgDatabase.layer({ url: pgUrl })))
      await Effect.runPromise(Effect.scoped(Layer.build(store)))
      const paced = 20
      const batches = 4 * 10
      const total = paced + batches * 3
      const subscriber = new Child("events subscriber", child, ["subscribe", pgUrl, tablePrefix, String(total)])
      try {
        await subscriber.waitFor((line) => line === "ready", 60_000, "ready")
        // Let its LISTEN connection open (a subscription reads first, so nothing is lost meanwhile either way).
        await new Promise((resolve) => setTimeout(resolve, 500))
        const sent = await Effect.runPromise(
          Effect.gen(function* () {
            const events = yield* EventStore
            const appended: Array<{ position: number; at: number }> = []
            for (let i = 0; i < paced; i++) {
              const [e] = yield* events.append("paced", [{ type: "paced", payload: i }])
              appended.push({ position: e!.position, at: Date.now() })
              yield* Effect.sleep("30 millis")
            }
            const concurrent = yield* Effect.forEach(
              Array.from({ length: batches }, (_, i) => i),
              (i) =>
                events.append(
                  `burst-${i % 4}`,
                  [1, 2, 3].map((n) => ({ type: "burst", payload: n }))
                ),
              { concurrency: 4 }
            )
            return {
              appended,
              positions: [...appended.map((a) => a.position), ...concurrent.flat().map((e) => e.position)]
            }
          }).pipe(Effect.provide(store))
        )
        await subscriber.done(60_000)
        const received = subscriber.lines
          .filter((line) => line.startsWith("event "))
          .map((line) => {
            const [, position, , , at] = line.split(" ")
            return { position: Number(position), at: Number(at) }
          })
        expect(received.map((r) => r.position)).toEqual([...sent.positions].sort((a, b) => a - b))
        const latencies = sent.appended
          .map((a) => received.find((r) => r.position === a.position)!.at - a.at)
          .sort((a, b) => a - b)
        const p50 = latencies[Math.floor(latencies.length / 2)]!
        console.log(`cross-process subscribe latency (ms): p50 ${p50}, max ${latencies[latencies.length - 1]}`)
        // The poll fallback is 1 second: a median far below it means LISTEN/NOTIFY woke the subscriber.
        expect(p50).toBeLessThan(250)
      } finally {
        await subscriber.kill()
      }
    },
    300_000
  )
})
