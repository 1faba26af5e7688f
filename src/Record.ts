/**
 * Helpers every store core shares: versioned records (optimistic concurrency),
 * input decoding into `InvalidInput`, and the pieces of a record row.
 */
import { Effect, type ParseResult, Schema } from "effect"
import { Conflict, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { isStorableText } from "./Json.ts"

/** Options of every update: fail with `Conflict` unless the record is at `expectedVersion`. */
export interface UpdateOptions {
  readonly expectedVersion?: number
}

/** Decodes caller input with `schema`, failing with `InvalidInput` (nothing is written). */
export const decodeInput = <A, I>(entity: string, schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (input: unknown): Effect.Effect<A, InvalidInput> => {
    const result = decode(input)
    return result._tag === "Right"
      ? Effect.succeed(result.right)
      : Effect.fail(InvalidInput.fromParseError(entity, result.left as ParseResult.ParseError))
  }
}

/** Applies a nullable patch field: `undefined` keeps the current value, `null` clears it. */
export const patched = <A>(next: A | null | undefined, current: A | null): A | null =>
  next === undefined ? current : next

/**
 * Asks the backend about `id` only when a record could have it (a storable
 * string, see `isStorableText`); otherwise
 * answers `absent` at once, so every backend treats impossible ids alike.
 */
export const byId = <A, E>(id: string, absent: A, lookup: (id: string) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
  isStorableText(id) ? lookup(id) : Effect.succeed(absent)

const maxAttempts = 64

/**
 * Read-modify-write of a versioned row with compare-and-set. `write` stores the
 * next row only if the stored version is still `current.version` and returns
 * the row as stored (fields it does not write, such as counts, are current),
 * or `undefined` when it lost a race; then the read is retried (and an
 * `expectedVersion` that no longer matches becomes a `Conflict`). No update is
 * ever lost.
 */
export const updateVersioned = <Row extends { readonly version: number }, E>(options: {
  readonly entity: string
  readonly id: string
  readonly expectedVersion: number | undefined
  readonly read: Effect.Effect<Row | undefined, StorageError>
  readonly next: (current: Row) => Effect.Effect<Row, E>
  readonly write: (next: Row) => Effect.Effect<Row | undefined, StorageError>
}): Effect.Effect<Row, NotFound | Conflict | StorageError | E> =>
  Effect.gen(function* () {
    for (let attempt = 1; ; attempt++) {
      const current = yield* options.read
      if (current === undefined) return yield* new NotFound({ entity: options.entity, id: options.id })
      const expected = options.expectedVersion ?? current.version
      if (current.version !== expected || attempt > maxAttempts) {
        return yield* new Conflict({ entity: options.entity, id: options.id, expected, actual: current.version })
      }
      const stored = yield* options.write(yield* options.next(current))
      if (stored !== undefined) return stored
    }
  })
