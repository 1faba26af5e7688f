/**
 * `SessionStore` on SQL, stated once for SQLite and PostgreSQL: its schema,
 * statements and operations (one statement each), run by the store kit. A
 * session's conversations go with it through their foreign key
 * (`ON DELETE CASCADE`, enforced on both dialects).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import { makeSessionStore, type SessionDriver, type SessionRow, SessionStore } from "../../src/Session.ts"
import * as Kit from "./Kit.ts"

/** The sessions table and its migrations. */
export const schema: Kit.SqlSchema = {
  name: "sessions",
  tables: ["sessions"],
  migrations: {
    "0001_sessions": [
      `CREATE TABLE IF NOT EXISTS {sessions} (
        id TEXT PRIMARY KEY NOT NULL,
        agent_id TEXT,
        channel TEXT,
        title TEXT,
        status TEXT NOT NULL,
        metadata TEXT NOT NULL,
        message_count INTEGER NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        version INTEGER NOT NULL,
        transcript TEXT NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS {sessions_created} ON {sessions} (created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {sessions_agent} ON {sessions} (agent_id, created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {sessions_channel} ON {sessions} (channel, created_at, id)`
    ],
    // Tables made before JSON moved to text (jsonb cannot hold U+0000 or lone surrogates).
    "0002_json_as_text": [
      { pg: "ALTER TABLE {sessions} ALTER COLUMN metadata TYPE TEXT, ALTER COLUMN transcript TYPE TEXT" }
    ]
  },
  requires: []
}

const columns = "id, agent_id, channel, title, status, metadata, message_count, created_at, updated_at, version"

const decode = (r: ReadonlyArray<any>): SessionRow => ({
  id: r[0],
  agentId: r[1],
  channel: r[2],
  title: r[3],
  status: r[4],
  metadata: r[5],
  messageCount: Number(r[6]),
  createdAt: Number(r[7]),
  updatedAt: Number(r[8]),
  version: Number(r[9])
})

type Values = [...Array<unknown>]

const values = (row: SessionRow, transcript: string): Values => [
  row.id,
  row.agentId,
  row.channel,
  row.title,
  row.status,
  jsonText(row.metadata),
  row.messageCount,
  row.createdAt,
  row.updatedAt,
  row.version,
  transcript
]

const insertRow = `INSERT INTO {sessions} (${columns}, transcript) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id)`
const insert = Kit.stmt<Values, string>(`${insertRow} DO NOTHING RETURNING id`, (r) => r[0])
const get = Kit.stmt<[id: string], SessionRow>(`SELECT ${columns} FROM {sessions} WHERE id = ?`, decode)
const update = Kit.stmt<Values, SessionRow>(
  `UPDATE {sessions} SET agent_id = ?, channel = ?, title = ?, status = ?, metadata = ?, updated_at = ?, version = ?
    WHERE id = ? AND version = ? RETURNING ${columns}`,
  decode
)
const remove = Kit.stmt<[id: string]>(`DELETE FROM {sessions} WHERE id = ?`)
const load = Kit.stmt<[id: string], string>(`SELECT transcript FROM {sessions} WHERE id = ?`, (r) => r[0])
const save = Kit.stmt<Values, string>(
  `${insertRow} DO UPDATE SET transcript = excluded.transcript, message_count = excluded.message_count,
    updated_at = excluded.updated_at WHERE {sessions}.status <> 'closed' RETURNING id`,
  (r) => r[0]
)
const list = Kit.listing({ table: "sessions", columns, orderBy: ["created_at", "id"], decode })

/** The operations of `SessionDriver`. */
export const ops = {
  insert: Kit.op("session.insert", (row: SessionRow) =>
    Kit.one(insert, ...values(row, "[]")).map((id) => id !== undefined)
  ),
  get: Kit.op("session.get", (id: string) => Kit.one(get, id)),
  update: Kit.op("session.update", (row: SessionRow) =>
    Kit.one(
      update,
      row.agentId,
      row.channel,
      row.title,
      row.status,
      jsonText(row.metadata),
      row.updatedAt,
      row.version,
      row.id,
      row.version - 1
    )
  ),
  list: Kit.op(
    "session.list",
    (filter: Parameters<SessionDriver["list"]>[0], page: Parameters<SessionDriver["list"]>[1]) =>
      list({ agent_id: filter.agentId, channel: filter.channel, status: filter.status }, page)
  ),
  delete: Kit.op("session.delete", (id: string) => Kit.exec(remove, id)),
  load: Kit.op("session.load", (id: string) => Kit.one(load, id)),
  save: Kit.op("session.save", (row: SessionRow, transcript: string) =>
    Kit.one(save, ...values(row, transcript)).map((id) => (id === undefined ? ("closed" as const) : ("saved" as const)))
  )
}

/** A `SessionDriver` on the SQL backend in context. */
export const driver: Effect.Effect<SessionDriver, StorageError, SqlClient | Kit.SqlTables> = Kit.driver(ops)

/**
 * `SessionStore` on SQL, migrating the schema first: prepared statements on the embedded SQLite backend's connection
 * when `SqliteDatabase` is in context, otherwise the `SqlClient` in context (PostgreSQL, or your own SQLite client).
 */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<SessionStore, StorageError, SqlClient> =>
  Layer.effect(SessionStore, Effect.flatMap(driver, makeSessionStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `SessionStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<SessionStore, StorageError, SqlClient> = layerWith()
