/**
 * The checkpoint bench (issue 10): `CheckpointStore.save` (no parent given, no
 * writes: the thread's next checkpoint) and `CheckpointStore.latest`, through
 * the library and through the raw driver running the library's own statement
 * texts (`SqlCheckpointStore.statements`, resolved with `Kit.resolve`) with
 * the same round trips: on SQLite (raw better-sqlite3 with the library's
 * pragmas: the head bump and the insert in one immediate transaction; each
 * side on its own temp file) and on PostgreSQL (raw `postgres`, pool 16 on
 * both sides: one statement per save, one per latest; each side on its own
 * tables, dropped at the end). SQLite at 1 caller; PostgreSQL at 1 and 16,
 * each caller on its own thread (session).
 *
 * Anchor (LangGraph on this machine kind, not measured here): SqliteSaver
 * ≈ 12.6k saves/s and 26.8k latest/s; PostgresSaver ≈ 735 saves/s and 1,121
 * latest/s. Target: ≥ 2× LangGraph and ≥ 0.8× raw.
 *
 * Run alone: `node --expose-gc --import tsx bench/checkpoints.ts` (`BENCH_REPS`,
 * default 5; `DATABASE_URL`, default the local server).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import Database from "better-sqlite3"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlCheckpointStore from "../layers/sql/SqlCheckpointStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlSessionStore from "../layers/sql/SqlSessionStore.ts"
import type { StorageError } from "../src/Errors.ts"
import { uuidv7At } from "../src/Id.ts"
import { SessionStore } from "../src/Session.ts"
import { CheckpointStore } from "../src/State.ts"
import { best, median, printTable } from "./stats.ts"

/** One row of the checkpoint table. */
export interface Row {
  readonly workload: string
  readonly backend: "sqlite" | "postgres"
  readonly concurrency: number
  readonly opsPerSec: number
  readonly baselineOpsPerSec: number
  /** Best library ops/s over best raw ops/s. */
  readonly ratio: number
  /** Median library ops/s over median raw ops/s. */
  readonly medianRatio: number
  /** LangGraph's figure on this machine kind (the anchor), and the library's multiple of it. */
  readonly langGraph: number
  readonly vsLangGraph: number
}

const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const POOL = 16
const anchors = {
  sqlite: { save: 12_600, latest: 26_800 },
  postgres: { save: 735, latest: 1_121 }
} as const

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`bench sanity check failed: ${what}`)
}

/** A graph state of a few hundred bytes: the kind of channel values a small agent graph keeps. */
const stateOf = (i: number) => ({
  messages: [
    { role: "user", content: "Summarise the open tickets for the weekly report." },
    { role: "assistant", content: `Step ${i}: two tickets wait for the database migration.` }
  ],
  step: i,
  plan: ["search the tickets", "summarise the blockers", "draft the reply"]
})
const metadata = { source: "loop", writes: null }

type Sql = ReadonlyArray<any>
type MaybePromise<A> = A | Promise<A>

/** The raw side: save (the thread's next checkpoint) and latest, with the library's statements and round trips. */
interface RawOps {
  readonly save: (threadId: string, i: number) => MaybePromise<unknown>
  readonly latest: (threadId: string) => MaybePromise<unknown>
}

const decodeLatest = (rows: ReadonlyArray<Sql>, threadId: string) => {
  const r = rows[0]
  check(r !== undefined && r[1] === threadId, "raw latest")
  return { id: r![0] as string, seq: Number(r![3]), state: JSON.parse(r![5]), metadata: JSON.parse(r![6]) }
}

// ---------------------------------------------------------------------------
// Timing

const gc = () => (globalThis as { gc?: () => void }).gc?.()

const timeRaw = async (ops: number, concurrency: number, f: (i: number, caller: number) => MaybePromise<unknown>) => {
  gc()
  let next = 0
  const start = performance.now()
  if (concurrency === 1) {
    for (let i = 0; i < ops; i++) {
      const result = f(i, 0)
      if (result instanceof Promise) await result
    }
  } else {
    await Promise.all(
      Array.from({ length: concurrency }, async (_, caller) => {
        for (let i = next++; i < ops; i = next++) await f(i, caller)
      })
    )
  }
  return performance.now() - start
}

const timeLibrary = <R>(
  ops: number,
  concurrency: number,
  f: (i: number, caller: number) => Effect.Effect<unknown, unknown, R>
) =>
  Effect.gen(function* () {
    gc()
    let next = 0
    const start = performance.now()
    yield* Effect.all(
      Array.from({ length: concurrency }, (_, caller) =>
        Effect.gen(function* () {
          for (let i = next++; i < ops; i = next++) yield* f(i, caller)
        })
      ),
      { concurrency: "unbounded", discard: true }
    )
    return performance.now() - start
  })

// ---------------------------------------------------------------------------
// Workloads

type Stores = CheckpointStore | SessionStore

interface Backend {
  readonly name: "sqlite" | "postgres"
  readonly library: ManagedRuntime.ManagedRuntime<Stores, unknown>
  readonly raw: RawOps
  /** Thread ids per caller, on each side. */
  readonly threads: { readonly library: ReadonlyArray<string>; readonly raw: ReadonlyArray<string> }
}

interface Workload {
  readonly name: "save" | "latest"
  readonly ops: (backend: Backend["name"], concurrency: number) => number
  readonly library: (threads: ReadonlyArray<string>, ops: number, c: number) => Effect.Effect<number, unknown, Stores>
  readonly raw: (raw: RawOps, threads: ReadonlyArray<string>, ops: number, c: number) => Promise<number>
}

const workloads: ReadonlyArray<Workload> = [
  {
    name: "save",
    ops: (b, c) => (b === "sqlite" ? 20_000 : c === 1 ? 1_000 : 4_000),
    library: (threads, ops, c) =>
      Effect.flatMap(CheckpointStore, (checkpoints) =>
        timeLibrary(ops, c, (i, caller) =>
          checkpoints.save({ threadId: threads[caller]!, state: stateOf(i), metadata })
        )
      ),
    raw: (raw, threads, ops, c) => timeRaw(ops, c, (i, caller) => raw.save(threads[caller]!, i))
  },
  {
    name: "latest",
    ops: (b, c) => (b === "sqlite" ? 40_000 : c === 1 ? 1_500 : 6_000),
    library: (threads, ops, c) =>
      Effect.flatMap(CheckpointStore, (checkpoints) =>
        timeLibrary(ops, c, (_, caller) =>
          Effect.tap(checkpoints.latest(threads[caller]!), (latest) => check(Option.isSome(latest), "library latest"))
        )
      ),
    raw: (raw, threads, ops, c) => timeRaw(ops, c, (_, caller) => raw.latest(threads[caller]!))
  }
]

const round = (x: number) => Math.round(x * 100) / 100

const runBackend = async (backend: Backend, reps: number): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []
  for (const workload of workloads) {
    for (const concurrency of backend.name === "sqlite" ? [1] : [1, POOL]) {
      const ops = workload.ops(backend.name, concurrency)
      const times = { library: [] as Array<number>, raw: [] as Array<number> }
      for (let rep = -1; rep < reps; rep++) {
        const sides = rep % 2 === 0 ? (["library", "raw"] as const) : (["raw", "library"] as const)
        for (const side of sides) {
          const ms =
            side === "library"
              ? await backend.library.runPromise(workload.library(backend.threads.library, ops, concurrency))
              : await workload.raw(backend.raw, backend.threads.raw, ops, concurrency)
          if (rep >= 0) times[side].push(ops / (ms / 1000))
        }
      }
      const langGraph = anchors[backend.name][workload.name]
      rows.push({
        workload: `checkpoint ${workload.name}`,
        backend: backend.name,
        concurrency,
        opsPerSec: Math.round(best(times.library)),
        baselineOpsPerSec: Math.round(best(times.raw)),
        ratio: round(best(times.library) / best(times.raw)),
        medianRatio: round(median(times.library) / median(times.raw)),
        langGraph,
        vsLangGraph: round(best(times.library) / langGraph)
      })
    }
  }
  return rows
}

/** The stores on a SQL backend, with `options`' table prefix. */
const storesOn = (options: Kit.SqlOptions): Layer.Layer<Stores, StorageError, SqlClient> =>
  Layer.merge(SqlCheckpointStore.layerWith(options), SqlSessionStore.layerWith(options))

/** One session per caller, created by the library (not timed), with a first checkpoint each. */
const seed = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const checkpoints = yield* CheckpointStore
  const threads: Array<string> = []
  for (let caller = 0; caller < POOL; caller++) {
    const session = yield* sessions.create({ title: `bench thread ${caller + 1}` })
    yield* checkpoints.save({ threadId: session.id, state: stateOf(0), metadata })
    threads.push(session.id)
  }
  return threads
})

// ---------------------------------------------------------------------------
// Backends

const texts = (prefix: string, dialect: Kit.Dialect) => {
  const s = SqlCheckpointStore.statements
  return {
    bumpHead: Kit.resolve(s.bumpHead.text, prefix, dialect),
    insertCheckpoint: Kit.resolve(s.insertCheckpoint.text, prefix, dialect),
    saveAll: Kit.resolve(s.saveAll.text, prefix, dialect),
    latest: Kit.resolve(s.latest.text, prefix, dialect)
  }
}

const sqliteRows = async (reps: number): Promise<ReadonlyArray<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "checkpoint-bench-"))
  const rawFile = join(dir, "raw.db")
  const library = ManagedRuntime.make(
    storesOn({}).pipe(Layer.provide(SqliteDatabase.layer({ filename: join(dir, "library.db") })))
  )
  let raw: Database.Database | undefined
  try {
    const rawThreads = await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(
          Layer.build(storesOn({}).pipe(Layer.provide(SqliteDatabase.layer({ filename: rawFile })))),
          (context) => Effect.provide(seed, context)
        )
      )
    )
    const libraryThreads = await library.runPromise(seed)
    const db = new Database(rawFile, { timeout: 5000 })
    raw = db
    db.pragma("journal_mode = WAL")
    db.pragma("synchronous = NORMAL")
    db.pragma("foreign_keys = ON")
    db.pragma(`cache_size = -${SqliteDatabase.pageCacheKiB}`)
    db.pragma(`mmap_size = ${SqliteDatabase.mmapBytes}`)
    const t = texts(Kit.defaultPrefix, "sqlite")
    const bump = db.prepare(t.bumpHead).raw(true)
    const insert = db.prepare(t.insertCheckpoint)
    const latest = db.prepare(t.latest).raw(true)
    const save = db.transaction((threadId: string, i: number) => {
      const now = Date.now()
      const id = uuidv7At(now)
      const [seq, parent] = bump.get(threadId, "", id) as Sql
      insert.run(id, threadId, "", seq, parent, JSON.stringify(stateOf(i)), JSON.stringify(metadata), 0, now)
      return seq
    })
    return await runBackend(
      {
        name: "sqlite",
        library,
        raw: {
          save: (threadId, i) => save.immediate(threadId, i),
          latest: (threadId) => decodeLatest(latest.all(threadId, "") as Array<Sql>, threadId)
        },
        threads: { library: libraryThreads, raw: rawThreads }
      },
      reps
    )
  } finally {
    await library.dispose()
    raw?.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const pgRows = async (reps: number): Promise<ReadonlyArray<Row> | string> => {
  const admin = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  try {
    await admin`SELECT 1`
  } catch (error) {
    await admin.end({ timeout: 1 })
    return String(error)
  }
  const stamp = `${process.pid}_${Date.now().toString(36)}`
  const libraryPrefix = `bench_cp_lib_${stamp}`
  const rawPrefix = `bench_cp_raw_${stamp}`
  const library = ManagedRuntime.make(
    storesOn({ tablePrefix: libraryPrefix }).pipe(Layer.provide(PgDatabase.layer({ url, maxConnections: POOL })))
  )
  const sql = postgres(url, { max: POOL, onnotice: () => {} })
  try {
    const rawThreads = await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(
          Layer.build(
            storesOn({ tablePrefix: rawPrefix }).pipe(Layer.provide(PgDatabase.layer({ url, maxConnections: 1 })))
          ),
          (context) => Effect.provide(seed, context)
        )
      )
    )
    const libraryThreads = await library.runPromise(seed)
    const t = texts(rawPrefix, "pg")
    const values = (text: string, params: ReadonlyArray<unknown>) =>
      sql.unsafe(text, params as Array<any>, { prepare: true }).values() as unknown as Promise<Array<Sql>>
    return await runBackend(
      {
        name: "postgres",
        library,
        raw: {
          save: (threadId, i) => {
            const now = Date.now()
            const id = uuidv7At(now)
            const state = JSON.stringify(stateOf(i))
            const params: Array<unknown> = [
              threadId,
              null,
              null,
              threadId,
              "",
              threadId,
              "",
              id,
              id,
              threadId,
              "",
              null,
              state
            ]
            params.push(JSON.stringify(metadata), 0, now, id, [], [], [])
            return values(t.saveAll, params).then((rows) => check(rows[0]?.[2] != null, "raw save"))
          },
          latest: (threadId) => values(t.latest, [threadId, ""]).then((rows) => decodeLatest(rows, threadId))
        },
        threads: { library: libraryThreads, raw: rawThreads }
      },
      reps
    )
  } finally {
    await library.dispose()
    await sql.end({ timeout: 1 })
    const tables = ["checkpoint_writes", "checkpoints", "checkpoint_heads", "checkpoints_migrations"]
    tables.push("sessions", "sessions_migrations", "counters", "kernel_migrations")
    for (const prefix of [libraryPrefix, rawPrefix]) {
      for (const table of tables) await admin.unsafe(`DROP TABLE IF EXISTS "${prefix}_${table}" CASCADE`)
    }
    await admin.end({ timeout: 1 })
  }
}

/** Runs the checkpoint rows on SQLite, then on PostgreSQL (left out with a note when the server is unreachable). */
export const runCheckpoints = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows = [...(await sqliteRows(options.reps))]
  const pg = await pgRows(options.reps)
  if (typeof pg === "string") console.log(`checkpoint postgres rows skipped: ${pg}`)
  else rows.push(...pg)
  return rows
}

/** Prints `rows` as a table. */
export const printCheckpoints = (rows: ReadonlyArray<Row>, reps: number) => {
  const header = ["workload", "backend", "callers", "ops/s library", "ops/s raw", "ratio", "median", "LangGraph", "×LG"]
  const cells = rows.map((r) => [
    r.workload,
    r.backend,
    String(r.concurrency),
    r.opsPerSec.toLocaleString("en-US"),
    r.baselineOpsPerSec.toLocaleString("en-US"),
    r.ratio.toFixed(2),
    r.medianRatio.toFixed(2),
    r.langGraph.toLocaleString("en-US"),
    r.vsLangGraph.toFixed(1)
  ])
  console.log(
    `checkpoints: best of ${reps} runs per side; raw = better-sqlite3 / postgres (porsager, pool ${POOL}) running the ` +
      "library's statements and round trips; LangGraph = the issue's anchor (SqliteSaver / PostgresSaver, not measured " +
      "here); targets >= 0.8 raw, >= 2x LangGraph"
  )
  printTable(header, cells)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 5))
  const started = performance.now()
  printCheckpoints(await runCheckpoints({ reps }), reps)
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
