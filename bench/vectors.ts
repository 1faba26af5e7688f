/**
 * The vector bench (issue 12, W6): 50,000 vectors of dimension 384, top-10
 * cosine, exact search through `VectorStore` on memory, SQLite (a temp file)
 * and PostgreSQL (own table prefix, dropped at the end), beside a plain JS
 * scan over one `Float32Array` (the baseline: a straightforward loop, a
 * sort-free top-10). Also: a selective metadata filter (1% of the records),
 * upserts per second (batches of 1,000, after 5,000 not timed) on SQLite
 * against raw better-sqlite3 inserting one row per vector (the layout before
 * blocks, the library's pragmas) in one transaction per batch, and recall@10
 * of each backend against the baseline
 * (exact search: 1.0 expected).
 *
 * `runVectors({ reps })` reports the best and median of `reps` timed passes of
 * 20 queries, each store pass right after a pass of the plain scan (the row's
 * baseline is the best of those), so both sides see the same machine load.
 *
 * sqlite-vec's `vec0` (the devDependency `sqlite-vec`, loaded into a plain
 * better-sqlite3 connection with the library's pragmas) holds the same
 * vectors in a virtual table (`float[384] distance_metric=cosine`, text
 * primary key, `kind` as a metadata column): the same top-10 KNN queries
 * (ids and distances only), the same 1% filter, and its insert rate (same
 * batches, after the same warm-up) beside the SQLite upsert row.
 *
 * With `BENCH_PGVECTOR=1` and the `vector` extension installed in the
 * database, PostgreSQL again through `pgvector: "auto"` (HNSW candidates
 * re-ranked exactly; filtered searches scan): its recall@10 on these
 * uniformly random vectors, which have no neighbourhoods for HNSW to follow,
 * is its worst case.
 *
 * Run alone: `node --expose-gc --import tsx bench/vectors.ts` (`BENCH_REPS`,
 * default 5; `BENCH_VECTORS` overrides the 50,000; `DATABASE_URL`).
 */
import Database from "better-sqlite3"
import { Layer, ManagedRuntime } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as sqliteVec from "sqlite-vec"
import * as MemoryVectorStore from "../layers/memory/MemoryVectorStore.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { mmapBytes, pageCacheKiB } from "../layers/sql/SqliteDatabase.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import { VectorStore } from "../src/Vector.ts"
import { median, printTable } from "./stats.ts"
import { openAdmin } from "./admin.ts"
import { url } from "./timing.ts"

/** One row of the vector table: a time per query (ms, lower is better) or a rate (vectors/s, higher is better). */
export interface Row {
  readonly workload: string
  readonly backend: string
  readonly unit: "ms/query" | "vectors/s"
  readonly value: number
  readonly medianValue: number
  /** The plain JS scan (ms/query) or raw better-sqlite3 (vectors/s); undefined when there is none. */
  readonly baseline: number | undefined
  /** recall@10 against the plain scan (search rows). */
  readonly recall: number | undefined
}

const DIMENSION = 384
const TOP_K = 10
const QUERIES = 20
const BATCH = 1000
/** Records upserted (not timed) before the timed upserts, on both sides. */
const WARM = 5000

/** A deterministic pseudo-random generator (mulberry32), so every side gets the same data. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5
}

interface Data {
  readonly docs: ReadonlyArray<{ id: string; vector: Float32Array; metadata: { i: number; kind: string } }>
  readonly queries: ReadonlyArray<Float32Array>
  readonly flat: Float32Array
}

const makeData = (n: number): Data => {
  const next = random(42)
  const flat = new Float32Array(n * DIMENSION)
  for (let i = 0; i < flat.length; i++) flat[i] = next()
  const docs = Array.from({ length: n }, (_, i) => ({
    id: `doc-${String(i).padStart(6, "0")}`,
    vector: flat.subarray(i * DIMENSION, (i + 1) * DIMENSION),
    metadata: { i, kind: i % 100 === 0 ? "rare" : "common" }
  }))
  const queries = Array.from({ length: QUERIES }, () => Float32Array.from({ length: DIMENSION }, next))
  return { docs, queries, flat }
}

/** The baseline: a plain JS cosine scan over one Float32Array with a simple top-k insertion list. */
const plainScan = (flat: Float32Array, n: number, query: Float32Array): Array<number> => {
  let qq = 0
  for (let j = 0; j < DIMENSION; j++) qq += query[j]! * query[j]!
  const scores: Array<number> = []
  const slots: Array<number> = []
  for (let s = 0; s < n; s++) {
    let dot = 0
    let vv = 0
    const o = s * DIMENSION
    for (let j = 0; j < DIMENSION; j++) {
      const x = flat[o + j]!
      dot += query[j]! * x
      vv += x * x
    }
    const score = dot / Math.sqrt(qq * vv)
    if (scores.length < TOP_K || score > scores[scores.length - 1]!) {
      let k = scores.length < TOP_K ? scores.length : TOP_K - 1
      while (k > 0 && scores[k - 1]! < score) {
        scores[k] = scores[k - 1]!
        slots[k] = slots[k - 1]!
        k--
      }
      scores[k] = score
      slots[k] = s
    }
  }
  return slots
}

const timeQueries = async (reps: number, run: (q: Float32Array) => Promise<unknown> | unknown, data: Data) => {
  for (const q of data.queries.slice(0, 3)) await run(q)
  const passes: Array<number> = []
  for (let r = 0; r < reps; r++) passes.push(await pass(run, data))
  return { best: Math.min(...passes), median: median(passes) }
}

/** One timed pass over the queries: ms per query. */
const pass = async (run: (q: Float32Array) => Promise<unknown> | unknown, data: Data): Promise<number> => {
  const started = performance.now()
  for (const q of data.queries) await run(q)
  return (performance.now() - started) / data.queries.length
}

/**
 * Passes of `run` alternating with passes of the plain scan, so both see the same machine load: the best and
 * median of each side.
 */
const timeAgainstScan = async (reps: number, run: (q: Float32Array) => Promise<unknown>, data: Data) => {
  const scan = (q: Float32Array) => plainScan(data.flat, data.docs.length, q)
  for (const q of data.queries.slice(0, 3)) await run(q)
  const mine: Array<number> = []
  const theirs: Array<number> = []
  for (let r = 0; r < reps; r++) {
    theirs.push(await pass(scan, data))
    mine.push(await pass(run, data))
  }
  return { best: Math.min(...mine), median: median(mine), scan: Math.min(...theirs) }
}

/** What `timeAgainstScan` measured. */
type Timed = Awaited<ReturnType<typeof timeAgainstScan>>

/** The two search rows of a backend: unfiltered (with its recall@10) and with the 1% filter. */
const searchRows = (backend: string, plain: Timed, filtered: Timed, recall: number): Array<Row> => [
  {
    workload: `search top-${TOP_K} cosine`,
    backend,
    unit: "ms/query",
    value: plain.best,
    medianValue: plain.median,
    baseline: plain.scan,
    recall
  },
  {
    workload: "search, filter 1%",
    backend,
    unit: "ms/query",
    value: filtered.best,
    medianValue: filtered.median,
    baseline: filtered.scan,
    recall: undefined
  }
]

const recallOf = (expected: ReadonlyArray<ReadonlyArray<string>>, actual: ReadonlyArray<ReadonlyArray<string>>) => {
  let found = 0
  let total = 0
  for (let i = 0; i < expected.length; i++) {
    const want = new Set(expected[i])
    total += want.size
    for (const id of actual[i]!) if (want.has(id)) found++
  }
  return found / total
}

/** Search rows (unfiltered and filtered) and, for SQLite, the upsert row, through one store layer. */
const storeRows = async (
  backend: string,
  layer: Layer.Layer<VectorStore, unknown>,
  data: Data,
  reps: number,
  baseline: { readonly scan: number; readonly ids: ReadonlyArray<ReadonlyArray<string>> }
): Promise<Array<Row>> => {
  const runtime = ManagedRuntime.make(layer)
  try {
    const store = await runtime.runPromise(VectorStore)
    const name = `bench-${Date.now().toString(36)}`
    // warm-up (not timed): the same code path on a throw-away collection
    const warm = `${name}-warm`
    await runtime.runPromise(store.createCollection(warm, { dimension: DIMENSION, metric: "cosine" }))
    for (let i = 0; i < Math.min(WARM, data.docs.length); i += BATCH) {
      await runtime.runPromise(store.upsert(warm, data.docs.slice(i, i + BATCH)))
    }
    await runtime.runPromise(store.dropCollection(warm))
    await runtime.runPromise(store.createCollection(name, { dimension: DIMENSION, metric: "cosine" }))
    const started = performance.now()
    for (let i = 0; i < data.docs.length; i += BATCH) {
      await runtime.runPromise(store.upsert(name, data.docs.slice(i, i + BATCH)))
    }
    const upsertRate = data.docs.length / ((performance.now() - started) / 1000)
    const search = (q: Float32Array, filter?: { readonly [key: string]: unknown }) =>
      runtime.runPromise(store.search(name, q, filter === undefined ? { topK: TOP_K } : { topK: TOP_K, filter }))
    const first = performance.now()
    await search(data.queries[0]!)
    const load = performance.now() - first
    const ids = await Promise.all(data.queries.map(async (q) => (await search(q)).map((r) => r.id)))
    const plain = await timeAgainstScan(reps, (q) => search(q), data)
    const filtered = await timeAgainstScan(reps, (q) => search(q, { kind: "rare" }), data)
    const rows: Array<Row> = searchRows(backend, plain, filtered, recallOf(baseline.ids, ids))
    console.log(
      `vectors ${backend}: upsert ${Math.round(upsertRate).toLocaleString("en-US")} vectors/s, first search ` +
        `(loads the scan copy on SQL) ${load.toFixed(0)} ms`
    )
    if (backend !== "memory") {
      rows.push({
        workload: `upsert (batches of ${BATCH})`,
        backend,
        unit: "vectors/s",
        value: upsertRate,
        medianValue: upsertRate,
        baseline: undefined,
        recall: undefined
      })
    }
    await runtime.runPromise(store.dropCollection(name))
    return rows
  } finally {
    await runtime.dispose()
  }
}

/** Opens `file` with the library's pragmas (as the raw sides do). */
const openRaw = (file: string): Database.Database => {
  const db = new Database(file)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  db.pragma("foreign_keys = ON")
  db.pragma(`cache_size = -${pageCacheKiB}`)
  db.pragma(`mmap_size = ${mmapBytes}`)
  return db
}

/** The float32 bytes of `vector`, as the SQLite drivers bind a BLOB. */
const bytesOf = (vector: Float32Array) => Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)

/** Raw better-sqlite3: one row per vector (the layout before blocks), one transaction per batch. */
const rawSqliteUpsert = (file: string, data: Data): number => {
  const db = openRaw(file)
  try {
    db.exec(`CREATE TABLE c (name TEXT PRIMARY KEY, stamp TEXT NOT NULL)`)
    db.exec(`CREATE TABLE v (collection TEXT NOT NULL REFERENCES c (name) ON DELETE CASCADE, id TEXT NOT NULL,
      vector BLOB NOT NULL, metadata TEXT NOT NULL, content TEXT, PRIMARY KEY (collection, id)) WITHOUT ROWID`)
    db.prepare(`INSERT INTO c VALUES ('bench', 'x')`).run()
    const stamp = db.prepare(`UPDATE c SET stamp = ? WHERE name = ?`)
    const insert = db.prepare(`INSERT INTO v (collection, id, vector, metadata, content) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (collection, id) DO UPDATE SET vector = excluded.vector, metadata = excluded.metadata,
      content = excluded.content`)
    const batch = db.transaction((docs: Data["docs"]) => {
      stamp.run(String(Math.random()), "bench")
      for (const d of docs) insert.run("bench", d.id, bytesOf(d.vector), JSON.stringify(d.metadata), null)
    })
    for (let i = 0; i < Math.min(WARM, data.docs.length); i += BATCH) batch.immediate(data.docs.slice(i, i + BATCH))
    db.exec(`DELETE FROM v`)
    const started = performance.now()
    for (let i = 0; i < data.docs.length; i += BATCH) batch.immediate(data.docs.slice(i, i + BATCH))
    return data.docs.length / ((performance.now() - started) / 1000)
  } finally {
    db.close()
  }
}

/**
 * sqlite-vec's `vec0` on its own file: inserts (batches of `BATCH`, one transaction each, after `WARM` records
 * inserted and deleted), then top-10 KNN queries, unfiltered and with the 1% filter on the `kind` metadata column.
 */
const vec0Rows = async (
  file: string,
  data: Data,
  reps: number,
  baseline: { readonly ids: ReadonlyArray<ReadonlyArray<string>>; readonly insert: number }
): Promise<Array<Row>> => {
  const db = openRaw(file)
  try {
    sqliteVec.load(db)
    db.exec(
      `CREATE VIRTUAL TABLE v USING vec0(id TEXT PRIMARY KEY, embedding float[${DIMENSION}] distance_metric=cosine, ` +
        "kind TEXT)"
    )
    const insert = db.prepare(`INSERT INTO v (id, embedding, kind) VALUES (?, ?, ?)`)
    const batch = db.transaction((docs: Data["docs"]) => {
      for (const d of docs) insert.run(d.id, bytesOf(d.vector), d.metadata.kind)
    })
    for (let i = 0; i < Math.min(WARM, data.docs.length); i += BATCH) batch.immediate(data.docs.slice(i, i + BATCH))
    db.exec(`DELETE FROM v`)
    const started = performance.now()
    for (let i = 0; i < data.docs.length; i += BATCH) batch.immediate(data.docs.slice(i, i + BATCH))
    const insertRate = data.docs.length / ((performance.now() - started) / 1000)
    const knn = db.prepare(`SELECT id, distance FROM v WHERE embedding MATCH ? AND k = ? ORDER BY distance`).raw(true)
    const knnKind = db
      .prepare(`SELECT id, distance FROM v WHERE embedding MATCH ? AND k = ? AND kind = ? ORDER BY distance`)
      .raw(true)
    const search = (q: Float32Array) => knn.all(bytesOf(q), TOP_K) as Array<[string, number]>
    const ids = data.queries.map((q) => search(q).map(([id]) => id))
    const plain = await timeAgainstScan(reps, async (q) => search(q), data)
    const filtered = await timeAgainstScan(reps, async (q) => knnKind.all(bytesOf(q), TOP_K, "rare"), data)
    const backend = "sqlite-vec vec0"
    return [
      ...searchRows(backend, plain, filtered, recallOf(baseline.ids, ids)),
      {
        workload: `insert (batches of ${BATCH})`,
        backend,
        unit: "vectors/s",
        value: insertRate,
        medianValue: insertRate,
        baseline: baseline.insert,
        recall: undefined
      }
    ]
  } finally {
    db.close()
  }
}

/**
 * Runs every vector row: the plain scan, memory, SQLite, sqlite-vec's `vec0` and PostgreSQL (left out with a note
 * when unreachable), there also through pgvector (`pgvector: "auto"`) with `BENCH_PGVECTOR=1` when the extension is
 * installed.
 */
export const runVectors = async (options: {
  readonly reps: number
  readonly n?: number
}): Promise<ReadonlyArray<Row>> => {
  const n = options.n ?? Number(process.env["BENCH_VECTORS"] ?? 50_000)
  const data = makeData(n)
  const scanIds = data.queries.map((q) => plainScan(data.flat, n, q).map((slot) => data.docs[slot]!.id))
  const scan = await timeQueries(options.reps, (q) => plainScan(data.flat, n, q), data)
  const baseline = { scan: scan.best, ids: scanIds }
  const rows: Array<Row> = [
    {
      workload: `search top-${TOP_K} cosine`,
      backend: "plain JS scan",
      unit: "ms/query",
      value: scan.best,
      medianValue: scan.median,
      baseline: undefined,
      recall: 1
    }
  ]
  rows.push(...(await storeRows("memory", MemoryVectorStore.layer, data, options.reps, baseline)))
  const dir = mkdtempSync(join(tmpdir(), "agent-vectors-"))
  try {
    const sqlite = SqlVectorStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename: join(dir, "library.db") })))
    const sqliteRows = await storeRows("sqlite", sqlite, data, options.reps, baseline)
    const raw = rawSqliteUpsert(join(dir, "raw.db"), data)
    rows.push(...sqliteRows.map((row) => (row.unit === "vectors/s" ? { ...row, baseline: raw } : row)))
    rows.push(...(await vec0Rows(join(dir, "vec0.db"), data, options.reps, { ids: scanIds, insert: raw })))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const prefix = `bench_vec_${process.pid}`
  const admin = await openAdmin(url)
  if (typeof admin === "string") {
    console.log(`vector postgres rows skipped: ${admin}`)
    return rows
  }
  const hnswPrefix = `${prefix}_hnsw`
  try {
    const pg = SqlVectorStore.layerWith({ tablePrefix: prefix }).pipe(Layer.provide(PgDatabase.layer({ url })))
    rows.push(...(await storeRows("postgres", pg, data, options.reps, baseline)))
    const [installed] = await admin`SELECT 1 FROM pg_extension WHERE extname = 'vector'`
    if (process.env["BENCH_PGVECTOR"] !== "1") {
      console.log("vector pgvector rows not run (BENCH_PGVECTOR=1 runs them: several minutes of HNSW inserts)")
    } else if (installed === undefined) {
      console.log("vector pgvector rows skipped: the vector extension is not installed in the database")
    } else {
      const hnsw = SqlVectorStore.layerWith({ tablePrefix: hnswPrefix, pgvector: "auto" }).pipe(
        Layer.provide(PgDatabase.layer({ url }))
      )
      rows.push(...(await storeRows("postgres, pgvector", hnsw, data, options.reps, baseline)))
    }
  } finally {
    for (const tablePrefix of [prefix, hnswPrefix]) {
      // the pgvector side tables of collections left behind by a failed run: those referencing the records
      const exists = await admin`SELECT to_regclass(${`"${tablePrefix}_vectors"`}) IS NOT NULL AS found`
      const sides = exists[0]?.["found"]
        ? await admin<Array<{ name: string }>>`SELECT conrelid::regclass::text AS name FROM pg_constraint
            WHERE contype = 'f' AND confrelid = ${`"${tablePrefix}_vectors"`}::regclass`
        : []
      for (const { name } of sides) await admin.unsafe(`DROP TABLE IF EXISTS ${name}`)
      for (const table of ["vectors", "vector_collections", "vectors_migrations"]) {
        await admin.unsafe(`DROP TABLE IF EXISTS "${tablePrefix}_${table}" CASCADE`)
      }
    }
    await admin.end({ timeout: 1 })
  }
  return rows
}

/** Prints `rows` as a table. */
export const printVectors = (rows: ReadonlyArray<Row>) => {
  const header = ["workload", "backend", "best", "median", "unit", "baseline", "vs baseline", "recall@10"]
  const fmt = (x: number, unit: Row["unit"]) =>
    unit === "ms/query" ? x.toFixed(2) : Math.round(x).toLocaleString("en-US")
  const cells = rows.map((r) => [
    r.workload,
    r.backend,
    fmt(r.value, r.unit),
    fmt(r.medianValue, r.unit),
    r.unit,
    r.baseline === undefined ? "" : fmt(r.baseline, r.unit),
    r.baseline === undefined
      ? ""
      : r.unit === "ms/query"
        ? `${(r.baseline / r.value).toFixed(2)}x`
        : `${(r.value / r.baseline).toFixed(2)}x`,
    r.recall === undefined ? "" : r.recall.toFixed(3)
  ])
  console.log(
    `vectors (W6): ${DIMENSION}-dimensional, exact search; baseline = plain JS Float32Array scan (ms/query) or raw ` +
      "better-sqlite3 inserting into a plain table (vectors/s); vs baseline > 1 is faster; vec0 = sqlite-vec's " +
      "virtual table (brute-force KNN, ids and distances only)" +
      (rows.some((r) => r.backend === "postgres, pgvector")
        ? "; postgres, pgvector = HNSW candidates re-ranked exactly (approximate; filtered searches scan)"
        : "")
  )
  printTable(header, cells, (i) => i < 2 || i === 4)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 5))
  const started = performance.now()
  printVectors(await runVectors({ reps }))
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
