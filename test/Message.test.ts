/**
 * The messages' fast path must agree with the Schema: whatever
 * `isPlainMessageInput` accepts, `MessageInput` decodes to an equal value.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { isPlainMessageInput, MessageInput } from "../src/Message.ts"

const decode = Schema.decodeUnknownEither(MessageInput)

const count = fc.oneof(fc.nat(), fc.constantFrom(-1, 0.5, Number.NaN, Infinity, 2 ** 53, "3"))
const usage = fc.record(
  {
    inputTokens: count,
    outputTokens: count,
    totalTokens: count,
    reasoningTokens: fc.oneof(count, fc.constant(undefined)),
    cachedInputTokens: count,
    other: fc.nat()
  },
  { requiredKeys: [] }
)
const metadata = fc.record(
  {
    model: fc.oneof(fc.string(), fc.nat()),
    finishReason: fc.constantFrom("stop", "length", "tool-calls", "bored", null),
    usage: fc.oneof(usage, fc.constant(null), fc.constant([])),
    cost: fc.record({ inputCost: fc.nat(), outputCost: fc.nat(), totalCost: fc.nat() }),
    custom: fc.jsonValue()
  },
  { requiredKeys: [] }
)
const part = fc.record(
  {
    type: fc.constantFrom("text", "reasoning", "image", "tool-call", "video"),
    text: fc.oneof(fc.string(), fc.nat(), fc.constant(undefined)),
    providerMetadata: fc.dictionary(fc.string(), fc.jsonValue()),
    extra: fc.string()
  },
  { requiredKeys: [] }
)
const candidate = fc.record(
  {
    id: fc.oneof(fc.string({ maxLength: 300 }), fc.constantFrom("", "a\u0000b", "x".repeat(256)), fc.nat()),
    role: fc.constantFrom("system", "user", "assistant", "tool", "robot"),
    parts: fc.oneof(fc.array(part, { maxLength: 3 }), fc.constant("text")),
    metadata: fc.oneof(metadata, fc.constant(null), fc.constant(undefined)),
    createdAt: fc.oneof(fc.nat(), fc.constant(undefined)),
    seq: fc.nat()
  },
  { requiredKeys: [] }
)

const validish = fc.record(
  {
    id: fc.string({ minLength: 1, maxLength: 255 }),
    role: fc.constantFrom("system", "user", "assistant", "tool"),
    parts: fc.array(fc.record({ type: fc.constantFrom("text", "reasoning"), text: fc.string() }), { maxLength: 3 }),
    metadata: fc.record(
      {
        model: fc.string(),
        finishReason: fc.constantFrom("stop", "length", "tool-calls"),
        usage: fc.record(
          { inputTokens: fc.nat(), outputTokens: fc.nat(), totalTokens: fc.nat(), reasoningTokens: fc.nat() },
          { requiredKeys: ["inputTokens", "outputTokens", "totalTokens"] }
        )
      },
      { requiredKeys: [] }
    )
  },
  { requiredKeys: ["role", "parts"] }
)

type Input = Record<string, any>
const bad = fc.oneof(
  fc.constantFrom(undefined, null, -1, 0.5, Number.NaN, "", "a\u0000b", "x".repeat(256), [], {}, "stop", "bored"),
  fc.string(),
  fc.nat(),
  fc.jsonValue()
)
const mutations: ReadonlyArray<(input: Input, value: unknown) => Input> = [
  (m, v) => ({ ...m, id: v }),
  (m, v) => ({ ...m, role: v }),
  (m, v) => ({ ...m, parts: v }),
  (m, v) => ({ ...m, createdAt: v }),
  (m, v) => ({ ...m, extra: v }),
  (m, v) => ({ ...m, parts: [...m.parts, { type: "text", text: v }] }),
  (m, v) => ({ ...m, parts: [...m.parts, { type: v, text: "t" }] }),
  (m, v) => ({ ...m, parts: [...m.parts, { type: "text", text: "t", extra: v }] }),
  (m, v) => ({ ...m, parts: [...m.parts, { type: "reasoning", text: "t", providerMetadata: v }] }),
  (m, v) => ({ ...m, metadata: v }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, model: v } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, finishReason: v } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, custom: v } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, usage: v } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, usage: { ...m.metadata?.usage, inputTokens: v } } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, usage: { ...m.metadata?.usage, reasoningTokens: v } } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, usage: { ...m.metadata?.usage, cachedInputTokens: v } } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, usage: { ...m.metadata?.usage, other: v } } })
]
const mutated = fc
  .tuple(validish, fc.constantFrom(...mutations), bad)
  .map(([input, mutate, value]) => mutate(input as Input, value))

describe("isPlainMessageInput", () => {
  it("accepts only what MessageInput decodes to an equal value", () => {
    let accepted = 0
    fc.assert(
      fc.property(fc.oneof(validish, mutated, candidate), (input) => {
        if (!isPlainMessageInput(input)) return
        accepted++
        const decoded = decode(input)
        expect(Either.isRight(decoded)).toBe(true)
        if (Either.isRight(decoded)) expect(decoded.right).toStrictEqual(input)
      }),
      { numRuns: 20_000 }
    )
    expect(accepted).toBeGreaterThan(5_000)
  })

  it("takes the common shapes", () => {
    expect(isPlainMessageInput({ role: "user", parts: [{ type: "text", text: "hi" }] })).toBe(true)
    expect(
      isPlainMessageInput({
        id: "m1",
        role: "assistant",
        parts: [
          { type: "reasoning", text: "thinking" },
          { type: "text", text: "answer" }
        ],
        metadata: { model: "m", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 2, totalTokens: 3 } }
      })
    ).toBe(true)
    expect(isPlainMessageInput({ role: "user", parts: [{ type: "text", text: "hi", extra: 1 }] })).toBe(false)
    expect(isPlainMessageInput({ role: "user", parts: [], metadata: { traceId: "t" } })).toBe(false)
  })
})
