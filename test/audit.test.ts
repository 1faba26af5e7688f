/** The `AuditLogStore` contract on every backend (memory, SQLite `:memory:` and file, PostgreSQL). */
import { afterAll } from "@effect/vitest"
import postgres from "postgres"
import * as MemoryAuditLogStore from "../layers/memory/MemoryAuditLogStore.ts"
import * as SqlAuditLogStore from "../layers/sql/SqlAuditLogStore.ts"
import { onEveryBackend } from "./backends.ts"
import { pgUrl } from "./pg.ts"
import { suite } from "./suites/AuditLogStore.ts"

await onEveryBackend(
  {
    memory: MemoryAuditLogStore.layerWithDatabase,
    sql: SqlAuditLogStore.layerWith,
    schemas: [SqlAuditLogStore.schema]
  },
  ({ label, layer }) => suite(label, layer)
)

// The PostgreSQL run's table prefix starts with `t<pid>_`: its trigger function outlives the dropped tables.
afterAll(async () => {
  const sql = postgres(pgUrl, { max: 1, onnotice: () => {}, connect_timeout: 3 })
  try {
    const functions = await sql<Array<{ name: string }>>`
      SELECT proname AS name FROM pg_proc WHERE proname LIKE ${`t${process.pid}\\_%\\_audit\\_log\\_append\\_only`}`
    for (const { name } of functions) await sql.unsafe(`DROP FUNCTION IF EXISTS "${name}"() CASCADE`)
  } catch {
    // No server: nothing was created there.
  } finally {
    await sql.end({ timeout: 1 })
  }
})
