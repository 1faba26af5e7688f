/**
 * The audit log and the recording tracer on one SQLite database: an agent's
 * steps are traced (`TraceStore.tracerLayer`) and audited (hash-chained), the
 * chain is verified, and the recorded spans are printed as a tree.
 * Run: `npx tsx examples/audit-trace.ts`.
 */
import { Data, DateTime, Effect, Layer } from "effect"
import * as SqlAuditLogStore from "../layers/sql/SqlAuditLogStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlTraceStore from "../layers/sql/SqlTraceStore.ts"
import { AuditLogStore } from "../src/Audit.ts"
import { type Span, TraceStore } from "../src/Trace.ts"

class ToolFailed extends Data.TaggedError("ToolFailed")<{ readonly tool: string }> {}

const sessionId = "session-1"

/** One tool call: traced as a span, audited as an entry. */
const callTool = Effect.fn("tool.call")(function* (tool: string) {
  const audit = yield* AuditLogStore
  yield* Effect.annotateCurrentSpan("tool", tool)
  yield* audit.append({ sessionId, actor: "agent:planner", action: "tool.call", resource: `tool:${tool}` })
  if (tool === "deploy") return yield* new ToolFailed({ tool })
  return `${tool}: ok`
})

const agent = Effect.gen(function* () {
  const results = yield* Effect.forEach(["search", "summarise", "deploy"], (tool) =>
    callTool(tool).pipe(Effect.catchTag("ToolFailed", (error) => Effect.succeed(`${error.tool}: failed`)))
  )
  return { results, traceId: (yield* Effect.currentSpan).traceId }
}).pipe(Effect.withSpan("agent.run", { attributes: { agent: "planner" } }))

const printTree = (spans: ReadonlyArray<Span>) => {
  const children = new Map<string | undefined, Array<Span>>()
  for (const span of spans) children.set(span.parentId, [...(children.get(span.parentId) ?? []), span])
  const print = (span: Span, depth: number): void => {
    const ms = span.endedAt === undefined ? "?" : DateTime.distance(span.startedAt, span.endedAt)
    console.log(`${"  ".repeat(depth)}${span.name} [${span.status}] ${ms} ms ${JSON.stringify(span.attributes)}`)
    for (const child of children.get(span.id) ?? []) print(child, depth + 1)
  }
  for (const root of children.get(undefined) ?? []) print(root, 0)
}

const program = Effect.gen(function* () {
  const { results, traceId } = yield* agent.pipe(Effect.provide(TraceStore.tracerLayer({ sessionId })))
  console.log(results.join("\n"))
  const audit = yield* AuditLogStore
  const { checked, head } = yield* audit.verify()
  console.log(`audit chain: ${checked} entries verified, head #${head.seq} ${head.hash.slice(0, 16)}…`)
  printTree(yield* (yield* TraceStore).listByTrace(traceId))
})

const stores = Layer.mergeAll(SqlAuditLogStore.layer, SqlTraceStore.layer).pipe(
  Layer.provide(SqliteDatabase.layer({ filename: ":memory:" }))
)

Effect.runPromise(program.pipe(Effect.provide(stores)))
