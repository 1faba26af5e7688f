/** The `AuditLogStore` contract on every backend (memory, SQLite `:memory:` and file, PostgreSQL). */
import * as MemoryAuditLogStore from "../layers/memory/MemoryAuditLogStore.ts"
import * as SqlAuditLogStore from "../layers/sql/SqlAuditLogStore.ts"
import { onEveryBackend } from "./backends.ts"
import { suite } from "./suites/AuditLogStore.ts"

await onEveryBackend(
  {
    memory: MemoryAuditLogStore.layerWithDatabase,
    sql: SqlAuditLogStore.layerWith,
    schemas: [SqlAuditLogStore.schema]
  },
  ({ label, layer }) => suite(label, layer)
)
