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
import * as MemoryAuditLogStore from "./memory/MemoryAuditLogStore.ts"
import * as MemoryCheckpointStore from "./memory/MemoryCheckpointStore.ts"
import * as MemoryConfigStore from "./memory/MemoryConfigStore.ts"
import * as MemoryConversationStore from "./memory/MemoryConversationStore.ts"
import * as MemoryEventStore from "./memory/MemoryEventStore.ts"
import * as MemoryImageStore from "./memory/MemoryImageStore.ts"
import * as MemoryLockStore from "./memory/MemoryLockStore.ts"
import * as MemoryPlanStore from "./memory/MemoryPlanStore.ts"
import * as MemorySessionStore from "./memory/MemorySessionStore.ts"
import * as MemoryStateStore from "./memory/MemoryStateStore.ts"
import * as MemoryTaskStore from "./memory/MemoryTaskStore.ts"
import * as MemoryTierStores from "./memory/MemoryTierStores.ts"
import * as MemoryTraceStore from "./memory/MemoryTraceStore.ts"
import * as MemoryVectorStore from "./memory/MemoryVectorStore.ts"
import * as Kit from "./sql/Kit.ts"
import * as SqlAgentMemoryStore from "./sql/SqlAgentMemoryStore.ts"
import * as SqlAuditLogStore from "./sql/SqlAuditLogStore.ts"
import * as SqlCheckpointStore from "./sql/SqlCheckpointStore.ts"
import * as SqlConfigStore from "./sql/SqlConfigStore.ts"
import * as SqlConversationStore from "./sql/SqlConversationStore.ts"
import * as SqlEventStore from "./sql/SqlEventStore.ts"
import * as SqlImageStore from "./sql/SqlImageStore.ts"
import * as SqlLockStore from "./sql/SqlLockStore.ts"
import * as SqlPlanStore from "./sql/SqlPlanStore.ts"
import * as SqlSessionStore from "./sql/SqlSessionStore.ts"
import * as SqlStateStore from "./sql/SqlStateStore.ts"
import * as SqlTaskStore from "./sql/SqlTaskStore.ts"
import * as SqlTierStores from "./sql/SqlTierStores.ts"
import * as SqlTraceStore from "./sql/SqlTraceStore.ts"
import * as SqlVectorStore from "./sql/SqlVectorStore.ts"
import { AgentMemoryStore } from "../src/AgentMemory.ts"
import { AuditLogStore } from "../src/Audit.ts"
import type { StorageBackend } from "../src/Backend.ts"
import type { SessionBroker } from "../src/Broker.ts"
import { ConfigStore } from "../src/Config.ts"
import { ConversationStore } from "../src/Conversation.ts"
import type { Embeddings } from "../src/Embeddings.ts"
import { EventStore } from "../src/Event.ts"
import { ImageStore } from "../src/Image.ts"
import { LockStore } from "../src/Lock.ts"
import { FactStore, MemoryMessageStore, MentalModelStore, SummaryStore, TierMetadataStore } from "../src/Memory.ts"
import { PlanStore, TemplateStore } from "../src/Plan.ts"
import { SessionStore } from "../src/Session.ts"
import { CheckpointStore, StateStore } from "../src/State.ts"
import { AgentStateStore, TaskStore } from "../src/Task.ts"
import { TraceStore } from "../src/Trace.ts"
import { VectorStore } from "../src/Vector.ts"

/** A store as the registry knows it: its tag, its memory layer, its SQL layer and its SQL schema. */
export interface StoreEntry<I, S> {
  readonly tag: Context.Tag<I, S>
  /** Built over a shared `MemoryDatabase`, so cascades cross stores (and the bundle's `Embeddings`). */
  readonly memory: Layer.Layer<I, never, MemoryDatabase | Embeddings>
  /** Built over the `SqlClient` in context (and `SqliteDatabase`, when there; and the bundle's `Embeddings`). */
  readonly sql: (options: Kit.SqlOptions) => Layer.Layer<I, StorageError, SqlClient | Embeddings>
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
  }),
  entry({
    tag: EventStore,
    memory: MemoryEventStore.layerWithDatabase,
    sql: SqlEventStore.layerWith,
    schema: SqlEventStore.schema
  }),
  entry({
    tag: StateStore,
    memory: MemoryStateStore.layerWithDatabase,
    sql: SqlStateStore.layerWith,
    schema: SqlStateStore.schema
  }),
  entry({
    tag: CheckpointStore,
    memory: MemoryCheckpointStore.layerWithDatabase,
    sql: SqlCheckpointStore.layerWith,
    schema: SqlCheckpointStore.schema
  }),
  entry({
    tag: AuditLogStore,
    memory: MemoryAuditLogStore.layerWithDatabase,
    sql: SqlAuditLogStore.layerWith,
    schema: SqlAuditLogStore.schema
  }),
  entry({
    tag: TraceStore,
    memory: MemoryTraceStore.layerWithDatabase,
    sql: SqlTraceStore.layerWith,
    schema: SqlTraceStore.schema
  }),
  entry({
    tag: LockStore,
    memory: MemoryLockStore.layerWithDatabase,
    sql: SqlLockStore.layerWith,
    schema: SqlLockStore.schema
  }),
  entry({
    tag: ImageStore,
    memory: MemoryImageStore.layerWithDatabase,
    sql: SqlImageStore.layerWith,
    schema: SqlImageStore.schema
  }),
  entry({
    tag: VectorStore,
    memory: MemoryVectorStore.layerWithDatabase,
    sql: SqlVectorStore.layerWith,
    schema: SqlVectorStore.schema
  }),
  entry({
    tag: MemoryMessageStore,
    memory: MemoryTierStores.messageLayerWithDatabase,
    sql: SqlTierStores.messageLayerWith,
    schema: SqlTierStores.schema
  }),
  entry({
    tag: SummaryStore,
    memory: MemoryTierStores.summaryLayerWithDatabase,
    sql: SqlTierStores.summaryLayerWith,
    schema: SqlTierStores.schema
  }),
  entry({
    tag: FactStore,
    memory: MemoryTierStores.factLayerWithDatabase,
    sql: SqlTierStores.factLayerWith,
    schema: SqlTierStores.schema
  }),
  entry({
    tag: MentalModelStore,
    memory: MemoryTierStores.mentalModelLayerWithDatabase,
    sql: SqlTierStores.mentalModelLayerWith,
    schema: SqlTierStores.schema
  }),
  entry({
    tag: TierMetadataStore,
    memory: MemoryTierStores.tierMetadataLayerWithDatabase,
    sql: SqlTierStores.tierMetadataLayerWith,
    schema: SqlTierStores.schema
  })
] as const

/** The stores of the registry: one per entry. */
export type RegistryStores = Context.Tag.Identifier<(typeof registry)[number]["tag"]>

/**
 * The services every bundle provides: the registry's stores, the `SessionBroker` over them, the `Embeddings` the
 * memory tiers use, and the `StorageBackend` description.
 */
export type Stores = RegistryStores | SessionBroker | Embeddings | StorageBackend

/**
 * `roots` and the schemas they require, the kernel's first and each after the schemas it requires. Two different
 * schemas of one name would share a migrations table: that throws.
 */
export const withRequired = (roots: ReadonlyArray<Kit.SqlSchema>): ReadonlyArray<Kit.SqlSchema> => {
  const found = new Map<string, Kit.SqlSchema>()
  const visit = (schema: Kit.SqlSchema): void => {
    const known = found.get(schema.name)
    if (known === schema) return
    if (known !== undefined) throw new Error(`two SQL schemas are named "${schema.name}"`)
    schema.requires.forEach(visit)
    found.set(schema.name, schema)
  }
  visit(Kit.kernel)
  roots.forEach(visit)
  return [...found.values()]
}

/** Every SQL schema the registry's stores use, ordered as `withRequired` orders them (checked at import). */
export const schemas: ReadonlyArray<Kit.SqlSchema> = withRequired(registry.map((store) => store.schema))

/** The migrations table of each schema for `prefix`. */
export const migrationTables = (prefix: string = Kit.defaultPrefix): ReadonlyArray<string> =>
  schemas.map((schema) => `${prefix}_${schema.name}_migrations`)

/**
 * Every table of `of` (default: the registry's schemas, the kernel's and the migrations tables included) under
 * `prefix`, children first: what a clean-up drops.
 */
export const tablesOf = (
  prefix: string = Kit.defaultPrefix,
  of: ReadonlyArray<Kit.SqlSchema> = schemas
): ReadonlyArray<string> =>
  of
    .flatMap((schema) => [...schema.tables.map((table) => `${prefix}_${table}`), `${prefix}_${schema.name}_migrations`])
    .reverse()
