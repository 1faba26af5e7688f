/**
 * The `EventStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own stream ids.
 */
import { expect, layer } from "@effect/vitest"
import { Chunk, DateTime, Effect, Fiber, type Layer, Option, Schema, Stream, TestClock, TestServices } from "effect"
import {
  EventAppendOptions,
  EventInputs,
  EventStore,
  EventReadAllOptions,
  EventReadOptions,
  type StoredEvent,
  EventStreamsOptions,
  EventSubscribeOptions,
  truncatedType
} from "../../src/Event.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

const ev = (type: string, payload: unknown = {}) => ({ type, payload })

const seqs = (events: ReadonlyArray<StoredEvent>) => events.map((e) => e.seq)

/** Runs the `EventStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<EventStore, E>) =>
  layer(stores, { timeout: "120 seconds" })(`EventStore (${label})`, (it) => {
    it.effect("append stores the batch with gapless seqs, increasing positions and content verbatim", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const stream = fresh("order")
        yield* TestClock.setTime(1_700_000_000_000)
        const content = { text: "nul \u0000 lone \ud800 end", nested: [1, { a: null }], emoji: "🧪" }
        const first = yield* events.append(stream, [
          ev("order.placed", content),
          { type: "order.paid", payload: 42, metadata: { user: "u1", "\u0000k": "v" } },
          { id: `${stream}-custom`, type: "order.shipped", payload: "text \u0000" }
        ])
        expect(seqs(first)).toEqual([1, 2, 3])
        expect(first[1]!.position).toBe(first[0]!.position + 1)
        expect(first[2]!.position).toBe(first[0]!.position + 2)
        expect(first[0]).toMatchObject({ streamId: stream, type: "order.placed", payload: content, metadata: {} })
        expect(first[1]!.metadata).toEqual({ user: "u1", "\u0000k": "v" })
        expect(first[2]!.id).toBe(`${stream}-custom`)
        expect(DateTime.toEpochMillis(first[0]!.createdAt)).toBe(1_700_000_000_000)
        expect(yield* events.read(stream)).toEqual(first)
        const more = yield* events.append(stream, [ev("order.closed")])
        expect(more[0]!.seq).toBe(4)
        expect(more[0]!.position).toBeGreaterThan(first[2]!.position)
        expect(yield* events.version(stream)).toBe(4)
        expect(yield* events.version(fresh("none"))).toBe(0)
        expect(yield* events.version("no\u0000such")).toBe(0)
        expect(yield* events.read(fresh("none"))).toEqual([])
      })
    )

    it.effect("expectedVersion: a number, any, noStream, streamExists; a mismatch is Conflict and writes nothing", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const stream = fresh("cas")
        const exists = yield* Effect.flip(events.append(stream, [ev("a")], { expectedVersion: "streamExists" }))
        expect(exists).toMatchObject({ _tag: "Conflict", entity: "EventStream", id: stream, expected: 1, actual: 0 })
        const ahead = yield* Effect.flip(events.append(stream, [ev("a")], { expectedVersion: 2 }))
        expect(ahead).toMatchObject({ _tag: "Conflict", expected: 2, actual: 0 })
        expect(yield* events.version(stream)).toBe(0)
        yield* events.append(stream, [ev("a"), ev("b")], { expectedVersion: "noStream" })
        const again = yield* Effect.flip(events.append(stream, [ev("c")], { expectedVersion: "noStream" }))
        expect(again).toMatchObject({ _tag: "Conflict", expected: 0, actual: 2, reason: "exists" })
        const zero = yield* Effect.flip(events.append(stream, [ev("c")], { expectedVersion: 0 }))
        expect(zero).toMatchObject({ _tag: "Conflict", expected: 0, actual: 2 })
        const stale = yield* Effect.flip(events.append(stream, [ev("c"), ev("d")], { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", expected: 1, actual: 2 })
        expect(yield* events.version(stream)).toBe(2)
        expect(seqs(yield* events.append(stream, [ev("c")], { expectedVersion: 2 }))).toEqual([3])
        expect(seqs(yield* events.append(stream, [ev("d")], { expectedVersion: "streamExists" }))).toEqual([4])
        expect(seqs(yield* events.append(stream, [ev("e")], { expectedVersion: "any" }))).toEqual([5])
        expect(seqs(yield* events.append(stream, [ev("f")]))).toEqual([6])
        const other = fresh("cas0")
        expect(seqs(yield* events.append(other, [ev("a")], { expectedVersion: 0 }))).toEqual([1])
        expect((yield* events.read(stream)).map((e) => e.type)).toEqual(["a", "b", "c", "d", "e", "f"])
      })
    )

    it.effect("a batch is all or nothing: a taken event id is Conflict and nothing of the batch is written", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const stream = fresh("atomic")
        const id = `${stream}-e1`
        yield* events.append(stream, [{ id, type: "a", payload: 1 }])
        const before = yield* events.readAll({ after: 0, limit: 1000, types: ["atomic.x"] })
        const error = yield* Effect.flip(
          events.append(stream, [
            { type: "atomic.x", payload: 2 },
            { id, type: "atomic.x", payload: 3 }
          ])
        )
        expect(error).toMatchObject({ _tag: "Conflict", entity: "Event", id, reason: "exists" })
        const elsewhere = yield* Effect.flip(events.append(fresh("atomic"), [{ id, type: "atomic.x", payload: 4 }]))
        expect(elsewhere).toMatchObject({ _tag: "Conflict", id })
        expect(yield* events.version(stream)).toBe(1)
        expect(yield* events.readAll({ after: 0, limit: 1000, types: ["atomic.x"] })).toEqual(before)
        const twice = yield* Effect.flip(
          events.append(stream, [
            { id: "same", type: "a", payload: 1 },
            { id: "same", type: "a", payload: 2 }
          ])
        )
        expect(twice).toMatchObject({ _tag: "InvalidInput", issues: [{ path: ["events", 1, "id"] }] })
        // A later append still takes the next seq: the failed ones left no trace.
        expect(seqs(yield* events.append(stream, [ev("b")]))).toEqual([2])
      })
    )

    it.effect("read: after, limit, backward", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const stream = fresh("read")
        yield* events.append(
          stream,
          Array.from({ length: 10 }, (_, i) => ev("n", i))
        )
        expect(seqs(yield* events.read(stream, { after: 7 }))).toEqual([8, 9, 10])
        expect(seqs(yield* events.read(stream, { after: 2, limit: 3 }))).toEqual([3, 4, 5])
        expect(seqs(yield* events.read(stream, { direction: "backward", limit: 3 }))).toEqual([10, 9, 8])
        expect(seqs(yield* events.read(stream, { direction: "backward", after: 3 }))).toEqual([2, 1])
        expect(seqs(yield* events.read(stream, { after: 10 }))).toEqual([])
        for (const options of [{ limit: 0 }, { limit: 1001 }, { after: -1 }, { direction: "up" }, { after: 1.5 }]) {
          expect((yield* Effect.flip(events.read(stream, options as never)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("readAll: position order across streams, after, limit, types", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const a = fresh("all-a")
        const b = fresh("all-b")
        const type = fresh("t")
        const x = yield* events.append(a, [ev(`${type}.1`, 1)])
        yield* events.append(b, [ev(`${type}.2`, 2), ev(`${type}.1`, 3)])
        yield* events.append(a, [ev(`${type}.3`, 4)])
        const start = x[0]!.position - 1
        const all = yield* events.readAll({ after: start, limit: 4 })
        expect(all.map((e) => e.payload)).toEqual([1, 2, 3, 4])
        expect(all.map((e) => e.streamId)).toEqual([a, b, b, a])
        for (let i = 1; i < all.length; i++) expect(all[i]!.position).toBeGreaterThan(all[i - 1]!.position)
        expect((yield* events.readAll({ after: all[1]!.position, limit: 2 })).map((e) => e.payload)).toEqual([3, 4])
        const typed = yield* events.readAll({ after: start, types: [`${type}.1`, `${type}.3`] })
        expect(typed.map((e) => e.payload)).toEqual([1, 3, 4])
        for (const options of [{ types: [] }, { types: [""] }, { after: -1 }, { limit: 0 }, { types: "x" }]) {
          expect((yield* Effect.flip(events.readAll(options as never)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("streams: paged by id, filtered by prefix", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const prefix = fresh("list")
        // Code point order on every backend: "Z" < "a" < "é" < "\uffef" < "😀" (an astral code point sorts last).
        const ids = ["c", "a", "😀", "é", "Z", "\uffef", "b"].map((s) => `${prefix}/${s}`)
        yield* TestClock.setTime(5_000)
        for (const [i, id] of ids.entries()) {
          yield* events.append(
            id,
            Array.from({ length: i + 1 }, () => ev("x"))
          )
        }
        yield* events.append(`${prefix}-outside`, [ev("x")])
        const walk = (order: "asc" | "desc") =>
          Effect.gen(function* () {
            const found: Array<string> = []
            let cursor: Option.Option<string> = Option.none()
            do {
              const page = yield* events.streams({
                prefix: `${prefix}/`,
                limit: 2,
                order,
                ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
              })
              found.push(...page.items.map((s) => s.streamId))
              cursor = page.nextCursor
            } while (Option.isSome(cursor))
            return found
          })
        const sorted = ["Z", "a", "b", "c", "é", "\uffef", "😀"].map((s) => `${prefix}/${s}`)
        expect(yield* walk("asc")).toEqual(sorted)
        expect(yield* walk("desc")).toEqual([...sorted].reverse())
        const page = yield* events.streams({ prefix: `${prefix}/a` })
        expect(page.items).toEqual([
          {
            streamId: `${prefix}/a`,
            version: 2,
            truncatedBefore: 1,
            createdAt: DateTime.unsafeMake(5_000),
            updatedAt: DateTime.unsafeMake(5_000)
          }
        ])
        for (const options of [{ cursor: "nope" }, { limit: 0 }, { prefix: 1 }]) {
          expect((yield* Effect.flip(events.streams(options as never)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("subscribe: stored events, then live ones as they commit, without gap or duplicate", () =>
      TestServices.provideLive(
        Effect.gen(function* () {
          const events = yield* EventStore
          const stream = fresh("sub")
          yield* events.append(stream, [ev("a", 1), ev("a", 2), ev("a", 3)])
          const total = 3 + 20 * 5
          const fiber = yield* Effect.fork(Stream.runCollect(Stream.take(events.subscribe(stream), total)))
          const fromTwo = yield* Effect.fork(
            Stream.runCollect(Stream.take(events.subscribe(stream, { from: 2 }), total - 2))
          )
          for (let i = 0; i < 20; i++) {
            yield* events.append(stream, [ev("b"), ev("b"), ev("b"), ev("b"), ev("b")])
            yield* events.append(fresh("noise"), [ev("noise")])
          }
          const got = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
          expect(seqs(got)).toEqual(Array.from({ length: total }, (_, i) => i + 1))
          expect(got.every((e) => e.streamId === stream)).toBe(true)
          expect(seqs(Chunk.toReadonlyArray(yield* Fiber.join(fromTwo)))).toEqual(
            Array.from({ length: total - 2 }, (_, i) => i + 3)
          )
        })
      )
    )

    it.effect("each subscriber gets its own copy of an appended batch, equal to what read returns", () =>
      TestServices.provideLive(
        Effect.gen(function* () {
          const events = yield* EventStore
          const stream = fresh("copies")
          const head = (yield* events.append(stream, [ev("start")]))[0]!
          const subscribers = yield* Effect.all([
            Effect.fork(Stream.runCollect(Stream.take(events.subscribe(stream, { from: "end" }), 2))),
            Effect.fork(
              Stream.runCollect(
                Stream.take(
                  Stream.filter(events.subscribe("all", { from: head.position }), (e) => e.streamId === stream),
                  2
                )
              )
            )
          ])
          yield* Effect.sleep("100 millis")
          const appended = yield* events.append(stream, [
            { type: "order.placed", payload: { items: [{ sku: "a", qty: 2 }], note: null }, metadata: { by: "x" } },
            ev("order.paid", [1, 2.5, "three"])
          ])
          // The appender changes what it got back; no subscriber sees that.
          ;(appended[0]!.payload as { note: unknown }).note = "changed by the appender"
          const [one, all] = yield* Effect.forEach(subscribers, (fiber) =>
            Effect.map(Fiber.join(fiber), Chunk.toReadonlyArray)
          )
          const stored = yield* events.read(stream, { after: 1 })
          expect(one).toEqual(stored)
          expect(all).toEqual(stored)
          expect(one![0]!.payload).not.toBe(all![0]!.payload)
        })
      )
    )

    it.effect('subscribe("all") follows every stream in position order; from: "end" only new events', () =>
      TestServices.provideLive(
        Effect.gen(function* () {
          const events = yield* EventStore
          const streams = [fresh("suball-a"), fresh("suball-b")]
          const first = yield* events.append(streams[0]!, [ev("first")])
          const start = first[0]!.position
          const all = yield* Effect.fork(
            Stream.runCollect(
              Stream.take(
                Stream.filter(events.subscribe("all", { from: start }), (e) => streams.includes(e.streamId)),
                40
              )
            )
          )
          const tail = yield* Effect.fork(
            Stream.runCollect(Stream.take(events.subscribe(streams[1]!, { from: "end" }), 1))
          )
          yield* Effect.sleep("100 millis")
          const written: Array<number> = []
          for (let i = 0; i < 20; i++) {
            for (const s of streams) written.push(...(yield* events.append(s, [ev("n", i)])).map((e) => e.position))
          }
          const got = Chunk.toReadonlyArray(yield* Fiber.join(all))
          expect(got.map((e) => e.position)).toEqual(written)
          const last = Chunk.toReadonlyArray(yield* Fiber.join(tail))
          expect(last.map((e) => e.payload)).toEqual([0])
          expect(last[0]!.seq).toBe(1)
          for (const bad of [{ from: -1 }, { from: "middle" }, null]) {
            const error = yield* Effect.flip(Stream.runDrain(events.subscribe(streams[0]!, bad as never)))
            expect(error._tag).toBe("InvalidInput")
          }
          expect((yield* Effect.flip(Stream.runDrain(events.subscribe(42 as never))))._tag).toBe("InvalidInput")
        })
      )
    )

    it.effect("truncateBefore removes older events, records itself in the stream and keeps seqs going", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const stream = fresh("trunc")
        const written = yield* events.append(
          stream,
          Array.from({ length: 5 }, (_, i) => ev("n", i + 1))
        )
        expect(yield* events.truncateBefore(stream, 3)).toEqual({ truncatedBefore: 3, removed: 2 })
        const rest = yield* events.read(stream)
        expect(seqs(rest)).toEqual([3, 4, 5, 6])
        expect(rest[3]).toMatchObject({ type: truncatedType, payload: { before: 3, removed: 2 } })
        expect(yield* events.version(stream)).toBe(6)
        const all = yield* events.readAll({ after: written[0]!.position - 1, limit: 1000 })
        expect(all.filter((e) => e.streamId === stream).map((e) => e.seq)).toEqual([3, 4, 5, 6])
        // At or below the mark: nothing changes, nothing is recorded.
        expect(yield* events.truncateBefore(stream, 2)).toEqual({ truncatedBefore: 3, removed: 0 })
        expect(yield* events.version(stream)).toBe(6)
        // Past the end: clamped to the version + 1 (every event so far), the record itself stays.
        expect(yield* events.truncateBefore(stream, 1000)).toEqual({ truncatedBefore: 7, removed: 4 })
        expect(seqs(yield* events.read(stream))).toEqual([7])
        expect(seqs(yield* events.append(stream, [ev("after")], { expectedVersion: 7 }))).toEqual([8])
        expect((yield* events.streams({ prefix: stream })).items[0]).toMatchObject({ version: 8, truncatedBefore: 7 })
        const missing = yield* Effect.flip(events.truncateBefore(fresh("none"), 2))
        expect(missing).toMatchObject({ _tag: "NotFound", entity: "EventStream" })
        for (const before of [0, -1, 1.5, "2", null]) {
          expect((yield* Effect.flip(events.truncateBefore(stream, before as never)))._tag).toBe("InvalidInput")
        }
      })
    )

    it.effect("16 fibers appending with expectedVersion = the version read: one winner per version, gapless", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const stream = fresh("race")
        const target = 64
        const wins = yield* Effect.forEach(
          Array.from({ length: 16 }, (_, w) => w),
          (w) =>
            Effect.gen(function* () {
              let won = 0
              while (true) {
                const version = yield* events.version(stream)
                if (version >= target) return won
                const result = yield* Effect.either(
                  events.append(stream, [ev("race", { writer: w, at: version })], { expectedVersion: version })
                )
                if (result._tag === "Right") won++
                else if (result.left._tag !== "Conflict") return yield* result.left
                else expect(result.left).toMatchObject({ expected: version })
                yield* Effect.yieldNow()
              }
            }),
          { concurrency: "unbounded" }
        )
        const stored = yield* events.read(stream, { limit: 1000 })
        expect(seqs(stored)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1))
        expect(stored.length).toBeGreaterThanOrEqual(target)
        expect(wins.reduce((a, b) => a + b, 0)).toBe(stored.length)
        // Each event was written at the version its writer read: one winner per version.
        expect(stored.every((e) => (e.payload as { at: number }).at === e.seq - 1)).toBe(true)
      })
    )

    it.effect("readAll polled during concurrent appends to many streams never skips a position", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const prefix = fresh("poll")
        const head = yield* events.append(`${prefix}-start`, [ev("start")])
        let done = false
        const reader = yield* Effect.fork(
          Effect.gen(function* () {
            let after = head[0]!.position
            const seen: Array<number> = []
            while (true) {
              const finished = done
              const batch = yield* events.readAll({ after, limit: 1000 })
              for (const e of batch) {
                if (e.streamId.startsWith(prefix)) seen.push(e.position)
                after = e.position
              }
              if (batch.length === 0) {
                if (finished) return seen
                yield* Effect.yieldNow()
              }
            }
          })
        )
        const written = yield* Effect.forEach(
          Array.from({ length: 16 }, (_, w) => w),
          (w) =>
            Effect.forEach(
              Array.from({ length: 12 }, (_, i) => i),
              (i) => events.append(`${prefix}-${w % 5}`, [ev("p", [w, i]), ev("p", [w, i])]),
              { concurrency: 1 }
            ),
          { concurrency: "unbounded" }
        )
        done = true
        const seen = yield* Fiber.join(reader)
        const positions = written.flat(2).map((e) => e.position)
        expect(seen).toEqual([...positions].sort((a, b) => a - b))
        for (let s = 0; s < 5; s++) {
          const stored = yield* events.read(`${prefix}-${s}`, { limit: 1000 })
          expect(seqs(stored)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1))
        }
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const stream = fresh("bad")
        yield* events.append(stream, [ev("ok")])
        for (const id of ["", "all", "x".repeat(256), "a\u0000b", "\ud800", 42, null, undefined, {}]) {
          expect((yield* Effect.flip(events.append(id as never, [ev("x")])))._tag).toBe("InvalidInput")
        }
        for (const batch of [
          [],
          null,
          {},
          [null],
          [{ type: "" }],
          [{ type: "t" }],
          [{ type: "t", payload: () => 1 }]
        ]) {
          expect((yield* Effect.flip(events.append(stream, batch as never)))._tag).toBe("InvalidInput")
        }
        const many = Array.from({ length: 1001 }, () => ev("x"))
        expect((yield* Effect.flip(events.append(stream, many)))._tag).toBe("InvalidInput")
        for (const expectedVersion of [-1, 1.5, "1", "none", null, Number.NaN]) {
          const error = yield* Effect.flip(events.append(stream, [ev("x")], { expectedVersion } as never))
          expect(error._tag).toBe("InvalidInput")
        }
        expect(yield* events.version(stream)).toBe(1)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const events = yield* EventStore
        const stream = fresh("bad-input")
        const first = yield* events.append(stream, [ev("ok")])
        const snapshot = Effect.map(events.readAll({ after: first[0]!.position - 1, limit: 1000 }), (all) =>
          all.map((e) => [e.streamId, e.seq, e.position])
        )
        const Before = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
        yield* BadInput.run(`EventStore (${label})`, snapshot, [
          BadInput.operation("append", EventInputs, (input) => events.append(stream, input as never), {
            id: (id) => events.append(id as never, [ev("x")]),
            options: {
              schema: EventAppendOptions,
              run: (options) => events.append(stream, [ev("x")], options as never)
            }
          }),
          BadInput.operation("read", EventReadOptions, (input) => events.read(stream, input as never), {
            id: (id) => events.read(id as never),
            optional: true
          }),
          BadInput.operation("readAll", EventReadAllOptions, (input) => events.readAll(input as never), {
            optional: true
          }),
          BadInput.operation("streams", EventStreamsOptions, (input) => events.streams(input as never), {
            optional: true
          }),
          BadInput.operation(
            "subscribe",
            EventSubscribeOptions,
            (input) => Stream.runDrain(Stream.take(events.subscribe(stream, input as never), 1)),
            { optional: true }
          ),
          BadInput.operation("truncateBefore", Before, (input) => events.truncateBefore(stream, input as never), {
            id: (id) => events.truncateBefore(id as never, 1)
          })
        ])
      })
    )
  })
