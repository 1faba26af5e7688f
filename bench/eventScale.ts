/**
 * Event appends at scale on PostgreSQL (issue 30): `EventStore.append` of one event, each caller to a stream of its
 * own, at 1, 4, 16 and 64 callers on a pool of 64, beside two rows of the raw `postgres` driver (pool 64) on tables
 * of their own:
 *
 * - main's scheme: the append statement the library ran before positions came from transaction ids, reconstructed
 *   (the stream claim, the bump of the kernel's position counter row and the `pg_notify`s in one statement, on
 *   tables made by the first events migration only), i.e. what main's library could reach at most;
 * - a plain `INSERT` of the event row (no stream row, no counter, no `NOTIFY`): what the table takes.
 *
 * Targets at 16 callers: the library at least 3x its own 1-caller rate and at least 0.5x the plain insert. At 64
 * callers each side's server backends are sampled in `pg_stat_activity` every 10 ms (by `application_name`): the
 * mean number of them in each wait event, or running. The machine's load average is printed before and after.
 *
 * Long, so not in the default `npm run bench`: run it alone with `npm run bench -- eventScale`, or
 * `node --expose-gc --import tsx bench/eventScale.ts` (`BENCH_REPS`, default 3; `BENCH_SCALE_OPS`, default 1,
 * multiplies the operation counts; `DATABASE_URL`, default the local server).
 */
import { Layer, ManagedRuntime } from "effect"
import { randomUUID } from "node:crypto"
import { loadavg } from "node:os"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { tablesOf, withRequired } from "../layers/Registry.ts"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlEventStore from "../layers/sql/SqlEventStore.ts"
import { EventStore } from "../src/Event.ts"
import { dropPrefixed, openAdmin, runStamp } from "./admin.ts"
import { best, median, printTable } from "./stats.ts"
import { openPool, timeLibrary, timeRaw, url, withOpenPool } from "./timing.ts"

/** The pool of every side, and the most callers. */
const POOL = 64

/** The callers of the rows. */
const CALLERS = [1, 4, 16, 64] as const

/** Appends per timed run at `callers`, times `BENCH_SCALE_OPS`. */
const opsAt = (callers: number): number =>
  Math.round(
    ({ 1: 1000, 4: 2000, 16: 6000, 64: 12000 } as Record<number, number>)[callers]! *
      Math.max(0.05, Number(process.env["BENCH_SCALE_OPS"] ?? 1))
  )

const sides = ["library", "counter", "plain"] as const
type Side = (typeof sides)[number]

const sideNames: Record<Side, string> = {
  library: "library",
  counter: "main's counter scheme (raw)",
  plain: "plain INSERT (raw)"
}

/** One row: a side at a number of callers. */
export interface Row {
  readonly workload: string
  readonly backend: "postgres"
  readonly side: Side
  readonly concurrency: number
  /** Best ops/s over the runs, and the median. */
  readonly opsPerSec: number
  readonly medianOpsPerSec: number
  /** At 64 callers: the mean number of the side's backends in each wait event (`running`: none). */
  readonly waits?: Readonly<Record<string, number>>
  /** The 1-minute load average when the side's runs at this concurrency started and ended. */
  readonly load: readonly [number, number]
}

const workload = "E1 append 1 event, own stream"

/** Main's one-statement append (its `pgNotifyingAppends.any`), as it ran on `PgDatabase`. */
const counterSchemeAppend = `WITH p AS (SELECT $1::text AS stream_id, $2::bigint AS n, $3::bigint AS now),
  claim AS (
    INSERT INTO {event_streams} (stream_id, version, truncated_before, created_at, updated_at)
    SELECT stream_id, n, 1, now, now FROM p
    ON CONFLICT (stream_id) DO UPDATE SET version = {event_streams}.version + excluded.version,
      updated_at = GREATEST({event_streams}.updated_at, excluded.updated_at)
    RETURNING version
  ),
  bumped AS (
    INSERT INTO {counters} (name, value) SELECT 'events', p.n FROM claim, p
    ON CONFLICT (name) DO UPDATE SET value = {counters}.value + excluded.value RETURNING value
  ),
  inserted AS (
    INSERT INTO {events} (id, stream_id, seq, position, type, payload, metadata, created_at)
    SELECT e.id, p.stream_id, claim.version - p.n + e.i, bumped.value - p.n + e.i, e.type, e.payload, e.metadata,
      p.now
    FROM p, claim, bumped,
      unnest($4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS e(id, type, payload, metadata, i)
    RETURNING position
  )
SELECT claim.version, bumped.value, (SELECT count(*) FROM inserted),
  (SELECT pg_notify($8, $9) FROM claim), (SELECT pg_notify($10, $11) FROM claim)
FROM p LEFT JOIN claim ON true LEFT JOIN bumped ON true`

const plainTable = `CREATE TABLE {plain_events} (
  position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream_id TEXT COLLATE "C" NOT NULL,
  seq BIGINT NOT NULL,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (stream_id, seq)
)`

const plainInsert = `INSERT INTO {plain_events} (stream_id, seq, id, type, payload, metadata, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7)`

/** The event payload of call `i` (the raw sides send it as JSON text, as the library stores it). */
const payload = (i: number) => ({ orderId: `o-${i}`, total: 42.5, items: [{ sku: "a", qty: 2 }] })

/** `url` with `application_name` set, so the sampler can tell the sides' backends apart. */
const named = (name: string): string => {
  const target = new URL(url)
  target.searchParams.set("application_name", name)
  return target.toString()
}

/** Runs `statements` (`{table}` names under `prefix`) on `admin`. */
const ddl = async (admin: postgres.Sql, prefix: string, statements: ReadonlyArray<Kit.Migration[number]>) => {
  for (const statement of statements) {
    const text = typeof statement === "string" ? statement : statement.pg
    if (text !== undefined) await admin.unsafe(Kit.resolve(text, prefix, "pg"))
  }
}

/**
 * Samples `pg_stat_activity` every 10 ms until stopped: the mean number of `application` backends in each wait
 * event (`running` when in none) over the samples.
 */
const sampleWaits = (admin: postgres.Sql, application: string) => {
  const totals = new Map<string, number>()
  let samples = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const rows = await admin<Array<{ wait: string; n: number }>>`
        SELECT COALESCE(wait_event_type || ':' || wait_event, 'running') AS wait, count(*)::int AS n
        FROM pg_stat_activity WHERE application_name = ${application} AND state = 'active' GROUP BY 1`
      samples++
      for (const { wait, n } of rows) totals.set(wait, (totals.get(wait) ?? 0) + n)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  })()
  return async (): Promise<Record<string, number>> => {
    running = false
    await loop
    const means: Record<string, number> = {}
    for (const [wait, total] of [...totals].sort((a, b) => b[1] - a[1])) {
      means[wait] = Math.round((total / Math.max(1, samples)) * 10) / 10
    }
    return means
  }
}

/** Runs every row `reps` times per side (each repetition starting with the next side); skipped without a server. */
export const runEventScale = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const stamp = runStamp()
  const prefixes: Record<Side, string> = {
    library: `bes_lib_${stamp}`,
    counter: `bes_ctr_${stamp}`,
    plain: `bes_raw_${stamp}`
  }
  const applications: Record<Side, string> = {
    library: `bench_event_scale_library_${stamp}`,
    counter: `bench_event_scale_counter_${stamp}`,
    plain: `bench_event_scale_plain_${stamp}`
  }
  const admin = await openAdmin(url)
  if (typeof admin === "string") throw new Error(admin)
  const layer = SqlEventStore.layerWith({ tablePrefix: prefixes.library }).pipe(
    Layer.provide(withOpenPool(PgDatabase.layer({ url: named(applications.library), maxConnections: POOL }), POOL))
  )
  const library = ManagedRuntime.make(layer)
  const counter = postgres(named(applications.counter), { max: POOL, onnotice: () => {} })
  const plain = postgres(named(applications.plain), { max: POOL, onnotice: () => {} })
  try {
    const store = await library.runPromise(EventStore)
    // Main's scheme: the kernel's and the events' first migrations only.
    await ddl(admin, prefixes.counter, Object.values(Kit.kernel.migrations)[0]!)
    await ddl(admin, prefixes.counter, SqlEventStore.schema.migrations["0001_events"]!)
    await ddl(admin, prefixes.plain, [plainTable])
    await Promise.all([openPool(counter, POOL), openPool(plain, POOL)])
    const counterText = Kit.resolve(counterSchemeAppend, prefixes.counter, "pg")
    const plainText = Kit.resolve(plainInsert, prefixes.plain, "pg")
    const wake = (stream: string) => [
      ...PgDatabase.notifyArgs(`bench:events:${stream}`),
      ...PgDatabase.notifyArgs("bench:events")
    ]
    /** Call `i` of run `run` by `caller` of a raw side: one event appended to the caller's own stream of that run. */
    const raw: Record<Exclude<Side, "library">, (run: string) => (i: number, caller: number) => Promise<unknown>> = {
      counter: (run) => (i, caller) => {
        const stream = `${run}-${caller}`
        return counter.unsafe(
          counterText,
          [
            stream,
            1,
            Date.now(),
            [randomUUID()],
            ["order.placed"],
            [payload(i)],
            ["{}"],
            ...wake(stream)
          ] as Array<any>,
          { prepare: true }
        )
      },
      plain: (run) => {
        const seqs = new Map<number, number>()
        return (i, caller) => {
          const seq = (seqs.get(caller) ?? 0) + 1
          seqs.set(caller, seq)
          return plain.unsafe(
            plainText,
            [`${run}-${caller}`, seq, randomUUID(), "order.placed", JSON.stringify(payload(i)), "{}", Date.now()],
            { prepare: true }
          )
        }
      }
    }
    /** Milliseconds for `ops` appends of `side` by `callers`, each to its own stream of run `run`. */
    const time = (side: Side, ops: number, callers: number, run: string): Promise<number> =>
      side === "library"
        ? library.runPromise(
            timeLibrary(ops, callers, (i, caller) =>
              store.append(`${run}-${caller}`, [{ type: "order.placed", payload: payload(i) }])
            )
          )
        : timeRaw(ops, callers, raw[side](run))
    let runs = 0
    const timed = async (side: Side, callers: number) => {
      const ops = opsAt(callers)
      return (ops / (await time(side, ops, callers, `r${++runs}`))) * 1000
    }
    // Warm-up: every side at 16 callers, untimed.
    for (const side of sides) await time(side, 600, 16, `warm-${side}`)
    const rows: Array<Row> = []
    for (const callers of CALLERS) {
      const results: Record<Side, Array<number>> = { library: [], counter: [], plain: [] }
      const load: Record<Side, [number, number]> = { library: [0, 0], counter: [0, 0], plain: [0, 0] }
      const waits: Partial<Record<Side, Record<string, number>>> = {}
      for (let rep = 0; rep < options.reps; rep++) {
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(rep + k) % sides.length]!
          if (rep === 0) load[side][0] = loadavg()[0]!
          const stop = callers === 64 && rep === 0 ? sampleWaits(admin, applications[side]) : undefined
          results[side].push(await timed(side, callers))
          if (stop !== undefined) waits[side] = await stop()
          load[side][1] = loadavg()[0]!
        }
      }
      for (const side of sides) {
        rows.push({
          workload,
          backend: "postgres",
          side,
          concurrency: callers,
          opsPerSec: Math.round(best(results[side])),
          medianOpsPerSec: Math.round(median(results[side])),
          ...(waits[side] === undefined ? {} : { waits: waits[side] }),
          load: [Math.round(load[side][0] * 10) / 10, Math.round(load[side][1] * 10) / 10]
        })
      }
    }
    return rows
  } finally {
    await library.dispose()
    await counter.end({ timeout: 1 })
    await plain.end({ timeout: 1 })
    await dropPrefixed(admin, prefixes.library, tablesOf(prefixes.library, withRequired([SqlEventStore.schema])))
    await dropPrefixed(
      admin,
      prefixes.counter,
      tablesOf(prefixes.counter, withRequired([SqlEventStore.schema])).filter((t) => !t.endsWith("_migrations"))
    )
    await dropPrefixed(admin, prefixes.plain, [`${prefixes.plain}_plain_events`])
    await admin.end({ timeout: 1 })
  }
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? "-" : (a / b).toFixed(2)

/** Prints `rows`: ops/s per side and callers, the targets' ratios, and the wait events at 64 callers. */
export const printEventScale = (rows: ReadonlyArray<Row>, reps: number = 3) => {
  const at = (side: Side, callers: number) => rows.find((r) => r.side === side && r.concurrency === callers)
  console.log(
    `event scale (PostgreSQL, pool ${POOL}): ${workload}; best of ${reps} runs per side (median in brackets); ` +
      "load = 1-minute load average at the start and end of the row's runs"
  )
  printTable(
    ["callers", ...sides.map((s) => sideNames[s]), "library / plain", "library / counter", "load"],
    CALLERS.map((callers) => [
      String(callers),
      ...sides.map((side) => {
        const row = at(side, callers)
        return row === undefined ? "-" : `${row.opsPerSec.toLocaleString("en-US")} (${row.medianOpsPerSec})`
      }),
      ratio(at("library", callers)?.opsPerSec, at("plain", callers)?.opsPerSec),
      ratio(at("library", callers)?.opsPerSec, at("counter", callers)?.opsPerSec),
      sides.map((side) => at(side, callers)?.load.join("-") ?? "-").join(" / ")
    ]),
    (column) => column === 0
  )
  for (const side of sides) {
    console.log(
      `${sideNames[side]}: 16 callers / 1 caller = ${ratio(at(side, 16)?.opsPerSec, at(side, 1)?.opsPerSec)}` +
        (side === "library"
          ? " (target >= 3); at 16, library / plain (target >= 0.5): " +
            ratio(at("library", 16)?.opsPerSec, at("plain", 16)?.opsPerSec)
          : "")
    )
  }
  console.log("server backends per wait event at 64 callers (mean over samples every 10 ms):")
  for (const side of sides) {
    const waits = at(side, 64)?.waits ?? {}
    const shown = Object.entries(waits)
      .slice(0, 6)
      .map(([wait, n]) => `${wait} ${n}`)
      .join(", ")
    console.log(`  ${sideNames[side]}: ${shown === "" ? "-" : shown}`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 3))
  const started = performance.now()
  printEventScale(await runEventScale({ reps }), reps)
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
