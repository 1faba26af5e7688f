/**
 * Fresh `CheckpointStore` + `SessionStore` layers for `LangGraphSaver`'s tests and the LangGraph validation kit, on
 * each backend: memory, SQLite `:memory:`, a new SQLite file, and PostgreSQL under a new table prefix (dropped by
 * `dispose`). Each call gives storage no other call can see, as the kit asks of every checkpointer it creates.
 */
import { Layer, ManagedRuntime } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { LangGraphSaverStores } from "../../adapters/langgraph/LangGraphSaver.ts"
import { MemoryDatabase } from "../../layers/memory/MemoryDatabase.ts"
import * as MemoryCheckpointStore from "../../layers/memory/MemoryCheckpointStore.ts"
import * as MemorySessionStore from "../../layers/memory/MemorySessionStore.ts"
import { tablesOf, withRequired } from "../../layers/Registry.ts"
import type { SqlOptions } from "../../layers/sql/Kit.ts"
import * as PgDatabase from "../../layers/sql/PgDatabase.ts"
import * as SqlCheckpointStore from "../../layers/sql/SqlCheckpointStore.ts"
import * as SqliteDatabase from "../../layers/sql/SqliteDatabase.ts"
import * as SqlSessionStore from "../../layers/sql/SqlSessionStore.ts"
import type { StorageError } from "../../src/Errors.ts"
import { dropPrefix, pgUrl } from "../pg.ts"

/** The backends, by the names the validation run takes in `LANGGRAPH_BACKEND`. */
export const backendNames = ["memory", "sqlite-memory", "sqlite-file", "postgres"] as const
/** A backend's name. */
export type BackendName = (typeof backendNames)[number]

/** A runtime on fresh storage, and how to let go of it (and of its storage). */
export interface FreshStores {
  readonly runtime: ManagedRuntime.ManagedRuntime<LangGraphSaverStores, StorageError>
  readonly dispose: () => Promise<void>
}

const sqlStores = (options: SqlOptions) =>
  Layer.merge(SqlCheckpointStore.layerWith(options), SqlSessionStore.layerWith(options))

let count = 0

/** A runtime providing the saver's stores on fresh storage of `backend`. */
export const freshStores = (backend: BackendName): FreshStores => {
  count++
  switch (backend) {
    case "memory": {
      const runtime = ManagedRuntime.make(
        Layer.merge(MemoryCheckpointStore.layerWithDatabase, MemorySessionStore.layerWithDatabase).pipe(
          Layer.provide(MemoryDatabase.layer)
        )
      )
      return { runtime, dispose: () => runtime.dispose() }
    }
    case "sqlite-memory": {
      const runtime = ManagedRuntime.make(
        sqlStores({}).pipe(Layer.provide(SqliteDatabase.layer({ filename: ":memory:" })))
      )
      return { runtime, dispose: () => runtime.dispose() }
    }
    case "sqlite-file": {
      const dir = mkdtempSync(join(tmpdir(), "langgraph-saver-"))
      const runtime = ManagedRuntime.make(
        sqlStores({}).pipe(Layer.provide(SqliteDatabase.layer({ filename: join(dir, "saver.db") })))
      )
      return {
        runtime,
        dispose: async () => {
          await runtime.dispose()
          rmSync(dir, { recursive: true, force: true })
        }
      }
    }
    case "postgres": {
      const tablePrefix = `lg${process.pid}_${Date.now().toString(36)}_${count}`
      const runtime = ManagedRuntime.make(
        sqlStores({ tablePrefix }).pipe(Layer.provide(PgDatabase.layer({ url: pgUrl, maxConnections: 4 })))
      )
      return {
        runtime,
        dispose: async () => {
          await runtime.dispose()
          await dropPrefix(tablePrefix, tablesOf(tablePrefix, withRequired([SqlCheckpointStore.schema])))
        }
      }
    }
  }
}
