/**
 * The event bench (issue 10): `EventStore.append` of 1 and of 100 events per
 * transaction, reading a 10k-event stream (pages of 1000), each through the
 * library and through the raw driver running the library's own statements
 * (`SqlEventStore.statements`, resolved with `Kit.resolve`) with the same
 * round trips: on SQLite (raw better-sqlite3 on its own temp file with the
 * library's schema and pragmas; the same four statements in one immediate
 * transaction) and on PostgreSQL (raw `postgres`, pool 16 on both sides, the
 * same one-statement append, then its `pg_notify`s in a statement not waited
 * for; own tables, dropped at the end), at 1 caller and,
 * on PostgreSQL, 16. Plus subscribe latency (append → delivered to a
 * subscriber in the same process, p50/p99), library only.
 *
 * Run alone: `node --expose-gc --import tsx bench/events.ts` (`BENCH_REPS`,
 * default 3; `BENCH_EVENTS_SCALE`, default 1, multiplies the operation counts;
 * `DATABASE_URL`, default the local server).
 */
import Database from "better-sqlite3"
import { Deferred, Effect, Layer, ManagedRuntime, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { tablesOf, withRequired } from "../layers/Registry.ts"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlEventStore from "../layers/sql/SqlEventStore.ts"
import { mmapBytes, pageCacheKiB } from "../layers/sql/SqliteDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { EventStore } from "../src/Event.ts"
import { best, median, printTable } from "./stats.ts"
import { dropPrefixed, openAdmin, runStamp } from "./admin.ts"
import {
  type MaybePromise,
  POOL,
  openPool,
  opsColumns,
  then,
  timeLibrary,
  timeRaw,
  url,
  withOpenPool
} from "./timing.ts"

/** One row of the event table: throughput beside the raw driver, or a latency (library only). */
export interface Row {
  readonly workload: string
  readonly backend: "sqlite" | "postgres"
  readonly concurrency: number
  /** Library operations per second (an operation: one append, or one whole read of the stream). */
  readonly opsPerSec: number
  readonly baselineOpsPerSec: number | undefined
  /** Best library ops/s over best raw ops/s. */
  readonly ratio: number | undefined
  /** Median library ops/s over median raw ops/s. */
  readonly medianRatio: number | undefined
  /** Latency rows: append → delivered, milliseconds. */
  readonly p50Ms?: number
  readonly p99Ms?: number
}

const BIG = 10_000

const payload = (i: number) => ({ orderId: `order-${i}`, amount: 42.5, items: [{ sku: "A-1", qty: 2 }], note: "ok" })

/** The raw side's decoding of an event row, as the library's (JSON parsed, times as numbers). */
const rawEvent = (r: ReadonlyArray<any>) => ({
  id: r[0] as string,
  streamId: r[1] as string,
  seq: Number(r[2]),
  position: Number(r[3]),
  type: r[4] as string,
  payload: JSON.parse(r[5]) as unknown,
  metadata: JSON.parse(r[6]) as unknown,
  createdAt: Number(r[7])
})

interface Side {
  readonly library: ManagedRuntime.ManagedRuntime<EventStore, unknown>
  /** One append of `n` events to `stream` through the raw driver. */
  readonly rawAppend: (stream: string, n: number, i: number) => MaybePromise<unknown>
  /** One whole read of `stream` in pages of 1000 through the raw driver. */
  readonly rawRead: (stream: string) => MaybePromise<number>
}

/** `BENCH_EVENTS_SCALE` (default 1) multiplies every workload's operation count. */
const scale = Math.max(0.05, Number(process.env["BENCH_EVENTS_SCALE"] ?? 1))

const workloads = (backend: "sqlite" | "postgres") => {
  const callers = backend === "sqlite" ? [1] : [1, 16]
  const ops = (n: number) => Math.max(2, Math.round(n * scale))
  return [
    ...callers.map((c) => ({
      name: "append 1 event",
      n: 1,
      ops: ops(backend === "sqlite" ? 2000 : 1200),
      c
    })),
    ...callers.map((c) => ({
      name: "append 100 events",
      n: 100,
      ops: ops(backend === "sqlite" ? 100 : 150),
      c
    })),
    ...callers.map((c) => ({
      name: "read a 10k stream",
      n: 0,
      ops: ops(backend === "sqlite" ? 10 : 12),
      c
    }))
  ]
}

const libraryRead = (stream: string) =>
  Effect.gen(function* () {
    const events = yield* EventStore
    let after = 0
    let count = 0
    while (true) {
      const page = yield* events.read(stream, { after, limit: 1000 })
      count += page.length
      if (page.length < 1000) return count
      after = page[page.length - 1]!.seq
    }
  })

const eventsOf = (n: number, i: number) =>
  Array.from({ length: n }, (_, k) => ({ type: "order.placed", payload: payload(i * n + k) }))

const runSide = async (backend: "sqlite" | "postgres", side: Side, reps: number): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  // The 10k stream on both sides (not timed).
  await side.library.runPromise(
    Effect.flatMap(EventStore, (events) =>
      Effect.forEach(
        Array.from({ length: BIG / 1000 }, (_, i) => i),
        (i) => events.append("big", eventsOf(1000, i)),
        { discard: true }
      )
    )
  )
  for (let i = 0; i < BIG / 1000; i++) await side.rawAppend("big", 1000, i)
  let run = 0
  for (const w of workloads(backend)) {
    const library: Array<number> = []
    const raw: Array<number> = []
    for (let rep = 0; rep <= reps; rep++) {
      const tag = `${++run}`
      const lib = await side.library.runPromise(
        timeLibrary(w.ops, w.c, (i, caller) =>
          w.n === 0
            ? Effect.tap(libraryRead("big"), (count) => Effect.sync(() => count === BIG || fail(`read ${count}`)))
            : Effect.flatMap(EventStore, (events) => events.append(`s${tag}-${caller}`, eventsOf(w.n, i)))
        )
      )
      const base = await timeRaw(w.ops, w.c, (i, caller) =>
        w.n === 0
          ? then(side.rawRead("big"), (count) => count === BIG || fail(`raw read ${count}`))
          : side.rawAppend(`s${tag}-${caller}`, w.n, i)
      )
      // The first run of each side is a warm-up.
      if (rep > 0) {
        library.push((w.ops * 1000) / lib)
        raw.push((w.ops * 1000) / base)
      }
    }
    console.error(`events bench: ${backend} ${w.name} x${w.c} done`)
    rows.push({
      workload: w.name,
      backend,
      concurrency: w.c,
      opsPerSec: Math.round(best(library)),
      baselineOpsPerSec: Math.round(best(raw)),
      ratio: best(library) / best(raw),
      medianRatio: median(library) / median(raw)
    })
  }
  rows.push(await latency(backend, side.library))
  return rows
}

const fail = (what: string): never => {
  throw new Error(`bench sanity check failed: ${what}`)
}

/** Append → delivered to a subscriber of the stream in this process, 300 samples after 20 of warm-up. */
const latency = (backend: "sqlite" | "postgres", library: ManagedRuntime.ManagedRuntime<EventStore, unknown>) =>
  library.runPromise(
    Effect.gen(function* () {
      const events = yield* EventStore
      const stream = `latency-${randomUUID()}`
      const samples = 320
      const delivered: Array<Deferred.Deferred<number>> = Array.from({ length: samples }, () =>
        Deferred.unsafeMake(undefined as never)
      )
      yield* Effect.forkScoped(
        Stream.runForEach(Stream.take(events.subscribe(stream), samples), (event) =>
          Deferred.succeed(delivered[event.seq - 1]!, performance.now())
        )
      )
      yield* Effect.sleep("50 millis")
      const times: Array<number> = []
      for (let i = 0; i < samples; i++) {
        const start = performance.now()
        yield* events.append(stream, [{ type: "ping", payload: i }])
        const at = yield* Deferred.await(delivered[i]!)
        if (i >= 20) times.push(at - start)
      }
      times.sort((a, b) => a - b)
      const p = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!
      return {
        workload: "subscribe latency",
        backend,
        concurrency: 1,
        opsPerSec: Math.round(1000 / median(times)),
        baselineOpsPerSec: undefined,
        ratio: undefined,
        medianRatio: undefined,
        p50Ms: p(0.5),
        p99Ms: p(0.99)
      } satisfies Row
    }).pipe(Effect.scoped)
  )

const sqliteRows = async (reps: number): Promise<Array<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "agent-bench-events-"))
  try {
    const layerOn = (filename: string) => SqlEventStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename })))
    const rawFile = join(dir, "raw.db")
    // The raw side's schema: the library's migrations, run once on its file.
    await Effect.runPromise(Effect.scoped(Layer.build(layerOn(rawFile))))
    const db = new Database(rawFile)
    db.pragma("journal_mode = WAL")
    db.pragma("synchronous = NORMAL")
    db.pragma(`cache_size = -${pageCacheKiB}`)
    db.pragma(`mmap_size = ${mmapBytes}`)
    const prepare = (s: Kit.Stmt<any, any>) => {
      const statement = db.prepare(Kit.resolve(s.text, Kit.defaultPrefix, "sqlite"))
      if (statement.reader) statement.raw(true)
      return statement
    }
    const { selectStream, createStream, advanceStream, insertEvent, readForward } = SqlEventStore.statements
    const select = prepare(selectStream)
    const create = prepare(createStream)
    const advance = prepare(advanceStream)
    const bump = prepare(Kit.bumpCounter)
    const insert = prepare(insertEvent)
    const read = prepare(readForward)
    const append = db.transaction(
      (stream: string, events: ReadonlyArray<{ id: string; type: string; payload: string }>) => {
        const now = Date.now()
        const current = select.get(stream) as Array<any> | undefined
        const n = events.length
        const version = Number(
          (current === undefined
            ? (create.all(stream, n, now, now)[0] as Array<any>)
            : (advance.all(n, now, now, stream, Number(current[1]))[0] as Array<any>))[0]
        )
        const position = Number((bump.all(SqlEventStore.counter, n)[0] as Array<any>)[0])
        return events.map((e, i) => {
          insert.run(e.id, stream, version - n + 1 + i, position - n + 1 + i, e.type, e.payload, "{}", now)
          return { ...e, streamId: stream, seq: version - n + 1 + i, position: position - n + 1 + i, createdAt: now }
        })
      }
    )
    const library = ManagedRuntime.make(layerOn(join(dir, "library.db")))
    try {
      return await runSide(
        "sqlite",
        {
          library,
          rawAppend: (stream, n, i) =>
            append.immediate(
              stream,
              Array.from({ length: n }, (_, k) => ({
                id: randomUUID(),
                type: "order.placed",
                payload: JSON.stringify(payload(i * n + k))
              }))
            ),
          rawRead: (stream) => {
            let after = 0
            let count = 0
            while (true) {
              const page = (read.all(stream, after, 1000) as Array<Array<any>>).map(rawEvent)
              count += page.length
              if (page.length < 1000) return count
              after = page[page.length - 1]!.seq
            }
          }
        },
        reps
      )
    } finally {
      await library.dispose()
      db.close()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const pgRows = async (reps: number): Promise<Array<Row> | string> => {
  const stamp = runStamp()
  const libraryPrefix = `bev_lib_${stamp}`
  const rawPrefix = `bev_raw_${stamp}`
  const admin = await openAdmin(url)
  if (typeof admin === "string") return admin
  // The raw side's tables come from the same layer (its pool opened too, untimed, before it is closed).
  const layerWith = (tablePrefix: string) =>
    SqlEventStore.layerWith({ tablePrefix }).pipe(
      Layer.provide(withOpenPool(PgDatabase.layer({ url, maxConnections: POOL })))
    )
  const raw = postgres(url, { max: POOL, onnotice: () => {} })
  const library = ManagedRuntime.make(layerWith(libraryPrefix))
  try {
    await Effect.runPromise(Effect.scoped(Layer.build(layerWith(rawPrefix))))
    await openPool(raw)
    const { pgAppendAny, pgNotifyMany, readForward } = SqlEventStore.statements
    const appendText = Kit.resolve(pgAppendAny.text, rawPrefix, "pg")
    const notifyText = Kit.resolve(pgNotifyMany.text, rawPrefix, "pg")
    const readText = Kit.resolve(readForward.text, rawPrefix, "pg")
    return await runSide(
      "postgres",
      {
        library,
        rawAppend: async (stream, n, i) => {
          const events = Array.from({ length: n }, (_, k) => ({
            id: randomUUID(),
            type: "order.placed",
            payload: JSON.stringify(payload(i * n + k))
          }))
          const now = Date.now()
          const [row] = await raw
            .unsafe(
              appendText,
              [
                stream,
                n,
                now,
                0,
                events.map((e) => e.id),
                events.map((e) => e.type),
                events.map((e) => e.payload),
                events.map(() => "{}")
              ] as Array<any>,
              { prepare: true }
            )
            .values()
          // The other processes' wake-up, after the commit and not waited for, as the library sends it.
          const wake = [PgDatabase.notifyArgs(`raw:events:${stream}`), PgDatabase.notifyArgs("raw:events")]
          raw
            .unsafe(notifyText, [wake.map(([channel]) => channel), wake.map(([, payload]) => payload)], {
              prepare: true
            })
            .catch(() => {})
          const version = Number(row![0])
          const position = Number(row![1])
          return events.map((e, k) => ({
            ...e,
            streamId: stream,
            seq: version - n + 1 + k,
            position: position - n + 1 + k
          }))
        },
        rawRead: async (stream) => {
          let after = 0
          let count = 0
          while (true) {
            const rows = await raw.unsafe(readText, [stream, after, 1000], { prepare: true }).values()
            const page = rows.map(rawEvent)
            count += page.length
            if (page.length < 1000) return count
            after = page[page.length - 1]!.seq
          }
        }
      },
      reps
    )
  } finally {
    await library.dispose()
    await raw.end({ timeout: 1 })
    for (const prefix of [libraryPrefix, rawPrefix]) {
      await dropPrefixed(admin, prefix, tablesOf(prefix, withRequired([SqlEventStore.schema])))
    }
    await admin.end({ timeout: 1 })
  }
}

/** Runs every event row on SQLite, then on PostgreSQL (left out with a note when the server is unreachable). */
export const runEvents = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows = await sqliteRows(options.reps)
  const pg = await pgRows(options.reps)
  if (typeof pg === "string") console.log(`events postgres rows skipped: ${pg}`)
  else rows.push(...pg)
  return rows
}

/** Prints `rows` as a table. */
export const printEvents = (rows: ReadonlyArray<Row>, reps: number = 3) => {
  const header = [...opsColumns, "p50 ms", "p99 ms"]
  const cells = rows.map((r) => [
    r.workload,
    r.backend,
    String(r.concurrency),
    r.opsPerSec.toLocaleString("en-US"),
    r.baselineOpsPerSec?.toLocaleString("en-US") ?? "-",
    r.ratio?.toFixed(2) ?? "-",
    r.medianRatio?.toFixed(2) ?? "-",
    r.p50Ms?.toFixed(2) ?? "-",
    r.p99Ms?.toFixed(2) ?? "-"
  ])
  console.log(
    `events: best of ${reps} runs per side; raw = better-sqlite3 / postgres (porsager, pool ${POOL}) running the ` +
      "library's statements and round trips; one op = one append, or one whole read of the 10k stream; target >= 0.8"
  )
  printTable(header, cells)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 3))
  const started = performance.now()
  printEvents(await runEvents({ reps }), reps)
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
