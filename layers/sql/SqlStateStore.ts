/**
 * `StateStore` on SQL, stated once for SQLite and PostgreSQL: one row per key
 * (keys in code point order on both dialects: SQLite's `BINARY`, PostgreSQL's
 * `COLLATE "C"`), values as JSON text. A `set` is one statement: an upsert, or
 * a compare-and-set `UPDATE … WHERE version = ?` when a version is expected. A
 * prefix listing is a key range, so it reads only the keys it returns.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import type { PageQuery } from "../../src/Page.ts"
import { makeStateStore, type StateDriver, type StateRow, StateStore } from "../../src/State.ts"
import * as Kit from "./Kit.ts"

const entriesTable = (collate: string) => `CREATE TABLE IF NOT EXISTS {state_entries} (
  key TEXT${collate} PRIMARY KEY NOT NULL,
  value TEXT NOT NULL,
  version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
)`

/** The state entries table and its migrations. */
export const schema: Kit.SqlSchema = {
  name: "state",
  tables: ["state_entries"],
  migrations: {
    "0001_state_entries": [{ sqlite: `${entriesTable("")} WITHOUT ROWID`, pg: entriesTable(` COLLATE "C"`) }]
  },
  requires: []
}

const columns = "key, value, version, created_at, updated_at"

const decode = (r: ReadonlyArray<any>): StateRow => ({
  key: r[0],
  value: r[1],
  version: Number(r[2]),
  createdAt: Number(r[3]),
  updatedAt: Number(r[4])
})

const laterUpdate =
  "CASE WHEN excluded.updated_at > {state_entries}.updated_at THEN excluded.updated_at ELSE {state_entries}.updated_at END"

const get = Kit.stmt<[key: string], StateRow>(`SELECT ${columns} FROM {state_entries} WHERE key = ?`, decode)
const upsert = Kit.stmt<[key: string, value: string, now: number, now: number], StateRow>(
  `INSERT INTO {state_entries} (${columns}) VALUES (?, ?, 1, ?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = {state_entries}.version + 1,
      updated_at = ${laterUpdate}
    RETURNING ${columns}`,
  decode
)
const insert = Kit.stmt<[key: string, value: string, now: number, now: number], StateRow>(
  `INSERT INTO {state_entries} (${columns}) VALUES (?, ?, 1, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING ${columns}`,
  decode
)
const update = Kit.stmt<[value: string, now: number, now: number, key: string, version: number], StateRow>(
  `UPDATE {state_entries} SET value = ?, version = version + 1,
      updated_at = CASE WHEN ? > updated_at THEN ? ELSE updated_at END
    WHERE key = ? AND version = ? RETURNING ${columns}`,
  decode
)
const remove = Kit.stmt<[key: string], string>(`DELETE FROM {state_entries} WHERE key = ? RETURNING key`, (r) => r[0])
const removeAt = Kit.stmt<[key: string, version: number], string>(
  `DELETE FROM {state_entries} WHERE key = ? AND version = ? RETURNING key`,
  (r) => r[0]
)

const listing = Kit.listing({ table: "state_entries", columns, orderBy: ["key"], decode })

/** One page of keys (after the cursor, within the prefix's key range). */
const list = (prefix: string | undefined, page: PageQuery): Kit.Call<ReadonlyArray<StateRow>> =>
  listing({}, page, prefix === undefined ? [] : Kit.prefixRange("key", prefix))

/** The operations of `StateDriver`. */
export const ops = {
  get: Kit.op("state.get", (key: string) => Kit.one(get, key)),
  upsert: Kit.op("state.upsert", (key: string, value: string, now: number) =>
    Kit.one(upsert, key, value, now, now).map((row) => row!)
  ),
  insert: Kit.op("state.insert", (key: string, value: string, now: number) => Kit.one(insert, key, value, now, now)),
  update: Kit.op("state.update", (key: string, value: string, now: number, version: number) =>
    Kit.one(update, value, now, now, key, version)
  ),
  delete: Kit.op("state.delete", (key: string, version: number | undefined) =>
    (version === undefined ? Kit.one(remove, key) : Kit.one(removeAt, key, version)).map((k) => k !== undefined)
  ),
  list: Kit.op("state.list", list)
}

/** A `StateDriver` on the SQL backend in context. */
export const driver: Effect.Effect<StateDriver, StorageError, SqlClient | Kit.SqlTables> = Kit.driver(ops)

/** `StateStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<StateStore, StorageError, SqlClient> =>
  Layer.effect(StateStore, Effect.map(driver, makeStateStore)).pipe(Layer.provide(Kit.migrations(schema, options)))

/** `StateStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<StateStore, StorageError, SqlClient> = layerWith()
