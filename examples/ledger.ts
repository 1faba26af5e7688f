/**
 * The ledger stores together, with no LLM: a "teller" fiber appends account events to an `EventStore` stream, a
 * live subscriber projects them into a `StateStore` key and saves a `CheckpointStore` checkpoint per step (then a
 * "what if" fork), both audit what they do in the hash-chained `AuditLogStore` (verified at the end), and every
 * span of the run is recorded by `TraceStore.tracerLayer` and printed as a tree.
 * Run with `npx tsx examples/ledger.ts` (an in-memory SQLite database; set AGENT_STORES_DB to use a file).
 */
import { Console, DateTime, Effect, Queue, Stream } from "effect"
import { StoresSqlite } from "../layers/Stores.ts"
import {
  AuditLogStore,
  CheckpointStore,
  EventStore,
  project,
  SessionStore,
  type Span,
  StateStore,
  type StoredEvent,
  TraceStore
} from "../src/index.ts"

const filename = process.env.AGENT_STORES_DB ?? ":memory:"

/** What the teller records: money in and out of one account. */
const movements = [
  { type: "deposited", payload: { amount: 100 } },
  { type: "withdrawn", payload: { amount: 30 } },
  { type: "deposited", payload: { amount: 50 } },
  { type: "withdrawn", payload: { amount: 20 } }
]

/** The projection: the balance and how many movements made it. */
interface Balance {
  readonly balance: number
  readonly movements: number
}
const initial: Balance = { balance: 0, movements: 0 }
const fold = (state: Balance, event: StoredEvent): Balance => {
  const { amount } = event.payload as { amount: number }
  return { balance: state.balance + (event.type === "deposited" ? amount : -amount), movements: state.movements + 1 }
}

/** The ledger run: one writer fiber, one live projecting subscriber, in lockstep so the output reads in order. */
const run = (threadId: string, stream: string) =>
  Effect.gen(function* () {
    const events = yield* EventStore
    const states = yield* StateStore
    const checkpoints = yield* CheckpointStore
    const audit = yield* AuditLogStore
    // The projector acknowledges each event here (only so that the printed lines interleave deterministically).
    const projected = yield* Queue.unbounded<number>()

    // Subscribes from the start of the stream: whatever is stored first, then each event as it commits.
    const projector = events.subscribe(stream).pipe(
      Stream.take(movements.length),
      Stream.runFoldEffect(initial, (state, event) =>
        Effect.gen(function* () {
          const next = fold(state, event)
          const entry = yield* states.set(`balance/${stream}`, next)
          const checkpoint = yield* checkpoints.save({ threadId, state: next, metadata: { seq: event.seq } })
          yield* audit.append({ sessionId: threadId, actor: "projector", action: "state.set", resource: entry.key })
          const saved = `state v${entry.version}, checkpoint #${checkpoint.seq}`
          yield* Console.log(`  projector  #${event.seq} → balance ${next.balance}, ${saved}`)
          yield* Queue.offer(projected, event.seq)
          return next
        }).pipe(Effect.withSpan("ledger.project", { attributes: { seq: event.seq } }))
      ),
      Effect.withSpan("ledger.projector")
    )

    const teller = Effect.forEach(movements, (movement) =>
      Effect.gen(function* () {
        const [stored] = yield* events.append(stream, [movement])
        yield* audit.append({ sessionId: threadId, actor: "teller", action: "event.append", resource: stream })
        yield* Console.log(`  teller     #${stored!.seq} ${movement.type} ${movement.payload.amount}`)
        yield* Queue.take(projected)
      }).pipe(Effect.withSpan("ledger.append", { attributes: { type: movement.type } }))
    ).pipe(Effect.withSpan("ledger.teller"))

    const [live] = yield* Effect.all([projector, teller], { concurrency: "unbounded" })
    return { live, traceId: (yield* Effect.currentSpan).traceId }
  }).pipe(Effect.withSpan("ledger.run"))

/** Prints spans as a tree; the store operations under a span (its childless spans) are listed on its line. */
const printTree = (spans: ReadonlyArray<Span>) => {
  const children = new Map<string | undefined, Array<Span>>()
  for (const span of spans) children.set(span.parentId, [...(children.get(span.parentId) ?? []), span])
  const print = (span: Span, depth: number): void => {
    const ms = span.endedAt === undefined ? "?" : DateTime.distance(span.startedAt, span.endedAt)
    const kids = children.get(span.id) ?? []
    const calls = kids.filter((kid) => !children.has(kid.id)).map((kid) => kid.name)
    const listed = calls.length === 0 ? "" : `: ${calls.sort().join(", ")}`
    console.log(`  ${"  ".repeat(depth)}${span.name} [${span.status}] ${ms} ms${listed}`)
    for (const kid of kids) if (children.has(kid.id)) print(kid, depth + 1)
  }
  for (const root of children.get(undefined) ?? []) print(root, 0)
}

const program = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const checkpoints = yield* CheckpointStore
  const audit = yield* AuditLogStore
  const traces = yield* TraceStore
  const thread = (yield* sessions.create({ title: "an account's ledger" })).id
  const stream = `account/${thread}` // one stream per run, so a reused AGENT_STORES_DB file works too

  yield* Console.log("live projection:")
  const { live, traceId } = yield* run(thread, stream).pipe(
    Effect.provide(TraceStore.tracerLayer({ sessionId: thread }))
  )

  // The state is derived data: rebuilding it from the log gives the same balance.
  const rebuilt = yield* project(stream, { initial, fold, into: `balance/${stream}/rebuilt` })
  yield* Console.log(`\nlive balance ${live.balance}; rebuilt from ${rebuilt.events} events: ${rebuilt.state.balance}`)

  // Time travel: fork the checkpoint after event #2 as if the withdrawal of 30 had been 300.
  const [, second] = (yield* checkpoints.list(thread, { order: "asc", limit: 2 })).items
  const fork = yield* checkpoints.fork(second!.id, {
    state: { balance: -200, movements: 2 },
    metadata: { whatIf: true }
  })
  const branch = (yield* checkpoints.history(fork.id)).items.map((c) => `#${c.seq} ${JSON.stringify(c.state)}`)
  yield* Console.log(
    `what-if fork of checkpoint #${second!.seq} (withdrew 300, not 30), newest first:\n  ${branch.join("\n  ")}`
  )

  const { checked, head } = yield* audit.verify()
  yield* Console.log(`audit chain: ${checked} entries verified, head #${head.seq} ${head.hash.slice(0, 16)}…`)

  yield* Console.log("spans of the run:")
  printTree(yield* traces.listByTrace(traceId))
})

Effect.runPromise(program.pipe(Effect.provide(StoresSqlite({ filename })))).catch((error) => {
  console.error(error)
  process.exit(1)
})
