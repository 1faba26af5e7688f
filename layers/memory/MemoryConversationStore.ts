/** `ConversationStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import {
  type ConversationDriver,
  type ConversationRow,
  ConversationStore,
  makeConversationStore,
  type StoredMessageRow
} from "../../src/Conversation.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"
import { sessionsOf } from "./MemorySessionStore.ts"

/** The index of the first row (in ascending seq) whose seq is greater than `seq`. */
const firstAfter = (rows: ReadonlyArray<StoredMessageRow>, seq: number): number => {
  let lo = 0
  let hi = rows.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (rows[mid]!.seq > seq) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** A `ConversationDriver` over the shared in-memory maps; a session's deletion deletes its conversations. */
export const driver = Effect.map(MemoryDatabase, (db): ConversationDriver => {
  const sessions = sessionsOf(db)
  const conversations = db.table("conversations", (row: ConversationRow) => [row.createdAt, row.id])
  const logs = db.map<string, { readonly rows: Array<StoredMessageRow>; readonly ids: Set<string> }>("messages")
  const remove = (id: string) => {
    if (!conversations.delete(id)) return
    logs.delete(id)
    db.deleted("conversations", id)
  }
  db.onDelete("sessions", (sessionId) => {
    for (const conversation of conversations.values()) if (conversation.sessionId === sessionId) remove(conversation.id)
  })
  return {
    insert: (row) =>
      Effect.sync(() => {
        if (conversations.has(row.id)) return "exists"
        if (row.sessionId !== null && !sessions.has(row.sessionId)) return "no-session"
        conversations.set(row.id, { ...row })
        logs.set(row.id, { rows: [], ids: new Set() })
        return "inserted"
      }),
    get: (id) =>
      Effect.sync(() => {
        const row = conversations.get(id)
        return row && { ...row }
      }),
    update: (row) =>
      Effect.sync(() => {
        const current = conversations.get(row.id)
        if (current === undefined || current.version !== row.version - 1) return undefined
        const stored = {
          ...current,
          title: row.title,
          model: row.model,
          metadata: row.metadata,
          updatedAt: row.updatedAt,
          version: row.version
        }
        conversations.set(row.id, stored)
        return { ...stored }
      }),
    list: (filter, page) =>
      Effect.sync(() =>
        conversations
          .page(page, (row) => filter.sessionId === undefined || row.sessionId === filter.sessionId)
          .map((row) => ({ ...row }))
      ),
    delete: (id) => Effect.sync(() => remove(id)),
    append: (id, rows, now) =>
      Effect.sync(() => {
        const conversation = conversations.get(id)
        const messages = logs.get(id)
        if (conversation === undefined || messages === undefined) return "missing"
        const batch = new Set<string>()
        for (const row of rows) {
          if (messages.ids.has(row.id) || batch.has(row.id)) return "duplicate"
          batch.add(row.id)
        }
        const first = conversation.lastSeq + 1
        rows.forEach((row, i) => {
          messages.rows.push(Object.assign({}, row, { seq: first + i }))
          messages.ids.add(row.id)
        })
        conversations.set(id, {
          ...conversation,
          messageCount: conversation.messageCount + rows.length,
          lastSeq: conversation.lastSeq + rows.length,
          updatedAt: Math.max(now, conversation.updatedAt)
        })
        return first
      }),
    messages: (id, options) =>
      Effect.sync(() => {
        const messages = logs.get(id)
        if (messages === undefined) return undefined
        const rows = messages.rows
        const from = options.after === undefined ? 0 : firstAfter(rows, options.after)
        const to = options.before === undefined ? rows.length : firstAfter(rows, options.before - 1)
        const picked =
          options.after !== undefined
            ? rows.slice(from, Math.min(to, from + options.limit))
            : rows.slice(Math.max(from, to - options.limit), to)
        return picked.map((row) => ({ ...row }))
      }),
    clear: (id, now) =>
      Effect.sync(() => {
        const conversation = conversations.get(id)
        if (conversation === undefined) return false
        logs.set(id, { rows: [], ids: new Set() })
        conversations.set(id, { ...conversation, messageCount: 0, updatedAt: Math.max(now, conversation.updatedAt) })
        return true
      })
  }
})

/** `ConversationStore` over a `MemoryDatabase` (share one with `SessionStore` for cascades). */
export const layerWithDatabase: Layer.Layer<ConversationStore, never, MemoryDatabase> = Layer.effect(
  ConversationStore,
  Effect.flatMap(driver, makeConversationStore)
)

/** `ConversationStore` in memory, with its own `MemoryDatabase` (shared with any memory store built alongside). */
export const layer: Layer.Layer<ConversationStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
