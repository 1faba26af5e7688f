/**
 * The SQLite layer's hot paths and the caller's own `sql.withTransaction` on
 * the same connection: inside it they join (and roll back with it); from
 * another fiber they wait for it and never slip into it.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option } from "effect"
import { StoresSqlite } from "../layers/Stores.ts"
import { ConversationStore } from "../src/Conversation.ts"
import { SessionStore } from "../src/Session.ts"

const text = (value: string) => ({ role: "user" as const, parts: [{ type: "text" as const, text: value }] })

layer(StoresSqlite({ filename: ":memory:" }))("SQLite stores inside caller transactions", (it) => {
  it.effect("store writes join the caller's transaction and roll back with it", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient
      const sessions = yield* SessionStore
      const conversations = yield* ConversationStore
      const conversation = yield* conversations.create({})
      const failed = yield* Effect.flip(
        sql.withTransaction(
          Effect.gen(function* () {
            yield* conversations.append(conversation.id, text("rolled back"))
            yield* sessions.save("tx-session", [text("rolled back")])
            expect((yield* conversations.messages(conversation.id)).length).toBe(1)
            return yield* Effect.fail("abort")
          })
        )
      )
      expect(failed).toBe("abort")
      expect(yield* conversations.messages(conversation.id)).toEqual([])
      expect(yield* sessions.load("tx-session")).toEqual(Option.none())
      yield* sql.withTransaction(conversations.append(conversation.id, text("committed")))
      expect((yield* conversations.messages(conversation.id)).map((m) => m.seq)).toEqual([1])
    })
  )

  it.effect("writes from another fiber wait for an open transaction instead of slipping into it", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient
      const conversations = yield* ConversationStore
      const conversation = yield* conversations.create({})
      const opened = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const transaction = yield* Effect.fork(
        Effect.flip(
          sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`UPDATE agent_conversations SET title = 'inside' WHERE id = ${conversation.id}`
              yield* Deferred.succeed(opened, undefined)
              yield* Deferred.await(release)
              return yield* Effect.fail("abort")
            })
          )
        )
      )
      yield* Deferred.await(opened)
      const writer = yield* Effect.fork(conversations.append(conversation.id, text("outside")))
      yield* Effect.repeatN(Effect.yieldNow(), 100)
      expect(writer.unsafePoll()).toBeNull()
      yield* Deferred.succeed(release, undefined)
      expect(yield* Fiber.join(transaction)).toBe("abort")
      const appended = yield* Fiber.join(writer)
      expect(appended.seq).toBe(1)
      expect((yield* conversations.messages(conversation.id)).map((m) => m.parts)).toEqual([text("outside").parts])
      expect((yield* conversations.get(conversation.id)).title).toBeUndefined()
    })
  )
})
