/**
 * `SessionStore` on SQL, stated once for SQLite and PostgreSQL over the chat
 * tables (`SqlChats`): a session's chat is the messages of the conversation
 * with its id, and its `messageCount` that conversation's. `load` is one
 * statement; `save` locks the session and its conversation (upserting both),
 * reads the chat, deletes what changed and appends the rest, in one
 * transaction. A session's conversations go with it through their foreign
 * key (`ON DELETE CASCADE`, enforced on both dialects).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StoredMessageRow } from "../../src/Conversation.ts"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import type { MessageRow } from "../../src/Message.ts"
import {
  chatEdit,
  makeSessionStore,
  type SessionDriver,
  type SessionFilter,
  type SessionRow,
  SessionStore
} from "../../src/Session.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"
import {
  allMessages,
  appendRows,
  appendRowsAtOnce,
  conversationsSchema,
  decodeMessage,
  deleteAfter,
  deleteSeqsAfter,
  uncount
} from "./SqlChats.ts"

/** The chat tables (`SqlChats`): a session's chat is held by the conversations and messages tables. */
export const schema: Kit.SqlSchema = conversationsSchema

const columns = `id, resource_id, agent_id, channel, title, status, metadata,
  COALESCE((SELECT c.message_count FROM {conversations} c WHERE c.id = {sessions}.id), 0),
  created_at, updated_at, version`

const decode = (r: ReadonlyArray<any>): SessionRow => ({
  id: r[0],
  resourceId: r[1],
  agentId: r[2],
  channel: r[3],
  title: r[4],
  status: r[5],
  metadata: r[6],
  messageCount: Number(r[7]),
  createdAt: Number(r[8]),
  updatedAt: Number(r[9]),
  version: Number(r[10])
})

type Values = [...Array<unknown>]

const written = "id, resource_id, agent_id, channel, title, status, metadata, created_at, updated_at, version"

const values = (row: SessionRow): Values => [
  row.id,
  row.resourceId,
  row.agentId,
  row.channel,
  row.title,
  row.status,
  jsonText(row.metadata),
  row.createdAt,
  row.updatedAt,
  row.version
]

const insertRow = `INSERT INTO {sessions} (${written}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id)`
const insert = Kit.stmt<Values, string>(`${insertRow} DO NOTHING RETURNING id`, (r) => r[0])
const get = Kit.stmt<[id: string], SessionRow>(`SELECT ${columns} FROM {sessions} WHERE id = ?`, decode)
const update = Kit.stmt<Values, SessionRow>(
  `UPDATE {sessions} SET resource_id = ?, agent_id = ?, channel = ?, title = ?, status = ?, metadata = ?,
    updated_at = ?, version = ? WHERE id = ? AND version = ? RETURNING ${columns}`,
  decode
)
const remove = Kit.stmt<[id: string]>(`DELETE FROM {sessions} WHERE id = ?`)
/** The session's chat: one row per message, or one row of nulls when it has none; no row for an unknown session. */
const loadChat = Kit.stmt<[id: string], StoredMessageRow | undefined>(
  `SELECT m.seq, m.id, m.role, m.parts, m.metadata, m.extra, m.created_at
    FROM {sessions} s LEFT JOIN {messages} m ON m.conversation_id = s.id WHERE s.id = ? ORDER BY m.seq`,
  (r) => (r[0] === null ? undefined : decodeMessage(r))
)
const list = Kit.listing({ table: "sessions", columns, orderBy: ["created_at", "id"], decode })

/** Creates the session or moves its `updated_at`, unless it is closed; returns its `resource_id` (no row if closed). */
const saveSession = `${insertRow} DO UPDATE SET updated_at = CASE WHEN {sessions}.updated_at > excluded.updated_at
  THEN {sessions}.updated_at ELSE excluded.updated_at END WHERE {sessions}.status <> 'closed'`
const upsertSession = Kit.stmt<Values, { readonly resourceId: string | null }>(
  `${saveSession} RETURNING resource_id`,
  (r) => ({ resourceId: r[0] })
)
const chatColumns =
  "id, session_id, resource_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version"
/** Creates the session's conversation or moves its `updated_at` (locking its row either way). */
const upsertChat = `ON CONFLICT (id) DO UPDATE SET updated_at = CASE WHEN {conversations}.updated_at >
  excluded.updated_at THEN {conversations}.updated_at ELSE excluded.updated_at END RETURNING id`
const ensureChat = Kit.stmt<[id: string, sessionId: string, resourceId: string | null, now: number, now: number]>(
  `INSERT INTO {conversations} (${chatColumns}) VALUES (?, ?, ?, NULL, NULL, '{}', 0, 0, ?, ?, 1) ${upsertChat}`
)
/** PostgreSQL: `upsertSession` and `ensureChat` in one statement; no row if the session is closed. */
const saveSessionAndChat = Kit.stmt<Values, string>(
  `WITH saved AS (${saveSession} RETURNING id, resource_id)
  INSERT INTO {conversations} (${chatColumns})
  SELECT id, id, resource_id, NULL, NULL, '{}', 0, 0, ?, ?, 1 FROM saved ${upsertChat}`,
  (r) => r[0]
)

/**
 * Makes `rows` the messages of the chat `id` (whose row the caller locked): `chatEdit` of the stored messages,
 * `remove` deleting those after a seq (and lowering the count), `append` appending.
 */
function* replaceChat(
  id: string,
  rows: ReadonlyArray<MessageRow>,
  given: ReadonlyArray<boolean>,
  remove: (last: number, count: number) => Kit.Program<unknown>,
  append: (appended: ReadonlyArray<MessageRow>) => Kit.Program<unknown>
) {
  const stored = yield* Kit.all(allMessages, id)
  const { appended, kept } = chatEdit(stored, rows, given)
  if (kept < stored.length) yield* remove(kept === 0 ? 0 : stored[kept - 1]!.seq, stored.length - kept)
  if (appended.length > 0) yield* append(appended)
  return "saved" as const
}

/** The operations of `SessionDriver`. */
export const ops = {
  insert: Kit.op("session.insert", (row: SessionRow) => Kit.one(insert, ...values(row)).map((id) => id !== undefined)),
  get: Kit.op("session.get", (id: string) => Kit.one(get, id)),
  update: Kit.op("session.update", (row: SessionRow) =>
    Kit.one(
      update,
      row.resourceId,
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
  list: Kit.op("session.list", (filter: SessionFilter, page: PageQuery) =>
    list(
      { resource_id: filter.resourceId, agent_id: filter.agentId, channel: filter.channel, status: filter.status },
      page
    )
  ),
  delete: Kit.op("session.delete", (id: string) => Kit.exec(remove, id)),
  load: Kit.op("session.load", (id: string) =>
    Kit.all(loadChat, id).map((rows) =>
      rows.length === 0 ? undefined : rows.filter((row): row is StoredMessageRow => row !== undefined)
    )
  ),
  save: Kit.op(
    "session.save",
    function* (row: SessionRow, rows: ReadonlyArray<MessageRow>, given: ReadonlyArray<boolean>) {
      const session = yield* Kit.one(upsertSession, ...values(row))
      if (session === undefined) return "closed" as const
      const now = row.updatedAt
      yield* Kit.exec(ensureChat, row.id, row.id, session.resourceId, now, now)
      return yield* replaceChat(
        row.id,
        rows,
        given,
        function* (last, count) {
          yield* Kit.exec(deleteAfter, row.id, last)
          yield* Kit.exec(uncount, count, row.id)
        },
        (appended) => appendRows(row.id, appended, now)
      )
    },
    {
      atomic: true,
      pg: function* (row, rows, given) {
        const now = row.updatedAt
        if ((yield* Kit.one(saveSessionAndChat, ...values(row), now, now)) === undefined) return "closed" as const
        return yield* replaceChat(
          row.id,
          rows,
          given,
          (last) => Kit.one(deleteSeqsAfter, row.id, last, now, now, row.id),
          (appended) => appendRowsAtOnce(row.id, appended, now)
        )
      }
    }
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
