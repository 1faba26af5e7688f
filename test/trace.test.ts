/** The `TraceStore` contract, recording tracer included, on every backend (memory, SQLite `:memory:` and file, PostgreSQL). */
import * as MemoryTraceStore from "../layers/memory/MemoryTraceStore.ts"
import * as SqlTraceStore from "../layers/sql/SqlTraceStore.ts"
import { onEveryBackend } from "./backends.ts"
import { suite } from "./suites/TraceStore.ts"

await onEveryBackend(
  { memory: MemoryTraceStore.layerWithDatabase, sql: SqlTraceStore.layerWith, schemas: [SqlTraceStore.schema] },
  ({ label, layer }) => suite(label, layer)
)
