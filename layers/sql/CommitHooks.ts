/**
 * After-commit hooks: a store publishes to subscribers only once its write
 * has committed. Outside a transaction a store operation has committed when
 * it returns, so the hook runs at once; inside a caller's
 * `sql.withTransaction` it runs when that transaction commits, and never if
 * it (or the savepoint the write was made in) rolls back.
 *
 * The library's own SQL backends (`SqliteDatabase`, `PgDatabase`) report
 * every transaction statement of their connections to `observe`; on another
 * `SqlClient`, whose commits cannot be seen, a hook inside a transaction runs
 * when the operation returns.
 */
import type { Connection } from "@effect/sql/SqlConnection"
import { TransactionConnection } from "@effect/sql/SqlClient"
import { Context, Effect, Option } from "effect"

/** What happened in an open transaction since its first hook: hooks, and savepoint names (a rollback's boundaries). */
type Entry = (() => void) | string

/** The hooks waiting for each open transaction's commit. */
export class CommitHooks extends Context.Tag("effect-agent-stores/CommitHooks")<
  CommitHooks,
  {
    /** Feeds the hooks one statement the connection ran outside a store operation (`BEGIN`, `COMMIT`, …). */
    readonly observe: (connection: Connection, sql: string) => void
    /** Runs `hook` once the current fiber's transaction commits (now, outside one). */
    readonly afterCommit: (hook: () => void) => Effect.Effect<void>
  }
>() {}

const savepoint = /^SAVEPOINT (\w+)$/i
const rollbackTo = /^ROLLBACK TO SAVEPOINT (\w+)$/i

/** A fresh set of hooks, for one backend's connections. */
export const make = (): CommitHooks["Type"] => {
  const pending = new WeakMap<Connection, Array<Entry>>()
  return {
    observe: (connection, sql) => {
      const entries = pending.get(connection)
      if (entries === undefined) return
      const statement = sql.trim()
      let match: RegExpExecArray | null
      if (/^COMMIT$/i.test(statement)) {
        pending.delete(connection)
        for (const entry of entries) if (typeof entry === "function") entry()
      } else if (/^ROLLBACK$/i.test(statement)) {
        pending.delete(connection)
      } else if ((match = savepoint.exec(statement)) !== null) {
        entries.push(match[1]!)
      } else if ((match = rollbackTo.exec(statement)) !== null) {
        // Back to the newest savepoint of that name; made before the first hook, it drops them all.
        entries.length = entries.lastIndexOf(match[1]!) + 1
      }
    },
    afterCommit: (hook) =>
      Effect.map(Effect.serviceOption(TransactionConnection), (open) => {
        if (Option.isNone(open)) return hook()
        const connection = open.value[0]
        const entries = pending.get(connection)
        if (entries === undefined) pending.set(connection, [hook])
        else entries.push(hook)
      })
  }
}

/**
 * Runs `hook` after the current transaction commits, with the hooks of the
 * backend in context; at once when there is no transaction, or when the
 * backend's commits cannot be observed.
 */
export const afterCommit = (hook: () => void): Effect.Effect<void> =>
  Effect.flatMap(Effect.serviceOption(CommitHooks), (hooks) =>
    Option.isSome(hooks) ? hooks.value.afterCommit(hook) : Effect.sync(hook)
  )
