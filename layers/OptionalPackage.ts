/**
 * Optional packages (the database drivers), loaded by the layer that needs one when it is built: importing the
 * library never loads them, and a missing one is a `StorageError` naming the package and the command that installs
 * it, not a module-not-found defect.
 */
import { Effect } from "effect"
import { createRequire } from "node:module"
import { StorageError } from "../src/Errors.ts"

/** An optional package a backend needs: its name, the version range this library is tested with, what needs it. */
export interface OptionalPackage {
  readonly name: string
  readonly range: string
  /** `StorageError.backend` of a failure to load it. */
  readonly backend: string
}

/** better-sqlite3, the SQLite backend's driver (an optional dependency: `--omit=optional` leaves it out). */
export const betterSqlite3: OptionalPackage = { name: "better-sqlite3", range: "^12.6.2", backend: "sqlite" }

/** postgres (porsager), the PostgreSQL backend's driver (an optional peer dependency: install it yourself). */
export const postgres: OptionalPackage = { name: "postgres", range: "^3.4.9", backend: "postgres" }

/** The command that installs `pkg` at a version this library is tested with. */
export const installCommand = (pkg: OptionalPackage): string => `npm install ${pkg.name}@"${pkg.range}"`

const require = createRequire(import.meta.url)

/** Whether `error` says that `name` itself (not a module it imports) cannot be found. */
const isMissing = (error: unknown, name: string): boolean => {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  return (
    (code === "MODULE_NOT_FOUND" || code === "ERR_MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    message.includes(`'${name}'`)
  )
}

/**
 * Loads `pkg` once it is needed. Fails with a `StorageError` (operation `"load driver"`) whose message names the
 * package and the install command when it is not installed; any other failure to load it is a `StorageError` too.
 */
export const load = <A>(pkg: OptionalPackage): Effect.Effect<A, StorageError> =>
  Effect.try({
    try: () => require(pkg.name) as A,
    catch: (cause) =>
      new StorageError({
        backend: pkg.backend,
        operation: "load driver",
        cause: isMissing(cause, pkg.name)
          ? new Error(
              `the ${pkg.backend === "sqlite" ? "SQLite" : "PostgreSQL"} backend needs the package ${pkg.name}, ` +
                `which is not installed: run ${installCommand(pkg)}`
            )
          : new Error(`cannot load the package ${pkg.name}`, { cause })
      })
  })
