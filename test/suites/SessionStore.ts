/**
 * The `SessionStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own ids and agent ids.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, Fiber, Layer, Option, Schema, TestClock } from "effect"
import { ConversationStore } from "../../src/Conversation.ts"
import { MessageInput } from "../../src/Message.ts"
import type { Page } from "../../src/Page.ts"
import { NewSession, type Session, SessionListOptions, SessionPatch, SessionStore } from "../../src/Session.ts"
import * as Arb from "./arbitraries.ts"
import { UpdateOptions } from "../../src/Record.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
/** A fresh id for this run. */
export const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

const text = (role: "user" | "assistant", value: string): MessageInput => ({
  role,
  parts: [{ type: "text", text: value }]
})

/** Runs the `SessionStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<SessionStore | ConversationStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`SessionStore (${label})`, (it) => {
    it.effect("create fills defaults and get returns it", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        yield* TestClock.setTime(1_700_000_000_000)
        const created = yield* sessions.create({ agentId: "agent-1", channel: "cli", title: "hello" })
        expect(created.status).toBe("active")
        expect(created.version).toBe(1)
        expect(created.messageCount).toBe(0)
        expect(created.metadata).toEqual({})
        expect(DateTime.toEpochMillis(created.createdAt)).toBe(1_700_000_000_000)
        expect(created.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
        expect(yield* sessions.get(created.id)).toEqual(created)
        expect(yield* sessions.find(created.id)).toEqual(Option.some(created))
      })
    )

    it.effect("create keeps a given id and metadata; a duplicate id is a Conflict", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("user")
        const created = yield* sessions.create({ id, metadata: { plan: "pro", tags: ["a"], nested: { n: 1.5 } } })
        expect(created.id).toBe(id)
        expect(created.metadata).toEqual({ plan: "pro", tags: ["a"], nested: { n: 1.5 } })
        const error = yield* Effect.flip(sessions.create({ id, title: "again" }))
        expect(error._tag).toBe("Conflict")
        expect(error).toMatchObject({ entity: "Session", id, expected: 0, actual: 1 })
        expect((yield* sessions.get(id)).title).toBeUndefined()
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("bad")
        const inputs: Array<unknown> = [
          { id: "" },
          { id, status: "sleeping" },
          { id, metadata: { f: () => 1 } },
          { id, metadata: { n: Number.NaN } },
          { id, metadata: { d: new Date(0) } },
          { id, title: "nul \u0000 inside" },
          { id, title: "half \ud83d emoji" },
          { id, agentId: "\udc00" },
          { id: "\ud800" },
          { id: "a\u0000" },
          { id, metadata: JSON.parse('{"nested": {"__proto__": {"polluted": true}}}') },
          { id, metadata: JSON.parse('{"__proto__": {"polluted": true}}') },
          { id, metadata: [1, 2] },
          { id, agentId: 42 },
          ...BadInput.jsonObjects.map((metadata) => ({ id, metadata })),
          ...BadInput.values
            .filter((value) => value !== undefined && typeof value !== "string")
            .map((title) => ({ id, title })),
          ...BadInput.containers({ id, title: "t" })
        ]
        for (const input of inputs) {
          const error = yield* Effect.flip(sessions.create(input as never))
          expect(error._tag).toBe("InvalidInput")
          if (error._tag === "InvalidInput") {
            expect(error.entity).toBe("Session")
            expect(error.issues.length).toBeGreaterThan(0)
          }
        }
        expect(yield* sessions.find(id)).toEqual(Option.none())
        const cyclic: Record<string, unknown> = {}
        cyclic.self = cyclic
        expect((yield* Effect.flip(sessions.create({ id, metadata: cyclic })))._tag).toBe("InvalidInput")
        expect(yield* sessions.find(id)).toEqual(Option.none())
      })
    )

    it.effect("get of an unknown id is NotFound; find is None", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("missing")
        const error = yield* Effect.flip(sessions.get(id))
        expect(error).toMatchObject({ _tag: "NotFound", entity: "Session", id })
        expect(yield* sessions.find(id)).toEqual(Option.none())
        const impossible = "no\u0000such"
        expect(yield* Effect.flip(sessions.get(impossible))).toMatchObject({ _tag: "NotFound", id: impossible })
        expect(yield* sessions.load(impossible)).toEqual(Option.none())
        expect(yield* Effect.flip(sessions.update(impossible, { title: "x" }))).toMatchObject({ _tag: "NotFound" })
        yield* sessions.delete(impossible)
      })
    )

    it.effect("update patches fields, clears with null, bumps version and updatedAt", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        yield* TestClock.setTime(1_000)
        const created = yield* sessions.create({ agentId: "a", channel: "web", title: "t", metadata: { x: 1 } })
        yield* TestClock.adjust("5 seconds")
        const updated = yield* sessions.update(created.id, { title: null, status: "idle", metadata: { x: 2 } })
        expect(updated).toMatchObject({ agentId: "a", channel: "web", status: "idle", metadata: { x: 2 }, version: 2 })
        expect(updated.title).toBeUndefined()
        expect(DateTime.toEpochMillis(updated.updatedAt)).toBe(6_000)
        expect(DateTime.toEpochMillis(updated.createdAt)).toBe(1_000)
        expect(yield* sessions.get(created.id)).toEqual(updated)
        const again = yield* sessions.update(created.id, { agentId: "b" }, { expectedVersion: 2 })
        expect(again).toMatchObject({ agentId: "b", status: "idle", version: 3 })
      })
    )

    it.effect("update with a stale expectedVersion is a Conflict and changes nothing", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const created = yield* sessions.create({ title: "v1" })
        yield* sessions.update(created.id, { title: "v2" })
        const error = yield* Effect.flip(sessions.update(created.id, { title: "v3" }, { expectedVersion: 1 }))
        expect(error).toMatchObject({ _tag: "Conflict", entity: "Session", id: created.id, expected: 1, actual: 2 })
        expect(yield* sessions.get(created.id)).toMatchObject({ title: "v2", version: 2 })
      })
    )

    it.effect("update of an unknown id is NotFound; a bad patch is InvalidInput", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("nope")
        expect(yield* Effect.flip(sessions.update(id, { title: "x" }))).toMatchObject({ _tag: "NotFound", id })
        const created = yield* sessions.create({ title: "keep" })
        const error = yield* Effect.flip(sessions.update(created.id, { status: "gone" } as never))
        expect(error._tag).toBe("InvalidInput")
        expect(yield* sessions.get(created.id)).toEqual(created)
      })
    )

    it.effect("concurrent updates lose nothing", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const created = yield* sessions.create({ metadata: {} })
        yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => i),
          (i) => sessions.update(created.id, { title: `t${i}` }),
          { concurrency: "unbounded", discard: true }
        )
        expect((yield* sessions.get(created.id)).version).toBe(13)
      })
    )

    it.effect("list is oldest first, filters by agent, channel and status, and pages by cursor", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const agentId = fresh("agent")
        const made = []
        for (let i = 0; i < 7; i++) {
          yield* TestClock.adjust("1 second")
          made.push(
            yield* sessions.create({
              agentId,
              channel: i % 2 === 0 ? "even" : "odd",
              status: i < 2 ? "idle" : "active"
            })
          )
        }
        const all = yield* sessions.list({ agentId })
        expect(all.items.map((s) => s.id)).toEqual(made.map((s) => s.id))
        expect(all.nextCursor).toEqual(Option.none())
        const even = yield* sessions.list({ agentId, channel: "even" })
        expect(even.items.map((s) => s.id)).toEqual(made.filter((_, i) => i % 2 === 0).map((s) => s.id))
        const idle = yield* sessions.list({ agentId, status: "idle" })
        expect(idle.items.map((s) => s.id)).toEqual(made.slice(0, 2).map((s) => s.id))
        const both = yield* sessions.list({ agentId, channel: "odd", status: "active" })
        expect(both.items.map((s) => s.id)).toEqual([made[3]!.id, made[5]!.id])
        const desc = yield* sessions.list({ agentId, order: "desc", limit: 3 })
        expect(desc.items.map((s) => s.id)).toEqual(
          made
            .slice(4)
            .reverse()
            .map((s) => s.id)
        )

        const seen: Array<string> = []
        let cursor: Option.Option<string> = Option.none()
        let pages = 0
        do {
          const page = yield* sessions.list({
            agentId,
            limit: 3,
            ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
          })
          seen.push(...page.items.map((s) => s.id))
          cursor = page.nextCursor
          pages++
        } while (Option.isSome(cursor))
        expect(seen).toEqual(made.map((s) => s.id))
        expect(pages).toBe(3)
        const skipped = yield* sessions.list({ agentId, offset: 5 })
        expect(skipped.items.map((s) => s.id)).toEqual(made.slice(5).map((s) => s.id))

        const newestFirst: Array<string> = []
        let back: Option.Option<string> = Option.none()
        do {
          const page = yield* sessions.list({
            agentId,
            order: "desc",
            limit: 2,
            ...(Option.isSome(back) ? { cursor: back.value } : {})
          })
          newestFirst.push(...page.items.map((s) => s.id))
          back = page.nextCursor
        } while (Option.isSome(back))
        expect(newestFirst).toEqual(made.map((s) => s.id).reverse())
        const odd = yield* sessions.list({ agentId, channel: "odd", order: "desc", limit: 1, offset: 1 })
        expect(odd.items.map((s) => s.id)).toEqual([made[3]!.id])
        const afterOdd = yield* sessions.list({
          agentId,
          channel: "odd",
          order: "desc",
          cursor: Option.getOrThrow(odd.nextCursor)
        })
        expect(afterOdd.items.map((s) => s.id)).toEqual([made[1]!.id])
      })
    )

    it.effect("list rejects bad options", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        for (const options of [
          { limit: 0 },
          { limit: 1001 },
          { offset: -1 },
          { cursor: "not-a-cursor" },
          { order: "up" },
          // Well-formed cursors no listing can have produced: U+0000 or a lone surrogate in the id, an unsafe
          // number, the wrong arity. Every backend refuses them alike (PostgreSQL used to fail on U+0000).
          ...[[1, "a\u0000b"], [1, "\ud800"], [2 ** 53, "a"], [1.5, "a"], [1], [1, "a", 2], ["1", "a"]].map((key) => ({
            cursor: Buffer.from(JSON.stringify(key)).toString("base64url")
          }))
        ]) {
          const error = yield* Effect.flip(sessions.list(options as never))
          expect(error._tag, JSON.stringify(options)).toBe("InvalidInput")
        }
      })
    )

    it.effect("paging is stable under concurrent inserts", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const agentId = fresh("busy")
        const before: Array<string> = []
        for (let i = 0; i < 20; i++) before.push((yield* sessions.create({ agentId })).id)
        const writer = yield* Effect.fork(
          Effect.forEach(
            Array.from({ length: 20 }),
            () => Effect.zipRight(Effect.yieldNow(), sessions.create({ agentId })),
            {
              discard: true
            }
          )
        )
        const seen: Array<string> = []
        let cursor: Option.Option<string> = Option.none()
        do {
          const page = yield* sessions.list({
            agentId,
            limit: 4,
            ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
          })
          seen.push(...page.items.map((s) => s.id))
          cursor = page.nextCursor
          yield* Effect.yieldNow()
        } while (Option.isSome(cursor))
        yield* Fiber.join(writer)
        expect(new Set(seen).size).toBe(seen.length)
        expect(seen.slice(0, 20)).toEqual(before)
      })
    )

    it.effect("load of an unknown id is None; save creates the session", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("fresh")
        expect(yield* sessions.load(id)).toEqual(Option.none())
        yield* TestClock.setTime(42_000)
        yield* sessions.save(id, [text("user", "hello"), text("assistant", "hi!")])
        const session = yield* sessions.get(id)
        expect(session).toMatchObject({ id, status: "active", messageCount: 2, version: 1 })
        const transcript = Option.getOrThrow(yield* sessions.load(id))
        expect(transcript.map((m) => [m.role, m.parts])).toEqual([
          ["user", [{ type: "text", text: "hello" }]],
          ["assistant", [{ type: "text", text: "hi!" }]]
        ])
        expect(transcript.every((m) => m.id.length > 0 && DateTime.toEpochMillis(m.createdAt!) === 42_000)).toBe(true)
      })
    )

    it.effect("save replaces the whole chat", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const created = yield* sessions.create({ title: "chat" })
        expect(yield* sessions.load(created.id)).toEqual(Option.some([]))
        yield* sessions.save(created.id, [text("user", "1"), text("assistant", "2"), text("user", "3")])
        yield* sessions.save(created.id, [text("user", "only")])
        const transcript = Option.getOrThrow(yield* sessions.load(created.id))
        expect(transcript.map((m) => m.parts)).toEqual([[{ type: "text", text: "only" }]])
        expect(yield* sessions.get(created.id)).toMatchObject({ title: "chat", messageCount: 1, version: 1 })
        yield* sessions.save(created.id, [])
        expect(yield* sessions.load(created.id)).toEqual(Option.some([]))
        expect((yield* sessions.get(created.id)).messageCount).toBe(0)
      })
    )

    it.effect("save with a bad message is InvalidInput and keeps the old chat", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("keep")
        yield* sessions.save(id, [text("user", "old")])
        const bad: Array<unknown> = [
          [text("user", "fine"), { role: "robot", parts: [] }],
          [{ role: "user", parts: [{ type: "text", text: "x".repeat(1_000_001) }] }],
          [{ role: "tool", parts: [{ type: "tool-result", toolCallId: "c", toolName: "t", output: { n: Infinity } }] }],
          [{ role: "user", parts: [{ type: "video" }] }],
          [{ role: "assistant", parts: [], metadata: { usage: { inputTokens: -1, outputTokens: 0, totalTokens: 0 } } }],
          "not an array"
        ]
        for (const messages of bad) {
          const error = yield* Effect.flip(sessions.save(id, messages as never))
          expect(error._tag).toBe("InvalidInput")
        }
        expect(yield* Effect.flip(sessions.save("", []))).toMatchObject({ _tag: "InvalidInput" })
        const transcript = Option.getOrThrow(yield* sessions.load(id))
        expect(transcript.map((m) => m.parts)).toEqual([[{ type: "text", text: "old" }]])
      })
    )

    it.effect("save to a closed session is a SessionError and writes nothing", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const created = yield* sessions.create({})
        yield* sessions.save(created.id, [text("user", "before close")])
        yield* sessions.update(created.id, { status: "closed" })
        const error = yield* Effect.flip(sessions.save(created.id, [text("user", "after close")]))
        expect(error).toMatchObject({ _tag: "SessionError", sessionId: created.id })
        const transcript = Option.getOrThrow(yield* sessions.load(created.id))
        expect(transcript.map((m) => m.parts)).toEqual([[{ type: "text", text: "before close" }]])
        yield* sessions.update(created.id, { status: "active" })
        yield* sessions.save(created.id, [text("user", "reopened")])
        expect(Option.getOrThrow(yield* sessions.load(created.id)).length).toBe(1)
      })
    )

    it.effect("delete removes the session, its chat, conversations and messages; unknown ids are a no-op", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const created = yield* sessions.create({})
        yield* sessions.save(created.id, [text("user", "bye")])
        const conversation = yield* conversations.create({ sessionId: created.id })
        yield* conversations.appendMany(conversation.id, [text("user", "a"), text("assistant", "b")])
        const other = yield* conversations.create({})
        yield* conversations.append(other.id, text("user", "unrelated"))
        yield* sessions.delete(created.id)
        expect(yield* sessions.find(created.id)).toEqual(Option.none())
        expect(yield* sessions.load(created.id)).toEqual(Option.none())
        expect(yield* conversations.find(conversation.id)).toEqual(Option.none())
        expect((yield* Effect.flip(conversations.messages(conversation.id)))._tag).toBe("NotFound")
        expect((yield* conversations.messages(other.id)).length).toBe(1)
        yield* sessions.delete(created.id)
        yield* sessions.delete(fresh("never"))
      })
    )

    it.effect("a session's chat is the conversation with its id: save and load go through it, and its count", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const id = fresh("chat")
        yield* sessions.create({ id, resourceId: "user-1" })
        expect(yield* sessions.load(id)).toEqual(Option.some([]))
        yield* sessions.save(id, [text("user", "hello"), text("assistant", "hi")])
        const conversation = yield* conversations.get(id)
        expect(conversation).toMatchObject({ sessionId: id, resourceId: "user-1", messageCount: 2, lastSeq: 2 })
        const stored = yield* conversations.messages(id)
        expect(Option.getOrThrow(yield* sessions.load(id))).toEqual(
          stored.map(({ conversationId: _, seq: __, ...message }) => message)
        )
        yield* conversations.append(id, text("user", "appended elsewhere"))
        expect(Option.getOrThrow(yield* sessions.load(id)).map((m) => m.parts)).toEqual([
          [{ type: "text", text: "hello" }],
          [{ type: "text", text: "hi" }],
          [{ type: "text", text: "appended elsewhere" }]
        ])
        expect((yield* sessions.get(id)).messageCount).toBe(3)
        expect((yield* sessions.list({ resourceId: "user-1" })).items.find((s) => s.id === id)?.messageCount).toBe(3)
        yield* conversations.truncateAfter(id, 1)
        expect((yield* sessions.get(id)).messageCount).toBe(1)
      })
    )

    it.effect("save keeps the unchanged start of the chat with its seqs and appends the rest after lastSeq", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const id = fresh("turns")
        yield* TestClock.setTime(50_000)
        const turn1 = [
          { ...text("user", "q1"), id: "u1" },
          { ...text("assistant", "a1"), id: "a1" }
        ]
        yield* sessions.save(id, turn1)
        const before = yield* conversations.messages(id)
        yield* TestClock.adjust("1 minute")
        // The AI SDK's onFinish saves the whole history each turn.
        const turn2 = [...turn1, { ...text("user", "q2"), id: "u2" }, { ...text("assistant", "a2"), id: "a2" }]
        yield* sessions.save(id, turn2)
        const after = yield* conversations.messages(id)
        expect(after.slice(0, 2)).toEqual(before)
        expect(after.map((m) => [m.id, m.seq])).toEqual([
          ["u1", 1],
          ["a1", 2],
          ["u2", 3],
          ["a2", 4]
        ])
        expect(DateTime.toEpochMillis(after[3]!.createdAt)).toBe(110_000)
        yield* TestClock.adjust("1 minute")
        // Regenerating the last answer: an edited message and what follows it are replaced, after lastSeq.
        yield* sessions.save(id, [...turn2.slice(0, 3), { ...text("assistant", "a2, again"), id: "a2" }])
        const regenerated = yield* conversations.messages(id)
        expect(regenerated.map((m) => [m.id, m.seq])).toEqual([
          ["u1", 1],
          ["a1", 2],
          ["u2", 3],
          ["a2", 5]
        ])
        // A message whose id was stored keeps its createdAt unless one is given.
        expect(DateTime.toEpochMillis(regenerated[3]!.createdAt)).toBe(110_000)
        expect(yield* conversations.get(id)).toMatchObject({ messageCount: 4, lastSeq: 5 })
        yield* sessions.save(id, [{ ...turn1[0]!, createdAt: 1 }])
        expect(
          (yield* conversations.messages(id)).map((m) => [m.id, m.seq, DateTime.toEpochMillis(m.createdAt)])
        ).toEqual([["u1", 6, 1]])
        yield* sessions.save(id, [])
        expect(yield* sessions.load(id)).toEqual(Option.some([]))
        expect(yield* conversations.get(id)).toMatchObject({ messageCount: 0, lastSeq: 6 })
      })
    )

    it.effect("save refuses repeated message ids, writing nothing", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("repeat")
        yield* sessions.save(id, [text("user", "kept")])
        const error = yield* Effect.flip(
          sessions.save(id, [
            { ...text("user", "a"), id: "same" },
            text("user", "b"),
            { ...text("user", "c"), id: "same" }
          ])
        )
        expect(error).toMatchObject({
          _tag: "InvalidInput",
          message: "messages[2].id must be distinct: an earlier message has it"
        })
        expect(Option.getOrThrow(yield* sessions.load(id)).map((m) => m.parts)).toEqual([
          [{ type: "text", text: "kept" }]
        ])
      })
    )

    it.effect("resourceId: set on create, changed by update, filtered by list; nextCursor goes back as cursor", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const owner = fresh("tenant")
        const made = []
        for (let i = 0; i < 5; i++) made.push(yield* sessions.create({ resourceId: owner, title: `s${i}` }))
        yield* sessions.create({ resourceId: fresh("someone-else") })
        expect(made[0]!.resourceId).toBe(owner)
        const seen: Array<string> = []
        let cursor: Option.Option<string> = Option.none()
        do {
          const page: Page<Session> = yield* sessions.list({ resourceId: owner, limit: 2, cursor })
          seen.push(...page.items.map((s) => s.id))
          cursor = page.nextCursor
        } while (Option.isSome(cursor))
        expect(seen).toEqual(made.map((s) => s.id))
        const moved = yield* sessions.update(made[0]!.id, { resourceId: null })
        expect(moved.resourceId).toBeUndefined()
        expect((yield* sessions.list({ resourceId: owner })).items.length).toBe(4)
        for (const resourceId of ["", "x".repeat(256), "\ud800", 1]) {
          expect((yield* Effect.flip(sessions.create({ resourceId } as never)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("messages of every part type and metadata round trip through save and load", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("rich")
        const messages: Array<MessageInput> = [
          { id: "m1", role: "system", parts: [{ type: "text", text: "be brief" }], createdAt: 1 },
          {
            id: "m2",
            role: "user",
            parts: [
              { type: "image", image: { imageId: "sha256-abc" }, mediaType: "image/png" },
              { type: "image", image: { url: "https://example.test/cat.jpg" } },
              { type: "file", url: "data:text/plain;base64,aGk=", mediaType: "text/plain", filename: "hi.txt" }
            ],
            createdAt: 2
          },
          {
            id: "m3",
            role: "assistant",
            parts: [
              { type: "reasoning", text: "think", providerMetadata: { openai: { id: "r1" } } },
              { type: "tool-call", toolCallId: "c1", toolName: "search", input: { q: "effect", n: [1, 2] } }
            ],
            metadata: {
              model: "gpt-x",
              finishReason: "tool-calls",
              usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15, reasoningTokens: 2, cachedInputTokens: 1 },
              cost: { inputCost: 0.001, outputCost: 0.002, totalCost: 0.003, currency: "USD" },
              stats: { latencyMs: 120, timeToFirstTokenMs: 40, toolCalls: 1 },
              traceId: "abc"
            },
            createdAt: 3
          },
          {
            id: "m4",
            role: "tool",
            parts: [{ type: "tool-result", toolCallId: "c1", toolName: "search", output: ["r"], isError: false }],
            createdAt: 4
          }
        ]
        yield* sessions.save(id, messages)
        const loaded = Option.getOrThrow(yield* sessions.load(id))
        expect(loaded).toEqual(messages.map((m) => ({ ...m, createdAt: DateTime.unsafeMake(m.createdAt as number) })))
      })
    )

    it.effect("a non-string id is InvalidInput on every operation; a string no record can have is unknown", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const message = [text("user", "x")]
        for (const id of [42, null, undefined, {}, ["a"], 1n, new String("a")] as Array<unknown>) {
          const attempts: Array<Effect.Effect<void, unknown>> = [
            Effect.asVoid(sessions.get(id as string)),
            Effect.asVoid(sessions.find(id as string)),
            Effect.asVoid(sessions.update(id as string, { title: "x" })),
            sessions.delete(id as string),
            Effect.asVoid(sessions.load(id as string)),
            sessions.save(id as string, message)
          ]
          for (const attempt of attempts) {
            const error = yield* Effect.flip(attempt)
            expect(error).toMatchObject({ _tag: "InvalidInput", entity: "Session" })
            expect((error as Error).message).toMatch(/^id must be a string, got /)
          }
        }
        expect((yield* Effect.flip(sessions.get(42 as never))).message).toBe("id must be a string, got number")
        for (const impossible of ["", "x".repeat(256), "no\u0000such", "\ud800", "a\udc00b"]) {
          expect(yield* Effect.flip(sessions.get(impossible))).toMatchObject({ _tag: "NotFound", id: impossible })
          expect(yield* sessions.find(impossible)).toEqual(Option.none())
          expect(yield* sessions.load(impossible)).toEqual(Option.none())
          expect(yield* Effect.flip(sessions.update(impossible, { title: "x" }))).toMatchObject({ _tag: "NotFound" })
          yield* sessions.delete(impossible)
          expect((yield* Effect.flip(sessions.save(impossible, message)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("ids and indexed keys follow the Text rule: refused, never changed or merged", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const high = fresh("\ud800")
        const low = fresh("\udc00")
        for (const input of [{ id: high }, { id: low }, { agentId: "\ud83d" }, { channel: "a\u0000" }]) {
          const error = yield* Effect.flip(sessions.create(input))
          expect(error._tag).toBe("InvalidInput")
          expect(error.message).toMatch(/must be well-formed Unicode without U\+0000/)
        }
        expect(yield* sessions.find(high)).toEqual(Option.none())
        expect(yield* sessions.find(low)).toEqual(Option.none())
        expect((yield* Effect.flip(sessions.save(high, [])))._tag).toBe("InvalidInput")
        expect((yield* Effect.flip(sessions.list({ agentId: "\udc00" })))._tag).toBe("InvalidInput")
        const pair = fresh("emoji-\ud83d\ude00")
        const created = yield* sessions.create({ id: pair, agentId: "\u{1f600}", title: "e\u0301" })
        expect(created.id).toBe(pair)
        expect(yield* sessions.get(pair)).toEqual(created)
        expect((yield* sessions.list({ agentId: "\u{1f600}" })).items.map((s) => s.id)).toContain(pair)
      })
    )

    it.effect("content round-trips verbatim, U+0000 and lone surrogates included", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const odd = "a\u0000b \ud83d \udc00 \\u0000 \u2028"
        const metadata = { [odd]: odd, nested: { "\u0000": ["\ud800", odd] } }
        const created = yield* sessions.create({ metadata })
        expect(created.metadata).toEqual(metadata)
        expect((yield* sessions.get(created.id)).metadata).toEqual(metadata)
        const updated = yield* sessions.update(created.id, { metadata: { again: odd } })
        expect((yield* sessions.get(created.id)).metadata).toEqual(updated.metadata)
        const messages: Array<MessageInput> = [
          { id: "m1", role: "user", parts: [{ type: "text", text: odd }], metadata: { [odd]: odd }, createdAt: 1 },
          {
            id: "m2",
            role: "assistant",
            parts: [
              { type: "reasoning", text: odd, providerMetadata: { [odd]: odd } },
              { type: "tool-call", toolCallId: "c", toolName: "read", input: { path: odd } }
            ],
            createdAt: 2
          },
          {
            id: "m3",
            role: "tool",
            parts: [{ type: "tool-result", toolCallId: "c", toolName: "read", output: [odd, { [odd]: odd }] }],
            createdAt: 3
          }
        ]
        yield* sessions.save(created.id, messages)
        const loaded = Option.getOrThrow(yield* sessions.load(created.id))
        expect(loaded).toEqual(messages.map((m) => ({ ...m, createdAt: DateTime.unsafeMake(m.createdAt as number) })))
      })
    )

    it.effect("expectedVersion and update options are validated: InvalidInput naming them, nothing written", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const created = yield* sessions.create({ title: "v1" })
        for (const expectedVersion of BadInput.versions) {
          const error = yield* Effect.flip(sessions.update(created.id, { title: "bad" }, { expectedVersion } as never))
          expect(error).toMatchObject({ _tag: "InvalidInput", entity: "Session" })
          expect(error.message).toMatch(/^options\.expectedVersion /)
        }
        for (const options of [new Date(), new Map(), null, 1, "x", [1]]) {
          const error = yield* Effect.flip(sessions.update(created.id, { title: "bad" }, options as never))
          expect(error.message).toMatch(/^options /)
        }
        expect(yield* sessions.get(created.id)).toEqual(created)
        expect((yield* sessions.update(created.id, { title: "v2" }, { expectedVersion: 1 })).version).toBe(2)
      })
    )

    it.effect("list options must be a plain object; an option error names the option", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        for (const options of [new Date(), new Map(), null, 42, "x", [], BadInput.throwingGetter("limit")]) {
          expect(yield* Effect.flip(sessions.list(options as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        expect((yield* Effect.flip(sessions.list({ limit: 5000 }))).message).toBe(
          "options.limit must be a number between 1 and 1000, got 5000"
        )
        expect((yield* Effect.flip(sessions.list({ status: "gone" } as never))).message).toBe(
          'options.status must be one of active | idle | closed, got "gone"'
        )
      })
    )

    it.effect("error messages name the path and the rule; a duplicate create says the id exists", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const id = fresh("words")
        const robot = yield* Effect.flip(sessions.save(id, [{ role: "robot", parts: [] } as never]))
        expect(robot.message).toBe('role must be one of system | user | assistant | tool, got "robot"')
        const missing = yield* Effect.flip(
          sessions.save(id, [text("user", "ok"), { role: "user", parts: [{ type: "tool-call" }] } as never])
        )
        expect(missing.message).toBe("messages[1].parts[0].toolCallId is missing")
        const metadata = yield* Effect.flip(sessions.create({ metadata: { when: new Date(0) } as never }))
        expect(metadata.message).toBe("metadata.when must be JSON, got a Date")
        yield* sessions.create({ id })
        const exists = yield* Effect.flip(sessions.create({ id }))
        expect(exists).toMatchObject({ _tag: "Conflict", reason: "exists", expected: 0, actual: 1 })
        expect(exists.message).toBe(`Session "${id}" already exists`)
        yield* sessions.update(id, { title: "x" })
        const stale = yield* Effect.flip(sessions.update(id, { title: "y" }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", reason: "version", expected: 1, actual: 2 })
      })
    )

    it.effect("update without expectedVersion never conflicts under contention (32 fibers x 10 updates)", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const created = yield* sessions.create({})
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 32 }, (_, i) => i),
          (i) =>
            Effect.forEach(
              Array.from({ length: 10 }, (_, j) => j),
              (j) => Effect.either(sessions.update(created.id, { title: `${i}.${j}` }))
            ),
          { concurrency: "unbounded" }
        )
        const failures = outcomes.flat().filter((outcome) => outcome._tag === "Left")
        expect(failures.length).toBe(0)
        expect((yield* sessions.get(created.id)).version).toBe(1 + 32 * 10)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const existing = yield* sessions.create({ agentId: fresh("bad-input") })
        yield* sessions.save(existing.id, [text("user", "kept")])
        const snapshot = Effect.map(
          Effect.all([sessions.list({ limit: 1000, order: "desc" }), sessions.load(existing.id)]),
          ([page, transcript]) => [page.items.map((s) => [s.id, s.version, s.messageCount]), transcript]
        )
        yield* BadInput.run(`SessionStore (${label})`, snapshot, [
          BadInput.operation("create", NewSession, (input) => sessions.create(input as never)),
          BadInput.operation("update", SessionPatch, (input) => sessions.update(existing.id, input as never), {
            id: (id) => sessions.update(id as never, { title: "x" }),
            options: {
              schema: UpdateOptions,
              run: (options) => sessions.update(existing.id, { title: "x" }, options as never)
            }
          }),
          BadInput.operation(
            "save",
            Schema.Array(MessageInput),
            (input) => sessions.save(existing.id, input as never),
            {
              id: (id) => sessions.save(id as never, [])
            }
          ),
          BadInput.operation("list", SessionListOptions, (input) => sessions.list(input as never), {
            optional: true
          })
        ])
      })
    )

    it.effect.prop(
      "what is saved loads back equal",
      [Arb.messages],
      ([messages]) =>
        Effect.gen(function* () {
          const sessions = yield* SessionStore
          const id = fresh("prop")
          yield* sessions.save(id, messages)
          expect(Option.getOrThrow(yield* sessions.load(id))).toEqual(messages)
          expect((yield* sessions.get(id)).messageCount).toBe(messages.length)
        }),
      { fastCheck: { numRuns: 40 } }
    )
  })
