/** The SQL layers: over any `SqlClient` (PostgreSQL) and on the embedded SQLite backend. */
export * as SqlConversationStore from "./ConversationStore.ts"
export * as Migrations from "./Migrations.ts"
export * as SqlSessionStore from "./SessionStore.ts"
export * as SqliteConversationStore from "./SqliteConversationStore.ts"
export * as SqliteDatabase from "./SqliteDatabase.ts"
export * as SqliteSessionStore from "./SqliteSessionStore.ts"
