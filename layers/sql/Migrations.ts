/**
 * The SQL schema of every store, as numbered migrations in a private table
 * (`<prefix>_migrations`). Run when a SQL store layer is built; safe when two
 * processes start at once (PostgreSQL: an advisory lock and the migrator's
 * table lock; SQLite: `BEGIN IMMEDIATE` in `SqliteDatabase`'s client).
 */
import * as Migrator from "@effect/sql/Migrator"
import { SqlClient } from "@effect/sql/SqlClient"
import { Context, Effect, Layer } from "effect"
import { StorageError } from "../../src/Errors.ts"

/** Options of the SQL layers. */
export interface SqlOptions {
  /** Prefix of every table name (letters, digits, underscores). Default `agent`. */
  readonly tablePrefix?: string
}

/** The tables of a given prefix. */
export interface Tables {
  readonly prefix: string
  readonly migrations: string
  readonly sessions: string
  readonly conversations: string
  readonly messages: string
}

/** The table names in use, provided by `layer` once migrations have run. */
export class SqlTables extends Context.Tag("effect-agent-stores/SqlTables")<SqlTables, Tables>() {}

/** Table names for `options`; a prefix that is not a plain identifier fails with `StorageError`. */
export const tables = (options: SqlOptions = {}): Effect.Effect<Tables, StorageError> => {
  const prefix = options.tablePrefix ?? "agent"
  return /^[A-Za-z_][A-Za-z0-9_]{0,40}$/.test(prefix)
    ? Effect.succeed({
        prefix,
        migrations: `${prefix}_migrations`,
        sessions: `${prefix}_sessions`,
        conversations: `${prefix}_conversations`,
        messages: `${prefix}_messages`
      })
    : Effect.fail(
        new StorageError({
          backend: "sql",
          operation: "config",
          cause: `invalid table prefix ${JSON.stringify(prefix)}`
        })
      )
}

const migrations = (t: Tables) => ({
  "0001_sessions_conversations": Effect.gen(function* () {
    const sql = yield* SqlClient
    const json = sql.onDialectOrElse({ pg: () => sql.literal("jsonb"), orElse: () => sql.literal("TEXT") })
    const withoutRowid = sql.onDialectOrElse({
      sqlite: () => sql.literal("WITHOUT ROWID"),
      orElse: () => sql.literal("")
    })
    const index = (name: string) => sql(`${t.prefix}_${name}`)
    yield* sql`CREATE TABLE ${sql(t.sessions)} (
      id TEXT PRIMARY KEY NOT NULL,
      agent_id TEXT,
      channel TEXT,
      title TEXT,
      status TEXT NOT NULL,
      metadata ${json} NOT NULL,
      message_count INTEGER NOT NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      version INTEGER NOT NULL,
      transcript ${json} NOT NULL
    )`
    yield* sql`CREATE INDEX ${index("sessions_created")} ON ${sql(t.sessions)} (created_at, id)`
    yield* sql`CREATE INDEX ${index("sessions_agent")} ON ${sql(t.sessions)} (agent_id, created_at, id)`
    yield* sql`CREATE INDEX ${index("sessions_channel")} ON ${sql(t.sessions)} (channel, created_at, id)`
    yield* sql`CREATE TABLE ${sql(t.conversations)} (
      id TEXT PRIMARY KEY NOT NULL,
      session_id TEXT REFERENCES ${sql(t.sessions)} (id) ON DELETE CASCADE,
      title TEXT,
      model TEXT,
      metadata ${json} NOT NULL,
      message_count INTEGER NOT NULL,
      last_seq BIGINT NOT NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      version INTEGER NOT NULL
    )`
    yield* sql`CREATE INDEX ${index("conversations_created")} ON ${sql(t.conversations)} (created_at, id)`
    yield* sql`CREATE INDEX ${index("conversations_session")} ON ${sql(t.conversations)} (session_id, created_at, id)`
    yield* sql`CREATE TABLE ${sql(t.messages)} (
      conversation_id TEXT NOT NULL REFERENCES ${sql(t.conversations)} (id) ON DELETE CASCADE,
      seq BIGINT NOT NULL,
      id TEXT NOT NULL,
      role TEXT NOT NULL,
      parts ${json} NOT NULL,
      metadata ${json},
      created_at BIGINT NOT NULL,
      PRIMARY KEY (conversation_id, seq)
    ) ${withoutRowid}`
    yield* sql`CREATE UNIQUE INDEX ${index("messages_id")} ON ${sql(t.messages)} (conversation_id, id)`
  })
})

/** Brings the schema of `options`' prefix up to date. */
export const migrate = (options: SqlOptions = {}) => Effect.flatMap(tables(options), migrateTables)

const migrateTables = (t: Tables) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient
    yield* sql.onDialectOrElse({
      pg: () =>
        sql.withTransaction(
          Effect.zipRight(
            sql`SELECT pg_advisory_xact_lock(hashtext(${t.migrations}))`,
            sql`CREATE TABLE IF NOT EXISTS ${sql(t.migrations)} (
              migration_id integer PRIMARY KEY,
              created_at timestamp with time zone NOT NULL DEFAULT now(),
              name text NOT NULL
            )`
          )
        ),
      orElse: () => Effect.void
    })
    yield* Migrator.make({})({ loader: Migrator.fromRecord(migrations(t)), table: t.migrations })
    return t
  }).pipe(Effect.catchAll((cause) => Effect.fail(new StorageError({ backend: "sql", operation: "migrate", cause }))))

const layers = new Map<string, Layer.Layer<SqlTables, StorageError, SqlClient>>()

/**
 * Runs the migrations and provides the table names to the SQL stores. The
 * layer is the same value for the same prefix, so stores composed together
 * migrate once.
 */
export const layer = (options: SqlOptions = {}): Layer.Layer<SqlTables, StorageError, SqlClient> => {
  const prefix = options.tablePrefix ?? "agent"
  let migrated = layers.get(prefix)
  if (migrated === undefined) {
    migrated = Layer.effect(SqlTables, migrate(options))
    layers.set(prefix, migrated)
  }
  return migrated
}
