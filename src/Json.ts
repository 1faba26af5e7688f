/**
 * Two rules for strings, and JSON values as stored by every backend.
 *
 * - **Text** (ids and indexed keys, plus session/conversation `title`, `model`,
 *   `agentId`, `channel`): well-formed UTF-16 (no lone surrogate) without
 *   U+0000. Anything else is refused with `InvalidInput`, never changed, so
 *   no backend can turn two ids into one or return an id other than the one given.
 * - **Content** (message text, tool input and output, transcripts, metadata keys
 *   and values): any string, stored verbatim, U+0000 and lone surrogates
 *   included. JSON text from `JSON.stringify` escapes both, so it stays ASCII-safe.
 *
 * JSON validation rejects anything `JSON.stringify` would drop or change
 * (functions, `undefined`, `NaN`, `Date`s, `Map`s, class instances, cycles),
 * own keys named `__proto__` (which object copies turn into prototypes) and
 * nesting deeper than `maxJsonDepth`, at the top level as below it. Message
 * content (`JsonContent`) differs in one point: an object property set to
 * `undefined` is left out, as `JSON.stringify` leaves it out, since the AI SDK
 * builds messages with such properties.
 */
import { type Arbitrary, type Either, ParseResult, Schema } from "effect"

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Whether `text` follows the Text rule: a string of well-formed UTF-16 without U+0000 (see the module comment). */
export const isStorableText = (text: unknown): text is string =>
  typeof text === "string" && !text.includes("\u0000") && !loneSurrogate.test(text)

/** The Text rule as a Schema: refused strings are `InvalidInput`, never altered. */
export const Text = Schema.String.pipe(
  Schema.filter((text) => isStorableText(text) || "must be well-formed Unicode without U+0000", { identifier: "Text" })
)

/** A JSON object, as held in `metadata` fields. */
export type JsonObject = { readonly [key: string]: unknown }

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** Nesting deeper than this is rejected (it also stops cycles). */
export const maxJsonDepth = 256

/** Whether `value` is a JSON value that survives a `JSON.stringify` / `JSON.parse` round trip unchanged. */
export const isJson = (value: unknown, depth = 0): boolean => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true
    case "number":
      // `-0` comes back as `0`: the fast paths leave it to the Schema, which copies it as `0`.
      return Number.isFinite(value) && !Object.is(value, -0)
    case "object": {
      if (value === null) return true
      if (depth >= maxJsonDepth) return false
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!isJson(value[i], depth + 1)) return false
        return true
      }
      if (!isPlainObject(value)) return false
      for (const key in value) {
        if (key === "__proto__") return false
        const item = (value as Record<string, unknown>)[key]
        if (item === undefined || !isJson(item, depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

/** What a non-JSON value is, for messages: `a Date`, `NaN`, `a function`. */
const describe = (value: unknown): string => {
  switch (typeof value) {
    case "number":
      return String(value)
    case "undefined":
      return "undefined"
    case "object":
      return value === null ? "null" : `a ${Object.getPrototypeOf(value)?.constructor?.name ?? "object"}`
    default:
      return `a ${typeof value}`
  }
}

/** Why a value is not JSON, at `path` below the value checked. */
class NotJson {
  constructor(
    readonly path: ReadonlyArray<string | number>,
    readonly message: string
  ) {}
}

/**
 * A plain copy of the JSON value `value`, each property read once (so what is
 * checked is what is stored), equal to what its JSON text parses back to;
 * throws `NotJson`, or whatever a getter or Proxy trap of the input throws.
 * With `dropUndefined`, object properties set to `undefined` are left out of the copy.
 */
const copyJson = (value: unknown, path: Array<string | number>, dropUndefined: boolean): unknown => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value
    case "number":
      // `-0` is stored as `0` (JSON text has no negative zero): the copy is what every backend gives back.
      if (Number.isFinite(value)) return value === 0 ? 0 : value
      break
    case "object": {
      if (value === null) return null
      if (path.length >= maxJsonDepth) throw new NotJson([...path], `must be nested at most ${maxJsonDepth} deep`)
      if (Array.isArray(value)) {
        const copy: Array<unknown> = new Array(value.length)
        for (let i = 0; i < copy.length; i++) {
          path.push(i)
          copy[i] = copyJson(value[i], path, dropUndefined)
          path.pop()
        }
        return copy
      }
      if (!isPlainObject(value)) break
      const copy: Record<string, unknown> = {}
      for (const key in value) {
        if (key === "__proto__") throw new NotJson([...path], "must not have a __proto__ key")
        const item = (value as Record<string, unknown>)[key]
        if (item === undefined && dropUndefined) continue
        path.push(key)
        copy[key] = copyJson(item, path, dropUndefined)
        path.pop()
      }
      return copy
    }
  }
  throw new NotJson([...path], `must be JSON, got ${describe(value)}`)
}

const jsonSchema = <A>(
  identifier: string,
  check: (copy: unknown) => string | undefined,
  arbitrary: Arbitrary.LazyArbitrary<A>,
  dropUndefined = false
): Schema.Schema<A> => {
  // An `Either`, not an `Effect`: Schema decodes an `Either` in place, while any other effect costs a fiber per decode.
  const parse = (
    input: unknown,
    _: unknown,
    ast: Schema.declare<A>["ast"]
  ): Either.Either<A, ParseResult.ParseIssue> => {
    try {
      const copy = copyJson(input, [], dropUndefined)
      const problem = check(copy)
      return problem === undefined
        ? ParseResult.succeed(copy as A)
        : ParseResult.fail(new ParseResult.Type(ast, input, problem))
    } catch (error) {
      if (!(error instanceof NotJson)) throw error
      const issue = new ParseResult.Type(ast, input, error.message)
      const [head, ...tail] = error.path
      return ParseResult.fail(head === undefined ? issue : new ParseResult.Pointer([head, ...tail], input, issue))
    }
  }
  return Schema.declare<A, A, []>(
    [],
    { decode: () => parse, encode: () => parse },
    {
      identifier,
      arbitrary: () => arbitrary
    }
  )
}

const jsonArbitrary: Arbitrary.LazyArbitrary<unknown> = (fc) =>
  fc
    .jsonValue({ maxDepth: 3 })
    .map((value) => JSON.parse(JSON.stringify(value)))
    .filter((value) => isJson(value))

const jsonObjectArbitrary: Arbitrary.LazyArbitrary<JsonObject> = (fc) =>
  fc
    .dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
    .map((value): JsonObject => JSON.parse(JSON.stringify(value)))
    .filter((value) => isJson(value))

const isJsonObject = (copy: unknown) =>
  typeof copy === "object" && copy !== null && !Array.isArray(copy) ? undefined : "must be a JSON object"

/** Any JSON value (decoding yields a plain copy). */
export const Json: Schema.Schema<unknown> = jsonSchema<unknown>("Json", () => undefined, jsonArbitrary)

/** A JSON object: a plain object (not an array, `Date`, `Map`, class instance…) whose values are JSON; decoded as a copy. */
export const JsonObject: Schema.Schema<JsonObject> = jsonSchema<JsonObject>(
  "JsonObject",
  isJsonObject,
  jsonObjectArbitrary
)

/**
 * Message content: any JSON value, where an object property set to `undefined` is left out (as `JSON.stringify`
 * leaves it out) instead of refused; decoding yields the plain copy that is stored.
 */
export const JsonContent: Schema.Schema<unknown> = jsonSchema<unknown>(
  "JsonContent",
  () => undefined,
  jsonArbitrary,
  true
)

/** A JSON object of message content (`providerMetadata`, …): as `JsonObject`, leaving out `undefined` properties. */
export const JsonContentObject: Schema.Schema<JsonObject> = jsonSchema<JsonObject>(
  "JsonContentObject",
  isJsonObject,
  jsonObjectArbitrary,
  true
)

/** Parses a JSON column: SQLite returns text, PostgreSQL `jsonb` arrives already parsed. */
export const parseJson = (value: unknown): unknown => (typeof value === "string" ? JSON.parse(value) : value)

/** JSON text of a JSON column value that may have arrived parsed (PostgreSQL `jsonb`). */
export const jsonText = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value))
