/**
 * The PostgreSQL bench: the library (`StoresPg`, pool of 16) against the raw
 * `postgres` driver (`bench/pgBaseline.ts`, pool of 16, the same statements
 * and round trips), at 1 and at 16 concurrent callers, each side on its own
 * tables (made by the library's migrations, dropped afterwards) in the same
 * process. A third side, the floor, runs the raw driver's same calls in the
 * library's loop of fibers, one `Effect.promise` per library operation (on
 * the raw side's pool and tables): what any Effect program pays to run them before
 * any library code, so `ratio` ≤ `floorRatio` short of noise. `runPg({ reps })`
 * runs the sides `reps` times per workload and concurrency, each repetition
 * starting with the next side, and reports the best ops/s of each side, the
 * ratios to raw and the ratio of the medians. Run alone: `node --expose-gc --import tsx bench/pg.ts`
 * (`DATABASE_URL`, default the local server; `BENCH_REPS`, default 5).
 *
 * Round trips per operation, both sides: W1/W2 one (a CTE bumps the
 * conversation and inserts the rows from arrays), W3 one (the window; a
 * second only when it is empty), W4 one per page, W5 seven (the save a transaction of six: BEGIN, session and
 * conversation upserted, the chat read, its messages deleted, the new ones appended, COMMIT; then the load).
 */
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import postgres from "postgres"
import { fileURLToPath } from "node:url"
import { tablesOf } from "../layers/Registry.ts"
import { type Stores, StoresPg } from "../layers/Stores.ts"
import { ConversationStore } from "../src/Conversation.ts"
import type { MessageInput } from "../src/Message.ts"
import { SessionStore } from "../src/Session.ts"
import { openPgBaseline, type PgBaseline } from "./pgBaseline.ts"
import {
  type FloorRow,
  POOL,
  floorFigures,
  opsFigures,
  printOpsTable,
  timeFloor,
  timeLibrary,
  timeRaw,
  url,
  withOpenPool
} from "./timing.ts"

/**
 * One PostgreSQL row: the library beside the raw driver at 1 or 16 callers, and beside the floor: the raw driver's
 * same calls, each awaited by `Effect.promise` in the library's loop of fibers.
 */
export type PgResult = FloorRow

const sides = ["library", "baseline", "floor"] as const
type Side = (typeof sides)[number]

const N = 10_000
const PAGE = 50

/** A user turn and an assistant turn with model, finish reason and usage, as agents append them. */
const messages: ReadonlyArray<MessageInput> = [
  { role: "user", parts: [{ type: "text", text: "Which of the open tickets are blocked on the database migration?" }] },
  {
    role: "assistant",
    parts: [{ type: "text", text: "Three tickets are blocked on the migration: two assigned to Ana, one to Marco." }],
    metadata: {
      model: "gpt-4o-mini",
      finishReason: "stop",
      usage: { inputTokens: 137, outputTokens: 49, totalTokens: 186 }
    }
  }
]
const message = (i: number) => messages[i % messages.length]!
const batch: ReadonlyArray<MessageInput> = Array.from({ length: 100 }, (_, i) => message(i))
const transcript: ReadonlyArray<MessageInput> = Array.from({ length: 16 }, (_, i) => message(i))

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`bench sanity check failed: ${what}`)
}

/** What one side has loaded before the timed loops: W1/W2 conversations per caller, W3's full one, W5's sessions. */
interface Fixture {
  readonly conversations: ReadonlyArray<string>
  readonly full: string
  readonly sessions: ReadonlyArray<string>
}

interface Workload {
  readonly name: string
  /** Operations per timed run at a concurrency. */
  readonly ops: (concurrency: number) => number
  /** Calls per timed run at a concurrency (W4: a call walks every page, an operation is a page). */
  readonly calls?: (concurrency: number) => number
  /** The library's call `i` by `caller`. */
  readonly library: (f: Fixture) => Effect.Effect<Call<Effect.Effect<unknown, unknown>>, never, Stores>
  /** The raw driver's call `i` by `caller`. */
  readonly raw: (b: PgBaseline, f: Fixture) => Call<Promise<unknown>>
  /**
   * The floor's call `i` by `caller`: the raw calls with one `Effect.promise` per library operation. By default the
   * raw call in one `Effect.promise` (`timeFloor`); W4 (a page per operation) and W5 (two operations) await each raw
   * call on its own.
   */
  readonly floor?: (b: PgBaseline, f: Fixture) => Call<Effect.Effect<unknown>>
}

/** Call `i` of a timed run, by `caller` (each caller on its own conversation or session). */
type Call<A> = (i: number, caller: number) => A

const walkLibrary = (store: SessionStore["Type"]) =>
  Effect.gen(function* () {
    let cursor: string | undefined
    let items = 0
    do {
      const page = yield* store.list(cursor === undefined ? { limit: PAGE } : { limit: PAGE, cursor })
      items += page.items.length
      cursor = Option.getOrUndefined(page.nextCursor)
    } while (cursor !== undefined)
    check(items === N, "W4 library walk")
  })

const walkBaseline = async (b: PgBaseline) => {
  let after: readonly [number, string] | undefined
  let items = 0
  do {
    const page = await b.page(PAGE, after)
    items += page.items.length
    after = page.next
  } while (after !== undefined)
  check(items === N, "W4 baseline walk")
}

/** `walkBaseline` with each page awaited by `Effect.promise`, as the library walk awaits each `list`. */
const walkFloor = (b: PgBaseline) =>
  Effect.gen(function* () {
    let after: readonly [number, string] | undefined
    let items = 0
    do {
      const page = yield* Effect.promise(() => b.page(PAGE, after))
      items += page.items.length
      after = page.next
    } while (after !== undefined)
    check(items === N, "W4 floor walk")
  })

const workloads: ReadonlyArray<Workload> = [
  {
    name: "W1 append",
    ops: () => 2_000,
    library: (f) =>
      Effect.map(ConversationStore, (store) => (i, caller) => store.append(f.conversations[caller]!, message(i))),
    raw: (b, f) => (i, caller) => b.append(f.conversations[caller]!, [message(i)])
  },
  {
    name: "W2 appendMany(100)",
    ops: () => 100,
    library: (f) =>
      Effect.map(ConversationStore, (store) => (_, caller) => store.appendMany(f.conversations[caller]!, batch)),
    raw: (b, f) => (_, caller) => b.append(f.conversations[caller]!, batch)
  },
  {
    name: "W3 last 50 of 10k",
    ops: () => 3_000,
    library: (f) =>
      Effect.map(
        ConversationStore,
        (store) => () =>
          Effect.tap(store.messages(f.full, { limit: 50 }), (rows) => check(rows.length === 50, "W3 library window"))
      ),
    raw: (b, f) => async () => check((await b.recall(f.full, 50))?.length === 50, "W3 baseline window")
  },
  {
    name: "W4 page 50 of 10k sessions",
    // One op = one page; each call walks all 10k sessions (two walks at one caller).
    ops: (c) => Math.max(2, c) * (N / PAGE),
    calls: (c) => Math.max(2, c),
    library: () => Effect.map(SessionStore, (store) => () => walkLibrary(store)),
    raw: (b) => () => walkBaseline(b),
    floor: (b) => () => walkFloor(b)
  },
  {
    name: "W5 chat save + load",
    ops: () => 1_000,
    library: (f) =>
      Effect.map(
        SessionStore,
        (store) => (_, caller) =>
          Effect.zipRight(
            store.save(f.sessions[caller]!, transcript),
            Effect.tap(store.load(f.sessions[caller]!), (loaded) =>
              check(Option.isSome(loaded) && loaded.value.length === 16, "W5 library load")
            )
          )
      ),
    raw: (b, f) => async (_, caller) => {
      await b.save(f.sessions[caller]!, transcript)
      check((await b.load(f.sessions[caller]!))?.length === 16, "W5 baseline load")
    },
    floor: (b, f) => (_, caller) =>
      Effect.zipRight(
        Effect.promise(() => b.save(f.sessions[caller]!, transcript)),
        Effect.tap(
          Effect.promise(() => b.load(f.sessions[caller]!)),
          (loaded) => check(loaded?.length === 16, "W5 floor load")
        )
      )
  }
]

/** 10k sessions with the same ids, times and metadata on both sides (not timed). */
const loadSessions = (admin: postgres.Sql, prefix: string) =>
  admin.unsafe(
    `INSERT INTO "${prefix}_sessions" (id, agent_id, channel, title, status, metadata, created_at, updated_at, version)
    SELECT 'session-' || lpad(g::text, 6, '0'), 'agent-1', NULL, 'session ' || g, 'active',
      '{"userId":"user-42","plan":"pro","locale":"en-GB","tags":["support","billing"]}',
      1700000000000 + g, 1700000000000 + g, 1
    FROM generate_series(1, ${N}) AS g`
  )

/** Runs every workload at 1 and 16 callers, `reps` times per side, alternating which side goes first. */
export const runPg = async (options: { readonly reps: number }): Promise<ReadonlyArray<PgResult>> => {
  const stamp = `${process.pid}_${Date.now().toString(36)}`
  const libraryPrefix = `bench_lib_${stamp}`
  const baselinePrefix = `bench_raw_${stamp}`
  const admin = postgres(url, { max: 1, onnotice: () => {} })
  const runtime = ManagedRuntime.make(withOpenPool(StoresPg({ url, tablePrefix: libraryPrefix, maxConnections: POOL })))
  const baseline = openPgBaseline(url, baselinePrefix, POOL)
  try {
    // The baseline's tables, made by the library's own migrations.
    await Effect.runPromise(
      Effect.scoped(Layer.build(StoresPg({ url, tablePrefix: baselinePrefix, maxConnections: 1 })))
    )
    await runtime.runtime()
    await baseline.open()
    await loadSessions(admin, libraryPrefix)
    await loadSessions(admin, baselinePrefix)
    const sessionIds = Array.from({ length: POOL }, (_, i) => `session-${String(i + 1).padStart(6, "0")}`)
    const libraryFixture: Fixture = await runtime.runPromise(
      Effect.gen(function* () {
        const store = yield* ConversationStore
        const conversations = yield* Effect.forEach(Array.from({ length: POOL }), () =>
          Effect.map(store.create({}), (c) => c.id)
        )
        const full = (yield* store.create({})).id
        for (let i = 0; i < N / 100; i++) yield* store.appendMany(full, batch)
        return { conversations, full, sessions: sessionIds }
      })
    )
    const baselineFixture: Fixture = {
      conversations: await Promise.all(Array.from({ length: POOL }, () => baseline.createConversation())),
      full: await baseline.createConversation(),
      sessions: sessionIds
    }
    for (let i = 0; i < N / 100; i++) await baseline.append(baselineFixture.full, batch)
    await admin.unsafe(`VACUUM ANALYZE "${libraryPrefix}_messages", "${libraryPrefix}_sessions"`)
    await admin.unsafe(`VACUUM ANALYZE "${baselinePrefix}_messages", "${baselinePrefix}_sessions"`)

    const results: Array<PgResult> = []
    for (const workload of workloads) {
      for (const concurrency of [1, 16] as const) {
        const ops = workload.ops(concurrency)
        const calls = workload.calls?.(concurrency) ?? ops
        const entry: Record<Side, Array<number>> = { library: [], baseline: [], floor: [] }
        const libraryCall = await runtime.runPromise(workload.library(libraryFixture))
        const rawCall = workload.raw(baseline, baselineFixture)
        const floorCall = workload.floor?.(baseline, baselineFixture)
        const time = (side: Side) =>
          side === "library"
            ? runtime.runPromise(timeLibrary(calls, concurrency, libraryCall))
            : side === "baseline"
              ? timeRaw(calls, concurrency, rawCall)
              : runtime.runPromise(
                  floorCall === undefined
                    ? timeFloor(calls, concurrency, rawCall)
                    : timeLibrary(calls, concurrency, floorCall)
                )
        // A warm-up run per side (connections opened, statements prepared), then the timed ones, each repetition
        // starting with the next side.
        for (let rep = -1; rep < options.reps; rep++) {
          for (let k = 0; k < sides.length; k++) {
            const side = sides[(rep + 1 + k) % sides.length]!
            const ms = await time(side)
            if (rep >= 0) entry[side].push(ops / (ms / 1000))
          }
        }
        results.push({
          workload: workload.name,
          backend: "postgres",
          concurrency,
          ...opsFigures(entry.library, entry.baseline),
          ...floorFigures(entry.floor, entry.baseline)
        })
      }
    }
    return results
  } finally {
    await runtime.dispose()
    await baseline.close()
    for (const table of [...tablesOf(libraryPrefix), ...tablesOf(baselinePrefix)]) {
      await admin.unsafe(`DROP TABLE IF EXISTS "${table}" CASCADE`)
    }
    await admin.end({ timeout: 1 })
  }
}

/** Prints `results` as a table. */
export const printPg = (results: ReadonlyArray<PgResult>, reps: number) =>
  printOpsTable(
    `postgres: best of ${reps} runs per side; raw = postgres (porsager), same statements, pool ${POOL}; ` +
      "floor = the raw calls awaited by Effect.promise in the library's loop of fibers",
    results
  )

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 5))
  printPg(await runPg({ reps }), reps)
}
