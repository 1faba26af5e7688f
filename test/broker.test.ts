/**
 * The `SessionBroker` contract on every backend, each the library's own bundle with the broker layer on top:
 * memory, SQLite `:memory:`, a SQLite file, and PostgreSQL (a fresh table prefix, dropped afterwards; skipped
 * loudly without a server).
 */
import { afterAll, describe, it } from "@effect/vitest"
import { Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import { tablesOf } from "../layers/Registry.ts"
import * as SessionBroker from "../layers/SessionBroker.ts"
import { StoresMemory, StoresPg, StoresSqlite } from "../layers/Stores.ts"
import { pgReady, pgUrl } from "./pg.ts"
import { suite } from "./suites/SessionBroker.ts"

suite("memory", SessionBroker.layer.pipe(Layer.provideMerge(StoresMemory)))
suite("sqlite :memory:", SessionBroker.layer.pipe(Layer.provideMerge(StoresSqlite({ filename: ":memory:" }))))
const file = join(mkdtempSync(join(tmpdir(), "agent-stores-broker-")), "test.db")
suite("sqlite file", SessionBroker.layer.pipe(Layer.provideMerge(StoresSqlite({ filename: file }))))

const tablePrefix = `b${process.pid}_${Date.now().toString(36)}`
if ((await pgReady("SessionBroker PostgreSQL suite")) !== undefined) {
  describe.skip("SessionBroker (postgres)", () => it("needs a reachable server", () => {}))
} else {
  afterAll(async () => {
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const table of tablesOf(tablePrefix)) await sql.unsafe(`DROP TABLE IF EXISTS "${table}" CASCADE`)
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
  suite(
    "postgres",
    SessionBroker.layerWith({ tablePrefix }).pipe(Layer.provideMerge(StoresPg({ url: pgUrl, tablePrefix })))
  )
}
