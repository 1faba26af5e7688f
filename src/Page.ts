/**
 * Pagination shared by every `list`: keyset cursors over any ordered column
 * tuple (`(createdAt, id)`, a sequence number, a name, …), stable under
 * concurrent inserts, with `offset` kept for the seeds' API.
 */
import { Effect, Option, Schema } from "effect"
import { InvalidInput } from "./Errors.ts"
import { isStorableText } from "./Json.ts"
import { kindOf } from "./Record.ts"

/** One page of a listing; `nextCursor` is `None` on the last page. */
export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: Option.Option<string>
}

/** The default page size when `limit` is not given. */
export const defaultLimit = 100

/** The largest page size a `list` accepts. */
export const maxLimit = 1000

/**
 * A page's cursor: the string a page's `nextCursor` holds, or the `nextCursor` itself (`Option.none()` reads from
 * the start).
 */
export const Cursor: Schema.Schema<string | Option.Option<string>> = Schema.declare(
  (input: unknown): input is string | Option.Option<string> =>
    typeof input === "string" || (Option.isOption(input) && (Option.isNone(input) || typeof input.value === "string")),
  {
    identifier: "Cursor",
    message: (issue) => `must be a string or an Option of a string, got ${kindOf(issue.actual)}`,
    arbitrary: () => (fc) => fc.oneof(fc.string(), fc.constant(Option.none()), fc.string().map(Option.some))
  }
)

/** Options every `list` accepts. Listings are ordered oldest first ("newest-last") unless `order: "desc"`. */
export const PageOptions = Schema.Struct({
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, maxLimit))),
  cursor: Schema.optional(Cursor),
  offset: Schema.optional(Schema.NonNegativeInt),
  order: Schema.optional(Schema.Literal("asc", "desc"))
})

/** Options every `list` accepts. */
export type PageOptions = typeof PageOptions.Type

/** A position in a listing: the ordering columns' values of the last row returned, e.g. `[createdAt, id]`. */
export type Keyset = ReadonlyArray<string | number>

/** The types of a listing's ordering columns, e.g. `["number", "string"]` for `(created_at, id)`. */
export type KeyShape = ReadonlyArray<"number" | "string">

/** The usual ordering: creation time, then id. */
export const byCreatedAt: KeyShape = ["number", "string"]

/** What a driver needs to fetch one page: rows strictly after `after` in `order`, skipping `offset`. */
export interface PageQuery {
  readonly after: Keyset | undefined
  readonly limit: number
  readonly offset: number
  readonly order: "asc" | "desc"
}

/** Encodes a keyset position as an opaque cursor. */
export const encodeCursor = (key: Keyset): string => Buffer.from(JSON.stringify(key)).toString("base64url")

const fitsShape = (value: unknown, shape: KeyShape): value is Keyset =>
  Array.isArray(value) &&
  value.length === shape.length &&
  shape.every((type, i) => (type === "number" ? Number.isSafeInteger(value[i]) : isStorableText(value[i])))

/** Decodes a cursor of a listing ordered by `shape`; anything else (malformed, impossible values) is `InvalidInput`. */
export const decodeCursor = (entity: string, cursor: string, shape: KeyShape): Effect.Effect<Keyset, InvalidInput> =>
  Effect.suspend(() => {
    try {
      const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"))
      if (fitsShape(value, shape)) return Effect.succeed(value)
    } catch {
      // fall through to the typed failure
    }
    return Effect.fail(InvalidInput.single(entity, "cursor is malformed", ["cursor"]))
  })

/** A cursor option as a string, `undefined` when absent or `Option.none()`. */
export const cursorText = (cursor: string | Option.Option<string> | undefined): string | undefined =>
  cursor === undefined || typeof cursor === "string" ? cursor : Option.getOrUndefined(cursor)

/** Turns validated `PageOptions` into a driver `PageQuery`; drivers fetch one extra row to detect a next page. */
export const toPageQuery = (
  entity: string,
  options: PageOptions,
  shape: KeyShape = byCreatedAt
): Effect.Effect<PageQuery, InvalidInput> => {
  const cursor = cursorText(options.cursor)
  return Effect.map(
    cursor === undefined ? Effect.succeed(undefined) : decodeCursor(entity, cursor, shape),
    (after) => ({
      after,
      limit: (options.limit ?? defaultLimit) + 1,
      offset: options.offset ?? 0,
      order: options.order ?? "asc"
    })
  )
}

const createdAtKey = (row: any): Keyset => [row.createdAt, row.id]

/** Builds a `Page` from the `limit + 1` rows a driver returned; `keyOf` gives a row's ordering values. */
export const toPage = <Row, A>(
  rows: ReadonlyArray<Row>,
  query: PageQuery,
  decode: (row: Row) => A,
  keyOf: (row: Row) => Keyset = createdAtKey
): Page<A> => {
  const size = query.limit - 1
  const more = rows.length > size
  const items: Array<A> = new Array(more ? size : rows.length)
  for (let i = 0; i < items.length; i++) items[i] = decode(rows[i]!)
  return { items, nextCursor: more ? Option.some(encodeCursor(keyOf(rows[size - 1]!))) : Option.none() }
}
