/**
 * The contract suites on a real PostgreSQL (`DATABASE_URL`, default the local
 * server). Without a reachable server they are skipped with the reason
 * printed; under CI (`CI` set) an unreachable server fails the run instead.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { tablesOf } from "../layers/Registry.ts"
import { StoresPg } from "../layers/Stores.ts"
import { suites } from "./suites/index.ts"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const tablePrefix = `t${process.pid}_${Date.now().toString(36)}`

const withPg = <A>(f: (sql: SqlClient) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.flatMap(SqlClient, f).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(url), connectTimeout: "3 seconds" })),
      Effect.scoped
    )
  )

const reachable = await withPg((sql) => sql`SELECT 1`).then(
  () => undefined,
  (error: unknown) => String(error)
)

if (reachable !== undefined) {
  if (process.env.CI) throw new Error(`PostgreSQL at ${url} is not reachable under CI: ${reachable}`)
  console.warn(`\n*** PostgreSQL suites SKIPPED: no server reachable at ${url} (${reachable}) ***\n`)
  describe.skip("PostgreSQL", () => {
    it("needs a reachable server", () => {})
  })
} else {
  afterAll(() =>
    withPg((sql) =>
      Effect.forEach(tablesOf(tablePrefix), (table) => sql`DROP TABLE IF EXISTS ${sql(table)} CASCADE`, {
        discard: true
      })
    )
  )
  suites("postgres", StoresPg({ url, tablePrefix }))
}
