/**
 * Helpers every store core shares: total input decoding into `InvalidInput`,
 * id and option checks, versioned records (optimistic concurrency), and the
 * pieces of a record row.
 */
import { Effect, Either, type ParseResult, Schema, SchemaAST } from "effect"
import { Conflict, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { fastDecoder, miss } from "./FastDecode.ts"
import { isStorableText } from "./Json.ts"

/** Options of every update: fail with `Conflict` unless the record is at `expectedVersion`. */
export interface UpdateOptions {
  readonly expectedVersion?: number
}

/** A record version: a safe integer ≥ 1. */
export const Version = Schema.Number.pipe(
  Schema.filter((n) => (Number.isSafeInteger(n) && n >= 1) || `must be a positive integer, got ${n}`, {
    identifier: "Version"
  })
)

/** The options of `update` (`expectedVersion` is a `Version` when present). */
export const UpdateOptions = Schema.Struct({ expectedVersion: Schema.optional(Version) })

/** Whether `value` is a plain object: `{}` or `Object.create(null)`, not a `Date`, `Map`, array or class instance. */
export const isPlainObject = (value: unknown): value is Record<string, unknown> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** What `value` is, for messages: `number`, `null`, `array`, `Date`. */
export const kindOf = (value: unknown): string => {
  if (value === null) return "null"
  if (typeof value !== "object") return typeof value
  try {
    return Array.isArray(value) ? "array" : (Object.getPrototypeOf(value)?.constructor?.name ?? "object")
  } catch {
    return "an unreadable object"
  }
}

/** The message of anything a getter or Proxy trap may throw (even one whose printing throws too). */
export const thrownText = (error: unknown): string => {
  try {
    return error instanceof Error ? error.message : String(error)
  } catch {
    return "an unprintable value"
  }
}

/**
 * A total decoder: the decoded value, or `InvalidInput` for anything else,
 * including input whose getters or Proxy traps throw (never a defect). A
 * Struct schema takes only plain objects (a `Date`, `Map` or class instance
 * is refused rather than read field by field). `path` places the value in
 * the caller's input, for messages (`messages[2].role must be …`).
 */
export const decoder = <A, I>(entity: string, schema: Schema.Schema<A, I>) => {
  const fast = fastDecoder(schema.ast)
  const decode = Schema.decodeUnknownEither(schema)
  const struct = SchemaAST.isTypeLiteral(schema.ast)
  return (input: unknown, path: ReadonlyArray<string | number> = []): Either.Either<A, InvalidInput> => {
    try {
      if (struct && !isPlainObject(input)) {
        return Either.left(InvalidInput.single(entity, `must be a plain object, got ${kindOf(input)}`, path))
      }
      const value = fast(input)
      if (value !== miss) return Either.right(value as A)
      const result = decode(input)
      return result._tag === "Right"
        ? Either.right(result.right)
        : Either.left(InvalidInput.fromParseError(entity, result.left as ParseResult.ParseError, path))
    } catch (error) {
      return Either.left(InvalidInput.single(entity, `could not be read: ${thrownText(error)}`, path))
    }
  }
}

/** Decodes caller input with `schema`, failing with `InvalidInput` (nothing is written); see `decoder`. */
export const decodeInput = <A, I>(entity: string, schema: Schema.Schema<A, I>) => {
  const decode = decoder(entity, schema)
  return (input: unknown, path?: ReadonlyArray<string | number>): Effect.Effect<A, InvalidInput> =>
    Effect.suspend(() => decode(input, path))
}

/**
 * A total decoder of an optional options argument: `undefined` is `{}`; anything but a plain object (`null` too) is
 * `InvalidInput`.
 */
export const optionsDecoder = <A, I>(entity: string, schema: Schema.Schema<A, I>) => {
  const decode = decoder(entity, schema)
  return (input: unknown): Either.Either<A, InvalidInput> =>
    input === undefined ? decode({}) : decode(input, ["options"])
}

/** Decodes an optional options argument as `optionsDecoder` does, when the Effect runs. */
export const decodeOptions = <A, I>(entity: string, schema: Schema.Schema<A, I>) => {
  const decode = optionsDecoder(entity, schema)
  return (input: unknown): Effect.Effect<A, InvalidInput> => Effect.suspend(() => decode(input))
}

/** Applies a nullable patch field: `undefined` keeps the current value, `null` clears it. */
export const patched = <A>(next: A | null | undefined, current: A | null): A | null =>
  next === undefined ? current : next

const notAString = (entity: string, id: unknown) =>
  InvalidInput.single(entity, `must be a string, got ${kindOf(id)}`, ["id"])

/** Whether a record can have `id`: a non-empty Text (see `Json.ts`) of at most 255 characters. */
const isPossibleId = (id: string): boolean => id.length > 0 && id.length <= 255 && isStorableText(id)

/**
 * The one rule for ids given to operations that look a record up: a non-string
 * is `InvalidInput` (`id must be a string, got number`); a string no record can
 * have (empty, over 255 characters, or breaking the Text rule) is an unknown
 * id, answered `absent` without asking the backend, so every backend treats it
 * alike; any other id is looked up.
 */
export const byId = <A, E>(
  entity: string,
  id: unknown,
  absent: A,
  lookup: (id: string) => Effect.Effect<A, E>
): Effect.Effect<A, E | InvalidInput> => {
  if (typeof id !== "string") return Effect.fail(notAString(entity, id))
  return isPossibleId(id) ? lookup(id) : Effect.succeed(absent)
}

/** The id rule of `byId` without the lookup: the id, `undefined` when no record can have it, or `InvalidInput`. */
export const checkId = (entity: string, id: unknown): Effect.Effect<string | undefined, InvalidInput> =>
  typeof id !== "string" ? Effect.fail(notAString(entity, id)) : Effect.succeed(isPossibleId(id) ? id : undefined)

/**
 * Read-modify-write of a versioned row with compare-and-set. `write` stores the
 * next row only if the stored version is still `current.version` and returns
 * the row as stored (fields it does not write, such as counts, are current),
 * or `undefined` when it lost a race; then the read is retried. Without
 * `expectedVersion` it retries until it wins (each lost race means another
 * update won, so the writers as a whole always progress): it never fails with
 * `Conflict` and no update is lost. With `expectedVersion`, a stored version
 * that differs is a `Conflict`.
 */
export const updateVersioned = <Row extends { readonly version: number }, E>(options: {
  readonly entity: string
  readonly id: string
  readonly expectedVersion: number | undefined
  readonly read: Effect.Effect<Row | undefined, StorageError>
  readonly next: (current: Row) => Effect.Effect<Row, E>
  readonly write: (next: Row) => Effect.Effect<Row | undefined, StorageError>
}): Effect.Effect<Row, NotFound | Conflict | StorageError | E> => {
  // A chain rather than `Effect.gen`: this runs on every update, and the generator's steps cost more than the chain's.
  const attempt: Effect.Effect<Row, NotFound | Conflict | StorageError | E> = Effect.flatMap(
    options.read,
    (current) => {
      if (current === undefined) return Effect.fail(new NotFound({ entity: options.entity, id: options.id }))
      const expected = options.expectedVersion ?? current.version
      if (current.version !== expected) {
        return Effect.fail(new Conflict({ entity: options.entity, id: options.id, expected, actual: current.version }))
      }
      return Effect.flatMap(Effect.flatMap(options.next(current), options.write), (stored) =>
        stored === undefined ? attempt : Effect.succeed(stored)
      )
    }
  )
  return attempt
}
