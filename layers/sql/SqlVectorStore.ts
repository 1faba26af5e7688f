/**
 * `VectorStore` on SQL, stated once for SQLite and PostgreSQL. Vectors are
 * float32 little-endian BLOB/`bytea`, metadata JSON text, content JSON text
 * (so U+0000 survives PostgreSQL `text`); records go with their collection
 * through a foreign key (`ON DELETE CASCADE`).
 *
 * Searches are exact scans in JS over a per-layer copy of each collection
 * (one contiguous `Float32Array`, see `VectorIndex`). Every write replaces the
 * collection's `stamp` (a fresh random token, never reused, so a rolled-back
 * write's stamp can never match again); every read first reads the stamp (one
 * point query) and reloads the copy when it differs, so writes by other
 * processes are seen at once. This layer's own writes update the copy in
 * place when it was at the stamp the write replaced.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { bytesToFloat32, float32ToBytes } from "../../src/Binary.ts"
import type { StorageError } from "../../src/Errors.ts"
import { parseJson } from "../../src/Json.ts"
import {
  type VectorCollectionRow,
  makeVectorStore,
  type VectorDriver,
  type VectorRecord,
  type VectorRow,
  VectorStore
} from "../../src/Vector.ts"
import { type Metric, VectorIndex } from "../../src/VectorFilter.ts"
import * as Kit from "./Kit.ts"

const vectorsTable = (blob: string) => `CREATE TABLE IF NOT EXISTS {vectors} (
  collection TEXT NOT NULL REFERENCES {vector_collections} (name) ON DELETE CASCADE,
  id TEXT NOT NULL,
  vector ${blob} NOT NULL,
  metadata TEXT NOT NULL,
  content TEXT,
  PRIMARY KEY (collection, id)
)`

/** The collections and vectors tables and their migrations. */
export const schema: Kit.SqlSchema = {
  name: "vectors",
  tables: ["vector_collections", "vectors"],
  migrations: {
    "0001_vectors": [
      `CREATE TABLE IF NOT EXISTS {vector_collections} (
        name TEXT PRIMARY KEY NOT NULL,
        uid TEXT NOT NULL,
        dimension INTEGER NOT NULL,
        metric TEXT NOT NULL,
        stamp TEXT NOT NULL,
        created_at BIGINT NOT NULL
      )`,
      { sqlite: `${vectorsTable("BLOB")} WITHOUT ROWID`, pg: vectorsTable("BYTEA") }
    ]
  },
  requires: []
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** The float32 little-endian bytes of `vector` as a `Buffer` (both drivers bind it as BLOB/`bytea`). */
const bytesOf = (vector: Float32Array): Buffer =>
  littleEndian
    ? Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)
    : Buffer.from(float32ToBytes(vector).buffer)

const collectionColumns = "name, uid, dimension, metric, created_at"

const decodeCollection = (r: ReadonlyArray<any>): VectorCollectionRow => ({
  name: r[0],
  uid: r[1],
  dimension: Number(r[2]),
  metric: r[3] as Metric,
  createdAt: Number(r[4])
})

/** A stored record: id, vector bytes, metadata JSON text, content JSON text or null. */
interface StoredRow {
  readonly id: string
  readonly vector: Uint8Array
  readonly metadata: string
  readonly content: string | null
}

const decodeStored = (r: ReadonlyArray<any>): StoredRow => ({ id: r[0], vector: r[1], metadata: r[2], content: r[3] })

const insertCollection = Kit.stmt<[string, string, number, string, string, number], string>(
  `INSERT INTO {vector_collections} (name, uid, dimension, metric, stamp, created_at) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (name) DO NOTHING RETURNING name`,
  (r) => r[0]
)
const selectCollection = Kit.stmt<[name: string], VectorCollectionRow>(
  `SELECT ${collectionColumns} FROM {vector_collections} WHERE name = ?`,
  decodeCollection
)
const listCollections = Kit.stmt<[], { row: VectorCollectionRow; count: number }>(
  `SELECT ${collectionColumns}, (SELECT count(*) FROM {vectors} v WHERE v.collection = c.name)
    FROM {vector_collections} c`,
  (r) => ({ row: decodeCollection(r), count: Number(r[5]) })
)
const countVectors = Kit.stmt<[name: string, uid: string], number>(
  `SELECT count(*) FROM {vectors} v JOIN {vector_collections} c ON c.name = v.collection
    WHERE c.name = ? AND c.uid = ?`,
  (r) => Number(r[0])
)
const dropCollection = Kit.stmt<[name: string], string>(
  `DELETE FROM {vector_collections} WHERE name = ? RETURNING name`,
  (r) => r[0]
)
const selectStamp = Kit.stmt<[name: string, uid: string], string>(
  `SELECT stamp FROM {vector_collections} WHERE name = ? AND uid = ?`,
  (r) => r[0]
)
/** The stamp, locking the collection's row on PostgreSQL (writers of one collection serialise). */
const lockStamp = Kit.stmt<[name: string, uid: string], string>(
  {
    sqlite: `SELECT stamp FROM {vector_collections} WHERE name = ? AND uid = ?`,
    pg: `SELECT stamp FROM {vector_collections} WHERE name = ? AND uid = ? FOR UPDATE`
  },
  (r) => r[0]
)
const setStamp = Kit.stmt<[stamp: string, name: string]>(`UPDATE {vector_collections} SET stamp = ? WHERE name = ?`)
const upsertOne = Kit.stmt<[string, string, Uint8Array, string, string | null]>(
  `INSERT INTO {vectors} (collection, id, vector, metadata, content) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (collection, id) DO UPDATE
    SET vector = excluded.vector, metadata = excluded.metadata, content = excluded.content`
)
const loadAll = Kit.stmt<[name: string], StoredRow>(
  `SELECT id, vector, metadata, content FROM {vectors} WHERE collection = ?`,
  decodeStored
)
const idsIn = {
  sqlite: `(SELECT value FROM json_each(?))`,
  pg: `(SELECT jsonb_array_elements_text(?::jsonb))`
}
const selectIds = Kit.stmt<[name: string, ids: string], StoredRow>(
  {
    sqlite: `SELECT id, vector, metadata, content FROM {vectors} WHERE collection = ? AND id IN ${idsIn.sqlite}`,
    pg: `SELECT id, vector, metadata, content FROM {vectors} WHERE collection = ? AND id IN ${idsIn.pg}`
  },
  decodeStored
)
const deleteIds = Kit.stmt<[name: string, ids: string], string>(
  {
    sqlite: `DELETE FROM {vectors} WHERE collection = ? AND id IN ${idsIn.sqlite} RETURNING id`,
    pg: `DELETE FROM {vectors} WHERE collection = ? AND id IN ${idsIn.pg} RETURNING id`
  },
  (r) => r[0]
)

/** Rows per multi-row insert on PostgreSQL (5 parameters each). */
const pgChunk = 500
const upsertMany = new Map<number, Kit.Stmt<ReadonlyArray<unknown>, void>>()
/** One insert of `n` rows (PostgreSQL: one round trip per `pgChunk` records). */
const upsertRows = (n: number): Kit.Stmt<ReadonlyArray<unknown>, void> => {
  let statement = upsertMany.get(n)
  if (statement === undefined) {
    const values = Array.from({ length: n }, () => "(?, ?, ?, ?, ?)").join(", ")
    statement = Kit.stmt(
      `INSERT INTO {vectors} (collection, id, vector, metadata, content) VALUES ${values}
        ON CONFLICT (collection, id) DO UPDATE
        SET vector = excluded.vector, metadata = excluded.metadata, content = excluded.content`
    )
    upsertMany.set(n, statement)
  }
  return statement
}

/** A write's change of stamp: the one it replaced and its own. */
interface Restamp {
  readonly before: string
  readonly after: string
}

function* restamp(row: VectorCollectionRow, expected: string | undefined) {
  const before: string | undefined = yield* Kit.one(lockStamp, row.name, row.uid)
  if (before === undefined) return "missing" as const
  if (expected !== undefined && before !== expected) return "stale" as const
  const after = randomUUID()
  yield* Kit.exec(setStamp, after, row.name)
  return { before, after } satisfies Restamp
}

const contentText = (content: string | undefined): string | null =>
  content === undefined ? null : JSON.stringify(content)

/** The operations of `VectorDriver` on SQL (the scan cache is built over them, see `driver`). */
export const ops = {
  createCollection: Kit.op("vector.createCollection", (row: VectorCollectionRow) =>
    Kit.one(insertCollection, row.name, row.uid, row.dimension, row.metric, randomUUID(), row.createdAt).map(
      (name) => name !== undefined
    )
  ),
  collection: Kit.op("vector.collection", (name: string) => Kit.one(selectCollection, name)),
  listCollections: Kit.op("vector.listCollections", () => Kit.all(listCollections)),
  count: Kit.op("vector.count", (row: VectorCollectionRow) =>
    Kit.one(countVectors, row.name, row.uid).map((n) => n ?? 0)
  ),
  dropCollection: Kit.op("vector.dropCollection", (name: string) =>
    Kit.one(dropCollection, name).map((found) => found !== undefined)
  ),
  stamp: Kit.op("vector.stamp", (row: VectorCollectionRow) => Kit.one(selectStamp, row.name, row.uid)),
  load: Kit.op("vector.load", (row: VectorCollectionRow) => Kit.all(loadAll, row.name)),
  get: Kit.op("vector.get", (row: VectorCollectionRow, ids: ReadonlyArray<string>) =>
    Kit.all(selectIds, row.name, JSON.stringify(ids))
  ),
  upsert: Kit.op(
    "vector.upsert",
    function* (row: VectorCollectionRow, rows: ReadonlyArray<VectorRow>) {
      const stamps = yield* restamp(row, undefined)
      if (typeof stamps === "string") return undefined
      for (const r of rows) {
        yield* Kit.exec(upsertOne, row.name, r.id, bytesOf(r.vector), r.metadataJson, contentText(r.content))
      }
      return stamps
    },
    {
      atomic: true,
      pg: function* (row: VectorCollectionRow, rows: ReadonlyArray<VectorRow>) {
        const stamps = yield* restamp(row, undefined)
        if (typeof stamps === "string") return undefined
        for (let start = 0; start < rows.length; start += pgChunk) {
          const chunk = rows.slice(start, start + pgChunk)
          const params: Array<unknown> = []
          for (const r of chunk) params.push(row.name, r.id, bytesOf(r.vector), r.metadataJson, contentText(r.content))
          yield* Kit.exec(upsertRows(chunk.length), ...params)
        }
        return stamps
      }
    }
  ),
  delete: Kit.op(
    "vector.delete",
    function* (row: VectorCollectionRow, ids: ReadonlyArray<string>, expected: string | undefined) {
      const stamps = yield* restamp(row, expected)
      if (typeof stamps === "string") return stamps
      const deleted: ReadonlyArray<string> = yield* Kit.all(deleteIds, row.name, JSON.stringify(ids))
      return { stamps, deleted }
    },
    { atomic: true }
  )
}

/** A per-layer copy of a collection for scans, at the stamp it was read at. */
interface Cached {
  readonly uid: string
  stamp: string
  readonly index: VectorIndex
}

const contentOf = (text: string | null): string | undefined => (text === null ? undefined : (parseJson(text) as string))

/**
 * A `VectorDriver` on the SQL backend in context: the operations above, plus this layer's scan copies of the
 * collections it has searched, checked against the stored stamp on every read.
 */
export const driver: Effect.Effect<VectorDriver, StorageError, SqlClient | Kit.SqlTables> = Effect.map(
  Kit.driver(ops),
  (sql): VectorDriver => {
    const cache = new Map<string, Cached>()
    /** After this layer's write: update the copy in place when it was at the replaced stamp, else drop it. */
    const wrote = (row: VectorCollectionRow, stamps: Restamp, apply: (index: VectorIndex) => void) => {
      const cached = cache.get(row.name)
      if (cached === undefined) return
      if (cached.uid === row.uid && cached.stamp === stamps.before) {
        apply(cached.index)
        cached.stamp = stamps.after
      } else if (cached.stamp !== stamps.after) cache.delete(row.name)
    }
    const build = (row: VectorCollectionRow, rows: ReadonlyArray<StoredRow>): VectorIndex => {
      const index = new VectorIndex(row.dimension, row.metric, rows.length)
      for (const r of rows) index.setBytes(r.id, r.vector, JSON.parse(r.metadata), contentOf(r.content))
      return index
    }
    return {
      createCollection: sql.createCollection,
      collection: sql.collection,
      listCollections: sql.listCollections,
      count: sql.count,
      dropCollection: (name) =>
        Effect.tap(sql.dropCollection(name), () =>
          Effect.sync(() => {
            cache.delete(name)
          })
        ),
      index: (row) =>
        Effect.flatMap(sql.stamp(row), (stamp) => {
          if (stamp === undefined) return Effect.succeed(undefined)
          const cached = cache.get(row.name)
          if (cached !== undefined && cached.uid === row.uid && cached.stamp === stamp) {
            return Effect.succeed({ index: cached.index, revision: stamp })
          }
          cache.delete(row.name)
          // the stamp is read before the rows: a write in between makes the copy newer than its stamp, never older
          return Effect.map(sql.load(row), (rows) => {
            const index = build(row, rows)
            cache.set(row.name, { uid: row.uid, stamp, index })
            return { index, revision: stamp }
          })
        }),
      upsert: (row, rows) =>
        Effect.map(sql.upsert(row, rows), (stamps) => {
          if (stamps === undefined) return false
          wrote(row, stamps, (index) => {
            index.reserve(index.size + rows.length)
            for (const r of rows) index.set(r.id, r.vector, r.metadata, r.content)
          })
          return true
        }),
      get: (row, ids) =>
        Effect.map(sql.get(row, ids), (rows) =>
          rows.map((r): VectorRecord => {
            const record: VectorRecord = {
              id: r.id,
              vector: bytesToFloat32(r.vector),
              metadata: JSON.parse(r.metadata)
            }
            const content = contentOf(r.content)
            return content === undefined ? record : { ...record, content }
          })
        ),
      delete: (row, ids, revision) =>
        Effect.map(sql.delete(row, ids, revision), (result) => {
          if (typeof result === "string") return result
          wrote(row, result.stamps, (index) => {
            for (const id of result.deleted) index.delete(id)
          })
          return result.deleted
        })
    }
  }
)

/** `VectorStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<VectorStore, StorageError, SqlClient> =>
  Layer.effect(VectorStore, Effect.map(driver, makeVectorStore)).pipe(Layer.provide(Kit.migrations(schema, options)))

/** `VectorStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<VectorStore, StorageError, SqlClient> = layerWith()
