/**
 * `VectorStore`: named collections of vectors (one dimension and metric per
 * collection) with JSON metadata and optional text content, searched exactly
 * (every record scored) up to `approximateFrom` records and through an IVF
 * index beyond (candidates scored exactly, see `VectorIvf.ts`), with a
 * Mongo-style metadata filter applied inside the search (see `VectorFilter.ts`).
 * Every backend scores in JS over one contiguous
 * `Float32Array` per collection: the memory backend holds its data that way,
 * the SQL backends keep a per-layer copy of each collection, checked against
 * the collection's revision on every read and updated by their own writes.
 * A driver with an approximate index (pgvector) may offer candidates for an
 * unfiltered search instead (`VectorDriver.nearest`); they are scored here the
 * same way.
 */
import { Clock, Context, Effect, Either, Schema } from "effect"
import { Vector } from "./Binary.ts"
import { Conflict, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { isJson, isStorableText, JsonObject, Text } from "./Json.ts"
import { checkId, decodeInput, decodeOptions, isPlainObject, kindOf } from "./Record.ts"
import { compile, type Metric, type Predicate, type VectorFilter, type VectorIndex } from "./VectorFilter.ts"
import { traced } from "./Traced.ts"

export type { Metric, VectorFilter } from "./VectorFilter.ts"

/** A collection name: a non-empty Text (see `Json.ts`) up to 255 characters. */
export const VectorCollectionName = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** A vector metric: `cosine` similarity, `dot` product or `euclidean` (scored `1 / (1 + distance)`). */
export const VectorMetric: Schema.Schema<Metric> = Schema.Literal("cosine", "dot", "euclidean")

/**
 * Options of the vector store's layers. `approximateFrom`: the number of records from which a collection's searches
 * take the approximate path (an IVF index built in process, candidates re-ranked exactly; see `docs/vectors.md`),
 * default `defaultApproximateFrom`; `Infinity` keeps every search exact.
 */
export interface VectorIndexOptions {
  readonly approximateFrom?: number
}

export { approximateFrom as defaultApproximateFrom } from "./VectorIvf.ts"

/** The largest dimension a collection may have. */
export const maxVectorDimension = 65_536

/** The most records one `upsert` may write. */
export const maxVectorBatch = 100_000

/** The largest `topK` of a search. */
export const maxVectorTopK = 10_000

/** A collection's dimension: an integer from 1 to `maxVectorDimension`. */
export const VectorDimension = Schema.Int.pipe(Schema.between(1, maxVectorDimension))

/** Options of `createCollection`: `dimension`, and `metric` (default `cosine`). */
export const CreateCollectionOptions = Schema.Struct({
  dimension: VectorDimension,
  metric: Schema.optional(VectorMetric)
})
/** Options of `createCollection`. */
export type CreateCollectionOptions = typeof CreateCollectionOptions.Encoded

/** What a collection is: its name, dimension, metric and how many records it holds. */
export interface CollectionInfo {
  readonly name: string
  readonly dimension: number
  readonly metric: Metric
  readonly count: number
}

/** A record id: a non-empty Text up to 255 characters. */
export const VectorId = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** A vector as given: a `Float32Array` or an array of numbers, every value finite (as float32 too). */
export const VectorValue = Schema.Union(Vector, Schema.Array(Schema.Finite))
/** A vector as given. */
export type VectorValue = typeof VectorValue.Type

/** A record to upsert: `id` (a UUIDv7 when absent), `vector`, `metadata` (a JSON object, default `{}`), `content`. */
export const VectorDocument = Schema.Struct({
  id: Schema.optional(VectorId),
  vector: VectorValue,
  metadata: Schema.optional(JsonObject),
  content: Schema.optional(Schema.String)
})
/** A record to upsert. */
export type VectorDocument = typeof VectorDocument.Encoded

/** The input of `upsert`: up to `maxVectorBatch` records, written all or none. */
export const VectorDocuments = Schema.Array(VectorDocument).pipe(Schema.maxItems(maxVectorBatch))

/** A stored record: its vector is a copy the caller owns, `content` absent when none was given. */
export interface VectorRecord {
  readonly id: string
  readonly vector: Float32Array
  readonly metadata: JsonObject
  readonly content?: string
}

/** A search hit, best first: `score` as the collection's metric defines it, `vector` when `includeVectors`. */
export interface VectorSearchResult {
  readonly id: string
  readonly score: number
  readonly metadata: JsonObject
  readonly content?: string
  readonly vector?: Float32Array
}

/** Options of `search`: `topK` (1 to `maxVectorTopK`, default 10), `filter`, `minScore`, `includeVectors`. */
export const VectorSearchOptions = Schema.Struct({
  topK: Schema.optional(Schema.Int.pipe(Schema.between(1, maxVectorTopK))),
  filter: Schema.optional(JsonObject),
  minScore: Schema.optional(Schema.Finite),
  includeVectors: Schema.optional(Schema.Boolean)
})
/** Options of `search`. */
export type VectorSearchOptions = typeof VectorSearchOptions.Encoded

/** Options of `count`: an optional `filter`. */
export const VectorCountOptions = Schema.Struct({ filter: Schema.optional(JsonObject) })
/** Options of `count`. */
export type VectorCountOptions = typeof VectorCountOptions.Encoded

/** What `delete` removes: records by id, or every record matching a filter. */
export const VectorDeleteTarget = Schema.Union(Schema.Array(Schema.String), Schema.Struct({ filter: JsonObject }))
/** What `delete` removes. */
export type VectorDeleteTarget = ReadonlyArray<string> | { readonly filter: VectorFilter }

/** The vector store. */
export class VectorStore extends Context.Tag("effect-agent-stores/VectorStore")<
  VectorStore,
  {
    /** Creates an empty collection; `Conflict` (reason `exists`) when the name is taken. */
    readonly createCollection: (
      name: string,
      options: CreateCollectionOptions
    ) => Effect.Effect<CollectionInfo, InvalidInput | Conflict | StorageError>
    /** A collection's name, dimension, metric and count; `NotFound` when there is none. */
    readonly describeCollection: (name: string) => Effect.Effect<CollectionInfo, NotFound | InvalidInput | StorageError>
    /** Every collection, by name. */
    readonly listCollections: () => Effect.Effect<ReadonlyArray<CollectionInfo>, StorageError>
    /** Drops a collection with all its records; `false` when there was none. */
    readonly dropCollection: (name: string) => Effect.Effect<boolean, InvalidInput | StorageError>
    /**
     * Inserts or replaces records by id, all or none (a later duplicate id in the batch wins); returns their ids
     * in input order. A vector of the wrong dimension, NaN or Infinity is `InvalidInput`, nothing written.
     */
    readonly upsert: (
      collection: string,
      documents: ReadonlyArray<VectorDocument>
    ) => Effect.Effect<ReadonlyArray<string>, NotFound | InvalidInput | StorageError>
    /** The records with these ids, in the order asked, unknown ids left out. */
    readonly get: (
      collection: string,
      ids: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyArray<VectorRecord>, NotFound | InvalidInput | StorageError>
    /** Deletes records by id or by filter; returns how many were deleted. */
    readonly delete: (
      collection: string,
      target: VectorDeleteTarget
    ) => Effect.Effect<number, NotFound | InvalidInput | StorageError>
    /** How many records (matching `filter`, when given) the collection holds. */
    readonly count: (
      collection: string,
      options?: VectorCountOptions
    ) => Effect.Effect<number, NotFound | InvalidInput | StorageError>
    /**
     * The `topK` records (matching `filter`, scoring at least `minScore`) nearest to `vector`: best score first, ties
     * by id, by exact scan up to `approximateFrom` records, from there through the approximate path (its candidates
     * scored exactly; see `VectorIvf.ts`). The filter applies inside the search, so `topK` hits are never lost to it.
     * (A layer using pgvector's index scores its candidates exactly too, see `VectorDriver.nearest`.)
     */
    readonly search: (
      collection: string,
      vector: VectorValue,
      options?: VectorSearchOptions
    ) => Effect.Effect<ReadonlyArray<VectorSearchResult>, NotFound | InvalidInput | StorageError>
  }
>() {}

// ---------------------------------------------------------------------------------------------------------------
// Driver

/** A collection as a driver stores it; `uid` tells a re-created collection of the same name from the old one. */
export interface VectorCollectionRow {
  readonly name: string
  readonly uid: string
  readonly dimension: number
  readonly metric: Metric
  readonly createdAt: number
}

/** A record as the core hands it to a driver: vector copied, metadata parsed and as JSON text. */
export interface VectorRow {
  readonly id: string
  readonly vector: Float32Array
  readonly metadata: JsonObject
  readonly metadataJson: string
  readonly content: string | undefined
}

/** A collection's records for a scan, and the revision they are at (an opaque token every write replaces). */
export interface IndexSnapshot {
  readonly index: VectorIndex
  readonly revision: string
}

/** What a backend implements for `VectorStore`; validation, ids, scoring and filters live in `makeVectorStore`. */
export interface VectorDriver {
  /** Creates the collection; `false` when the name is taken. */
  readonly createCollection: (row: VectorCollectionRow) => Effect.Effect<boolean, StorageError>
  /** The collection `name`. */
  readonly collection: (name: string) => Effect.Effect<VectorCollectionRow | undefined, StorageError>
  /** Every collection with its count, in any order. */
  readonly listCollections: () => Effect.Effect<
    ReadonlyArray<{ readonly row: VectorCollectionRow; readonly count: number }>,
    StorageError
  >
  /** How many records the collection holds (0 when it is gone). */
  readonly count: (collection: VectorCollectionRow) => Effect.Effect<number, StorageError>
  /** Drops the collection and its records; `false` when there was none. */
  readonly dropCollection: (name: string) => Effect.Effect<boolean, StorageError>
  /** The collection's records for a scan (never mutate it); `undefined` when the collection (this `uid`) is gone. */
  readonly index: (collection: VectorCollectionRow) => Effect.Effect<IndexSnapshot | undefined, StorageError>
  /** Writes the records in one atomic step (ids unique); `false` when the collection (this `uid`) is gone. */
  readonly upsert: (
    collection: VectorCollectionRow,
    rows: ReadonlyArray<VectorRow>
  ) => Effect.Effect<boolean, StorageError>
  /** The records with these ids (copies), any order. */
  readonly get: (
    collection: VectorCollectionRow,
    ids: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<VectorRecord>, StorageError>
  /**
   * Optional: an approximate index's candidates for an unfiltered search of `topK` (more than `topK`, each to be
   * scored exactly here), or `undefined` when the index cannot answer and the collection is to be scanned.
   */
  readonly nearest?: (
    collection: VectorCollectionRow,
    query: Float32Array,
    topK: number
  ) => Effect.Effect<VectorIndex | undefined, StorageError>
  /**
   * Deletes these ids in one atomic step, returning those deleted; `missing` when the collection is gone, `stale`
   * (nothing deleted) when `revision` is given and the collection is no longer at it.
   */
  readonly delete: (
    collection: VectorCollectionRow,
    ids: ReadonlyArray<string>,
    revision: string | undefined
  ) => Effect.Effect<ReadonlyArray<string> | "missing" | "stale", StorageError>
}

// ---------------------------------------------------------------------------------------------------------------
// Core

const collectionEntity = "VectorCollection"
const entity = "Vector"

const decodeName = decodeInput(collectionEntity, VectorCollectionName)
const decodeCreate = decodeInput(collectionEntity, CreateCollectionOptions)
const decodeDocuments = decodeInput(entity, VectorDocuments)

/** A decoded document, with its metadata's JSON text when the fast path already made it. */
type Decoded = typeof VectorDocument.Type & { readonly metadataJson?: string }

const isFiniteArray = (value: Array<unknown>): boolean => {
  for (let i = 0; i < value.length; i++) {
    const x = value[i]
    if (typeof x !== "number" || !Number.isFinite(x)) return false
  }
  return true
}

/**
 * The documents of a well-formed batch, decoded without the Schema machinery (which costs more than a SQLite
 * insert per record): it accepts only what `VectorDocuments` accepts (JSON metadata by `isJson`, copied through
 * JSON text) and answers `undefined` for anything else, including input that throws, so that the Schema then
 * decodes it and names the problem.
 */
const fastDocuments = (input: unknown): ReadonlyArray<Decoded> | undefined => {
  try {
    if (!Array.isArray(input) || input.length > maxVectorBatch) return undefined
    const out: Array<Decoded> = new Array(input.length)
    for (let i = 0; i < input.length; i++) {
      const document: unknown = input[i]
      if (!isPlainObject(document)) return undefined
      const { content, id, metadata, vector } = document
      if (id !== undefined && !(typeof id === "string" && id.length > 0 && id.length <= 255 && isStorableText(id))) {
        return undefined
      }
      if (!(vector instanceof Float32Array) && !(Array.isArray(vector) && isFiniteArray(vector))) return undefined
      if (content !== undefined && typeof content !== "string") return undefined
      // Keys added to one object: `{ ...object, newKey }` costs about 1 µs on Node 20's V8.
      const decoded: { -readonly [K in keyof Decoded]: Decoded[K] } = { vector: vector as Float32Array | Array<number> }
      if (metadata !== undefined) {
        if (!isPlainObject(metadata) || !isJson(metadata)) return undefined
        const metadataJson = JSON.stringify(metadata)
        decoded.metadata = JSON.parse(metadataJson)
        decoded.metadataJson = metadataJson
      }
      if (id !== undefined) decoded.id = id
      if (content !== undefined) decoded.content = content
      out[i] = decoded
    }
    return out
  } catch {
    return undefined
  }
}
const decodeVector = decodeInput(entity, VectorValue)
const decodeSearch = decodeOptions(entity, VectorSearchOptions)
const decodeCount = decodeOptions(entity, VectorCountOptions)
const decodeIds = decodeInput(entity, Schema.Array(Schema.String))
const decodeFilter = decodeInput(entity, JsonObject)

/** A plain deep copy of a JSON value. */
export const copyVectorJson = <A>(value: A): A => {
  if (typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) return value.map(copyVectorJson) as A
  const copy: Record<string, unknown> = {}
  for (const key in value) copy[key] = copyVectorJson((value as Record<string, unknown>)[key])
  return copy as A
}

/** A given vector as a fresh `Float32Array` of `dimension` values, or `InvalidInput` at `path`. */
const toFloat32 = (
  value: VectorValue,
  dimension: number,
  path: ReadonlyArray<string | number>
): Either.Either<Float32Array, InvalidInput> => {
  if (value.length !== dimension) {
    return Either.left(InvalidInput.single(entity, `must have ${dimension} values, got ${value.length}`, path))
  }
  const vector = new Float32Array(value)
  for (let i = 0; i < vector.length; i++) {
    if (!Number.isFinite(vector[i])) {
      return Either.left(InvalidInput.single(entity, "must be finite as float32", [...path, i]))
    }
  }
  return Either.right(vector)
}

const compileFilter = (filter: unknown, path: ReadonlyArray<string | number>) =>
  Effect.flatMap(decodeFilter(filter, path), (copy) => compile(entity, copy, path))

/** Builds a `VectorStore` over a driver: validation, ids, filters, scoring and copies live here. */
export const makeVectorStore = (driver: VectorDriver) => {
  /** The collection `name`, or `NotFound`; a name no collection can have is `NotFound` too, a non-string `InvalidInput`. */
  const resolve = (name: unknown) =>
    Effect.flatMap(checkId(collectionEntity, name), (key) =>
      key === undefined
        ? Effect.fail(new NotFound({ entity: collectionEntity, id: String(name) }))
        : Effect.flatMap(driver.collection(key), (row) =>
            row === undefined ? Effect.fail(new NotFound({ entity: collectionEntity, id: key })) : Effect.succeed(row)
          )
    )

  /** The collection's snapshot, re-resolving when it was replaced meanwhile. */
  const snapshot = (
    name: unknown
  ): Effect.Effect<readonly [VectorCollectionRow, IndexSnapshot], NotFound | InvalidInput | StorageError> =>
    Effect.flatMap(resolve(name), (row) =>
      Effect.flatMap(driver.index(row), (found) =>
        found === undefined ? snapshot(name) : Effect.succeed([row, found] as const)
      )
    )

  const infoOf = (row: VectorCollectionRow, count: number): CollectionInfo => ({
    name: row.name,
    dimension: row.dimension,
    metric: row.metric,
    count
  })

  const upsert = (
    name: unknown,
    documents: ReadonlyArray<Decoded>,
    now: number
  ): Effect.Effect<ReadonlyArray<string>, NotFound | InvalidInput | StorageError> =>
    Effect.gen(function* () {
      const collection = yield* resolve(name)
      const ids: Array<string> = []
      const byId = new Map<string, VectorRow>()
      for (let i = 0; i < documents.length; i++) {
        const document = documents[i]!
        const vector = yield* toFloat32(document.vector, collection.dimension, ["documents", i, "vector"])
        const id = document.id ?? uuidv7At(now)
        const metadata = document.metadata ?? {}
        ids.push(id)
        byId.delete(id)
        const metadataJson = document.metadataJson ?? JSON.stringify(metadata)
        byId.set(id, { id, vector, metadata, metadataJson, content: document.content })
      }
      if (byId.size === 0) return ids
      const written = yield* driver.upsert(collection, Array.from(byId.values()))
      // the collection was dropped (or dropped and re-created) since it was read: check again
      return written ? ids : yield* upsert(name, documents, now)
    })

  return traced(
    "VectorStore",
    driver,
    VectorStore.of({
      createCollection: (name, options) =>
        Effect.gen(function* () {
          const key = yield* decodeName(name, ["name"])
          const { dimension, metric } = yield* decodeCreate(options, ["options"])
          const now = yield* Clock.currentTimeMillis
          const row: VectorCollectionRow = {
            name: key,
            uid: uuidv7At(now),
            dimension,
            metric: metric ?? "cosine",
            createdAt: now
          }
          if (!(yield* driver.createCollection(row))) {
            return yield* new Conflict({ entity: collectionEntity, id: key, expected: 0, actual: 1, reason: "exists" })
          }
          return infoOf(row, 0)
        }),
      describeCollection: (name) =>
        Effect.flatMap(resolve(name), (row) => Effect.map(driver.count(row), (count) => infoOf(row, count))),
      listCollections: () =>
        Effect.map(driver.listCollections(), (rows) =>
          rows
            .map(({ count, row }) => infoOf(row, count))
            .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        ),
      dropCollection: (name) =>
        Effect.flatMap(checkId(collectionEntity, name), (key) =>
          key === undefined ? Effect.succeed(false) : driver.dropCollection(key)
        ),
      upsert: (collection, documents) =>
        Effect.gen(function* () {
          if (typeof collection !== "string") yield* checkId(collectionEntity, collection)
          const decoded = fastDocuments(documents) ?? (yield* decodeDocuments(documents, ["documents"]))
          const now = yield* Clock.currentTimeMillis
          return yield* upsert(collection, decoded, now)
        }),
      get: (collection, ids) =>
        Effect.gen(function* () {
          const wanted = yield* decodeIds(ids, ["ids"])
          const row = yield* resolve(collection)
          const unique = Array.from(new Set(wanted.filter((id) => Schema.is(VectorId)(id))))
          if (unique.length === 0) return []
          const found = yield* driver.get(row, unique)
          const byId = new Map(found.map((record) => [record.id, record]))
          return unique.flatMap((id) => {
            const record = byId.get(id)
            return record === undefined ? [] : [record]
          })
        }),
      delete: (collection, target) =>
        Effect.gen(function* () {
          if (Array.isArray(target)) {
            const ids = yield* decodeIds(target, ["ids"])
            const row = yield* resolve(collection)
            const unique = Array.from(new Set(ids.filter((id) => Schema.is(VectorId)(id))))
            if (unique.length === 0) return 0
            const deleted = yield* driver.delete(row, unique, undefined)
            if (deleted === "missing") return yield* new NotFound({ entity: collectionEntity, id: row.name })
            return (deleted as ReadonlyArray<string>).length
          }
          if (typeof target !== "object" || target === null) {
            return yield* InvalidInput.single(entity, `must be an array of ids or { filter }, got ${kindOf(target)}`, [
              "target"
            ])
          }
          const predicate = yield* compileFilter((target as { filter?: unknown }).filter, ["target", "filter"])
          while (true) {
            const [row, { index, revision }] = yield* snapshot(collection)
            const ids: Array<string> = []
            for (let slot = 0; slot < index.size; slot++)
              if (predicate(index.metadata[slot]!)) ids.push(index.ids[slot]!)
            if (ids.length === 0) return 0
            const deleted = yield* driver.delete(row, ids, revision)
            if (deleted === "missing") return yield* new NotFound({ entity: collectionEntity, id: row.name })
            if (deleted !== "stale") return deleted.length
          }
        }),
      count: (collection, options) =>
        Effect.gen(function* () {
          const { filter } = yield* decodeCount(options)
          const predicate: Predicate | undefined =
            filter === undefined ? undefined : yield* compileFilter(filter, ["options", "filter"])
          if (predicate === undefined) return yield* driver.count(yield* resolve(collection))
          const [, { index }] = yield* snapshot(collection)
          let count = 0
          for (let slot = 0; slot < index.size; slot++) if (predicate(index.metadata[slot]!)) count++
          return count
        }),
      search: (collection, vector, options) =>
        Effect.gen(function* () {
          const given = yield* decodeVector(vector, ["vector"])
          const { filter, includeVectors, minScore, topK } = yield* decodeSearch(options)
          const predicate = filter === undefined ? undefined : yield* compileFilter(filter, ["options", "filter"])
          const k = topK ?? 10
          const results = (index: VectorIndex, query: Float32Array) =>
            index.search(query, k, predicate, minScore).map(({ score, slot }): VectorSearchResult => {
              const content = index.content[slot]
              const result: { -readonly [K in keyof VectorSearchResult]: VectorSearchResult[K] } = {
                id: index.ids[slot]!,
                score,
                metadata: copyVectorJson(index.metadata[slot]!)
              }
              if (content !== undefined) result.content = content
              if (includeVectors === true) result.vector = index.vector(slot)
              return result
            })
          if (predicate === undefined && driver.nearest !== undefined) {
            const row = yield* resolve(collection)
            const query = yield* toFloat32(given, row.dimension, ["vector"])
            const candidates = yield* driver.nearest(row, query, k)
            if (candidates !== undefined) return results(candidates, query)
          }
          const [row, { index }] = yield* snapshot(collection)
          return results(index, yield* toFloat32(given, row.dimension, ["vector"]))
        })
    })
  )
}
