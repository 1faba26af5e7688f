/** The SQL layers, one per store (SQLite or PostgreSQL), and the embedded SQLite backend. */
export * as SqlConversationStore from "./SqlConversationStore.ts"
export * as SqliteDatabase from "./SqliteDatabase.ts"
export * as SqlSessionStore from "./SqlSessionStore.ts"
export type { SqlOptions } from "./Kit.ts"
