/**
 * `ConfigStore` on SQL, stated once for SQLite and PostgreSQL: one row per
 * saved version, keyed by `(name, version)`; a save inserts the next version
 * (the key settles a race between two saves), so history is kept by
 * construction. Values are JSON text.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { type ConfigDriver, type ConfigRow, ConfigStore, makeConfigStore } from "../../src/Config.ts"
import type { StorageError } from "../../src/Errors.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"

/** The config versions table and its migrations. */
export const schema: Kit.SqlSchema = {
  name: "configs",
  tables: ["config_versions"],
  migrations: {
    "0001_config_versions": [
      `CREATE TABLE IF NOT EXISTS {config_versions} (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        value TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (name, version)
      )`
    ]
  },
  requires: []
}

const columns = "name, version, value, created_at, updated_at"

const decode = (r: ReadonlyArray<any>): ConfigRow => ({
  name: r[0],
  version: Number(r[1]),
  value: r[2],
  createdAt: Number(r[3]),
  updatedAt: Number(r[4])
})

const latest = Kit.stmt<[name: string], ConfigRow>(
  `SELECT ${columns} FROM {config_versions} WHERE name = ? ORDER BY version DESC LIMIT 1`,
  decode
)
const version = Kit.stmt<[name: string, version: number], ConfigRow>(
  `SELECT ${columns} FROM {config_versions} WHERE name = ? AND version = ?`,
  decode
)
const insert = Kit.stmt<[string, number, string, number, number], string>(
  `INSERT INTO {config_versions} (${columns}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, version) DO NOTHING RETURNING name`,
  (r) => r[0]
)
const remove = Kit.stmt<[name: string]>(`DELETE FROM {config_versions} WHERE name = ?`)
const history = Kit.listing({ table: "config_versions", columns, orderBy: ["version"], decode })

/** The operations of `ConfigDriver`. */
export const ops = {
  latest: Kit.op("config.latest", (name: string) => Kit.one(latest, name)),
  version: Kit.op("config.version", (name: string, n: number) => Kit.one(version, name, n)),
  insert: Kit.op("config.insert", (row: ConfigRow) =>
    Kit.one(insert, row.name, row.version, row.value as string, row.createdAt, row.updatedAt).map(
      (name) => name !== undefined
    )
  ),
  history: Kit.op("config.history", (name: string, page: PageQuery) => history({ name }, page)),
  delete: Kit.op("config.delete", (name: string) => Kit.exec(remove, name))
}

/** A `ConfigDriver` on the SQL backend in context. */
export const driver: Effect.Effect<ConfigDriver, StorageError, SqlClient | Kit.SqlTables> = Kit.driver(ops)

/** `ConfigStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<ConfigStore, StorageError, SqlClient> =>
  Layer.effect(ConfigStore, Effect.map(driver, makeConfigStore)).pipe(Layer.provide(Kit.migrations(schema, options)))

/** `ConfigStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<ConfigStore, StorageError, SqlClient> = layerWith()
