/** The in-memory layers, one module per store, the shared `MemoryDatabase` and `StoresMemory` (no database driver loaded). */
export * as MemoryAgentMemoryStore from "./MemoryAgentMemoryStore.ts"
export * as MemoryConfigStore from "./MemoryConfigStore.ts"
export * as MemoryConversationStore from "./MemoryConversationStore.ts"
export { MemoryDatabase } from "./MemoryDatabase.ts"
export * as MemoryPlanStore from "./MemoryPlanStore.ts"
export * as MemorySessionStore from "./MemorySessionStore.ts"
export * as MemoryTaskStore from "./MemoryTaskStore.ts"
export { StoresMemory } from "../Stores.ts"
