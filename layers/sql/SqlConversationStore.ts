/**
 * `ConversationStore` on SQL, stated once for SQLite and PostgreSQL. An
 * append bumps the conversation's `last_seq` first (locking its row, so
 * concurrent appends serialise and `seq` stays gapless) and inserts the
 * messages in the same transaction; on PostgreSQL that is one statement.
 * Messages go with their conversation, and conversations with their session,
 * through foreign keys (`ON DELETE CASCADE`, enforced on both dialects).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import {
  type ConversationDriver,
  type ConversationRow,
  ConversationStore,
  makeConversationStore,
  type MessagesWindow,
  type StoredMessageRow
} from "../../src/Conversation.ts"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import type { MessageRow } from "../../src/Message.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"
import * as SqlSessionStore from "./SqlSessionStore.ts"

const messagesTable = `CREATE TABLE IF NOT EXISTS {messages} (
  conversation_id TEXT NOT NULL REFERENCES {conversations} (id) ON DELETE CASCADE,
  seq BIGINT NOT NULL,
  id TEXT NOT NULL,
  role TEXT NOT NULL,
  parts TEXT NOT NULL,
  metadata TEXT,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (conversation_id, seq)
)`

/** The conversations and messages tables and their migrations (after the sessions table they reference). */
export const schema: Kit.SqlSchema = {
  name: "conversations",
  tables: ["conversations", "messages"],
  migrations: {
    "0001_conversations": [
      `CREATE TABLE IF NOT EXISTS {conversations} (
        id TEXT PRIMARY KEY NOT NULL,
        session_id TEXT REFERENCES {sessions} (id) ON DELETE CASCADE,
        title TEXT,
        model TEXT,
        metadata TEXT NOT NULL,
        message_count INTEGER NOT NULL,
        last_seq BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        version INTEGER NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS {conversations_created} ON {conversations} (created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {conversations_session} ON {conversations} (session_id, created_at, id)`,
      { sqlite: `${messagesTable} WITHOUT ROWID`, pg: messagesTable },
      `CREATE UNIQUE INDEX IF NOT EXISTS {messages_id} ON {messages} (conversation_id, id)`
    ],
    // Tables made before JSON moved to text (jsonb cannot hold U+0000 or lone surrogates).
    "0002_json_as_text": [
      { pg: "ALTER TABLE {conversations} ALTER COLUMN metadata TYPE TEXT" },
      { pg: "ALTER TABLE {messages} ALTER COLUMN parts TYPE TEXT, ALTER COLUMN metadata TYPE TEXT" }
    ]
  },
  requires: [SqlSessionStore.schema]
}

const columns = "id, session_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version"

const decode = (r: ReadonlyArray<any>): ConversationRow => ({
  id: r[0],
  sessionId: r[1],
  title: r[2],
  model: r[3],
  metadata: r[4],
  messageCount: Number(r[5]),
  lastSeq: Number(r[6]),
  createdAt: Number(r[7]),
  updatedAt: Number(r[8]),
  version: Number(r[9])
})

const decodeMessage = (r: ReadonlyArray<any>): StoredMessageRow => ({
  seq: Number(r[0]),
  id: r[1],
  role: r[2],
  parts: r[3],
  metadata: r[4],
  createdAt: Number(r[5])
})

/** `updated_at` moved to `?` unless it is already later (bound twice). */
const laterUpdatedAt = "updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END"

const insert = Kit.stmt<Array<unknown>, string>(
  `INSERT INTO {conversations} (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING
    RETURNING id`,
  (r) => r[0]
)
const get = Kit.stmt<[id: string], ConversationRow>(`SELECT ${columns} FROM {conversations} WHERE id = ?`, decode)
const update = Kit.stmt<Array<unknown>, ConversationRow>(
  `UPDATE {conversations} SET title = ?, model = ?, metadata = ?, updated_at = ?, version = ?
    WHERE id = ? AND version = ? RETURNING ${columns}`,
  decode
)
const remove = Kit.stmt<[id: string]>(`DELETE FROM {conversations} WHERE id = ?`)
const exists = Kit.stmt<[id: string], string>(`SELECT id FROM {conversations} WHERE id = ?`, (r) => r[0])
const bump = Kit.stmt<[count: number, count: number, now: number, now: number, id: string], number>(
  `UPDATE {conversations} SET last_seq = last_seq + ?, message_count = message_count + ?, ${laterUpdatedAt}
    WHERE id = ? RETURNING last_seq`,
  (r) => Number(r[0])
)
const insertMessage = Kit.stmt<Array<unknown>>(
  `INSERT INTO {messages} (conversation_id, seq, id, role, parts, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`
)
/** PostgreSQL: the bump and every row in one statement, the rows as arrays (no bind-parameter limit per batch). */
const appendAll = Kit.stmt<Array<unknown>, number>(
  `WITH bumped AS (
    UPDATE {conversations} SET last_seq = last_seq + ?, message_count = message_count + ?, ${laterUpdatedAt}
    WHERE id = ? RETURNING last_seq
  ), inserted AS (
    INSERT INTO {messages} (conversation_id, seq, id, role, parts, metadata, created_at)
    SELECT ?, bumped.last_seq - ? + v.ord, v.id, v.role, v.parts, v.metadata, v.created_at
    FROM bumped, unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::int8[])
      WITH ORDINALITY AS v (id, role, parts, metadata, created_at, ord)
  )
  SELECT last_seq FROM bumped`,
  (r) => Number(r[0])
)
const zero = Kit.stmt<[now: number, now: number, id: string], string>(
  `UPDATE {conversations} SET message_count = 0, ${laterUpdatedAt} WHERE id = ? RETURNING id`,
  (r) => r[0]
)
const removeMessages = Kit.stmt<[id: string]>(`DELETE FROM {messages} WHERE conversation_id = ?`)
const list = Kit.listing({ table: "conversations", columns, orderBy: ["created_at", "id"], decode })

/** The statement of one shape of `messages` window: the first `limit` after `after`, else the newest `limit`. */
const windows = new Map<string, Kit.Stmt<Array<unknown>, StoredMessageRow>>()
const windowOf = (window: MessagesWindow) => {
  const { after, before } = window
  const key = `${after !== undefined}${before !== undefined}`
  let statement = windows.get(key)
  if (statement === undefined) {
    statement = Kit.stmt(
      `SELECT seq, id, role, parts, metadata, created_at FROM {messages} WHERE conversation_id = ?
        ${after === undefined ? "" : "AND seq > ?"} ${before === undefined ? "" : "AND seq < ?"}
        ORDER BY seq ${after === undefined ? "DESC" : "ASC"} LIMIT ?`,
      decodeMessage
    )
    windows.set(key, statement)
  }
  return statement
}

const duplicate = () => "duplicate" as const

/** The operations of `ConversationDriver`. */
export const ops = {
  insert: Kit.op(
    "conversation.insert",
    (row: ConversationRow) =>
      Kit.one(
        insert,
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
      ).map((id) => (id === undefined ? ("exists" as const) : ("inserted" as const))),
    { onViolation: () => "no-session" as const }
  ),
  get: Kit.op("conversation.get", (id: string) => Kit.one(get, id)),
  update: Kit.op("conversation.update", (row: ConversationRow) =>
    Kit.one(update, row.title, row.model, jsonText(row.metadata), row.updatedAt, row.version, row.id, row.version - 1)
  ),
  list: Kit.op("conversation.list", (filter: { readonly sessionId?: string | undefined }, page: PageQuery) =>
    list({ session_id: filter.sessionId }, page)
  ),
  delete: Kit.op("conversation.delete", (id: string) => Kit.exec(remove, id)),
  append: Kit.op(
    "conversation.append",
    function* (id: string, rows: ReadonlyArray<MessageRow>, now: number) {
      const last = yield* Kit.one(bump, rows.length, rows.length, now, now, id)
      if (last === undefined) return "missing" as const
      const first = last - rows.length + 1
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i]!
        yield* Kit.exec(insertMessage, id, first + i, row.id, row.role, row.parts, row.metadata, row.createdAt)
      }
      return first
    },
    {
      atomic: true,
      pg: (id, rows, now) =>
        Kit.one(
          appendAll,
          rows.length,
          rows.length,
          now,
          now,
          id,
          id,
          rows.length,
          rows.map((row) => row.id),
          rows.map((row) => row.role),
          rows.map((row) => row.parts),
          rows.map((row) => row.metadata),
          rows.map((row) => row.createdAt)
        ).map((last) => (last === undefined ? ("missing" as const) : last - rows.length + 1)),
      onViolation: duplicate
    }
  ),
  messages: Kit.op("conversation.messages", function* (id: string, window: MessagesWindow) {
    const params: Array<unknown> = [id]
    if (window.after !== undefined) params.push(window.after)
    if (window.before !== undefined) params.push(window.before)
    params.push(window.limit)
    const rows = yield* Kit.all(windowOf(window), ...params)
    if (rows.length === 0 && (yield* Kit.one(exists, id)) === undefined) return undefined
    return window.after === undefined ? [...rows].reverse() : rows
  }),
  clear: Kit.op(
    "conversation.clear",
    function* (id: string, now: number) {
      if ((yield* Kit.one(zero, now, now, id)) === undefined) return false
      yield* Kit.exec(removeMessages, id)
      return true
    },
    { atomic: true }
  )
}

/** A `ConversationDriver` on the SQL backend in context. */
export const driver: Effect.Effect<ConversationDriver, StorageError, SqlClient | Kit.SqlTables> = Kit.driver(ops)

/**
 * `ConversationStore` on SQL, migrating the schema first: prepared statements on the embedded SQLite backend's
 * connection when `SqliteDatabase` is in context, otherwise the `SqlClient` in context.
 */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<ConversationStore, StorageError, SqlClient> =>
  Layer.effect(ConversationStore, Effect.flatMap(driver, makeConversationStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `ConversationStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<ConversationStore, StorageError, SqlClient> = layerWith()
