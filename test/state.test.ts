/** `StateStore` on every backend: memory, SQLite (`:memory:` and a file) and PostgreSQL. */
import * as MemoryStateStore from "../layers/memory/MemoryStateStore.ts"
import * as SqlStateStore from "../layers/sql/SqlStateStore.ts"
import { onEveryBackend } from "./backends.ts"
import { suite } from "./suites/StateStore.ts"

await onEveryBackend(
  { memory: MemoryStateStore.layerWithDatabase, sql: SqlStateStore.layerWith, schemas: [SqlStateStore.schema] },
  ({ label, layer }) => suite(label, layer)
)
