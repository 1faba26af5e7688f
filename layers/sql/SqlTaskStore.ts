/**
 * `TaskStore` and `AgentStateStore` on SQL, stated once for SQLite and
 * PostgreSQL. A task's dependencies are rows of `task_dependencies` (foreign
 * keys to both tasks, `ON DELETE CASCADE`: deleting a task removes it from its
 * dependents), read back as one JSON array column. Subtasks go with their
 * parent through `parent_id`'s foreign key. `claimNext` is one
 * `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING` statement: on SQLite it
 * runs synchronously on the connection (a write statement takes the write
 * lock before it reads), on PostgreSQL the subquery locks its row `FOR UPDATE
 * SKIP LOCKED`, so concurrent claimers never take the same task.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import { jsonText } from "../../src/Json.ts"
import type { PageQuery } from "../../src/Page.ts"
import {
  type AgentStateFilter,
  type AgentStateRow,
  AgentStateStore,
  makeAgentStateStore,
  makeTaskStore,
  type TaskFilter,
  type TaskRefusal,
  type TaskRow,
  TaskStore
} from "../../src/Task.ts"
import * as Kit from "./Kit.ts"

/** The tasks, task_dependencies and agent_states tables and their migrations. */
export const schema: Kit.SqlSchema = {
  name: "tasks",
  tables: ["tasks", "task_dependencies", "agent_states"],
  migrations: {
    "0001_tasks": [
      `CREATE TABLE IF NOT EXISTS {tasks} (
        id TEXT PRIMARY KEY NOT NULL,
        conversation_id TEXT NOT NULL,
        plan_id TEXT,
        description TEXT NOT NULL,
        status TEXT NOT NULL,
        parent_id TEXT REFERENCES {tasks} (id) ON DELETE CASCADE,
        priority INTEGER NOT NULL,
        assigned_to TEXT,
        iterations INTEGER NOT NULL,
        summary TEXT,
        metadata TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        started_at BIGINT,
        completed_at BIGINT,
        version INTEGER NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS {tasks_created} ON {tasks} (created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {tasks_conversation} ON {tasks} (conversation_id, created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {tasks_plan} ON {tasks} (plan_id, created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {tasks_parent} ON {tasks} (parent_id, created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {tasks_ready} ON {tasks} (status, priority DESC, created_at, id)`,
      `CREATE TABLE IF NOT EXISTS {task_dependencies} (
        task_id TEXT NOT NULL REFERENCES {tasks} (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        depends_on TEXT NOT NULL REFERENCES {tasks} (id) ON DELETE CASCADE,
        PRIMARY KEY (task_id, position)
      )`,
      `CREATE INDEX IF NOT EXISTS {task_dependencies_on} ON {task_dependencies} (depends_on)`,
      `CREATE TABLE IF NOT EXISTS {agent_states} (
        agent_id TEXT PRIMARY KEY NOT NULL,
        task_id TEXT,
        conversation_id TEXT,
        status TEXT NOT NULL,
        iteration INTEGER NOT NULL,
        context TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        version INTEGER NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS {agent_states_created} ON {agent_states} (created_at, agent_id)`,
      `CREATE INDEX IF NOT EXISTS {agent_states_task} ON {agent_states} (task_id, created_at, agent_id)`,
      `CREATE INDEX IF NOT EXISTS {agent_states_conversation} ON {agent_states} (conversation_id, created_at, agent_id)`
    ]
  },
  requires: []
}

// ---------------------------------------------------------------------------
// Tasks

/** A task's dependencies as a JSON array of ids, in their order. */
const dependsOn = {
  sqlite: `(SELECT json_group_array(depends_on ORDER BY position) FROM {task_dependencies} WHERE task_id = {tasks}.id)`,
  pg: `COALESCE((SELECT json_agg(depends_on ORDER BY position)::text FROM {task_dependencies}
    WHERE task_id = {tasks}.id), '[]')`
}

const baseColumns = `id, conversation_id, plan_id, description, status, parent_id, priority, assigned_to, iterations,
  summary, metadata, created_at, updated_at, started_at, completed_at, version`

/** The same statement for both dialects but for the dependencies column (`$deps`). */
const withDeps = (text: string): Kit.SqlText => ({
  sqlite: text.replaceAll("$deps", dependsOn.sqlite),
  pg: text.replaceAll("$deps", dependsOn.pg)
})

const columns = `${baseColumns}, $deps`

/** Content strings (description, summary) are stored as JSON text, so U+0000 and lone surrogates survive PostgreSQL. */
const content = (text: string): string => JSON.stringify(text)

const decode = (r: ReadonlyArray<any>): TaskRow => ({
  id: r[0],
  conversationId: r[1],
  planId: r[2],
  description: JSON.parse(r[3]),
  status: r[4],
  parentId: r[5],
  priority: Number(r[6]),
  assignedTo: r[7],
  iterations: Number(r[8]),
  summary: r[9] === null ? null : JSON.parse(r[9]),
  metadata: r[10],
  createdAt: Number(r[11]),
  updatedAt: Number(r[12]),
  startedAt: r[13] === null ? null : Number(r[13]),
  completedAt: r[14] === null ? null : Number(r[14]),
  version: Number(r[15]),
  dependsOn: JSON.parse(r[16])
})

/** `?` for a JSON array of ids: its elements as rows of one text column `value`. */
const idsOf = {
  sqlite: "SELECT value FROM json_each(?)",
  pg: "SELECT value FROM json_array_elements_text(?::json) AS v (value)"
}

const get = Kit.stmt<[id: string], TaskRow>(withDeps(`SELECT ${columns} FROM {tasks} WHERE id = ?`), decode)
const count = Kit.stmt<[ids: string], number>(
  {
    sqlite: `SELECT count(*) FROM {tasks} WHERE id IN (${idsOf.sqlite})`,
    pg: `SELECT count(*) FROM {tasks} WHERE id IN (${idsOf.pg})`
  },
  (r) => Number(r[0])
)
const exists = Kit.stmt<[id: string], string>(`SELECT id FROM {tasks} WHERE id = ?`, (r) => r[0])
/** Whether the dependencies `?` (JSON) reach task `?` through the stored edges. */
const reaches = Kit.stmt<[ids: string, id: string], number>(
  {
    sqlite: `WITH RECURSIVE reach (id) AS (${idsOf.sqlite} UNION SELECT d.depends_on FROM {task_dependencies} d
      JOIN reach r ON d.task_id = r.id) SELECT 1 FROM reach WHERE id = ? LIMIT 1`,
    pg: `WITH RECURSIVE reach (id) AS (${idsOf.pg} UNION SELECT d.depends_on FROM {task_dependencies} d
      JOIN reach r ON d.task_id = r.id) SELECT 1 FROM reach WHERE id = ? LIMIT 1`
  },
  (r) => Number(r[0])
)
/** Whether task `?` has task `?` among its ancestors (itself included). */
const descends = Kit.stmt<[from: string, id: string], number>(
  {
    sqlite: `WITH RECURSIVE up (id) AS (SELECT ? UNION SELECT t.parent_id FROM {tasks} t JOIN up ON t.id = up.id
      WHERE t.parent_id IS NOT NULL) SELECT 1 FROM up WHERE id = ? LIMIT 1`,
    pg: `WITH RECURSIVE up (id) AS (SELECT ?::text UNION SELECT t.parent_id FROM {tasks} t JOIN up ON t.id = up.id
      WHERE t.parent_id IS NOT NULL) SELECT 1 FROM up WHERE id = ? LIMIT 1`
  },
  (r) => Number(r[0])
)
/** PostgreSQL: relinks serialise, so two concurrent relinks cannot close a cycle each check alone misses. */
const lockGraph = Kit.stmt<[]>({ sqlite: "SELECT 1", pg: `SELECT pg_advisory_xact_lock(hashtext('{tasks}'))` })
const insert = Kit.stmt<Array<unknown>, string>(
  `INSERT INTO {tasks} (${baseColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING RETURNING id`,
  (r) => r[0]
)
/**
 * PostgreSQL: `insert` in one statement (one round trip, atomic by itself): the reference checks, the row and its
 * dependency edges. Returns whether the dependencies and the parent exist, and the id if the row was inserted.
 */
const insertPg = Kit.stmt<Array<unknown>, readonly [deps: boolean, parent: boolean, id: string | null]>(
  `WITH checks AS (
    SELECT (SELECT count(*) FROM {tasks} WHERE id IN (${idsOf.pg})) = ?::int AS deps,
      (?::text IS NULL OR EXISTS (SELECT 1 FROM {tasks} WHERE id = ?::text)) AS parent
  ), inserted AS (
    INSERT INTO {tasks} (${baseColumns})
    SELECT ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::int, ?::text, ?::int, ?::text, ?::text, ?::int8,
      ?::int8, ?::int8, ?::int8, ?::int FROM checks WHERE deps AND parent
    ON CONFLICT (id) DO NOTHING RETURNING id
  ), linked AS (
    INSERT INTO {task_dependencies} (task_id, position, depends_on)
    SELECT inserted.id, v.ord, v.value FROM inserted, json_array_elements_text(?::json) WITH ORDINALITY AS v (value, ord)
  )
  SELECT deps, parent, (SELECT id FROM inserted) FROM checks`,
  (r) => [r[0] === true || r[0] === "t", r[1] === true || r[1] === "t", r[2]] as const
)
const linkAll = Kit.stmt<[id: string, ids: string]>({
  sqlite: `INSERT INTO {task_dependencies} (task_id, position, depends_on) SELECT ?, key, value FROM json_each(?)`,
  pg: `INSERT INTO {task_dependencies} (task_id, position, depends_on)
    SELECT ?, ord, value FROM json_array_elements_text(?::json) WITH ORDINALITY AS v (value, ord)`
})
const unlinkAll = Kit.stmt<[id: string]>(`DELETE FROM {task_dependencies} WHERE task_id = ?`)
const setFields = `conversation_id = ?, plan_id = ?, description = ?, status = ?, priority = ?, assigned_to = ?,
  iterations = ?, summary = ?, metadata = ?, updated_at = ?, started_at = ?, completed_at = ?, version = ?`
const update = Kit.stmt<Array<unknown>, TaskRow>(
  withDeps(`UPDATE {tasks} SET ${setFields} WHERE id = ? AND version = ? RETURNING ${columns}`),
  decode
)
const updateLinked = Kit.stmt<Array<unknown>, TaskRow>(
  `UPDATE {tasks} SET ${setFields}, parent_id = ? WHERE id = ? AND version = ? RETURNING ${baseColumns}, '[]'`,
  decode
)

/** `updated_at` moved to `?` unless it is already later (bound twice). */
const laterUpdatedAt = "updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END"

const claims = new Map<string, Kit.Stmt<Array<unknown>, TaskRow>>()
/** The claim statement for one shape of filter (conversation, plan). */
const claimOf = (conversation: boolean, plan: boolean) => {
  const key = `${conversation}${plan}`
  let statement = claims.get(key)
  if (statement === undefined) {
    const text = (lock: string) =>
      `UPDATE {tasks} SET status = 'in_progress', assigned_to = ?, started_at = ?, completed_at = NULL,
        iterations = iterations + 1, ${laterUpdatedAt}, version = version + 1
      WHERE status = 'pending' AND id = (
        SELECT t.id FROM {tasks} t WHERE t.status = 'pending'
          ${conversation ? "AND t.conversation_id = ?" : ""} ${plan ? "AND t.plan_id = ?" : ""}
          AND NOT EXISTS (SELECT 1 FROM {task_dependencies} d JOIN {tasks} p ON p.id = d.depends_on
            WHERE d.task_id = t.id AND p.status <> 'completed')
        ORDER BY t.priority DESC, t.created_at, t.id LIMIT 1 ${lock}
      ) RETURNING ${columns}`
    statement = Kit.stmt(
      {
        sqlite: text("").replaceAll("$deps", dependsOn.sqlite),
        pg: text("FOR UPDATE OF t SKIP LOCKED").replaceAll("$deps", dependsOn.pg)
      },
      decode
    )
    claims.set(key, statement)
  }
  return statement
}

const release = Kit.stmt<[now: number, now: number, before: number], TaskRow>(
  withDeps(`UPDATE {tasks} SET status = 'pending', assigned_to = NULL, started_at = NULL, ${laterUpdatedAt},
    version = version + 1 WHERE status = 'in_progress' AND updated_at < ? RETURNING ${columns}`),
  decode
)
const removeBy = {
  id: Kit.stmt<[key: string]>(`DELETE FROM {tasks} WHERE id = ?`),
  conversation: Kit.stmt<[key: string]>(`DELETE FROM {tasks} WHERE conversation_id = ?`),
  plan: Kit.stmt<[key: string]>(`DELETE FROM {tasks} WHERE plan_id = ?`)
}

const listingOf = (dialect: Kit.Dialect) =>
  Kit.listing({
    table: "tasks",
    columns: columns.replaceAll("$deps", dependsOn[dialect]),
    orderBy: ["created_at", "id"],
    decode
  })
const listSqlite = listingOf("sqlite")
const listPg = listingOf("pg")
const filtersOf = (filter: TaskFilter): Kit.Filters => ({
  conversation_id: filter.conversationId,
  plan_id: filter.planId,
  status: filter.status,
  assigned_to: filter.assignedTo,
  parent_id: filter.parentId
})

const fields = (row: TaskRow): Array<unknown> => [
  row.conversationId,
  row.planId,
  content(row.description),
  row.status,
  row.priority,
  row.assignedTo,
  row.iterations,
  row.summary === null ? null : content(row.summary),
  jsonText(row.metadata),
  row.updatedAt,
  row.startedAt,
  row.completedAt,
  row.version
]

/** Refuses dependencies or a parent that do not exist. */
function* checkReferences(row: TaskRow): Generator<Kit.Call<any>, TaskRefusal | undefined, any> {
  if (row.dependsOn.length > 0 && (yield* Kit.one(count, JSON.stringify(row.dependsOn))) !== row.dependsOn.length) {
    return "unknown-dependency"
  }
  if (row.parentId !== null && (yield* Kit.one(exists, row.parentId)) === undefined) return "unknown-parent"
  return undefined
}

const missingReference = (): TaskRefusal => "unknown-dependency"

/** The operations of `TaskDriver` (`write` dispatches to `insert`, `update` and `relink`). */
export const taskOps = {
  insert: Kit.op(
    "task.insert",
    function* (row: TaskRow) {
      const refused = yield* checkReferences(row)
      if (refused !== undefined) return refused
      const values = fields(row)
      const inserted = yield* Kit.one(
        insert,
        row.id,
        ...values.slice(0, 4),
        row.parentId,
        ...values.slice(4, 9),
        row.createdAt,
        ...values.slice(9)
      )
      if (inserted === undefined) return "exists" as const
      if (row.dependsOn.length > 0) yield* Kit.exec(linkAll, row.id, JSON.stringify(row.dependsOn))
      return row
    },
    {
      atomic: true,
      pg: (row) => {
        const values = fields(row)
        const deps = JSON.stringify(row.dependsOn)
        return Kit.one(
          insertPg,
          deps,
          row.dependsOn.length,
          row.parentId,
          row.parentId,
          row.id,
          ...values.slice(0, 4),
          row.parentId,
          ...values.slice(4, 9),
          row.createdAt,
          ...values.slice(9),
          deps
        ).map((result): TaskRow | TaskRefusal | "exists" => {
          if (result === undefined || !result[0]) return "unknown-dependency"
          if (!result[1]) return "unknown-parent"
          return result[2] === null ? "exists" : row
        })
      },
      // A dependency or parent deleted between the check and the write (PostgreSQL, READ COMMITTED).
      onViolation: missingReference
    }
  ),
  update: Kit.op("task.update", (row: TaskRow) => Kit.one(update, ...fields(row), row.id, row.version - 1)),
  relink: Kit.op(
    "task.relink",
    function* (row: TaskRow) {
      yield* Kit.exec(lockGraph)
      const refused = yield* checkReferences(row)
      if (refused !== undefined) return refused
      const deps = JSON.stringify(row.dependsOn)
      if (row.dependsOn.length > 0 && (yield* Kit.one(reaches, deps, row.id)) !== undefined) {
        return "dependency-cycle" as const
      }
      if (row.parentId !== null && (yield* Kit.one(descends, row.parentId, row.id)) !== undefined) {
        return "parent-cycle" as const
      }
      const stored = yield* Kit.one(updateLinked, ...fields(row), row.parentId, row.id, row.version - 1)
      if (stored === undefined) return undefined
      yield* Kit.exec(unlinkAll, row.id)
      if (row.dependsOn.length > 0) yield* Kit.exec(linkAll, row.id, deps)
      return { ...stored, dependsOn: row.dependsOn }
    },
    { atomic: true, onViolation: missingReference }
  ),
  get: Kit.op("task.get", (id: string) => Kit.one(get, id)),
  list: Kit.op("task.list", (filter: TaskFilter, page: PageQuery) => listSqlite(filtersOf(filter), page), {
    pg: (filter, page) => listPg(filtersOf(filter), page)
  }),
  claim: Kit.op(
    "task.claim",
    (agentId: string, conversationId: string | undefined, planId: string | undefined, now: number) => {
      const params: Array<unknown> = [agentId, now, now, now]
      if (conversationId !== undefined) params.push(conversationId)
      if (planId !== undefined) params.push(planId)
      return Kit.one(claimOf(conversationId !== undefined, planId !== undefined), ...params)
    }
  ),
  release: Kit.op("task.release", (before: number, now: number) =>
    Kit.all(release, now, now, before).map((rows) =>
      [...rows].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    )
  ),
  delete: Kit.op("task.delete", (by: "id" | "conversation" | "plan", key: string) => Kit.exec(removeBy[by], key))
}

// ---------------------------------------------------------------------------
// Agent states

const stateColumns = "agent_id, task_id, conversation_id, status, iteration, context, created_at, updated_at, version"

const decodeState = (r: ReadonlyArray<any>): AgentStateRow => ({
  agentId: r[0],
  taskId: r[1],
  conversationId: r[2],
  status: r[3],
  iteration: Number(r[4]),
  context: r[5],
  createdAt: Number(r[6]),
  updatedAt: Number(r[7]),
  version: Number(r[8])
})

const getState = Kit.stmt<[agentId: string], AgentStateRow>(
  `SELECT ${stateColumns} FROM {agent_states} WHERE agent_id = ?`,
  decodeState
)
const insertState = Kit.stmt<Array<unknown>, AgentStateRow>(
  `INSERT INTO {agent_states} (${stateColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO NOTHING
    RETURNING ${stateColumns}`,
  decodeState
)
const updateState = Kit.stmt<Array<unknown>, AgentStateRow>(
  `UPDATE {agent_states} SET task_id = ?, conversation_id = ?, status = ?, iteration = ?, context = ?, updated_at = ?,
    version = ? WHERE agent_id = ? AND version = ? RETURNING ${stateColumns}`,
  decodeState
)
const removeState = Kit.stmt<[agentId: string]>(`DELETE FROM {agent_states} WHERE agent_id = ?`)
const listStates = Kit.listing({
  table: "agent_states",
  columns: stateColumns,
  orderBy: ["created_at", "agent_id"],
  decode: decodeState
})

/** The operations of `AgentStateDriver`. */
export const stateOps = {
  write: Kit.op("agentState.write", (row: AgentStateRow) =>
    row.version === 1
      ? Kit.one(
          insertState,
          row.agentId,
          row.taskId,
          row.conversationId,
          row.status,
          row.iteration,
          jsonText(row.context),
          row.createdAt,
          row.updatedAt,
          row.version
        )
      : Kit.one(
          updateState,
          row.taskId,
          row.conversationId,
          row.status,
          row.iteration,
          jsonText(row.context),
          row.updatedAt,
          row.version,
          row.agentId,
          row.version - 1
        )
  ),
  get: Kit.op("agentState.get", (agentId: string) => Kit.one(getState, agentId)),
  list: Kit.op("agentState.list", (filter: AgentStateFilter, page: PageQuery) =>
    listStates({ task_id: filter.taskId, conversation_id: filter.conversationId, status: filter.status }, page)
  ),
  delete: Kit.op("agentState.delete", (agentId: string) => Kit.exec(removeState, agentId))
}

/**
 * `TaskStore` on SQL, migrating the schema first: prepared statements on the embedded SQLite backend's connection
 * when `SqliteDatabase` is in context, otherwise the `SqlClient` in context (PostgreSQL, or your own SQLite client).
 */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<TaskStore, StorageError, SqlClient> =>
  Layer.effect(
    TaskStore,
    Effect.map(Kit.driver(taskOps), (ops) =>
      makeTaskStore({
        write: (row, mode) => ops[mode](row),
        get: ops.get,
        list: ops.list,
        claim: ops.claim,
        release: ops.release,
        delete: ops.delete
      })
    )
  ).pipe(Layer.provide(Kit.migrations(schema, options)))

/** `TaskStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<TaskStore, StorageError, SqlClient> = layerWith()

/** `AgentStateStore` on SQL (same schema as `TaskStore`), migrating the schema first. */
export const agentStateLayerWith = (
  options: Kit.SqlOptions = {}
): Layer.Layer<AgentStateStore, StorageError, SqlClient> =>
  Layer.effect(AgentStateStore, Effect.map(Kit.driver(stateOps), makeAgentStateStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `AgentStateStore` on SQL with the default table prefix. */
export const agentStateLayer: Layer.Layer<AgentStateStore, StorageError, SqlClient> = agentStateLayerWith()
