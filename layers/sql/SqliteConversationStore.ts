/**
 * `ConversationStore` on the embedded SQLite backend: prepared statements run
 * synchronously on `SqliteDatabase`'s connection. An append is one immediate
 * transaction (bump `last_seq`/`message_count`, insert the rows), so it is
 * atomic and gapless with no round trip between its statements.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type Sqlite from "better-sqlite3"
import { Effect, Layer } from "effect"
import {
  type ConversationDriver,
  type ConversationRow,
  ConversationStore,
  makeConversationStore,
  type MessagesOptions,
  type StoredMessageRow
} from "../../src/Conversation.ts"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import type { MessageRow } from "../../src/Message.ts"
import { layer as migrations, type SqlOptions, SqlTables } from "./Migrations.ts"
import { sqlitePages } from "./Paging.ts"
import { prepared, SqliteDatabase } from "./SqliteDatabase.ts"
import { isForeignKeyViolation, isUniqueViolation } from "./SqlDriver.ts"

const columns = "id, session_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version"

type ConversationTuple = [
  id: string,
  sessionId: string | null,
  title: string | null,
  model: string | null,
  metadata: string,
  messageCount: number,
  lastSeq: number,
  createdAt: number,
  updatedAt: number,
  version: number
]

const fromTuple = (t: ConversationTuple): ConversationRow => ({
  id: t[0],
  sessionId: t[1],
  title: t[2],
  model: t[3],
  metadata: t[4],
  messageCount: t[5],
  lastSeq: t[6],
  createdAt: t[7],
  updatedAt: t[8],
  version: t[9]
})
const messageColumns = "seq, id, role, parts, metadata, created_at"
type MessageTuple = [seq: number, id: string, role: string, parts: string, metadata: string | null, createdAt: number]

/** A `ConversationDriver` over prepared statements on the `SqliteDatabase` connection. */
export const driver = Effect.gen(function* () {
  const { db, run } = yield* SqliteDatabase
  const t = yield* SqlTables
  const table = `"${t.conversations}"`
  const messages = `"${t.messages}"`
  const insert = db.prepare(`INSERT INTO ${table} (id, session_id, title, model, metadata, message_count, last_seq,
    created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
  const get = db.prepare<[string], ConversationTuple>(`SELECT ${columns} FROM ${table} WHERE id = ?`).raw()
  const update = db
    .prepare<Array<unknown>, ConversationTuple>(
      `UPDATE ${table} SET title = ?, model = ?, metadata = ?, updated_at = ?, version = ?
        WHERE id = ? AND version = ? RETURNING ${columns}`
    )
    .raw()
  const remove = db.prepare(`DELETE FROM ${table} WHERE id = ?`)
  const bump = db
    .prepare<[number, number, number, number, string], number>(
      `UPDATE ${table} SET last_seq = last_seq + ?, message_count = message_count + ?,
        updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END WHERE id = ? RETURNING last_seq`
    )
    .pluck()
  const insertMessage = db.prepare(`INSERT INTO ${messages} (conversation_id, seq, id, role, parts, metadata,
    created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
  const zero = db.prepare<{ id: string; now: number }>(
    `UPDATE ${table} SET message_count = 0, updated_at = CASE WHEN updated_at > :now THEN updated_at ELSE :now END
      WHERE id = :id`
  )
  const deleteMessages = db.prepare(`DELETE FROM ${messages} WHERE conversation_id = ?`)
  const exists = db.prepare<[string], { id: string }>(`SELECT id FROM ${table} WHERE id = ?`)

  const append = db.transaction((id: string, rows: ReadonlyArray<MessageRow>, now: number) => {
    const lastSeq = bump.get(rows.length, rows.length, now, now, id)
    if (lastSeq === undefined) return "missing" as const
    const first = lastSeq - rows.length + 1
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!
      insertMessage.run(id, first + i, row.id, row.role, row.parts, row.metadata, row.createdAt)
    }
    return first
  })
  const clear = db.transaction((id: string, now: number) => {
    if (zero.run({ id, now }).changes === 0) return false
    deleteMessages.run(id)
    return true
  })

  const pages = sqlitePages<ConversationTuple>(db, t.conversations, columns)
  const windows = new Map<string, Sqlite.Statement<Array<unknown>, MessageTuple>>()
  const windowStatement = (options: MessagesOptions, oldestFirst: boolean) => {
    const key = `${options.after !== undefined}${options.before !== undefined}${options.limit !== undefined}${oldestFirst}`
    let statement = windows.get(key)
    if (statement === undefined) {
      statement = db
        .prepare<Array<unknown>, MessageTuple>(
          `SELECT ${messageColumns} FROM ${messages} WHERE conversation_id = ?
            ${options.after === undefined ? "" : "AND seq > ?"} ${options.before === undefined ? "" : "AND seq < ?"}
            ORDER BY seq ${oldestFirst ? "ASC" : "DESC"} ${options.limit === undefined ? "" : "LIMIT ?"}`
        )
        .raw()
      windows.set(key, statement)
    }
    return statement
  }

  return {
    insert: (row) =>
      run("conversation.insert", () => {
        try {
          const { changes } = insert.run(
            row.id,
            row.sessionId,
            row.title,
            row.model,
            jsonText(row.metadata),
            row.messageCount,
            row.lastSeq,
            row.createdAt,
            row.updatedAt,
            row.version
          )
          return changes > 0 ? "inserted" : "exists"
        } catch (error) {
          if (isForeignKeyViolation(error)) return "no-session"
          throw error
        }
      }),
    get: (id) =>
      run("conversation.get", () => {
        const tuple = get.get(id)
        return tuple === undefined ? undefined : fromTuple(tuple)
      }),
    update: (row) =>
      run("conversation.update", () => {
        const [stored] = update.all(
          row.title,
          row.model,
          jsonText(row.metadata),
          row.updatedAt,
          row.version,
          row.id,
          row.version - 1
        )
        return stored === undefined ? undefined : fromTuple(stored)
      }),
    list: (filter, page) =>
      run("conversation.list", () => pages({ session_id: filter.sessionId }, page).map(fromTuple)),
    delete: (id) => run("conversation.delete", () => void remove.run(id)),
    append: (id, rows, now) =>
      run("conversation.append", () => {
        try {
          return append.immediate(id, rows, now)
        } catch (error) {
          if (isUniqueViolation(error)) return "duplicate"
          throw error
        }
      }),
    messages: (id, options) =>
      run("conversation.messages", () => {
        const oldestFirst = options.after !== undefined || options.limit === undefined
        const params: Array<unknown> = [id]
        if (options.after !== undefined) params.push(options.after)
        if (options.before !== undefined) params.push(options.before)
        if (options.limit !== undefined) params.push(options.limit)
        const tuples = windowStatement(options, oldestFirst).all(params)
        if (tuples.length === 0 && exists.get(id) === undefined) return undefined
        const n = tuples.length
        const rows: Array<StoredMessageRow> = new Array(n)
        for (let i = 0; i < n; i++) {
          const t = tuples[oldestFirst ? i : n - 1 - i]!
          rows[i] = { seq: t[0], id: t[1], role: t[2], parts: t[3], metadata: t[4], createdAt: t[5] }
        }
        return rows
      }),
    clear: (id, now) => run("conversation.clear", () => clear.immediate(id, now))
  } satisfies ConversationDriver
})

/** `ConversationStore` on the embedded SQLite backend, migrating the schema first. */
export const layerWith = (
  options: SqlOptions = {}
): Layer.Layer<ConversationStore, StorageError, SqliteDatabase | SqlClient> =>
  Layer.effect(ConversationStore, Effect.flatMap(prepared(driver), makeConversationStore)).pipe(
    Layer.provide(migrations(options))
  )

/** `ConversationStore` on the embedded SQLite backend, with the default table prefix. */
export const layer: Layer.Layer<ConversationStore, StorageError, SqliteDatabase | SqlClient> = layerWith()
