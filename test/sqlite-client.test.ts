/** The generic `SqlClient` layers on SQLite through @effect/sql-sqlite-node: the path a caller's own client takes. */
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Layer } from "effect"
import * as SqlConversationStore from "../layers/sql/ConversationStore.ts"
import * as SqlSessionStore from "../layers/sql/SessionStore.ts"
import * as Conversations from "./suites/ConversationStore.ts"
import * as Sessions from "./suites/SessionStore.ts"

const stores = Layer.mergeAll(SqlSessionStore.layer, SqlConversationStore.layer).pipe(
  Layer.provide(SqliteClient.layer({ filename: ":memory:" }))
)

Sessions.suite("SqlClient on sqlite-node", stores)
Conversations.suite("SqlClient on sqlite-node", stores)
