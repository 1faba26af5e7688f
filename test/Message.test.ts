/**
 * The messages' fast path must agree with the Schema: whatever
 * `isPlainMessageInput` accepts, `MessageInput` decodes to an equal value.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { isPlainMessageInput, MessageInput } from "../src/Message.ts"

const decode = Schema.decodeUnknownEither(MessageInput)

type Input = Record<string, any>

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
/** Arrays nested `depth` deep around `null`: around the JSON depth limit (256) as a metadata value. */
const nested = (depth: number): unknown => (depth === 0 ? null : [nested(depth - 1)])
/** Values for custom metadata keys: JSON, non-JSON and hostile values, and nesting at the depth limit. */
const customValue = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom(
    undefined,
    Number.NaN,
    Infinity,
    "a\u0000b",
    { k: "a\u0000b" },
    [1, undefined],
    { k: undefined },
    new Date(0),
    new Map(),
    () => 1,
    Object.create(null),
    JSON.parse('{"__proto__": 1}'),
    nested(254),
    nested(255),
    nested(256)
  )
)
/** Custom metadata keys, with the well-known ones the fast path leaves to the Schema and hostile names. */
const customKey = fc.oneof(
  fc.string(),
  fc.constantFrom("traceId", "requestId", "tags", "cost", "stats", "__proto__", "constructor", "toString", "")
)
const customMetadata = fc.array(fc.tuple(customKey, customValue), { maxLength: 4 })
/** Sets own keys (`__proto__` included) without touching prototypes. */
const withKeys = (base: Input, entries: ReadonlyArray<readonly [string, unknown]>): Input => {
  const out: Input = { ...base }
  for (const [key, value] of entries) Object.defineProperty(out, key, { value, enumerable: true, writable: true })
  return out
}

const metadata = fc
  .record(
    {
      model: fc.oneof(fc.string(), fc.nat()),
      finishReason: fc.constantFrom("stop", "length", "tool-calls", "bored", null),
      usage: fc.oneof(usage, fc.constant(null), fc.constant([])),
      cost: fc.record({ inputCost: fc.nat(), outputCost: fc.nat(), totalCost: fc.nat() }),
      custom: fc.jsonValue()
    },
    { requiredKeys: [] }
  )
  .chain((known) => customMetadata.map((entries) => withKeys(known, entries)))
const part = fc.record(
  {
    type: fc.constantFrom("text", "reasoning", "image", "tool-call", "video", "step-start"),
    text: fc.oneof(fc.string(), fc.nat(), fc.constant(undefined)),
    state: fc.constantFrom("streaming", "done", "typing", undefined, 1),
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

const validish = fc
  .record(
    {
      id: fc.string({ minLength: 1, maxLength: 255 }),
      role: fc.constantFrom("system", "user", "assistant", "tool"),
      parts: fc.array(
        fc.oneof(
          fc.record(
            {
              type: fc.constantFrom("text", "reasoning"),
              text: fc.string(),
              state: fc.constantFrom("streaming", "done")
            },
            { requiredKeys: ["type", "text"] }
          ),
          fc.constant({ type: "step-start" })
        ),
        { maxLength: 3 }
      ),
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
      ),
      custom: fc.array(fc.tuple(fc.constantFrom("traceId", "requestId", "tags", "x"), fc.jsonValue()), { maxLength: 3 })
    },
    { requiredKeys: ["role", "parts"] }
  )
  .map(({ custom, ...input }) =>
    custom === undefined || input.metadata === undefined
      ? input
      : { ...input, metadata: withKeys(input.metadata, custom) }
  )

const bad = fc.oneof(
  fc.constantFrom(undefined, null, -1, 0.5, Number.NaN, "", "a\u0000b", "x".repeat(256), [], {}, "stop", "bored"),
  fc.string(),
  fc.nat(),
  fc.jsonValue(),
  customValue
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
  (m, v) => ({ ...m, metadata: withKeys(m.metadata ?? {}, [["__proto__", v]]) }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, cost: v } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, tags: ["a", v] } }),
  (m, v) => ({ ...m, metadata: { ...m.metadata, trace: { id: "t", span: v } } }),
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
    let acceptedCustom = 0
    fc.assert(
      fc.property(fc.oneof(validish, mutated, candidate), (input) => {
        if (!isPlainMessageInput(input)) return
        accepted++
        if (Object.keys(input.metadata ?? {}).some((key) => !["model", "finishReason", "usage"].includes(key))) {
          acceptedCustom++
        }
        const decoded = decode(input)
        expect(Either.isRight(decoded)).toBe(true)
        // Equal in structure; not `toStrictEqual`: the Schema may copy nested JSON into fresh plain objects, so
        // prototypes of nested values differ (`undefined` values, which `toEqual` ignores, never pass the fast path).
        if (Either.isRight(decoded)) expect(decoded.right).toEqual(input)
      }),
      { numRuns: 20_000 }
    )
    expect(accepted).toBeGreaterThan(5_000)
    expect(acceptedCustom).toBeGreaterThan(2_000)
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
    expect(isPlainMessageInput({ role: "user", parts: [{ type: "text", text: "hi", state: "done" }] })).toBe(true)
    expect(isPlainMessageInput({ role: "user", parts: [{ type: "text", text: "hi", state: "typing" }] })).toBe(false)
    expect(isPlainMessageInput({ role: "user", parts: [{ type: "step-start" }] })).toBe(true)
    expect(isPlainMessageInput({ role: "user", parts: [{ type: "step-start", at: 1 }] })).toBe(false)
    expect(isPlainMessageInput({ role: "user", parts: [], metadata: { traceId: "t" } })).toBe(true)
    // `-0` decodes to `0`, so a usage count of `-0` is left to the Schema (found by the property above, seed -1023013285).
    const usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0, reasoningTokens: -0 }
    expect(isPlainMessageInput({ role: "system", parts: [], metadata: { usage } })).toBe(false)
  })

  it("keeps custom JSON metadata keys on the fast path and leaves the rest to the Schema", () => {
    const accepts = (metadata: unknown) => isPlainMessageInput({ role: "assistant", parts: [], metadata })
    expect(
      accepts({
        model: "m",
        finishReason: "stop",
        usage: { inputTokens: 1, outputTokens: 2, totalTokens: 3 },
        traceId: "t-1",
        requestId: "r-1",
        tags: ["a", "b"],
        retry: { attempt: 2, ok: true, at: null }
      })
    ).toBe(true)
    expect(accepts({ traceId: undefined })).toBe(false)
    expect(accepts({ traceId: Number.NaN })).toBe(false)
    // -0 is left to the Schema, which copies it as 0 (what JSON text gives back).
    expect(accepts({ traceId: -0 })).toBe(false)
    expect(accepts({ traceId: 0 })).toBe(true)
    expect(accepts({ when: new Date(0) })).toBe(false)
    expect(accepts(JSON.parse('{"__proto__": {}}'))).toBe(false)
    expect(accepts({ cost: { inputCost: 1, outputCost: 1, totalCost: 2 } })).toBe(false)
    expect(accepts({ stats: { latencyMs: 5 } })).toBe(false)
    expect(accepts({ deep: nested(255) })).toBe(true)
    expect(accepts({ deep: nested(256) })).toBe(false)
  })
})
