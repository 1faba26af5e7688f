/**
 * A LangGraph-style loop on `CheckpointStore` and `StateStore`, with no LLM: a three-node graph runs on a session
 * (the thread), saving a checkpoint with its pending writes after each step; a "human" then forks the second
 * checkpoint with an edited state and the graph resumes from the fork, so the thread holds two branches. The
 * history of each branch, the latest checkpoint and a typed state entry are printed; old checkpoints are pruned.
 * Run with `node --import tsx examples/checkpoints.ts` (an in-memory SQLite database; AGENT_STORES_DB for a file).
 */
import { Console, Effect, Option, Schema } from "effect"
import { StoresSqlite } from "../layers/Stores.ts"
import { type Checkpoint, CheckpointStore, SessionStore, StateStore } from "../src/index.ts"

const filename = process.env.AGENT_STORES_DB ?? ":memory:"

/** The graph's state: the question, the notes gathered so far, and the answer once written. */
interface GraphState {
  readonly question: string
  readonly notes: ReadonlyArray<string>
  readonly answer?: string
}

/** The graph's nodes, in order: each returns its channel writes (what LangGraph calls pending writes). */
const nodes: ReadonlyArray<{ readonly name: string; readonly run: (state: GraphState) => Partial<GraphState> }> = [
  { name: "search", run: (s) => ({ notes: [...s.notes, `3 results for "${s.question}"`] }) },
  { name: "read", run: (s) => ({ notes: [...s.notes, "the second result answers it"] }) },
  { name: "answer", run: (s) => ({ answer: `based on ${s.notes.join("; ")}` }) }
]

/** A typed state entry the run keeps beside the checkpoints: how many steps each thread ran. */
const RunStats = Schema.Struct({ steps: Schema.Int, lastNode: Schema.String })

/** Runs the nodes from `from` on, each step a checkpoint continuing the thread's latest. */
const run = (threadId: string, state: GraphState, from: number) =>
  Effect.gen(function* () {
    const checkpoints = yield* CheckpointStore
    const stats = yield* StateStore
    let current = state
    for (let step = from; step < nodes.length; step++) {
      const node = nodes[step]!
      const update = node.run(current)
      current = { ...current, ...update }
      yield* checkpoints.save({
        threadId,
        state: current,
        metadata: { step, node: node.name },
        writes: Object.entries(update).map(([channel, value]) => ({ taskId: node.name, channel, value }))
      })
      const previous = yield* stats.findAs(RunStats, `runs/${threadId}`)
      yield* stats.setAs(RunStats, `runs/${threadId}`, {
        steps: Option.match(previous, { onNone: () => 1, onSome: (e) => e.value.steps + 1 }),
        lastNode: node.name
      })
    }
    return current
  })

const describe = (c: Checkpoint) =>
  `#${c.seq} …${c.id.slice(-4)} ${String(c.metadata["node"]).padEnd(6)} parent ${c.parentId === undefined ? "none " : `…${c.parentId.slice(-4)}`} ` +
  `writes [${c.writes.map((w) => `${w.taskId}.${w.channel}`).join(", ")}]`

const program = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const checkpoints = yield* CheckpointStore
  const stats = yield* StateStore
  const thread = (yield* sessions.create({ title: "Is Lisbon warm in April?" })).id

  const done = yield* run(thread, { question: "Is Lisbon warm in April?", notes: [] }, 0)
  yield* Console.log(`first run: ${done.answer}`)

  // Time travel: fork the checkpoint after "search" with an edited note, then resume from the next node.
  const [afterSearch] = (yield* checkpoints.list(thread, { order: "asc", limit: 1 })).items
  const edited: GraphState = { ...(afterSearch!.state as GraphState), notes: ["a local says: 22 °C by late April"] }
  yield* checkpoints.fork(afterSearch!.id, { state: edited, metadata: { step: 0, node: "edit" } })
  const resumed = yield* run(thread, edited, 1)
  yield* Console.log(`after the fork: ${resumed.answer}`)

  const latest = Option.getOrThrow(yield* checkpoints.latest(thread))
  yield* Console.log("\nthe latest branch, newest first:")
  for (const c of (yield* checkpoints.history(latest.id)).items) yield* Console.log(`  ${describe(c)}`)
  yield* Console.log("every checkpoint of the thread, newest first:")
  for (const c of (yield* checkpoints.list(thread)).items) yield* Console.log(`  ${describe(c)}`)

  const entry = yield* stats.getAs(RunStats, `runs/${thread}`)
  yield* Console.log(
    `\nstate runs/…: ${entry.value.steps} steps, last node ${entry.value.lastNode} (v${entry.version})`
  )
  const pruned = yield* checkpoints.prune(thread, { keepLast: 3 })
  yield* Console.log(`pruned ${pruned}; kept ${(yield* checkpoints.list(thread)).items.length}`)

  // Deleting the session deletes its checkpoints.
  yield* sessions.delete(thread)
  yield* Console.log(
    `after deleting the session: latest is ${Option.isNone(yield* checkpoints.latest(thread)) ? "none" : "kept?!"}`
  )
})

Effect.runPromise(program.pipe(Effect.provide(StoresSqlite({ filename })))).catch((error) => {
  console.error(error)
  process.exit(1)
})
