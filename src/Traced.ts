/**
 * Spans of store operations: every operation of a store is an Effect span
 * named `<Store>.<operation>` (`SessionStore.create`, …) with the backend and
 * the table prefix as attributes, so any installed `Tracer` (e.g.
 * `@effect/opentelemetry`) shows it with no user code. With Effect's default
 * tracer in place (no tracer installed) no span is made, which keeps the
 * operation at the raw driver's speed.
 */
import { Effect, Tracer } from "effect"

/** Where a driver's backend facts are kept: the attributes of its store's spans. */
export const spanAttributes: unique symbol = Symbol.for("effect-agent-stores/spanAttributes")

/** Span attributes of a backend. */
export type SpanAttributes = Readonly<Record<string, string>>

/** The span attributes of `driver`'s backend (memory when it carries none). */
export const attributesOf = (driver: object): SpanAttributes =>
  (driver as { readonly [spanAttributes]?: SpanAttributes })[spanAttributes] ?? { "db.system.name": "memory" }

/** Effect's default tracer: spans made with it are seen by no one. */
const defaultTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** `effect` in a span named `name` when a tracer is installed. */
const withSpan = <A, E, R>(effect: Effect.Effect<A, E, R>, name: string, attributes: SpanAttributes) =>
  Effect.tracerWith((tracer) =>
    tracer === defaultTracer ? effect : Effect.withSpan(effect, name, { attributes, kind: "client" })
  )

/**
 * `service` with each operation (a method returning an Effect) run in a span
 * `<store>.<method>`; other members (streams, constants) are kept as they are.
 */
export const traced = <S extends object>(store: string, driver: object, service: S): S => {
  const attributes = attributesOf(driver)
  const wrapped: Record<string, unknown> = {}
  for (const [key, member] of Object.entries(service)) {
    if (typeof member !== "function") {
      wrapped[key] = member
      continue
    }
    const name = `${store}.${key}`
    // Whether the method returns Effects, learnt from its first result (a method's return type does not change).
    let operation: boolean | undefined
    wrapped[key] = (...args: Array<unknown>) => {
      const result = member(...args)
      operation ??= Effect.isEffect(result)
      return operation ? withSpan(result as Effect.Effect<unknown, unknown, unknown>, name, attributes) : result
    }
  }
  return wrapped as S
}
