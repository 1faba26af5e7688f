/**
 * The `TraceStore` contract, run against every backend: `suite(label, layer)`,
 * including the recording tracer (`TraceStore.tracerLayer`) writing a real
 * program's spans into that backend. Tests share one store per backend, so
 * each uses its own trace and session ids.
 */
import { expect, layer } from "@effect/vitest"
import { Data, DateTime, Deferred, Duration, Effect, Fiber, FastCheck, Layer, Option, TestClock } from "effect"
import { isJson } from "../../src/Json.ts"
import { SpanPruneOptions, type Span, SpanInput, SpanListOptions, TraceRecorder, TraceStore } from "../../src/Trace.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

class Boom extends Data.TaggedError("Boom")<{ readonly reason: string }> {}

/** The spans of a trace as a tree of names: `name [status] (children…)`. */
const treeOf = (spans: ReadonlyArray<Span>): string => {
  const children = new Map<string | undefined, Array<Span>>()
  for (const span of spans) {
    const list = children.get(span.parentId) ?? []
    list.push(span)
    children.set(span.parentId, list)
  }
  const render = (span: Span): string => {
    const below = (children.get(span.id) ?? []).map(render).sort()
    return `${span.name} [${span.status}]${below.length > 0 ? ` (${below.join(", ")})` : ""}`
  }
  return (children.get(undefined) ?? []).map(render).join("; ")
}

/** Runs the `TraceStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<TraceStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`TraceStore (${label})`, (it) => {
    it.effect("insert stores a span with defaults; get, find and listByTrace return it", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const traceId = fresh("trace")
        yield* TestClock.setTime(1_700_000_000_000)
        const root = yield* traces.insert({
          traceId,
          name: "root",
          startedAt: 1_000,
          endedAt: DateTime.unsafeMake(1_500)
        })
        expect(root).toMatchObject({
          traceId,
          name: "root",
          kind: "internal",
          status: "ok",
          attributes: {},
          events: []
        })
        expect(root.parentId).toBeUndefined()
        expect(root.sessionId).toBeUndefined()
        expect(DateTime.toEpochMillis(root.startedAt)).toBe(1_000)
        expect(DateTime.toEpochMillis(root.endedAt!)).toBe(1_500)
        const open = yield* traces.insert({
          id: fresh("span"),
          traceId,
          parentId: root.id,
          sessionId: "s-1",
          name: "child",
          kind: "client",
          attributes: { "http.method": "GET", n: 1 },
          events: [
            { name: "retry", time: 1_200, attributes: { attempt: 2 } },
            { name: "done", time: 1_300 }
          ],
          startedAt: 1_100
        })
        expect(open).toMatchObject({ status: "unset", kind: "client", parentId: root.id, sessionId: "s-1" })
        expect(open.endedAt).toBeUndefined()
        expect(open.events.map((e) => [e.name, DateTime.toEpochMillis(e.time), e.attributes])).toEqual([
          ["retry", 1_200, { attempt: 2 }],
          ["done", 1_300, {}]
        ])
        expect(yield* traces.get(open.id)).toEqual(open)
        expect(yield* traces.find(root.id)).toEqual(Option.some(root))
        expect(yield* traces.find(fresh("none"))).toEqual(Option.none())
        expect(yield* Effect.flip(traces.get("none"))).toMatchObject({ _tag: "NotFound", entity: "Span" })
        expect(yield* traces.listByTrace(traceId)).toEqual([root, open])
        expect(yield* traces.listByTrace(fresh("none"))).toEqual([])
      })
    )

    it.effect("insertMany is all or nothing; a taken or repeated id is Conflict naming it", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const traceId = fresh("trace")
        const ids = [fresh("a"), fresh("b"), fresh("c")]
        const spans = ids.map((id, i) => ({ id, traceId, name: `s${i}`, startedAt: 10 + i, endedAt: 20 }))
        const written = yield* traces.insertMany(spans.slice(0, 2))
        expect(written.map((s) => s.id)).toEqual(ids.slice(0, 2))
        const taken = yield* Effect.flip(traces.insertMany([spans[2]!, spans[1]!]))
        expect(taken).toMatchObject({ _tag: "Conflict", entity: "Span", id: ids[1], reason: "exists" })
        const repeated = yield* Effect.flip(traces.insertMany([spans[2]!, spans[2]!]))
        expect(repeated).toMatchObject({ _tag: "Conflict", id: ids[2] })
        expect(yield* Effect.flip(traces.insert(spans[0]!))).toMatchObject({ _tag: "Conflict", id: ids[0] })
        expect((yield* traces.listByTrace(traceId)).map((s) => s.id)).toEqual(ids.slice(0, 2))
        expect(yield* traces.insertMany([])).toEqual([])
        const many = Array.from({ length: 300 }, (_, i) => ({ traceId, name: "bulk", startedAt: 1_000 + i }))
        expect((yield* traces.insertMany(many)).length).toBe(300)
        expect((yield* traces.listByTrace(traceId)).length).toBe(302)
      })
    )

    it.effect("list filters by session, name and time, keyset-paged by (startedAt, id)", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const sessionId = fresh("session")
        const traceId = fresh("trace")
        const spans = yield* traces.insertMany(
          Array.from({ length: 9 }, (_, i) => ({
            id: `${traceId}-${i}`,
            traceId,
            sessionId,
            name: i % 3 === 0 ? "llm.call" : "tool.call",
            startedAt: 50_000 + Math.floor(i / 2) * 10,
            endedAt: 60_000
          }))
        )
        const all = yield* traces.list({ sessionId })
        expect(all.items).toEqual(spans)
        const llm = yield* traces.list({ sessionId, name: "llm.call" })
        expect(llm.items.map((s) => s.id)).toEqual([0, 3, 6].map((i) => `${traceId}-${i}`))
        const window = yield* traces.list({ sessionId, from: 50_010, to: DateTime.unsafeMake(50_030) })
        expect(window.items.map((s) => s.id)).toEqual([2, 3, 4, 5].map((i) => `${traceId}-${i}`))
        const pages: Array<string> = []
        let cursor: string | undefined
        do {
          const page = yield* traces.list({ sessionId, limit: 2, ...(cursor === undefined ? {} : { cursor }) })
          pages.push(...page.items.map((s) => s.id))
          cursor = Option.getOrUndefined(page.nextCursor)
        } while (cursor !== undefined)
        expect(pages).toEqual(spans.map((s) => s.id))
        const desc = yield* traces.list({ sessionId, order: "desc", limit: 4 })
        const rest = yield* traces.list({ sessionId, order: "desc", cursor: Option.getOrThrow(desc.nextCursor) })
        expect([...desc.items, ...rest.items].map((s) => s.id)).toEqual(spans.map((s) => s.id).reverse())
        expect((yield* traces.list({ sessionId: fresh("none") })).items).toEqual([])
      })
    )

    it.effect("prune deletes spans that started more than olderThan before Clock time", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const traceId = fresh("trace")
        yield* TestClock.setTime(5_000_000_000_000)
        yield* traces.prune({ olderThan: Duration.days(365) })
        const now = 5_000_000_000_000
        yield* traces.insertMany([
          { id: `${traceId}-old`, traceId, name: "old", startedAt: now - 3 * 86_400_000 },
          { id: `${traceId}-edge`, traceId, name: "edge", startedAt: now - 86_400_000 },
          { id: `${traceId}-new`, traceId, name: "new", startedAt: now - 1000 }
        ])
        expect(yield* traces.prune({ olderThan: Duration.days(1) })).toBeGreaterThanOrEqual(1)
        expect((yield* traces.listByTrace(traceId)).map((s) => s.name)).toEqual(["edge", "new"])
        expect(yield* traces.prune({ olderThan: 1000 })).toBeGreaterThanOrEqual(1)
        expect((yield* traces.listByTrace(traceId)).map((s) => s.name)).toEqual(["new"])
        const infinite = yield* Effect.flip(traces.prune({ olderThan: Duration.infinity }))
        expect(infinite).toMatchObject({ _tag: "InvalidInput", message: "olderThan must be a finite duration" })
      })
    )

    it.effect("attributes round-trip verbatim (U+0000, lone surrogates, key order)", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const attributes = {
          z: "nul \u0000 inside",
          a: "half \ud83d emoji \udc00",
          "\u0000key": [1.5, 1e300, null, true, { nested: "🙂 é" }],
          "": { "": "" }
        }
        const span = yield* traces.insert({
          traceId: fresh("trace"),
          name: "content",
          attributes,
          events: [{ name: "e", time: 0, attributes }],
          startedAt: 0
        })
        const read = yield* traces.get(span.id)
        expect(JSON.stringify(read.attributes)).toBe(JSON.stringify(attributes))
        expect(JSON.stringify(read.events[0]!.attributes)).toBe(JSON.stringify(attributes))
      })
    )

    it.effect.prop(
      "any JSON attribute value reads back equal",
      [
        FastCheck.jsonValue({ maxDepth: 3 })
          .map((value) => JSON.parse(JSON.stringify(value)))
          .filter((value) => isJson(value))
      ],
      ([value]) =>
        Effect.gen(function* () {
          const traces = yield* TraceStore
          const span = yield* traces.insert({ traceId: "prop", name: "p", attributes: { value }, startedAt: 1 })
          expect(JSON.stringify((yield* traces.get(span.id)).attributes)).toBe(JSON.stringify({ value }))
        }),
      { fastCheck: { numRuns: 20 } }
    )

    it.effect("the recording tracer stores a program's span tree with statuses, attributes and events", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const sessionId = fresh("session")
        yield* TestClock.setTime(1_800_000_000_000)
        const doubled = Effect.fn("doubled")(function* (n: number) {
          yield* Effect.annotateCurrentSpan("n", n)
          return n * 2
        })
        const program = Effect.gen(function* () {
          const root = yield* Effect.currentSpan
          yield* Effect.annotateCurrentSpan("user", "ada")
          yield* Effect.succeed(1).pipe(
            Effect.withSpan("child.ok", { attributes: { n: 1, big: 2n, when: new Date(0), nested: { deep: [1] } } }),
            Effect.withSpan("middle", { kind: "client" })
          )
          yield* Effect.fail(new Boom({ reason: "bad input" })).pipe(Effect.withSpan("child.error"), Effect.ignore)
          const started = yield* Deferred.make<void>()
          const fiber = yield* Effect.fork(
            Deferred.succeed(started, undefined).pipe(
              Effect.zipRight(Effect.never),
              Effect.withSpan("child.interrupted")
            )
          )
          yield* Deferred.await(started)
          yield* Fiber.interrupt(fiber)
          yield* Effect.currentSpan.pipe(
            Effect.tap((span) => span.event("checkpoint", BigInt(1_800_000_000_005) * 1_000_000n, { step: 3 })),
            Effect.withSpan("with.event")
          )
          expect(yield* doubled(21)).toBe(42)
          return { traceId: root.traceId, recorder: yield* TraceRecorder }
        }).pipe(Effect.withSpan("root", { attributes: { app: "test" } }))
        const { recorder, traceId } = yield* program.pipe(Effect.provide(TraceStore.tracerLayer({ sessionId })))
        const spans = yield* traces.listByTrace(traceId)
        expect(treeOf(spans)).toBe(
          "root [ok] (child.error [error], child.interrupted [interrupted], doubled [ok], middle [ok] (child.ok [ok]), with.event [ok])"
        )
        const byName = new Map(spans.map((span) => [span.name, span]))
        expect(byName.get("root")!.attributes).toMatchObject({ app: "test", user: "ada" })
        expect(byName.get("middle")!.kind).toBe("client")
        expect(byName.get("child.ok")!.attributes).toMatchObject({
          n: 1,
          big: "2",
          when: "1970-01-01T00:00:00.000Z",
          nested: { deep: [1] }
        })
        expect(byName.get("doubled")!.attributes).toMatchObject({ n: 21 })
        expect(byName.get("child.error")!.events).toMatchObject([
          { name: "exception", attributes: { "exception.type": "Boom" } }
        ])
        const event = byName.get("with.event")!.events[0]!
        expect([event.name, DateTime.toEpochMillis(event.time), event.attributes]).toEqual([
          "checkpoint",
          1_800_000_000_005,
          { step: 3 }
        ])
        for (const span of spans) {
          expect(span.sessionId).toBe(sessionId)
          expect(span.traceId).toBe(traceId)
          expect(DateTime.toEpochMillis(span.startedAt)).toBe(1_800_000_000_000)
          expect(span.endedAt).toBeDefined()
        }
        expect((yield* traces.list({ sessionId, name: "child.ok" })).items.length).toBe(1)
        // `recorded` may also count spans a generic `SqlClient` makes for its own statements after the program.
        expect(yield* recorder.stats).toMatchObject({ written: 7, dropped: 0, failed: 0 })
      })
    )

    it.effect("a full tracer buffer drops spans and counts them; the program is unaffected", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const sessionId = fresh("session")
        const program = Effect.gen(function* () {
          for (let i = 0; i < 5; i++) yield* Effect.withSpan(Effect.void, `span-${i}`)
          return yield* TraceRecorder
        })
        const recorder = yield* program.pipe(
          Effect.provide(TraceStore.tracerLayer({ sessionId, bufferSize: 2, batchSize: 100, flushInterval: "1 hour" }))
        )
        expect(yield* recorder.stats).toEqual({ recorded: 2, written: 2, dropped: 3, failed: 0 })
        expect((yield* traces.list({ sessionId })).items.map((s) => s.name).sort()).toEqual(["span-0", "span-1"])
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const traceId = fresh("bad")
        const valid = { traceId, name: "n", startedAt: 10 }
        const inputs: Array<unknown> = [
          { ...valid, traceId: "" },
          { ...valid, name: "x".repeat(1025) },
          { ...valid, id: "a\u0000b" },
          { ...valid, sessionId: "\ud800" },
          { ...valid, kind: "sideways" },
          { ...valid, status: "fine" },
          { ...valid, startedAt: "now" },
          { ...valid, endedAt: 9 },
          { ...valid, attributes: [1] },
          { ...valid, attributes: { f: () => 1 } },
          { ...valid, events: [{ name: "e" }] },
          { ...valid, events: [{ name: "e", time: 1, attributes: new Map() }] },
          { traceId, name: "n" },
          ...BadInput.jsonObjects.map((value) => ({ ...valid, attributes: value })).slice(0, 12),
          ...BadInput.containers(valid)
        ]
        for (const input of inputs) {
          expect(yield* Effect.flip(traces.insert(input as never))).toMatchObject({
            _tag: "InvalidInput",
            entity: "Span"
          })
        }
        const batch = yield* Effect.flip(traces.insertMany([valid, { ...valid, endedAt: 1 }]))
        expect(batch).toMatchObject({ _tag: "InvalidInput", message: "[1].endedAt must not precede startedAt" })
        expect(yield* Effect.flip(traces.insertMany({} as never))).toMatchObject({ _tag: "InvalidInput" })
        for (const id of BadInput.ids) {
          expect(yield* Effect.flip(traces.get(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(traces.listByTrace(id as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        expect(yield* traces.listByTrace(traceId)).toEqual([])
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const traces = yield* TraceStore
        const traceId = fresh("generated")
        yield* traces.insert({ traceId, name: "kept", startedAt: 1 })
        const snapshot = Effect.map(traces.list({ limit: 1000, order: "desc" }), (page) => page.items.map((s) => s.id))
        yield* BadInput.run(`TraceStore (${label})`, snapshot, [
          BadInput.operation("insert", SpanInput, (input) => traces.insert(input as never)),
          BadInput.operation("insertMany", SpanInput, (input) => traces.insertMany([input] as never)),
          BadInput.operation("list", SpanListOptions, (input) => traces.list(input as never), { optional: true }),
          BadInput.operation("prune", SpanPruneOptions, (input) => traces.prune(input as never))
        ])
      })
    )
  })
