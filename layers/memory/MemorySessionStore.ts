/** `SessionStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import { chatEdit, makeSessionStore, type SessionDriver, type SessionRow, SessionStore } from "../../src/Session.ts"
import { afterRemoval, appendRows, chatsOf, insertConversation, removeRows } from "./MemoryChats.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

/** A `SessionDriver` over the shared in-memory maps; a session's chat is the conversation with its id. */
export const driver = Effect.map(MemoryDatabase, (db): SessionDriver => {
  const chats = chatsOf(db)
  const { conversations, logs, sessions } = chats
  /** A copy of `row` with its conversation's message count. */
  const withCount = (row: SessionRow): SessionRow => ({
    ...row,
    messageCount: conversations.get(row.id)?.messageCount ?? 0
  })
  return {
    insert: (row) =>
      Effect.sync(() => {
        if (sessions.has(row.id)) return false
        sessions.set(row.id, { ...row })
        return true
      }),
    get: (id) =>
      Effect.sync(() => {
        const row = sessions.get(id)
        return row && withCount(row)
      }),
    update: (row) =>
      Effect.sync(() => {
        const current = sessions.get(row.id)
        if (current === undefined || current.version !== row.version - 1) return undefined
        const stored = {
          ...current,
          resourceId: row.resourceId,
          agentId: row.agentId,
          channel: row.channel,
          title: row.title,
          status: row.status,
          metadata: row.metadata,
          updatedAt: row.updatedAt,
          version: row.version
        }
        sessions.set(row.id, stored)
        return withCount(stored)
      }),
    list: (filter, page) =>
      Effect.sync(() =>
        sessions
          .page(
            page,
            (row) =>
              (filter.resourceId === undefined || row.resourceId === filter.resourceId) &&
              (filter.agentId === undefined || row.agentId === filter.agentId) &&
              (filter.channel === undefined || row.channel === filter.channel) &&
              (filter.status === undefined || row.status === filter.status)
          )
          .map(withCount)
      ),
    delete: (id) =>
      Effect.sync(() => {
        if (sessions.delete(id)) db.deleted("sessions", id)
      }),
    load: (id) =>
      Effect.sync(() => {
        if (!sessions.has(id)) return undefined
        return (logs.get(id)?.rows ?? []).map((row) => ({ ...row }))
      }),
    save: (row, rows, given) =>
      Effect.sync(() => {
        const session = sessions.get(row.id)
        if (session === undefined) sessions.set(row.id, { ...row })
        else if (session.status === "closed") return "closed"
        else sessions.set(row.id, { ...session, updatedAt: Math.max(row.updatedAt, session.updatedAt) })
        if (!conversations.has(row.id)) {
          insertConversation(chats, {
            id: row.id,
            sessionId: row.id,
            resourceId: (session ?? row).resourceId,
            title: null,
            model: null,
            metadata: "{}",
            messageCount: 0,
            lastSeq: 0,
            createdAt: row.updatedAt,
            updatedAt: row.updatedAt,
            version: 1
          })
        }
        const log = logs.get(row.id)!
        const { appended, kept } = chatEdit(log.rows, rows, given)
        const last = kept === 0 ? 0 : log.rows[kept - 1]!.seq
        const removed = removeRows(log, (message) => message.seq <= last)
        afterRemoval(chats, conversations.get(row.id)!, removed, row.updatedAt)
        appendRows(chats, conversations.get(row.id)!, log, appended, row.updatedAt)
        return "saved"
      })
  }
})

/** `SessionStore` over a `MemoryDatabase` (share one to get cascades into conversations). */
export const layerWithDatabase: Layer.Layer<SessionStore, never, MemoryDatabase> = Layer.effect(
  SessionStore,
  Effect.flatMap(driver, makeSessionStore)
)

/** `SessionStore` in memory, with its own `MemoryDatabase` (shared with any memory store built alongside). */
export const layer: Layer.Layer<SessionStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
