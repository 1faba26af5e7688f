/**
 * The `ConversationStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own conversations.
 */
import { expect, layer } from "@effect/vitest"
import { Chunk, DateTime, Effect, Layer, Option, Schema, Stream, TestClock } from "effect"
import {
  ConversationListOptions,
  ConversationPatch,
  ConversationStore,
  ForkOptions,
  MessagePatch,
  MessagesOptions,
  MessagesStreamOptions,
  NewConversation
} from "../../src/Conversation.ts"
import { MessageInput } from "../../src/Message.ts"
import { UpdateOptions } from "../../src/Record.ts"
import { SessionStore } from "../../src/Session.ts"
import * as Arb from "./arbitraries.ts"
import * as BadInput from "./BadInput.ts"
import { fresh } from "./SessionStore.ts"

const text = (role: "user" | "assistant", value: string): MessageInput => ({
  role,
  parts: [{ type: "text", text: value }]
})
const texts = (n: number, from = 1) => Array.from({ length: n }, (_, i) => text("user", `m${from + i}`))
const bodies = (messages: ReadonlyArray<{ readonly parts: ReadonlyArray<unknown> }>) =>
  messages.map((m) => (m.parts[0] as { text: string }).text)

/** Runs the `ConversationStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<SessionStore | ConversationStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`ConversationStore (${label})`, (it) => {
    it.effect("create fills defaults; get and find return it", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        yield* TestClock.setTime(5_000)
        const created = yield* conversations.create({ title: "Plan a trip", model: "gpt-x" })
        expect(created).toMatchObject({ title: "Plan a trip", model: "gpt-x", messageCount: 0, lastSeq: 0, version: 1 })
        expect(created.metadata).toEqual({})
        expect(created.sessionId).toBeUndefined()
        expect(DateTime.toEpochMillis(created.createdAt)).toBe(5_000)
        expect(yield* conversations.get(created.id)).toEqual(created)
        expect(yield* conversations.find(created.id)).toEqual(Option.some(created))
        const id = fresh("missing")
        expect(yield* Effect.flip(conversations.get(id))).toMatchObject({
          _tag: "NotFound",
          entity: "Conversation",
          id
        })
        expect(yield* conversations.find(id)).toEqual(Option.none())
      })
    )

    it.effect("create checks its session, rejects duplicates and bad input, writing nothing", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const session = yield* sessions.create({})
        const id = fresh("conv")
        const inSession = yield* conversations.create({ id, sessionId: session.id, metadata: { topic: "x" } })
        expect(inSession).toMatchObject({ id, sessionId: session.id, metadata: { topic: "x" } })
        expect(yield* Effect.flip(conversations.create({ id }))).toMatchObject({
          _tag: "Conflict",
          entity: "Conversation",
          id,
          expected: 0,
          actual: 1
        })
        const orphan = fresh("orphan")
        const unknownSession = fresh("no-session")
        expect(yield* Effect.flip(conversations.create({ id: orphan, sessionId: unknownSession }))).toMatchObject({
          _tag: "NotFound",
          entity: "Session",
          id: unknownSession
        })
        expect(yield* conversations.find(orphan)).toEqual(Option.none())
        for (const input of [{ id: "" }, { id: orphan, title: 7 }, { id: orphan, metadata: { u: undefined } }]) {
          expect((yield* Effect.flip(conversations.create(input as never)))._tag).toBe("InvalidInput")
        }
        expect(yield* conversations.find(orphan)).toEqual(Option.none())
      })
    )

    it.effect("update patches title, model and metadata with optimistic concurrency", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const created = yield* conversations.create({ title: "a", model: "m1" })
        yield* TestClock.adjust("1 minute")
        const updated = yield* conversations.update(
          created.id,
          { model: null, metadata: { pinned: true } },
          {
            expectedVersion: 1
          }
        )
        expect(updated).toMatchObject({ title: "a", metadata: { pinned: true }, version: 2 })
        expect(updated.model).toBeUndefined()
        expect(DateTime.toEpochMillis(updated.updatedAt)).toBe(DateTime.toEpochMillis(created.updatedAt) + 60_000)
        expect(
          yield* Effect.flip(conversations.update(created.id, { title: "b" }, { expectedVersion: 1 }))
        ).toMatchObject({ _tag: "Conflict", expected: 1, actual: 2 })
        expect(yield* Effect.flip(conversations.update(fresh("x"), { title: "b" }))).toMatchObject({ _tag: "NotFound" })
        expect((yield* Effect.flip(conversations.update(created.id, { title: 3 } as never)))._tag).toBe("InvalidInput")
        expect(yield* conversations.get(created.id)).toEqual(updated)
      })
    )

    it.effect("append assigns gapless seqs and keeps messageCount; it does not bump version", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        yield* TestClock.setTime(10_000)
        const conversation = yield* conversations.create({})
        const first = yield* conversations.append(conversation.id, text("user", "hello"))
        expect(first).toMatchObject({ conversationId: conversation.id, seq: 1, role: "user" })
        expect(DateTime.toEpochMillis(first.createdAt)).toBe(10_000)
        const second = yield* conversations.append(conversation.id, {
          id: "given-id",
          role: "assistant",
          parts: [{ type: "text", text: "hi" }],
          createdAt: 7
        })
        expect(second).toMatchObject({ id: "given-id", seq: 2 })
        expect(DateTime.toEpochMillis(second.createdAt)).toBe(7)
        const batch = yield* conversations.appendMany(conversation.id, texts(3, 3))
        expect(batch.map((m) => m.seq)).toEqual([3, 4, 5])
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 5, lastSeq: 5, version: 1 })
        const stored = yield* conversations.messages(conversation.id)
        expect(stored).toEqual([first, second, ...batch])
      })
    )

    it.effect("append to an unknown conversation is NotFound; bad messages are InvalidInput and write nothing", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const id = fresh("none")
        expect(yield* Effect.flip(conversations.append(id, text("user", "x")))).toMatchObject({
          _tag: "NotFound",
          entity: "Conversation",
          id
        })
        expect(yield* Effect.flip(conversations.appendMany(id, []))).toMatchObject({ _tag: "NotFound" })
        const impossible = "no\u0000such"
        for (const attempt of [
          Effect.asVoid(conversations.get(impossible)),
          Effect.asVoid(conversations.append(impossible, text("user", "x"))),
          Effect.asVoid(conversations.messages(impossible)),
          conversations.clear(impossible),
          Effect.asVoid(conversations.update(impossible, { title: "x" }))
        ]) {
          expect(yield* Effect.flip(attempt)).toMatchObject({ _tag: "NotFound", id: impossible })
        }
        yield* conversations.delete(impossible)
        const conversation = yield* conversations.create({})
        expect(yield* conversations.appendMany(conversation.id, [])).toEqual([])
        const bad: Array<unknown> = [
          { role: "narrator", parts: [] },
          { role: "user", parts: [{ type: "text", text: "y".repeat(1_000_001) }] },
          { role: "user", parts: [{ type: "text" }] },
          { role: "assistant", parts: [{ type: "tool-call", toolCallId: "c", toolName: "t", input: () => 1 }] },
          { role: "assistant", parts: [], metadata: { finishReason: 42 } },
          { role: "assistant", parts: [], metadata: { usage: { inputTokens: -1 } } },
          { role: "assistant", parts: [{ type: "tool-weather", toolCallId: "c", state: "thinking" }] },
          { role: "assistant", parts: [{ type: "text", text: "x", state: "typing" }] },
          { role: "assistant", parts: [{ type: "data-x", data: () => 1 }] },
          { role: "user", parts: [], extra: new Date(0) },
          { id: "", role: "user", parts: [] },
          { id: "\ud800", role: "user", parts: [] },
          { id: "a\u0000", role: "user", parts: [] },
          ...BadInput.jsonObjects.map((metadata) => ({ role: "user", parts: [], metadata })),
          ...BadInput.jsonObjects.map((providerMetadata) => ({
            role: "user",
            parts: [{ type: "text", text: "x", providerMetadata }]
          })),
          ...BadInput.containers({ role: "user", parts: [] }),
          { role: "user", parts: [BadInput.throwingGetter("text", { type: "text" })] },
          { role: "user", parts: BadInput.throwingProxy([], "get") }
        ]
        for (const message of bad) {
          expect((yield* Effect.flip(conversations.append(conversation.id, message as never)))._tag).toBe(
            "InvalidInput"
          )
        }
        const error = yield* Effect.flip(conversations.appendMany(conversation.id, [...texts(2), bad[0] as never]))
        expect(error).toMatchObject({ _tag: "InvalidInput", entity: "Message" })
        if (error._tag === "InvalidInput") expect(error.issues[0]!.path[0]).toBe(2)
        expect(error.message).toBe('messages[2].role must be one of system | user | assistant | tool, got "narrator"')
        const one = yield* Effect.flip(
          conversations.append(conversation.id, { role: "user", parts: [{ type: "tool-call" }] } as never)
        )
        expect(one.message).toBe("parts[0].toolCallId is missing")
        expect(yield* conversations.messages(conversation.id)).toEqual([])
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 0, lastSeq: 0 })
      })
    )

    it.effect("backslashes that only look like an escaped U+0000 are stored as given", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        const tricky = ["\\u0000", "a\\\\u0000", "\\\\\\u0000"].map((value) => text("user", value))
        yield* conversations.appendMany(conversation.id, tricky)
        expect(bodies(yield* conversations.messages(conversation.id))).toEqual(["\\u0000", "a\\\\u0000", "\\\\\\u0000"])
      })
    )

    it.effect("a message id already in the conversation is a Conflict and the batch writes nothing", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.append(conversation.id, { ...text("user", "one"), id: "dup" })
        expect(
          yield* Effect.flip(conversations.append(conversation.id, { ...text("user", "two"), id: "dup" }))
        ).toMatchObject({ _tag: "Conflict", entity: "Message", id: "dup" })
        const error = yield* Effect.flip(
          conversations.appendMany(conversation.id, [text("user", "a"), { ...text("user", "b"), id: "dup" }])
        )
        expect(error._tag).toBe("Conflict")
        expect(bodies(yield* conversations.messages(conversation.id))).toEqual(["one"])
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 1, lastSeq: 1 })
        const other = yield* conversations.create({})
        expect((yield* conversations.append(other.id, { ...text("user", "ok"), id: "dup" })).seq).toBe(1)
      })
    )

    it.effect("appendMany of 12,000 messages (past PostgreSQL's 65,535 bind parameters) is one atomic batch", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        const stored = yield* conversations.appendMany(conversation.id, texts(12_000))
        expect(stored.map((m) => m.seq)).toEqual(Array.from({ length: 12_000 }, (_, i) => i + 1))
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 12_000, lastSeq: 12_000 })
        const failed = yield* Effect.flip(
          conversations.appendMany(conversation.id, [
            ...texts(11_999, 20_000),
            { ...text("user", "dup"), id: stored[5]!.id }
          ])
        )
        expect(failed._tag).toBe("Conflict")
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 12_000, lastSeq: 12_000 })
        expect(bodies(yield* conversations.messages(conversation.id, { limit: 2 }))).toEqual(["m11999", "m12000"])
      })
    )

    it.effect("create racing its session's delete is NotFound for the session, never a StorageError", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 60 }, (_, i) => i),
          () =>
            Effect.gen(function* () {
              const session = yield* sessions.create({})
              const [created] = yield* Effect.all(
                [Effect.either(conversations.create({ sessionId: session.id })), sessions.delete(session.id)],
                { concurrency: "unbounded" }
              )
              if (created._tag === "Right") {
                // Created first: the delete cascaded to it.
                expect(yield* conversations.find(created.right.id)).toEqual(Option.none())
                return "created"
              }
              expect(created.left).toMatchObject({ _tag: "NotFound", entity: "Session", id: session.id })
              return "NotFound"
            }),
          { concurrency: 4 }
        )
        expect(outcomes.length).toBe(60)
      })
    )

    it.effect("concurrent appends get distinct gapless seqs", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        const stored = yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => i),
          (i) => Effect.forEach([0, 1, 2], (j) => conversations.append(conversation.id, text("user", `${i}.${j}`))),
          { concurrency: "unbounded" }
        )
        const seqs = stored
          .flat()
          .map((m) => m.seq)
          .sort((a, b) => a - b)
        expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
        expect((yield* conversations.get(conversation.id)).messageCount).toBe(30)
        expect((yield* conversations.messages(conversation.id)).map((m) => m.seq)).toEqual(seqs)
      })
    )

    it.effect("messages pages by seq: last N, after, before, and both", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.appendMany(conversation.id, texts(20))
        const seqs = (options?: Parameters<typeof conversations.messages>[1]) =>
          Effect.map(conversations.messages(conversation.id, options), (ms) => ms.map((m) => m.seq))
        const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
        expect(yield* seqs()).toEqual(range(1, 20))
        expect(yield* seqs({ limit: 5 })).toEqual(range(16, 20))
        expect(yield* seqs({ after: 5, limit: 3 })).toEqual([6, 7, 8])
        expect(yield* seqs({ after: 17 })).toEqual([18, 19, 20])
        expect(yield* seqs({ before: 10, limit: 3 })).toEqual([7, 8, 9])
        expect(yield* seqs({ before: 4 })).toEqual([1, 2, 3])
        expect(yield* seqs({ after: 3, before: 8 })).toEqual([4, 5, 6, 7])
        expect(yield* seqs({ after: 3, before: 8, limit: 2 })).toEqual([4, 5])
        expect(yield* seqs({ after: 20 })).toEqual([])
        expect(yield* seqs({ limit: 100 })).toEqual(range(1, 20))
        expect((yield* Effect.flip(conversations.messages(conversation.id, { limit: 0 })))._tag).toBe("InvalidInput")
        expect(yield* Effect.flip(conversations.messages(fresh("none")))).toMatchObject({ _tag: "NotFound" })
        const empty = yield* conversations.create({})
        expect(yield* conversations.messages(empty.id, { limit: 5 })).toEqual([])
      })
    )

    it.effect("messages obeys the limits of list: the newest 100 by default, at most 1000", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.appendMany(conversation.id, texts(1_200))
        const seqs = (options?: Parameters<typeof conversations.messages>[1]) =>
          Effect.map(conversations.messages(conversation.id, options), (ms) => ms.map((m) => m.seq))
        const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
        expect(yield* seqs()).toEqual(range(1_101, 1_200))
        expect(yield* seqs({ after: 0 })).toEqual(range(1, 100))
        expect(yield* seqs({ before: 51 })).toEqual(range(1, 50))
        expect(yield* seqs({ limit: 1_000 })).toEqual(range(201, 1_200))
        const tooMany = yield* Effect.flip(conversations.messages(conversation.id, { limit: 1_001 }))
        expect(tooMany).toMatchObject({ _tag: "InvalidInput", entity: "Conversation" })
        expect(tooMany.message).toMatch(/^options\.limit must be .*1000, got 1001/)
      })
    )

    it.effect("messagesStream reads every message in seq order; unknown ids and bad options fail", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.appendMany(conversation.id, texts(1_234))
        const seqs = (options?: MessagesStreamOptions) =>
          Effect.map(Stream.runCollect(conversations.messagesStream(conversation.id, options)), (chunk) =>
            Chunk.toReadonlyArray(chunk).map((m) => m.seq)
          )
        const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
        expect(yield* seqs()).toEqual(range(1, 1_234))
        expect(yield* seqs({ after: 1_100 })).toEqual(range(1_101, 1_234))
        expect(yield* seqs({ after: 1_234 })).toEqual([])
        const all = yield* Stream.runCollect(conversations.messagesStream(conversation.id))
        expect(Chunk.toReadonlyArray(all).slice(-3)).toEqual(
          yield* conversations.messages(conversation.id, { limit: 3 })
        )
        const empty = yield* conversations.create({})
        expect(Chunk.size(yield* Stream.runCollect(conversations.messagesStream(empty.id)))).toBe(0)
        const id = fresh("none")
        expect(yield* Effect.flip(Stream.runDrain(conversations.messagesStream(id)))).toMatchObject({
          _tag: "NotFound",
          entity: "Conversation",
          id
        })
        for (const options of [{ after: 1.5 }, { after: "3" }, null, new Map()]) {
          const error = yield* Effect.flip(
            Stream.runDrain(conversations.messagesStream(conversation.id, options as never))
          )
          expect(error._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("messagesStream reads a page only when pulled: later appends are seen, a delete is NotFound", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.appendMany(conversation.id, texts(150))
        const pull = yield* Stream.toPull(conversations.messagesStream(conversation.id))
        const first = Chunk.toReadonlyArray(yield* pull).map((m) => m.seq)
        expect(first[0]).toBe(1)
        yield* conversations.appendMany(conversation.id, texts(60, 151))
        const rest: Array<number> = []
        for (;;) {
          const next = yield* Effect.either(pull)
          if (next._tag === "Left") {
            expect(next.left).toEqual(Option.none())
            break
          }
          rest.push(...Chunk.toReadonlyArray(next.right).map((m) => m.seq))
        }
        expect([...first, ...rest]).toEqual(Array.from({ length: 210 }, (_, i) => i + 1))

        const doomed = yield* conversations.create({})
        yield* conversations.appendMany(doomed.id, texts(150))
        const pullDoomed = yield* Stream.toPull(conversations.messagesStream(doomed.id))
        expect(Chunk.size(yield* pullDoomed)).toBeGreaterThan(0)
        yield* conversations.delete(doomed.id)
        expect(yield* Effect.flip(pullDoomed)).toEqual(Option.some(expect.objectContaining({ _tag: "NotFound" })))
      }).pipe(Effect.scoped)
    )

    it.effect("clear removes every message, zeroes messageCount and keeps seqs moving forward", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.appendMany(conversation.id, texts(4))
        yield* conversations.clear(conversation.id)
        expect(yield* conversations.messages(conversation.id)).toEqual([])
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 0, lastSeq: 4, version: 1 })
        expect((yield* conversations.append(conversation.id, text("user", "again"))).seq).toBe(5)
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 1, lastSeq: 5 })
        expect(yield* Effect.flip(conversations.clear(fresh("none")))).toMatchObject({ _tag: "NotFound" })
      })
    )

    it.effect("delete removes the conversation and its messages; unknown ids are a no-op", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.appendMany(conversation.id, texts(3))
        yield* conversations.delete(conversation.id)
        expect(yield* conversations.find(conversation.id)).toEqual(Option.none())
        expect((yield* Effect.flip(conversations.messages(conversation.id)))._tag).toBe("NotFound")
        yield* conversations.delete(conversation.id)
        const reused = yield* conversations.create({ id: conversation.id })
        expect(reused.lastSeq).toBe(0)
        expect((yield* conversations.append(reused.id, text("user", "new life"))).seq).toBe(1)
      })
    )

    it.effect("list filters by session and pages by cursor, oldest first", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const session = yield* sessions.create({})
        const made = []
        for (let i = 0; i < 5; i++) {
          yield* TestClock.adjust("1 second")
          made.push(yield* conversations.create({ sessionId: session.id, title: `c${i}` }))
        }
        yield* conversations.create({ title: "elsewhere" })
        const all = yield* conversations.list({ sessionId: session.id })
        expect(all.items).toEqual(made)
        const first = yield* conversations.list({ sessionId: session.id, limit: 2 })
        expect(first.items.map((c) => c.title)).toEqual(["c0", "c1"])
        const second = yield* conversations.list({
          sessionId: session.id,
          limit: 2,
          cursor: Option.getOrThrow(first.nextCursor)
        })
        expect(second.items.map((c) => c.title)).toEqual(["c2", "c3"])
        // A page's nextCursor goes back as it is returned; `Option.none()` reads from the start.
        expect(yield* conversations.list({ sessionId: session.id, limit: 2, cursor: first.nextCursor })).toEqual(second)
        expect(yield* conversations.list({ sessionId: session.id, limit: 2, cursor: Option.none() })).toEqual(first)
        for (const cursor of [Option.some(7), 7, null, {}]) {
          const error = yield* Effect.flip(conversations.list({ cursor } as never))
          expect(error.message).toMatch(/^options\.cursor must be a string or an Option of a string, got /)
        }
        const last = yield* conversations.list({
          sessionId: session.id,
          limit: 2,
          cursor: Option.getOrThrow(second.nextCursor)
        })
        expect(last.items.map((c) => c.title)).toEqual(["c4"])
        expect(last.nextCursor).toEqual(Option.none())
        const desc = yield* conversations.list({ sessionId: session.id, order: "desc", limit: 2, offset: 1 })
        expect(desc.items.map((c) => c.title)).toEqual(["c3", "c2"])
        expect((yield* Effect.flip(conversations.list({ cursor: "%%%" })))._tag).toBe("InvalidInput")
      })
    )

    it.effect("a non-string id is InvalidInput on every operation; a string no record can have is unknown", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        for (const id of [42, null, undefined, {}, ["a"], 1n] as Array<unknown>) {
          const attempts: Array<Effect.Effect<unknown, unknown>> = [
            conversations.get(id as string),
            conversations.find(id as string),
            conversations.update(id as string, { title: "x" }),
            conversations.delete(id as string),
            conversations.append(id as string, text("user", "x")),
            conversations.appendMany(id as string, []),
            conversations.messages(id as string),
            Stream.runDrain(conversations.messagesStream(id as string)),
            conversations.clear(id as string),
            conversations.upsert(id as string, text("user", "x")),
            conversations.updateMessage(id as string, "m", {}),
            conversations.deleteMessages(id as string, []),
            conversations.truncateAfter(id as string, 0),
            conversations.fork(id as string)
          ]
          for (const attempt of attempts) {
            const error = yield* Effect.flip(attempt)
            expect(error).toMatchObject({ _tag: "InvalidInput", entity: "Conversation" })
            expect((error as Error).message).toMatch(/^id must be a string, got /)
          }
        }
        for (const impossible of ["", "x".repeat(256), "\ud800", "\udc00"]) {
          expect(yield* Effect.flip(conversations.get(impossible))).toMatchObject({ _tag: "NotFound", id: impossible })
          expect(yield* Effect.flip(conversations.append(impossible, text("user", "x")))).toMatchObject({
            _tag: "NotFound"
          })
          expect(yield* conversations.find(impossible)).toEqual(Option.none())
        }
        for (const id of ["\ud800", "\udc00", "a\u0000"]) {
          expect((yield* Effect.flip(conversations.create({ id })))._tag).toBe("InvalidInput")
        }
        expect((yield* Effect.flip(conversations.list({ sessionId: "\ud800" })))._tag).toBe("InvalidInput")
        expect((yield* Effect.flip(conversations.create({ model: "m\udc00" })))._tag).toBe("InvalidInput")
      })
    )

    it.effect("content round-trips verbatim, U+0000 and lone surrogates included", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const odd = "nul \u0000 half \ud83d \udc00 \\u0000"
        const created = yield* conversations.create({ metadata: { [odd]: [odd] } })
        expect((yield* conversations.get(created.id)).metadata).toEqual({ [odd]: [odd] })
        const messages: Array<MessageInput> = [
          { role: "user", parts: [{ type: "text", text: odd }], metadata: { [odd]: odd } },
          {
            role: "tool",
            parts: [
              { type: "tool-result", toolCallId: "c", toolName: "cat", output: { bytes: odd } },
              { type: "tool-call", toolCallId: "d", toolName: "cat", input: [odd], providerMetadata: { p: odd } }
            ]
          }
        ]
        const stored = yield* conversations.appendMany(created.id, messages)
        const read = yield* conversations.messages(created.id)
        expect(read).toEqual(stored)
        expect(read.map((m) => [m.parts, m.metadata])).toEqual(messages.map((m) => [m.parts, m.metadata]))
        // JSON text has no negative zero: what append returns is what a read gives back, 0.
        const zero = yield* conversations.append(created.id, {
          role: "assistant",
          parts: [{ type: "text", text: "zero" }],
          metadata: { traceId: -0 }
        })
        expect(Object.is(zero.metadata?.["traceId"], 0)).toBe(true)
        expect((yield* conversations.messages(created.id, { after: zero.seq - 1 }))[0]).toEqual(zero)
      })
    )

    it.effect("expectedVersion, update and window options are validated; nothing written", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const created = yield* conversations.create({ title: "v1" })
        for (const expectedVersion of BadInput.versions) {
          const error = yield* Effect.flip(
            conversations.update(created.id, { title: "x" }, { expectedVersion } as never)
          )
          expect(error.message).toMatch(/^options\.expectedVersion /)
        }
        for (const options of [new Date(), new Map(), null, 7]) {
          expect((yield* Effect.flip(conversations.update(created.id, {}, options as never)))._tag).toBe("InvalidInput")
          expect((yield* Effect.flip(conversations.messages(created.id, options as never)))._tag).toBe("InvalidInput")
          expect((yield* Effect.flip(conversations.list(options as never)))._tag).toBe("InvalidInput")
        }
        expect((yield* Effect.flip(conversations.messages(created.id, { limit: 1.5 }))).message).toMatch(
          /^options\.limit must be an integer, got 1\.5/
        )
        expect(yield* conversations.get(created.id)).toEqual(created)
        const exists = yield* Effect.flip(conversations.create({ id: created.id }))
        expect(exists).toMatchObject({ _tag: "Conflict", reason: "exists" })
        expect(exists.message).toMatch(/already exists/)
      })
    )

    it.effect("update without expectedVersion never conflicts under contention (32 fibers x 10 updates)", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const created = yield* conversations.create({})
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 32 }, (_, i) => i),
          (i) =>
            Effect.forEach(
              Array.from({ length: 10 }, (_, j) => j),
              (j) => Effect.either(conversations.update(created.id, { title: `${i}.${j}` }))
            ),
          { concurrency: "unbounded" }
        )
        expect(outcomes.flat().filter((outcome) => outcome._tag === "Left").length).toBe(0)
        expect((yield* conversations.get(created.id)).version).toBe(1 + 32 * 10)
      })
    )

    it.effect("upsert appends a new id and replaces a stored one in place: same seq, counts and createdAt", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        yield* TestClock.setTime(20_000)
        const conversation = yield* conversations.create({})
        const [first] = yield* conversations.appendMany(conversation.id, [{ ...text("user", "hi"), id: "u1" }])
        yield* TestClock.adjust("1 second")
        const streaming = yield* conversations.upsert(conversation.id, {
          id: "a1",
          role: "assistant",
          parts: [{ type: "text", text: "Hel", state: "streaming" }]
        })
        expect(streaming).toMatchObject({ id: "a1", seq: 2, conversationId: conversation.id })
        expect(DateTime.toEpochMillis(streaming.createdAt)).toBe(21_000)
        yield* TestClock.adjust("1 second")
        const done = yield* conversations.upsert(conversation.id, {
          id: "a1",
          role: "assistant",
          parts: [{ type: "step-start" }, { type: "text", text: "Hello!", state: "done" }],
          metadata: { finishReason: "stop" }
        })
        expect(done).toMatchObject({ id: "a1", seq: 2, metadata: { finishReason: "stop" } })
        expect(DateTime.toEpochMillis(done.createdAt)).toBe(21_000)
        const read = yield* conversations.messages(conversation.id)
        expect(read).toEqual([first, done])
        const after = yield* conversations.get(conversation.id)
        expect(after).toMatchObject({ messageCount: 2, lastSeq: 2, version: 1 })
        expect(DateTime.toEpochMillis(after.updatedAt)).toBe(22_000)
        const dated = yield* conversations.upsert(conversation.id, {
          ...text("user", "edited"),
          id: "u1",
          createdAt: 5
        })
        expect(dated.seq).toBe(1)
        expect(DateTime.toEpochMillis(dated.createdAt)).toBe(5)
        expect((yield* conversations.upsert(conversation.id, text("user", "new id"))).seq).toBe(3)
        expect(yield* Effect.flip(conversations.upsert(fresh("none"), text("user", "x")))).toMatchObject({
          _tag: "NotFound",
          entity: "Conversation"
        })
        expect(
          (yield* Effect.flip(conversations.upsert(conversation.id, { role: "robot", parts: [] } as never)))._tag
        ).toBe("InvalidInput")
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 3, lastSeq: 3 })
      })
    )

    it.effect("concurrent upserts of one id store one message with one seq", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.append(conversation.id, text("user", "question"))
        for (let round = 0; round < 3; round++) {
          const id = `answer-${round}`
          const stored = yield* Effect.forEach(
            Array.from({ length: 16 }, (_, i) => i),
            (i) =>
              i % 4 === 3
                ? conversations.append(conversation.id, text("user", `other ${round}.${i}`))
                : conversations.upsert(conversation.id, { ...text("assistant", `v${i}`), id }),
            { concurrency: "unbounded" }
          )
          const seqs = new Set(stored.filter((m) => m.id === id).map((m) => m.seq))
          expect(seqs.size).toBe(1)
          const all = yield* conversations.messages(conversation.id, { limit: 1000 })
          const mine = all.filter((m) => m.id === id)
          expect(mine.length).toBe(1)
          expect(mine[0]!.seq).toBe([...seqs][0])
          expect(new Set(all.map((m) => m.seq)).size).toBe(all.length)
          expect(stored.map((m) => bodies([m])[0])).toContain(bodies(mine)[0])
        }
        const all = yield* conversations.messages(conversation.id, { limit: 1000 })
        expect(all.map((m) => m.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1))
        expect(yield* conversations.get(conversation.id)).toMatchObject({
          messageCount: all.length,
          lastSeq: all.length
        })
      })
    )

    it.effect("updateMessage replaces the fields given and keeps the rest; unknown messages are NotFound", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        yield* TestClock.setTime(30_000)
        const conversation = yield* conversations.create({})
        const [question, answer] = yield* conversations.appendMany(conversation.id, [
          text("user", "q"),
          {
            role: "assistant",
            parts: [{ type: "text", text: "a" }],
            metadata: { model: "m", traceId: "t" },
            // A field beyond the known ones (kept; TypeScript's MessageInput lists only the known ones).
            channel: "web"
          } as MessageInput
        ])
        yield* TestClock.adjust("1 minute")
        const edited = yield* conversations.updateMessage(conversation.id, answer!.id, {
          parts: [{ type: "text", text: "better", state: "done" }]
        })
        expect(edited).toEqual({ ...answer, parts: [{ type: "text", text: "better", state: "done" }] })
        const cleared = yield* conversations.updateMessage(conversation.id, answer!.id, {
          metadata: null,
          role: "user"
        })
        expect(cleared).toEqual({ ...edited, metadata: undefined, role: "user" })
        expect(cleared.metadata).toBeUndefined()
        const moved = yield* conversations.updateMessage(conversation.id, answer!.id, { createdAt: 7 })
        expect(DateTime.toEpochMillis(moved.createdAt)).toBe(7)
        expect(yield* conversations.messages(conversation.id)).toEqual([question, moved])
        const stored = yield* conversations.get(conversation.id)
        expect(stored).toMatchObject({ messageCount: 2, lastSeq: 2, version: 1 })
        expect(DateTime.toEpochMillis(stored.updatedAt)).toBe(90_000)
        expect(yield* Effect.flip(conversations.updateMessage(conversation.id, "nope", { parts: [] }))).toMatchObject({
          _tag: "NotFound",
          entity: "Message",
          id: "nope"
        })
        expect(yield* Effect.flip(conversations.updateMessage(fresh("none"), answer!.id, {}))).toMatchObject({
          _tag: "NotFound",
          entity: "Conversation"
        })
        for (const patch of [
          { role: "robot" },
          { parts: [{ type: "video" }] },
          { parts: [{ type: "text", text: "y".repeat(1_000_001) }] },
          { metadata: { usage: { inputTokens: -1 } } },
          { channel: "sms" },
          null
        ]) {
          const error = yield* Effect.flip(conversations.updateMessage(conversation.id, answer!.id, patch as never))
          expect(error._tag, JSON.stringify(patch)).toBe("InvalidInput")
        }
        expect(yield* conversations.messages(conversation.id)).toEqual([question, moved])
      })
    )

    it.effect("deleteMessages deletes the ids given, ignores others, lowers messageCount and keeps lastSeq", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        const stored = yield* conversations.appendMany(conversation.id, texts(6))
        const ids = stored.map((m) => m.id)
        expect(yield* conversations.deleteMessages(conversation.id, [ids[1]!, ids[4]!, "unknown", ids[1]!, ""])).toBe(2)
        expect(bodies(yield* conversations.messages(conversation.id))).toEqual(["m1", "m3", "m4", "m6"])
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 4, lastSeq: 6 })
        expect(yield* conversations.deleteMessages(conversation.id, [])).toBe(0)
        expect((yield* conversations.append(conversation.id, text("user", "m7"))).seq).toBe(7)
        expect(yield* Effect.flip(conversations.deleteMessages(fresh("none"), [ids[0]!]))).toMatchObject({
          _tag: "NotFound"
        })
        for (const bad of ["id", [1], [null], null]) {
          const error = yield* Effect.flip(conversations.deleteMessages(conversation.id, bad as never))
          expect(error._tag).toBe("InvalidInput")
        }
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 5, lastSeq: 7 })
      })
    )

    it.effect("truncateAfter deletes the messages after a seq; later appends continue after lastSeq", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        yield* conversations.appendMany(conversation.id, texts(8))
        expect(yield* conversations.truncateAfter(conversation.id, 5)).toBe(3)
        expect(bodies(yield* conversations.messages(conversation.id))).toEqual(["m1", "m2", "m3", "m4", "m5"])
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 5, lastSeq: 8 })
        expect(yield* conversations.truncateAfter(conversation.id, 5)).toBe(0)
        expect((yield* conversations.append(conversation.id, text("assistant", "again"))).seq).toBe(9)
        expect(yield* conversations.truncateAfter(conversation.id, 0)).toBe(6)
        expect(yield* conversations.get(conversation.id)).toMatchObject({ messageCount: 0, lastSeq: 9 })
        for (const seq of [-1, 1.5, "3", null]) {
          const error = yield* Effect.flip(conversations.truncateAfter(conversation.id, seq as never))
          expect(error._tag).toBe("InvalidInput")
        }
        expect(yield* Effect.flip(conversations.truncateAfter(fresh("none"), 1))).toMatchObject({ _tag: "NotFound" })
      })
    )

    it.effect("fork copies the messages up to a seq into a new conversation with the same session and owner", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        yield* TestClock.setTime(40_000)
        const session = yield* sessions.create({})
        const source = yield* conversations.create({
          sessionId: session.id,
          resourceId: "user-7",
          title: "t",
          model: "m",
          metadata: { k: 1 }
        })
        const stored = yield* conversations.appendMany(source.id, [
          ...texts(4),
          { ...text("user", "x"), extra: [1] } as MessageInput
        ])
        yield* conversations.deleteMessages(source.id, [stored[1]!.id])
        yield* TestClock.adjust("1 minute")
        const id = fresh("fork")
        const fork = yield* conversations.fork(source.id, { upTo: 3, id })
        expect(fork).toMatchObject({
          id,
          sessionId: session.id,
          resourceId: "user-7",
          title: "t",
          model: "m",
          metadata: { k: 1 },
          messageCount: 2,
          lastSeq: 3,
          version: 1
        })
        expect(DateTime.toEpochMillis(fork.createdAt)).toBe(100_000)
        expect(yield* conversations.get(id)).toEqual(fork)
        const copied = yield* conversations.messages(id)
        expect(copied).toEqual([stored[0], stored[2]].map((m) => ({ ...m, conversationId: id })))
        expect((yield* conversations.append(id, text("user", "branch"))).seq).toBe(4)
        const whole = yield* conversations.fork(source.id)
        expect(whole).toMatchObject({ messageCount: 4, lastSeq: 5 })
        expect((yield* conversations.messages(whole.id)).at(-1)).toMatchObject({ extra: [1], seq: 5 })
        expect(yield* conversations.fork(source.id, { upTo: 0 })).toMatchObject({ messageCount: 0, lastSeq: 0 })
        expect(yield* conversations.get(source.id)).toMatchObject({ messageCount: 4, lastSeq: 5 })
        expect(yield* Effect.flip(conversations.fork(source.id, { id }))).toMatchObject({
          _tag: "Conflict",
          entity: "Conversation",
          id,
          reason: "exists"
        })
        expect(yield* Effect.flip(conversations.fork(fresh("none")))).toMatchObject({ _tag: "NotFound" })
        for (const options of [{ upTo: -1 }, { upTo: 1.5 }, { id: "" }, { id: "a\u0000" }, null]) {
          const error = yield* Effect.flip(conversations.fork(source.id, options as never))
          expect(error._tag, JSON.stringify(options)).toBe("InvalidInput")
        }
        yield* sessions.delete(session.id)
        expect(yield* conversations.find(id)).toEqual(Option.none())
      })
    )

    it.effect("fork of a conversation with 10,000 messages copies them all, atomically", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const source = yield* conversations.create({})
        yield* conversations.appendMany(source.id, texts(10_000))
        const fork = yield* conversations.fork(source.id)
        expect(fork).toMatchObject({ messageCount: 10_000, lastSeq: 10_000 })
        const half = yield* conversations.fork(source.id, { upTo: 5_000 })
        expect(half).toMatchObject({ messageCount: 5_000, lastSeq: 5_000 })
        expect(bodies(yield* conversations.messages(fork.id, { limit: 2 }))).toEqual(["m9999", "m10000"])
        expect(bodies(yield* conversations.messages(half.id, { limit: 1 }))).toEqual(["m5000"])
        const copied = yield* Stream.runCollect(conversations.messagesStream(fork.id))
        expect(Chunk.size(copied)).toBe(10_000)
        expect(Chunk.toReadonlyArray(copied).map((m) => m.seq)).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1))
      })
    )

    it.effect("resourceId: set on create, changed by update, filtered by list", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const owner = fresh("owner")
        const mine = [
          yield* conversations.create({ resourceId: owner }),
          yield* conversations.create({ resourceId: owner, title: "2" })
        ]
        yield* conversations.create({ resourceId: fresh("other") })
        expect(mine[0]!.resourceId).toBe(owner)
        expect((yield* conversations.list({ resourceId: owner })).items).toEqual(mine)
        const moved = yield* conversations.update(mine[0]!.id, { resourceId: null })
        expect(moved.resourceId).toBeUndefined()
        expect((yield* conversations.list({ resourceId: owner })).items.map((c) => c.id)).toEqual([mine[1]!.id])
        for (const resourceId of ["", "x".repeat(256), "a\u0000", 7]) {
          expect((yield* Effect.flip(conversations.create({ resourceId } as never)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("a message's fields beyond the known ones are kept, in the message, its parts and its metadata", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({})
        const odd = "a\u0000b \ud800"
        const message = {
          id: "rich",
          role: "assistant",
          parts: [
            { type: "text", text: "t", citations: [{ source: { id: "s" } }], mine: { deep: [odd] }, gone: undefined },
            { type: "data-weather", id: "w", data: { temp: 21, unit: undefined } },
            { type: "tool-lookup", toolCallId: "c", state: "output-available", input: {}, output: [odd], extra: 1 }
          ],
          metadata: {
            finishReason: "interrupted",
            usage: { inputTokens: undefined, outputTokens: 3, outputTokenDetails: { textTokens: 3, audio: 0 } },
            custom: { odd }
          },
          channel: { name: odd },
          conversationId: "not this one",
          seq: 999,
          sessionId: "nor this"
        } as const
        const stored = yield* conversations.append(conversation.id, message as never)
        const expected = {
          id: "rich",
          role: "assistant",
          parts: [
            { type: "text", text: "t", citations: [{ source: { id: "s" } }], mine: { deep: [odd] } },
            { type: "data-weather", id: "w", data: { temp: 21 } },
            { type: "tool-lookup", toolCallId: "c", state: "output-available", input: {}, output: [odd], extra: 1 }
          ],
          metadata: {
            finishReason: "interrupted",
            usage: { outputTokens: 3, outputTokenDetails: { textTokens: 3, audio: 0 } },
            custom: { odd }
          },
          channel: { name: odd },
          conversationId: conversation.id,
          seq: 1,
          createdAt: stored.createdAt
        }
        expect(stored).toEqual(expected)
        const [read] = yield* conversations.messages(conversation.id)
        expect(read).toEqual(expected)
        // Fields set to `undefined` are left out, not kept as keys.
        for (const got of [stored, read!])
          expect(Object.keys(got.parts[0]!)).toEqual(["type", "text", "citations", "mine"])
        const again = yield* conversations.append(conversation.id, { ...read!, id: "copy" })
        expect(again).toMatchObject({ id: "copy", seq: 2, conversationId: conversation.id, channel: { name: odd } })
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const conversations = yield* ConversationStore
        const existing = yield* conversations.create({ title: "kept" })
        const kept = yield* conversations.append(existing.id, text("user", "kept"))
        const snapshot = Effect.map(
          Effect.all([conversations.list({ limit: 1000, order: "desc" }), conversations.messages(existing.id)]),
          ([page, messages]) => [page.items.map((c) => [c.id, c.version, c.messageCount]), messages]
        )
        const id = existing.id
        yield* BadInput.run(`ConversationStore (${label})`, snapshot, [
          BadInput.operation("create", NewConversation, (input) => conversations.create(input as never)),
          BadInput.operation("update", ConversationPatch, (input) => conversations.update(id, input as never), {
            id: (bad) => conversations.update(bad as never, {}),
            options: { schema: UpdateOptions, run: (options) => conversations.update(id, {}, options as never) }
          }),
          BadInput.operation("append", MessageInput, (input) => conversations.append(id, input as never), {
            id: (bad) => conversations.append(bad as never, text("user", "x"))
          }),
          BadInput.operation(
            "appendMany",
            Schema.Array(MessageInput),
            (input) => conversations.appendMany(id, input as never),
            {
              valid: BadInput.messages
            }
          ),
          BadInput.operation("list", ConversationListOptions, (input) => conversations.list(input as never), {
            optional: true
          }),
          BadInput.operation("upsert", MessageInput, (input) => conversations.upsert(id, input as never), {
            id: (bad) => conversations.upsert(bad as never, text("user", "x"))
          }),
          BadInput.operation(
            "updateMessage",
            MessagePatch,
            (input) => conversations.updateMessage(id, kept.id, input as never),
            { id: (bad) => conversations.updateMessage(id, bad as never, {}) }
          ),
          BadInput.operation(
            "deleteMessages",
            Schema.Array(Schema.String),
            (input) => conversations.deleteMessages(id, input as never),
            { id: (bad) => conversations.deleteMessages(bad as never, []) }
          ),
          BadInput.operation("truncateAfter", Schema.NonNegativeInt, (input) =>
            conversations.truncateAfter(id, input as never)
          ),
          BadInput.operation("fork", ForkOptions, (input) => conversations.fork(id, input as never), {
            id: (bad) => conversations.fork(bad as never),
            optional: true
          }),
          BadInput.operation("messages", MessagesOptions, (input) => conversations.messages(id, input as never), {
            id: (bad) => conversations.messages(bad as never),
            optional: true
          }),
          BadInput.operation(
            "messagesStream",
            MessagesStreamOptions,
            (input) => Stream.runDrain(conversations.messagesStream(id, input as never)),
            { id: (bad) => Stream.runDrain(conversations.messagesStream(bad as never)), optional: true }
          )
        ])
      })
    )

    it.effect.prop(
      "what is appended reads back equal",
      [Arb.messages],
      ([messages]) =>
        Effect.gen(function* () {
          const conversations = yield* ConversationStore
          const conversation = yield* conversations.create({})
          const stored = yield* conversations.appendMany(conversation.id, messages)
          const read = yield* conversations.messages(conversation.id)
          expect(read).toEqual(stored)
          expect(read).toEqual(messages.map((m, i) => ({ ...m, conversationId: conversation.id, seq: i + 1 })))
        }),
      { fastCheck: { numRuns: 40 } }
    )
  })
