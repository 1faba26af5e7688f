/**
 * The `SessionBroker` contract, run against every backend: `suite(label, layer)`.
 * Tests share one broker per backend, so each uses its own sessions and agent ids.
 * The tests run under `TestClock`, where a subscriber's poll never fires unless
 * the test moves the clock: every live delivery they see came from a wake-up.
 */
import { expect, layer } from "@effect/vitest"
import { Chunk, DateTime, Effect, Fiber, Layer, Option, Ref, Schema, Stream, TestClock } from "effect"
import {
  BrokerListOptions,
  HistoryOptions,
  SessionBroker,
  type SessionMessage,
  type SessionSummary,
  SpawnRequest,
  SubscribeOptions
} from "../../src/Broker.ts"
import { ConversationStore } from "../../src/Conversation.ts"
import { MessageInput } from "../../src/Message.ts"
import type { Page } from "../../src/Page.ts"
import { SessionStore } from "../../src/Session.ts"
import * as BadInput from "./BadInput.ts"
import { fresh } from "./SessionStore.ts"

const text = (value: string, role: "user" | "assistant" = "user"): MessageInput => ({
  role,
  parts: [{ type: "text", text: value }]
})
const bodies = (messages: ReadonlyArray<{ readonly parts: ReadonlyArray<unknown> }>) =>
  messages.map((m) => (m.parts[0] as { text: string }).text)

/** Waits on the real clock (TestClock does not move), letting forked subscribers reach the database. */
const settle = (ms = 150) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/** Collects a subscription in the background; `seen` holds what arrived so far. */
const collect = (stream: Stream.Stream<SessionMessage, unknown>) =>
  Effect.gen(function* () {
    const seen = yield* Ref.make<ReadonlyArray<SessionMessage>>([])
    const fiber = yield* Effect.fork(Stream.runForEach(stream, (m) => Ref.update(seen, (all) => [...all, m])))
    return { seen, fiber }
  })

/** Waits (real time, bounded) until `seen` holds `n` messages. */
const waitFor = (seen: Ref.Ref<ReadonlyArray<SessionMessage>>, n: number, timeoutMs = 20_000) =>
  Effect.gen(function* () {
    const deadline = performance.now() + timeoutMs
    while ((yield* Ref.get(seen)).length < n) {
      if (performance.now() > deadline) {
        const got = yield* Ref.get(seen)
        return yield* Effect.dieMessage(`subscriber has ${got.length} of ${n} messages: ${bodies(got).join(",")}`)
      }
      yield* settle(10)
    }
    return yield* Ref.get(seen)
  })

/** Runs the `SessionBroker` contract against `stores` (a bundle with the broker on top). */
export const suite = <E>(label: string, stores: Layer.Layer<SessionBroker | SessionStore | ConversationStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`SessionBroker (${label})`, (it) => {
    it.effect("spawn creates an active session and its conversation, with initial messages", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        yield* TestClock.setTime(7_000)
        const agentId = fresh("agent")
        const spawned = yield* broker.spawn({
          agentId,
          channel: "cli",
          title: "Trip",
          model: "gpt-x",
          metadata: { k: [1, "\u0000"] },
          messages: [text("be brief", "user"), text("ok", "assistant")]
        })
        expect(spawned).toMatchObject({ agentId, channel: "cli", title: "Trip", status: "active", lastSeq: 2 })
        expect(spawned.conversationId).toBe(spawned.id)
        expect(spawned.metadata).toEqual({ k: [1, "\u0000"] })
        expect(DateTime.toEpochMillis(spawned.createdAt)).toBe(7_000)
        expect(yield* sessions.get(spawned.id)).toMatchObject({ agentId, status: "active", title: "Trip" })
        expect(yield* conversations.get(spawned.id)).toMatchObject({
          sessionId: spawned.id,
          model: "gpt-x",
          messageCount: 2
        })
        const history = yield* broker.history(spawned.id)
        expect(bodies(history)).toEqual(["be brief", "ok"])
        expect(history.map((m) => [m.seq, m.sessionId, m.role])).toEqual([
          [1, spawned.id, "user"],
          [2, spawned.id, "assistant"]
        ])
        const plain = yield* broker.spawn()
        expect(plain).toMatchObject({ status: "active", lastSeq: 0, metadata: {} })
        expect(plain.agentId).toBeUndefined()
        expect(yield* broker.history(plain.id)).toEqual([])
        const given = fresh("given")
        expect((yield* broker.spawn({ id: given })).id).toBe(given)
      })
    )

    it.effect("spawn is all or nothing: a taken id, a bad message or a failed initial append leave nothing", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const taken = yield* broker.spawn({ messages: [text("first")] })
        expect(yield* Effect.flip(broker.spawn({ id: taken.id }))).toMatchObject({
          _tag: "Conflict",
          entity: "Session",
          id: taken.id,
          reason: "exists"
        })
        expect(bodies(yield* broker.history(taken.id))).toEqual(["first"])
        const id = fresh("atomic")
        const bad = yield* Effect.flip(
          broker.spawn({ id, messages: [text("a"), { role: "narrator", parts: [] } as never] })
        )
        expect(bad._tag).toBe("InvalidInput")
        expect(yield* sessions.find(id)).toEqual(Option.none())
        const duplicate = yield* Effect.flip(
          broker.spawn({
            id,
            messages: [
              { ...text("a"), id: "m1" },
              { ...text("b"), id: "m1" }
            ]
          })
        )
        expect(duplicate).toMatchObject({ _tag: "Conflict", entity: "Message" })
        expect(yield* sessions.find(id)).toEqual(Option.none())
        expect(yield* conversations.find(id)).toEqual(Option.none())
        // A conversation of that id the broker did not make: Conflict, and the session is not left behind.
        const foreign = fresh("foreign")
        yield* conversations.create({ id: foreign })
        expect(yield* Effect.flip(broker.spawn({ id: foreign }))).toMatchObject({
          _tag: "Conflict",
          entity: "Conversation",
          id: foreign
        })
        expect(yield* sessions.find(foreign)).toEqual(Option.none())
      })
    )

    it.effect("send appends in order; unknown sessions are NotFound; closed ones refuse with SessionError", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const conversations = yield* ConversationStore
        yield* TestClock.setTime(10_000)
        const { id } = yield* broker.spawn({})
        const first = yield* broker.send(id, text("hello"))
        expect(first).toMatchObject({ sessionId: id, conversationId: id, seq: 1, role: "user" })
        expect(DateTime.toEpochMillis(first.createdAt!)).toBe(10_000)
        const second = yield* broker.send(id, { ...text("\u0000 verbatim \ud83d\ude00", "assistant"), id: "m-2" })
        expect(second).toMatchObject({ seq: 2, id: "m-2" })
        expect(yield* Effect.flip(broker.send(id, { ...text("again"), id: "m-2" }))).toMatchObject({
          _tag: "Conflict",
          entity: "Message"
        })
        expect(bodies(yield* broker.history(id))).toEqual(["hello", "\u0000 verbatim \ud83d\ude00"])
        const unknown = fresh("nobody")
        expect(yield* Effect.flip(broker.send(unknown, text("x")))).toMatchObject({
          _tag: "NotFound",
          entity: "Session",
          id: unknown
        })
        expect(yield* Effect.flip(broker.send("", text("x")))).toMatchObject({ _tag: "NotFound", entity: "Session" })
        expect(yield* conversations.find(unknown)).toEqual(Option.none())
        yield* broker.close(id)
        yield* broker.close(id)
        const refused = yield* Effect.flip(broker.send(id, text("late")))
        expect(refused).toMatchObject({ _tag: "SessionError", sessionId: id })
        expect(refused.message).toMatch(/closed/)
        expect(yield* broker.history(id)).toHaveLength(2)
        expect(yield* Effect.flip(broker.close(unknown))).toMatchObject({ _tag: "NotFound", entity: "Session" })
      })
    )

    it.effect("the broker's chat is the session's: load reads what was sent, save replaces it; spawn's owner", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const owner = fresh("owner")
        const spawned = yield* broker.spawn({ resourceId: owner, messages: [text("system prompt")] })
        yield* broker.send(spawned.id, text("question"))
        yield* broker.send(spawned.id, text("answer", "assistant"))
        const loaded = Option.getOrThrow(yield* sessions.load(spawned.id))
        expect(bodies(loaded)).toEqual(["system prompt", "question", "answer"])
        expect(yield* sessions.get(spawned.id)).toMatchObject({ resourceId: owner, messageCount: 3 })
        expect(yield* conversations.get(spawned.id)).toMatchObject({ resourceId: owner })
        expect((yield* sessions.list({ resourceId: owner })).items.map((s) => s.id)).toEqual([spawned.id])
        yield* sessions.save(spawned.id, [...loaded, text("saved")])
        expect(bodies(yield* broker.history(spawned.id))).toEqual(["system prompt", "question", "answer", "saved"])
        expect((yield* broker.history(spawned.id)).map((m) => m.seq)).toEqual([1, 2, 3, 4])
      })
    )

    it.effect("history windows: the newest `limit`, before a seq, after a seq", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const { id } = yield* broker.spawn({})
        for (let i = 1; i <= 7; i++) yield* broker.send(id, text(`m${i}`))
        expect(bodies(yield* broker.history(id, { limit: 3 }))).toEqual(["m5", "m6", "m7"])
        expect(bodies(yield* broker.history(id, { limit: 2, before: 5 }))).toEqual(["m3", "m4"])
        expect(bodies(yield* broker.history(id, { limit: 2, after: 5 }))).toEqual(["m6", "m7"])
        expect(bodies(yield* broker.history(id, { before: 1 }))).toEqual([])
        expect(yield* Effect.flip(broker.history(fresh("nobody")))).toMatchObject({ _tag: "NotFound" })
        expect((yield* Effect.flip(broker.history(id, { limit: 0 }))).message).toMatch(/^options\.limit /)
      })
    )

    it.effect("sessions made without the broker are adopted: send creates their conversation", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const sessions = yield* SessionStore
        const conversations = yield* ConversationStore
        const agentId = fresh("adopt")
        const session = yield* sessions.create({ agentId })
        expect(yield* broker.history(session.id)).toEqual([])
        const page = yield* broker.list({ agentId })
        expect(page.items).toMatchObject([{ id: session.id, messageCount: 0 }])
        expect(page.items[0]!.lastMessageAt).toBeUndefined()
        const seen = yield* collect(broker.subscribe(session.id))
        yield* settle()
        yield* broker.send(session.id, text("adopted"))
        expect(bodies(yield* waitFor(seen.seen, 1))).toEqual(["adopted"])
        expect(yield* conversations.get(session.id)).toMatchObject({ sessionId: session.id, messageCount: 1 })
        yield* broker.close(session.id)
        yield* Fiber.join(seen.fiber)
      })
    )

    it.effect("list shows live sessions with message counts and last message times; status filters; pages", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const sessions = yield* SessionStore
        const agentId = fresh("lister")
        const ids: Array<string> = []
        for (let i = 0; i < 7; i++) {
          yield* TestClock.setTime(20_000 + i)
          ids.push((yield* broker.spawn({ agentId, title: `s${i}` })).id)
        }
        yield* TestClock.setTime(30_000)
        yield* broker.send(ids[0]!, text("a"))
        yield* TestClock.setTime(31_000)
        yield* broker.send(ids[0]!, text("b"))
        yield* sessions.update(ids[2]!, { status: "idle" })
        for (const i of [1, 3, 4]) yield* broker.close(ids[i]!)
        const live = yield* broker.list({ agentId })
        expect(live.items.map((s) => s.id)).toEqual([ids[0], ids[2], ids[5], ids[6]])
        expect(live.nextCursor).toEqual(Option.none())
        const first = live.items[0]!
        expect(first).toMatchObject({ agentId, title: "s0", status: "active", messageCount: 2 })
        expect(DateTime.toEpochMillis(first.lastMessageAt!)).toBe(31_000)
        expect(live.items[1]).toMatchObject({ status: "idle", messageCount: 0 })
        const closed = yield* broker.list({ agentId, status: "closed" })
        expect(closed.items.map((s) => s.id)).toEqual([ids[1], ids[3], ids[4]])
        expect((yield* broker.list({ agentId, status: "idle" })).items.map((s) => s.id)).toEqual([ids[2]])
        // Pages of 2 over the live ones skip the closed in between, with no repeats and no gaps.
        const paged: Array<string> = []
        let cursor: string | undefined = undefined
        for (let guard = 0; guard < 10; guard++) {
          const page: Page<SessionSummary> = yield* broker.list(
            cursor === undefined ? { agentId, limit: 2 } : { agentId, limit: 2, cursor }
          )
          paged.push(...page.items.map((s) => s.id))
          if (Option.isNone(page.nextCursor)) break
          cursor = page.nextCursor.value
        }
        expect(paged).toEqual([ids[0], ids[2], ids[5], ids[6]])
        const newest = yield* broker.list({ agentId, order: "desc", limit: 3 })
        expect(newest.items.map((s) => s.id)).toEqual([ids[6], ids[5], ids[2]])
        const rest = yield* broker.list({
          agentId,
          order: "desc",
          limit: 3,
          cursor: Option.getOrThrow(newest.nextCursor)
        })
        expect(rest.items.map((s) => s.id)).toEqual([ids[0]])
        expect((yield* Effect.flip(broker.list({ cursor: "nope" })))._tag).toBe("InvalidInput")
      })
    )

    it.effect("subscribe delivers what is sent after it starts, in order, through wake-ups", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const { id } = yield* broker.spawn({ messages: [text("before-1"), text("before-2")] })
        const sub = yield* collect(broker.subscribe(id))
        // Probe until the subscriber is in place; everything from its first message on arrives with no gap.
        let probes = 0
        while ((yield* Ref.get(sub.seen)).length === 0 && probes < 100) {
          yield* broker.send(id, text(`probe-${probes++}`))
          yield* settle(50)
        }
        for (let i = 0; i < 10; i++) yield* broker.send(id, text(`live-${i}`))
        const firstProbe = bodies(yield* Ref.get(sub.seen))[0]!
        const from = Number(firstProbe.slice("probe-".length))
        const expected = [
          ...Array.from({ length: probes - from }, (_, i) => `probe-${from + i}`),
          ...Array.from({ length: 10 }, (_, i) => `live-${i}`)
        ]
        const got = yield* waitFor(sub.seen, expected.length)
        expect(bodies(got)).toEqual(expected)
        expect(got.map((m) => m.seq)).toEqual(expected.map((_, i) => got[0]!.seq + i))
        expect(got.every((m) => m.sessionId === id)).toBe(true)
        yield* broker.close(id)
        yield* Fiber.join(sub.fiber)
        expect(yield* Ref.get(sub.seen)).toHaveLength(expected.length)
      })
    )

    it.effect("subscribe from a seq: stored messages first, then live ones, no gap, no repeat; ends at close", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const { id } = yield* broker.spawn({ messages: [text("m1"), text("m2"), text("m3")] })
        const sub = yield* collect(broker.subscribe(id, { from: 2 }))
        const whole = yield* collect(broker.subscribe(id, { from: 0 }))
        expect(bodies(yield* waitFor(sub.seen, 2))).toEqual(["m2", "m3"])
        yield* broker.send(id, text("m4"))
        yield* broker.send(id, text("m5"))
        expect(bodies(yield* waitFor(sub.seen, 4))).toEqual(["m2", "m3", "m4", "m5"])
        yield* broker.close(id)
        yield* Fiber.join(sub.fiber)
        yield* Fiber.join(whole.fiber)
        expect(bodies(yield* Ref.get(sub.seen))).toEqual(["m2", "m3", "m4", "m5"])
        expect(bodies(yield* Ref.get(whole.seen))).toEqual(["m1", "m2", "m3", "m4", "m5"])
        // A closed session's subscription replays from `from` and ends; without `from` it ends at once.
        expect(bodies(Chunk.toArray(yield* Stream.runCollect(broker.subscribe(id, { from: 4 }))))).toEqual(["m4", "m5"])
        expect(Chunk.toArray(yield* Stream.runCollect(broker.subscribe(id)))).toEqual([])
      })
    )

    it.effect("each subscriber gets its own copy of a sent message, equal to what history reads", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const { id } = yield* broker.spawn({})
        const subs = yield* Effect.all([collect(broker.subscribe(id)), collect(broker.subscribe(id))])
        yield* settle()
        const sent = yield* broker.send(id, {
          role: "assistant",
          parts: [
            { type: "text", text: "calling" },
            { type: "tool-call", toolCallId: "c1", toolName: "search", input: { query: "tickets", tags: ["db", 2] } }
          ],
          metadata: { model: "m", custom: { nested: [1, { deep: true }] } }
        })
        // The sender changes what it got back; no subscriber sees that.
        ;(sent.parts[0] as { text: string }).text = "changed by the sender"
        const [first, second] = [yield* waitFor(subs[0].seen, 1), yield* waitFor(subs[1].seen, 1)]
        const [stored] = yield* broker.history(id, { limit: 1 })
        expect(first[0]).toEqual(stored)
        expect(second[0]).toEqual(stored)
        expect(first[0]!.parts).not.toBe(second[0]!.parts)
        ;(first[0]!.parts[0] as { text: string }).text = "changed by a subscriber"
        expect((second[0]!.parts[0] as { text: string }).text).toBe("calling")
        yield* broker.close(id)
        for (const sub of subs) yield* Fiber.join(sub.fiber)
      })
    )

    it.effect("many senders and subscribers: every subscriber sees every message once, in seq order", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const { id } = yield* broker.spawn({})
        const subs = yield* Effect.all([
          collect(broker.subscribe(id, { from: 1 })),
          collect(broker.subscribe(id, { from: 1 }))
        ])
        yield* Effect.forEach(
          [0, 1, 2, 3],
          (writer) =>
            Effect.forEach(
              Array.from({ length: 30 }, (_, i) => i),
              (i) => broker.send(id, text(`w${writer}-${i}`))
            ),
          { concurrency: "unbounded", discard: true }
        )
        yield* broker.close(id)
        for (const sub of subs) {
          yield* Fiber.join(sub.fiber)
          const got = yield* Ref.get(sub.seen)
          expect(got.map((m) => m.seq)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1))
          for (let writer = 0; writer < 4; writer++) {
            const own = bodies(got).filter((b) => b.startsWith(`w${writer}-`))
            expect(own).toEqual(Array.from({ length: 30 }, (_, i) => `w${writer}-${i}`))
          }
        }
      })
    )

    it.effect("messages appended by ConversationStore directly arrive on the next poll", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const conversations = yield* ConversationStore
        const { id } = yield* broker.spawn({})
        const sub = yield* collect(broker.subscribe(id, { from: 1 }))
        yield* settle()
        yield* conversations.append(id, text("quiet"))
        yield* settle()
        expect(yield* Ref.get(sub.seen)).toEqual([])
        yield* TestClock.adjust("1 second")
        expect(bodies(yield* waitFor(sub.seen, 1))).toEqual(["quiet"])
        yield* broker.close(id)
        yield* Fiber.join(sub.fiber)
      })
    )

    it.effect("subscribe: an unknown session is NotFound; a deleted one fails its subscribers with NotFound", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const sessions = yield* SessionStore
        const unknown = fresh("nobody")
        expect(yield* Effect.flip(Stream.runDrain(broker.subscribe(unknown)))).toMatchObject({
          _tag: "NotFound",
          entity: "Session",
          id: unknown
        })
        expect(yield* Effect.flip(Stream.runDrain(broker.subscribe(unknown, { from: 1 })))).toMatchObject({
          _tag: "NotFound"
        })
        const { id } = yield* broker.spawn({})
        const sub = yield* collect(broker.subscribe(id))
        yield* settle()
        yield* sessions.delete(id)
        yield* TestClock.adjust("1 second")
        expect(yield* Effect.flip(Fiber.join(sub.fiber))).toMatchObject({
          _tag: "NotFound",
          id
        })
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const broker = yield* SessionBroker
        const sessions = yield* SessionStore
        const { id } = yield* broker.spawn({ messages: [text("kept")] })
        const snapshot = Effect.map(
          Effect.all([sessions.list({ limit: 1000, order: "desc" }), broker.history(id)]),
          ([page, messages]) => [page.items.map((s) => [s.id, s.version, s.status]), messages.length]
        )
        yield* BadInput.run(`SessionBroker (${label})`, snapshot, [
          BadInput.operation("spawn", SpawnRequest, (input) => broker.spawn(input as never), { optional: true }),
          BadInput.operation("list", BrokerListOptions, (input) => broker.list(input as never), { optional: true }),
          BadInput.operation("send", MessageInput, (input) => broker.send(id, input as never), {
            id: (bad) => broker.send(bad as never, text("x"))
          }),
          BadInput.operation("history", HistoryOptions, (input) => broker.history(id, input as never), {
            id: (bad) => broker.history(bad as never),
            optional: true
          }),
          BadInput.operation(
            "subscribe",
            SubscribeOptions,
            (input) => Stream.runDrain(broker.subscribe(id, input as never)),
            { id: (bad) => Stream.runDrain(broker.subscribe(bad as never)), optional: true }
          ),
          BadInput.operation("close", Schema.String, (input) => broker.close(input as never))
        ])
      })
    )
  })
