/**
 * The memory tier stores: the hot tier (`MemoryMessageStore`, recent messages
 * of a conversation), the warm tier (`SummaryStore`, summaries of a message
 * `seq` range), the cold tier (`FactStore`, key facts with importance and the
 * ids of their source messages), `MentalModelStore` (named models, every
 * version kept) and `TierMetadataStore` (per item: tier, importance,
 * authority, last access and access count).
 *
 * Text is embedded through the `Embeddings` service when an item is written;
 * each item keeps its float32 vector and the embedding model's name beside
 * it, and `search(text)` is an exact cosine scan over the items embedded by
 * the same model (narrowed to one conversation by the backend first). Deleting
 * an item, a conversation's items or expired messages deletes their tier
 * metadata in the same atomic step: nothing is orphaned.
 */
import { Clock, Context, Duration, Effect, Option, Schema } from "effect"
import { bytesToFloat32, float32ToBytes } from "./Binary.ts"
import { Embeddings } from "./Embeddings.ts"
import { Conflict, InvalidInput, NotFound, StorageError } from "./Errors.ts"
import { expiresAtFrom, isExpired } from "./Expiry.ts"
import { uuidv7At } from "./Id.ts"
import { JsonObject, Text } from "./Json.ts"
import { type Keyset, type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, checkId, decodeInput, decodeOptions, UpdateOptions, updateVersioned } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { MemoryTtl } from "./AgentMemory.ts"
import { traced } from "./Traced.ts"

// ---------------------------------------------------------------------------
// Shared schemas

const text255 = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** An item id (message, summary, fact, mental model): a non-empty Text up to 255 characters; UUIDv7 when not given. */
export const MemoryItemId = text255
/** A conversation id: a non-empty Text up to 255 characters (any conversation, not only `ConversationStore`'s). */
export const MemoryConversationId = text255

/** The largest content a memory item holds, in UTF-16 code units. */
export const maxMemoryContentLength = 1_000_000

/** Item content: any non-empty string up to `maxMemoryContentLength`, stored verbatim (U+0000 and lone surrogates too). */
export const MemoryContent = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(maxMemoryContentLength))

/** A score or importance in `[0, 1]`. */
export const MemoryImportance = Schema.Number.pipe(Schema.between(0, 1))

/** The memory tiers: `hot` (messages), `warm` (summaries), `cold` (facts) and `mental_model`. */
export const MemoryTier = Schema.Literal("hot", "warm", "cold", "mental_model")
/** A memory tier. */
export type MemoryTier = typeof MemoryTier.Type

/** Every tier, in order. */
export const memoryTiers: ReadonlyArray<MemoryTier> = ["hot", "warm", "cold", "mental_model"]

/** Who vouches for an item: `session` (said in one session), `canonical` (authoritative) or any other Text. */
export const MemoryAuthority = Schema.Union(Schema.Literal("session", "canonical"), text255)
/** An item's authority. */
export type MemoryAuthority = typeof MemoryAuthority.Type

/** The largest `limit` of a search. */
export const maxMemorySearchLimit = 1000

/** Options of `search`: at most `limit` results (1–1,000, default 10) scoring at least `minScore` (−1 to 1). */
export const MemorySearchOptions = Schema.Struct({
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, maxMemorySearchLimit))),
  minScore: Schema.optional(Schema.Number.pipe(Schema.between(-1, 1))),
  conversationId: Schema.optional(MemoryConversationId)
})
/** Options of `search`. */
export type MemorySearchOptions = typeof MemorySearchOptions.Encoded

/** Search text: a non-empty string up to `maxMemoryContentLength`. */
export const MemorySearchText = MemoryContent

/** One search hit: the item and its cosine similarity to the query (higher is closer). */
export interface MemorySearchResult<A> {
  readonly item: A
  readonly score: number
}

/** Options of `MemoryMessageStore.deleteExpired`: at most `batch` (1–10,000, default 1,000) messages per call. */
export const MemoryDeleteExpiredOptions = Schema.Struct({
  batch: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000)))
})
/** Options of `deleteExpired`. */
export type MemoryDeleteExpiredOptions = typeof MemoryDeleteExpiredOptions.Encoded

// ---------------------------------------------------------------------------
// Records

/** A message role. */
export const MemoryRole = Schema.Literal("system", "user", "assistant", "tool")

/** A hot-tier message. `seq` increases per conversation and is never reused (deleted messages leave gaps). */
export const MemoryMessage = Schema.Struct({
  id: MemoryItemId,
  conversationId: MemoryConversationId,
  seq: Schema.Int,
  role: MemoryRole,
  content: Schema.String,
  metadata: JsonObject,
  tokenCount: Schema.optional(Schema.NonNegativeInt),
  expiresAt: Schema.optional(Schema.DateTimeUtcFromNumber),
  createdAt: Schema.DateTimeUtcFromNumber
})
/** A hot-tier message. */
export type MemoryMessage = typeof MemoryMessage.Type

/** Input of `MemoryMessageStore.add`: `ttl` makes the message expire that long after the add (absent: never). */
export const MemoryMessageInput = Schema.Struct({
  id: Schema.optional(MemoryItemId),
  conversationId: MemoryConversationId,
  role: MemoryRole,
  content: MemoryContent,
  metadata: Schema.optional(JsonObject),
  tokenCount: Schema.optional(Schema.NonNegativeInt),
  ttl: Schema.optional(MemoryTtl)
})
/** Input of `MemoryMessageStore.add`. */
export type MemoryMessageInput = typeof MemoryMessageInput.Encoded

/** The largest batch of `addMany`. */
export const maxMemoryBatch = 1000

/** Options of `MemoryMessageStore.list`: paging over live messages by creation, optionally one conversation's. */
export const MemoryMessageListOptions = Schema.Struct({
  ...PageOptions.fields,
  conversationId: Schema.optional(MemoryConversationId)
})
/** Options of `MemoryMessageStore.list`. */
export type MemoryMessageListOptions = typeof MemoryMessageListOptions.Encoded

/** A warm-tier summary of the messages `fromSeq`..`toSeq` (inclusive) of a conversation. */
export const Summary = Schema.Struct({
  id: MemoryItemId,
  conversationId: MemoryConversationId,
  fromSeq: Schema.NonNegativeInt,
  toSeq: Schema.NonNegativeInt,
  content: Schema.String,
  metadata: JsonObject,
  createdAt: Schema.DateTimeUtcFromNumber
})
/** A warm-tier summary. */
export type Summary = typeof Summary.Type

/** Input of `SummaryStore.add`; `fromSeq` ≤ `toSeq` (else `InvalidInput`). */
export const SummaryInput = Schema.Struct({
  id: Schema.optional(MemoryItemId),
  conversationId: MemoryConversationId,
  fromSeq: Schema.NonNegativeInt,
  toSeq: Schema.NonNegativeInt,
  content: MemoryContent,
  metadata: Schema.optional(JsonObject)
})
/** Input of `SummaryStore.add`. */
export type SummaryInput = typeof SummaryInput.Encoded

/** What a fact is: `decision`, `definition`, `requirement`, `preference` or any other Text. */
export const FactKind = Schema.Union(Schema.Literal("decision", "definition", "requirement", "preference"), text255)

/** A cold-tier key fact, with its importance and the ids of the messages it came from. */
export const Fact = Schema.Struct({
  id: MemoryItemId,
  conversationId: MemoryConversationId,
  content: Schema.String,
  kind: Schema.String,
  importance: MemoryImportance,
  sourceMessageIds: Schema.Array(Schema.String),
  metadata: JsonObject,
  createdAt: Schema.DateTimeUtcFromNumber
})
/** A cold-tier fact. */
export type Fact = typeof Fact.Type

/** Input of `FactStore.add`: `kind` defaults to `other`, `importance` to 0.5, `sourceMessageIds` to none. */
export const FactInput = Schema.Struct({
  id: Schema.optional(MemoryItemId),
  conversationId: MemoryConversationId,
  content: MemoryContent,
  kind: Schema.optional(FactKind),
  importance: Schema.optional(MemoryImportance),
  sourceMessageIds: Schema.optional(Schema.Array(MemoryItemId).pipe(Schema.maxItems(maxMemoryBatch))),
  metadata: Schema.optional(JsonObject)
})
/** Input of `FactStore.add`. */
export type FactInput = typeof FactInput.Encoded

/** Options of `SummaryStore.list`: paging, optionally one conversation's. */
export const SummaryListOptions = Schema.Struct({
  ...PageOptions.fields,
  conversationId: Schema.optional(MemoryConversationId)
})
/** Options of `SummaryStore.list`. */
export type SummaryListOptions = typeof SummaryListOptions.Encoded

/** Options of `FactStore.list`: paging, optionally one conversation's, of one kind. */
export const FactListOptions = Schema.Struct({
  ...PageOptions.fields,
  conversationId: Schema.optional(MemoryConversationId),
  kind: Schema.optional(FactKind)
})
/** Options of `FactStore.list`. */
export type FactListOptions = typeof FactListOptions.Encoded

/** A mental model: a named, versioned document (the current version; `history` lists them all). */
export const MentalModel = Schema.Struct({
  id: MemoryItemId,
  name: text255,
  content: Schema.String,
  metadata: JsonObject,
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  version: Schema.Int
})
/** A mental model. */
export type MentalModel = typeof MentalModel.Type

/** One version of a mental model, as `history` returns it. */
export const MentalModelVersion = Schema.Struct({
  modelId: MemoryItemId,
  version: Schema.Int,
  content: Schema.String,
  metadata: JsonObject,
  createdAt: Schema.DateTimeUtcFromNumber
})
/** One version of a mental model. */
export type MentalModelVersion = typeof MentalModelVersion.Type

/** Input of `MentalModelStore.add`; `name` is unique. */
export const MentalModelInput = Schema.Struct({
  id: Schema.optional(MemoryItemId),
  name: text255,
  content: MemoryContent,
  metadata: Schema.optional(JsonObject)
})
/** Input of `MentalModelStore.add`. */
export type MentalModelInput = typeof MentalModelInput.Encoded

/** A patch of `MentalModelStore.update`: a new content and/or metadata (a new version either way). */
export const MentalModelPatch = Schema.Struct({
  content: Schema.optional(MemoryContent),
  metadata: Schema.optional(JsonObject)
})
/** A patch of `MentalModelStore.update`. */
export type MentalModelPatch = typeof MentalModelPatch.Encoded

/**
 * An item's tier metadata. `version` counts updates (tier, importance, authority); `recordAccess` moves
 * `accessCount` and `lastAccessed` without changing it.
 */
export const TierMetadata = Schema.Struct({
  itemId: MemoryItemId,
  tier: MemoryTier,
  importance: MemoryImportance,
  authority: MemoryAuthority,
  accessCount: Schema.NonNegativeInt,
  lastAccessed: Schema.DateTimeUtcFromNumber,
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  version: Schema.Int
})
/** An item's tier metadata. */
export type TierMetadata = typeof TierMetadata.Type

/** Input of `TierMetadataStore.add`: `tier` defaults to `hot`, `importance` to 0.5, `authority` to `session`. */
export const TierMetadataInput = Schema.Struct({
  itemId: MemoryItemId,
  tier: Schema.optional(MemoryTier),
  importance: Schema.optional(MemoryImportance),
  authority: Schema.optional(MemoryAuthority)
})
/** Input of `TierMetadataStore.add`. */
export type TierMetadataInput = typeof TierMetadataInput.Encoded

/** A patch of `TierMetadataStore.update`. */
export const TierMetadataPatch = Schema.Struct({
  tier: Schema.optional(MemoryTier),
  importance: Schema.optional(MemoryImportance),
  authority: Schema.optional(MemoryAuthority)
})
/** A patch of `TierMetadataStore.update`. */
export type TierMetadataPatch = typeof TierMetadataPatch.Encoded

const ItemIds = Schema.Array(Schema.String).pipe(Schema.maxItems(maxMemoryBatch))

// ---------------------------------------------------------------------------
// Tags

type Errors = InvalidInput | StorageError

/** The hot tier: recent messages, embedded on write, searchable by text. */
export class MemoryMessageStore extends Context.Tag("effect-agent-stores/MemoryMessageStore")<
  MemoryMessageStore,
  {
    /** Adds a message with the conversation's next `seq`; `Conflict` (`reason: "exists"`) when its id is taken. */
    readonly add: (input: MemoryMessageInput) => Effect.Effect<MemoryMessage, Errors | Conflict>
    /** Adds messages in order, all or nothing (one `Conflict` writes none); up to 1,000. */
    readonly addMany: (
      inputs: ReadonlyArray<MemoryMessageInput>
    ) => Effect.Effect<ReadonlyArray<MemoryMessage>, Errors | Conflict>
    /** The live message `id`, or `NotFound` (also once it has expired). */
    readonly get: (id: string) => Effect.Effect<MemoryMessage, NotFound | Errors>
    /** The live message `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<MemoryMessage>, Errors>
    /** A conversation's live messages in `seq` order (`order: "desc"` for newest first). */
    readonly listByConversation: (
      conversationId: string,
      options?: PageOptions
    ) => Effect.Effect<Page<MemoryMessage>, Errors>
    /** Live messages oldest first by `(createdAt, id)` (`order: "desc"` for newest first), optionally of one conversation. */
    readonly list: (options?: MemoryMessageListOptions) => Effect.Effect<Page<MemoryMessage>, Errors>
    /** The live messages closest to `text` (cosine), best first, ties by id; optionally in one conversation. */
    readonly search: (
      text: string,
      options?: MemorySearchOptions
    ) => Effect.Effect<ReadonlyArray<MemorySearchResult<MemoryMessage>>, Errors>
    /** Deletes a message and its tier metadata; `false` when there was none. */
    readonly delete: (id: string) => Effect.Effect<boolean, Errors>
    /** Deletes a conversation's messages and their tier metadata; returns how many messages. */
    readonly deleteByConversation: (conversationId: string) => Effect.Effect<number, Errors>
    /** Deletes up to `batch` messages expired at `Clock` time (and their tier metadata); returns how many. */
    readonly deleteExpired: (options?: MemoryDeleteExpiredOptions) => Effect.Effect<number, Errors>
  }
>() {}

/** The warm tier: summaries of message ranges, embedded on write, searchable by text. */
export class SummaryStore extends Context.Tag("effect-agent-stores/SummaryStore")<
  SummaryStore,
  {
    /** Adds a summary; `Conflict` (`reason: "exists"`) when its id is taken. */
    readonly add: (input: SummaryInput) => Effect.Effect<Summary, Errors | Conflict>
    /** Adds summaries in order, all or nothing (one `Conflict` writes none); up to 1,000. */
    readonly addMany: (inputs: ReadonlyArray<SummaryInput>) => Effect.Effect<ReadonlyArray<Summary>, Errors | Conflict>
    /** The summary `id`, or `NotFound`. */
    readonly get: (id: string) => Effect.Effect<Summary, NotFound | Errors>
    /** The summary `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Summary>, Errors>
    /** Summaries oldest first, optionally of one conversation. */
    readonly list: (options?: SummaryListOptions) => Effect.Effect<Page<Summary>, Errors>
    /** The summaries closest to `text`, best first. */
    readonly search: (
      text: string,
      options?: MemorySearchOptions
    ) => Effect.Effect<ReadonlyArray<MemorySearchResult<Summary>>, Errors>
    /** Deletes a summary and its tier metadata; `false` when there was none. */
    readonly delete: (id: string) => Effect.Effect<boolean, Errors>
    /** Deletes a conversation's summaries and their tier metadata; returns how many. */
    readonly deleteByConversation: (conversationId: string) => Effect.Effect<number, Errors>
  }
>() {}

/** The cold tier: key facts with importance and source message ids, embedded on write, searchable by text. */
export class FactStore extends Context.Tag("effect-agent-stores/FactStore")<
  FactStore,
  {
    /** Adds a fact; `Conflict` (`reason: "exists"`) when its id is taken. */
    readonly add: (input: FactInput) => Effect.Effect<Fact, Errors | Conflict>
    /** Adds facts in order, all or nothing (one `Conflict` writes none); up to 1,000. */
    readonly addMany: (inputs: ReadonlyArray<FactInput>) => Effect.Effect<ReadonlyArray<Fact>, Errors | Conflict>
    /** The fact `id`, or `NotFound`. */
    readonly get: (id: string) => Effect.Effect<Fact, NotFound | Errors>
    /** The fact `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Fact>, Errors>
    /** Facts oldest first, optionally of one conversation and kind. */
    readonly list: (options?: FactListOptions) => Effect.Effect<Page<Fact>, Errors>
    /** The facts closest to `text`, best first. */
    readonly search: (
      text: string,
      options?: MemorySearchOptions
    ) => Effect.Effect<ReadonlyArray<MemorySearchResult<Fact>>, Errors>
    /** Deletes a fact and its tier metadata; `false` when there was none. */
    readonly delete: (id: string) => Effect.Effect<boolean, Errors>
    /** Deletes a conversation's facts and their tier metadata; returns how many. */
    readonly deleteByConversation: (conversationId: string) => Effect.Effect<number, Errors>
  }
>() {}

/** Named mental models with every version kept; the current version is searchable by text. */
export class MentalModelStore extends Context.Tag("effect-agent-stores/MentalModelStore")<
  MentalModelStore,
  {
    /** Adds a model at version 1; `Conflict` (`reason: "exists"`) when its id or name is taken. */
    readonly add: (input: MentalModelInput) => Effect.Effect<MentalModel, Errors | Conflict>
    /**
     * Writes the next version (re-embedded; the previous one stays in `history`); `Conflict` if
     * `expectedVersion` is stale. Without it never `Conflict` and no update is lost.
     */
    readonly update: (
      id: string,
      patch: MentalModelPatch,
      options?: UpdateOptions
    ) => Effect.Effect<MentalModel, NotFound | Conflict | Errors>
    /** The model `id` (current version), or `NotFound`. */
    readonly get: (id: string) => Effect.Effect<MentalModel, NotFound | Errors>
    /** The model named `name`, or `NotFound`. */
    readonly getByName: (name: string) => Effect.Effect<MentalModel, NotFound | Errors>
    /** Models oldest first. */
    readonly list: (options?: PageOptions) => Effect.Effect<Page<MentalModel>, Errors>
    /** Every version of model `id`, oldest first; `NotFound` for an unknown model. */
    readonly history: (id: string) => Effect.Effect<ReadonlyArray<MentalModelVersion>, NotFound | Errors>
    /** The models whose current version is closest to `text`, best first (`conversationId` is ignored). */
    readonly search: (
      text: string,
      options?: MemorySearchOptions
    ) => Effect.Effect<ReadonlyArray<MemorySearchResult<MentalModel>>, Errors>
    /** Deletes a model, its history and its tier metadata; `false` when there was none. */
    readonly delete: (id: string) => Effect.Effect<boolean, Errors>
  }
>() {}

/** Per-item tier metadata: tier, importance, authority, and access statistics. */
export class TierMetadataStore extends Context.Tag("effect-agent-stores/TierMetadataStore")<
  TierMetadataStore,
  {
    /** Adds an item's metadata (`lastAccessed` = now, `accessCount` 0); `Conflict` when the item has some. */
    readonly add: (input: TierMetadataInput) => Effect.Effect<TierMetadata, Errors | Conflict>
    /** Adds several, all or nothing; up to 1,000. */
    readonly addMany: (
      inputs: ReadonlyArray<TierMetadataInput>
    ) => Effect.Effect<ReadonlyArray<TierMetadata>, Errors | Conflict>
    /** The metadata of `itemId`, or `NotFound`. */
    readonly get: (itemId: string) => Effect.Effect<TierMetadata, NotFound | Errors>
    /** The metadata of those of `itemIds` that have some, in the order given (duplicates once); up to 1,000 ids. */
    readonly getMany: (itemIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<TierMetadata>, Errors>
    /** Applies a patch and bumps `version`; `Conflict` if `expectedVersion` is stale. */
    readonly update: (
      itemId: string,
      patch: TierMetadataPatch,
      options?: UpdateOptions
    ) => Effect.Effect<TierMetadata, NotFound | Conflict | Errors>
    /** Deletes an item's metadata; `false` when there was none. */
    readonly delete: (itemId: string) => Effect.Effect<boolean, Errors>
    /** The items of `tier`, oldest first. */
    readonly listByTier: (tier: MemoryTier, options?: PageOptions) => Effect.Effect<Page<TierMetadata>, Errors>
    /** How many items have metadata (of `tier`, when given). */
    readonly count: (tier?: MemoryTier) => Effect.Effect<number, Errors>
    /** How many items each tier holds. */
    readonly countByTier: () => Effect.Effect<Readonly<Record<MemoryTier, number>>, Errors>
    /**
     * Atomically adds one access to each known item of `itemIds` (each id once per call) and sets `lastAccessed`
     * to `Clock` time (never back); concurrent calls lose no access. Returns how many items were touched.
     */
    readonly recordAccess: (itemIds: ReadonlyArray<string>) => Effect.Effect<number, Errors>
  }
>() {}

// ---------------------------------------------------------------------------
// Rows and drivers

/** The embedding of an item as stored: the model's name and the vector's little-endian float32 bytes. */
export interface MemoryEmbedding {
  readonly model: string
  readonly vector: Uint8Array
}

/** An item's id and vector, as a scan reads them. */
export interface MemoryCandidate {
  readonly id: string
  readonly vector: Uint8Array
}

/** A message as a driver stores it: content and metadata as JSON text, times in epoch milliseconds. */
export interface MemoryMessageRow {
  readonly id: string
  readonly conversationId: string
  readonly seq: number
  readonly role: string
  readonly content: string
  readonly metadata: string
  readonly tokenCount: number | null
  readonly expiresAt: number | null
  readonly createdAt: number
}

/** A message to insert: the driver assigns `seq`. */
export type NewMemoryMessageRow = Omit<MemoryMessageRow, "seq"> & MemoryEmbedding

/** What a backend implements for `MemoryMessageStore`. */
export interface MemoryMessageDriver {
  /** Inserts `rows` in order, each with its conversation's next `seq`, all or nothing; `"duplicate"` if an id is taken. */
  readonly insert: (
    rows: ReadonlyArray<NewMemoryMessageRow>
  ) => Effect.Effect<ReadonlyArray<number> | "duplicate", StorageError>
  /** The stored messages with these ids (expired or not), in any order. */
  readonly getMany: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<MemoryMessageRow>, StorageError>
  /** One page of a conversation's messages not expired at `now`, ordered by `(seq, id)`. */
  readonly list: (
    conversationId: string,
    now: number,
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<MemoryMessageRow>, StorageError>
  /** One page of the messages not expired at `now` (of one conversation when given), ordered by `(createdAt, id)`. */
  readonly listAll: (
    conversationId: string | undefined,
    now: number,
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<MemoryMessageRow>, StorageError>
  /** The vectors of the messages embedded by `model`, not expired at `now`, of one conversation when given. */
  readonly candidates: (
    conversationId: string | undefined,
    model: string,
    now: number
  ) => Effect.Effect<ReadonlyArray<MemoryCandidate>, StorageError>
  /** Deletes a message and its tier metadata. */
  readonly delete: (id: string) => Effect.Effect<boolean, StorageError>
  /** Deletes a conversation's messages and their tier metadata; returns how many messages. */
  readonly deleteByConversation: (conversationId: string) => Effect.Effect<number, StorageError>
  /** Deletes up to `batch` messages expired at `now`, soonest first, with their tier metadata; returns how many. */
  readonly deleteExpired: (now: number, batch: number) => Effect.Effect<number, StorageError>
}

/** A summary as a driver stores it. */
export interface SummaryRow {
  readonly id: string
  readonly conversationId: string
  readonly fromSeq: number
  readonly toSeq: number
  readonly content: string
  readonly metadata: string
  readonly createdAt: number
}

/** A fact as a driver stores it: source message ids as a JSON array. */
export interface FactRow {
  readonly id: string
  readonly conversationId: string
  readonly content: string
  readonly kind: string
  readonly importance: number
  readonly sourceMessageIds: string
  readonly metadata: string
  readonly createdAt: number
}

/** The filters of `list` of summaries and facts, as a driver receives them. */
export interface MemoryItemFilter {
  readonly conversationId?: string | undefined
  readonly kind?: string | undefined
}

/** What a backend implements for a store of conversation items (summaries, facts). */
export interface MemoryItemDriver<Row> {
  /** Inserts items, all or nothing; `false` when an id is taken. */
  readonly insert: (rows: ReadonlyArray<Row & MemoryEmbedding>) => Effect.Effect<boolean, StorageError>
  readonly getMany: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Row>, StorageError>
  /** One page ordered by `(createdAt, id)`. */
  readonly list: (filter: MemoryItemFilter, page: PageQuery) => Effect.Effect<ReadonlyArray<Row>, StorageError>
  readonly candidates: (
    conversationId: string | undefined,
    model: string
  ) => Effect.Effect<ReadonlyArray<MemoryCandidate>, StorageError>
  /** Deletes an item and its tier metadata. */
  readonly delete: (id: string) => Effect.Effect<boolean, StorageError>
  /** Deletes a conversation's items and their tier metadata; returns how many items. */
  readonly deleteByConversation: (conversationId: string) => Effect.Effect<number, StorageError>
}

/** What a backend implements for `SummaryStore`. */
export type SummaryDriver = MemoryItemDriver<SummaryRow>
/** What a backend implements for `FactStore`. */
export type FactDriver = MemoryItemDriver<FactRow>

/** A mental model as a driver stores it. */
export interface MentalModelRow {
  readonly id: string
  readonly name: string
  readonly content: string
  readonly metadata: string
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** A version of a mental model as a driver stores it. */
export interface MentalModelVersionRow {
  readonly modelId: string
  readonly version: number
  readonly content: string
  readonly metadata: string
  readonly createdAt: number
}

/** What a backend implements for `MentalModelStore`. */
export interface MentalModelDriver {
  /** Inserts a model and its version 1; `false` when its id or name is taken. */
  readonly insert: (row: MentalModelRow & MemoryEmbedding) => Effect.Effect<boolean, StorageError>
  /** Writes `row` (the next version, also appended to the history) if the model is still at `previous`. */
  readonly replace: (row: MentalModelRow & MemoryEmbedding, previous: number) => Effect.Effect<boolean, StorageError>
  readonly get: (id: string) => Effect.Effect<MentalModelRow | undefined, StorageError>
  readonly getByName: (name: string) => Effect.Effect<MentalModelRow | undefined, StorageError>
  readonly getMany: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<MentalModelRow>, StorageError>
  /** One page ordered by `(createdAt, id)`. */
  readonly list: (page: PageQuery) => Effect.Effect<ReadonlyArray<MentalModelRow>, StorageError>
  /** Every version of a model, oldest first. */
  readonly history: (id: string) => Effect.Effect<ReadonlyArray<MentalModelVersionRow>, StorageError>
  readonly candidates: (model: string) => Effect.Effect<ReadonlyArray<MemoryCandidate>, StorageError>
  /** Deletes a model, its history and its tier metadata. */
  readonly delete: (id: string) => Effect.Effect<boolean, StorageError>
}

/** Tier metadata as a driver stores it. */
export interface TierMetadataRow {
  readonly itemId: string
  readonly tier: string
  readonly importance: number
  readonly authority: string
  readonly accessCount: number
  readonly lastAccessed: number
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** What a backend implements for `TierMetadataStore`. */
export interface TierMetadataDriver {
  /** Inserts rows, all or nothing; `false` when an item id is taken. */
  readonly insert: (rows: ReadonlyArray<TierMetadataRow>) => Effect.Effect<boolean, StorageError>
  readonly getMany: (itemIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<TierMetadataRow>, StorageError>
  /**
   * Writes tier, importance, authority, `updatedAt` and `version` of `row` if the stored version is still
   * `previous`; returns the row as stored (current access statistics), `undefined` when it lost a race.
   */
  readonly update: (row: TierMetadataRow, previous: number) => Effect.Effect<TierMetadataRow | undefined, StorageError>
  readonly delete: (itemId: string) => Effect.Effect<boolean, StorageError>
  /** One page of a tier ordered by `(createdAt, itemId)`. */
  readonly listByTier: (tier: string, page: PageQuery) => Effect.Effect<ReadonlyArray<TierMetadataRow>, StorageError>
  readonly count: (tier: string | undefined) => Effect.Effect<number, StorageError>
  /** `[tier, count]` for each tier holding items. */
  readonly countByTier: () => Effect.Effect<ReadonlyArray<readonly [string, number]>, StorageError>
  /** Adds one access to each stored item of `itemIds` (distinct), `lastAccessed` = max(it, `now`); returns how many. */
  readonly recordAccess: (itemIds: ReadonlyArray<string>, now: number) => Effect.Effect<number, StorageError>
}

// ---------------------------------------------------------------------------
// Vectors

/** A float32 view of stored vector bytes: no copy when aligned (the host is little-endian), a decoded copy otherwise. */
const vectorOf = (bytes: Uint8Array): Float32Array =>
  bytes.byteOffset % 4 === 0 && bytes.byteLength % 4 === 0
    ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
    : bytesToFloat32(bytes)

/** The cosine similarity of `a` and `b` (0 when either is all zeros). */
const cosine = (a: Float32Array, b: Float32Array): number => {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    dot += x * y
    na += x * x
    nb += y * y
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb)
}

/** The `limit` best candidates scoring at least `minScore`, by score descending then id ascending (exact scan). */
const rank = (
  query: Float32Array,
  candidates: ReadonlyArray<MemoryCandidate>,
  limit: number,
  minScore: number
): Array<{ readonly id: string; readonly score: number }> => {
  const hits: Array<{ readonly id: string; readonly score: number }> = []
  for (const candidate of candidates) {
    const vector = vectorOf(candidate.vector)
    if (vector.length !== query.length) continue
    const score = cosine(query, vector)
    if (score >= minScore) hits.push({ id: candidate.id, score })
  }
  hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return hits.slice(0, limit)
}

/** Embeds `texts` with the service, checking it returned one finite vector of its dimension per text. */
const embedAll = (embeddings: Embeddings["Type"], texts: ReadonlyArray<string>) =>
  Effect.flatMap(embeddings.embed(texts), (vectors) => {
    const bad =
      vectors.length !== texts.length ||
      vectors.some(
        (v) => !(v instanceof Float32Array) || v.length !== embeddings.dimension || !v.every(Number.isFinite)
      )
    return bad
      ? Effect.fail(
          new StorageError({
            backend: "embeddings",
            operation: "embed",
            cause: `${embeddings.model} returned ${vectors.length} vectors for ${texts.length} texts, not all of dimension ${embeddings.dimension}`
          })
        )
      : Effect.succeed(vectors)
  })

const embedded = (embeddings: Embeddings["Type"], vector: Float32Array): MemoryEmbedding => ({
  model: embeddings.model,
  vector: float32ToBytes(vector)
})

const decodeSearchText = (entity: string) => {
  const decode = decodeInput(entity, MemorySearchText)
  return (text: unknown) => decode(text, ["text"])
}

/**
 * The search every store shares: embed the query, scan the candidates the driver reads, then read the winners'
 * rows (a winner deleted meanwhile is skipped).
 */
const searchWith = <Row extends { readonly id: string }, A>(options: {
  readonly entity: string
  readonly embeddings: Embeddings["Type"]
  readonly candidates: (
    conversationId: string | undefined
  ) => Effect.Effect<ReadonlyArray<MemoryCandidate>, StorageError>
  readonly rows: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Row>, StorageError>
  readonly decode: (row: Row) => A | undefined
}) => {
  const decodeText = decodeSearchText(options.entity)
  const decodeSearch = decodeOptions(options.entity, MemorySearchOptions)
  return (text: unknown, input: unknown): Effect.Effect<ReadonlyArray<MemorySearchResult<A>>, Errors> =>
    Effect.gen(function* () {
      const query = yield* decodeText(text)
      const search = yield* decodeSearch(input)
      const [vector] = yield* embedAll(options.embeddings, [query])
      const candidates = yield* options.candidates(search.conversationId)
      const top = rank(vector!, candidates, search.limit ?? 10, search.minScore ?? -1)
      if (top.length === 0) return []
      const rows = new Map((yield* options.rows(top.map((hit) => hit.id))).map((row) => [row.id, row]))
      const results: Array<MemorySearchResult<A>> = []
      for (const hit of top) {
        const row = rows.get(hit.id)
        const item = row === undefined ? undefined : options.decode(row)
        if (item !== undefined) results.push({ item, score: hit.score })
      }
      return results
    })
}

// ---------------------------------------------------------------------------
// Shared pieces of the cores

const Batch = Schema.Array(Schema.Unknown).pipe(Schema.maxItems(maxMemoryBatch))

/**
 * Decodes a batch: an array of at most `maxMemoryBatch` items, each decoded by `decodeItem` (the kernel's rules for a
 * struct: a plain object, nothing hostile), its issues placed at its index.
 */
const decodeBatch = <A>(
  entity: string,
  decodeItem: (input: unknown, path?: ReadonlyArray<string | number>) => Effect.Effect<A, InvalidInput>
) => {
  const decodeArray = decodeInput(entity, Batch)
  return (inputs: unknown): Effect.Effect<Array<A>, InvalidInput> =>
    Effect.flatMap(decodeArray(inputs), (items) => Effect.forEach(items, (item, i) => decodeItem(item, [i])))
}

const exists = (entity: string, id: string) => new Conflict({ entity, id, expected: 0, actual: 1, reason: "exists" })

const checkConversation = (entity: string, conversationId: unknown) =>
  Effect.mapError(checkId(entity, conversationId), (error) =>
    InvalidInput.single(entity, error.issues[0]?.message ?? "is invalid", ["conversationId"])
  )

/** Looks one row up by id with the kernel's id rule, decoded, or `undefined`. */
const findOne = <Row, A>(
  entity: string,
  id: unknown,
  rows: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Row>, StorageError>,
  decode: (row: Row) => A | undefined
): Effect.Effect<A | undefined, Errors> =>
  byId(entity, id, undefined, (key) =>
    Effect.map(rows([key]), (found) => (found[0] === undefined ? undefined : decode(found[0])))
  )

const orNotFound =
  <A>(entity: string, id: unknown) =>
  (value: A | undefined) =>
    value === undefined ? Effect.fail(new NotFound({ entity, id: String(id) })) : Effect.succeed(value)

const deleteById = (entity: string, id: unknown, remove: (id: string) => Effect.Effect<boolean, StorageError>) =>
  byId(entity, id, false, remove)

const deleteConversation = (
  entity: string,
  conversationId: unknown,
  remove: (conversationId: string) => Effect.Effect<number, StorageError>
) =>
  Effect.flatMap(checkConversation(entity, conversationId), (id) => (id === undefined ? Effect.succeed(0) : remove(id)))

const parseObject = (text: string): JsonObject => JSON.parse(text)

// ---------------------------------------------------------------------------
// MemoryMessageStore

const messageEntity = "MemoryMessage"

const decodeMessageRow = (row: MemoryMessageRow): MemoryMessage => {
  const message: { -readonly [K in keyof MemoryMessage]: MemoryMessage[K] } = {
    id: row.id,
    conversationId: row.conversationId,
    seq: row.seq,
    role: row.role as MemoryMessage["role"],
    content: JSON.parse(row.content),
    metadata: parseObject(row.metadata),
    createdAt: utcFromMillis(row.createdAt)
  }
  if (row.tokenCount !== null) message.tokenCount = row.tokenCount
  if (row.expiresAt !== null) message.expiresAt = utcFromMillis(row.expiresAt)
  return message
}

const decodeMessageInput = decodeInput(messageEntity, MemoryMessageInput)
const decodeMessageInputs = decodeBatch(messageEntity, decodeMessageInput)
const decodeMessagePage = decodeOptions(messageEntity, PageOptions)
const decodeMessageList = decodeOptions(messageEntity, MemoryMessageListOptions)
const decodeDeleteExpired = decodeOptions(messageEntity, MemoryDeleteExpiredOptions)

/** Builds a `MemoryMessageStore` over a driver and an embedder: validation, ids, clock, embedding and encoding. */
export const makeMemoryMessageStore = (driver: MemoryMessageDriver, embeddings: Embeddings["Type"]) => {
  const live = (now: number) => (row: MemoryMessageRow) =>
    isExpired(row.expiresAt, now) ? undefined : decodeMessageRow(row)
  const addAll = (inputs: ReadonlyArray<typeof MemoryMessageInput.Type>) =>
    Effect.gen(function* () {
      if (inputs.length === 0) return []
      const vectors = yield* embedAll(
        embeddings,
        inputs.map((input) => input.content)
      )
      const now = yield* Clock.currentTimeMillis
      const rows: Array<NewMemoryMessageRow> = []
      for (const [i, input] of inputs.entries()) {
        rows.push({
          id: input.id ?? uuidv7At(now),
          conversationId: input.conversationId,
          role: input.role,
          content: JSON.stringify(input.content),
          metadata: JSON.stringify(input.metadata ?? {}),
          tokenCount: input.tokenCount ?? null,
          expiresAt: input.ttl === undefined ? null : yield* expiresAtFrom(input.ttl as Duration.DurationInput),
          createdAt: now,
          model: embeddings.model,
          vector: float32ToBytes(vectors[i]!)
        })
      }
      const seqs = yield* driver.insert(rows)
      if (seqs === "duplicate") {
        const taken = new Set((yield* driver.getMany(rows.map((row) => row.id))).map((row) => row.id))
        const seen = new Set<string>()
        const id = rows.find((row) => taken.has(row.id) || seen.has(row.id) || (seen.add(row.id), false))?.id
        return yield* exists(messageEntity, id ?? rows[0]!.id)
      }
      // decodeMessageRow reads its own fields (not the embedding); not `{ ...row, seq }`, which costs ~1 µs a row.
      return rows.map((row, i) => decodeMessageRow(Object.assign({}, row, { seq: seqs[i]! })))
    })
  const find = (id: unknown) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => findOne(messageEntity, id, driver.getMany, live(now)))

  return traced(
    "MemoryMessageStore",
    driver,
    MemoryMessageStore.of({
      add: (input) =>
        Effect.flatMap(decodeMessageInput(input), (fields) => Effect.map(addAll([fields]), (added) => added[0]!)),
      addMany: (inputs) => Effect.flatMap(decodeMessageInputs(inputs), addAll),
      get: (id) => Effect.flatMap(find(id), orNotFound(messageEntity, id)),
      find: (id) => Effect.map(find(id), Option.fromNullable),
      listByConversation: Effect.fnUntraced(function* (conversationId, input) {
        const conversation = yield* checkConversation(messageEntity, conversationId)
        const options = yield* decodeMessagePage(input)
        const query = yield* toPageQuery(messageEntity, options, ["number", "string"])
        const keyOf = (row: MemoryMessageRow): Keyset => [row.seq, row.id]
        if (conversation === undefined) return toPage([], query, decodeMessageRow, keyOf)
        const rows = yield* driver.list(conversation, yield* Clock.currentTimeMillis, query)
        return toPage(rows, query, decodeMessageRow, keyOf)
      }),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeMessageList(input)
        const query = yield* toPageQuery(messageEntity, options)
        const rows = yield* driver.listAll(options.conversationId, yield* Clock.currentTimeMillis, query)
        return toPage(rows, query, decodeMessageRow)
      }),
      search: (text, options) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          searchWith({
            entity: messageEntity,
            embeddings,
            candidates: (conversationId) => driver.candidates(conversationId, embeddings.model, now),
            rows: driver.getMany,
            decode: live(now)
          })(text, options)
        ),
      delete: (id) => deleteById(messageEntity, id, driver.delete),
      deleteByConversation: (conversationId) =>
        deleteConversation(messageEntity, conversationId, driver.deleteByConversation),
      deleteExpired: Effect.fnUntraced(function* (options) {
        const { batch } = yield* decodeDeleteExpired(options)
        return yield* driver.deleteExpired(yield* Clock.currentTimeMillis, batch ?? 1000)
      })
    })
  )
}

// ---------------------------------------------------------------------------
// SummaryStore and FactStore

/** The core of a store of conversation items: add, get, list, search, delete. */
const makeItemStore = <
  Input extends { readonly id?: string | undefined; readonly content: string },
  Row extends { readonly id: string; readonly createdAt: number },
  A
>(spec: {
  readonly entity: string
  readonly input: Schema.Schema<Input, any>
  readonly listOptions: Schema.Schema<PageOptions & MemoryItemFilter, any>
  /** A rule across fields: where and how a decoded input breaks it, if it does. */
  readonly check?: (input: Input) => { readonly path: ReadonlyArray<string>; readonly rule: string } | undefined
  readonly row: (input: Input, id: string, now: number) => Row
  readonly decode: (row: Row) => A
  readonly driver: MemoryItemDriver<Row>
  readonly embeddings: Embeddings["Type"]
}) => {
  const { driver, embeddings, entity } = spec
  const decodeNew = decodeInput(entity, spec.input)
  const decodeList = decodeOptions(entity, spec.listOptions)
  const find = (id: unknown) => findOne(entity, id, driver.getMany, spec.decode)
  const decodeOne = (input: unknown, path: ReadonlyArray<string | number> = []) =>
    Effect.flatMap(decodeNew(input, path), (fields) => {
      const broken = spec.check?.(fields)
      return broken === undefined
        ? Effect.succeed(fields)
        : Effect.fail(InvalidInput.single(entity, broken.rule, [...path, ...broken.path]))
    })
  const decodeMany = decodeBatch(entity, decodeOne)
  const addAll = (all: ReadonlyArray<Input>) =>
    Effect.gen(function* () {
      if (all.length === 0) return []
      const vectors = yield* embedAll(
        embeddings,
        all.map((fields) => fields.content)
      )
      const now = yield* Clock.currentTimeMillis
      const rows = all.map((fields) => spec.row(fields, fields.id ?? uuidv7At(now), now))
      const seen = new Set<string>()
      const repeated = rows.find((row) => seen.has(row.id) || (seen.add(row.id), false))
      if (repeated !== undefined) return yield* exists(entity, repeated.id)
      if (yield* driver.insert(rows.map((row, i) => Object.assign({}, row, embedded(embeddings, vectors[i]!))))) {
        return rows.map(spec.decode)
      }
      const taken = new Set((yield* driver.getMany(rows.map((row) => row.id))).map((row) => row.id))
      return yield* exists(entity, rows.find((row) => taken.has(row.id))?.id ?? rows[0]!.id)
    })
  return {
    add: (input: unknown) =>
      Effect.flatMap(decodeOne(input), (fields) => Effect.map(addAll([fields]), (added) => added[0]!)),
    addMany: (inputs: unknown) => Effect.flatMap(decodeMany(inputs), addAll),
    get: (id: unknown) => Effect.flatMap(find(id), orNotFound<A>(entity, id)),
    find: (id: unknown) => Effect.map(find(id), Option.fromNullable),
    list: Effect.fnUntraced(function* (input: unknown) {
      const options = yield* decodeList(input)
      const query = yield* toPageQuery(entity, options)
      return toPage(yield* driver.list(options, query), query, spec.decode)
    }),
    search: searchWith({
      entity,
      embeddings,
      candidates: (conversationId) => driver.candidates(conversationId, embeddings.model),
      rows: driver.getMany,
      decode: spec.decode
    }),
    delete: (id: unknown) => deleteById(entity, id, driver.delete),
    deleteByConversation: (conversationId: unknown) =>
      deleteConversation(entity, conversationId, driver.deleteByConversation)
  }
}

const decodeSummaryRow = (row: SummaryRow): Summary => ({
  id: row.id,
  conversationId: row.conversationId,
  fromSeq: row.fromSeq,
  toSeq: row.toSeq,
  content: JSON.parse(row.content),
  metadata: parseObject(row.metadata),
  createdAt: utcFromMillis(row.createdAt)
})

/** Builds a `SummaryStore` over a driver and an embedder. */
export const makeSummaryStore = (driver: SummaryDriver, embeddings: Embeddings["Type"]) =>
  traced(
    "SummaryStore",
    driver,
    SummaryStore.of(
      makeItemStore({
        entity: "Summary",
        input: SummaryInput,
        listOptions: SummaryListOptions,
        check: (input) => (input.fromSeq <= input.toSeq ? undefined : { path: ["toSeq"], rule: "must be ≥ fromSeq" }),
        row: (input, id, now): SummaryRow => ({
          id,
          conversationId: input.conversationId,
          fromSeq: input.fromSeq,
          toSeq: input.toSeq,
          content: JSON.stringify(input.content),
          metadata: JSON.stringify(input.metadata ?? {}),
          createdAt: now
        }),
        decode: decodeSummaryRow,
        driver,
        embeddings
      })
    )
  )

const decodeFactRow = (row: FactRow): Fact => ({
  id: row.id,
  conversationId: row.conversationId,
  content: JSON.parse(row.content),
  kind: row.kind,
  importance: row.importance,
  sourceMessageIds: JSON.parse(row.sourceMessageIds),
  metadata: parseObject(row.metadata),
  createdAt: utcFromMillis(row.createdAt)
})

/** Builds a `FactStore` over a driver and an embedder. */
export const makeFactStore = (driver: FactDriver, embeddings: Embeddings["Type"]) =>
  traced(
    "FactStore",
    driver,
    FactStore.of(
      makeItemStore({
        entity: "Fact",
        input: FactInput,
        listOptions: FactListOptions,
        row: (input, id, now): FactRow => ({
          id,
          conversationId: input.conversationId,
          content: JSON.stringify(input.content),
          kind: input.kind ?? "other",
          importance: input.importance ?? 0.5,
          sourceMessageIds: JSON.stringify(input.sourceMessageIds ?? []),
          metadata: JSON.stringify(input.metadata ?? {}),
          createdAt: now
        }),
        decode: decodeFactRow,
        driver,
        embeddings
      })
    )
  )

// ---------------------------------------------------------------------------
// MentalModelStore

const modelEntity = "MentalModel"

const decodeModelRow = (row: MentalModelRow): MentalModel => ({
  id: row.id,
  name: row.name,
  content: JSON.parse(row.content),
  metadata: parseObject(row.metadata),
  createdAt: utcFromMillis(row.createdAt),
  updatedAt: utcFromMillis(row.updatedAt),
  version: row.version
})

const decodeVersionRow = (row: MentalModelVersionRow): MentalModelVersion => ({
  modelId: row.modelId,
  version: row.version,
  content: JSON.parse(row.content),
  metadata: parseObject(row.metadata),
  createdAt: utcFromMillis(row.createdAt)
})

const decodeModelInput = decodeInput(modelEntity, MentalModelInput)
const decodeModelPatch = decodeInput(modelEntity, MentalModelPatch)
const decodeModelPage = decodeOptions(modelEntity, PageOptions)
const decodeModelUpdateOptions = decodeOptions(modelEntity, UpdateOptions)
const decodeName = decodeInput(modelEntity, Schema.String)

/** Builds a `MentalModelStore` over a driver and an embedder. */
export const makeMentalModelStore = (driver: MentalModelDriver, embeddings: Embeddings["Type"]) => {
  const find = (id: unknown) =>
    byId(modelEntity, id, undefined, (key) => Effect.map(driver.get(key), (row) => row && decodeModelRow(row)))
  return traced(
    "MentalModelStore",
    driver,
    MentalModelStore.of({
      add: Effect.fnUntraced(function* (input) {
        const fields = yield* decodeModelInput(input)
        const [vector] = yield* embedAll(embeddings, [fields.content])
        const now = yield* Clock.currentTimeMillis
        const row: MentalModelRow = {
          id: fields.id ?? uuidv7At(now),
          name: fields.name,
          content: JSON.stringify(fields.content),
          metadata: JSON.stringify(fields.metadata ?? {}),
          createdAt: now,
          updatedAt: now,
          version: 1
        }
        if (yield* driver.insert(Object.assign({}, row, embedded(embeddings, vector!)))) return decodeModelRow(row)
        const byName = yield* driver.getByName(row.name)
        return yield* exists(modelEntity, byName === undefined ? row.id : row.name)
      }),
      update: Effect.fnUntraced(function* (id, input, options) {
        const key = yield* checkId(modelEntity, id)
        const patch = yield* decodeModelPatch(input)
        const { expectedVersion } = yield* decodeModelUpdateOptions(options)
        if (key === undefined) return yield* new NotFound({ entity: modelEntity, id })
        const content = patch.content === undefined ? undefined : JSON.stringify(patch.content)
        const row = yield* updateVersioned<MentalModelRow & MemoryEmbedding, Errors>({
          entity: modelEntity,
          id: key,
          expectedVersion,
          read: Effect.map(driver.get(key), (row) => row && { ...row, model: "", vector: new Uint8Array() }),
          next: (current) =>
            Effect.gen(function* () {
              const text = patch.content ?? (JSON.parse(current.content) as string)
              const [vector] = yield* embedAll(embeddings, [text])
              const now = yield* Clock.currentTimeMillis
              return {
                ...current,
                content: content ?? current.content,
                metadata: patch.metadata === undefined ? current.metadata : JSON.stringify(patch.metadata),
                updatedAt: Math.max(now, current.updatedAt),
                version: current.version + 1,
                model: embeddings.model,
                vector: float32ToBytes(vector!)
              }
            }),
          write: (next) => Effect.map(driver.replace(next, next.version - 1), (won) => (won ? next : undefined))
        })
        return decodeModelRow(row)
      }),
      get: (id) => Effect.flatMap(find(id), orNotFound(modelEntity, id)),
      getByName: (name) =>
        Effect.flatMap(decodeName(name, ["name"]), (key) =>
          Effect.flatMap(isPossibleName(key) ? driver.getByName(key) : Effect.succeed(undefined), (row) =>
            orNotFound<MentalModel>(modelEntity, key)(row && decodeModelRow(row))
          )
        ),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeModelPage(input)
        const query = yield* toPageQuery(modelEntity, options)
        return toPage(yield* driver.list(query), query, decodeModelRow)
      }),
      history: Effect.fnUntraced(function* (id) {
        const key = yield* checkId(modelEntity, id)
        const rows = key === undefined ? [] : yield* driver.history(key)
        if (rows.length === 0) return yield* new NotFound({ entity: modelEntity, id })
        return rows.map(decodeVersionRow)
      }),
      search: searchWith({
        entity: modelEntity,
        embeddings,
        candidates: () => driver.candidates(embeddings.model),
        rows: driver.getMany,
        decode: decodeModelRow
      }),
      delete: (id) => deleteById(modelEntity, id, driver.delete)
    })
  )
}

const isPossibleName = (name: string) => Schema.is(text255)(name)

// ---------------------------------------------------------------------------
// TierMetadataStore

const tierEntity = "TierMetadata"

const decodeTierRow = (row: TierMetadataRow): TierMetadata => ({
  itemId: row.itemId,
  tier: row.tier as MemoryTier,
  importance: row.importance,
  authority: row.authority,
  accessCount: row.accessCount,
  lastAccessed: utcFromMillis(row.lastAccessed),
  createdAt: utcFromMillis(row.createdAt),
  updatedAt: utcFromMillis(row.updatedAt),
  version: row.version
})

const tierKey = (row: TierMetadataRow): Keyset => [row.createdAt, row.itemId]

const decodeTierInput = decodeInput(tierEntity, TierMetadataInput)
const decodeTierInputs = decodeBatch(tierEntity, decodeTierInput)
const decodeTierPatch = decodeInput(tierEntity, TierMetadataPatch)
const decodeTierPage = decodeOptions(tierEntity, PageOptions)
const decodeTierUpdateOptions = decodeOptions(tierEntity, UpdateOptions)
const decodeTier = decodeInput(tierEntity, MemoryTier)
const decodeItemIds = decodeInput(tierEntity, ItemIds)

/** The ids of `ids` some item can have (the kernel's id rule), each once, in order. */
const possibleIds = (ids: ReadonlyArray<string>): Array<string> => {
  const seen = new Set<string>()
  for (const id of ids) if (Schema.is(MemoryItemId)(id)) seen.add(id)
  return [...seen]
}

/** Builds a `TierMetadataStore` over a driver: validation, clock, versions and encoding live here. */
export const makeTierMetadataStore = (driver: TierMetadataDriver) => {
  const addAll = (inputs: ReadonlyArray<typeof TierMetadataInput.Type>) =>
    Effect.gen(function* () {
      if (inputs.length === 0) return []
      const now = yield* Clock.currentTimeMillis
      const rows = inputs.map((input): TierMetadataRow => ({
        itemId: input.itemId,
        tier: input.tier ?? "hot",
        importance: input.importance ?? 0.5,
        authority: input.authority ?? "session",
        accessCount: 0,
        lastAccessed: now,
        createdAt: now,
        updatedAt: now,
        version: 1
      }))
      const seen = new Set<string>()
      const repeated = rows.find((row) => seen.has(row.itemId) || (seen.add(row.itemId), false))
      if (repeated !== undefined) return yield* exists(tierEntity, repeated.itemId)
      if (yield* driver.insert(rows)) return rows.map(decodeTierRow)
      const taken = new Set((yield* driver.getMany(rows.map((row) => row.itemId))).map((row) => row.itemId))
      return yield* exists(tierEntity, rows.find((row) => taken.has(row.itemId))?.itemId ?? rows[0]!.itemId)
    })
  const find = (id: unknown) => findOne(tierEntity, id, driver.getMany, (row: TierMetadataRow) => decodeTierRow(row))

  return traced(
    "TierMetadataStore",
    driver,
    TierMetadataStore.of({
      add: (input) =>
        Effect.flatMap(decodeTierInput(input), (fields) => Effect.map(addAll([fields]), (rows) => rows[0]!)),
      addMany: (inputs) => Effect.flatMap(decodeTierInputs(inputs), addAll),
      get: (itemId) => Effect.flatMap(find(itemId), orNotFound(tierEntity, itemId)),
      getMany: Effect.fnUntraced(function* (itemIds) {
        const ids = possibleIds(yield* decodeItemIds(itemIds, ["itemIds"]))
        if (ids.length === 0) return []
        const rows = new Map((yield* driver.getMany(ids)).map((row) => [row.itemId, row]))
        return ids.flatMap((id) => {
          const row = rows.get(id)
          return row === undefined ? [] : [decodeTierRow(row)]
        })
      }),
      update: Effect.fnUntraced(function* (itemId, input, options) {
        const key = yield* checkId(tierEntity, itemId)
        const patch = yield* decodeTierPatch(input)
        const { expectedVersion } = yield* decodeTierUpdateOptions(options)
        if (key === undefined) return yield* new NotFound({ entity: tierEntity, id: itemId })
        const row = yield* updateVersioned<TierMetadataRow, never>({
          entity: tierEntity,
          id: key,
          expectedVersion,
          read: Effect.map(driver.getMany([key]), (rows) => rows[0]),
          next: (current) =>
            Effect.map(Clock.currentTimeMillis, (now): TierMetadataRow => ({
              ...current,
              tier: patch.tier ?? current.tier,
              importance: patch.importance ?? current.importance,
              authority: patch.authority ?? current.authority,
              updatedAt: Math.max(now, current.updatedAt),
              version: current.version + 1
            })),
          write: (next) => driver.update(next, next.version - 1)
        })
        return decodeTierRow(row)
      }),
      delete: (itemId) => deleteById(tierEntity, itemId, driver.delete),
      listByTier: Effect.fnUntraced(function* (tier, input) {
        const key = yield* decodeTier(tier, ["tier"])
        const options = yield* decodeTierPage(input)
        const query = yield* toPageQuery(tierEntity, options)
        return toPage(yield* driver.listByTier(key, query), query, decodeTierRow, tierKey)
      }),
      count: (tier) =>
        tier === undefined ? driver.count(undefined) : Effect.flatMap(decodeTier(tier, ["tier"]), driver.count),
      countByTier: () =>
        Effect.map(driver.countByTier(), (counts) => {
          const result: Record<MemoryTier, number> = { hot: 0, warm: 0, cold: 0, mental_model: 0 }
          for (const [tier, n] of counts) if (tier in result) result[tier as MemoryTier] = n
          return result
        }),
      recordAccess: Effect.fnUntraced(function* (itemIds) {
        const ids = possibleIds(yield* decodeItemIds(itemIds, ["itemIds"]))
        if (ids.length === 0) return 0
        return yield* driver.recordAccess(ids, yield* Clock.currentTimeMillis)
      })
    })
  )
}
