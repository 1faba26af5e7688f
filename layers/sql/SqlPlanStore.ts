/**
 * `PlanStore` and `TemplateStore` on SQL, stated once for SQLite and
 * PostgreSQL. A plan's steps live in its row (JSON text), so a step update is
 * a read-modify-write of one row inside one transaction: an immediate
 * transaction on SQLite, `SELECT … FOR UPDATE` on PostgreSQL, so concurrent
 * step updates queue on the row and none is lost. A template's current
 * version is a row of `templates` (name unique); every version, the current
 * one included, is also a row of `template_versions`, written in the same
 * transaction and deleted with the template (`ON DELETE CASCADE`).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Either, Layer } from "effect"
import type { StorageError } from "../../src/Errors.ts"
import type { PageQuery } from "../../src/Page.ts"
import {
  makePlanStore,
  makeTemplateStore,
  type PlanDriver,
  type PlanFilter,
  type PlanRow,
  PlanStore,
  type TemplateDriver,
  type TemplateRow,
  TemplateStore
} from "../../src/Plan.ts"
import * as Kit from "./Kit.ts"

// ---------------------------------------------------------------------------
// Plans

/** The plans table and its migrations. */
export const planSchema: Kit.SqlSchema = {
  name: "plans",
  tables: ["plans"],
  migrations: {
    "0001_plans": [
      `CREATE TABLE IF NOT EXISTS {plans} (
        id TEXT PRIMARY KEY NOT NULL,
        conversation_id TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT,
        steps TEXT NOT NULL,
        status TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        version INTEGER NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS {plans_created} ON {plans} (created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {plans_conversation} ON {plans} (conversation_id, created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {plans_status} ON {plans} (status, created_at, id)`
    ]
  },
  requires: []
}

const planColumns = "id, conversation_id, title, description, steps, status, metadata, created_at, updated_at, version"

const decodePlan = (r: ReadonlyArray<any>): PlanRow => ({
  id: r[0],
  conversationId: r[1],
  title: r[2],
  description: r[3],
  steps: r[4],
  status: r[5],
  metadata: r[6],
  createdAt: Number(r[7]),
  updatedAt: Number(r[8]),
  version: Number(r[9])
})

const insertPlan = Kit.stmt<Array<unknown>, string>(
  `INSERT INTO {plans} (${planColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id`,
  (r) => r[0]
)
const getPlan = Kit.stmt<[id: string], PlanRow>(`SELECT ${planColumns} FROM {plans} WHERE id = ?`, decodePlan)
/** The row, locked until the transaction ends on PostgreSQL (SQLite's immediate transaction already excludes writers). */
const lockPlan = Kit.stmt<[id: string], PlanRow>(
  {
    sqlite: `SELECT ${planColumns} FROM {plans} WHERE id = ?`,
    pg: `SELECT ${planColumns} FROM {plans} WHERE id = ? FOR UPDATE`
  },
  decodePlan
)
const updatePlan = Kit.stmt<Array<unknown>, string>(
  `UPDATE {plans} SET conversation_id = ?, title = ?, description = ?, steps = ?, status = ?, metadata = ?,
    updated_at = ?, version = ? WHERE id = ? AND version = ? RETURNING id`,
  (r) => r[0]
)
const removePlan = Kit.stmt<[id: string]>(`DELETE FROM {plans} WHERE id = ?`)
const listPlans = Kit.listing({
  table: "plans",
  columns: planColumns,
  orderBy: ["created_at", "id"],
  decode: decodePlan
})

/** The operations of `PlanDriver`. */
export const planOps = {
  insert: Kit.op("plan.insert", (row: PlanRow) =>
    Kit.one(
      insertPlan,
      row.id,
      row.conversationId,
      row.title,
      row.description,
      row.steps,
      row.status,
      row.metadata,
      row.createdAt,
      row.updatedAt,
      row.version
    ).map((id) => id !== undefined)
  ),
  get: Kit.op("plan.get", (id: string) => Kit.one(getPlan, id)),
  list: Kit.op("plan.list", (filter: PlanFilter, page: PageQuery) =>
    listPlans({ conversation_id: filter.conversationId, status: filter.status }, page)
  ),
  delete: Kit.op("plan.delete", (id: string) => Kit.exec(removePlan, id)),
  modify: Kit.op(
    "plan.modify",
    function* (id: string, change: (current: PlanRow) => Either.Either<PlanRow, unknown>) {
      const current = yield* Kit.one(lockPlan, id)
      if (current === undefined) return undefined
      const next = change(current)
      if (Either.isLeft(next)) return next
      const row = next.right
      const updated = yield* Kit.one(
        updatePlan,
        row.conversationId,
        row.title,
        row.description,
        row.steps,
        row.status,
        row.metadata,
        row.updatedAt,
        row.version,
        id,
        current.version
      )
      // The row is locked by this transaction, so it cannot have changed since it was read.
      if (updated === undefined) throw new Error(`plan ${id} changed under its lock`)
      return Either.right({ ...row, id, createdAt: current.createdAt })
    },
    { atomic: true }
  )
}

/** A `PlanDriver` on the SQL backend in context. */
export const planDriver: Effect.Effect<PlanDriver, StorageError, SqlClient | Kit.SqlTables> = Kit.driver(
  planOps
) as Effect.Effect<PlanDriver, StorageError, SqlClient | Kit.SqlTables>

/** `PlanStore` on SQL, migrating its schema first (prepared statements on the embedded SQLite connection, else the `SqlClient`). */
export const planLayerWith = (options: Kit.SqlOptions = {}): Layer.Layer<PlanStore, StorageError, SqlClient> =>
  Layer.effect(PlanStore, Effect.map(planDriver, makePlanStore)).pipe(
    Layer.provide(Kit.migrations(planSchema, options))
  )

/** `PlanStore` on SQL with the default table prefix. */
export const planLayer: Layer.Layer<PlanStore, StorageError, SqlClient> = planLayerWith()

// ---------------------------------------------------------------------------
// Templates

/** The templates and template versions tables and their migrations. Names compare by code point on both dialects. */
export const templateSchema: Kit.SqlSchema = {
  name: "templates",
  tables: ["templates", "template_versions"],
  migrations: {
    "0001_templates": [
      {
        sqlite: `CREATE TABLE IF NOT EXISTS {templates} (
          id TEXT PRIMARY KEY NOT NULL,
          name TEXT NOT NULL UNIQUE,
          description TEXT,
          content TEXT NOT NULL,
          variables TEXT NOT NULL,
          category TEXT,
          created_at BIGINT NOT NULL,
          updated_at BIGINT NOT NULL,
          version INTEGER NOT NULL
        )`,
        pg: `CREATE TABLE IF NOT EXISTS {templates} (
          id TEXT PRIMARY KEY NOT NULL,
          name TEXT COLLATE "C" NOT NULL UNIQUE,
          description TEXT,
          content TEXT NOT NULL,
          variables TEXT NOT NULL,
          category TEXT,
          created_at BIGINT NOT NULL,
          updated_at BIGINT NOT NULL,
          version INTEGER NOT NULL
        )`
      },
      `CREATE INDEX IF NOT EXISTS {templates_name} ON {templates} (name, id)`,
      `CREATE INDEX IF NOT EXISTS {templates_category} ON {templates} (category, name, id)`,
      `CREATE TABLE IF NOT EXISTS {template_versions} (
        template_id TEXT NOT NULL REFERENCES {templates} (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        name TEXT NOT NULL,
        description TEXT,
        content TEXT NOT NULL,
        variables TEXT NOT NULL,
        category TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (template_id, version)
      )`
    ]
  },
  requires: []
}

const templateColumns = "id, name, description, content, variables, category, created_at, updated_at, version"
const versionColumns = "template_id, name, description, content, variables, category, created_at, updated_at, version"

const decodeTemplate = (r: ReadonlyArray<any>): TemplateRow => ({
  id: r[0],
  name: r[1],
  description: r[2],
  content: r[3],
  variables: r[4],
  category: r[5],
  createdAt: Number(r[6]),
  updatedAt: Number(r[7]),
  version: Number(r[8])
})

const getTemplate = Kit.stmt<[id: string], TemplateRow>(
  `SELECT ${templateColumns} FROM {templates} WHERE id = ?`,
  decodeTemplate
)
const getTemplateByName = Kit.stmt<[name: string], TemplateRow>(
  `SELECT ${templateColumns} FROM {templates} WHERE name = ?`,
  decodeTemplate
)
const resolveTemplate = Kit.stmt<[id: string, name: string, id: string], TemplateRow>(
  `SELECT ${templateColumns} FROM {templates} WHERE id = ? OR name = ?
    ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END LIMIT 1`,
  decodeTemplate
)
const getVersion = Kit.stmt<[id: string, version: number], TemplateRow>(
  `SELECT ${versionColumns} FROM {template_versions} WHERE template_id = ? AND version = ?`,
  decodeTemplate
)
const insertTemplate = Kit.stmt<Array<unknown>, string>(
  `INSERT INTO {templates} (${templateColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING
    RETURNING id`,
  (r) => r[0]
)
const updateTemplate = Kit.stmt<Array<unknown>, string>(
  `UPDATE {templates} SET name = ?, description = ?, content = ?, variables = ?, category = ?, updated_at = ?,
    version = ? WHERE id = ? AND version = ? RETURNING id`,
  (r) => r[0]
)
const insertVersion = Kit.stmt<Array<unknown>>(
  `INSERT INTO {template_versions} (${versionColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
)
/** PostgreSQL: the insert (version 1) or compare-and-set update and its history row in one statement. */
const writeAll = (write: string) =>
  Kit.stmt<Array<unknown>, string>(
    `WITH written AS (${write} RETURNING ${templateColumns}),
      added AS (INSERT INTO {template_versions} (${versionColumns}) SELECT ${templateColumns} FROM written)
    SELECT id FROM written`,
    (r) => r[0]
  )
const insertAll = writeAll(
  `INSERT INTO {templates} (${templateColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
)
const updateAll = writeAll(
  `UPDATE {templates} SET name = ?, description = ?, content = ?, variables = ?, category = ?, updated_at = ?,
    version = ? WHERE id = ? AND version = ?`
)
const removeTemplate = Kit.stmt<[id: string]>(`DELETE FROM {templates} WHERE id = ?`)
const listTemplates = Kit.listing({
  table: "templates",
  columns: templateColumns,
  orderBy: ["name", "id"],
  decode: decodeTemplate
})
const listVersions = Kit.listing({
  table: "template_versions",
  columns: versionColumns,
  orderBy: ["version"],
  decode: decodeTemplate
})

const nameTaken = () => "name-taken" as const

/** The operations of `TemplateDriver`. */
export const templateOps = {
  get: Kit.op("template.get", (id: string) => Kit.one(getTemplate, id)),
  getByName: Kit.op("template.getByName", (name: string) => Kit.one(getTemplateByName, name)),
  resolve: Kit.op("template.resolve", (key: string) => Kit.one(resolveTemplate, key, key, key)),
  version: Kit.op("template.version", (id: string, version: number) => Kit.one(getVersion, id, version)),
  history: Kit.op("template.history", (id: string, page: PageQuery) => listVersions({ template_id: id }, page)),
  list: Kit.op("template.list", (filter: { readonly category?: string | undefined }, page: PageQuery) =>
    listTemplates({ category: filter.category }, page)
  ),
  delete: Kit.op("template.delete", (id: string) => Kit.exec(removeTemplate, id)),
  write: Kit.op(
    "template.write",
    function* (row: TemplateRow) {
      const fields = [row.name, row.description, row.content, row.variables, row.category]
      const written =
        row.version === 1
          ? yield* Kit.one(insertTemplate, row.id, ...fields, row.createdAt, row.updatedAt, row.version)
          : yield* Kit.one(updateTemplate, ...fields, row.updatedAt, row.version, row.id, row.version - 1)
      if (written === undefined) return "stale" as const
      yield* Kit.exec(insertVersion, row.id, ...fields, row.createdAt, row.updatedAt, row.version)
      return "saved" as const
    },
    {
      atomic: true,
      pg: (row) => {
        const fields = [row.name, row.description, row.content, row.variables, row.category]
        const written =
          row.version === 1
            ? Kit.one(insertAll, row.id, ...fields, row.createdAt, row.updatedAt, row.version)
            : Kit.one(updateAll, ...fields, row.updatedAt, row.version, row.id, row.version - 1)
        return written.map((id) => (id === undefined ? ("stale" as const) : ("saved" as const)))
      },
      onViolation: nameTaken
    }
  )
}

/** A `TemplateDriver` on the SQL backend in context. */
export const templateDriver: Effect.Effect<TemplateDriver, StorageError, SqlClient | Kit.SqlTables> =
  Kit.driver(templateOps)

/** `TemplateStore` on SQL, migrating its schema first (prepared statements on the embedded SQLite connection, else the `SqlClient`). */
export const templateLayerWith = (options: Kit.SqlOptions = {}): Layer.Layer<TemplateStore, StorageError, SqlClient> =>
  Layer.effect(TemplateStore, Effect.map(templateDriver, makeTemplateStore)).pipe(
    Layer.provide(Kit.migrations(templateSchema, options))
  )

/** `TemplateStore` on SQL with the default table prefix. */
export const templateLayer: Layer.Layer<TemplateStore, StorageError, SqlClient> = templateLayerWith()
