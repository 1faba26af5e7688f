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
import postgres from "postgres"
import { tablesOf, withRequired } from "../layers/Registry.ts"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlEventStore from "../layers/sql/SqlEventStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import type { StorageError } from "../src/Errors.ts"
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

/**
 * Polls `readAll` (pages of `limit`) until `finished()` and a final empty read, returning every position seen in the
 * order seen (a skip or a repeat shows as a difference from the log's positions).
 */
const pollAll = (events: EventStore["Type"], after: number, finished: () => boolean, limit = 1000) =>
  Effect.gen(function* () {
    const seen: Array<number> = []
    let cursor = after
    while (true) {
      const last = finished()
      const batch = yield* events.readAll({ after: cursor, limit })
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

/** Every stored event of the log in position order, read to the end. */
const readToEnd = (events: EventStore["Type"]) =>
  Effect.gen(function* () {
    const all: Array<StoredEvent> = []
    let after = 0
    while (true) {
      const batch = yield* events.readAll({ after, limit: 1000 })
      if (batch.length === 0) return all
      all.push(...batch)
      after = batch[batch.length - 1]!.position
    }
  })

/** Positions strictly increasing. */
const increasing = (positions: ReadonlyArray<number>) => positions.every((p, i) => i === 0 || p > positions[i - 1]!)

/**
 * Follows `subscribe("all")` into `received` until the returned effect is given the number of events to wait for:
 * it then waits (at most 60 s) until that many arrived and stops the subscriber.
 */
const subscribeAll = (events: EventStore["Type"], received: Array<number>) =>
  Effect.map(
    Effect.fork(Stream.runForEach(events.subscribe("all"), (e) => Effect.sync(() => received.push(e.position)))),
    (fiber) => (count: number) =>
      Effect.gen(function* () {
        for (let waited = 0; received.length < count && waited < 60_000; waited += 10) yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(fiber)
      })
  )

/**
 * 4 processes racing on stream `race` of the store `spec` names (see the fixture) and appending to streams of their
 * own, while this process polls `readAll` on `store` (the same database): one winner per version, and the reader saw
 * every event of every stream once, in increasing positions.
 */
const processRace = async (spec: string, store: Layer.Layer<EventStore, StorageError>) => {
  const go = join(mkdtempSync(join(tmpdir(), "agent-events-go-")), "go")
  await Effect.runPromise(Effect.scoped(Layer.build(store)))
  const target = 80
  const children = Array.from(
    { length: 4 },
    (_, i) => new Child(`events race p${i}`, child, ["race", spec, "race", `p${i}`, String(target), go])
  )
  await Promise.all(children.map((c) => c.waitFor((line) => line === "ready", 120_000, "ready")))
  writeFileSync(go, "go")
  let finished = false
  const outputs = Promise.all(children.map((c) => c.done(240_000))).finally(() => (finished = true))
  const result = await Effect.runPromise(
    Effect.gen(function* () {
      const events = yield* EventStore
      const seen = yield* pollAll(events, 0, () => finished)
      const own = yield* Effect.forEach([0, 1, 2, 3], (i) => events.read(`own-p${i}`, { limit: 1000 }))
      return { seen, all: yield* readToEnd(events), stored: yield* events.read("race", { limit: 1000 }), own }
    }).pipe(Effect.provide(store))
  )
  const wins = (await outputs).map((out) => Number(/wins (\d+)/.exec(out)![1]))
  checkRace(
    result.stored,
    wins.reduce((a, b) => a + b, 0),
    target
  )
  expect(wins.filter((w) => w > 0).length).toBeGreaterThan(1)
  const positions = result.all.map((e) => e.position)
  expect(positions).toEqual([...result.stored, ...result.own.flat()].map((e) => e.position).sort((a, b) => a - b))
  expect(increasing(positions)).toBe(true)
  expect(result.seen).toEqual(positions)
}

describe("EventStore across processes and connections", () => {
  it("4 processes on one SQLite file: one winner per version, gapless; readAll polled meanwhile skips nothing", async () => {
    const filename = tmpFile("race.db")
    await processRace(filename, SqlEventStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename }))))
  }, 300_000)

  it.skipIf(pgReachable !== undefined)(
    "4 processes on PostgreSQL: one winner per version, gapless; readAll polled meanwhile skips nothing",
    async () => {
      const tablePrefix = pgPrefix("procs")
      await processRace(
        `pg:${tablePrefix}:${pgUrl}`,
        SqlEventStore.layerWith({ tablePrefix }).pipe(Layer.provide(PgDatabase.layer({ url: pgUrl })))
      )
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

/** PostgreSQL, `writers` connections: each races on one stream and appends to a stream of its own meanwhile. */
const pgRace = (writers: number) => async () => {
  const tablePrefix = pgPrefix(`race${writers}`)
  const store = (maxConnections: number) =>
    SqlEventStore.layerWith({ tablePrefix }).pipe(Layer.provide(PgDatabase.layer({ url: pgUrl, maxConnections })))
  const target = 80
  const writer = (events: EventStore["Type"], w: number) =>
    Effect.gen(function* () {
      let wins = 0
      while (true) {
        const version = yield* events.version("race")
        if (version >= target) return wins
        const result = yield* Effect.either(
          events.append("race", [{ type: "race", payload: { writer: w, at: version } }], { expectedVersion: version })
        )
        if (result._tag === "Right") wins++
        else if (result.left._tag !== "Conflict") return yield* result.left
        // Its own stream too, so positions interleave across streams and most appends do not wait for one another.
        yield* events.append(`own-${w}`, [{ type: "own", payload: w }])
      }
    })
  let finished = false
  const received: Array<number> = []
  // The readers and the subscriber on connections of their own.
  const result = await Effect.runPromise(
    Effect.gen(function* () {
      const events = yield* EventStore
      const stopSubscriber = yield* subscribeAll(events, received)
      const readers = yield* Effect.all(
        [pollAll(events, 0, () => finished), pollAll(events, 0, () => finished, 7)].map(Effect.fork)
      )
      const wins = yield* Effect.flatMap(EventStore, (writing) =>
        Effect.forEach(
          Array.from({ length: writers }, (_, w) => w),
          (w) => writer(writing, w),
          { concurrency: "unbounded" }
        )
      ).pipe(Effect.provide(store(writers)), Effect.ensuring(Effect.sync(() => (finished = true))))
      const seen = yield* Effect.forEach(readers, Fiber.join)
      const all = yield* readToEnd(events)
      yield* stopSubscriber(all.length)
      const own = yield* Effect.forEach(wins, (_, w) => events.read(`own-${w}`, { limit: 1000 }))
      return { wins, seen, all, stored: yield* events.read("race", { limit: 1000 }), own: own.flat() }
    }).pipe(Effect.provide(store(4)))
  )
  checkRace(
    result.stored,
    result.wins.reduce((a, b) => a + b, 0),
    target
  )
  expect(result.wins.filter((w) => w > 0).length).toBeGreaterThan(1)
  const positions = result.all.map((e) => e.position)
  // The log: every event of every stream once, in strictly increasing positions.
  expect(positions).toEqual([...result.stored, ...result.own].map((e) => e.position).sort((a, b) => a - b))
  expect(increasing(positions)).toBe(true)
  // What each reader and the subscriber saw while the writers ran: all of it, in that order.
  for (const seen of result.seen) expect(seen).toEqual(positions)
  expect(received).toEqual(positions)
}

describe("EventStore positions on PostgreSQL", () => {
  for (const writers of [16, 64]) {
    it.skipIf(pgReachable !== undefined)(
      `${writers} connections: one winner per version, gapless; readers and a subscriber meanwhile skip nothing`,
      pgRace(writers),
      300_000
    )
  }
})

/**
 * A writer whose transaction takes its id first, appends late and stays open while others commit: its event's
 * position is below theirs, so no reader (polling `readAll` or subscribed) may pass it while it is open, and each
 * sees it once it commits, with positions increasing in the order seen.
 */
const slowWriter = async () => {
  const tablePrefix = pgPrefix("slow")
  const store = SqlEventStore.layerWith({ tablePrefix }).pipe(
    Layer.provideMerge(PgDatabase.layer({ url: pgUrl, maxConnections: 12 }))
  )
  const result = await Effect.runPromise(
    Effect.gen(function* () {
      const events = yield* EventStore
      const sql = yield* SqlClient
      let committing = false
      let done = false
      let written = false
      /** Reads that returned while the slow transaction had not yet asked to commit: the positions they returned. */
      const whileOpen: Array<ReadonlyArray<number>> = []
      let longestRead = 0
      const reader = Effect.gen(function* () {
        const seen: Array<number> = []
        let cursor = 0
        while (true) {
          const last = written
          const started = Date.now()
          const batch = yield* events.readAll({ after: cursor, limit: 1000 })
          longestRead = Math.max(longestRead, Date.now() - started)
          if (!committing) whileOpen.push(batch.map((e) => e.position))
          for (const e of batch) {
            seen.push(e.position)
            cursor = e.position
          }
          if (batch.length === 0) {
            if (last) return seen
            yield* Effect.sleep("5 millis")
          }
        }
      })
      const received: Array<number> = []
      const stopSubscriber = yield* subscribeAll(events, received)
      const polled = yield* Effect.fork(reader)
      /** The fast writers' events, each with whether it was appended while the slow transaction was open. */
      const fast: Array<{ position: number; open: boolean }> = []
      const writers = yield* Effect.fork(
        Effect.forEach(
          Array.from({ length: 8 }, (_, w) => w),
          (w) =>
            Effect.gen(function* () {
              for (let i = 0; !done || i < 5; i++) {
                const open = !committing
                const [e] = yield* events.append(`fast-${w}`, [{ type: "fast", payload: i }])
                fast.push({ position: e!.position, open })
                yield* Effect.sleep("5 millis")
              }
            }),
          { concurrency: "unbounded" }
        )
      )
      yield* Effect.sleep("100 millis")
      const slow = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`SELECT pg_current_xact_id()`
          yield* Effect.sleep("500 millis")
          const [e] = yield* events.append("slow", [{ type: "slow", payload: "late" }])
          yield* Effect.sleep("1500 millis")
          committing = true
          return e!
        })
      )
      yield* Effect.sleep("200 millis")
      done = true
      yield* Fiber.join(writers)
      written = true
      const seen = yield* Fiber.join(polled)
      const all = yield* readToEnd(events)
      yield* stopSubscriber(all.length)
      return { slow, fast, seen, all, whileOpen, longestRead, received }
    }).pipe(Effect.provide(store))
  )
  const { slow, fast, seen, all, whileOpen, longestRead, received } = result
  // The case under test happened: events above the slow one committed while it was open.
  const passedWhileOpen = fast.filter((f) => f.open && f.position > slow.position)
  expect(passedWhileOpen.length).toBeGreaterThan(10)
  // Reads while it was open returned what committed before it took its id, and nothing at or past it.
  expect(whileOpen.length).toBeGreaterThanOrEqual(2)
  expect(whileOpen.flat().length).toBeGreaterThan(0)
  for (const positions of whileOpen) for (const p of positions) expect(p).toBeLessThan(slow.position)
  // Reads were held back, never stuck: a short page waits at most about a second for older transactions.
  expect(longestRead).toBeLessThan(5_000)
  // Once it committed, the readers saw it, and the events above it, in position order.
  const positions = all.map((e) => e.position)
  expect(positions).toContain(slow.position)
  expect(positions).toEqual([slow.position, ...fast.map((f) => f.position)].sort((a, b) => a - b))
  expect(increasing(positions)).toBe(true)
  expect(seen).toEqual(positions)
  expect(received).toEqual(positions)
}

describe("EventStore positions on PostgreSQL: a slow transaction", () => {
  it.skipIf(pgReachable !== undefined)(
    "a transaction open while others commit: no reader passes it, every reader sees it once it commits",
    slowWriter,
    120_000
  )
})

/**
 * A database as the counter scheme left it under `prefix`: the kernel's and the events' first migrations applied
 * (and recorded as the migrator records them), five events at positions 1 to 5 and the counter at 5.
 */
const counterSchemeDatabase = async (sql: postgres.Sql, prefix: string) => {
  for (const schema of [Kit.kernel, SqlEventStore.schema]) {
    const [first, ddl] = Object.entries(schema.migrations)[0]!
    for (const statement of ddl) {
      const text = typeof statement === "string" ? statement : statement.pg
      if (text !== undefined) await sql.unsafe(Kit.resolve(text, prefix, "pg"))
    }
    const table = `${prefix}_${schema.name}_migrations`
    await sql.unsafe(`CREATE TABLE "${table}" (migration_id integer PRIMARY KEY,
      created_at timestamp with time zone NOT NULL DEFAULT now(), name text NOT NULL)`)
    await sql.unsafe(`INSERT INTO "${table}" (migration_id, name) VALUES ($1, $2)`, [1, first.slice(5)])
  }
  await sql.unsafe(`INSERT INTO "${prefix}_event_streams" VALUES ('old-a', 3, 1, 1, 1), ('old-b', 2, 1, 1, 1)`)
  const rows = [
    ["old-a", 1, 1],
    ["old-b", 1, 2],
    ["old-a", 2, 3],
    ["old-a", 3, 4],
    ["old-b", 2, 5]
  ] as const
  for (const [stream, seq, position] of rows) {
    await sql.unsafe(`INSERT INTO "${prefix}_events" VALUES ($1, $2, $3, $4, 'old', '{}', '{}', 1)`, [
      position,
      stream,
      seq,
      `old-${position}`
    ])
  }
  await sql.unsafe(`INSERT INTO "${prefix}_counters" VALUES ('events', 5)`)
}

/** An append as the counter scheme made it, in the transaction of `sql`: bump the counter, insert at its value. */
const counterSchemeAppend = async (sql: postgres.TransactionSql, prefix: string, id: string) => {
  const [row] = await sql.unsafe(
    `UPDATE "${prefix}_counters" SET value = value + 1 WHERE name = 'events' RETURNING value`
  )
  await sql.unsafe(`UPDATE "${prefix}_event_streams" SET version = version + 1 WHERE stream_id = 'old-b'`)
  await sql.unsafe(
    `INSERT INTO "${prefix}_events" VALUES ($1, 'old-b', (SELECT version FROM "${prefix}_event_streams"
      WHERE stream_id = 'old-b'), $2, 'old', '{}', '{}', 1)`,
    [Number(row!.value), id]
  )
}

describe("EventStore positions on PostgreSQL: migrating from the counter", () => {
  it.skipIf(pgReachable !== undefined)(
    "positions handed out stay, new ones follow them; an append of the counter scheme in flight is waited for, a later one refused",
    async () => {
      const prefix = pgPrefix("mig")
      const sql = postgres(pgUrl, { max: 2, onnotice: () => {} })
      try {
        await counterSchemeDatabase(sql, prefix)
        const store = SqlEventStore.layerWith({ tablePrefix: prefix }).pipe(
          Layer.provide(PgDatabase.layer({ url: pgUrl, maxConnections: 2 }))
        )
        // A process of the counter scheme is appending (position 6, not committed) when the migration starts.
        let release!: () => void
        const held = new Promise<void>((resolve) => (release = resolve))
        let appended!: () => void
        const inFlight = new Promise<void>((resolve) => (appended = resolve))
        const oldAppend = sql.begin(async (tx) => {
          await counterSchemeAppend(tx, prefix, "old-6")
          appended()
          await held
        })
        await inFlight
        let migrated = false
        const result = Effect.runPromise(
          Effect.gen(function* () {
            const events = yield* EventStore
            migrated = true
            const before = yield* events.readAll()
            const added = yield* events.append("new", [
              { type: "new", payload: 1 },
              { type: "new", payload: 2 }
            ])
            return { before, added, after: yield* events.readAll() }
          }).pipe(Effect.provide(store))
        )
        await new Promise((resolve) => setTimeout(resolve, 500))
        expect(migrated).toBe(false)
        release()
        await oldAppend
        const { before, added, after } = await result
        expect(before.map((e) => [e.position, e.id])).toEqual([1, 2, 3, 4, 5, 6].map((p) => [p, `old-${p}`]))
        expect(added[0]!.position).toBeGreaterThan(6)
        expect(added[1]!.position).toBe(added[0]!.position + 1)
        expect(after.map((e) => e.position)).toEqual([1, 2, 3, 4, 5, 6, ...added.map((e) => e.position)])
        const [origin] = await sql.unsafe(`SELECT base_position FROM "${prefix}_event_origin"`)
        expect(Number(origin!.base_position)).toBe(7)
        // A process still on the counter scheme now fails (the retired counter gives negative positions).
        const refused = await sql
          .begin((tx) => counterSchemeAppend(tx, prefix, "old-late"))
          .then(
            () => undefined,
            (error: unknown) => String(error)
          )
        expect(refused).toMatch(/position_range/)
        const [count] = await sql.unsafe(`SELECT count(*) AS n FROM "${prefix}_events"`)
        expect(Number(count!.n)).toBe(8)
      } finally {
        await sql.end({ timeout: 1 })
      }
    },
    60_000
  )
})

describe("EventStore positions on PostgreSQL: transactions and restores", () => {
  it.skipIf(pgReachable !== undefined)(
    `one transaction appends up to ${SqlEventStore.pgSlots} events in consecutive positions; one more fails it whole`,
    async () => {
      const tablePrefix = pgPrefix("block")
      const store = SqlEventStore.layerWith({ tablePrefix }).pipe(
        Layer.provideMerge(PgDatabase.layer({ url: pgUrl, maxConnections: 2 }))
      )
      await Effect.runPromise(
        Effect.gen(function* () {
          const events = yield* EventStore
          const sql = yield* SqlClient
          const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ type: "b", payload: i }))
          const rest = SqlEventStore.pgSlots - 1000
          const written = yield* sql.withTransaction(
            Effect.zipWith(events.append("full", batch(1000)), events.append("full-2", batch(rest)), (a, b) => [
              ...a,
              ...b
            ])
          )
          const positions = written.map((e) => e.position)
          expect(positions).toEqual(positions.map((_, i) => positions[0]! + i))
          expect((yield* readToEnd(events)).map((e) => e.position)).toEqual(positions)
          const failed = yield* Effect.flip(
            sql.withTransaction(
              Effect.zipRight(events.append("over", batch(1000)), events.append("over", batch(rest + 1)))
            )
          )
          expect(String((failed as { cause?: unknown }).cause)).toMatch(/at most 1024 events/)
          expect(yield* events.version("over")).toBe(0)
        }).pipe(Effect.provide(store))
      )
    },
    60_000
  )

  it.skipIf(pgReachable !== undefined)(
    "restored into a cluster whose transaction ids are below the origin: reads see every stored event, the first append moves the origin past them",
    async () => {
      const tablePrefix = pgPrefix("restore")
      const store = SqlEventStore.layerWith({ tablePrefix }).pipe(
        Layer.provideMerge(PgDatabase.layer({ url: pgUrl, maxConnections: 8 }))
      )
      await Effect.runPromise(
        Effect.gen(function* () {
          const events = yield* EventStore
          const sql = yield* SqlClient
          const stored = yield* Effect.forEach([1, 2, 3], (i) =>
            events.append(`before-${i}`, [{ type: "b", payload: i }])
          )
          // What a restore into a fresh cluster looks like from here: every transaction id is far below the origin's.
          yield* sql.unsafe(`UPDATE "${tablePrefix}_event_origin" SET base_xid = base_xid + 1000000000`)
          const last = stored[2]![0]!.position
          expect((yield* events.readAll()).map((e) => e.position)).toEqual(stored.flat().map((e) => e.position))
          const received: Array<StoredEvent> = []
          const tail = yield* Effect.fork(
            Stream.runForEach(Stream.take(events.subscribe("all", { from: "end" }), 40), (e) =>
              Effect.sync(() => received.push(e))
            )
          )
          yield* Effect.sleep("100 millis")
          const added = yield* Effect.forEach(
            Array.from({ length: 8 }, (_, w) => w),
            (w) =>
              Effect.forEach([1, 2, 3, 4, 5], (i) => events.append(`after-${w}`, [{ type: "a", payload: i }]), {
                concurrency: 1
              }),
            { concurrency: "unbounded" }
          )
          yield* Fiber.join(tail)
          const positions = added.flat(2).map((e) => e.position)
          expect(Math.min(...positions)).toBeGreaterThan(last)
          expect(new Set(positions).size).toBe(40)
          const all = (yield* readToEnd(events)).map((e) => e.position)
          expect(all).toEqual([...stored.flat().map((e) => e.position), ...[...positions].sort((a, b) => a - b)])
          expect(received.map((e) => e.position)).toEqual([...positions].sort((a, b) => a - b))
          const [origin] = yield* sql.unsafe<{ base_position: string }>(
            `SELECT base_position FROM "${tablePrefix}_event_origin"`
          )
          expect(Number(origin!.base_position)).toBe(last + 1)
        }).pipe(Effect.provide(store))
      )
    },
    60_000
  )
})
