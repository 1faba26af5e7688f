/**
 * An app with the frameworks installed (@langchain/langgraph-checkpoint, @langchain/core): the LangGraph checkpointer
 * and store, and Effect's persistence services, on the memory bundle and on SQLite.
 */
import * as Persistence from "@effect/experimental/Persistence"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { emptyCheckpoint } from "@langchain/langgraph-checkpoint"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { LangGraphSaver, LangGraphStore } from "effect-agent-stores/langgraph"
import { StoresMemory, StoresSqlite } from "effect-agent-stores/layers"
import { layerBackingPersistence, layerKeyValueStore } from "effect-agent-stores/persistence"

for (const [name, stores] of [
  ["memory", StoresMemory],
  ["sqlite", StoresSqlite({ filename: ":memory:" })]
] as const) {
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(layerBackingPersistence, layerKeyValueStore).pipe(Layer.provideMerge(stores))
  )
  const saver = new LangGraphSaver(runtime)
  const config = await saver.put(
    { configurable: { thread_id: "consumer" } },
    emptyCheckpoint(),
    {
      source: "input",
      step: -1,
      parents: {}
    },
    {}
  )
  const tuple = await saver.getTuple(config)
  const store = new LangGraphStore(runtime, { index: { fields: ["text"] } })
  await store.put(["notes"], "n1", { text: "consumers type-check" })
  const [hit] = await store.search(["notes"], { query: "type-check" })
  const stored = await runtime.runPromise(
    Effect.gen(function* () {
      const backing = yield* Effect.scoped(Effect.flatMap(Persistence.BackingPersistence, (b) => b.make("consumer")))
      yield* backing.set("k", { ok: true }, Option.none())
      const kv = yield* KeyValueStore.KeyValueStore
      yield* kv.set("k", "v")
      return [yield* backing.get("k"), yield* kv.get("k")] as const
    })
  )
  await runtime.dispose()
  if (tuple?.config.configurable?.["thread_id"] !== "consumer" || hit?.key !== "n1" || Option.isNone(stored[1])) {
    throw new Error(`frameworks (${name}): unexpected results`)
  }
  console.log(`frameworks (${name}): LangGraph saver and store, BackingPersistence and KeyValueStore ok`)
}
