/**
 * `TraceStore`: recorded spans (observability), and `TraceStore.tracerLayer`,
 * an Effect `Tracer` that records every span of a program into the store:
 * `Effect.withSpan`, `Effect.fn`, and the spans of libraries such as
 * `@effect/sql`. Ended spans are buffered and written in batches by a
 * background fiber (and on scope close); the traced program never waits for
 * the store and never fails because of it: when the buffer is full, spans are
 * dropped and counted (`TraceRecorder.stats`).
 *
 * `sessionId` is a label, not a reference: spans are kept when their session
 * is deleted, and removed by `prune`.
 */
import {
  Cause,
  Clock,
  Context,
  DateTime,
  Duration,
  Effect,
  Exit,
  Layer,
  Option,
  Schema,
  type Scope,
  Tracer
} from "effect"
import { Conflict, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { isStorableText, JsonObject, maxJsonDepth, Text } from "./Json.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, decodeInput, decodeOptions, isPlainObject } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { Instant } from "./Audit.ts"
import { traced } from "./Traced.ts"

const text255 = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** The longest span or event name. */
export const maxSpanName = 1024

const spanName = Text.pipe(Schema.minLength(1), Schema.maxLength(maxSpanName))

/** A span id (Effect's are 16 hex digits; any Text up to 255 characters is accepted). */
export const SpanId = Schema.String.pipe(Schema.brand("SpanId"))
/** A span id. */
export type SpanId = typeof SpanId.Type

/** What a span measures, as OpenTelemetry and Effect name it. */
export const SpanKind = Schema.Literal("internal", "server", "client", "producer", "consumer")
/** What a span measures. */
export type SpanKind = typeof SpanKind.Type

/** How a span ended: `ok`, `error`, `interrupted`, or `unset` (not ended, or not said). */
export const SpanStatus = Schema.Literal("unset", "ok", "error", "interrupted")
/** How a span ended. */
export type SpanStatus = typeof SpanStatus.Type

/** Something that happened during a span (an exception is the event `exception`). */
export const SpanEvent = Schema.Struct({
  name: spanName,
  time: Schema.DateTimeUtcFromNumber,
  attributes: JsonObject
})
/** Something that happened during a span. */
export type SpanEvent = typeof SpanEvent.Type

/** A recorded span. `attributes` and event attributes are content (JSON, stored verbatim). */
export const Span = Schema.Struct({
  id: SpanId,
  traceId: text255,
  parentId: Schema.optional(text255),
  sessionId: Schema.optional(text255),
  name: spanName,
  kind: SpanKind,
  status: SpanStatus,
  attributes: JsonObject,
  events: Schema.Array(SpanEvent),
  startedAt: Schema.DateTimeUtcFromNumber,
  endedAt: Schema.optional(Schema.DateTimeUtcFromNumber)
})
/** A recorded span. */
export type Span = typeof Span.Type

/** An event as `insert` takes it; `attributes` default to `{}`. */
export const SpanEventInput = Schema.Struct({
  name: spanName,
  time: Instant,
  attributes: Schema.optional(JsonObject)
})

/**
 * Input of `insert`: `id` defaults to a UUIDv7, `kind` to `internal`, `status` to `ok` when `endedAt` is given
 * (else `unset`), `attributes` to `{}`, `events` to none. `endedAt` may not precede `startedAt`.
 */
export const SpanInput = Schema.Struct({
  id: Schema.optional(text255),
  traceId: text255,
  parentId: Schema.optional(text255),
  sessionId: Schema.optional(text255),
  name: spanName,
  kind: Schema.optional(SpanKind),
  status: Schema.optional(SpanStatus),
  attributes: Schema.optional(JsonObject),
  events: Schema.optional(Schema.Array(SpanEventInput)),
  startedAt: Instant,
  endedAt: Schema.optional(Instant)
})
/** Input of `insert`. */
export type SpanInput = typeof SpanInput.Encoded

/** The most spans one `insertMany` takes. */
export const maxSpanBatch = 10_000

/** Input of `insertMany`: up to `maxSpanBatch` spans. */
export const SpanBatch = Schema.Array(Schema.Unknown).pipe(Schema.maxItems(maxSpanBatch))

/** Options of `list`: paging by `(startedAt, id)` plus session, name and a `startedAt` range (`from` inclusive, `to` exclusive). */
export const SpanListOptions = Schema.Struct({
  ...PageOptions.fields,
  sessionId: Schema.optional(text255),
  name: Schema.optional(spanName),
  from: Schema.optional(Instant),
  to: Schema.optional(Instant)
})
/** Options of `list`. */
export type SpanListOptions = typeof SpanListOptions.Encoded

/** Input of `prune`: spans that started more than `olderThan` (milliseconds or a `Duration`) before `Clock` time. */
export const SpanPruneOptions = Schema.Struct({
  olderThan: Schema.Union(Schema.NonNegativeInt, Schema.DurationFromSelf)
})
/** Input of `prune`. */
export type SpanPruneOptions = typeof SpanPruneOptions.Encoded

/** Options of `TraceStore.tracerLayer`. */
export interface TracerOptions {
  /** Recorded on every span (a span's own `session.id` string attribute takes precedence). */
  readonly sessionId?: string | undefined
  /** Spans written per `insertMany` (default 256); a full batch is written at once. */
  readonly batchSize?: number | undefined
  /** Ended spans held before writing (default 10,000); beyond it spans are dropped and counted. */
  readonly bufferSize?: number | undefined
  /** How long an ended span waits for its batch to fill, in real time (default 1 second). */
  readonly flushInterval?: Duration.DurationInput | undefined
}

/** What a recording tracer did: spans ended and buffered, written, dropped (buffer full) and failed (write failed). */
export interface TraceRecorderStats {
  readonly recorded: number
  readonly written: number
  readonly dropped: number
  readonly failed: number
}

/** The recording tracer that `TraceStore.tracerLayer` installs. */
export class TraceRecorder extends Context.Tag("effect-agent-stores/TraceRecorder")<
  TraceRecorder,
  {
    /** Writes every span ended so far. */
    readonly flush: Effect.Effect<void>
    readonly stats: Effect.Effect<TraceRecorderStats>
  }
>() {}

/** The trace store. */
export class TraceStore extends Context.Tag("effect-agent-stores/TraceStore")<
  TraceStore,
  {
    /** Stores one span. `Conflict` (reason `exists`) when its id is taken. */
    readonly insert: (span: SpanInput) => Effect.Effect<Span, InvalidInput | Conflict | StorageError>
    /** Stores up to `maxSpanBatch` spans, all or none. `Conflict` naming the first taken (or repeated) id. */
    readonly insertMany: (
      spans: ReadonlyArray<SpanInput>
    ) => Effect.Effect<ReadonlyArray<Span>, InvalidInput | Conflict | StorageError>
    /** The span `id`, or `NotFound`. */
    readonly get: (id: string) => Effect.Effect<Span, NotFound | InvalidInput | StorageError>
    /** The span `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Span>, InvalidInput | StorageError>
    /** Every span of a trace, by `(startedAt, id)`: parents before their children when clocks agree. */
    readonly listByTrace: (traceId: string) => Effect.Effect<ReadonlyArray<Span>, InvalidInput | StorageError>
    /** Spans by `(startedAt, id)` (`order: "desc"` for newest first), filtered; keyset-paged. */
    readonly list: (options?: SpanListOptions) => Effect.Effect<Page<Span>, InvalidInput | StorageError>
    /** Deletes the spans that started more than `olderThan` ago; returns how many. */
    readonly prune: (options: SpanPruneOptions) => Effect.Effect<number, InvalidInput | StorageError>
  }
>() {
  /**
   * An Effect `Tracer` recording every span of the program it is provided to into this store (see the module
   * comment), and the `TraceRecorder` to flush it or read its counts. Spans are written on scope close at the
   * latest.
   */
  static readonly tracerLayer = (options: TracerOptions = {}): Layer.Layer<TraceRecorder, never, TraceStore> =>
    tracerLayer(options)
}

/** A span as a driver stores it: attributes and events as JSON text, times in epoch milliseconds. */
export interface SpanRow {
  readonly id: string
  readonly traceId: string
  readonly parentId: string | null
  readonly sessionId: string | null
  readonly name: string
  readonly kind: string
  readonly status: string
  readonly attributes: string
  /** JSON array of `{ name, time, attributes }`, `time` in epoch milliseconds. */
  readonly events: string
  readonly startedAt: number
  readonly endedAt: number | null
}

/** The filters of `list`, as a driver receives them (`from` inclusive, `to` exclusive, epoch milliseconds). */
export interface SpanFilter {
  readonly sessionId?: string | undefined
  readonly name?: string | undefined
  readonly from?: number | undefined
  readonly to?: number | undefined
}

/** What a backend implements for `TraceStore`; validation, ids, clock and encoding live in `makeTraceStore`. */
export interface TraceDriver {
  /** Inserts every row, all or none; `false` (nothing written) when an id is taken. */
  readonly insertMany: (rows: ReadonlyArray<SpanRow>) => Effect.Effect<boolean, StorageError>
  readonly get: (id: string) => Effect.Effect<SpanRow | undefined, StorageError>
  /** Every span of `traceId`, by `(startedAt, id)`. */
  readonly listByTrace: (traceId: string) => Effect.Effect<ReadonlyArray<SpanRow>, StorageError>
  /** One page of spans matching `filter`, by `(startedAt, id)`. */
  readonly list: (filter: SpanFilter, page: PageQuery) => Effect.Effect<ReadonlyArray<SpanRow>, StorageError>
  /** Deletes the spans that started before `before`; returns how many. */
  readonly prune: (before: number) => Effect.Effect<number, StorageError>
}

const entity = "Span"

interface StoredEvent {
  readonly name: string
  readonly time: number
  readonly attributes: JsonObject
}

const startedKey = (row: SpanRow) => [row.startedAt, row.id]

const decodeSpan = decodeInput(entity, SpanInput)
const decodeBatch = decodeInput(entity, SpanBatch)
const decodeList = decodeOptions(entity, SpanListOptions)
const decodePrune = decodeInput(entity, SpanPruneOptions)

/** The row of a validated span input, at `now` (for a missing id). */
const toRow = (
  span: typeof SpanInput.Type,
  now: number,
  path: ReadonlyArray<string | number>
): Effect.Effect<Prepared, InvalidInput> => {
  const startedAt = DateTime.toEpochMillis(span.startedAt)
  const endedAt = span.endedAt === undefined ? null : DateTime.toEpochMillis(span.endedAt)
  if (endedAt !== null && endedAt < startedAt) {
    return Effect.fail(InvalidInput.single(entity, "must not precede startedAt", [...path, "endedAt"]))
  }
  const events: Array<StoredEvent> = (span.events ?? []).map((event) => ({
    name: event.name,
    time: DateTime.toEpochMillis(event.time),
    attributes: event.attributes ?? {}
  }))
  const attributes = span.attributes ?? {}
  const row: SpanRow = {
    id: span.id ?? uuidv7At(now),
    traceId: span.traceId,
    parentId: span.parentId ?? null,
    sessionId: span.sessionId ?? null,
    name: span.name,
    kind: span.kind ?? "internal",
    status: span.status ?? (endedAt === null ? "unset" : "ok"),
    attributes: JSON.stringify(attributes),
    events: JSON.stringify(events),
    startedAt,
    endedAt
  }
  return Effect.succeed({ row, attributes, events })
}

/** A validated span: its row, and its attributes and events as decoded (fresh copies), to answer without parsing. */
interface Prepared {
  readonly row: SpanRow
  readonly attributes: JsonObject
  readonly events: ReadonlyArray<StoredEvent>
}

/** The `Span` of a prepared span. */
const spanOf = ({ attributes, events, row }: Prepared): Span => {
  const span: { -readonly [K in keyof Span]: Span[K] } = {
    id: row.id as SpanId,
    traceId: row.traceId,
    name: row.name,
    kind: row.kind as SpanKind,
    status: row.status as SpanStatus,
    attributes,
    events: events.map((event) => ({
      name: event.name,
      time: utcFromMillis(event.time),
      attributes: event.attributes
    })),
    startedAt: utcFromMillis(row.startedAt)
  }
  if (row.parentId !== null) span.parentId = row.parentId
  if (row.sessionId !== null) span.sessionId = row.sessionId
  if (row.endedAt !== null) span.endedAt = utcFromMillis(row.endedAt)
  return span
}

/** The `Span` of a stored row. */
const decodeRow = (row: SpanRow): Span =>
  spanOf({ row, attributes: JSON.parse(row.attributes), events: JSON.parse(row.events) })

/** Builds a `TraceStore` over a driver: validation, ids, clock and encoding live here. */
export const makeTraceStore = (driver: TraceDriver) => {
  const find = (id: unknown) =>
    byId(entity, id, undefined, (id) =>
      Effect.map(driver.get(id), (row) => (row === undefined ? undefined : decodeRow(row)))
    )

  /** Writes valid rows; on a taken id, `Conflict` naming the first one taken. */
  const insertRows = (rows: ReadonlyArray<SpanRow>): Effect.Effect<void, Conflict | StorageError> =>
    Effect.gen(function* () {
      const seen = new Set<string>()
      for (const row of rows) {
        if (seen.has(row.id))
          return yield* new Conflict({ entity, id: row.id, expected: 0, actual: 1, reason: "exists" })
        seen.add(row.id)
      }
      if (rows.length === 0 || (yield* driver.insertMany(rows))) return
      for (const row of rows) {
        if ((yield* driver.get(row.id)) !== undefined) {
          return yield* new Conflict({ entity, id: row.id, expected: 0, actual: 1, reason: "exists" })
        }
      }
      // The taken id was deleted (pruned) since: the batch can be written now.
      return yield* insertRows(rows)
    })

  /** Writes validated spans; the spans as stored. */
  const write = (spans: ReadonlyArray<Prepared>): Effect.Effect<ReadonlyArray<Span>, Conflict | StorageError> =>
    Effect.map(insertRows(spans.map((span) => span.row)), () => spans.map(spanOf))

  const store = traced(
    "TraceStore",
    driver,
    TraceStore.of({
      insert: Effect.fnUntraced(function* (input) {
        const span = yield* decodeSpan(input)
        const prepared = yield* toRow(span, yield* Clock.currentTimeMillis, [])
        return (yield* write([prepared]))[0]!
      }),
      insertMany: Effect.fnUntraced(function* (input) {
        const items = yield* decodeBatch(input)
        const now = yield* Clock.currentTimeMillis
        const spans: Array<Prepared> = []
        for (let i = 0; i < items.length; i++) {
          spans.push(yield* toRow(yield* decodeSpan(items[i], [i]), now, [i]))
        }
        return yield* write(spans)
      }),
      get: (id) =>
        Effect.flatMap(find(id), (span) =>
          span === undefined ? Effect.fail(new NotFound({ entity, id: String(id) })) : Effect.succeed(span)
        ),
      find: (id) => Effect.map(find(id), Option.fromNullable),
      listByTrace: (traceId) =>
        byId(entity, traceId, [] as ReadonlyArray<Span>, (traceId) =>
          Effect.map(driver.listByTrace(traceId), (rows) => rows.map(decodeRow))
        ),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeList(input)
        const query = yield* toPageQuery(entity, options)
        const filter: SpanFilter = {
          sessionId: options.sessionId,
          name: options.name,
          from: options.from === undefined ? undefined : DateTime.toEpochMillis(options.from),
          to: options.to === undefined ? undefined : DateTime.toEpochMillis(options.to)
        }
        return toPage(yield* driver.list(filter, query), query, decodeRow, startedKey)
      }),
      prune: Effect.fnUntraced(function* (input) {
        const { olderThan } = yield* decodePrune(input)
        const millis = typeof olderThan === "number" ? olderThan : Duration.toMillis(olderThan)
        if (!Number.isFinite(millis)) {
          return yield* InvalidInput.single(entity, "must be a finite duration", ["olderThan"])
        }
        return yield* driver.prune((yield* Clock.currentTimeMillis) - millis)
      })
    })
  )
  // Kept on `insertMany` itself: a store made from this one with its own `insertMany` is written through that.
  Object.assign(store.insertMany, { [recordRows]: insertRows })
  return store
}

/** The write of rows the recording tracer made, kept on the `insertMany` of a store built by `makeTraceStore`. */
const recordRows: unique symbol = Symbol("effect-agent-stores/TraceStore/recordRows")

/** `store`'s write of trusted rows, when its `insertMany` is one of this library's stores'. */
const rowWriter = (
  store: TraceStore["Type"]
): ((rows: ReadonlyArray<SpanRow>) => Effect.Effect<void, Conflict | StorageError>) | undefined =>
  (
    store.insertMany as {
      readonly [recordRows]?: (rows: ReadonlyArray<SpanRow>) => Effect.Effect<void, Conflict | StorageError>
    }
  )[recordRows]

// ---------------------------------------------------------------------------
// The recording tracer

const hex = "0123456789abcdef"

/** `length` random hex digits (as Effect's own tracer makes span and trace ids). */
const randomHex = (length: number): string => {
  let text = ""
  for (let i = 0; i < length; i++) text += hex[(Math.random() * 16) | 0]
  return text
}

/** `text` made storable as Text (U+0000 and lone surrogates become U+FFFD), cut to `max`, never empty. */
const asText = (text: string, max: number): string => {
  const clean = isStorableText(text)
    ? text
    : (text as string).replace(
        /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
        "\ufffd"
      )
  const cut = clean.length > max ? clean.slice(0, max).replace(/[\ud800-\udbff]$/, "") : clean
  return cut.length === 0 ? "(unnamed)" : cut
}

/** A JSON value for any attribute value: bigints and other non-JSON values become text, cycles and depth cut. */
const toJson = (value: unknown, depth = 0, seen: Set<object> = new Set()): unknown => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value
    case "number":
      return Number.isFinite(value) ? value : String(value)
    case "bigint":
      return value.toString()
    case "undefined":
      return null
    case "object": {
      if (value === null) return null
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString()
      if (value instanceof Error) return `${value.name}: ${value.message}`
      if (seen.has(value) || depth >= Math.min(maxJsonDepth, 32)) return "[…]"
      seen.add(value)
      try {
        if (Array.isArray(value)) return value.map((item) => toJson(item, depth + 1, seen))
        if (!isPlainObject(value)) return String(value)
        const copy: Record<string, unknown> = {}
        for (const key of Object.keys(value)) {
          if (key !== "__proto__") copy[key] = toJson((value as Record<string, unknown>)[key], depth + 1, seen)
        }
        return copy
      } finally {
        seen.delete(value)
      }
    }
    default:
      return String(value)
  }
}

/** `toJson` that never throws (a getter or Proxy trap may). */
const safeJson = (value: unknown): unknown => {
  try {
    return toJson(value)
  } catch (error) {
    return `unreadable: ${error instanceof Error ? error.message : "?"}`
  }
}

const attributesOf = (entries: Iterable<readonly [string, unknown]>): Record<string, unknown> => {
  const attributes: Record<string, unknown> = {}
  for (const [key, value] of entries) if (key !== "__proto__") attributes[key] = safeJson(value)
  return attributes
}

const millis = (nanos: bigint): number => Number(nanos / 1_000_000n)

/** A span of the recording tracer: Effect's span contract, plus what the store needs once it ends. */
class RecordingSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId: string
  readonly traceId: string
  readonly sampled: boolean
  status: Tracer.SpanStatus
  readonly attributes = new Map<string, unknown>()
  readonly events: Array<readonly [name: string, time: bigint, attributes: Record<string, unknown> | undefined]> = []
  readonly links: Array<Tracer.SpanLink>

  constructor(
    private readonly onEnd: (span: RecordingSpan) => void,
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind
  ) {
    this.status = { _tag: "Started", startTime }
    this.links = [...links]
    if (parent._tag === "Some") {
      this.traceId = parent.value.traceId
      this.sampled = parent.value.sampled
    } else {
      this.traceId = randomHex(32)
      this.sampled = true
    }
    this.spanId = randomHex(16)
  }

  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    if (this.status._tag === "Ended") return
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
    if (this.sampled) this.onEnd(this)
  }

  attribute(key: string, value: unknown): void {
    this.attributes.set(key, value)
  }

  event(name: string, startTime: bigint, attributes?: Record<string, unknown>): void {
    this.events.push([name, startTime, attributes])
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    this.links.push(...links)
  }
}

/** The `exception` event's attributes for a failure `cause`. */
const exceptionOf = (cause: Cause.Cause<unknown>): Record<string, unknown> => {
  const error = Cause.squash(cause)
  const tag =
    typeof error === "object" && error !== null && typeof (error as { _tag?: unknown })._tag === "string"
      ? (error as { _tag: string })._tag
      : undefined
  const type = tag ?? (error instanceof Error ? error.name : typeof error)
  const message = error instanceof Error ? error.message : safeJson(error)
  return {
    "exception.type": type,
    "exception.message": typeof message === "string" ? message : JSON.stringify(message)
  }
}

/** An `insertMany` input the recording tracer made: every field set, times in epoch milliseconds. */
interface RecordedInput {
  readonly id: string
  readonly traceId: string
  readonly parentId?: string
  readonly sessionId?: string
  readonly name: string
  readonly kind: SpanKind
  readonly status: SpanStatus
  readonly attributes: Record<string, unknown>
  readonly events: ReadonlyArray<{
    readonly name: string
    readonly time: number
    readonly attributes: Record<string, unknown>
  }>
  readonly startedAt: number
  readonly endedAt: number
}

/** The `insertMany` input of an ended span. */
const spanInputOf = (span: RecordingSpan, sessionId: string | undefined): RecordedInput => {
  const status = span.status as Extract<Tracer.SpanStatus, { _tag: "Ended" }>
  const events: Array<RecordedInput["events"][number]> = span.events.map(([name, time, attributes]) => ({
    name: asText(name, maxSpanName),
    time: millis(time),
    attributes: attributes === undefined ? {} : attributesOf(Object.entries(attributes))
  }))
  const exit = status.exit
  let outcome: SpanStatus = "ok"
  if (Exit.isFailure(exit)) {
    if (Cause.isInterruptedOnly(exit.cause)) outcome = "interrupted"
    else {
      outcome = "error"
      events.push({ name: "exception", time: millis(status.endTime), attributes: exceptionOf(exit.cause) })
    }
  }
  const attributes = attributesOf(span.attributes)
  if (span.links.length > 0) {
    attributes["span.links"] = span.links.map((link) => ({
      traceId: link.span.traceId,
      spanId: link.span.spanId,
      attributes: attributesOf(Object.entries(link.attributes))
    }))
  }
  const own = span.attributes.get("session.id")
  const session = typeof own === "string" && own.length > 0 ? asText(own, 255) : sessionId
  const startedAt = millis(status.startTime)
  return {
    id: asText(span.spanId, 255),
    traceId: asText(span.traceId, 255),
    ...(span.parent._tag === "Some" ? { parentId: asText(span.parent.value.spanId, 255) } : {}),
    ...(session === undefined ? {} : { sessionId: session }),
    name: asText(span.name, maxSpanName),
    kind: span.kind,
    status: outcome,
    attributes,
    events,
    startedAt,
    endedAt: Math.max(startedAt, millis(status.endTime))
  }
}

/**
 * The row of a span input the recording tracer made (`spanInputOf`): valid by construction (texts made storable,
 * attributes made JSON by `toJson`, times from the span, `endedAt` not before `startedAt`), so it is written without
 * `insertMany`'s decoding; stored as `insertMany` would store it.
 */
const recordedRow = (input: RecordedInput): SpanRow => ({
  id: input.id,
  traceId: input.traceId,
  parentId: input.parentId ?? null,
  sessionId: input.sessionId ?? null,
  name: input.name,
  kind: input.kind,
  status: input.status,
  attributes: JSON.stringify(input.attributes),
  events: JSON.stringify(input.events),
  startedAt: input.startedAt,
  endedAt: input.endedAt
})

/** A whole number of at least 1 and at most `max` from an option, `fallback` when absent or not a number. */
const count = (value: number | undefined, fallback: number, max: number): number =>
  value === undefined || !Number.isFinite(value) ? fallback : Math.min(max, Math.max(1, Math.floor(value)))

/** Builds the recording tracer and its background writer in the current scope. */
const makeRecorder = (options: TracerOptions) =>
  Effect.gen(function* () {
    const store = yield* TraceStore
    const batchSize = count(options.batchSize, 256, maxSpanBatch)
    const bufferSize = count(options.bufferSize, 10_000, Number.MAX_SAFE_INTEGER)
    // Node fires a timer set beyond 2^31 - 1 ms at once: a longer interval waits that long.
    const interval = Duration.decodeUnknown(options.flushInterval ?? "1 second")
    const intervalMs = Math.min(
      2_147_483_647,
      Math.max(1, Option.match(interval, { onNone: () => 1000, onSome: Duration.toMillis }))
    )
    const sessionId = options.sessionId === undefined ? undefined : asText(options.sessionId, 255)
    const buffer: Array<RecordingSpan> = []
    const counts = { recorded: 0, written: 0, dropped: 0, failed: 0 }
    let wake: (() => void) | undefined

    const onEnd = (span: RecordingSpan) => {
      if (buffer.length >= bufferSize) {
        counts.dropped++
        return
      }
      buffer.push(span)
      counts.recorded++
      if (buffer.length >= batchSize && wake !== undefined) wake()
    }

    /** This library's stores take the recorder's rows as they are; another `TraceStore` gets `insertMany`. */
    const insertRows = rowWriter(store)
    /** Writes one batch; on a taken id, span by span, so one bad span does not lose the others. */
    const writeBatch = (inputs: ReadonlyArray<RecordedInput>): Effect.Effect<void> =>
      (insertRows === undefined ? Effect.asVoid(store.insertMany(inputs)) : insertRows(inputs.map(recordedRow))).pipe(
        Effect.matchCauseEffect({
          onSuccess: () => Effect.sync(() => void (counts.written += inputs.length)),
          onFailure: (cause) =>
            inputs.length > 1 && Cause.failureOption(cause).pipe(Option.exists((e) => e._tag === "Conflict"))
              ? Effect.forEach(inputs, (input) => writeBatch([input]), { discard: true })
              : Effect.sync(() => void (counts.failed += inputs.length))
        })
      )

    // Uninterruptible, so a batch taken from the buffer is written even when the scope closes meanwhile; its own
    // writes are not traced (they would record spans about recording spans).
    const drain: Effect.Effect<void> = Effect.suspend(function loop(): Effect.Effect<void> {
      if (buffer.length === 0) return Effect.void
      const batch = buffer.splice(0, batchSize)
      const inputs: Array<RecordedInput> = []
      for (const span of batch) {
        try {
          inputs.push(spanInputOf(span, sessionId))
        } catch {
          counts.failed++
        }
      }
      return Effect.zipRight(writeBatch(inputs), Effect.suspend(loop))
    }).pipe(Effect.withTracerEnabled(false), Effect.uninterruptible)

    /** Resumes when a batch is full or `intervalMs` of real time passed (not `Clock`: `TestClock` must not stall it). */
    const wait = Effect.async<void>((resume) => {
      let done = false
      const finish = () => {
        if (done) return
        done = true
        wake = undefined
        clearTimeout(timer)
        resume(Effect.void)
      }
      const timer = setTimeout(finish, intervalMs)
      timer.unref?.()
      if (buffer.length >= batchSize) finish()
      else wake = finish
      return Effect.sync(() => {
        done = true
        wake = undefined
        clearTimeout(timer)
      })
    })

    yield* Effect.addFinalizer(() => drain)
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(wait, drain)))

    const tracer = Tracer.make({
      span: (name, parent, context, links, startTime, kind) =>
        new RecordingSpan(onEnd, name, parent, context, links, startTime, kind),
      context: (f) => f()
    })
    const recorder = TraceRecorder.of({
      flush: drain,
      stats: Effect.sync(() => ({ ...counts }))
    })
    return { tracer, recorder }
  })

/** The recording tracer as a layer: see `TraceStore.tracerLayer`. */
export const tracerLayer = (options: TracerOptions = {}): Layer.Layer<TraceRecorder, never, TraceStore> =>
  Layer.unwrapScoped(
    Effect.map(
      makeRecorder(options) as Effect.Effect<
        { readonly tracer: Tracer.Tracer; readonly recorder: TraceRecorder["Type"] },
        never,
        TraceStore | Scope.Scope
      >,
      ({ recorder, tracer }) => Layer.merge(Layer.setTracer(tracer), Layer.succeed(TraceRecorder, recorder))
    )
  )
