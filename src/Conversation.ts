/**
 * `ConversationStore`: conversation records (title, model, owner, message
 * count) and their messages, appended with a gapless per-conversation `seq`
 * and edited in place (`upsert`, `updateMessage`, `deleteMessages`,
 * `truncateAfter`) or branched (`fork`). A session's chat is the conversation
 * with the session's id (`SessionStore.load`/`save` read and replace it).
 */
import { Chunk, Clock, Context, type DateTime, Effect, Option, Schema, Stream } from "effect"
import { Conflict, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { isStorableText, JsonObject, parseJson, Text } from "./Json.ts"
import { utcFromMillis } from "./Time.ts"
import {
  checkLimits,
  encodeMessages,
  MessageId,
  type MessageInput,
  MessageLimits,
  MessageMetadata,
  MessagePart,
  type MessageRole,
  type MessageRow,
  messageFields,
  MessageRole as MessageRoleSchema,
  openStruct
} from "./Message.ts"
import { defaultLimit, maxLimit, type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, checkId, decodeInput, decodeOptions, patched, UpdateOptions, updateVersioned } from "./Record.ts"
import { ResourceId, SessionId } from "./Session.ts"
import { traced } from "./Traced.ts"

/** A conversation id: a non-empty Text (see `Json.ts`) up to 255 characters; UUIDv7 when generated. */
export const ConversationId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("ConversationId"))
/** A conversation id. */
export type ConversationId = typeof ConversationId.Type

/**
 * A conversation record. `lastSeq` is the `seq` of the newest message ever appended (kept when messages are
 * deleted, so seqs are never reused). `resourceId` is the end user or tenant that owns it. `title` and `model`
 * follow the Text rule; `metadata` is content, stored verbatim.
 */
export const Conversation = Schema.Struct({
  id: ConversationId,
  sessionId: Schema.optional(SessionId),
  resourceId: Schema.optional(ResourceId),
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
  resourceId: Schema.optional(ResourceId),
  title: Schema.optional(Text),
  model: Schema.optional(Text),
  metadata: Schema.optional(JsonObject)
})
/** Input of `create`. */
export type NewConversation = typeof NewConversation.Encoded

/** Input of `update`: absent fields are kept, `null` clears an optional field. */
export const ConversationPatch = Schema.Struct({
  resourceId: Schema.optional(Schema.NullOr(ResourceId)),
  title: Schema.optional(Schema.NullOr(Text)),
  model: Schema.optional(Schema.NullOr(Text)),
  metadata: Schema.optional(JsonObject)
})
/** Input of `update`. */
export type ConversationPatch = typeof ConversationPatch.Encoded

/** Options of `list`: optional session and owner filters plus paging. */
export const ConversationListOptions = Schema.Struct({
  ...PageOptions.fields,
  sessionId: Schema.optional(Text),
  resourceId: Schema.optional(Text)
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

/** A message as stored in a conversation (with any fields beyond `Message`'s it was given). */
export const StoredMessage = openStruct(
  "StoredMessage",
  { ...messageFields, conversationId: ConversationId, seq: Schema.Int, createdAt: Schema.DateTimeUtcFromNumber },
  ["sessionId"]
)
/** A message as stored in a conversation. */
export type StoredMessage = typeof StoredMessage.Type

/**
 * Input of `updateMessage`: the fields to replace (`metadata: null` removes it); others are kept. Fields beyond
 * these are refused (replace the whole message with `upsert` to change them).
 */
export const MessagePatch = Schema.Struct({
  role: Schema.optional(MessageRoleSchema),
  parts: Schema.optional(Schema.Array(MessagePart)),
  metadata: Schema.optional(Schema.NullOr(MessageMetadata)),
  createdAt: Schema.optional(Schema.Union(Schema.DateTimeUtcFromSelf, Schema.DateTimeUtcFromNumber))
}).annotations({ parseOptions: { onExcessProperty: "error" } })
/** Input of `updateMessage`. */
export type MessagePatch = typeof MessagePatch.Encoded

/** Options of `fork`: copy the messages up to `upTo` (a `seq`; default all) into a new conversation `id`. */
export const ForkOptions = Schema.Struct({
  upTo: Schema.optional(Schema.NonNegativeInt),
  id: Schema.optional(ConversationId)
})
/** Options of `fork`. */
export type ForkOptions = typeof ForkOptions.Encoded

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
    /** Conversations oldest first (newest-last), optionally of one session and of one owner (`resourceId`). */
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
    /**
     * Stores `message` by its id, atomically: an id not in the conversation (or none) is appended with the next
     * `seq`, as `append` does; an id already there replaces that message (role, parts, metadata and any other
     * field; its `createdAt` is kept unless `message` gives one) and keeps its `seq`, `messageCount` and `lastSeq`.
     * This is the AI SDK's continuation, which streams an assistant message again under the same id. Concurrent
     * upserts of one id store one message: one of them replaces the other.
     */
    readonly upsert: (
      id: string,
      message: MessageInput
    ) => Effect.Effect<StoredMessage, NotFound | InvalidInput | StorageError>
    /**
     * Replaces the fields `patch` gives of message `messageId` (see `MessagePatch`), keeping its `seq`; `NotFound`
     * (`entity: "Message"`) when the conversation has no such message.
     */
    readonly updateMessage: (
      id: string,
      messageId: string,
      patch: MessagePatch
    ) => Effect.Effect<StoredMessage, NotFound | InvalidInput | StorageError>
    /**
     * Deletes the messages with these ids atomically (ids not in the conversation are ignored) and returns how
     * many it deleted; `messageCount` drops by as many, `lastSeq` is kept (seqs are never reused).
     */
    readonly deleteMessages: (
      id: string,
      messageIds: ReadonlyArray<string>
    ) => Effect.Effect<number, NotFound | InvalidInput | StorageError>
    /**
     * Deletes every message whose `seq` is greater than `seq` (to regenerate from there) atomically and returns
     * how many; `lastSeq` is kept, so the next append gets `lastSeq + 1`.
     */
    readonly truncateAfter: (id: string, seq: number) => Effect.Effect<number, NotFound | InvalidInput | StorageError>
    /**
     * A branch, atomically: a new conversation (`options.id`, or a UUIDv7) with the session, owner, title, model
     * and metadata of conversation `id`, and a copy of its messages up to `options.upTo` (a `seq`; default all)
     * with their ids, seqs and times; its `lastSeq` is the last copied `seq`. `Conflict` when the new id is taken.
     */
    readonly fork: (
      id: string,
      options?: ForkOptions
    ) => Effect.Effect<Conversation, NotFound | Conflict | InvalidInput | StorageError>
  }
>() {}

/** A conversation as a driver stores it. */
export interface ConversationRow {
  readonly id: string
  readonly sessionId: string | null
  readonly resourceId: string | null
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

/** The fields `updateMessage` replaces, encoded; `null` keeps a field (`setMetadata` says whether to write `metadata`). */
export interface MessagePatchRow {
  readonly role: string | null
  readonly parts: string | null
  readonly setMetadata: boolean
  readonly metadata: string | null
  readonly createdAt: number | null
}

/** The filters of `list`, as a driver receives them. */
export interface ConversationFilter {
  readonly sessionId?: string | undefined
  readonly resourceId?: string | undefined
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
    filter: ConversationFilter,
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
  /**
   * Atomically: replaces the message with `row.id` (its `createdAt` too unless `keepCreatedAt`) or, when there is
   * none, appends `row` as `append` does. Returns the message's seq and stored `createdAt`, `"missing"` for an
   * unknown conversation, or `"raced"` when a concurrent write inserted the id first (nothing written; call again).
   */
  readonly upsert: (
    id: string,
    row: MessageRow,
    keepCreatedAt: boolean,
    now: number
  ) => Effect.Effect<{ readonly seq: number; readonly createdAt: number } | "missing" | "raced", StorageError>
  /** Writes the patched fields of message `messageId` and returns it as stored. */
  readonly updateMessage: (
    id: string,
    messageId: string,
    patch: MessagePatchRow,
    now: number
  ) => Effect.Effect<StoredMessageRow | "no-conversation" | "no-message", StorageError>
  /** Deletes the messages with these ids and lowers `messageCount` by as many: the count, or `"missing"`. */
  readonly deleteMessages: (
    id: string,
    messageIds: ReadonlyArray<string>,
    now: number
  ) => Effect.Effect<number | "missing", StorageError>
  /** Deletes the messages after `seq` and lowers `messageCount` by as many: the count, or `"missing"`. */
  readonly truncateAfter: (id: string, seq: number, now: number) => Effect.Effect<number | "missing", StorageError>
  /**
   * Inserts conversation `row` (its id, times and version) with the other fields of conversation `id` and copies
   * its messages with `seq <= upTo`; returns the new row as stored, `"missing"` for an unknown `id`, `"exists"` when
   * `row.id` is taken (nothing written).
   */
  readonly fork: (
    id: string,
    row: ConversationRow,
    upTo: number
  ) => Effect.Effect<ConversationRow | "missing" | "exists", StorageError>
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
  if (row.resourceId !== null) conversation.resourceId = row.resourceId as ResourceId
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
  const message: StoredMessage =
    row.metadata === null || row.metadata === undefined
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
  return row.extra === null || row.extra === undefined
    ? message
    : Object.assign(parseJson(row.extra) as object, message)
}

/** The message a write stored: the decoded input with its stored `createdAt`, `conversationId` and `seq`. */
const storedOf = (
  input: typeof MessageInput.Type,
  row: MessageRow,
  conversationId: ConversationId,
  seq: number,
  createdAt: DateTime.Utc
): StoredMessage => {
  const id = row.id as MessageId
  const { metadata, parts, role } = input
  if (row.extra !== null) return Object.assign({}, input, { id, createdAt, conversationId, seq })
  return metadata === undefined
    ? { id, role, parts, createdAt, conversationId, seq }
    : { id, role, parts, metadata, createdAt, conversationId, seq }
}

const decodeNew = decodeInput(entity, NewConversation)
const decodePatch = decodeInput(entity, ConversationPatch)
const decodeList = decodeOptions(entity, ConversationListOptions)
const decodeWindow = decodeOptions(entity, MessagesOptions)
const decodeStreamOptions = decodeOptions(entity, MessagesStreamOptions)
const decodeUpdateOptions = decodeOptions(entity, UpdateOptions)
const decodeMessagePatch = decodeInput("Message", MessagePatch)
const decodeMessageIds = decodeInput("Message", Schema.Array(Schema.String))
const decodeSeq = decodeInput(entity, Schema.NonNegativeInt)
const decodeFork = decodeOptions(entity, ForkOptions)

/** Whether a message can have `id` (the `MessageId` rule): others are ids of no message. */
const isPossibleMessageId = (id: string): boolean => id.length > 0 && id.length <= 255 && isStorableText(id)

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
      const input = encoded.inputs[i]!
      const row = rows[i]!
      stored[i] = storedOf(input, row, conversationId, first + i, input.createdAt ?? utcFromMillis(row.createdAt))
    }
    return stored
  })

  /** `key` (a conversation id from `checkId`), or `NotFound` for an id no conversation can have. */
  const known = (id: string, key: string | undefined) =>
    key === undefined ? Effect.fail(new NotFound({ entity, id })) : Effect.succeed(key)

  const upsert = Effect.fnUntraced(function* (id: string, message: unknown) {
    const key = yield* checkId(entity, id)
    const now = yield* Clock.currentTimeMillis
    const encoded = yield* encodeMessages("Message", [message], now, limits)
    const conversation = yield* known(id, key)
    const row = encoded.rows[0]!
    const input = encoded.inputs[0]!
    let result = yield* driver.upsert(conversation, row, input.createdAt === undefined, now)
    // Lost a race to a concurrent upsert of the same id (which inserted it): this one now replaces it.
    while (result === "raced") result = yield* driver.upsert(conversation, row, input.createdAt === undefined, now)
    if (result === "missing") return yield* new NotFound({ entity, id })
    return storedOf(input, row, id as ConversationId, result.seq, input.createdAt ?? utcFromMillis(result.createdAt))
  })

  const updateMessage = Effect.fnUntraced(function* (id: string, messageId: string, input: unknown) {
    const key = yield* checkId(entity, id)
    const message = yield* checkId("Message", messageId)
    const patch = yield* decodeMessagePatch(input)
    const problem = patch.parts === undefined ? undefined : checkLimits(patch.parts, limits)
    if (problem !== undefined) return yield* InvalidInput.single("Message", problem.rule, problem.path)
    const conversation = yield* known(id, key)
    if (message === undefined) return yield* new NotFound({ entity: "Message", id: messageId })
    const now = yield* Clock.currentTimeMillis
    const row = yield* driver.updateMessage(
      conversation,
      message,
      {
        role: patch.role ?? null,
        parts: patch.parts === undefined ? null : JSON.stringify(patch.parts),
        setMetadata: patch.metadata !== undefined,
        metadata: patch.metadata === undefined || patch.metadata === null ? null : JSON.stringify(patch.metadata),
        createdAt: patch.createdAt === undefined ? null : patch.createdAt.epochMillis
      },
      now
    )
    if (row === "no-conversation") return yield* new NotFound({ entity, id })
    if (row === "no-message") return yield* new NotFound({ entity: "Message", id: messageId })
    return decodeStored(id, row)
  })

  const deleteMessages = Effect.fnUntraced(function* (id: string, input: unknown) {
    const key = yield* checkId(entity, id)
    const ids = yield* decodeMessageIds(input, ["messageIds"])
    const conversation = yield* known(id, key)
    const now = yield* Clock.currentTimeMillis
    const deleted = yield* driver.deleteMessages(conversation, [...new Set(ids.filter(isPossibleMessageId))], now)
    if (deleted === "missing") return yield* new NotFound({ entity, id })
    return deleted
  })

  const truncateAfter = Effect.fnUntraced(function* (id: string, input: unknown) {
    const key = yield* checkId(entity, id)
    const seq = yield* decodeSeq(input, ["seq"])
    const conversation = yield* known(id, key)
    const now = yield* Clock.currentTimeMillis
    const deleted = yield* driver.truncateAfter(conversation, seq, now)
    if (deleted === "missing") return yield* new NotFound({ entity, id })
    return deleted
  })

  const fork = Effect.fnUntraced(function* (id: string, input: unknown) {
    const key = yield* checkId(entity, id)
    const options = yield* decodeFork(input)
    const source = yield* known(id, key)
    const now = yield* Clock.currentTimeMillis
    const row: ConversationRow = {
      id: options.id ?? uuidv7At(now),
      sessionId: null,
      resourceId: null,
      title: null,
      model: null,
      metadata: "{}",
      messageCount: 0,
      lastSeq: 0,
      createdAt: now,
      updatedAt: now,
      version: 1
    }
    const forked = yield* driver.fork(source, row, options.upTo ?? Number.MAX_SAFE_INTEGER)
    if (forked === "missing") return yield* new NotFound({ entity, id })
    if (forked === "exists") {
      const existing = yield* driver.get(row.id)
      return yield* new Conflict({ entity, id: row.id, expected: 0, actual: existing?.version ?? 0, reason: "exists" })
    }
    return decodeRow(forked)
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
          resourceId: fields.resourceId ?? null,
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
              resourceId: patched(patch.resourceId, current.resourceId),
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
      }),
      upsert,
      updateMessage,
      deleteMessages,
      truncateAfter,
      fork
    })
  )
})
