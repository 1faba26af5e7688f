/**
 * What the bench modules share to time their sides: the ops/s row, the server they use and the loops that time the
 * library (fibers) and the raw driver (plain calls or promises) on the same work.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Context, Effect, Layer } from "effect"
import { performance } from "node:perf_hooks"
import type postgres from "postgres"
import { best, median, printTable } from "./stats.ts"

/** The server of the PostgreSQL rows (`DATABASE_URL`, default the local one). */
export const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

/** Pool size of both sides on PostgreSQL, and the concurrency of its 16-caller rows. */
export const POOL = 16

/** The statement that holds a connection long enough for `POOL` of them to need `POOL` connections. */
const hold = "SELECT pg_sleep(0.05)"

/**
 * Opens every connection of a raw `postgres` pool of `size` (as many statements at once; default `POOL`). The library's pool has
 * opened most of its connections by the time its layer is built (its migrations run side by side), and a pool hands
 * one caller's statements to its open connections in turn, so a one-caller run on a pool with one open connection
 * reuses one warm server process where the other side's visits `POOL` of them. Both sides start with all open.
 */
export const openPool = (sql: postgres.Sql, size: number = POOL): Promise<unknown> =>
  Promise.all(Array.from({ length: size }, () => sql.unsafe(hold)))

/** `layer` with every connection of its `SqlClient`'s pool of `size` opened once it is built (see `openPool`). */
export const withOpenPool = <A, E, R>(layer: Layer.Layer<A, E, R>, size: number = POOL): Layer.Layer<A, E, R> =>
  Layer.tap(layer, (context) =>
    Effect.orDie(
      Effect.all(
        Array.from({ length: size }, () =>
          Context.unsafeGet(context as Context.Context<unknown>, SqlClient).unsafe(hold)
        ),
        { concurrency: "unbounded", discard: true }
      )
    )
  )

/** One row of an ops/s table: the library beside the raw driver on the same work. */
export interface OpsRow {
  readonly workload: string
  readonly backend: "sqlite" | "postgres"
  /** Concurrent callers (PostgreSQL: pool 16 on both sides). */
  readonly concurrency: number
  readonly opsPerSec: number
  readonly baselineOpsPerSec: number
  /** Best library ops/s over best raw ops/s. */
  readonly ratio: number
  /** Median library ops/s over median raw ops/s. */
  readonly medianRatio: number
}

/** A raw side's operation: a plain call (better-sqlite3) or a promise (`postgres`). */
export type MaybePromise<A> = A | Promise<A>

/** `f` of a raw call's result: at once for a plain value, after it for a promise. */
export const then = <A, B>(value: MaybePromise<A>, f: (a: A) => MaybePromise<B>): MaybePromise<B> =>
  value instanceof Promise ? value.then(f) : f(value)

/** Collects garbage when node runs with `--expose-gc`, so one side's garbage is not collected in the other's time. */
export const gc = (): void => (globalThis as { gc?: () => void }).gc?.()

/**
 * Milliseconds for `ops` raw calls `f(i, caller)` shared by `concurrency` callers: one caller runs them in a plain
 * loop (awaiting only promises), several take the next `i` in turn and await each call.
 */
export const timeRaw = async (
  ops: number,
  concurrency: number,
  f: (i: number, caller: number) => MaybePromise<unknown>
): Promise<number> => {
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

/** Milliseconds for `ops` library calls `f(i, caller)` shared by `concurrency` fibers, each taking the next `i`. */
export const timeLibrary = <R>(
  ops: number,
  concurrency: number,
  f: (i: number, caller: number) => Effect.Effect<unknown, unknown, R>
): Effect.Effect<number, unknown, R> =>
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

/**
 * Milliseconds for the floor of a raw side: its calls `f(i, caller)` run by the library's loop of fibers
 * (`timeLibrary`), a plain call as `Effect.sync` runs it, a promise awaited by `Effect.promise`. It is what any Effect
 * program pays to run the raw driver's work, before any library code.
 */
export const timeFloor = (
  ops: number,
  concurrency: number,
  f: (i: number, caller: number) => MaybePromise<unknown>
): Effect.Effect<number, unknown> => timeLibrary(ops, concurrency, (i, caller) => fromRaw(() => f(i, caller)))

/** A raw side's call as an Effect: a plain call as `Effect.sync` runs it, a promise awaited by `Effect.promise`. */
export const fromRaw = <A>(f: () => MaybePromise<A>): Effect.Effect<A> =>
  Effect.suspend(() => {
    const result = f()
    return result instanceof Promise ? Effect.promise(() => result) : Effect.succeed(result)
  })

/** An ops/s row with its floor (see `timeFloor`) beside the library and the raw driver. */
export interface FloorRow extends OpsRow {
  /** The floor's best ops/s. */
  readonly floorOpsPerSec: number
  /** Best floor ops/s over best raw ops/s: the most the row's `ratio` can reach, short of noise. */
  readonly floorRatio: number
  /** Median floor ops/s over median raw ops/s. */
  readonly medianFloorRatio: number
}

/** `x` to two decimals (the tables' ratios). */
export const round2 = (x: number): number => Math.round(x * 100) / 100

/** The figures of an ops/s row from each side's ops/s over its timed runs: best and median, and their ratios. */
export const opsFigures = (library: ReadonlyArray<number>, raw: ReadonlyArray<number>) => ({
  opsPerSec: Math.round(best(library)),
  baselineOpsPerSec: Math.round(best(raw)),
  ratio: round2(best(library) / best(raw)),
  medianRatio: round2(median(library) / median(raw))
})

/** The floor figures of a row from the floor's and the raw side's ops/s over their timed runs. */
export const floorFigures = (floor: ReadonlyArray<number>, raw: ReadonlyArray<number>) => ({
  floorOpsPerSec: Math.round(best(floor)),
  floorRatio: round2(best(floor) / best(raw)),
  medianFloorRatio: round2(median(floor) / median(raw))
})

/** The columns of an ops/s row, as the tables print them. */
export const opsColumns = ["workload", "backend", "callers", "ops/s library", "ops/s raw", "ratio", "median ratio"]

/** Prints ops/s rows as a table under the line `title` (what was run and against what), floors when they have them. */
export const printOpsTable = (title: string, rows: ReadonlyArray<OpsRow | FloorRow>): void => {
  console.log(title)
  const floors = rows.every((r): r is FloorRow => "floorRatio" in r)
  printTable(
    [...opsColumns, ...(floors ? ["ops/s floor", "floor ratio"] : [])],
    rows.map((r) => [
      r.workload,
      r.backend,
      String(r.concurrency),
      r.opsPerSec.toLocaleString("en-US"),
      r.baselineOpsPerSec.toLocaleString("en-US"),
      r.ratio.toFixed(2),
      r.medianRatio.toFixed(2),
      ...("floorRatio" in r ? [r.floorOpsPerSec.toLocaleString("en-US"), r.floorRatio.toFixed(2)] : [])
    ])
  )
}
