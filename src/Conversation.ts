/**
 * `ConversationStore`: conversation records (title, model, message count) and
 * their messages, appended with a gapless per-conversation `seq`.
 */
import { Chunk, Clock, Context, Effect, Option, Schema, Stream } from "effect"
import { Conflict, type InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { JsonObject, parseJson, Text } from "./Json.ts"
import { utcFromMillis } from "./Time.ts"
import {
  encodeMessages,
  Message,
  type MessageId,
  type MessageInput,
  MessageLimits,
  type MessageMetadata,
  type MessageRole,
  type MessageRow
} from "./Message.ts"
import { defaultLimit, maxLimit, type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, checkId, decodeInput, decodeOptions, patched, UpdateOptions, updateVersioned } from "./Record.ts"
import { SessionId } from "./Session.ts"
import { traced } from "./Traced.ts"

/** A conversation id: a non-empty Text (see `Json.ts`) up to 255 characters; UUIDv7 when generated. */
export const ConversationId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("ConversationId"))
/** A conversation id. */
export type ConversationId = typeof ConversationId.Type

/**
 * A conversation record. `lastSeq` is the `seq` of the newest message ever appended (kept by
 * `clear`). `title` and `model` follow the Text rule; `metadata` is content, stored verbatim.
 */
export const Conversation = Schema.Struct({
  id: ConversationId,
  sessionId: Schema.optional(SessionId),
  title: Schema.optional(Text),
  model: Schema.optional(Text),
  metadata: JsonObject,
  messageCount: Schema.NonNegativeInt,
  lastSeq: Schema.NonNegativeInt,
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  version: Schema.Int
})
/** A conversation record. */
export type Conversation = typeof Conversation.Type

/** Input of `create`. A `sessionId` must name an existing session. */
export const NewConversation = Schema.Struct({
  id: Schema.optional(ConversationId),
  sessionId: Schema.optional(SessionId),
  title: Schema.optional(Text),
  model: Schema.optional(Text),
  metadata: Schema.optional(JsonObject)
})
/** Input of `create`. */
export type NewConversation = typeof NewConversation.Encoded

/** Input of `update`: absent fields are kept, `null` clears an optional field. */
export const ConversationPatch = Schema.Struct({
  title: Schema.optional(Schema.NullOr(Text)),
  model: Schema.optional(Schema.NullOr(Text)),
  metadata: Schema.optional(JsonObject)
})
/** Input of `update`. */
export type ConversationPatch = typeof ConversationPatch.Encoded

/** Options of `list`: an optional session filter plus paging. */
export const ConversationListOptions = Schema.Struct({
  ...PageOptions.fields,
  sessionId: Schema.optional(Text)
})
/** Options of `list`. */
export type ConversationListOptions = typeof ConversationListOptions.Encoded

/**
 * Options of `messages`, by `seq`: `after` gives the first `limit` messages
 * after it; otherwise the last `limit` messages (before `before`, if given).
 * Results are always in ascending `seq`. `limit` follows the rules of `list`:
 * 1 to 1000 (`maxLimit`), default 100 (`defaultLimit`); to read a whole
 * conversation, use `messagesStream`.
 */
export const MessagesOptions = Schema.Struct({
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, maxLimit))),
  before: Schema.optional(Schema.Int),
  after: Schema.optional(Schema.Int)
})
/** Options of `messages`. */
export type MessagesOptions = typeof MessagesOptions.Type

/** Options of `messagesStream`: start after this `seq` (default: from the first message). */
export const MessagesStreamOptions = Schema.Struct({
  after: Schema.optional(Schema.Int)
})
/** Options of `messagesStream`. */
export type MessagesStreamOptions = typeof MessagesStreamOptions.Type

/** What a driver reads for `messages`: the validated `MessagesOptions` with the limit resolved. */
export interface MessagesWindow {
  readonly limit: number
  readonly before?: number | undefined
  readonly after?: number | undefined
}

/** A message as stored in a conversation. */
export const StoredMessage = Schema.Struct({
  ...Message.fields,
  conversationId: ConversationId,
  seq: Schema.Int,
  createdAt: Schema.DateTimeUtcFromNumber
})
/** A message as stored in a conversation. */
export type StoredMessage = typeof StoredMessage.Type

/** The conversation store. */
export class ConversationStore extends Context.Tag("effect-agent-stores/ConversationStore")<
  ConversationStore,
  {
    /** Creates a conversation; `Conflict` (`reason: "exists"`) when the id is taken, `NotFound` for an unknown `sessionId`. */
    readonly create: (
      input: NewConversation
    ) => Effect.Effect<Conversation, InvalidInput | Conflict | NotFound | StorageError>
    /** The conversation with `id`, or `NotFound`. Every operation taking an id: a non-string id is `InvalidInput`. */
    readonly get: (id: string) => Effect.Effect<Conversation, NotFound | InvalidInput | StorageError>
    /** The conversation with `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Conversation>, InvalidInput | StorageError>
    /**
     * Applies a patch; `Conflict` if `expectedVersion` (a positive integer) is stale. Without it,
     * never `Conflict` and no update is lost. Appends do not change `version`.
     */
    readonly update: (
      id: string,
      patch: ConversationPatch,
      options?: UpdateOptions
    ) => Effect.Effect<Conversation, NotFound | Conflict | InvalidInput | StorageError>
    /** Conversations oldest first (newest-last), optionally of one session. */
    readonly list: (options?: ConversationListOptions) => Effect.Effect<Page<Conversation>, InvalidInput | StorageError>
    /** Deletes a conversation and its messages; unknown ids are a no-op. */
    readonly delete: (id: string) => Effect.Effect<void, InvalidInput | StorageError>
    /** Appends one message with the next `seq`; `Conflict` if its id is already in the conversation. */
    readonly append: (
      id: string,
      message: MessageInput
    ) => Effect.Effect<StoredMessage, NotFound | Conflict | InvalidInput | StorageError>
    /** Appends messages atomically with consecutive `seq`s (all or none). */
    readonly appendMany: (
      id: string,
      messages: ReadonlyArray<MessageInput>
    ) => Effect.Effect<ReadonlyArray<StoredMessage>, NotFound | Conflict | InvalidInput | StorageError>
    /** A window of messages by `seq`, at most `limit` (default 100, at most 1000; see `MessagesOptions`). */
    readonly messages: (
      id: string,
      options?: MessagesOptions
    ) => Effect.Effect<ReadonlyArray<StoredMessage>, NotFound | InvalidInput | StorageError>
    /**
     * Every message in ascending `seq` (after `after`, if given), read lazily a page of 100 at a time as the
     * stream is pulled; messages appended while it runs are included. `NotFound` for an unknown conversation
     * (also when it is deleted before the stream ends).
     */
    readonly messagesStream: (
      id: string,
      options?: MessagesStreamOptions
    ) => Stream.Stream<StoredMessage, NotFound | InvalidInput | StorageError>
    /** Deletes every message; `messageCount` becomes 0 and later `seq`s continue from `lastSeq`. */
    readonly clear: (id: string) => Effect.Effect<void, NotFound | InvalidInput | StorageError>
  }
>() {}

/** A conversation as a driver stores it. */
export interface ConversationRow {
  readonly id: string
  readonly sessionId: string | null
  readonly title: string | null
  readonly model: string | null
  readonly metadata: unknown
  readonly messageCount: number
  readonly lastSeq: number
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** A stored message row. */
export interface StoredMessageRow extends MessageRow {
  readonly seq: number
}

/** What a backend implements for `ConversationStore`; everything else lives in `make`. */
export interface ConversationDriver {
  /** Inserts a new row: `"exists"` when the id is taken, `"no-session"` when `sessionId` is unknown. */
  readonly insert: (row: ConversationRow) => Effect.Effect<"inserted" | "exists" | "no-session", StorageError>
  readonly get: (id: string) => Effect.Effect<ConversationRow | undefined, StorageError>
  /**
   * Writes title, model, metadata, updatedAt and version if the stored version
   * is `row.version - 1`; returns the stored row (with current counts), or
   * `undefined` if the version differs (or the row is gone).
   */
  readonly update: (row: ConversationRow) => Effect.Effect<ConversationRow | undefined, StorageError>
  readonly list: (
    filter: { readonly sessionId?: string | undefined },
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<ConversationRow>, StorageError>
  /** Deletes the conversation and its messages, atomically. */
  readonly delete: (id: string) => Effect.Effect<void, StorageError>
  /**
   * Atomically: takes the next `rows.length` seqs, inserts the rows and adds
   * to `messageCount`. Returns the first seq, `"missing"` for an unknown
   * conversation, `"duplicate"` if a message id is already there (nothing written).
   */
  readonly append: (
    id: string,
    rows: ReadonlyArray<MessageRow>,
    now: number
  ) => Effect.Effect<number | "missing" | "duplicate", StorageError>
  /** The window in ascending seq (see `MessagesOptions`), or `undefined` for an unknown conversation. */
  readonly messages: (
    id: string,
    window: MessagesWindow
  ) => Effect.Effect<ReadonlyArray<StoredMessageRow> | undefined, StorageError>
  /** Deletes all messages and zeroes `messageCount`; `false` for an unknown conversation. */
  readonly clear: (id: string, now: number) => Effect.Effect<boolean, StorageError>
}

const entity = "Conversation"

const decodeRow = (row: ConversationRow): Conversation => {
  const conversation: { -readonly [K in keyof Conversation]: Conversation[K] } = {
    id: row.id as ConversationId,
    metadata: parseJson(row.metadata) as JsonObject,
    messageCount: row.messageCount,
    lastSeq: row.lastSeq,
    createdAt: utcFromMillis(row.createdAt),
    updatedAt: utcFromMillis(row.updatedAt),
    version: row.version
  }
  if (row.sessionId !== null) conversation.sessionId = row.sessionId as SessionId
  if (row.title !== null) conversation.title = row.title
  if (row.model !== null) conversation.model = row.model
  return conversation
}

const decodeStored = (conversationId: string, row: StoredMessageRow): StoredMessage => {
  const id = row.id as MessageId
  const role = row.role as MessageRole
  const parts = parseJson(row.parts) as StoredMessage["parts"]
  const createdAt = utcFromMillis(row.createdAt)
  const conversation = conversationId as ConversationId
  return row.metadata === null || row.metadata === undefined
    ? { id, role, parts, createdAt, conversationId: conversation, seq: row.seq }
    : {
        id,
        role,
        parts,
        metadata: parseJson(row.metadata) as MessageMetadata,
        createdAt,
        conversationId: conversation,
        seq: row.seq
      }
}

const decodeNew = decodeInput(entity, NewConversation)
const decodePatch = decodeInput(entity, ConversationPatch)
const decodeList = decodeOptions(entity, ConversationListOptions)
const decodeWindow = decodeOptions(entity, MessagesOptions)
const decodeStreamOptions = decodeOptions(entity, MessagesStreamOptions)
const decodeUpdateOptions = decodeOptions(entity, UpdateOptions)

/** Builds a `ConversationStore` over a driver: validation, ids, clock, versions and encoding live here. */
export const makeConversationStore = Effect.fnUntraced(function* (driver: ConversationDriver) {
  const limits = yield* MessageLimits

  const get = (id: unknown) =>
    Effect.map(byId(entity, id, undefined, driver.get), (row) => (row === undefined ? undefined : decodeRow(row)))

  const appendRows = Effect.fnUntraced(function* (id: string, inputs: ReadonlyArray<unknown>) {
    const key = yield* checkId(entity, id)
    const now = yield* Clock.currentTimeMillis
    const encoded = yield* encodeMessages("Message", inputs, now, limits)
    const rows = encoded.rows
    const first = key === undefined ? "missing" : rows.length === 0 ? 0 : yield* driver.append(key, rows, now)
    if (first === "missing") return yield* new NotFound({ entity, id })
    if (first === "duplicate") {
      return yield* new Conflict({
        entity: "Message",
        id: rows.length === 1 ? rows[0]!.id : id,
        expected: 0,
        actual: 1,
        reason: "exists"
      })
    }
    if (rows.length === 0) yield* getOrFail(id)
    const conversationId = id as ConversationId
    const stored: Array<StoredMessage> = new Array(rows.length)
    for (let i = 0; i < rows.length; i++) {
      const { createdAt: given, metadata, parts, role } = encoded.inputs[i]!
      const row = rows[i]!
      const id = row.id as MessageId
      const createdAt = given ?? utcFromMillis(row.createdAt)
      const seq = first + i
      stored[i] =
        metadata === undefined
          ? { id, role, parts, createdAt, conversationId, seq }
          : { id, role, parts, metadata, createdAt, conversationId, seq }
    }
    return stored
  })

  const messages = Effect.fnUntraced(function* (id: string, window: MessagesWindow) {
    const rows = yield* byId(entity, id, undefined, (id) => driver.messages(id, window))
    if (rows === undefined) return yield* new NotFound({ entity, id })
    return rows.map((row) => decodeStored(id, row))
  })

  const getOrFail = (id: string) =>
    Effect.flatMap(get(id), (conversation) =>
      conversation === undefined ? Effect.fail(new NotFound({ entity, id })) : Effect.succeed(conversation)
    )

  return traced(
    "ConversationStore",
    driver,
    ConversationStore.of({
      create: Effect.fnUntraced(function* (input) {
        const fields = yield* decodeNew(input)
        const now = yield* Clock.currentTimeMillis
        const row: ConversationRow = {
          id: fields.id ?? uuidv7At(now),
          sessionId: fields.sessionId ?? null,
          title: fields.title ?? null,
          model: fields.model ?? null,
          metadata: JSON.stringify(fields.metadata ?? {}),
          messageCount: 0,
          lastSeq: 0,
          createdAt: now,
          updatedAt: now,
          version: 1
        }
        const result = yield* driver.insert(row)
        if (result === "inserted") return decodeRow(row)
        if (result === "no-session") return yield* new NotFound({ entity: "Session", id: row.sessionId! })
        const existing = yield* driver.get(row.id)
        return yield* new Conflict({
          entity,
          id: row.id,
          expected: 0,
          actual: existing?.version ?? 0,
          reason: "exists"
        })
      }),
      get: getOrFail,
      find: (id) => Effect.map(get(id), Option.fromNullable),
      update: Effect.fnUntraced(function* (id, input, options) {
        const key = yield* checkId(entity, id)
        const patch = yield* decodePatch(input)
        const { expectedVersion } = yield* decodeUpdateOptions(options)
        if (key === undefined) return yield* new NotFound({ entity, id })
        const row = yield* updateVersioned({
          entity,
          id: key,
          expectedVersion,
          read: driver.get(key),
          next: (current) =>
            Effect.map(Clock.currentTimeMillis, (now): ConversationRow => ({
              ...current,
              title: patched(patch.title, current.title),
              model: patched(patch.model, current.model),
              metadata: patch.metadata === undefined ? current.metadata : JSON.stringify(patch.metadata),
              updatedAt: Math.max(now, current.updatedAt),
              version: current.version + 1
            })),
          write: driver.update
        })
        return decodeRow(row)
      }),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeList(input)
        const query = yield* toPageQuery(entity, options)
        const rows = yield* driver.list(options, query)
        return toPage(rows, query, decodeRow)
      }),
      delete: (id) => byId(entity, id, undefined, driver.delete),
      append: (id, message) => Effect.map(appendRows(id, [message]), (stored) => stored[0]!),
      appendMany: appendRows,
      messages: Effect.fnUntraced(function* (id, input) {
        const options = yield* decodeWindow(input)
        return yield* messages(id, {
          limit: options.limit ?? defaultLimit,
          before: options.before,
          after: options.after
        })
      }),
      messagesStream: (id, input) =>
        Stream.unwrap(
          Effect.map(decodeStreamOptions(input), (options) =>
            Stream.paginateChunkEffect(options.after, (after) =>
              Effect.map(messages(id, { after: after ?? 0, limit: defaultLimit }), (page) => {
                const next = page.length < defaultLimit ? Option.none() : Option.some(page[page.length - 1]!.seq)
                return [Chunk.unsafeFromArray(page), next] as const
              })
            )
          )
        ),
      clear: Effect.fnUntraced(function* (id) {
        const now = yield* Clock.currentTimeMillis
        if (!(yield* byId(entity, id, false, (id) => driver.clear(id, now)))) return yield* new NotFound({ entity, id })
      })
    })
  )
})
