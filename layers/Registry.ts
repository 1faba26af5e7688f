/**
 * The one list of stores. The bundles (`StoresMemory`, `StoresSqlite`,
 * `StoresPg`, `StoresFromConfig`), the migrations, the test runners and the
 * PostgreSQL test clean-up all derive from it. Adding a store: its `src/`
 * module, its memory layer, its SQL module, its contract suite, and one entry
 * here.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type { Context, Layer } from "effect"
import type { StorageError } from "../src/Errors.ts"
import type { MemoryDatabase } from "./memory/MemoryDatabase.ts"
import * as MemoryAgentMemoryStore from "./memory/MemoryAgentMemoryStore.ts"
import * as MemoryConfigStore from "./memory/MemoryConfigStore.ts"
import * as MemoryConversationStore from "./memory/MemoryConversationStore.ts"
import * as MemoryPlanStore from "./memory/MemoryPlanStore.ts"
import * as MemorySessionStore from "./memory/MemorySessionStore.ts"
import * as MemoryTaskStore from "./memory/MemoryTaskStore.ts"
import * as Kit from "./sql/Kit.ts"
import * as SqlAgentMemoryStore from "./sql/SqlAgentMemoryStore.ts"
import * as SqlConfigStore from "./sql/SqlConfigStore.ts"
import * as SqlConversationStore from "./sql/SqlConversationStore.ts"
import * as SqlPlanStore from "./sql/SqlPlanStore.ts"
import * as SqlSessionStore from "./sql/SqlSessionStore.ts"
import * as SqlTaskStore from "./sql/SqlTaskStore.ts"
import { AgentMemoryStore } from "../src/AgentMemory.ts"
import { ConfigStore } from "../src/Config.ts"
import { ConversationStore } from "../src/Conversation.ts"
import { PlanStore, TemplateStore } from "../src/Plan.ts"
import { SessionStore } from "../src/Session.ts"
import { AgentStateStore, TaskStore } from "../src/Task.ts"

/** A store as the registry knows it: its tag, its memory layer, its SQL layer and its SQL schema. */
export interface StoreEntry<I, S> {
  readonly tag: Context.Tag<I, S>
  /** Built over a shared `MemoryDatabase`, so cascades cross stores. */
  readonly memory: Layer.Layer<I, never, MemoryDatabase>
  /** Built over the `SqlClient` in context (and `SqliteDatabase`, when there). */
  readonly sql: (options: Kit.SqlOptions) => Layer.Layer<I, StorageError, SqlClient>
  readonly schema: Kit.SqlSchema
}

const entry = <I, S>(store: StoreEntry<I, S>): StoreEntry<I, S> => store

/** Every store, parents before the stores that reference them. */
export const registry = [
  entry({
    tag: SessionStore,
    memory: MemorySessionStore.layerWithDatabase,
    sql: SqlSessionStore.layerWith,
    schema: SqlSessionStore.schema
  }),
  entry({
    tag: ConversationStore,
    memory: MemoryConversationStore.layerWithDatabase,
    sql: SqlConversationStore.layerWith,
    schema: SqlConversationStore.schema
  }),
  entry({
    tag: TaskStore,
    memory: MemoryTaskStore.layerWithDatabase,
    sql: SqlTaskStore.layerWith,
    schema: SqlTaskStore.schema
  }),
  entry({
    tag: AgentStateStore,
    memory: MemoryTaskStore.agentStateLayerWithDatabase,
    sql: SqlTaskStore.agentStateLayerWith,
    schema: SqlTaskStore.schema
  }),
  entry({
    tag: PlanStore,
    memory: MemoryPlanStore.planLayerWithDatabase,
    sql: SqlPlanStore.planLayerWith,
    schema: SqlPlanStore.planSchema
  }),
  entry({
    tag: TemplateStore,
    memory: MemoryPlanStore.templateLayerWithDatabase,
    sql: SqlPlanStore.templateLayerWith,
    schema: SqlPlanStore.templateSchema
  }),
  entry({
    tag: ConfigStore,
    memory: MemoryConfigStore.layerWithDatabase,
    sql: SqlConfigStore.layerWith,
    schema: SqlConfigStore.schema
  }),
  entry({
    tag: AgentMemoryStore,
    memory: MemoryAgentMemoryStore.layerWithDatabase,
    sql: SqlAgentMemoryStore.layerWith,
    schema: SqlAgentMemoryStore.schema
  })
] as const

/** The services every bundle provides: one per registry entry. */
export type Stores = Context.Tag.Identifier<(typeof registry)[number]["tag"]>

/** Every SQL schema the registry's stores use, each after the schemas it requires. */
export const schemas: ReadonlyArray<Kit.SqlSchema> = (() => {
  const found = new Map<string, Kit.SqlSchema>()
  const visit = (schema: Kit.SqlSchema): void => {
    schema.requires.forEach(visit)
    found.set(schema.name, schema)
  }
  registry.forEach((store) => visit(store.schema))
  return [...found.values()]
})()

/** The migrations table of each schema for `prefix`. */
export const migrationTables = (prefix: string = Kit.defaultPrefix): ReadonlyArray<string> =>
  schemas.map((schema) => `${prefix}_${schema.name}_migrations`)

/**
 * Every table the stores of `prefix` may use (the kernel's and the migrations tables included), children first:
 * what a clean-up drops.
 */
export const tablesOf = (prefix: string = Kit.defaultPrefix): ReadonlyArray<string> =>
  [Kit.kernel, ...schemas]
    .flatMap((schema) => [...schema.tables.map((table) => `${prefix}_${table}`), `${prefix}_${schema.name}_migrations`])
    .reverse()
