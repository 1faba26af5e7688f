/**
 * Every store operation is a span `<Store>.<operation>` with the backend and
 * the table prefix as attributes, under the caller's span, when a tracer is
 * installed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema, Tracer } from "effect"
import { StoresMemory, StoresSqlite } from "../layers/Stores.ts"
import { ConfigStore } from "../src/Config.ts"
import { SessionStore } from "../src/Session.ts"
import { VectorStore } from "../src/Vector.ts"

/** A tracer that keeps every span it makes (Effect's own spans, recorded). */
const recording = () => {
  const spans: Array<Tracer.Span> = []
  const native = Effect.runSync(Effect.tracer)
  const tracer = Tracer.make({
    span: (...args) => {
      const span = native.span(...args)
      spans.push(span)
      return span
    },
    context: native.context
  })
  return { spans, tracer }
}

const program = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const session = yield* sessions.create({ agentId: "traced" })
  yield* sessions.get(session.id)
  yield* ConfigStore.pipe(Effect.flatMap((configs) => configs.find(Schema.Unknown, "missing")))
  yield* VectorStore.pipe(Effect.flatMap((vectors) => vectors.listCollections()))
}).pipe(Effect.withSpan("agent.turn"))

const backends = [
  { label: "memory", stores: StoresMemory, attributes: { "db.system.name": "memory" } },
  {
    label: "sqlite",
    stores: StoresSqlite({ filename: ":memory:", tablePrefix: "traced" }),
    attributes: { "db.system.name": "sqlite", "agent_stores.table_prefix": "traced" }
  }
] as const

describe("store operation spans", () => {
  for (const { attributes, label, stores } of backends) {
    it.effect(`name the store and operation, carry the backend, nest under the caller (${label})`, () =>
      Effect.gen(function* () {
        const { spans, tracer } = recording()
        yield* program.pipe(Effect.provide(Layer.orDie(stores)), Effect.withTracer(tracer))
        const turn = spans.find((span) => span.name === "agent.turn")!
        const ours = spans.filter((span) => span !== turn && span.name.includes("Store."))
        expect(ours.map((span) => span.name)).toEqual([
          "SessionStore.create",
          "SessionStore.get",
          "ConfigStore.find",
          "VectorStore.listCollections"
        ])
        for (const span of ours) {
          expect(Object.fromEntries(span.attributes)).toMatchObject(attributes)
          expect(span.parent._tag === "Some" && span.parent.value.spanId).toBe(turn.spanId)
          expect(span.status._tag).toBe("Ended")
        }
      })
    )
  }
})
