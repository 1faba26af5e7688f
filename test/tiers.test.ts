/**
 * The memory tier stores on every backend (memory, SQLite `:memory:`, a
 * SQLite file, PostgreSQL): their contract suites, and "nothing orphaned":
 * after a conversation's memory is deleted, every tier table holds only the
 * other conversation's rows (counted in the backend's own tables).
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import postgres from "postgres"
import * as MemoryTierStores from "../layers/memory/MemoryTierStores.ts"
import { MemoryDatabase } from "../layers/memory/MemoryDatabase.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlTierStores from "../layers/sql/SqlTierStores.ts"
import * as Embeddings from "../src/Embeddings.ts"
import { FactStore, MemoryMessageStore, MentalModelStore, SummaryStore, TierMetadataStore } from "../src/Memory.ts"
import { onEveryBackend } from "./backends.ts"
import { pgReady, pgUrl } from "./pg.ts"
import { suite } from "./suites/MemoryTierStores.ts"

const embeddings = Embeddings.layerLocal()

await onEveryBackend(
  {
    memory: MemoryTierStores.layerWithDatabase.pipe(Layer.provide(embeddings)),
    sql: (options) => SqlTierStores.layerWith(options).pipe(Layer.provide(embeddings)),
    schemas: [SqlTierStores.schema]
  },
  ({ label, layer }) => suite(label, layer)
)

/** The tier tables as the SQL schema names them, and the memory backend's tables and maps. */
const tables = SqlTierStores.schema.tables
const memoryTables: Record<string, string> = {
  tier_metadata: "tier_metadata",
  tier_messages: "tier_messages",
  tier_summaries: "tier_summaries",
  tier_facts: "tier_facts",
  tier_mental_models: "tier_mental_models"
}

type Counts = Readonly<Record<string, number>>

/** Fills two conversations' memory, deletes the first's, and returns the row counts before and after. */
const scenario = <R>(counts: Effect.Effect<Counts, unknown, R>) =>
  Effect.gen(function* () {
    const messages = yield* MemoryMessageStore
    const summaries = yield* SummaryStore
    const facts = yield* FactStore
    const models = yield* MentalModelStore
    const tiers = yield* TierMetadataStore
    const fill = (conversationId: string) =>
      Effect.gen(function* () {
        const added = yield* messages.addMany(
          Array.from({ length: 5 }, (_, i) => ({ conversationId, role: "user" as const, content: `message ${i}` }))
        )
        const summary = yield* summaries.add({ conversationId, fromSeq: 1, toSeq: 4, content: "summary" })
        const fact = yield* facts.add({
          conversationId,
          content: "a fact",
          importance: 0.7,
          sourceMessageIds: added.map((m) => m.id)
        })
        const model = yield* models.add({ name: `model of ${conversationId}`, content: "a model" })
        yield* models.update(model.id, { content: "a better model" })
        yield* tiers.addMany([
          ...added.map((m) => ({ itemId: m.id })),
          { itemId: summary.id, tier: "warm" as const },
          { itemId: fact.id, tier: "cold" as const },
          { itemId: model.id, tier: "mental_model" as const }
        ])
        return model.id
      })
    const gone = yield* fill("conversation-a")
    yield* fill("conversation-b")
    const before = yield* counts
    expect(yield* messages.deleteByConversation("conversation-a")).toBe(5)
    expect(yield* summaries.deleteByConversation("conversation-a")).toBe(1)
    expect(yield* facts.deleteByConversation("conversation-a")).toBe(1)
    expect(yield* models.delete(gone)).toBe(true)
    return { before, after: yield* counts }
  })

const expected = {
  before: {
    tier_metadata: 16,
    tier_messages: 10,
    tier_summaries: 2,
    tier_facts: 2,
    tier_mental_models: 2,
    tier_mental_model_versions: 4
  },
  after: {
    tier_metadata: 8,
    tier_messages: 5,
    tier_summaries: 1,
    tier_facts: 1,
    tier_mental_models: 1,
    tier_mental_model_versions: 2
  }
}

const sqlCounts = (prefix: string) =>
  Effect.flatMap(SqlClient, (sql) =>
    Effect.map(
      Effect.forEach(tables, (table) =>
        Effect.map(sql.unsafe<{ n: number }>(`SELECT count(*) AS n FROM "${prefix}_${table}"`), (rows) => [
          table,
          Number(rows[0]!.n)
        ])
      ),
      (entries) => Object.fromEntries(entries) as Counts
    )
  )

describe("memory tiers: deleting a conversation's memory orphans nothing", () => {
  it.effect("memory", () =>
    Effect.gen(function* () {
      const db = yield* MemoryDatabase
      const counts = Effect.sync(() => {
        const result: Record<string, number> = {}
        for (const [table, name] of Object.entries(memoryTables)) {
          result[table] = Array.from(db.table(name, () => []).values()).length
        }
        const versions = db.map<string, ReadonlyArray<unknown>>("tier_mental_model_versions")
        result.tier_mental_model_versions = Array.from(versions.values()).reduce((n, v) => n + v.length, 0)
        expect(db.map("tier_mental_model_names").size).toBe(result.tier_mental_models)
        return result as Counts
      })
      expect(yield* scenario(counts)).toEqual(expected)
    }).pipe(
      Effect.provide(
        MemoryTierStores.layerWithDatabase.pipe(Layer.provideMerge(MemoryDatabase.layer), Layer.provide(embeddings))
      )
    )
  )

  it.effect("sqlite", () =>
    scenario(sqlCounts("agent")).pipe(
      Effect.tap((result) => Effect.sync(() => expect(result).toEqual(expected))),
      Effect.provide(
        SqlTierStores.layerWith().pipe(
          Layer.provide(embeddings),
          Layer.provideMerge(SqliteDatabase.layer({ filename: ":memory:" }))
        )
      )
    )
  )

  it.effect("sqlite, through the SqlClient runner", () =>
    scenario(sqlCounts("client")).pipe(
      Effect.tap((result) => Effect.sync(() => expect(result).toEqual(expected))),
      Effect.provide(
        SqlTierStores.layerWith({ tablePrefix: "client" }).pipe(
          Layer.provide(embeddings),
          // Only the SqlClient: the kit runs the statements through it, as it does for a caller's own client.
          Layer.provideMerge(
            Layer.effect(SqlClient, SqlClient).pipe(Layer.provide(SqliteDatabase.layer({ filename: ":memory:" })))
          )
        )
      )
    )
  )
})

const unreachable = await pgReady("PostgreSQL (memory tiers, row counts)")
if (unreachable !== undefined) {
  describe.skip("memory tiers on PostgreSQL: nothing orphaned", () => it("needs a reachable server", () => {}))
} else {
  const tablePrefix = `o${process.pid}_${Date.now().toString(36)}`
  afterAll(async () => {
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const table of [...tables].reverse())
        await sql.unsafe(`DROP TABLE IF EXISTS "${tablePrefix}_${table}" CASCADE`)
      for (const table of ["memory_tiers_migrations", "counters", "kernel_migrations"]) {
        await sql.unsafe(`DROP TABLE IF EXISTS "${tablePrefix}_${table}" CASCADE`)
      }
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
  describe("memory tiers on PostgreSQL: nothing orphaned", () => {
    it.effect("postgres", () =>
      scenario(sqlCounts(tablePrefix)).pipe(
        Effect.tap((result) => Effect.sync(() => expect(result).toEqual(expected))),
        Effect.provide(
          SqlTierStores.layerWith({ tablePrefix }).pipe(
            Layer.provide(embeddings),
            Layer.provideMerge(PgDatabase.layer({ url: pgUrl }))
          )
        )
      )
    )
  })
}

describe("memory tiers: a search scores only the items its embedding model embedded", () => {
  /** Two message stores on one database, embedding with models of different dimensions. */
  const check = <R>(small: Layer.Layer<MemoryMessageStore, unknown, R>) =>
    Effect.gen(function* () {
      const smallStore = yield* Effect.provide(MemoryMessageStore, small)
      const large = yield* MemoryMessageStore
      const old = yield* smallStore.add({ conversationId: "c", role: "user", content: "the parcel is late" })
      const current = yield* large.add({ conversationId: "c", role: "user", content: "the parcel is late" })
      expect((yield* large.search("parcel late", { conversationId: "c" })).map((h) => h.item.id)).toEqual([current.id])
      expect((yield* smallStore.search("parcel late", { conversationId: "c" })).map((h) => h.item.id)).toEqual([old.id])
      expect((yield* large.listByConversation("c")).items.map((m) => m.id)).toEqual([old.id, current.id])
    })
  const smallEmbeddings = Embeddings.layerLocal({ dimension: 64 })

  it.effect("memory", () =>
    Effect.flatMap(MemoryDatabase, (db) =>
      check(
        MemoryTierStores.messageLayerWithDatabase.pipe(
          Layer.provide(smallEmbeddings),
          Layer.provide(Layer.succeed(MemoryDatabase, db))
        )
      )
    ).pipe(
      Effect.provide(
        MemoryTierStores.messageLayerWithDatabase.pipe(
          Layer.provideMerge(MemoryDatabase.layer),
          Layer.provide(embeddings)
        )
      )
    )
  )

  it.effect("sqlite", () =>
    check(SqlTierStores.messageLayerWith().pipe(Layer.provide(smallEmbeddings))).pipe(
      Effect.provide(
        SqlTierStores.messageLayerWith().pipe(
          Layer.provide(embeddings),
          Layer.provideMerge(SqliteDatabase.layer({ filename: ":memory:" }))
        )
      )
    )
  )
})
