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
  /** Replaces a session's transcript (1 round trip); `false` when the session is closed. */
  readonly save: (sessionId: string, messages: ReadonlyArray<MessageInput>) => Promise<boolean>
  /** A session's transcript (1 round trip). */
  readonly load: (sessionId: string) => Promise<ReadonlyArray<unknown> | undefined>
  /** Closes the pool. */
  readonly close: () => Promise<void>
  /** Opens every connection of the pool (see `openPool`). */
  readonly open: () => Promise<unknown>
}

const sessionColumns = "id, agent_id, channel, title, status, metadata, message_count, created_at, updated_at, version"
const conversationColumns =
  "id, session_id, title, model, metadata, message_count, last_seq, created_at, updated_at, version"

/** Opens a pool of `maxConnections` on `url` over the tables of `prefix`. */
export const openPgBaseline = (url: string, prefix: string, maxConnections: number): PgBaseline => {
  const sql = postgres(url, { max: maxConnections, onnotice: () => {} })
  const t = (name: string) => `"${prefix}_${name}"`
  const insertConversation = `INSERT INTO ${t("conversations")} (${conversationColumns})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING RETURNING id`
  const appendAll = `WITH bumped AS (
    UPDATE ${t("conversations")} SET last_seq = last_seq + $1, message_count = message_count + $2,
      updated_at = CASE WHEN updated_at > $3 THEN updated_at ELSE $4 END
    WHERE id = $5 RETURNING last_seq
  ), inserted AS (
    INSERT INTO ${t("messages")} (conversation_id, seq, id, role, parts, metadata, created_at)
    SELECT $6, bumped.last_seq - $7 + v.ord, v.id, v.role, v.parts, v.metadata, v.created_at
    FROM bumped, unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::int8[])
      WITH ORDINALITY AS v (id, role, parts, metadata, created_at, ord)
  )
  SELECT last_seq FROM bumped`
  const last = `SELECT seq, id, role, parts, metadata, created_at FROM ${t("messages")} WHERE conversation_id = $1
    ORDER BY seq DESC LIMIT $2`
  const exists = `SELECT id FROM ${t("conversations")} WHERE id = $1`
  const firstPage = `SELECT ${sessionColumns} FROM ${t("sessions")} ORDER BY created_at ASC, id ASC LIMIT $1 OFFSET $2`
  const nextPage = `SELECT ${sessionColumns} FROM ${t("sessions")} WHERE (created_at, id) > ($1, $2)
    ORDER BY created_at ASC, id ASC LIMIT $3 OFFSET $4`
  const save = `INSERT INTO ${t("sessions")} (${sessionColumns}, transcript)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id)
    DO UPDATE SET transcript = excluded.transcript, message_count = excluded.message_count,
    updated_at = excluded.updated_at WHERE ${t("sessions")}.status <> 'closed' RETURNING id`
  const load = `SELECT transcript FROM ${t("sessions")} WHERE id = $1`
  const run = (text: string, params: ReadonlyArray<unknown>) =>
    sql.unsafe(text, params as Array<any>, { prepare: true }).values() as unknown as Promise<Array<Array<any>>>

  return {
    createConversation: async () => {
      const now = Date.now()
      const id = uuidv7At(now)
      await run(insertConversation, [id, null, null, null, "{}", 0, 0, now, now, 1])
      return id
    },
    append: async (conversationId, messages) => {
      const n = messages.length
      const now = Date.now()
      const rows = await run(appendAll, [
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
        messages.map(() => now)
      ])
      return rows.length === 0 ? undefined : Number(rows[0]![0]) - n + 1
    },
    recall: async (conversationId, limit) => {
      const rows = await run(last, [conversationId, limit])
      if (rows.length === 0 && (await run(exists, [conversationId])).length === 0) return undefined
      const out = new Array(rows.length)
      for (let i = 0; i < rows.length; i++) {
        const row = rows[rows.length - 1 - i]!
        out[i] = {
          conversationId,
          seq: Number(row[0]),
          id: row[1],
          role: row[2],
          parts: JSON.parse(row[3]),
          metadata: row[4] === null ? undefined : JSON.parse(row[4]),
          createdAt: Number(row[5])
        }
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
    save: async (sessionId, messages) => {
      const now = Date.now()
      const transcript = JSON.stringify(messages.map((m) => ({ id: uuidv7At(now), ...m, createdAt: now })))
      const rows = await run(save, [
        sessionId,
        null,
        null,
        null,
        "active",
        "{}",
        messages.length,
        now,
        now,
        1,
        transcript
      ])
      return rows.length > 0
    },
    load: async (sessionId) => {
      const rows = await run(load, [sessionId])
      return rows.length === 0 ? undefined : (JSON.parse(rows[0]![0]) as ReadonlyArray<unknown>)
    },
    close: () => sql.end({ timeout: 1 }),
    open: () => openPool(sql)
  }
}
