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
 * An optimistic-concurrency failure (`reason: "version"`, the default) or a
 * create of an id that already exists (`reason: "exists"`). Versions: `0`
 * means "does not exist", so a duplicate create is `expected: 0, actual: <current>`.
 */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", {
  entity: Schema.String,
  id: Schema.String,
  expected: Schema.Number,
  actual: Schema.Number,
  reason: Schema.optionalWith(Schema.Literal("exists", "version"), { default: () => "version" })
}) {
  override get message() {
    return this.reason === "exists"
      ? `${this.entity} "${this.id}" already exists`
      : `${this.entity} "${this.id}": expected version ${this.expected}, found ${this.actual}`
  }
}

/** One problem found in an input, with the path to the offending value. */
export const Issue = Schema.Struct({
  path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
  message: Schema.String
})

/**
 * An input that failed its Schema or a store limit; nothing was written.
 * `message` names the path and the rule, e.g. `parts[0].input is missing`;
 * each issue holds a path and its rule (`is missing`, `must be …, got …`).
 */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  entity: Schema.String,
  message: Schema.String,
  issues: Schema.Array(Issue)
}) {
  /**
   * Builds an `InvalidInput` from a Schema `ParseError`; `prefix` is the path
   * of the decoded value inside the caller's input (e.g. `["messages", 2]`).
   */
  static fromParseError(
    entity: string,
    error: ParseResult.ParseError,
    prefix: ReadonlyArray<string | number> = []
  ): InvalidInput {
    const issues = issuesOf(error, prefix)
    const first = issues[0] ?? { path: prefix, message: "is invalid" }
    return new InvalidInput({ entity, message: issueText(first.path, first.message), issues })
  }

  /** An `InvalidInput` with one issue: `rule` (e.g. `must be a string, got number`) broken at `path`. */
  static single(entity: string, rule: string, path: ReadonlyArray<string | number> = []): InvalidInput {
    return new InvalidInput({ entity, message: issueText(path, rule), issues: [{ path, message: rule }] })
  }
}

/** A path as code would write it: `parts[0].input`; the empty path is `input`. */
export const formatPath = (path: ReadonlyArray<string | number>): string => {
  let text = ""
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`
    else text += /^[A-Za-z_$][\w$]*$/.test(key) ? (text === "" ? key : `.${key}`) : `[${JSON.stringify(key)}]`
  }
  return text === "" ? "input" : text
}

const issueText = (path: ReadonlyArray<string | number>, rule: string): string => `${formatPath(path)} ${rule}`

const articles: Record<string, string> = {
  string: "a string",
  number: "a number",
  boolean: "a boolean",
  object: "an object",
  undefined: "absent"
}

/** `"a" | "b"` → `one of a | b`; `string` → `a string`; a type literal → `an object`. */
const expectedText = (alternatives: ReadonlyArray<string>): string => {
  const literals = alternatives.every((a) => /^"[^"]*"$/.test(a))
  if (literals && alternatives.length > 1) return `one of ${alternatives.map((a) => a.slice(1, -1)).join(" | ")}`
  const words = alternatives.map((a) =>
    a.startsWith("{") ? "an object" : a.startsWith("ReadonlyArray<") ? "an array" : (articles[a] ?? a)
  )
  return Array.from(new Set(words)).join(" or ")
}

const expectedActual = /^Expected ([\s\S]*), actual ([\s\S]*)$/

/**
 * The issues of a `ParseError` with rules phrased `is missing` / `must be …, got …`.
 * Issues at one path (the members of a union) are merged into one; `undefined`
 * as an alternative (an optional field) is dropped.
 */
const issuesOf = (error: ParseResult.ParseError, prefix: ReadonlyArray<string | number>) => {
  const byPath = new Map<
    string,
    { path: Array<string | number>; expected: Array<string>; actual?: string; rule?: string }
  >()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const path = [...prefix, ...issue.path.map((key) => (typeof key === "symbol" ? String(key) : key))]
    const key = JSON.stringify(path)
    const entry = byPath.get(key) ?? { path, expected: [] }
    byPath.set(key, entry)
    const match = expectedActual.exec(issue.message)
    if (issue._tag === "Missing") entry.rule ??= "is missing"
    else if (match !== null) {
      for (const alternative of splitUnion(match[1]!))
        if (!entry.expected.includes(alternative)) entry.expected.push(alternative)
      entry.actual = match[2]!
    } else entry.rule ??= issue.message.replace(/^expected /, "must be ")
  }
  const issues: Array<{ path: ReadonlyArray<string | number>; message: string }> = []
  for (const entry of byPath.values()) {
    const expected = entry.expected.filter((a) => a !== "undefined")
    if (entry.rule !== undefined) issues.push({ path: entry.path, message: entry.rule })
    else if (expected.length > 0) {
      issues.push({ path: entry.path, message: `must be ${expectedText(expected)}, got ${entry.actual}` })
    }
  }
  if (issues.length === 0) {
    for (const entry of byPath.values()) {
      issues.push({ path: entry.path, message: `must be ${expectedText(entry.expected)}, got ${entry.actual}` })
    }
  }
  return issues
}

/** Top-level alternatives of `A | B | { … | … }` (unions nested in braces, brackets or quotes stay whole). */
const splitUnion = (text: string): Array<string> => {
  const parts: Array<string> = []
  let depth = 0
  let quoted = false
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '"' && text[i - 1] !== "\\") quoted = !quoted
    else if (!quoted && (c === "{" || c === "<" || c === "(" || c === "[")) depth++
    else if (!quoted && (c === "}" || c === ">" || c === ")" || c === "]")) depth--
    else if (!quoted && depth === 0 && text.startsWith(" | ", i)) {
      parts.push(text.slice(start, i))
      start = i + 3
      i += 2
    }
  }
  parts.push(text.slice(start))
  return parts
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

/** A lock time as an ISO date when it is a valid epoch-milliseconds value, else the raw number. */
const lockTime = (epochMillis: number): string => {
  const date = new Date(epochMillis)
  return Number.isNaN(date.getTime()) ? String(epochMillis) : date.toISOString()
}

/** A lock `key` is held by another `owner` until `expiresAt` (epoch milliseconds). */
export class LockHeld extends Schema.TaggedError<LockHeld>()("LockHeld", {
  key: Schema.String,
  owner: Schema.String,
  expiresAt: Schema.Number
}) {
  override get message() {
    return `lock "${this.key}" is held by "${this.owner}" until ${lockTime(this.expiresAt)}`
  }
}

/** `owner` no longer holds lock `key` under fencing `token`: it expired or another owner took it over. */
export class LockLost extends Schema.TaggedError<LockLost>()("LockLost", {
  key: Schema.String,
  owner: Schema.String,
  token: Schema.Number
}) {
  override get message() {
    return `lock "${this.key}" is no longer held by "${this.owner}" with token ${this.token}`
  }
}

/** Stored content whose hash (e.g. sha256 of an image's bytes) is not the one recorded for it. */
export class IntegrityError extends Schema.TaggedError<IntegrityError>()("IntegrityError", {
  entity: Schema.String,
  id: Schema.String,
  expected: Schema.String,
  actual: Schema.String
}) {
  override get message() {
    return `${this.entity} "${this.id}": content hash is ${this.actual}, expected ${this.expected}`
  }
}

/** A stored document that no longer matches the Schema the caller read it with (the data is kept as it is). */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  entity: Schema.String,
  id: Schema.String,
  message: Schema.String,
  issues: Schema.Array(Issue)
}) {
  /** Builds a `DecodeError` from the `ParseError` of decoding stored document `id`. */
  static fromParseError(entity: string, id: string, error: ParseResult.ParseError): DecodeError {
    const issues = issuesOf(error, [])
    const first = issues[0] ?? { path: [], message: "is invalid" }
    const message = `stored ${entity} "${id}" does not match its schema: ${formatPath(first.path)} ${first.message}`
    return new DecodeError({ entity, id, message, issues })
  }
}
