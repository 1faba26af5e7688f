/**
 * AI-SDK-compatible messages: a role and a list of typed parts, with optional
 * metadata for billing and analytics (model, finish reason, token usage, cost,
 * latency). Shared by `SessionStore` transcripts and `ConversationStore`.
 */
import { Arbitrary, Context, Effect, Either, Schema } from "effect"
import { InvalidInput } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { isJson, isStorableText, Json, JsonObject, parseJson, Text } from "./Json.ts"
import { decoder, kindOf } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"

/** A message id: any non-empty string up to 255 characters; UUIDv7 when the store assigns it. */
export const MessageId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("MessageId"))
/** A message id. */
export type MessageId = typeof MessageId.Type

/** Who wrote a message. */
export const MessageRole = Schema.Literal("system", "user", "assistant", "tool")
/** Who wrote a message. */
export type MessageRole = typeof MessageRole.Type

const providerMetadata = Schema.optional(JsonObject)

/** Plain text. */
export const TextPart = Schema.Struct({ type: Schema.Literal("text"), text: Schema.String, providerMetadata })
/** Model reasoning shown separately from the answer. */
export const ReasoningPart = Schema.Struct({ type: Schema.Literal("reasoning"), text: Schema.String, providerMetadata })
/** An image, by `ImageStore` id or by URL. */
export const ImagePart = Schema.Struct({
  type: Schema.Literal("image"),
  image: Schema.Union(Schema.Struct({ imageId: Schema.NonEmptyString }), Schema.Struct({ url: Schema.NonEmptyString })),
  mediaType: Schema.optional(Schema.String),
  providerMetadata
})
/** A file, by URL (which may be a `data:` URL). */
export const FilePart = Schema.Struct({
  type: Schema.Literal("file"),
  url: Schema.NonEmptyString,
  mediaType: Schema.String,
  filename: Schema.optional(Schema.String),
  providerMetadata
})
/** A tool invocation requested by the model. */
export const ToolCallPart = Schema.Struct({
  type: Schema.Literal("tool-call"),
  toolCallId: Schema.NonEmptyString,
  toolName: Schema.NonEmptyString,
  input: Json,
  providerMetadata
})
/** The outcome of a tool invocation. */
export const ToolResultPart = Schema.Struct({
  type: Schema.Literal("tool-result"),
  toolCallId: Schema.NonEmptyString,
  toolName: Schema.NonEmptyString,
  output: Json,
  isError: Schema.optional(Schema.Boolean),
  providerMetadata
})

/** One part of a message's content. */
export const MessagePart = Schema.Union(TextPart, ReasoningPart, ImagePart, FilePart, ToolCallPart, ToolResultPart)
/** One part of a message's content. */
export type MessagePart = typeof MessagePart.Type

/** Why a model stopped generating. */
export const FinishReason = Schema.Literal(
  "stop",
  "length",
  "content-filter",
  "tool-calls",
  "error",
  "other",
  "unknown"
)

/** A count: a non-negative safe integer (one refinement, cheaper to check than `NonNegativeInt`'s two). */
export const Count = Schema.Number.pipe(
  Schema.filter((n) => Number.isSafeInteger(n) && n >= 0, {
    identifier: "Count",
    message: (issue) => `must be a non-negative integer, got ${String(issue.actual)}`,
    arbitrary: () => (fc) => fc.nat()
  })
)

/** An amount: a finite non-negative number. */
export const Amount = Schema.Number.pipe(
  Schema.filter((n) => Number.isFinite(n) && n >= 0, {
    identifier: "Amount",
    message: (issue) => `must be a finite non-negative number, got ${String(issue.actual)}`,
    arbitrary: () => (fc) => fc.double({ min: 0, max: 1e9, noNaN: true }).map((n) => n + 0)
  })
)

/** Token counts for billing and analytics. */
export const TokenUsage = Schema.Struct({
  inputTokens: Count,
  outputTokens: Count,
  totalTokens: Count,
  reasoningTokens: Schema.optional(Count),
  cachedInputTokens: Schema.optional(Count)
})
/** Token counts for billing and analytics. */
export type TokenUsage = typeof TokenUsage.Type

/** Cost of producing a message, in `currency` (default USD). */
export const CostInfo = Schema.Struct({
  inputCost: Amount,
  outputCost: Amount,
  totalCost: Amount,
  currency: Schema.optional(Schema.String)
})
/** Cost of producing a message. */
export type CostInfo = typeof CostInfo.Type

/** Execution statistics for a message, in milliseconds. */
export const ExecutionStats = Schema.Struct({
  latencyMs: Amount,
  timeToFirstTokenMs: Schema.optional(Amount),
  toolCalls: Schema.optional(Count)
})
/** Execution statistics for a message. */
export type ExecutionStats = typeof ExecutionStats.Type

const MetadataFields = {
  model: Schema.optional(Schema.String),
  finishReason: Schema.optional(FinishReason),
  usage: Schema.optional(TokenUsage),
  cost: Schema.optional(CostInfo),
  stats: Schema.optional(ExecutionStats)
}

const MetadataRecord = Schema.Struct(MetadataFields, Schema.Record({ key: Schema.String, value: Schema.Unknown }))

const MetadataStruct = MetadataRecord.pipe(
  Schema.annotations({
    arbitrary: () => (fc) =>
      fc
        .tuple(
          Arbitrary.make(Schema.Struct(MetadataFields)),
          fc.dictionary(
            fc.string().filter((key) => !(key in MetadataFields) && key !== "__proto__"),
            Arbitrary.make(Json),
            { maxKeys: 2 }
          )
        )
        .map(([known, extra]) => {
          const metadata: Record<string, unknown> = { ...extra }
          // JSON has no `undefined`: drop the optional fields the arbitrary leaves undefined, at any depth.
          for (const [key, value] of Object.entries(known))
            if (value !== undefined) metadata[key] = JSON.parse(JSON.stringify(value))
          return metadata as typeof MetadataRecord.Type
        })
  })
)

/**
 * Message metadata: the well-known fields, plus any other JSON keys the caller
 * adds. It must be a JSON object (checked and copied as `JsonObject` before
 * the fields are read, so a `Date` or class instance is refused, not coerced).
 */
export const MessageMetadata: Schema.Schema<typeof MetadataStruct.Type, typeof MetadataStruct.Encoded> =
  JsonObject.pipe(Schema.compose(MetadataStruct, { strict: false }))
/** Message metadata. */
export type MessageMetadata = typeof MessageMetadata.Type

/** A message as stored and returned. `createdAt` is set by the store when absent. */
export const Message = Schema.Struct({
  id: MessageId,
  role: MessageRole,
  parts: Schema.Array(MessagePart),
  metadata: Schema.optional(MessageMetadata),
  createdAt: Schema.optional(Schema.DateTimeUtcFromNumber)
})
/** A message as stored and returned. */
export type Message = typeof Message.Type

/**
 * A message to store: like `Message`, with `id` optional (a UUIDv7 is assigned)
 * and `createdAt` as a `DateTime.Utc` or epoch milliseconds.
 */
export const MessageInput = Schema.Struct({
  ...Message.fields,
  id: Schema.optional(MessageId),
  createdAt: Schema.optional(Schema.Union(Schema.DateTimeUtcFromSelf, Schema.DateTimeUtcFromNumber))
})
/** A message to store. */
export type MessageInput = typeof MessageInput.Encoded

/** Limits the stores enforce on messages; provide a different value to change them. */
export class MessageLimits extends Context.Reference<MessageLimits>()("effect-agent-stores/MessageLimits", {
  defaultValue: () => ({ maxTextLength: 1_000_000, maxParts: 1_000 })
}) {}

/** A message encoded for storage: JSON columns as text, time as epoch milliseconds. */
export interface MessageRow {
  readonly id: string
  readonly role: string
  readonly parts: unknown
  readonly metadata: unknown
  readonly createdAt: number
}

const roles: ReadonlySet<unknown> = new Set(MessageRole.literals)
const finishReasons: ReadonlySet<unknown> = new Set(FinishReason.literals)
const messageKeys: ReadonlySet<string> = new Set(["id", "role", "parts", "metadata", "createdAt"])
const usageKeys: ReadonlySet<string> = new Set([
  "inputTokens",
  "outputTokens",
  "totalTokens",
  "reasoningTokens",
  "cachedInputTokens"
])

const isPlain = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype

/** A count the Schema gives back unchanged: `-0` is left to the Schema, which copies it as `0` (as `isJson` does). */
const isCount = (value: unknown): boolean =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && !Object.is(value, -0)

const hasOnlyKeys = (value: Record<string, unknown>, keys: ReadonlySet<string>): boolean => {
  for (const key in value) if (!keys.has(key) || value[key] === undefined) return false
  return true
}

const isPlainUsage = (usage: unknown): boolean =>
  isPlain(usage) &&
  hasOnlyKeys(usage, usageKeys) &&
  isCount(usage.inputTokens) &&
  isCount(usage.outputTokens) &&
  isCount(usage.totalTokens) &&
  (usage.reasoningTokens === undefined || isCount(usage.reasoningTokens)) &&
  (usage.cachedInputTokens === undefined || isCount(usage.cachedInputTokens))

/** Well-known metadata keys the fast path does not check (their values go through the Schema), and `__proto__`. */
const slowMetadataKeys: ReadonlySet<string> = new Set(["cost", "stats", "__proto__"])

const isPlainMetadata = (metadata: Record<string, unknown>): boolean => {
  for (const key in metadata) {
    const value = metadata[key]
    const ok =
      key === "model"
        ? isStorableText(value)
        : key === "finishReason"
          ? finishReasons.has(value)
          : key === "usage"
            ? isPlainUsage(value)
            : // Any other key holds JSON, one level below the metadata object (the depth `MessageMetadata` checks).
              !slowMetadataKeys.has(key) && isJson(value, 1)
    if (!ok) return false
  }
  return true
}

/**
 * The messages agents write most (text and reasoning parts; metadata with
 * model, finish reason and usage), recognised without the Schema machinery.
 * Conservative: it accepts only input that `MessageInput` decodes to an equal
 * value with nothing stripped (test/Message.test.ts checks this); anything
 * else goes through `MessageInput`, which also gives the precise errors.
 */
export const isPlainMessageInput = (input: unknown): input is typeof MessageInput.Type => {
  if (!isPlain(input) || !hasOnlyKeys(input, messageKeys) || !roles.has(input.role)) return false
  const { createdAt, id, metadata, parts } = input
  if (id !== undefined && !(isStorableText(id) && id.length > 0 && id.length <= 255)) {
    return false
  }
  if (createdAt !== undefined) return false
  if (metadata !== undefined && !(isPlain(metadata) && isPlainMetadata(metadata))) return false
  if (!Array.isArray(parts)) return false
  for (const part of parts) {
    if (!isPlain(part) || (part.type !== "text" && part.type !== "reasoning") || typeof part.text !== "string")
      return false
    for (const key in part) if (key !== "type" && key !== "text") return false
  }
  return true
}

/** Validated messages: the rows to store (ids and times filled in) and the decoded inputs they came from. */
export interface EncodedMessages {
  readonly rows: Array<MessageRow>
  readonly inputs: Array<typeof MessageInput.Type>
}

const decodeMessage = decoder("Message", MessageInput)

/**
 * Validates caller input (fails with `InvalidInput`, throws nothing, even when
 * a getter or Proxy trap of the input throws). Missing ids get a UUIDv7 and
 * missing times get `now`. Errors name the path: `parts[0].input is missing`
 * for one message, `messages[2].role must be …` in a batch of several.
 */
export const encodeMessages = (
  entity: string,
  inputs: ReadonlyArray<unknown>,
  now: number,
  limits: MessageLimits["Type"]
): Effect.Effect<EncodedMessages, InvalidInput> =>
  Effect.suspend(() => {
    try {
      return encodeAll(entity, inputs, now, limits)
    } catch (error) {
      const reason = error instanceof Error ? error.message : "it threw"
      return Effect.fail(InvalidInput.single(entity, `could not be read: ${reason}`, ["messages"]))
    }
  })

const encodeAll = (
  entity: string,
  inputs: ReadonlyArray<unknown>,
  now: number,
  limits: MessageLimits["Type"]
): Effect.Effect<EncodedMessages, InvalidInput> => {
  if (!Array.isArray(inputs)) {
    return Effect.fail(InvalidInput.single(entity, `must be an array, got ${kindOf(inputs)}`, ["messages"]))
  }
  const count = inputs.length
  const rows: Array<MessageRow> = new Array(count)
  const decodedInputs: EncodedMessages["inputs"] = new Array(count)
  for (let i = 0; i < count; i++) {
    const raw = inputs[i]
    const decoded = isPlainMessageInput(raw) ? Either.right(raw) : decodeMessage(raw, count === 1 ? [] : [i])
    if (decoded._tag === "Left") {
      const error = decoded.left
      return Effect.fail(
        new InvalidInput({
          entity,
          message: count === 1 ? error.message : `messages${error.message}`,
          issues: error.issues
        })
      )
    }
    const input = decoded.right
    const problem = checkLimits(input.parts, limits)
    if (problem !== undefined) {
      const path = count === 1 ? problem.path : [i, ...problem.path]
      const error = InvalidInput.single(entity, problem.rule, path)
      return Effect.fail(count === 1 ? error : new InvalidInput({ ...error, message: `messages${error.message}` }))
    }
    const parts = JSON.stringify(input.parts)
    const metadata = input.metadata === undefined ? null : JSON.stringify(input.metadata)
    const createdAt = input.createdAt === undefined ? now : input.createdAt.epochMillis
    rows[i] = { id: input.id ?? uuidv7At(now), role: input.role, parts, metadata, createdAt }
    decodedInputs[i] = input
  }
  return Effect.succeed({ rows, inputs: decodedInputs })
}

const checkLimits = (
  parts: ReadonlyArray<MessagePart>,
  limits: MessageLimits["Type"]
): { readonly rule: string; readonly path: Array<string | number> } | undefined => {
  if (parts.length > limits.maxParts) {
    return { rule: `must have at most ${limits.maxParts} items, got ${parts.length}`, path: ["parts"] }
  }
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    if ((part.type === "text" || part.type === "reasoning") && part.text.length > limits.maxTextLength) {
      const rule = `must be at most ${limits.maxTextLength} characters long, got ${part.text.length}`
      return { rule, path: ["parts", i, "text"] }
    }
  }
  return undefined
}

/** Decodes a trusted stored row into a `Message` (no re-validation). */
export const decodeMessageRow = (row: MessageRow): Message => {
  const message: { -readonly [K in keyof Message]: Message[K] } = {
    id: row.id as MessageId,
    role: row.role as MessageRole,
    parts: parseJson(row.parts) as Message["parts"],
    createdAt: utcFromMillis(row.createdAt)
  }
  if (row.metadata !== null && row.metadata !== undefined) message.metadata = parseJson(row.metadata) as MessageMetadata
  return message
}
