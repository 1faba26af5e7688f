/** `CheckpointStore` (with the `SessionStore` its threads are) on every backend: memory, SQLite and PostgreSQL. */
import { Layer } from "effect"
import * as MemoryCheckpointStore from "../layers/memory/MemoryCheckpointStore.ts"
import * as MemorySessionStore from "../layers/memory/MemorySessionStore.ts"
import type { SqlOptions } from "../layers/sql/Kit.ts"
import * as SqlCheckpointStore from "../layers/sql/SqlCheckpointStore.ts"
import * as SqlSessionStore from "../layers/sql/SqlSessionStore.ts"
import { onEveryBackend } from "./backends.ts"
import { suite } from "./suites/CheckpointStore.ts"

await onEveryBackend(
  {
    memory: Layer.merge(MemoryCheckpointStore.layerWithDatabase, MemorySessionStore.layerWithDatabase),
    sql: (options: SqlOptions) =>
      Layer.merge(SqlCheckpointStore.layerWith(options), SqlSessionStore.layerWith(options)),
    schemas: [SqlCheckpointStore.schema]
  },
  ({ label, layer }) => suite(label, layer)
)
