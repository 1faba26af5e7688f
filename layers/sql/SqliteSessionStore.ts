/**
 * `SessionStore` on the embedded SQLite backend: every operation is prepared
 * statements run synchronously on `SqliteDatabase`'s connection (one SQL
 * statement each; the cascade of `delete` is the foreign keys').
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import { makeSessionStore, type SessionDriver, type SessionRow, SessionStore } from "../../src/Session.ts"
import { layer as migrations, type SqlOptions, SqlTables } from "./Migrations.ts"
import { sqlitePages } from "./Paging.ts"
import { prepared, SqliteDatabase } from "./SqliteDatabase.ts"

const columns = "id, agent_id, channel, title, status, metadata, message_count, created_at, updated_at, version"

type SessionTuple = [
  id: string,
  agentId: string | null,
  channel: string | null,
  title: string | null,
  status: string,
  metadata: string,
  messageCount: number,
  createdAt: number,
  updatedAt: number,
  version: number
]

const fromTuple = (t: SessionTuple): SessionRow => ({
  id: t[0],
  agentId: t[1],
  channel: t[2],
  title: t[3],
  status: t[4],
  metadata: t[5],
  messageCount: t[6],
  createdAt: t[7],
  updatedAt: t[8],
  version: t[9]
})

/** A `SessionDriver` over prepared statements on the `SqliteDatabase` connection. */
export const driver = Effect.gen(function* () {
  const { db, run } = yield* SqliteDatabase
  const t = yield* SqlTables
  const table = `"${t.sessions}"`
  const insertRow = `INSERT INTO ${table} (id, agent_id, channel, title, status, metadata, message_count,
    created_at, updated_at, version, transcript) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id)`
  const insert = db.prepare(`${insertRow} DO NOTHING`)
  const get = db.prepare<[string], SessionTuple>(`SELECT ${columns} FROM ${table} WHERE id = ?`).raw()
  const update = db
    .prepare<Array<unknown>, SessionTuple>(
      `UPDATE ${table} SET agent_id = ?, channel = ?, title = ?, status = ?, metadata = ?, updated_at = ?, version = ?
        WHERE id = ? AND version = ? RETURNING ${columns}`
    )
    .raw()
  const remove = db.prepare(`DELETE FROM ${table} WHERE id = ?`)
  const load = db.prepare<[string], { transcript: string }>(`SELECT transcript FROM ${table} WHERE id = ?`)
  const save =
    db.prepare(`${insertRow} DO UPDATE SET transcript = excluded.transcript, message_count = excluded.message_count,
    updated_at = excluded.updated_at WHERE ${table}.status <> 'closed' RETURNING id`)

  const pages = sqlitePages<SessionTuple>(db, t.sessions, columns)

  const values = (row: SessionRow, transcript: string) => [
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

  return {
    insert: (row) => run("session.insert", () => insert.run(values(row, "[]")).changes > 0),
    get: (id) =>
      run("session.get", () => {
        const tuple = get.get(id)
        return tuple === undefined ? undefined : fromTuple(tuple)
      }),
    update: (row) =>
      run("session.update", () => {
        const [stored] = update.all(
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
        return stored === undefined ? undefined : fromTuple(stored)
      }),
    list: (filter, page) =>
      run("session.list", () =>
        pages({ agent_id: filter.agentId, channel: filter.channel, status: filter.status }, page).map(fromTuple)
      ),
    delete: (id) => run("session.delete", () => void remove.run(id)),
    load: (id) => run("session.load", () => load.get(id)?.transcript),
    save: (row, transcript) =>
      // `.all()`, not `.get()`: a statement left unfinished commits on reset and skips the WAL auto-checkpoint.
      run("session.save", () => (save.all(values(row, transcript)).length === 0 ? "closed" : "saved"))
  } satisfies SessionDriver
})

/** `SessionStore` on the embedded SQLite backend, migrating the schema first. */
export const layerWith = (
  options: SqlOptions = {}
): Layer.Layer<SessionStore, StorageError, SqliteDatabase | SqlClient> =>
  Layer.effect(SessionStore, Effect.flatMap(prepared(driver), makeSessionStore)).pipe(
    Layer.provide(migrations(options))
  )

/** `SessionStore` on the embedded SQLite backend, with the default table prefix. */
export const layer: Layer.Layer<SessionStore, StorageError, SqliteDatabase | SqlClient> = layerWith()
