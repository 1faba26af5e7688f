/**
 * What the SQL drivers share at the edge to the backend: the `SqlClient`
 * context every `SqlClient` driver starts from, and the classification of
 * driver errors (PostgreSQL SQLSTATEs, SQLite result codes).
 */
import { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { StorageError } from "../../src/Errors.ts"
import { SqlTables } from "./Migrations.ts"

/**
 * The client (without name transforms, so the drivers' snake_case columns are
 * what they read), the table names, and `run`, which reports an `SqlError` as
 * a `StorageError` naming the dialect and the operation.
 */
export const sqlDriver = Effect.gen(function* () {
  const sql = (yield* SqlClient).withoutTransforms()
  const tables = yield* SqlTables
  const backend = sql.onDialectOrElse({ pg: () => "postgres", sqlite: () => "sqlite", orElse: () => "sql" })
  const storageError = (operation: string) => (cause: SqlError) => new StorageError({ backend, operation, cause })
  const run = <A>(operation: string, effect: Effect.Effect<A, SqlError>) =>
    Effect.mapError(effect, storageError(operation))
  return { sql, tables, run, storageError }
})

const code = (error: unknown): unknown =>
  typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined

/** Whether a driver error (or the one an `SqlError` wraps) is a UNIQUE or PRIMARY KEY violation. */
export const isUniqueViolation = (error: unknown): boolean => {
  const found = code(error) ?? code((error as { cause?: unknown } | undefined)?.cause)
  return found === "23505" || found === "SQLITE_CONSTRAINT_UNIQUE" || found === "SQLITE_CONSTRAINT_PRIMARYKEY"
}

/** Whether a thrown SQLite error is a FOREIGN KEY violation. */
export const isForeignKeyViolation = (error: unknown): boolean => code(error) === "SQLITE_CONSTRAINT_FOREIGNKEY"

/** Whether a thrown SQLite error is SQLITE_BUSY (another connection holds a lock). */
export const isBusy = (error: unknown): boolean => {
  const found = code(error)
  return typeof found === "string" && found.startsWith("SQLITE_BUSY")
}
