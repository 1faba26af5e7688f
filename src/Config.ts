/**
 * `ConfigStore`: named configuration documents typed by the caller's Schema.
 * A document is encoded with its Schema on `save` (a value that does not encode
 * is `InvalidInput`) and decoded with the Schema given to `get` (a stored
 * document that no longer decodes is a `DecodeError` naming the field). Every
 * save is a new version; the old ones are kept (`history`, `get(…, { version })`).
 */
import { Clock, Context, type DateTime, Effect, Either, Option, type ParseResult, Schema } from "effect"
import { Conflict, DecodeError, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { Json, parseJson, Text } from "./Json.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, checkId, decodeOptions, decoder, thrownText, UpdateOptions, Version } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

/** A document name: a non-empty Text (see `Json.ts`) up to 255 characters, e.g. `"app"` or `"agents/planner"`. */
export const ConfigName = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("ConfigName"))
/** A document name. */
export type ConfigName = typeof ConfigName.Type

/** One saved version of a document, its value of type `A` (the type of the caller's Schema). */
export interface ConfigDocument<A> {
  readonly name: ConfigName
  /** 1 for the first save, +1 per save. */
  readonly version: number
  readonly value: A
  /** When version 1 was saved. */
  readonly createdAt: DateTime.Utc
  /** When this version was saved. */
  readonly updatedAt: DateTime.Utc
}

/** A saved version as stored: its value is the JSON its Schema encoded it to. */
export type ConfigRevision = ConfigDocument<unknown>

/** Options of `get`/`find`: a `version` reads that saved version instead of the latest. */
export const ConfigGetOptions = Schema.Struct({ version: Schema.optional(Version) })
/** Options of `get`/`find`. */
export type ConfigGetOptions = typeof ConfigGetOptions.Encoded

/** A caller's Schema of a document (no context requirements). */
export type ConfigSchema<A, I> = Schema.Schema<A, I, never>

/** The config store. */
export class ConfigStore extends Context.Tag("effect-agent-stores/ConfigStore")<
  ConfigStore,
  {
    /**
     * Saves `value`, encoded with `schema` (it must encode to JSON), as the next version of document `name`;
     * earlier versions are kept. `Conflict` if `expectedVersion` is not the latest version (`actual: 0` when
     * there is none). Without `expectedVersion` it never fails with `Conflict`.
     */
    readonly save: <A, I>(
      schema: ConfigSchema<A, I>,
      name: string,
      value: A,
      options?: UpdateOptions
    ) => Effect.Effect<ConfigDocument<A>, InvalidInput | Conflict | StorageError>
    /**
     * The latest version of `name` (or `options.version`) decoded with `schema`: `NotFound` when there is none,
     * `DecodeError` (naming the field) when the stored document does not decode with `schema`.
     */
    readonly get: <A, I>(
      schema: ConfigSchema<A, I>,
      name: string,
      options?: ConfigGetOptions
    ) => Effect.Effect<ConfigDocument<A>, NotFound | DecodeError | InvalidInput | StorageError>
    /** As `get`, `None` instead of `NotFound`. */
    readonly find: <A, I>(
      schema: ConfigSchema<A, I>,
      name: string,
      options?: ConfigGetOptions
    ) => Effect.Effect<Option.Option<ConfigDocument<A>>, DecodeError | InvalidInput | StorageError>
    /** Every saved version of `name`, oldest first (`order: "desc"` for newest first), keyset-paged by version. */
    readonly history: (
      name: string,
      options?: PageOptions
    ) => Effect.Effect<Page<ConfigRevision>, InvalidInput | StorageError>
    /** Deletes document `name` with all its versions; an unknown name is a no-op. */
    readonly delete: (name: string) => Effect.Effect<void, InvalidInput | StorageError>
  }
>() {}

/** A saved version as a driver stores it: the value as JSON text, times in epoch milliseconds. */
export interface ConfigRow {
  readonly name: string
  readonly version: number
  readonly value: unknown
  readonly createdAt: number
  readonly updatedAt: number
}

/** What a backend implements for `ConfigStore`; everything else lives in `makeConfigStore`. */
export interface ConfigDriver {
  /** The latest version of `name`. */
  readonly latest: (name: string) => Effect.Effect<ConfigRow | undefined, StorageError>
  /** Version `version` of `name`. */
  readonly version: (name: string, version: number) => Effect.Effect<ConfigRow | undefined, StorageError>
  /** Inserts a version; `false` when `(name, version)` exists (another save won the race). */
  readonly insert: (row: ConfigRow) => Effect.Effect<boolean, StorageError>
  /** The versions of `name` after `page.after` (a `[version]` keyset) in `page.order`. */
  readonly history: (name: string, page: PageQuery) => Effect.Effect<ReadonlyArray<ConfigRow>, StorageError>
  /** Deletes every version of `name`. */
  readonly delete: (name: string) => Effect.Effect<void, StorageError>
}

const entity = "Config"

const decodeGetOptions = decodeOptions(entity, ConfigGetOptions)
const decodePageOptions = decodeOptions(entity, PageOptions)
const decodeUpdateOptions = decodeOptions(entity, UpdateOptions)
const decodeName = decoder(entity, ConfigName)
const decodeJson = decoder(entity, Json)

const revisionOf = (row: ConfigRow): ConfigRevision => ({
  name: row.name as ConfigName,
  version: row.version,
  value: parseJson(row.value),
  createdAt: utcFromMillis(row.createdAt),
  updatedAt: utcFromMillis(row.updatedAt)
})

const notASchema = (path: string) => InvalidInput.single(entity, "must be a Schema", [path])

/** The functions `save` and `get` need of a caller's Schema, built once per Schema (parsers are costly to build). */
interface Codec {
  readonly check: (value: unknown, path: ReadonlyArray<string | number>) => Either.Either<unknown, InvalidInput>
  readonly encode: (value: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly decode: (value: unknown) => Either.Either<unknown, ParseResult.ParseError>
}

const codecs = new WeakMap<Schema.Schema.Any, Codec>()

const codecOf = (schema: Schema.Schema.Any): Codec => {
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
 * `value` checked against `schema`'s type (read totally, as every input), encoded into JSON text, and that JSON
 * decoded back (so a saved document always decodes with the Schema it was saved with); otherwise `InvalidInput`,
 * also when the Schema throws.
 */
const encodeValue = <A, I>(
  schema: ConfigSchema<A, I>,
  value: A
): Either.Either<{ readonly json: string; readonly value: A }, InvalidInput> => {
  if (!Schema.isSchema(schema)) return Either.left(notASchema("schema"))
  const codec = codecOf(schema)
  const checked = codec.check(value, ["value"])
  if (Either.isLeft(checked)) return Either.left(checked.left)
  try {
    const encoded = codec.encode(checked.right)
    if (Either.isLeft(encoded)) return Either.left(InvalidInput.fromParseError(entity, encoded.left, ["value"]))
    const json = decodeJson(encoded.right, ["value"])
    if (Either.isLeft(json)) return Either.left(json.left)
    const decoded = codec.decode(json.right)
    if (Either.isLeft(decoded)) return Either.left(InvalidInput.fromParseError(entity, decoded.left, ["value"]))
    return Either.right({ json: JSON.stringify(json.right), value: decoded.right as A })
  } catch (error) {
    return Either.left(InvalidInput.single(entity, `could not be encoded: ${thrownText(error)}`, ["value"]))
  }
}

/** A stored row decoded with the caller's `schema`: a `DecodeError` naming the field when it no longer matches. */
const decodeDocument = <A, I>(
  schema: ConfigSchema<A, I>,
  row: ConfigRow
): Either.Either<ConfigDocument<A>, DecodeError> => {
  const revision = revisionOf(row)
  let decoded: Either.Either<unknown, ParseResult.ParseError>
  try {
    decoded = codecOf(schema).decode(revision.value)
  } catch (error) {
    const rule = `could not be decoded: ${thrownText(error)}`
    return Either.left(
      new DecodeError({
        entity,
        id: row.name,
        message: `stored ${entity} "${row.name}" does not match its schema: ${rule}`,
        issues: [{ path: [], message: rule }]
      })
    )
  }
  return Either.isLeft(decoded)
    ? Either.left(DecodeError.fromParseError(entity, row.name, decoded.left))
    : Either.right({ ...revision, value: decoded.right as A })
}

/** Builds a `ConfigStore` over a driver: validation, versions, clock and encoding live here. */
export const makeConfigStore = (driver: ConfigDriver) => {
  const find = <A, I>(schema: ConfigSchema<A, I>, name: unknown, options: unknown) =>
    Effect.gen(function* () {
      if (!Schema.isSchema(schema)) return yield* notASchema("schema")
      const { version } = yield* decodeGetOptions(options)
      const row = yield* byId(entity, name, undefined, (key) =>
        version === undefined ? driver.latest(key) : driver.version(key, version)
      )
      return row === undefined ? Option.none() : Option.some(yield* decodeDocument(schema, row))
    })

  return traced(
    "ConfigStore",
    driver,
    ConfigStore.of({
      save: (schema, name, value, options) =>
        Effect.gen(function* () {
          const key = yield* decodeName(name, ["name"])
          const encoded = yield* encodeValue(schema, value)
          const { expectedVersion } = yield* decodeUpdateOptions(options)
          while (true) {
            const current = yield* driver.latest(key)
            const actual = current?.version ?? 0
            if (expectedVersion !== undefined && expectedVersion !== actual) {
              return yield* new Conflict({ entity, id: key, expected: expectedVersion, actual })
            }
            const now = yield* Clock.currentTimeMillis
            const row: ConfigRow = {
              name: key,
              version: actual + 1,
              value: encoded.json,
              createdAt: current?.createdAt ?? now,
              updatedAt: current === undefined ? now : Math.max(now, current.updatedAt)
            }
            if (yield* driver.insert(row)) return { ...revisionOf(row), value: encoded.value }
          }
        }),
      get: (schema, name, options) =>
        Effect.flatMap(find(schema, name, options), (document) =>
          Option.isSome(document) ? Effect.succeed(document.value) : new NotFound({ entity, id: name })
        ),
      find: (schema, name, options) => find(schema, name, options),
      history: (name, options) =>
        Effect.gen(function* () {
          const key = yield* checkId(entity, name)
          const page = yield* decodePageOptions(options)
          const query = yield* toPageQuery(entity, page, ["number"])
          if (key === undefined) return toPage([], query, revisionOf)
          const rows = yield* driver.history(key, query)
          return toPage(rows, query, revisionOf, (row) => [row.version])
        }),
      delete: (name) => byId(entity, name, undefined, driver.delete)
    })
  )
}
