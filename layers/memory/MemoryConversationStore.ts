/** `ConversationStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import { type ConversationDriver, ConversationStore, makeConversationStore } from "../../src/Conversation.ts"
import {
  afterRemoval,
  appendRows,
  chatsOf,
  deleteConversation,
  firstAfter,
  insertConversation,
  removeRows
} from "./MemoryChats.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

/** A `ConversationDriver` over the shared in-memory maps; a session's deletion deletes its conversations. */
export const driver = Effect.map(MemoryDatabase, (db): ConversationDriver => {
  const chats = chatsOf(db)
  const { conversations, logs, sessions } = chats
  /** The conversation `id` and its log, if it exists. */
  const find = (id: string) => {
    const conversation = conversations.get(id)
    const log = logs.get(id)
    return conversation === undefined || log === undefined ? undefined : { conversation, log }
  }
  return {
    insert: (row) =>
      Effect.sync(() => {
        if (conversations.has(row.id)) return "exists"
        if (row.sessionId !== null && !sessions.has(row.sessionId)) return "no-session"
        insertConversation(chats, row)
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
          resourceId: row.resourceId,
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
          .page(
            page,
            (row) =>
              (filter.sessionId === undefined || row.sessionId === filter.sessionId) &&
              (filter.resourceId === undefined || row.resourceId === filter.resourceId)
          )
          .map((row) => ({ ...row }))
      ),
    delete: (id) => Effect.sync(() => deleteConversation(db, id)),
    append: (id, rows, now) =>
      Effect.sync(() => {
        const found = find(id)
        if (found === undefined) return "missing"
        const batch = new Set<string>()
        for (const row of rows) {
          if (found.log.seqs.has(row.id) || batch.has(row.id)) return "duplicate"
          batch.add(row.id)
        }
        return appendRows(chats, found.conversation, found.log, rows, now)
      }),
    messages: (id, options) =>
      Effect.sync(() => {
        const log = logs.get(id)
        if (log === undefined) return undefined
        const rows = log.rows
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
        const found = find(id)
        if (found === undefined) return false
        afterRemoval(
          chats,
          found.conversation,
          removeRows(found.log, () => false),
          now
        )
        return true
      }),
    upsert: (id, row, keepCreatedAt, now) =>
      Effect.sync(() => {
        const found = find(id)
        if (found === undefined) return "missing"
        const { conversation, log } = found
        const seq = log.seqs.get(row.id)
        if (seq === undefined) {
          return { seq: appendRows(chats, conversation, log, [row], now), createdAt: row.createdAt }
        }
        const index = firstAfter(log.rows, seq - 1)
        const createdAt = keepCreatedAt ? log.rows[index]!.createdAt : row.createdAt
        log.rows[index] = Object.assign({}, row, { createdAt, seq })
        conversations.set(id, { ...conversation, updatedAt: Math.max(now, conversation.updatedAt) })
        return { seq, createdAt }
      }),
    updateMessage: (id, messageId, patch, now) =>
      Effect.sync(() => {
        const found = find(id)
        if (found === undefined) return "no-conversation"
        const { conversation, log } = found
        const seq = log.seqs.get(messageId)
        if (seq === undefined) return "no-message"
        const index = firstAfter(log.rows, seq - 1)
        const current = log.rows[index]!
        const next = {
          ...current,
          role: patch.role ?? current.role,
          parts: patch.parts ?? current.parts,
          metadata: patch.setMetadata ? patch.metadata : current.metadata,
          createdAt: patch.createdAt ?? current.createdAt
        }
        log.rows[index] = next
        conversations.set(id, { ...conversation, updatedAt: Math.max(now, conversation.updatedAt) })
        return { ...next }
      }),
    deleteMessages: (id, messageIds, now) =>
      Effect.sync(() => {
        const found = find(id)
        if (found === undefined) return "missing"
        const doomed = new Set(messageIds)
        const removed = removeRows(found.log, (row) => !doomed.has(row.id))
        afterRemoval(chats, found.conversation, removed, now)
        return removed
      }),
    truncateAfter: (id, seq, now) =>
      Effect.sync(() => {
        const found = find(id)
        if (found === undefined) return "missing"
        const removed = removeRows(found.log, (row) => row.seq <= seq)
        afterRemoval(chats, found.conversation, removed, now)
        return removed
      }),
    fork: (id, row, upTo) =>
      Effect.sync(() => {
        const found = find(id)
        if (found === undefined) return "missing"
        if (conversations.has(row.id)) return "exists"
        const { conversation: source, log } = found
        const copied = log.rows.slice(0, firstAfter(log.rows, upTo)).map((message) => ({ ...message }))
        const forked = {
          ...row,
          sessionId: source.sessionId,
          resourceId: source.resourceId,
          title: source.title,
          model: source.model,
          metadata: source.metadata,
          messageCount: copied.length,
          lastSeq: copied.length === 0 ? 0 : copied[copied.length - 1]!.seq
        }
        conversations.set(forked.id, forked)
        logs.set(forked.id, { rows: copied, seqs: new Map(copied.map((message) => [message.id, message.seq])) })
        return { ...forked }
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
