/** `StoresFromConfig`, table prefixes and `MessageLimits`: the knobs users turn. */
import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { StoresFromConfig, StoresMemory, StoresSqlite } from "../layers/Stores.ts"
import { ConversationStore } from "../src/Conversation.ts"
import { MessageLimits } from "../src/Message.ts"
import { SessionStore } from "../src/Session.ts"

const withEnv = (env: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** The error building `StoresFromConfig` under `env` fails with. */
const buildError = (env: Record<string, string>) =>
  Effect.flip(Layer.build(StoresFromConfig.pipe(Layer.provide(withEnv(env)))).pipe(Effect.scoped))

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
      const noUrl = yield* buildError({ AGENT_STORES_BACKEND: "postgres" })
      expect(noUrl).toMatchObject({ _tag: "StorageError", operation: "configuration" })
      expect(noUrl.message).toMatch(/AGENT_STORES_URL \(or DATABASE_URL\)/)
      const fromDatabaseUrl = yield* buildError({
        AGENT_STORES_BACKEND: "postgres",
        DATABASE_URL: "postgres://postgres:s3cret@127.0.0.1:1/none"
      })
      expect(fromDatabaseUrl).toMatchObject({ _tag: "StorageError", backend: "postgres", operation: "connect" })
      expect(fromDatabaseUrl.message).toContain("postgres://postgres@127.0.0.1:1/none (DATABASE_URL)")
      expect(fromDatabaseUrl.message).not.toContain("s3cret")
      const unknown = yield* buildError({ AGENT_STORES_BACKEND: "mongo" })
      expect(unknown._tag).toBe("StorageError")
      expect(unknown.message).toMatch(/AGENT_STORES_BACKEND: Expected one of \(memory, sqlite, postgres\).*mongo/)
      for (const error of [noUrl, unknown]) expect(error.message).not.toMatch(/config failed during config/)
    })
  )

  it.effect("a postgres:// or postgresql:// AGENT_STORES_URL selects PostgreSQL without AGENT_STORES_BACKEND", () =>
    Effect.gen(function* () {
      for (const scheme of ["postgres", "postgresql", "POSTGRES"]) {
        const error = yield* buildError({ AGENT_STORES_URL: `${scheme}://agent:s3cret@127.0.0.1:1/none?sslmode=x` })
        expect(error).toMatchObject({ _tag: "StorageError", backend: "postgres", operation: "connect" })
        expect(error.message).toContain(`cannot reach PostgreSQL at ${scheme.toLowerCase()}://agent@127.0.0.1:1/none`)
        expect(error.message).toContain("(AGENT_STORES_URL)")
        expect(error.message).not.toContain("s3cret")
      }
    })
  )

  it.effect("AGENT_STORES_BACKEND contradicting AGENT_STORES_URL is an error naming both", () =>
    Effect.gen(function* () {
      const cases = [
        [{ AGENT_STORES_BACKEND: "sqlite", AGENT_STORES_URL: "postgres://u:s3cret@db.example/app" }, "postgres"],
        [{ AGENT_STORES_BACKEND: "memory", AGENT_STORES_URL: "postgresql://db.example/app" }, "postgres"],
        [{ AGENT_STORES_BACKEND: "postgres", AGENT_STORES_URL: "./agent.db" }, "sqlite"],
        [{ AGENT_STORES_BACKEND: "memory", AGENT_STORES_URL: "./agent.db" }, "sqlite"]
      ] as const
      for (const [env, implied] of cases) {
        const error = yield* buildError(env)
        expect(error).toMatchObject({ _tag: "StorageError", backend: "StoresFromConfig", operation: "configuration" })
        expect(error.message).toContain(`AGENT_STORES_BACKEND is "${env.AGENT_STORES_BACKEND}" but AGENT_STORES_URL`)
        expect(error.message).toContain(`set AGENT_STORES_BACKEND=${implied}`)
        expect(error.message).not.toContain("s3cret")
      }
    })
  )

  it.effect("a URL that does not parse or has another scheme names its variable and the fix, never the password", () =>
    Effect.gen(function* () {
      const cases = [
        [{ AGENT_STORES_URL: "postgres://agent:s3cret@db.example:port/app" }, "AGENT_STORES_URL does not parse"],
        [{ AGENT_STORES_URL: "postgresql:agent:s3cret@db.example/app" }, "AGENT_STORES_URL does not parse"],
        [
          { AGENT_STORES_BACKEND: "postgres", DATABASE_URL: "postgres://agent:s3#cret@db.example/app" },
          "DATABASE_URL does not parse"
        ],
        [
          { AGENT_STORES_BACKEND: "postgres", DATABASE_URL: "mysql://agent:s3cret@db.example/app" },
          "DATABASE_URL is not a postgres:// or postgresql:// URL"
        ],
        [{ AGENT_STORES_URL: "mysql://agent:s3cret@db.example/app" }, "AGENT_STORES_URL is a mysql:// URL"]
      ] as const
      for (const [env, expected] of cases) {
        const error = yield* buildError(env)
        expect(error).toMatchObject({ _tag: "StorageError", operation: "configuration" })
        expect(error.message).toContain(expected)
        expect(error.message).toContain("postgres://user:password@host:5432/database")
        expect(error.message).not.toMatch(/s3#?cret/)
        expect(error.message).not.toMatch(/config failed during config/)
      }
    })
  )

  it.effect("a SQLite file in a missing directory, or one that is not a database, is named with the fix", () =>
    Effect.gen(function* () {
      const directory = mkdtempSync(join(tmpdir(), "agent-stores-config-"))
      const missing = join(directory, "no-such-dir", "agent.db")
      const inMissing = yield* buildError({ AGENT_STORES_URL: missing })
      expect(inMissing).toMatchObject({ _tag: "StorageError", backend: "sqlite", operation: "open" })
      expect(inMissing.message).toContain(`"${missing}" (AGENT_STORES_URL) is in a directory that does not exist`)
      expect(inMissing.message).toContain("create it, or set AGENT_STORES_URL to a file in an existing directory")
      const notDatabase = join(directory, "notes.txt")
      writeFileSync(notDatabase, "these are my notes, not a database\n".repeat(100))
      const wrongFile = yield* buildError({ AGENT_STORES_BACKEND: "sqlite", AGENT_STORES_URL: notDatabase })
      expect(wrongFile).toMatchObject({ _tag: "StorageError", backend: "sqlite", operation: "open" })
      expect(wrongFile.message).toContain(`"${notDatabase}" (AGENT_STORES_URL) is not a SQLite database`)
      expect(wrongFile.message).toContain("set AGENT_STORES_URL to a SQLite file or to a new file's path")
    })
  )

  it.effect("an empty AGENT_STORES_URL (as an env file writes it) counts as unset", () =>
    Effect.gen(function* () {
      const fallback = yield* buildError({
        AGENT_STORES_BACKEND: "postgres",
        AGENT_STORES_URL: "",
        DATABASE_URL: "postgres://agent@127.0.0.1:1/none"
      })
      expect(fallback.message).toContain("cannot reach PostgreSQL at postgres://agent@127.0.0.1:1/none (DATABASE_URL)")
      const sessions = yield* SessionStore
      expect((yield* sessions.create({ title: "kept in memory" })).title).toBe("kept in memory")
    }).pipe(
      Effect.provide(
        StoresFromConfig.pipe(Layer.provide(withEnv({ AGENT_STORES_BACKEND: "memory", AGENT_STORES_URL: "" })))
      )
    )
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
