/**
 * `EventStore` on SQL, stated once for SQLite and PostgreSQL.
 *
 * - `{events}`: one row per event, keyed by `position`, unique `(stream_id, seq)` and `id`.
 * - `{event_streams}`: one row per stream: its version (the claim an append
 *   makes: a compare-and-set on it settles racing writers) and its retention
 *   mark `truncated_before`.
 * - Triggers make the log append-only: `UPDATE` of an event is refused, and
 *   `DELETE` too unless the event's `seq` is below its stream's retention
 *   mark (what `truncateBefore` raises, in the same transaction, before it
 *   deletes). The mark itself only rises, never past the version + 1, and a
 *   stream row is never deleted. (PostgreSQL also refuses `TRUNCATE`.)
 *
 * Positions (see `docs/events.md`): on SQLite, from the kernel's `events`
 * counter bumped in the append's transaction (one writer at a time, so they are
 * in commit order). On PostgreSQL, without any row all writers share: a
 * transaction's events take the next free places in a block of `pgSlots`
 * positions of its own, the block fixed by its transaction id (`xid8`) counted
 * from `{event_origin}`; reads stop below the block of the oldest transaction
 * still running (`{events_frontier}()`), whose events may yet commit, so a
 * reader never passes an event that commits later. Lock order: the stream row only.
 * PostgreSQL appends in one statement (stream claim, positions and every
 * event through `unnest`), one round trip whatever the batch size.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Clock, Duration, Effect, FiberSet, Layer, Option } from "effect"
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
import { eventLive } from "../memory/MemoryEventStore.ts"
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

/** The kernel counter positions come from on SQLite (retired on PostgreSQL by `0002_positions_from_transactions`). */
export const counter = "events"

/**
 * Positions per transaction on PostgreSQL: a transaction's events take the next free places in its own block of
 * this many, so one transaction appends at most this many events (at least one whole `append`, `maxAppendBatch`).
 */
export const pgSlots = 1024

/**
 * What the counter is set to when PostgreSQL's positions stop coming from it: a process still running the counter
 * scheme then gets negative positions, which `{events_position_range}` refuses, rather than writing out of order.
 */
const retiredCounter = "-4611686018427387904"

/**
 * PostgreSQL's positions as the calling statement's snapshot sees them (STABLE: it runs in that snapshot):
 * `{event_origin}` (transaction `base_xid` has the block starting at `base_position`), the last position stored
 * (at least `base_position - 1`), and whether the log holds positions beyond every block of a transaction that
 * has run or runs now: the cluster's transaction ids started again below the origin (the database was restored
 * into another cluster), so the origin must move past the stored positions before a transaction takes a block.
 */
const originSeen = `CREATE OR REPLACE FUNCTION {event_origin_seen}(
    OUT base_xid BIGINT, OUT base_position BIGINT, OUT last BIGINT, OUT restarted BOOLEAN)
  LANGUAGE plpgsql STABLE AS $$
  BEGIN
    SELECT o.base_xid, o.base_position, GREATEST((SELECT max(position) FROM {events}), o.base_position - 1)
      INTO base_xid, base_position, last FROM {event_origin} AS o;
    restarted := last >= base_position + (GREATEST(pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
      COALESCE(pg_current_xact_id_if_assigned()::text::bigint + 1, 0)) - base_xid) * ${pgSlots};
  END $$`

/**
 * The first position a PostgreSQL read must not reach: the block of the oldest transaction still running
 * (`pg_snapshot_xmin`), whose events may commit after any later one; every event below it has committed or never
 * will. STABLE, so it sees the snapshot of the read that calls it: the events the read returns and the frontier
 * that bounds them are of one moment.
 */
const frontier = `CREATE OR REPLACE FUNCTION {events_frontier}() RETURNS BIGINT LANGUAGE plpgsql STABLE AS $$
  DECLARE
    o RECORD;
  BEGIN
    SELECT * INTO o FROM {event_origin_seen}();
    IF o.restarted THEN
      RETURN o.last + 1;
    END IF;
    RETURN o.base_position + (pg_snapshot_xmin(pg_current_snapshot())::text::bigint - o.base_xid) * ${pgSlots};
  END $$`

/**
 * Places `n` events of the calling transaction: the last of the next `n` free places in its block (an index probe,
 * when the block may already hold its earlier appends). After a restart into another cluster, the
 * first writer moves the origin past the stored positions (locking the origin row; every other writer waits for it).
 */
const place = `CREATE OR REPLACE FUNCTION {events_place}(n BIGINT) RETURNS BIGINT LANGUAGE plpgsql AS $$
  DECLARE
    x BIGINT := pg_current_xact_id()::text::bigint;
    o RECORD;
    block BIGINT;
    first BIGINT;
  BEGIN
    SELECT * INTO o FROM {event_origin_seen}();
    IF o.restarted THEN
      PERFORM 1 FROM {event_origin} FOR UPDATE;
      SELECT * INTO o FROM {event_origin_seen}();
      IF o.restarted THEN
        UPDATE {event_origin}
          SET base_xid = pg_snapshot_xmin(pg_current_snapshot())::text::bigint, base_position = o.last + 1;
        SELECT * INTO o FROM {event_origin_seen}();
      END IF;
    END IF;
    block := o.base_position + (x - o.base_xid) * ${pgSlots};
    first := block;
    IF o.last >= block THEN
      SELECT COALESCE(max(position) + 1, block) INTO first FROM {events}
        WHERE position >= block AND position < block + ${pgSlots};
    END IF;
    IF first + n > block + ${pgSlots} THEN
      RAISE EXCEPTION 'one transaction appends at most % events on PostgreSQL', ${pgSlots}
        USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN first + n - 1;
  END $$`

/** The events tables, their triggers and migrations; requires the kernel's counters. */
export const schema: Kit.SqlSchema = {
  name: "events",
  tables: ["event_streams", "events", "event_origin"],
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
    ],
    // PostgreSQL: positions from transaction ids instead of the counter. The origin's block starts after every
    // position handed out (waiting for appends of the counter scheme in flight: they hold the counter row), for the
    // oldest transaction still running, so every transaction that can still append gets a block above them.
    "0002_positions_from_transactions": [
      {
        pg: `CREATE TABLE IF NOT EXISTS {event_origin} (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          base_xid BIGINT NOT NULL,
          base_position BIGINT NOT NULL
        )`
      },
      {
        pg: `DO $$
          DECLARE
            handed BIGINT;
          BEGIN
            SELECT value INTO handed FROM {counters} WHERE name = '${counter}' FOR UPDATE;
            INSERT INTO {counters} (name, value) VALUES ('${counter}', ${retiredCounter})
              ON CONFLICT (name) DO UPDATE SET value = excluded.value;
            INSERT INTO {event_origin} (id, base_xid, base_position)
              SELECT 1, pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                GREATEST(handed, (SELECT max(position) FROM {events}), 0) + 1;
          END $$`
      },
      {
        pg: `ALTER TABLE {events} ADD CONSTRAINT {events_position_range}
          CHECK (position BETWEEN 1 AND ${Number.MAX_SAFE_INTEGER}) NOT VALID`
      },
      { pg: originSeen },
      { pg: frontier },
      { pg: place }
    ]
  },
  requires: [Kit.kernel]
}

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
const eventById = Kit.stmt<[id: string], string>(`SELECT id FROM {events} WHERE id = ?`, (r) => r[0])
/** The last position handed out on SQLite; on PostgreSQL, the last below the frontier (every event to it settled). */
const head = Kit.stmt<[], number>(
  { sqlite: `SELECT value FROM {counters} WHERE name = '${counter}'`, pg: "SELECT {events_frontier}() - 1" },
  (r) => Number(r[0])
)
/** Places `n` events of the calling transaction on PostgreSQL (see `{events_place}`): the last position. */
const pgPlace = Kit.stmt<[n: number], number>("SELECT {events_place}(?)", (r) => Number(r[0]))
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

/**
 * What a PostgreSQL read of every stream knows beside its rows (see `settle`): the frontier it stopped below, the
 * last position stored, and whether waiting can move the frontier (not in a transaction that has written, which holds
 * it back itself, nor in one whose snapshot is fixed).
 */
interface Unsettled {
  readonly frontier: number
  readonly last: number
  readonly waitable: boolean
}

/** A page of `readAll`: its rows and, on PostgreSQL, what `settle` needs. */
interface AllPage {
  readonly rows: ReadonlyArray<EventRow>
  readonly unsettled: Unsettled | undefined
}

/**
 * A row of `readAll`: the event (none in PostgreSQL's one row for an empty page), then, on PostgreSQL, the frontier,
 * the last position and whether the read could wait.
 */
const decodeAllRow = (r: ReadonlyArray<any>) => ({
  event: r[0] === null ? undefined : decodeEvent(r),
  unsettled:
    r.length > 8 ? { frontier: Number(r[8]), last: r[9] === null ? 0 : Number(r[9]), waitable: r[10] } : undefined
})

const toAllPage = (rows: ReadonlyArray<ReturnType<typeof decodeAllRow>>): AllPage => ({
  rows: rows.flatMap((row) => (row.event === undefined ? [] : [row.event])),
  unsettled: rows[0]?.unsettled
})

/**
 * `readAll` (of `types` when given): on PostgreSQL, below the frontier of the same snapshot (the one row of `f`
 * joined to the page, so an empty page still reports it). One statement per number of types, stated on first use.
 */
const readAllStatements = new Map<number, Kit.Stmt<Array<unknown>, ReturnType<typeof decodeAllRow>>>()
const readAll = (after: number, limit: number, types: ReadonlyArray<string> | undefined) => {
  const count = types?.length ?? 0
  let statement = readAllStatements.get(count)
  if (statement === undefined) {
    const ofTypes = count === 0 ? "" : ` AND type IN (${types!.map(() => "?").join(", ")})`
    statement = Kit.stmt(
      {
        sqlite: `SELECT ${eventColumns} FROM {events} WHERE position > ?${ofTypes} ORDER BY position LIMIT ?`,
        pg: `WITH f AS MATERIALIZED (
            SELECT {events_frontier}() AS frontier, (SELECT max(position) FROM {events}) AS last,
              pg_current_xact_id_if_assigned() IS NULL
                AND current_setting('transaction_isolation') = 'read committed' AS waitable
          )
          SELECT e.*, f.frontier, f.last, f.waitable FROM f LEFT JOIN LATERAL (
            SELECT ${eventColumns} FROM {events} WHERE position > ? AND position < f.frontier${ofTypes}
            ORDER BY position LIMIT ?
          ) AS e ON true
          ORDER BY e.position`
      },
      decodeAllRow
    )
    readAllStatements.set(count, statement)
  }
  return Kit.all(statement, after, ...(types ?? []), limit).map(toAllPage)
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
// version check passes; positions are placed only for a claimed row; the events are inserted from arrays.
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
  ids: ReadonlyArray<string>,
  types: ReadonlyArray<string>,
  payloads: ReadonlyArray<string>,
  metadata: ReadonlyArray<string>
]

const pgAppendStatement = (claim: string) =>
  Kit.stmt<PgAppendParams, AppendOutcome>(
    `WITH p AS (SELECT ?::text AS stream_id, ?::bigint AS n, ?::bigint AS now, ?::bigint AS expected),
      claim AS (${claim}),
      placed AS MATERIALIZED (SELECT {events_place}(p.n) AS last FROM claim, p),
      inserted AS (
        INSERT INTO {events} (${eventColumns})
        SELECT e.id, p.stream_id, claim.version - p.n + e.i, placed.last - p.n + e.i, e.type, e.payload, e.metadata,
          p.now
        FROM p, claim, placed,
          unnest(?::text[], ?::text[], ?::text[], ?::text[]) WITH ORDINALITY AS e(id, type, payload, metadata, i)
        RETURNING position
      )
    SELECT claim.version, placed.last, (SELECT count(*) FROM inserted),
      (SELECT s.version FROM {event_streams} AS s WHERE s.stream_id = p.stream_id)
    FROM p LEFT JOIN claim ON true LEFT JOIN placed ON true`,
    // Refused: the version the statement saw (a concurrent claim may have moved it on; the store then retries).
    (r): AppendOutcome =>
      r[0] === null
        ? { _tag: "Refused", actual: r[3] === null ? 0 : Number(r[3]) }
        : { _tag: "Appended", version: Number(r[0]), position: Number(r[1]) }
  )

/** The appends by expectation. */
const pgAppends = {
  exact: pgAppendStatement(pgClaims.exact),
  exists: pgAppendStatement(pgClaims.exists),
  create: pgAppendStatement(pgClaims.create),
  any: pgAppendStatement(pgClaims.any)
}

/** The version of a stream (0 when none), after a refused claim. */
const versionOf = (streamId: string) => Kit.one(selectStream, streamId).map((row) => row?.version ?? 0)

/** How a statement-by-statement write takes `n` positions: the last of them. */
type Place = (n: number) => Kit.Call<number | undefined>

/** SQLite: from the kernel's counter. */
const placeByCounter: Place = (n) => Kit.one(Kit.bumpCounter, counter, n)

/** PostgreSQL: in the transaction's block. */
const placeInBlock: Place = (n) => Kit.one(pgPlace, n)

/** `append` statement by statement (SQLite), positions from the counter. */
function* appendSteps(
  streamId: string,
  events: ReadonlyArray<NewEvent>,
  expected: EventExpectation,
  now: number
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
  const position: number = (yield* placeByCounter(n))!
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
  now: number
): Kit.Call<AppendOutcome> => {
  const statements = pgAppends
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
    events.map((e) => e.id),
    events.map((e) => e.type),
    events.map((e) => e.payload),
    events.map((e) => e.metadata)
  ).map((outcome) => outcome ?? { _tag: "Refused", actual: 0 })
}

/** `truncateBefore`'s steps, its marker event's position taken by `place`. */
const truncateSteps = (place: Place) =>
  function* (
    streamId: string,
    before: number,
    marker: (truncatedBefore: number, removed: number) => NewEvent,
    now: number
  ): Generator<Kit.Call<any>, TruncateOutcome, any> {
    const current: EventStreamRow | undefined = yield* Kit.one(selectStream, streamId)
    if (current === undefined) return undefined
    const mark = Math.min(before, current.version + 1)
    if (mark <= current.truncatedBefore) return { _tag: "Unchanged", truncatedBefore: current.truncatedBefore }
    const version: number | undefined = yield* Kit.one(raiseMark, mark, now, now, streamId, current.version)
    if (version === undefined) return { _tag: "Refused" }
    const removed: ReadonlyArray<number> = yield* Kit.all(removeBelow, streamId, mark)
    const position: number = (yield* place(1))!
    const event = marker(mark, removed.length)
    yield* Kit.exec(insertEvent, event.id, streamId, version, position, event.type, event.payload, event.metadata, now)
    return { _tag: "Truncated", truncatedBefore: mark, removed: removed.length }
  }

/** The operations of `EventDriver`. */
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
  readAll: Kit.op("events.readAll", readAll),
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
  head: Kit.op("events.head", () => Kit.one(head).map((value) => value ?? 0)),
  truncate: Kit.op("events.truncate", truncateSteps(placeByCounter), { atomic: true, pg: truncateSteps(placeInBlock) })
}
const sqlOps = ops

/** How long a read of every stream on PostgreSQL waits for events committed before it to settle (see `settle`). */
const settleWithin = 1000

/** Real time, not the program's `Clock`: a read waits for other sessions of the database, which run in real time. */
const wallClock = Clock.make()

/**
 * `readAll` over pages that may stop at a frontier (PostgreSQL): when a page is short and events that committed
 * before the read lie beyond the frontier (a transaction older than theirs is still running), reads again, backing
 * off from 1 to 32 ms, until they are settled, the page is full, or `settleWithin` ms have passed; then returns the
 * page's rows (never any past its frontier). So a read sees every append that committed before it, unless a
 * transaction older than the append stays open longer than that.
 */
const settle =
  (read: Kit.DriverOf<typeof sqlOps>["readAll"]): EventDriver["readAll"] =>
  (after, limit, types) =>
    Effect.flatMap(read(after, limit, types), (first) => {
      const last = first.unsettled?.last ?? 0
      const settled = ({ rows, unsettled }: AllPage) =>
        unsettled === undefined ||
        !unsettled.waitable ||
        rows.length >= limit ||
        after >= last ||
        unsettled.frontier > last
      if (settled(first)) return Effect.succeed(first.rows)
      const deadline = wallClock.unsafeCurrentTimeMillis() + settleWithin
      const again = (pause: number): Effect.Effect<ReadonlyArray<EventRow>, StorageError> =>
        Effect.zipRight(
          wallClock.sleep(Duration.millis(pause)),
          Effect.flatMap(read(after, limit, types), (page) =>
            settled(page) || wallClock.unsafeCurrentTimeMillis() >= deadline
              ? Effect.succeed(page.rows)
              : again(Math.min(pause * 2, 32))
          )
        )
      return again(1)
    })

/** The driver over the runner's operations. */
const driverOf = (d: Kit.DriverOf<typeof sqlOps>): EventDriver => ({ ...d, readAll: settle(d.readAll), head: d.head() })

/** An `EventDriver` on the SQL backend in context (wake-ups announced by the store, not by the driver). */
export const driver: Effect.Effect<EventDriver, StorageError, SqlClient | Kit.SqlTables> = Effect.map(
  Kit.driver(sqlOps),
  driverOf
)

/** Sends `pg_notify(channels[i], payloads[i])` for every `i` in one transaction that does not wait for its flush. */
const pgNotifyMany = Kit.stmt<[channels: ReadonlyArray<string>, payloads: ReadonlyArray<string>]>(
  `SELECT set_config('synchronous_commit', 'off', true), count(pg_notify(n.channel, n.payload))
    FROM unnest(?::text[], ?::text[]) AS n(channel, payload)`
)

const notifyOps = {
  notify: Kit.op("events.notify", (channels: ReadonlyArray<string>, payloads: ReadonlyArray<string>) =>
    Kit.exec(pgNotifyMany, channels, payloads)
  )
}

/** The least time between two `NOTIFY` statements of one store, in ms (so a burst of appends costs a few). */
const notifyEvery = 5

/**
 * Tells other processes of this store's commits (`PgDatabase`): `offer(channel)` after a commit. Never inside the
 * write: a transaction that notifies holds PostgreSQL's cluster-wide notify lock from its commit until its commit
 * record is flushed, so appends that notified serialised on it as they did on the counter. One statement at a time,
 * at most one every `notifyEvery` ms (the first after a pause at once), sends every channel offered since the last,
 * committing without waiting for the flush: a wake-up lost in a crash, or dropped with a failed statement, costs the
 * subscribers' poll interval, never an event.
 */
const notifier = Effect.gen(function* () {
  const { notify } = yield* Kit.driver(notifyOps)
  const run = yield* FiberSet.makeRuntime<never>()
  const pending = new Set<string>()
  let sending = false
  let sentAt = 0
  const drain: Effect.Effect<void> = Effect.suspend(() => {
    if (pending.size === 0) {
      sending = false
      return Effect.void
    }
    const now = wallClock.unsafeCurrentTimeMillis()
    if (now < sentAt + notifyEvery)
      return Effect.zipRight(wallClock.sleep(Duration.millis(sentAt + notifyEvery - now)), drain)
    sentAt = now
    const args = Array.from(pending, PgDatabase.notifyArgs)
    pending.clear()
    return Effect.zipRight(
      Effect.ignore(
        notify(
          args.map(([channel]) => channel),
          args.map(([, payload]) => payload)
        )
      ),
      drain
    )
  })
  return (channel: string): void => {
    pending.add(channel)
    if (!sending) {
      sending = true
      run(drain)
    }
  }
})

/**
 * `EventStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. On
 * `PgDatabase`, this process's subscribers are woken at commit and other processes' by a `NOTIFY` sent after it
 * (see `notifier`).
 */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<EventStore, StorageError, SqlClient> =>
  Layer.scoped(
    EventStore,
    Effect.gen(function* () {
      const ops = driverOf(yield* Kit.driver(sqlOps))
      const { prefix } = yield* Kit.SqlTables
      const namespace = `sql:${prefix}`
      const crossProcess = yield* Effect.serviceOption(Wakeups.Wakeups)
      const pg = (yield* SqlClient).onDialectOrElse({ pg: () => true, orElse: () => false })
      if (!pg || Option.isNone(crossProcess)) return makeEventStore(ops, eventLive(yield* Wakeups.current, namespace))
      const hooks = yield* Effect.serviceOption(CommitHooks.CommitHooks)
      const offer = yield* notifier
      const wake = (channel: string, hint?: unknown) => {
        const key = Wakeups.channelKey(channel)
        const woken = () => {
          Wakeups.wakeLocal(key, hint)
          offer(channel)
        }
        return Option.isSome(hooks) ? hooks.value.afterCommit(woken) : Effect.sync(woken)
      }
      return makeEventStore(ops, eventLive({ ...crossProcess.value, wake }, namespace))
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
  /** The append the library runs on PostgreSQL with `expectedVersion: "any"`. */
  pgAppendAny: pgAppends.any,
  /** The `NOTIFY` it sends after an append commits (see `notifier`). */
  pgNotifyMany
}
