/**
 * An AI SDK chat backend on the stores: the chat route streams the answer with `streamText` (here the SDK's mock
 * model, so it runs offline) and, when the UI message stream ends, saves the chat's `UIMessage`s as they are
 * (`onEnd`, ai 7's name for `onFinish`). Then the chat is reloaded and validated as the AI SDK recommends,
 * continued with a new question, and its last answer regenerated after `truncateAfter`.
 * Run with `npm run example:ai-sdk` (an in-memory SQLite database; set AGENT_STORES_DB to use a file).
 */
import { convertToModelMessages, simulateReadableStream, streamText, type UIMessage, validateUIMessages } from "ai"
import { MockLanguageModelV4 } from "ai/test"
import { Console, Effect, Option, Runtime } from "effect"
import { randomUUID } from "node:crypto"
import { StoresSqlite } from "../layers/Stores.ts"
import { ConversationStore, SessionStore } from "../src/index.ts"

const filename = process.env.AGENT_STORES_DB ?? ":memory:"

/** The mock model: each call streams the next of these answers, word by word. */
const answers = ["It is sunny in Lisbon, 21°C.", "Tomorrow: clouds, 18°C.", "Tomorrow looks cloudy, around 18°C."]
let calls = 0
const model = new MockLanguageModelV4({
  doStream: async () => {
    const words = answers[calls++ % answers.length]!.split(" ")
    return {
      stream: simulateReadableStream({
        chunks: [
          { type: "text-start" as const, id: "t" },
          ...words.map((word, i) => ({ type: "text-delta" as const, id: "t", delta: i === 0 ? word : ` ${word}` })),
          { type: "text-end" as const, id: "t" },
          {
            type: "finish" as const,
            finishReason: { unified: "stop" as const, raw: "stop" },
            usage: {
              inputTokens: { total: 12, noCache: 12, cacheRead: undefined, cacheWrite: undefined },
              outputTokens: { total: words.length, text: words.length, reasoning: undefined }
            }
          }
        ]
      })
    }
  }
})

/** The text of a UI message's text parts. */
const textOf = (message: { readonly parts: ReadonlyArray<{ readonly type: string; readonly text?: unknown }> }) =>
  message.parts.flatMap((part) => (part.type === "text" ? [String(part.text)] : [])).join("")

/** A user message as the AI SDK's `useChat` sends it. */
const userMessage = (text: string): UIMessage => ({ id: randomUUID(), role: "user", parts: [{ type: "text", text }] })

/**
 * The chat route (`POST /api/chat` with `{ id, messages }`): streams the answer to `messages` and, when the stream
 * ends, saves the whole chat as the session `chatId`'s (unchanged messages stay as they are stored). The client's
 * reading of the stream is played by draining it here.
 */
const chatRoute = (chatId: string, messages: Array<UIMessage>) =>
  Effect.gen(function* () {
    const sessions = yield* SessionStore
    const run = Runtime.runPromise(yield* Effect.runtime<never>())
    const result = streamText({ model, messages: yield* Effect.promise(() => convertToModelMessages(messages)) })
    const stream = result.toUIMessageStream({
      originalMessages: messages,
      generateMessageId: randomUUID,
      messageMetadata: ({ part }) =>
        part.type === "finish" ? { model: model.modelId, usage: part.totalUsage, finishReason: part.finishReason } : {},
      onEnd: ({ messages }) => run(sessions.save(chatId, messages))
    })
    yield* Effect.promise(async () => {
      for await (const _ of stream) {
        // The client renders the chunks as they arrive.
      }
    })
  })

/** The chat as the client reloads it: the stored messages, validated by the AI SDK. */
const reload = (chatId: string) =>
  Effect.gen(function* () {
    const stored = Option.getOrElse(yield* (yield* SessionStore).load(chatId), () => [])
    return yield* Effect.promise(() => validateUIMessages<UIMessage>({ messages: stored }))
  })

const program = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const conversations = yield* ConversationStore
  const session = yield* sessions.create({ agentId: "weather-bot", resourceId: "user-42", title: "Weather" })
  const chatId = session.id

  yield* chatRoute(chatId, [userMessage("What is the weather in Lisbon?")])
  const reloaded = yield* reload(chatId)
  yield* Console.log(
    `reloaded ${reloaded.length} messages: ${reloaded.map((m) => `${m.role}: ${textOf(m)}`).join(" | ")}`
  )
  const usage = reloaded[1]?.metadata as { usage?: { outputTokens?: number } } | undefined
  yield* Console.log(`the answer's usage was stored with it: ${usage?.usage?.outputTokens} output tokens`)

  yield* chatRoute(chatId, [...reloaded, userMessage("And tomorrow?")])
  const continued = yield* conversations.messages(chatId)
  yield* Console.log(
    `continued: ${continued.map((m) => `#${m.seq} ${m.role}`).join(", ")} (the first two kept their seq)`
  )

  // Regenerate the last answer: drop what follows the question, and ask again.
  const question = continued.filter((m) => m.role === "user").at(-1)!
  yield* conversations.truncateAfter(chatId, question.seq)
  yield* chatRoute(chatId, yield* reload(chatId))
  const regenerated = yield* conversations.messages(chatId)
  yield* Console.log(`regenerated: ${regenerated.map((m) => `#${m.seq} ${m.role}: ${textOf(m)}`).join(" | ")}`)
  const chat = yield* conversations.get(chatId)
  yield* Console.log(`the chat holds ${chat.messageCount} messages; seqs are never reused (last seq ${chat.lastSeq})`)
  const mine = yield* sessions.list({ resourceId: "user-42" })
  yield* Console.log(`user-42 has ${mine.items.length} chat(s), ${mine.items[0]?.messageCount} messages`)
})

Effect.runPromise(program.pipe(Effect.provide(StoresSqlite({ filename })))).catch((error) => {
  console.error(error)
  process.exit(1)
})
