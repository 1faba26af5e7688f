/**
 * The errors every store shares. Each is a `Schema.TaggedError`, so callers can
 * `Effect.catchTag` them and they serialise across process boundaries.
 */
import { ParseResult, Schema } from "effect"

/** `get` of an id the store does not hold (`find` returns `Option` instead). */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  entity: Schema.String,
  id: Schema.String
}) {
  override get message() {
    return `${this.entity} "${this.id}" not found`
  }
}

/**
 * An optimistic-concurrency failure or a duplicate create. Versions: `0` means
 * "does not exist", so a duplicate create is `expected: 0, actual: <current>`.
 */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", {
  entity: Schema.String,
  id: Schema.String,
  expected: Schema.Number,
  actual: Schema.Number
}) {
  override get message() {
    return `${this.entity} "${this.id}": expected version ${this.expected}, found ${this.actual}`
  }
}

/** One problem found in an input, with the path to the offending value. */
export const Issue = Schema.Struct({
  path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
  message: Schema.String
})

/** An input that failed its Schema or a store limit; nothing was written. */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  entity: Schema.String,
  message: Schema.String,
  issues: Schema.Array(Issue)
}) {
  /** Builds an `InvalidInput` from a Schema `ParseError`. */
  static fromParseError(entity: string, error: ParseResult.ParseError): InvalidInput {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
      path: issue.path.map((key) => (typeof key === "symbol" ? String(key) : key)),
      message: issue.message
    }))
    return new InvalidInput({ entity, message: `invalid ${entity}: ${issues[0]?.message ?? "rejected"}`, issues })
  }

  /** An `InvalidInput` with a single issue at `path`. */
  static single(entity: string, message: string, path: ReadonlyArray<string | number> = []): InvalidInput {
    return new InvalidInput({ entity, message: `invalid ${entity}: ${message}`, issues: [{ path, message }] })
  }
}

/** The backend failed (connection, I/O, busy, corrupt row). Never a raw driver error. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  backend: Schema.String,
  operation: Schema.String,
  cause: Schema.Defect
}) {
  override get message() {
    return `${this.backend} failed during ${this.operation}: ${describe(this.cause)}`
  }
}

/** An error's message followed by its causes' (an `SqlError` wraps the driver's error), e.g. "Failed: no such table". */
const describe = (cause: unknown, depth = 0): string => {
  if (!(cause instanceof Error)) return String(cause)
  const inner = (cause as { cause?: unknown }).cause
  return inner === undefined || depth > 4 ? cause.message : `${cause.message}: ${describe(inner, depth + 1)}`
}

/** An operation that the session's state forbids, e.g. writing to a closed session. */
export class SessionError extends Schema.TaggedError<SessionError>()("SessionError", {
  sessionId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `session "${this.sessionId}": ${this.reason}`
  }
}
