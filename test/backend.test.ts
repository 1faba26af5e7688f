/**
 * `StorageBackend`: the guarantees table covers every store of the catalogue (and every registry entry), renders
 * as one Markdown table, and each backend layer reports what its connection does; `{ mode: "production" }`
 * refuses memory, SQLite `:memory:` and, when power-loss durability is asked for, SQLite `synchronous = normal`,
 * with an error naming the option to change.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  authoritativeStores,
  backendsMarkdown,
  checkMode,
  guarantees,
  guaranteesMarkdown,
  StorageBackend
} from "../src/Backend.ts"
import { registry } from "../layers/Registry.ts"
import * as Backend from "../layers/StorageBackend.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { pgReady, pgUrl } from "./pg.ts"

/** Every service of the DESIGN.md catalogue that holds or moves data. */
const catalogue = [
  "SessionStore",
  "ConversationStore",
  "TaskStore",
  "AgentStateStore",
  "PlanStore",
  "TemplateStore",
  "LockStore",
  "ImageStore",
  "MemoryMessageStore",
  "SummaryStore",
  "FactStore",
  "MentalModelStore",
  "TierMetadataStore",
  "Embeddings",
  "EventStore",
  "StateStore",
  "CheckpointStore",
  "VectorStore",
  "ConfigStore",
  "AgentMemoryStore",
  "AuditLogStore",
  "TraceStore",
  "SessionBroker"
]

const dir = mkdtempSync(join(tmpdir(), "agent-stores-backend-"))
const file = (name: string) => join(dir, `${name}.db`)

/** The info a layer provides, or the error its build fails with. */
const build = <E>(layer: Layer.Layer<StorageBackend, E>) => Effect.either(Effect.provide(StorageBackend, layer))

describe("StorageBackend guarantees", () => {
  it("cover every store of the catalogue and every registry entry, once each, every cell filled", () => {
    expect(guarantees.map((g) => g.store).sort()).toEqual([...catalogue].sort())
    for (const store of registry) expect(catalogue).toContain(store.tag.key.replace(/^.*\//, ""))
    for (const g of guarantees) {
      for (const value of Object.values(g)) expect(typeof value === "string" && value.length > 0).toBe(true)
      expect(["authoritative", "primary", "cache", "coordination"]).toContain(g.role)
    }
    expect(authoritativeStores).toEqual(["EventStore", "AuditLogStore"])
  })

  it("render as one Markdown table generated from the same data", () => {
    const table = guaranteesMarkdown()
    const lines = table.split("\n")
    expect(lines).toHaveLength(guarantees.length + 2)
    expect(lines[0]).toBe("| Store | Role | Atomicity | Ordering | Durability | Across processes |")
    for (const [i, g] of guarantees.entries()) expect(lines[i + 2]).toContain(`| \`${g.store}\` | ${g.role} |`)
    expect(lines.every((line) => line.split(/(?<!\\)\|/).length === 8)).toBe(true)
    expect(guaranteesMarkdown([{ ...guarantees[0]!, ordering: "a | b" }])).toContain("a \\| b")
  })
})

describe("StorageBackend layers", () => {
  it.effect("memory: not durable; production refuses it, naming the authoritative stores and the fix", () =>
    Effect.gen(function* () {
      const info = yield* Effect.provide(StorageBackend, Backend.memory)
      expect(info).toMatchObject({ name: "memory", dialect: "memory", durable: false, powerLossDurable: false })
      expect(info.tablePrefix).toEqual(Option.none())
      expect(info.guarantees).toBe(guarantees)
      expect((yield* build(Backend.layerMemory())).pipe((e) => e._tag)).toBe("Right")
      const refused = yield* build(Backend.layerMemory({ mode: "production" }))
      expect(refused._tag).toBe("Left")
      const message = refused._tag === "Left" ? refused.left.message : ""
      expect(message).toContain("EventStore and AuditLogStore are authoritative")
      expect(message).toContain('drop mode: "production"')
      expect(message).toContain("StoresSqlite")
    })
  )

  it.effect(
    "SQLite file, synchronous normal: durable, not power-loss durable; production with power-loss refused",
    () =>
      Effect.gen(function* () {
        const sqlite = SqliteDatabase.layer({ filename: file("normal") })
        const info = yield* Effect.provide(StorageBackend, Backend.layerSqlite().pipe(Layer.provide(sqlite)))
        expect(info).toMatchObject({ name: "sqlite", dialect: "sqlite", durable: true, powerLossDurable: false })
        expect(info.serverVersion).toMatch(/^SQLite 3\.\d+/)
        expect(info.tablePrefix).toEqual(Option.some("agent"))
        expect(info.durability).toContain("synchronous = NORMAL")
        const production = yield* build(Backend.layerSqlite({ mode: "production" }).pipe(Layer.provide(sqlite)))
        expect(production._tag).toBe("Right")
        const refused = yield* build(
          Backend.layerSqlite({ mode: "production", durability: "power-loss" }).pipe(Layer.provide(sqlite))
        )
        expect(refused._tag === "Left" && refused.left).toMatchObject({ _tag: "StorageError", operation: "mode" })
        expect(refused._tag === "Left" ? refused.left.message : "").toContain('set `synchronous: "full"`')
        // Without mode "production" nothing is checked.
        expect((yield* build(Backend.layerSqlite({ durability: "power-loss" }).pipe(Layer.provide(sqlite))))._tag).toBe(
          "Right"
        )
      })
  )

  it.effect('SQLite file, synchronous "full": power-loss durable, production with power-loss accepted', () =>
    Effect.gen(function* () {
      const sqlite = SqliteDatabase.layer({ filename: file("full"), synchronous: "full" })
      const info = yield* Effect.provide(
        StorageBackend,
        Backend.layerSql({ mode: "production", durability: "power-loss", tablePrefix: "p1" }).pipe(
          Layer.provide(sqlite)
        )
      )
      expect(info).toMatchObject({ name: "sqlite", durable: true, powerLossDurable: true })
      expect(info.tablePrefix).toEqual(Option.some("p1"))
      expect(info.durability).toContain("synchronous = FULL")
    })
  )

  it.effect("SQLite :memory: is not durable: production refuses it", () =>
    Effect.gen(function* () {
      const sqlite = SqliteDatabase.layer({ filename: ":memory:" })
      const info = yield* Effect.provide(StorageBackend, Backend.layerSqlite().pipe(Layer.provide(sqlite)))
      expect(info).toMatchObject({ durable: false, powerLossDurable: false })
      const refused = yield* build(Backend.layerSqlite({ mode: "production" }).pipe(Layer.provide(sqlite)))
      expect(refused._tag === "Left" ? refused.left.message : "").toContain("non-durable database")
    })
  )

  it.effect("layerSql over a caller's own SQLite SqlClient reads the same facts", () =>
    Effect.gen(function* () {
      const client = SqliteClient.layer({ filename: file("client") })
      const info = yield* Effect.provide(StorageBackend, Backend.layerSql().pipe(Layer.provide(client)))
      expect(info).toMatchObject({ name: "sqlite", durable: true })
      expect(checkMode(info, { mode: "production" })._tag).toBe("Right")
    })
  )

  it("backendsMarkdown renders one row per backend", () => {
    const table = backendsMarkdown([
      {
        name: "memory",
        dialect: "memory",
        durable: false,
        powerLossDurable: false,
        serverVersion: "in-process",
        tablePrefix: Option.none(),
        durability: "d",
        concurrency: "c",
        guarantees
      }
    ])
    expect(table.split("\n")[2]).toBe("| memory | in-process | no | no | d | c |")
  })
})

const unreachable = await pgReady("StorageBackend on PostgreSQL")
if (unreachable !== undefined) {
  describe.skip("StorageBackend (postgres)", () => it("needs a reachable server", () => {}))
} else {
  describe("StorageBackend (postgres)", () => {
    it.effect("reports the server's version and durability settings; production follows them", () =>
      Effect.gen(function* () {
        const database = PgDatabase.layer({ url: pgUrl })
        const settings = yield* Effect.provide(
          Effect.flatMap(SqlClient, (sql) =>
            sql.unsafe<{ f: string; s: string }>(
              "SELECT current_setting('fsync') AS f, current_setting('synchronous_commit') AS s"
            )
          ),
          database
        )
        const powerLoss = settings[0]!.f === "on" && settings[0]!.s !== "off"
        for (const layer of [Backend.layerPg({ tablePrefix: "x" }), Backend.layerSql({ tablePrefix: "x" })]) {
          const info = yield* Effect.provide(StorageBackend, layer.pipe(Layer.provide(database)))
          expect(info).toMatchObject({ name: "postgres", dialect: "pg", durable: true, powerLossDurable: powerLoss })
          expect(info.serverVersion).toMatch(/^PostgreSQL \d+/)
          expect(info.tablePrefix).toEqual(Option.some("x"))
        }
        const production = yield* build(
          Backend.layerPg({ mode: "production", durability: "power-loss" }).pipe(Layer.provide(database))
        )
        expect(production._tag).toBe(powerLoss ? "Right" : "Left")
      })
    )
  })
}
