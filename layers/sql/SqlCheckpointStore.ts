/**
 * `CheckpointStore` on SQL, stated once for SQLite and PostgreSQL. Each
 * `(thread, namespace)` has a head row holding its seq counter and its latest
 * checkpoint: a save bumps the head (locking it, so saves of one thread
 * serialise and `seq` stays gapless; the head's previous latest is the default
 * parent) and inserts the checkpoint and its writes in the same transaction,
 * one statement on PostgreSQL. `latest` reads the head joined to its
 * checkpoint: one indexed read at any history length. Checkpoints go with
 * their session, and writes with their checkpoint, through foreign keys
 * (`ON DELETE CASCADE`, enforced on both dialects).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import type { PageQuery } from "../../src/Page.ts"
import {
  type CheckpointDriver,
  type CheckpointRow,
  CheckpointStore,
  makeCheckpointStore,
  type NewCheckpointRow,
  type StoredCheckpoint,
  type CheckpointWriteRow
} from "../../src/State.ts"
import * as Kit from "./Kit.ts"
import * as SqlSessionStore from "./SqlSessionStore.ts"

const writesTable = `CREATE TABLE IF NOT EXISTS {checkpoint_writes} (
  checkpoint_id TEXT NOT NULL REFERENCES {checkpoints} (id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  task_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (checkpoint_id, idx)
)`

const headsTable = `CREATE TABLE IF NOT EXISTS {checkpoint_heads} (
  thread_id TEXT NOT NULL REFERENCES {sessions} (id) ON DELETE CASCADE,
  namespace TEXT NOT NULL,
  last_seq BIGINT NOT NULL,
  latest_id TEXT,
  prev_id TEXT,
  PRIMARY KEY (thread_id, namespace)
)`

/** The checkpoints, their writes and their heads, and their migrations (after the sessions table they reference). */
export const schema: Kit.SqlSchema = {
  name: "checkpoints",
  tables: ["checkpoint_heads", "checkpoints", "checkpoint_writes"],
  migrations: {
    "0001_checkpoints": [
      { sqlite: `${headsTable} WITHOUT ROWID`, pg: headsTable },
      `CREATE TABLE IF NOT EXISTS {checkpoints} (
        id TEXT PRIMARY KEY NOT NULL,
        thread_id TEXT NOT NULL REFERENCES {sessions} (id) ON DELETE CASCADE,
        namespace TEXT NOT NULL,
        seq BIGINT NOT NULL,
        parent_id TEXT,
        state TEXT NOT NULL,
        metadata TEXT NOT NULL,
        write_count INTEGER NOT NULL,
        created_at BIGINT NOT NULL
      )`,
      `CREATE UNIQUE INDEX IF NOT EXISTS {checkpoints_thread} ON {checkpoints} (thread_id, namespace, seq)`,
      { sqlite: `${writesTable} WITHOUT ROWID`, pg: writesTable }
    ]
  },
  requires: [SqlSessionStore.schema]
}

const columns = "c.id, c.thread_id, c.namespace, c.seq, c.parent_id, c.state, c.metadata, c.created_at"
const writeColumns = "w.idx, w.task_id, w.channel, w.value"

/** One joined row: a checkpoint's columns, then one of its writes' (nulls when it has none). */
type Joined = readonly [CheckpointRow, CheckpointWriteRow | undefined]

const decodeJoined = (r: ReadonlyArray<any>): Joined => [
  {
    id: r[0],
    threadId: r[1],
    namespace: r[2],
    seq: Number(r[3]),
    parentId: r[4],
    state: r[5],
    metadata: r[6],
    createdAt: Number(r[7])
  },
  r[8] === null ? undefined : { idx: Number(r[8]), taskId: r[9], channel: r[10], value: r[11] }
]

/** Groups joined rows (each checkpoint's rows adjacent, writes in idx order) into checkpoints with their writes. */
const group = (rows: ReadonlyArray<Joined>): Array<StoredCheckpoint> => {
  const out: Array<{ row: CheckpointRow; writes: Array<CheckpointWriteRow> }> = []
  for (const [row, write] of rows) {
    let last = out[out.length - 1]
    if (last === undefined || last.row.id !== row.id) out.push((last = { row, writes: [] }))
    if (write !== undefined) last.writes.push(write)
  }
  return out
}

const get = Kit.stmt<[id: string], Joined>(
  `SELECT ${columns}, ${writeColumns} FROM {checkpoints} c LEFT JOIN {checkpoint_writes} w ON w.checkpoint_id = c.id
    WHERE c.id = ? ORDER BY w.idx`,
  decodeJoined
)
const latest = Kit.stmt<[threadId: string, namespace: string], Joined>(
  `SELECT ${columns}, ${writeColumns} FROM {checkpoint_heads} h
    JOIN {checkpoints} c ON c.id = h.latest_id
    LEFT JOIN {checkpoint_writes} w ON w.checkpoint_id = c.id
    WHERE h.thread_id = ? AND h.namespace = ? ORDER BY w.idx`,
  decodeJoined
)
const namespaces = Kit.stmt<[threadId: string], string>(
  `SELECT namespace FROM {checkpoint_heads} WHERE thread_id = ?`,
  (r) => r[0]
)
const parentOf = Kit.stmt<[id: string], readonly [string, string]>(
  `SELECT thread_id, namespace FROM {checkpoints} WHERE id = ?`,
  (r) => [r[0], r[1]]
)
const bumpHead = Kit.stmt<[threadId: string, namespace: string, id: string], readonly [number, string | null]>(
  `INSERT INTO {checkpoint_heads} (thread_id, namespace, last_seq, latest_id, prev_id) VALUES (?, ?, 1, ?, NULL)
    ON CONFLICT (thread_id, namespace) DO UPDATE SET last_seq = {checkpoint_heads}.last_seq + 1,
      prev_id = {checkpoint_heads}.latest_id, latest_id = excluded.latest_id
    RETURNING last_seq, prev_id`,
  (r) => [Number(r[0]), r[1]]
)
const insertCheckpoint = Kit.stmt<Array<unknown>>(
  `INSERT INTO {checkpoints} (id, thread_id, namespace, seq, parent_id, state, metadata, write_count, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
)
const insertWrite = Kit.stmt<Array<unknown>>(
  `INSERT INTO {checkpoint_writes} (checkpoint_id, idx, task_id, channel, value) VALUES (?, ?, ?, ?, ?)`
)
/**
 * PostgreSQL: the checks, the head bump, the checkpoint and its writes in one statement. The session and the
 * parent are checked first (a foreign key is checked only at the end of the statement, after a duplicate id has
 * already failed), so the answer is the one SQLite and memory give: no parent, else no session, else taken id.
 */
const saveAll = Kit.stmt<Array<unknown>, readonly [boolean, boolean, number | undefined, string | null]>(
  `WITH checks AS (
    SELECT EXISTS (SELECT 1 FROM {sessions} WHERE id = ?::text) AS session,
      (?::text IS NULL
        OR EXISTS (SELECT 1 FROM {checkpoints} WHERE id = ?::text AND thread_id = ?::text AND namespace = ?::text))
        AS parent
  ), head AS (
    INSERT INTO {checkpoint_heads} (thread_id, namespace, last_seq, latest_id, prev_id)
    SELECT ?::text, ?::text, 1, ?::text, NULL FROM checks WHERE session AND parent
    ON CONFLICT (thread_id, namespace) DO UPDATE SET last_seq = {checkpoint_heads}.last_seq + 1,
      prev_id = {checkpoint_heads}.latest_id, latest_id = excluded.latest_id
    RETURNING last_seq, prev_id
  ), inserted AS (
    INSERT INTO {checkpoints} (id, thread_id, namespace, seq, parent_id, state, metadata, write_count, created_at)
    SELECT ?::text, ?::text, ?::text, head.last_seq, COALESCE(?::text, head.prev_id), ?::text, ?::text, ?::int, ?::int8
    FROM head RETURNING seq, parent_id
  ), writes AS (
    INSERT INTO {checkpoint_writes} (checkpoint_id, idx, task_id, channel, value)
    SELECT ?::text, v.ord, v.task_id, v.channel, v.value
    FROM inserted, unnest(?::text[], ?::text[], ?::text[]) WITH ORDINALITY AS v (task_id, channel, value, ord)
  )
  SELECT checks.session, checks.parent, inserted.seq, inserted.parent_id FROM checks LEFT JOIN inserted ON true`,
  (r) => [r[0] === true, r[1] === true, r[2] === null ? undefined : Number(r[2]), r[3]]
)
const bumpWrites = Kit.stmt<[count: number, id: string], number>(
  `UPDATE {checkpoints} SET write_count = write_count + ? WHERE id = ? RETURNING write_count`,
  (r) => Number(r[0])
)
/** PostgreSQL: the count bump and the writes in one statement. */
const putAll = Kit.stmt<Array<unknown>, number>(
  `WITH bumped AS (
    UPDATE {checkpoints} SET write_count = write_count + ?::int WHERE id = ?::text RETURNING write_count
  ), writes AS (
    INSERT INTO {checkpoint_writes} (checkpoint_id, idx, task_id, channel, value)
    SELECT ?::text, bumped.write_count - ?::int + v.ord, v.task_id, v.channel, v.value
    FROM bumped, unnest(?::text[], ?::text[], ?::text[]) WITH ORDINALITY AS v (task_id, channel, value, ord)
  )
  SELECT write_count FROM bumped`,
  (r) => Number(r[0])
)
const pruneNamespace = Kit.stmt<
  [threadId: string, namespace: string, threadId: string, namespace: string, keep: number],
  string
>(
  `DELETE FROM {checkpoints} WHERE thread_id = ? AND namespace = ?
    AND seq <= (SELECT last_seq FROM {checkpoint_heads} WHERE thread_id = ? AND namespace = ?) - ? RETURNING id`,
  (r) => r[0]
)
const pruneThread = Kit.stmt<[threadId: string, keep: number], string>(
  `DELETE FROM {checkpoints} WHERE thread_id = ?
    AND seq <= (SELECT h.last_seq FROM {checkpoint_heads} h
      WHERE h.thread_id = {checkpoints}.thread_id AND h.namespace = {checkpoints}.namespace) - ? RETURNING id`,
  (r) => r[0]
)
const removeCheckpoints = Kit.stmt<[threadId: string]>(`DELETE FROM {checkpoints} WHERE thread_id = ?`)
const removeHeads = Kit.stmt<[threadId: string]>(`DELETE FROM {checkpoint_heads} WHERE thread_id = ?`)

/** The history walk: `id`, then parents, up to `limit` deep, joined to their writes, nearest first. */
const history = Kit.stmt<[id: string, limit: number], Joined>(
  `WITH RECURSIVE chain (id, depth) AS (
    SELECT id, 0 FROM {checkpoints} WHERE id = ?
    UNION ALL
    SELECT p.id, chain.depth + 1 FROM chain
      JOIN {checkpoints} c ON c.id = chain.id
      JOIN {checkpoints} p ON p.id = c.parent_id
    WHERE chain.depth + 1 < ?
  )
  SELECT ${columns}, ${writeColumns} FROM chain
    JOIN {checkpoints} c ON c.id = chain.id
    LEFT JOIN {checkpoint_writes} w ON w.checkpoint_id = c.id
  ORDER BY chain.depth, w.idx`,
  decodeJoined
)

const listings = new Map<string, Kit.Stmt<ReadonlyArray<unknown>, Joined>>()

/** One page of a thread's namespace by seq, joined to its writes; one statement per shape of query. */
const list = (
  threadId: string,
  namespace: string,
  before: number | undefined,
  page: PageQuery
): Kit.Call<ReadonlyArray<Joined>> => {
  const desc = page.order === "desc"
  const where = ["thread_id = ?", "namespace = ?"]
  const params: Array<unknown> = [threadId, namespace]
  if (before !== undefined) {
    where.push("seq < ?")
    params.push(before)
  }
  if (page.after !== undefined) {
    where.push(desc ? "seq < ?" : "seq > ?")
    params.push(page.after[0])
  }
  params.push(page.limit, page.offset)
  const direction = desc ? "DESC" : "ASC"
  const shape = `${where.join(" AND ")}|${direction}`
  let statement = listings.get(shape)
  if (statement === undefined) {
    statement = Kit.stmt(
      `SELECT ${columns}, ${writeColumns} FROM (
        SELECT * FROM {checkpoints} WHERE ${where.join(" AND ")} ORDER BY seq ${direction} LIMIT ? OFFSET ?
      ) c LEFT JOIN {checkpoint_writes} w ON w.checkpoint_id = c.id
      ORDER BY c.seq ${direction}, w.idx`,
      decodeJoined
    )
    listings.set(shape, statement)
  }
  return new Kit.Call(statement, params, "all")
}

type Saved = { readonly seq: number; readonly parentId: string | null } | "no-session" | "no-parent" | "exists"

const onSaveViolation = (violation: Kit.Violation): Saved => (violation === "unique" ? "exists" : "no-session")

const column = <K extends keyof CheckpointWriteRow>(
  writes: ReadonlyArray<Omit<CheckpointWriteRow, "idx">>,
  key: Exclude<K, "idx">
) => writes.map((w) => w[key])

/** The operations of `CheckpointDriver`. */
export const ops = {
  save: Kit.op(
    "checkpoint.save",
    function* (row: NewCheckpointRow, writes: ReadonlyArray<CheckpointWriteRow>) {
      if (row.parentId !== null) {
        const parent = yield* Kit.one(parentOf, row.parentId)
        if (parent === undefined || parent[0] !== row.threadId || parent[1] !== row.namespace) {
          return "no-parent" as const
        }
      }
      const [seq, latest] = (yield* Kit.one(bumpHead, row.threadId, row.namespace, row.id))!
      const parentId = row.parentId ?? latest
      yield* Kit.exec(
        insertCheckpoint,
        row.id,
        row.threadId,
        row.namespace,
        seq,
        parentId,
        row.state,
        row.metadata,
        writes.length,
        row.createdAt
      )
      for (const w of writes) yield* Kit.exec(insertWrite, row.id, w.idx, w.taskId, w.channel, w.value)
      return { seq, parentId } as Saved
    },
    {
      atomic: true,
      onViolation: onSaveViolation,
      pg: (row, writes) =>
        Kit.one(
          saveAll,
          row.threadId,
          row.parentId,
          row.parentId,
          row.threadId,
          row.namespace,
          row.threadId,
          row.namespace,
          row.id,
          row.id,
          row.threadId,
          row.namespace,
          row.parentId,
          row.state,
          row.metadata,
          writes.length,
          row.createdAt,
          row.id,
          column(writes, "taskId"),
          column(writes, "channel"),
          column(writes, "value")
        ).map((saved): Saved => {
          const [session, parent, seq, parentId] = saved!
          if (!parent) return "no-parent"
          if (!session || seq === undefined) return "no-session"
          return { seq, parentId }
        })
    }
  ),
  get: Kit.op("checkpoint.get", (id: string) => Kit.all(get, id).map((rows) => group(rows)[0])),
  latest: Kit.op("checkpoint.latest", (threadId: string, namespace: string) =>
    Kit.all(latest, threadId, namespace).map((rows) => group(rows)[0])
  ),
  namespaces: Kit.op("checkpoint.namespaces", (threadId: string) => Kit.all(namespaces, threadId)),
  list: Kit.op("checkpoint.list", (threadId: string, namespace: string, before: number | undefined, page: PageQuery) =>
    list(threadId, namespace, before, page).map(group)
  ),
  history: Kit.op("checkpoint.history", (id: string, limit: number) => Kit.all(history, id, limit).map(group)),
  putWrites: Kit.op(
    "checkpoint.putWrites",
    function* (id: string, writes: ReadonlyArray<Omit<CheckpointWriteRow, "idx">>) {
      const count = yield* Kit.one(bumpWrites, writes.length, id)
      if (count === undefined) return false
      const first = count - writes.length + 1
      for (let i = 0; i < writes.length; i++) {
        const w = writes[i]!
        yield* Kit.exec(insertWrite, id, first + i, w.taskId, w.channel, w.value)
      }
      return true
    },
    {
      atomic: true,
      pg: (id, writes) =>
        Kit.one(
          putAll,
          writes.length,
          id,
          id,
          writes.length,
          column(writes, "taskId"),
          column(writes, "channel"),
          column(writes, "value")
        ).map((count) => count !== undefined)
    }
  ),
  prune: Kit.op("checkpoint.prune", (threadId: string, namespace: string | undefined, keepLast: number) =>
    (namespace === undefined
      ? Kit.all(pruneThread, threadId, keepLast)
      : Kit.all(pruneNamespace, threadId, namespace, threadId, namespace, keepLast)
    ).map((ids) => ids.length)
  ),
  deleteThread: Kit.op(
    "checkpoint.deleteThread",
    function* (threadId: string) {
      yield* Kit.exec(removeCheckpoints, threadId)
      yield* Kit.exec(removeHeads, threadId)
    },
    { atomic: true }
  )
}

/** A `CheckpointDriver` on the SQL backend in context. */
export const driver: Effect.Effect<CheckpointDriver, StorageError, SqlClient | Kit.SqlTables> = Kit.driver(ops)

/**
 * `CheckpointStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first (the
 * sessions table its checkpoints reference included).
 */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<CheckpointStore, StorageError, SqlClient> =>
  Layer.effect(CheckpointStore, Effect.map(driver, makeCheckpointStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `CheckpointStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<CheckpointStore, StorageError, SqlClient> = layerWith()

/** The statements of `save` and `latest`, for the bench's raw-driver side (which runs the same SQL). */
export const statements = { parentOf, bumpHead, insertCheckpoint, saveAll, latest }
