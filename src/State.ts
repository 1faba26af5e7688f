/**
 * Non-authoritative state: `StateStore` (key → JSON value with a version,
 * optimistic concurrency, typed through the caller's Schema) and
 * `CheckpointStore` (what LangGraph's checkpointers do, for Effect).
 *
 * State is derived data: an agent's working state, or a projection of the
 * event log (`EventStore`'s `project` rebuilds it from events), so it may be
 * overwritten and deleted freely.
 */
import { Clock, Context, type DateTime, Effect, Either, Option, type ParseResult, Schema } from "effect"
import { Conflict, DecodeError, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { Json, JsonObject, parseJson, Text } from "./Json.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, checkId, decodeInput, decodeOptions, decoder, isPlainObject, thrownText } from "./Record.ts"
import { SessionId } from "./Session.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

// ---------------------------------------------------------------------------
// StateStore

/** A state key: a non-empty Text (see `Json.ts`) up to 255 characters, e.g. `"agent/planner/cursor"`. */
export const StateKey = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("StateKey"))
/** A state key. */
export type StateKey = typeof StateKey.Type

/** One key's current value, of type `A` (`unknown` JSON unless read through a Schema). */
export interface StateEntry<A = unknown> {
  readonly key: StateKey
  /** The value (JSON as stored; the Schema's type through `getAs`/`setAs`). */
  readonly value: A
  /** 1 when the key was created, +1 per `set`. A deleted key created again starts at 1. */
  readonly version: number
  /** When the key was created. */
  readonly createdAt: DateTime.Utc
  /** When the key was last set (never before `createdAt`, never decreasing). */
  readonly updatedAt: DateTime.Utc
}

/**
 * Options of `set`/`setAs`/`delete`: `expectedVersion` makes the write conditional on the key's current version,
 * `0` meaning "the key does not exist" (a create-only `set`); a mismatch is `Conflict` and nothing is written.
 */
export const StateWriteOptions = Schema.Struct({ expectedVersion: Schema.optional(Schema.NonNegativeInt) })
/** Options of `set`/`setAs`/`delete`. */
export type StateWriteOptions = typeof StateWriteOptions.Encoded

/** Options of `list`: the paging options and `prefix`, keeping the keys that start with it. Ordered by key. */
export const StateListOptions = Schema.Struct({ ...PageOptions.fields, prefix: Schema.optional(Text) })
/** Options of `list`. */
export type StateListOptions = typeof StateListOptions.Encoded

/** A caller's Schema of a state value (no context requirements); it must encode to JSON. */
export type StateSchema<A, I> = Schema.Schema<A, I, never>

/** The state store. */
export class StateStore extends Context.Tag("effect-agent-stores/StateStore")<
  StateStore,
  {
    /** The entry of `key`; `NotFound` when there is none. */
    readonly get: (key: string) => Effect.Effect<StateEntry, NotFound | InvalidInput | StorageError>
    /** As `get`, `None` instead of `NotFound`. */
    readonly find: (key: string) => Effect.Effect<Option.Option<StateEntry>, InvalidInput | StorageError>
    /**
     * Sets `key` to the JSON `value` (created at version 1, else the next version). With `expectedVersion` the
     * write happens only at that version (`0`: only when absent), else `Conflict` with the actual version (`0`
     * when absent). Without it a `set` never fails with `Conflict` (last writer wins, no write lost).
     */
    readonly set: (
      key: string,
      value: unknown,
      options?: StateWriteOptions
    ) => Effect.Effect<StateEntry, Conflict | InvalidInput | StorageError>
    /** Deletes `key`; an unknown key is a no-op unless `expectedVersion` is given (then `Conflict`, `actual: 0`). */
    readonly delete: (
      key: string,
      options?: StateWriteOptions
    ) => Effect.Effect<void, Conflict | InvalidInput | StorageError>
    /** The entries (optionally those whose key starts with `prefix`) ordered by key, keyset-paged. */
    readonly list: (options?: StateListOptions) => Effect.Effect<Page<StateEntry>, InvalidInput | StorageError>
    /**
     * The entry of `key` with its value decoded by `schema`: `NotFound` when there is none, `DecodeError` (naming
     * the field) when the stored value does not decode.
     */
    readonly getAs: <A, I>(
      schema: StateSchema<A, I>,
      key: string
    ) => Effect.Effect<StateEntry<A>, NotFound | DecodeError | InvalidInput | StorageError>
    /** As `getAs`, `None` instead of `NotFound`. */
    readonly findAs: <A, I>(
      schema: StateSchema<A, I>,
      key: string
    ) => Effect.Effect<Option.Option<StateEntry<A>>, DecodeError | InvalidInput | StorageError>
    /** As `set`, the value encoded with `schema` first (a value that does not encode to JSON is `InvalidInput`). */
    readonly setAs: <A, I>(
      schema: StateSchema<A, I>,
      key: string,
      value: A,
      options?: StateWriteOptions
    ) => Effect.Effect<StateEntry<A>, Conflict | InvalidInput | StorageError>
  }
>() {}

/** An entry as a driver stores it: the value as JSON text, times in epoch milliseconds. */
export interface StateRow {
  readonly key: string
  readonly value: string
  readonly version: number
  readonly createdAt: number
  readonly updatedAt: number
}

/** What a backend implements for `StateStore`; everything else lives in `makeStateStore`. */
export interface StateDriver {
  /** The row of `key`. */
  readonly get: (key: string) => Effect.Effect<StateRow | undefined, StorageError>
  /**
   * Creates `key` at version 1 (times `now`) or sets its value at the next version (`updatedAt` the later of
   * `now` and the stored one), in one atomic step; the row as stored.
   */
  readonly upsert: (key: string, value: string, now: number) => Effect.Effect<StateRow, StorageError>
  /** Creates `key` at version 1 unless it exists (then `undefined`). */
  readonly insert: (key: string, value: string, now: number) => Effect.Effect<StateRow | undefined, StorageError>
  /** Sets `key`'s value at the next version if it is at `version` (else `undefined`); as `upsert` for times. */
  readonly update: (
    key: string,
    value: string,
    now: number,
    version: number
  ) => Effect.Effect<StateRow | undefined, StorageError>
  /** Deletes `key` (only at `version` when given); whether a row was deleted. */
  readonly delete: (key: string, version: number | undefined) => Effect.Effect<boolean, StorageError>
  /** The rows after `page.after` (a `[key]` keyset) in `page.order` whose key starts with `prefix` (when given). */
  readonly list: (prefix: string | undefined, page: PageQuery) => Effect.Effect<ReadonlyArray<StateRow>, StorageError>
}

const stateEntity = "State"

const decodeKey = decoder(stateEntity, StateKey)
const decodeValue = decoder(stateEntity, Json)
const decodeWriteOptions = decodeOptions(stateEntity, StateWriteOptions)
const decodeListOptions = decodeOptions(stateEntity, StateListOptions)

const entryOf = (row: StateRow): StateEntry => ({
  key: row.key as StateKey,
  value: parseJson(row.value),
  version: row.version,
  createdAt: utcFromMillis(row.createdAt),
  updatedAt: utcFromMillis(row.updatedAt)
})

const notASchema = (entity: string) => InvalidInput.single(entity, "must be a Schema", ["schema"])

/** The functions `setAs` and `getAs` need of a caller's Schema, built once per Schema (parsers are costly to build). */
interface Codec {
  readonly check: (value: unknown, path: ReadonlyArray<string | number>) => Either.Either<unknown, InvalidInput>
  readonly encode: (value: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly decode: (value: unknown) => Either.Either<unknown, ParseResult.ParseError>
}

const codecs = new WeakMap<Schema.Schema.Any, Codec>()

const codecOf = (entity: string, schema: Schema.Schema.Any): Codec => {
  let codec = codecs.get(schema)
  if (codec === undefined) {
    codec = {
      check: decoder(entity, Schema.typeSchema(schema)),
      encode: Schema.encodeUnknownEither(schema as Schema.Schema<unknown, unknown>),
      decode: Schema.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>)
    }
    codecs.set(schema, codec)
  }
  return codec
}

/**
 * `value` checked against `schema`'s type, encoded to JSON, and that JSON decoded back (so what is stored always
 * decodes with the Schema it was stored with); otherwise `InvalidInput`, also when the Schema throws.
 */
const encodeWithSchema = <A, I>(
  entity: string,
  schema: Schema.Schema<A, I, never>,
  value: A,
  path: ReadonlyArray<string | number>
): Either.Either<{ readonly json: unknown; readonly value: A }, InvalidInput> => {
  if (!Schema.isSchema(schema)) return Either.left(notASchema(entity))
  const codec = codecOf(entity, schema)
  const checked = codec.check(value, path)
  if (Either.isLeft(checked)) return Either.left(checked.left)
  try {
    const encoded = codec.encode(checked.right)
    if (Either.isLeft(encoded)) return Either.left(InvalidInput.fromParseError(entity, encoded.left, path))
    const json = decoder(entity, Json)(encoded.right, path)
    if (Either.isLeft(json)) return Either.left(json.left)
    const decoded = codec.decode(json.right)
    if (Either.isLeft(decoded)) return Either.left(InvalidInput.fromParseError(entity, decoded.left, path))
    return Either.right({ json: json.right, value: decoded.right as A })
  } catch (error) {
    return Either.left(InvalidInput.single(entity, `could not be encoded: ${thrownText(error)}`, path))
  }
}

/** A stored JSON value of record `id` decoded with the caller's `schema`: `DecodeError` naming the field otherwise. */
const decodeWithSchema = <A, I>(
  entity: string,
  schema: Schema.Schema<A, I, never>,
  id: string,
  value: unknown
): Either.Either<A, DecodeError> => {
  try {
    const decoded = codecOf(entity, schema).decode(value)
    return Either.isLeft(decoded)
      ? Either.left(DecodeError.fromParseError(entity, id, decoded.left))
      : Either.right(decoded.right as A)
  } catch (error) {
    const rule = `could not be decoded: ${thrownText(error)}`
    return Either.left(
      new DecodeError({
        entity,
        id,
        message: `stored ${entity} "${id}" does not match its schema: ${rule}`,
        issues: [{ path: [], message: rule }]
      })
    )
  }
}

/** Builds a `StateStore` over a driver: validation, versions, clock and encoding live here. */
export const makeStateStore = (driver: StateDriver) => {
  const find = (key: unknown) =>
    Effect.map(byId(stateEntity, key, undefined, driver.get), (row) =>
      row === undefined ? Option.none<StateEntry>() : Option.some(entryOf(row))
    )

  const get = (key: unknown) =>
    Effect.flatMap(find(key), (entry) =>
      Option.isSome(entry) ? Effect.succeed(entry.value) : new NotFound({ entity: stateEntity, id: key as string })
    )

  /** Writes the JSON text `json` (already validated) under the validated `key`. */
  const write = (key: string, json: string, expectedVersion: number | undefined) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      if (expectedVersion === undefined) return yield* driver.upsert(key, json, now)
      while (true) {
        const written =
          expectedVersion === 0
            ? yield* driver.insert(key, json, now)
            : yield* driver.update(key, json, now, expectedVersion)
        if (written !== undefined) return written
        const actual = (yield* driver.get(key))?.version ?? 0
        // Deleted and created again between the two reads: the write may succeed now.
        if (actual !== expectedVersion) {
          return yield* new Conflict({ entity: stateEntity, id: key, expected: expectedVersion, actual })
        }
      }
    })

  const set = (key: unknown, value: unknown, options: unknown) =>
    Effect.gen(function* () {
      const k = yield* decodeKey(key, ["key"])
      const json = yield* decodeValue(value, ["value"])
      const { expectedVersion } = yield* decodeWriteOptions(options)
      return entryOf(yield* write(k, JSON.stringify(json), expectedVersion))
    })

  const findAs = <A, I>(schema: StateSchema<A, I>, key: unknown) =>
    Effect.gen(function* () {
      if (!Schema.isSchema(schema)) return yield* notASchema(stateEntity)
      const entry = yield* find(key)
      if (Option.isNone(entry)) return Option.none<StateEntry<A>>()
      const value = yield* decodeWithSchema(stateEntity, schema, entry.value.key, entry.value.value)
      return Option.some<StateEntry<A>>({ ...entry.value, value })
    })

  return traced(
    "StateStore",
    driver,
    StateStore.of({
      get,
      find,
      set,
      delete: (key, options) =>
        Effect.gen(function* () {
          const { expectedVersion } = yield* decodeWriteOptions(options)
          const k = yield* byId(stateEntity, key, undefined, Effect.succeed)
          if (expectedVersion === undefined) {
            if (k !== undefined) yield* driver.delete(k, undefined)
            return
          }
          while (true) {
            if (k !== undefined && expectedVersion > 0 && (yield* driver.delete(k, expectedVersion))) return
            const actual = k === undefined ? 0 : ((yield* driver.get(k))?.version ?? 0)
            if (actual !== expectedVersion) {
              return yield* new Conflict({ entity: stateEntity, id: key as string, expected: expectedVersion, actual })
            }
            if (actual === 0) return
          }
        }),
      list: (options) =>
        Effect.gen(function* () {
          const { prefix, ...paging } = yield* decodeListOptions(options)
          const query = yield* toPageQuery(stateEntity, paging, ["string"])
          const rows = yield* driver.list(prefix === "" ? undefined : prefix, query)
          return toPage(rows, query, entryOf, (row) => [row.key])
        }),
      getAs: (schema, key) =>
        Effect.flatMap(findAs(schema, key), (entry) =>
          Option.isSome(entry) ? Effect.succeed(entry.value) : new NotFound({ entity: stateEntity, id: key })
        ),
      findAs,
      setAs: (schema, key, value, options) =>
        Effect.gen(function* () {
          const k = yield* decodeKey(key, ["key"])
          const encoded = yield* encodeWithSchema(stateEntity, schema, value, ["value"])
          const { expectedVersion } = yield* decodeWriteOptions(options)
          const row = yield* write(k, JSON.stringify(encoded.json), expectedVersion)
          return { ...entryOf(row), value: encoded.value }
        })
    })
  )
}

// ---------------------------------------------------------------------------
// CheckpointStore

/** A checkpoint id: a UUIDv7 unless the caller gives one (a non-empty Text up to 255 characters). */
export const CheckpointId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("CheckpointId"))
/** A checkpoint id. */
export type CheckpointId = typeof CheckpointId.Type

/** A checkpoint namespace (LangGraph's `checkpoint_ns`: a subgraph's chain): a Text up to 255 characters, `""` by default. */
export const CheckpointNamespace = Text.pipe(Schema.maxLength(255))

/** A pending write as given: the task that produced it, the channel it writes, its JSON value. */
export const PendingWriteInput = Schema.Struct({
  taskId: Text.pipe(Schema.minLength(1), Schema.maxLength(255)),
  channel: Text.pipe(Schema.minLength(1), Schema.maxLength(255)),
  value: Json
})
/** A pending write as given. */
export type PendingWriteInput = typeof PendingWriteInput.Encoded

/** A pending write kept with its checkpoint; `idx` is its position among the checkpoint's writes, from 1. */
export interface PendingWrite {
  readonly idx: number
  readonly taskId: string
  readonly channel: string
  readonly value: unknown
}

/**
 * A checkpoint of a thread's state. Each `(threadId, namespace)` is one tree of checkpoints: `seq` counts its saves
 * from 1 (gapless), `parentId` links to the checkpoint it continues (absent for a root).
 */
export interface Checkpoint {
  readonly id: CheckpointId
  /** The session this checkpoint belongs to (deleting the session deletes its checkpoints). */
  readonly threadId: SessionId
  readonly namespace: string
  readonly seq: number
  readonly parentId?: CheckpointId
  readonly state: unknown
  readonly metadata: JsonObject
  /** The pending writes kept with it, in `idx` order. */
  readonly writes: ReadonlyArray<PendingWrite>
  readonly createdAt: DateTime.Utc
}

/** The largest number of pending writes one `save` or `putWrites` takes. */
export const maxCheckpointWrites = 1000

/** A pending write that is a plain object (a class instance, `Date` or `Map` with the fields is refused, as at the top level). */
const PlainPendingWrite = Schema.compose(
  Schema.declare((input: unknown): input is object => isPlainObject(input), {
    identifier: "PlainObject",
    message: () => "must be a plain object"
  }),
  PendingWriteInput,
  { strict: false }
)

const Writes = Schema.Array(PendingWriteInput).pipe(Schema.maxItems(maxCheckpointWrites))
const PlainWrites = Schema.Array(PlainPendingWrite).pipe(Schema.maxItems(maxCheckpointWrites))

/**
 * Input of `save`. `threadId` must be an existing session. Without `parentId` the checkpoint continues the thread's
 * latest (in its namespace), read in the same atomic step, so concurrent saves form a chain; with `parentId` (a
 * checkpoint of the same thread and namespace) it starts or continues a branch.
 */
export const CheckpointInput = Schema.Struct({
  id: Schema.optional(CheckpointId),
  threadId: SessionId,
  namespace: Schema.optional(CheckpointNamespace),
  parentId: Schema.optional(CheckpointId),
  state: Json,
  metadata: Schema.optional(JsonObject),
  writes: Schema.optional(Writes)
})
/** Input of `save`. */
export type CheckpointInput = typeof CheckpointInput.Encoded

const PlainCheckpointInput = Schema.Struct({ ...CheckpointInput.fields, writes: Schema.optional(PlainWrites) })

/**
 * Options of `list`: `namespace` (default `""`), `before` (a checkpoint id: only older ones, by `seq`), and paging;
 * newest first unless `order: "asc"`.
 */
export const CheckpointListOptions = Schema.Struct({
  ...PageOptions.fields,
  namespace: Schema.optional(CheckpointNamespace),
  before: Schema.optional(Schema.String)
})
/** Options of `list`. */
export type CheckpointListOptions = typeof CheckpointListOptions.Encoded

/** Options of `history`: `limit` and `cursor` (from a previous page). */
export const CheckpointHistoryOptions = Schema.Struct({
  limit: PageOptions.fields.limit,
  cursor: Schema.optional(Schema.String)
})
/** Options of `history`. */
export type CheckpointHistoryOptions = typeof CheckpointHistoryOptions.Encoded

/** Options of `fork`: the new checkpoint's `id`, and `state`/`metadata` replacing the source's. */
export const CheckpointForkOptions = Schema.Struct({
  id: Schema.optional(CheckpointId),
  state: Schema.optional(Json),
  metadata: Schema.optional(JsonObject)
})
/** Options of `fork`. */
export type CheckpointForkOptions = typeof CheckpointForkOptions.Encoded

/** Options of `prune`: keep the newest `keepLast` checkpoints of each namespace (or of `namespace` only). */
export const CheckpointPruneOptions = Schema.Struct({
  keepLast: Schema.NonNegativeInt,
  namespace: Schema.optional(CheckpointNamespace)
})
/** Options of `prune`. */
export type CheckpointPruneOptions = typeof CheckpointPruneOptions.Encoded

/** The checkpoint store: LangGraph's checkpointers for Effect. */
export class CheckpointStore extends Context.Tag("effect-agent-stores/CheckpointStore")<
  CheckpointStore,
  {
    /**
     * Saves a checkpoint with its pending writes, atomically. `NotFound` for an unknown session (`entity:
     * "Session"`) or an unknown `parentId` in this thread and namespace (`entity: "Checkpoint"`); `Conflict`
     * (`reason: "exists"`) when the given id is taken.
     */
    readonly save: (
      input: CheckpointInput
    ) => Effect.Effect<Checkpoint, NotFound | Conflict | InvalidInput | StorageError>
    /** The checkpoint `id` with its writes; `NotFound` when there is none. */
    readonly get: (id: string) => Effect.Effect<Checkpoint, NotFound | InvalidInput | StorageError>
    /** As `get`, `None` instead of `NotFound`. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Checkpoint>, InvalidInput | StorageError>
    /** The thread's most recently saved checkpoint in `namespace` (default `""`): one indexed read at any history length. */
    readonly latest: (
      threadId: string,
      namespace?: string
    ) => Effect.Effect<Option.Option<Checkpoint>, InvalidInput | StorageError>
    /** The namespaces the thread has saved checkpoints in, by code unit (`""` first); none for an unknown thread. */
    readonly namespaces: (threadId: string) => Effect.Effect<ReadonlyArray<string>, InvalidInput | StorageError>
    /** The thread's checkpoints in one namespace by `seq`, newest first; `NotFound` for an unknown `before`. */
    readonly list: (
      threadId: string,
      options?: CheckpointListOptions
    ) => Effect.Effect<Page<Checkpoint>, NotFound | InvalidInput | StorageError>
    /**
     * Checkpoint `id`, then its parent, and so on to the root (or to the oldest one `prune` kept), paged;
     * `NotFound` for an unknown id.
     */
    readonly history: (
      id: string,
      options?: CheckpointHistoryOptions
    ) => Effect.Effect<Page<Checkpoint>, NotFound | InvalidInput | StorageError>
    /**
     * A new branch from checkpoint `id`: saves its child with its state and metadata (or the given ones); the child
     * becomes the thread's latest. Forking one checkpoint twice gives two children.
     */
    readonly fork: (
      id: string,
      options?: CheckpointForkOptions
    ) => Effect.Effect<Checkpoint, NotFound | Conflict | InvalidInput | StorageError>
    /** Adds pending writes to checkpoint `id` after the ones it has (LangGraph's `putWrites`); `NotFound` for an unknown id. */
    readonly putWrites: (
      id: string,
      writes: ReadonlyArray<PendingWriteInput>
    ) => Effect.Effect<Checkpoint, NotFound | InvalidInput | StorageError>
    /**
     * Deletes all but the newest `keepLast` checkpoints (by `seq`) of each of the thread's namespaces (or of
     * `namespace`), with their writes; how many it deleted. `history` then ends at the oldest kept ancestor.
     */
    readonly prune: (
      threadId: string,
      options: CheckpointPruneOptions
    ) => Effect.Effect<number, InvalidInput | StorageError>
    /** Deletes every checkpoint of the thread (deleting its session does it too); an unknown thread is a no-op. */
    readonly deleteThread: (threadId: string) => Effect.Effect<void, InvalidInput | StorageError>
  }
>() {}

/** A checkpoint as a driver stores it: JSON as text, `parentId` null for a root, times in epoch milliseconds. */
export interface CheckpointRow {
  readonly id: string
  readonly threadId: string
  readonly namespace: string
  readonly seq: number
  readonly parentId: string | null
  readonly state: string
  readonly metadata: string
  readonly createdAt: number
}

/** A pending write as a driver stores it (value as JSON text). */
export interface CheckpointWriteRow {
  readonly idx: number
  readonly taskId: string
  readonly channel: string
  readonly value: string
}

/** A checkpoint row with its writes, in `idx` order. */
export interface StoredCheckpoint {
  readonly row: CheckpointRow
  readonly writes: ReadonlyArray<CheckpointWriteRow>
}

/** What `save` asks of a driver: the row without `seq` (assigned by the driver); `parentId` null = "the latest". */
export interface NewCheckpointRow {
  readonly id: string
  readonly threadId: string
  readonly namespace: string
  readonly parentId: string | null
  readonly state: string
  readonly metadata: string
  readonly createdAt: number
}

/** What a backend implements for `CheckpointStore`; everything else lives in `makeCheckpointStore`. */
export interface CheckpointDriver {
  /**
   * In one atomic step: checks the explicit parent (same thread and namespace), takes the next `seq` of the
   * thread's namespace and its latest checkpoint as the default parent, inserts the row and its writes (`idx` from
   * 1), and makes it the latest.
   */
  readonly save: (
    row: NewCheckpointRow,
    writes: ReadonlyArray<CheckpointWriteRow>
  ) => Effect.Effect<
    { readonly seq: number; readonly parentId: string | null } | "no-session" | "no-parent" | "exists",
    StorageError
  >
  readonly get: (id: string) => Effect.Effect<StoredCheckpoint | undefined, StorageError>
  /** The latest checkpoint of `(threadId, namespace)`, through its head row. */
  readonly latest: (threadId: string, namespace: string) => Effect.Effect<StoredCheckpoint | undefined, StorageError>
  /** The namespaces of the thread's heads, in any order. */
  readonly namespaces: (threadId: string) => Effect.Effect<ReadonlyArray<string>, StorageError>
  /** Checkpoints of `(threadId, namespace)` with `seq < before` (when given) after `page.after` (a `[seq]` keyset). */
  readonly list: (
    threadId: string,
    namespace: string,
    before: number | undefined,
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<StoredCheckpoint>, StorageError>
  /** Up to `limit` checkpoints from `id` following parents (fewer at a root or a pruned ancestor). */
  readonly history: (id: string, limit: number) => Effect.Effect<ReadonlyArray<StoredCheckpoint>, StorageError>
  /** Appends writes to checkpoint `id` (numbered after its others), atomically; `false` when it does not exist. */
  readonly putWrites: (
    id: string,
    writes: ReadonlyArray<Omit<CheckpointWriteRow, "idx">>
  ) => Effect.Effect<boolean, StorageError>
  /** Deletes all but the newest `keepLast` of each namespace of the thread (or of `namespace`); how many. */
  readonly prune: (
    threadId: string,
    namespace: string | undefined,
    keepLast: number
  ) => Effect.Effect<number, StorageError>
  readonly deleteThread: (threadId: string) => Effect.Effect<void, StorageError>
}

const checkpointEntity = "Checkpoint"

const checkCheckpointInput = decoder(checkpointEntity, PlainCheckpointInput)
const decodeCheckpointListOptions = decodeOptions(checkpointEntity, CheckpointListOptions)
const decodeHistoryOptions = decodeOptions(checkpointEntity, CheckpointHistoryOptions)
const decodeForkOptions = decodeOptions(checkpointEntity, CheckpointForkOptions)
const decodePruneOptions = decodeInput(checkpointEntity, CheckpointPruneOptions)
const decodeWrites = decodeInput(checkpointEntity, PlainWrites)
const decodeNamespace = decodeInput(checkpointEntity, CheckpointNamespace)

/** A stored row as a `Checkpoint`, its state, metadata and writes already parsed. */
const checkpointFrom = (
  row: CheckpointRow,
  state: unknown,
  metadata: JsonObject,
  writes: ReadonlyArray<PendingWrite>
): Checkpoint => {
  const checkpoint: { -readonly [K in keyof Checkpoint]: Checkpoint[K] } = {
    id: row.id as CheckpointId,
    threadId: row.threadId as SessionId,
    namespace: row.namespace,
    seq: row.seq,
    state,
    metadata,
    writes,
    createdAt: utcFromMillis(row.createdAt)
  }
  // Added to the literal, not spread into a copy: `{ ...object, newKey }` costs about 1 µs on Node 20's V8.
  if (row.parentId !== null) checkpoint.parentId = row.parentId as CheckpointId
  return checkpoint
}

const checkpointOf = ({ row, writes }: StoredCheckpoint): Checkpoint =>
  checkpointFrom(
    row,
    parseJson(row.state),
    parseJson(row.metadata) as JsonObject,
    writes.map((w) => ({ idx: w.idx, taskId: w.taskId, channel: w.channel, value: parseJson(w.value) }))
  )

const writeRows = (writes: ReadonlyArray<typeof PendingWriteInput.Type>) =>
  writes.map((w) => ({ taskId: w.taskId, channel: w.channel, value: JSON.stringify(w.value) }))

/** Builds a `CheckpointStore` over a driver: validation, ids, clock and encoding live here. */
export const makeCheckpointStore = (driver: CheckpointDriver) => {
  const find = (id: unknown) =>
    Effect.map(byId(checkpointEntity, id, undefined, driver.get), (stored) =>
      stored === undefined ? Option.none<Checkpoint>() : Option.some(checkpointOf(stored))
    )

  const get = (id: unknown) =>
    Effect.flatMap(
      byId(checkpointEntity, id, undefined, driver.get),
      (stored): Effect.Effect<StoredCheckpoint, NotFound> =>
        stored === undefined ? new NotFound({ entity: checkpointEntity, id: id as string }) : Effect.succeed(stored)
    )

  const insert = (input: typeof CheckpointInput.Type) =>
    Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      const row: NewCheckpointRow = {
        id: input.id ?? uuidv7At(now),
        threadId: input.threadId,
        namespace: input.namespace ?? "",
        parentId: input.parentId ?? null,
        state: JSON.stringify(input.state),
        metadata: JSON.stringify(input.metadata ?? {}),
        createdAt: now
      }
      const writes = writeRows(input.writes ?? []).map((w, i) => ({
        taskId: w.taskId,
        channel: w.channel,
        value: w.value,
        idx: i + 1
      }))
      return Effect.flatMap(driver.save(row, writes), (result): Effect.Effect<Checkpoint, NotFound | Conflict> => {
        switch (result) {
          case "no-session":
            return new NotFound({ entity: "Session", id: row.threadId })
          case "no-parent":
            return new NotFound({ entity: checkpointEntity, id: row.parentId! })
          case "exists":
            return new Conflict({ entity: checkpointEntity, id: row.id, expected: 0, actual: 1, reason: "exists" })
        }
        // The decoded input is a private copy equal to what the stored JSON parses to: not parsed back.
        return Effect.succeed(
          checkpointFrom(
            {
              id: row.id,
              threadId: row.threadId,
              namespace: row.namespace,
              seq: result.seq,
              parentId: result.parentId,
              state: row.state,
              metadata: row.metadata,
              createdAt: row.createdAt
            },
            input.state,
            input.metadata ?? {},
            (input.writes ?? []).map((w, i) => ({ idx: i + 1, taskId: w.taskId, channel: w.channel, value: w.value }))
          )
        )
      })
    })

  return traced(
    "CheckpointStore",
    driver,
    CheckpointStore.of({
      save: (input) =>
        Effect.suspend((): Effect.Effect<Checkpoint, NotFound | Conflict | InvalidInput | StorageError> => {
          const decoded = checkCheckpointInput(input)
          return decoded._tag === "Left" ? Effect.fail(decoded.left) : insert(decoded.right)
        }),
      get: (id) => Effect.map(get(id), checkpointOf),
      find,
      latest: (threadId, namespace) =>
        Effect.flatMap(checkId(checkpointEntity, threadId), (thread) =>
          Effect.flatMap(
            namespace === undefined ? Effect.succeed("") : decodeNamespace(namespace, ["namespace"]),
            (ns): Effect.Effect<Option.Option<Checkpoint>, StorageError> =>
              thread === undefined
                ? Effect.succeed(Option.none())
                : Effect.map(driver.latest(thread, ns), (stored) =>
                    stored === undefined ? Option.none() : Option.some(checkpointOf(stored))
                  )
          )
        ),
      namespaces: (threadId) =>
        Effect.flatMap(checkId(checkpointEntity, threadId), (thread) =>
          thread === undefined
            ? Effect.succeed([])
            : Effect.map(driver.namespaces(thread), (names) => [...names].sort())
        ),
      list: (threadId, options) =>
        Effect.gen(function* () {
          const thread = yield* checkId(checkpointEntity, threadId)
          const { before, namespace, ...paging } = yield* decodeCheckpointListOptions(options)
          const query = yield* toPageQuery(checkpointEntity, { ...paging, order: paging.order ?? "desc" }, ["number"])
          let beforeSeq: number | undefined
          if (before !== undefined) {
            const anchor = yield* get(before)
            if (anchor.row.threadId !== thread || anchor.row.namespace !== (namespace ?? "")) {
              return yield* new NotFound({ entity: checkpointEntity, id: before })
            }
            beforeSeq = anchor.row.seq
          }
          if (thread === undefined) return toPage([], query, checkpointOf)
          const rows = yield* driver.list(thread, namespace ?? "", beforeSeq, query)
          return toPage(rows, query, checkpointOf, (stored) => [stored.row.seq])
        }),
      history: (id, options) =>
        Effect.gen(function* () {
          const { cursor, limit } = yield* decodeHistoryOptions(options)
          const query = yield* toPageQuery(checkpointEntity, cursor === undefined ? { limit } : { limit, cursor }, [
            "string"
          ])
          let rows: ReadonlyArray<StoredCheckpoint>
          const start = yield* checkId(checkpointEntity, id)
          if (query.after === undefined) {
            rows = start === undefined ? [] : yield* driver.history(start, query.limit)
            if (rows.length === 0) return yield* new NotFound({ entity: checkpointEntity, id: id as string })
          } else {
            rows = (yield* driver.history(query.after[0] as string, query.limit + 1)).slice(1)
          }
          return toPage(rows, query, checkpointOf, (stored) => [stored.row.id])
        }),
      fork: (id, options) =>
        Effect.gen(function* () {
          const { id: newId, metadata, state } = yield* decodeForkOptions(options)
          const source = checkpointOf(yield* get(id))
          return yield* insert({
            ...(newId === undefined ? {} : { id: newId }),
            threadId: source.threadId,
            namespace: source.namespace,
            parentId: source.id,
            state: state === undefined ? source.state : state,
            metadata: metadata ?? source.metadata
          })
        }),
      putWrites: (id, writes) =>
        Effect.gen(function* () {
          const checked = yield* checkId(checkpointEntity, id)
          const rows = writeRows(yield* decodeWrites(writes, ["writes"]))
          if (checked === undefined || !(yield* driver.putWrites(checked, rows))) {
            return yield* new NotFound({ entity: checkpointEntity, id: id as string })
          }
          return checkpointOf(yield* get(checked))
        }),
      prune: (threadId, options) =>
        Effect.gen(function* () {
          const thread = yield* checkId(checkpointEntity, threadId)
          const { keepLast, namespace } = yield* decodePruneOptions(options, ["options"])
          return thread === undefined ? 0 : yield* driver.prune(thread, namespace, keepLast)
        }),
      deleteThread: (threadId) =>
        Effect.flatMap(checkId(checkpointEntity, threadId), (thread) =>
          thread === undefined ? Effect.void : driver.deleteThread(thread)
        )
    })
  )
}
