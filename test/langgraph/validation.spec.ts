/**
 * LangGraph's checkpointer conformance kit (`@langchain/langgraph-checkpoint-validation`) on `LangGraphSaver`, on the
 * backend named by `LANGGRAPH_BACKEND`. Run by the kit's own vitest (see `validation.config.ts`), one process per
 * backend, from `test/langgraph-validation.test.ts`. Each checkpointer the kit creates gets fresh storage.
 */
import { validate } from "@langchain/langgraph-checkpoint-validation"
import { LangGraphSaver } from "../../adapters/langgraph/LangGraphSaver.ts"
import { type BackendName, backendNames, type FreshStores, freshStores } from "./backends.ts"

const backend = process.env["LANGGRAPH_BACKEND"] as BackendName
if (!backendNames.includes(backend)) throw new Error(`LANGGRAPH_BACKEND must be one of ${backendNames.join(", ")}`)

const open = new Map<LangGraphSaver, FreshStores>()

validate({
  checkpointerName: `LangGraphSaver (${backend})`,
  createCheckpointer: () => {
    const stores = freshStores(backend)
    const saver = new LangGraphSaver(stores.runtime)
    open.set(saver, stores)
    return saver
  },
  destroyCheckpointer: async (saver) => {
    await open.get(saver)?.dispose()
    open.delete(saver)
  }
})
