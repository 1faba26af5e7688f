/**
 * The bundle wiring proposed for `layers/Stores.ts`: the stores' SQL layers with the `StorageBackend` provided
 * first (`Layer.provideMerge`), so `{ mode: "production" }` refuses a backend before any migration runs: the
 * refused database holds no table afterwards. Also: a bundle built this way provides `StorageBackend` beside
 * the stores.
 */
import { describe, expect, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import { Effect, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type ModeOptions, StorageBackend } from "../src/Backend.ts"
import { ConversationStore } from "../src/Conversation.ts"
import { ImageStore } from "../src/Image.ts"
import * as MemoryConversationStore from "../layers/memory/MemoryConversationStore.ts"
import { MemoryDatabase } from "../layers/memory/MemoryDatabase.ts"
import * as MemoryImageStore from "../layers/memory/MemoryImageStore.ts"
import type { SqlOptions } from "../layers/sql/Kit.ts"
import * as SqlConversationStore from "../layers/sql/SqlConversationStore.ts"
import * as SqlImageStore from "../layers/sql/SqlImageStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as Backend from "../layers/StorageBackend.ts"

/** The proposed `StoresSql`, over two stores: the backend (checked) is built before the stores migrate. */
const storesSql = (options: SqlOptions & ModeOptions) =>
  Layer.mergeAll(SqlImageStore.layerWith(options), SqlConversationStore.layerWith(options)).pipe(
    Layer.provideMerge(Backend.layerSql(options))
  )

/** The proposed `StoresSqlite`. */
const storesSqlite = (options: SqliteDatabase.SqliteOptions & SqlOptions & ModeOptions) =>
  storesSql(options).pipe(Layer.provideMerge(SqliteDatabase.layer(options)))

/** The proposed `StoresMemory` with a mode. */
const storesMemory = (options: ModeOptions) =>
  Layer.mergeAll(MemoryImageStore.layerWithDatabase, MemoryConversationStore.layerWithDatabase).pipe(
    Layer.provide(MemoryDatabase.layer),
    Layer.provideMerge(Backend.layerMemory(options))
  )

const tables = (filename: string): ReadonlyArray<string> => {
  const db = new Sqlite(filename, { readonly: true })
  try {
    return db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as Array<string>
  } finally {
    db.close()
  }
}

describe("bundles with StorageBackend", () => {
  it.effect("production with power-loss durability refuses SQLite synchronous normal before any table exists", () =>
    Effect.gen(function* () {
      const filename = join(mkdtempSync(join(tmpdir(), "agent-stores-bundle-")), "refused.db")
      const exit = yield* Effect.either(
        Effect.provide(ImageStore, storesSqlite({ filename, mode: "production", durability: "power-loss" }))
      )
      expect(exit._tag).toBe("Left")
      expect(exit._tag === "Left" ? exit.left.message : "").toContain('set `synchronous: "full"`')
      expect(tables(filename)).toEqual([])
    })
  )

  it.effect('the same bundle with synchronous "full" builds and provides StorageBackend beside the stores', () =>
    Effect.gen(function* () {
      const filename = join(mkdtempSync(join(tmpdir(), "agent-stores-bundle-")), "full.db")
      const options = { filename, synchronous: "full", mode: "production", durability: "power-loss" } as const
      const [backend, ref] = yield* Effect.provide(
        Effect.all([StorageBackend, Effect.flatMap(ImageStore, (images) => images.put(new Uint8Array([1, 2, 3])))]),
        storesSqlite(options)
      )
      expect(backend).toMatchObject({ name: "sqlite", powerLossDurable: true })
      expect(ref.size).toBe(3)
      expect(tables(filename)).toContain("agent_images")
    })
  )

  it.effect("production refuses the memory bundle; development builds it", () =>
    Effect.gen(function* () {
      const refused = yield* Effect.either(Effect.provide(ConversationStore, storesMemory({ mode: "production" })))
      expect(refused._tag === "Left" ? refused.left.operation : "").toBe("mode")
      const backend = yield* Effect.provide(StorageBackend, storesMemory({}))
      expect(backend.durable).toBe(false)
    })
  )
})
