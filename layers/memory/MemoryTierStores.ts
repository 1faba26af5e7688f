/**
 * The memory tier stores in memory: plain tables in the shared
 * `MemoryDatabase`, each operation one synchronous step (so deleting items and
 * their tier metadata is atomic), rows and vectors copied in and out.
 */
import { Effect, Layer } from "effect"
import { Embeddings } from "../../src/Embeddings.ts"
import { isExpired } from "../../src/Expiry.ts"
import {
  type MemoryCandidate,
  type MemoryEmbedding,
  type FactDriver,
  type FactRow,
  FactStore,
  type MemoryItemDriver,
  type MemoryItemFilter,
  makeFactStore,
  makeMemoryMessageStore,
  makeMentalModelStore,
  makeSummaryStore,
  makeTierMetadataStore,
  type MemoryMessageDriver,
  type MemoryMessageRow,
  MemoryMessageStore,
  type MentalModelDriver,
  type MentalModelRow,
  MentalModelStore,
  type MentalModelVersionRow,
  type SummaryDriver,
  type SummaryRow,
  SummaryStore,
  type TierMetadataDriver,
  type TierMetadataRow,
  TierMetadataStore
} from "../../src/Memory.ts"
import type { Keyset, PageQuery } from "../../src/Page.ts"
import { compareKeys, MemoryDatabase, type Tables } from "./MemoryDatabase.ts"

type Stored<Row> = Row & MemoryEmbedding

/** One keyset page of `rows` (any order) by `keyOf`: sorted, after the cursor, skipping `offset`, up to `limit`. */
const pageOf = <Row>(rows: Array<Row>, keyOf: (row: Row) => Keyset, page: PageQuery): Array<Row> => {
  const sign = page.order === "asc" ? 1 : -1
  const keyed = rows.map((row) => [keyOf(row), row] as const).sort((a, b) => sign * compareKeys(a[0], b[0]))
  const after = page.after
  const start = after === undefined ? 0 : keyed.findIndex(([key]) => sign * compareKeys(key, after) > 0)
  if (start < 0) return []
  return keyed.slice(start + page.offset, start + page.offset + page.limit).map(([, row]) => row)
}

/** A copy of a stored row without its embedding. */
const plain = <Row>(stored: Stored<Row>): Row => {
  const { model: _, vector: __, ...row } = stored
  return row as unknown as Row
}

/** A copy of a row to store: its vector copied too. */
const own = <Row>(row: Stored<Row>): Stored<Row> => ({ ...row, vector: new Uint8Array(row.vector) })

const candidate = (id: string, row: MemoryEmbedding): MemoryCandidate => ({ id, vector: new Uint8Array(row.vector) })

/** The shared tier metadata table: every item store deletes an item's metadata with the item. */
const metadataTable = (db: Tables) => db.table("tier_metadata", (row: TierMetadataRow) => [row.createdAt, row.itemId])

/** A `MemoryMessageDriver` over the shared in-memory tables. */
export const messageDriver = Effect.map(MemoryDatabase, (db): MemoryMessageDriver => {
  const messages = db.table("tier_messages", (row: Stored<MemoryMessageRow>) => [row.seq, row.id])
  const lastSeq = db.map<string, number>("tier_message_seq")
  const metadata = metadataTable(db)
  const remove = (id: string) => {
    metadata.delete(id)
    return messages.delete(id)
  }
  return {
    insert: (rows) =>
      Effect.sync(() => {
        const ids = new Set<string>()
        for (const row of rows) {
          if (messages.has(row.id) || ids.has(row.id)) return "duplicate"
          ids.add(row.id)
        }
        return rows.map((row) => {
          const seq = (lastSeq.get(row.conversationId) ?? 0) + 1
          lastSeq.set(row.conversationId, seq)
          messages.set(row.id, own(Object.assign({}, row, { seq })))
          return seq
        })
      }),
    getMany: (ids) =>
      Effect.sync(() =>
        ids.flatMap((id) => {
          const row = messages.get(id)
          return row === undefined ? [] : [plain(row)]
        })
      ),
    list: (conversationId, now, page) =>
      Effect.sync(() =>
        messages.page(page, (row) => row.conversationId === conversationId && !isExpired(row.expiresAt, now)).map(plain)
      ),
    listAll: (conversationId, now, page) =>
      Effect.sync(() =>
        pageOf(
          Array.from(messages.values()).filter(
            (row) =>
              (conversationId === undefined || row.conversationId === conversationId) && !isExpired(row.expiresAt, now)
          ),
          (row) => [row.createdAt, row.id],
          page
        ).map(plain)
      ),
    candidates: (conversationId, model, now) =>
      Effect.sync(() => {
        const found: Array<MemoryCandidate> = []
        for (const row of messages.values()) {
          if (conversationId !== undefined && row.conversationId !== conversationId) continue
          if (row.model === model && !isExpired(row.expiresAt, now)) found.push(candidate(row.id, row))
        }
        return found
      }),
    delete: (id) => Effect.sync(() => remove(id)),
    deleteByConversation: (conversationId) =>
      Effect.sync(() => {
        const ids = Array.from(messages.values())
          .filter((row) => row.conversationId === conversationId)
          .map((row) => row.id)
        for (const id of ids) remove(id)
        return ids.length
      }),
    deleteExpired: (now, batch) =>
      Effect.sync(() => {
        const expired = Array.from(messages.values())
          .filter((row) => isExpired(row.expiresAt, now))
          .sort((a, b) => a.expiresAt! - b.expiresAt!)
          .slice(0, batch)
        for (const row of expired) remove(row.id)
        return expired.length
      })
  }
})

/** An `MemoryItemDriver` over the in-memory table `name` (summaries, facts). */
const itemDriver = <Row extends { readonly id: string; readonly conversationId: string; readonly createdAt: number }>(
  name: string,
  matches: (row: Row, filter: MemoryItemFilter) => boolean
) =>
  Effect.map(MemoryDatabase, (db): MemoryItemDriver<Row> => {
    const items = db.table(name, (row: Stored<Row>) => [row.createdAt, row.id])
    const metadata = metadataTable(db)
    const remove = (id: string) => {
      metadata.delete(id)
      return items.delete(id)
    }
    return {
      insert: (rows) =>
        Effect.sync(() => {
          if (rows.some((row) => items.has(row.id))) return false
          for (const row of rows) items.set(row.id, own(row))
          return true
        }),
      getMany: (ids) =>
        Effect.sync(() =>
          ids.flatMap((id) => {
            const row = items.get(id)
            return row === undefined ? [] : [plain<Row>(row)]
          })
        ),
      list: (filter, page) =>
        Effect.sync(() =>
          items
            .page(
              page,
              (row) =>
                (filter.conversationId === undefined || row.conversationId === filter.conversationId) &&
                matches(row, filter)
            )
            .map((row) => plain<Row>(row))
        ),
      candidates: (conversationId, model) =>
        Effect.sync(() => {
          const found: Array<MemoryCandidate> = []
          for (const row of items.values()) {
            if (conversationId !== undefined && row.conversationId !== conversationId) continue
            if (row.model === model) found.push(candidate(row.id, row))
          }
          return found
        }),
      delete: (id) => Effect.sync(() => remove(id)),
      deleteByConversation: (conversationId) =>
        Effect.sync(() => {
          const ids = Array.from(items.values())
            .filter((row) => row.conversationId === conversationId)
            .map((row) => row.id)
          for (const id of ids) remove(id)
          return ids.length
        })
    }
  })

/** A `SummaryDriver` over the shared in-memory tables. */
export const summaryDriver: Effect.Effect<SummaryDriver, never, MemoryDatabase> = itemDriver<SummaryRow>(
  "tier_summaries",
  () => true
)

/** A `FactDriver` over the shared in-memory tables. */
export const factDriver: Effect.Effect<FactDriver, never, MemoryDatabase> = itemDriver<FactRow>(
  "tier_facts",
  (row, filter) => filter.kind === undefined || row.kind === filter.kind
)

/** A `MentalModelDriver` over the shared in-memory tables: models by id, ids by name, versions by model. */
export const mentalModelDriver = Effect.map(MemoryDatabase, (db): MentalModelDriver => {
  const models = db.table("tier_mental_models", (row: Stored<MentalModelRow>) => [row.createdAt, row.id])
  const names = db.map<string, string>("tier_mental_model_names")
  const versions = db.map<string, Array<MentalModelVersionRow>>("tier_mental_model_versions")
  const metadata = metadataTable(db)
  const versionOf = (row: MentalModelRow): MentalModelVersionRow => ({
    modelId: row.id,
    version: row.version,
    content: row.content,
    metadata: row.metadata,
    createdAt: row.updatedAt
  })
  return {
    insert: (row) =>
      Effect.sync(() => {
        if (models.has(row.id) || names.has(row.name)) return false
        models.set(row.id, own(row))
        names.set(row.name, row.id)
        versions.set(row.id, [versionOf(row)])
        return true
      }),
    replace: (row, previous) =>
      Effect.sync(() => {
        const current = models.get(row.id)
        if (current === undefined || current.version !== previous) return false
        models.set(row.id, own(row))
        versions.get(row.id)!.push(versionOf(row))
        return true
      }),
    get: (id) =>
      Effect.sync(() => {
        const row = models.get(id)
        return row && plain(row)
      }),
    getByName: (name) =>
      Effect.sync(() => {
        const id = names.get(name)
        const row = id === undefined ? undefined : models.get(id)
        return row && plain(row)
      }),
    getMany: (ids) =>
      Effect.sync(() =>
        ids.flatMap((id) => {
          const row = models.get(id)
          return row === undefined ? [] : [plain(row)]
        })
      ),
    list: (page) => Effect.sync(() => models.page(page, () => true).map(plain)),
    history: (id) => Effect.sync(() => (versions.get(id) ?? []).map((row) => ({ ...row }))),
    candidates: (model) =>
      Effect.sync(() => {
        const found: Array<MemoryCandidate> = []
        for (const row of models.values()) if (row.model === model) found.push(candidate(row.id, row))
        return found
      }),
    delete: (id) =>
      Effect.sync(() => {
        const row = models.get(id)
        if (row === undefined) return false
        models.delete(id)
        names.delete(row.name)
        versions.delete(id)
        metadata.delete(id)
        return true
      })
  }
})

/** A `TierMetadataDriver` over the shared in-memory tables. */
export const tierMetadataDriver = Effect.map(MemoryDatabase, (db): TierMetadataDriver => {
  const metadata = metadataTable(db)
  return {
    insert: (rows) =>
      Effect.sync(() => {
        if (rows.some((row) => metadata.has(row.itemId))) return false
        for (const row of rows) metadata.set(row.itemId, { ...row })
        return true
      }),
    getMany: (ids) =>
      Effect.sync(() =>
        ids.flatMap((id) => {
          const row = metadata.get(id)
          return row === undefined ? [] : [{ ...row }]
        })
      ),
    update: (row, previous) =>
      Effect.sync(() => {
        const current = metadata.get(row.itemId)
        if (current === undefined || current.version !== previous) return undefined
        const stored: TierMetadataRow = {
          ...current,
          tier: row.tier,
          importance: row.importance,
          authority: row.authority,
          updatedAt: row.updatedAt,
          version: row.version
        }
        metadata.set(row.itemId, stored)
        return { ...stored }
      }),
    delete: (id) => Effect.sync(() => metadata.delete(id)),
    listByTier: (tier, page) =>
      Effect.sync(() => metadata.page(page, (row) => row.tier === tier).map((row) => ({ ...row }))),
    count: (tier) =>
      Effect.sync(() => {
        let n = 0
        for (const row of metadata.values()) if (tier === undefined || row.tier === tier) n++
        return n
      }),
    countByTier: () =>
      Effect.sync(() => {
        const counts = new Map<string, number>()
        for (const row of metadata.values()) counts.set(row.tier, (counts.get(row.tier) ?? 0) + 1)
        return [...counts]
      }),
    recordAccess: (ids, now) =>
      Effect.sync(() => {
        let n = 0
        for (const id of new Set(ids)) {
          const row = metadata.get(id)
          if (row === undefined) continue
          metadata.set(id, { ...row, accessCount: row.accessCount + 1, lastAccessed: Math.max(row.lastAccessed, now) })
          n++
        }
        return n
      })
  }
})

/** `MemoryMessageStore` over a `MemoryDatabase`, embedding with the `Embeddings` in context. */
export const messageLayerWithDatabase: Layer.Layer<MemoryMessageStore, never, MemoryDatabase | Embeddings> =
  Layer.effect(MemoryMessageStore, Effect.zipWith(messageDriver, Embeddings, makeMemoryMessageStore))

/** `SummaryStore` over a `MemoryDatabase`, embedding with the `Embeddings` in context. */
export const summaryLayerWithDatabase: Layer.Layer<SummaryStore, never, MemoryDatabase | Embeddings> = Layer.effect(
  SummaryStore,
  Effect.zipWith(summaryDriver, Embeddings, makeSummaryStore)
)

/** `FactStore` over a `MemoryDatabase`, embedding with the `Embeddings` in context. */
export const factLayerWithDatabase: Layer.Layer<FactStore, never, MemoryDatabase | Embeddings> = Layer.effect(
  FactStore,
  Effect.zipWith(factDriver, Embeddings, makeFactStore)
)

/** `MentalModelStore` over a `MemoryDatabase`, embedding with the `Embeddings` in context. */
export const mentalModelLayerWithDatabase: Layer.Layer<MentalModelStore, never, MemoryDatabase | Embeddings> =
  Layer.effect(MentalModelStore, Effect.zipWith(mentalModelDriver, Embeddings, makeMentalModelStore))

/** `TierMetadataStore` over a `MemoryDatabase`. */
export const tierMetadataLayerWithDatabase: Layer.Layer<TierMetadataStore, never, MemoryDatabase> = Layer.effect(
  TierMetadataStore,
  Effect.map(tierMetadataDriver, makeTierMetadataStore)
)

/** The five tier stores. */
export type TierStores = MemoryMessageStore | SummaryStore | FactStore | MentalModelStore | TierMetadataStore

/** The five tier stores over one `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<TierStores, never, MemoryDatabase | Embeddings> = Layer.mergeAll(
  messageLayerWithDatabase,
  summaryLayerWithDatabase,
  factLayerWithDatabase,
  mentalModelLayerWithDatabase,
  tierMetadataLayerWithDatabase
)

/** The five tier stores in memory, with their own `MemoryDatabase`, embedding with the `Embeddings` in context. */
export const layer: Layer.Layer<TierStores, never, Embeddings> = layerWithDatabase.pipe(
  Layer.provide(MemoryDatabase.layer)
)
