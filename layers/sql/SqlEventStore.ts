/**
 * `EventStore` on SQL, stated once for SQLite and PostgreSQL.
 *
 * - `{events}`: one row per event, keyed by `position` (from the kernel's
 *   `events` counter, bumped in the append's transaction, so positions are
 *   in commit order), unique `(stream_id, seq)` and `id`.
 * - `{event_streams}`: one row per stream: its version (the claim an append
 *   makes: a compare-and-set on it settles racing writers) and its retention
 *   mark `truncated_before`.
 * - Triggers make the log append-only: `UPDATE` of an event is refused, and
 *   `DELETE` too unless the event's `seq` is below its stream's retention
 *   mark (what `truncateBefore` raises, in the same transaction, before it
 *   deletes). The mark itself only rises, never past the version + 1, and a
 *   stream row is never deleted. (PostgreSQL also refuses `TRUNCATE`.)
 *
 * Lock order on PostgreSQL: the stream row, then the counter row.
 * PostgreSQL appends in one statement (stream claim, counter bump and every
 * event through `unnest`), one round trip whatever the batch size.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer, Option } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import {
  type AppendOutcome,
  type EventDriver,
  type EventRow,
  EventStore,
  type EventExpectation,
  makeEventStore,
  type NewEvent,
  type EventStreamRow,
  type TruncateOutcome
} from "../../src/Event.ts"
import type { PageQuery } from "../../src/Page.ts"
import { eventChannels, eventLive } from "../memory/MemoryEventStore.ts"
import * as Wakeups from "../Wakeups.ts"
import * as CommitHooks from "./CommitHooks.ts"
import * as Kit from "./Kit.ts"
import * as PgDatabase from "./PgDatabase.ts"

const refuse = (what: string) => `events are append-only: ${what} is refused (truncateBefore is the one removal)`

/** Stream ids in code point order on both dialects (PostgreSQL's default collation may be a locale's). */
const streamsTable = (collate: string) => `CREATE TABLE IF NOT EXISTS {event_streams} (
  stream_id TEXT${collate} PRIMARY KEY NOT NULL,
  version BIGINT NOT NULL,
  truncated_before BIGINT NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
)`

const eventsTable = (collate: string) => `CREATE TABLE IF NOT EXISTS {events} (
  position BIGINT PRIMARY KEY NOT NULL,
  stream_id TEXT${collate} NOT NULL,
  seq BIGINT NOT NULL,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (stream_id, seq)
)`

/** The events tables, their triggers and migrations; requires the kernel's counters. */
export const schema: Kit.SqlSchema = {
  name: "events",
  tables: ["event_streams", "events"],
  migrations: {
    "0001_events": [
      { sqlite: streamsTable(""), pg: streamsTable(' COLLATE "C"') },
      { sqlite: eventsTable(""), pg: eventsTable(' COLLATE "C"') },
      `CREATE INDEX IF NOT EXISTS {events_type} ON {events} (type, position)`,
      {
        sqlite: `CREATE TRIGGER IF NOT EXISTS {events_no_update} BEFORE UPDATE ON {events}
          BEGIN SELECT RAISE(ABORT, '${refuse("UPDATE")}'); END`
      },
      {
        sqlite: `CREATE TRIGGER IF NOT EXISTS {events_no_delete} BEFORE DELETE ON {events}
          WHEN OLD.seq >= COALESCE((SELECT truncated_before FROM {event_streams} WHERE stream_id = OLD.stream_id), 1)
          BEGIN SELECT RAISE(ABORT, '${refuse("DELETE")}'); END`
      },
      {
        sqlite: `CREATE TRIGGER IF NOT EXISTS {event_streams_guard} BEFORE UPDATE ON {event_streams}
          WHEN NEW.stream_id <> OLD.stream_id OR NEW.version < OLD.version
            OR NEW.truncated_before < OLD.truncated_before OR NEW.truncated_before > NEW.version + 1
          BEGIN SELECT RAISE(ABORT, 'event streams only move forward'); END`
      },
      {
        sqlite: `CREATE TRIGGER IF NOT EXISTS {event_streams_no_delete} BEFORE DELETE ON {event_streams}
          BEGIN SELECT RAISE(ABORT, 'event streams cannot be deleted'); END`
      },
      {
        pg: `CREATE OR REPLACE FUNCTION {events_guard}() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF TG_OP = 'DELETE' AND OLD.seq < COALESCE(
              (SELECT truncated_before FROM {event_streams} WHERE stream_id = OLD.stream_id), 1) THEN
              RETURN OLD;
            END IF;
            RAISE EXCEPTION 'events are append-only: % is refused (truncateBefore is the one removal)', TG_OP;
          END $$`
      },
      {
        pg: `CREATE TRIGGER {events_append_only} BEFORE UPDATE OR DELETE ON {events}
          FOR EACH ROW EXECUTE FUNCTION {events_guard}()`
      },
      {
        pg: `CREATE TRIGGER {events_no_truncate} BEFORE TRUNCATE ON {events}
          FOR EACH STATEMENT EXECUTE FUNCTION {events_guard}()`
      },
      {
        pg: `CREATE OR REPLACE FUNCTION {event_streams_guard}() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF TG_OP = 'UPDATE' AND NEW.stream_id = OLD.stream_id AND NEW.version >= OLD.version
              AND NEW.truncated_before >= OLD.truncated_before AND NEW.truncated_before <= NEW.version + 1 THEN
              RETURN NEW;
            END IF;
            RAISE EXCEPTION 'event streams only move forward: % is refused', TG_OP;
          END $$`
      },
      {
        pg: `CREATE TRIGGER {event_streams_forward} BEFORE UPDATE OR DELETE ON {event_streams}
          FOR EACH ROW EXECUTE FUNCTION {event_streams_guard}()`
      },
      {
        pg: `CREATE TRIGGER {event_streams_no_truncate} BEFORE TRUNCATE ON {event_streams}
          FOR EACH STATEMENT EXECUTE FUNCTION {event_streams_guard}()`
      }
    ]
  },
  requires: [Kit.kernel]
}

/** The kernel counter positions come from. */
export const counter = "events"

const eventColumns = "id, stream_id, seq, position, type, payload, metadata, created_at"

const decodeEvent = (r: ReadonlyArray<any>): EventRow => ({
  id: r[0],
  streamId: r[1],
  seq: Number(r[2]),
  position: Number(r[3]),
  type: r[4],
  payload: r[5],
  metadata: r[6],
  createdAt: Number(r[7])
})

const streamColumns = "stream_id, version, truncated_before, created_at, updated_at"

const decodeStream = (r: ReadonlyArray<any>): EventStreamRow => ({
  streamId: r[0],
  version: Number(r[1]),
  truncatedBefore: Number(r[2]),
  createdAt: Number(r[3]),
  updatedAt: Number(r[4])
})

const selectStream = Kit.stmt<[streamId: string], EventStreamRow>(
  `SELECT ${streamColumns} FROM {event_streams} WHERE stream_id = ?`,
  decodeStream
)
const createStream = Kit.stmt<[streamId: string, version: number, now: number, now2: number], number>(
  `INSERT INTO {event_streams} (stream_id, version, truncated_before, created_at, updated_at) VALUES (?, ?, 1, ?, ?)
    ON CONFLICT (stream_id) DO NOTHING RETURNING version`,
  (r) => Number(r[0])
)
const advanceStream = Kit.stmt<[by: number, now: number, now2: number, streamId: string, version: number], number>(
  `UPDATE {event_streams} SET version = version + ?, updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END
    WHERE stream_id = ? AND version = ? RETURNING version`,
  (r) => Number(r[0])
)
const insertEvent = Kit.stmt<[string, string, number, number, string, string, string, number]>(
  `INSERT INTO {events} (${eventColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
)
const readForward = Kit.stmt<[streamId: string, after: number, limit: number], EventRow>(
  `SELECT ${eventColumns} FROM {events} WHERE stream_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
  decodeEvent
)
const readBackward = Kit.stmt<[streamId: string, before: number, limit: number], EventRow>(
  `SELECT ${eventColumns} FROM {events} WHERE stream_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
  decodeEvent
)
const readAll = Kit.stmt<[after: number, limit: number], EventRow>(
  `SELECT ${eventColumns} FROM {events} WHERE position > ? ORDER BY position LIMIT ?`,
  decodeEvent
)
const eventById = Kit.stmt<[id: string], string>(`SELECT id FROM {events} WHERE id = ?`, (r) => r[0])
const head = Kit.stmt<[name: string], number>(`SELECT value FROM {counters} WHERE name = ?`, (r) => Number(r[0]))
const raiseMark = Kit.stmt<[mark: number, now: number, now2: number, streamId: string, version: number], number>(
  `UPDATE {event_streams} SET version = version + 1, truncated_before = ?,
      updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END
    WHERE stream_id = ? AND version = ? RETURNING version`,
  (r) => Number(r[0])
)
const removeBelow = Kit.stmt<[streamId: string, mark: number], number>(
  `DELETE FROM {events} WHERE stream_id = ? AND seq < ? RETURNING position`,
  (r) => Number(r[0])
)

/** `readAll` filtered by types: one statement per number of types, stated on first use. */
const byTypes = new Map<number, Kit.Stmt<Array<unknown>, EventRow>>()
const readAllOfTypes = (after: number, limit: number, types: ReadonlyArray<string>) => {
  let statement = byTypes.get(types.length)
  if (statement === undefined) {
    statement = Kit.stmt(
      `SELECT ${eventColumns} FROM {events} WHERE position > ? AND type IN (${types.map(() => "?").join(", ")})
        ORDER BY position LIMIT ?`,
      decodeEvent
    )
    byTypes.set(types.length, statement)
  }
  return Kit.all(statement, after, ...types, limit)
}

const streamListing = Kit.listing({
  table: "event_streams",
  columns: streamColumns,
  orderBy: ["stream_id"],
  decode: decodeStream
})

/** One page of streams by id, within the prefix's key range. */
const listStreams = (prefix: string | undefined, page: PageQuery) =>
  streamListing({}, page, prefix === undefined ? [] : Kit.prefixRange("stream_id", prefix))

// PostgreSQL: the whole append in one statement. `claim` advances (or creates) the stream row only when the
// version check passes; the counter is bumped only for a claimed row; the events are inserted from arrays.
const pgClaims = {
  exact: `UPDATE {event_streams} AS s SET version = s.version + p.n, updated_at = GREATEST(s.updated_at, p.now)
    FROM p WHERE s.stream_id = p.stream_id AND s.version = p.expected RETURNING s.version`,
  exists: `UPDATE {event_streams} AS s SET version = s.version + p.n, updated_at = GREATEST(s.updated_at, p.now)
    FROM p WHERE s.stream_id = p.stream_id AND s.version >= 1 RETURNING s.version`,
  create: `INSERT INTO {event_streams} (stream_id, version, truncated_before, created_at, updated_at)
    SELECT stream_id, n, 1, now, now FROM p ON CONFLICT (stream_id) DO NOTHING RETURNING version`,
  any: `INSERT INTO {event_streams} (stream_id, version, truncated_before, created_at, updated_at)
    SELECT stream_id, n, 1, now, now FROM p
    ON CONFLICT (stream_id) DO UPDATE SET version = {event_streams}.version + excluded.version,
      updated_at = GREATEST({event_streams}.updated_at, excluded.updated_at)
    RETURNING version`
}

type PgAppendParams = [
  streamId: string,
  n: number,
  now: number,
  expected: number,
  counter: string,
  ids: ReadonlyArray<string>,
  types: ReadonlyArray<string>,
  payloads: ReadonlyArray<string>,
  metadata: ReadonlyArray<string>,
  ...notify: Array<string>
]

const pgAppendStatement = (claim: string, notify: string) =>
  Kit.stmt<PgAppendParams, AppendOutcome>(
    `WITH p AS (SELECT ?::text AS stream_id, ?::bigint AS n, ?::bigint AS now, ?::bigint AS expected),
      claim AS (${claim}),
      bumped AS (
        INSERT INTO {counters} (name, value) SELECT ?, p.n FROM claim, p
        ON CONFLICT (name) DO UPDATE SET value = {counters}.value + excluded.value RETURNING value
      ),
      inserted AS (
        INSERT INTO {events} (${eventColumns})
        SELECT e.id, p.stream_id, claim.version - p.n + e.i, bumped.value - p.n + e.i, e.type, e.payload, e.metadata,
          p.now
        FROM p, claim, bumped,
          unnest(?::text[], ?::text[], ?::text[], ?::text[]) WITH ORDINALITY AS e(id, type, payload, metadata, i)
        RETURNING position
      )
    SELECT claim.version, bumped.value, (SELECT count(*) FROM inserted),
      (SELECT s.version FROM {event_streams} AS s WHERE s.stream_id = p.stream_id)${notify}
    FROM p LEFT JOIN claim ON true LEFT JOIN bumped ON true`,
    // Refused: the version the statement saw (a concurrent claim may have moved it on; the store then retries).
    (r): AppendOutcome =>
      r[0] === null
        ? { _tag: "Refused", actual: r[3] === null ? 0 : Number(r[3]) }
        : { _tag: "Appended", version: Number(r[0]), position: Number(r[1]) }
  )

const pgAppendsOf = (notify: string) => ({
  exact: pgAppendStatement(pgClaims.exact, notify),
  exists: pgAppendStatement(pgClaims.exists, notify),
  create: pgAppendStatement(pgClaims.create, notify),
  any: pgAppendStatement(pgClaims.any, notify)
})

/** The appends without a NOTIFY (a `SqlClient` other than `PgDatabase`'s), and with one per channel. */
const pgAppends = pgAppendsOf("")
const pgNotifyingAppends = pgAppendsOf(", (SELECT pg_notify(?, ?) FROM claim), (SELECT pg_notify(?, ?) FROM claim)")

/** The NOTIFY of a truncation, inside its transaction (PostgreSQL only). */
const pgNotify = Kit.stmt<[string, string, string, string]>("SELECT pg_notify(?, ?), pg_notify(?, ?)")

/**
 * The `pg_notify` arguments of an append to a stream (its channel, then every stream's), run inside the write so
 * other processes hear of it at commit; `undefined` where wake-ups are in-process only.
 */
export type Notify = readonly [string, string, string, string] | undefined

/** The version of a stream (0 when none), after a refused claim. */
const versionOf = (streamId: string) => Kit.one(selectStream, streamId).map((row) => row?.version ?? 0)

function* appendSteps(
  streamId: string,
  events: ReadonlyArray<NewEvent>,
  expected: EventExpectation,
  now: number,
  _notify?: Notify
): Generator<Kit.Call<any>, AppendOutcome, any> {
  const current: EventStreamRow | undefined = yield* Kit.one(selectStream, streamId)
  const actual = current?.version ?? 0
  if (expected === "streamExists" ? actual === 0 : expected !== "any" && expected !== actual) {
    return { _tag: "Refused", actual }
  }
  const n = events.length
  const version: number | undefined =
    current === undefined
      ? yield* Kit.one(createStream, streamId, n, now, now)
      : yield* Kit.one(advanceStream, n, now, now, streamId, actual)
  // Another writer claimed the stream first (PostgreSQL through a caller's SqlClient): report what it holds now.
  if (version === undefined) return { _tag: "Refused", actual: yield* versionOf(streamId) }
  const position: number = (yield* Kit.one(Kit.bumpCounter, counter, n))!
  for (let i = 0; i < n; i++) {
    const event = events[i]!
    yield* Kit.exec(
      insertEvent,
      event.id,
      streamId,
      version - n + 1 + i,
      position - n + 1 + i,
      event.type,
      event.payload,
      event.metadata,
      now
    )
  }
  return { _tag: "Appended", version, position }
}

/** One statement, so no transaction around it: one round trip. */
const pgAppend = (
  streamId: string,
  events: ReadonlyArray<NewEvent>,
  expected: EventExpectation,
  now: number,
  notify?: Notify
): Kit.Call<AppendOutcome> => {
  const statements = notify === undefined ? pgAppends : pgNotifyingAppends
  const statement =
    expected === "any"
      ? statements.any
      : expected === "streamExists"
        ? statements.exists
        : expected === 0
          ? statements.create
          : statements.exact
  return Kit.one(
    statement,
    streamId,
    events.length,
    now,
    typeof expected === "number" ? expected : 0,
    counter,
    events.map((e) => e.id),
    events.map((e) => e.type),
    events.map((e) => e.payload),
    events.map((e) => e.metadata),
    ...(notify ?? [])
  ).map((outcome) => outcome ?? { _tag: "Refused", actual: 0 })
}

function* truncateSteps(
  streamId: string,
  before: number,
  marker: (truncatedBefore: number, removed: number) => NewEvent,
  now: number,
  notify?: Notify
): Generator<Kit.Call<any>, TruncateOutcome, any> {
  const current: EventStreamRow | undefined = yield* Kit.one(selectStream, streamId)
  if (current === undefined) return undefined
  const mark = Math.min(before, current.version + 1)
  if (mark <= current.truncatedBefore) return { _tag: "Unchanged", truncatedBefore: current.truncatedBefore }
  const version: number | undefined = yield* Kit.one(raiseMark, mark, now, now, streamId, current.version)
  if (version === undefined) return { _tag: "Refused" }
  const removed: ReadonlyArray<number> = yield* Kit.all(removeBelow, streamId, mark)
  const position: number = (yield* Kit.one(Kit.bumpCounter, counter, 1))!
  const event = marker(mark, removed.length)
  yield* Kit.exec(insertEvent, event.id, streamId, version, position, event.type, event.payload, event.metadata, now)
  if (notify !== undefined) yield* Kit.exec(pgNotify, ...notify)
  return { _tag: "Truncated", truncatedBefore: mark, removed: removed.length }
}

/** The operations of `EventDriver` (the writes take the PostgreSQL NOTIFY arguments, see `Notify`). */
export const ops = {
  append: Kit.op("events.append", appendSteps, {
    atomic: true,
    pg: pgAppend,
    onViolation: (violation): AppendOutcome =>
      violation === "unique" ? { _tag: "Duplicate" } : { _tag: "Refused", actual: 0 }
  }),
  read: Kit.op("events.read", (streamId: string, after: number, limit: number, backward: boolean) =>
    Kit.all(backward ? readBackward : readForward, streamId, after, limit)
  ),
  readAll: Kit.op("events.readAll", (after: number, limit: number, types: ReadonlyArray<string> | undefined) =>
    types === undefined ? Kit.all(readAll, after, limit) : readAllOfTypes(after, limit, types)
  ),
  taken: Kit.op("events.taken", function* (ids: ReadonlyArray<string>) {
    const found: Array<string> = []
    for (const id of ids) {
      const row: string | undefined = yield* Kit.one(eventById, id)
      if (row !== undefined) found.push(row)
    }
    return found
  }),
  stream: Kit.op("events.stream", (streamId: string) => Kit.one(selectStream, streamId)),
  streams: Kit.op("events.streams", listStreams),
  head: Kit.op("events.head", () => Kit.one(head, counter).map((value) => value ?? 0)),
  truncate: Kit.op("events.truncate", truncateSteps, { atomic: true })
}
const sqlOps = ops

/** The driver over the runner's operations, passing `notify(streamId)` to the writes. */
const driverOf = (d: Kit.DriverOf<typeof sqlOps>, notify: (streamId: string) => Notify): EventDriver => ({
  ...d,
  append: (streamId, events, expected, now) => d.append(streamId, events, expected, now, notify(streamId)),
  truncate: (streamId, before, marker, now) => d.truncate(streamId, before, marker, now, notify(streamId)),
  head: d.head()
})

/** An `EventDriver` on the SQL backend in context (wake-ups announced by the store, not by the driver). */
export const driver: Effect.Effect<EventDriver, StorageError, SqlClient | Kit.SqlTables> = Effect.map(
  Kit.driver(sqlOps),
  (d) => driverOf(d, () => undefined)
)

/**
 * `EventStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. On
 * `PgDatabase`, an append's NOTIFY runs inside its own statement (no extra round trip) and this process's
 * subscribers are woken at commit.
 */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<EventStore, StorageError, SqlClient> =>
  Layer.effect(
    EventStore,
    Effect.gen(function* () {
      const ops = yield* Kit.driver(sqlOps)
      const { prefix } = yield* Kit.SqlTables
      const namespace = `sql:${prefix}`
      const crossProcess = yield* Effect.serviceOption(Wakeups.Wakeups)
      const pg = (yield* SqlClient).onDialectOrElse({ pg: () => true, orElse: () => false })
      if (!pg || Option.isNone(crossProcess)) {
        return makeEventStore(
          driverOf(ops, () => undefined),
          eventLive(yield* Wakeups.current, namespace)
        )
      }
      const channels = eventChannels(namespace)
      const notify = (streamId: string): Notify => [
        ...PgDatabase.notifyArgs(channels.stream(streamId)),
        ...PgDatabase.notifyArgs(channels.all)
      ]
      const local = Wakeups.inProcess(yield* Effect.serviceOption(CommitHooks.CommitHooks))
      return makeEventStore(
        driverOf(ops, notify),
        eventLive({ wake: local.wake, listen: crossProcess.value.listen }, namespace)
      )
    })
  ).pipe(Layer.provide(Kit.migrations(schema, options)))

/** `EventStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<EventStore, StorageError, SqlClient> = layerWith()

/** The statements of the hot paths, for the bench's raw-driver side (which runs the same SQL). */
export const statements = {
  selectStream,
  createStream,
  advanceStream,
  insertEvent,
  readForward,
  /** The append the library runs on `PgDatabase`: with its NOTIFY arguments after the events' arrays. */
  pgAppendAny: pgNotifyingAppends.any
}
