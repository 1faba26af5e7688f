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
import { Json, parseJson, Text } from "./Json.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, decodeOptions, decoder, thrownText } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"

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
export const encodeWithSchema = <A, I>(
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
export const decodeWithSchema = <A, I>(
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

  return StateStore.of({
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
}
