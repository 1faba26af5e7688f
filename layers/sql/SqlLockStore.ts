/**
 * `LockStore` on SQL, stated once for SQLite and PostgreSQL: one row per held
 * key (keys in code point order on both dialects: SQLite's `BINARY`,
 * PostgreSQL's `COLLATE "C"`), its fencing token from the kernel counter
 * `lock/<key>`, bumped in the acquiring transaction only when the key is free,
 * so tokens of a key increase in commit order and survive releases and
 * restarts (the counter row is never deleted).
 *
 * SQLite: an acquisition is one immediate transaction (read, bump, upsert),
 * judged by the caller's `Clock` (the processes sharing a file share a host
 * and its clock; `TestClock` drives it).
 *
 * PostgreSQL: an acquisition is one statement (one round trip); by default the
 * database's clock judges expiry (`clock: "database"`): the statement reads
 * the server's time itself, so app hosts whose clocks disagree still agree on
 * when a lease expires, and one host running ahead cannot take over a lease
 * another host still holds. `clock: "caller"` uses each caller's `Clock`
 * instead (tests with `TestClock`, or hosts known to be in sync). Either way a
 * holder counts its lease's validity from just before its request (on its own
 * clock, which only has to run at the right rate), so it gives the lease up
 * no later than the database expires it.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import {
  type AcquireOutcome,
  type LockClock,
  type LockDriver,
  type LockRow,
  LockStore,
  makeLockStore,
  tokenCounter
} from "../../src/Lock.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"

const locksTable = (collate: string) => `CREATE TABLE IF NOT EXISTS {locks} (
  key TEXT${collate} PRIMARY KEY NOT NULL,
  owner TEXT NOT NULL,
  token BIGINT NOT NULL,
  acquired_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
)`

/** The locks table and its migrations (tokens come from the kernel's counters). */
export const schema: Kit.SqlSchema = {
  name: "locks",
  tables: ["locks"],
  migrations: {
    "0001_locks": [
      { sqlite: `${locksTable("")} WITHOUT ROWID`, pg: locksTable(` COLLATE "C"`) },
      `CREATE INDEX IF NOT EXISTS {locks_expiry} ON {locks} (expires_at)`
    ]
  },
  requires: [Kit.kernel]
}

/** Options of the SQL layers: the table prefix and, on PostgreSQL, the clock that judges expiry. */
export interface LockSqlOptions extends Kit.SqlOptions {
  /** PostgreSQL only (SQLite always uses the caller's `Clock`). Default `"database"`. */
  readonly clock?: LockClock
}

/**
 * "Now" in epoch milliseconds: the bound parameter; on PostgreSQL the server's time when it is `NULL` (the
 * database clock). `statement_timestamp()` is fixed for the whole statement.
 */
const nowSql = (text: (now: string) => string): Kit.SqlText => ({
  sqlite: text("?"),
  pg: text("COALESCE(CAST(? AS BIGINT), CAST(floor(extract(epoch FROM statement_timestamp()) * 1000) AS BIGINT))")
})

const columns = "key, owner, token, acquired_at, expires_at"

const decode = (r: ReadonlyArray<any>): LockRow => ({
  key: r[0],
  owner: r[1],
  token: Number(r[2]),
  acquiredAt: Number(r[3]),
  expiresAt: Number(r[4])
})

const select = Kit.stmt<[key: string], LockRow>(`SELECT ${columns} FROM {locks} WHERE key = ?`, decode)
const selectLive = Kit.stmt<[key: string, now: number | null], LockRow>(
  nowSql((now) => `SELECT ${columns} FROM {locks} WHERE key = ? AND expires_at > ${now}`),
  decode
)
/** Writes the lease unless a live one is there (a racing acquisition committed first). */
const upsert = Kit.stmt<[string, string, number, number, number], LockRow>(
  `INSERT INTO {locks} (${columns}) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, token = excluded.token,
      acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
      WHERE {locks}.expires_at <= excluded.acquired_at
    RETURNING ${columns}`,
  decode
)

/**
 * PostgreSQL's acquisition in one statement: reads the key's lease; when none is live, bumps the key's counter
 * and upserts the lease (the upsert's condition is checked again against a lease committed meanwhile: then
 * nothing is written and the attempt is a lost race). Returns the time used, the written lease, the one found.
 */
const acquirePg = Kit.stmt<
  [now: number | null, key: string, counter: string, key: string, owner: string, ttl: number],
  AcquireOutcome
>(
  nowSql(
    (now) => `WITH t AS (SELECT ${now} AS now),
    cur AS (SELECT ${columns} FROM {locks} WHERE key = ?),
    bump AS (
      INSERT INTO {counters} (name, value) SELECT ?, 1 FROM t
        WHERE NOT EXISTS (SELECT 1 FROM cur WHERE cur.expires_at > t.now)
      ON CONFLICT (name) DO UPDATE SET value = {counters}.value + 1 RETURNING value
    ),
    ins AS (
      INSERT INTO {locks} (${columns}) SELECT ?, ?, bump.value, t.now, t.now + ? FROM bump, t
      ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, token = excluded.token,
        acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
        WHERE {locks}.expires_at <= excluded.acquired_at
      RETURNING ${columns}
    )
    SELECT t.now, ins.key, ins.owner, ins.token, ins.acquired_at, ins.expires_at,
      cur.key, cur.owner, cur.token, cur.acquired_at, cur.expires_at
    FROM t LEFT JOIN ins ON true LEFT JOIN cur ON true`
  ),
  (r): AcquireOutcome => {
    if (r[1] !== null) return { _tag: "acquired", row: decode(r.slice(1, 6)) }
    if (r[6] !== null && Number(r[10]) > Number(r[0])) return { _tag: "held", row: decode(r.slice(6, 11)) }
    return undefined
  }
)
/** Deletes the lease; whether it was live. */
const release = Kit.stmt<[key: string, owner: string, token: number, now: number | null], boolean>(
  nowSql(
    (now) => `DELETE FROM {locks} WHERE key = ? AND owner = ? AND token = ?
      RETURNING CASE WHEN expires_at > ${now} THEN 1 ELSE 0 END`
  ),
  (r) => Number(r[0]) === 1
)
const refresh = Kit.stmt<[now: number | null, ttl: number, string, string, number, now: number | null], LockRow>(
  nowSql(
    (now) => `UPDATE {locks} SET expires_at = ${now} + ?
      WHERE key = ? AND owner = ? AND token = ? AND expires_at > ${now} RETURNING ${columns}`
  ),
  decode
)
// The outer condition is checked again against a lease changed since the inner select (PostgreSQL re-reads it).
const releaseExpired = Kit.stmt<[now: number | null, batch: number, now: number | null], string>(
  nowSql(
    (now) => `DELETE FROM {locks} WHERE key IN (
      SELECT key FROM {locks} WHERE expires_at <= ${now} ORDER BY expires_at LIMIT ?
    ) AND expires_at <= ${now} RETURNING key`
  ),
  (r) => r[0]
)

/** The listing statements, one per shape of query (prefix, cursor, order), stated on first use. */
const listings = new Map<string, Kit.Stmt<Array<unknown>, LockRow>>()

/** One page of the live leases, by key: its own statement because the key prefix is not an equality filter. */
const list = (prefix: string | undefined, now: number | null, page: PageQuery) => {
  const where = ["expires_at > NOW"]
  const params: Array<unknown> = [now]
  if (prefix !== undefined) {
    where.push("substr(key, 1, length(CAST(? AS TEXT))) = ?")
    params.push(prefix, prefix)
  }
  const desc = page.order === "desc"
  if (page.after !== undefined) {
    where.push(`key ${desc ? "<" : ">"} ?`)
    params.push(page.after[0])
  }
  params.push(page.limit, page.offset)
  const shape = `${where.join(" AND ")}|${page.order}`
  let statement = listings.get(shape)
  if (statement === undefined) {
    statement = Kit.stmt(
      nowSql(
        (now) => `SELECT ${columns} FROM {locks} WHERE ${where.join(" AND ").replace("NOW", now)}
          ORDER BY key ${desc ? "DESC" : "ASC"} LIMIT ? OFFSET ?`
      ),
      decode
    )
    listings.set(shape, statement)
  }
  return Kit.all(statement, ...params)
}

/** The statements, for the bench's raw side (which runs the same texts). */
export const statements = { select, selectLive, upsert, acquirePg, release, refresh, releaseExpired }

/** The operations of `LockDriver` (without its clock). */
export const ops = {
  acquire: Kit.op(
    "lock.acquire",
    function* (key: string, owner: string, now: number | null, ttl: number) {
      const t = now!
      const current = yield* Kit.one(select, key)
      if (current !== undefined && current.expiresAt > t) return { _tag: "held", row: current } as AcquireOutcome
      const token = (yield* Kit.one(Kit.bumpCounter, tokenCounter(key), 1))!
      const row = yield* Kit.one(upsert, key, owner, token, t, t + ttl)
      return row === undefined ? undefined : ({ _tag: "acquired", row } as AcquireOutcome)
    },
    {
      atomic: true,
      pg: (key, owner, now, ttl) => Kit.one(acquirePg, now, key, tokenCounter(key), key, owner, ttl)
    }
  ),
  release: Kit.op("lock.release", (key: string, owner: string, token: number, now: number | null) =>
    Kit.one(release, key, owner, token, now).map((live) => live === true)
  ),
  refresh: Kit.op("lock.refresh", (key: string, owner: string, token: number, now: number | null, ttl: number) =>
    Kit.one(refresh, now, ttl, key, owner, token, now)
  ),
  get: Kit.op("lock.get", (key: string, now: number | null) => Kit.one(selectLive, key, now)),
  list: Kit.op("lock.list", list),
  releaseExpired: Kit.op("lock.releaseExpired", (now: number | null, batch: number) =>
    Kit.all(releaseExpired, now, batch, now).map((keys) => keys.length)
  )
}

/** A `LockDriver` on the SQL backend in context: the caller's clock on SQLite, `options.clock` on PostgreSQL. */
export const driver = (
  options: LockSqlOptions = {}
): Effect.Effect<LockDriver, StorageError, SqlClient | Kit.SqlTables> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient
    const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
    const clock: LockClock = pg ? (options.clock ?? "database") : "caller"
    return { clock, ...(yield* Kit.driver(ops)) }
  })

/** `LockStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const layerWith = (options: LockSqlOptions = {}): Layer.Layer<LockStore, StorageError, SqlClient> =>
  Layer.effect(LockStore, Effect.map(driver(options), makeLockStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `LockStore` on SQL with the default table prefix (and the database clock on PostgreSQL). */
export const layer: Layer.Layer<LockStore, StorageError, SqlClient> = layerWith()
