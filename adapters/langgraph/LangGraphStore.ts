/**
 * `LangGraphStore`: LangGraph's long-term memory store (`BaseStore`: namespaced items with `get`, `put`, `delete`,
 * `search` and `listNamespaces`) over `AgentMemoryStore`, with semantic search through `Embeddings` and `VectorStore`.
 *
 * Why `AgentMemoryStore`: an item is a JSON record under a key with creation and update times and an optional expiry,
 * which is exactly an agent memory record (kept `createdAt` on replace, `updatedAt`, a TTL read against the Effect
 * `Clock`, expired records invisible at once and swept by `deleteExpired`), listed by key prefix. `StateStore` has no
 * expiry; `VectorStore` holds the embeddings of the items only when an index is configured.
 *
 * - Every item is one record of the agent `agentId` (default `"langgraph-store"`), keyed by its namespace and key:
 *   each label followed by `:`, then `.` and the key (`["users", "u1"]`, `"prefs"` → `users:u1:.prefs`), so a
 *   namespace prefix is a key prefix. LangGraph's labels cannot hold `.` or `:`; the whole key is at most 255
 *   characters.
 * - `search` filters item values with the vector store's filter language (Mongo-style: LangGraph's `$eq`, `$ne`,
 *   `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`, and more), oldest item first. With a `query` and an `index`, items
 *   are ranked by the cosine similarity of their embedded fields (each field one vector in the collection named by
 *   the index, best field per item) and only indexed items are returned.
 * - A put's TTL (`put(…, { ttl })`, else `defaultTtl`) makes the item expire that long after the put; `sweep()` deletes
 *   expired items and their vectors.
 */
import {
  BaseStore,
  getTextAtPath,
  type Item,
  type ListNamespacesOperation,
  type MatchCondition,
  type Operation,
  type OperationResults,
  type PutOperation,
  type SearchItem,
  type SearchOperation,
  validateNamespace
} from "@langchain/langgraph-checkpoint"
import { Clock, DateTime, Duration, Effect, Either, Option } from "effect"
import { AgentMemoryStore, type MemoryRecord } from "../../src/AgentMemory.ts"
import { Embeddings } from "../../src/Embeddings.ts"
import { InvalidInput } from "../../src/Errors.ts"
import { maxLimit } from "../../src/Page.ts"
import { maxVectorTopK, VectorStore } from "../../src/Vector.ts"
import { compile, type Predicate } from "../../src/VectorFilter.ts"
import { promiseRunner, type RuntimeLike } from "../Runner.ts"

/** The services a `LangGraphStore` runs on (every bundle provides them). */
export type LangGraphStoreServices = AgentMemoryStore | VectorStore | Embeddings

/** Semantic search: which fields of an item are embedded, and the `VectorStore` collection of their vectors. */
export interface LangGraphIndexOptions {
  /** Paths of the text to embed (`"$"`: the whole value as JSON, the default; `"title"`, `"tags[*]"`…). */
  readonly fields?: ReadonlyArray<string>
  /** The collection of the vectors (default the store's `agentId`), created with the `Embeddings` dimension. */
  readonly collection?: string
}

/** Options of `LangGraphStore`. */
export interface LangGraphStoreOptions {
  /** The `AgentMemoryStore` agent whose records the items are (default `"langgraph-store"`). */
  readonly agentId?: string
  /** Semantic search through the runtime's `Embeddings` and `VectorStore`; without it `query` is ignored. */
  readonly index?: LangGraphIndexOptions
  /** How long an item lives after a put that gives no `ttl` (default: until deleted). */
  readonly defaultTtl?: Duration.DurationInput
}

/** Options of a put beyond LangGraph's: `ttl`, how long the item lives after this put. */
export interface LangGraphPutOptions {
  readonly ttl?: Duration.DurationInput
}

/** A put operation, which may carry a `ttl` (see `LangGraphPutOptions`). */
type TimedPut = PutOperation & LangGraphPutOptions

const entity = "LangGraphStore"
/** The longest stored key: `AgentMemoryStore`'s. */
const maxKey = 255

/** The record key of an item: each label followed by `:`, then `.` and the key. */
const prefixOf = (namespace: ReadonlyArray<string>): string => namespace.map((label) => `${label}:`).join("")
const recordKey = (namespace: ReadonlyArray<string>, key: string): string => `${prefixOf(namespace)}.${key}`

/** The namespace and key of a record key. */
const itemPath = (stored: string): { readonly namespace: Array<string>; readonly key: string } => {
  const dot = stored.indexOf(".")
  return { namespace: stored.slice(0, dot - 1).split(":"), key: stored.slice(dot + 1) }
}

const itemOf = (record: MemoryRecord): Item => {
  const { namespace, key } = itemPath(record.key)
  return {
    namespace,
    key,
    value: record.value as Record<string, unknown>,
    createdAt: DateTime.toDate(record.createdAt),
    updatedAt: DateTime.toDate(record.updatedAt)
  }
}

/** Whether a namespace matches a prefix or suffix condition (`"*"` matches any label). */
const matchesCondition = (namespace: ReadonlyArray<string>, condition: MatchCondition): boolean => {
  const { path } = condition
  if (path.length > namespace.length) return false
  const start = condition.matchType === "prefix" ? 0 : namespace.length - path.length
  return path.every((label, i) => label === "*" || label === namespace[start + i])
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => {
  if (typeof value !== "object" || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** The texts of `value` to embed at `field`: `"$"` is the whole value as JSON. */
const textsAt = (value: Record<string, unknown>, field: string): Array<string> =>
  field === "$" ? [JSON.stringify(value)] : getTextAtPath(value, field)

/**
 * LangGraph's `BaseStore` over `AgentMemoryStore` (and `VectorStore` + `Embeddings` for semantic search). Build it from
 * a runtime providing them (any bundle does): `new LangGraphStore(runtime, { index: { fields: ["text"] } })`, or
 * `yield* LangGraphStore.make(options)` inside an Effect program. A failed call rejects with an `AdapterError`.
 */
export class LangGraphStore extends BaseStore {
  /** A store on the services of the running program. */
  static make(options: LangGraphStoreOptions = {}): Effect.Effect<LangGraphStore, never, LangGraphStoreServices> {
    return Effect.map(Effect.runtime<LangGraphStoreServices>(), (runtime) => new LangGraphStore(runtime, options))
  }

  private readonly run: <A, E>(operation: string, effect: Effect.Effect<A, E, LangGraphStoreServices>) => Promise<A>
  private readonly agentId: string
  private readonly fields: ReadonlyArray<string>
  private readonly collection: string | undefined
  private readonly defaultTtl: Duration.Duration
  /** Whether the vector collection is known to exist with the right dimension. */
  private collectionReady = false

  constructor(runtime: RuntimeLike<LangGraphStoreServices>, options: LangGraphStoreOptions = {}) {
    super()
    this.run = promiseRunner(runtime, "LangGraphStore")
    this.agentId = options.agentId ?? "langgraph-store"
    this.fields = options.index?.fields ?? ["$"]
    this.collection = options.index === undefined ? undefined : (options.index.collection ?? this.agentId)
    this.defaultTtl = Duration.decode(options.defaultTtl ?? Duration.infinity)
  }

  /** As `BaseStore.put`, with `options.ttl`: the item expires that long after this put. */
  override async put(
    namespace: Array<string>,
    key: string,
    value: Record<string, any>,
    index?: false | Array<string>,
    options: LangGraphPutOptions = {}
  ): Promise<void> {
    validateNamespace(namespace)
    const op: TimedPut = { namespace, key, value }
    if (index !== undefined) op.index = index
    await this.batch([options.ttl === undefined ? op : { ...op, ttl: options.ttl }])
  }

  /** Deletes the expired items (and their vectors); how many items it deleted. */
  sweep(): Promise<number> {
    const collection = this.collection
    return this.run(
      "sweep",
      Effect.gen(function* () {
        const memories = yield* AgentMemoryStore
        let total = 0
        while (true) {
          const deleted = yield* memories.deleteExpired({ batch: 1000 })
          total += deleted
          if (deleted < 1000) break
        }
        if (collection !== undefined) {
          const vectors = yield* VectorStore
          const now = yield* Clock.currentTimeMillis
          yield* vectors
            .delete(collection, { filter: { expiresAt: { $lte: now } } })
            .pipe(Effect.catchTag("NotFound", () => Effect.succeed(0)))
        }
        return total
      })
    )
  }

  /**
   * Runs the operations: gets, searches and namespace listings first, then the puts and deletes (the last one of a
   * key wins), as LangGraph's stores do. A put operation may carry a `ttl`.
   */
  override async batch<Op extends Array<Operation>>(operations: Op): Promise<OperationResults<Op>> {
    const puts = new Map<string, TimedPut>()
    for (const op of operations) {
      if ("namespacePrefix" in op) validateNamespace(op.namespacePrefix, { allowEmpty: true, allowReservedRoot: true })
      else if ("namespace" in op) {
        validateNamespace(op.namespace, { allowReservedRoot: !("value" in op) || op.value === null })
        const stored = recordKey(op.namespace, op.key)
        if (stored.length > maxKey) {
          throw new RangeError(
            `LangGraphStore: the namespace and key ${JSON.stringify(stored)} are ${stored.length} characters long ` +
              `(labels and key together, with a separator each), more than ${maxKey}`
          )
        }
        if ("value" in op) {
          if (op.value !== null && !isPlainObject(op.value)) {
            throw new TypeError(`LangGraphStore.put: the value of "${op.key}" must be a plain JSON object or null`)
          }
          puts.delete(stored)
          puts.set(stored, op)
          const { ttl } = op as TimedPut
          if (ttl !== undefined && Option.isNone(Duration.decodeUnknown(ttl))) {
            throw new TypeError(`LangGraphStore.put: the ttl of "${op.key}" must be a duration, got ${String(ttl)}`)
          }
        }
      }
    }
    const self = this
    const results = await this.run(
      "batch",
      Effect.gen(function* () {
        const results: Array<unknown> = []
        for (const op of operations) {
          if ("namespacePrefix" in op) results.push(yield* self.searchItems(op))
          else if ("matchConditions" in op || !("namespace" in op)) results.push(yield* self.namespacesOf(op))
          else if ("value" in op) results.push(undefined)
          else results.push(yield* self.item(op.namespace, op.key))
        }
        if (puts.size > 0) yield* self.write(Array.from(puts.entries()))
        return results
      })
    )
    return results as OperationResults<Op>
  }

  private item(namespace: ReadonlyArray<string>, key: string) {
    return Effect.flatMap(AgentMemoryStore, (memories) =>
      Effect.map(memories.find(this.agentId, recordKey(namespace, key)), (record) =>
        Option.isSome(record) ? itemOf(record.value) : null
      )
    )
  }

  /** The filter of a search as a predicate over item values (`InvalidInput` when it is malformed). */
  private static predicate(filter: SearchOperation["filter"]): Effect.Effect<Predicate, InvalidInput> {
    if (filter === undefined) return Effect.succeed(() => true)
    return Either.match(compile(entity, filter), { onLeft: Effect.fail, onRight: Effect.succeed })
  }

  private searchItems(op: SearchOperation): Effect.Effect<Array<SearchItem>, unknown, LangGraphStoreServices> {
    const offset = op.offset ?? 0
    const limit = op.limit ?? 10
    const prefix = prefixOf(op.namespacePrefix)
    const agentId = this.agentId
    const collection = this.collection
    const semantic = op.query !== undefined && collection !== undefined
    const self = this
    return Effect.gen(function* () {
      const matches = yield* LangGraphStore.predicate(op.filter)
      const memories = yield* AgentMemoryStore
      if (!semantic) {
        const found: Array<SearchItem> = []
        let cursor: string | undefined
        let skip = offset
        do {
          const page = yield* memories.list(agentId, {
            limit: maxLimit,
            ...(prefix === "" ? {} : { prefix }),
            ...(cursor === undefined ? {} : { cursor })
          })
          for (const record of page.items) {
            if (!matches(record.value as Record<string, unknown>)) continue
            if (skip > 0) skip--
            else found.push(itemOf(record))
            if (found.length >= limit) return found
          }
          cursor = Option.getOrUndefined(page.nextCursor)
        } while (cursor !== undefined)
        return found
      }
      yield* self.ensureCollection
      const vectors = yield* VectorStore
      const embeddings = yield* Embeddings
      const [query] = yield* embeddings.embed([op.query!])
      const now = yield* Clock.currentTimeMillis
      const filter = {
        $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }],
        ...(prefix === "" ? {} : { namespaces: prefix })
      }
      for (let topK = Math.min(maxVectorTopK, Math.max(50, (offset + limit) * 4)); ; topK *= 4) {
        const hits = yield* vectors.search(collection!, query!, { topK: Math.min(topK, maxVectorTopK), filter })
        const best = new Map<string, number>()
        for (const hit of hits)
          if (!best.has(hit.metadata["item"] as string)) best.set(hit.metadata["item"] as string, hit.score)
        const records = yield* Effect.forEach(best.keys(), (key) => memories.find(agentId, key), { concurrency: 8 })
        const found: Array<SearchItem> = []
        for (const record of records) {
          if (Option.isNone(record) || !matches(record.value.value as Record<string, unknown>)) continue
          found.push({ ...itemOf(record.value), score: best.get(record.value.key)! })
        }
        if (found.length >= offset + limit || hits.length < topK || topK >= maxVectorTopK) {
          return found.slice(offset, offset + limit)
        }
      }
    })
  }

  /** LangGraph's `listNamespaces`: the distinct namespaces matching every condition, cut at `maxDepth`, sorted. */
  private namespacesOf(op: ListNamespacesOperation) {
    const agentId = this.agentId
    const conditions = op.matchConditions ?? []
    // A prefix condition without wildcards narrows the records read.
    const exact = conditions.find((c) => c.matchType === "prefix" && !c.path.includes("*"))
    const prefix = exact === undefined ? "" : prefixOf(exact.path)
    return Effect.gen(function* () {
      const memories = yield* AgentMemoryStore
      const seen = new Map<string, Array<string>>()
      let cursor: string | undefined
      do {
        const page = yield* memories.list(agentId, {
          limit: maxLimit,
          ...(prefix === "" ? {} : { prefix }),
          ...(cursor === undefined ? {} : { cursor })
        })
        for (const record of page.items) {
          const { namespace } = itemPath(record.key)
          if (!conditions.every((condition) => matchesCondition(namespace, condition))) continue
          const kept = op.maxDepth === undefined ? namespace : namespace.slice(0, op.maxDepth)
          seen.set(kept.join(":"), kept)
        }
        cursor = Option.getOrUndefined(page.nextCursor)
      } while (cursor !== undefined)
      const sorted = Array.from(seen.keys()).sort()
      const offset = op.offset ?? 0
      return sorted.slice(offset, offset + (op.limit ?? sorted.length)).map((key) => seen.get(key)!)
    })
  }

  /** Creates the vector collection on first use, or checks that the existing one has the embeddings' dimension. */
  private get ensureCollection() {
    const name = this.collection!
    return Effect.suspend(() => {
      if (this.collectionReady) return Effect.void
      return Effect.gen(this, function* () {
        const vectors = yield* VectorStore
        const { dimension, model } = yield* Embeddings
        const info = yield* vectors
          .createCollection(name, { dimension })
          .pipe(Effect.catchTag("Conflict", () => vectors.describeCollection(name)))
        if (info.dimension !== dimension) {
          return yield* InvalidInput.single(
            entity,
            `is the collection "${name}" of dimension ${info.dimension}, but the embeddings (${model}) have ${dimension}`,
            ["index", "collection"]
          )
        }
        this.collectionReady = true
      })
    })
  }

  /** The puts and deletes, by record key: items first, then (with an index) their vectors. */
  private write(puts: ReadonlyArray<readonly [string, TimedPut]>) {
    const agentId = this.agentId
    const collection = this.collection
    const defaultTtl = this.defaultTtl
    const fields = this.fields
    const self = this
    return Effect.gen(function* () {
      const memories = yield* AgentMemoryStore
      const now = yield* Clock.currentTimeMillis
      const texts: Array<{ key: string; field: string; text: string; namespaces: Array<string>; expiresAt?: number }> =
        []
      for (const [key, op] of puts) {
        if (op.value === null) {
          yield* memories.delete(agentId, key)
          continue
        }
        const ttl = op.ttl === undefined ? defaultTtl : Duration.decode(op.ttl)
        yield* memories.put({ agentId, key, value: op.value, ...(Duration.isFinite(ttl) ? { ttl } : {}) })
        if (collection === undefined || op.index === false) continue
        const namespaces = op.namespace.map((_, i) => prefixOf(op.namespace.slice(0, i + 1)))
        const expiresAt = Duration.isFinite(ttl) ? { expiresAt: now + Duration.toMillis(ttl) } : {}
        for (const field of op.index ?? fields) {
          textsAt(op.value, field).forEach((text, i, all) =>
            texts.push({ key, field: all.length > 1 ? `${field}.${i}` : field, text, namespaces, ...expiresAt })
          )
        }
      }
      if (collection === undefined) return
      yield* self.ensureCollection
      const vectors = yield* VectorStore
      const embeddings = yield* Embeddings
      for (const [key] of puts) yield* vectors.delete(collection, { filter: { item: key } })
      if (texts.length === 0) return
      const embedded = yield* embeddings.embed(texts.map((t) => t.text))
      yield* vectors.upsert(
        collection,
        texts.map(({ key, field, namespaces, expiresAt }, i) => ({
          vector: embedded[i]!,
          metadata: { item: key, field, namespaces, ...(expiresAt === undefined ? {} : { expiresAt }) }
        }))
      )
    })
  }
}
