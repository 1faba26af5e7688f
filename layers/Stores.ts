/**
 * Every store at once, on one backend: `StoresMemory` for tests,
 * `StoresSqlite` (embedded default), `StoresPg` when one machine is not
 * enough, and `StoresFromConfig` to choose at run time.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Config, Effect, Layer, Option } from "effect"
import { StorageError } from "../src/Errors.ts"
import { MemoryDatabase } from "./memory/MemoryDatabase.ts"
import { registry, type Stores } from "./Registry.ts"
import type { SqlOptions } from "./sql/Kit.ts"
import * as PgDatabase from "./sql/PgDatabase.ts"
import * as SqliteDatabase from "./sql/SqliteDatabase.ts"

export type { Stores } from "./Registry.ts"

/** The registry's layers merged: together they provide every store. */
const mergeAll = <E, R>(layers: ReadonlyArray<Layer.Layer<Stores, E, R>>): Layer.Layer<Stores, E, R> =>
  Layer.mergeAll(...(layers as [Layer.Layer<Stores, E, R>]))

/** Every store in memory, sharing one `MemoryDatabase`. */
export const StoresMemory: Layer.Layer<Stores> = mergeAll<never, MemoryDatabase>(
  registry.map((store) => store.memory as Layer.Layer<Stores, never, MemoryDatabase>)
).pipe(Layer.provide(MemoryDatabase.layer))

/** Every store's SQL layer over the `SqlClient` in context (prepared statements when `SqliteDatabase` is there). */
export const StoresSql = (options: SqlOptions = {}): Layer.Layer<Stores, StorageError, SqlClient> =>
  mergeAll(registry.map((store) => store.sql(options) as Layer.Layer<Stores, StorageError, SqlClient>))

/**
 * Every store on one embedded SQLite file (default `./agent-stores.db`;
 * `":memory:"` for tests). Also provides the `SqlClient` on the same
 * connection, so your own queries and `sql.withTransaction` compose with the
 * stores.
 */
export const StoresSqlite = (
  options: SqliteDatabase.SqliteOptions & SqlOptions = {}
): Layer.Layer<Stores | SqlClient | SqliteDatabase.SqliteDatabase, StorageError> =>
  StoresSql(options).pipe(Layer.provideMerge(SqliteDatabase.layer(options)))

/**
 * Options of `StoresPg`: the connection's (`url`, `maxConnections`, `prepare`,
 * `connectTimeout`, `operationTimeout`; see `PgDatabaseOptions`) and the tables'.
 */
export interface PgOptions extends SqlOptions, PgDatabase.PgDatabaseOptions {}

/** Every store on PostgreSQL. Also provides the `SqlClient` (a pool) the stores use. */
export const StoresPg = (options: PgOptions): Layer.Layer<Stores | SqlClient, StorageError> =>
  StoresSql(options).pipe(Layer.provideMerge(PgDatabase.layer(options)))

/**
 * The bundle chosen by configuration: `AGENT_STORES_BACKEND` (`memory`,
 * `sqlite` (default) or `postgres`); `AGENT_STORES_URL` as the SQLite file
 * (default `./agent-stores.db`) or the PostgreSQL URL (falling back to
 * `DATABASE_URL` for PostgreSQL only, so a `DATABASE_URL` meant for another
 * database never names a SQLite file); `AGENT_STORES_TABLE_PREFIX` (default `agent`).
 */
export const StoresFromConfig: Layer.Layer<Stores, StorageError> = Layer.unwrapEffect(
  Effect.gen(function* () {
    const backend = yield* Config.literal(
      "memory",
      "sqlite",
      "postgres"
    )("AGENT_STORES_BACKEND").pipe(Config.withDefault("sqlite"))
    const url = yield* Config.option(Config.string("AGENT_STORES_URL"))
    const databaseUrl = yield* Config.option(Config.string("DATABASE_URL"))
    const tablePrefix = yield* Config.string("AGENT_STORES_TABLE_PREFIX").pipe(Config.withDefault("agent"))
    switch (backend) {
      case "memory":
        return StoresMemory
      case "sqlite":
        return StoresSqlite({ filename: url._tag === "Some" ? url.value : SqliteDatabase.defaultFilename, tablePrefix })
      case "postgres": {
        const pgUrl = Option.orElse(url, () => databaseUrl)
        if (pgUrl._tag === "None") {
          return Layer.fail(
            new StorageError({
              backend: "postgres",
              operation: "config",
              cause: "AGENT_STORES_URL or DATABASE_URL is required"
            })
          )
        }
        return StoresPg({ url: pgUrl.value, tablePrefix })
      }
    }
  }).pipe(Effect.mapError((cause) => new StorageError({ backend: "config", operation: "config", cause })))
)
