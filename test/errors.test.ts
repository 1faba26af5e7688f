/** Backend failures reach callers as `StorageError` values, never as raw driver or `SqlError` defects. */
import { SqliteClient } from "@effect/sql-sqlite-node"
import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import Sqlite from "better-sqlite3"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { StoresPg, StoresSql, StoresSqlite } from "../layers/Stores.ts"
import { ConversationStore } from "../src/Conversation.ts"
import { SessionStore } from "../src/Session.ts"

const text = { role: "user" as const, parts: [{ type: "text" as const, text: "hi" }] }

const brokenTables = Effect.gen(function* () {
  const sql = yield* SqlClient
  const sessions = yield* SessionStore
  const conversations = yield* ConversationStore
  const conversation = yield* conversations.create({})
  yield* sql`DROP TABLE agent_messages`
  yield* sql`DROP TABLE agent_conversations`
  yield* sql`DROP TABLE agent_sessions`
  const failures = [
    yield* Effect.flip(conversations.append(conversation.id, text)),
    yield* Effect.flip(conversations.messages(conversation.id)),
    yield* Effect.flip(sessions.save("s", [text])),
    yield* Effect.flip(sessions.list())
  ]
  for (const failure of failures) {
    expect(failure._tag).toBe("StorageError")
    if (failure._tag === "StorageError") {
      expect(failure.backend).toBe("sqlite")
      expect(failure.message).toMatch(/no such table/)
    }
  }
  expect(failures.map((f) => (f._tag === "StorageError" ? f.operation : f._tag))).toEqual([
    "conversation.append",
    "conversation.messages",
    "session.save",
    "session.list"
  ])
})

describe("StorageError", () => {
  it.effect("a SQLite file locked longer than busyTimeoutMs fails the layer with StorageError naming the file", () =>
    Effect.gen(function* () {
      const filename = join(mkdtempSync(join(tmpdir(), "agent-locked-")), "locked.db")
      yield* Effect.scoped(Layer.build(StoresSqlite({ filename })))
      const holder = new Sqlite(filename)
      holder.exec("BEGIN IMMEDIATE")
      try {
        const error = yield* Effect.flip(Effect.scoped(Layer.build(StoresSqlite({ filename, busyTimeoutMs: 100 }))))
        expect(error._tag).toBe("StorageError")
        expect(error.message).toMatch(/database is locked/)
        expect(error.message).toContain(filename)
        expect(error.message).not.toMatch(/cannot rollback/)
        const inTransaction = yield* Effect.flip(
          Effect.flatMap(SqlClient, (sql) => sql.withTransaction(sql`SELECT 1`)).pipe(
            Effect.provide(SqliteDatabase.layer({ filename, busyTimeoutMs: 100 })),
            Effect.scoped
          )
        )
        expect(inTransaction._tag).toBe("SqlError")
        expect(String(inTransaction.cause)).toMatch(/database is locked/)
      } finally {
        holder.exec("ROLLBACK")
        holder.close()
      }
    })
  )

  it.effect("the SQLite layer reports a broken database as StorageError", () =>
    brokenTables.pipe(Effect.provide(StoresSqlite({ filename: ":memory:" })))
  )

  it.effect("the SqlClient layers report a broken database as StorageError", () =>
    brokenTables.pipe(
      Effect.provide(StoresSql().pipe(Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" }))))
    )
  )

  it.effect("an unreachable PostgreSQL fails the layer with StorageError", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(StoresPg({ url: "postgres://postgres@127.0.0.1:1/none" })).pipe(Effect.scoped)
      )
      expect(error).toMatchObject({ _tag: "StorageError", backend: "postgres", operation: "connect" })
    })
  )
})
