/**
 * `AuditLogStore` on SQL, stated once for SQLite and PostgreSQL. An append
 * bumps the kernel counter `audit_log` (its row stays locked until commit, so
 * appenders serialise and `seq` is gapless in commit order), reads the hash of
 * the last entry and inserts the new one, in one transaction. Triggers refuse
 * `UPDATE` and `DELETE` (and `TRUNCATE` on PostgreSQL) of the log's rows.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import {
  type AuditDraft,
  type AuditDriver,
  type AuditEntryRow,
  type AuditFilter,
  AuditLogStore,
  genesisHash,
  makeAuditLogStore
} from "../../src/Audit.ts"
import type { StorageError } from "../../src/Errors.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"

/** The kernel counter that numbers the log's entries. */
export const counter = "audit_log"

/** The audit log table, its append-only triggers and its migrations (it requires the kernel's counters). */
export const schema: Kit.SqlSchema = {
  name: "audit_log",
  tables: ["audit_log"],
  migrations: {
    "0001_audit_log": [
      `CREATE TABLE IF NOT EXISTS {audit_log} (
        seq BIGINT PRIMARY KEY NOT NULL,
        id TEXT NOT NULL UNIQUE,
        session_id TEXT,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        detail TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS {audit_log_session} ON {audit_log} (session_id, seq) WHERE session_id IS NOT NULL`,
      `CREATE INDEX IF NOT EXISTS {audit_log_actor} ON {audit_log} (actor, seq)`,
      `CREATE INDEX IF NOT EXISTS {audit_log_resource} ON {audit_log} (resource, seq)`,
      `CREATE INDEX IF NOT EXISTS {audit_log_created} ON {audit_log} (created_at, seq)`,
      {
        sqlite: `CREATE TRIGGER IF NOT EXISTS {audit_log_no_update} BEFORE UPDATE ON {audit_log}
          BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`
      },
      {
        sqlite: `CREATE TRIGGER IF NOT EXISTS {audit_log_no_delete} BEFORE DELETE ON {audit_log}
          BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`
      },
      {
        pg: `CREATE OR REPLACE FUNCTION {audit_log_append_only}() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$`
      },
      {
        pg: `CREATE TRIGGER {audit_log_no_change} BEFORE UPDATE OR DELETE ON {audit_log}
          FOR EACH ROW EXECUTE FUNCTION {audit_log_append_only}()`
      },
      {
        pg: `CREATE TRIGGER {audit_log_no_truncate} BEFORE TRUNCATE ON {audit_log}
          FOR EACH STATEMENT EXECUTE FUNCTION {audit_log_append_only}()`
      }
    ]
  },
  requires: [Kit.kernel]
}

const columns = "id, seq, session_id, actor, action, resource, detail, created_at, prev_hash, hash"

const decode = (r: ReadonlyArray<any>): AuditEntryRow => ({
  id: r[0],
  seq: Number(r[1]),
  sessionId: r[2],
  actor: r[3],
  action: r[4],
  resource: r[5],
  detail: r[6],
  createdAt: Number(r[7]),
  prevHash: r[8],
  hash: r[9]
})

const lastHash = Kit.stmt<[], string>(`SELECT hash FROM {audit_log} ORDER BY seq DESC LIMIT 1`, (r) => r[0])
const insert = Kit.stmt<Array<unknown>>(`INSERT INTO {audit_log} (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
const get = Kit.stmt<[id: string], AuditEntryRow>(`SELECT ${columns} FROM {audit_log} WHERE id = ?`, decode)
const bySeq = Kit.stmt<[seq: number], AuditEntryRow>(`SELECT ${columns} FROM {audit_log} WHERE seq = ?`, decode)
const range = Kit.stmt<[after: number, limit: number], AuditEntryRow>(
  `SELECT ${columns} FROM {audit_log} WHERE seq > ? ORDER BY seq LIMIT ?`,
  decode
)
const head = Kit.stmt<[name: string], number>(`SELECT value FROM {counters} WHERE name = ?`, (r) => Number(r[0]))

/** The append's statements after the counter bump, for the bench's raw side. */
export const appendStatements = { lastHash, insert }

const listing = Kit.listing({ table: "audit_log", columns, orderBy: ["seq"], decode })

/** One page of entries by seq, filtered by its equalities and the time range `[from, to)`. */
const list = (filter: AuditFilter, page: PageQuery) => {
  const conditions: Array<Kit.Condition> = []
  if (filter.from !== undefined) conditions.push(["created_at >= ?", filter.from])
  if (filter.to !== undefined) conditions.push(["created_at < ?", filter.to])
  return listing(
    { session_id: filter.sessionId, actor: filter.actor, action: filter.action, resource: filter.resource },
    page,
    conditions
  )
}

/** The operations of `AuditDriver`. */
export const ops = {
  append: Kit.op(
    "audit.append",
    function* (draft: AuditDraft, seal: (seq: number, prevHash: string) => string) {
      const seq = (yield* Kit.one(Kit.bumpCounter, counter, 1))!
      const prevHash = (yield* Kit.one(lastHash)) ?? genesisHash
      const row: AuditEntryRow = Object.assign({}, draft, { seq, prevHash, hash: seal(seq, prevHash) })
      yield* Kit.exec(
        insert,
        row.id,
        row.seq,
        row.sessionId,
        row.actor,
        row.action,
        row.resource,
        row.detail,
        row.createdAt,
        row.prevHash,
        row.hash
      )
      return row as AuditEntryRow | undefined
    },
    // A taken id rolls the transaction back, counter bump included.
    { atomic: true, onViolation: () => undefined }
  ),
  get: Kit.op("audit.get", (id: string) => Kit.one(get, id)),
  bySeq: Kit.op("audit.bySeq", (seq: number) => Kit.one(bySeq, seq)),
  list: Kit.op("audit.list", list),
  range: Kit.op("audit.range", (after: number, limit: number) => Kit.all(range, after, limit)),
  head: Kit.op("audit.head", () => Kit.one(head, counter).map((value) => value ?? 0))
}

/** An `AuditDriver` on the SQL backend in context. */
export const driver: Effect.Effect<AuditDriver, StorageError, SqlClient | Kit.SqlTables> = Effect.map(
  Kit.driver(ops),
  (d): AuditDriver => ({ ...d, head: d.head() })
)

/** `AuditLogStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<AuditLogStore, StorageError, SqlClient> =>
  Layer.effect(AuditLogStore, Effect.map(driver, makeAuditLogStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `AuditLogStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<AuditLogStore, StorageError, SqlClient> = layerWith()
