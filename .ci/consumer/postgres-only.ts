/** An app with `postgres` installed and no optional packages: the PostgreSQL bundle runs against `DATABASE_URL`. */
import { Effect } from "effect"
import { ConversationStore, SessionStore } from "effect-agent-stores"
import { StoresPg } from "effect-agent-stores/layers"

const url = process.env.DATABASE_URL
if (url === undefined) throw new Error("set DATABASE_URL")

const program = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const conversations = yield* ConversationStore
  const session = yield* sessions.create({ agentId: "postgres-only" })
  const chat = yield* conversations.create({ sessionId: session.id })
  yield* conversations.append(chat.id, { role: "user", parts: [{ type: "text", text: "hi" }] })
  return (yield* conversations.messages(chat.id)).length
})

const layer = StoresPg({ url, tablePrefix: process.env.CONSUMER_PREFIX ?? "consumer", maxConnections: 2 })
console.log(`postgres-only: ${await Effect.runPromise(program.pipe(Effect.provide(layer)))} message stored`)
