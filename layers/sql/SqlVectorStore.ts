/**
 * `VectorStore` on SQL, stated once for SQLite and PostgreSQL. A collection's
 * records occupy dense slots `0 … size - 1`: each record row holds its id,
 * slot, metadata JSON text and content JSON text (so U+0000 survives
 * PostgreSQL `text`), and the vectors live apart, as float32 little-endian
 * values in blocks of `block_size` consecutive slots (64 KiB of floats a
 * block, one BLOB/`bytea` each). One vector per row made a row of 1.5 KB at
 * 384 dimensions, which SQLite's `WITHOUT ROWID` table spilled to an overflow
 * page of its own (4.6 KB a vector); a block fills its overflow pages (TOAST
 * chunks, stored uncompressed, on PostgreSQL). A write rewrites the blocks it
 * touches: an upsert places new records at the end, a delete moves the last
 * records into the holes. Records and blocks go with their collection through
 * foreign keys (`ON DELETE CASCADE`).
 *
 * Searches run in JS over a per-layer copy of each collection (one contiguous
 * `Float32Array`, see `VectorIndex`), loaded from its records and blocks
 * read between two reads of the stamp (again when they differ). Every write replaces the
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
import { StorageError } from "../../src/Errors.ts"
import { type JsonObject, parseJson } from "../../src/Json.ts"
import {
  type IndexSnapshot,
  type VectorCollectionRow,
  makeVectorStore,
  type VectorDriver,
  type VectorIndexOptions,
  type VectorRecord,
  type VectorRow,
  VectorStore
} from "../../src/Vector.ts"
import { attributesOf, spanAttributes } from "../../src/Traced.ts"
import { type Metric, VectorIndex } from "../../src/VectorFilter.ts"
import * as Kit from "./Kit.ts"

const blocksTable = (blob: string) => `CREATE TABLE {vector_blocks} (
  collection TEXT NOT NULL REFERENCES {vector_collections} (name) ON DELETE CASCADE,
  block BIGINT NOT NULL,
  data ${blob} NOT NULL,
  PRIMARY KEY (collection, block)
)`

/** `0001_vectors`'s records table (each with its vector, which `0003_vector_blocks` moves into blocks). */
const vectorsTable = (blob: string) => `CREATE TABLE IF NOT EXISTS {vectors} (
  collection TEXT NOT NULL REFERENCES {vector_collections} (name) ON DELETE CASCADE,
  id TEXT NOT NULL,
  vector ${blob} NOT NULL,
  metadata TEXT NOT NULL,
  content TEXT,
  PRIMARY KEY (collection, id)
)`

/** Bytes of floats per block: a block holds `max(1, floor(blockBytes / (4 × dimension)))` vectors. */
const blockBytes = 65_536

/** Vectors per block of a collection of `dimension` (fixed when the collection is created). */
const blockSizeOf = (dimension: number): number => Math.max(1, Math.floor(blockBytes / (4 * dimension)))

/**
 * The collections, records and blocks tables and their migrations (a pgvector side table is made and dropped with its
 * collection, see the module comment). `0003_vector_blocks` moves the vectors of `0001_vectors`'s rows into blocks,
 * byte for byte (slots in id order), and drops their column; on SQLite the freed pages stay in the file until a
 * `VACUUM` (SQLite reuses them first).
 */
export const schema: Kit.SqlSchema = {
  name: "vectors",
  tables: ["vector_collections", "vectors", "vector_blocks"],
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
    "0002_vector_hnsw": [{ pg: `ALTER TABLE {vector_collections} ADD COLUMN hnsw BOOLEAN NOT NULL DEFAULT false` }],
    "0003_vector_blocks": [
      `ALTER TABLE {vector_collections} ADD COLUMN size BIGINT NOT NULL DEFAULT 0`,
      `ALTER TABLE {vector_collections} ADD COLUMN block_size INTEGER NOT NULL DEFAULT 1`,
      {
        sqlite: `UPDATE {vector_collections} SET block_size = max(1, ${blockBytes / 4} / dimension)`,
        pg: `UPDATE {vector_collections} SET block_size = greatest(1, ${blockBytes / 4} / dimension)`
      },
      `ALTER TABLE {vectors} ADD COLUMN slot BIGINT NOT NULL DEFAULT 0`,
      `UPDATE {vectors} SET slot = n.slot FROM (
        SELECT collection, id, row_number() OVER (PARTITION BY collection ORDER BY id) - 1 AS slot FROM {vectors}
      ) AS n WHERE {vectors}.collection = n.collection AND {vectors}.id = n.id`,
      `UPDATE {vector_collections} SET size = (SELECT count(*) FROM {vectors} v WHERE v.collection = name)`,
      { sqlite: blocksTable("BLOB"), pg: blocksTable("BYTEA") },
      { pg: `ALTER TABLE {vector_blocks} ALTER COLUMN data SET STORAGE EXTERNAL` },
      {
        sqlite: `INSERT INTO {vector_blocks} (collection, block, data)
          SELECT v.collection, v.slot / c.block_size, CAST(group_concat(v.vector, x'' ORDER BY v.slot) AS BLOB)
          FROM {vectors} v JOIN {vector_collections} c ON c.name = v.collection
          GROUP BY v.collection, v.slot / c.block_size`,
        pg: `INSERT INTO {vector_blocks} (collection, block, data)
          SELECT v.collection, v.slot / c.block_size, string_agg(v.vector, ''::bytea ORDER BY v.slot)
          FROM {vectors} v JOIN {vector_collections} c ON c.name = v.collection
          GROUP BY v.collection, v.slot / c.block_size`
      },
      `ALTER TABLE {vectors} DROP COLUMN vector`,
      `CREATE INDEX {vectors_by_slot} ON {vectors} (collection, slot)`
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

/** A record's vector cut from its block (the block and collection joined as `b` and `c`, the record as `v`). */
const vectorOf = {
  sqlite: `substr(b.data, (v.slot % c.block_size) * c.dimension * 4 + 1, c.dimension * 4)`,
  pg: `substring(b.data from ((v.slot % c.block_size) * c.dimension * 4 + 1)::int for c.dimension * 4)`
}
/** The joins `vectorOf` reads through, from the records `v`. */
const blockJoin = `JOIN {vector_collections} c ON c.name = v.collection
  JOIN {vector_blocks} b ON b.collection = v.collection AND b.block = v.slot / c.block_size`

const insertCollection = Kit.stmt<[string, string, number, string, string, number, number], string>(
  `INSERT INTO {vector_collections} (name, uid, dimension, metric, stamp, created_at, block_size)
    VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING name`,
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
  `SELECT ${collectionColumns}, size FROM {vector_collections}`,
  (r) => ({ row: decodeCollection(r), count: Number(r[5]) })
)
const countVectors = Kit.stmt<[name: string, uid: string], number>(
  `SELECT size FROM {vector_collections} WHERE name = ? AND uid = ?`,
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

/** What a write needs of its collection: the stamp it replaces, the slots in use, and (PostgreSQL) its side table. */
interface Layout {
  readonly stamp: string
  readonly size: number
  readonly blockSize: number
  readonly hnsw: boolean
}

/** The collection's layout, as a read sees it. */
const selectLayout = Kit.stmt<[name: string, uid: string], Layout>(
  `SELECT stamp, size, block_size, 0 FROM {vector_collections} WHERE name = ? AND uid = ?`,
  (r) => ({ stamp: r[0], size: Number(r[1]), blockSize: Number(r[2]), hnsw: false })
)
/** The collection's layout, locking its row on PostgreSQL (writers of one collection serialise). */
const lockLayout = Kit.stmt<[name: string, uid: string], Layout>(
  {
    sqlite: `SELECT stamp, size, block_size, 0 FROM {vector_collections} WHERE name = ? AND uid = ?`,
    pg: `SELECT stamp, size, block_size, hnsw FROM {vector_collections} WHERE name = ? AND uid = ? FOR UPDATE`
  },
  (r) => ({ stamp: r[0], size: Number(r[1]), blockSize: Number(r[2]), hnsw: r[3] === true })
)
const setLayout = Kit.stmt<[stamp: string, size: number, name: string]>(
  `UPDATE {vector_collections} SET stamp = ?, size = ? WHERE name = ?`
)
const idsIn = {
  sqlite: `(SELECT value FROM json_each(?))`,
  pg: `(SELECT jsonb_array_elements_text(?::jsonb))`
}
const numbersIn = {
  sqlite: `(SELECT value FROM json_each(?))`,
  pg: `(SELECT jsonb_array_elements_text(?::jsonb)::bigint)`
}
/** The slots of these ids (a JSON array). */
const selectSlots = Kit.stmt<[name: string, ids: string], readonly [string, number]>(
  {
    sqlite: `SELECT id, slot FROM {vectors} WHERE collection = ? AND id IN ${idsIn.sqlite}`,
    pg: `SELECT id, slot FROM {vectors} WHERE collection = ? AND id IN ${idsIn.pg}`
  },
  (r) => [r[0], Number(r[1])]
)
/** The records at slots from `first` on, by slot. */
const selectTail = Kit.stmt<[name: string, first: number], readonly [string, number]>(
  `SELECT id, slot FROM {vectors} WHERE collection = ? AND slot >= ? ORDER BY slot`,
  (r) => [r[0], Number(r[1])]
)
/** These blocks (a JSON array of numbers). */
const selectBlocks = Kit.stmt<[name: string, blocks: string], readonly [number, Uint8Array]>(
  {
    sqlite: `SELECT block, data FROM {vector_blocks} WHERE collection = ? AND block IN ${numbersIn.sqlite}`,
    pg: `SELECT block, data FROM {vector_blocks} WHERE collection = ? AND block IN ${numbersIn.pg}`
  },
  (r) => [Number(r[0]), r[1]]
)
const upsertBlock = Kit.stmt<[name: string, block: number, data: Uint8Array]>(
  `INSERT INTO {vector_blocks} (collection, block, data) VALUES (?, ?, ?)
    ON CONFLICT (collection, block) DO UPDATE SET data = excluded.data`
)
const deleteBlocksFrom = Kit.stmt<[name: string, first: number]>(
  `DELETE FROM {vector_blocks} WHERE collection = ? AND block >= ?`
)
/** Moves records to new slots (a JSON array of `[id, slot]`). */
const moveSlots = Kit.stmt<[moves: string, name: string]>({
  sqlite: `UPDATE {vectors} SET slot = m.value ->> 1 FROM json_each(?) AS m
    WHERE {vectors}.collection = ? AND {vectors}.id = m.value ->> 0`,
  pg: `UPDATE {vectors} SET slot = (m.value ->> 1)::bigint FROM jsonb_array_elements(?::jsonb) AS m (value)
    WHERE {vectors}.collection = ? AND {vectors}.id = m.value ->> 0`
})
const upsertOne = Kit.stmt<[string, string, number, string, string | null]>(
  `INSERT INTO {vectors} (collection, id, slot, metadata, content) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (collection, id) DO UPDATE SET metadata = excluded.metadata, content = excluded.content`
)
/** A record of a scan copy: id, slot, metadata and content text. */
interface LoadedRecord {
  readonly id: string
  readonly slot: number
  readonly metadata: string
  readonly content: string | null
}
const loadRecords = Kit.stmt<[name: string], LoadedRecord>(
  `SELECT id, slot, metadata, content FROM {vectors} WHERE collection = ?`,
  (r) => ({ id: r[0], slot: Number(r[1]), metadata: r[2], content: r[3] })
)
/** Blocks read by one statement while loading a copy (16 MiB of floats). */
const blocksPerRead = 256
/**
 * PostgreSQL: the records as one JSON text of `[id, slot, metadata, content]` arrays, parsed at once, instead of a
 * row per record through the client's row decoding.
 */
const loadRecordsJson = Kit.stmt<[name: string], string>(
  `SELECT json_agg(json_build_array(id, slot, metadata, content))::text FROM {vectors} WHERE collection = ?`,
  (r) => r[0]
)
const recordsOfJson = (json: string | null): ReadonlyArray<LoadedRecord> =>
  json === null
    ? []
    : (JSON.parse(json) as Array<[string, number, string, string | null]>).map(([id, slot, metadata, content]) => ({
        id,
        slot: Number(slot),
        metadata,
        content
      }))
const loadBlocks = Kit.stmt<[name: string, from: number, to: number], readonly [number, Uint8Array]>(
  `SELECT block, data FROM {vector_blocks} WHERE collection = ? AND block >= ? AND block < ?`,
  (r) => [Number(r[0]), r[1]]
)
const selectIds = Kit.stmt<[name: string, ids: string], StoredRow>(
  {
    sqlite: `SELECT v.id, ${vectorOf.sqlite}, v.metadata, v.content FROM {vectors} v ${blockJoin}
      WHERE v.collection = ? AND v.id IN ${idsIn.sqlite}`,
    pg: `SELECT v.id, ${vectorOf.pg}, v.metadata, v.content FROM {vectors} v ${blockJoin}
      WHERE v.collection = ? AND v.id IN ${idsIn.pg}`
  },
  decodeStored
)
const deleteIds = Kit.stmt<[name: string, ids: string], readonly [string, number]>(
  {
    sqlite: `DELETE FROM {vectors} WHERE collection = ? AND id IN ${idsIn.sqlite} RETURNING id, slot`,
    pg: `DELETE FROM {vectors} WHERE collection = ? AND id IN ${idsIn.pg} RETURNING id, slot`
  },
  (r) => [r[0], Number(r[1])]
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
      `INSERT INTO {vectors} (collection, id, slot, metadata, content) VALUES ${values}
        ON CONFLICT (collection, id) DO UPDATE SET metadata = excluded.metadata, content = excluded.content`
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
        `SELECT v.id, ${vectorOf.pg}, v.metadata, v.content FROM (
          SELECT id FROM ${table} ORDER BY embedding OPERATOR("${extension}".${operator}) ?::real[]::${vector} LIMIT ?
        ) AS n JOIN {vectors} v ON v.collection = ? AND v.id = n.id ${blockJoin}`,
        decodeStored
      )
    }
    sideSearches.set(key, side)
  }
  return side
}

/** Sets `hnsw.ef_search` for the rest of the transaction. */
const tuneSearch = Kit.stmt<[efSearch: string], string>(`SELECT set_config('hnsw.ef_search', ?, true)`, (r) => r[0])
const insertIndexedCollection = Kit.stmt<[string, string, number, string, string, number, number], string>(
  `INSERT INTO {vector_collections} (name, uid, dimension, metric, stamp, created_at, block_size, hnsw)
    VALUES (?, ?, ?, ?, ?, ?, ?, true) ON CONFLICT (name) DO NOTHING RETURNING name`,
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

const contentText = (content: string | undefined): string | null =>
  content === undefined ? null : JSON.stringify(content)

/**
 * The blocks of a collection a write changes, read on first use: `vector(slot)` is a slot's bytes to read or
 * overwrite, `save(size)` writes every block changed back, cut to the `size` slots in use, and deletes the blocks
 * past them.
 */
class Blocks {
  private readonly blocks = new Map<number, Uint8Array>()
  private readonly changed = new Set<number>()
  constructor(
    private readonly name: string,
    private readonly blockSize: number,
    private readonly rowBytes: number
  ) {}

  /** Reads the blocks holding `slots` (those not read yet). */
  *read(slots: Iterable<number>) {
    const wanted = new Set<number>()
    for (const slot of slots) {
      const block = Math.floor(slot / this.blockSize)
      if (!this.blocks.has(block)) wanted.add(block)
    }
    if (wanted.size === 0) return
    const found: ReadonlyArray<readonly [number, Uint8Array]> = yield* Kit.all(
      selectBlocks,
      this.name,
      JSON.stringify(Array.from(wanted))
    )
    for (const [block, data] of found) this.blocks.set(block, data)
  }

  /** The bytes of `slot`, in a block grown to hold it (read it first); `write` marks the block changed. */
  vector(slot: number, write: boolean): Uint8Array {
    const block = Math.floor(slot / this.blockSize)
    const start = (slot - block * this.blockSize) * this.rowBytes
    let data = this.blocks.get(block) ?? new Uint8Array(0)
    if (data.byteLength < start + this.rowBytes) {
      const grown = new Uint8Array(Math.min(this.blockSize * this.rowBytes, start + this.rowBytes * 64))
      grown.set(data)
      data = grown
      this.blocks.set(block, data)
    }
    if (write) this.changed.add(block)
    return data.subarray(start, start + this.rowBytes)
  }

  /** Writes the changed blocks, cut to `size` slots, and deletes the blocks past `size` (after a delete). */
  *save(size: number, shrunk: boolean) {
    const count = Math.ceil(size / this.blockSize)
    if (shrunk && size % this.blockSize !== 0) this.changed.add(count - 1)
    for (const block of this.changed) {
      if (block >= count) continue
      const used = Math.min(this.blockSize, size - block * this.blockSize) * this.rowBytes
      const data = this.blocks.get(block)!
      yield* Kit.exec(upsertBlock, this.name, block, data.byteLength === used ? data : data.subarray(0, used))
    }
    if (shrunk) yield* Kit.exec(deleteBlocksFrom, this.name, count)
  }
}

/** Locks the collection (PostgreSQL) and reads its layout; `missing`, or `stale` when not at `expected`. */
function* layoutOf(row: VectorCollectionRow, expected: string | undefined) {
  const layout: Layout | undefined = yield* Kit.one(lockLayout, row.name, row.uid)
  if (layout === undefined) return "missing" as const
  if (expected !== undefined && layout.stamp !== expected) return "stale" as const
  return layout
}

/**
 * Writes `rows` (ids unique): records already there keep their slot, new ones take the next; the blocks they touch
 * are rewritten. Returns the change of stamp and the layout it started from, or `undefined` when the collection is
 * gone.
 */
function* upsertRecords(row: VectorCollectionRow, rows: ReadonlyArray<VectorRow>, pg: boolean) {
  const layout = yield* layoutOf(row, undefined)
  if (typeof layout === "string") return undefined
  const existing: ReadonlyArray<readonly [string, number]> = yield* Kit.all(
    selectSlots,
    row.name,
    JSON.stringify(rows.map((r) => r.id))
  )
  const slotOf = new Map(existing)
  let size = layout.size
  const slots = rows.map((r) => slotOf.get(r.id) ?? size++)
  const blocks = new Blocks(row.name, layout.blockSize, row.dimension * 4)
  // the blocks holding replaced vectors, and the partial last block new ones go after
  yield* blocks.read(layout.size > 0 && size > layout.size ? [...slotOf.values(), layout.size - 1] : slotOf.values())
  for (let i = 0; i < rows.length; i++) blocks.vector(slots[i]!, true).set(bytesOf(rows[i]!.vector))
  yield* blocks.save(size, false)
  if (pg) {
    for (let start = 0; start < rows.length; start += pgChunk) {
      const params: Array<unknown> = []
      for (let i = start; i < Math.min(rows.length, start + pgChunk); i++) {
        const r = rows[i]!
        params.push(row.name, r.id, slots[i], r.metadataJson, contentText(r.content))
      }
      yield* Kit.exec(upsertRows(params.length / 5), ...params)
    }
  } else {
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!
      yield* Kit.exec(upsertOne, row.name, r.id, slots[i]!, r.metadataJson, contentText(r.content))
    }
  }
  const after = randomUUID()
  yield* Kit.exec(setLayout, after, size, row.name)
  return { stamps: { before: layout.stamp, after } satisfies Restamp, hnsw: layout.hnsw }
}

/**
 * Deletes these ids; the records in the last slots move into the holes (lowest hole first), so slots stay dense.
 */
function* deleteRecords(row: VectorCollectionRow, ids: ReadonlyArray<string>, expected: string | undefined) {
  const layout = yield* layoutOf(row, expected)
  if (typeof layout === "string") return layout
  const deleted: ReadonlyArray<readonly [string, number]> = yield* Kit.all(deleteIds, row.name, JSON.stringify(ids))
  const size = layout.size - deleted.length
  if (deleted.length > 0) {
    const holes = deleted
      .map(([, slot]) => slot)
      .filter((slot) => slot < size)
      .sort((a, b) => a - b)
    const movers: ReadonlyArray<readonly [string, number]> =
      holes.length === 0 ? [] : yield* Kit.all(selectTail, row.name, size)
    const blocks = new Blocks(row.name, layout.blockSize, row.dimension * 4)
    yield* blocks.read([...holes, ...movers.map(([, slot]) => slot), ...(size > 0 ? [size - 1] : [])])
    for (let i = 0; i < holes.length; i++) blocks.vector(holes[i]!, true).set(blocks.vector(movers[i]![1], false))
    yield* blocks.save(size, true)
    if (movers.length > 0) {
      yield* Kit.exec(moveSlots, JSON.stringify(movers.map(([id], i) => [id, holes[i]])), row.name)
    }
  }
  const after = randomUUID()
  yield* Kit.exec(setLayout, after, size, row.name)
  return { stamps: { before: layout.stamp, after } satisfies Restamp, deleted: deleted.map(([id]) => id) }
}

/**
 * The collection's scan copy and the stamp it is at, from its blocks (read `blocksPerRead` at a time, each copied in
 * before the next are read) and its records (read by `records`), read between two reads of the stamp, which every
 * write replaces in its transaction: an equal stamp means no write committed in between (`changed` otherwise;
 * `undefined` when the collection is gone, `corrupt` when the slots are not dense or the blocks do not fill them).
 */
function* loadCopy(
  row: VectorCollectionRow,
  approximateFrom: number | undefined,
  records: Kit.Call<ReadonlyArray<LoadedRecord>>
) {
  const layout: Layout | undefined = yield* Kit.one(selectLayout, row.name, row.uid)
  if (layout === undefined) return undefined
  // the blocks first, while the heap is small: their buffers' bytes make the garbage collector run, and it then
  // walks the records only if they are already there
  const index = new VectorIndex(row.dimension, row.metric, layout.size, approximateFrom)
  const rowBytes = row.dimension * 4
  let filled = 0
  for (let from = 0; from * layout.blockSize < layout.size; from += blocksPerRead) {
    const blocks: ReadonlyArray<readonly [number, Uint8Array]> = yield* Kit.all(
      loadBlocks,
      row.name,
      from,
      from + blocksPerRead
    )
    for (const [block, data] of blocks) {
      const count = data.byteLength / rowBytes
      if (!Number.isInteger(count) || count > layout.blockSize || block * layout.blockSize + count > layout.size) {
        return "corrupt" as const
      }
      index.loadVectors(block * layout.blockSize, data)
      filled += count
    }
  }
  const loaded: ReadonlyArray<LoadedRecord> = yield* records
  const after: string | undefined = yield* Kit.one(selectStamp, row.name, row.uid)
  if (after !== layout.stamp) return "changed" as const
  if (filled !== layout.size || loaded.length !== layout.size || !restoreRecords(index, loaded)) {
    return "corrupt" as const
  }
  index.loaded()
  return { stamp: layout.stamp, index }
}

/** The operations of `VectorDriver` on SQL (the scan cache is built over them, see `driver`). */
export const ops = {
  createCollection: Kit.op("vector.createCollection", (row: VectorCollectionRow) =>
    Kit.one(
      insertCollection,
      row.name,
      row.uid,
      row.dimension,
      row.metric,
      randomUUID(),
      row.createdAt,
      blockSizeOf(row.dimension)
    ).map((name) => name !== undefined)
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
  /** The collection's scan copy (see `loadCopy`); on PostgreSQL the records come as one JSON text. */
  load: Kit.op(
    "vector.load",
    (row: VectorCollectionRow, approximateFrom: number | undefined) =>
      loadCopy(row, approximateFrom, Kit.all(loadRecords, row.name)),
    {
      pg: (row: VectorCollectionRow, approximateFrom: number | undefined) =>
        loadCopy(
          row,
          approximateFrom,
          Kit.one(loadRecordsJson, row.name).map((json) => (json === undefined ? [] : recordsOfJson(json)))
        )
    }
  ),
  get: Kit.op("vector.get", (row: VectorCollectionRow, ids: ReadonlyArray<string>) =>
    Kit.all(selectIds, row.name, JSON.stringify(ids))
  ),
  upsert: Kit.op(
    "vector.upsert",
    function* (row: VectorCollectionRow, rows: ReadonlyArray<VectorRow>) {
      return (yield* upsertRecords(row, rows, false))?.stamps
    },
    {
      atomic: true,
      pg: function* (row: VectorCollectionRow, rows: ReadonlyArray<VectorRow>) {
        const written = yield* upsertRecords(row, rows, true)
        if (written === undefined) return undefined
        if (written.hnsw) {
          const { upsert } = sideWritesOf(row.uid)
          for (let start = 0; start < rows.length; start += pgChunk) {
            yield* Kit.exec(upsert, row.name, embeddingsJson(rows.slice(start, start + pgChunk)))
          }
        }
        return written.stamps
      }
    }
  ),
  delete: Kit.op(
    "vector.delete",
    (row: VectorCollectionRow, ids: ReadonlyArray<string>, expected: string | undefined) =>
      deleteRecords(row, ids, expected),
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
      const params = [
        row.name,
        row.uid,
        row.dimension,
        row.metric,
        randomUUID(),
        row.createdAt,
        blockSizeOf(row.dimension)
      ] as const
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
export interface SqlVectorOptions extends Kit.SqlOptions, VectorIndexOptions {
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

/** The backend a kit driver runs on, for `StorageError.backend`. */
const backendOf = (driver: object): string =>
  attributesOf(driver)["db.system.name"] === "postgresql" ? "postgres" : "sqlite"

const isZero = (vector: Float32Array): boolean => vector.every((x) => x === 0)

/** Loads `records` into the empty `index`, slot by slot; `false` when their slots are not `0 … n - 1`. */
const restoreRecords = (index: VectorIndex, records: ReadonlyArray<LoadedRecord>): boolean => {
  const size = records.length
  const ids: Array<string> = new Array(size)
  const metadata: Array<JsonObject> = new Array(size)
  const content: Array<string | undefined> = new Array(size)
  for (const r of records) {
    if (!(r.slot >= 0 && r.slot < size) || ids[r.slot] !== undefined) return false
    ids[r.slot] = r.id
    metadata[r.slot] = JSON.parse(r.metadata)
    content[r.slot] = contentOf(r.content)
  }
  index.loadRecords(ids, metadata, content)
  return true
}

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
    /** An index of `rows` (pgvector's candidates, each with its vector). */
    const build = (row: VectorCollectionRow, rows: ReadonlyArray<StoredRow>): VectorIndex => {
      const index = new VectorIndex(row.dimension, row.metric, rows.length)
      for (const r of rows) index.setBytes(r.id, r.vector, JSON.parse(r.metadata), contentOf(r.content))
      return index
    }
    /** Loads the collection's copy (again while writes commit meanwhile); `undefined` when it is gone. */
    const load = (row: VectorCollectionRow): Effect.Effect<IndexSnapshot | undefined, StorageError> =>
      Effect.flatMap(sql.load(row, options.approximateFrom), (loaded) => {
        if (loaded === undefined) return Effect.succeed(undefined)
        if (loaded === "changed") return load(row)
        if (loaded === "corrupt") {
          const cause = `collection ${JSON.stringify(row.name)}: its slots and blocks do not match`
          return Effect.fail(new StorageError({ backend: backendOf(sql), operation: "vector.load", cause }))
        }
        cache.set(row.name, { uid: row.uid, stamp: loaded.stamp, index: loaded.index })
        return Effect.succeed({ index: loaded.index, revision: loaded.stamp })
      })
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
          return load(row)
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
