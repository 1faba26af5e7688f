/**
 * How the framework adapters run the stores: frameworks call them with Promises, so each adapter holds the runtime it
 * was given and runs one Effect program per call on it. An Effect app passes the `Runtime` of the program that builds
 * the adapter (`Effect.runtime()`, what each adapter's `make` does); a plain app builds a `ManagedRuntime` from a layer
 * (`ManagedRuntime.make(StoresSqlite(...))`), shares it between adapters and disposes of it at shutdown.
 */
import { Cause, type Effect, Exit, ManagedRuntime, Runtime } from "effect"

/** What an adapter runs its programs on: a `ManagedRuntime` built from a layer, or a running program's `Runtime`. */
export type RuntimeLike<R> = ManagedRuntime.ManagedRuntime<R, unknown> | Runtime.Runtime<R>

/** The error a failed call rejects with: its message names the adapter, the operation and what went wrong. */
export class AdapterError extends Error {
  override readonly name = "AdapterError"
  constructor(
    /** e.g. `"LangGraphSaver.put"`. */
    readonly operation: string,
    message: string,
    /** The store's typed error (`NotFound`, `InvalidInput`, `StorageError`…), the defect, or the cause. */
    override readonly cause: unknown
  ) {
    super(`${operation}: ${message}`, { cause })
  }
}

/** The `AdapterError` of a failed program: the typed error's message, else the defect's, else the cause's. */
const errorOf = (operation: string, cause: Cause.Cause<unknown>): AdapterError => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") {
    const error = failure.value
    return new AdapterError(operation, error instanceof Error ? error.message : String(error), error)
  }
  const defect = Cause.dieOption(cause)
  if (defect._tag === "Some") {
    const error = defect.value
    return new AdapterError(operation, error instanceof Error ? error.message : String(error), error)
  }
  return new AdapterError(operation, Cause.isInterruptedOnly(cause) ? "interrupted" : Cause.pretty(cause), cause)
}

/**
 * A function running programs on `runtime` as Promises: `run("put", effect)` resolves with the program's value or
 * rejects with an `AdapterError` for `"<adapter>.put"`.
 */
export const promiseRunner = <R>(runtime: RuntimeLike<R>, adapter: string) => {
  const runExit: <A, E>(effect: Effect.Effect<A, E, R>) => Promise<Exit.Exit<A, unknown>> =
    ManagedRuntime.isManagedRuntime(runtime)
      ? (effect) => (runtime as ManagedRuntime.ManagedRuntime<R, unknown>).runPromiseExit(effect)
      : Runtime.runPromiseExit(runtime as Runtime.Runtime<R>)
  return <A, E>(operation: string, effect: Effect.Effect<A, E, R>): Promise<A> =>
    runExit(effect).then((exit) => {
      if (Exit.isSuccess(exit)) return exit.value
      throw errorOf(`${adapter}.${operation}`, exit.cause)
    })
}
