/**
 * The embedded SQLite backend: one better-sqlite3 connection owned by the
 * layer, exposed both as an `@effect/sql` `SqlClient` (migrations, ad-hoc
 * queries, user transactions) and as `SqliteDatabase` for the stores' hot
 * paths, which run prepared statements synchronously on the same connection.
 *
 * Hot paths never slip into another fiber's open transaction: when one is
 * open they wait for it (the client's connection permit), and inside the
 * caller's own `sql.withTransaction` they join it (as a savepoint).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import type Sqlite from "better-sqlite3"
import { Context, Effect, Layer, Option, Schedule, Stream } from "effect"
import { StorageError } from "../../src/Errors.ts"
import * as OptionalPackage from "../OptionalPackage.ts"
import * as CommitHooks from "./CommitHooks.ts"

/** Whether a thrown SQLite error is SQLITE_BUSY (another connection holds a lock). */
const isBusy = (error: unknown): boolean => {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === "string" && code.startsWith("SQLITE_BUSY")
}

/** Options of the embedded SQLite backend. */
export interface SqliteOptions {
  /** Database file; `":memory:"` for a private in-memory database. Default `./agent-stores.db`. */
  readonly filename?: string
  /**
   * `synchronous` pragma. Default `"normal"`: with WAL a crash of the process
   * or of the machine never corrupts the database or leaves a partial
   * transaction, but a power loss may roll back the last commits. `"full"`
   * fsyncs every commit (power-loss durable, ≈ 10× slower writes here).
   */
  readonly synchronous?: "normal" | "full"
  /** How long a writer waits for another process's lock, in milliseconds. Default 5000. */
  readonly busyTimeoutMs?: number
}

/** The default database file. */
export const defaultFilename = "./agent-stores.db"

/** Page cache of the connection, in KiB (`cache_size`; SQLite's default is 2 MiB). */
export const pageCacheKiB = 65_536

/** Bytes of the file read through memory mapping (`mmap_size`) instead of `read` calls. */
export const mmapBytes = 268_435_456

/** The stores' direct access to the SQLite connection. */
export class SqliteDatabase extends Context.Tag("effect-agent-stores/SqliteDatabase")<
  SqliteDatabase,
  {
    /** The connection; prepare statements on it once, at layer build. */
    readonly db: Sqlite.Database
    /**
     * Runs `f` synchronously once no other fiber's transaction is open (or
     * inside the caller's own), mapping a thrown error to `StorageError`.
     */
    readonly run: <A>(operation: string, f: () => A) => Effect.Effect<A, StorageError>
  }
>() {}

const compiler = Statement.makeCompilerSqlite()

/**
 * better-sqlite3 installed without its native module: npm 11 skips the install scripts of packages that the app's
 * `allowScripts` does not list, and `--ignore-scripts` skips them all.
 */
const unbuilt = (cause: unknown): unknown =>
  cause instanceof Error && cause.message.includes("Could not locate the bindings file")
    ? new Error(
        "better-sqlite3 is installed but its native module was not built (its install script did not run): " +
          "run npm install-scripts approve better-sqlite3 && npm rebuild better-sqlite3",
        { cause }
      )
    : cause

/** Opens the connection, applies the pragmas and builds both services; closes the connection with the scope. */
export const make = (options: SqliteOptions = {}) =>
  Effect.gen(function* () {
    const filename = options.filename ?? defaultFilename
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000
    // better-sqlite3 is loaded when a database is first opened: importing the library never loads the native module.
    const Database = yield* OptionalPackage.load<typeof Sqlite>(OptionalPackage.betterSqlite3)
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => new Database(filename, { timeout: busyTimeoutMs }),
        catch: (cause) => new StorageError({ backend: "sqlite", operation: "open", cause: unbuilt(cause) })
      }),
      (db) => Effect.sync(() => db.close())
    )
    const pragma = (statement: string) =>
      Effect.try({
        try: () => db.pragma(statement),
        catch: (cause) => new StorageError({ backend: "sqlite", operation: "open", cause })
      })
    if (filename !== ":memory:" && filename !== "") {
      // Switching a new file to WAL takes a lock that SQLite does not wait for: retry while another process holds it.
      yield* pragma("journal_mode = WAL").pipe(
        Effect.retry({
          while: (error) => isBusy(error.cause),
          schedule: Schedule.exponential("2 millis").pipe(Schedule.jittered, Schedule.upTo(busyTimeoutMs))
        })
      )
    }
    yield* pragma(`synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`)
    yield* pragma("foreign_keys = ON")
    // Reads stay as fast at 100k sessions as at 10k (`npm run bench -- --scale`): the default 2 MiB page cache
    // thrashes once a filtered list touches a table larger than it. Both are upper bounds, used only as needed.
    yield* pragma(`cache_size = -${pageCacheKiB}`)
    yield* pragma(`mmap_size = ${mmapBytes}`)

    const permit = yield* Effect.makeSemaphore(1)
    const hooks = CommitHooks.make()
    const failed = `Failed to execute statement on ${filename === "" ? ":memory:" : filename}`
    const statements = new Map<string, Sqlite.Statement>()
    const prepare = (sql: string) => {
      let statement = statements.get(sql)
      if (statement === undefined) {
        if (statements.size >= 500) statements.clear()
        statement = db.prepare(sql)
        statements.set(sql, statement)
      }
      return statement
    }
    const execute = (statement: () => Sqlite.Statement, params: ReadonlyArray<unknown>) =>
      Effect.try({
        try: (): ReadonlyArray<any> => {
          const prepared = statement()
          if (prepared.reader) return prepared.all(...params)
          prepared.run(...params)
          return []
        },
        catch: (cause) => new SqlError({ cause, message: failed })
      })

    const connection: Connection = {
      execute: (sql, params, transformRows) => {
        const rows = execute(() => prepare(sql), params)
        return transformRows ? Effect.map(rows, transformRows) : rows
      },
      executeRaw: (sql, params) =>
        Effect.try({
          try: () => {
            const prepared = prepare(sql)
            return prepared.reader ? prepared.all(...params) : prepared.run(...params)
          },
          catch: (cause) => new SqlError({ cause, message: failed })
        }),
      executeUnprepared: (sql, params, transformRows) => {
        // `withTransaction`'s statements: hooks wait for COMMIT, and a ROLLBACK after a BEGIN that failed (the file
        // was locked) is a no-op, so the caller sees the lock and not "cannot rollback - no transaction is active".
        const observed = Effect.sync(() => hooks.observe(connection, sql))
        if (!db.inTransaction && /^ROLLBACK$/i.test(sql)) return Effect.as(observed, [])
        const rows = Effect.zipLeft(
          execute(() => db.prepare(sql), params),
          observed
        )
        return transformRows ? Effect.map(rows, transformRows) : rows
      },
      executeValues: (sql, params) =>
        Effect.try({
          try: () => {
            const prepared = prepare(sql)
            if (!prepared.reader) {
              prepared.run(...params)
              return []
            }
            try {
              return prepared.raw(true).all(...params) as Array<Array<unknown>>
            } finally {
              prepared.raw(false)
            }
          },
          catch: (cause) => new SqlError({ cause, message: failed })
        }),
      executeStream: (sql, params, transformRows) =>
        Stream.flatMap(connection.execute(sql, params, transformRows), Stream.fromIterable)
    }

    const client = yield* SqlClient.make({
      acquirer: permit.withPermits(1)(Effect.succeed(connection)),
      transactionAcquirer: Effect.as(
        Effect.acquireRelease(permit.take(1), () => permit.release(1)),
        connection
      ),
      beginTransaction: "BEGIN IMMEDIATE",
      compiler,
      spanAttributes: [["db.system.name", "sqlite"]]
    })

    const attempt = <A>(operation: string, f: () => A): Effect.Effect<A, StorageError> => {
      try {
        return Effect.succeed(f())
      } catch (cause) {
        return Effect.fail(new StorageError({ backend: "sqlite", operation, cause }))
      }
    }
    const run = <A>(operation: string, f: () => A): Effect.Effect<A, StorageError> =>
      Effect.suspend(() => {
        if (!db.inTransaction) return attempt(operation, f)
        return Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (open) =>
          Option.isSome(open) && open.value[0] === connection
            ? attempt(operation, f)
            : permit.withPermits(1)(Effect.suspend(() => attempt(operation, f)))
        )
      })

    return { client, database: SqliteDatabase.of({ db, run }), hooks }
  })

/** The embedded SQLite backend: `SqliteDatabase` and an `SqlClient` on one connection. */
export const layer = (
  options: SqliteOptions = {}
): Layer.Layer<SqliteDatabase | SqlClient.SqlClient | CommitHooks.CommitHooks, StorageError> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ client, database, hooks }) =>
      Context.make(SqliteDatabase, database).pipe(
        Context.add(SqlClient.SqlClient, client),
        Context.add(CommitHooks.CommitHooks, hooks)
      )
    )
  ).pipe(Layer.provide(Reactivity.layer))
