/**
 * Vectors through storage, bit for bit: on every backend a generated run of upserts and deletes (records spread
 * over several blocks, deletes moving the last records into the holes) leaves `get` returning exactly the float32
 * bits written, any finite value included (-0, subnormals, the largest); on SQLite files and PostgreSQL a second layer
 * then loads its scan copy from storage and returns the same bits. And the migration from the layout before blocks
 * (one BLOB/`bytea` per record, built here with that layout's own DDL, `0001_vectors`) keeps every vector.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { FastCheck as fc, Layer, ManagedRuntime } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import * as MemoryVectorStore from "../layers/memory/MemoryVectorStore.ts"
import { resolve } from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import { VectorStore } from "../src/Vector.ts"
import { MemoryDatabase } from "../layers/memory/MemoryDatabase.ts"
import { pgReady, pgUrl } from "./pg.ts"

/** 2,048 dimensions: 8 vectors a block, so a few dozen records span several blocks. */
const dimension = 2048
const pool = Array.from({ length: 40 }, (_, i) => `r${String(i).padStart(2, "0")}`)

/** A vector of finite float32 values with random bits (mulberry32 from `seed`), every few a special value. */
const vectorOf = (seed: number): Float32Array => {
  const bits = new Uint32Array(dimension)
  let state = seed | 0
  for (let i = 0; i < dimension; i++) {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    const random = (t ^ (t >>> 14)) >>> 0
    // an exponent of all ones is NaN or Infinity: clear its top bit
    bits[i] = (random & 0x7f800000) === 0x7f800000 ? random & ~0x40000000 : random
  }
  const vector = new Float32Array(bits.buffer)
  vector[0] = -0
  vector[1] = 1e-45
  vector[2] = 3.4028234663852886e38
  return vector
}

const bitsOf = (vector: Float32Array) => Array.from(new Uint32Array(vector.buffer, vector.byteOffset, vector.length))

type Step =
  | { readonly kind: "upsert"; readonly ids: ReadonlyArray<string>; readonly seed: number }
  | { readonly kind: "delete"; readonly ids: ReadonlyArray<string> }
  | { readonly kind: "deleteOdd" }

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("upsert" as const), ids: fc.subarray(pool), seed: fc.integer() })
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), ids: fc.subarray(pool) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "deleteOdd" as const }) }
)

type Runtime = ManagedRuntime.ManagedRuntime<VectorStore, unknown>

/** Runs `steps` on a fresh collection through `a`, checking `get` after each; then `b` (if any) loads it from storage. */
const run = async (a: Runtime, b: Runtime | undefined, steps: ReadonlyArray<Step>) => {
  const name = `bits-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
  const model = new Map<string, Float32Array>()
  const store = await a.runPromise(VectorStore)
  await a.runPromise(store.createCollection(name, { dimension, metric: "dot" }))
  const check = async (runtime: Runtime) => {
    const other = await runtime.runPromise(VectorStore)
    const got = await runtime.runPromise(other.get(name, pool))
    expect(got.map((r) => [r.id, bitsOf(r.vector)])).toEqual(
      pool.filter((id) => model.has(id)).map((id) => [id, bitsOf(model.get(id)!)])
    )
    const found = await runtime.runPromise(
      other.search(name, new Float32Array(dimension), { topK: pool.length, includeVectors: true })
    )
    expect(found.map((r) => [r.id, bitsOf(r.vector!)])).toEqual(
      [...model.keys()].sort().map((id) => [id, bitsOf(model.get(id)!)])
    )
  }
  for (const s of steps) {
    if (s.kind === "upsert") {
      const documents = s.ids.map((id, i) => ({
        id,
        vector: vectorOf(s.seed + i),
        metadata: { odd: id.endsWith("1") }
      }))
      await a.runPromise(store.upsert(name, documents))
      for (const d of documents) model.set(d.id, d.vector)
    } else if (s.kind === "delete") {
      expect(await a.runPromise(store.delete(name, s.ids))).toBe(s.ids.filter((id) => model.has(id)).length)
      for (const id of s.ids) model.delete(id)
    } else {
      const odd = [...model.keys()].filter((id) => id.endsWith("1"))
      expect(await a.runPromise(store.delete(name, { filter: { odd: true } }))).toBe(odd.length)
      for (const id of odd) model.delete(id)
    }
    await check(a)
  }
  if (b !== undefined) await check(b)
  await a.runPromise(store.dropCollection(name))
}

const roundTrips = (
  label: string,
  makeA: () => Layer.Layer<VectorStore, unknown>,
  makeB?: () => Layer.Layer<VectorStore, unknown>,
  runs = 12
) =>
  it(`${label}: upserts and deletes keep every vector's bits, in storage and in a copy loaded from it`, async () => {
    const a = ManagedRuntime.make(makeA())
    const b = makeB === undefined ? undefined : ManagedRuntime.make(makeB())
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 8 }), (steps) => run(a, b, steps)),
        { numRuns: runs }
      )
    } finally {
      await a.dispose()
      await b?.dispose()
    }
  }, 120_000)

const directory = mkdtempSync(join(tmpdir(), "agent-vector-storage-"))
const sqliteFile = (file: string, tablePrefix = "agent") =>
  SqlVectorStore.layerWith({ tablePrefix }).pipe(
    Layer.provide(SqliteDatabase.layer({ filename: join(directory, file) }))
  )

describe("vector storage: bits", () => {
  roundTrips("memory", () => MemoryVectorStore.layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer)))
  roundTrips("sqlite :memory:", () =>
    SqlVectorStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename: ":memory:" })))
  )
  roundTrips(
    "sqlite file",
    () => sqliteFile("bits.db"),
    () => sqliteFile("bits.db")
  )
})

// ---------------------------------------------------------------------------------------------------------------
// Migration from the layout before blocks

/** The records of the old layout: enough to fill several blocks, in an order unlike their ids'. */
const oldRecords = Array.from({ length: 29 }, (_, i) => ({
  id: `m${String((i * 7) % 29).padStart(2, "0")}`,
  vector: vectorOf(1000 + i),
  metadata: JSON.stringify({ i }),
  content: i % 3 === 0 ? null : JSON.stringify(`text ${i}`)
}))

const bytesOf = (vector: Float32Array) => Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)

/** The old layout's DDL as `0001_vectors` (never edited) states it, and `0002_vector_hnsw` on PostgreSQL. */
const oldDdl = (prefix: string, dialect: "sqlite" | "pg") =>
  [
    ...SqlVectorStore.schema.migrations["0001_vectors"]!,
    ...SqlVectorStore.schema.migrations["0002_vector_hnsw"]!
  ].flatMap((text) => {
    const own = typeof text === "string" ? text : text[dialect]
    return own === undefined ? [] : [resolve(own, prefix, dialect).replaceAll("+?", "?")]
  })

/** Checks the migrated collections through a fresh layer: every vector's bits, content, metadata, and writes after. */
const checkMigrated = async (layer: Layer.Layer<VectorStore | SqlClient, unknown>) => {
  const runtime = ManagedRuntime.make(layer)
  try {
    const store = await runtime.runPromise(VectorStore)
    expect(await runtime.runPromise(store.describeCollection("old"))).toEqual({
      name: "old",
      dimension,
      metric: "dot",
      count: 29
    })
    expect(await runtime.runPromise(store.describeCollection("empty"))).toMatchObject({ count: 0 })
    const ids = oldRecords.map((r) => r.id)
    const got = await runtime.runPromise(store.get("old", ids))
    expect(got.map((r) => [r.id, bitsOf(r.vector), r.metadata, r.content])).toEqual(
      oldRecords.map((r) => [
        r.id,
        bitsOf(r.vector),
        JSON.parse(r.metadata),
        r.content === null ? undefined : JSON.parse(r.content)
      ])
    )
    const found = await runtime.runPromise(
      store.search("old", new Float32Array(dimension), { topK: 100, includeVectors: true })
    )
    expect(found.map((r) => [r.id, bitsOf(r.vector!)])).toEqual(
      [...oldRecords].sort((x, y) => (x.id < y.id ? -1 : 1)).map((r) => [r.id, bitsOf(r.vector)])
    )
    // the migrated layout takes writes: a delete moves records, an upsert appends and replaces
    expect(await runtime.runPromise(store.delete("old", ["m00", "m05", "m13"]))).toBe(3)
    await runtime.runPromise(
      store.upsert("old", [
        { id: "m01", vector: vectorOf(7) },
        { id: "new", vector: vectorOf(8) }
      ])
    )
    const after = await runtime.runPromise(store.get("old", [...ids, "new"]))
    const expected = new Map(oldRecords.map((r) => [r.id, r.vector]))
    for (const id of ["m00", "m05", "m13"]) expected.delete(id)
    expected.set("m01", vectorOf(7))
    expected.set("new", vectorOf(8))
    expect(after.map((r) => [r.id, bitsOf(r.vector)])).toEqual([...expected].map(([id, v]) => [id, bitsOf(v)]))
  } finally {
    await runtime.dispose()
  }
}

describe("vector storage: migration from one vector per row", () => {
  it("sqlite file: every vector moves into blocks with its bits", async () => {
    const file = join(directory, "old.db")
    const db = new Database(file)
    db.pragma("journal_mode = WAL")
    db.exec(`CREATE TABLE "agent_vectors_migrations" (migration_id integer PRIMARY KEY NOT NULL,
      created_at datetime NOT NULL DEFAULT current_timestamp, name VARCHAR(255) NOT NULL)`)
    db.exec(`INSERT INTO "agent_vectors_migrations" (migration_id, name) VALUES (1, 'vectors'), (2, 'vector_hnsw')`)
    for (const statement of oldDdl("agent", "sqlite")) db.exec(statement)
    const collection = db.prepare(`INSERT INTO "agent_vector_collections" VALUES (?, ?, ?, 'dot', 'stamp', 0)`)
    collection.run("old", "uid-old", dimension)
    collection.run("empty", "uid-empty", 3)
    const insert = db.prepare(
      `INSERT INTO "agent_vectors" (collection, id, vector, metadata, content) VALUES ('old', ?, ?, ?, ?)`
    )
    for (const r of oldRecords) insert.run(r.id, bytesOf(r.vector), r.metadata, r.content)
    db.close()
    await checkMigrated(SqlVectorStore.layer.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename: file }))))
  }, 60_000)
})

const unreachable = await pgReady("PostgreSQL (vector storage)")
if (unreachable === undefined) {
  const prefix = `tvs${process.pid}_${Date.now().toString(36)}`
  const prefixes = [`${prefix}_bits`, `${prefix}_old`]
  afterAll(async () => {
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const p of prefixes) {
        for (const table of ["vector_blocks", "vectors", "vector_collections", "vectors_migrations"]) {
          await sql.unsafe(`DROP TABLE IF EXISTS "${p}_${table}" CASCADE`)
        }
      }
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
  const pg = (tablePrefix: string) =>
    SqlVectorStore.layerWith({ tablePrefix }).pipe(Layer.provideMerge(PgDatabase.layer({ url: pgUrl })))
  describe("vector storage: bits (PostgreSQL)", () => {
    roundTrips(
      "postgres",
      () => pg(prefixes[0]!),
      () => pg(prefixes[0]!),
      6
    )
  })
  describe("vector storage: migration from one vector per row (PostgreSQL)", () => {
    it("postgres: every vector moves into blocks with its bits", async () => {
      const tablePrefix = prefixes[1]!
      const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
      try {
        await sql.unsafe(`CREATE TABLE "${tablePrefix}_vectors_migrations" (migration_id integer primary key,
          created_at timestamp with time zone not null default now(), name text not null)`)
        await sql.unsafe(
          `INSERT INTO "${tablePrefix}_vectors_migrations" (migration_id, name) VALUES (1, 'vectors'), (2, 'vector_hnsw')`
        )
        for (const statement of oldDdl(tablePrefix, "pg")) await sql.unsafe(statement)
        await sql.unsafe(
          `INSERT INTO "${tablePrefix}_vector_collections" VALUES ($1, 'uid-old', $2, 'dot', 'stamp', 0),
          ('empty', 'uid-empty', 3, 'dot', 'stamp', 0)`,
          ["old", dimension]
        )
        for (const r of oldRecords) {
          await sql.unsafe(
            `INSERT INTO "${tablePrefix}_vectors" (collection, id, vector, metadata, content) VALUES ('old', $1, $2, $3, $4)`,
            [r.id, bytesOf(r.vector), r.metadata, r.content]
          )
        }
      } finally {
        await sql.end({ timeout: 1 })
      }
      await checkMigrated(pg(tablePrefix))
    }, 60_000)
  })
} else {
  describe.skip("PostgreSQL", () => it("needs a reachable server", () => {}))
}
