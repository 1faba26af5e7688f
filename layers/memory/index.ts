/** The in-memory layers, one per store, and the shared `MemoryDatabase`. */
export * as MemoryConversationStore from "./MemoryConversationStore.ts"
export { MemoryDatabase } from "./MemoryDatabase.ts"
export * as MemorySessionStore from "./MemorySessionStore.ts"
