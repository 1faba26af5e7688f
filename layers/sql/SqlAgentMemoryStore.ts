/**
 * `AgentMemoryStore` on SQL, stated once for SQLite and PostgreSQL: one row
 * per `(agent_id, key)` (a unique index settles racing inserts), replaced by a
 * compare-and-set on `(id, version)`. Every read filters out rows expired at
 * the caller's `Clock` time, so expiry needs no sweep to take effect.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import {
  type AgentMemoryDriver,
  AgentMemoryStore,
  makeAgentMemoryStore,
  type MemoryFilter,
  type MemoryRecordRow
} from "../../src/AgentMemory.ts"
import type { StorageError } from "../../src/Errors.ts"
import { notExpiredSql } from "../../src/Expiry.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"

/** The memory records table and its migrations. */
export const schema: Kit.SqlSchema = {
  name: "memory_records",
  tables: ["memory_records"],
  migrations: {
    "0001_memory_records": [
      `CREATE TABLE IF NOT EXISTS {memory_records} (
        id TEXT PRIMARY KEY NOT NULL,
        agent_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        version INTEGER NOT NULL
      )`,
      `CREATE UNIQUE INDEX IF NOT EXISTS {memory_records_key} ON {memory_records} (agent_id, key)`,
      `CREATE INDEX IF NOT EXISTS {memory_records_agent} ON {memory_records} (agent_id, created_at, id)`,
      `CREATE INDEX IF NOT EXISTS {memory_records_expiry} ON {memory_records} (expires_at)
        WHERE expires_at IS NOT NULL`
    ]
  },
  requires: []
}

const columns = "id, agent_id, kind, key, value, expires_at, created_at, updated_at, version"

const decode = (r: ReadonlyArray<any>): MemoryRecordRow => ({
  id: r[0],
  agentId: r[1],
  kind: r[2],
  key: r[3],
  value: r[4],
  expiresAt: r[5] === null ? null : Number(r[5]),
  createdAt: Number(r[6]),
  updatedAt: Number(r[7]),
  version: Number(r[8])
})

const get = Kit.stmt<[agentId: string, key: string], MemoryRecordRow>(
  `SELECT ${columns} FROM {memory_records} WHERE agent_id = ? AND key = ?`,
  decode
)
const insert = Kit.stmt<Array<unknown>, string>(
  `INSERT INTO {memory_records} (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (agent_id, key) DO NOTHING RETURNING id`,
  (r) => r[0]
)
const replace = Kit.stmt<Array<unknown>, string>(
  `UPDATE {memory_records} SET id = ?, kind = ?, value = ?, expires_at = ?, created_at = ?, updated_at = ?, version = ?
    WHERE agent_id = ? AND key = ? AND id = ? AND version = ? RETURNING id`,
  (r) => r[0]
)
const remove = Kit.stmt<[agentId: string, key: string]>(`DELETE FROM {memory_records} WHERE agent_id = ? AND key = ?`)
// The outer condition is checked again against a row changed since the inner select (PostgreSQL re-reads it).
const deleteExpired = Kit.stmt<[now: number, batch: number, again: number], string>(
  `DELETE FROM {memory_records} WHERE id IN (
      SELECT id FROM {memory_records} WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?
    ) AND expires_at <= ? RETURNING id`,
  (r) => r[0]
)

const listing = Kit.listing({ table: "memory_records", columns, orderBy: ["created_at", "id"], decode })

/** One page of an agent's live records (of a kind, with a key prefix, when given). */
const list = (agentId: string, filter: MemoryFilter, now: number, page: PageQuery) => {
  const conditions: Array<Kit.Condition> = [[notExpiredSql("expires_at"), now]]
  if (filter.prefix !== undefined) {
    conditions.push(["substr(key, 1, length(CAST(? AS TEXT))) = ?", filter.prefix, filter.prefix])
  }
  return listing({ agent_id: agentId, kind: filter.kind }, page, conditions)
}

/** The operations of `AgentMemoryDriver`. */
export const ops = {
  get: Kit.op("memory.get", (agentId: string, key: string) => Kit.one(get, agentId, key)),
  insert: Kit.op("memory.insert", (row: MemoryRecordRow) =>
    Kit.one(
      insert,
      row.id,
      row.agentId,
      row.kind,
      row.key,
      row.value,
      row.expiresAt,
      row.createdAt,
      row.updatedAt,
      row.version
    ).map((id) => id !== undefined)
  ),
  replace: Kit.op(
    "memory.replace",
    (row: MemoryRecordRow, previous: { readonly id: string; readonly version: number }) =>
      Kit.one(
        replace,
        row.id,
        row.kind,
        row.value,
        row.expiresAt,
        row.createdAt,
        row.updatedAt,
        row.version,
        row.agentId,
        row.key,
        previous.id,
        previous.version
      ).map((id) => id !== undefined)
  ),
  list: Kit.op("memory.list", list),
  delete: Kit.op("memory.delete", (agentId: string, key: string) => Kit.exec(remove, agentId, key)),
  deleteExpired: Kit.op("memory.deleteExpired", (now: number, batch: number) =>
    Kit.all(deleteExpired, now, batch, now).map((ids) => ids.length)
  )
}

/** An `AgentMemoryDriver` on the SQL backend in context. */
export const driver: Effect.Effect<AgentMemoryDriver, StorageError, SqlClient | Kit.SqlTables> = Kit.driver(ops)

/** `AgentMemoryStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const layerWith = (options: Kit.SqlOptions = {}): Layer.Layer<AgentMemoryStore, StorageError, SqlClient> =>
  Layer.effect(AgentMemoryStore, Effect.map(driver, makeAgentMemoryStore)).pipe(
    Layer.provide(Kit.migrations(schema, options))
  )

/** `AgentMemoryStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<AgentMemoryStore, StorageError, SqlClient> = layerWith()
