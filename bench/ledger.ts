/**
 * The ledger bench (issue 10), audit and trace rows: `AuditLogStore.append`
 * through the library and through the raw driver running the library's own
 * statements with the same round trips and the same hashing (bump the kernel
 * counter, read the last hash, canonical JSON + SHA-256, insert, in one
 * transaction): on SQLite (raw better-sqlite3, its own temp file with the
 * library's schema and pragmas) and on PostgreSQL (raw `postgres`, pool 16 on
 * both sides, own tables dropped at the end) at 1 and 16 callers. And the
 * recording tracer's cost per span: `Effect.withSpan` around `Effect.void`
 * with Effect's own tracer against `TraceStore.tracerLayer` over SQLite (the
 * program's time, the spans written after it or meanwhile), and end to end
 * (the program and every span written) against a hand-written recorder:
 * Effect's own tracer keeping each ended span, then the store's insert on raw
 * better-sqlite3 in transactions of 256 (each side on a new file).
 *
 * `runLedger({ reps })` alternates the sides `reps` times per row after a
 * warm-up and reports the best ops/s of each side and their ratio. Run alone:
 * `node --expose-gc --import tsx bench/ledger.ts` (`BENCH_REPS`, default 3; `BENCH_ONLY=sqlite` skips PostgreSQL).
 */
import Database from "better-sqlite3"
import { Effect, Exit, Layer, ManagedRuntime, Tracer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlAuditLogStore from "../layers/sql/SqlAuditLogStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlTraceStore from "../layers/sql/SqlTraceStore.ts"
import type { SqlClient } from "@effect/sql/SqlClient"
import { AuditLogStore, entryHash, genesisHash } from "../src/Audit.ts"
import type { StorageError } from "../src/Errors.ts"
import { uuidv7 } from "../src/Id.ts"
import { TraceRecorder, TraceStore } from "../src/Trace.ts"
import { best, median, printTable } from "./stats.ts"
import { openAdmin, runStamp } from "./admin.ts"
import { type OpsRow, POOL, gc, openPool, timeLibrary, timeRaw, url, withOpenPool } from "./timing.ts"

/** One row of the ledger table (the tracer's program-time rows' baseline is Effect's own tracer). */
export type Row = OpsRow

const detail = (i: number) => ({ tool: "search", query: `open tickets ${i}`, results: 12, tokens: { input: 812 } })
const input = (i: number) => ({
  sessionId: "session-1",
  actor: "agent:planner",
  action: "tool.call",
  resource: "tool:search",
  detail: detail(i)
})

/** The raw side's append: the library's statements, the same hash. */

const rawRow = (i: number, seq: number, prevHash: string) => {
  const row = {
    id: Effect.runSync(uuidv7),
    seq,
    sessionId: "session-1",
    actor: "agent:planner",
    action: "tool.call",
    resource: "tool:search",
    createdAt: Date.now(),
    prevHash
  }
  const value = detail(i)
  const hash = entryHash(row, value)!
  return [
    row.id,
    seq,
    row.sessionId,
    row.actor,
    row.action,
    row.resource,
    JSON.stringify(value),
    row.createdAt,
    prevHash,
    hash
  ]
}

const texts = (prefix: string, dialect: Kit.Dialect) => ({
  bump: Kit.resolve(Kit.bumpCounter.text, prefix, dialect),
  last: Kit.resolve(SqlAuditLogStore.appendStatements.lastHash.text, prefix, dialect),
  insert: Kit.resolve(SqlAuditLogStore.appendStatements.insert.text, prefix, dialect)
})

/** Alternates the sides `reps` times after a warm-up of each; ops/s per run. */
const compare = async (
  reps: number,
  ops: number,
  library: () => Promise<number>,
  raw: () => Promise<number>
): Promise<Pick<Row, "opsPerSec" | "baselineOpsPerSec" | "ratio" | "medianRatio">> => {
  await library()
  await raw()
  const lib: Array<number> = []
  const base: Array<number> = []
  for (let r = 0; r < reps; r++) {
    lib.push((ops / (await library())) * 1000)
    base.push((ops / (await raw())) * 1000)
  }
  return {
    opsPerSec: Math.round(best(lib)),
    baselineOpsPerSec: Math.round(best(base)),
    ratio: best(lib) / best(base),
    medianRatio: median(lib) / median(base)
  }
}

/** Raw better-sqlite3 on `filename` with the library's pragmas, after `store`'s layer made its schema there. */
const openRaw = async <A>(store: Layer.Layer<A, StorageError, SqlClient>, filename: string) => {
  await Effect.runPromise(Effect.scoped(Layer.build(store.pipe(Layer.provide(SqliteDatabase.layer({ filename }))))))
  const db = new Database(filename, { timeout: 5000 })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  db.pragma(`cache_size = -${SqliteDatabase.pageCacheKiB}`)
  db.pragma(`mmap_size = ${SqliteDatabase.mmapBytes}`)
  return db
}

const appendLibrary = (ops: number, concurrency: number) =>
  Effect.flatMap(AuditLogStore, (audit) => timeLibrary(ops, concurrency, (i) => audit.append(input(i))))

const sqliteRows = async (reps: number): Promise<Array<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "agent-stores-ledger-"))
  const rows: Array<Row> = []
  try {
    const store = SqlAuditLogStore.layer.pipe(
      Layer.provideMerge(SqliteDatabase.layer({ filename: join(dir, "lib.db") }))
    )
    const library = ManagedRuntime.make(store)
    const db = await openRaw(SqlAuditLogStore.layer, join(dir, "raw.db"))
    const t = texts(Kit.defaultPrefix, "sqlite")
    const bump = db.prepare(t.bump).raw(true)
    const last = db.prepare(t.last).raw(true)
    const insert = db.prepare(t.insert)
    const append = db.transaction((i: number) => {
      const seq = Number((bump.all(SqlAuditLogStore.counter, 1)[0] as Array<unknown>)[0])
      const prev = (last.get() as Array<string> | undefined)?.[0] ?? genesisHash
      insert.run(rawRowOf(i, seq, prev))
    })
    const rawRowOf = rawRow
    const ops = 2000
    rows.push({
      workload: "audit append",
      backend: "sqlite",
      concurrency: 1,
      ...(await compare(
        reps,
        ops,
        () => library.runPromise(appendLibrary(ops, 1)),
        () => timeRaw(ops, 1, (i) => append.immediate(i))
      ))
    })
    db.close()
    await library.dispose()

    // The tracer: Effect's own tracer against the recording one (program time; writes follow in the background).
    /** A trace store on its own file. */
    const tracesOn = (file: string) =>
      ManagedRuntime.make(
        SqlTraceStore.layer.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename: join(dir, file) })))
      )
    const traces = tracesOn("trace.db")
    const spans = 5000
    const program = Effect.forEach(
      Array.from({ length: spans }, (_, i) => i),
      (i) => Effect.withSpan(Effect.void, "step", { attributes: { i } })
    )
    const timed = <E, R>(effect: Effect.Effect<unknown, E, R>) =>
      Effect.gen(function* () {
        gc()
        const start = performance.now()
        yield* effect
        return performance.now() - start
      })
    /** The program's time under the recording tracer; with `deferred`, no batch is written before it ends. */
    const recorded = (deferred: boolean) => () =>
      traces.runPromise(
        Effect.gen(function* () {
          const elapsed = yield* timed(program)
          const recorder = yield* TraceRecorder
          yield* recorder.flush
          return elapsed
        }).pipe(
          Effect.provide(
            TraceStore.tracerLayer(
              deferred ? { bufferSize: spans, batchSize: spans, flushInterval: "1 hour" } : { bufferSize: spans }
            )
          )
        )
      )
    rows.push({
      workload: "span (withSpan; recording tracer, writes after / Effect's tracer)",
      backend: "sqlite",
      concurrency: 1,
      ...(await compare(reps, spans, recorded(true), () => Effect.runPromise(timed(program))))
    })
    rows.push({
      workload: "span (withSpan; recording tracer, writes meanwhile / Effect's tracer)",
      backend: "sqlite",
      concurrency: 1,
      ...(await compare(reps, spans, recorded(false), () => Effect.runPromise(timed(program))))
    })
    // End to end (every span recorded and written), beside a hand-written recorder: Effect's own tracer with each
    // ended span kept, then the same inserts in transactions of 256 on raw better-sqlite3; each side on a new file.
    const traceDb = await openRaw(SqlTraceStore.layer, join(dir, "trace-raw.db"))
    const insertSpan = traceDb.prepare(Kit.resolve(SqlTraceStore.statements.insert.text, Kit.defaultPrefix, "sqlite"))
    const insertSpans = traceDb.transaction((batch: ReadonlyArray<Tracer.Span>) => {
      for (const span of batch) {
        const status = span.status as Extract<Tracer.SpanStatus, { _tag: "Ended" }>
        insertSpan.run(
          span.spanId,
          span.traceId,
          span.parent._tag === "Some" ? span.parent.value.spanId : null,
          null,
          span.name,
          span.kind,
          Exit.isSuccess(status.exit) ? "ok" : "error",
          JSON.stringify(Object.fromEntries(span.attributes)),
          "[]",
          Number(status.startTime / 1_000_000n),
          Number(status.endTime / 1_000_000n)
        )
      }
    })
    const handWritten = () => {
      const ended: Array<Tracer.Span> = []
      const own = Effect.runSync(Effect.tracer)
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind) => {
          const span = own.span(name, parent, context, links, startTime, kind)
          const end = span.end.bind(span)
          return Object.assign(span, {
            end: (endTime: bigint, exit: Exit.Exit<unknown, unknown>) => {
              end(endTime, exit)
              ended.push(span)
            }
          })
        },
        context: own.context
      })
      gc()
      const start = performance.now()
      return Effect.runPromise(Effect.withTracer(program, tracer)).then(() => {
        for (let i = 0; i < ended.length; i += 256) insertSpans.immediate(ended.slice(i, i + 256))
        return performance.now() - start
      })
    }
    // The library's side on a fresh file too: a span's insert costs more as the table grows.
    const tracesFresh = tracesOn("trace-lib.db")
    /** The program under the recording tracer until every span is written. */
    const endToEnd = () =>
      tracesFresh.runPromise(
        timed(
          Effect.zipRight(
            program,
            Effect.flatMap(TraceRecorder, (recorder) => recorder.flush)
          )
        ).pipe(Effect.provide(TraceStore.tracerLayer({ bufferSize: spans })))
      )
    rows.push({
      workload: "span recorded + written (end to end / a hand-written recorder)",
      backend: "sqlite",
      concurrency: 1,
      ...(await compare(reps, spans, endToEnd, handWritten))
    })
    traceDb.close()
    await tracesFresh.dispose()
    await traces.dispose()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return rows
}

const pgRows = async (reps: number): Promise<Array<Row> | string> => {
  const admin = await openAdmin(url)
  if (typeof admin === "string") return admin
  const stamp = runStamp()
  const libraryPrefix = `bl${stamp}`
  const rawPrefix = `br${stamp}`
  const rows: Array<Row> = []
  const sql = postgres(url, { max: POOL, onnotice: () => {} })
  const library = ManagedRuntime.make(
    SqlAuditLogStore.layerWith({ tablePrefix: libraryPrefix }).pipe(
      Layer.provide(withOpenPool(PgDatabase.layer({ url, maxConnections: POOL })))
    )
  )
  try {
    await Effect.runPromise(
      Effect.scoped(
        Layer.build(
          SqlAuditLogStore.layerWith({ tablePrefix: rawPrefix }).pipe(
            Layer.provide(PgDatabase.layer({ url, maxConnections: 1 }))
          )
        )
      )
    )
    await openPool(sql)
    const t = texts(rawPrefix, "pg")
    const append = (i: number) =>
      sql
        .begin(async (tx) => {
          const [bumped] = await tx.unsafe(t.bump, [SqlAuditLogStore.counter, 1]).values()
          const seq = Number(bumped![0])
          const [last] = await tx.unsafe(t.last, []).values()
          await tx.unsafe(t.insert, rawRow(i, seq, (last?.[0] as string | undefined) ?? genesisHash) as Array<any>)
        })
        .then(() => undefined)
    for (const concurrency of [1, POOL]) {
      const ops = concurrency === 1 ? 600 : 800
      rows.push({
        workload: "audit append",
        backend: "postgres",
        concurrency,
        ...(await compare(
          reps,
          ops,
          () => library.runPromise(appendLibrary(ops, concurrency)),
          () => timeRaw(ops, concurrency, append)
        ))
      })
    }
  } finally {
    await library.dispose()
    await sql.end({ timeout: 1 })
    for (const prefix of [libraryPrefix, rawPrefix]) {
      for (const table of ["audit_log", "audit_log_migrations", "counters", "kernel_migrations"]) {
        await admin.unsafe(`DROP TABLE IF EXISTS "${prefix}_${table}" CASCADE`)
      }
      await admin.unsafe(`DROP FUNCTION IF EXISTS "${prefix}_audit_log_append_only"()`)
    }
    await admin.end({ timeout: 1 })
  }
  return rows
}

/** Runs the ledger rows on SQLite, then on PostgreSQL (left out with a note when the server is unreachable). */
export const runLedger = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = await sqliteRows(options.reps)
  const pg = process.env["BENCH_ONLY"] === "sqlite" ? "BENCH_ONLY=sqlite" : await pgRows(options.reps)
  if (typeof pg === "string") console.log(`ledger postgres rows skipped: ${pg}`)
  else rows.push(...pg)
  return rows
}

/** Prints `rows` as a table. */
export const printLedger = (rows: ReadonlyArray<Row>, reps: number = 3) => {
  const header = ["workload", "backend", "callers", "ops/s library", "ops/s baseline", "ratio", "median ratio"]
  const cells = rows.map((r) => [
    r.workload,
    r.backend,
    String(r.concurrency),
    r.opsPerSec.toLocaleString("en-US"),
    r.baselineOpsPerSec.toLocaleString("en-US"),
    r.ratio.toFixed(2),
    r.medianRatio.toFixed(2)
  ])
  console.log(
    `ledger: best of ${reps} runs per side; baseline = raw better-sqlite3 / postgres (pool ${POOL}) running the ` +
      "library's statements and hashing; for spans, Effect's own tracer (program time) or a hand-written recorder (end to end); target >= 0.8"
  )
  printTable(header, cells)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 3))
  const started = performance.now()
  printLedger(await runLedger({ reps }), reps)
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
