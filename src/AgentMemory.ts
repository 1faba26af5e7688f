/**
 * `AgentMemoryStore`: an agent's long-lived memory records, one per
 * `(agentId, key)`, each of a kind (`short_term`, `long_term`, `episodic` or
 * any other) holding a JSON value, optionally expiring. Expiry is read against
 * the Effect `Clock`: an expired record is invisible to every read from its
 * `expiresAt` on, before any `deleteExpired` sweep removes it.
 */
import { Clock, Context, Duration, Effect, Option, Schema } from "effect"
import { Conflict, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { expiresAtFrom, isExpired } from "./Expiry.ts"
import { uuidv7At } from "./Id.ts"
import { Json, parseJson, Text } from "./Json.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { checkId, decodeInput, decodeOptions, UpdateOptions } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

const text255 = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** A memory record id: a UUIDv7. */
export const MemoryRecordId = Schema.String.pipe(Schema.brand("MemoryRecordId"))
/** A memory record id. */
export type MemoryRecordId = typeof MemoryRecordId.Type

/** The agent a record belongs to: a non-empty Text (see `Json.ts`) up to 255 characters. */
export const MemoryAgentId = text255
/** A record's key, unique per agent: a non-empty Text up to 255 characters. */
export const MemoryKey = text255

/** A record's kind: `short_term`, `long_term`, `episodic` or any other non-empty Text up to 255 characters. */
export const MemoryKind = Schema.Union(Schema.Literal("short_term", "long_term", "episodic"), text255)
/** A record's kind. */
export type MemoryKind = typeof MemoryKind.Type

/** A memory record. `value` is content (any JSON, stored verbatim); `expiresAt` is absent for "never". */
export const MemoryRecord = Schema.Struct({
  id: MemoryRecordId,
  agentId: MemoryAgentId,
  kind: MemoryKind,
  key: MemoryKey,
  value: Json,
  expiresAt: Schema.optional(Schema.DateTimeUtcFromNumber),
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  version: Schema.Int
})
/** A memory record. */
export type MemoryRecord = typeof MemoryRecord.Type

/** A duration as text, as `Duration` reads it: `"1 minute"`, `"500 millis"`, `"2 hours"`, `"Infinity"`. */
export const DurationText = Schema.String.pipe(
  Schema.filter(
    (text) =>
      Option.match(Duration.decodeUnknown(text), {
        onNone: () => 'must be a duration such as "5 minutes"',
        onSome: () => true
      }),
    {
      identifier: "DurationText",
      arbitrary: () => (fc) => fc.constantFrom("1 minute", "500 millis", "2 hours", "3 days", "Infinity")
    }
  )
)

/** How long a record lives: a `Duration`, milliseconds (≥ 0) or duration text (`"5 minutes"`). */
export const MemoryTtl = Schema.Union(Schema.DurationFromSelf, Schema.NonNegative, DurationText)

/**
 * Input of `put`. `kind` defaults to `long_term`; `ttl` (a `Duration`, milliseconds or text) makes the record
 * expire that long after this put (absent or infinite: never). A put replaces kind, value and expiry.
 */
export const MemoryInput = Schema.Struct({
  agentId: MemoryAgentId,
  key: MemoryKey,
  kind: Schema.optional(MemoryKind),
  value: Json,
  ttl: Schema.optional(MemoryTtl)
})
/** Input of `put`. */
export type MemoryInput = typeof MemoryInput.Encoded

/** Options of `list`: paging plus a `kind` and a key `prefix`. */
export const MemoryListOptions = Schema.Struct({
  ...PageOptions.fields,
  kind: Schema.optional(MemoryKind),
  prefix: Schema.optional(Text.pipe(Schema.maxLength(255)))
})
/** Options of `list`. */
export type MemoryListOptions = typeof MemoryListOptions.Encoded

/** The largest `batch` of `deleteExpired`. */
export const maxExpiredBatch = 10_000

/** Options of `deleteExpired`: at most `batch` records (1–10,000, default 1,000) are deleted per call. */
export const DeleteExpiredOptions = Schema.Struct({
  batch: Schema.optional(Schema.Int.pipe(Schema.between(1, maxExpiredBatch)))
})
/** Options of `deleteExpired`. */
export type DeleteExpiredOptions = typeof DeleteExpiredOptions.Encoded

/** The agent memory store. */
export class AgentMemoryStore extends Context.Tag("effect-agent-stores/AgentMemoryStore")<
  AgentMemoryStore,
  {
    /**
     * Creates or replaces the record `(agentId, key)` (upsert): a replacement keeps `id` and `createdAt` and
     * bumps `version`; an absent or expired record is created anew at version 1. `Conflict` when
     * `expectedVersion` is not the live record's version (`actual: 0` when there is none); without it a
     * put never fails with `Conflict`.
     */
    readonly put: (
      input: MemoryInput,
      options?: UpdateOptions
    ) => Effect.Effect<MemoryRecord, InvalidInput | Conflict | StorageError>
    /** The live record `(agentId, key)`, or `NotFound` (also when it has expired). */
    readonly get: (agentId: string, key: string) => Effect.Effect<MemoryRecord, NotFound | InvalidInput | StorageError>
    /** The live record `(agentId, key)`, if any. */
    readonly find: (
      agentId: string,
      key: string
    ) => Effect.Effect<Option.Option<MemoryRecord>, InvalidInput | StorageError>
    /** An agent's live records, oldest first (`order: "desc"` for newest first), filtered by kind and key prefix. */
    readonly list: (
      agentId: string,
      options?: MemoryListOptions
    ) => Effect.Effect<Page<MemoryRecord>, InvalidInput | StorageError>
    /** Deletes the record `(agentId, key)`; an unknown one is a no-op. */
    readonly delete: (agentId: string, key: string) => Effect.Effect<void, InvalidInput | StorageError>
    /** Deletes up to `batch` records expired at `Clock` time, soonest-expired first; returns how many. */
    readonly deleteExpired: (options?: DeleteExpiredOptions) => Effect.Effect<number, InvalidInput | StorageError>
  }
>() {}

/** A memory record as a driver stores it: the value as JSON text, times in epoch milliseconds. */
export interface MemoryRecordRow {
  readonly id: string
  readonly agentId: string
  readonly kind: string
  readonly key: string
  readonly value: unknown
  readonly expiresAt: number | null
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** The filters of `list`, as a driver receives them. */
export interface MemoryFilter {
  readonly kind?: string | undefined
  readonly prefix?: string | undefined
}

/** What a backend implements for `AgentMemoryStore`; everything else lives in `makeAgentMemoryStore`. */
export interface AgentMemoryDriver {
  /** The stored record `(agentId, key)`, expired or not. */
  readonly get: (agentId: string, key: string) => Effect.Effect<MemoryRecordRow | undefined, StorageError>
  /** Inserts a record; `false` when `(agentId, key)` is taken. */
  readonly insert: (row: MemoryRecordRow) => Effect.Effect<boolean, StorageError>
  /**
   * Overwrites the record `(row.agentId, row.key)` with `row` (its id included) if it is still `previous`
   * (same id and version); `false` otherwise.
   */
  readonly replace: (
    row: MemoryRecordRow,
    previous: { readonly id: string; readonly version: number }
  ) => Effect.Effect<boolean, StorageError>
  /** One page of the records of `agentId` not expired at `now`, ordered by `(createdAt, id)`. */
  readonly list: (
    agentId: string,
    filter: MemoryFilter,
    now: number,
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<MemoryRecordRow>, StorageError>
  readonly delete: (agentId: string, key: string) => Effect.Effect<void, StorageError>
  /** Deletes up to `batch` records expired at `now`, soonest-expired first; returns how many. */
  readonly deleteExpired: (now: number, batch: number) => Effect.Effect<number, StorageError>
}

const entity = "MemoryRecord"

const decodeRow = (row: MemoryRecordRow): MemoryRecord => {
  const record: { -readonly [K in keyof MemoryRecord]: MemoryRecord[K] } = {
    id: row.id as MemoryRecordId,
    agentId: row.agentId,
    kind: row.kind,
    key: row.key,
    value: parseJson(row.value),
    createdAt: utcFromMillis(row.createdAt),
    updatedAt: utcFromMillis(row.updatedAt),
    version: row.version
  }
  if (row.expiresAt !== null) record.expiresAt = utcFromMillis(row.expiresAt)
  return record
}

const decodePut = decodeInput(entity, MemoryInput)
const decodeList = decodeOptions(entity, MemoryListOptions)
const decodeUpdateOptions = decodeOptions(entity, UpdateOptions)
const decodeDeleteExpired = decodeOptions(entity, DeleteExpiredOptions)

/** The id rule of `Record.ts` for one part of a record's address, an error naming that part (`key must be a string`). */
const checkPart = (value: unknown, path: "agentId" | "key") =>
  Effect.mapError(checkId(entity, value), (error) =>
    InvalidInput.single(entity, error.issues[0]?.message ?? "is invalid", [path])
  )

/** Both parts of a record's address: `undefined` when no record can have it (an unknown record). */
const checkAddress = (agentId: unknown, key: unknown) =>
  Effect.flatMap(checkPart(agentId, "agentId"), (agent) =>
    Effect.map(checkPart(key, "key"), (k) =>
      agent === undefined || k === undefined ? undefined : { agentId: agent, key: k }
    )
  )

/** Builds an `AgentMemoryStore` over a driver: validation, ids, clock, expiry, versions and encoding live here. */
export const makeAgentMemoryStore = (driver: AgentMemoryDriver) => {
  const find = (agentId: unknown, key: unknown) =>
    Effect.gen(function* () {
      const address = yield* checkAddress(agentId, key)
      if (address === undefined) return undefined
      const row = yield* driver.get(address.agentId, address.key)
      if (row === undefined) return undefined
      return isExpired(row.expiresAt, yield* Clock.currentTimeMillis) ? undefined : decodeRow(row)
    })

  return traced(
    "AgentMemoryStore",
    driver,
    AgentMemoryStore.of({
      put: Effect.fnUntraced(function* (input, options) {
        const fields = yield* decodePut(input)
        const { expectedVersion } = yield* decodeUpdateOptions(options)
        const value = JSON.stringify(fields.value)
        while (true) {
          const current = yield* driver.get(fields.agentId, fields.key)
          const now = yield* Clock.currentTimeMillis
          const live = current !== undefined && !isExpired(current.expiresAt, now) ? current : undefined
          const actual = live?.version ?? 0
          if (expectedVersion !== undefined && expectedVersion !== actual) {
            return yield* new Conflict({
              entity,
              id: `${fields.agentId}/${fields.key}`,
              expected: expectedVersion,
              actual
            })
          }
          const row: MemoryRecordRow = {
            id: live?.id ?? uuidv7At(now),
            agentId: fields.agentId,
            kind: fields.kind ?? "long_term",
            key: fields.key,
            value,
            expiresAt: yield* expiresAtFrom(fields.ttl as Duration.DurationInput | undefined),
            createdAt: live?.createdAt ?? now,
            updatedAt: live === undefined ? now : Math.max(now, live.updatedAt),
            version: actual + 1
          }
          const written = current === undefined ? yield* driver.insert(row) : yield* driver.replace(row, current)
          if (written) return decodeRow(row)
        }
      }),
      get: (agentId, key) =>
        Effect.flatMap(find(agentId, key), (record) =>
          record === undefined ? Effect.fail(new NotFound({ entity, id: `${agentId}/${key}` })) : Effect.succeed(record)
        ),
      find: (agentId, key) => Effect.map(find(agentId, key), Option.fromNullable),
      list: Effect.fnUntraced(function* (agentId, input) {
        const agent = yield* checkPart(agentId, "agentId")
        const options = yield* decodeList(input)
        const query = yield* toPageQuery(entity, options)
        if (agent === undefined) return toPage([], query, decodeRow)
        const now = yield* Clock.currentTimeMillis
        const rows = yield* driver.list(agent, options, now, query)
        return toPage(rows, query, decodeRow)
      }),
      delete: (agentId, key) =>
        Effect.flatMap(checkAddress(agentId, key), (address) =>
          address === undefined ? Effect.void : driver.delete(address.agentId, address.key)
        ),
      deleteExpired: Effect.fnUntraced(function* (options) {
        const { batch } = yield* decodeDeleteExpired(options)
        return yield* driver.deleteExpired(yield* Clock.currentTimeMillis, batch ?? 1000)
      })
    })
  )
}
