/**
 * Every store at once, on one backend: `StoresMemory` for tests,
 * `StoresSqlite` (embedded default), `StoresPg` when one machine is not
 * enough, and `StoresFromConfig` to choose at run time.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Config, ConfigError, Effect, Either, Layer, Option, Redacted } from "effect"
import { existsSync } from "node:fs"
import { dirname, resolve } from "node:path"
import type { ModeOptions } from "../src/Backend.ts"
import type { SessionBroker } from "../src/Broker.ts"
import { Embeddings, layerLocal } from "../src/Embeddings.ts"
import { StorageError } from "../src/Errors.ts"
import { MemoryDatabase } from "./memory/MemoryDatabase.ts"
import { registry, type RegistryStores, type Stores } from "./Registry.ts"
import * as Broker from "./SessionBroker.ts"
import { defaultPrefix, type SqlOptions } from "./sql/Kit.ts"
import * as StorageBackend from "./StorageBackend.ts"
import * as PgDatabase from "./sql/PgDatabase.ts"
import * as SqliteDatabase from "./sql/SqliteDatabase.ts"
import type { SqlVectorOptions } from "./sql/SqlVectorStore.ts"

export type { Stores } from "./Registry.ts"

/** The registry's layers merged: together they provide every store. */
const mergeAll = <E, R>(layers: ReadonlyArray<Layer.Layer<RegistryStores, E, R>>): Layer.Layer<RegistryStores, E, R> =>
  Layer.mergeAll(...(layers as [Layer.Layer<RegistryStores, E, R>]))

/** The registry's stores with the services built over them (the `SessionBroker`) and the `Embeddings` they use. */
const complete = <E, R>(
  stores: Layer.Layer<RegistryStores, E, R | Embeddings>,
  options: Broker.BrokerOptions & BundleOptions
): Layer.Layer<RegistryStores | SessionBroker | Embeddings, E, R> =>
  Broker.layerWith({ tablePrefix: options.tablePrefix ?? defaultPrefix }).pipe(
    Layer.provideMerge(stores),
    Layer.provideMerge(options.embeddings ?? layerLocal())
  )

/** Options every bundle takes beside its connection's: the `Embeddings` of the memory tiers (default `layerLocal()`). */
export interface BundleOptions {
  readonly embeddings?: Layer.Layer<Embeddings>
}

/** Every store in memory, sharing one `MemoryDatabase`, with the local `Embeddings`. */
export const StoresMemory: Layer.Layer<Stores> = complete(
  mergeAll(registry.map((store) => store.memory as Layer.Layer<RegistryStores, never, MemoryDatabase | Embeddings>)),
  {}
).pipe(Layer.provide(MemoryDatabase.layer), Layer.provideMerge(StorageBackend.memory))

/**
 * Options of `StoresSql`: the tables' prefix, the mode (`{ mode: "production" }`), the embeddings and, on
 * PostgreSQL, the `VectorStore`'s pgvector path (`pgvector: "auto"`; see `SqlVectorOptions`).
 */
export interface StoresSqlOptions extends SqlOptions, ModeOptions, BundleOptions, Pick<SqlVectorOptions, "pgvector"> {}

/**
 * Every store's SQL layer over the `SqlClient` in context (prepared statements when `SqliteDatabase` is there).
 * The `StorageBackend` is built first, so `{ mode: "production" }` refuses a backend before any table is created.
 */
export const StoresSql = (options: StoresSqlOptions = {}): Layer.Layer<Stores, StorageError, SqlClient> =>
  complete(
    mergeAll(
      registry.map((store) => store.sql(options) as Layer.Layer<RegistryStores, StorageError, SqlClient | Embeddings>)
    ),
    options
  ).pipe(Layer.provideMerge(StorageBackend.layerSql(options)))

/**
 * Every store on one embedded SQLite file (default `./agent-stores.db`;
 * `":memory:"` for tests). Also provides the `SqlClient` on the same
 * connection, so your own queries and `sql.withTransaction` compose with the
 * stores.
 */
export const StoresSqlite = (
  options: SqliteDatabase.SqliteOptions & StoresSqlOptions = {}
): Layer.Layer<Stores | SqlClient | SqliteDatabase.SqliteDatabase, StorageError> =>
  StoresSql(options).pipe(Layer.provideMerge(SqliteDatabase.layer(options)))

/**
 * Options of `StoresPg`: the connection's (`url`, `maxConnections`, `prepare`,
 * `connectTimeout`, `operationTimeout`, `reconnectTimeout`; see `PgDatabaseOptions`) and the tables'.
 */
export interface PgOptions extends StoresSqlOptions, PgDatabase.PgDatabaseOptions {}

/** Every store on PostgreSQL. Also provides the `SqlClient` (a pool) the stores use. */
export const StoresPg = (options: PgOptions): Layer.Layer<Stores | SqlClient, StorageError> =>
  StoresSql(options).pipe(Layer.provideMerge(PgDatabase.layer(options)))

/** What `StoresFromConfig` opens, with the variable that named it (for error messages). */
type Choice =
  | { readonly backend: "memory" }
  | { readonly backend: "sqlite"; readonly filename: string; readonly from: string; readonly tablePrefix: string }
  | {
      readonly backend: "postgres"
      readonly url: Redacted.Redacted
      readonly from: string
      readonly tablePrefix: string
    }

const postgresScheme = /^postgres(?:ql)?:/i
const anyScheme = /^([a-z][a-z0-9+.-]*):\/\//i
const urlShape = "postgres://user:password@host:5432/database"

/** A variable that may be set to "" in an env file: empty means unset. */
const optionalVariable = (name: string) =>
  Config.option(Config.redacted(name)).pipe(Config.map(Option.filter((value) => Redacted.value(value) !== "")))

/** A configuration mistake: names the variables, never a value that may hold a password, and the fix. */
const invalid = (message: string) => Either.left(ConfigError.InvalidData([], message))

/** Reads and reconciles the variables; every mistake is a `ConfigError` (so `ConfigProvider` drives it in tests). */
const choice: Config.Config<Choice> = Config.all([
  Config.option(Config.literal("memory", "sqlite", "postgres")("AGENT_STORES_BACKEND")),
  optionalVariable("AGENT_STORES_URL"),
  optionalVariable("DATABASE_URL"),
  Config.string("AGENT_STORES_TABLE_PREFIX").pipe(Config.withDefault("agent"))
]).pipe(
  Config.mapOrFail(([backend, storesUrl, databaseUrl, tablePrefix]): Either.Either<Choice, ConfigError.ConfigError> => {
    const url = Option.getOrUndefined(Option.map(storesUrl, Redacted.value))
    const scheme = url === undefined ? undefined : anyScheme.exec(url)?.[1]
    const isPostgres = url !== undefined && postgresScheme.test(url)
    if (scheme !== undefined && !isPostgres) {
      return invalid(
        `AGENT_STORES_URL is a ${scheme}:// URL, which no backend opens: set it to a ${urlShape} URL ` +
          "(PostgreSQL) or to a SQLite file path"
      )
    }
    const implied = url === undefined ? undefined : isPostgres ? "postgres" : "sqlite"
    if (backend._tag === "Some" && implied !== undefined && backend.value !== implied) {
      return invalid(
        `AGENT_STORES_BACKEND is "${backend.value}" but AGENT_STORES_URL is ` +
          `${isPostgres ? "a PostgreSQL URL" : "a SQLite file path"}: set AGENT_STORES_BACKEND=${implied} ` +
          "(or unset it: the URL decides), or change AGENT_STORES_URL"
      )
    }
    const chosen = Option.getOrElse(backend, () => implied ?? "sqlite")
    if (chosen === "memory") return Either.right({ backend: "memory" })
    if (chosen === "sqlite") {
      return Either.right(
        url === undefined
          ? {
              backend: chosen,
              filename: SqliteDatabase.defaultFilename,
              from: "the default (AGENT_STORES_URL is unset)",
              tablePrefix
            }
          : { backend: chosen, filename: url, from: "AGENT_STORES_URL", tablePrefix }
      )
    }
    const [from, pgUrl] = url !== undefined ? ["AGENT_STORES_URL", storesUrl] : ["DATABASE_URL", databaseUrl]
    if (pgUrl._tag === "None") {
      return invalid(
        `AGENT_STORES_BACKEND is "postgres" but no URL is set: set AGENT_STORES_URL (or DATABASE_URL) to a ${urlShape} URL`
      )
    }
    const value = Redacted.value(pgUrl.value)
    if (!postgresScheme.test(value)) {
      return invalid(`${from} is not a postgres:// or postgresql:// URL: set AGENT_STORES_URL to a ${urlShape} URL`)
    }
    if (!anyScheme.test(value) || !URL.canParse(value)) {
      return invalid(
        `${from} does not parse as a URL (value not shown: it may hold a password): write it as ${urlShape}, ` +
          "with special characters in the user or password percent-encoded (e.g. %40 for @)"
      )
    }
    return Either.right({ backend: "postgres", url: pgUrl.value, from, tablePrefix })
  })
)

/** The configuration errors' messages, joined (`ConfigError`'s own text reads "(Invalid data at …)"). */
const configMessages = (error: ConfigError.ConfigError): ReadonlyArray<string> => {
  switch (error._op) {
    case "And":
    case "Or":
      return [...configMessages(error.left), ...configMessages(error.right)]
    default:
      return [error.path.length === 0 ? error.message : `${error.path.join(".")}: ${error.message}`]
  }
}

/** A URL for messages: scheme, user, host and database, never the password or the query. */
const shown = (url: Redacted.Redacted): string => {
  const parsed = new URL(Redacted.value(url))
  const user = parsed.username === "" ? "" : `${parsed.username}@`
  return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`
}

/** Why a SQLite file would not open, and the fix. */
const sqliteOpenFailure = (filename: string, from: string, cause: unknown): string => {
  const directory = dirname(resolve(filename))
  if (!existsSync(directory)) {
    return `the SQLite file "${filename}" (${from}) is in a directory that does not exist, ${directory}: create it, or set AGENT_STORES_URL to a file in an existing directory`
  }
  if ((cause as { code?: unknown } | undefined)?.code === "SQLITE_NOTADB") {
    return `"${filename}" (${from}) is not a SQLite database: set AGENT_STORES_URL to a SQLite file or to a new file's path`
  }
  return `cannot open the SQLite file "${filename}" (${from}): check that it and its directory are readable and writable`
}

/** A layer whose `operation` build failures say which variable named the database and how to fix it. */
const explained = <A>(
  layer: Layer.Layer<A, StorageError>,
  operation: string,
  explain: (cause: unknown) => string
): Layer.Layer<A, StorageError> =>
  Layer.mapError(layer, (error) =>
    error.operation === operation
      ? new StorageError({ ...error, cause: new Error(explain(error.cause), { cause: error.cause }) })
      : error
  )

/**
 * The bundle chosen by configuration, read through Effect `Config` (so a `ConfigProvider` drives it in tests):
 * - `AGENT_STORES_URL`: a `postgres://` or `postgresql://` URL selects PostgreSQL; anything else is the SQLite
 *   file (default `./agent-stores.db`).
 * - `AGENT_STORES_BACKEND`: `memory`, `sqlite` or `postgres`; when unset the URL decides (default `sqlite`). When
 *   it contradicts `AGENT_STORES_URL` (e.g. `sqlite` with a PostgreSQL URL), the build fails naming both.
 * - `DATABASE_URL`: PostgreSQL's URL when `AGENT_STORES_BACKEND=postgres` and `AGENT_STORES_URL` is unset (never a
 *   SQLite file, never a reason to pick PostgreSQL).
 * - `AGENT_STORES_TABLE_PREFIX` (default `agent`).
 *
 * Every failure is a `StorageError` whose message names the variable (or the file) and the fix, never a
 * password: a contradiction or a URL that does not parse (`operation: "configuration"`), a SQLite file in a
 * missing directory or one that is not a database (`operation: "open"`), an unreachable server (`"connect"`).
 */
export const StoresFromConfig: Layer.Layer<Stores, StorageError> = Layer.unwrapEffect(
  Effect.map(
    Effect.mapError(
      choice,
      (error) =>
        new StorageError({
          backend: "StoresFromConfig",
          operation: "configuration",
          cause: configMessages(error).join("; ")
        })
    ),
    (config): Layer.Layer<Stores, StorageError> => {
      switch (config.backend) {
        case "memory":
          return StoresMemory
        case "sqlite": {
          const { filename, from, tablePrefix } = config
          return explained(StoresSqlite({ filename, tablePrefix }), "open", (cause) =>
            sqliteOpenFailure(filename, from, cause)
          )
        }
        case "postgres": {
          const { from, tablePrefix, url } = config
          return explained(
            StoresPg({ url, tablePrefix }),
            "connect",
            () =>
              `cannot reach PostgreSQL at ${shown(url)} (${from}): check that the server runs and the URL's host, port, user and database`
          )
        }
      }
    }
  )
)
