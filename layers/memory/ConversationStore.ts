/** `ConversationStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import { type ConversationDriver, ConversationStore, makeConversationStore, type StoredMessageRow } from "../../src/Conversation.ts"
import { MemoryDatabase, pageOf } from "./MemoryDatabase.ts"

/** A `ConversationDriver` over the shared in-memory maps. */
export const driver = Effect.map(MemoryDatabase, (db): ConversationDriver => ({
  insert: (row) =>
    Effect.sync(() => {
      if (db.conversations.has(row.id)) return "exists"
      if (row.sessionId !== null && !db.sessions.has(row.sessionId)) return "no-session"
      db.conversations.set(row.id, { ...row })
      db.messages.set(row.id, [])
      return "inserted"
    }),
  get: (id) => Effect.sync(() => { const row = db.conversations.get(id); return row && { ...row } }),
  update: (row) =>
    Effect.sync(() => {
      const current = db.conversations.get(row.id)
      if (current === undefined || current.version !== row.version - 1) return false
      db.conversations.set(row.id, {
        ...current,
        title: row.title,
        model: row.model,
        metadata: row.metadata,
        updatedAt: row.updatedAt,
        version: row.version
      })
      return true
    }),
  list: (filter, page) =>
    Effect.sync(() => {
      const rows = Array.from(db.conversations.values()).filter((row) =>
        filter.sessionId === undefined || row.sessionId === filter.sessionId
      )
      return pageOf(rows, page)
    }),
  delete: (id) =>
    Effect.sync(() => {
      db.conversations.delete(id)
      db.messages.delete(id)
    }),
  append: (id, rows, now) =>
    Effect.sync(() => {
      const conversation = db.conversations.get(id)
      const messages = db.messages.get(id)
      if (conversation === undefined || messages === undefined) return "missing"
      const ids = new Set(messages.map((message) => message.id))
      for (const row of rows) {
        if (ids.has(row.id)) return "duplicate"
        ids.add(row.id)
      }
      const first = conversation.lastSeq + 1
      rows.forEach((row, i) => messages.push({ ...row, seq: first + i }))
      db.conversations.set(id, {
        ...conversation,
        messageCount: conversation.messageCount + rows.length,
        lastSeq: conversation.lastSeq + rows.length,
        updatedAt: Math.max(now, conversation.updatedAt)
      })
      return first
    }),
  messages: (id, options) =>
    Effect.sync(() => {
      const messages = db.messages.get(id)
      if (messages === undefined) return undefined
      const window = messages.filter((row) =>
        (options.after === undefined || row.seq > options.after) &&
        (options.before === undefined || row.seq < options.before)
      )
      const limit = options.limit ?? window.length
      const picked: Array<StoredMessageRow> = options.after !== undefined
        ? window.slice(0, limit)
        : window.slice(Math.max(0, window.length - limit))
      return picked.map((row) => ({ ...row }))
    }),
  clear: (id, now) =>
    Effect.sync(() => {
      const conversation = db.conversations.get(id)
      if (conversation === undefined) return false
      db.messages.set(id, [])
      db.conversations.set(id, { ...conversation, messageCount: 0, updatedAt: Math.max(now, conversation.updatedAt) })
      return true
    })
}))

/** `ConversationStore` over a `MemoryDatabase` (share one with `SessionStore` for cascades). */
export const layerWithDatabase: Layer.Layer<ConversationStore, never, MemoryDatabase> = Layer.effect(
  ConversationStore,
  Effect.flatMap(driver, makeConversationStore)
)

/** `ConversationStore` in memory, with its own `MemoryDatabase` (shared with any memory store built alongside). */
export const layer: Layer.Layer<ConversationStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
