/**
 * The recording tracer's promises beyond the contract suite: it writes in the
 * background (a full batch at once, a partial one after `flushInterval`),
 * and the traced program neither fails when the store fails nor waits when
 * the store is slow.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import * as MemoryTraceStore from "../layers/memory/MemoryTraceStore.ts"
import { StorageError } from "../src/Errors.ts"
import { TraceRecorder, TraceStore } from "../src/Trace.ts"

const spans = (count: number, prefix = "span") =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) => Effect.withSpan(Effect.void, `${prefix}-${i}`),
    {
      discard: true
    }
  )

/** Polls `check` in real time until it holds or `ms` pass; returns whether it held. */
const eventually = (check: Effect.Effect<boolean, unknown, TraceStore>, ms = 2000) =>
  Effect.gen(function* () {
    const deadline = performance.now() + ms
    while (performance.now() < deadline) {
      if (yield* check) return true
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
    return false
  })

/** A `TraceStore` over the memory one whose `insertMany` is replaced. */
const wrapped = (insertMany: (store: TraceStore["Type"]) => TraceStore["Type"]["insertMany"]) =>
  Layer.effect(
    TraceStore,
    Effect.map(TraceStore, (store) => TraceStore.of({ ...store, insertMany: insertMany(store) }))
  ).pipe(Layer.provideMerge(MemoryTraceStore.layer))

describe("the recording tracer", () => {
  it.live("writes a full batch at once and a partial one after flushInterval, before the scope closes", () =>
    Effect.gen(function* () {
      const traces = yield* TraceStore
      // The program's spans (the tracer also records the store's own operation spans, `TraceStore.list`, …).
      const count = (sessionId: string) =>
        Effect.map(
          traces.list({ sessionId }),
          (page) => page.items.filter((span) => !span.name.startsWith("TraceStore.")).length
        )
      yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(
            TraceStore.tracerLayer({ sessionId: "batch", batchSize: 3, flushInterval: "1 hour" })
          )
          yield* spans(3).pipe(Effect.provide(context))
          expect(yield* eventually(Effect.map(count("batch"), (n) => n === 3))).toBe(true)
          yield* spans(2).pipe(Effect.provide(context))
          expect(yield* count("batch")).toBe(3)
        })
      )
      expect(yield* count("batch")).toBe(5)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(TraceStore.tracerLayer({ sessionId: "timer", flushInterval: "20 millis" }))
          yield* spans(1).pipe(Effect.provide(context))
          expect(yield* eventually(Effect.map(count("timer"), (n) => n === 1))).toBe(true)
        })
      )
    }).pipe(Effect.provide(MemoryTraceStore.layer))
  )

  it.live("never fails the traced program: a failing store's spans are counted as failed", () =>
    Effect.gen(function* () {
      const { result, recorder } = yield* Effect.gen(function* () {
        const result = yield* Effect.succeed("done").pipe(Effect.zipLeft(spans(4)), Effect.withSpan("root"))
        return { result, recorder: yield* TraceRecorder }
      }).pipe(Effect.provide(TraceStore.tracerLayer()))
      expect(result).toBe("done")
      expect(yield* recorder.stats).toEqual({ recorded: 5, written: 0, dropped: 0, failed: 5 })
    }).pipe(
      Effect.provide(
        wrapped(() => () => Effect.fail(new StorageError({ backend: "test", operation: "insertMany", cause: "down" })))
      )
    )
  )

  it.live("never blocks the traced program: a slow store is written to in the background", () =>
    Effect.gen(function* () {
      let elapsed = 0
      const recorder = yield* Effect.gen(function* () {
        const start = performance.now()
        yield* spans(50)
        elapsed = performance.now() - start
        return yield* TraceRecorder
      }).pipe(Effect.provide(TraceStore.tracerLayer({ batchSize: 10, flushInterval: "1 millis" })))
      // Five batches of 200 ms each were written after the program: it took a fraction of one.
      expect(elapsed).toBeLessThan(190)
      expect(yield* recorder.stats).toEqual({ recorded: 50, written: 50, dropped: 0, failed: 0 })
      expect((yield* (yield* TraceStore).list({ limit: 1000 })).items.length).toBe(50)
    }).pipe(
      Effect.provide(
        wrapped(
          (store) => (input) =>
            Effect.zipRight(
              Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 200))),
              store.insertMany(input)
            )
        )
      )
    )
  )

  it.live("nonsense options fall back to the defaults instead of spinning", () =>
    Effect.gen(function* () {
      const recorder = yield* Effect.gen(function* () {
        yield* spans(3)
        return yield* TraceRecorder
      }).pipe(
        Effect.provide(
          TraceStore.tracerLayer({ batchSize: Number.NaN, bufferSize: -1, flushInterval: Duration.infinity })
        )
      )
      // A buffer of at least one span: the first is kept, the others dropped.
      expect(yield* recorder.stats).toEqual({ recorded: 1, written: 1, dropped: 2, failed: 0 })
    }).pipe(Effect.provide(MemoryTraceStore.layer))
  )

  it.live("traces the stores' own work without recording its own writes", () =>
    Effect.gen(function* () {
      const traces = yield* TraceStore
      const { traceId } = yield* Effect.gen(function* () {
        const span = yield* Effect.currentSpan
        // A store call inside the program: the recorder's own insertMany calls are not traced.
        yield* traces.list({ limit: 1 }).pipe(Effect.withSpan("store.list"))
        return { traceId: span.traceId }
      }).pipe(
        Effect.withSpan("root"),
        Effect.provide(TraceStore.tracerLayer({ batchSize: 1, flushInterval: "1 millis" }))
      )
      const recorded = yield* traces.listByTrace(traceId)
      expect(recorded.map((s) => s.name).sort()).toEqual(["TraceStore.list", "root", "store.list"])
      expect((yield* traces.list({ limit: 1000 })).items.length).toBe(3)
    }).pipe(Effect.provide(MemoryTraceStore.layer))
  )

  it.live("stores a recorded span as insertMany would: the store's own row path and insertMany agree", () =>
    Effect.gen(function* () {
      const traces = yield* TraceStore
      // The same store behind a wrapper of its own `insertMany`: the recorder then writes through `insertMany`.
      const throughInsertMany = TraceStore.of({ ...traces, insertMany: (spans) => traces.insertMany(spans) })
      const program = Effect.gen(function* () {
        const span = yield* Effect.currentSpan
        span.event("checkpoint", 1_000_000n, { step: 2, note: "lone \ud800 surrogate", nested: { n: -0 } })
        yield* Effect.fail("boom").pipe(
          Effect.withSpan("inner", {
            attributes: {
              big: 10n,
              negativeZero: -0,
              nan: Number.NaN,
              date: new Date(0),
              text: "a\u0000b",
              deep: [1, { x: null }]
            }
          }),
          Effect.ignore
        )
      }).pipe(Effect.withSpan("outer", { attributes: { kind: "root" } }))
      const record = (sessionId: string, store: TraceStore["Type"]) =>
        Effect.scoped(
          Effect.gen(function* () {
            const context = yield* Layer.build(TraceStore.tracerLayer({ sessionId }))
            yield* program.pipe(Effect.provide(context))
            yield* Effect.flatMap(TraceRecorder, (recorder) => recorder.flush).pipe(Effect.provide(context))
          }).pipe(Effect.provideService(TraceStore, store))
        )
      yield* record("rows", traces)
      yield* record("insertMany", throughInsertMany)
      const shape = (sessionId: string) =>
        Effect.map(traces.list({ sessionId }), (page) => {
          const byId = new Map<string, string>(page.items.map((span) => [span.id, span.name]))
          return page.items
            .map((span) => ({
              name: span.name,
              parent: span.parentId === undefined ? undefined : byId.get(span.parentId),
              kind: span.kind,
              status: span.status,
              attributes: span.attributes,
              events: span.events.map((event) => ({ name: event.name, attributes: event.attributes }))
            }))
            .sort((a, b) => a.name.localeCompare(b.name))
        })
      const viaRows = yield* shape("rows")
      expect(viaRows.map((span) => span.name)).toEqual(["inner", "outer"])
      expect(viaRows[0]).toMatchObject({ parent: "outer", status: "error" })
      expect(viaRows[0]!.attributes).toMatchObject({ big: "10", negativeZero: 0, nan: "NaN", text: "a\u0000b" })
      expect(viaRows).toEqual(yield* shape("insertMany"))
    }).pipe(Effect.provide(MemoryTraceStore.layer))
  )
})
