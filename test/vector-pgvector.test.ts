/**
 * The pgvector path of the SQL `VectorStore` (PostgreSQL, `pgvector: "auto"`):
 * the whole contract suite on it, then against a layer scanning exactly
 * (`pgvector: "off"`) on the same tables: unfiltered searches over random data
 * answer the same (ids, scores, tie order) for every metric, filtered ones too,
 * the index really answers them, and upsert, delete and drop keep each
 * collection's side table equal to its records, whichever layer writes.
 *
 * Needs the `vector` extension on the server: the file installs it into the
 * test database (schema `agent_pgvector`, left there) and is skipped, loudly,
 * when the server cannot (no pgvector build installed) or is unreachable.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime } from "effect"
import postgres from "postgres"
import { tablesOf } from "../layers/Registry.ts"
import { StoresPg } from "../layers/Stores.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import type { Metric } from "../src/VectorFilter.ts"
import { type VectorSearchOptions, VectorStore } from "../src/Vector.ts"
import { dropPrefix, pgReady, pgUrl } from "./pg.ts"
import { suite } from "./suites/VectorStore.ts"

/** Installs pgvector into the test database unless it is there: `undefined`, or why it cannot. */
const installPgvector = async (): Promise<string | undefined> => {
  const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
  try {
    const [found] = await sql`SELECT 1 FROM pg_extension WHERE extname = 'vector'`
    if (found === undefined) {
      await sql`CREATE SCHEMA IF NOT EXISTS agent_pgvector`
      await sql`CREATE EXTENSION IF NOT EXISTS vector SCHEMA agent_pgvector`
    }
    return undefined
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

const unreachable = await pgReady("PostgreSQL (pgvector)")
const missing = unreachable === undefined ? await installPgvector() : undefined
if (missing !== undefined) {
  console.warn(`\n*** VectorStore pgvector path SKIPPED: the server cannot install pgvector (${missing}) ***\n`)
}

if (unreachable !== undefined || missing !== undefined) {
  describe.skip("VectorStore pgvector path", () => it("needs PostgreSQL with the vector extension", () => {}))
} else {
  const tablePrefix = `tpv${process.pid}_${Date.now().toString(36)}`
  const admin = postgres(pgUrl, { max: 1, onnotice: () => {} })
  /** The side tables of this file's collections: the tables with a foreign key to its records. */
  const sideTables = async (): Promise<Set<string>> => {
    const rows = await admin<Array<{ name: string }>>`
      SELECT conrelid::regclass::text AS name FROM pg_constraint
      WHERE contype = 'f' AND confrelid = ${`"${tablePrefix}_vectors"`}::regclass`
    return new Set(rows.map((r) => r.name))
  }
  afterAll(async () => {
    const sides = [...(await sideTables())].map((name) => name.replaceAll('"', ""))
    await admin.end({ timeout: 1 })
    // every registry table under the prefix: the bundle test below builds them all
    await dropPrefix(tablePrefix, [...sides, ...tablesOf(tablePrefix)])
  })

  const layerOf = (pgvector: SqlVectorStore.PgvectorMode) =>
    SqlVectorStore.layerWith({ tablePrefix, pgvector }).pipe(Layer.provide(PgDatabase.layer({ url: pgUrl })))

  suite("postgres, pgvector auto", layerOf("auto"))

  describe("VectorStore pgvector path against the exact scan", () => {
    const indexed = ManagedRuntime.make(layerOf("auto"))
    const exact = ManagedRuntime.make(layerOf("off"))
    afterAll(async () => {
      await indexed.dispose()
      await exact.dispose()
    })
    const on =
      (runtime: typeof indexed) =>
      <A, E>(f: (store: VectorStore["Type"]) => Effect.Effect<A, E>) =>
        runtime.runPromise(Effect.flatMap(VectorStore, f))
    const viaIndex = on(indexed)
    const viaScan = on(exact)
    const search = (name: string, query: ArrayLike<number>, options: VectorSearchOptions) =>
      Promise.all([
        viaIndex((s) => s.search(name, Array.from(query), options)),
        viaScan((s) => s.search(name, Array.from(query), options))
      ])

    let seed = 11
    const next = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed / 2 ** 32 - 0.5
    }
    const randomVector = (dimension: number) => Float32Array.from({ length: dimension }, next)
    let counter = 0
    const fresh = (name: string) => `${name}-${++counter}`

    /** Creates `name` through the pgvector layer and returns its new side table (undefined when none was made). */
    const create = async (name: string, dimension: number, metric: Metric) => {
      const before = await sideTables()
      await viaIndex((s) => s.createCollection(name, { dimension, metric }))
      return [...(await sideTables())].find((table) => !before.has(table))
    }
    const rowsIn = async (table: string) => {
      const [{ count }] = await admin.unsafe<[{ count: string }]>(`SELECT count(*) FROM ${table}`)
      return Number(count)
    }
    const docs = (n: number, dimension: number) =>
      Array.from({ length: n }, (_, i) => ({
        id: `d${String(i).padStart(4, "0")}`,
        vector: randomVector(dimension),
        metadata: { i, group: i % 50 === 0 ? "rare" : "common" },
        content: `doc ${i}`
      }))

    for (const metric of ["cosine", "dot", "euclidean"] as const) {
      it(`${metric}: an HNSW index by metric answers unfiltered searches as the scan does`, async () => {
        const name = fresh(`knn-${metric}`)
        const dimension = 12
        const table = await create(name, dimension, metric)
        expect(table).toBeDefined()
        const [index] = await admin<Array<{ definition: string }>>`
          SELECT pg_get_indexdef(indexrelid) AS definition FROM pg_index WHERE indrelid = ${table!}::regclass
            AND NOT indisprimary`
        const opclass = { cosine: "vector_cosine_ops", dot: "vector_ip_ops", euclidean: "vector_l2_ops" }[metric]
        // the operator class qualified by the extension's schema (this file's, or wherever the server has it)
        expect(index?.definition).toMatch(new RegExp(`USING hnsw \\(embedding (\\w+\\.)?${opclass}\\)$`))
        await viaIndex((s) => s.upsert(name, docs(800, dimension)))
        expect(await rowsIn(table!)).toBe(800)
        for (let q = 0; q < 20; q++) {
          const query = randomVector(dimension)
          const options = [{ topK: 10 }, { topK: 1 }, { topK: 25, includeVectors: true }, { topK: 5, minScore: 0 }][
            q % 4
          ]!
          const [found, expected] = await search(name, query, options)
          expect(found).toEqual(expected)
        }
        // the index answers: a record left out of it is not found through it, only by the scan
        const query = randomVector(dimension)
        const [[best]] = await search(name, query, { topK: 1 })
        await admin.unsafe(`DELETE FROM ${table} WHERE id = $1`, [best!.id])
        const [withoutBest, scanned] = await search(name, query, { topK: 1 })
        expect(scanned[0]!.id).toBe(best!.id)
        expect(withoutBest[0]!.id).not.toBe(best!.id)
        // the scanning layer writes the side table too: the record is found through the index again
        const [record] = await viaScan((s) => s.get(name, [best!.id]))
        await viaScan((s) => s.upsert(name, [record!]))
        const [again] = await search(name, query, { topK: 1 })
        expect(again[0]!.id).toBe(best!.id)
      })
    }

    it("StoresPg passes `pgvector` to its VectorStore: a collection it creates is indexed", async () => {
      const name = fresh("bundle")
      const before = await sideTables()
      const bundle = StoresPg({ url: pgUrl, tablePrefix, pgvector: "auto", maxConnections: 2 })
      await Effect.runPromise(
        Effect.flatMap(VectorStore, (s) => s.createCollection(name, { dimension: 4, metric: "cosine" })).pipe(
          Effect.provide(bundle)
        )
      )
      const added = [...(await sideTables())].filter((table) => !before.has(table))
      expect(added).toHaveLength(1)
      await viaScan((s) => s.dropCollection(name))
      expect((await sideTables()).has(added[0]!)).toBe(false)
    })

    it("filtered searches, a zero query, a small collection and a large topK scan: no result is lost", async () => {
      const name = fresh("filters")
      const dimension = 8
      await create(name, dimension, "cosine")
      const all = docs(600, dimension)
      await viaIndex((s) => s.upsert(name, all))
      for (let q = 0; q < 10; q++) {
        const query = randomVector(dimension)
        const [rare, rareScan] = await search(name, query, { topK: 10, filter: { group: "rare" } })
        expect(rare).toHaveLength(10)
        expect(rare).toEqual(rareScan)
        const [some, someScan] = await search(name, query, { topK: 10, filter: { i: { $gte: 590 } } })
        expect(some.map((r) => r.id)).toEqual(someScan.map((r) => r.id))
        expect(some).toHaveLength(10)
      }
      const [zero, zeroScan] = await search(name, new Float32Array(dimension), { topK: 5 })
      expect(zero).toEqual(zeroScan)
      expect(zero.map((r) => [r.id, r.score])).toEqual(all.slice(0, 5).map((d) => [d.id, 0]))
      const [many, manyScan] = await search(name, randomVector(dimension), { topK: 300 })
      expect(many).toHaveLength(300)
      expect(many).toEqual(manyScan)
      const small = fresh("small")
      await create(small, dimension, "euclidean")
      await viaIndex((s) => s.upsert(small, all.slice(0, 30)))
      const [few, fewScan] = await search(small, randomVector(dimension), { topK: 10 })
      expect(few).toHaveLength(10)
      expect(few).toEqual(fewScan)
    })

    it("upsert, delete and drop keep the side table equal to the records, whichever layer writes", async () => {
      const name = fresh("writes")
      const dimension = 6
      const table = (await create(name, dimension, "euclidean"))!
      const all = docs(500, dimension)
      await viaIndex((s) => s.upsert(name, all))
      /** Every record has its vector in the side table, which holds nothing else; searches agree. */
      const agree = async () => {
        const pairs = await admin.unsafe<Array<{ vector: Buffer; embedding: string | null }>>(
          `SELECT v.vector, h.embedding::text AS embedding FROM "${tablePrefix}_vectors" v
            LEFT JOIN ${table} h ON h.id = v.id WHERE v.collection = $1`,
          [name]
        )
        expect(pairs.length).toBe(await viaScan((s) => s.count(name)))
        expect(await rowsIn(table)).toBe(pairs.length)
        for (const { embedding, vector } of pairs) {
          const stored = new Float32Array(vector.buffer.slice(vector.byteOffset, vector.byteOffset + vector.byteLength))
          expect(Float32Array.from(JSON.parse(embedding!) as Array<number>)).toEqual(stored)
        }
        for (let q = 0; q < 5; q++) {
          const [found, expected] = await search(name, randomVector(dimension), { topK: 10 })
          expect(found).toEqual(expected)
        }
      }
      await agree()
      // moved records: the nearest to a point is the record moved onto it, through either layer's write
      const target = randomVector(dimension)
      await viaIndex((s) => s.upsert(name, [{ id: "d0003", vector: target }]))
      expect((await search(name, target, { topK: 1 }))[0][0]!.id).toBe("d0003")
      await viaScan((s) => s.upsert(name, [{ id: "d0004", vector: target, metadata: { moved: true } }]))
      const [[first, second]] = await search(name, target, { topK: 2 })
      expect([first!.id, second!.id]).toEqual(["d0003", "d0004"])
      await agree()
      await viaIndex((s) => s.delete(name, ["d0003", "d0010"]))
      await viaScan((s) => s.delete(name, { filter: { group: "rare" } }))
      expect(await viaScan((s) => s.count(name))).toBe(500 - 2 - 10)
      await agree()
      // dropped (by the scanning layer) with its side table; re-created with another dimension and metric
      expect(await viaScan((s) => s.dropCollection(name))).toBe(true)
      expect(await sideTables()).not.toContain(table)
      const recreated = (await create(name, 3, "dot"))!
      expect(recreated).not.toBe(table)
      await viaScan((s) => s.upsert(name, docs(100, 3)))
      expect(await rowsIn(recreated)).toBe(100)
      const [found, expected] = await search(name, [0.1, 0.2, 0.3], { topK: 7 })
      expect(found).toEqual(expected)
      expect(await viaIndex((s) => s.dropCollection(name))).toBe(true)
      expect(await sideTables()).not.toContain(recreated)
      // a dimension past the index's limit: no side table, scanned
      const wide = fresh("wide")
      expect(await create(wide, 2001, "cosine")).toBeUndefined()
      await viaIndex((s) => s.upsert(wide, docs(50, 2001)))
      const [wideFound, wideExpected] = await search(wide, randomVector(2001), { topK: 3 })
      expect(wideFound).toEqual(wideExpected)
      // a collection the scanning layer creates has no side table either
      const before = await sideTables()
      await viaScan((s) => s.createCollection(fresh("plain"), { dimension: 4 }))
      expect(await sideTables()).toEqual(before)
    })
  })
}
