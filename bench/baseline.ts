/**
 * The raw better-sqlite3 baseline of `bench/run.ts`: the best hand-written
 * code doing the same work as the library's SQLite driver, on the same schema
 * (made by the library's migrations) with the same pragmas. Statements are
 * prepared once; an append is one immediate transaction, like the driver's.
 */
import Database from "better-sqlite3"
import * as Kit from "../layers/sql/Kit.ts"
import { mmapBytes, pageCacheKiB } from "../layers/sql/SqliteDatabase.ts"
import { uuidv7At } from "../src/Id.ts"
import type { MessageInput } from "../src/Message.ts"

/** A message as the baseline returns it: plain objects, JSON columns parsed. */
export interface BaselineMessage {
  readonly conversationId: string
  readonly seq: number
  readonly id: string
  readonly role: string
  readonly parts: unknown
  readonly metadata?: unknown
  readonly createdAt: number
}

/** A session as the baseline returns it: plain objects, `metadata` parsed. */
export interface BaselineSession {
  readonly id: string
  readonly agentId: string | null
  readonly channel: string | null
  readonly title: string | null
  readonly status: string
  readonly metadata: unknown
  readonly messageCount: number
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** One page of sessions; `nextCursor` is `undefined` on the last page. */
export interface BaselinePage {
  readonly items: ReadonlyArray<BaselineSession>
  readonly nextCursor: string | undefined
}

/** The baseline's operations on one open database file. */
export interface Baseline {
  /** The connection (for the bench's sanity checks). */
  readonly db: Database.Database
  /** Inserts an empty conversation and returns its id. */
  readonly createConversation: () => string
  /** Inserts one session (its own implicit transaction, like the library's `create`) and returns it. */
  readonly createSession: (agentId: string, title: string, metadata: object) => BaselineSession
  /**
   * Inserts `count` sessions in one transaction (setup only, not timed), the
   * `i`-th for agent `agent-${i % agents + 1}`.
   */
  readonly createSessions: (count: number, metadata: object, agents?: number) => void
  /** Appends `messages` atomically with consecutive seqs; returns the first seq, `undefined` for an unknown id. */
  readonly append: (conversationId: string, messages: ReadonlyArray<MessageInput>) => number | undefined
  /**
   * Stores `message` under `id` as the library's `upsert` does (one immediate transaction: the lookup, then the
   * replacement and the conversation's `updated_at`, or the append); its seq, `undefined` for an unknown conversation.
   */
  readonly upsert: (conversationId: string, id: string, message: MessageInput) => number | undefined
  /** The last `limit` messages in ascending seq, `undefined` for an unknown conversation. */
  readonly recall: (conversationId: string, limit: number) => ReadonlyArray<BaselineMessage> | undefined
  /** One page of sessions by `(created_at, id)` after the opaque `cursor`, of `agentId` only when given. */
  readonly page: (limit: number, cursor: string | undefined, agentId?: string) => BaselinePage
  /** Closes the connection. */
  readonly close: () => void
}

/** The session columns the library reads: the message count is the session's conversation's (its chat's). */
const sessionColumns = `id, agent_id, channel, title, status, metadata,
  COALESCE((SELECT c.message_count FROM agent_conversations c WHERE c.id = agent_sessions.id), 0),
  created_at, updated_at, version`

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
type MessageTuple = [
  seq: number,
  id: string,
  role: string,
  parts: string,
  metadata: string | null,
  extra: string | null,
  createdAt: number
]

/** A statement text as the library's SQLite layer runs it (`Kit.resolve`: every parameter `+?`, the same value). */
const sqlite = (text: string) => Kit.resolve(text, Kit.defaultPrefix, "sqlite")

const insertConversationSql = `INSERT INTO agent_conversations
  (id, session_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version)
  VALUES (?, NULL, NULL, NULL, '{}', 0, 0, ?, ?, 1)`
const insertSessionSql = `INSERT INTO agent_sessions
  (id, agent_id, channel, title, status, metadata, created_at, updated_at, version)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
const bumpSql = `UPDATE agent_conversations
  SET last_seq = last_seq + ?, message_count = message_count + ?,
    updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END
  WHERE id = ? RETURNING last_seq`
const insertMessageSql = `INSERT INTO agent_messages
  (conversation_id, seq, id, role, parts, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`
const lastSql = `SELECT seq, id, role, parts, metadata, extra, created_at FROM agent_messages
  WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?`
const existsSql = "SELECT id FROM agent_conversations WHERE id = ?"
const findMessageSql = "SELECT seq, created_at FROM agent_messages WHERE conversation_id = ? AND id = ?"
const replaceSql = `UPDATE agent_messages SET role = ?, parts = ?, metadata = ?, extra = ?,
  created_at = CASE WHEN ? = 1 THEN created_at ELSE ? END WHERE conversation_id = ? AND id = ? RETURNING created_at`
const touchSql = `UPDATE agent_conversations SET updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END
  WHERE id = ? RETURNING id`
const firstPageSql = `SELECT ${sessionColumns} FROM agent_sessions ORDER BY created_at, id LIMIT ?`
const nextPageSql = `SELECT ${sessionColumns} FROM agent_sessions
  WHERE (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`
const firstAgentPageSql = `SELECT ${sessionColumns} FROM agent_sessions WHERE agent_id = ?
  ORDER BY created_at, id LIMIT ?`
const nextAgentPageSql = `SELECT ${sessionColumns} FROM agent_sessions
  WHERE agent_id = ? AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`

/** Extra pragmas for both sides of the bench (`BENCH_PRAGMAS`, `;`-separated), for measuring settings. */
export const extraPragmas = (process.env["BENCH_PRAGMAS"] ?? "")
  .split(";")
  .map((pragma) => pragma.trim())
  .filter((pragma) => pragma.length > 0)

/** Opens `filename` (whose schema the library's migrations made) with the library's pragmas. */
export const openBaseline = (filename: string): Baseline => {
  const db = new Database(filename, { timeout: 5000 })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  db.pragma("foreign_keys = ON")
  db.pragma(`cache_size = -${pageCacheKiB}`)
  db.pragma(`mmap_size = ${mmapBytes}`)
  for (const pragma of extraPragmas) db.pragma(pragma)

  const insertConversation = db.prepare(sqlite(insertConversationSql))
  const insertSession = db.prepare(sqlite(insertSessionSql))
  const bump = db.prepare<[number, number, number, number, string], number>(sqlite(bumpSql)).pluck()
  const insertMessage = db.prepare(sqlite(insertMessageSql))
  const last = db.prepare<[string, number], MessageTuple>(sqlite(lastSql)).raw()
  const exists = db.prepare<[string], string>(sqlite(existsSql)).pluck()
  const findMessage = db.prepare<[string, string], [number, number]>(sqlite(findMessageSql)).raw()
  const replace = db.prepare(sqlite(replaceSql)).pluck()
  const touch = db.prepare(sqlite(touchSql)).pluck()
  const firstPage = db.prepare<[number], SessionTuple>(sqlite(firstPageSql)).raw()
  const nextPage = db.prepare<[number, string, number], SessionTuple>(sqlite(nextPageSql)).raw()
  const firstAgentPage = db.prepare<[string, number], SessionTuple>(sqlite(firstAgentPageSql)).raw()
  const nextAgentPage = db.prepare<[string, number, string, number], SessionTuple>(sqlite(nextAgentPageSql)).raw()

  const append = db.transaction((conversationId: string, messages: ReadonlyArray<MessageInput>): number | undefined => {
    const n = messages.length
    const now = Date.now()
    const lastSeq = bump.get(n, n, now, now, conversationId)
    if (lastSeq === undefined) return undefined
    const first = lastSeq - n + 1
    for (let i = 0; i < n; i++) {
      const message = messages[i]!
      insertMessage.run(
        conversationId,
        first + i,
        uuidv7At(now),
        message.role,
        JSON.stringify(message.parts),
        message.metadata === undefined ? null : JSON.stringify(message.metadata),
        now
      )
    }
    return first
  })

  const upsert = db.transaction((conversationId: string, id: string, message: MessageInput): number | undefined => {
    const now = Date.now()
    const parts = JSON.stringify(message.parts)
    const metadata = message.metadata === undefined ? null : JSON.stringify(message.metadata)
    const found = findMessage.get(conversationId, id)
    if (found === undefined) {
      const seq = bump.get(1, 1, now, now, conversationId)
      if (seq === undefined) return undefined
      insertMessage.run(conversationId, seq, id, message.role, parts, metadata, now)
      return seq
    }
    replace.get(message.role, parts, metadata, null, 1, now, conversationId, id)
    touch.get(now, now, conversationId)
    return found[0]
  })

  const insertSessionRow = (agentId: string, title: string, metadata: string, now: number): string => {
    const id = uuidv7At(now)
    const changes = insertSession.run(id, agentId, null, title, "active", metadata, now, now, 1).changes
    if (changes === 0) throw new Error(`duplicate session id ${id}`)
    return id
  }

  const sessions = db.transaction((count: number, metadata: object, agents: number) => {
    const json = JSON.stringify(metadata)
    for (let i = 0; i < count; i++) insertSessionRow(`agent-${(i % agents) + 1}`, `session ${i}`, json, Date.now())
  })

  return {
    db,
    createConversation: () => {
      const now = Date.now()
      const id = uuidv7At(now)
      insertConversation.run(id, now, now)
      return id
    },
    createSession: (agentId, title, metadata) => {
      const now = Date.now()
      const json = JSON.stringify(metadata)
      const id = insertSessionRow(agentId, title, json, now)
      return {
        id,
        agentId,
        channel: null,
        title,
        status: "active",
        metadata: JSON.parse(json),
        messageCount: 0,
        createdAt: now,
        updatedAt: now,
        version: 1
      }
    },
    createSessions: (count, metadata, agents = 1) => sessions.immediate(count, metadata, agents),
    append: (conversationId, messages) => append.immediate(conversationId, messages),
    upsert: (conversationId, id, message) => upsert.immediate(conversationId, id, message),
    recall: (conversationId, limit) => {
      const rows = last.all(conversationId, limit)
      if (rows.length === 0 && exists.get(conversationId) === undefined) return undefined
      const n = rows.length
      const out: Array<BaselineMessage> = new Array(n)
      for (let i = 0; i < n; i++) {
        const row = rows[n - 1 - i]!
        const message: Record<string, unknown> =
          row[4] === null
            ? { conversationId, seq: row[0], id: row[1], role: row[2], parts: JSON.parse(row[3]), createdAt: row[6] }
            : {
                conversationId,
                seq: row[0],
                id: row[1],
                role: row[2],
                parts: JSON.parse(row[3]),
                metadata: JSON.parse(row[4]),
                createdAt: row[6]
              }
        out[i] = (row[5] === null ? message : Object.assign(JSON.parse(row[5]), message)) as BaselineMessage
      }
      return out
    },
    page: (limit, cursor, agentId) => {
      let rows: Array<SessionTuple>
      if (cursor === undefined) {
        rows = agentId === undefined ? firstPage.all(limit + 1) : firstAgentPage.all(agentId, limit + 1)
      } else {
        const [createdAt, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as [number, string]
        rows =
          agentId === undefined
            ? nextPage.all(createdAt, id, limit + 1)
            : nextAgentPage.all(agentId, createdAt, id, limit + 1)
      }
      const size = rows.length > limit ? limit : rows.length
      const items: Array<BaselineSession> = new Array(size)
      for (let i = 0; i < size; i++) {
        const row = rows[i]!
        items[i] = {
          id: row[0],
          agentId: row[1],
          channel: row[2],
          title: row[3],
          status: row[4],
          metadata: JSON.parse(row[5]),
          messageCount: row[6],
          createdAt: row[7],
          updatedAt: row[8],
          version: row[9]
        }
      }
      const lastRow = rows[limit - 1]
      const nextCursor =
        rows.length > limit && lastRow !== undefined
          ? Buffer.from(JSON.stringify([lastRow[7], lastRow[0]])).toString("base64url")
          : undefined
      return { items, nextCursor }
    },
    close: () => db.close()
  }
}
