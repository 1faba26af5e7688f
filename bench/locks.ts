/**
 * The lock bench (issue 11): uncontended `acquire` + `release`, and
 * `withLock` around a no-op, each caller on its own key, through the library
 * and through the raw driver running the library's own statement texts
 * (`SqlLockStore.statements`, resolved with `Kit.resolve`) with the same round
 * trips: on SQLite (`SqlLockStore` on `SqliteDatabase` against raw
 * better-sqlite3: the read, counter bump and upsert in one immediate
 * transaction, then the release; each side on its own temp file) and on
 * PostgreSQL (`SqlLockStore` on `PgDatabase`, database clock, against the raw
 * `postgres` driver: the one-statement acquisition, then the release; pool 16
 * on both sides, each on its own tables, dropped at the end), at 1 caller on
 * SQLite and at 1 and 16 on PostgreSQL. The raw side of `withLock` is the
 * same acquire + release (what a caller would write by hand, without the
 * background refresh).
 *
 * A third side, the floor, runs the raw side's calls in the library's loop of
 * fibers (`timeFloor`): what any Effect program pays for the same work.
 * `runLocks({ reps })` runs the sides `reps` times per row after a warm-up run
 * of each, each repetition starting with the next side, and reports the best
 * ops/s of each side, their ratios to raw and the ratio of the medians. Run alone: `node --expose-gc --import tsx bench/locks.ts`
 * (`BENCH_REPS`, default 5; `DATABASE_URL`, default the local server).
 */
import Database from "better-sqlite3"
import { Effect, Layer, ManagedRuntime } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlLockStore from "../layers/sql/SqlLockStore.ts"
import { LockStore, tokenCounter } from "../src/Lock.ts"
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
  withOpenPool
} from "./timing.ts"

/** One row of the lock table: the library, the raw driver and the floor (see `timeFloor`). */
export type Row = FloorRow

const TTL = 30_000

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`bench sanity check failed: ${what}`)
}

const keyOf = (caller: number) => `bench-lock-${caller + 1}`
const ownerOf = (caller: number) => `bench-owner-${caller + 1}`

type Sql = ReadonlyArray<any>

/** The library's workloads. */
const libraryWorkloads = {
  "acquire + release": (ops: number, c: number) =>
    Effect.flatMap(LockStore, (locks) =>
      timeLibrary(ops, c, (_, caller) =>
        Effect.flatMap(locks.acquire(keyOf(caller), { owner: ownerOf(caller), ttl: TTL }), (lease) =>
          locks.release(lease)
        )
      )
    ),
  "withLock around a no-op": (ops: number, c: number) =>
    Effect.flatMap(LockStore, (locks) =>
      timeLibrary(ops, c, (_, caller) =>
        locks.withLock(keyOf(caller), Effect.void, { owner: ownerOf(caller), ttl: TTL })
      )
    )
} as const

type Workload = keyof typeof libraryWorkloads

const sides = ["library", "raw", "floor"] as const

/** Every workload at each concurrency: a warm-up run of each side, then `reps` runs, each starting with the next side. */
const runBackend = async (
  backend: Row["backend"],
  library: ManagedRuntime.ManagedRuntime<LockStore, unknown>,
  raw: (caller: number) => MaybePromise<unknown>,
  reps: number
): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []
  for (const workload of Object.keys(libraryWorkloads) as Array<Workload>) {
    for (const concurrency of backend === "sqlite" ? [1] : [1, POOL]) {
      const ops = backend === "sqlite" ? 3_000 : concurrency === 1 ? 1_000 : 1_500
      const times = { library: [] as Array<number>, raw: [] as Array<number>, floor: [] as Array<number> }
      for (let rep = -1; rep < reps; rep++) {
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(rep + 1 + k) % sides.length]!
          const ms =
            side === "library"
              ? await library.runPromise(libraryWorkloads[workload](ops, concurrency))
              : side === "raw"
                ? await timeRaw(ops, concurrency, (_, caller) => raw(caller))
                : await library.runPromise(timeFloor(ops, concurrency, (_, caller) => raw(caller)))
          if (rep >= 0) times[side].push(ops / (ms / 1000))
        }
      }
      rows.push({
        workload,
        backend,
        concurrency,
        ...opsFigures(times.library, times.raw),
        ...floorFigures(times.floor, times.raw)
      })
    }
  }
  return rows
}

const texts = (prefix: string, dialect: Kit.Dialect) => {
  const s = SqlLockStore.statements
  const t = (stmt: Kit.Stmt<any, any>) => Kit.resolve(stmt.text, prefix, dialect)
  return {
    select: t(s.select),
    bump: t(Kit.bumpCounter),
    upsert: t(s.upsert),
    acquirePg: t(s.acquirePg),
    release: t(s.release)
  }
}

const sqliteRows = async (reps: number): Promise<ReadonlyArray<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "lock-bench-"))
  const rawFile = join(dir, "raw.db")
  const store = (filename: string) => SqlLockStore.layer.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename })))
  const library = ManagedRuntime.make(store(join(dir, "library.db")))
  let raw: Database.Database | undefined
  try {
    // The raw side's file: the library's migrations, then closed.
    await Effect.runPromise(Effect.scoped(Layer.build(store(rawFile))))
    await library.runPromise(LockStore)
    const db = new Database(rawFile, { timeout: 5000 })
    raw = db
    db.pragma("journal_mode = WAL")
    db.pragma("synchronous = NORMAL")
    db.pragma(`cache_size = -${SqliteDatabase.pageCacheKiB}`)
    db.pragma(`mmap_size = ${SqliteDatabase.mmapBytes}`)
    const t = texts(Kit.defaultPrefix, "sqlite")
    const prepare = (text: string) => {
      const statement = db.prepare(text)
      statement.raw(true)
      return statement
    }
    const [select, bump, upsert, release] = [prepare(t.select), prepare(t.bump), prepare(t.upsert), prepare(t.release)]
    const acquire = db.transaction((key: string, owner: string, now: number) => {
      const current = select.get(key) as Sql | undefined
      if (current !== undefined && Number(current[4]) > now) return undefined
      const token = Number((bump.all(tokenCounter(key), 1)[0] as Sql)[0])
      return upsert.all(key, owner, token, now, now + TTL)[0] as Sql | undefined
    })
    const rawOp = (caller: number) => {
      const now = Date.now()
      const row = acquire.immediate(keyOf(caller), ownerOf(caller), now)
      check(row !== undefined, "raw acquire")
      const released = release.all(keyOf(caller), ownerOf(caller), row![2], Date.now())[0] as Sql | undefined
      check(released !== undefined && Number(released[0]) === 1, "raw release")
    }
    return await runBackend("sqlite", library, rawOp, reps)
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
  const libraryPrefix = `bench_lock_lib_${stamp}`
  const rawPrefix = `bench_lock_raw_${stamp}`
  const store = (tablePrefix: string, database: ReturnType<typeof PgDatabase.layer>) =>
    SqlLockStore.layerWith({ tablePrefix }).pipe(Layer.provide(database))
  const library = ManagedRuntime.make(
    store(libraryPrefix, withOpenPool(PgDatabase.layer({ url, maxConnections: POOL })))
  )
  const sql = postgres(url, { max: POOL, onnotice: () => {} })
  try {
    await Effect.runPromise(Effect.scoped(Layer.build(store(rawPrefix, PgDatabase.layer({ url, maxConnections: 1 })))))
    await library.runPromise(LockStore)
    await openPool(sql)
    const t = texts(rawPrefix, "pg")
    const one = (text: string, params: ReadonlyArray<unknown>) =>
      (sql.unsafe(text, params as Array<any>, { prepare: true }).values() as unknown as Promise<Array<Sql>>).then(
        (rows) => rows[0]
      )
    const rawOp = async (caller: number) => {
      const key = keyOf(caller)
      const row = await one(t.acquirePg, [null, key, tokenCounter(key), key, ownerOf(caller), TTL])
      check(row !== undefined && row[1] !== null, "raw acquire")
      const released = await one(t.release, [key, ownerOf(caller), row![3], null])
      check(released !== undefined && Number(released[0]) === 1, "raw release")
    }
    return await runBackend("postgres", library, rawOp, reps)
  } finally {
    await library.dispose()
    await sql.end({ timeout: 1 })
    for (const prefix of [libraryPrefix, rawPrefix]) {
      for (const table of ["locks", "locks_migrations", "counters", "kernel_migrations"]) {
        await admin.unsafe(`DROP TABLE IF EXISTS "${prefix}_${table}" CASCADE`)
      }
    }
    await admin.end({ timeout: 1 })
  }
}

/**
 * Runs every lock row on SQLite, then on PostgreSQL (`DATABASE_URL`, default the local server; its rows are left
 * out with a note when the server is unreachable).
 */
export const runLocks = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows = [...(await sqliteRows(options.reps))]
  const pg = await pgRows(options.reps)
  if (typeof pg === "string") console.log(`lock postgres rows skipped: ${pg}`)
  else rows.push(...pg)
  return rows
}

/** Prints `rows` as a table. */
export const printLocks = (rows: ReadonlyArray<Row>, reps: number) => {
  printOpsTable(
    `locks: best of ${reps} runs per side; raw = better-sqlite3 / postgres (porsager, pool ${POOL}), the ` +
      "library's statements and round trips; floor = the raw calls in the library's loop of fibers; one op = acquire " +
      "+ release (each caller its own key); target >= 0.8",
    rows
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 5))
  const started = performance.now()
  printLocks(await runLocks({ reps }), reps)
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
