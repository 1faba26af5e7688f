/**
 * A LangGraph graph (no LLM) on the library's stores: `LangGraphSaver` keeps its threads, `LangGraphStore` its
 * long-term memories. The graph remembers what the user likes (a memory in the store, found again by semantic
 * search), drafts a reply with it, and stops for a human's approval (`interrupt`). This process then exits; a second
 * process opens the same SQLite file, finds the thread waiting at the review, and resumes it with the answer
 * (`Command({ resume })`). Run with `npm run example:langgraph` (a temp file; AGENT_STORES_DB for your own).
 */
import {
  Annotation,
  Command,
  END,
  interrupt,
  type LangGraphRunnableConfig,
  START,
  StateGraph
} from "@langchain/langgraph"
import { ManagedRuntime } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { LangGraphSaver, LangGraphStore } from "../adapters/langgraph/index.ts"
import { StoresSqlite } from "../layers/Stores.ts"

const Reply = Annotation.Root({
  user: Annotation<string>,
  request: Annotation<string>,
  draft: Annotation<string>,
  outcome: Annotation<string>
})

/** The graph, compiled with the checkpointer and the store. */
const graphOn = (checkpointer: LangGraphSaver, store: LangGraphStore) =>
  new StateGraph(Reply)
    .addNode("remember", async (state, config: LangGraphRunnableConfig) => {
      await config.store!.put(["users", state.user], "likes", { text: "short answers with a code sample" })
      return {}
    })
    .addNode("compose", async (state, config: LangGraphRunnableConfig) => {
      const [memory] = await config.store!.search(["users", state.user], { query: "how does the user like answers?" })
      return { draft: `Re "${state.request}": (${memory?.value["text"] ?? "no preference"}) here it is.` }
    })
    .addNode("review", (state) => {
      const verdict = interrupt<string, string>(`Send this draft? ${state.draft}`)
      return { outcome: verdict === "yes" ? `sent: ${state.draft}` : `held back (${verdict})` }
    })
    .addEdge(START, "remember")
    .addEdge("remember", "compose")
    .addEdge("compose", "review")
    .addEdge("review", END)
    .compile({ checkpointer, store })

/** Opens the stores on `filename`: one runtime for the saver and the store, disposed by the caller. */
const open = (filename: string) => {
  const runtime = ManagedRuntime.make(StoresSqlite({ filename }))
  const graph = graphOn(new LangGraphSaver(runtime), new LangGraphStore(runtime, { index: { fields: ["text"] } }))
  return { runtime, graph }
}

const config = { configurable: { thread_id: "reply-42" } }
const resuming = process.argv[2] === "--resume"

if (resuming) {
  // Phase 2, a new process: the thread is where phase 1 left it.
  const { runtime, graph } = open(process.argv[3]!)
  const waiting = await graph.getState(config)
  console.log(`phase 2 (pid ${process.pid}): thread reply-42 waits at ${JSON.stringify(waiting.next)}`)
  if (waiting.next[0] !== "review") throw new Error("the thread did not wait at the review")
  const done = await graph.invoke(new Command({ resume: "yes" }), config)
  console.log(`phase 2: resumed with "yes" -> ${done.outcome}`)
  if (!done.outcome.startsWith("sent:")) throw new Error("the resumed run did not send the draft")
  await runtime.dispose()
} else {
  const dir = process.env.AGENT_STORES_DB === undefined ? mkdtempSync(join(tmpdir(), "langgraph-")) : undefined
  const filename = process.env.AGENT_STORES_DB ?? join(dir!, "agent.db")
  const { runtime, graph } = open(filename)
  const stopped = await graph.invoke({ user: "ada", request: "How do I read a file in Node?" }, config)
  const [question] = (stopped as { __interrupt__?: ReadonlyArray<{ value: unknown }> }).__interrupt__ ?? []
  console.log(`phase 1 (pid ${process.pid}): interrupted: ${String(question?.value)}`)
  await runtime.dispose()
  try {
    execFileSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--resume", filename], {
      stdio: "inherit"
    })
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  }
}
