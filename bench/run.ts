/**
 * `npm run bench`: the library's SQLite layer (`StoresSqlite` on a temp file)
 * against a raw better-sqlite3 baseline (`bench/baseline.ts`) doing the same
 * work in the same process, each on its own fresh temp file. Also runs the
 * memory layer against the same raw SQLite baseline. Every side gets a warm-up
 * pass; the timed loop of the library side runs inside one Effect program
 * provided with its layer once (layer build and data loading are not timed).
 * Prints a table and writes `bench/results.json`.
 *
 * `npm run bench -- --scale` instead measures cost independent of history: a
 * sessions list filtered by `agentId`, walked page by page for each of 10
 * agents, on a table of 10k and of 100k sessions, with each size's speed
 * over the 10k speed.
 *
 * Environment: `BENCH_REPS` (default 7) repetitions of the SQLite layer and
 * the baseline, in alternating order; the best (highest ops/s) of each side is
 * reported, with the ratio of the medians alongside. The memory layer runs
 * `BENCH_MEMORY_REPS` times (default 1: its appends are slow enough to double
 * the bench's time). `BENCH_CLOCK=cpu` times with this process's CPU time
 * (steadier on a busy machine). `BENCH_WORKLOADS` (e.g. `W1,W2`) runs only the
 * workloads whose names start so. To measure a setting on both sides alike:
 * `BENCH_PRAGMAS` (`;`-separated pragmas applied after the library's own) and
 * `BENCH_SETUP_SQL` (DDL run right after opening, e.g. another index).
 * Then, each module in a fresh node process of its own (`bench/modules.ts`),
 * the PostgreSQL rows (`bench/pg.ts`) and the agent-work rows of both
 * databases (`bench/agentWork.ts`), `BENCH_PG_REPS` (default 5) each, against
 * `DATABASE_URL` (default the local server), skipped with a note when it is
 * unreachable. Last, the stores' own rows (events, checkpoints, audit and
 * traces, locks, images, the broker, vectors, memory tiers; `BENCH_STORES`
 * picks some, `BENCH_STORE_REPS` default 3), each beside the raw driver
 * running the same statements. `npm run bench -- <module>` runs one module
 * alone, e.g. `eventScale` (event appends at 1 to 64 callers on PostgreSQL)
 * or `vectorScale` (vectors at 200k and 1M, see `bench/vectorScale.ts`),
 * which are too long for the default run. `BENCH_MODULES` (comma-separated
 * module names; `none`) limits the modules run after the SQLite table.
 */
import { Effect, Layer, Option, Tracer } from "effect"
import { spawn } from "node:child_process"
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { SqliteDatabase } from "../layers/sql/SqliteDatabase.ts"
import { type Stores, StoresMemory, StoresSqlite } from "../layers/Stores.ts"
import { ConversationStore } from "../src/Conversation.ts"
import type { StorageError } from "../src/Errors.ts"
import type { MessageInput } from "../src/Message.ts"
import { SessionStore } from "../src/Session.ts"
import { type Baseline, extraPragmas, openBaseline } from "./baseline.ts"
import { batch, customMessage, message } from "./messages.ts"
import { modules, namedOnly } from "./modules.ts"
import { best, median, printTable } from "./stats.ts"

/** One row of `bench/results.json`. */
export interface Result {
  readonly workload: string
  readonly backend: "sqlite" | "memory" | "postgres"
  /** PostgreSQL rows: concurrent callers (pool 16 on both sides). */
  readonly concurrency?: number
  readonly opsPerSec: number
  readonly baselineOpsPerSec: number
  /** Best library ops/s over best baseline ops/s. */
  readonly ratio: number
  /** Median library ops/s over median baseline ops/s. */
  readonly medianRatio: number
  /** `--scale` rows: best ops/s at this size over best ops/s at the smallest size, library side. */
  readonly scaleRatio?: number
  /** `--scale` rows: the same for the baseline. */
  readonly baselineScaleRatio?: number
  /** `--scale` rows: the ratio of the medians, library side. */
  readonly medianScaleRatio?: number
}

/**
 * `npm run bench -- <module>`: only that module of `bench/modules.ts` (e.g. `eventScale`, which the default run leaves
 * out), in this process, `BENCH_STORE_REPS` (default 3) times per side; `bench/results.json` is left as it is.
 */
const onlyModule = process.argv.slice(2).find((arg) => !arg.startsWith("--"))
if (onlyModule !== undefined) {
  const module = modules[onlyModule]
  if (module === undefined) {
    console.error(`no bench module ${onlyModule}: ${Object.keys(modules).join(", ")}`)
    process.exit(2)
  }
  await module(Math.max(1, Number(process.env["BENCH_STORE_REPS"] ?? 3)))
  process.exit(0)
}

const scaleMode = process.argv.includes("--scale")
const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 7))
const memoryReps = scaleMode ? 0 : Math.max(0, Math.min(reps, Number(process.env["BENCH_MEMORY_REPS"] ?? 1)))
/** DDL run on both sides right after opening (`BENCH_SETUP_SQL`), for measuring a schema change. */
const setupSql = process.env["BENCH_SETUP_SQL"] ?? ""

// ---------------------------------------------------------------------------
// Messages: the same objects for both sides (`bench/messages.ts`)

/** W6: 100 messages with ids, and a second version of each (the AI SDK's continuation re-sends a message so). */
const firstVersions: ReadonlyArray<MessageInput> = Array.from({ length: 100 }, (_, i) => ({
  ...message(i),
  id: `m-${i}`
}))
const nextVersions: ReadonlyArray<MessageInput> = firstVersions.map((input, i) => ({
  ...message(i + 2),
  id: input.id!
}))
const sessionMetadata = { userId: "user-42", plan: "pro", locale: "en-GB", tags: ["support", "billing"] }

// ---------------------------------------------------------------------------
// Workloads

const N = 10_000
const RECALLS = 6_000
const WALKS = 8
const PAGE = 50

/** A workload: `ops` timed operations; each side returns the milliseconds of its timed loop. */
interface Workload {
  readonly name: string
  readonly ops: number
  readonly library: Effect.Effect<number, unknown, Stores>
  readonly baseline: (b: Baseline) => number
}

/**
 * The clock of the timed loops, in milliseconds: elapsed time, or with
 * `BENCH_CLOCK=cpu` this process's CPU time (user + system), which other
 * processes competing for the cores do not inflate; every timed loop is
 * synchronous work on the main thread, SQLite's included.
 */
const clock =
  process.env["BENCH_CLOCK"] === "cpu"
    ? () => {
        const { system, user } = process.cpuUsage()
        return (user + system) / 1000
      }
    : () => performance.now()

/** Collects garbage left by loading (when run with `--expose-gc`), then reads the clock: both sides start clean. */
const startTimer = () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  return clock()
}

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`bench sanity check failed: ${what}`)
}

/**
 * After loading and before reading, both sides checkpoint the WAL into the
 * database file, so reads start from the same file state however the rows
 * were written (one transaction per row or per batch).
 */
const settleLibrary = Effect.flatMap(
  Effect.serviceOption(SqliteDatabase),
  Option.match({
    onNone: () => Effect.void,
    onSome: ({ db }) => Effect.sync(() => db.pragma("wal_checkpoint(TRUNCATE)"))
  })
)
const settleBaseline = (b: Baseline) => b.db.pragma("wal_checkpoint(TRUNCATE)")

/** Applies `BENCH_PRAGMAS` and `BENCH_SETUP_SQL` to the library's connection, as the baseline does to its own. */
const setUpLibrary = Effect.flatMap(
  Effect.serviceOption(SqliteDatabase),
  Option.match({
    onNone: () => Effect.void,
    onSome: ({ db }) =>
      Effect.sync(() => {
        for (const pragma of extraPragmas) db.pragma(pragma)
        if (setupSql !== "") db.exec(setupSql)
      })
  })
)

const loadConversation = (b: Baseline) => {
  const id = b.createConversation()
  for (let i = 0; i < N / 100; i++) b.append(id, batch)
  return id
}

/** Walks every page of the sessions list (of `agentId` only, when given). */
const walkLibrary = (agentId?: string) =>
  Effect.gen(function* () {
    const store = yield* SessionStore
    const filter = agentId === undefined ? {} : { agentId }
    let cursor: string | undefined
    let items = 0
    let pages = 0
    do {
      const page = yield* store.list(
        cursor === undefined ? { ...filter, limit: PAGE } : { ...filter, limit: PAGE, cursor }
      )
      items += page.items.length
      pages++
      cursor = Option.getOrUndefined(page.nextCursor)
    } while (cursor !== undefined)
    return { items, pages }
  })

const walkBaseline = (b: Baseline, agentId?: string) => {
  let cursor: string | undefined
  let items = 0
  let pages = 0
  do {
    const page = b.page(PAGE, cursor, agentId)
    items += page.items.length
    pages++
    cursor = page.nextCursor
  } while (cursor !== undefined)
  return { items, pages }
}

/** W1: one message per `append`, each its own transaction. */
const appendOne = (name: string, message: (i: number) => MessageInput): Workload => ({
  name,
  ops: N,
  library: Effect.gen(function* () {
    const store = yield* ConversationStore
    const warm = yield* store.create({})
    for (let i = 0; i < N / 10; i++) yield* store.append(warm.id, message(i))
    const { id } = yield* store.create({})
    const start = startTimer()
    for (let i = 0; i < N; i++) yield* store.append(id, message(i))
    const ms = clock() - start
    check((yield* store.get(id)).messageCount === N, `${name} library count`)
    return ms
  }),
  baseline: (b) => {
    const warm = b.createConversation()
    for (let i = 0; i < N / 10; i++) b.append(warm, [message(i)])
    const id = b.createConversation()
    const start = startTimer()
    for (let i = 0; i < N; i++) b.append(id, [message(i)])
    const ms = clock() - start
    check(b.recall(id, 1)?.[0]?.seq === N, `${name} baseline count`)
    return ms
  }
})

/** A tracer that makes every span and exports none: what the stores' operation spans cost once a tracer is installed. */
const nativeTracer = Effect.runSync(Effect.tracer)
const spanMaking = Tracer.make({ span: (...args) => nativeTracer.span(...args), context: nativeTracer.context })

/** `workload` with a tracer installed on the library side (the default tracer makes no store spans). */
const spansOn = (workload: Workload): Workload => ({
  ...workload,
  name: `${workload.name}, spans on`,
  library: Effect.withTracer(workload.library, spanMaking)
})

const workloads: ReadonlyArray<Workload> = [
  {
    name: "W0 create session",
    ops: N,
    library: Effect.gen(function* () {
      const store = yield* SessionStore
      for (let i = 0; i < N / 10; i++)
        yield* store.create({ agentId: "agent-0", title: `warm ${i}`, metadata: sessionMetadata })
      let last: { readonly title?: string | undefined } = {}
      const start = startTimer()
      for (let i = 0; i < N; i++) {
        last = yield* store.create({ agentId: "agent-1", title: `session ${i}`, metadata: sessionMetadata })
      }
      const ms = clock() - start
      check(last.title === `session ${N - 1}`, "W0 library create")
      return ms
    }),
    baseline: (b) => {
      for (let i = 0; i < N / 10; i++) b.createSession("agent-0", `warm ${i}`, sessionMetadata)
      let last: { readonly title: string | null } = { title: null }
      const start = startTimer()
      for (let i = 0; i < N; i++) last = b.createSession("agent-1", `session ${i}`, sessionMetadata)
      const ms = clock() - start
      check(last.title === `session ${N - 1}`, "W0 baseline create")
      return ms
    }
  },
  appendOne("W1 append", message),
  spansOn(appendOne("W1 append", message)),
  appendOne("W1 append, custom metadata", customMessage),
  {
    name: "W2 appendMany(100)",
    ops: N / 100,
    library: Effect.gen(function* () {
      const store = yield* ConversationStore
      const warm = yield* store.create({})
      for (let i = 0; i < N / 1000; i++) yield* store.appendMany(warm.id, batch)
      const { id } = yield* store.create({})
      const start = startTimer()
      for (let i = 0; i < N / 100; i++) yield* store.appendMany(id, batch)
      const ms = clock() - start
      check((yield* store.get(id)).messageCount === N, "W2 library count")
      return ms
    }),
    baseline: (b) => {
      const warm = b.createConversation()
      for (let i = 0; i < N / 1000; i++) b.append(warm, batch)
      const id = b.createConversation()
      const start = startTimer()
      for (let i = 0; i < N / 100; i++) b.append(id, batch)
      const ms = clock() - start
      check(b.recall(id, 1)?.[0]?.seq === N, "W2 baseline count")
      return ms
    }
  },
  {
    name: "W3 recall last 50",
    ops: RECALLS,
    library: Effect.gen(function* () {
      const store = yield* ConversationStore
      const { id } = yield* store.create({})
      for (let i = 0; i < N / 100; i++) yield* store.appendMany(id, batch)
      yield* settleLibrary
      for (let i = 0; i < RECALLS / 10; i++) yield* store.messages(id, { limit: 50 })
      let last: ReadonlyArray<{ readonly seq: number }> = []
      const start = startTimer()
      for (let i = 0; i < RECALLS; i++) last = yield* store.messages(id, { limit: 50 })
      const ms = clock() - start
      check(last.length === 50 && last[49]!.seq === N, "W3 library window")
      return ms
    }),
    baseline: (b) => {
      const id = loadConversation(b)
      settleBaseline(b)
      for (let i = 0; i < RECALLS / 10; i++) b.recall(id, 50)
      let last: ReadonlyArray<{ readonly seq: number }> | undefined
      const start = startTimer()
      for (let i = 0; i < RECALLS; i++) last = b.recall(id, 50)
      const ms = clock() - start
      check(last?.length === 50 && last[49]!.seq === N, "W3 baseline window")
      return ms
    }
  },
  {
    name: "W6 upsert an existing id",
    ops: N,
    library: Effect.gen(function* () {
      const store = yield* ConversationStore
      const { id } = yield* store.create({})
      for (const input of firstVersions) yield* store.upsert(id, input)
      for (let i = 0; i < N / 10; i++) yield* store.upsert(id, nextVersions[i % 100]!)
      const start = startTimer()
      for (let i = 0; i < N; i++) yield* store.upsert(id, nextVersions[i % 100]!)
      const ms = clock() - start
      check((yield* store.get(id)).messageCount === 100, "W6 library count")
      return ms
    }),
    baseline: (b) => {
      const id = b.createConversation()
      for (const input of firstVersions) b.upsert(id, input.id!, input)
      for (let i = 0; i < N / 10; i++) b.upsert(id, nextVersions[i % 100]!.id!, nextVersions[i % 100]!)
      const start = startTimer()
      for (let i = 0; i < N; i++) b.upsert(id, nextVersions[i % 100]!.id!, nextVersions[i % 100]!)
      const ms = clock() - start
      check(b.recall(id, 1)?.[0]?.seq === 100, "W6 baseline count")
      return ms
    }
  },
  {
    name: "W4 page sessions (50)",
    ops: WALKS * (N / PAGE),
    library: Effect.gen(function* () {
      const store = yield* SessionStore
      for (let i = 0; i < N; i++) {
        yield* store.create({ agentId: "agent-1", title: `session ${i}`, metadata: sessionMetadata })
      }
      yield* settleLibrary
      yield* walkLibrary()
      let walked = { items: 0, pages: 0 }
      const start = startTimer()
      for (let i = 0; i < WALKS; i++) walked = yield* walkLibrary()
      const ms = clock() - start
      check(walked.items === N && walked.pages === N / PAGE, "W4 library walk")
      return ms
    }),
    baseline: (b) => {
      b.createSessions(N, sessionMetadata)
      settleBaseline(b)
      walkBaseline(b)
      let walked = { items: 0, pages: 0 }
      const start = startTimer()
      for (let i = 0; i < WALKS; i++) walked = walkBaseline(b)
      const ms = clock() - start
      check(walked.items === N && walked.pages === N / PAGE, "W4 baseline walk")
      return ms
    }
  }
]

// ---------------------------------------------------------------------------
// --scale: a list filtered by agentId on a table of 10k and of 100k sessions

const AGENTS = 10
const SCALES = [10_000, 100_000]
/** Pages read per timed loop at every size: each agent's list walked in turn, repeated at the smaller sizes. */
const SCALE_PAGES = Math.max(...SCALES) / PAGE
const agentName = (a: number) => `agent-${a + 1}`

const scaleWorkload = (sessions: number): Workload => {
  const perAgent = sessions / AGENTS
  const rounds = SCALE_PAGES / (sessions / PAGE)
  const name = `S1 list by agentId (${AGENTS} agents), ${sessions / 1000}k sessions`
  return {
    name,
    ops: SCALE_PAGES,
    library: Effect.gen(function* () {
      const store = yield* SessionStore
      for (let i = 0; i < sessions; i++) {
        yield* store.create({ agentId: agentName(i % AGENTS), title: `session ${i}`, metadata: sessionMetadata })
      }
      yield* settleLibrary
      yield* walkLibrary(agentName(0))
      let walked = { items: 0, pages: 0 }
      const start = startTimer()
      for (let r = 0; r < rounds; r++) for (let a = 0; a < AGENTS; a++) walked = yield* walkLibrary(agentName(a))
      const ms = clock() - start
      check(walked.items === perAgent && walked.pages === perAgent / PAGE, `${name} library walk`)
      return ms
    }),
    baseline: (b) => {
      b.createSessions(sessions, sessionMetadata, AGENTS)
      settleBaseline(b)
      walkBaseline(b, agentName(0))
      let walked = { items: 0, pages: 0 }
      const start = startTimer()
      for (let r = 0; r < rounds; r++) for (let a = 0; a < AGENTS; a++) walked = walkBaseline(b, agentName(a))
      const ms = clock() - start
      check(walked.items === perAgent && walked.pages === perAgent / PAGE, `${name} baseline walk`)
      return ms
    }
  }
}

/** `BENCH_WORKLOADS`: comma-separated name prefixes (e.g. `W1,W2`) to run only those SQLite workloads. */
const only = process.env["BENCH_WORKLOADS"]?.split(",").filter((prefix) => prefix !== "")
const selected: ReadonlyArray<Workload> = scaleMode
  ? SCALES.map(scaleWorkload)
  : workloads.filter((workload) => only === undefined || only.some((prefix) => workload.name.startsWith(prefix)))

// ---------------------------------------------------------------------------
// Runner

const dir = mkdtempSync(join(tmpdir(), "agent-stores-bench-"))
const cleanup = () => rmSync(dir, { recursive: true, force: true })
process.on("exit", cleanup)
let files = 0
const freshFile = (side: string) => join(dir, `${side}-${files++}.db`)
const removeDb = (file: string) => {
  for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(file + suffix, { force: true })
}

/** The schema the library's own migrations make, copied for every baseline run. */
const template = freshFile("template")
await Effect.runPromise(Effect.scoped(Effect.asVoid(Layer.build(StoresSqlite({ filename: template })))))
check(!existsSync(`${template}-wal`), "template checkpointed on close")

const runLibrary = async (workload: Workload, layer: Layer.Layer<Stores, StorageError>) =>
  Effect.runPromise(Effect.provide(Effect.zipRight(setUpLibrary, workload.library), layer))

const runSqlite = async (workload: Workload) => {
  const file = freshFile("library")
  try {
    return await runLibrary(workload, StoresSqlite({ filename: file }))
  } finally {
    removeDb(file)
  }
}

const runBaseline = (workload: Workload) => {
  const file = freshFile("baseline")
  copyFileSync(template, file)
  const b = openBaseline(file)
  if (setupSql !== "") b.db.exec(setupSql)
  try {
    return workload.baseline(b)
  } finally {
    b.close()
    removeDb(file)
  }
}

type Side = "sqlite" | "baseline" | "memory"
const times = new Map<string, Array<number>>()
const record = (workload: Workload, side: Side, ms: number) => {
  const key = `${workload.name}|${side}`
  const list = times.get(key) ?? []
  list.push(workload.ops / (ms / 1000))
  times.set(key, list)
}

const started = performance.now()
for (let rep = 0; rep < reps; rep++) {
  for (let w = 0; w < selected.length; w++) {
    const workload = selected[w]!
    const order: Array<Side> = (rep + w) % 2 === 0 ? ["sqlite", "baseline"] : ["baseline", "sqlite"]
    if (rep < memoryReps) order.push("memory")
    for (const side of order) {
      const ms =
        side === "sqlite"
          ? await runSqlite(workload)
          : side === "baseline"
            ? runBaseline(workload)
            : await runLibrary(workload, StoresMemory)
      record(workload, side, ms)
    }
  }
}
const elapsed = (performance.now() - started) / 1000

const rounded = (x: number) => Math.round(x * 1000) / 1000
const opsOf = (workload: Workload, side: Side) => times.get(`${workload.name}|${side}`)

const results: Array<Result> = []
for (const workload of selected) {
  const baseline = opsOf(workload, "baseline")!
  for (const backend of ["sqlite", "memory"] as const) {
    const library = opsOf(workload, backend)
    if (library === undefined) continue
    const result: Result = {
      workload: workload.name,
      backend,
      opsPerSec: Math.round(best(library)),
      baselineOpsPerSec: Math.round(best(baseline)),
      ratio: rounded(best(library) / best(baseline)),
      medianRatio: rounded(median(library) / median(baseline))
    }
    const smallest = selected[0]!
    const libraryAtSmallest = opsOf(smallest, backend)!
    const baselineAtSmallest = opsOf(smallest, "baseline")!
    results.push(
      scaleMode
        ? {
            ...result,
            scaleRatio: rounded(best(library) / best(libraryAtSmallest)),
            baselineScaleRatio: rounded(best(baseline) / best(baselineAtSmallest)),
            medianScaleRatio: rounded(median(library) / median(libraryAtSmallest))
          }
        : result
    )
  }
}

const header = ["workload", "backend", "ops/s library", "ops/s baseline", "ratio", "median ratio"]
if (scaleMode) header.push("vs 10k", "median vs 10k", "baseline vs 10k")
const table = results.map((r) => [
  r.workload,
  r.backend,
  r.opsPerSec.toLocaleString("en-US"),
  r.baselineOpsPerSec.toLocaleString("en-US"),
  r.ratio.toFixed(2),
  r.medianRatio.toFixed(2),
  ...(scaleMode ? [r.scaleRatio!.toFixed(2), r.medianScaleRatio!.toFixed(2), r.baselineScaleRatio!.toFixed(2)] : [])
])

console.log(
  `sqlite and baseline: best of ${reps} runs each (highest ops/s); memory: best of ${memoryReps}; ` +
    "baseline = raw better-sqlite3, same schema and pragmas" +
    (process.env["BENCH_CLOCK"] === "cpu" ? "; clock: process CPU time" : "") +
    (extraPragmas.length > 0 ? `; extra pragmas: ${extraPragmas.join("; ")}` : "") +
    (setupSql !== "" ? `; setup: ${setupSql}` : "")
)
console.log(
  scaleMode
    ? `S1: one op = one page of ${PAGE} sessions of one agent; each agent's list walked in turn; ` +
        "vs 10k = ops/s over ops/s at 10k sessions; target >= 0.85"
    : "W0/W1/W3/W4/W6: one op = one call; W2: one op = one appendMany of 100 messages; target ratio >= 0.8"
)
printTable(header, table)
console.log(`(${elapsed.toFixed(1)} s)`)

/**
 * Runs bench module `name` (`bench/modules.ts`) in a fresh node process: it prints its table; its rows come back
 * through a temp file, or a note when it could not run (e.g. no PostgreSQL server).
 */
const runModule = async (name: string, reps: number): Promise<ReadonlyArray<Result>> => {
  const dir = mkdtempSync(join(tmpdir(), "agent-bench-module-"))
  const rowsFile = join(dir, "rows.json")
  try {
    const child = spawn(
      process.execPath,
      [
        "--expose-gc",
        "--import",
        "tsx",
        fileURLToPath(new URL("./module.ts", import.meta.url)),
        name,
        `${reps}`,
        rowsFile
      ],
      { stdio: "inherit" }
    )
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
    const rows = existsSync(rowsFile)
      ? (JSON.parse(readFileSync(rowsFile, "utf8")) as ReadonlyArray<Result> | { readonly skipped: string })
      : { skipped: `its process exited with code ${code}` }
    if (!("skipped" in rows)) return rows
    console.log(`${name} rows skipped: ${rows.skipped}`)
    return []
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// PostgreSQL (bench/pg.ts: the same workloads through StoresPg and the raw `postgres` driver, at 1 and 16
// callers), the agent-work rows, then the stores' own rows (`BENCH_STORES`, comma-separated, default all), each
// beside the raw driver running the same statements on SQLite and PostgreSQL.
// `BENCH_MODULES` (comma-separated names of `bench/modules.ts`; `none` for none) limits the modules that run at all.
const modulesWanted = process.env["BENCH_MODULES"]?.split(",")
const moduleWanted = (name: string) => modulesWanted === undefined || modulesWanted.includes(name)
if (!scaleMode) {
  const pgReps = Math.max(1, Number(process.env["BENCH_PG_REPS"] ?? 5))
  for (const name of ["pg", "agentWork"]) {
    if (!moduleWanted(name)) continue
    console.log()
    results.push(...(await runModule(name, pgReps)))
  }
  const stores = Object.keys(modules).filter((name) => name !== "pg" && name !== "agentWork")
  const wanted = (process.env["BENCH_STORES"] ?? stores.filter((name) => !namedOnly.has(name)).join(",")).split(",")
  const storeReps = Math.max(1, Number(process.env["BENCH_STORE_REPS"] ?? 3))
  for (const name of stores) {
    if (!wanted.includes(name) || !moduleWanted(name)) continue
    console.log(`\n${name}:`)
    results.push(...(await runModule(name, storeReps)))
  }
}

/** `results.json` holds both modes' rows: this run replaces its own mode's rows and keeps the other's. */
const resultsFile = fileURLToPath(new URL("./results.json", import.meta.url))
const isScaleRow = (row: Result) => row.workload.startsWith("S")
const kept = existsSync(resultsFile)
  ? (JSON.parse(readFileSync(resultsFile, "utf8")) as Array<Result>).filter((row) => isScaleRow(row) !== scaleMode)
  : []
writeFileSync(resultsFile, JSON.stringify(scaleMode ? [...kept, ...results] : [...results, ...kept], null, 2) + "\n")
