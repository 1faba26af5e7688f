import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { StoresSqlite } from "../layers/Stores.ts"
import * as Conversations from "./suites/ConversationStore.ts"
import * as Sessions from "./suites/SessionStore.ts"

const file = join(mkdtempSync(join(tmpdir(), "agent-stores-")), "test.db")

for (const [label, filename] of [
  ["sqlite :memory:", ":memory:"],
  ["sqlite file", file]
] as const) {
  Sessions.suite(label, StoresSqlite({ filename }))
  Conversations.suite(label, StoresSqlite({ filename }))
}
