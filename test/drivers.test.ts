/**
 * Driver contracts the stores rely on but cannot force from their public API:
 * a compare-and-set `update` writes only the patchable fields, so counts that
 * an append or a chat save changed in between are kept, and it returns the
 * row as stored.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as MemoryConversationStore from "../layers/memory/MemoryConversationStore.ts"
import { MemoryDatabase } from "../layers/memory/MemoryDatabase.ts"
import * as MemorySessionStore from "../layers/memory/MemorySessionStore.ts"
import * as Kit from "../layers/sql/Kit.ts"
import * as SqlConversationStore from "../layers/sql/SqlConversationStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlSessionStore from "../layers/sql/SqlSessionStore.ts"
import type { ConversationDriver, ConversationRow } from "../src/Conversation.ts"
import type { SessionDriver, SessionRow } from "../src/Session.ts"

const session: SessionRow = {
  id: "s1",
  resourceId: null,
  agentId: null,
  channel: null,
  title: null,
  status: "active",
  metadata: "{}",
  messageCount: 0,
  createdAt: 1,
  updatedAt: 1,
  version: 1
}
const conversation: ConversationRow = {
  id: "c1",
  sessionId: null,
  resourceId: null,
  title: null,
  model: null,
  metadata: "{}",
  messageCount: 0,
  lastSeq: 0,
  createdAt: 1,
  updatedAt: 1,
  version: 1
}
const message = (id: string) => ({ id, role: "user", parts: "[]", metadata: null, extra: null, createdAt: 2 })

const updateKeepsCounts = (drivers: { readonly sessions: SessionDriver; readonly conversations: ConversationDriver }) =>
  Effect.gen(function* () {
    const { conversations, sessions } = drivers
    yield* sessions.insert(session)
    yield* sessions.save({ ...session, updatedAt: 3 }, [message("x"), message("y")], [true, true])
    const storedSession = yield* sessions.update({ ...session, title: "renamed", updatedAt: 4, version: 2 })
    expect(storedSession).toMatchObject({ title: "renamed", messageCount: 2, updatedAt: 4, version: 2 })
    expect(yield* sessions.get(session.id)).toEqual(storedSession)
    expect(yield* sessions.update({ ...session, title: "stale", version: 2 })).toBeUndefined()

    yield* conversations.insert(conversation)
    yield* conversations.append(conversation.id, [message("a"), message("b")], 3)
    const storedConversation = yield* conversations.update({
      ...conversation,
      title: "renamed",
      updatedAt: 4,
      version: 2
    })
    expect(storedConversation).toMatchObject({ title: "renamed", messageCount: 2, lastSeq: 2, version: 2 })
    expect(yield* conversations.get(conversation.id)).toEqual(storedConversation)
    expect(yield* conversations.update({ ...conversation, title: "stale", version: 2 })).toBeUndefined()
  })

describe("driver update", () => {
  it.effect("memory", () =>
    Effect.all({ sessions: MemorySessionStore.driver, conversations: MemoryConversationStore.driver }).pipe(
      Effect.flatMap(updateKeepsCounts),
      Effect.provide(MemoryDatabase.layer)
    )
  )

  const sqlDrivers = Effect.all({ sessions: SqlSessionStore.driver, conversations: SqlConversationStore.driver })
  const migrated = Kit.migrations(SqlConversationStore.schema)

  it.effect("SQLite", () =>
    sqlDrivers.pipe(
      Effect.flatMap(updateKeepsCounts),
      Effect.provide(migrated.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename: ":memory:" }))))
    )
  )

  it.effect("SqlClient", () =>
    sqlDrivers.pipe(
      Effect.flatMap(updateKeepsCounts),
      Effect.provide(migrated.pipe(Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" }))))
    )
  )
})
