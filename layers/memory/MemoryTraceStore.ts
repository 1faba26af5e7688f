/** `TraceStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import { makeTraceStore, type SpanFilter, type SpanRow, type TraceDriver, TraceStore } from "../../src/Trace.ts"
import { compareKeys, MemoryDatabase } from "./MemoryDatabase.ts"

const matches = (row: SpanRow, filter: SpanFilter): boolean =>
  (filter.sessionId === undefined || row.sessionId === filter.sessionId) &&
  (filter.name === undefined || row.name === filter.name) &&
  (filter.from === undefined || row.startedAt >= filter.from) &&
  (filter.to === undefined || row.startedAt < filter.to)

/** A `TraceDriver` over the shared in-memory tables: spans in `(startedAt, id)` order, span ids by trace. */
export const driver = Effect.map(MemoryDatabase, (db): TraceDriver => {
  const spans = db.table("spans", (row: SpanRow) => [row.startedAt, row.id])
  const traces = db.map<string, Set<string>>("span_traces")
  const remove = (row: SpanRow) => {
    spans.delete(row.id)
    const ids = traces.get(row.traceId)
    ids?.delete(row.id)
    if (ids?.size === 0) traces.delete(row.traceId)
  }
  return {
    insertMany: (rows) =>
      Effect.sync(() => {
        if (rows.some((row) => spans.has(row.id))) return false
        for (const row of rows) {
          spans.set(row.id, { ...row })
          let ids = traces.get(row.traceId)
          if (ids === undefined) traces.set(row.traceId, (ids = new Set()))
          ids.add(row.id)
        }
        return true
      }),
    get: (id) =>
      Effect.sync(() => {
        const row = spans.get(id)
        return row && { ...row }
      }),
    listByTrace: (traceId) =>
      Effect.sync(() =>
        Array.from(traces.get(traceId) ?? [], (id) => ({ ...spans.get(id)! })).sort((a, b) =>
          compareKeys([a.startedAt, a.id], [b.startedAt, b.id])
        )
      ),
    list: (filter, page) =>
      Effect.sync(() => spans.page(page, (row) => matches(row, filter)).map((row) => ({ ...row }))),
    prune: (before) =>
      Effect.sync(() => {
        const old = Array.from(spans.values()).filter((row) => row.startedAt < before)
        for (const row of old) remove(row)
        return old.length
      })
  }
})

/** `TraceStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<TraceStore, never, MemoryDatabase> = Layer.effect(
  TraceStore,
  Effect.map(driver, makeTraceStore)
)

/** `TraceStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<TraceStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
