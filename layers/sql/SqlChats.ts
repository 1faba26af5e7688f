/**
 * The chat tables on SQL, shared by `SessionStore` and `ConversationStore` (a
 * session's chat is the conversation with its id): sessions, conversations
 * and messages, their migrations, and the message statements both stores
 * run. An append bumps the conversation's `last_seq` first (locking its row,
 * so concurrent writers of one conversation serialise and `seq` stays
 * gapless) and inserts the messages in the same transaction; on PostgreSQL
 * that is one statement. Messages go with their conversation, and
 * conversations with their session, through foreign keys (`ON DELETE
 * CASCADE`, enforced on both dialects).
 */
import type { StoredMessageRow } from "../../src/Conversation.ts"
import type { MessageRow } from "../../src/Message.ts"
import { Effect } from "effect"
import * as Kit from "./Kit.ts"

/** The sessions table and its migrations. */
export const sessionsSchema: Kit.SqlSchema = {
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

/** A message of a session's old transcript (a JSON array in `sessions.transcript`). */
interface TranscriptMessage {
  readonly id: string
  readonly role: string
  readonly parts: unknown
  readonly metadata?: unknown
  readonly createdAt: number
}

/** Message rows inserted by one statement of `moveTranscripts` (7 parameters each). */
const moveBatch = 500

/**
 * One place per chat: each session's transcript becomes the messages of the conversation with the session's id
 * (created when missing), appended after any messages it has. A transcript message whose id is already there is
 * that message (a transcript saved from the conversation) and is skipped; a repeated id within a transcript (which
 * a transcript allowed) gets `~<position>` appended. A program, not SQL: PostgreSQL's `json` refuses the lone
 * surrogates that content may hold.
 */
const moveTranscripts: Kit.MigrationProgram = {
  program: (query) =>
    Effect.gen(function* () {
      const sessions = yield* query("SELECT id, created_at, updated_at FROM {sessions} WHERE transcript <> '[]'")
      for (const [id, createdAt, updatedAt] of sessions) {
        const [[transcript]] = yield* query("SELECT transcript FROM {sessions} WHERE id = ?", id)
        yield* query(
          `INSERT INTO {conversations}
            (id, session_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version)
            VALUES (?, ?, NULL, NULL, '{}', 0, 0, ?, ?, 1) ON CONFLICT (id) DO NOTHING`,
          id,
          id,
          createdAt,
          updatedAt
        )
        const [[lastSeq]] = yield* query("SELECT last_seq FROM {conversations} WHERE id = ?", id)
        const existing = new Set(
          (yield* query("SELECT id FROM {messages} WHERE conversation_id = ?", id)).map((r) => r[0])
        )
        const taken = new Set(existing)
        const rows: Array<ReadonlyArray<unknown>> = []
        const messages = (
          typeof transcript === "string" ? JSON.parse(transcript) : transcript
        ) as Array<TranscriptMessage>
        messages.forEach((message, i) => {
          if (existing.has(message.id)) return
          let messageId = message.id
          while (taken.has(messageId)) messageId = `${messageId}~${i + 1}`
          taken.add(messageId)
          const metadata = message.metadata === undefined ? null : JSON.stringify(message.metadata)
          const seq = Number(lastSeq) + rows.length + 1
          rows.push([seq, messageId, message.role, JSON.stringify(message.parts), metadata, message.createdAt])
        })
        for (let i = 0; i < rows.length; i += moveBatch) {
          const batch = rows.slice(i, i + moveBatch)
          yield* query(
            `INSERT INTO {messages} (conversation_id, seq, id, role, parts, metadata, created_at) VALUES
              ${batch.map(() => "(?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
            ...batch.flatMap((row) => [id, ...row])
          )
        }
        yield* query(
          `UPDATE {conversations} SET message_count = message_count + ?, last_seq = last_seq + ? WHERE id = ?`,
          rows.length,
          rows.length,
          id
        )
      }
    })
}

/** The conversations and messages tables and their migrations (after the sessions table they reference). */
export const conversationsSchema: Kit.SqlSchema = {
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
    ],
    // Owners (`resource_id`), messages' fields beyond the known ones (`extra`), and one place per chat: the
    // sessions' transcripts move into their conversations, then leave the sessions table with their counts.
    "0003_chats": [
      "ALTER TABLE {sessions} ADD COLUMN resource_id TEXT",
      `CREATE INDEX IF NOT EXISTS {sessions_resource} ON {sessions} (resource_id, created_at, id)`,
      "ALTER TABLE {conversations} ADD COLUMN resource_id TEXT",
      `CREATE INDEX IF NOT EXISTS {conversations_resource} ON {conversations} (resource_id, created_at, id)`,
      "ALTER TABLE {messages} ADD COLUMN extra TEXT",
      moveTranscripts,
      "ALTER TABLE {sessions} DROP COLUMN transcript",
      "ALTER TABLE {sessions} DROP COLUMN message_count"
    ]
  },
  requires: [sessionsSchema]
}

/** The columns of a message row, in `decodeMessage`'s order. */
export const messageColumns = "seq, id, role, parts, metadata, extra, created_at"

/** A selected message row (`messageColumns`). */
export const decodeMessage = (r: ReadonlyArray<any>): StoredMessageRow => ({
  seq: Number(r[0]),
  id: r[1],
  role: r[2],
  parts: r[3],
  metadata: r[4],
  extra: r[5],
  createdAt: Number(r[6])
})

/** `updated_at` moved to `?` unless it is already later (bound twice). */
export const laterUpdatedAt = "updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END"

/** Every message of a conversation, ascending `seq`. */
export const allMessages = Kit.stmt<[id: string], StoredMessageRow>(
  `SELECT ${messageColumns} FROM {messages} WHERE conversation_id = ? ORDER BY seq`,
  decodeMessage
)

const bump = Kit.stmt<[count: number, count: number, now: number, now: number, id: string], number>(
  `UPDATE {conversations} SET last_seq = last_seq + ?, message_count = message_count + ?, ${laterUpdatedAt}
    WHERE id = ? RETURNING last_seq`,
  (r) => Number(r[0])
)
const insertMessage = Kit.stmt<Array<unknown>>(
  `INSERT INTO {messages} (conversation_id, seq, id, role, parts, metadata, extra, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
)
/** PostgreSQL: the bump and every row in one statement, the rows as arrays (no bind-parameter limit per batch). */
const appendAll = Kit.stmt<Array<unknown>, number>(
  `WITH bumped AS (
    UPDATE {conversations} SET last_seq = last_seq + ?, message_count = message_count + ?, ${laterUpdatedAt}
    WHERE id = ? RETURNING last_seq
  ), inserted AS (
    INSERT INTO {messages} (conversation_id, seq, id, role, parts, metadata, extra, created_at)
    SELECT ?, bumped.last_seq - ? + v.ord, v.id, v.role, v.parts, v.metadata, v.extra, v.created_at
    FROM bumped, unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::int8[])
      WITH ORDINALITY AS v (id, role, parts, metadata, extra, created_at, ord)
  )
  SELECT last_seq FROM bumped`,
  (r) => Number(r[0])
)

/** Deletes the messages of a conversation after a seq. */
export const deleteAfter = Kit.stmt<[id: string, seq: number]>(
  `DELETE FROM {messages} WHERE conversation_id = ? AND seq > ?`
)
/** Lowers `message_count` by `?`. */
export const uncount = Kit.stmt<[count: number, id: string]>(
  `UPDATE {conversations} SET message_count = message_count - ? WHERE id = ?`
)
/**
 * PostgreSQL: deletes the messages of a conversation that `condition` selects and lowers its count by as many, in
 * one statement (lock the conversation's row first, as appends do); the count.
 */
export const deleteWhere = (condition: string) =>
  Kit.stmt<Array<unknown>, number>(
    `WITH deleted AS (
      DELETE FROM {messages} WHERE conversation_id = ? AND ${condition} RETURNING 1
    ), counted AS (
      UPDATE {conversations} SET message_count = message_count - (SELECT COUNT(*) FROM deleted), ${laterUpdatedAt}
      WHERE id = ?
    )
    SELECT COUNT(*) FROM deleted`,
    (r) => Number(r[0])
  )
/** PostgreSQL: `deleteWhere` of the messages after a seq. */
export const deleteSeqsAfter = deleteWhere("seq > ?")

/**
 * Appends `rows` to conversation `id` with the next seqs (statement by statement: run it in an atomic operation);
 * the first seq, or `"missing"` for an unknown conversation.
 */
export function* appendRows(id: string, rows: ReadonlyArray<MessageRow>, now: number) {
  const last = yield* Kit.one(bump, rows.length, rows.length, now, now, id)
  if (last === undefined) return "missing" as const
  const first = last - rows.length + 1
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    yield* Kit.exec(insertMessage, id, first + i, row.id, row.role, row.parts, row.metadata, row.extra, row.createdAt)
  }
  return first
}

/** PostgreSQL: `appendRows` as one statement (atomic by itself). */
export const appendRowsAtOnce = (id: string, rows: ReadonlyArray<MessageRow>, now: number) =>
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
    rows.map((row) => row.extra),
    rows.map((row) => row.createdAt)
  ).map((last) => (last === undefined ? ("missing" as const) : last - rows.length + 1))
