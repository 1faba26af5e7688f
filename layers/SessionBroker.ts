/**
 * The `SessionBroker` layer: one implementation over `SessionStore`,
 * `ConversationStore` and the backend's `Wakeups`, so it behaves alike on
 * memory, SQLite and PostgreSQL. A session's conversation has the session's
 * id. `send` appends, then wakes the session's channel (after the append
 * commits, also inside a caller's transaction); a subscriber follows the
 * channel from a `seq` cursor, reading the messages after it on each wake
 * (or poll), so it never misses one and never waits on a writer. A wake from
 * `send` in this process carries the stored message: a subscriber exactly one
 * message behind delivers it without reading (its own copy, parsed from the
 * JSON stored). On PostgreSQL the wakes cross processes (`LISTEN`/`NOTIFY`,
 * see `PgDatabase`); subscribers in other processes read.
 */
import { DateTime, Duration, Effect, Layer, Option, Stream } from "effect"
import {
  BrokerListOptions,
  HistoryOptions,
  SessionBroker,
  type SessionMessage,
  type SessionSummary,
  SpawnRequest,
  SubscribeOptions
} from "../src/Broker.ts"
import { type ConversationId, ConversationStore, type StoredMessage } from "../src/Conversation.ts"
import { type Conflict, type InvalidInput, NotFound, SessionError, type StorageError } from "../src/Errors.ts"
import type { MessageInput } from "../src/Message.ts"
import { defaultLimit, encodeCursor, maxLimit, type Page } from "../src/Page.ts"
import { checkId, decodeOptions } from "../src/Record.ts"
import { type Session, type SessionId, SessionStore } from "../src/Session.ts"
import * as Kit from "./sql/Kit.ts"
import * as Wakeups from "./Wakeups.ts"

/** Options of `layerWith`. */
export interface BrokerOptions {
  /**
   * The table prefix the stores use, which names the wake-up channels (so two prefixes in one PostgreSQL
   * database do not wake each other's subscribers). Default: the prefix of the SQL layers in context, else `agent`.
   */
  readonly tablePrefix?: string
  /** How often a subscriber re-reads when no wake arrives (a lost wake costs at most this). Default 1 second. */
  readonly poll?: Duration.DurationInput
}

const entity = "Session"

/** Messages a subscriber reads at once. */
const pageSize = defaultLimit

const decodeSpawn = decodeOptions(entity, SpawnRequest)
const decodeList = decodeOptions(entity, BrokerListOptions)
const decodeHistory = decodeOptions(entity, HistoryOptions)
const decodeSubscribe = decodeOptions(entity, SubscribeOptions)

/** `value` without its `undefined` fields (for `exactOptionalPropertyTypes` inputs). */
const defined = <A extends object>(value: A): { [K in keyof A]: Exclude<A[K], undefined> } =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as never

const withSession =
  (sessionId: string) =>
  (message: StoredMessage): SessionMessage =>
    // Not `{ ...message, sessionId }`: a spread followed by a new key costs about 1 µs on Node 20's V8.
    Object.assign({}, message, { sessionId: sessionId as SessionId })

/** How a subscription's read fails. */
type Failure = NotFound | InvalidInput | StorageError

/**
 * The hint `send` wakes this process's subscribers with: the stored message, its JSON fields as text (fixed when
 * sent, so a sender changing the returned message later changes nothing delivered).
 */
class Sent {
  readonly parts: string
  readonly metadata: string | undefined
  constructor(readonly message: StoredMessage) {
    this.parts = JSON.stringify(message.parts)
    this.metadata = message.metadata === undefined ? undefined : JSON.stringify(message.metadata)
  }

  /** A subscriber's own copy, as a read would return it. */
  deliver(sessionId: string): SessionMessage {
    const extra: { parts: StoredMessage["parts"]; metadata?: StoredMessage["metadata"]; sessionId: SessionId } = {
      parts: JSON.parse(this.parts),
      sessionId: sessionId as SessionId
    }
    if (this.metadata !== undefined) extra.metadata = JSON.parse(this.metadata)
    return Object.assign({}, this.message, extra)
  }
}

/** Builds the broker over the stores in context; wake-ups resolved with `Wakeups.current`. */
export const make = (
  options: BrokerOptions = {}
): Effect.Effect<SessionBroker["Type"], never, SessionStore | ConversationStore> =>
  Effect.gen(function* () {
    const sessions = yield* SessionStore
    const conversations = yield* ConversationStore
    const wakeups = yield* Wakeups.current
    /** A backend that brings its own wake-ups is remote (PostgreSQL): round trips are what a read costs there. */
    const concurrentReads = Option.isSome(yield* Effect.serviceOption(Wakeups.Wakeups))
    const tables = yield* Effect.serviceOption(Kit.SqlTables)
    const prefix =
      options.tablePrefix ?? Option.match(tables, { onNone: () => Kit.defaultPrefix, onSome: (t) => t.prefix })
    const poll = Duration.decode(options.poll ?? "1 second")
    const channel = (sessionId: string) => `effect-agent-stores/broker/${prefix}/${sessionId}`

    /** An id no session can have, or a session that does not exist: `NotFound`. */
    const missing = (sessionId: string) => new NotFound({ entity, id: sessionId })

    /** The session's messages in `window`; none when it has no conversation yet, `NotFound` without a session. */
    const window = (sessionId: string, options: HistoryOptions) =>
      Effect.catchTag(conversations.messages(sessionId, options), "NotFound", () =>
        Effect.flatMap(sessions.find(sessionId), (session) =>
          Option.isSome(session) ? Effect.succeed([]) : Effect.fail(missing(sessionId))
        )
      )

    /** Appends to the session's conversation, creating it for a session made without the broker. */
    const append = (sessionId: string, message: MessageInput) =>
      Effect.catchTag(conversations.append(sessionId, message), "NotFound", (error) =>
        error.entity !== "Conversation"
          ? Effect.fail(error)
          : conversations.create({ id: sessionId, sessionId }).pipe(
              Effect.catchTag("Conflict", () => Effect.void),
              Effect.catchTag("NotFound", () => Effect.fail(missing(sessionId))),
              Effect.zipRight(conversations.append(sessionId, message))
            )
      )

    /** The summary of a session: its conversation's count and newest message time. */
    const summarize = (session: Session): Effect.Effect<SessionSummary, StorageError> =>
      Effect.gen(function* () {
        const conversation = yield* Effect.orElseSucceed(conversations.find(session.id), () => Option.none())
        const messageCount = Option.isSome(conversation) ? conversation.value.messageCount : 0
        const newest =
          messageCount === 0
            ? []
            : yield* Effect.catchTags(conversations.messages(session.id, { limit: 1 }), {
                NotFound: () => Effect.succeed([]),
                InvalidInput: () => Effect.succeed([])
              })
        const summary: { -readonly [K in keyof SessionSummary]: SessionSummary[K] } = {
          id: session.id,
          status: session.status,
          messageCount,
          createdAt: session.createdAt,
          updatedAt: session.updatedAt
        }
        if (session.agentId !== undefined) summary.agentId = session.agentId
        if (session.channel !== undefined) summary.channel = session.channel
        if (session.title !== undefined) summary.title = session.title
        if (newest.length > 0 && newest[0]!.createdAt !== undefined) summary.lastMessageAt = newest[0]!.createdAt
        return summary
      })

    /**
     * One read of a subscription: the session's status, then the messages after `cursor`. An open session's read is
     * `caughtUp` when short: the next read waits for a wake, safe because the status was read after the wake that
     * led here was taken, so a later close wakes again. A closed session's stream ends once those messages are
     * delivered. On a backend with its own wake-ups (PostgreSQL) the two reads run at once, to save a round trip;
     * then a closed session's messages are read once more (the first read may predate the close).
     *
     * A wake from this process's `send` of the message right after `cursor` is delivered without reading: the
     * session was open when it was sent, and a close since then is a wake without a hint, which a later hinted
     * wake never replaces, so it is read.
     */
    const read =
      (sessionId: string) =>
      (cursor: number, hint: unknown): Effect.Effect<Wakeups.Batch<SessionMessage, number>, Failure> => {
        if (hint instanceof Sent && hint.message.seq === cursor + 1) {
          return Effect.succeed({ items: [hint.deliver(sessionId)], cursor: hint.message.seq, caughtUp: true })
        }
        const readRows = window(sessionId, { after: cursor, limit: pageSize })
        const readSession = sessions.find(sessionId)
        return Effect.flatMap(
          concurrentReads ? Effect.all([readSession, readRows], { concurrency: 2 }) : Effect.zip(readSession, readRows),
          ([session, rows]) => {
            if (Option.isNone(session)) return Effect.fail(missing(sessionId))
            const closed = session.value.status === "closed"
            return Effect.map(closed && concurrentReads ? readRows : Effect.succeed(rows), (batch) => {
              const short = batch.length < pageSize
              return {
                items: batch.map(withSession(sessionId)),
                cursor: batch.length > 0 ? batch[batch.length - 1]!.seq : cursor,
                done: closed && short,
                caughtUp: short
              }
            })
          }
        )
      }

    /** Where a subscription without `from` starts: after the newest message stored now. */
    const newestSeq = (sessionId: string) =>
      Effect.flatMap(conversations.find(sessionId), (conversation) =>
        Option.isSome(conversation)
          ? Effect.succeed(conversation.value.lastSeq)
          : Effect.flatMap(sessions.find(sessionId), (session) =>
              Option.isSome(session) ? Effect.succeed(0) : Effect.fail(missing(sessionId))
            )
      )

    return SessionBroker.of({
      spawn: Effect.fnUntraced(function* (input) {
        const request = yield* decodeSpawn(input)
        const session = yield* sessions.create(
          defined({
            id: request.id,
            resourceId: request.resourceId,
            agentId: request.agentId,
            channel: request.channel,
            title: request.title,
            metadata: request.metadata
          })
        )
        const undo = <E>(error: E) => Effect.zipRight(Effect.ignore(sessions.delete(session.id)), Effect.fail(error))
        const conversation = yield* conversations
          .create(
            defined({
              id: session.id,
              sessionId: session.id,
              resourceId: request.resourceId,
              title: request.title,
              model: request.model
            })
          )
          .pipe(
            Effect.catchTag("NotFound", () =>
              Effect.fail(new SessionError({ sessionId: session.id, reason: "deleted while it was being spawned" }))
            ),
            Effect.catchAll(undo)
          )
        const initial = request.messages ?? []
        const stored =
          initial.length === 0
            ? []
            : yield* conversations.appendMany(session.id, initial as ReadonlyArray<MessageInput>).pipe(
                Effect.catchTag("NotFound", () =>
                  Effect.fail(new SessionError({ sessionId: session.id, reason: "deleted while it was being spawned" }))
                ),
                Effect.catchAll(undo)
              )
        if (stored.length > 0) yield* wakeups.wake(channel(session.id))
        const spawned: { -readonly [K in keyof SpawnedFields]: SpawnedFields[K] } = {
          id: session.id,
          conversationId: conversation.id as ConversationId,
          status: session.status,
          metadata: session.metadata,
          createdAt: session.createdAt,
          lastSeq: stored.length > 0 ? stored[stored.length - 1]!.seq : 0
        }
        if (session.agentId !== undefined) spawned.agentId = session.agentId
        if (session.channel !== undefined) spawned.channel = session.channel
        if (session.title !== undefined) spawned.title = session.title
        return spawned
      }),

      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeList(input)
        const limit = options.limit ?? defaultLimit
        const filter = defined({ agentId: options.agentId, channel: options.channel, order: options.order })
        let found: ReadonlyArray<Session>
        let nextCursor: Option.Option<string>
        if (options.status !== undefined) {
          const page = yield* sessions.list(
            defined({ ...filter, status: options.status, limit, cursor: options.cursor })
          )
          found = page.items
          nextCursor = page.nextCursor
        } else {
          // Not closed: active and idle, read in pages and filtered, so a page may take several reads.
          const live: Array<Session> = []
          let cursor = options.cursor
          let more = true
          while (more && live.length < limit) {
            const page = yield* sessions.list(
              defined({ ...filter, cursor, limit: Math.min(maxLimit, 2 * (limit - live.length)) })
            )
            let i = 0
            for (; i < page.items.length && live.length < limit; i++) {
              if (page.items[i]!.status !== "closed") live.push(page.items[i]!)
            }
            more = i < page.items.length || Option.isSome(page.nextCursor)
            cursor = Option.getOrUndefined(page.nextCursor)
          }
          found = live
          const last = live[live.length - 1]
          nextCursor =
            more && last !== undefined
              ? Option.some(encodeCursor([DateTime.toEpochMillis(last.createdAt), last.id]))
              : Option.none()
        }
        const items = yield* Effect.forEach(found, summarize, { concurrency: 8 })
        return { items, nextCursor } satisfies Page<SessionSummary>
      }),

      send: Effect.fnUntraced(function* (sessionId, message) {
        const id = yield* checkId(entity, sessionId)
        if (id === undefined) return yield* missing(sessionId)
        const session = yield* sessions.find(id)
        if (Option.isNone(session)) return yield* missing(id)
        if (session.value.status === "closed")
          return yield* new SessionError({ sessionId: id, reason: "the session is closed" })
        const stored = yield* append(id, message)
        yield* wakeups.wake(channel(id), new Sent(stored))
        return withSession(id)(stored)
      }),

      history: Effect.fnUntraced(function* (sessionId, input) {
        const id = yield* checkId(entity, sessionId)
        const options = yield* decodeHistory(input)
        if (id === undefined) return yield* missing(sessionId)
        const rows = yield* window(id, options)
        return rows.map(withSession(id))
      }),

      subscribe: (sessionId, input) =>
        Stream.unwrap(
          Effect.gen(function* () {
            const id = yield* checkId(entity, sessionId)
            const options = yield* decodeSubscribe(input)
            if (id === undefined) return yield* missing(sessionId)
            const start = options.from === undefined ? newestSeq(id) : Math.max(0, options.from - 1)
            return Wakeups.follow(wakeups, { channel: channel(id), start, read: read(id), poll })
          })
        ),

      close: Effect.fnUntraced(function* (sessionId) {
        const id = yield* checkId(entity, sessionId)
        if (id === undefined) return yield* missing(sessionId)
        const session = yield* sessions.get(id)
        if (session.status !== "closed") {
          yield* sessions
            .update(id, { status: "closed" })
            .pipe(Effect.catchTag("Conflict", (conflict: Conflict) => Effect.die(conflict)))
        }
        yield* wakeups.wake(channel(id))
      })
    })
  })

type SpawnedFields = Effect.Effect.Success<ReturnType<SessionBroker["Type"]["spawn"]>>

/** The broker with explicit options (table prefix of the wake-up channels, poll interval). */
export const layerWith = (
  options: BrokerOptions = {}
): Layer.Layer<SessionBroker, never, SessionStore | ConversationStore> => Layer.effect(SessionBroker, make(options))

/** The broker over the `SessionStore` and `ConversationStore` in context (provide a bundle below it). */
export const layer: Layer.Layer<SessionBroker, never, SessionStore | ConversationStore> = layerWith()
