/** The `EventStore` contract on every backend (memory, SQLite `:memory:` and file, PostgreSQL). */
import * as MemoryEventStore from "../layers/memory/MemoryEventStore.ts"
import * as SqlEventStore from "../layers/sql/SqlEventStore.ts"
import { onEveryBackend } from "./backends.ts"
import { suite } from "./suites/EventStore.ts"

await onEveryBackend(
  { memory: MemoryEventStore.layerWithDatabase, sql: SqlEventStore.layerWith, schemas: [SqlEventStore.schema] },
  ({ label, layer }) => suite(label, layer)
)
