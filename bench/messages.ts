/**
 * The messages of the SQLite bench (`bench/run.ts`, `bench/compare.ts`): the same objects for the library and
 * the raw driver, as an agent's conversation holds them.
 */
import type { MessageInput } from "../src/Message.ts"

const userTexts = [
  "Can you summarise the main differences between the two proposals we discussed yesterday, in three bullets?",
  "What is the weather going to be like in Lisbon this weekend, and should I bring an umbrella for the trip?",
  "Please rewrite this paragraph so it sounds friendlier but keep it under one hundred words, thanks a lot.",
  "Remind me which of the open tickets are blocked on the database migration and who is assigned to them."
]
const assistantTexts = [
  "Sure. The first proposal keeps the current schema and adds a cache; the second moves sessions to a separate " +
    "store. The first is cheaper, the second scales further.",
  "Lisbon looks mild this weekend, around 19°C with a chance of showers on Saturday afternoon. A light umbrella " +
    "would be a good idea.",
  "Here is a friendlier version: thanks so much for your patience while we sorted this out, we really appreciate it.",
  "Three tickets are blocked on the migration: two assigned to Ana and one to Marco. None of them are overdue yet."
]
const models = ["gpt-4o-mini", "claude-3-5-haiku"]

/** 16 alternating user and assistant messages; assistant messages carry model, finish reason and usage. */
export const messages: ReadonlyArray<MessageInput> = Array.from({ length: 16 }, (_, i): MessageInput => {
  if (i % 2 === 0) return { role: "user", parts: [{ type: "text", text: userTexts[(i / 2) % userTexts.length]! }] }
  const inputTokens = 120 + 17 * i
  const outputTokens = 40 + 9 * i
  return {
    role: "assistant",
    parts: [{ type: "text", text: assistantTexts[((i - 1) / 2) % assistantTexts.length]! }],
    metadata: {
      model: models[i % models.length]!,
      finishReason: "stop",
      usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens }
    }
  }
})
/** The `i`-th message of the conversation, cycling through `messages`. */
export const message = (i: number): MessageInput => messages[i % messages.length]!
/** The same messages with custom metadata keys beside the well-known ones (what tracing and routing add). */
export const customMessages: ReadonlyArray<MessageInput> = messages.map((m, i) =>
  m.metadata === undefined
    ? m
    : {
        ...m,
        metadata: {
          ...(m.metadata as object),
          traceId: `4bf92f3577b34da6a3ce929d0e0e${String(4736 + i).padStart(4, "0")}`,
          requestId: `req_${1000 + i}`,
          tags: ["support", i % 4 === 1 ? "billing" : "shipping"]
        }
      }
)
/** The `i`-th of `customMessages`. */
export const customMessage = (i: number): MessageInput => customMessages[i % customMessages.length]!
/** 100 messages, as one `appendMany` takes them. */
export const batch: ReadonlyArray<MessageInput> = Array.from({ length: 100 }, (_, i) => message(i))
