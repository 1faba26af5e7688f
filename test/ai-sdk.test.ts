/**
 * Chats as AI SDK apps hold them, against the real `ai` package (devDependency, exact version) on every backend:
 * a corpus of `UIMessage`s with every part type and tool state the installed `ai` defines (a type-level list fails
 * to compile when it adds one), data parts and usage details is stored and read back deep-equal, through a
 * conversation and through a session; `validateUIMessages` accepts the read-back; `convertToModelMessages` of the
 * read-back equals that of the original; the stored history drives `generateText` and `streamText` with the SDK's
 * mock model. The same for `ModelMessage` histories (every content part, the `FileData` forms included), through
 * `fromModelMessages`/`toModelMessages`. A property test over generated UIMessages with unknown fields holds the
 * round trip.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import {
  convertToModelMessages,
  type DynamicToolUIPart,
  generateText,
  type ModelMessage,
  streamText,
  type ToolUIPart,
  type UIDataTypes,
  type UIMessage,
  type UIMessagePart,
  type UITools,
  validateUIMessages
} from "ai"
import { MockLanguageModelV4 } from "ai/test"
import { Effect, FastCheck as fc, Layer, Option } from "effect"
import * as MemoryConversationStore from "../layers/memory/MemoryConversationStore.ts"
import * as MemorySessionStore from "../layers/memory/MemorySessionStore.ts"
import { conversationsSchema } from "../layers/sql/SqlChats.ts"
import * as SqlConversationStore from "../layers/sql/SqlConversationStore.ts"
import * as SqlSessionStore from "../layers/sql/SqlSessionStore.ts"
import {
  ConversationStore,
  fromModelMessages,
  type MessageInput,
  type MessageMetadata,
  partTypes,
  SessionStore,
  type StoredMessage,
  ToolState,
  toModelMessages
} from "../src/index.ts"
import { onEveryBackend } from "./backends.ts"

// ---------------------------------------------------------------------------
// The types of the installed `ai`, listed: a part type or tool state it adds (or drops) fails to compile here.

type AiPart = UIMessagePart<UIDataTypes, UITools>
type AiFixedPartType = Exclude<AiPart["type"], `tool-${string}` | `data-${string}`>
const aiFixedPartTypes = {
  text: true,
  custom: true,
  reasoning: true,
  "dynamic-tool": true,
  "source-url": true,
  "source-document": true,
  file: true,
  "reasoning-file": true,
  "steering-message": true,
  "step-start": true
} as const satisfies Record<AiFixedPartType, true>

type AiToolState = ToolUIPart["state"] | DynamicToolUIPart["state"]
const aiToolStates = {
  "input-streaming": true,
  "input-available": true,
  "approval-requested": true,
  "approval-responded": true,
  "output-available": true,
  "output-error": true,
  "output-denied": true
} as const satisfies Record<AiToolState, true>

/** `true` when `A` and `B` are the same type. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
const sameToolStates: Same<AiToolState, ToolState> = true

describe("the ai package's UIMessage types", () => {
  it("every fixed part type of ai is a fixed part type here, and its tool states are ToolState's", () => {
    for (const type of Object.keys(aiFixedPartTypes)) expect(partTypes).toContain(type)
    expect(Object.keys(aiToolStates).sort()).toEqual([...ToolState.literals].sort())
    expect(sameToolStates).toBe(true)
  })
})

// ---------------------------------------------------------------------------
// A corpus of UIMessages: every part type, every tool state, data parts, usage details, unknown fields

interface Metadata {
  readonly model?: string
  readonly finishReason?: string
  readonly usage?: object
  readonly createdBy?: string
}
interface DataParts extends UIDataTypes {
  readonly weather: { readonly city: string; readonly temp: number }
  readonly status: string
}
interface Tools extends UITools {
  readonly getWeather: { input: { readonly city: string }; output: { readonly temp: number } }
}
type ChatMessage = UIMessage<Metadata, DataParts, Tools>

const odd = "nul \u0000 half \ud800 \udc00 line \u2028 \\u0000"
/** ai 7's usage: detail objects, counts it does not know left `undefined`. */
const usage = {
  inputTokens: 120,
  inputTokenDetails: { noCacheTokens: 100, cacheReadTokens: 20, cacheWriteTokens: undefined },
  outputTokens: 42,
  outputTokenDetails: { textTokens: 30, reasoningTokens: 12 },
  totalTokens: 162,
  raw: { prompt_tokens: 120, completion_tokens: 42 }
}
const providerMetadata = { mock: { signature: "sig", cached: true } }

const toolParts: Array<AiPart> = [
  {
    type: "tool-getWeather",
    toolCallId: "t1",
    state: "input-streaming",
    input: { city: "Lis" },
    rawInput: '{"city":"Lis'
  },
  { type: "tool-getWeather", toolCallId: "t2", state: "input-available", input: { city: "Lisbon" }, title: "Weather" },
  {
    type: "tool-getWeather",
    toolCallId: "t3",
    state: "approval-requested",
    input: { city: "Porto" },
    approval: { id: "ap3", requestReason: "costs money" }
  },
  {
    type: "tool-getWeather",
    toolCallId: "t4",
    state: "approval-responded",
    input: { city: "Faro" },
    approval: { id: "ap4", approved: true, reason: "fine" }
  },
  {
    type: "tool-getWeather",
    toolCallId: "t5",
    state: "output-available",
    input: { city: "Braga" },
    output: { temp: 18 },
    providerExecuted: false,
    preliminary: false,
    callProviderMetadata: providerMetadata,
    resultProviderMetadata: providerMetadata,
    toolMetadata: { cost: 1 }
  },
  {
    type: "tool-getWeather",
    toolCallId: "t6",
    state: "output-error",
    input: { city: "Nowhere" },
    errorText: `no such city ${odd}`
  },
  {
    type: "tool-getWeather",
    toolCallId: "t7",
    state: "output-denied",
    input: { city: "Evora" },
    approval: { id: "ap7", approved: false, reason: "no" }
  },
  {
    type: "dynamic-tool",
    toolName: "search",
    toolCallId: "d1",
    state: "output-available",
    input: { q: odd },
    output: [{ title: odd }],
    providerExecuted: true
  },
  { type: "dynamic-tool", toolName: "search", toolCallId: "d2", state: "input-streaming", input: undefined }
]

const corpus: Array<ChatMessage> = [
  { id: "s1", role: "system", parts: [{ type: "text", text: "Be brief." }] },
  {
    id: "u1",
    role: "user",
    metadata: { createdBy: "user-7" },
    parts: [
      { type: "text", text: `What is the weather? ${odd}` },
      {
        type: "file",
        mediaType: "image/png",
        url: "data:image/png;base64,iVBORw0KGgo=",
        filename: "map.png",
        providerReference: { mock: "file-1" }
      }
    ]
  },
  {
    id: "a1",
    role: "assistant",
    metadata: { model: "mock-model-id", finishReason: "interrupted", usage },
    parts: [
      { type: "step-start" },
      { type: "reasoning", id: "r1", text: "Look it up.", state: "done", providerMetadata },
      ...toolParts,
      { type: "source-url", sourceId: "src1", url: "https://example.test/a", title: "A", providerMetadata },
      { type: "source-document", sourceId: "src2", mediaType: "application/pdf", title: "B", filename: "b.pdf" },
      { type: "data-weather", id: "w1", data: { city: "Lisbon", temp: 21 } },
      { type: "data-status", data: "done" },
      { type: "step-start" },
      {
        type: "text",
        text: "Sunny, 21°C.",
        state: "done",
        providerMetadata,
        citations: [{ source: { type: "source", sourceType: "url", id: "src1", url: "https://example.test/a" } }]
      },
      { type: "reasoning-file", mediaType: "image/png", url: "data:image/png;base64,iVBORw0KGgo=" },
      { type: "custom", kind: "mock.note", providerMetadata },
      { type: "steering-message", id: "st1", parts: [{ type: "text", text: "and tomorrow?" }] },
      { type: "text", text: "Still typing", state: "streaming" }
    ]
  },
  { id: "u2", role: "user", parts: [{ type: "text", text: "Thanks!" }] }
]

/** A stored message as the UI message it holds: without the fields the store adds. */
const asUiMessage = (message: Record<string, unknown>) => {
  const { conversationId: _c, createdAt: _t, seq: _s, sessionId: _i, ...ui } = message
  return ui
}

/** `value` as JSON gives it back (JSON has no `undefined`). */
const json = (value: unknown) => JSON.parse(JSON.stringify(value))

const mockResult = (text: string) => ({
  content: [{ type: "text" as const, text }],
  finishReason: { unified: "stop" as const, raw: "stop" },
  usage: {
    inputTokens: { total: 3, noCache: 3, cacheRead: undefined, cacheWrite: undefined },
    outputTokens: { total: 1, text: 1, reasoning: undefined }
  },
  warnings: []
})

const mockStream = (text: string) => ({
  stream: new ReadableStream({
    start(controller) {
      controller.enqueue({ type: "text-start", id: "1" })
      controller.enqueue({ type: "text-delta", id: "1", delta: text })
      controller.enqueue({ type: "text-end", id: "1" })
      controller.enqueue({
        type: "finish",
        finishReason: { unified: "stop", raw: "stop" },
        usage: mockResult(text).usage
      })
      controller.close()
    }
  })
})

/** The prompt `generateText` and `streamText` send the mock model for `messages`. */
const promptsOf = (messages: Array<ModelMessage>) =>
  Effect.promise(async () => {
    // Every URL is the model's to fetch, so the SDK downloads none (the tests run offline).
    const model = new MockLanguageModelV4({
      doGenerate: mockResult("ok"),
      doStream: mockStream("ok"),
      supportedUrls: { "*/*": [/.*/] }
    })
    const generated = await generateText({ model, messages })
    const streamed = streamText({ model, messages })
    expect(generated.text).toBe("ok")
    expect(await streamed.text).toBe("ok")
    return [model.doGenerateCalls[0]!.prompt, model.doStreamCalls[0]!.prompt]
  })

// ---------------------------------------------------------------------------
// A ModelMessage history: every content part, the FileData forms included

const bytes = new Uint8Array([137, 80, 78, 71, 0, 255])
const modelHistory: Array<ModelMessage> = [
  { role: "system", content: "Be brief.", providerOptions: { mock: { cache: true } } },
  {
    role: "user",
    content: [
      { type: "text", text: `Look ${odd}`, providerOptions: { mock: { a: 1 } } },
      { type: "image", image: bytes, mediaType: "image/png" },
      { type: "image", image: new URL("https://example.test/cat.png") },
      { type: "image", image: "iVBORw0KGgo=" },
      { type: "file", data: Buffer.from("hello"), mediaType: "text/plain", filename: "a.txt" },
      { type: "file", data: bytes.buffer.slice(0), mediaType: "image/png" },
      { type: "file", data: { type: "data", data: bytes }, mediaType: "image/png" },
      { type: "file", data: { type: "url", url: new URL("https://example.test/b.pdf") }, mediaType: "application/pdf" },
      { type: "file", data: { type: "reference", reference: { mock: "file-9" } }, mediaType: "application/pdf" },
      { type: "file", data: { type: "text", text: odd }, mediaType: "text/plain" }
    ]
  },
  {
    role: "assistant",
    content: [
      { type: "reasoning", text: "Think.", providerOptions: { mock: { signature: "s" } } },
      { type: "reasoning-file", data: bytes, mediaType: "image/png" },
      { type: "custom", kind: "mock.note" },
      { type: "text", text: "Checking." },
      { type: "tool-call", toolCallId: "c1", toolName: "getWeather", input: { city: "Lisbon" } },
      { type: "tool-call", toolCallId: "c2", toolName: "webSearch", input: { q: "x" }, providerExecuted: true },
      { type: "tool-result", toolCallId: "c2", toolName: "webSearch", output: { type: "json", value: [odd] } },
      { type: "tool-approval-request", approvalId: "ap1", toolCallId: "c1" }
    ]
  },
  {
    role: "tool",
    content: [
      { type: "tool-approval-response", approvalId: "ap1", approved: true, reason: "ok" },
      {
        type: "tool-result",
        toolCallId: "c1",
        toolName: "getWeather",
        output: {
          type: "content",
          value: [
            { type: "text", text: "21°C" },
            { type: "file", data: { type: "data", data: bytes }, mediaType: "image/png" }
          ]
        }
      }
    ]
  },
  { role: "assistant", content: "Sunny." },
  { role: "user", content: "Thanks" }
]

// ---------------------------------------------------------------------------
// Generated UIMessages with unknown fields

const jsonValue = fc.jsonValue({ maxDepth: 2 }).map(json)
const unknownFields = fc.dictionary(
  fc.string({ minLength: 1 }).map((key) => `x-${key}`),
  jsonValue,
  { maxKeys: 2 }
)
const withUnknown = <A extends object>(arbitrary: fc.Arbitrary<A>) =>
  fc.tuple(arbitrary, unknownFields).map(([value, extra]) => ({ ...extra, ...value }))
const generatedPart = fc.oneof(
  withUnknown(fc.record({ type: fc.constant("text"), text: fc.string(), state: fc.constantFrom("streaming", "done") })),
  withUnknown(fc.record({ type: fc.constant("reasoning"), text: fc.string() })),
  withUnknown(fc.record({ type: fc.constant("step-start") })),
  withUnknown(
    fc.record(
      {
        type: fc.string({ minLength: 1 }).map((name) => `tool-${name}`),
        toolCallId: fc.string(),
        state: fc.constantFrom(...ToolState.literals),
        input: jsonValue,
        output: jsonValue,
        errorText: fc.string(),
        approval: fc.record({ id: fc.string(), approved: fc.boolean() }, { requiredKeys: ["id"] })
      },
      { requiredKeys: ["type", "toolCallId", "state"] }
    )
  ),
  withUnknown(fc.record({ type: fc.string().map((name) => `data-${name}`), id: fc.string(), data: jsonValue })),
  withUnknown(fc.record({ type: fc.constant("source-url"), sourceId: fc.string(), url: fc.webUrl() })),
  withUnknown(fc.record({ type: fc.constant("file"), mediaType: fc.constant("text/plain"), url: fc.webUrl() }))
)
const generatedMessages = fc.uniqueArray(
  withUnknown(
    fc.record(
      {
        id: fc.string({ minLength: 1, maxLength: 20 }).filter((id) => !/[\ud800-\udfff\u0000]/.test(id)),
        role: fc.constantFrom("system", "user", "assistant"),
        parts: fc.array(generatedPart, { maxLength: 5 }),
        metadata: withUnknown(fc.record({ finishReason: fc.string(), usage: fc.record({ inputTokens: fc.nat() }) }))
      },
      { requiredKeys: ["id", "role", "parts"] }
    )
  ),
  { maxLength: 4, selector: (message) => message.id }
)

// ---------------------------------------------------------------------------

type Chats = SessionStore | ConversationStore

await onEveryBackend<Chats>(
  {
    memory: Layer.merge(MemorySessionStore.layerWithDatabase, MemoryConversationStore.layerWithDatabase),
    sql: (options) => Layer.merge(SqlSessionStore.layerWith(options), SqlConversationStore.layerWith(options)),
    schemas: [conversationsSchema]
  },
  (backend) =>
    layer(backend.layer, { timeout: "120 seconds" })(`AI SDK chats (${backend.label})`, (it) => {
      it.effect("UIMessages of every part type and tool state round-trip through a conversation and a session", () =>
        Effect.gen(function* () {
          const conversations = yield* ConversationStore
          const sessions = yield* SessionStore
          const chat = yield* conversations.create({})
          const stored: ReadonlyArray<StoredMessage> = yield* conversations.appendMany(chat.id, corpus)
          const read = yield* conversations.messages(chat.id)
          expect(read).toEqual(stored)
          expect(read.map(asUiMessage)).toEqual(json(corpus))
          const validated = yield* Effect.promise(() => validateUIMessages({ messages: read }))
          expect(validated.length).toBe(corpus.length)
          const fromOriginal = yield* Effect.promise(() => convertToModelMessages(corpus))
          const fromStored = yield* Effect.promise(() => convertToModelMessages(read as unknown as Array<ChatMessage>))
          expect(fromStored).toEqual(fromOriginal)
          expect(fromOriginal.length).toBeGreaterThan(corpus.length)

          yield* sessions.save(chat.id, corpus)
          const loaded = Option.getOrThrow(yield* sessions.load(chat.id))
          expect(loaded.map(asUiMessage)).toEqual(json(corpus))
        })
      )

      it.effect("a stored chat drives generateText and streamText with the mock model, and is continued", () =>
        Effect.gen(function* () {
          const conversations = yield* ConversationStore
          const chat = yield* conversations.create({})
          const history: Array<ChatMessage> = [
            { id: "q", role: "user", parts: [{ type: "text", text: `Hi ${odd}` }] },
            {
              id: "r",
              role: "assistant",
              metadata: { usage },
              parts: [
                { type: "step-start" },
                toolParts[4]!,
                { type: "step-start" },
                { type: "text", text: "It is 18." }
              ]
            },
            { id: "q2", role: "user", parts: [{ type: "text", text: "And now?" }] }
          ]
          yield* conversations.appendMany(chat.id, history)
          const read = yield* conversations.messages(chat.id)
          const expected = yield* promptsOf(yield* Effect.promise(() => convertToModelMessages(history)))
          const got = yield* promptsOf(
            yield* Effect.promise(() => convertToModelMessages(read as unknown as Array<ChatMessage>))
          )
          expect(got).toEqual(expected)
          // The AI SDK's continuation streams the last assistant message again under its id: upsert replaces it.
          const answer = yield* conversations.upsert(chat.id, {
            id: "a-final",
            role: "assistant",
            parts: [{ type: "text", text: "Still", state: "streaming" }]
          })
          const continued = yield* conversations.upsert(chat.id, {
            id: "a-final",
            role: "assistant",
            parts: [{ type: "text", text: "Still sunny.", state: "done" }],
            metadata: { finishReason: "stop", usage }
          })
          expect(continued.seq).toBe(answer.seq)
          expect((yield* conversations.messages(chat.id)).map((m) => m.id)).toEqual(["q", "r", "q2", "a-final"])
        })
      )

      it.effect("ModelMessage histories round-trip, bytes and URLs included, and drive the mock model", () =>
        Effect.gen(function* () {
          const conversations = yield* ConversationStore
          const sessions = yield* SessionStore
          const chat = yield* conversations.create({})
          yield* conversations.appendMany(chat.id, fromModelMessages(modelHistory))
          const back = toModelMessages<ModelMessage>(yield* conversations.messages(chat.id))
          expect(back).toEqual(modelHistory)
          const user = back[1]!.content as ReadonlyArray<Record<string, any>>
          expect(user[1]!["image"]).toBeInstanceOf(Uint8Array)
          expect(Buffer.isBuffer(user[1]!["image"])).toBe(false)
          expect(Buffer.isBuffer(user[4]!["data"])).toBe(true)
          expect(user[5]!["data"]).toBeInstanceOf(ArrayBuffer)
          expect(user[7]!["data"].url).toBeInstanceOf(URL)
          // ai 7 takes the system prompt as `instructions`, not as a message.
          const conversation = back.filter((m) => m.role !== "system")
          expect(yield* promptsOf(conversation)).toEqual(yield* promptsOf(modelHistory.slice(1)))
          const simple = modelHistory.filter((m) => typeof m.content === "string")
          yield* sessions.save(chat.id, fromModelMessages(simple))
          const loaded = toModelMessages<ModelMessage>(Option.getOrThrow(yield* sessions.load(chat.id)))
          expect(loaded).toEqual(simple)
        })
      )

      it.effect.prop(
        "generated UIMessages with unknown fields read back as they were stored",
        [generatedMessages],
        ([messages]) =>
          Effect.gen(function* () {
            const conversations = yield* ConversationStore
            const chat = yield* conversations.create({})
            yield* conversations.appendMany(chat.id, messages as Array<MessageInput>)
            const read = yield* conversations.messages(chat.id)
            expect(read.map(asUiMessage)).toEqual(json(messages))
          }),
        { fastCheck: { numRuns: 30 } }
      )
    })
)

/** Type-level: an AI SDK `UIMessage` (with its metadata typed) is a `MessageInput` as it is. */
export const uiMessageIsInput = (message: UIMessage<MessageMetadata>): MessageInput => message
