/**
 * The connections `PgDatabase` runs on, and the guard that keeps the
 * `postgres` driver's connection faults away from the process.
 *
 * The driver (3.4.x) crashes or stalls when a connection goes away at the
 * wrong moment, in ways no caller can catch (porsager/postgres#1154, #1208;
 * the fixes #1168, #1176 are unmerged):
 * - A statement sent on a connection whose socket has closed (a `ROLLBACK`
 *   after a failure on a `reserve()`d or `begin()` connection; any statement
 *   on a reserved connection that `release()` put back in its pool after it
 *   closed) is written from a `setImmediate` callback to the closed socket,
 *   which throws `TypeError: Cannot read properties of null (reading
 *   'write')` out of the event loop: the process dies.
 * - A connection that closes with a write still buffered keeps a stale write
 *   timer, so when the driver reconnects it never flushes its handshake: each
 *   attempt stalls until `connect_timeout`.
 * - A connection lost while the driver reads the server's array types, right
 *   after connecting, rejects a promise no one handles: under Node's default
 *   (`--unhandled-rejections=throw`) the process dies.
 * A patch inside `node_modules` would not reach users (the driver is theirs to
 * install), so the guard owns the connection lifecycle instead:
 * - Every connection is a driver instance of its own (`max: 1`), opened here
 *   and never reconnected: when its connection closes (the driver's `onclose`),
 *   it is marked lost and retired, and a fresh instance opens in its slot when
 *   one is next needed. The driver's pool, `reserve()` and `begin()` are never
 *   used.
 * - A transaction (or a cursor) takes a connection to itself; nothing is sent
 *   on a connection known to be lost, and a `ROLLBACK` there is answered
 *   without sending it (the server rolled the transaction back when the
 *   session ended).
 * - The driver never reads array types (`fetch_types: false`): the pool reads
 *   them once, as an ordinary statement whose failure is an error, and
 *   installs its own array codecs on every instance.
 * - Every wait on the server carries a deadline of its own (a timer, not an
 *   interruption), so it also ends inside uninterruptible regions (`BEGIN`,
 *   `COMMIT`, `ROLLBACK`).
 */
import { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type postgres from "postgres"

type Sql = postgres.Sql

/** A porsager query: a promise that runs when awaited, with the driver's canceller. */
export interface PendingQuery<A> extends Promise<A> {
  /** The driver's canceller (what its `cancel()` calls, without dropping the promise). */
  canceller: ((query: any) => Promise<void>) | null | undefined
  /** Each row as it arrives, the promise resolving without them. */
  forEach(f: (row: unknown) => void): Promise<unknown>
}

/** A driver failure as the `SqlError` naming the statement (or step) it failed in. */
export const sqlError = (cause: unknown, text: string) =>
  new SqlError({ cause, message: `PostgreSQL: ${describe(cause)} (${text})` })

const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** The longest delay a Node timer takes (a longer one fires at once). */
const longestTimer = 2 ** 31 - 1

/**
 * The deadline (`performance.now()` time) of a wait that starts now and lasts at most `millis`; none (`Infinity`)
 * past what a timer can wait (about 24.8 days).
 */
export const deadlineIn = (millis: number): number => (millis > longestTimer ? Infinity : performance.now() + millis)

const remaining = (deadline: number) => Math.max(0, deadline - performance.now())

/** The driver's canceller as an interruption handler: a queued query leaves the queue, a running one is cancelled. */
const cancel = (query: PendingQuery<unknown>) => {
  // A pipelined query is cancelled as soon as it starts. The canceller's promise is awaited nowhere, so a failure
  // (server down) is dropped.
  const cancelled = query.canceller?.(query)
  query.canceller = null
  cancelled?.catch(() => {})
}

/**
 * One server connection: a driver instance of one connection (`max: 1`). It is `lost` once that connection has
 * closed or was given up, and then nothing more is sent on it.
 */
export class PgConnection {
  /** Statements sent on it and not yet settled. */
  inFlight = 0
  /** Taken by a transaction or a cursor: nothing else is sent on it until it is released. */
  held = false
  /** Its connection closed, or was given up (a statement of its transaction went unanswered): nothing more is sent. */
  lost = false
  constructor(
    readonly sql: Sql,
    private readonly pool: PgPool | undefined
  ) {}

  /** Marks it lost (its connection closed, or a transaction gives it up); retired at once unless held. */
  lose(): void {
    this.lost = true
    if (!this.held) this.pool?.retire(this)
  }

  /** A statement settled (`pool` wakes those waiting for an idle connection). */
  settled(): void {
    this.inFlight--
    if (this.inFlight === 0) this.pool?.wake()
  }
}

/**
 * Whether a failure leaves its connection usable: a statement's error from the server (severity `ERROR`). Anything
 * else — a socket error, the connection closed or destroyed, a `FATAL` from the server — means the connection is
 * gone or going: the driver rejects what is in flight when its socket errs, but settles nothing sent between that
 * and the socket's close (measured: a `ROLLBACK` sent in that gap was never answered), so nothing more may be sent.
 */
const leavesConnection = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && (cause as { severity?: unknown }).severity === "ERROR"

/** The `SqlError` of a statement not sent because its connection was lost (so it did nothing on the server). */
const lostError = (text: string) =>
  new SqlError({ message: `PostgreSQL: the connection was lost; the statement was not sent (${text})` })

/** The `SqlError` of a statement whose answer did not come by its deadline (it may or may not have taken effect). */
const noAnswer = (text: string, bound: string) =>
  new SqlError({ message: `PostgreSQL: no answer within ${bound} (${text})` })

/**
 * Runs `query` on `connection` for its rows (collected as they arrive with `forEach`, when `rows`) or for what its
 * promise resolves to. Fails at once, without sending it, when the connection is lost; past `deadline` fails with
 * "no answer" and cancels it on the server (on a held connection it also gives the connection up: its transaction's
 * state is unknown). Interrupting it dequeues it or cancels it on the server.
 *
 * Rows are collected with `forEach` so the driver's query never holds them: a query is a promise that under load
 * can outlive two young collections and be promoted, and rows it resolved with then survived every young collection
 * until a full one (measured on 50-row reads at 16 callers: young collections took 10–15 ms instead of 1–3 ms).
 */
export const exec = <A>(
  connection: PgConnection,
  query: PendingQuery<unknown>,
  text: string,
  deadline: number,
  bound: string,
  rows: boolean
): Effect.Effect<A, SqlError> =>
  Effect.async<A, SqlError>((resume) => {
    if (connection.lost) {
      resume(Effect.fail(lostError(text)))
      return
    }
    connection.inFlight++
    let done = false
    let collected: Array<unknown> | undefined
    const timer =
      deadline === Infinity
        ? undefined
        : setTimeout(() => {
            if (done) return
            done = true
            collected = undefined
            cancel(query)
            if (connection.held) connection.lose()
            resume(Effect.fail(noAnswer(text, bound)))
          }, remaining(deadline))
    const promise = rows
      ? query.forEach((row) => {
          if (!done) (collected ??= []).push(row)
        })
      : query
    promise.then(
      (result) => {
        connection.settled()
        if (done) return
        done = true
        clearTimeout(timer)
        const value = rows ? (collected ?? []) : result
        collected = undefined
        resume(Effect.succeed(value as A))
      },
      (cause) => {
        connection.settled()
        if (!leavesConnection(cause)) connection.lose()
        if (done) return
        done = true
        clearTimeout(timer)
        collected = undefined
        resume(Effect.fail(sqlError(cause, text)))
      }
    )
    return Effect.sync(() => {
      if (done) return
      done = true
      clearTimeout(timer)
      collected = undefined
      cancel(query)
    })
  })

/**
 * Sends `query` on `connection` without waiting for it (its outcome is ignored); nothing is sent on a lost
 * connection.
 */
export const fire = (connection: PgConnection, query: PendingQuery<unknown>): void => {
  if (connection.lost) return
  connection.inFlight++
  query.then(
    () => connection.settled(),
    (cause) => {
      connection.settled()
      if (!leavesConnection(cause)) connection.lose()
    }
  )
}

/** Array element type → array type, as `pg_type` lists them. */
export type ArrayTypes = ReadonlyArray<readonly [element: number, array: number]>

/** The statement reading `ArrayTypes` (the driver's own, which it runs after every connect when `fetch_types` is on). */
export const arrayTypesQuery = `SELECT b.oid, b.typarray FROM pg_catalog.pg_type a
  LEFT JOIN pg_catalog.pg_type b ON b.oid = a.typelem WHERE a.typcategory = 'A'
  GROUP BY b.oid, b.typarray ORDER BY b.oid`

/** A PostgreSQL array literal of `values` (nested arrays nest), each element through `element` and quoted. */
const arrayLiteral = (
  values: ReadonlyArray<unknown>,
  element: ((value: unknown) => unknown) | undefined,
  delimiter: string
): string => {
  let out = "{"
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += delimiter
    const value = values[i]
    out += Array.isArray(value)
      ? arrayLiteral(value, element, delimiter)
      : value === null || value === undefined
        ? "NULL"
        : `"${String(element === undefined ? value : element(value)).replace(/[\\"]/g, "\\$&")}"`
  }
  return `${out}}`
}

/** Parses a PostgreSQL array literal (`{a,"b c",NULL,{1,2}}`), each element through `element`. */
const parseArrayLiteral = (
  text: string,
  element: ((text: string) => unknown) | undefined,
  delimiter: string
): Array<unknown> => {
  // A literal with lower bounds other than 1 starts with its dimensions: `[0:1]={a,b}`.
  let i = text.charCodeAt(0) === 91 ? text.indexOf("=") + 1 : 0
  const parse = (): Array<unknown> => {
    const out: Array<unknown> = []
    i++ // the opening brace
    while (i < text.length) {
      const c = text[i]!
      if (c === "}") {
        i++
        return out
      }
      if (c === delimiter) {
        i++
      } else if (c === "{") {
        out.push(parse())
      } else if (c === '"') {
        let value = ""
        for (i++; text[i] !== '"'; i++) value += text[text[i] === "\\" ? ++i : i]
        i++
        out.push(element === undefined ? value : element(value))
      } else {
        let end = i
        while (text[end] !== delimiter && text[end] !== "}") end++
        const value = text.slice(i, end)
        i = end
        out.push(value === "NULL" ? null : element === undefined ? value : element(value))
      }
    }
    return out
  }
  return parse()
}

/** Installs codecs for `types` on a driver instance: each array type through its element type's own codec. */
const installArrayTypes = (sql: Sql, types: ArrayTypes): void => {
  const { parsers, serializers } = sql.options
  for (const [element, array] of types) {
    // Only PostgreSQL's box type (whose array is 1020) separates its array elements with ";".
    const delimiter = array === 1020 ? ";" : ","
    const parse = parsers[element] as ((text: string) => unknown) | undefined
    const serialize = serializers[element]
    parsers[array] = (text: string) => parseArrayLiteral(text, parse, delimiter)
    serializers[array] = (value: unknown) => (Array.isArray(value) ? arrayLiteral(value, serialize, delimiter) : value)
  }
}

/**
 * The layer's connections: at most `size` slots, each empty or holding one `PgConnection`. A statement outside a
 * transaction goes to an idle connection, else opens one in an empty slot, else is pipelined on the least busy one;
 * a transaction takes an idle connection (or opens one) to itself. A lost connection leaves its slot at once, or
 * when its holder releases it.
 */
export class PgPool {
  private readonly slots: Array<PgConnection | undefined>
  private readonly waiters = new Set<() => boolean>()
  private arrayTypes: ArrayTypes = []

  constructor(
    size: number,
    /** Opens a driver instance of one connection, calling `onClose` when that connection closes. */
    private readonly open: (onClose: () => void, extra?: object) => Sql
  ) {
    this.slots = new Array<PgConnection | undefined>(Math.max(1, size)).fill(undefined)
  }

  /**
   * A connection outside every slot (the layer's `LISTEN` connection), opened with the driver options `extra`;
   * `onLost` runs when its connection closes.
   */
  detached(extra: object, onLost: () => void): PgConnection {
    let connection: PgConnection | undefined = undefined
    const sql = this.open(() => {
      connection?.lose()
      onLost()
    }, extra)
    installArrayTypes(sql, this.arrayTypes)
    return (connection = new PgConnection(sql, undefined))
  }

  /** Installs the array codecs on every connection, open now or later. */
  setArrayTypes(types: ArrayTypes): void {
    this.arrayTypes = types
    for (const connection of this.slots) if (connection !== undefined) installArrayTypes(connection.sql, types)
  }

  /** Opens a connection in slot `index`. */
  private openAt(index: number): PgConnection {
    let connection: PgConnection | undefined = undefined
    const sql = this.open(() => connection?.lose())
    installArrayTypes(sql, this.arrayTypes)
    connection = new PgConnection(sql, this)
    this.slots[index] = connection
    return connection
  }

  /** A connection for one statement outside a transaction, if one can be had now. */
  pick(): PgConnection | undefined {
    let best: PgConnection | undefined = undefined
    let empty = -1
    for (let i = 0; i < this.slots.length; i++) {
      const connection = this.slots[i]
      if (connection === undefined) {
        if (empty < 0) empty = i
      } else if (!connection.held && !connection.lost) {
        if (connection.inFlight === 0) return connection
        if (best === undefined || connection.inFlight < best.inFlight) best = connection
      }
    }
    return empty >= 0 ? this.openAt(empty) : best
  }

  /** An idle connection (or a new one), held, if one can be had now. */
  take(): PgConnection | undefined {
    let empty = -1
    for (let i = 0; i < this.slots.length; i++) {
      const connection = this.slots[i]
      if (connection === undefined) {
        if (empty < 0) empty = i
      } else if (!connection.held && !connection.lost && connection.inFlight === 0) {
        connection.held = true
        return connection
      }
    }
    if (empty < 0) return undefined
    const connection = this.openAt(empty)
    connection.held = true
    return connection
  }

  /** Waits until `acquire` gives a connection, failing with `SqlError` at `deadline`. */
  waitFor(
    acquire: () => PgConnection | undefined,
    deadline: number,
    bound: string,
    text: string
  ): Effect.Effect<PgConnection, SqlError> {
    return Effect.async<PgConnection, SqlError>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined = undefined
      const attempt = () => {
        const connection = acquire()
        if (connection === undefined) return false
        this.waiters.delete(attempt)
        clearTimeout(timer)
        resume(Effect.succeed(connection))
        return true
      }
      if (attempt()) return
      this.waiters.add(attempt)
      if (deadline !== Infinity) {
        timer = setTimeout(() => {
          this.waiters.delete(attempt)
          resume(Effect.fail(new SqlError({ message: `PostgreSQL: no free connection within ${bound} (${text})` })))
        }, remaining(deadline))
      }
      return Effect.sync(() => {
        this.waiters.delete(attempt)
        clearTimeout(timer)
      })
    })
  }

  /** Lets the waiters try again (a connection was released, became idle, or left its slot). */
  wake(): void {
    if (this.waiters.size === 0) return
    for (const attempt of Array.from(this.waiters)) attempt()
  }

  /** Ends a hold: the connection serves others again, or leaves its slot when it was lost meanwhile. */
  release(connection: PgConnection): void {
    connection.held = false
    if (connection.lost) this.retire(connection)
    else this.wake()
  }

  /**
   * Takes a lost connection out of its slot and ends its driver instance: whatever it still holds (a statement
   * sent after its socket erred included) fails.
   */
  retire(connection: PgConnection): void {
    const index = this.slots.indexOf(connection)
    if (index < 0) return
    this.slots[index] = undefined
    connection.sql.end({ timeout: 0 }).catch(() => {})
    this.wake()
  }

  /** Ends every connection, waiting at most `timeout` seconds for statements in flight. */
  close(timeout: number): Promise<unknown> {
    const open = this.slots.filter((connection) => connection !== undefined)
    this.slots.fill(undefined)
    return Promise.all(open.map((connection) => connection.sql.end({ timeout }).catch(() => {})))
  }
}
