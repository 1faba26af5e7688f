/** The `VectorStore` contract on every backend (memory, SQLite `:memory:` and file, PostgreSQL). */
import * as MemoryVectorStore from "../layers/memory/MemoryVectorStore.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import { onEveryBackend } from "./backends.ts"
import { suite } from "./suites/VectorStore.ts"

await onEveryBackend(
  {
    memory: MemoryVectorStore.layerWithDatabase,
    sql: SqlVectorStore.layerWith,
    schemas: [SqlVectorStore.schema]
  },
  ({ label, layer }) => suite(label, layer)
)
