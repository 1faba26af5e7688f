/**
 * `effect-agent-stores/langgraph`: LangGraph's persistence over the library's stores. `LangGraphSaver` is a
 * checkpointer (`BaseCheckpointSaver`) over `CheckpointStore`; `LangGraphStore` is a `BaseStore` of namespaced items
 * over `AgentMemoryStore`, with semantic search through `Embeddings` and `VectorStore`. Both run on a runtime you give
 * them (see `RuntimeLike`); `@langchain/langgraph-checkpoint` and `@langchain/core` are their peer dependencies.
 */
export { AdapterError, type RuntimeLike } from "../Runner.ts"
export { LangGraphSaver, type LangGraphSaverOptions, type LangGraphSaverStores } from "./LangGraphSaver.ts"
export {
  type LangGraphIndexOptions,
  type LangGraphPutOptions,
  LangGraphStore,
  type LangGraphStoreOptions,
  type LangGraphStoreServices
} from "./LangGraphStore.ts"
