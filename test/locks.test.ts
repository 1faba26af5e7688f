/**
 * The `LockStore` contract on every backend: memory, SQLite (`:memory:` and a
 * file) and PostgreSQL on the database's clock (its default), plus PostgreSQL
 * on the caller's clock (`clock: "caller"`, driven by `TestClock`).
 */
import * as MemoryLockStore from "../layers/memory/MemoryLockStore.ts"
import * as SqlLockStore from "../layers/sql/SqlLockStore.ts"
import { onEveryBackend } from "./backends.ts"
import { suite } from "./suites/LockStore.ts"

await onEveryBackend(
  { memory: MemoryLockStore.layerWithDatabase, sql: SqlLockStore.layerWith, schemas: [SqlLockStore.schema] },
  ({ label, layer }) => suite(label, layer)
)

await onEveryBackend(
  {
    memory: MemoryLockStore.layerWithDatabase,
    sql: (options) => SqlLockStore.layerWith({ ...options, clock: "caller" }),
    schemas: [SqlLockStore.schema]
  },
  ({ label, layer }) => {
    if (label === "postgres") suite("postgres, caller's clock", layer)
  }
)
