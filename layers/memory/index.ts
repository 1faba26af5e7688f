/** The in-memory layers, one per store, and the shared `MemoryDatabase`. */
export * as MemoryConversationStore from "./ConversationStore.ts"
export { MemoryDatabase } from "./MemoryDatabase.ts"
export * as MemorySessionStore from "./SessionStore.ts"
