/**
 * `TraceStore` on SQL, stated once for SQLite and PostgreSQL: one row per
 * span, attributes and events as JSON text, listed by `(started_at, id)` (ids
 * compared by code unit on both: `COLLATE "C"` on PostgreSQL). A batch is one
 * transaction of prepared inserts on SQLite and one statement on PostgreSQL
 * (the rows as one JSON parameter), so the recording tracer's batches cost one
 * round trip.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import type { PageQuery } from "../../src/Page.ts"
import { makeTraceStore, type SpanFilter, type SpanRow, type TraceDriver, TraceStore } from "../../src/Trace.ts"
import * as Kit from "./Kit.ts"

const spansTable = (collate: string) => `CREATE TABLE IF NOT EXISTS {spans} (
  id TEXT${collate} PRIMARY KEY NOT NULL,
  trace_id TEXT NOT NULL,
  parent_id TEXT,
  session_id TEXT,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  attributes TEXT NOT NULL,
  events TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  ended_at BIGINT
)`

/** The spans table and its migrations. */
export const schema: Kit.SqlSchema = {
  name: "spans",
  tables: ["spans"],
  migrations: {
    "0001_spans": [
      { sqlite: spansTable(""), pg: spansTable(` COLLATE "C"`) },
      `CREATE INDEX IF NOT EXISTS {spans_trace} ON {spans} (trace_id, started_at, id)`,
      `CREATE INDEX IF NOT EXISTS {spans_session} ON {spans} (session_id, started_at, id) WHERE session_id IS NOT NULL`,
      `CREATE INDEX IF NOT EXISTS {spans_name} ON {spans} (name, started_at, id)`,
      `CREATE INDEX IF NOT EXISTS {spans_started} ON {spans} (started_at, id)`
    ]
  },
  requires: []
}

const columns = "id, trace_id, parent_id, session_id, name, kind, status, attributes, events, started_at, ended_at"

const decode = (r: ReadonlyArray<any>): SpanRow => ({
  id: r[0],
  traceId: r[1],
  parentId: r[2],
  sessionId: r[3],
  name: r[4],
  kind: r[5],
  status: r[6],
  attributes: r[7],
  events: r[8],
  startedAt: Number(r[9]),
  endedAt: r[10] === null ? null : Number(r[10])
})

const insert = Kit.stmt<Array<unknown>>(`INSERT INTO {spans} (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
/** PostgreSQL: a whole batch in one statement, its rows as one JSON array of objects keyed by column. */
const insertJson = Kit.stmt<[rows: string]>(
  `INSERT INTO {spans} (${columns}) SELECT ${columns} FROM json_to_recordset(?::json) AS x(
    id TEXT, trace_id TEXT, parent_id TEXT, session_id TEXT, name TEXT, kind TEXT, status TEXT, attributes TEXT,
    events TEXT, started_at BIGINT, ended_at BIGINT)`
)
const get = Kit.stmt<[id: string], SpanRow>(`SELECT ${columns} FROM {spans} WHERE id = ?`, decode)
const byTrace = Kit.stmt<[traceId: string], SpanRow>(
  `SELECT ${columns} FROM {spans} WHERE trace_id = ? ORDER BY started_at, id`,
  decode
)
const prune = Kit.stmt<[before: number], number>(`DELETE FROM {spans} WHERE started_at < ? RETURNING 1`, () => 1)

const params = (row: SpanRow) => [
  row.id,
  row.traceId,
  row.parentId,
  row.sessionId,
  row.name,
  row.kind,
  row.status,
  row.attributes,
  row.events,
  row.startedAt,
  row.endedAt
]

const asJsonRow = (row: SpanRow) => ({
  id: row.id,
  trace_id: row.traceId,
  parent_id: row.parentId,
  session_id: row.sessionId,
  name: row.name,
  kind: row.kind,
  status: row.status,
  attributes: row.attributes,
  events: row.events,
  started_at: row.startedAt,
  ended_at: row.endedAt
})

const listing = Kit.listing({ table: "spans", columns, orderBy: ["started_at", "id"], decode })

/** One page of spans by start, filtered by session and name and the time range `[from, to)`. */
const list = (filter: SpanFilter, page: PageQuery) => {
  const conditions: Array<Kit.Condition> = []
  if (filter.from !== undefined) conditions.push(["started_at >= ?", filter.from])
  if (filter.to !== undefined) conditions.push(["started_at < ?", filter.to])
  return listing({ session_id: filter.sessionId, name: filter.name }, page, conditions)
}

/** The operations of `TraceDriver`. */
export const ops = {
  insertMany: Kit.op(
    "trace.insertMany",
    function* (rows: ReadonlyArray<SpanRow>) {
      for (const row of rows) yield* Kit.exec(insert, ...params(row))
      return true
    },
    {
      atomic: true,
      pg: (rows) => Kit.exec(insertJson, JSON.stringify(rows.map(asJsonRow))).map(() => true),
      // A taken id rolls the whole batch back.
      onViolation: () => false
    }
  ),
  get: Kit.op("trace.get", (id: string) => Kit.one(get, id)),
  listByTrace: Kit.op("trace.listByTrace", (traceId: string) => Kit.all(byTrace, traceId)),
  list: Kit.op("trace.list", list),
  prune: Kit.op("trace.prune", (before: number) => Kit.all(prune, before).map((rows) => rows.length))
}

/** A `TraceDriver` on the SQL backend in context. */
export const driver: Effect.Effect<TraceDriver, StorageError, SqlClient | Kit.SqlTables> = Kit.driver(ops)

/** `TraceStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<TraceStore, StorageError, SqlClient> =>
  Layer.effect(TraceStore, Effect.map(driver, makeTraceStore)).pipe(Layer.provide(Kit.migrations(schema, options)))

/** `TraceStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<TraceStore, StorageError, SqlClient> = layerWith()

/** The insert of one span, for the bench's raw-driver side (which runs the same SQL). */
export const statements = { insert }
