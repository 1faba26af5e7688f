/**
 * `EventStore`: the append-only, authoritative event log. Events belong to a
 * stream (`streamId`) and carry two numbers: `seq`, their place in the stream
 * (1, 2, 3… gapless), and `position`, their place in the whole log (increasing
 * in the order readers see events: a reader polling `readAll({ after })` never
 * skips an event that commits late; see `docs/events.md`). An append writes its whole batch or
 * nothing, and can be made conditional on the stream's version (optimistic
 * concurrency). Nothing in the API updates or deletes an event: the one
 * removal is retention, `truncateBefore`, which is itself recorded in the
 * stream (a `$truncated` event). On SQLite and PostgreSQL triggers refuse any
 * other `UPDATE` or `DELETE` of the events table.
 *
 * `subscribe` is a pulled `Stream`: the stored events after a cursor, then the
 * new ones as they commit (woken after commit, in-process on memory and
 * SQLite, across processes by `LISTEN/NOTIFY` on PostgreSQL, with a poll
 * fallback), with no gap and no duplicate. A subscriber in the appending
 * process that is exactly at the batch's first event takes the batch from the
 * wake, each subscriber its own copy, without reading. A slow subscriber never
 * makes a writer wait. `project` rebuilds a state projection from the log into a
 * `StateStore` key.
 */
import { Clock, Context, type DateTime, Effect, Option, Schema, Stream } from "effect"
import { Conflict, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { Json, JsonObject, parseJson, Text } from "./Json.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { checkId, decodeInput, decodeOptions, decoder } from "./Record.ts"
import { StateStore } from "./State.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

/** What `subscribe` and `project` take for "every stream". Not a valid stream id. */
export const allStreams = "all" as const

/** A stream id: a non-empty Text (see `Json.ts`) up to 255 characters, other than `"all"` (see `subscribe`). */
export const StreamId = Text.pipe(
  Schema.minLength(1),
  Schema.maxLength(255),
  Schema.filter((id) => id !== allStreams || 'must not be "all" (reserved: subscribe("all") follows every stream)'),
  Schema.brand("StreamId")
)
/** A stream id. */
export type StreamId = typeof StreamId.Type

/** An event id: a non-empty Text up to 255 characters, unique across the log (UUIDv7 unless given). */
export const EventId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("EventId"))
/** An event id. */
export type EventId = typeof EventId.Type

/** An event type: a non-empty Text up to 255 characters, e.g. `"order.placed"`. Types starting `$` are the store's. */
export const EventType = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** The type of the event `truncateBefore` records in the stream; its payload is `{ before, removed }`. */
export const truncatedType = "$truncated"

/** One event to append. `payload` is any JSON (content, stored verbatim); `metadata` a JSON object (default `{}`). */
export const EventInput = Schema.Struct({
  id: Schema.optional(EventId),
  type: EventType,
  payload: Json,
  metadata: Schema.optional(JsonObject)
})
/** One event to append. */
export type EventInput = typeof EventInput.Encoded

/** The most events one `append` takes. */
export const maxAppendBatch = 1000

/** The events of one `append`: 1 to `maxAppendBatch`, with distinct ids where given. */
export const EventInputs = Schema.Array(EventInput).pipe(Schema.minItems(1), Schema.maxItems(maxAppendBatch))

/**
 * The stream version an `append` expects: a number (`0` = the stream does not exist yet), `"any"` (no check,
 * the default), `"noStream"` (same as `0`) or `"streamExists"` (version ≥ 1).
 */
export const ExpectedVersion = Schema.Union(Schema.NonNegativeInt, Schema.Literal("any", "noStream", "streamExists"))
/** The stream version an `append` expects. */
export type ExpectedVersion = typeof ExpectedVersion.Type

/** Options of `append`. */
export const EventAppendOptions = Schema.Struct({ expectedVersion: Schema.optional(ExpectedVersion) })
/** Options of `append`. */
export type EventAppendOptions = typeof EventAppendOptions.Encoded

const Limit = Schema.Int.pipe(Schema.between(1, 1000))

/**
 * Options of `read`: `limit` (1–1000, default 100) events in `direction` (`"forward"`, the default: ascending
 * `seq` after `after`, default 0; `"backward"`: descending `seq` before `after`, default from the newest).
 */
export const EventReadOptions = Schema.Struct({
  after: Schema.optional(Schema.NonNegativeInt),
  limit: Schema.optional(Limit),
  direction: Schema.optional(Schema.Literal("forward", "backward"))
})
/** Options of `read`. */
export type EventReadOptions = typeof EventReadOptions.Encoded

/** Options of `readAll`: up to `limit` (1–1000, default 100) events with `position > after`, of `types` if given. */
export const EventReadAllOptions = Schema.Struct({
  after: Schema.optional(Schema.NonNegativeInt),
  limit: Schema.optional(Limit),
  types: Schema.optional(Schema.Array(EventType).pipe(Schema.minItems(1), Schema.maxItems(100)))
})
/** Options of `readAll`. */
export type EventReadAllOptions = typeof EventReadAllOptions.Encoded

/** Options of `streams`: paging (ordered by stream id) and a stream id `prefix`. */
export const EventStreamsOptions = Schema.Struct({
  ...PageOptions.fields,
  prefix: Schema.optional(Text.pipe(Schema.maxLength(255)))
})
/** Options of `streams`. */
export type EventStreamsOptions = typeof EventStreamsOptions.Encoded

/**
 * Options of `subscribe`: start after `from` (a `seq` for one stream, a `position` for `"all"`; default
 * `"start"`, i.e. 0), or at `"end"` (only events appended after the subscription started).
 */
export const EventSubscribeOptions = Schema.Struct({
  from: Schema.optional(Schema.Union(Schema.NonNegativeInt, Schema.Literal("start", "end")))
})
/** Options of `subscribe`. */
export type EventSubscribeOptions = typeof EventSubscribeOptions.Encoded

/** A stored event. */
export interface StoredEvent {
  readonly id: EventId
  readonly streamId: StreamId
  /** Its place in the stream: 1, 2, 3… gapless. */
  readonly seq: number
  /**
   * Its place in the whole log: a cursor that increases in the order readers see events, never passing one that can
   * still commit. Not dense (gaps where events were truncated and, on PostgreSQL, between transactions).
   */
  readonly position: number
  readonly type: string
  readonly payload: unknown
  readonly metadata: JsonObject
  readonly createdAt: DateTime.Utc
}

/** A stream's summary. */
export interface EventStreamInfo {
  readonly streamId: StreamId
  /** The `seq` of its last event. */
  readonly version: number
  /** Its retention mark: events with a lower `seq` were removed by `truncateBefore` (1 when none were). */
  readonly truncatedBefore: number
  readonly createdAt: DateTime.Utc
  readonly updatedAt: DateTime.Utc
}

/** What `truncateBefore` did: the stream's retention mark now, and how many events it removed. */
export interface TruncateResult {
  readonly truncatedBefore: number
  readonly removed: number
}

/** The event store. */
export class EventStore extends Context.Tag("effect-agent-stores/EventStore")<
  EventStore,
  {
    /**
     * Appends `events` to `streamId`, all or none, as `seq` version+1… and fresh global positions. `Conflict`
     * (entity `EventStream`, `expected`/`actual` versions; `"streamExists"` reports `expected: 1`, `"noStream"`
     * `reason: "exists"`) when the stream is not at `expectedVersion`; `Conflict` (entity `Event`,
     * `reason: "exists"`) when a given event id is taken. Nothing is written on failure.
     */
    readonly append: (
      streamId: string,
      events: ReadonlyArray<EventInput>,
      options?: EventAppendOptions
    ) => Effect.Effect<ReadonlyArray<StoredEvent>, Conflict | InvalidInput | StorageError>
    /** Events of `streamId` by `seq` (see `EventReadOptions`); an unknown stream has none. */
    readonly read: (
      streamId: string,
      options?: EventReadOptions
    ) => Effect.Effect<ReadonlyArray<StoredEvent>, InvalidInput | StorageError>
    /** Events of every stream in `position` order after `after` (see `EventReadAllOptions`). */
    readonly readAll: (
      options?: EventReadAllOptions
    ) => Effect.Effect<ReadonlyArray<StoredEvent>, InvalidInput | StorageError>
    /** The `seq` of the stream's last event, 0 when it has none. */
    readonly version: (streamId: string) => Effect.Effect<number, InvalidInput | StorageError>
    /** The streams, ordered by id, keyset-paged, filtered by id `prefix`. */
    readonly streams: (
      options?: EventStreamsOptions
    ) => Effect.Effect<Page<EventStreamInfo>, InvalidInput | StorageError>
    /**
     * The events of `streamId` (or of every stream, `"all"`) after `from`, then each new one as it commits, in
     * order, without gap or duplicate. Pulled: events are read only as fast as the stream is consumed, and a
     * slow consumer never makes a writer wait.
     */
    readonly subscribe: (
      streamId: string,
      options?: EventSubscribeOptions
    ) => Stream.Stream<StoredEvent, InvalidInput | StorageError>
    /**
     * Retention, the one documented removal: deletes the events of `streamId` with `seq < before` (at most up to
     * its last event) and records it in the stream as a `$truncated` event (`{ before, removed }`). A mark at or
     * below the current one changes nothing. `NotFound` for an unknown stream.
     */
    readonly truncateBefore: (
      streamId: string,
      before: number
    ) => Effect.Effect<TruncateResult, NotFound | InvalidInput | StorageError>
  }
>() {}

// ---------------------------------------------------------------------------
// Driver

/** An event as a driver stores it: payload and metadata as JSON text, time in epoch milliseconds. */
export interface EventRow {
  readonly id: string
  readonly streamId: string
  readonly seq: number
  readonly position: number
  readonly type: string
  readonly payload: unknown
  readonly metadata: unknown
  readonly createdAt: number
}

/** An event to append, encoded: its `seq` and `position` are assigned by the driver. */
export interface NewEvent {
  readonly id: string
  readonly type: string
  readonly payload: string
  readonly metadata: string
}

/** A stream as a driver stores it. */
export interface EventStreamRow {
  readonly streamId: string
  readonly version: number
  readonly truncatedBefore: number
  readonly createdAt: number
  readonly updatedAt: number
}

/** The version check of an append: the exact version (0 = no stream), `"any"` or `"streamExists"`. */
export type EventExpectation = number | "any" | "streamExists"

/**
 * The outcome of a driver append: written (the stream's new version, the last event's position), refused
 * (`actual`: the version that failed the check, which may have moved on when a concurrent writer won), or a
 * given event id already taken.
 */
export type AppendOutcome =
  | { readonly _tag: "Appended"; readonly version: number; readonly position: number }
  | { readonly _tag: "Refused"; readonly actual: number }
  | { readonly _tag: "Duplicate" }

/** The outcome of a driver truncation: `undefined` for an unknown stream, `Refused` when a writer won a race. */
export type TruncateOutcome =
  | { readonly _tag: "Truncated"; readonly truncatedBefore: number; readonly removed: number }
  | { readonly _tag: "Unchanged"; readonly truncatedBefore: number }
  | { readonly _tag: "Refused" }
  | undefined

/** What a backend implements for `EventStore`; validation, ids, clock and encoding live in `makeEventStore`. */
export interface EventDriver {
  /** Appends `events` atomically if the stream's version satisfies `expected` (see `AppendOutcome`). */
  readonly append: (
    streamId: string,
    events: ReadonlyArray<NewEvent>,
    expected: EventExpectation,
    now: number
  ) => Effect.Effect<AppendOutcome, StorageError>
  /** Up to `limit` events of the stream with `seq > after` ascending, or `seq < after` descending (`backward`). */
  readonly read: (
    streamId: string,
    after: number,
    limit: number,
    backward: boolean
  ) => Effect.Effect<ReadonlyArray<EventRow>, StorageError>
  /** Up to `limit` events with `position > after` ascending, of `types` when given. */
  readonly readAll: (
    after: number,
    limit: number,
    types: ReadonlyArray<string> | undefined
  ) => Effect.Effect<ReadonlyArray<EventRow>, StorageError>
  /** The given ids that an event already holds. */
  readonly taken: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string>, StorageError>
  readonly stream: (streamId: string) => Effect.Effect<EventStreamRow | undefined, StorageError>
  /** One page of streams ordered by id (a `[streamId]` keyset), filtered by id prefix. */
  readonly streams: (
    prefix: string | undefined,
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<EventStreamRow>, StorageError>
  /**
   * Where a subscription from the end starts: a position at or below which every event has committed or never will
   * (the last handed out, where positions come in commit order; 0 when none).
   */
  readonly head: Effect.Effect<number, StorageError>
  /**
   * Atomically: raises the stream's retention mark to `min(before, version + 1)` (nothing when that is not
   * above the current mark), deletes the events below it and appends `marker(mark, removed)` as the next `seq`.
   */
  readonly truncate: (
    streamId: string,
    before: number,
    marker: (truncatedBefore: number, removed: number) => NewEvent,
    now: number
  ) => Effect.Effect<TruncateOutcome, StorageError>
}

/** One read of a subscription: the events after the cursor and the cursor after them. */
export interface LiveBatch {
  readonly items: ReadonlyArray<StoredEvent>
  readonly cursor: number
  /** A short page: every stored event was read, so wait for the next wake before reading again. */
  readonly caughtUp: boolean
}

/**
 * An append as its wake carries it to this process's subscribers: the stored rows (payload and metadata as the
 * JSON text stored), so a subscriber exactly at `seq` (its stream's) or `position` (every stream's) takes them
 * without reading.
 */
export class Appended {
  constructor(
    readonly streamId: string,
    readonly rows: ReadonlyArray<NewEvent>,
    /** The `seq` of the first row. */
    readonly seq: number,
    /** The `position` of the first row. */
    readonly position: number,
    readonly createdAt: number
  ) {}

  /** A subscriber's own copies of the events, as a read returns them. */
  events(): Array<StoredEvent> {
    return this.rows.map((row, i) =>
      decodeEventRow({
        id: row.id,
        streamId: this.streamId,
        seq: this.seq + i,
        position: this.position + i,
        type: row.type,
        payload: row.payload,
        metadata: row.metadata,
        createdAt: this.createdAt
      })
    )
  }
}

/** How a store's subscribers learn of commits (the backend's wake-ups; see `layers/Wakeups.ts`). */
export interface EventLive {
  /**
   * Announces a change to `streamId` (to its followers and those of every stream) once it commits; an append
   * hands its subscribers in this process the `appended` rows.
   */
  readonly wake: (streamId: string, appended?: Appended) => Effect.Effect<void>
  /**
   * The events `read` returns from `start` on (a cursor, or the read that finds it), then again after each wake of
   * `streamId` (or `"all"`), with the wake's `Appended` when it is the only wake pending (else `undefined`). A read
   * failing with `StorageError` is retried from the same cursor (see `Wakeups.follow`).
   */
  readonly follow: (
    streamId: string,
    start: number | Effect.Effect<number, StorageError>,
    read: (cursor: number, hint: unknown) => Effect.Effect<LiveBatch, StorageError>
  ) => Stream.Stream<StoredEvent, StorageError>
}

// ---------------------------------------------------------------------------
// Core

const entity = "Event"
const streamEntity = "EventStream"

const decodeStreamId = decoder(entity, StreamId)
const decodeEvents = decodeInput(entity, EventInputs)
const decodeAppendOptions = decodeOptions(entity, EventAppendOptions)
const decodeReadOptions = decodeOptions(entity, EventReadOptions)
const decodeReadAllOptions = decodeOptions(entity, EventReadAllOptions)
const decodeStreamsOptions = decodeOptions(entity, EventStreamsOptions)
const decodeSubscribeOptions = decodeOptions(entity, EventSubscribeOptions)
const decodeBefore = decoder(entity, Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)))

/** A stored row as a `StoredEvent`, its payload and metadata already parsed. */
const storedEvent = (row: EventRow, payload: unknown, metadata: JsonObject): StoredEvent => ({
  id: row.id as EventId,
  streamId: row.streamId as StreamId,
  seq: row.seq,
  position: row.position,
  type: row.type,
  payload,
  metadata,
  createdAt: utcFromMillis(row.createdAt)
})

/** Decodes a trusted stored row (no re-validation). */
export const decodeEventRow = (row: EventRow): StoredEvent =>
  storedEvent(row, parseJson(row.payload), parseJson(row.metadata) as JsonObject)

const decodeStreamRow = (row: EventStreamRow): EventStreamInfo => ({
  streamId: row.streamId as StreamId,
  version: row.version,
  truncatedBefore: row.truncatedBefore,
  createdAt: utcFromMillis(row.createdAt),
  updatedAt: utcFromMillis(row.updatedAt)
})

const expectationOf = (expected: ExpectedVersion | undefined): EventExpectation =>
  expected === undefined || expected === "any" ? "any" : expected === "noStream" ? 0 : expected

const satisfies = (expected: EventExpectation, actual: number): boolean =>
  expected === "any" ? true : expected === "streamExists" ? actual >= 1 : actual === expected

/** The id of a stream given to a lookup: `undefined` when no stream can have it (answered as empty). */
const lookupId = (streamId: unknown) =>
  Effect.flatMap(checkId(streamEntity, streamId), (id) =>
    Effect.succeed(id === undefined || id === allStreams ? undefined : id)
  )

/** The page size of a subscription's reads. */
const subscribeBatch = 256

/** Builds an `EventStore` over a driver: validation, ids, clock, version checks, encoding and wake-ups live here. */
export const makeEventStore = (driver: EventDriver, live: EventLive) => {
  const wake = live.wake

  /** The index of the first event repeating an earlier event's id in `events`, if any. */
  const repeatedId = (events: ReadonlyArray<{ readonly id?: string | undefined }>): number | undefined => {
    const seen = new Set<string>()
    for (let i = 0; i < events.length; i++) {
      const id = events[i]!.id
      if (id === undefined) continue
      if (seen.has(id)) return i
      seen.add(id)
    }
    return undefined
  }

  /**
   * Appends `rows` (encoded from the decoded `events`) to stream `id`, retrying while a lost race still satisfies
   * `expected`.
   */
  const appendRows = (
    id: string,
    rows: ReadonlyArray<NewEvent>,
    events: ReadonlyArray<typeof EventInput.Type>,
    expected: EventExpectation,
    now: number
  ): Effect.Effect<ReadonlyArray<StoredEvent>, Conflict | StorageError> =>
    Effect.flatMap(driver.append(id, rows, expected, now), (outcome) => {
      if (outcome._tag === "Appended") {
        const n = rows.length
        return Effect.as(
          wake(id, new Appended(id, rows, outcome.version - n + 1, outcome.position - n + 1, now)),
          rows.map((row, i): StoredEvent =>
            // The decoded input is a private copy equal to what the stored JSON parses to: not parsed back.
            storedEvent(
              {
                id: row.id,
                type: row.type,
                payload: row.payload,
                metadata: row.metadata,
                streamId: id,
                seq: outcome.version - n + 1 + i,
                position: outcome.position - n + 1 + i,
                createdAt: now
              },
              events[i]!.payload,
              events[i]!.metadata ?? {}
            )
          )
        )
      }
      if (outcome._tag === "Duplicate") {
        return Effect.flatMap(driver.taken(rows.map((row) => row.id)), (taken) =>
          Effect.fail(new Conflict({ entity, id: taken[0] ?? id, expected: 0, actual: 1, reason: "exists" }))
        )
      }
      // A writer that won a race may have moved the stream to a version this append accepts: try again.
      if (satisfies(expected, outcome.actual)) return appendRows(id, rows, events, expected, now)
      return Effect.fail(
        new Conflict({
          entity: streamEntity,
          id,
          expected: expected === "any" ? outcome.actual : expected === "streamExists" ? 1 : expected,
          actual: outcome.actual,
          ...(expected === 0 ? { reason: "exists" as const } : {})
        })
      )
    })

  const append = (streamId: unknown, input: unknown, options: unknown) =>
    Effect.flatMap(decodeStreamId(streamId, ["streamId"]), (id) =>
      Effect.flatMap(decodeEvents(input, ["events"]), (events) =>
        Effect.flatMap(
          decodeAppendOptions(options),
          ({ expectedVersion }): Effect.Effect<ReadonlyArray<StoredEvent>, InvalidInput | Conflict | StorageError> => {
            const repeated = repeatedId(events)
            if (repeated !== undefined) {
              return Effect.fail(InvalidInput.single(entity, "repeats an id of this batch", ["events", repeated, "id"]))
            }
            return Effect.flatMap(Clock.currentTimeMillis, (now) =>
              appendRows(
                id,
                events.map((event) => ({
                  id: event.id ?? uuidv7At(now),
                  type: event.type,
                  payload: JSON.stringify(event.payload),
                  metadata: JSON.stringify(event.metadata ?? {})
                })),
                events,
                expectationOf(expectedVersion),
                now
              )
            )
          }
        )
      )
    )

  const readStream = (id: string, after: number, limit: number, backward: boolean) =>
    Effect.map(driver.read(id, after, limit, backward), (rows) => rows.map(decodeEventRow))

  const readAll = (after: number, limit: number, types: ReadonlyArray<string> | undefined) =>
    Effect.map(driver.readAll(after, limit, types), (rows) => rows.map(decodeEventRow))

  const subscribe = (streamId: unknown, options: unknown): Stream.Stream<StoredEvent, InvalidInput | StorageError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const { from } = yield* decodeSubscribeOptions(options)
        if (streamId === allStreams) {
          const start = from === "end" ? driver.head : from === "start" || from === undefined ? 0 : from
          return live.follow(allStreams, start, (after, hint) =>
            hint instanceof Appended && hint.position === after + 1
              ? Effect.succeed({ items: hint.events(), cursor: after + hint.rows.length, caughtUp: true })
              : Effect.map(readAll(after, subscribeBatch, undefined), (items) => ({
                  items,
                  cursor: items.length === 0 ? after : items[items.length - 1]!.position,
                  caughtUp: items.length < subscribeBatch
                }))
          )
        }
        const id = yield* decodeStreamId(streamId, ["streamId"])
        const start =
          from === "end"
            ? Effect.map(driver.stream(id), (row) => row?.version ?? 0)
            : from === "start" || from === undefined
              ? 0
              : from
        return live.follow(id, start, (after, hint) =>
          hint instanceof Appended && hint.streamId === id && hint.seq === after + 1
            ? Effect.succeed({ items: hint.events(), cursor: after + hint.rows.length, caughtUp: true })
            : Effect.map(readStream(id, after, subscribeBatch, false), (items) => ({
                items,
                cursor: items.length === 0 ? after : items[items.length - 1]!.seq,
                caughtUp: items.length < subscribeBatch
              }))
        )
      })
    )

  return traced(
    "EventStore",
    driver,
    EventStore.of({
      append: (streamId, events, options) => append(streamId, events, options),
      read: Effect.fnUntraced(function* (streamId, input) {
        const id = yield* lookupId(streamId)
        const options = yield* decodeReadOptions(input)
        if (id === undefined) return []
        const backward = options.direction === "backward"
        const after = options.after ?? (backward ? Number.MAX_SAFE_INTEGER : 0)
        return yield* readStream(id, after, options.limit ?? 100, backward)
      }),
      readAll: Effect.fnUntraced(function* (input) {
        const options = yield* decodeReadAllOptions(input)
        return yield* readAll(options.after ?? 0, options.limit ?? 100, options.types)
      }),
      version: (streamId) =>
        Effect.flatMap(lookupId(streamId), (id) =>
          id === undefined ? Effect.succeed(0) : Effect.map(driver.stream(id), (row) => row?.version ?? 0)
        ),
      streams: Effect.fnUntraced(function* (input) {
        const options = yield* decodeStreamsOptions(input)
        const query = yield* toPageQuery(entity, options, ["string"])
        const rows = yield* driver.streams(options.prefix, query)
        return toPage(rows, query, decodeStreamRow, (row) => [row.streamId])
      }),
      subscribe,
      truncateBefore: Effect.fnUntraced(function* (streamId, input) {
        const id = yield* lookupId(streamId)
        const before = yield* decodeBefore(input, ["before"])
        if (id === undefined) return yield* new NotFound({ entity: streamEntity, id: String(streamId) })
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const markerId = uuidv7At(now)
          const outcome = yield* driver.truncate(
            id,
            before,
            (mark, removed) => ({
              id: markerId,
              type: truncatedType,
              payload: JSON.stringify({ before: mark, removed }),
              metadata: "{}"
            }),
            now
          )
          if (outcome === undefined) return yield* new NotFound({ entity: streamEntity, id })
          if (outcome._tag === "Refused") continue
          if (outcome._tag === "Unchanged") return { truncatedBefore: outcome.truncatedBefore, removed: 0 }
          yield* wake(id)
          return { truncatedBefore: outcome.truncatedBefore, removed: outcome.removed }
        }
      })
    })
  )
}

// ---------------------------------------------------------------------------
// Projections

/** Options of `project`: the initial state, the fold of one event into it, and the `StateStore` key it goes to. */
export interface ProjectOptions<S> {
  readonly initial: S
  readonly fold: (state: S, event: StoredEvent) => S
  /** The `StateStore` key the state is written to (a JSON value). */
  readonly into: string
}

/** What `project` wrote: the state, the events folded and the cursor reached (a `seq`, or a `position` for "all"). */
export interface Projection<S> {
  readonly state: S
  readonly events: number
  readonly cursor: number
  /** The `StateStore` entry's version after the write. */
  readonly version: number
}

/**
 * Rebuilds a state projection from the log: folds every stored event of `streamId` (or of every stream,
 * `"all"`) into `initial`, in order, and sets the result at `into` in the `StateStore`: state is derived data,
 * rebuildable from the authoritative log at any time.
 */
export const project = <S>(
  streamId: string,
  options: ProjectOptions<S>
): Effect.Effect<Projection<S>, Conflict | InvalidInput | StorageError, EventStore | StateStore> =>
  Effect.gen(function* () {
    const events = yield* EventStore
    const states = yield* StateStore
    if (typeof options?.fold !== "function") {
      return yield* InvalidInput.single(entity, "must be a function", ["options", "fold"])
    }
    let state = options.initial
    let cursor = 0
    let count = 0
    while (true) {
      const batch =
        streamId === allStreams
          ? yield* events.readAll({ after: cursor, limit: 1000 })
          : yield* events.read(streamId, { after: cursor, limit: 1000 })
      for (const event of batch) {
        state = options.fold(state, event)
        cursor = streamId === allStreams ? event.position : event.seq
        count++
      }
      if (batch.length < 1000) break
    }
    const entry = yield* states.set(options.into, state)
    return { state, events: count, cursor, version: entry.version }
  })

/** `Some(event)` when `event` is the record of a truncation (`truncateBefore`). */
export const truncationOf = (
  event: StoredEvent
): Option.Option<{ readonly before: number; readonly removed: number }> =>
  event.type === truncatedType ? Option.some(event.payload as { before: number; removed: number }) : Option.none()
