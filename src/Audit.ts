/**
 * `AuditLogStore`: a tamper-evident, append-only log of who did what to
 * which resource. Every entry takes the next global `seq` (gapless, in commit
 * order) and is chained to the one before it:
 * `hash = sha256(canonical JSON of { id, seq, sessionId, actor, action,
 * resource, detail, createdAt, prevHash })`, the first entry's `prevHash`
 * being 64 zeros. The hash is taken over canonical JSON (`CanonicalJson.ts`),
 * so key order (PostgreSQL `jsonb` reorders keys) cannot change it.
 * `verify` walks the chain and fails with `IntegrityError` naming the first
 * entry that was edited, removed (a gap), inserted or truncated away.
 *
 * The chain proves that rows were not changed by anyone who did not also
 * recompute every later hash; keep the `head` that `verify` returns somewhere
 * else to detect a rewrite of the whole tail too.
 */
import { Clock, Context, DateTime, Effect, Option, Schema } from "effect"
import { canonicalJson, sha256Hex } from "./CanonicalJson.ts"
import { Conflict, IntegrityError, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { Json, Text } from "./Json.ts"
import { type KeyShape, type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, decodeInput, decodeOptions } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

const text255 = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** An audit entry id: a UUIDv7 unless given. */
export const AuditEntryId = Schema.String.pipe(Schema.brand("AuditEntryId"))
/** An audit entry id. */
export type AuditEntryId = typeof AuditEntryId.Type

/** A hash of the chain: 64 lowercase hex digits (SHA-256). */
export const AuditHash = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))

/** The `prevHash` of the first entry. */
export const genesisHash = "0".repeat(64)

/** A point in time as callers give it: a `DateTime.Utc` or epoch milliseconds. */
export const Instant = Schema.Union(Schema.DateTimeUtcFromSelf, Schema.DateTimeUtcFromNumber)
/** A point in time as callers give it. */
export type Instant = typeof Instant.Encoded

/** An entry of the audit log. `detail` is content (any JSON, stored verbatim). */
export const AuditEntry = Schema.Struct({
  id: AuditEntryId,
  /** Global position: 1, 2, 3 … in commit order, no gaps. */
  seq: Schema.Int,
  sessionId: Schema.optional(text255),
  actor: text255,
  action: text255,
  resource: text255,
  detail: Json,
  createdAt: Schema.DateTimeUtcFromNumber,
  /** The `hash` of entry `seq - 1` (64 zeros for the first entry). */
  prevHash: AuditHash,
  hash: AuditHash
})
/** An entry of the audit log. */
export type AuditEntry = typeof AuditEntry.Type

/** Input of `append`; `detail` defaults to `null`, `id` to a fresh UUIDv7. */
export const AuditInput = Schema.Struct({
  id: Schema.optional(text255),
  sessionId: Schema.optional(text255),
  actor: text255,
  action: text255,
  resource: text255,
  detail: Schema.optional(Json)
})
/** Input of `append`. */
export type AuditInput = typeof AuditInput.Encoded

/** Options of `list`: paging (by `seq`) plus equality filters and a `createdAt` range (`from` inclusive, `to` exclusive). */
export const AuditListOptions = Schema.Struct({
  ...PageOptions.fields,
  sessionId: Schema.optional(text255),
  actor: Schema.optional(text255),
  action: Schema.optional(text255),
  resource: Schema.optional(text255),
  from: Schema.optional(Instant),
  to: Schema.optional(Instant)
})
/** Options of `list`. */
export type AuditListOptions = typeof AuditListOptions.Encoded

/** Options of `verify`: start at entry `from` (its predecessor's hash is trusted), default the first entry. */
export const AuditVerifyOptions = Schema.Struct({
  from: Schema.optional(Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)))
})
/** Options of `verify`. */
export type AuditVerifyOptions = typeof AuditVerifyOptions.Encoded

/** What `verify` checked: how many entries, and the head of the chain (`seq` 0 and `genesisHash` when empty). */
export interface AuditVerification {
  readonly checked: number
  readonly head: { readonly seq: number; readonly hash: string }
}

/** The audit log store. */
export class AuditLogStore extends Context.Tag("effect-agent-stores/AuditLogStore")<
  AuditLogStore,
  {
    /**
     * Appends an entry at the next `seq`, chained to the previous entry, atomically (concurrent appenders, in
     * one process or several, build one unbroken chain). `Conflict` (reason `exists`) when `id` is taken.
     */
    readonly append: (input: AuditInput) => Effect.Effect<AuditEntry, InvalidInput | Conflict | StorageError>
    /** The entry `id`, or `NotFound`. */
    readonly get: (id: string) => Effect.Effect<AuditEntry, NotFound | InvalidInput | StorageError>
    /** The entry `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<AuditEntry>, InvalidInput | StorageError>
    /** Entries in `seq` order (`order: "desc"` for newest first), filtered; keyset-paged by `seq`. */
    readonly list: (options?: AuditListOptions) => Effect.Effect<Page<AuditEntry>, InvalidInput | StorageError>
    /**
     * Walks the chain from `from` (default the first entry) to the head, recomputing each hash: `IntegrityError`
     * naming the first entry that was edited, deleted (a gap in `seq`), inserted, or cut off the end (the head
     * counter is ahead of the last entry). Succeeds with how many entries it checked and the chain's head.
     */
    readonly verify: (
      options?: AuditVerifyOptions
    ) => Effect.Effect<AuditVerification, IntegrityError | InvalidInput | StorageError>
  }
>() {}

/** An audit entry as a driver stores it: `detail` as JSON text, `createdAt` in epoch milliseconds. */
export interface AuditEntryRow {
  readonly id: string
  readonly seq: number
  readonly sessionId: string | null
  readonly actor: string
  readonly action: string
  readonly resource: string
  readonly detail: string
  readonly createdAt: number
  readonly prevHash: string
  readonly hash: string
}

/** An entry before the log places it: no `seq` nor hashes yet. */
export type AuditDraft = Omit<AuditEntryRow, "seq" | "prevHash" | "hash">

/** The filters of `list`, as a driver receives them (`from` inclusive, `to` exclusive, epoch milliseconds). */
export interface AuditFilter {
  readonly sessionId?: string | undefined
  readonly actor?: string | undefined
  readonly action?: string | undefined
  readonly resource?: string | undefined
  readonly from?: number | undefined
  readonly to?: number | undefined
}

/** What a backend implements for `AuditLogStore`; validation, ids, time and hashing live in `makeAuditLogStore`. */
export interface AuditDriver {
  /**
   * In one atomic step: takes the next `seq` from the log's counter, reads the hash of the entry with the
   * highest `seq` (`genesisHash` when none), calls `seal(seq, prevHash)` for the new entry's hash and inserts
   * the entry; `undefined` (nothing written, the counter unchanged) when `draft.id` is taken.
   */
  readonly append: (
    draft: AuditDraft,
    seal: (seq: number, prevHash: string) => string
  ) => Effect.Effect<AuditEntryRow | undefined, StorageError>
  readonly get: (id: string) => Effect.Effect<AuditEntryRow | undefined, StorageError>
  /** The entry at `seq`, if any. */
  readonly bySeq: (seq: number) => Effect.Effect<AuditEntryRow | undefined, StorageError>
  /** One page of entries matching `filter`, ordered by `seq`. */
  readonly list: (filter: AuditFilter, page: PageQuery) => Effect.Effect<ReadonlyArray<AuditEntryRow>, StorageError>
  /** Up to `limit` entries with `seq > after` (`after` may be below 1, to see rows inserted there), by `seq`. */
  readonly range: (after: number, limit: number) => Effect.Effect<ReadonlyArray<AuditEntryRow>, StorageError>
  /** The log's counter: the `seq` of the last appended entry, 0 when none was. */
  readonly head: Effect.Effect<number, StorageError>
}

const entity = "AuditEntry"

/** The hash of an entry: sha256 of the canonical JSON of its fields and `prevHash` (`undefined`: not JSON). */
export const entryHash = (row: Omit<AuditEntryRow, "hash" | "detail">, detail: unknown): string | undefined => {
  const text = canonicalJson({
    id: row.id,
    seq: row.seq,
    sessionId: row.sessionId,
    actor: row.actor,
    action: row.action,
    resource: row.resource,
    detail,
    createdAt: row.createdAt,
    prevHash: row.prevHash
  })
  return text._tag === "Right" ? sha256Hex(text.right) : undefined
}

/** A stored row as an `AuditEntry`, its detail already parsed. */
const entryOf = (row: AuditEntryRow, detail: unknown): AuditEntry => {
  const entry: { -readonly [K in keyof AuditEntry]: AuditEntry[K] } = {
    id: row.id as AuditEntryId,
    seq: row.seq,
    actor: row.actor,
    action: row.action,
    resource: row.resource,
    detail,
    createdAt: utcFromMillis(row.createdAt),
    prevHash: row.prevHash,
    hash: row.hash
  }
  if (row.sessionId !== null) entry.sessionId = row.sessionId
  return entry
}

const decodeRow = (row: AuditEntryRow): AuditEntry => entryOf(row, JSON.parse(row.detail))

const bySeqKey: KeyShape = ["number"]
const seqKey = (row: AuditEntryRow) => [row.seq]

const decodeAppend = decodeInput(entity, AuditInput)
const decodeList = decodeOptions(entity, AuditListOptions)
const decodeVerify = decodeOptions(entity, AuditVerifyOptions)

/** Entries read per step of `verify`. */
const verifyBatch = 500

/** Why stored row `row` is not the entry that was appended after `expectedPrev` at `expectedSeq`, if it is not. */
const checkRow = (row: AuditEntryRow, expectedSeq: number, expectedPrev: string): IntegrityError | undefined => {
  const fail = (expected: string, actual: string) => new IntegrityError({ entity, id: row.id, expected, actual })
  if (row.seq !== expectedSeq) return fail(`seq ${expectedSeq}`, `seq ${row.seq}`)
  if (row.prevHash !== expectedPrev) return fail(`prevHash ${expectedPrev}`, `prevHash ${row.prevHash}`)
  let detail: unknown
  try {
    detail = JSON.parse(row.detail)
  } catch {
    return fail(row.hash, "unreadable detail")
  }
  const actual = entryHash(row, detail) ?? "unhashable detail"
  return actual === row.hash ? undefined : fail(row.hash, actual)
}

/** Builds an `AuditLogStore` over a driver: validation, ids, clock, hashing and the chain walk live here. */
export const makeAuditLogStore = (driver: AuditDriver) => {
  const find = (id: unknown) =>
    byId(entity, id, undefined, (id) =>
      Effect.map(driver.get(id), (row) => (row === undefined ? undefined : decodeRow(row)))
    )

  return traced(
    "AuditLogStore",
    driver,
    AuditLogStore.of({
      append: (input) =>
        Effect.flatMap(decodeAppend(input), (fields) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const detail = fields.detail === undefined ? null : fields.detail
            const draft: AuditDraft = {
              id: fields.id ?? uuidv7At(now),
              sessionId: fields.sessionId ?? null,
              actor: fields.actor,
              action: fields.action,
              resource: fields.resource,
              detail: JSON.stringify(detail),
              createdAt: now
            }
            return Effect.flatMap(
              driver.append(draft, (seq, prevHash) => entryHash(Object.assign({}, draft, { seq, prevHash }), detail)!),
              (row) =>
                row === undefined
                  ? Effect.fail(new Conflict({ entity, id: draft.id, expected: 0, actual: 1, reason: "exists" }))
                  : // The decoded input is a private copy equal to what the stored JSON parses to: not parsed back.
                    Effect.succeed(entryOf(row, detail))
            )
          })
        ),
      get: (id) =>
        Effect.flatMap(find(id), (entry) =>
          entry === undefined ? Effect.fail(new NotFound({ entity, id: String(id) })) : Effect.succeed(entry)
        ),
      find: (id) => Effect.map(find(id), Option.fromNullable),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeList(input)
        const query = yield* toPageQuery(entity, options, bySeqKey)
        const filter: AuditFilter = {
          sessionId: options.sessionId,
          actor: options.actor,
          action: options.action,
          resource: options.resource,
          from: options.from === undefined ? undefined : DateTime.toEpochMillis(options.from),
          to: options.to === undefined ? undefined : DateTime.toEpochMillis(options.to)
        }
        const rows = yield* driver.list(filter, query)
        return toPage(rows, query, decodeRow, seqKey)
      }),
      verify: Effect.fnUntraced(function* (input) {
        const { from } = yield* decodeVerify(input)
        const start = from ?? 1
        const head = yield* driver.head
        let prevHash = genesisHash
        let expectedSeq = start
        // From the first entry, rows with any seq are walked (one inserted at seq 0 is found); later, from `start`.
        let after = start === 1 ? Number.MIN_SAFE_INTEGER : start - 1
        if (start > 1) {
          const previous = yield* driver.bySeq(start - 1)
          if (previous === undefined) {
            return yield* new IntegrityError({
              entity,
              id: `seq ${start - 1}`,
              expected: `an entry at seq ${start - 1}`,
              actual: "none"
            })
          }
          prevHash = previous.hash
        }
        let checked = 0
        while (true) {
          const rows = yield* driver.range(after, verifyBatch)
          for (const row of rows) {
            const problem = checkRow(row, expectedSeq, prevHash)
            if (problem !== undefined) return yield* problem
            prevHash = row.hash
            expectedSeq++
            checked++
          }
          if (rows.length < verifyBatch) break
          after = rows[rows.length - 1]!.seq
        }
        const last = expectedSeq - 1
        // Entries appended during the walk are verified too: the counter read before it only has to be reached.
        if (last < head) {
          return yield* new IntegrityError({
            entity,
            id: `seq ${last + 1}`,
            expected: `entries up to seq ${head}`,
            actual: `entries up to seq ${last}`
          })
        }
        // Every appended entry bumped the counter in its own transaction: a row past the counter was not appended.
        const now = last > head ? yield* driver.head : head
        if (last > now) {
          const stray = yield* driver.bySeq(now + 1)
          return yield* new IntegrityError({
            entity,
            id: stray?.id ?? `seq ${now + 1}`,
            expected: `entries up to seq ${now}`,
            actual: `an entry at seq ${now + 1}`
          })
        }
        return { checked, head: { seq: last, hash: prevHash } }
      })
    })
  )
}
