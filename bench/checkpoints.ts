/**
 * The checkpoint bench (issue 10): `CheckpointStore.save` (no parent given, no
 * writes: the thread's next checkpoint) and `CheckpointStore.latest` on four
 * sides, in the same run and on the same work:
 *
 * - the library;
 * - the raw driver running the library's own statement texts
 *   (`SqlCheckpointStore.statements`, resolved with `Kit.resolve`) with the
 *   same round trips: on SQLite raw better-sqlite3 on a connection opened by
 *   the library's layer (so with its pragmas), the head bump and the insert
 *   in one immediate transaction; on PostgreSQL raw `postgres`, pool 16, one
 *   statement per save, one per latest;
 * - the floor: the raw side's calls in the library's loop of fibers
 *   (`timeFloor`, on the raw side's threads), what any Effect program pays
 *   for the same work;
 * - the library's own LangGraph checkpointer (`LangGraphSaver` from
 *   `effect-agent-stores/langgraph`, over the library's stores on their own
 *   file or tables) doing LangGraph's work below: what a LangGraph app gets;
 * - LangGraph's checkpointers: `SqliteSaver.fromConnString` (which sets WAL
 *   itself and is left at better-sqlite3's WAL default, synchronous NORMAL:
 *   the library's settings) and `PostgresSaver` on a pg `Pool` of 16 (what
 *   `fromConnString` builds, with `max` set: it would be pg's default 10) on
 *   its own schema. A save continues the caller's thread as a graph step
 *   does: `put` of a new checkpoint (`uuid6` id, the library row's state as
 *   channel values) with the previous one as parent; latest is `getTuple`.
 *
 * SQLite at 1 caller, every side on its own temp file (WAL), then every side
 * on `:memory:`; PostgreSQL at 1 and 16 callers, every side on its own tables
 * or schema, dropped at the end, and ANALYZEd before each workload (as
 * autovacuum would: without statistics PostgresSaver's latest plans a hash of
 * the thread's every blob). Each caller works on its own thread (session),
 * seeded untimed. The sides alternate within each repetition.
 *
 * The issue's anchor (LangGraph measured elsewhere on this machine kind,
 * SqliteSaver evidently on `:memory:`): SqliteSaver ≈ 12.6k saves/s and 26.8k
 * latest/s; PostgresSaver ≈ 735 saves/s and 1,121 latest/s. It is printed and
 * kept in the rows; the ×LangGraph columns are against the measurement.
 * Target: ≥ 2× LangGraph and ≥ 0.8× raw.
 *
 * Run alone: `node --expose-gc --import tsx bench/checkpoints.ts` (`BENCH_REPS`,
 * default 5; `DATABASE_URL`, default the local server).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type { RunnableConfig } from "@langchain/core/runnables"
import { type BaseCheckpointSaver, type Checkpoint, emptyCheckpoint, uuid6 } from "@langchain/langgraph-checkpoint"
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres"
import { SqliteSaver } from "@langchain/langgraph-checkpoint-sqlite"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { LangGraphSaver } from "../adapters/langgraph/LangGraphSaver.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
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
import { openAdmin, runStamp } from "./admin.ts"
import {
  type FloorRow,
  type MaybePromise,
  POOL,
  openPool,
  timeFloor,
  timeLibrary,
  timeRaw,
  url,
  floorFigures,
  opsFigures,
  round2,
  withOpenPool
} from "./timing.ts"

/** One row of the checkpoint table: the library, the raw driver, the floor (see `timeFloor`) and LangGraph. */
export interface Row extends FloorRow {
  /** SQLite rows: every side on its own temp file, or on `:memory:`. */
  readonly filename?: SqliteFile
  /** LangGraph's checkpointer on the same work in the same run: best ops/s. */
  readonly langGraph: number
  /** Best library ops/s over best LangGraph ops/s. */
  readonly vsLangGraph: number
  /** Median library ops/s over median LangGraph ops/s. */
  readonly medianVsLangGraph: number
  /** The figure for LangGraph on this machine kind (measured elsewhere), for reference. */
  readonly langGraphAnchor: number
  /** `LangGraphSaver` doing LangGraph's side's work (put, getTuple) on the library's stores: best ops/s. */
  readonly saver: number
  /** Best `LangGraphSaver` ops/s over best LangGraph ops/s. */
  readonly saverVsLangGraph: number
  /** Median `LangGraphSaver` ops/s over median LangGraph ops/s. */
  readonly medianSaverVsLangGraph: number
}

type SqliteFile = "temp file" | ":memory:"

type PgPool = ConstructorParameters<typeof PostgresSaver>[0]
/** node-postgres's pool (the package ships no types), for `PostgresSaver`. */
const { Pool } = createRequire(import.meta.url)("pg") as {
  readonly Pool: new (config: { connectionString: string; max: number }) => PgPool
}
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

/** LangGraph's side: save (the caller's thread's next checkpoint) and latest, one thread per caller. */
interface LangGraphOps {
  readonly save: (caller: number, i: number) => Promise<unknown>
  readonly latest: (caller: number) => Promise<unknown>
}

/**
 * LangGraph's side on `saver`, its threads seeded (not timed) with a first checkpoint holding every channel. A save
 * is a graph step's `put`: a new checkpoint carrying `stateOf(i)` as channel values, with the previous one as parent;
 * the channels whose values changed (messages, step) at a new version, `plan` still at its first (PostgresSaver
 * writes a blob per new version; SqliteSaver the whole checkpoint).
 */
const langGraphOn = async (saver: BaseCheckpointSaver): Promise<LangGraphOps> => {
  const threads: Array<{ config: RunnableConfig; version: number }> = []
  const save = async (caller: number, i: number) => {
    const thread = threads[caller]!
    const version = ++thread.version
    const changed = { messages: version, step: version }
    const checkpoint: Checkpoint = {
      ...emptyCheckpoint(),
      id: uuid6(i),
      channel_values: stateOf(i),
      channel_versions: { ...changed, plan: 1 }
    }
    const newVersions = version === 1 ? checkpoint.channel_versions : changed
    thread.config = await saver.put(thread.config, checkpoint, { source: "loop", step: i, parents: {} }, newVersions)
  }
  const threadId = (caller: number) => `bench thread ${caller + 1}`
  for (let caller = 0; caller < POOL; caller++) {
    threads.push({ config: { configurable: { thread_id: threadId(caller), checkpoint_ns: "" } }, version: 0 })
    await save(caller, 0)
  }
  return {
    save,
    latest: (caller) =>
      saver.getTuple({ configurable: { thread_id: threadId(caller), checkpoint_ns: "" } }).then((tuple) => {
        check(tuple?.config.configurable?.["thread_id"] === threadId(caller), "LangGraph latest")
        check(tuple!.checkpoint.channel_values["plan"] !== undefined, "LangGraph latest: the whole state")
      })
  }
}

// ---------------------------------------------------------------------------
// Timing

// ---------------------------------------------------------------------------
// Workloads

type Stores = CheckpointStore | SessionStore

interface Backend {
  readonly name: "sqlite" | "postgres"
  readonly filename?: SqliteFile
  readonly library: ManagedRuntime.ManagedRuntime<Stores, unknown>
  readonly raw: RawOps
  readonly langGraph: LangGraphOps
  /** `LangGraphSaver` doing the same, on the library's stores of its own. */
  readonly saver: LangGraphOps
  /** Brings the planner's statistics of every side's tables up to date, before each workload. */
  readonly analyze?: () => Promise<unknown>
  /** Thread ids per caller, on each side. */
  readonly threads: { readonly library: ReadonlyArray<string>; readonly raw: ReadonlyArray<string> }
}

interface Workload {
  readonly name: "save" | "latest"
  readonly ops: (backend: Backend["name"], concurrency: number) => number
  readonly library: (threads: ReadonlyArray<string>, ops: number, c: number) => Effect.Effect<number, unknown, Stores>
  /** The raw side's call `i` by `caller` (timed by `timeRaw`, and by `timeFloor` for the floor). */
  readonly raw: (raw: RawOps, threads: ReadonlyArray<string>) => (i: number, caller: number) => MaybePromise<unknown>
  readonly langGraph: (langGraph: LangGraphOps, ops: number, c: number) => Promise<number>
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
    raw: (raw, threads) => (i, caller) => raw.save(threads[caller]!, i),
    langGraph: (langGraph, ops, c) => timeRaw(ops, c, (i, caller) => langGraph.save(caller, i))
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
    raw: (raw, threads) => (_, caller) => raw.latest(threads[caller]!),
    langGraph: (langGraph, ops, c) => timeRaw(ops, c, (_, caller) => langGraph.latest(caller))
  }
]

const sides = ["library", "raw", "floor", "langGraph", "saver"] as const

const runBackend = async (backend: Backend, reps: number): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []
  for (const workload of workloads) {
    for (const concurrency of backend.name === "sqlite" ? [1] : [1, POOL]) {
      const ops = workload.ops(backend.name, concurrency)
      await backend.analyze?.()
      // The floor runs the raw side's calls, on its threads.
      const rawCall = workload.raw(backend.raw, backend.threads.raw)
      const time = (side: (typeof sides)[number]) =>
        side === "library"
          ? backend.library.runPromise(workload.library(backend.threads.library, ops, concurrency))
          : side === "raw"
            ? timeRaw(ops, concurrency, rawCall)
            : side === "floor"
              ? backend.library.runPromise(timeFloor(ops, concurrency, rawCall))
              : workload.langGraph(side === "saver" ? backend.saver : backend.langGraph, ops, concurrency)
      const times = {
        library: [] as Array<number>,
        raw: [] as Array<number>,
        floor: [] as Array<number>,
        langGraph: [] as Array<number>,
        saver: [] as Array<number>
      }
      // A warm-up, then each repetition starts with the next side: none always runs first, or last.
      for (let rep = -1; rep < reps; rep++) {
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(rep + 1 + k) % sides.length]!
          const ms = await time(side)
          if (rep >= 0) times[side].push(ops / (ms / 1000))
        }
      }
      rows.push({
        workload: `checkpoint ${workload.name}`,
        backend: backend.name,
        ...(backend.filename === undefined ? {} : { filename: backend.filename }),
        concurrency,
        ...opsFigures(times.library, times.raw),
        ...floorFigures(times.floor, times.raw),
        langGraph: Math.round(best(times.langGraph)),
        vsLangGraph: round2(best(times.library) / best(times.langGraph)),
        medianVsLangGraph: round2(median(times.library) / median(times.langGraph)),
        langGraphAnchor: anchors[backend.name][workload.name],
        saver: Math.round(best(times.saver)),
        saverVsLangGraph: round2(best(times.saver) / best(times.langGraph)),
        medianSaverVsLangGraph: round2(median(times.saver) / median(times.langGraph))
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

/** The SQLite rows, every side on its own temp file (WAL, synchronous NORMAL) or on its own `:memory:` database. */
const sqliteRows = async (reps: number, filename: SqliteFile): Promise<ReadonlyArray<Row>> => {
  const dir = filename === "temp file" ? mkdtempSync(join(tmpdir(), "checkpoint-bench-")) : undefined
  const file = (side: string) => (dir === undefined ? ":memory:" : join(dir, `${side}.db`))
  const library = ManagedRuntime.make(
    storesOn({}).pipe(Layer.provide(SqliteDatabase.layer({ filename: file("library") })))
  )
  // The raw side's connection is opened (and its schema created, its threads seeded) by the library's layer.
  const rawSide = ManagedRuntime.make(
    storesOn({}).pipe(Layer.provideMerge(SqliteDatabase.layer({ filename: file("raw") })))
  )
  const saver = SqliteSaver.fromConnString(file("langgraph"))
  const saverRuntime = ManagedRuntime.make(
    storesOn({}).pipe(Layer.provide(SqliteDatabase.layer({ filename: file("saver") })))
  )
  try {
    const rawThreads = await rawSide.runPromise(seed)
    const libraryThreads = await library.runPromise(seed)
    const langGraph = await langGraphOn(saver)
    const ours = await langGraphOn(new LangGraphSaver(saverRuntime))
    if (dir !== undefined) {
      const mode = [saver.db.pragma("journal_mode", { simple: true }), saver.db.pragma("synchronous", { simple: true })]
      check(mode[0] === "wal" && mode[1] === 1, `SqliteSaver on WAL + synchronous NORMAL (got ${mode.join(", ")})`)
    }
    const { db } = await rawSide.runPromise(SqliteDatabase.SqliteDatabase)
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
        filename,
        library,
        raw: {
          save: (threadId, i) => save.immediate(threadId, i),
          latest: (threadId) => decodeLatest(latest.all(threadId, "") as Array<Sql>, threadId)
        },
        langGraph,
        saver: ours,
        threads: { library: libraryThreads, raw: rawThreads }
      },
      reps
    )
  } finally {
    await library.dispose()
    await rawSide.dispose()
    await saverRuntime.dispose()
    saver.db.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  }
}

const pgRows = async (reps: number): Promise<ReadonlyArray<Row> | string> => {
  const admin = await openAdmin(url)
  if (typeof admin === "string") return admin
  const stamp = runStamp()
  const libraryPrefix = `bench_cp_lib_${stamp}`
  const rawPrefix = `bench_cp_raw_${stamp}`
  const saverPrefix = `bench_cp_sv_${stamp}`
  const langGraphSchema = `bench_cp_lg_${stamp}`
  const checkpointTables = ["checkpoint_writes", "checkpoints", "checkpoint_heads"]
  const tables = [...checkpointTables, "checkpoints_migrations", "sessions", "sessions_migrations", "counters"]
  tables.push("kernel_migrations")
  const sideTables = (names: ReadonlyArray<string>) =>
    [libraryPrefix, rawPrefix, saverPrefix].flatMap((prefix) => names.map((table) => `"${prefix}_${table}"`))
  const langGraphTables = ["checkpoints", "checkpoint_blobs", "checkpoint_writes"].map(
    (table) => `"${langGraphSchema}".${table}`
  )
  const library = ManagedRuntime.make(
    storesOn({ tablePrefix: libraryPrefix }).pipe(
      Layer.provide(withOpenPool(PgDatabase.layer({ url, maxConnections: POOL })))
    )
  )
  const saverRuntime = ManagedRuntime.make(
    storesOn({ tablePrefix: saverPrefix }).pipe(
      Layer.provide(withOpenPool(PgDatabase.layer({ url, maxConnections: POOL })))
    )
  )
  const sql = postgres(url, { max: POOL, onnotice: () => {} })
  const saver = new PostgresSaver(new Pool({ connectionString: url, max: POOL }), undefined, {
    schema: langGraphSchema
  })
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
    await openPool(sql)
    await saver.setup()
    const langGraph = await langGraphOn(saver)
    const ours = await langGraphOn(new LangGraphSaver(saverRuntime))
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
        langGraph,
        saver: ours,
        // As a running server's autovacuum keeps them: on fresh tables with none, PostgresSaver's latest hashes
        // every blob of the thread (a third of the speed once the saves have run).
        analyze: () => admin.unsafe(`ANALYZE ${[...sideTables(checkpointTables), ...langGraphTables].join(", ")}`),
        threads: { library: libraryThreads, raw: rawThreads }
      },
      reps
    )
  } finally {
    await library.dispose()
    await saverRuntime.dispose()
    await sql.end({ timeout: 1 })
    await saver.end()
    await admin.unsafe(`DROP SCHEMA IF EXISTS "${langGraphSchema}" CASCADE`)
    for (const table of sideTables(tables)) await admin.unsafe(`DROP TABLE IF EXISTS ${table} CASCADE`)
    await admin.end({ timeout: 1 })
  }
}

/**
 * Runs the checkpoint rows on SQLite (temp files, then `:memory:`), then on PostgreSQL (left out with a note when the
 * server is unreachable).
 */
export const runCheckpoints = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows = [...(await sqliteRows(options.reps, "temp file")), ...(await sqliteRows(options.reps, ":memory:"))]
  const pg = await pgRows(options.reps)
  if (typeof pg === "string") console.log(`checkpoint postgres rows skipped: ${pg}`)
  else rows.push(...pg)
  return rows
}

/** Prints `rows` as a table, with the LangGraph anchor under it. */
export const printCheckpoints = (rows: ReadonlyArray<Row>, reps: number) => {
  const header = [
    "workload",
    "backend",
    "callers",
    "ops/s library",
    "ops/s raw",
    "×raw",
    "×raw median",
    "×raw floor",
    "ops/s LangGraph",
    "×LG",
    "×LG median",
    "ops/s saver",
    "saver ×LG",
    "saver ×LG median"
  ]
  const count = (n: number) => n.toLocaleString("en-US")
  const cells = rows.map((r) => [
    r.workload,
    r.filename === undefined ? r.backend : `${r.backend} ${r.filename}`,
    String(r.concurrency),
    count(r.opsPerSec),
    count(r.baselineOpsPerSec),
    r.ratio.toFixed(2),
    r.medianRatio.toFixed(2),
    r.floorRatio.toFixed(2),
    count(r.langGraph),
    r.vsLangGraph.toFixed(2),
    r.medianVsLangGraph.toFixed(2),
    count(r.saver),
    r.saverVsLangGraph.toFixed(2),
    r.medianSaverVsLangGraph.toFixed(2)
  ])
  console.log(
    `checkpoints: best of ${reps} runs per side (sides alternating); raw = better-sqlite3 / postgres (porsager, pool ` +
      `${POOL}) running the library's statements and round trips; LangGraph = SqliteSaver.fromConnString (WAL, ` +
      `synchronous NORMAL on a file) / PostgresSaver (pg Pool of ${POOL}, own schema), measured in this run: put ` +
      "continuing the thread, getTuple; saver = LangGraphSaver (effect-agent-stores/langgraph) doing the same put and " +
      "getTuple on the library's stores; floor = the raw calls in the library's loop of fibers (×raw floor: the most " +
      "×raw can reach); targets >= 0.8x raw, >= 2x LangGraph"
  )
  printTable(header, cells)
  console.log(
    `LangGraph anchor (the issue's, measured elsewhere; SqliteSaver evidently on :memory:): SqliteSaver ` +
      `${count(anchors.sqlite.save)} saves/s, ${count(anchors.sqlite.latest)} latest/s; PostgresSaver ` +
      `${count(anchors.postgres.save)} saves/s, ${count(anchors.postgres.latest)} latest/s`
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 5))
  const started = performance.now()
  printCheckpoints(await runCheckpoints({ reps }), reps)
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
