/** `StoresFromConfig`, table prefixes and `MessageLimits`: the knobs users turn. */
import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { StoresFromConfig, StoresMemory, StoresSqlite } from "../layers/Stores.ts"
import { ConversationStore } from "../src/Conversation.ts"
import { MessageLimits } from "../src/Message.ts"
import { SessionStore } from "../src/Session.ts"

const withEnv = (env: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("StoresFromConfig", () => {
  it.effect("selects the memory backend", () =>
    Effect.gen(function* () {
      const sessions = yield* SessionStore
      const created = yield* sessions.create({ title: "in memory" })
      expect((yield* sessions.get(created.id)).title).toBe("in memory")
    }).pipe(Effect.provide(StoresFromConfig.pipe(Layer.provide(withEnv({ AGENT_STORES_BACKEND: "memory" })))))
  )

  it.effect("selects SQLite on the given file with the given table prefix", () => {
    const filename = join(mkdtempSync(join(tmpdir(), "agent-stores-config-")), "config.db")
    return Effect.gen(function* () {
      const sessions = yield* SessionStore
      yield* sessions.save("from-config", [{ role: "user", parts: [{ type: "text", text: "hi" }] }])
      const sql = yield* SqlClient
      const rows = yield* sql<{ id: string }>`SELECT id FROM myapp_sessions`
      expect(rows.map((row) => row.id)).toEqual(["from-config"])
    }).pipe(
      Effect.provide(
        Layer.merge(
          StoresFromConfig,
          StoresSqlite({ filename, tablePrefix: "myapp" }) // same file: proves the configured prefix was used
        ).pipe(
          Layer.provide(
            withEnv({
              AGENT_STORES_BACKEND: "sqlite",
              AGENT_STORES_URL: filename,
              AGENT_STORES_TABLE_PREFIX: "myapp",
              DATABASE_URL: "postgres://somewhere-else/db"
            })
          )
        )
      )
    )
  })

  it.effect("postgres takes DATABASE_URL as a fallback; no URL or an unknown backend is a StorageError", () =>
    Effect.gen(function* () {
      const noUrl = yield* Effect.flip(
        Layer.build(StoresFromConfig.pipe(Layer.provide(withEnv({ AGENT_STORES_BACKEND: "postgres" })))).pipe(
          Effect.scoped
        )
      )
      expect(noUrl).toMatchObject({ _tag: "StorageError", operation: "config" })
      const fromDatabaseUrl = yield* Effect.flip(
        Layer.build(
          StoresFromConfig.pipe(
            Layer.provide(
              withEnv({ AGENT_STORES_BACKEND: "postgres", DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" })
            )
          )
        ).pipe(Effect.scoped)
      )
      expect(fromDatabaseUrl).toMatchObject({ _tag: "StorageError", backend: "postgres", operation: "connect" })
      const unknown = yield* Effect.flip(
        Layer.build(StoresFromConfig.pipe(Layer.provide(withEnv({ AGENT_STORES_BACKEND: "mongo" })))).pipe(
          Effect.scoped
        )
      )
      expect(unknown._tag).toBe("StorageError")
    })
  )
})

describe("table prefix", () => {
  it.effect("rejects a prefix that is not a plain identifier", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(StoresSqlite({ filename: ":memory:", tablePrefix: "x; DROP TABLE y" })).pipe(Effect.scoped)
      )
      expect(error._tag).toBe("StorageError")
    })
  )
})

describe("MessageLimits", () => {
  it.effect("a smaller limit provided to the layer is enforced", () =>
    Effect.gen(function* () {
      const conversations = yield* ConversationStore
      const conversation = yield* conversations.create({})
      const ok = yield* conversations.append(conversation.id, {
        role: "user",
        parts: [{ type: "text", text: "12345" }]
      })
      expect(ok.seq).toBe(1)
      const error = yield* Effect.flip(
        conversations.append(conversation.id, { role: "user", parts: [{ type: "text", text: "123456" }] })
      )
      expect(error).toMatchObject({ _tag: "InvalidInput", entity: "Message" })
      const tooMany = yield* Effect.flip(
        conversations.append(conversation.id, {
          role: "user",
          parts: [
            { type: "text", text: "a" },
            { type: "text", text: "b" },
            { type: "text", text: "c" }
          ]
        })
      )
      expect(tooMany._tag).toBe("InvalidInput")
      expect((yield* conversations.messages(conversation.id)).length).toBe(1)
    }).pipe(
      Effect.provide(StoresMemory.pipe(Layer.provide(Layer.succeed(MessageLimits, { maxTextLength: 5, maxParts: 2 }))))
    )
  )
})
