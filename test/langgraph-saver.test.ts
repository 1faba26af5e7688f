/**
 * `LangGraphSaver` under LangGraph itself (`@langchain/langgraph`'s compiled `StateGraph`), on every backend: a graph
 * with a subgraph and a node that interrupts twice runs, stops, resumes twice from its checkpoints through a second
 * saver (no shared cache), and its thread is a session whose checkpoints are readable rows. Plus what the validation
 * kit does not cover: the errors callers see, writes to special channels, and a saver built inside an Effect program.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Annotation, Command, END, interrupt, START, StateGraph } from "@langchain/langgraph"
import { emptyCheckpoint, RESUME, uuid6 } from "@langchain/langgraph-checkpoint"
import { Effect, Option } from "effect"
import { LangGraphSaver } from "../adapters/langgraph/LangGraphSaver.ts"
import { AdapterError } from "../adapters/Runner.ts"
import { SessionStore } from "../src/Session.ts"
import { CheckpointStore } from "../src/State.ts"
import { type BackendName, backendNames, type FreshStores, freshStores } from "./langgraph/backends.ts"
import { pgReady } from "./pg.ts"

const Post = Annotation.Root({
  topic: Annotation<string>,
  draft: Annotation<string>,
  log: Annotation<Array<string>>({ reducer: (a, b) => [...a, ...b], default: () => [] }),
  verdict: Annotation<string>
})

/** A subgraph that drafts, so the thread has checkpoints in a second namespace. */
const writer = new StateGraph(Post)
  .addNode("outline", (state) => ({ log: [`outline ${state.topic}`] }))
  .addNode("compose", (state) => ({ draft: `A post about ${state.topic}`, log: ["compose"] }))
  .addEdge(START, "outline")
  .addEdge("outline", "compose")
  .addEdge("compose", END)
  .compile()

/** The graph: the writer subgraph, then a review asking twice (approval, then a comment). */
const graphOn = (checkpointer: LangGraphSaver) =>
  new StateGraph(Post)
    .addNode("write", (state, config) => writer.invoke(state, config))
    .addNode("review", (state) => {
      const approved = interrupt<string, boolean>(`approve "${state.draft}"?`)
      const comment = interrupt<string, string>("any comment?")
      return { verdict: `${approved ? "approved" : "rejected"}: ${comment}`, log: ["review"] }
    })
    .addEdge(START, "write")
    .addEdge("write", "review")
    .addEdge("review", END)
    .compile({ checkpointer })

/** The question a graph's run stopped at. */
const interruptOf = (result: object) =>
  (result as { readonly __interrupt__?: ReadonlyArray<{ readonly value: unknown }> }).__interrupt__?.[0]?.value

const pgUnusable = await pgReady("LangGraphSaver on PostgreSQL")

for (const backend of backendNames) {
  const suite = backend === "postgres" && pgUnusable !== undefined ? describe.skip : describe
  suite(`LangGraphSaver (${backend})`, () => {
    const opened: Array<FreshStores> = []
    const open = (name: BackendName) => {
      const stores = freshStores(name)
      opened.push(stores)
      return stores
    }
    afterAll(() => Promise.all(opened.map((stores) => stores.dispose())))

    it("a graph interrupts, resumes twice through a fresh saver, and its thread is a session of readable rows", async () => {
      const { runtime } = open(backend)
      const config = { configurable: { thread_id: "post-1" } }
      const first = await graphOn(new LangGraphSaver(runtime)).invoke({ topic: "checkpoints" }, config)
      expect(first).toMatchObject({ draft: "A post about checkpoints", log: ["outline checkpoints", "compose"] })
      expect(interruptOf(first)).toBe('approve "A post about checkpoints"?')

      // Another saver on the same stores (a new process would be the same: no cache in common).
      const graph = graphOn(new LangGraphSaver(runtime))
      expect((await graph.getState(config)).next).toEqual(["review"])
      const second = await graph.invoke(new Command({ resume: true }), config)
      expect(interruptOf(second)).toBe("any comment?")
      const done = await graphOn(new LangGraphSaver(runtime)).invoke(new Command({ resume: "ship it" }), config)
      expect(done).toMatchObject({ verdict: "approved: ship it", log: ["outline checkpoints", "compose", "review"] })
      expect((await graph.getState(config)).next).toEqual([])

      const history = []
      for await (const snapshot of graph.getStateHistory(config)) history.push(snapshot)
      expect(history.length).toBeGreaterThanOrEqual(4)
      expect(history[0]!.values).toMatchObject({ verdict: "approved: ship it" })

      const { session, latest, namespaces } = await runtime.runPromise(
        Effect.gen(function* () {
          const session = yield* (yield* SessionStore).get("post-1")
          const checkpoints = yield* CheckpointStore
          return {
            session,
            latest: Option.getOrThrow(yield* checkpoints.latest("post-1")),
            namespaces: yield* checkpoints.namespaces("post-1")
          }
        })
      )
      expect(session).toMatchObject({ id: "post-1", channel: "langgraph" })
      expect(namespaces).toHaveLength(2)
      expect(namespaces[0]).toBe("")
      expect(namespaces[1]).toMatch(/^write:/)
      expect(latest.metadata).toMatchObject({ source: "loop" })
      expect(latest.state).toMatchObject({
        checkpoint: { v: 4 },
        channel_values: { verdict: { type: "json", value: "approved: ship it" } }
      })
    }, 60_000)

    it("a special channel's write replaces the task's previous one; a repeated regular write is ignored", async () => {
      const saver = new LangGraphSaver(open(backend).runtime)
      const config = await saver.put({ configurable: { thread_id: "writes" } }, emptyCheckpoint(), meta, {})
      await saver.putWrites(
        config,
        [
          ["a", 1],
          [RESUME, ["first"]]
        ],
        "task",
        "path"
      )
      await saver.putWrites(
        config,
        [
          ["a", 2],
          [RESUME, ["first", "second"]]
        ],
        "task",
        "path"
      )
      await saver.putWrites(config, [["b", 3]], "another", "")
      expect((await saver.getTuple(config))?.pendingWrites).toEqual([
        ["another", "b", 3],
        ["task", RESUME, ["first", "second"]],
        ["task", "a", 1]
      ])
    })

    it("callers see what went wrong: no thread, no checkpoint, a taken id", async () => {
      const saver = new LangGraphSaver(open(backend).runtime)
      await expect(saver.put({ configurable: {} }, emptyCheckpoint(), meta, {})).rejects.toThrow(
        "LangGraphSaver.put: config.configurable.thread_id must be a string, got none"
      )
      const missing = { configurable: { thread_id: "t", checkpoint_ns: "", checkpoint_id: uuid6(-1) } }
      const error = await saver.putWrites(missing, [["a", 1]], "task").catch((error: unknown) => error)
      expect(error).toBeInstanceOf(AdapterError)
      expect((error as AdapterError).message).toBe(
        `LangGraphSaver.putWrites: Checkpoint "${missing.configurable.checkpoint_id}" not found`
      )
      expect((error as AdapterError).cause).toMatchObject({ _tag: "NotFound" })
      const checkpoint = emptyCheckpoint()
      await saver.put({ configurable: { thread_id: "one" } }, checkpoint, meta, {})
      await expect(saver.put({ configurable: { thread_id: "two" } }, checkpoint, meta, {})).rejects.toThrow(
        `LangGraphSaver.put: Checkpoint "${checkpoint.id}" already exists`
      )
      expect(await saver.getTuple({ configurable: { thread_id: "two" } })).toBeUndefined()
    })

    it("LangGraphSaver.make builds a saver on the running program's stores", async () => {
      const { runtime } = open(backend)
      const tuple = await runtime.runPromise(
        Effect.gen(function* () {
          const saver = yield* LangGraphSaver.make()
          const config = yield* Effect.promise(() =>
            saver.put({ configurable: { thread_id: "made" } }, emptyCheckpoint(), meta, {})
          )
          return yield* Effect.promise(() => saver.getTuple(config))
        })
      )
      expect(tuple?.config.configurable).toMatchObject({ thread_id: "made", checkpoint_ns: "" })
    })
  })
}

const meta = { source: "update" as const, step: -1, parents: {} }
