/**
 * `VectorStore` in memory: each collection is a `VectorIndex` (all vectors in
 * one contiguous `Float32Array`), scanned in place by searches. Vectors are
 * copied in and out; metadata is held as the decoded copy and copied out.
 */
import { Effect, Layer } from "effect"
import {
  type VectorCollectionRow,
  makeVectorStore,
  type VectorDriver,
  type VectorIndexOptions,
  type VectorRecord,
  VectorStore
} from "../../src/Vector.ts"
import { copyVectorJson } from "../../src/Vector.ts"
import { VectorIndex } from "../../src/VectorFilter.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

interface Collection {
  readonly row: VectorCollectionRow
  readonly index: VectorIndex
  revision: number
}

/** A `VectorDriver` over the shared in-memory maps: one `VectorIndex` per collection. */
export const driverWith = (options: VectorIndexOptions = {}) =>
  Effect.map(MemoryDatabase, (db): VectorDriver => {
    const collections = db.map<string, Collection>("vector_collections")
    const live = (row: VectorCollectionRow): Collection | undefined => {
      const found = collections.get(row.name)
      return found !== undefined && found.row.uid === row.uid ? found : undefined
    }
    return {
      createCollection: (row) =>
        Effect.sync(() => {
          if (collections.has(row.name)) return false
          const index = new VectorIndex(row.dimension, row.metric, 16, options.approximateFrom)
          collections.set(row.name, { row: { ...row }, index, revision: 0 })
          return true
        }),
      collection: (name) =>
        Effect.sync(() => {
          const found = collections.get(name)
          return found && { ...found.row }
        }),
      listCollections: () =>
        Effect.sync(() =>
          Array.from(collections.values(), ({ index, row }) => ({ row: { ...row }, count: index.size }))
        ),
      count: (row) => Effect.sync(() => live(row)?.index.size ?? 0),
      dropCollection: (name) =>
        Effect.sync(() => {
          const dropped = collections.delete(name)
          if (dropped) db.deleted("vector_collections", name)
          return dropped
        }),
      index: (row) =>
        Effect.sync(() => {
          const found = live(row)
          return found && { index: found.index, revision: String(found.revision) }
        }),
      upsert: (row, rows) =>
        Effect.sync(() => {
          const found = live(row)
          if (found === undefined) return false
          found.index.reserve(found.index.size + rows.length)
          for (const r of rows) found.index.set(r.id, r.vector, copyVectorJson(r.metadata), r.content)
          found.revision++
          return true
        }),
      get: (row, ids) =>
        Effect.sync(() => {
          const found = live(row)
          if (found === undefined) return []
          const { index } = found
          const records: Array<VectorRecord> = []
          for (const id of ids) {
            const slot = index.slotOf(id)
            if (slot === undefined) continue
            const content = index.content[slot]
            const record: VectorRecord = {
              id,
              vector: index.vector(slot),
              metadata: copyVectorJson(index.metadata[slot]!)
            }
            records.push(content === undefined ? record : Object.assign({}, record, { content }))
          }
          return records
        }),
      delete: (row, ids, revision) =>
        Effect.sync(() => {
          const found = live(row)
          if (found === undefined) return "missing" as const
          if (revision !== undefined && revision !== String(found.revision)) return "stale" as const
          const deleted = ids.filter((id) => found.index.delete(id))
          if (deleted.length > 0) found.revision++
          return deleted
        })
    }
  })

/** `VectorStore` over a `MemoryDatabase`, with options (see `VectorIndexOptions`). */
export const layerWithOptions = (options: VectorIndexOptions = {}): Layer.Layer<VectorStore, never, MemoryDatabase> =>
  Layer.effect(VectorStore, Effect.map(driverWith(options), makeVectorStore))

/** `VectorStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<VectorStore, never, MemoryDatabase> = layerWithOptions()

/** `VectorStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<VectorStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
