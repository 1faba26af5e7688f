/**
 * The PostgreSQL `SqlClient`: `@effect/sql`'s client over the `postgres`
 * (porsager) driver, on connections this layer owns (`PgPool`: one driver
 * instance per connection, retired when its connection closes, so the
 * driver's faults on a lost connection never reach the process). Named
 * prepared statements by default (the server plans a statement once per
 * connection); `prepare: false` for transaction-mode poolers (PgBouncer,
 * hosted poolers), which cannot hold them. Layer build checks the server
 * answers within `connectTimeout`; `operationTimeout` bounds every wait on the
 * server (default 30 seconds).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Client from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { Context, Deferred, Duration, Effect, Exit, FiberId, Layer, Redacted, Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import type postgres from "postgres"
import { StorageError } from "../../src/Errors.ts"
import * as OptionalPackage from "../OptionalPackage.ts"
import * as CommitHooks from "./CommitHooks.ts"
import { arrayTypesQuery, deadlineIn, exec, fire, type PendingQuery, PgConnection, PgPool, sqlError } from "./PgPool.ts"
import * as Wakeups from "../Wakeups.ts"

/** Options of `layer`. */
export interface PgDatabaseOptions {
  /** A `postgres://` connection URL. */
  readonly url: string | Redacted.Redacted
  /** Pool size (connections for statements and transactions; one more listens for cross-process wake-ups). Default 10. */
  readonly maxConnections?: number
  /**
   * Named prepared statements, planned once per connection. Default `true`;
   * `false` behind a transaction-mode pooler (PgBouncer), which cannot keep
   * them (each parameterised statement is then described before it runs: one
   * more exchange on the same connection).
   */
  readonly prepare?: boolean
  /**
   * Bound on reaching the server: layer build fails with `StorageError` after it, and so does a statement whose
   * new connection is not ready within it. Default 10 seconds.
   */
  readonly connectTimeout?: Duration.DurationInput
  /**
   * Bound on every wait on the server: each statement (with its wait for a free connection), `BEGIN`, `COMMIT`
   * and `ROLLBACK`. Past it the statement is cancelled on the server and fails, so the store operation fails with
   * a `StorageError` naming it (which may or may not have taken effect: see `docs/postgres.md`). Default 30
   * seconds; `Duration.infinity` for none.
   */
  readonly operationTimeout?: Duration.DurationInput
  /**
   * How long a live subscription (`EventStore.subscribe`, `SessionBroker.subscribe`) keeps retrying, with
   * backoff, while its reads fail with `StorageError` (the server is away), before its stream fails with that
   * error. It resumes after the last event or message it delivered. Default 5 minutes.
   */
  readonly reconnectTimeout?: Duration.DurationInput
}

/** `operationTimeout` when not given. */
export const defaultOperationTimeout: Duration.Duration = Duration.seconds(30)

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

/** A statement that ends a transaction the server already rolled back when its connection was lost. */
const rollback = /^\s*ROLLBACK\b/i

/** The driver's cursor over a statement's rows, 128 at a time. */
type Cursor = AsyncIterable<ReadonlyArray<unknown>>

/**
 * A cursor that never touches its connection once it is lost (the driver would write to the closed socket), and
 * whose pulls end by `deadline` (each pull's own, from `bound`; a pull past it gives the connection up).
 */
const guardedCursor = (connection: PgConnection, cursor: Cursor, text: string, boundMillis: number, bound: string) => ({
  [Symbol.asyncIterator]: (): AsyncIterator<ReadonlyArray<unknown>> => {
    const iterator = cursor[Symbol.asyncIterator]()
    return {
      next: () => {
        if (connection.lost) return Promise.reject(sqlError("the connection was lost", text))
        if (deadlineIn(boundMillis) === Infinity) return iterator.next()
        let timer: ReturnType<typeof setTimeout> | undefined = undefined
        return Promise.race([
          iterator.next(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              connection.lose()
              reject(sqlError(`no answer within ${bound}`, text))
            }, boundMillis)
          })
        ]).finally(() => clearTimeout(timer))
      },
      return: (value?: unknown) =>
        Promise.resolve(connection.lost ? { done: true, value } : iterator.return!(value)) as Promise<
          IteratorResult<ReadonlyArray<unknown>>
        >
    }
  }
})

/**
 * Builds the `SqlClient` in `scope`: opens the pool, checks the server
 * answers within `connectTimeout` (reading its array types), and closes the
 * pool when the scope closes.
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
    const operationTimeout = Duration.decode(options.operationTimeout ?? defaultOperationTimeout)
    const reconnectTimeout = Duration.decode(options.reconnectTimeout ?? Wakeups.defaultReconnectTimeout)
    const boundMillis = Duration.toMillis(operationTimeout)
    const bound = Duration.format(operationTimeout)
    const connectMillis = Duration.toMillis(connectTimeout)
    const prepare = options.prepare ?? true
    const url = typeof options.url === "string" ? options.url : Redacted.value(options.url)
    // The driver is loaded when the layer is built: importing the library never loads it.
    const driver = yield* OptionalPackage.load<typeof postgres>(OptionalPackage.postgres)
    const pool = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new PgPool(options.maxConnections ?? 10, (onClose, extra) =>
            driver(url, {
              ...extra,
              max: 1,
              prepare,
              connect_timeout: Duration.isFinite(connectTimeout) ? Duration.toSeconds(connectTimeout) : 0,
              // The pool reads array types once (see `PgPool`); a connection lives until it closes.
              fetch_types: false,
              max_lifetime: null,
              onclose: onClose,
              onnotice: () => {},
              types: { json: jsonType }
            })
          )
      ),
      (pool) => Effect.promise(() => pool.close(1))
    )
    const hooks = CommitHooks.make()

    /** A free connection taken for a transaction (or a cursor), waiting for one until `deadline`. */
    const take = (text: string, deadline: number) =>
      Effect.suspend(() => {
        const connection = pool.take()
        return connection !== undefined
          ? Effect.succeed(connection)
          : pool.waitFor(() => pool.take(), deadline, bound, text)
      })
    const release = (connection: PgConnection) => Effect.sync(() => pool.release(connection))

    /** A `Connection` over the pool (each statement on a connection of its own choosing), or over a held one. */
    const makeConnection = (held: PgConnection | undefined): Connection => {
      /** Runs `f` with the connection for one statement, and the deadline of its wait on the server. */
      const on = <A>(text: string, f: (connection: PgConnection, deadline: number) => Effect.Effect<A, SqlError>) =>
        Effect.suspend(() => {
          const deadline = deadlineIn(boundMillis)
          const connection = held ?? pool.pick()
          return connection !== undefined
            ? f(connection, deadline)
            : Effect.flatMap(
                pool.waitFor(() => pool.pick(), deadline, bound, text),
                (picked) => f(picked, deadline)
              )
        })
      const query = (connection: PgConnection, text: string, params: ReadonlyArray<unknown>, named: boolean) =>
        connection.sql.unsafe(text, params as Array<postgres.ParameterOrJSON<never>>, {
          prepare: named
        }) as unknown as PendingQuery<ReadonlyArray<any>> & postgres.PendingQuery<Array<postgres.Row>>
      // A statement with parameters has its rows collected as they arrive; one without may be several statements
      // (the simple protocol), whose results the driver gives as one array per statement.
      const connection: Connection = {
        execute: (text, params, transformRows) =>
          on(text, (c, deadline) =>
            Effect.map(
              exec<ReadonlyArray<any>>(c, query(c, text, params, prepare), text, deadline, bound, params.length > 0),
              (rows) => (transformRows === undefined ? rows : transformRows(rows))
            )
          ),
        executeRaw: (text, params) =>
          on(text, (c, deadline) => exec(c, query(c, text, params, prepare), text, deadline, bound, false)),
        executeValues: (text, params) =>
          on(text, (c, deadline) =>
            exec(
              c,
              query(c, text, params, prepare).values() as unknown as PendingQuery<unknown>,
              text,
              deadline,
              bound,
              params.length > 0
            )
          ),
        // `withTransaction`'s statements (BEGIN, COMMIT, ROLLBACK, savepoints): the after-commit hooks follow them.
        // On a lost connection a ROLLBACK is answered without sending it: the server rolled back when it was lost.
        executeUnprepared: (text, params, transformRows) =>
          Effect.suspend(() =>
            held !== undefined && held.lost && rollback.test(text)
              ? Effect.succeed([])
              : on(text, (c, deadline) =>
                  Effect.map(
                    exec<ReadonlyArray<any>>(c, query(c, text, params, false), text, deadline, bound, false),
                    (rows) => (transformRows === undefined ? rows : transformRows(rows))
                  )
                )
          ).pipe(Effect.tap(() => hooks.observe(connection, text))),
        executeStream: (text, params, transformRows) => {
          const rows = (c: PgConnection) =>
            Stream.fromAsyncIterable(
              guardedCursor(c, query(c, text, params, prepare).cursor(128), text, boundMillis, bound),
              (cause) => (cause instanceof SqlError ? cause : sqlError(cause, text))
            )
          return (
            held !== undefined
              ? rows(held)
              : Stream.unwrapScoped(
                  Effect.map(
                    Effect.acquireRelease(
                      Effect.suspend(() => take(text, deadlineIn(boundMillis))),
                      release
                    ),
                    rows
                  )
                )
          ).pipe(
            Stream.mapConcat((rows) =>
              transformRows === undefined ? rows : transformRows(rows as ReadonlyArray<object>)
            )
          )
        }
      }
      return connection
    }

    const connection = makeConnection(undefined)
    // The server answers within `connectTimeout`: its array types, which every connection then decodes and encodes.
    const probe = pool.pick()!
    const arrayTypes = yield* exec<ReadonlyArray<{ oid: number | null; typarray: number }>>(
      probe,
      probe.sql.unsafe(arrayTypesQuery) as unknown as PendingQuery<unknown>,
      "connect",
      deadlineIn(connectMillis),
      Duration.format(connectTimeout),
      false
    ).pipe(Effect.mapError((cause) => new StorageError({ backend: "postgres", operation: "connect", cause })))
    pool.setArrayTypes(arrayTypes.flatMap(({ oid, typarray }) => (oid === null ? [] : [[oid, typarray] as const])))

    const client = yield* Client.make({
      acquirer: Effect.succeed(connection),
      transactionAcquirer: Effect.map(
        Effect.acquireRelease(
          Effect.suspend(() => take("BEGIN", deadlineIn(boundMillis))),
          release
        ),
        makeConnection
      ),
      compiler,
      spanAttributes: [["db.system.name", "postgresql"]]
    })
    // BEGIN, COMMIT and ROLLBACK of `transaction`, fed to the commit hooks. They run uninterruptibly, bounded by
    // their own deadline; on a lost connection a ROLLBACK is not sent (the server rolled back) and a COMMIT fails
    // unsent (nothing was committed).
    const control = (held: PgConnection, own: Connection, text: "BEGIN" | "COMMIT" | "ROLLBACK", deadline: number) =>
      Effect.suspend(() =>
        held.lost && text === "ROLLBACK"
          ? Effect.sync(() => hooks.observe(own, text))
          : Effect.tap(
              exec(
                held,
                held.sql.unsafe(text, [], { prepare: false }) as unknown as PendingQuery<unknown>,
                text,
                deadline,
                bound,
                false
              ),
              () => hooks.observe(own, text)
            )
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
            : Effect.uninterruptibleMask((restore) => {
                // Taking a connection and BEGIN share one deadline: no operation waits twice on a silent server.
                const deadline = deadlineIn(boundMillis)
                return Effect.flatMap(take("BEGIN", deadline), (held) => {
                  const own = makeConnection(held)
                  return Effect.zipRight(
                    control(held, own, "BEGIN", deadline),
                    Effect.flatMap(
                      Effect.exit(restore(Effect.provideService(effect, Client.TransactionConnection, [own, 0]))),
                      (exit) =>
                        Effect.zipRight(
                          exit._tag === "Success"
                            ? control(held, own, "COMMIT", deadlineIn(boundMillis))
                            : // The transaction's own failure is the outcome; a ROLLBACK that fails gives the
                              // connection up (closing it ends the transaction on the server).
                              Effect.catchAll(control(held, own, "ROLLBACK", deadlineIn(boundMillis)), () =>
                                Effect.sync(() => held.lose())
                              ),
                          exit
                        )
                    )
                  ).pipe(Effect.ensuring(release(held)))
                })
              })
        )
    }
    const wakeups = crossProcess(pool, hooks, yield* Effect.scope, {
      notify: (key) => {
        const notify = (c: PgConnection) =>
          c.sql.unsafe("SELECT pg_notify($1, $2)", [notifyChannel, origin + key]) as unknown as PendingQuery<unknown>
        const picked = pool.pick()
        if (picked !== undefined) return fire(picked, notify(picked))
        // Every connection is held: wait for one in the background (a wake is never waited for).
        Effect.runFork(
          Effect.ignore(
            Effect.flatMap(
              pool.waitFor(() => pool.pick(), deadlineIn(boundMillis), bound, "NOTIFY"),
              (c) => Effect.sync(() => fire(c, notify(c)))
            )
          )
        )
      },
      connectMillis,
      reconnectTimeout
    })
    return { client, executor, hooks, wakeups }
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

/** Wakes this process's listeners for a notification from another process (the `LISTEN` connection's `onnotify`). */
const onNotification = (channel: string, payload: string): void => {
  if (channel === notifyChannel && !payload.startsWith(origin)) Wakeups.wakeLocal(payload.slice(origin.length))
}

/**
 * Wake-ups across processes: after commit, this process's listeners are woken at once and a `NOTIFY` (not waited
 * for) tells the others (the process's own notifications are dropped when they come back). The first `listen`
 * starts the layer's `LISTEN` connection (outside the pool): when it is lost it is opened again, with backoff
 * (0.1 s doubling to 5 s), for as long as the layer lives, and once it listens again every listener of the process
 * is woken, so changes made meanwhile are read. `listen` waits for the first attempt only: without a `LISTEN`
 * connection, followers still poll.
 */
const crossProcess = (
  pool: PgPool,
  hooks: CommitHooks.CommitHooks["Type"],
  scope: Scope.Scope,
  options: {
    /** Sends the `NOTIFY` of channel key `key`, not waited for. */
    readonly notify: (key: string) => void
    readonly connectMillis: number
    readonly reconnectTimeout: Duration.Duration
  }
): Wakeups.Wakeups["Type"] => {
  /** One `LISTEN` connection until it is lost: whether it listened. */
  const listenOnce = (firstAttempt: Deferred.Deferred<void>, relisten: boolean) =>
    Effect.acquireUseRelease(
      Effect.map(Deferred.make<void>(), (lost) => ({
        lost,
        connection: pool.detached({ onnotify: onNotification }, () => Deferred.unsafeDone(lost, Exit.void))
      })),
      ({ connection, lost }) =>
        Effect.gen(function* () {
          const result = yield* Effect.exit(
            exec(
              connection,
              connection.sql.unsafe(`LISTEN ${notifyChannel}`) as unknown as PendingQuery<unknown>,
              "LISTEN",
              deadlineIn(options.connectMillis),
              "connectTimeout",
              false
            )
          )
          yield* Deferred.succeed(firstAttempt, undefined)
          if (Exit.isFailure(result) || connection.lost) return false
          if (relisten) Wakeups.wakeAllLocal()
          yield* Deferred.await(lost)
          return true
        }),
      ({ connection }) => Effect.sync(() => void connection.sql.end({ timeout: 0 }).catch(() => {}))
    )
  const listening = (firstAttempt: Deferred.Deferred<void>) =>
    Effect.gen(function* () {
      let pause = 100
      let listened = false
      while (true) {
        if (yield* listenOnce(firstAttempt, listened)) {
          listened = true
          pause = 100
        }
        yield* Effect.sleep(Duration.millis(pause))
        pause = Math.min(pause * 2, 5_000)
      }
    })
  let started: Deferred.Deferred<void> | undefined = undefined
  const startListening = Effect.suspend(() => {
    if (started !== undefined) return Deferred.await(started)
    const firstAttempt = (started = Deferred.unsafeMake<void>(FiberId.none))
    return Effect.zipRight(Effect.forkIn(listening(firstAttempt), scope), Deferred.await(firstAttempt))
  })
  return {
    wake: (channel, hint) => {
      const key = Wakeups.channelKey(channel)
      return hooks.afterCommit(() => {
        Wakeups.wakeLocal(key, hint)
        options.notify(key)
      })
    },
    listen: (channel, poll) => Effect.zipRight(startListening, Wakeups.listenLocal(Wakeups.channelKey(channel), poll)),
    reconnectTimeout: options.reconnectTimeout
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
