/**
 * The PostgreSQL `SqlClient`: `@effect/sql`'s client over the `postgres`
 * (porsager) driver. Named prepared statements by default (the server plans a
 * statement once per connection); `prepare: false` for transaction-mode
 * poolers (PgBouncer, hosted poolers), which cannot hold them. Layer build
 * checks the server answers within `connectTimeout`; `operationTimeout`
 * bounds every round trip.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Client from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { Context, Duration, Effect, Layer, Option, Redacted, Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import type postgres from "postgres"
import { StorageError } from "../../src/Errors.ts"
import * as OptionalPackage from "../OptionalPackage.ts"
import * as CommitHooks from "./CommitHooks.ts"
import * as Wakeups from "../Wakeups.ts"

/** Options of `layer`. */
export interface PgDatabaseOptions {
  /** A `postgres://` connection URL. */
  readonly url: string | Redacted.Redacted
  /** Pool size. Default 10. */
  readonly maxConnections?: number
  /**
   * Named prepared statements, planned once per connection. Default `true`;
   * `false` behind a transaction-mode pooler (PgBouncer), which cannot keep
   * them (each parameterised statement is then described before it runs: one
   * more exchange on the same connection).
   */
  readonly prepare?: boolean
  /** Bound on reaching the server (layer build fails with `StorageError` after it). Default 10 seconds. */
  readonly connectTimeout?: Duration.DurationInput
  /**
   * Bound on every round trip (each statement, `BEGIN` and `COMMIT`): past
   * it the statement is cancelled on the server and fails, so the store
   * operation fails with a `StorageError` naming it. Default: unbounded.
   */
  readonly operationTimeout?: Duration.DurationInput
}

type Pool = postgres.Sql

/**
 * The lean statement path beside the `SqlClient`: `values(text, params)` runs
 * one statement (`$1..$n` placeholders) and returns its rows as arrays, on the
 * connection of the `sql.withTransaction` open in the calling fiber, else on
 * the pool. Same connections, timeouts and errors as the client, without the
 * per-statement span and scope of `@effect/sql`'s `Statement` (about 20 µs of
 * CPU per statement). `transaction(effect)` runs `effect` in a transaction as
 * `sql.withTransaction` does (inside an open one, as a savepoint of it), but
 * outside one without its span, scope and fiber-local bookkeeping (about half
 * the client CPU of a short transaction).
 */
export class PgExecutor extends Context.Tag("effect-agent-stores/PgExecutor")<
  PgExecutor,
  {
    readonly values: (
      text: string,
      params: ReadonlyArray<unknown>
    ) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
    readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  }
>() {}

/**
 * JSON parameters are sent as given when they are strings (the stores pass
 * JSON text), stringified otherwise; `json`/`jsonb` results are parsed.
 */
const jsonType = {
  to: 114,
  from: [114, 3802],
  serialize: (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value)),
  parse: (text: string) => JSON.parse(text)
}

const escape = Statement.defaultEscape('"')

/** The statement compiler of the `pg` dialect: `$n` placeholders, double-quoted identifiers. */
const compiler = Statement.makeCompiler({
  dialect: "pg",
  placeholder: (index) => `$${index}`,
  onIdentifier: escape,
  onRecordUpdate: (placeholders, alias, columns, values, returning) => [
    `(values ${placeholders}) AS ${alias}${columns}${returning === undefined ? "" : ` RETURNING ${returning[0]}`}`,
    returning === undefined ? values.flat() : [...values.flat(), ...returning[1]]
  ],
  onCustom: () => {
    throw new Error("custom statement segments are not supported by the PostgreSQL client")
  }
})

interface PendingQuery<A> extends Promise<A> {
  /** The driver's canceller (what its `cancel()` calls, without dropping the promise). */
  canceller: ((query: any) => Promise<void>) | null | undefined
}

/** The driver's canceller as an interruption handler: a queued query leaves the queue, a running one is cancelled. */
const cancel = (query: PendingQuery<unknown>) =>
  // A pipelined query is cancelled as soon as it starts. The canceller's promise is awaited nowhere, so a failure
  // (server down) is dropped.
  Effect.sync(() => {
    const cancelled = query.canceller?.(query)
    query.canceller = null
    cancelled?.catch(() => {})
  })

/** A driver failure as the `SqlError` naming the statement (or step) it failed in. */
const sqlError = (cause: unknown, text: string) =>
  new SqlError({ cause, message: `PostgreSQL: ${describe(cause)} (${text})` })

/** Runs one porsager query for what its promise resolves to; interrupting it dequeues it or cancels it on the server. */
const run = <A>(query: PendingQuery<A>, text: string) =>
  Effect.async<A, SqlError>((resume) => {
    query.then(
      (result) => resume(Effect.succeed(result)),
      (cause) => resume(Effect.fail(sqlError(cause, text)))
    )
    return cancel(query)
  })

/**
 * Runs one porsager query for its rows, collected as they arrive (`forEach`), so the driver's query never holds
 * them. The query is a promise that under load can outlive two young collections and be moved to the old
 * generation; a young collection counts every old object as live, so rows such a query resolved with survived
 * (and were promoted) until a full collection. Measured on 50-row reads at 16 callers: half of all young memory
 * survived, young collections took 10–15 ms instead of 1–3 ms, and a read cost twice the client CPU. Here the rows
 * are held only until the fiber is resumed with them.
 */
const rowsOf = <R>(query: PendingQuery<unknown> & RowStream<R>, text: string) =>
  Effect.async<ReadonlyArray<R>, SqlError>((resume) => {
    let rows: Array<R> | undefined
    query
      .forEach((row) => {
        ;(rows ??= []).push(row)
      })
      .then(
        () => {
          const collected = rows ?? []
          rows = undefined
          resume(Effect.succeed(collected))
        },
        (cause) => {
          rows = undefined
          resume(Effect.fail(sqlError(cause, text)))
        }
      )
    return cancel(query)
  })

/**
 * `rowsOf` for a statement with parameters; one without may be several statements (the simple protocol), whose
 * results the driver gives as one array per statement, so it runs through `run` as before.
 */
const rowsOrResults = <R>(
  query: PendingQuery<ReadonlyArray<R>> & RowStream<R>,
  params: ReadonlyArray<unknown>,
  text: string
): Effect.Effect<ReadonlyArray<R>, SqlError> => (params.length === 0 ? run(query, text) : rowsOf(query, text))

/** The driver's `forEach`: each row as it arrives, the promise resolving without them. */
interface RowStream<R> {
  forEach(f: (row: R) => void): Promise<unknown>
}

const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** A `Connection` over the pool, or over one reserved connection inside a transaction. */
const makeConnection = (
  sql: Pool,
  prepare: boolean,
  bound: <A>(effect: Effect.Effect<A, SqlError>, text: string) => Effect.Effect<A, SqlError>,
  hooks: CommitHooks.CommitHooks["Type"]
): Connection => {
  const query = (text: string, params: ReadonlyArray<unknown>, named: boolean) =>
    sql.unsafe(text, params as Array<postgres.ParameterOrJSON<never>>, { prepare: named }) as unknown as PendingQuery<
      ReadonlyArray<any>
    > &
      RowStream<any> &
      postgres.PendingQuery<Array<postgres.Row>>
  const connection: Connection = {
    execute: (text, params, transformRows) =>
      bound(
        Effect.map(rowsOrResults(query(text, params, prepare), params, text), (rows) =>
          transformRows === undefined ? rows : transformRows(rows)
        ),
        text
      ),
    executeRaw: (text, params) => bound(run(query(text, params, prepare), text), text),
    executeValues: (text, params) =>
      bound(
        rowsOrResults(
          query(text, params, prepare).values() as unknown as PendingQuery<ReadonlyArray<ReadonlyArray<unknown>>> &
            RowStream<ReadonlyArray<unknown>>,
          params,
          text
        ),
        text
      ),
    // `withTransaction`'s statements (BEGIN, COMMIT, ROLLBACK, savepoints): the after-commit hooks follow them.
    executeUnprepared: (text, params, transformRows) =>
      bound(
        Effect.map(run(query(text, params, false), text), (rows) =>
          transformRows === undefined ? rows : transformRows(rows)
        ),
        text
      ).pipe(Effect.tap(() => hooks.observe(connection, text))),
    executeStream: (text, params, transformRows) =>
      Stream.fromAsyncIterable(query(text, params, prepare).cursor(128), (cause) => sqlError(cause, text)).pipe(
        Stream.mapConcat((rows) => (transformRows === undefined ? rows : transformRows(rows)))
      )
  }
  return connection
}

/**
 * Builds the `SqlClient` in `scope`: opens the pool, checks the server
 * answers within `connectTimeout`, and closes the pool when the scope closes.
 */
export const make = (
  options: PgDatabaseOptions
): Effect.Effect<
  {
    readonly client: Client.SqlClient
    readonly executor: PgExecutor["Type"]
    readonly hooks: CommitHooks.CommitHooks["Type"]
    readonly wakeups: Wakeups.Wakeups["Type"]
  },
  StorageError,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function* () {
    const connectTimeout = Duration.decode(options.connectTimeout ?? "10 seconds")
    const operationTimeout = Option.map(Option.fromNullable(options.operationTimeout), Duration.decode)
    const prepare = options.prepare ?? true
    const url = typeof options.url === "string" ? options.url : Redacted.value(options.url)
    // The driver is loaded when a pool is first opened: importing the library never loads it.
    const driver = yield* OptionalPackage.load<typeof postgres>(OptionalPackage.postgres)
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() =>
        driver(url, {
          max: options.maxConnections ?? 10,
          prepare,
          connect_timeout: Duration.toSeconds(connectTimeout),
          onnotice: () => {},
          types: { json: jsonType }
        })
      ),
      (pool) => Effect.promise(() => pool.end({ timeout: 1 }))
    )
    const bound: <A>(effect: Effect.Effect<A, SqlError>, text: string) => Effect.Effect<A, SqlError> = Option.match(
      operationTimeout,
      {
        onNone: () => (effect) => effect,
        onSome: (duration) => (effect, text) =>
          Effect.timeoutFail(effect, {
            duration,
            onTimeout: () =>
              new SqlError({ message: `PostgreSQL: no answer within ${Duration.format(duration)} (${text})` })
          })
      }
    )
    const hooks = CommitHooks.make()
    const connection = makeConnection(pool, prepare, bound, hooks)
    yield* run(pool.unsafe("SELECT 1") as unknown as PendingQuery<unknown>, "SELECT 1").pipe(
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () => `no answer from the server within ${Duration.format(connectTimeout)}`
      }),
      Effect.mapError((cause) => new StorageError({ backend: "postgres", operation: "connect", cause }))
    )
    // One connection of the pool for a transaction (`sql.withTransaction`'s and `PgExecutor.transaction`'s).
    const reserve = Effect.tryPromise({
      try: () => pool.reserve(),
      catch: (cause) => sqlError(cause, "reserve")
    })
    const client = yield* Client.make({
      acquirer: Effect.succeed(connection),
      transactionAcquirer: Effect.map(
        Effect.acquireRelease(reserve, (reserved) => Effect.sync(() => reserved.release())),
        (reserved) => makeConnection(reserved, prepare, bound, hooks)
      ),
      compiler,
      spanAttributes: [["db.system.name", "postgresql"]]
    })
    // BEGIN, COMMIT and ROLLBACK of `transaction`, fed to the commit hooks. They run uninterruptibly, so without the
    // canceller of `run`.
    const control = (reserved: Pool, own: Connection, text: "BEGIN" | "COMMIT" | "ROLLBACK") =>
      bound(
        Effect.async<void, SqlError>((resume) => {
          reserved.unsafe(text, [], { prepare: false }).then(
            () => {
              hooks.observe(own, text)
              resume(Effect.void)
            },
            (cause) => resume(Effect.fail(sqlError(cause, text)))
          )
        }),
        text
      )
    const executor: PgExecutor["Type"] = {
      values: (text, params) =>
        Effect.withFiberRuntime((fiber) => {
          const transaction = Context.getOption(fiber.currentContext, Client.TransactionConnection)
          return (transaction._tag === "Some" ? transaction.value[0] : connection).executeValues(text, params)
        }),
      transaction: (effect) =>
        Effect.withFiberRuntime((fiber) =>
          Context.getOption(fiber.currentContext, Client.TransactionConnection)._tag === "Some"
            ? client.withTransaction(effect)
            : Effect.uninterruptibleMask((restore) =>
                Effect.flatMap(reserve, (reserved) => {
                  const own = makeConnection(reserved, prepare, bound, hooks)
                  return Effect.zipRight(
                    control(reserved, own, "BEGIN"),
                    Effect.flatMap(
                      Effect.exit(restore(Effect.provideService(effect, Client.TransactionConnection, [own, 0]))),
                      (exit) =>
                        Effect.zipRight(control(reserved, own, exit._tag === "Success" ? "COMMIT" : "ROLLBACK"), exit)
                    )
                  ).pipe(Effect.ensuring(Effect.sync(() => reserved.release())))
                })
              )
        )
    }
    return { client, executor, hooks, wakeups: crossProcess(pool, hooks) }
  })

/** The one PostgreSQL channel wake-ups travel on; the payload is this process's `origin`, then the channel key. */
const notifyChannel = "agent_stores_wakeups"

/**
 * This process's mark on its notifications (fixed length). Its own come back to its `LISTEN` connection; they
 * are dropped, since `wakeLocal` already woke every listener of the process at commit.
 */
const origin = `${randomBytes(6).toString("hex")}:`

/**
 * The `pg_notify(channel, payload)` arguments announcing wake-up `channel` to the other processes. A store can
 * run that `pg_notify` inside its own write (PostgreSQL delivers it at commit, never on rollback) and wake this
 * process's listeners with `Wakeups.inProcess(hooks)`, instead of `wake`'s separate NOTIFY round trip.
 */
export const notifyArgs = (channel: string): readonly [string, string] => [
  notifyChannel,
  origin + Wakeups.channelKey(channel)
]

/** Wakes this process's listeners for a notification from another process. */
const onNotify = (payload: string): void => {
  if (!payload.startsWith(origin)) Wakeups.wakeLocal(payload.slice(origin.length))
}

/**
 * Wake-ups across processes: after commit, this process's listeners are woken at once and a `NOTIFY` (not waited
 * for) tells the others (the process's own notifications are dropped when they come back). The first `listen`
 * opens the pool's `LISTEN` connection, which the driver re-opens after a loss; every listener is then woken, so
 * changes made meanwhile are read.
 */
const crossProcess = (pool: Pool, hooks: CommitHooks.CommitHooks["Type"]): Wakeups.Wakeups["Type"] => {
  let listening: Promise<unknown> | undefined
  const startListening = Effect.promise(
    () =>
      (listening ??= pool.listen(notifyChannel, onNotify, Wakeups.wakeAllLocal).catch(() => (listening = undefined)))
  )
  return {
    wake: (channel, hint) => {
      const key = Wakeups.channelKey(channel)
      return hooks.afterCommit(() => {
        Wakeups.wakeLocal(key, hint)
        pool.unsafe("SELECT pg_notify($1, $2)", [notifyChannel, origin + key]).catch(() => {})
      })
    },
    listen: (channel, poll) => Effect.zipRight(startListening, Wakeups.listenLocal(Wakeups.channelKey(channel), poll))
  }
}

/**
 * The PostgreSQL `SqlClient` (a pool), its `PgExecutor` and cross-process `Wakeups`; build fails with
 * `StorageError` when the server does not answer within `connectTimeout`.
 */
export const layer = (
  options: PgDatabaseOptions
): Layer.Layer<Client.SqlClient | PgExecutor | CommitHooks.CommitHooks | Wakeups.Wakeups, StorageError> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ client, executor, hooks, wakeups }) =>
      Context.make(Client.SqlClient, client).pipe(
        Context.add(PgExecutor, executor),
        Context.add(CommitHooks.CommitHooks, hooks),
        Context.add(Wakeups.Wakeups, wakeups)
      )
    )
  ).pipe(Layer.provide(Reactivity.layer))
