/**
 * The agent-work bench (issue 9): `TaskStore.claimNext` + `updateStatus` by 4
 * concurrent claimers, `AgentStateStore.save` + `get`, and
 * `TemplateStore.render` from the store, each through the library and through
 * the raw driver running the library's own statement texts (taken from the
 * stores' kit operations and resolved with `Kit.resolve`) with the same round
 * trips: on SQLite (`StoresSqlite` against raw better-sqlite3, each on its own
 * temp file with the library's schema and pragmas) and on PostgreSQL
 * (`StoresPg` against the raw `postgres` driver, pool 16 on both sides, each
 * on its own tables, dropped at the end). Claims run at 4 callers; the other
 * workloads at 1 caller on SQLite and at 1 and 16 on PostgreSQL.
 *
 * A third side, the floor, runs the raw side's calls in the library's loop of
 * fibers (`timeFloor`): what any Effect program pays for the same work.
 * `runAgentWork({ reps })` runs the sides `reps` times per row after a warm-up
 * run of each, each repetition starting with the next side, and reports the
 * best ops/s of each side, their ratios to raw and the ratio of the medians. Before each claim run both sides reload the
 * same tasks (not timed). Run alone:
 * `node --expose-gc --import tsx bench/agentWork.ts` (`BENCH_REPS`, default 5;
 * `DATABASE_URL`, default the local server; `BENCH_ONLY=<text>` runs only the
 * rows whose "backend workload" contains the text, e.g. `sqlite claimNext`).
 *
 * Round trips per operation, both sides: claim + complete three (the claim
 * statement, then `updateStatus`'s read and compare-and-set write); state
 * save + get three (save's read and write, then the get); render one.
 */
import Database from "better-sqlite3"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { tablesOf } from "../layers/Registry.ts"
import * as Kit from "../layers/sql/Kit.ts"
import { templateOps } from "../layers/sql/SqlPlanStore.ts"
import { stateOps, taskOps } from "../layers/sql/SqlTaskStore.ts"
import { mmapBytes, pageCacheKiB, SqliteDatabase } from "../layers/sql/SqliteDatabase.ts"
import { type Stores, StoresPg, StoresSqlite } from "../layers/Stores.ts"
import { TemplateStore } from "../src/Plan.ts"
import { AgentStateStore, TaskStore, type TaskRow } from "../src/Task.ts"
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
  printOpsTable,
  then,
  withOpenPool
} from "./timing.ts"

/** One row of the agent-work table: the library, the raw driver and the floor (see `timeFloor`). */
export type Row = FloorRow

const CLAIMERS = 4
/** Completed tasks every pending task depends on (two each). */
const DONE = 50
const TEMPLATE = "weekly-report"
/** Runs only the rows whose "backend workload" contains this text (`BENCH_ONLY`, for profiling one row). */
const only = process.env["BENCH_ONLY"] ?? ""

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`bench sanity check failed: ${what}`)
}

// ---------------------------------------------------------------------------
// Fixtures: the same data on both sides

const context = (i: number) => ({
  step: i,
  plan: ["search the tickets", "summarise the blockers", "draft the reply"],
  notes: "Two tickets are blocked on the database migration; the third waits for a customer answer.",
  scratch: { model: "gpt-4o-mini", inputTokens: 1234 + (i % 100), outputTokens: 321 }
})

const templateContent = `Hello {{ name }},

Here is the weekly report for {{team}} ({{week}}). {{done}} tasks were completed and {{open}} are still open;
the oldest open task is "{{oldest}}", waiting for {{waiting}} days. The next review is on {{review}} with {{owner}}.
Literal braces stay as they are: \\{{not a placeholder}}.

Thanks,
{{owner}}`
const vars = {
  name: "Ana",
  team: "Support tools",
  week: "2024-W19",
  done: 42,
  open: 7,
  oldest: "Migrate the ticket index to the new schema",
  waiting: 12,
  review: "Friday",
  owner: "Marco"
}

/** Deletes every task and loads `DONE` completed tasks and `pending` pending ones, each depending on two done ones. */
const loadTasks = (pending: number, dialect: Kit.Dialect): ReadonlyArray<string> => {
  const columns = `id, conversation_id, plan_id, description, status, parent_id, priority, assigned_to, iterations,
    summary, metadata, created_at, updated_at, started_at, completed_at, version`
  const series = (n: number) => `WITH RECURSIVE g (x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ${n})`
  return [
    ...(dialect === "pg"
      ? ["TRUNCATE {tasks}, {task_dependencies}"]
      : ["DELETE FROM {task_dependencies}", "DELETE FROM {tasks}"]),
    `${series(DONE)} INSERT INTO {tasks} (${columns})
      SELECT 'done-' || x, 'conversation-1', 'plan-1', '"Collect the open tickets"', 'completed', NULL, 1, 'agent-0', 1,
        NULL, '{}', 1700000000000 + x, 1700000000000 + x, 1700000000000 + x, 1700000000000 + x, 3 FROM g`,
    `${series(pending)} INSERT INTO {tasks} (${columns})
      SELECT 'task-' || x, 'conversation-1', 'plan-1', '"Summarise ticket #' || x || ' for the weekly report"',
        'pending', NULL, x % 4, NULL, 0, NULL, '{"source":"bench","labels":["support","weekly"]}',
        1700000001000 + x, 1700000001000 + x, NULL, NULL, 1 FROM g`,
    `${series(pending)} INSERT INTO {task_dependencies} (task_id, position, depends_on)
      SELECT 'task-' || x, 0, 'done-' || (x % ${DONE} + 1) FROM g
      UNION ALL SELECT 'task-' || x, 1, 'done-' || ((x + 7) % ${DONE} + 1) FROM g`,
    ...(dialect === "pg" ? ["ANALYZE {tasks}, {task_dependencies}"] : [])
  ]
}

// ---------------------------------------------------------------------------
// The statement texts, taken from the stores' own kit operations

const stateRow = (version: number) => ({
  agentId: "a",
  taskId: null,
  conversationId: null,
  status: "s",
  iteration: 0,
  context: "{}",
  createdAt: 0,
  updatedAt: 0,
  version
})
const sampleTask: TaskRow = {
  id: "t",
  conversationId: "c",
  planId: null,
  description: "",
  status: "pending",
  parentId: null,
  dependsOn: [],
  priority: 1,
  assignedTo: null,
  iterations: 0,
  summary: null,
  metadata: "{}",
  createdAt: 0,
  updatedAt: 0,
  startedAt: null,
  completedAt: null,
  version: 2
}
const callText = (program: Kit.Program<unknown>, prefix: string, dialect: Kit.Dialect) => {
  if (!(program instanceof Kit.Call)) throw new Error("a one-statement operation was expected")
  return Kit.resolve(program.stmt.text, prefix, dialect)
}
const textsOf = (prefix: string, dialect: Kit.Dialect) => ({
  /** agentId, startedAt, now, now → the task's columns and its dependencies as JSON. */
  claim: callText(taskOps.claim.run("a", undefined, undefined, 0), prefix, dialect),
  /** id → the task's columns. */
  getTask: callText(taskOps.get.run("t"), prefix, dialect),
  /** every field but id and createdAt, then id and the expected version → the task's columns. */
  updateTask: callText(taskOps.update.run(sampleTask), prefix, dialect),
  /** agentId → the state's columns. */
  getState: callText(stateOps.get.run("a"), prefix, dialect),
  /** every column → the state's columns. */
  insertState: callText(stateOps.write.run(stateRow(1)), prefix, dialect),
  /** taskId, conversationId, status, iteration, context, updatedAt, version, agentId, expected version → columns. */
  updateState: callText(stateOps.write.run(stateRow(2)), prefix, dialect),
  /** id, name, id → the template's current row. */
  resolveTemplate: callText(templateOps.resolve.run("k"), prefix, dialect),
  load: (pending: number) => loadTasks(pending, dialect).map((text) => Kit.resolve(text, prefix, dialect))
})

// ---------------------------------------------------------------------------
// The raw side: hand-written code on the driver, synchronous on SQLite

type Sql = ReadonlyArray<any>

/** One statement, its first row (or `undefined`). */
type One = (text: string, params: ReadonlyArray<unknown>) => MaybePromise<Sql | undefined>

const taskOf = (r: Sql) => ({
  id: r[0] as string,
  conversationId: r[1] as string,
  planId: r[2] as string | null,
  description: JSON.parse(r[3]) as string,
  status: r[4] as string,
  parentId: r[5] as string | null,
  priority: Number(r[6]),
  assignedTo: r[7] as string | null,
  iterations: Number(r[8]),
  summary: r[9] === null ? null : (JSON.parse(r[9]) as string),
  metadata: JSON.parse(r[10]) as unknown,
  createdAt: Number(r[11]),
  updatedAt: Number(r[12]),
  startedAt: r[13] === null ? null : Number(r[13]),
  completedAt: r[14] === null ? null : Number(r[14]),
  version: Number(r[15]),
  dependsOn: JSON.parse(r[16]) as ReadonlyArray<string>
})

const stateOf = (r: Sql) => ({
  agentId: r[0] as string,
  taskId: r[1] as string | null,
  conversationId: r[2] as string | null,
  status: r[3] as string,
  iteration: Number(r[4]),
  context: JSON.parse(r[5]) as unknown,
  createdAt: Number(r[6]),
  updatedAt: Number(r[7]),
  version: Number(r[8])
})

const placeholder = /\\\{\{|\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}/g
const fill = (content: string, values: Readonly<Record<string, string | number>>) => {
  const missing: Array<string> = []
  const text = content.replace(placeholder, (match, name: string | undefined) => {
    if (name === undefined) return "{{"
    if (Object.hasOwn(values, name)) return String(values[name])
    missing.push(name)
    return match
  })
  if (missing.length > 0) throw new Error(`missing ${missing.join(", ")}`)
  return text
}

/** The raw side's operations over `one`, with the library's statements and round trips. */
const rawOps = (one: One, texts: ReturnType<typeof textsOf>) => ({
  /** Claims the next ready task for `agentId` and marks it completed (claim, read, compare-and-set write). */
  claimAndComplete: (agentId: string) => {
    const claimedAt = Date.now()
    return then(one(texts.claim, [agentId, claimedAt, claimedAt, claimedAt]), (claimed) => {
      check(claimed !== undefined && taskOf(claimed).assignedTo === agentId, "raw claim")
      return then(one(texts.getTask, [claimed![0]]), (r) => {
        const now = Date.now()
        // conversation, plan, description, status, priority, assignee, iterations, summary, metadata, updated,
        // started, completed, version; then id and the expected version.
        const params = [r![1], r![2], r![3], "completed", r![6], r![7], r![8], r![9], r![10]]
        params.push(Math.max(now, Number(r![12])), r![13], now, Number(r![15]) + 1, r![0], r![15])
        return then(one(texts.updateTask, params), (updated) => {
          check(updated !== undefined && taskOf(updated).status === "completed", "raw complete")
        })
      })
    })
  },
  /** Saves the state of `agentId` (read, then insert or compare-and-set update) and reads it back. */
  saveAndGet: (agentId: string, iteration: number) => {
    const text = JSON.stringify(context(iteration))
    return then(one(texts.getState, [agentId]), (current) => {
      const now = Date.now()
      const write =
        current === undefined
          ? one(texts.insertState, [agentId, null, "conversation-1", "working", iteration, text, now, now, 1])
          : one(texts.updateState, [
              "task-1",
              "conversation-1",
              "working",
              iteration,
              text,
              Math.max(now, Number(current[7])),
              Number(current[8]) + 1,
              agentId,
              current[8]
            ])
      return then(write, (written) => {
        check(written !== undefined && stateOf(written).iteration === iteration, "raw state write")
        return then(one(texts.getState, [agentId]), (r) => {
          check(r !== undefined && stateOf(r).iteration === iteration, "raw state read")
        })
      })
    })
  },
  /** Renders the template named `key` from its stored content. */
  render: (key: string) =>
    then(one(texts.resolveTemplate, [key, key, key]), (r) => {
      check(r !== undefined, "raw template")
      return fill(JSON.parse(r![3]) as string, vars)
    })
})
type RawOps = ReturnType<typeof rawOps>

// ---------------------------------------------------------------------------
// Timing

/** Runs `ops` operations over `concurrency` callers (the `i`-th by `f(i, caller)`); returns the milliseconds. */
// ---------------------------------------------------------------------------
// Workloads

/** A backend's two sides, ready to run. */
interface Backend {
  readonly name: "sqlite" | "postgres"
  readonly library: ManagedRuntime.ManagedRuntime<Stores, unknown>
  readonly raw: RawOps
  /** Reloads the tasks of both sides (not timed). */
  readonly reloadTasks: (side: "library" | "raw", pending: number) => Promise<void>
}

interface Workload {
  readonly name: string
  readonly concurrency: ReadonlyArray<number>
  /** Operations per timed run. */
  readonly ops: (backend: Backend["name"], concurrency: number) => number
  /** Untimed preparation before each run of a side. */
  readonly before?: (backend: Backend, side: "library" | "raw", ops: number) => Promise<void>
  readonly library: (ops: number, concurrency: number) => Effect.Effect<number, unknown, Stores>
  /** The raw side's call `i` by `caller` (timed by `timeRaw`, and by `timeFloor` for the floor). */
  readonly raw: (raw: RawOps) => (i: number, caller: number) => MaybePromise<unknown>
}

const agentOf = (caller: number) => `bench-agent-${caller + 1}`

const workloadsOf = (backend: Backend["name"]): ReadonlyArray<Workload> => [
  {
    name: `claimNext + complete (${CLAIMERS} claimers)`,
    concurrency: [CLAIMERS],
    ops: (b) => (b === "sqlite" ? 6_000 : 1_000),
    before: (b, side, ops) => b.reloadTasks(side, ops),
    library: (ops, c) =>
      Effect.flatMap(TaskStore, (tasks) =>
        timeLibrary(ops, c, (_, caller) =>
          Effect.flatMap(tasks.claimNext({ agentId: agentOf(caller) }), (claimed) => {
            check(Option.isSome(claimed) && claimed.value.assignedTo === agentOf(caller), "library claim")
            return Effect.tap(tasks.updateStatus(Option.getOrThrow(claimed).id, "completed"), (task) =>
              check(task.status === "completed", "library complete")
            )
          })
        )
      ),
    raw: (raw) => (_, caller) => raw.claimAndComplete(agentOf(caller))
  },
  {
    name: "agent state save + get",
    concurrency: backend === "sqlite" ? [1] : [1, POOL],
    ops: (b, c) => (b === "sqlite" ? 10_000 : c === 1 ? 1_000 : 1_500),
    library: (ops, c) =>
      Effect.flatMap(AgentStateStore, (states) =>
        timeLibrary(ops, c, (i, caller) =>
          Effect.zipRight(
            states.save({
              agentId: agentOf(caller),
              taskId: "task-1",
              conversationId: "conversation-1",
              status: "working",
              iteration: i,
              context: context(i)
            }),
            Effect.tap(states.get(agentOf(caller)), (state) => check(state.iteration === i, "library state read"))
          )
        )
      ),
    raw: (raw) => (i, caller) => raw.saveAndGet(agentOf(caller), i)
  },
  {
    name: "template render",
    concurrency: backend === "sqlite" ? [1] : [1, POOL],
    ops: (b, c) => (b === "sqlite" ? 20_000 : c === 1 ? 1_500 : 6_000),
    library: (ops, c) =>
      Effect.flatMap(TemplateStore, (templates) =>
        timeLibrary(ops, c, () =>
          Effect.tap(templates.render(TEMPLATE, vars), (text) => check(text.startsWith("Hello Ana"), "library render"))
        )
      ),
    raw: (raw) => () => then(raw.render(TEMPLATE), (text) => check(text.startsWith("Hello Ana"), "raw render"))
  }
]

/** The template and the agents' states, saved by the library on a side's tables (not timed). */
const seed = Effect.gen(function* () {
  const templates = yield* TemplateStore
  yield* templates.save({ name: TEMPLATE, description: "Weekly status mail", content: templateContent })
  const states = yield* AgentStateStore
  for (let caller = 0; caller < POOL; caller++) {
    yield* states.save({ agentId: agentOf(caller), status: "idle", context: context(0) })
  }
})

const sides = ["library", "raw", "floor"] as const

/**
 * Every workload of `backend` at each of its concurrencies: a warm-up run of each side, then `reps` repetitions, each
 * starting with the next side.
 */
const runBackend = async (backend: Backend, reps: number): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []
  for (const workload of workloadsOf(backend.name)) {
    if (!`${backend.name} ${workload.name}`.includes(only)) continue
    for (const concurrency of workload.concurrency) {
      const ops = workload.ops(backend.name, concurrency)
      const times = { library: [] as Array<number>, raw: [] as Array<number>, floor: [] as Array<number> }
      const rawCall = workload.raw(backend.raw)
      for (let rep = -1; rep < reps; rep++) {
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(rep + 1 + k) % sides.length]!
          // The floor runs the raw side's calls, on its tables.
          await workload.before?.(backend, side === "library" ? "library" : "raw", ops)
          const ms =
            side === "library"
              ? await backend.library.runPromise(workload.library(ops, concurrency))
              : side === "raw"
                ? await timeRaw(ops, concurrency, rawCall)
                : await backend.library.runPromise(timeFloor(ops, concurrency, rawCall))
          if (rep >= 0) times[side].push(ops / (ms / 1000))
        }
      }
      rows.push({
        workload: workload.name,
        backend: backend.name,
        concurrency,
        ...opsFigures(times.library, times.raw),
        ...floorFigures(times.floor, times.raw)
      })
    }
  }
  return rows
}

// ---------------------------------------------------------------------------
// Backends

const sqliteRows = async (reps: number): Promise<ReadonlyArray<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "agent-work-bench-"))
  const rawFile = join(dir, "raw.db")
  const library = ManagedRuntime.make(StoresSqlite({ filename: join(dir, "library.db") }))
  let raw: Database.Database | undefined
  try {
    // The raw side's file: the library's migrations and seed, then closed.
    await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(Layer.build(StoresSqlite({ filename: rawFile })), (context) => Effect.provide(seed, context))
      )
    )
    await library.runPromise(seed)
    const { db: libraryDb } = await library.runPromise(SqliteDatabase)
    const db = new Database(rawFile, { timeout: 5000 })
    raw = db
    db.pragma("journal_mode = WAL")
    db.pragma("synchronous = NORMAL")
    db.pragma("foreign_keys = ON")
    db.pragma(`cache_size = -${pageCacheKiB}`)
    db.pragma(`mmap_size = ${mmapBytes}`)
    const texts = textsOf(Kit.defaultPrefix, "sqlite")
    const prepared = new Map<string, Database.Statement>()
    const one: One = (text, params) => {
      let statement = prepared.get(text)
      if (statement === undefined) {
        statement = db.prepare(text)
        statement.raw(true)
        prepared.set(text, statement)
      }
      return (statement.readonly ? statement.get(params) : statement.all(params)[0]) as Sql | undefined
    }
    return await runBackend(
      {
        name: "sqlite",
        library,
        raw: rawOps(one, texts),
        reloadTasks: async (side, pending) => {
          const target = side === "library" ? libraryDb : db
          target.transaction(() => {
            for (const text of texts.load(pending)) target.prepare(text).run()
          })()
          target.pragma("wal_checkpoint(TRUNCATE)")
        }
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
  const admin = await openAdmin(url)
  if (typeof admin === "string") return admin
  const stamp = runStamp()
  const libraryPrefix = `bench_work_lib_${stamp}`
  const rawPrefix = `bench_work_raw_${stamp}`
  const library = ManagedRuntime.make(withOpenPool(StoresPg({ url, tablePrefix: libraryPrefix, maxConnections: POOL })))
  const sql = postgres(url, { max: POOL, onnotice: () => {} })
  try {
    // The raw side's tables: the library's migrations and seed.
    await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(Layer.build(StoresPg({ url, tablePrefix: rawPrefix, maxConnections: 1 })), (context) =>
          Effect.provide(seed, context)
        )
      )
    )
    await library.runPromise(seed)
    await openPool(sql)
    const rawTexts = textsOf(rawPrefix, "pg")
    const one: One = (text, params) =>
      (sql.unsafe(text, params as Array<any>, { prepare: true }).values() as unknown as Promise<Array<Sql>>).then(
        (rows) => rows[0]
      )
    return await runBackend(
      {
        name: "postgres",
        library,
        raw: rawOps(one, rawTexts),
        reloadTasks: async (side, pending) => {
          const texts = side === "library" ? textsOf(libraryPrefix, "pg") : rawTexts
          for (const text of texts.load(pending)) await admin.unsafe(text)
        }
      },
      reps
    )
  } finally {
    await library.dispose()
    await sql.end({ timeout: 1 })
    for (const table of [...tablesOf(libraryPrefix), ...tablesOf(rawPrefix)]) {
      await admin.unsafe(`DROP TABLE IF EXISTS "${table}" CASCADE`)
    }
    await admin.end({ timeout: 1 })
  }
}

/**
 * Runs every agent-work row on SQLite, then on PostgreSQL (`DATABASE_URL`, default the local server; its rows are
 * left out with a note when the server is unreachable).
 */
export const runAgentWork = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows = [...(await sqliteRows(options.reps))]
  const pg = await pgRows(options.reps)
  if (typeof pg === "string") console.log(`agent-work postgres rows skipped: ${pg}`)
  else rows.push(...pg)
  return rows
}

/** Prints `rows` as a table. */
export const printAgentWork = (rows: ReadonlyArray<Row>, reps: number) => {
  printOpsTable(
    `agent work: best of ${reps} runs per side; raw = better-sqlite3 / postgres (porsager, pool ${POOL}), the ` +
      "library's statements and round trips; floor = the raw calls in the library's loop of fibers; one op = claim + " +
      "complete, save + get, or one render; target >= 0.8",
    rows
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 5))
  const started = performance.now()
  printAgentWork(await runAgentWork({ reps }), reps)
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
