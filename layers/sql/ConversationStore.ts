/**
 * `ConversationStore` over any `@effect/sql` `SqlClient`: PostgreSQL
 * (`StoresPg`) or a SQLite client of the caller's. Appends take the next seqs
 * and insert every row atomically (the conversation row is locked first, so
 * concurrent appends serialise and `seq` stays gapless): one statement on
 * PostgreSQL, a transaction elsewhere.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import {
  type ConversationDriver,
  type ConversationRow,
  ConversationStore,
  makeConversationStore,
  type StoredMessageRow
} from "../../src/Conversation.ts"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import type { MessageRow } from "../../src/Message.ts"
import { layer as migrations, type SqlOptions } from "./Migrations.ts"
import { selectPage } from "./Paging.ts"
import { isUniqueViolation, sqlDriver } from "./SqlDriver.ts"

/** The columns of a conversation row, in `SELECT` order. */
export const conversationColumns =
  "id, session_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version"

/** The columns of a message row, in `SELECT` order. */
export const messageColumns = "seq, id, role, parts, metadata, created_at"

/** Maps a selected conversation row (either dialect) to a driver row. */
export const fromSql = (row: any): ConversationRow => ({
  id: row.id,
  sessionId: row.session_id,
  title: row.title,
  model: row.model,
  metadata: row.metadata,
  messageCount: Number(row.message_count),
  lastSeq: Number(row.last_seq),
  createdAt: Number(row.created_at),
  updatedAt: Number(row.updated_at),
  version: Number(row.version)
})

/** Maps a selected message row (either dialect) to a driver row. */
export const messageFromSql = (row: any): StoredMessageRow => ({
  seq: Number(row.seq),
  id: row.id,
  role: row.role,
  parts: row.parts,
  metadata: row.metadata,
  createdAt: Number(row.created_at)
})

/** A `ConversationDriver` over the `SqlClient` in context. */
export const driver = Effect.gen(function* () {
  const { run, sql, storageError, tables: t } = yield* sqlDriver
  const table = sql(t.conversations)
  const messages = sql(t.messages)
  const columns = sql.literal(conversationColumns)
  const messageValues = (row: MessageRow) =>
    sql.csv([row.id, row.role, row.parts as string, row.metadata as string | null, row.createdAt].map((v) => sql`${v}`))
  const later = (now: number) => sql`CASE WHEN updated_at > ${now} THEN updated_at ELSE ${now} END`

  return {
    insert: (row) =>
      run(
        "conversation.insert",
        Effect.gen(function* () {
          const values = {
            id: row.id,
            session_id: row.sessionId,
            title: row.title,
            model: row.model,
            metadata: jsonText(row.metadata),
            message_count: row.messageCount,
            last_seq: row.lastSeq,
            created_at: row.createdAt,
            updated_at: row.updatedAt,
            version: row.version
          }
          const inserted =
            row.sessionId === null
              ? yield* sql`INSERT INTO ${table} ${sql.insert(values)} ON CONFLICT (id) DO NOTHING RETURNING id`
              : yield* sql`INSERT INTO ${table} (${sql.literal(conversationColumns)})
                SELECT ${sql.csv(Object.values(values).map((value) => sql`${value}`))}
                WHERE EXISTS (SELECT 1 FROM ${sql(t.sessions)} WHERE id = ${row.sessionId})
                ON CONFLICT (id) DO NOTHING RETURNING id`
          if (inserted.length > 0) return "inserted" as const
          const existing = yield* sql`SELECT id FROM ${table} WHERE id = ${row.id}`
          return existing.length > 0 ? ("exists" as const) : ("no-session" as const)
        })
      ),
    get: (id) =>
      run("conversation.get", sql`SELECT ${columns} FROM ${table} WHERE id = ${id}`).pipe(
        Effect.map((rows) => (rows.length === 0 ? undefined : fromSql(rows[0])))
      ),
    update: (row) =>
      run(
        "conversation.update",
        sql`UPDATE ${table} SET title = ${row.title}, model = ${row.model}, metadata = ${jsonText(row.metadata)},
          updated_at = ${row.updatedAt}, version = ${row.version}
          WHERE id = ${row.id} AND version = ${row.version - 1} RETURNING ${columns}`
      ).pipe(Effect.map((rows) => (rows.length === 0 ? undefined : fromSql(rows[0])))),
    list: (filter, page) =>
      run(
        "conversation.list",
        selectPage(sql, t.conversations, conversationColumns, { session_id: filter.sessionId }, page)
      ).pipe(Effect.map((rows) => rows.map(fromSql))),
    delete: (id) =>
      run(
        "conversation.delete",
        sql.onDialectOrElse({
          // PostgreSQL always enforces the ON DELETE CASCADE foreign key.
          pg: () => Effect.asVoid(sql`DELETE FROM ${table} WHERE id = ${id}`),
          orElse: () =>
            sql.withTransaction(
              Effect.all(
                [
                  sql`DELETE FROM ${table} WHERE id = ${id}`,
                  sql`DELETE FROM ${messages} WHERE conversation_id = ${id}`
                ],
                { discard: true }
              )
            )
        })
      ),
    append: (id, rows, now) =>
      sql
        .onDialectOrElse({
          // One statement, one round trip: the UPDATE locks the conversation row, so seqs stay gapless.
          pg: () =>
            Effect.map(
              sql`WITH bumped AS (
              UPDATE ${table} SET last_seq = last_seq + ${rows.length}, message_count = message_count + ${rows.length},
                updated_at = ${later(now)} WHERE id = ${id} RETURNING last_seq
            )
            INSERT INTO ${messages} (conversation_id, seq, id, role, parts, metadata, created_at)
            SELECT ${id}, bumped.last_seq - ${rows.length} + v.ord::bigint, v.id, v.role, v.parts::jsonb,
              v.metadata::jsonb, v.created_at::bigint
            FROM bumped, (VALUES ${sql.csv(rows.map((row, i) => sql`(${i + 1}, ${messageValues(row)})`))})
              AS v (ord, id, role, parts, metadata, created_at)
            RETURNING seq`,
              (inserted) =>
                inserted.length === 0 ? ("missing" as const) : Math.min(...inserted.map((row) => Number(row.seq)))
            ),
          orElse: () =>
            sql.withTransaction(
              Effect.gen(function* () {
                const bumped = yield* sql`UPDATE ${table} SET last_seq = last_seq + ${rows.length},
              message_count = message_count + ${rows.length}, updated_at = ${later(now)}
              WHERE id = ${id} RETURNING last_seq`
                if (bumped.length === 0) return "missing" as const
                const first = Number(bumped[0]!.last_seq) - rows.length + 1
                yield* sql`INSERT INTO ${messages} ${sql.insert(
                  rows.map((row, i) => ({
                    conversation_id: id,
                    seq: first + i,
                    id: row.id,
                    role: row.role,
                    parts: row.parts as string,
                    metadata: row.metadata as string | null,
                    created_at: row.createdAt
                  }))
                )}`
                return first
              })
            )
        })
        .pipe(
          Effect.catchIf(isUniqueViolation, () => Effect.succeed("duplicate" as const)),
          Effect.mapError(storageError("conversation.append"))
        ),
    messages: (id, options) =>
      run(
        "conversation.messages",
        Effect.gen(function* () {
          const where = [
            sql`conversation_id = ${id}`,
            ...(options.after === undefined ? [] : [sql`seq > ${options.after}`]),
            ...(options.before === undefined ? [] : [sql`seq < ${options.before}`])
          ]
          const oldestFirst = options.after !== undefined || options.limit === undefined
          const rows = yield* sql`SELECT ${sql.literal(messageColumns)} FROM ${messages} WHERE ${sql.and(where)}
            ORDER BY seq ${sql.literal(oldestFirst ? "ASC" : "DESC")}
            ${options.limit === undefined ? sql`` : sql`LIMIT ${options.limit}`}`
          if (rows.length === 0 && (yield* sql`SELECT id FROM ${table} WHERE id = ${id}`).length === 0) {
            return undefined
          }
          const window = rows.map(messageFromSql)
          return oldestFirst ? window : window.reverse()
        })
      ),
    clear: (id, now) =>
      run(
        "conversation.clear",
        sql.withTransaction(
          Effect.gen(function* () {
            const cleared = yield* sql`UPDATE ${table} SET message_count = 0, updated_at = ${later(now)}
            WHERE id = ${id} RETURNING id`
            if (cleared.length === 0) return false
            yield* sql`DELETE FROM ${messages} WHERE conversation_id = ${id}`
            return true
          })
        )
      )
  } satisfies ConversationDriver
})

/** `ConversationStore` over the `SqlClient` in context, migrating the schema first. */
export const layerWith = (options: SqlOptions = {}): Layer.Layer<ConversationStore, StorageError, SqlClient> =>
  Layer.effect(ConversationStore, Effect.flatMap(driver, makeConversationStore)).pipe(
    Layer.provide(migrations(options))
  )

/** `ConversationStore` over the `SqlClient` in context, with the default table prefix. */
export const layer: Layer.Layer<ConversationStore, StorageError, SqlClient> = layerWith()
