/**
 * `ConversationStore` on SQL, stated once for SQLite and PostgreSQL over the
 * chat tables (`SqlChats`). Every write to a conversation's messages first
 * updates the conversation's row (locking it, so writers of one conversation
 * serialise); on PostgreSQL each operation is one statement, but `upsert`
 * (a lookup, then the replacement or the append) and `fork` (one
 * `INSERT … SELECT` of the messages).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import {
  type ConversationDriver,
  type ConversationFilter,
  type ConversationRow,
  ConversationStore,
  makeConversationStore,
  type MessagePatchRow,
  type MessagesWindow,
  type StoredMessageRow
} from "../../src/Conversation.ts"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import type { MessageRow } from "../../src/Message.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"
import {
  appendRows,
  appendRowsAtOnce,
  conversationsSchema,
  decodeMessage,
  deleteAfter,
  deleteSeqsAfter,
  deleteWhere,
  laterUpdatedAt,
  messageColumns,
  uncount
} from "./SqlChats.ts"

/** The chat tables (`SqlChats`): sessions, conversations and messages. */
export const schema: Kit.SqlSchema = conversationsSchema

const columns =
  "id, session_id, resource_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version"

const decode = (r: ReadonlyArray<any>): ConversationRow => ({
  id: r[0],
  sessionId: r[1],
  resourceId: r[2],
  title: r[3],
  model: r[4],
  metadata: r[5],
  messageCount: Number(r[6]),
  lastSeq: Number(r[7]),
  createdAt: Number(r[8]),
  updatedAt: Number(r[9]),
  version: Number(r[10])
})

const insert = Kit.stmt<Array<unknown>, string>(
  `INSERT INTO {conversations} (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING
    RETURNING id`,
  (r) => r[0]
)
const get = Kit.stmt<[id: string], ConversationRow>(`SELECT ${columns} FROM {conversations} WHERE id = ?`, decode)
const update = Kit.stmt<Array<unknown>, ConversationRow>(
  `UPDATE {conversations} SET resource_id = ?, title = ?, model = ?, metadata = ?, updated_at = ?, version = ?
    WHERE id = ? AND version = ? RETURNING ${columns}`,
  decode
)
const remove = Kit.stmt<[id: string]>(`DELETE FROM {conversations} WHERE id = ?`)
const exists = Kit.stmt<[id: string], string>(`SELECT id FROM {conversations} WHERE id = ?`, (r) => r[0])
/** Moves `updated_at` (and locks the row); `undefined` for an unknown conversation. */
const touch = Kit.stmt<[now: number, now: number, id: string], string>(
  `UPDATE {conversations} SET ${laterUpdatedAt} WHERE id = ? RETURNING id`,
  (r) => r[0]
)
const zero = Kit.stmt<[now: number, now: number, id: string], string>(
  `UPDATE {conversations} SET message_count = 0, ${laterUpdatedAt} WHERE id = ? RETURNING id`,
  (r) => r[0]
)
const removeMessages = Kit.stmt<[id: string]>(`DELETE FROM {messages} WHERE conversation_id = ?`)
const list = Kit.listing({ table: "conversations", columns, orderBy: ["created_at", "id"], decode })

/** The seq and time of message `messageId` of a conversation. */
const findMessage = Kit.stmt<[id: string, messageId: string], { seq: number; createdAt: number }>(
  `SELECT seq, created_at FROM {messages} WHERE conversation_id = ? AND id = ?`,
  (r) => ({ seq: Number(r[0]), createdAt: Number(r[1]) })
)
/** Replaces the message at a seq (its time too unless `keep` is 1); returns its stored time. */
const replaceMessage = Kit.stmt<Array<unknown>, number>(
  `UPDATE {messages} SET role = ?, parts = ?, metadata = ?, extra = ?,
    created_at = CASE WHEN ? = 1 THEN created_at ELSE ? END
    WHERE conversation_id = ? AND id = ? RETURNING created_at`,
  (r) => Number(r[0])
)
/**
 * PostgreSQL: `touch` then `replaceMessage` in one statement, the conversation's row locked first (as appends lock
 * it), so a replacement and an append of the same id cannot wait for each other; no row if the message is gone.
 */
const touchAndReplace = Kit.stmt<Array<unknown>, number>(
  `WITH touched AS (
    UPDATE {conversations} SET ${laterUpdatedAt}
    WHERE id = ? AND EXISTS (SELECT 1 FROM {messages} WHERE conversation_id = ? AND id = ?) RETURNING id
  )
  UPDATE {messages} SET role = ?, parts = ?, metadata = ?, extra = ?,
    created_at = CASE WHEN ? = 1 THEN created_at ELSE ? END
  WHERE conversation_id = (SELECT id FROM touched) AND id = ? RETURNING created_at`,
  (r) => Number(r[0])
)
const patchSet = `role = COALESCE(?, role), parts = COALESCE(?, parts),
  metadata = CASE WHEN ? = 1 THEN ? ELSE metadata END, created_at = COALESCE(?, created_at)`
/** Writes the patched fields of a message; returns it as stored. */
const patchMessage = Kit.stmt<Array<unknown>, StoredMessageRow>(
  `UPDATE {messages} SET ${patchSet} WHERE conversation_id = ? AND id = ? RETURNING ${messageColumns}`,
  decodeMessage
)
/** PostgreSQL: `touch` then `patchMessage` in one statement, the conversation's row locked first. */
const touchAndPatch = Kit.stmt<Array<unknown>, StoredMessageRow>(
  `WITH touched AS (
    UPDATE {conversations} SET ${laterUpdatedAt}
    WHERE id = ? AND EXISTS (SELECT 1 FROM {messages} WHERE conversation_id = ? AND id = ?) RETURNING id
  )
  UPDATE {messages} SET ${patchSet} WHERE conversation_id = (SELECT id FROM touched) AND id = ?
  RETURNING ${messageColumns}`,
  decodeMessage
)
const countIn = Kit.stmt<[id: string, ids: string], number>(
  `SELECT COUNT(*) FROM {messages} WHERE conversation_id = ? AND id IN (SELECT value FROM json_each(?))`,
  (r) => Number(r[0])
)
const deleteIn = Kit.stmt<[id: string, ids: string]>(
  `DELETE FROM {messages} WHERE conversation_id = ? AND id IN (SELECT value FROM json_each(?))`
)
const countAfter = Kit.stmt<[id: string, seq: number], number>(
  `SELECT COUNT(*) FROM {messages} WHERE conversation_id = ? AND seq > ?`,
  (r) => Number(r[0])
)
const deleteIds = deleteWhere("id = ANY(?::text[])")

const countUpTo = Kit.stmt<[id: string, upTo: number], readonly [count: number, last: number]>(
  `SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM {messages} WHERE conversation_id = ? AND seq <= ?`,
  (r) => [Number(r[0]), Number(r[1])] as const
)
const copyMessages = Kit.stmt<[to: string, from: string, upTo: number]>(
  `INSERT INTO {messages} (conversation_id, ${messageColumns})
    SELECT ?, ${messageColumns} FROM {messages} WHERE conversation_id = ? AND seq <= ?`
)
const pickedColumns = messageColumns
  .split(", ")
  .map((column) => `p.${column}`)
  .join(", ")
/**
 * PostgreSQL: a fork in one statement, the new conversation and an `INSERT … SELECT` of the messages; `found` is 0
 * for an unknown source, the row's fields are null when the new id is taken.
 */
const forkAll = Kit.stmt<Array<unknown>, { found: number; row: ConversationRow | undefined }>(
  `WITH source AS (
    SELECT session_id, resource_id, title, model, metadata FROM {conversations} WHERE id = ?
  ), picked AS (
    SELECT ${messageColumns} FROM {messages} WHERE conversation_id = ? AND seq <= ?
  ), forked AS (
    INSERT INTO {conversations} (${columns})
    SELECT ?, session_id, resource_id, title, model, metadata, (SELECT COUNT(*) FROM picked),
      (SELECT COALESCE(MAX(seq), 0) FROM picked), ?, ?, 1
    FROM source
    ON CONFLICT (id) DO NOTHING RETURNING ${columns}
  ), copied AS (
    INSERT INTO {messages} (conversation_id, ${messageColumns})
    SELECT forked.id, ${pickedColumns} FROM picked AS p, forked
  )
  SELECT (SELECT COUNT(*) FROM source), forked.* FROM (SELECT 1) AS one LEFT JOIN forked ON true`,
  (r) => ({ found: Number(r[0]), row: r[1] === null ? undefined : decode(r.slice(1)) })
)

/** The statement of one shape of `messages` window: the first `limit` after `after`, else the newest `limit`. */
const windows = new Map<string, Kit.Stmt<Array<unknown>, StoredMessageRow>>()
const windowOf = (window: MessagesWindow) => {
  const { after, before } = window
  const key = `${after !== undefined}${before !== undefined}`
  let statement = windows.get(key)
  if (statement === undefined) {
    statement = Kit.stmt(
      `SELECT ${messageColumns} FROM {messages} WHERE conversation_id = ?
        ${after === undefined ? "" : "AND seq > ?"} ${before === undefined ? "" : "AND seq < ?"}
        ORDER BY seq ${after === undefined ? "DESC" : "ASC"} LIMIT ?`,
      decodeMessage
    )
    windows.set(key, statement)
  }
  return statement
}

/** What `upsert` returns. */
type Upserted = Effect.Effect.Success<ReturnType<ConversationDriver["upsert"]>>

const duplicate = () => "duplicate" as const
const raced = () => "raced" as const

/** `replaceMessage`'s `SET` parameters. */
const replacing = (row: MessageRow, keepCreatedAt: boolean) =>
  [row.role, row.parts, row.metadata, row.extra, keepCreatedAt ? 1 : 0, row.createdAt] as const

/** `patchSet`'s parameters. */
const patching = (patch: MessagePatchRow) =>
  [patch.role, patch.parts, patch.setMetadata ? 1 : 0, patch.metadata, patch.createdAt] as const

/** The operations of `ConversationDriver`. */
export const ops = {
  insert: Kit.op(
    "conversation.insert",
    (row: ConversationRow) =>
      Kit.one(
        insert,
        row.id,
        row.sessionId,
        row.resourceId,
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
    Kit.one(
      update,
      row.resourceId,
      row.title,
      row.model,
      jsonText(row.metadata),
      row.updatedAt,
      row.version,
      row.id,
      row.version - 1
    )
  ),
  list: Kit.op("conversation.list", (filter: ConversationFilter, page: PageQuery) =>
    list({ session_id: filter.sessionId, resource_id: filter.resourceId }, page)
  ),
  delete: Kit.op("conversation.delete", (id: string) => Kit.exec(remove, id)),
  append: Kit.op("conversation.append", appendRows, { atomic: true, pg: appendRowsAtOnce, onViolation: duplicate }),
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
  ),
  upsert: Kit.op(
    "conversation.upsert",
    function* (id: string, row: MessageRow, keepCreatedAt: boolean, now: number): Generator<Kit.Call<any>, Upserted> {
      const found = yield* Kit.one(findMessage, id, row.id)
      if (found === undefined) {
        const seq = yield* appendRows(id, [row], now)
        return seq === "missing" ? seq : { seq, createdAt: row.createdAt }
      }
      const createdAt = yield* Kit.one(replaceMessage, ...replacing(row, keepCreatedAt), id, row.id)
      yield* Kit.one(touch, now, now, id)
      return { seq: found.seq, createdAt: createdAt! }
    },
    {
      atomic: true,
      // Two statements, each atomic: a lookup, then the replacement or the append. A concurrent upsert of the same
      // id can insert it in between (the append then breaks the unique index, and rolls back) or a deletion remove
      // it (the replacement finds no row): `"raced"`, and the core tries again.
      pg: function* (id, row, keepCreatedAt, now) {
        const found = yield* Kit.one(findMessage, id, row.id)
        if (found === undefined) {
          const seq = yield* appendRowsAtOnce(id, [row], now)
          return seq === "missing" ? seq : { seq, createdAt: row.createdAt }
        }
        const createdAt = yield* Kit.one(
          touchAndReplace,
          now,
          now,
          id,
          id,
          row.id,
          ...replacing(row, keepCreatedAt),
          row.id
        )
        return createdAt === undefined ? ("raced" as const) : { seq: found.seq, createdAt }
      },
      onViolation: raced
    }
  ),
  updateMessage: Kit.op(
    "conversation.updateMessage",
    function* (id: string, messageId: string, patch: MessagePatchRow, now: number) {
      if ((yield* Kit.one(touch, now, now, id)) === undefined) return "no-conversation" as const
      const row = yield* Kit.one(patchMessage, ...patching(patch), id, messageId)
      return row ?? ("no-message" as const)
    },
    {
      atomic: true,
      pg: function* (id, messageId, patch, now) {
        const row = yield* Kit.one(touchAndPatch, now, now, id, id, messageId, ...patching(patch), messageId)
        if (row !== undefined) return row
        return (yield* Kit.one(exists, id)) === undefined ? ("no-conversation" as const) : ("no-message" as const)
      }
    }
  ),
  deleteMessages: Kit.op(
    "conversation.deleteMessages",
    function* (id: string, messageIds: ReadonlyArray<string>, now: number) {
      if ((yield* Kit.one(touch, now, now, id)) === undefined) return "missing" as const
      const ids = JSON.stringify(messageIds)
      const count = (yield* Kit.one(countIn, id, ids))!
      yield* Kit.exec(deleteIn, id, ids)
      yield* Kit.exec(uncount, count, id)
      return count
    },
    {
      atomic: true,
      // The conversation's row locked first (as appends lock it), then the deletion and the count.
      pg: function* (id, messageIds, now) {
        if ((yield* Kit.one(touch, now, now, id)) === undefined) return "missing" as const
        return (yield* Kit.one(deleteIds, id, messageIds, now, now, id))!
      }
    }
  ),
  truncateAfter: Kit.op(
    "conversation.truncateAfter",
    function* (id: string, seq: number, now: number) {
      if ((yield* Kit.one(touch, now, now, id)) === undefined) return "missing" as const
      const count = (yield* Kit.one(countAfter, id, seq))!
      yield* Kit.exec(deleteAfter, id, seq)
      yield* Kit.exec(uncount, count, id)
      return count
    },
    {
      atomic: true,
      pg: function* (id, seq, now) {
        if ((yield* Kit.one(touch, now, now, id)) === undefined) return "missing" as const
        return (yield* Kit.one(deleteSeqsAfter, id, seq, now, now, id))!
      }
    }
  ),
  fork: Kit.op(
    "conversation.fork",
    function* (id: string, row: ConversationRow, upTo: number) {
      const source = yield* Kit.one(get, id)
      if (source === undefined) return "missing" as const
      const [messageCount, lastSeq] = (yield* Kit.one(countUpTo, id, upTo))!
      const forked: ConversationRow = {
        ...row,
        sessionId: source.sessionId,
        resourceId: source.resourceId,
        title: source.title,
        model: source.model,
        metadata: source.metadata,
        messageCount,
        lastSeq
      }
      const inserted = yield* Kit.one(
        insert,
        forked.id,
        forked.sessionId,
        forked.resourceId,
        forked.title,
        forked.model,
        jsonText(forked.metadata),
        forked.messageCount,
        forked.lastSeq,
        forked.createdAt,
        forked.updatedAt,
        forked.version
      )
      if (inserted === undefined) return "exists" as const
      yield* Kit.exec(copyMessages, forked.id, id, upTo)
      return forked
    },
    {
      atomic: true,
      pg: (id, row, upTo) =>
        Kit.one(forkAll, id, id, upTo, row.id, row.createdAt, row.updatedAt).map((result) =>
          result!.found === 0 ? ("missing" as const) : (result!.row ?? ("exists" as const))
        )
    }
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
