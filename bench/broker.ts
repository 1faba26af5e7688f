/**
 * The broker bench (issue 11): `SessionBroker.send` → subscriber delivery
 * latency (from the start of the send to the moment the subscriber's handler
 * has the message), ping-pong (each send waits for its delivery before the
 * next), p50 and p99, beside the raw driver doing the same work with the stores' own
 * statement texts and round trips: read the session (refuse a closed one),
 * bump the conversation's counter and insert the message in one transaction
 * (PostgreSQL: the store's one-statement append), on PostgreSQL a `NOTIFY`
 * for other processes (not awaited, as the library's wake-ups), and wake the
 * subscriber in process (an `EventEmitter`) with the stored message, which it
 * delivers without reading when it is the next one after its cursor, and
 * otherwise reads the session's status and the messages after its cursor (as
 * the library's subscriber does).
 * SQLite: `StoresSqlite` on a temp file against raw better-sqlite3 on its own
 * file; PostgreSQL: `StoresPg` against the raw `postgres` driver (pool 16 on
 * both sides, own tables, dropped at the end), with 1 and 16 sessions pinging
 * at once. Cross-process delivery (`LISTEN`/`NOTIFY`) is not in these rows; see
 * `test/broker-process.test.ts`. A third side, the floor, runs the raw side's
 * calls (on its database) in an Effect program of the library's shape: the
 * sender a fiber, the wake a `Queue` that the subscriber's fiber consumes as a
 * `Stream` (`floorRun`): what any Effect program pays for the same ping.
 *
 * Run alone: `node --expose-gc --import tsx bench/broker.ts` (`BENCH_REPS`, default 5; `DATABASE_URL`).
 */
import Database from "better-sqlite3"
import { Effect, Fiber, Layer, ManagedRuntime, Queue, Stream } from "effect"
import { EventEmitter } from "node:events"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { tablesOf } from "../layers/Registry.ts"
import * as Broker from "../layers/SessionBroker.ts"
import * as Kit from "../layers/sql/Kit.ts"
import { mmapBytes, pageCacheKiB } from "../layers/sql/SqliteDatabase.ts"
import { StoresPg, StoresSqlite } from "../layers/Stores.ts"
import { SessionBroker } from "../src/Broker.ts"
import { uuidv7At } from "../src/Id.ts"
import type { MessageInput } from "../src/Message.ts"
import { printTable } from "./stats.ts"
import { openAdmin, runStamp } from "./admin.ts"
import { type MaybePromise, POOL, fromRaw, gc, openPool, round2, url, withOpenPool } from "./timing.ts"

/** One row of the broker table: latencies in milliseconds. */
export interface Row {
  readonly workload: string
  readonly backend: "sqlite" | "postgres"
  /** Sessions pinging at once (one sender and one subscriber each). */
  readonly concurrency: number
  readonly p50: number
  readonly p99: number
  readonly baselineP50: number
  readonly baselineP99: number
  /** Raw p50 over library p50 (1 = as fast as raw; the target is >= 0.8). */
  readonly ratio: number
  /** p50 of the floor: the raw calls in an Effect program of the library's shape (`floorRun`). */
  readonly floorP50: number
  /** Raw p50 over floor p50: the most `ratio` can reach short of noise. */
  readonly floorRatio: number
}

const workload = "send -> subscriber delivery"

const message: MessageInput = {
  role: "user",
  parts: [{ type: "text", text: "Remind me which of the open tickets are blocked on the database migration." }]
}
const partsJson = JSON.stringify(message.parts)

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`bench sanity check failed: ${what}`)
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

// ---------------------------------------------------------------------------
// The library side

/** `pings` sends on each of `sessions` sessions, each awaiting its delivery; the latencies in ms. */
const libraryRun = (sessions: number, pings: number) =>
  Effect.gen(function* () {
    const broker = yield* SessionBroker
    const latencies: Array<number> = []
    yield* Effect.forEach(
      Array.from({ length: sessions }),
      () =>
        Effect.gen(function* () {
          const { id } = yield* broker.spawn({ agentId: "bench" })
          // Each delivery with the time the subscriber got it; the pinger waits for it before its next send.
          const arrivals = yield* Queue.unbounded<readonly [seq: number, at: number]>()
          const subscriber = yield* Effect.fork(
            Stream.runForEach(broker.subscribe(id, { from: 1 }), (m) =>
              Queue.offer(arrivals, [m.seq, performance.now()])
            )
          )
          for (let i = 1; i <= pings; i++) {
            const start = performance.now()
            yield* broker.send(id, message)
            const [seq, at] = yield* Queue.take(arrivals)
            latencies.push(at - start)
            check(seq === i, "library delivery order")
          }
          yield* broker.close(id)
          yield* Fiber.join(subscriber)
        }),
      { concurrency: "unbounded", discard: true }
    )
    return latencies
  })

// ---------------------------------------------------------------------------
// The raw side: the stores' statements, by hand

const texts = (prefix: string, dialect: Kit.Dialect) => {
  const r = (text: Kit.SqlText) => Kit.resolve(text, prefix, dialect)
  return {
    insertSession: r(`INSERT INTO {sessions} (id, agent_id, channel, title, status, metadata, message_count, created_at,
      updated_at, version, transcript) VALUES (?, 'bench', NULL, NULL, 'active', '{}', 0, ?, ?, 1, '[]')`),
    insertConversation: r(`INSERT INTO {conversations} (id, session_id, title, model, metadata, message_count,
      last_seq, created_at, updated_at, version) VALUES (?, ?, NULL, NULL, '{}', 0, 0, ?, ?, 1)`),
    getSession: r(`SELECT id, agent_id, channel, title, status, metadata, message_count, created_at, updated_at,
      version FROM {sessions} WHERE id = ?`),
    bump: r(`UPDATE {conversations} SET last_seq = last_seq + ?, message_count = message_count + ?,
      updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END WHERE id = ? RETURNING last_seq`),
    insertMessage: r(
      `INSERT INTO {messages} (conversation_id, seq, id, role, parts, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`
    ),
    appendAll: r(`WITH bumped AS (
        UPDATE {conversations} SET last_seq = last_seq + ?, message_count = message_count + ?,
          updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END
        WHERE id = ? RETURNING last_seq
      ), inserted AS (
        INSERT INTO {messages} (conversation_id, seq, id, role, parts, metadata, created_at)
        SELECT ?, bumped.last_seq - ? + v.ord, v.id, v.role, v.parts, v.metadata, v.created_at
        FROM bumped, unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::int8[])
          WITH ORDINALITY AS v (id, role, parts, metadata, created_at, ord)
      )
      SELECT last_seq FROM bumped`),
    after: r(`SELECT seq, id, role, parts, metadata, created_at FROM {messages} WHERE conversation_id = ?
      AND seq > ? ORDER BY seq ASC LIMIT ?`)
  }
}
type Texts = ReturnType<typeof texts>

/** A raw backend: statements returning rows as arrays (SQLite: plain calls; PostgreSQL: promises). */
interface Raw {
  readonly all: (text: string, params: ReadonlyArray<unknown>) => MaybePromise<ReadonlyArray<ReadonlyArray<any>>>
  /** Bumps and inserts one message (id `messageId`) atomically; its seq. */
  readonly append: (id: string, messageId: string, now: number) => MaybePromise<number>
  /** Tells other processes (PostgreSQL: `pg_notify`, not awaited, as the library's wake-ups do; SQLite: nothing). */
  readonly notify: (id: string) => void
}

const decodeMessage = (r: ReadonlyArray<any>) => ({
  seq: Number(r[0]),
  id: r[1] as string,
  role: r[2] as string,
  parts: JSON.parse(r[3]) as unknown,
  metadata: r[4] === null ? undefined : (JSON.parse(r[4]) as unknown),
  createdAt: Number(r[5])
})

/** The raw ping-pong: sender and subscriber over `raw`, the subscriber woken by an in-process event. */
const rawRun = async (raw: Raw, t: Texts, sessions: number, pings: number) => {
  const latencies: Array<number> = []
  await Promise.all(
    Array.from({ length: sessions }, async (_, s) => {
      const id = `raw-${s}-${uuidv7At(Date.now())}`
      const now = Date.now()
      await raw.all(t.insertSession, [id, now, now])
      await raw.all(t.insertConversation, [id, id, now, now])
      const events = new EventEmitter()
      let cursor = 0
      let delivered: ((arrival: readonly [seq: number, at: number]) => void) | undefined
      events.on("wake", async (sent: ReadonlyArray<any>) => {
        // As the library's subscriber: the sent message, when it is the next one, from the wake without reading;
        // otherwise the session's status (a closed session's stream ends) with the messages after the cursor,
        // both at once (one round trip on PostgreSQL; one after the other on SQLite).
        if (Number(sent[0]) === cursor + 1) {
          const row = decodeMessage(sent)
          cursor = row.seq
          delivered?.([row.seq, performance.now()])
          return
        }
        const [session, found] = await Promise.all([raw.all(t.getSession, [id]), raw.all(t.after, [id, cursor, 100])])
        check(session[0] !== undefined && session[0][4] !== "closed", "raw subscriber session")
        const rows = found.map(decodeMessage)
        if (rows.length === 0) return
        cursor = rows[rows.length - 1]!.seq
        for (const row of rows) delivered?.([row.seq, performance.now()])
      })
      for (let i = 1; i <= pings; i++) {
        const start = performance.now()
        const arrived = new Promise<readonly [number, number]>((resolve) => (delivered = resolve))
        const [session] = await raw.all(t.getSession, [id])
        check(session !== undefined && session[4] !== "closed", "raw session")
        const now = Date.now()
        const messageId = uuidv7At(now)
        const stored = await raw.append(id, messageId, now)
        raw.notify(id)
        events.emit("wake", [stored, messageId, "user", partsJson, null, now])
        const [seq, at] = await arrived
        latencies.push(at - start)
        check(seq === i, "raw delivery order")
      }
    })
  )
  return latencies
}

/**
 * The floor: the raw ping-pong as an Effect program of the library's shape, what any Effect program pays for the
 * same work. The raw calls run in the sending fiber (`fromRaw`); the wake is a `Queue` that a subscriber fiber consumes
 * as a `Stream` (delivering the sent row when it is the next one, else reading as the raw subscriber does), and the
 * sender awaits each delivery from a second `Queue`.
 */
const floorRun = (raw: Raw, t: Texts, sessions: number, pings: number) =>
  Effect.gen(function* () {
    const latencies: Array<number> = []
    yield* Effect.forEach(
      Array.from({ length: sessions }, (_, s) => s),
      (s) =>
        Effect.gen(function* () {
          const id = `floor-${s}-${uuidv7At(Date.now())}`
          const now = Date.now()
          yield* fromRaw(() => raw.all(t.insertSession, [id, now, now]))
          yield* fromRaw(() => raw.all(t.insertConversation, [id, id, now, now]))
          const wakes = yield* Queue.unbounded<ReadonlyArray<any>>()
          const arrivals = yield* Queue.unbounded<readonly [seq: number, at: number]>()
          let cursor = 0
          const deliveries = (sent: ReadonlyArray<any>) => {
            if (Number(sent[0]) === cursor + 1) {
              const row = decodeMessage(sent)
              cursor = row.seq
              return Effect.succeed([row])
            }
            return Effect.map(
              Effect.all(
                [fromRaw(() => raw.all(t.getSession, [id])), fromRaw(() => raw.all(t.after, [id, cursor, 100]))],
                {
                  concurrency: 2
                }
              ),
              ([session, found]) => {
                check(session[0] !== undefined && session[0][4] !== "closed", "floor subscriber session")
                const rows = found.map(decodeMessage)
                if (rows.length > 0) cursor = rows[rows.length - 1]!.seq
                return rows
              }
            )
          }
          const subscriber = yield* Effect.fork(
            Stream.fromQueue(wakes).pipe(
              Stream.mapConcatEffect(deliveries),
              Stream.runForEach((row) => Queue.offer(arrivals, [row.seq, performance.now()]))
            )
          )
          for (let i = 1; i <= pings; i++) {
            const start = performance.now()
            const [session] = yield* fromRaw(() => raw.all(t.getSession, [id]))
            check(session !== undefined && session[4] !== "closed", "floor session")
            const now = Date.now()
            const messageId = uuidv7At(now)
            const stored = yield* fromRaw(() => raw.append(id, messageId, now))
            raw.notify(id)
            yield* Queue.offer(wakes, [stored, messageId, "user", partsJson, null, now])
            const [seq, at] = yield* Queue.take(arrivals)
            latencies.push(at - start)
            check(seq === i, "floor delivery order")
          }
          yield* Fiber.interrupt(subscriber)
        }),
      { concurrency: "unbounded", discard: true }
    )
    return latencies
  })

// ---------------------------------------------------------------------------
// Runs

const round = (x: number) => Math.round(x * 1000) / 1000

const sides = ["library", "raw", "floor"] as const
type Side = (typeof sides)[number]

const measure = async (
  backend: Row["backend"],
  concurrency: number,
  pings: number,
  reps: number,
  run: Record<Side, (sessions: number, pings: number) => Promise<Array<number>>>
): Promise<Row> => {
  const all: Record<Side, Array<number>> = { library: [], raw: [], floor: [] }
  // A warm-up, then each repetition starts with the next side: none always runs first, or last.
  for (let rep = -1; rep < reps; rep++) {
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(rep + 1 + k) % sides.length]!
      gc()
      const latencies = await run[side](concurrency, pings)
      if (rep >= 0) all[side].push(...latencies)
    }
  }
  const lib = all.library.sort((a, b) => a - b)
  const base = all.raw.sort((a, b) => a - b)
  const floor = all.floor.sort((a, b) => a - b)
  return {
    workload,
    backend,
    concurrency,
    p50: round(percentile(lib, 0.5)),
    p99: round(percentile(lib, 0.99)),
    baselineP50: round(percentile(base, 0.5)),
    baselineP99: round(percentile(base, 0.99)),
    ratio: round2(percentile(base, 0.5) / percentile(lib, 0.5)),
    floorP50: round(percentile(floor, 0.5)),
    floorRatio: round2(percentile(base, 0.5) / percentile(floor, 0.5))
  }
}

const sqliteRows = async (reps: number): Promise<ReadonlyArray<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "broker-bench-"))
  const rawFile = join(dir, "raw.db")
  const library = ManagedRuntime.make(
    Broker.layer.pipe(Layer.provideMerge(StoresSqlite({ filename: join(dir, "library.db") })))
  )
  let db: Database.Database | undefined
  try {
    // The raw side's file: the library's migrations, then closed and opened raw with the library's pragmas.
    await Effect.runPromise(Effect.scoped(Layer.build(StoresSqlite({ filename: rawFile }))))
    const raw = new Database(rawFile, { timeout: 5000 })
    db = raw
    raw.pragma("journal_mode = WAL")
    raw.pragma("synchronous = NORMAL")
    raw.pragma("foreign_keys = ON")
    raw.pragma(`cache_size = -${pageCacheKiB}`)
    raw.pragma(`mmap_size = ${mmapBytes}`)
    const t = texts(Kit.defaultPrefix, "sqlite")
    const prepared = new Map<string, Database.Statement>()
    const statement = (text: string) => {
      let found = prepared.get(text)
      if (found === undefined) {
        found = raw.prepare(text)
        if (found.reader) found.raw(true)
        prepared.set(text, found)
      }
      return found
    }
    const appendOne = raw.transaction((id: string, messageId: string, now: number) => {
      const [last] = statement(t.bump).get(1, 1, now, now, id) as [number]
      statement(t.insertMessage).run(id, last, messageId, "user", partsJson, null, now)
      return last
    })
    const rawSide: Raw = {
      all: (text, params) => {
        const s = statement(text)
        if (s.reader) return s.all(...params) as Array<Array<any>>
        s.run(...params)
        return []
      },
      append: (id, messageId, now) => appendOne.immediate(id, messageId, now),
      notify: () => {}
    }
    const pings = 2_000
    return [
      await measure("sqlite", 1, pings, reps, {
        library: (s, p) => library.runPromise(libraryRun(s, p)),
        raw: (s, p) => rawRun(rawSide, t, s, p),
        floor: (s, p) => library.runPromise(floorRun(rawSide, t, s, p))
      })
    ]
  } finally {
    await library.dispose()
    db?.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const pgRows = async (reps: number): Promise<ReadonlyArray<Row> | string> => {
  const admin = await openAdmin(url)
  if (typeof admin === "string") return admin
  const stamp = runStamp()
  const libraryPrefix = `bench_broker_lib_${stamp}`
  const rawPrefix = `bench_broker_raw_${stamp}`
  const library = ManagedRuntime.make(
    Broker.layerWith({ tablePrefix: libraryPrefix }).pipe(
      Layer.provideMerge(withOpenPool(StoresPg({ url, tablePrefix: libraryPrefix, maxConnections: POOL })))
    )
  )
  const sql = postgres(url, { max: POOL, onnotice: () => {} })
  try {
    await Effect.runPromise(Effect.scoped(Layer.build(StoresPg({ url, tablePrefix: rawPrefix, maxConnections: 1 }))))
    await openPool(sql)
    const t = texts(rawPrefix, "pg")
    const all: Raw["all"] = (text, params) =>
      sql.unsafe(text, params as Array<any>, { prepare: true }).values() as unknown as Promise<Array<Array<any>>>
    const rawSide: Raw = {
      all,
      append: async (id, messageId, now) => {
        const [row] = await all(t.appendAll, [
          1,
          1,
          now,
          now,
          id,
          id,
          1,
          [messageId],
          ["user"],
          [partsJson],
          [null],
          [now]
        ])
        return Number(row![0])
      },
      notify: (id) => {
        sql.unsafe("SELECT pg_notify($1, $2)", ["bench_broker_raw", id]).catch(() => {})
      }
    }
    await library.runPromise(libraryRun(1, 10))
    const rows: Array<Row> = []
    for (const [concurrency, pings] of [
      [1, 300],
      [POOL, 60]
    ] as const) {
      rows.push(
        await measure("postgres", concurrency, pings, reps, {
          library: (s, p) => library.runPromise(libraryRun(s, p)),
          raw: (s, p) => rawRun(rawSide, t, s, p),
          floor: (s, p) => library.runPromise(floorRun(rawSide, t, s, p))
        })
      )
    }
    return rows
  } finally {
    await library.dispose()
    await sql.end({ timeout: 1 })
    for (const table of [...tablesOf(libraryPrefix), ...tablesOf(rawPrefix)]) {
      await admin.unsafe(`DROP TABLE IF EXISTS "${table}" CASCADE`)
    }
    await admin.end({ timeout: 1 })
  }
}

/** Runs the broker rows on SQLite, then on PostgreSQL (left out with a note when the server is unreachable). */
export const runBroker = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows = [...(await sqliteRows(options.reps))]
  const pg = await pgRows(options.reps)
  if (typeof pg === "string") console.log(`broker postgres rows skipped: ${pg}`)
  else rows.push(...pg)
  return rows
}

/** Prints `rows` as a table. */
export const printBroker = (rows: ReadonlyArray<Row>) => {
  const header = [
    "workload",
    "backend",
    "sessions",
    "p50 ms",
    "p99 ms",
    "raw p50",
    "raw p99",
    "ratio",
    "floor p50",
    "floor ratio"
  ]
  const cells = rows.map((r) => [
    r.workload,
    r.backend,
    String(r.concurrency),
    r.p50.toFixed(3),
    r.p99.toFixed(3),
    r.baselineP50.toFixed(3),
    r.baselineP99.toFixed(3),
    r.ratio.toFixed(2),
    r.floorP50.toFixed(3),
    r.floorRatio.toFixed(2)
  ])
  console.log(
    "broker: send -> subscriber delivery latency, ping-pong, all reps pooled; raw = better-sqlite3 / postgres " +
      `(porsager, pool ${POOL}) with the stores' statements and an in-process wake; ratio = raw p50 / library p50; ` +
      "floor = the raw calls in an Effect program of the library's shape (a subscriber fiber consuming a Stream)"
  )
  printTable(header, cells)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 5))
  printBroker(await runBroker({ reps }))
}
