/**
 * Pagination shared by every `list`: keyset cursors (stable under concurrent
 * inserts) with `offset` kept for the seeds' API.
 */
import { Effect, Option, Schema } from "effect"
import { InvalidInput } from "./Errors.ts"

/** One page of a listing; `nextCursor` is `None` on the last page. */
export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: Option.Option<string>
}

/** The default page size when `limit` is not given. */
export const defaultLimit = 100

/** The largest page size a `list` accepts. */
export const maxLimit = 1000

/** Options every `list` accepts. Listings are ordered oldest first ("newest-last") unless `order: "desc"`. */
export const PageOptions = Schema.Struct({
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, maxLimit))),
  cursor: Schema.optional(Schema.String),
  offset: Schema.optional(Schema.NonNegativeInt),
  order: Schema.optional(Schema.Literal("asc", "desc"))
})

/** Options every `list` accepts. */
export type PageOptions = typeof PageOptions.Type

/** A position in a listing ordered by `(createdAt, id)`. */
export interface Keyset {
  readonly createdAt: number
  readonly id: string
}

/** What a driver needs to fetch one page: rows strictly after `after` in `order`, skipping `offset`. */
export interface PageQuery {
  readonly after: Keyset | undefined
  readonly limit: number
  readonly offset: number
  readonly order: "asc" | "desc"
}

/** Encodes a keyset position as an opaque cursor. */
export const encodeCursor = (key: Keyset): string =>
  Buffer.from(JSON.stringify([key.createdAt, key.id])).toString("base64url")

const decodeCursor = (entity: string, cursor: string): Effect.Effect<Keyset, InvalidInput> =>
  Effect.suspend(() => {
    try {
      const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"))
      if (
        Array.isArray(value) &&
        value.length === 2 &&
        Number.isSafeInteger(value[0]) &&
        typeof value[1] === "string"
      ) {
        return Effect.succeed({ createdAt: value[0], id: value[1] })
      }
    } catch {
      // fall through to the typed failure
    }
    return Effect.fail(InvalidInput.single(entity, "malformed cursor", ["cursor"]))
  })

/** Turns validated `PageOptions` into a driver `PageQuery`; drivers fetch one extra row to detect a next page. */
export const toPageQuery = (entity: string, options: PageOptions): Effect.Effect<PageQuery, InvalidInput> =>
  Effect.map(
    options.cursor === undefined ? Effect.succeed(undefined) : decodeCursor(entity, options.cursor),
    (after) => ({
      after,
      limit: (options.limit ?? defaultLimit) + 1,
      offset: options.offset ?? 0,
      order: options.order ?? "asc"
    })
  )

/** Builds a `Page` from the `limit + 1` rows a driver returned. */
export const toPage = <Row extends Keyset, A>(
  rows: ReadonlyArray<Row>,
  query: PageQuery,
  decode: (row: Row) => A
): Page<A> => {
  const size = query.limit - 1
  const more = rows.length > size
  const items: Array<A> = new Array(more ? size : rows.length)
  for (let i = 0; i < items.length; i++) items[i] = decode(rows[i]!)
  return { items, nextCursor: more ? Option.some(encodeCursor(rows[size - 1]!)) : Option.none() }
}
