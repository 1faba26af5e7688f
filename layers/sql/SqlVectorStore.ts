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
 *
 * pgvector (PostgreSQL, `pgvector: "auto"`, the `vector` extension installed
 * in the database): each collection such a layer creates (dimension up to
 * 2,000) gets a side table `<prefix>_vh_<16 letters from its uid>` of
 * `vector(dimension)` values, keyed to its records by a foreign key with
 * `ON DELETE CASCADE`, with an HNSW index for its metric (`vector_cosine_ops`,
 * `vector_ip_ops`, `vector_l2_ops`). An unfiltered search asks the index for
 * `max(40, 4 × topK)` candidates (`hnsw.ef_search` set to that, at most
 * 1,000) and re-ranks them exactly from their stored float32 values, as the
 * scan scores them. The index is approximate: a record it does not return
 * among the candidates is missed (the bench measures recall@10). A filtered
 * search, a query the index cannot answer (a zero vector under cosine, a
 * larger `topK`), an index returning fewer candidates than asked (a smaller
 * collection, rows not yet vacuumed) and candidates whose last one ties the
 * last result (more may tie past it, and ties go by id) take the exact scan.
 * Every layer on PostgreSQL, whatever its option, writes a collection's side
 * table when it has one and drops it with the collection.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { createHash, randomUUID } from "node:crypto"
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
import { attributesOf, spanAttributes } from "../../src/Traced.ts"
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

/**
 * The collections and vectors tables and their migrations (a pgvector side table is made and dropped with its
 * collection, see the module comment).
 */
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
    ],
    // whether the collection has a pgvector side table (see the module comment)
    "0002_vector_hnsw": [{ pg: `ALTER TABLE {vector_collections} ADD COLUMN hnsw BOOLEAN NOT NULL DEFAULT false` }]
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
/** A collection and whether it has a pgvector side table (never on SQLite). */
interface Found {
  readonly row: VectorCollectionRow
  readonly hnsw: boolean
}

const selectCollection = Kit.stmt<[name: string], Found>(
  {
    sqlite: `SELECT ${collectionColumns}, 0 FROM {vector_collections} WHERE name = ?`,
    pg: `SELECT ${collectionColumns}, hnsw FROM {vector_collections} WHERE name = ?`
  },
  (r) => ({ row: decodeCollection(r), hnsw: r[5] === true })
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
/** PostgreSQL: the collection's uid and whether it has a side table, locking its row. */
const lockForDrop = Kit.stmt<[name: string], { readonly uid: string; readonly hnsw: boolean }>(
  `SELECT uid, hnsw FROM {vector_collections} WHERE name = ? FOR UPDATE`,
  (r) => ({ uid: r[0], hnsw: r[1] === true })
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
/** PostgreSQL: the stamp and whether the collection has a side table, locking the collection's row. */
const lockCollection = Kit.stmt<[name: string, uid: string], { readonly stamp: string; readonly hnsw: boolean }>(
  `SELECT stamp, hnsw FROM {vector_collections} WHERE name = ? AND uid = ? FOR UPDATE`,
  (r) => ({ stamp: r[0], hnsw: r[1] === true })
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

// ---------------------------------------------------------------------------
// pgvector side tables (PostgreSQL)

/** The largest dimension pgvector's HNSW index takes for `vector`: larger collections get no side table. */
const hnswMaxDimension = 2000
/** Candidates asked of the index: `hnswFactor × topK`, at least `hnswMinCandidates` (pgvector's default ef_search). */
const hnswFactor = 4
const hnswMinCandidates = 40
/** pgvector's largest `hnsw.ef_search`: a search needing more candidates scans. */
const hnswMaxCandidates = 1000

/** pgvector's distance operator and HNSW operator class per metric. */
const hnswMetric: Readonly<Record<Metric, { readonly operator: string; readonly opclass: string }>> = {
  cosine: { operator: "<=>", opclass: "vector_cosine_ops" },
  dot: { operator: "<#>", opclass: "vector_ip_ops" },
  euclidean: { operator: "<->", opclass: "vector_l2_ops" }
}

/** A side table's statements that need no extension schema: the writes every PostgreSQL layer makes. */
interface SideWrites {
  /** `{vh_…}`: `vh_` and 16 letters (a–p) from a hash of the collection's uid. */
  readonly table: string
  /** Upserts a JSON array of `{ id, embedding }` (the records just written to `{vectors}`). */
  readonly upsert: Kit.Stmt<[name: string, rows: string], void>
  readonly drop: Kit.Stmt<[], void>
}

const sideWrites = new Map<string, SideWrites>()
/** The side table statements of the collection `uid`, stated on first use. */
const sideWritesOf = (uid: string): SideWrites => {
  let side = sideWrites.get(uid)
  if (side === undefined) {
    const hex = createHash("sha256").update(uid).digest("hex").slice(0, 16)
    const table = `{vh_${hex.replace(/[0-9a-f]/g, (digit) => String.fromCharCode(97 + parseInt(digit, 16)))}}`
    side = {
      table,
      upsert: Kit.stmt(
        `INSERT INTO ${table} (collection, id, embedding)
          SELECT ?, r.id, r.embedding FROM json_to_recordset(?::json) AS r (id text, embedding real[])
          ON CONFLICT (id) DO UPDATE SET embedding = excluded.embedding`
      ),
      drop: Kit.stmt(`DROP TABLE IF EXISTS ${table}`)
    }
    sideWrites.set(uid, side)
  }
  return side
}

/** A side table's statements that name the extension's types: its creation and the index's nearest candidates. */
interface SideSearch {
  readonly create: ReadonlyArray<Kit.Stmt<[], void>>
  readonly nearest: Kit.Stmt<[query: string, candidates: number, name: string], StoredRow>
}

const sideSearches = new Map<string, SideSearch>()
/** The creation and search statements of `row`'s side table, with pgvector in `extension` (a safe identifier). */
const sideSearchOf = (extension: string, row: VectorCollectionRow): SideSearch => {
  const key = `${extension}/${row.uid}`
  let side = sideSearches.get(key)
  if (side === undefined) {
    const { table } = sideWritesOf(row.uid)
    const { opclass, operator } = hnswMetric[row.metric]
    const vector = `"${extension}".vector`
    side = {
      create: [
        Kit.stmt(`CREATE TABLE ${table} (
          collection TEXT NOT NULL,
          id TEXT PRIMARY KEY NOT NULL,
          embedding ${vector}(${row.dimension}) NOT NULL,
          FOREIGN KEY (collection, id) REFERENCES {vectors} (collection, id) ON DELETE CASCADE
        )`),
        Kit.stmt(`CREATE INDEX ON ${table} USING hnsw (embedding "${extension}".${opclass})`)
      ],
      nearest: Kit.stmt(
        `SELECT v.id, v.vector, v.metadata, v.content FROM (
          SELECT id FROM ${table} ORDER BY embedding OPERATOR("${extension}".${operator}) ?::real[]::${vector} LIMIT ?
        ) AS c JOIN {vectors} v ON v.collection = ? AND v.id = c.id`,
        decodeStored
      )
    }
    sideSearches.set(key, side)
  }
  return side
}

/** Sets `hnsw.ef_search` for the rest of the transaction. */
const tuneSearch = Kit.stmt<[efSearch: string], string>(`SELECT set_config('hnsw.ef_search', ?, true)`, (r) => r[0])
const insertIndexedCollection = Kit.stmt<[string, string, number, string, string, number], string>(
  `INSERT INTO {vector_collections} (name, uid, dimension, metric, stamp, created_at, hnsw)
    VALUES (?, ?, ?, ?, ?, ?, true) ON CONFLICT (name) DO NOTHING RETURNING name`,
  (r) => r[0]
)
/** The schema and version of the `vector` extension, when it is installed. */
const findExtension = Kit.stmt<[name: string], { readonly schema: string; readonly version: string }>(
  `SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = ?`,
  (r) => ({ schema: r[0], version: r[1] })
)

/** The records as the side table's JSON rows (float32 values print as the doubles they are, read back exactly). */
const embeddingsJson = (rows: ReadonlyArray<VectorRow>): string =>
  JSON.stringify(rows.map((r) => ({ id: r.id, embedding: Array.from(r.vector) })))

/** `query` as a PostgreSQL `real[]` literal. */
const realArray = (query: Float32Array): string => `{${query.join(",")}}`

// ---------------------------------------------------------------------------
// Operations

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

/** PostgreSQL: `restamp`, also telling whether the collection has a side table. */
function* restampPg(row: VectorCollectionRow) {
  const locked: { readonly stamp: string; readonly hnsw: boolean } | undefined = yield* Kit.one(
    lockCollection,
    row.name,
    row.uid
  )
  if (locked === undefined) return "missing" as const
  const after = randomUUID()
  yield* Kit.exec(setStamp, after, row.name)
  return { stamps: { before: locked.stamp, after } satisfies Restamp, hnsw: locked.hnsw }
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
  dropCollection: Kit.op(
    "vector.dropCollection",
    (name: string) => Kit.one(dropCollection, name).map((found) => found !== undefined),
    {
      atomic: true,
      pg: function* (name: string) {
        const found: { readonly uid: string; readonly hnsw: boolean } | undefined = yield* Kit.one(lockForDrop, name)
        if (found === undefined) return false
        if (found.hnsw) yield* Kit.exec(sideWritesOf(found.uid).drop)
        yield* Kit.exec(dropCollection, name)
        return true
      }
    }
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
        const locked = yield* restampPg(row)
        if (typeof locked === "string") return undefined
        for (let start = 0; start < rows.length; start += pgChunk) {
          const chunk = rows.slice(start, start + pgChunk)
          const params: Array<unknown> = []
          for (const r of chunk) params.push(row.name, r.id, bytesOf(r.vector), r.metadataJson, contentText(r.content))
          yield* Kit.exec(upsertRows(chunk.length), ...params)
        }
        if (locked.hnsw) {
          const { upsert } = sideWritesOf(row.uid)
          for (let start = 0; start < rows.length; start += pgChunk) {
            yield* Kit.exec(upsert, row.name, embeddingsJson(rows.slice(start, start + pgChunk)))
          }
        }
        return locked.stamps
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

/**
 * The operations of a layer using pgvector in the schema `extension`: collections created with a side table (when
 * their dimension allows), and the index's nearest candidates (`hnsw.ef_search` set to their number).
 */
const hnswOps = (extension: string) => ({
  createCollection: Kit.op("vector.createCollection", (row: VectorCollectionRow) => ops.createCollection.run(row), {
    atomic: true,
    pg: function* (row: VectorCollectionRow) {
      if (row.dimension > hnswMaxDimension) return yield* ops.createCollection.run(row)
      const params = [row.name, row.uid, row.dimension, row.metric, randomUUID(), row.createdAt] as const
      if ((yield* Kit.one(insertIndexedCollection, ...params)) === undefined) return false
      for (const statement of sideSearchOf(extension, row).create) yield* Kit.exec(statement)
      return true
    }
  }),
  nearest: Kit.op(
    "vector.nearest",
    function* (row: VectorCollectionRow, query: string, candidates: number) {
      yield* Kit.one(tuneSearch, String(candidates))
      return yield* Kit.all(sideSearchOf(extension, row).nearest, query, candidates, row.name)
    },
    { atomic: true }
  )
})

/** A per-layer copy of a collection for scans, at the stamp it was read at. */
interface Cached {
  readonly uid: string
  stamp: string
  readonly index: VectorIndex
}

const contentOf = (text: string | null): string | undefined => (text === null ? undefined : (parseJson(text) as string))

/** Whether pgvector is used (`"auto"`: when installed in the database) or never (`"off"`). */
export type PgvectorMode = "auto" | "off"

/** Options of the vector store's SQL layers. */
export interface SqlVectorOptions extends Kit.SqlOptions {
  /**
   * PostgreSQL only. `"auto"`: when the `vector` extension (0.5 or later) is installed in the database, found when
   * the layer is built, collections this layer creates get an HNSW index and unfiltered searches ask it for
   * candidates (re-ranked exactly); otherwise every search scans. The layer never creates the extension (that needs
   * a privileged role: run `CREATE EXTENSION vector` once). `"off"` (the default): every search scans exactly.
   */
  readonly pgvector?: PgvectorMode
}

/** The schema pgvector is installed in, when `mode` asks for it and the backend is PostgreSQL with pgvector ≥ 0.5. */
const pgvectorSchema = (
  mode: PgvectorMode
): Effect.Effect<string | undefined, StorageError, SqlClient | Kit.SqlTables> =>
  Effect.gen(function* () {
    if (mode === "off") return undefined
    const isPg = (yield* SqlClient).onDialectOrElse({ pg: () => true, orElse: () => false })
    if (!isPg) return undefined
    const found = yield* (yield* Kit.driver({
      find: Kit.op("vector.pgvector", () => Kit.one(findExtension, "vector"))
    })).find()
    if (found === undefined) return undefined
    const [major = 0, minor = 0] = found.version.split(".").map(Number)
    // the schema is spliced into statements: only a plain identifier is taken
    return (major > 0 || minor >= 5) && /^[A-Za-z_][A-Za-z0-9_]*$/.test(found.schema) ? found.schema : undefined
  })

/** Whether `error` (a `StorageError` or what it wraps) is PostgreSQL's "undefined table". */
const isUndefinedTable = (error: unknown): boolean => {
  for (let cause = error, depth = 0; depth < 4 && typeof cause === "object" && cause !== null; depth++) {
    if ((cause as { code?: unknown }).code === "42P01") return true
    cause = (cause as { cause?: unknown }).cause
  }
  return false
}

const isZero = (vector: Float32Array): boolean => vector.every((x) => x === 0)

/**
 * A `VectorDriver` on the SQL backend in context: the operations above, plus this layer's scan copies of the
 * collections it has searched, checked against the stored stamp on every read, and (PostgreSQL, `pgvector:
 * "auto"`, the extension installed) the HNSW side tables' candidates for unfiltered searches.
 */
export const driver = (
  options: SqlVectorOptions = {}
): Effect.Effect<VectorDriver, StorageError, SqlClient | Kit.SqlTables> =>
  Effect.gen(function* () {
    const extension = yield* pgvectorSchema(options.pgvector ?? "off")
    const sql = yield* Kit.driver(ops)
    const hnsw = extension === undefined ? undefined : yield* Kit.driver(hnswOps(extension))
    const cache = new Map<string, Cached>()
    /** The uids of the collections read with a side table (a collection has one from its creation on, or never). */
    const indexed = new Set<string>()
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
    const driver: VectorDriver = {
      createCollection: hnsw?.createCollection ?? sql.createCollection,
      collection: (name) =>
        Effect.map(sql.collection(name), (found) => {
          if (found === undefined) return undefined
          if (found.hnsw) indexed.add(found.row.uid)
          return found.row
        }),
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
            return content === undefined ? record : Object.assign({}, record, { content })
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
    // the store's operation spans carry the backend's attributes, which the kit's drivers hold
    const attributes = { [spanAttributes]: attributesOf(sql) }
    if (hnsw === undefined) return Object.assign(driver, attributes)
    return {
      ...driver,
      ...attributes,
      nearest: (row, query, topK) => {
        const candidates = Math.max(hnswMinCandidates, hnswFactor * topK)
        if (!indexed.has(row.uid) || candidates > hnswMaxCandidates || (row.metric === "cosine" && isZero(query))) {
          return Effect.succeed(undefined)
        }
        return hnsw.nearest(row, realArray(query), candidates).pipe(
          Effect.map((rows) => {
            // fewer than asked: the index does not hold them all (a small collection, dead rows), so scan instead
            if (rows.length < candidates) return undefined
            const index = build(row, rows)
            const ranked = index.search(query, rows.length)
            // records tied with the last result up to the last candidate may go on past it (ties go by id): scan
            return ranked[ranked.length - 1]!.score === ranked[topK - 1]!.score ? undefined : index
          }),
          // dropped since it was read: the scan finds out what is there now
          Effect.catchIf(isUndefinedTable, () => Effect.succeed(undefined))
        )
      }
    }
  })

/**
 * `VectorStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first; on
 * PostgreSQL with `pgvector: "auto"`, through pgvector's HNSW index when the extension is installed.
 */
export const layerWith = (options: SqlVectorOptions = {}): Layer.Layer<VectorStore, StorageError, SqlClient> =>
  Layer.effect(VectorStore, Effect.map(driver(options), makeVectorStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `VectorStore` on SQL with the default table prefix, scanning exactly. */
export const layer: Layer.Layer<VectorStore, StorageError, SqlClient> = layerWith()
