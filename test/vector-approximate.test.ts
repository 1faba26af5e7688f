/**
 * The approximate path (an IVF index over each collection from `approximateFrom` records on, here lowered to 1,000):
 * on a small clustered set (a Gaussian mixture) its recall@10 against an exact float64 reference stays above a floor,
 * every score it returns is the exact score, the order is by score then id, a filter never costs `topK` hits, writes
 * after the index was built are found, and every backend (memory, SQLite `:memory:` and file, PostgreSQL) returns the
 * same results.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Layer, ManagedRuntime } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import { MemoryDatabase } from "../layers/memory/MemoryDatabase.ts"
import * as MemoryVectorStore from "../layers/memory/MemoryVectorStore.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import { VectorStore } from "../src/Vector.ts"
import { pgReady, pgUrl } from "./pg.ts"

const dimension = 32
const records = 3000
const approximateFrom = 1000

/** mulberry32 */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** A Gaussian mixture: 12 unit centres, points around them (noise about as large as a centre). */
const mixture = (seed: number) => {
  const next = random(seed)
  const gauss = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next())
  const centres = Array.from({ length: 12 }, () => {
    const c = Array.from({ length: dimension }, gauss)
    const norm = Math.hypot(...c)
    return c.map((x) => x / norm)
  })
  const sigma = 0.9 / Math.sqrt(dimension)
  return () => {
    const c = centres[Math.floor(next() * centres.length)]!
    return Float32Array.from(c, (x) => x + sigma * gauss())
  }
}

const point = mixture(42)
const documents = Array.from({ length: records }, (_, i) => ({
  id: `d${String(i).padStart(5, "0")}`,
  vector: point(),
  metadata: { i, rare: i % 100 === 7 }
}))
const queries = Array.from({ length: 30 }, point)
const late = Array.from({ length: 200 }, (_, i) => ({ id: `late${i}`, vector: point(), metadata: { i, late: true } }))

/** The exact cosine score in float64, as the store scores. */
const cosine = (q: Float32Array, v: Float32Array) => {
  let dot = 0
  let qq = 0
  let vv = 0
  for (let i = 0; i < dimension; i++) {
    dot += q[i]! * v[i]!
    qq += q[i]! * q[i]!
    vv += v[i]! * v[i]!
  }
  return dot / (Math.sqrt(qq) * Math.sqrt(vv))
}

type Hits = ReadonlyArray<{ readonly id: string; readonly score: number }>

/** What a backend returns for the scenario: each query's top 10, filtered hits, and hits after more writes. */
const scenario = async (layer: Layer.Layer<VectorStore, unknown>) => {
  const runtime = ManagedRuntime.make(layer)
  try {
    const store = await runtime.runPromise(VectorStore)
    const name = `approximate-${Date.now().toString(36)}`
    await runtime.runPromise(store.createCollection(name, { dimension }))
    for (let i = 0; i < records; i += 500) await runtime.runPromise(store.upsert(name, documents.slice(i, i + 500)))
    const search = (q: Float32Array, options: object = {}) =>
      runtime.runPromise(store.search(name, q, { topK: 10, ...options })) as Promise<Hits>
    const plain: Array<Hits> = []
    for (const q of queries) plain.push(await search(q))
    const rare: Array<Hits> = []
    for (const q of queries.slice(0, 5)) rare.push(await search(q, { filter: { rare: true }, topK: 40 }))
    // writes after the index was built: new records, a deleted block of old ones
    await runtime.runPromise(store.upsert(name, late))
    await runtime.runPromise(store.delete(name, { filter: { i: { $lt: 500 }, late: { $exists: false } } }))
    const after: Array<Hits> = []
    for (const q of queries.slice(0, 10)) after.push(await search(q))
    await runtime.runPromise(store.dropCollection(name))
    return { plain, rare, after }
  } finally {
    await runtime.dispose()
  }
}

/** The exact top `k` of `docs` for `q`: best score first, ties by id. */
const exactTop = (docs: ReadonlyArray<{ id: string; vector: Float32Array }>, q: Float32Array, k: number) =>
  docs
    .map((d) => ({ id: d.id, score: cosine(q, d.vector) }))
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
    .slice(0, k)

const recall = (expected: ReadonlyArray<Hits>, actual: ReadonlyArray<Hits>) => {
  let found = 0
  let total = 0
  expected.forEach((want, i) => {
    const got = new Set(actual[i]!.map((h) => h.id))
    total += want.length
    for (const h of want) if (got.has(h.id)) found++
  })
  return found / total
}

const vectorsById = new Map([...documents, ...late].map((d) => [d.id, d.vector]))

/** Every hit's score is its exact score (to the last bits, which depend on the order of the sums), by score then id. */
const exactlyScored = (hits: Hits, q: Float32Array) => {
  for (const h of hits) expect(h.score).toBeCloseTo(cosine(q, vectorsById.get(h.id)!), 12)
  const sorted = [...hits].sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
  expect(hits).toEqual(sorted)
}

const results = new Map<string, Awaited<ReturnType<typeof scenario>>>()

const check = (label: string, layer: () => Layer.Layer<VectorStore, unknown>) =>
  it(`${label}: recall above the floor, exact scores, filters keep topK, later writes found`, async () => {
    const got = await scenario(layer())
    results.set(label, got)
    const plainRecall = recall(
      queries.map((q) => exactTop(documents, q, 10)),
      got.plain
    )
    expect(plainRecall).toBeGreaterThanOrEqual(0.9)
    got.plain.forEach((hits, i) => exactlyScored(hits, queries[i]!))
    // 30 records are rare: a filtered search of 40 returns all 30, in exact order
    got.rare.forEach((hits, i) => {
      const want = exactTop(
        documents.filter((d) => d.metadata.rare),
        queries[i]!,
        40
      )
      expect(hits.map((h) => h.id)).toEqual(want.map((h) => h.id))
      exactlyScored(hits, queries[i]!)
    })
    const remaining = [...documents.filter((d) => d.metadata.i >= 500), ...late]
    const afterRecall = recall(
      queries.slice(0, 10).map((q) => exactTop(remaining, q, 10)),
      got.after
    )
    expect(afterRecall).toBeGreaterThanOrEqual(0.9)
    got.after.forEach((hits, i) => exactlyScored(hits, queries[i]!))
    // the same as the memory backend, hit for hit
    const memory = results.get("memory")
    if (memory !== undefined) expect(got).toEqual(memory)
  }, 120_000)

const options = { approximateFrom }
const file = join(mkdtempSync(join(tmpdir(), "agent-vector-approximate-")), "approximate.db")

describe("vector search: the approximate path", () => {
  check("memory", () => MemoryVectorStore.layerWithOptions(options).pipe(Layer.provide(MemoryDatabase.layer)))
  check("sqlite :memory:", () =>
    SqlVectorStore.layerWith(options).pipe(Layer.provide(SqliteDatabase.layer({ filename: ":memory:" })))
  )
  check("sqlite file", () =>
    SqlVectorStore.layerWith(options).pipe(Layer.provide(SqliteDatabase.layer({ filename: file })))
  )
})

const unreachable = await pgReady("PostgreSQL (vector approximate path)")
if (unreachable === undefined) {
  const tablePrefix = `tva${process.pid}_${Date.now().toString(36)}`
  afterAll(async () => {
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const table of ["vector_blocks", "vectors", "vector_collections", "vectors_migrations"]) {
        await sql.unsafe(`DROP TABLE IF EXISTS "${tablePrefix}_${table}" CASCADE`)
      }
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
  describe("vector search: the approximate path (PostgreSQL)", () => {
    check("postgres", () =>
      SqlVectorStore.layerWith({ ...options, tablePrefix }).pipe(Layer.provide(PgDatabase.layer({ url: pgUrl })))
    )
  })
} else {
  describe.skip("PostgreSQL", () => it("needs a reachable server", () => {}))
}
