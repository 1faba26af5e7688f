/**
 * `SessionStore`: agent sessions (who, where, whose, what state) and their
 * chat, saved and loaded as one unit (the seeds' `load`/`save`). A session's
 * chat is the conversation with the session's id, the one `SessionBroker`
 * appends to: `load` reads its messages and `save` replaces them, so the
 * messages of a chat live in one place whichever store wrote them.
 */
import { Clock, Context, Effect, Option, Schema } from "effect"
import { Conflict, InvalidInput, NotFound, SessionError, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { JsonObject, jsonText, parseJson, Text } from "./Json.ts"
import { utcFromMillis } from "./Time.ts"
import type { StoredMessageRow } from "./Conversation.ts"
import {
  decodeMessageRow,
  encodeMessages,
  type Message,
  type MessageInput,
  MessageLimits,
  type MessageRow
} from "./Message.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, checkId, decodeInput, decodeOptions, patched, UpdateOptions, updateVersioned } from "./Record.ts"
import { traced } from "./Traced.ts"

/**
 * A session id: a non-empty Text (well-formed Unicode without U+0000, see `Json.ts`) up to 255
 * characters (e.g. `"user-123"`); UUIDv7 when generated.
 */
export const SessionId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("SessionId"))
/** A session id. */
export type SessionId = typeof SessionId.Type

/**
 * The end user or tenant that owns a session or conversation (Mastra's `resourceId`, a LangGraph user namespace):
 * a non-empty Text up to 255 characters, indexed for `list`.
 */
export const ResourceId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("ResourceId"))
/** The owner of a session or conversation. */
export type ResourceId = typeof ResourceId.Type

/** Lifecycle of a session. A `closed` session's chat can no longer be saved. */
export const SessionStatus = Schema.Literal("active", "idle", "closed")
/** Lifecycle of a session. */
export type SessionStatus = typeof SessionStatus.Type

/**
 * A session record (the chat is read with `load`). `messageCount` is its conversation's. `agentId`, `channel`,
 * `resourceId` and `title` follow the Text rule; `metadata` is content, stored verbatim.
 */
export const Session = Schema.Struct({
  id: SessionId,
  resourceId: Schema.optional(ResourceId),
  agentId: Schema.optional(Text),
  channel: Schema.optional(Text),
  title: Schema.optional(Text),
  status: SessionStatus,
  metadata: JsonObject,
  messageCount: Schema.NonNegativeInt,
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  version: Schema.Int
})
/** A session record. */
export type Session = typeof Session.Type

/** Input of `create`. */
export const NewSession = Schema.Struct({
  id: Schema.optional(SessionId),
  resourceId: Schema.optional(ResourceId),
  agentId: Schema.optional(Text),
  channel: Schema.optional(Text),
  title: Schema.optional(Text),
  status: Schema.optional(SessionStatus),
  metadata: Schema.optional(JsonObject)
})
/** Input of `create`. */
export type NewSession = typeof NewSession.Encoded

/** Input of `update`: absent fields are kept, `null` clears an optional field. */
export const SessionPatch = Schema.Struct({
  resourceId: Schema.optional(Schema.NullOr(ResourceId)),
  agentId: Schema.optional(Schema.NullOr(Text)),
  channel: Schema.optional(Schema.NullOr(Text)),
  title: Schema.optional(Schema.NullOr(Text)),
  status: Schema.optional(SessionStatus),
  metadata: Schema.optional(JsonObject)
})
/** Input of `update`. */
export type SessionPatch = typeof SessionPatch.Encoded

/** Options of `list`: filters plus paging. */
export const SessionListOptions = Schema.Struct({
  ...PageOptions.fields,
  resourceId: Schema.optional(Text),
  agentId: Schema.optional(Text),
  channel: Schema.optional(Text),
  status: Schema.optional(SessionStatus)
})
/** Options of `list`. */
export type SessionListOptions = typeof SessionListOptions.Encoded

/** The session store. */
export class SessionStore extends Context.Tag("effect-agent-stores/SessionStore")<
  SessionStore,
  {
    /** Creates a session; `Conflict` (`reason: "exists"`) when the id is taken. */
    readonly create: (input: NewSession) => Effect.Effect<Session, InvalidInput | Conflict | StorageError>
    /** The session with `id`, or `NotFound`. Every operation taking an id: a non-string id is `InvalidInput`. */
    readonly get: (id: string) => Effect.Effect<Session, NotFound | InvalidInput | StorageError>
    /** The session with `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Session>, InvalidInput | StorageError>
    /**
     * Applies a patch; `Conflict` if `expectedVersion` (a positive integer) is stale. Bumps
     * `version`. Without `expectedVersion` it never fails with `Conflict` and no update is lost.
     */
    readonly update: (
      id: string,
      patch: SessionPatch,
      options?: UpdateOptions
    ) => Effect.Effect<Session, NotFound | Conflict | InvalidInput | StorageError>
    /** Sessions oldest first (newest-last), filtered by owner (`resourceId`), agent, channel and status. */
    readonly list: (options?: SessionListOptions) => Effect.Effect<Page<Session>, InvalidInput | StorageError>
    /** Deletes a session with its conversations (its chat too) and their messages; unknown ids are a no-op. */
    readonly delete: (id: string) => Effect.Effect<void, InvalidInput | StorageError>
    /**
     * The session's chat: the messages of the conversation with the session's id, in `seq` order (`[]` when it
     * has none); `None` for an unknown id ("fresh session").
     */
    readonly load: (id: string) => Effect.Effect<Option.Option<ReadonlyArray<Message>>, InvalidInput | StorageError>
    /**
     * Makes `messages` the session's chat, atomically (old or new, never partial): the messages of the
     * conversation with the session's id (created when missing) become these, in this order. Creates an `active`
     * session when `id` is unknown; `SessionError` if it is closed. The stored messages that begin the new list
     * unchanged (same id and content) stay as they are, with their `seq`; the rest are replaced by the new ones,
     * appended with new `seq`s (a message whose id was there keeps its `createdAt` unless one is given). So saving
     * the whole history after each turn, as AI SDK apps do in `onFinish`, writes only the new messages.
     * Message ids must be distinct (`InvalidInput`).
     */
    readonly save: (
      id: string,
      messages: ReadonlyArray<MessageInput>
    ) => Effect.Effect<void, InvalidInput | SessionError | StorageError>
  }
>() {}

/** A session as a driver stores it: JSON as text (or parsed `jsonb`), times in epoch milliseconds. */
export interface SessionRow {
  readonly id: string
  readonly resourceId: string | null
  readonly agentId: string | null
  readonly channel: string | null
  readonly title: string | null
  readonly status: string
  readonly metadata: unknown
  /** Its conversation's (0 without one); not written by `insert` and `update`. */
  readonly messageCount: number
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** The filters of `list`, as a driver receives them. */
export interface SessionFilter {
  readonly resourceId?: string | undefined
  readonly agentId?: string | undefined
  readonly channel?: string | undefined
  readonly status?: string | undefined
}

/** What a backend implements for `SessionStore`; everything else lives in `make`. */
export interface SessionDriver {
  /** Inserts a new row; `false` when the id is taken. */
  readonly insert: (row: SessionRow) => Effect.Effect<boolean, StorageError>
  readonly get: (id: string) => Effect.Effect<SessionRow | undefined, StorageError>
  /**
   * Writes resourceId, agentId, channel, title, status, metadata, updatedAt and version if
   * the stored version is `row.version - 1`; returns the stored row, or
   * `undefined` if the version differs (or the row is gone).
   */
  readonly update: (row: SessionRow) => Effect.Effect<SessionRow | undefined, StorageError>
  readonly list: (filter: SessionFilter, page: PageQuery) => Effect.Effect<ReadonlyArray<SessionRow>, StorageError>
  /** Deletes the session, its conversations and their messages, atomically. */
  readonly delete: (id: string) => Effect.Effect<void, StorageError>
  /**
   * The messages of the conversation with the session's id in `seq` order (`[]` without one), `undefined` for an
   * unknown session.
   */
  readonly load: (id: string) => Effect.Effect<ReadonlyArray<StoredMessageRow> | undefined, StorageError>
  /**
   * In one atomic step: inserts `row` when the id is unknown, otherwise moves `updatedAt` unless the session is
   * closed (then `"closed"`, nothing written); then makes `rows` the messages of the conversation with the
   * session's id (creating it, in the session), keeping the stored messages `chatEdit` keeps. Message ids in
   * `rows` are distinct. `given[i]` says whether `rows[i].createdAt` was given (else it is `now`).
   */
  readonly save: (
    row: SessionRow,
    rows: ReadonlyArray<MessageRow>,
    given: ReadonlyArray<boolean>
  ) => Effect.Effect<"saved" | "closed", StorageError>
}

/**
 * How `save` turns a chat's stored messages (ascending `seq`) into `rows`: the first `kept` stored messages equal
 * `rows`' first (same id, role, parts, metadata and other fields, and `createdAt` where given) and stay; the
 * others are deleted and `appended` (the rest of `rows`) appended after them, a message whose id was stored
 * keeping its `createdAt` unless one was given.
 */
export const chatEdit = (
  stored: ReadonlyArray<StoredMessageRow>,
  rows: ReadonlyArray<MessageRow>,
  given: ReadonlyArray<boolean>
): { readonly kept: number; readonly appended: ReadonlyArray<MessageRow> } => {
  let kept = 0
  while (kept < stored.length && kept < rows.length && sameMessage(stored[kept]!, rows[kept]!, given[kept]!)) kept++
  if (kept === rows.length) return { kept, appended: [] }
  const times = new Map<string, number>()
  for (let i = kept; i < stored.length; i++) times.set(stored[i]!.id, stored[i]!.createdAt)
  const appended: Array<MessageRow> = []
  for (let i = kept; i < rows.length; i++) {
    const row = rows[i]!
    const time = given[i] ? undefined : times.get(row.id)
    appended.push(time === undefined ? row : { ...row, createdAt: time })
  }
  return { kept, appended }
}

const sameMessage = (stored: StoredMessageRow, row: MessageRow, given: boolean): boolean =>
  stored.id === row.id &&
  stored.role === row.role &&
  jsonText(stored.parts) === row.parts &&
  nullableText(stored.metadata) === row.metadata &&
  nullableText(stored.extra) === row.extra &&
  (!given || stored.createdAt === row.createdAt)

const nullableText = (value: unknown): string | null => (value === null || value === undefined ? null : jsonText(value))

const entity = "Session"

/** A stored row as a `Session`, its metadata already parsed. */
const sessionOf = (row: SessionRow, metadata: JsonObject): Session => {
  const session: { -readonly [K in keyof Session]: Session[K] } = {
    id: row.id as SessionId,
    status: row.status as SessionStatus,
    metadata,
    messageCount: row.messageCount,
    createdAt: utcFromMillis(row.createdAt),
    updatedAt: utcFromMillis(row.updatedAt),
    version: row.version
  }
  if (row.resourceId !== null) session.resourceId = row.resourceId as ResourceId
  if (row.agentId !== null) session.agentId = row.agentId
  if (row.channel !== null) session.channel = row.channel
  if (row.title !== null) session.title = row.title
  return session
}

const decodeRow = (row: SessionRow): Session => sessionOf(row, parseJson(row.metadata) as JsonObject)

const decodeNew = decodeInput(entity, NewSession)
const decodePatch = decodeInput(entity, SessionPatch)
const decodeList = decodeOptions(entity, SessionListOptions)
const decodeUpdateOptions = decodeOptions(entity, UpdateOptions)
const decodeId = decodeInput(entity, SessionId)

/** Builds a `SessionStore` over a driver: validation, ids, clock, versions and encoding live here. */
export const makeSessionStore = Effect.fnUntraced(function* (driver: SessionDriver) {
  const limits = yield* MessageLimits

  const get = (id: unknown) =>
    Effect.map(byId(entity, id, undefined, driver.get), (row) => (row === undefined ? undefined : decodeRow(row)))

  return traced(
    "SessionStore",
    driver,
    SessionStore.of({
      create: (input) =>
        Effect.flatMap(decodeNew(input), (fields) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const row: SessionRow = {
              id: fields.id ?? uuidv7At(now),
              resourceId: fields.resourceId ?? null,
              agentId: fields.agentId ?? null,
              channel: fields.channel ?? null,
              title: fields.title ?? null,
              status: fields.status ?? "active",
              metadata: JSON.stringify(fields.metadata ?? {}),
              messageCount: 0,
              createdAt: now,
              updatedAt: now,
              version: 1
            }
            return Effect.flatMap(driver.insert(row), (inserted) =>
              inserted
                ? // The decoded input is a private copy equal to what the stored JSON parses to: not parsed back.
                  Effect.succeed(sessionOf(row, fields.metadata ?? {}))
                : Effect.flatMap(driver.get(row.id), (existing) =>
                    Effect.fail(
                      new Conflict({
                        entity,
                        id: row.id,
                        expected: 0,
                        actual: existing?.version ?? 0,
                        reason: "exists"
                      })
                    )
                  )
            )
          })
        ),
      get: (id) =>
        Effect.flatMap(get(id), (session) =>
          session === undefined ? Effect.fail(new NotFound({ entity, id })) : Effect.succeed(session)
        ),
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
            Effect.map(Clock.currentTimeMillis, (now): SessionRow => ({
              ...current,
              resourceId: patched(patch.resourceId, current.resourceId),
              agentId: patched(patch.agentId, current.agentId),
              channel: patched(patch.channel, current.channel),
              title: patched(patch.title, current.title),
              status: patch.status ?? current.status,
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
      load: (id) =>
        Effect.map(byId(entity, id, undefined, driver.load), (rows) =>
          rows === undefined ? Option.none() : Option.some(rows.map(decodeMessageRow))
        ),
      save: Effect.fnUntraced(function* (id, messages) {
        const sessionId = yield* decodeId(id, ["id"])
        const now = yield* Clock.currentTimeMillis
        const { inputs, rows } = yield* encodeMessages(entity, messages, now, limits)
        const seen = new Set<string>()
        for (let i = 0; i < rows.length; i++) {
          if (seen.has(rows[i]!.id)) {
            const path = rows.length === 1 ? ["id"] : [i, "id"]
            const error = InvalidInput.single(entity, "must be distinct: an earlier message has it", path)
            return yield* new InvalidInput({ ...error, message: `messages${error.message}` })
          }
          seen.add(rows[i]!.id)
        }
        const row: SessionRow = {
          id: sessionId,
          resourceId: null,
          agentId: null,
          channel: null,
          title: null,
          status: "active",
          metadata: "{}",
          messageCount: 0,
          createdAt: now,
          updatedAt: now,
          version: 1
        }
        const given = inputs.map((input) => input.createdAt !== undefined)
        if ((yield* driver.save(row, rows, given)) === "closed") {
          return yield* new SessionError({ sessionId, reason: "the session is closed" })
        }
      })
    })
  )
})
