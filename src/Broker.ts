/**
 * `SessionBroker`: the interactive surface agents use for live sessions.
 * `spawn` creates a session with its conversation, `send` appends a message
 * and publishes it, `subscribe` follows a session's messages live, `close`
 * ends it (later sends fail, subscribers' streams end). Built over
 * `SessionStore` and `ConversationStore`, so it works on every backend; a
 * session's conversation has the session's id.
 */
import { Context, type DateTime, type Effect, Schema, type Stream } from "effect"
import type { Conflict, InvalidInput, NotFound, SessionError, StorageError } from "./Errors.ts"
import { type ConversationId, MessagesOptions, StoredMessage } from "./Conversation.ts"
import { JsonObject, Text } from "./Json.ts"
import { MessageInput } from "./Message.ts"
import { type Page, PageOptions } from "./Page.ts"
import { ResourceId, SessionId, SessionStatus } from "./Session.ts"

/**
 * Input of `spawn`: the session's fields (`id` generated when absent; `resourceId`, its owner, is the
 * conversation's too), the conversation's `model`, and `messages` to start with (e.g. a system prompt), stored
 * atomically with `seq` 1, 2, ….
 */
export const SpawnRequest = Schema.Struct({
  id: Schema.optional(SessionId),
  resourceId: Schema.optional(ResourceId),
  agentId: Schema.optional(Text),
  channel: Schema.optional(Text),
  title: Schema.optional(Text),
  model: Schema.optional(Text),
  metadata: Schema.optional(JsonObject),
  messages: Schema.optional(Schema.Array(MessageInput))
})
/** Input of `spawn`. */
export type SpawnRequest = typeof SpawnRequest.Encoded

/** What `spawn` returns: the new session, its conversation's id and the `seq` of its last initial message (0 if none). */
export interface SpawnedSession {
  readonly id: SessionId
  readonly conversationId: ConversationId
  readonly agentId?: string
  readonly channel?: string
  readonly title?: string
  readonly status: SessionStatus
  readonly metadata: JsonObject
  readonly createdAt: DateTime.Utc
  readonly lastSeq: number
}

/** A live session as `list` shows it: `messageCount` and `lastMessageAt` are its conversation's. */
export const SessionSummary = Schema.Struct({
  id: SessionId,
  agentId: Schema.optional(Text),
  channel: Schema.optional(Text),
  title: Schema.optional(Text),
  status: SessionStatus,
  messageCount: Schema.NonNegativeInt,
  /** The `createdAt` of the newest message; absent when there is none. */
  lastMessageAt: Schema.optional(Schema.DateTimeUtcFromNumber),
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber
})
/** A live session as `list` shows it. */
export type SessionSummary = typeof SessionSummary.Type

/**
 * Options of `list`: the sessions that are not closed (`active` and `idle`) unless `status` is given, filtered by
 * agent and channel, oldest first (`order: "desc"` for newest first), paged by `limit` and `cursor`.
 */
export const BrokerListOptions = Schema.Struct({
  limit: PageOptions.fields.limit,
  cursor: PageOptions.fields.cursor,
  order: PageOptions.fields.order,
  status: Schema.optional(SessionStatus),
  agentId: Schema.optional(Text),
  channel: Schema.optional(Text)
})
/** Options of `list`. */
export type BrokerListOptions = typeof BrokerListOptions.Encoded

/**
 * Options of `history`: the newest `limit` messages (default 100, at most 1000) before `before` (a `seq`), or with
 * `after` the first `limit` after it; ascending `seq` either way.
 */
export const HistoryOptions = MessagesOptions
/** Options of `history`. */
export type HistoryOptions = typeof HistoryOptions.Encoded

/** Options of `subscribe`: `from` is the first `seq` to deliver (stored messages first, then live ones, no gap). */
export const SubscribeOptions = Schema.Struct({
  from: Schema.optional(Schema.NonNegativeInt)
})
/** Options of `subscribe`. */
export type SubscribeOptions = typeof SubscribeOptions.Encoded

/** A message of a session, as `send`, `history` and `subscribe` return it. */
export const SessionMessage = Schema.Struct({
  ...StoredMessage.fields,
  sessionId: SessionId
})
/** A message of a session. */
export type SessionMessage = typeof SessionMessage.Type

/** The live-session broker. */
export class SessionBroker extends Context.Tag("effect-agent-stores/SessionBroker")<
  SessionBroker,
  {
    /**
     * Creates an `active` session and its conversation (same id), with the request's initial messages; all or
     * nothing. `Conflict` (`reason: "exists"`) when the id is taken (by a session, or by a conversation not made
     * by the broker); `SessionError` if the session is deleted while being spawned.
     */
    readonly spawn: (
      request?: SpawnRequest
    ) => Effect.Effect<SpawnedSession, InvalidInput | Conflict | SessionError | StorageError>
    /** The live sessions (not closed, unless `status` says otherwise) with their message counts. */
    readonly list: (options?: BrokerListOptions) => Effect.Effect<Page<SessionSummary>, InvalidInput | StorageError>
    /**
     * Appends `message` to the session's conversation and wakes its subscribers (after the write commits).
     * `NotFound` for an unknown session, `SessionError` for a closed one, `Conflict` for a message id already sent.
     */
    readonly send: (
      sessionId: string,
      message: MessageInput
    ) => Effect.Effect<SessionMessage, NotFound | SessionError | Conflict | InvalidInput | StorageError>
    /** Stored messages of the session, ascending `seq` (see `HistoryOptions`); `NotFound` for an unknown session. */
    readonly history: (
      sessionId: string,
      options?: HistoryOptions
    ) => Effect.Effect<ReadonlyArray<SessionMessage>, NotFound | InvalidInput | StorageError>
    /**
     * The session's messages live, in `seq` order: those stored after the stream starts, or with `{ from }` every
     * stored message from that `seq` on and then the live ones, without gap or repeat. Pulled: a slow reader
     * delays nobody. Ends once the session is closed and every message stored before is delivered; fails with
     * `NotFound` for an unknown (or deleted) session. Messages appended by `ConversationStore` directly (not
     * through `send`) are delivered too, after at most the poll interval.
     */
    readonly subscribe: (
      sessionId: string,
      options?: SubscribeOptions
    ) => Stream.Stream<SessionMessage, NotFound | InvalidInput | StorageError>
    /** Closes the session (no-op when closed already): later sends fail with `SessionError`, subscriptions end. */
    readonly close: (sessionId: string) => Effect.Effect<void, NotFound | InvalidInput | StorageError>
  }
>() {}
