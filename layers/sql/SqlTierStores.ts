/**
 * The memory tier stores on SQL, stated once for SQLite and PostgreSQL. Each
 * item keeps its embedding beside it (the model's name and the float32
 * vector as a BLOB/`bytea`); a search reads the vectors of the items embedded
 * by the query's model (of one conversation when asked, filtered in SQL) and
 * the core scores them exactly. A message's `seq` comes from a kernel counter
 * per conversation (commit-ordered, never reused). Every deletion of items
 * deletes their tier metadata in the same transaction, by the ids it deleted;
 * a mental model's history goes with it by foreign key.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { type Context, Effect, Layer } from "effect"
import { Embeddings } from "../../src/Embeddings.ts"
import type { StorageError } from "../../src/Errors.ts"
import { notExpiredSql } from "../../src/Expiry.ts"
import {
  type MemoryCandidate,
  type MemoryEmbedding,
  type FactRow,
  FactStore,
  type MemoryItemDriver,
  type MemoryItemFilter,
  makeFactStore,
  makeMemoryMessageStore,
  makeMentalModelStore,
  makeSummaryStore,
  makeTierMetadataStore,
  type MemoryMessageRow,
  MemoryMessageStore,
  type MentalModelRow,
  MentalModelStore,
  type MentalModelVersionRow,
  type NewMemoryMessageRow,
  type SummaryRow,
  SummaryStore,
  type TierMetadataRow,
  TierMetadataStore
} from "../../src/Memory.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"

const blob = { sqlite: "BLOB", pg: "BYTEA" } as const

/** A `CREATE TABLE` with a vector column, in both dialects. */
const withVector = (text: string) => ({
  sqlite: text.replace("{blob}", blob.sqlite),
  pg: text.replace("{blob}", blob.pg)
})

/** The tier tables (metadata, messages, summaries, facts, mental models and their versions) and their migrations. */
export const schema: Kit.SqlSchema = {
  name: "memory_tiers",
  tables: [
    "tier_metadata",
    "tier_messages",
    "tier_summaries",
    "tier_facts",
    "tier_mental_models",
    "tier_mental_model_versions"
  ],
  migrations: {
    "0001_memory_tiers": [
      `CREATE TABLE IF NOT EXISTS {tier_metadata} (
        item_id TEXT PRIMARY KEY NOT NULL,
        tier TEXT NOT NULL,
        importance DOUBLE PRECISION NOT NULL,
        authority TEXT NOT NULL,
        access_count BIGINT NOT NULL,
        last_accessed BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        version INTEGER NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS {tier_metadata_tier} ON {tier_metadata} (tier, created_at, item_id)`,
      withVector(`CREATE TABLE IF NOT EXISTS {tier_messages} (
        id TEXT PRIMARY KEY NOT NULL,
        conversation_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        metadata TEXT NOT NULL,
        token_count BIGINT,
        expires_at BIGINT,
        created_at BIGINT NOT NULL,
        model TEXT NOT NULL,
        vector {blob} NOT NULL
      )`),
      `CREATE UNIQUE INDEX IF NOT EXISTS {tier_messages_seq} ON {tier_messages} (conversation_id, seq)`,
      `CREATE INDEX IF NOT EXISTS {tier_messages_created} ON {tier_messages} (created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {tier_messages_expiry} ON {tier_messages} (expires_at) WHERE expires_at IS NOT NULL`,
      withVector(`CREATE TABLE IF NOT EXISTS {tier_summaries} (
        id TEXT PRIMARY KEY NOT NULL,
        conversation_id TEXT NOT NULL,
        from_seq BIGINT NOT NULL,
        to_seq BIGINT NOT NULL,
        content TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        model TEXT NOT NULL,
        vector {blob} NOT NULL
      )`),
      `CREATE INDEX IF NOT EXISTS {tier_summaries_conversation} ON {tier_summaries} (conversation_id, created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {tier_summaries_created} ON {tier_summaries} (created_at, id)`,
      withVector(`CREATE TABLE IF NOT EXISTS {tier_facts} (
        id TEXT PRIMARY KEY NOT NULL,
        conversation_id TEXT NOT NULL,
        content TEXT NOT NULL,
        kind TEXT NOT NULL,
        importance DOUBLE PRECISION NOT NULL,
        source_message_ids TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        model TEXT NOT NULL,
        vector {blob} NOT NULL
      )`),
      `CREATE INDEX IF NOT EXISTS {tier_facts_conversation} ON {tier_facts} (conversation_id, created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {tier_facts_created} ON {tier_facts} (created_at, id)`,
      withVector(`CREATE TABLE IF NOT EXISTS {tier_mental_models} (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL UNIQUE,
        content TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        version INTEGER NOT NULL,
        model TEXT NOT NULL,
        vector {blob} NOT NULL
      )`),
      `CREATE INDEX IF NOT EXISTS {tier_mental_models_created} ON {tier_mental_models} (created_at, id)`,
      `CREATE TABLE IF NOT EXISTS {tier_mental_model_versions} (
        model_id TEXT NOT NULL REFERENCES {tier_mental_models} (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        content TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (model_id, version)
      )`
    ]
  },
  requires: [Kit.kernel]
}

/** `?` for a JSON array of ids: its elements as rows of one text column `value`. */
const idsOf = {
  sqlite: "SELECT value FROM json_each(?)",
  pg: "SELECT value FROM json_array_elements_text(?::json) AS v (value)"
}

/** A statement with `{ids}` standing for the rows of a JSON array of ids, in both dialects. */
const withIds = (text: string) => ({
  sqlite: text.replace("{ids}", idsOf.sqlite),
  pg: text.replace("{ids}", idsOf.pg)
})

const toCandidate = (r: ReadonlyArray<any>): MemoryCandidate => ({ id: r[0], vector: r[1] })
const toId = (r: ReadonlyArray<any>): string => r[0]
const duplicate = () => "duplicate" as const
const taken = () => false

const deleteMetadata = Kit.stmt<[id: string]>(`DELETE FROM {tier_metadata} WHERE item_id = ?`)
// Rows locked in item id order on PostgreSQL, as `recordAccess` locks them (no deadlock between the two).
const deleteMetadataOf = Kit.stmt<[ids: string]>({
  sqlite: `DELETE FROM {tier_metadata} WHERE item_id IN (${idsOf.sqlite})`,
  pg: `DELETE FROM {tier_metadata} WHERE item_id IN (
      SELECT item_id FROM {tier_metadata} WHERE item_id IN (${idsOf.pg}) ORDER BY item_id FOR UPDATE
    )`
})

/** Deletes the tier metadata of the items `ids` (just deleted, in the same transaction). */
function* dropMetadata(ids: ReadonlyArray<string>) {
  if (ids.length > 0) yield* Kit.exec(deleteMetadataOf, JSON.stringify(ids))
  return ids.length
}

// ---------------------------------------------------------------------------
// Messages

const messageColumns = "id, conversation_id, seq, role, content, metadata, token_count, expires_at, created_at"

const decodeMessage = (r: ReadonlyArray<any>): MemoryMessageRow => ({
  id: r[0],
  conversationId: r[1],
  seq: Number(r[2]),
  role: r[3],
  content: r[4],
  metadata: r[5],
  tokenCount: r[6] === null ? null : Number(r[6]),
  expiresAt: r[7] === null ? null : Number(r[7]),
  createdAt: Number(r[8])
})

const insertMessage = Kit.stmt<Array<unknown>>(
  `INSERT INTO {tier_messages} (${messageColumns}, model, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)
const messagesById = Kit.stmt<[ids: string], MemoryMessageRow>(
  withIds(`SELECT ${messageColumns} FROM {tier_messages} WHERE id IN ({ids})`),
  decodeMessage
)
const messageVectors = Kit.stmt<[model: string, now: number], MemoryCandidate>(
  `SELECT id, vector FROM {tier_messages} WHERE model = ? AND ${notExpiredSql("expires_at")}`,
  toCandidate
)
const conversationVectors = Kit.stmt<[conversationId: string, model: string, now: number], MemoryCandidate>(
  `SELECT id, vector FROM {tier_messages} WHERE conversation_id = ? AND model = ? AND ${notExpiredSql("expires_at")}`,
  toCandidate
)
const deleteMessage = Kit.stmt<[id: string], string>(`DELETE FROM {tier_messages} WHERE id = ? RETURNING id`, toId)
const deleteConversationMessages = Kit.stmt<[conversationId: string], string>(
  `DELETE FROM {tier_messages} WHERE conversation_id = ? RETURNING id`,
  toId
)
// The outer condition is checked again against a row changed since the inner select (PostgreSQL re-reads it).
const deleteExpiredMessages = Kit.stmt<[now: number, batch: number, again: number], string>(
  `DELETE FROM {tier_messages} WHERE id IN (
      SELECT id FROM {tier_messages} WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?
    ) AND expires_at <= ? RETURNING id`,
  toId
)

const messagesBySeq = Kit.listing({
  table: "tier_messages",
  columns: messageColumns,
  orderBy: ["seq", "id"],
  decode: decodeMessage
})
const messagesByCreation = Kit.listing({
  table: "tier_messages",
  columns: messageColumns,
  orderBy: ["created_at", "id"],
  decode: decodeMessage
})

/** One page of a conversation's live messages, by seq. */
const listMessages = (conversationId: string, now: number, page: PageQuery) =>
  messagesBySeq({ conversation_id: conversationId }, page, [[notExpiredSql("expires_at"), now]])

/** One page of the live messages (of one conversation, or all), by creation. */
const listAllMessages = (conversationId: string | undefined, now: number, page: PageQuery) =>
  messagesByCreation({ conversation_id: conversationId }, page, [[notExpiredSql("expires_at"), now]])

/** The operations of `MemoryMessageDriver`. */
export const messageOps = {
  insert: Kit.op(
    "memoryMessage.insert",
    function* (rows: ReadonlyArray<NewMemoryMessageRow>) {
      const seqs: Array<number> = []
      for (const row of rows) {
        const seq = (yield* Kit.one(Kit.bumpCounter, `tier_messages/${row.conversationId}`, 1))!
        yield* Kit.exec(
          insertMessage,
          row.id,
          row.conversationId,
          seq,
          row.role,
          row.content,
          row.metadata,
          row.tokenCount,
          row.expiresAt,
          row.createdAt,
          row.model,
          row.vector
        )
        seqs.push(seq)
      }
      return seqs as ReadonlyArray<number>
    },
    { atomic: true, onViolation: duplicate }
  ),
  getMany: Kit.op("memoryMessage.getMany", (ids: ReadonlyArray<string>) => Kit.all(messagesById, JSON.stringify(ids))),
  list: Kit.op("memoryMessage.list", listMessages),
  listAll: Kit.op("memoryMessage.listAll", listAllMessages),
  candidates: Kit.op("memoryMessage.candidates", (conversationId: string | undefined, model: string, now: number) =>
    conversationId === undefined
      ? Kit.all(messageVectors, model, now)
      : Kit.all(conversationVectors, conversationId, model, now)
  ),
  delete: Kit.op(
    "memoryMessage.delete",
    function* (id: string) {
      const deleted = yield* Kit.one(deleteMessage, id)
      if (deleted === undefined) return false
      yield* Kit.exec(deleteMetadata, id)
      return true
    },
    { atomic: true }
  ),
  deleteByConversation: Kit.op(
    "memoryMessage.deleteByConversation",
    function* (conversationId: string) {
      return yield* dropMetadata(yield* Kit.all(deleteConversationMessages, conversationId))
    },
    { atomic: true }
  ),
  deleteExpired: Kit.op(
    "memoryMessage.deleteExpired",
    function* (now: number, batch: number) {
      return yield* dropMetadata(yield* Kit.all(deleteExpiredMessages, now, batch, now))
    },
    { atomic: true }
  )
}

// ---------------------------------------------------------------------------
// Summaries and facts

/** The statements and operations of a table of conversation items with vectors. */
const itemOps = <Row extends { readonly id: string }>(spec: {
  readonly name: string
  readonly table: string
  readonly columns: ReadonlyArray<string>
  readonly decode: (row: ReadonlyArray<any>) => Row
  readonly values: (row: Row) => ReadonlyArray<unknown>
  readonly filters: (filter: MemoryItemFilter) => Kit.Filters
}) => {
  const columns = spec.columns.join(", ")
  const table = `{${spec.table}}`
  const insert = Kit.stmt<Array<unknown>>(
    `INSERT INTO ${table} (${columns}, model, vector) VALUES (${[...spec.columns, "model", "vector"].map(() => "?").join(", ")})`
  )
  const byIds = Kit.stmt<[ids: string], Row>(
    withIds(`SELECT ${columns} FROM ${table} WHERE id IN ({ids})`),
    spec.decode
  )
  const vectors = Kit.stmt<[model: string], MemoryCandidate>(
    `SELECT id, vector FROM ${table} WHERE model = ?`,
    toCandidate
  )
  const conversationVectors = Kit.stmt<[conversationId: string, model: string], MemoryCandidate>(
    `SELECT id, vector FROM ${table} WHERE conversation_id = ? AND model = ?`,
    toCandidate
  )
  const remove = Kit.stmt<[id: string], string>(`DELETE FROM ${table} WHERE id = ? RETURNING id`, toId)
  const removeConversation = Kit.stmt<[conversationId: string], string>(
    `DELETE FROM ${table} WHERE conversation_id = ? RETURNING id`,
    toId
  )
  const listing = Kit.listing({ table: spec.table, columns, orderBy: ["created_at", "id"], decode: spec.decode })
  return {
    insert: Kit.op(
      `${spec.name}.insert`,
      function* (rows: ReadonlyArray<Row & MemoryEmbedding>) {
        for (const row of rows) yield* Kit.exec(insert, ...spec.values(row), row.model, row.vector)
        return true
      },
      { atomic: true, onViolation: taken }
    ),
    getMany: Kit.op(`${spec.name}.getMany`, (ids: ReadonlyArray<string>) => Kit.all(byIds, JSON.stringify(ids))),
    list: Kit.op(`${spec.name}.list`, (filter: MemoryItemFilter, page: PageQuery) =>
      listing(spec.filters(filter), page)
    ),
    candidates: Kit.op(`${spec.name}.candidates`, (conversationId: string | undefined, model: string) =>
      conversationId === undefined ? Kit.all(vectors, model) : Kit.all(conversationVectors, conversationId, model)
    ),
    delete: Kit.op(
      `${spec.name}.delete`,
      function* (id: string) {
        if ((yield* Kit.one(remove, id)) === undefined) return false
        yield* Kit.exec(deleteMetadata, id)
        return true
      },
      { atomic: true }
    ),
    deleteByConversation: Kit.op(
      `${spec.name}.deleteByConversation`,
      function* (conversationId: string) {
        return yield* dropMetadata(yield* Kit.all(removeConversation, conversationId))
      },
      { atomic: true }
    )
  }
}

/** The operations of `SummaryDriver`. */
export const summaryOps = itemOps<SummaryRow>({
  name: "summary",
  table: "tier_summaries",
  columns: ["id", "conversation_id", "from_seq", "to_seq", "content", "metadata", "created_at"],
  decode: (r) => ({
    id: r[0],
    conversationId: r[1],
    fromSeq: Number(r[2]),
    toSeq: Number(r[3]),
    content: r[4],
    metadata: r[5],
    createdAt: Number(r[6])
  }),
  values: (row) => [row.id, row.conversationId, row.fromSeq, row.toSeq, row.content, row.metadata, row.createdAt],
  filters: (filter) => ({ conversation_id: filter.conversationId })
})

/** The operations of `FactDriver`. */
export const factOps = itemOps<FactRow>({
  name: "fact",
  table: "tier_facts",
  columns: ["id", "conversation_id", "content", "kind", "importance", "source_message_ids", "metadata", "created_at"],
  decode: (r) => ({
    id: r[0],
    conversationId: r[1],
    content: r[2],
    kind: r[3],
    importance: Number(r[4]),
    sourceMessageIds: r[5],
    metadata: r[6],
    createdAt: Number(r[7])
  }),
  values: (row) => [
    row.id,
    row.conversationId,
    row.content,
    row.kind,
    row.importance,
    row.sourceMessageIds,
    row.metadata,
    row.createdAt
  ],
  filters: (filter) => ({ conversation_id: filter.conversationId, kind: filter.kind })
})

// ---------------------------------------------------------------------------
// Mental models

const modelColumns = "id, name, content, metadata, created_at, updated_at, version"

const decodeModel = (r: ReadonlyArray<any>): MentalModelRow => ({
  id: r[0],
  name: r[1],
  content: r[2],
  metadata: r[3],
  createdAt: Number(r[4]),
  updatedAt: Number(r[5]),
  version: Number(r[6])
})

const insertModel = Kit.stmt<Array<unknown>>(
  `INSERT INTO {tier_mental_models} (${modelColumns}, model, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
)
const insertModelVersion = Kit.stmt<Array<unknown>>(
  `INSERT INTO {tier_mental_model_versions} (model_id, version, content, metadata, created_at) VALUES (?, ?, ?, ?, ?)`
)
const replaceModel = Kit.stmt<Array<unknown>, string>(
  `UPDATE {tier_mental_models} SET content = ?, metadata = ?, updated_at = ?, version = ?, model = ?, vector = ?
    WHERE id = ? AND version = ? RETURNING id`,
  toId
)
const modelById = Kit.stmt<[id: string], MentalModelRow>(
  `SELECT ${modelColumns} FROM {tier_mental_models} WHERE id = ?`,
  decodeModel
)
const modelByName = Kit.stmt<[name: string], MentalModelRow>(
  `SELECT ${modelColumns} FROM {tier_mental_models} WHERE name = ?`,
  decodeModel
)
const modelsById = Kit.stmt<[ids: string], MentalModelRow>(
  withIds(`SELECT ${modelColumns} FROM {tier_mental_models} WHERE id IN ({ids})`),
  decodeModel
)
const modelHistory = Kit.stmt<[id: string], MentalModelVersionRow>(
  `SELECT model_id, version, content, metadata, created_at FROM {tier_mental_model_versions}
    WHERE model_id = ? ORDER BY version`,
  (r) => ({ modelId: r[0], version: Number(r[1]), content: r[2], metadata: r[3], createdAt: Number(r[4]) })
)
const modelVectors = Kit.stmt<[model: string], MemoryCandidate>(
  `SELECT id, vector FROM {tier_mental_models} WHERE model = ?`,
  toCandidate
)
const deleteModel = Kit.stmt<[id: string], string>(`DELETE FROM {tier_mental_models} WHERE id = ? RETURNING id`, toId)
const listModels = Kit.listing({
  table: "tier_mental_models",
  columns: modelColumns,
  orderBy: ["created_at", "id"],
  decode: decodeModel
})

/** A model's row as its history stores it (the version's time is the model's `updatedAt`). */
const versionValues = (row: MentalModelRow) => [row.id, row.version, row.content, row.metadata, row.updatedAt]

/** The operations of `MentalModelDriver`. */
export const mentalModelOps = {
  insert: Kit.op(
    "mentalModel.insert",
    function* (row: MentalModelRow & MemoryEmbedding) {
      yield* Kit.exec(
        insertModel,
        row.id,
        row.name,
        row.content,
        row.metadata,
        row.createdAt,
        row.updatedAt,
        row.version,
        row.model,
        row.vector
      )
      yield* Kit.exec(insertModelVersion, ...versionValues(row))
      return true
    },
    { atomic: true, onViolation: taken }
  ),
  replace: Kit.op(
    "mentalModel.replace",
    function* (row: MentalModelRow & MemoryEmbedding, previous: number) {
      const updated = yield* Kit.one(
        replaceModel,
        row.content,
        row.metadata,
        row.updatedAt,
        row.version,
        row.model,
        row.vector,
        row.id,
        previous
      )
      if (updated === undefined) return false
      yield* Kit.exec(insertModelVersion, ...versionValues(row))
      return true
    },
    { atomic: true }
  ),
  get: Kit.op("mentalModel.get", (id: string) => Kit.one(modelById, id)),
  getByName: Kit.op("mentalModel.getByName", (name: string) => Kit.one(modelByName, name)),
  getMany: Kit.op("mentalModel.getMany", (ids: ReadonlyArray<string>) => Kit.all(modelsById, JSON.stringify(ids))),
  list: Kit.op("mentalModel.list", (page: PageQuery) => listModels({}, page)),
  history: Kit.op("mentalModel.history", (id: string) => Kit.all(modelHistory, id)),
  candidates: Kit.op("mentalModel.candidates", (model: string) => Kit.all(modelVectors, model)),
  delete: Kit.op(
    "mentalModel.delete",
    function* (id: string) {
      if ((yield* Kit.one(deleteModel, id)) === undefined) return false
      yield* Kit.exec(deleteMetadata, id)
      return true
    },
    { atomic: true }
  )
}

// ---------------------------------------------------------------------------
// Tier metadata

const metadataColumns =
  "item_id, tier, importance, authority, access_count, last_accessed, created_at, updated_at, version"

const decodeMetadata = (r: ReadonlyArray<any>): TierMetadataRow => ({
  itemId: r[0],
  tier: r[1],
  importance: Number(r[2]),
  authority: r[3],
  accessCount: Number(r[4]),
  lastAccessed: Number(r[5]),
  createdAt: Number(r[6]),
  updatedAt: Number(r[7]),
  version: Number(r[8])
})

const insertMetadata = Kit.stmt<Array<unknown>>(
  `INSERT INTO {tier_metadata} (${metadataColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
)
const metadataByIds = Kit.stmt<[ids: string], TierMetadataRow>(
  withIds(`SELECT ${metadataColumns} FROM {tier_metadata} WHERE item_id IN ({ids})`),
  decodeMetadata
)
const updateMetadata = Kit.stmt<Array<unknown>, TierMetadataRow>(
  `UPDATE {tier_metadata} SET tier = ?, importance = ?, authority = ?, updated_at = ?, version = ?
    WHERE item_id = ? AND version = ? RETURNING ${metadataColumns}`,
  decodeMetadata
)
const deleteOneMetadata = Kit.stmt<[id: string], string>(
  `DELETE FROM {tier_metadata} WHERE item_id = ? RETURNING item_id`,
  toId
)
const countAll = Kit.stmt<[], number>(`SELECT count(*) FROM {tier_metadata}`, (r) => Number(r[0]))
const countTier = Kit.stmt<[tier: string], number>(`SELECT count(*) FROM {tier_metadata} WHERE tier = ?`, (r) =>
  Number(r[0])
)
const countTiers = Kit.stmt<[], readonly [string, number]>(
  `SELECT tier, count(*) FROM {tier_metadata} GROUP BY tier`,
  (r) => [r[0], Number(r[1])] as const
)
const accessSet = `SET access_count = access_count + 1,
    last_accessed = CASE WHEN last_accessed > ? THEN last_accessed ELSE ? END`
// One statement: each row is updated under its lock, so concurrent calls add up. On PostgreSQL the rows are locked
// in item id order first: in scan order (which moves as updated rows move) two calls could deadlock.
const recordAccess = Kit.stmt<[now: number, again: number, ids: string], string>(
  {
    sqlite: `UPDATE {tier_metadata} ${accessSet} WHERE item_id IN (${idsOf.sqlite}) RETURNING item_id`,
    pg: `UPDATE {tier_metadata} ${accessSet} WHERE item_id IN (
        SELECT item_id FROM {tier_metadata} WHERE item_id IN (${idsOf.pg}) ORDER BY item_id FOR UPDATE
      ) RETURNING item_id`
  },
  toId
)
const listMetadata = Kit.listing({
  table: "tier_metadata",
  columns: metadataColumns,
  orderBy: ["created_at", "item_id"],
  decode: decodeMetadata
})

/** The operations of `TierMetadataDriver`. */
export const tierMetadataOps = {
  insert: Kit.op(
    "tierMetadata.insert",
    function* (rows: ReadonlyArray<TierMetadataRow>) {
      for (const row of rows) {
        yield* Kit.exec(
          insertMetadata,
          row.itemId,
          row.tier,
          row.importance,
          row.authority,
          row.accessCount,
          row.lastAccessed,
          row.createdAt,
          row.updatedAt,
          row.version
        )
      }
      return true
    },
    { atomic: true, onViolation: taken }
  ),
  getMany: Kit.op("tierMetadata.getMany", (ids: ReadonlyArray<string>) => Kit.all(metadataByIds, JSON.stringify(ids))),
  update: Kit.op("tierMetadata.update", (row: TierMetadataRow, previous: number) =>
    Kit.one(updateMetadata, row.tier, row.importance, row.authority, row.updatedAt, row.version, row.itemId, previous)
  ),
  delete: Kit.op("tierMetadata.delete", (id: string) =>
    Kit.one(deleteOneMetadata, id).map((deleted) => deleted !== undefined)
  ),
  listByTier: Kit.op("tierMetadata.listByTier", (tier: string, page: PageQuery) => listMetadata({ tier }, page)),
  count: Kit.op("tierMetadata.count", (tier: string | undefined) =>
    (tier === undefined ? Kit.one(countAll) : Kit.one(countTier, tier)).map((n) => n ?? 0)
  ),
  countByTier: Kit.op("tierMetadata.countByTier", () => Kit.all(countTiers)),
  recordAccess: Kit.op("tierMetadata.recordAccess", (ids: ReadonlyArray<string>, now: number) =>
    Kit.all(recordAccess, now, now, JSON.stringify(ids)).map((touched) => touched.length)
  )
}

// ---------------------------------------------------------------------------
// Layers

/** The stores' layers need the `Embeddings` in context (the bundles provide `Embeddings.layerLocal()` by default). */
type Requires = SqlClient | Embeddings

const storeLayer = <I, S, O extends Kit.Ops>(
  tag: Context.Tag<I, S>,
  ops: O,
  make: (driver: Kit.DriverOf<O>, embeddings: Embeddings["Type"]) => S,
  options: Kit.SqlOptions
): Layer.Layer<I, StorageError, Requires> =>
  Layer.effect(tag, Effect.zipWith(Kit.driver(ops), Embeddings, make)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `MemoryMessageStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const messageLayerWith = (options: Kit.SqlOptions = {}) =>
  storeLayer(MemoryMessageStore, messageOps, makeMemoryMessageStore, options)

/** `SummaryStore` on SQL, migrating first. */
export const summaryLayerWith = (options: Kit.SqlOptions = {}) =>
  storeLayer(
    SummaryStore,
    summaryOps,
    (driver: MemoryItemDriver<SummaryRow>, e) => makeSummaryStore(driver, e),
    options
  )

/** `FactStore` on SQL, migrating first. */
export const factLayerWith = (options: Kit.SqlOptions = {}) =>
  storeLayer(FactStore, factOps, (driver: MemoryItemDriver<FactRow>, e) => makeFactStore(driver, e), options)

/** `MentalModelStore` on SQL, migrating first. */
export const mentalModelLayerWith = (options: Kit.SqlOptions = {}) =>
  storeLayer(MentalModelStore, mentalModelOps, makeMentalModelStore, options)

/** `TierMetadataStore` on SQL, migrating first (it embeds nothing). */
export const tierMetadataLayerWith = (
  options: Kit.SqlOptions = {}
): Layer.Layer<TierMetadataStore, StorageError, SqlClient> =>
  Layer.effect(TierMetadataStore, Effect.map(Kit.driver(tierMetadataOps), makeTierMetadataStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** The five tier stores. */
export type TierStores = MemoryMessageStore | SummaryStore | FactStore | MentalModelStore | TierMetadataStore

/** The five tier stores on SQL, migrating once. */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<TierStores, StorageError, Requires> =>
  Layer.mergeAll(
    messageLayerWith(options),
    summaryLayerWith(options),
    factLayerWith(options),
    mentalModelLayerWith(options),
    tierMetadataLayerWith(options)
  )

/** The five tier stores on SQL with the default table prefix. */
export const layer: Layer.Layer<TierStores, StorageError, Requires> = layerWith()
