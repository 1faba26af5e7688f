/**
 * The store kit (internal): a store states its SQL once — statements with `?`
 * placeholders and `{table}` names, the decoders of their rows, its
 * operations and its migrations — and two runners execute them:
 *
 * - on the embedded SQLite backend (`SqliteDatabase` in context), as
 *   statements prepared on the layer's own connection, run synchronously
 *   (an atomic operation in one immediate transaction, or a savepoint inside
 *   the caller's own transaction);
 * - on any `SqlClient` (PostgreSQL, or a caller's SQLite client), as the same
 *   text with `$n` placeholders on PostgreSQL, an atomic operation inside
 *   `sql.withTransaction`, with a per-operation PostgreSQL override where one
 *   statement does what SQLite needs several for.
 *
 * An operation is a `Call` (one statement) or a generator of calls: `yield*`
 * gives a call's result, so the same code runs synchronously on SQLite and as
 * an Effect elsewhere.
 */
import * as Migrator from "@effect/sql/Migrator"
import { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type Sqlite from "better-sqlite3"
import { Context, Effect, Layer, Option } from "effect"
import { StorageError } from "../../src/Errors.ts"
import type { PageQuery } from "../../src/Page.ts"
import { spanAttributes } from "../../src/Traced.ts"
import { PgExecutor } from "./PgDatabase.ts"
import { SqliteDatabase } from "./SqliteDatabase.ts"

/** The SQL dialects the stores speak. */
export type Dialect = "sqlite" | "pg"

/** Statement text: `?` placeholders, table names as `{name}` (prefixed and quoted by the runner). */
export type SqlText = string | { readonly sqlite: string; readonly pg: string }

/** A statement with parameters `P` whose rows (arrays in select order) decode to `R`. */
export interface Stmt<P extends ReadonlyArray<unknown>, R> {
  readonly text: SqlText
  readonly decode: (row: ReadonlyArray<any>) => R
  /** Phantom: the parameters' types. */
  readonly params?: (...params: P) => void
}

const noRows = (): never => {
  throw new Error("this statement returns no rows")
}

/** States a statement once; `decode` maps a selected row (an array) to a value. */
export const stmt = <P extends ReadonlyArray<unknown>, R = void>(
  text: SqlText,
  decode: (row: ReadonlyArray<any>) => R = noRows
): Stmt<P, R> => ({ text, decode })

/** How a call runs its statement: first row, every row, or for its effect. */
export type Mode = "one" | "all" | "exec"

/** One statement execution inside an operation; `yield*` it for its result. */
export class Call<A> {
  constructor(
    readonly stmt: Stmt<any, any>,
    readonly params: ReadonlyArray<unknown>,
    readonly mode: Mode,
    readonly after: ((result: any) => A) | undefined = undefined
  ) {}

  /** The same call with `f` applied to its result (keeps a one-statement operation a single call). */
  map<B>(f: (result: A) => B): Call<B> {
    const after = this.after
    return new Call(this.stmt, this.params, this.mode, after === undefined ? f : (result) => f(after(result)))
  }

  *[Symbol.iterator](): Generator<Call<A>, A, any> {
    return yield this
  }
}

/** The first row of `s`, decoded, or `undefined`. */
export const one = <P extends ReadonlyArray<unknown>, R>(s: Stmt<P, R>, ...params: P): Call<R | undefined> =>
  new Call(s, params, "one")

/** Every row of `s`, decoded. */
export const all = <P extends ReadonlyArray<unknown>, R>(s: Stmt<P, R>, ...params: P): Call<ReadonlyArray<R>> =>
  new Call(s, params, "all")

/** Runs `s` for its effect. */
export const exec = <P extends ReadonlyArray<unknown>>(s: Stmt<P, unknown>, ...params: P): Call<void> =>
  new Call(s, params, "exec")

/** An operation's body: one call, or a generator of calls returning `A`. */
export type Program<A> = Call<A> | Generator<Call<any>, A, any>

/** A constraint a statement violated. */
export type Violation = "unique" | "foreignKey"

/** A store operation, stated once for both runners. */
export interface Op<X extends ReadonlyArray<any>, A> {
  /** `StorageError.operation` and the span name, e.g. `"session.get"`. */
  readonly name: string
  readonly run: (...args: X) => Program<A>
  /** A PostgreSQL body that needs fewer round trips (one statement is atomic by itself). */
  readonly pg: ((...args: X) => Program<A>) | undefined
  /** Whether a body of several statements runs in one transaction. */
  readonly atomic: boolean
  /** The result when a statement violates a constraint (the transaction is rolled back first). */
  readonly onViolation: ((violation: Violation) => A) | undefined
}

/** Declares an operation. */
export const op = <X extends ReadonlyArray<any>, A, B = never>(
  name: string,
  run: (...args: X) => Program<A>,
  options: {
    readonly atomic?: boolean
    readonly pg?: (...args: X) => Program<NoInfer<A>>
    readonly onViolation?: (violation: Violation) => B
  } = {}
): Op<X, A | B> => ({ name, run, pg: options.pg, atomic: options.atomic ?? false, onViolation: options.onViolation })

/** The operations of a store. */
export type Ops = Readonly<Record<string, Op<any, any>>>

/** The driver the runners build from `ops`: each operation an Effect failing only with `StorageError`. */
export type DriverOf<O extends Ops> = {
  readonly [K in keyof O]: O[K] extends Op<infer X, infer A> ? (...args: X) => Effect.Effect<A, StorageError> : never
}

// ---------------------------------------------------------------------------
// Tables and migrations

/** Options of the SQL layers. */
export interface SqlOptions {
  /** Prefix of every table name (letters, digits, underscores). Default `agent`. */
  readonly tablePrefix?: string
}

/** The table prefix in use, provided by the SQL layers. */
export class SqlTables extends Context.Tag("effect-agent-stores/SqlTables")<SqlTables, { readonly prefix: string }>() {}

/** The default table prefix. */
export const defaultPrefix = "agent"

const prefixOf = (options: SqlOptions): Effect.Effect<string, StorageError> => {
  const prefix = options.tablePrefix ?? defaultPrefix
  return /^[A-Za-z_][A-Za-z0-9_]{0,40}$/.test(prefix)
    ? Effect.succeed(prefix)
    : Effect.fail(
        new StorageError({
          backend: "sql",
          operation: "config",
          cause: `invalid table prefix ${JSON.stringify(prefix)}`
        })
      )
}

/**
 * `text` for `dialect` with `{name}` replaced by the quoted table name and, on PostgreSQL, `?` by `$n`. On SQLite
 * each `?` becomes `+?`, the same value (unary plus changes no value, type or affinity). A SQLite built with STAT4,
 * as better-sqlite3's is, lets the planner read a bare parameter's value, and then re-prepares the statement every
 * time that parameter is bound: a `LIMIT ?` always, a column compared with `?` once `ANALYZE` (or `PRAGMA optimize`)
 * has stored samples. Either made a one-row window read about 5x slower (5 µs to 23-27 µs on the raw driver).
 */
export const resolve = (text: SqlText, prefix: string, dialect: Dialect): string => {
  const raw = typeof text === "string" ? text : text[dialect]
  const named = raw.replace(/\{([a-z_]+)\}/g, (_, name: string) => `"${prefix}_${name}"`)
  if (dialect === "sqlite") return named.replace(/\?/g, "+?")
  let n = 0
  return named.replace(/\?/g, () => `$${++n}`)
}

/**
 * Runs a statement in a migration: text with `?` placeholders and `{table}` names, as statements are stated; the
 * rows as arrays.
 */
export type MigrationQuery = (
  text: string,
  ...params: ReadonlyArray<unknown>
) => Effect.Effect<ReadonlyArray<ReadonlyArray<any>>, unknown>

/**
 * A migration step that is a program, for a data move that one SQL text cannot state for both dialects (e.g.
 * parsing JSON that PostgreSQL's `json` type refuses); it runs inside the migration's transaction.
 */
export interface MigrationProgram {
  readonly program: (query: MigrationQuery) => Effect.Effect<void, unknown>
  /** No SQL text: code that reads a step's `sqlite` or `pg` text finds none here. */
  readonly sqlite?: never
  readonly pg?: never
}

/**
 * A migration: DDL statements (and programs) run in order, in one transaction; a dialect-only statement is skipped
 * elsewhere.
 */
export type Migration = ReadonlyArray<string | { readonly sqlite?: string; readonly pg?: string } | MigrationProgram>

/** A migration key as `Migrator.fromRecord` accepts it (it silently ignores any other key). */
export const migrationKey = /^\d+_[^.]+$/

/** The SQL side of a store: its name, tables (parents first), migrations and the stores it needs first. */
export interface SqlSchema {
  /** Also names its migrations table, `<prefix>_<name>_migrations`. */
  readonly name: string
  readonly tables: ReadonlyArray<string>
  /** `NNNN_name` → DDL, applied in number order, each once. */
  readonly migrations: Readonly<Record<string, Migration>>
  readonly requires: ReadonlyArray<SqlSchema>
}

const dialectOf = (sql: SqlClient): Dialect | undefined =>
  sql.onDialectOrElse({ pg: () => "pg" as const, sqlite: () => "sqlite" as const, orElse: () => undefined })

const migrateSchema = (schema: SqlSchema, prefix: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient
    const dialect = dialectOf(sql)
    if (dialect === undefined) return yield* Effect.fail("only PostgreSQL and SQLite clients are supported")
    const table = `${prefix}_${schema.name}_migrations`
    if (dialect === "pg") {
      // The migrator locks its table; two processes creating it at once need this lock first.
      yield* sql.withTransaction(
        Effect.zipRight(
          sql`SELECT pg_advisory_xact_lock(hashtext(${table}))`,
          sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
            migration_id integer PRIMARY KEY,
            created_at timestamp with time zone NOT NULL DEFAULT now(),
            name text NOT NULL
          )`
        )
      )
    } else {
      // Cascades are declared as foreign keys: a caller's own SQLite client must enforce them too.
      yield* sql`PRAGMA foreign_keys = ON`
    }
    const query: MigrationQuery = (text, ...params) => sql.unsafe(resolve(text, prefix, dialect), params).values
    const record: Record<string, Effect.Effect<void, unknown, SqlClient>> = {}
    for (const [key, statements] of Object.entries(schema.migrations)) {
      record[key] = Effect.forEach(
        statements.flatMap((text) => {
          if (typeof text !== "string" && "program" in text) return [Effect.suspend(() => text.program(query))]
          const own = typeof text === "string" ? text : text[dialect]
          return own === undefined ? [] : [sql.unsafe(resolve(own, prefix, dialect))]
        }),
        (statement) => statement,
        { discard: true }
      )
    }
    yield* Migrator.make({})({ loader: Migrator.fromRecord(record), table })
  }).pipe(
    // `withTransaction` turns a failed COMMIT or ROLLBACK into a defect: it is the backend failing (e.g. the server
    // went away mid-migration), so layer build fails with `StorageError`.
    Effect.catchAllDefect((defect) => (isSqlError(defect) ? Effect.fail(defect) : Effect.die(defect))),
    Effect.mapError((cause) => new StorageError({ backend: "sql", operation: `migrate ${schema.name}`, cause }))
  )

const migrated = new Map<string, Layer.Layer<SqlTables, StorageError, SqlClient>>()

/**
 * Runs the migrations of `schema` (after those it requires) and provides the
 * prefix. The layer is the same value for the same schema and prefix, so
 * stores composed together migrate each schema once.
 */
export const migrations = (
  schema: SqlSchema,
  options: SqlOptions = {}
): Layer.Layer<SqlTables, StorageError, SqlClient> => {
  const key = `${options.tablePrefix ?? defaultPrefix}/${schema.name}`
  let layer = migrated.get(key)
  if (layer === undefined) {
    const own = Layer.effect(
      SqlTables,
      Effect.flatMap(prefixOf(options), (prefix) => Effect.as(migrateSchema(schema, prefix), { prefix }))
    )
    layer =
      schema.requires.length === 0
        ? own
        : Layer.provideMerge(
            own,
            Layer.mergeAll(
              ...(schema.requires.map((required) => migrations(required, options)) as [
                Layer.Layer<SqlTables, StorageError, SqlClient>
              ])
            )
          )
    migrated.set(key, layer)
  }
  return layer
}

// ---------------------------------------------------------------------------
// Driver errors

const code = (error: unknown): unknown =>
  typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined

/** The constraint a driver error (or the one an `SqlError` wraps) reports, if any. */
export const violation = (error: unknown): Violation | undefined => {
  const found = code(error) ?? code((error as { cause?: unknown } | undefined)?.cause)
  if (found === "23505" || found === "SQLITE_CONSTRAINT_UNIQUE" || found === "SQLITE_CONSTRAINT_PRIMARYKEY") {
    return "unique"
  }
  if (found === "23503" || found === "SQLITE_CONSTRAINT_FOREIGNKEY") return "foreignKey"
  return undefined
}

// ---------------------------------------------------------------------------
// Runners

const isSqlError = (defect: unknown): defect is SqlError =>
  typeof defect === "object" && defect !== null && (defect as { _tag?: unknown })._tag === "SqlError"

const isCall = (program: Program<unknown>): program is Call<unknown> => program instanceof Call

const sqliteRunner = <O extends Ops>(ops: O, database: SqliteDatabase["Type"], prefix: string): DriverOf<O> => {
  const { db } = database
  const prepared = new Map<Stmt<any, any>, Sqlite.Statement>()
  const prepare = (s: Stmt<any, any>): Sqlite.Statement => {
    let statement = prepared.get(s)
    if (statement === undefined) {
      statement = db.prepare(resolve(s.text, prefix, "sqlite"))
      if (statement.reader) statement.raw(true)
      prepared.set(s, statement)
    }
    return statement
  }
  const call = (c: Call<unknown>): unknown => (c.after === undefined ? execute(c) : c.after(execute(c)))
  const execute = (c: Call<unknown>): unknown => {
    const statement = prepare(c.stmt)
    const params = c.params
    switch (c.mode) {
      case "one": {
        // A statement that writes is run to completion (`all`): an unfinished one would commit only on reset.
        const row = statement.readonly ? statement.get(params) : statement.all(params)[0]
        return row === undefined ? undefined : c.stmt.decode(row as Array<unknown>)
      }
      case "all": {
        const rows = statement.all(params) as Array<Array<unknown>>
        const decoded: Array<unknown> = new Array(rows.length)
        for (let i = 0; i < rows.length; i++) decoded[i] = c.stmt.decode(rows[i]!)
        return decoded
      }
      case "exec":
        if (statement.reader) statement.all(params)
        else statement.run(params)
        return undefined
    }
  }
  const runProgram = (program: Program<unknown>): unknown => {
    if (isCall(program)) return call(program)
    let step = program.next()
    while (!step.done) step = program.next(call(step.value))
    return step.value
  }
  const driver: Record<string, unknown> = {}
  for (const [key, o] of Object.entries(ops)) {
    const atomic = o.atomic ? db.transaction((args: ReadonlyArray<unknown>) => runProgram(o.run(...args))) : undefined
    const body = atomic === undefined ? (args: ReadonlyArray<unknown>) => runProgram(o.run(...args)) : atomic.immediate
    const onViolation = o.onViolation
    driver[key] = (...args: ReadonlyArray<unknown>) =>
      database.run(o.name, () => {
        try {
          return body(args)
        } catch (error) {
          const found = onViolation && violation(error)
          if (found) return onViolation(found)
          throw error
        }
      })
  }
  return driver as DriverOf<O>
}

/** How the client runner executes one statement: rows as arrays. */
type Values = (
  text: string,
  params: ReadonlyArray<unknown>
) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, unknown>

/** How the client runner runs an atomic operation: in a transaction (a savepoint inside the caller's). */
type Transaction = <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, unknown>

const clientRunner = <O extends Ops>(
  ops: O,
  values: Values,
  transaction: Transaction,
  prefix: string,
  dialect: Dialect
): DriverOf<O> => {
  const texts = new Map<Stmt<any, any>, string>()
  const textOf = (s: Stmt<any, any>): string => {
    let text = texts.get(s)
    if (text === undefined) {
      text = resolve(s.text, prefix, dialect)
      texts.set(s, text)
    }
    return text
  }
  const call = (c: Call<unknown>): Effect.Effect<unknown, unknown> =>
    c.after === undefined ? execute(c) : Effect.map(execute(c), c.after)
  const execute = (c: Call<unknown>): Effect.Effect<unknown, unknown> => {
    const rows = values(textOf(c.stmt), c.params)
    switch (c.mode) {
      case "one":
        return Effect.map(rows, (rows) => (rows.length === 0 ? undefined : c.stmt.decode(rows[0]!)))
      case "all":
        // A loop into a plain array: `map` on the driver's result (an Array subclass) builds another instance of it.
        return Effect.map(rows, (rows) => {
          const decoded: Array<unknown> = new Array(rows.length)
          for (let i = 0; i < rows.length; i++) decoded[i] = c.stmt.decode(rows[i]!)
          return decoded
        })
      case "exec":
        return Effect.asVoid(rows)
    }
  }
  const step = (program: Generator<Call<any>, unknown, any>, input: unknown): Effect.Effect<unknown, unknown> => {
    const next = program.next(input)
    return next.done ? Effect.succeed(next.value) : Effect.flatMap(call(next.value), (value) => step(program, value))
  }
  const backend = dialect === "pg" ? "postgres" : "sqlite"
  const driver: Record<string, unknown> = {}
  for (const [key, o] of Object.entries(ops)) {
    const body = (dialect === "pg" ? o.pg : undefined) ?? o.run
    const onViolation = o.onViolation
    driver[key] = (...args: ReadonlyArray<unknown>) =>
      Effect.suspend(() => {
        const program = body(...args)
        if (isCall(program)) return call(program)
        const generator = program as Generator<Call<any>, unknown, any>
        const effect = Effect.suspend(() => step(generator, undefined))
        // `withTransaction` turns a failed COMMIT or ROLLBACK into a defect: it is the backend failing.
        return o.atomic
          ? transaction(effect).pipe(
              Effect.catchAllDefect((defect) => (isSqlError(defect) ? Effect.fail(defect) : Effect.die(defect)))
            )
          : effect
      }).pipe(
        Effect.catchAll((error) => {
          const found = onViolation && violation(error)
          return found
            ? Effect.succeed(onViolation(found))
            : Effect.fail(new StorageError({ backend, operation: o.name, cause: error }))
        })
      )
  }
  return driver as DriverOf<O>
}

/**
 * The driver of `ops` on the backend in context: prepared statements on the
 * `SqliteDatabase` connection when the embedded SQLite backend is there,
 * otherwise statements through the `SqlClient` (through `PgDatabase`'s lean
 * `PgExecutor` on the same connections when it is there).
 */
export const driver = <O extends Ops>(ops: O): Effect.Effect<DriverOf<O>, StorageError, SqlClient | SqlTables> =>
  Effect.gen(function* () {
    const { prefix } = yield* SqlTables
    const sqlite = yield* Effect.serviceOption(SqliteDatabase)
    if (Option.isSome(sqlite)) return withAttributes(sqliteRunner(ops, sqlite.value, prefix), "sqlite", prefix)
    const sql = (yield* SqlClient).withoutTransforms()
    const dialect = dialectOf(sql)
    if (dialect === undefined) {
      return yield* new StorageError({ backend: "sql", operation: "driver", cause: "unsupported SQL dialect" })
    }
    const executor = yield* Effect.serviceOption(PgExecutor)
    const values: Values = Option.isSome(executor)
      ? executor.value.values
      : (text, params) => sql.unsafe(text, params as Array<any>).values
    const transaction: Transaction = Option.isSome(executor) ? executor.value.transaction : sql.withTransaction
    return withAttributes(clientRunner(ops, values, transaction, prefix, dialect), dialect, prefix)
  })

/** `driver` carrying its backend and table prefix for its store's operation spans. */
const withAttributes = <D extends object>(driver: D, dialect: Dialect, prefix: string): D =>
  Object.assign(driver, {
    [spanAttributes]: {
      "db.system.name": dialect === "pg" ? "postgresql" : "sqlite",
      "agent_stores.table_prefix": prefix
    }
  })

// ---------------------------------------------------------------------------
// Keyset paging

/** Equality filters of a listing: column → value, `undefined` meaning "any". */
export type Filters = Readonly<Record<string, string | number | undefined>>

/** A further condition of a listing: SQL text with `?` placeholders, then their values. */
export type Condition = readonly [sql: string, ...params: ReadonlyArray<unknown>]

/**
 * The least string after every string that starts with `prefix` (its last code point below U+10FFFF incremented,
 * skipping the surrogate range), or `undefined` when there is none: keys starting with `prefix` are exactly those in
 * `[prefix, successor)` in code point order.
 */
const successor = (prefix: string): string | undefined => {
  const points = Array.from(prefix)
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!
    if (last < 0x10ffff) return points.join("") + String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1)
  }
  return undefined
}

/**
 * The conditions keeping `column` to the strings that start with `prefix`: the key range `[prefix, successor)`,
 * which an index on `column` walks (none for the empty prefix).
 */
export const prefixRange = (column: string, prefix: string): Array<Condition> => {
  if (prefix === "") return []
  const upper = successor(prefix)
  return upper === undefined
    ? [[`${column} >= ?`, prefix]]
    : [
        [`${column} >= ?`, prefix],
        [`${column} < ?`, upper]
      ]
}

/**
 * A paged listing of `table` ordered by the column tuple `orderBy` (each a
 * column name, unique together): rows after the cursor's keyset, filtered by
 * column equality and by any further `conditions` (an expiry, a prefix). One
 * statement per shape of query, stated on first use.
 */
export const listing = <R>(spec: {
  readonly table: string
  readonly columns: string
  readonly orderBy: ReadonlyArray<string>
  readonly decode: (row: ReadonlyArray<any>) => R
}) => {
  const statements = new Map<string, Stmt<ReadonlyArray<unknown>, R>>()
  const keys = spec.orderBy.join(", ")
  const marks = spec.orderBy.map(() => "?").join(", ")
  return (filters: Filters, page: PageQuery, conditions: ReadonlyArray<Condition> = []): Call<ReadonlyArray<R>> => {
    const params: Array<unknown> = []
    const where: Array<string> = []
    for (const column in filters) {
      const value = filters[column]
      if (value === undefined) continue
      where.push(`${column} = ?`)
      params.push(value)
    }
    for (const [sql, ...values] of conditions) {
      where.push(sql)
      params.push(...values)
    }
    const desc = page.order === "desc"
    if (page.after !== undefined) {
      where.push(`(${keys}) ${desc ? "<" : ">"} (${marks})`)
      params.push(...page.after)
    }
    params.push(page.limit, page.offset)
    const shape = `${where.join(" AND ")}|${page.order}`
    let statement = statements.get(shape)
    if (statement === undefined) {
      const direction = desc ? " DESC" : " ASC"
      statement = stmt(
        `SELECT ${spec.columns} FROM {${spec.table}} ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
          ORDER BY ${spec.orderBy.join(`${direction}, `)}${direction} LIMIT ? OFFSET ?`,
        spec.decode
      )
      statements.set(shape, statement)
    }
    return new Call(statement, params, "all")
  }
}

// ---------------------------------------------------------------------------
// Counters

/**
 * The kernel's schema: named counters that increase in commit order. A
 * counter row bumped inside the writer's transaction stays locked until it
 * commits, so the writer holding value n commits before any writer gets
 * n + 1, and a reader polling `after` never skips a row that commits late
 * (a PostgreSQL sequence gives no such order). The price: writers of one
 * counter serialise.
 */
export const kernel: SqlSchema = {
  name: "kernel",
  tables: ["counters"],
  migrations: {
    "0001_counters": [`CREATE TABLE IF NOT EXISTS {counters} (name TEXT PRIMARY KEY NOT NULL, value BIGINT NOT NULL)`]
  },
  requires: []
}

/** Adds `by` to the counter `name` (created at 0) and returns its new value; call it inside the atomic operation. */
export const bumpCounter = stmt<[name: string, by: number], number>(
  `INSERT INTO {counters} (name, value) VALUES (?, ?)
    ON CONFLICT (name) DO UPDATE SET value = {counters}.value + excluded.value RETURNING value`,
  (row) => Number(row[0])
)
