/**
 * Builds one store's layers on every backend, for test files that exercise a
 * store outside the registry's bundles (multi-process and raw-SQL tests):
 * memory, SQLite `:memory:`, a SQLite file, and PostgreSQL (a fresh table
 * prefix, its tables dropped after the file; skipped loudly without a server).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, it } from "@effect/vitest"
import { Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorageError } from "../src/Errors.ts"
import { MemoryDatabase } from "../layers/memory/MemoryDatabase.ts"
import { tablesOf, withRequired } from "../layers/Registry.ts"
import type { SqlOptions, SqlSchema } from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { dropPrefix, pgReady, pgUrl } from "./pg.ts"

/** A store's layers as its modules export them. */
export interface StoreLayers<I> {
  readonly memory: Layer.Layer<I, never, MemoryDatabase>
  readonly sql: (options: SqlOptions) => Layer.Layer<I, StorageError, SqlClient>
  /** Its SQL schemas, dropped (with the kernel's tables) after a PostgreSQL run. */
  readonly schemas: ReadonlyArray<SqlSchema>
}

/** A backend's layer of the store. */
export interface Backend<I> {
  readonly label: string
  readonly layer: Layer.Layer<I, StorageError>
}

/** Runs `register` once per backend with the store's layer there. */
export const onEveryBackend = async <I>(store: StoreLayers<I>, register: (backend: Backend<I>) => void) => {
  register({ label: "memory", layer: store.memory.pipe(Layer.provide(MemoryDatabase.layer)) })
  register({
    label: "sqlite :memory:",
    layer: store.sql({}).pipe(Layer.provide(SqliteDatabase.layer({ filename: ":memory:" })))
  })
  const file = join(mkdtempSync(join(tmpdir(), "agent-stores-")), "test.db")
  register({ label: "sqlite file", layer: store.sql({}).pipe(Layer.provide(SqliteDatabase.layer({ filename: file }))) })
  const unreachable = await pgReady(`PostgreSQL (${store.schemas.map((s) => s.name).join(", ")})`)
  if (unreachable !== undefined) {
    describe.skip("PostgreSQL", () => it("needs a reachable server", () => {}))
    return
  }
  const tablePrefix = `t${process.pid}_${Date.now().toString(36)}`
  afterAll(() => dropPrefix(tablePrefix, tablesOf(tablePrefix, withRequired(store.schemas))))
  register({
    label: "postgres",
    layer: store.sql({ tablePrefix }).pipe(Layer.provide(PgDatabase.layer({ url: pgUrl })))
  })
}
