/**
 * The quickstart: sessions and conversations on an embedded SQLite file.
 * Run with `npm run demo`; set AGENT_STORES_DB to choose the file.
 */
import { Console, Effect, Option } from "effect"
import { StoresSqlite } from "../layers/Stores.ts"
import { ConversationStore, SessionStore } from "../src/index.ts"

const filename = process.env.AGENT_STORES_DB ?? "./agent-stores.db"

const program = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const conversations = yield* ConversationStore

  const session = yield* sessions.create({ agentId: "travel-agent", channel: "cli", title: "Weekend in Lisbon" })
  yield* Console.log(`created session ${session.id} (version ${session.version})`)

  const conversation = yield* conversations.create({ sessionId: session.id, title: "Planning", model: "gpt-4o" })
  yield* conversations.append(conversation.id, {
    role: "user",
    parts: [{ type: "text", text: "Find me a quiet hotel in Alfama." }]
  })
  const reply = yield* conversations.append(conversation.id, {
    role: "assistant",
    parts: [
      { type: "tool-call", toolCallId: "call-1", toolName: "searchHotels", input: { area: "Alfama", quiet: true } },
      { type: "text", text: "Here are three quiet hotels in Alfama." }
    ],
    metadata: { model: "gpt-4o", finishReason: "stop", usage: { inputTokens: 42, outputTokens: 18, totalTokens: 60 } }
  })
  yield* Console.log(`appended message #${reply.seq} to conversation ${conversation.id}`)

  const recent = yield* conversations.messages(conversation.id, { limit: 10 })
  yield* Console.log(`recalled ${recent.length} messages: ${recent.map((m) => `${m.seq}:${m.role}`).join(", ")}`)

  yield* sessions.save(session.id, recent)
  const transcript = yield* sessions.load(session.id)
  yield* Console.log(`saved and loaded a transcript of ${Option.getOrThrow(transcript).length} messages`)

  const stale = yield* Effect.flip(
    sessions.update(session.id, { title: "Late edit" }, { expectedVersion: session.version + 1 })
  )
  yield* Console.log(`a stale update fails as a value: ${stale._tag} (${stale.message})`)

  yield* sessions.update(session.id, { status: "closed" })
  const closed = yield* Effect.flip(sessions.save(session.id, []))
  yield* Console.log(`writing to a closed session: ${closed._tag} (${closed.message})`)

  const page = yield* sessions.list({ agentId: "travel-agent", limit: 5, order: "desc" })
  yield* Console.log(`travel-agent has ${page.items.length} recent session(s) in ${filename}`)

  yield* sessions.delete(session.id)
  const gone = yield* conversations.find(conversation.id)
  yield* Console.log(`deleted the session; its conversation is ${Option.isNone(gone) ? "gone too" : "still there"}`)
})

Effect.runPromise(program.pipe(Effect.provide(StoresSqlite({ filename })))).catch((error) => {
  console.error(error)
  process.exit(1)
})
