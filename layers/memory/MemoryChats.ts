/**
 * The chat tables of a memory database, shared by `SessionStore` and
 * `ConversationStore` (a session's chat is the conversation with its id):
 * sessions, conversations and each conversation's message log, with the
 * cascade from a session to its conversations declared once per database.
 */
import type { ConversationRow, StoredMessageRow } from "../../src/Conversation.ts"
import type { MessageRow } from "../../src/Message.ts"
import type { SessionRow } from "../../src/Session.ts"
import type { OrderedTable, Tables } from "./MemoryDatabase.ts"

/** A conversation's messages in ascending `seq`, with the `seq` of each message id. */
export interface MessageLog {
  rows: Array<StoredMessageRow>
  readonly seqs: Map<string, number>
}

/** The chat tables of one memory database. */
export interface Chats {
  readonly sessions: OrderedTable<SessionRow>
  readonly conversations: OrderedTable<ConversationRow>
  readonly logs: Map<string, MessageLog>
}

const declared = new WeakMap<Tables, Chats>()

/** The chat tables of `db`, their cascade declared on first use. */
export const chatsOf = (db: Tables): Chats => {
  let chats = declared.get(db)
  if (chats === undefined) {
    const conversations = db.table("conversations", (row: ConversationRow) => [row.createdAt, row.id])
    chats = {
      sessions: db.table("sessions", (row: SessionRow) => [row.createdAt, row.id]),
      conversations,
      logs: db.map<string, MessageLog>("messages")
    }
    const logs = chats.logs
    db.onDelete("sessions", (sessionId) => {
      for (const conversation of conversations.values()) {
        if (conversation.sessionId === sessionId) removeConversation(db, conversations, logs, conversation.id)
      }
    })
    declared.set(db, chats)
  }
  return chats
}

const removeConversation = (
  db: Tables,
  conversations: OrderedTable<ConversationRow>,
  logs: Map<string, MessageLog>,
  id: string
) => {
  if (!conversations.delete(id)) return
  logs.delete(id)
  db.deleted("conversations", id)
}

/** Deletes conversation `id` and its messages, and announces it (so what refers to it goes too). */
export const deleteConversation = (db: Tables, id: string): void => {
  const { conversations, logs } = chatsOf(db)
  removeConversation(db, conversations, logs, id)
}

/** Inserts a conversation row with an empty log. */
export const insertConversation = (chats: Chats, row: ConversationRow): void => {
  chats.conversations.set(row.id, { ...row })
  chats.logs.set(row.id, { rows: [], seqs: new Map() })
}

/** The index of the first row (in ascending seq) whose seq is greater than `seq`. */
export const firstAfter = (rows: ReadonlyArray<StoredMessageRow>, seq: number): number => {
  let lo = 0
  let hi = rows.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (rows[mid]!.seq > seq) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** Appends `rows` to the log of `conversation` with the next seqs, updating its counts; returns the first seq. */
export const appendRows = (
  chats: Chats,
  conversation: ConversationRow,
  log: MessageLog,
  rows: ReadonlyArray<MessageRow>,
  now: number
): number => {
  const first = conversation.lastSeq + 1
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    log.rows.push(Object.assign({}, row, { seq: first + i }))
    log.seqs.set(row.id, first + i)
  }
  chats.conversations.set(conversation.id, {
    ...conversation,
    messageCount: conversation.messageCount + rows.length,
    lastSeq: conversation.lastSeq + rows.length,
    updatedAt: Math.max(now, conversation.updatedAt)
  })
  return first
}

/** Keeps the rows of `log` that `keep` accepts; returns how many it removed. */
export const removeRows = (log: MessageLog, keep: (row: StoredMessageRow) => boolean): number => {
  const kept: Array<StoredMessageRow> = []
  for (const row of log.rows) {
    if (keep(row)) kept.push(row)
    else log.seqs.delete(row.id)
  }
  const removed = log.rows.length - kept.length
  log.rows = kept
  return removed
}

/** Sets the counts and time of conversation `id` after `removed` of its messages were deleted. */
export const afterRemoval = (chats: Chats, conversation: ConversationRow, removed: number, now: number): void => {
  chats.conversations.set(conversation.id, {
    ...conversation,
    messageCount: conversation.messageCount - removed,
    updatedAt: Math.max(now, conversation.updatedAt)
  })
}
