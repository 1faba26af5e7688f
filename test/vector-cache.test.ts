/**
 * The SQL backends' scan copies: two layers on one database (two SQLite
 * connections to one file, two PostgreSQL pools) see each other's writes at
 * once, and a write rolled back with the caller's transaction is never
 * searched, even after the copy saw it inside that transaction.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import { VectorStore } from "../src/Vector.ts"
import { pgReady, pgUrl } from "./pg.ts"

type Backend = Layer.Layer<VectorStore | SqlClient, unknown>

const ids = (results: ReadonlyArray<{ readonly id: string }>) => results.map((r) => r.id)

const scenario = (label: string, makeA: () => Backend, makeB: () => Backend) =>
  describe(`VectorStore scan copies (${label})`, () => {
    it("a second layer's writes are seen at once; a rolled-back write never is", async () => {
      const a = ManagedRuntime.make(makeA())
      const b = ManagedRuntime.make(makeB())
      try {
        const name = `shared-${Date.now().toString(36)}`
        const storeA = await a.runPromise(VectorStore)
        const storeB = await b.runPromise(VectorStore)
        const search = (q: ReadonlyArray<number>) => a.runPromise(Effect.map(storeA.search(name, q, { topK: 10 }), ids))
        await a.runPromise(storeA.createCollection(name, { dimension: 2 }))
        await a.runPromise(
          storeA.upsert(name, [
            { id: "x", vector: [1, 0] },
            { id: "y", vector: [0, 1] }
          ])
        )
        expect(await search([1, 0])).toEqual(["x", "y"]) // A's copy is loaded now
        await b.runPromise(storeB.upsert(name, [{ id: "w", vector: [1, 0.1], metadata: { by: "b" } }]))
        expect(await search([1, 0])).toEqual(["x", "w", "y"])
        await b.runPromise(storeB.delete(name, ["x"]))
        expect(await search([1, 0])).toEqual(["w", "y"])
        await b.runPromise(storeB.delete(name, { filter: { by: "b" } }))
        expect(await search([1, 0])).toEqual(["y"])
        // A's own writes update its copy in place, and are seen by B
        await a.runPromise(storeA.upsert(name, [{ id: "v", vector: [1, 1] }]))
        expect(await search([1, 0])).toEqual(["v", "y"])
        expect(await b.runPromise(Effect.map(storeB.search(name, [1, 0]), ids))).toEqual(["v", "y"])

        // rolled back with the caller's transaction: searched inside it, never after
        const rolledBack = Effect.gen(function* () {
          const sql = yield* SqlClient
          yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* storeA.upsert(name, [{ id: "ghost", vector: [1, 0] }])
              yield* storeA.delete(name, ["y"])
              expect(ids(yield* storeA.search(name, [1, 0]))).toEqual(["ghost", "v"])
              return yield* Effect.fail("roll back")
            })
          )
        })
        expect(await a.runPromise(Effect.flip(rolledBack))).toBe("roll back")
        expect(await search([1, 0])).toEqual(["v", "y"])
        expect(await a.runPromise(storeA.count(name))).toBe(2)
        // a later write by B must not make A trust a copy holding the rolled-back rows
        await b.runPromise(storeB.upsert(name, [{ id: "u", vector: [0, -1] }]))
        expect(await search([1, 0])).toEqual(["v", "u", "y"])

        // dropped and re-created with another dimension by B: A answers for the new collection
        await b.runPromise(storeB.dropCollection(name))
        await b.runPromise(storeB.createCollection(name, { dimension: 3, metric: "dot" }))
        await b.runPromise(storeB.upsert(name, [{ id: "n", vector: [1, 2, 3] }]))
        const wrong = await a.runPromise(Effect.flip(storeA.search(name, [1, 0])))
        expect(wrong).toMatchObject({ _tag: "InvalidInput", message: "vector must have 3 values, got 2" })
        expect(
          await a.runPromise(Effect.map(storeA.search(name, [1, 1, 1]), (r) => r.map((x) => [x.id, x.score])))
        ).toEqual([["n", 6]])
        expect(await a.runPromise(storeA.describeCollection(name))).toEqual({
          name,
          dimension: 3,
          metric: "dot",
          count: 1
        })
      } finally {
        await a.dispose()
        await b.dispose()
      }
    }, 60_000)
  })

const file = join(mkdtempSync(join(tmpdir(), "agent-vectors-")), "shared.db")
const sqlite = (): Backend => SqlVectorStore.layer.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename: file })))
scenario("two SQLite connections to one file", sqlite, sqlite)

const unreachable = await pgReady("PostgreSQL (vector scan copies)")
if (unreachable === undefined) {
  const tablePrefix = `tv${process.pid}_${Date.now().toString(36)}`
  afterAll(async () => {
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const table of ["vectors", "vector_collections", "vectors_migrations"]) {
        await sql.unsafe(`DROP TABLE IF EXISTS "${tablePrefix}_${table}" CASCADE`)
      }
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
  const pg = (): Backend =>
    SqlVectorStore.layerWith({ tablePrefix }).pipe(Layer.provideMerge(PgDatabase.layer({ url: pgUrl })))
  scenario("two PostgreSQL pools", pg, pg)
} else {
  describe.skip("PostgreSQL", () => it("needs a reachable server", () => {}))
}
