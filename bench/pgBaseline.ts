/**
 * The raw PostgreSQL baseline of `bench/pg.ts`: the `postgres` (porsager)
 * driver running the statements the library's PostgreSQL stores run (same
 * text, same parameters, same round trips, named prepared statements, rows as
 * arrays, JSON columns parsed) on tables the library's migrations made.
 */
import postgres from "postgres"
import { uuidv7At } from "../src/Id.ts"
import type { MessageInput } from "../src/Message.ts"
import { openPool } from "./timing.ts"

/** The baseline's operations on one pool. */
export interface PgBaseline {
  /** Inserts an empty conversation and returns its id (1 round trip). */
  readonly createConversation: () => Promise<string>
  /** Appends `messages` with consecutive seqs in one statement (1 round trip); the first seq, `undefined` if unknown. */
  readonly append: (conversationId: string, messages: ReadonlyArray<MessageInput>) => Promise<number | undefined>
  /** The last `limit` messages in ascending seq (1 round trip; 2 when there are none). */
  readonly recall: (conversationId: string, limit: number) => Promise<ReadonlyArray<unknown> | undefined>
  /** One page of sessions after the `(created_at, id)` position (1 round trip). */
  readonly page: (
    limit: number,
    after: readonly [number, string] | undefined
  ) => Promise<{ readonly items: ReadonlyArray<unknown>; readonly next: readonly [number, string] | undefined }>
  /**
   * Replaces a session's chat, the messages of its conversation (a transaction: the session and conversation
   * upserted in one statement, the chat read, the messages deleted and the new ones appended; 6 round trips with
   * BEGIN and COMMIT); `false` when the session is closed. The messages have no ids, so none is kept.
   */
  readonly save: (sessionId: string, messages: ReadonlyArray<MessageInput>) => Promise<boolean>
  /** A session's chat (1 round trip). */
  readonly load: (sessionId: string) => Promise<ReadonlyArray<unknown> | undefined>
  /** Closes the pool. */
  readonly close: () => Promise<void>
  /** Opens every connection of the pool (see `openPool`). */
  readonly open: () => Promise<unknown>
}

const conversationColumns =
  "id, session_id, resource_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version"

/** Opens a pool of `maxConnections` on `url` over the tables of `prefix`. */
export const openPgBaseline = (url: string, prefix: string, maxConnections: number): PgBaseline => {
  const sql = postgres(url, { max: maxConnections, onnotice: () => {} })
  const t = (name: string) => `"${prefix}_${name}"`
  const sessionColumns = `id, agent_id, channel, title, status, metadata,
    COALESCE((SELECT c.message_count FROM ${t("conversations")} c WHERE c.id = ${t("sessions")}.id), 0),
    created_at, updated_at, version`
  const insertConversation = `INSERT INTO ${t("conversations")} (${conversationColumns})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING RETURNING id`
  const appendAll = `WITH bumped AS (
    UPDATE ${t("conversations")} SET last_seq = last_seq + $1, message_count = message_count + $2,
      updated_at = CASE WHEN updated_at > $3 THEN updated_at ELSE $4 END
    WHERE id = $5 RETURNING last_seq
  ), inserted AS (
    INSERT INTO ${t("messages")} (conversation_id, seq, id, role, parts, metadata, extra, created_at)
    SELECT $6, bumped.last_seq - $7 + v.ord, v.id, v.role, v.parts, v.metadata, v.extra, v.created_at
    FROM bumped, unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int8[])
      WITH ORDINALITY AS v (id, role, parts, metadata, extra, created_at, ord)
  )
  SELECT last_seq FROM bumped`
  const last = `SELECT seq, id, role, parts, metadata, extra, created_at FROM ${t("messages")}
    WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2`
  const exists = `SELECT id FROM ${t("conversations")} WHERE id = $1`
  const firstPage = `SELECT ${sessionColumns} FROM ${t("sessions")} ORDER BY created_at ASC, id ASC LIMIT $1 OFFSET $2`
  const nextPage = `SELECT ${sessionColumns} FROM ${t("sessions")} WHERE (created_at, id) > ($1, $2)
    ORDER BY created_at ASC, id ASC LIMIT $3 OFFSET $4`
  const saveSessionAndChat = `WITH saved AS (
    INSERT INTO ${t("sessions")} (id, resource_id, agent_id, channel, title, status, metadata, created_at, updated_at,
      version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id)
    DO UPDATE SET updated_at = CASE WHEN ${t("sessions")}.updated_at > excluded.updated_at
      THEN ${t("sessions")}.updated_at ELSE excluded.updated_at END WHERE ${t("sessions")}.status <> 'closed'
    RETURNING id, resource_id
  )
  INSERT INTO ${t("conversations")} (${conversationColumns})
  SELECT id, id, resource_id, NULL, NULL, '{}', 0, 0, $11, $12, 1 FROM saved
  ON CONFLICT (id) DO UPDATE SET updated_at = CASE WHEN ${t("conversations")}.updated_at > excluded.updated_at
    THEN ${t("conversations")}.updated_at ELSE excluded.updated_at END RETURNING id`
  const chat = `SELECT seq, id, role, parts, metadata, extra, created_at FROM ${t("messages")}
    WHERE conversation_id = $1 ORDER BY seq`
  const deleteAfter = `WITH deleted AS (
    DELETE FROM ${t("messages")} WHERE conversation_id = $1 AND seq > $2 RETURNING 1
  ), counted AS (
    UPDATE ${t("conversations")} SET message_count = message_count - (SELECT COUNT(*) FROM deleted),
      updated_at = CASE WHEN updated_at > $3 THEN updated_at ELSE $4 END
    WHERE id = $5
  )
  SELECT COUNT(*) FROM deleted`
  const load = `SELECT m.seq, m.id, m.role, m.parts, m.metadata, m.extra, m.created_at
    FROM ${t("sessions")} s LEFT JOIN ${t("messages")} m ON m.conversation_id = s.id WHERE s.id = $1 ORDER BY m.seq`
  type Runner = Pick<postgres.Sql, "unsafe">
  const runOn = (client: Runner, text: string, params: ReadonlyArray<unknown>) =>
    client.unsafe(text, params as Array<any>, { prepare: true }).values() as unknown as Promise<Array<Array<any>>>
  const run = (text: string, params: ReadonlyArray<unknown>) => runOn(sql, text, params)
  /** The parameters of `appendAll` for `messages` (new ids) after `n` of them. */
  const appending = (conversationId: string, messages: ReadonlyArray<MessageInput>, now: number) => {
    const n = messages.length
    return [
      n,
      n,
      now,
      now,
      conversationId,
      conversationId,
      n,
      messages.map(() => uuidv7At(now)),
      messages.map((m) => m.role),
      messages.map((m) => JSON.stringify(m.parts)),
      messages.map((m) => (m.metadata === undefined ? null : JSON.stringify(m.metadata))),
      messages.map(() => null),
      messages.map(() => now)
    ]
  }
  /** A message row (`seq, id, role, parts, metadata, extra, created_at`) parsed as the library returns it. */
  const parsed = (conversationId: string, row: ReadonlyArray<any>) => {
    const message = {
      conversationId,
      seq: Number(row[0]),
      id: row[1],
      role: row[2],
      parts: JSON.parse(row[3]),
      metadata: row[4] === null ? undefined : JSON.parse(row[4]),
      createdAt: Number(row[6])
    }
    return row[5] === null ? message : Object.assign(JSON.parse(row[5]), message)
  }

  return {
    createConversation: async () => {
      const now = Date.now()
      const id = uuidv7At(now)
      await run(insertConversation, [id, null, null, null, null, "{}", 0, 0, now, now, 1])
      return id
    },
    append: async (conversationId, messages) => {
      const rows = await run(appendAll, appending(conversationId, messages, Date.now()))
      return rows.length === 0 ? undefined : Number(rows[0]![0]) - messages.length + 1
    },
    recall: async (conversationId, limit) => {
      const rows = await run(last, [conversationId, limit])
      if (rows.length === 0 && (await run(exists, [conversationId])).length === 0) return undefined
      const out = new Array(rows.length)
      for (let i = 0; i < rows.length; i++) {
        const row = rows[rows.length - 1 - i]!
        out[i] = parsed(conversationId, row)
      }
      return out
    },
    page: async (limit, after) => {
      const rows =
        after === undefined ? await run(firstPage, [limit + 1, 0]) : await run(nextPage, [...after, limit + 1, 0])
      const size = Math.min(limit, rows.length)
      const items = new Array(size)
      for (let i = 0; i < size; i++) {
        const row = rows[i]!
        items[i] = {
          id: row[0],
          agentId: row[1],
          channel: row[2],
          title: row[3],
          status: row[4],
          metadata: JSON.parse(row[5]),
          messageCount: Number(row[6]),
          createdAt: Number(row[7]),
          updatedAt: Number(row[8]),
          version: Number(row[9])
        }
      }
      const lastRow = rows[limit - 1]
      return {
        items,
        next: rows.length > limit && lastRow !== undefined ? [Number(lastRow[7]), lastRow[0]] : undefined
      }
    },
    save: (sessionId, messages) =>
      sql.begin(async (tx) => {
        const now = Date.now()
        const session = [sessionId, null, null, null, null, "active", "{}", now, now, 1, now, now]
        if ((await runOn(tx, saveSessionAndChat, session)).length === 0) return false
        const stored = await runOn(tx, chat, [sessionId])
        if (stored.length > 0) await runOn(tx, deleteAfter, [sessionId, 0, now, now, sessionId])
        if (messages.length > 0) await runOn(tx, appendAll, appending(sessionId, messages, now))
        return true
      }) as Promise<boolean>,
    load: async (sessionId) => {
      const rows = await run(load, [sessionId])
      if (rows.length === 0) return undefined
      return rows[0]![0] === null ? [] : rows.map((row) => parsed(sessionId, row))
    },
    close: () => sql.end({ timeout: 1 }),
    open: () => openPool(sql)
  }
}
