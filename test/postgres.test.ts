/**
 * The contract suites on a real PostgreSQL (`DATABASE_URL`, default the local
 * server's `test` database, created when missing). Without a usable server
 * they are skipped with the reason printed; under CI (`CI` set) it fails the
 * run instead.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { tablesOf } from "../layers/Registry.ts"
import { StoresPg } from "../layers/Stores.ts"
import postgres from "postgres"
import { dropPrefix, ensureDatabase, pgReady, pgUrl as url } from "./pg.ts"
import { suites } from "./suites/index.ts"

const tablePrefix = `t${process.pid}_${Date.now().toString(36)}`

const reachable = await pgReady("PostgreSQL suites")

if (reachable !== undefined) {
  describe.skip("PostgreSQL", () => {
    it("needs a reachable server", () => {})
  })
} else {
  afterAll(() => dropPrefix(tablePrefix, tablesOf(tablePrefix)))
  suites("postgres", StoresPg({ url, tablePrefix }))

  describe("the tests' database", () => {
    it("is created when the server has none of that name", async () => {
      const target = new URL(url)
      const name = `agent_stores_${process.pid}_${Date.now().toString(36)}`
      target.pathname = `/${name}`
      const maintenance = new URL(url)
      maintenance.pathname = "/postgres"
      const admin = postgres(maintenance.toString(), { max: 1, onnotice: () => {} })
      const exists = async () => (await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`).length === 1
      try {
        expect(await exists()).toBe(false)
        await ensureDatabase(target.toString())
        expect(await exists()).toBe(true)
        await ensureDatabase(target.toString())
      } finally {
        await admin.unsafe(`DROP DATABASE IF EXISTS "${name}"`)
        await admin.end({ timeout: 1 })
      }
    })
  })
}
