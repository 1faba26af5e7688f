/**
 * `SessionStore` over any `@effect/sql` `SqlClient`: PostgreSQL (`StoresPg`)
 * or a SQLite client of the caller's. One statement per operation where the
 * dialects allow it; `sql.withTransaction` where several rows move together.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import { makeSessionStore, type SessionDriver, type SessionRow, SessionStore } from "../../src/Session.ts"
import { layer as migrations, type SqlOptions } from "./Migrations.ts"
import { selectPage } from "./Paging.ts"
import { sqlDriver } from "./SqlDriver.ts"

/** The columns of a session row, in `SELECT` order. */
export const sessionColumns =
  "id, agent_id, channel, title, status, metadata, message_count, created_at, updated_at, version"

/** Maps a selected session row (either dialect) to a driver row. */
export const fromSql = (row: any): SessionRow => ({
  id: row.id,
  agentId: row.agent_id,
  channel: row.channel,
  title: row.title,
  status: row.status,
  metadata: row.metadata,
  messageCount: Number(row.message_count),
  createdAt: Number(row.created_at),
  updatedAt: Number(row.updated_at),
  version: Number(row.version)
})

/** A `SessionDriver` over the `SqlClient` in context. */
export const driver = Effect.gen(function* () {
  const { run, sql, tables: t } = yield* sqlDriver
  const table = sql(t.sessions)
  const columns = sql.literal(sessionColumns)

  return {
    insert: (row) =>
      run(
        "session.insert",
        sql`INSERT INTO ${table} ${sql.insert(toSql(row, "[]"))} ON CONFLICT (id) DO NOTHING RETURNING id`
      ).pipe(Effect.map((rows) => rows.length > 0)),
    get: (id) =>
      run("session.get", sql`SELECT ${columns} FROM ${table} WHERE id = ${id}`).pipe(
        Effect.map((rows) => (rows.length === 0 ? undefined : fromSql(rows[0])))
      ),
    update: (row) =>
      run(
        "session.update",
        sql`UPDATE ${table} SET agent_id = ${row.agentId}, channel = ${row.channel}, title = ${row.title},
          status = ${row.status}, metadata = ${jsonText(row.metadata)}, updated_at = ${row.updatedAt},
          version = ${row.version}
          WHERE id = ${row.id} AND version = ${row.version - 1} RETURNING ${columns}`
      ).pipe(Effect.map((rows) => (rows.length === 0 ? undefined : fromSql(rows[0])))),
    list: (filter, page) =>
      run(
        "session.list",
        selectPage(
          sql,
          t.sessions,
          sessionColumns,
          { agent_id: filter.agentId, channel: filter.channel, status: filter.status },
          page
        )
      ).pipe(Effect.map((rows) => rows.map(fromSql))),
    delete: (id) =>
      run(
        "session.delete",
        sql.onDialectOrElse({
          // PostgreSQL always enforces the ON DELETE CASCADE foreign keys.
          pg: () => Effect.asVoid(sql`DELETE FROM ${table} WHERE id = ${id}`),
          orElse: () =>
            sql.withTransaction(
              Effect.all(
                [
                  sql`DELETE FROM ${table} WHERE id = ${id}`,
                  sql`DELETE FROM ${sql(t.messages)} WHERE conversation_id IN
                (SELECT id FROM ${sql(t.conversations)} WHERE session_id = ${id})`,
                  sql`DELETE FROM ${sql(t.conversations)} WHERE session_id = ${id}`
                ],
                { discard: true }
              )
            )
        })
      ),
    load: (id) =>
      run("session.load", sql`SELECT transcript FROM ${table} WHERE id = ${id}`).pipe(
        Effect.map((rows) => rows[0]?.transcript)
      ),
    save: (row, transcript) =>
      run(
        "session.save",
        sql`INSERT INTO ${table} ${sql.insert(toSql(row, transcript))}
          ON CONFLICT (id) DO UPDATE SET transcript = excluded.transcript, message_count = excluded.message_count,
          updated_at = excluded.updated_at WHERE ${table}.status <> 'closed' RETURNING id`
      ).pipe(Effect.map((rows) => (rows.length > 0 ? "saved" : "closed")))
  } satisfies SessionDriver
})

const toSql = (row: SessionRow, transcript: string) => ({
  id: row.id,
  agent_id: row.agentId,
  channel: row.channel,
  title: row.title,
  status: row.status,
  metadata: jsonText(row.metadata),
  message_count: row.messageCount,
  created_at: row.createdAt,
  updated_at: row.updatedAt,
  version: row.version,
  transcript
})

/** `SessionStore` over the `SqlClient` in context, migrating the schema first. */
export const layerWith = (options: SqlOptions = {}): Layer.Layer<SessionStore, StorageError, SqlClient> =>
  Layer.effect(SessionStore, Effect.flatMap(driver, makeSessionStore)).pipe(Layer.provide(migrations(options)))

/** `SessionStore` over the `SqlClient` in context, with the default table prefix. */
export const layer: Layer.Layer<SessionStore, StorageError, SqlClient> = layerWith()
