/**
 * Testing agent logic: the agent below runs on `StoresMemory` and `TestClock` (which `it.effect` provides), so a
 * test moves time forward with `TestClock.adjust` instead of waiting. Run with `npx vitest run examples/agent.test.ts`.
 */
import { describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Option, TestClock } from "effect"
import { StoresMemory } from "../layers/Stores.ts"
import { AgentMemoryStore, ConversationStore, SessionStore } from "../src/index.ts"

/**
 * One turn of a toy support agent: it appends the user's message and its reply to the conversation, and keeps the
 * topic in short-term memory for ten minutes. A follow-up within that time is answered in context.
 */
const turn = (agentId: string, conversationId: string, text: string) =>
  Effect.gen(function* () {
    const conversations = yield* ConversationStore
    const memory = yield* AgentMemoryStore
    yield* conversations.append(conversationId, { role: "user", parts: [{ type: "text", text }] })
    const topic = yield* memory.find(agentId, `topic:${conversationId}`)
    const reply = Option.match(topic, {
      onNone: () => `Noted: ${text}`,
      onSome: (record) => `Still on ${String(record.value)}: ${text}`
    })
    yield* memory.put({ agentId, key: `topic:${conversationId}`, kind: "short_term", value: text, ttl: "10 minutes" })
    return yield* conversations.append(conversationId, {
      role: "assistant",
      parts: [{ type: "text", text: reply }],
      metadata: { model: "rule-based", finishReason: "stop" }
    })
  })

/** A session and a conversation to talk in. */
const start = Effect.gen(function* () {
  const session = yield* (yield* SessionStore).create({ agentId: "support-bot", channel: "test" })
  return yield* (yield* ConversationStore).create({ sessionId: session.id })
})

describe("support agent", () => {
  it.effect("answers a follow-up in context while the topic is remembered", () =>
    Effect.gen(function* () {
      const chat = yield* start
      yield* turn("support-bot", chat.id, "my order")
      yield* TestClock.adjust("9 minutes")
      const reply = yield* turn("support-bot", chat.id, "it has not arrived")

      expect(reply.seq).toBe(4)
      expect(reply.parts).toEqual([{ type: "text", text: "Still on my order: it has not arrived" }])
      const messages = yield* (yield* ConversationStore).messages(chat.id)
      expect(messages.map((message) => message.role)).toEqual(["user", "assistant", "user", "assistant"])
    }).pipe(Effect.provide(StoresMemory))
  )

  it.effect("forgets the topic once it expires, before any sweep", () =>
    Effect.gen(function* () {
      const memory = yield* AgentMemoryStore
      const chat = yield* start
      yield* turn("support-bot", chat.id, "my order")
      const record = yield* memory.get("support-bot", `topic:${chat.id}`)
      expect(record.expiresAt && DateTime.toEpochMillis(record.expiresAt)).toBe(10 * 60_000)

      yield* TestClock.adjust("10 minutes")
      expect(yield* memory.find("support-bot", `topic:${chat.id}`)).toEqual(Option.none())
      const reply = yield* turn("support-bot", chat.id, "a new question")
      expect(reply.parts).toEqual([{ type: "text", text: "Noted: a new question" }])
    }).pipe(Effect.provide(StoresMemory))
  )

  it.effect("a sweep deletes only the expired records", () =>
    Effect.gen(function* () {
      const memory = yield* AgentMemoryStore
      yield* memory.put({ agentId: "support-bot", key: "brief", kind: "short_term", value: 1, ttl: "1 minute" })
      yield* memory.put({ agentId: "support-bot", key: "profile", value: { tier: "gold" } })

      yield* TestClock.adjust("2 minutes")
      expect(yield* memory.deleteExpired()).toBe(1)
      const left = yield* memory.list("support-bot")
      expect(left.items.map((record) => record.key)).toEqual(["profile"])
    }).pipe(Effect.provide(StoresMemory))
  )
})
