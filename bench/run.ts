/**
 * `npm run bench`: the library's SQLite layer (`StoresSqlite` on a temp file)
 * against a raw better-sqlite3 baseline (`bench/baseline.ts`) doing the same
 * work in the same process, each on its own fresh temp file. Also runs the
 * memory layer against the same raw SQLite baseline. Every side gets a warm-up
 * pass; the timed loop of the library side runs inside one Effect program
 * provided with its layer once (layer build and data loading are not timed).
 * Prints a table and writes `bench/results.json`.
 *
 * Environment: `BENCH_REPS` (default 7) repetitions of the SQLite layer and
 * the baseline, in alternating order; the best (highest ops/s) of each side is
 * reported, with the ratio of the medians alongside. The memory layer runs
 * `BENCH_MEMORY_REPS` times (default 1: its appends are slow enough to double
 * the bench's time).
 */
import { Effect, Layer, Option } from "effect"
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
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
import { type Baseline, openBaseline } from "./baseline.ts"

/** One row of `bench/results.json`. */
export interface Result {
  readonly workload: string
  readonly backend: "sqlite" | "memory"
  readonly opsPerSec: number
  readonly baselineOpsPerSec: number
  readonly ratio: number
}

const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 7))
const memoryReps = Math.max(0, Math.min(reps, Number(process.env["BENCH_MEMORY_REPS"] ?? 1)))

// ---------------------------------------------------------------------------
// Messages: the same objects for both sides

const userTexts = [
  "Can you summarise the main differences between the two proposals we discussed yesterday, in three bullets?",
  "What is the weather going to be like in Lisbon this weekend, and should I bring an umbrella for the trip?",
  "Please rewrite this paragraph so it sounds friendlier but keep it under one hundred words, thanks a lot.",
  "Remind me which of the open tickets are blocked on the database migration and who is assigned to them."
]
const assistantTexts = [
  "Sure. The first proposal keeps the current schema and adds a cache; the second moves sessions to a separate " +
    "store. The first is cheaper, the second scales further.",
  "Lisbon looks mild this weekend, around 19°C with a chance of showers on Saturday afternoon. A light umbrella " +
    "would be a good idea.",
  "Here is a friendlier version: thanks so much for your patience while we sorted this out, we really appreciate it.",
  "Three tickets are blocked on the migration: two assigned to Ana and one to Marco. None of them are overdue yet."
]
const models = ["gpt-4o-mini", "claude-3-5-haiku"]

/** Alternating user and assistant messages; assistant messages carry model, finish reason and usage. */
const messages: ReadonlyArray<MessageInput> = Array.from({ length: 16 }, (_, i): MessageInput => {
  if (i % 2 === 0) return { role: "user", parts: [{ type: "text", text: userTexts[(i / 2) % userTexts.length]! }] }
  const inputTokens = 120 + 17 * i
  const outputTokens = 40 + 9 * i
  return {
    role: "assistant",
    parts: [{ type: "text", text: assistantTexts[((i - 1) / 2) % assistantTexts.length]! }],
    metadata: {
      model: models[i % models.length]!,
      finishReason: "stop",
      usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens }
    }
  }
})
const message = (i: number): MessageInput => messages[i % messages.length]!
const batch: ReadonlyArray<MessageInput> = Array.from({ length: 100 }, (_, i) => message(i))
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

/** Collects garbage left by loading (when run with `--expose-gc`), then reads the clock: both sides start clean. */
const startTimer = () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  return performance.now()
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

const loadConversation = (b: Baseline) => {
  const id = b.createConversation()
  for (let i = 0; i < N / 100; i++) b.append(id, batch)
  return id
}

const walkLibrary = Effect.gen(function* () {
  const store = yield* SessionStore
  let cursor: string | undefined
  let items = 0
  let pages = 0
  do {
    const page = yield* store.list(cursor === undefined ? { limit: PAGE } : { limit: PAGE, cursor })
    items += page.items.length
    pages++
    cursor = Option.getOrUndefined(page.nextCursor)
  } while (cursor !== undefined)
  return { items, pages }
})

const walkBaseline = (b: Baseline) => {
  let cursor: string | undefined
  let items = 0
  let pages = 0
  do {
    const page = b.page(PAGE, cursor)
    items += page.items.length
    pages++
    cursor = page.nextCursor
  } while (cursor !== undefined)
  return { items, pages }
}

const workloads: ReadonlyArray<Workload> = [
  {
    name: "W1 append",
    ops: N,
    library: Effect.gen(function* () {
      const store = yield* ConversationStore
      const warm = yield* store.create({})
      for (let i = 0; i < N / 10; i++) yield* store.append(warm.id, message(i))
      const { id } = yield* store.create({})
      const start = startTimer()
      for (let i = 0; i < N; i++) yield* store.append(id, message(i))
      const ms = performance.now() - start
      check((yield* store.get(id)).messageCount === N, "W1 library count")
      return ms
    }),
    baseline: (b) => {
      const warm = b.createConversation()
      for (let i = 0; i < N / 10; i++) b.append(warm, [message(i)])
      const id = b.createConversation()
      const start = startTimer()
      for (let i = 0; i < N; i++) b.append(id, [message(i)])
      const ms = performance.now() - start
      check(b.recall(id, 1)?.[0]?.seq === N, "W1 baseline count")
      return ms
    }
  },
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
      const ms = performance.now() - start
      check((yield* store.get(id)).messageCount === N, "W2 library count")
      return ms
    }),
    baseline: (b) => {
      const warm = b.createConversation()
      for (let i = 0; i < N / 1000; i++) b.append(warm, batch)
      const id = b.createConversation()
      const start = startTimer()
      for (let i = 0; i < N / 100; i++) b.append(id, batch)
      const ms = performance.now() - start
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
      const ms = performance.now() - start
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
      const ms = performance.now() - start
      check(last?.length === 50 && last[49]!.seq === N, "W3 baseline window")
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
      yield* walkLibrary
      let walked = { items: 0, pages: 0 }
      const start = startTimer()
      for (let i = 0; i < WALKS; i++) walked = yield* walkLibrary
      const ms = performance.now() - start
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
      const ms = performance.now() - start
      check(walked.items === N && walked.pages === N / PAGE, "W4 baseline walk")
      return ms
    }
  }
]

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
  Effect.runPromise(Effect.provide(workload.library, layer))

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
  for (let w = 0; w < workloads.length; w++) {
    const workload = workloads[w]!
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

const best = (list: ReadonlyArray<number>) => Math.max(...list)
const median = (list: ReadonlyArray<number>) => {
  const sorted = [...list].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const results: Array<Result> = []
const medianRatios = new Map<string, number>()
for (const workload of workloads) {
  const baseline = times.get(`${workload.name}|baseline`)!
  for (const backend of ["sqlite", "memory"] as const) {
    const library = times.get(`${workload.name}|${backend}`)
    if (library === undefined) continue
    const opsPerSec = best(library)
    const baselineOpsPerSec = best(baseline)
    results.push({
      workload: workload.name,
      backend,
      opsPerSec: Math.round(opsPerSec),
      baselineOpsPerSec: Math.round(baselineOpsPerSec),
      ratio: Math.round((opsPerSec / baselineOpsPerSec) * 1000) / 1000
    })
    medianRatios.set(`${workload.name}|${backend}`, median(library) / median(baseline))
  }
}

const header = ["workload", "backend", "ops/s library", "ops/s baseline", "ratio", "median ratio"]
const table = results.map((r) => [
  r.workload,
  r.backend,
  r.opsPerSec.toLocaleString("en-US"),
  r.baselineOpsPerSec.toLocaleString("en-US"),
  r.ratio.toFixed(2),
  medianRatios.get(`${r.workload}|${r.backend}`)!.toFixed(2)
])
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)))
const line = (cells: ReadonlyArray<string>) =>
  cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")

console.log(
  `sqlite and baseline: best of ${reps} runs each (highest ops/s); memory: best of ${memoryReps}; ` +
    "baseline = raw better-sqlite3, same schema and pragmas"
)
console.log("W1/W3/W4: one op = one call; W2: one op = one appendMany of 100 messages; target ratio >= 0.8")
console.log(line(header))
console.log(widths.map((w) => "-".repeat(w)).join("  "))
for (const row of table) console.log(line(row))
console.log(`(${elapsed.toFixed(1)} s)`)

writeFileSync(fileURLToPath(new URL("./results.json", import.meta.url)), JSON.stringify(results, null, 2) + "\n")
