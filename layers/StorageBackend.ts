/**
 * The `StorageBackend` layers: memory, embedded SQLite (`SqliteDatabase` in
 * context), PostgreSQL (an `SqlClient` in context), and `layerSql`, which
 * picks between the SQL ones by what is in context. Each reads its facts from
 * the backend itself (SQLite's `synchronous` pragma and file, PostgreSQL's
 * version, `fsync` and `synchronous_commit`), so what it reports is what the
 * connection does, and applies `checkMode` at build: with
 * `{ mode: "production" }` a backend that would lose the authoritative stores,
 * or one short of the durability asked for, fails the build with a
 * `StorageError` naming the option to change.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Either, Layer, Option } from "effect"
import { type BackendInfo, checkMode, guarantees, type ModeOptions, StorageBackend } from "../src/Backend.ts"
import { StorageError } from "../src/Errors.ts"
import * as Kit from "./sql/Kit.ts"
import { SqliteDatabase } from "./sql/SqliteDatabase.ts"

/** Options of the SQL backend layers: the table prefix and the mode. */
export interface BackendOptions extends Kit.SqlOptions, ModeOptions {}

const memoryInfo: BackendInfo = {
  name: "memory",
  dialect: "memory",
  durable: false,
  powerLossDurable: false,
  serverVersion: "in-process",
  tablePrefix: Option.none(),
  durability: "nothing outlives the process: the data lives in its memory.",
  concurrency: "one process: the data is not shared with other processes.",
  guarantees
}

const sqliteConcurrency =
  "processes on one machine share the file: one writer at a time (WAL, busy timeout), readers never blocked; not for network file systems."

const pgConcurrency =
  "any number of processes and hosts: transactions and row locks serialise conflicting writes; live reads are woken across processes by LISTEN/NOTIFY."

/** The facts of a SQLite database: `synchronous` (0–3), journal mode, whether it is a file, the library's version. */
interface SqliteFacts {
  readonly synchronous: number
  readonly journalMode: string
  readonly file: boolean
  readonly version: string
  readonly prefix: string
}

const synchronousNames = ["OFF", "NORMAL", "FULL", "EXTRA"]

const sqliteInfo = (facts: SqliteFacts): BackendInfo => {
  const level = synchronousNames[facts.synchronous] ?? String(facts.synchronous)
  const wal = facts.journalMode.toLowerCase() === "wal"
  const powerLossDurable = facts.file && facts.synchronous >= 2
  const durability = !facts.file
    ? "nothing outlives the connection: a SQLite :memory: database is gone when it closes."
    : facts.synchronous >= 2
      ? `every commit is synced to disk (synchronous = ${level}): it survives a process crash, an OS crash and a power loss.`
      : facts.synchronous === 1 && wal
        ? "a process crash loses no commit and never corrupts the file; a power loss or OS crash may roll back the last commits (synchronous = NORMAL)."
        : `a process crash loses no commit; a power loss or OS crash may lose commits or corrupt the file (synchronous = ${level}, journal_mode = ${facts.journalMode}).`
  return {
    name: "sqlite",
    dialect: "sqlite",
    durable: facts.file,
    powerLossDurable,
    serverVersion: `SQLite ${facts.version}`,
    tablePrefix: Option.some(facts.prefix),
    durability,
    concurrency: facts.file ? sqliteConcurrency : "one connection: a :memory: database is private to it.",
    guarantees
  }
}

/** The facts of a PostgreSQL server. */
interface PgFacts {
  readonly version: string
  readonly fsync: string
  readonly synchronousCommit: string
  readonly prefix: string
}

const pgInfo = (facts: PgFacts): BackendInfo => {
  const fsync = facts.fsync === "on"
  const commit = facts.synchronousCommit
  const durability = !fsync
    ? "fsync = off: a server or OS crash may corrupt the database."
    : commit === "off"
      ? "a server crash or power loss may lose the last commits (synchronous_commit = off), never corrupting the database."
      : `every commit is flushed to the server's WAL before it returns (fsync = on, synchronous_commit = ${commit}): it survives a server crash and a power loss.`
  return {
    name: "postgres",
    dialect: "pg",
    durable: true,
    powerLossDurable: fsync && commit !== "off",
    serverVersion: `PostgreSQL ${facts.version}`,
    tablePrefix: Option.some(facts.prefix),
    durability,
    concurrency: pgConcurrency,
    guarantees
  }
}

const failed = (backend: string) => (cause: unknown) => new StorageError({ backend, operation: "backend", cause })

/** Provides `info` after the mode check. */
const checked = <E, R>(info: Effect.Effect<BackendInfo, E, R>, options: ModeOptions) =>
  Layer.effect(
    StorageBackend,
    Effect.flatMap(info, (info) => Either.map(checkMode(info, options), () => StorageBackend.of(info)))
  )

/** The memory backend, without a mode check. */
export const memory: Layer.Layer<StorageBackend> = Layer.succeed(StorageBackend, memoryInfo)

/** The memory backend; `{ mode: "production" }` refuses it at build (the authoritative stores would be lost). */
export const layerMemory = (options: ModeOptions = {}): Layer.Layer<StorageBackend, StorageError> =>
  checked(Effect.succeed(memoryInfo), options)

const prefixOf = (options: Kit.SqlOptions) => options.tablePrefix ?? Kit.defaultPrefix

/** The embedded SQLite backend's facts, read from its connection. */
const sqliteFromDatabase = (options: BackendOptions) =>
  Effect.flatMap(SqliteDatabase, ({ db }) =>
    Effect.try({
      try: (): BackendInfo =>
        sqliteInfo({
          synchronous: Number(db.pragma("synchronous", { simple: true })),
          journalMode: String(db.pragma("journal_mode", { simple: true })),
          file: !db.memory && db.name !== "",
          version: String(db.prepare("SELECT sqlite_version()").pluck().get()),
          prefix: prefixOf(options)
        }),
      catch: failed("sqlite")
    })
  )

/** A SQLite backend's facts through any `SqlClient` on SQLite (a caller's own client). */
const sqliteFromClient = (sql: SqlClient, options: BackendOptions) =>
  Effect.gen(function* () {
    const [synchronous] = yield* sql.unsafe<{ synchronous: number }>("PRAGMA synchronous")
    const [journal] = yield* sql.unsafe<{ journal_mode: string }>("PRAGMA journal_mode")
    const databases = yield* sql.unsafe<{ name: string; file: string }>("PRAGMA database_list")
    const [version] = yield* sql.unsafe<{ v: string }>("SELECT sqlite_version() AS v")
    const main = databases.find((d) => d.name === "main")
    return sqliteInfo({
      synchronous: Number(synchronous?.synchronous),
      journalMode: String(journal?.journal_mode),
      file: main !== undefined && main.file !== "",
      version: String(version?.v),
      prefix: prefixOf(options)
    })
  }).pipe(Effect.mapError(failed("sqlite")))

/** A PostgreSQL server's facts. */
const pgFromClient = (sql: SqlClient, options: BackendOptions) =>
  Effect.map(
    sql.unsafe<{ v: string; f: string; s: string }>(
      "SELECT current_setting('server_version') AS v, current_setting('fsync') AS f, current_setting('synchronous_commit') AS s"
    ),
    (rows): BackendInfo =>
      pgInfo({ version: rows[0]!.v, fsync: rows[0]!.f, synchronousCommit: rows[0]!.s, prefix: prefixOf(options) })
  ).pipe(Effect.mapError(failed("postgres")))

/** The embedded SQLite backend (`SqliteDatabase` in context), checked against `options.mode`. */
export const layerSqlite = (options: BackendOptions = {}): Layer.Layer<StorageBackend, StorageError, SqliteDatabase> =>
  checked(sqliteFromDatabase(options), options)

/** PostgreSQL (the `SqlClient` in context), checked against `options.mode`. */
export const layerPg = (options: BackendOptions = {}): Layer.Layer<StorageBackend, StorageError, SqlClient> =>
  checked(
    Effect.flatMap(SqlClient, (sql) => pgFromClient(sql, options)),
    options
  )

/**
 * The SQL backend in context, checked against `options.mode`: the embedded SQLite connection when
 * `SqliteDatabase` is there, otherwise the `SqlClient`'s dialect (PostgreSQL or SQLite).
 */
export const layerSql = (options: BackendOptions = {}): Layer.Layer<StorageBackend, StorageError, SqlClient> =>
  checked(
    Effect.gen(function* () {
      const sqlite = yield* Effect.serviceOption(SqliteDatabase)
      if (Option.isSome(sqlite))
        return yield* Effect.provideService(sqliteFromDatabase(options), SqliteDatabase, sqlite.value)
      const sql = yield* SqlClient
      const dialect = sql.onDialectOrElse({
        pg: () => "pg" as const,
        sqlite: () => "sqlite" as const,
        orElse: () => undefined
      })
      if (dialect === "pg") return yield* pgFromClient(sql, options)
      if (dialect === "sqlite") return yield* sqliteFromClient(sql, options)
      return yield* new StorageError({ backend: "sql", operation: "backend", cause: "unsupported SQL dialect" })
    }),
    options
  )
