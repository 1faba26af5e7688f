/**
 * `SessionStore`: agent sessions (who, where, what state) and their whole
 * transcript, saved and loaded as one unit (the seeds' `load`/`save`).
 */
import { Clock, Context, Effect, Option, Schema } from "effect"
import { Conflict, type InvalidInput, NotFound, SessionError, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { JsonObject, parseJson, Text } from "./Json.ts"
import { utcFromMillis } from "./Time.ts"
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

/** Lifecycle of a session. A `closed` session's transcript can no longer be saved. */
export const SessionStatus = Schema.Literal("active", "idle", "closed")
/** Lifecycle of a session. */
export type SessionStatus = typeof SessionStatus.Type

/**
 * A session record (metadata only; the transcript is read with `load`). `agentId`, `channel`
 * and `title` follow the Text rule; `metadata` is content, stored verbatim.
 */
export const Session = Schema.Struct({
  id: SessionId,
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
    /** Sessions oldest first (newest-last), filtered by agent, channel and status. */
    readonly list: (options?: SessionListOptions) => Effect.Effect<Page<Session>, InvalidInput | StorageError>
    /** Deletes a session with its transcript and its conversations; unknown ids are a no-op. */
    readonly delete: (id: string) => Effect.Effect<void, InvalidInput | StorageError>
    /** The session's transcript; `None` for an unknown id ("fresh session"). */
    readonly load: (id: string) => Effect.Effect<Option.Option<ReadonlyArray<Message>>, InvalidInput | StorageError>
    /**
     * Replaces the transcript atomically (old or new, never partial), creating
     * an `active` session when `id` is unknown. `SessionError` if it is closed.
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
  readonly agentId: string | null
  readonly channel: string | null
  readonly title: string | null
  readonly status: string
  readonly metadata: unknown
  readonly messageCount: number
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** The filters of `list`, as a driver receives them. */
export interface SessionFilter {
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
   * Writes agentId, channel, title, status, metadata, updatedAt and version if
   * the stored version is `row.version - 1`; returns the stored row, or
   * `undefined` if the version differs (or the row is gone).
   */
  readonly update: (row: SessionRow) => Effect.Effect<SessionRow | undefined, StorageError>
  readonly list: (filter: SessionFilter, page: PageQuery) => Effect.Effect<ReadonlyArray<SessionRow>, StorageError>
  /** Deletes the session, its transcript, its conversations and their messages, atomically. */
  readonly delete: (id: string) => Effect.Effect<void, StorageError>
  /** The transcript as JSON (text or parsed), `undefined` for an unknown id. */
  readonly load: (id: string) => Effect.Effect<unknown, StorageError>
  /**
   * In one atomic step: inserts `row` with `transcript` when the id is unknown,
   * otherwise replaces transcript, `messageCount` and `updatedAt` unless the
   * session is closed (then `"closed"`, nothing written).
   */
  readonly save: (row: SessionRow, transcript: string) => Effect.Effect<"saved" | "closed", StorageError>
}

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
  if (row.agentId !== null) session.agentId = row.agentId
  if (row.channel !== null) session.channel = row.channel
  if (row.title !== null) session.title = row.title
  return session
}

const decodeRow = (row: SessionRow): Session => sessionOf(row, parseJson(row.metadata) as JsonObject)

const transcriptJson = (rows: ReadonlyArray<MessageRow>): string => {
  let json = "["
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    if (i > 0) json += ","
    json += `{"id":${JSON.stringify(row.id)},"role":"${row.role}","parts":${row.parts as string}`
    json += `,"createdAt":${row.createdAt}`
    json += row.metadata === null ? "}" : `,"metadata":${row.metadata as string}}`
  }
  return json + "]"
}

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
        Effect.map(byId(entity, id, undefined, driver.load), (transcript) =>
          transcript === undefined
            ? Option.none()
            : Option.some((parseJson(transcript) as Array<MessageRow>).map(decodeMessageRow))
        ),
      save: Effect.fnUntraced(function* (id, messages) {
        const sessionId = yield* decodeId(id, ["id"])
        const now = yield* Clock.currentTimeMillis
        const { rows } = yield* encodeMessages(entity, messages, now, limits)
        const row: SessionRow = {
          id: sessionId,
          agentId: null,
          channel: null,
          title: null,
          status: "active",
          metadata: "{}",
          messageCount: rows.length,
          createdAt: now,
          updatedAt: now,
          version: 1
        }
        if ((yield* driver.save(row, transcriptJson(rows))) === "closed") {
          return yield* new SessionError({ sessionId, reason: "the session is closed" })
        }
      })
    })
  )
})
