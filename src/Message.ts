/**
 * Messages: a superset of the AI SDK's `UIMessage` (every part type and tool
 * state of `ai` 7, stored and returned verbatim), which also holds the content
 * parts of its `ModelMessage`s (see `ModelMessage.ts`) and this library's own
 * `image`, `tool-call` and `tool-result` parts, with optional metadata for
 * billing and analytics (model, finish reason, token usage, cost, latency).
 * Known fields are validated; any other field of a message, a part or the
 * metadata is kept as JSON, never dropped. In message content an object
 * property set to `undefined` is left out, as `JSON.stringify` leaves it out.
 * Shared by `ConversationStore` and `SessionStore` (a session's messages are
 * its conversation's).
 */
import { Arbitrary, Context, Effect, Either, type FastCheck, ParseResult, Schema, SchemaAST as AST } from "effect"
import { InvalidInput } from "./Errors.ts"
import { fastDecoder, miss } from "./FastDecode.ts"
import { uuidv7At } from "./Id.ts"
import { isJson, isStorableText, JsonContent, JsonContentObject, parseJson, Text } from "./Json.ts"
import { decoder, isPlainObject, kindOf } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"

/** A message id: any non-empty string up to 255 characters; UUIDv7 when the store assigns it. */
export const MessageId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("MessageId"))
/** A message id. */
export type MessageId = typeof MessageId.Type

/** Who wrote a message. */
export const MessageRole = Schema.Literal("system", "user", "assistant", "tool")
/** Who wrote a message. */
export type MessageRole = typeof MessageRole.Type

// ---------------------------------------------------------------------------
// Open structs: listed fields validated, any other field kept as JSON

/** A record type that also holds fields it does not list (their values are JSON). */
export type Open<A> = A & { readonly [key: string]: unknown }

/**
 * The Schema of an open struct: its listed `fields`, and any other field kept as JSON content. Its input type lists
 * only the fields (no index signature, so that interfaces such as the AI SDK's `UIMessage` are assignable to it).
 */
export interface OpenStruct<Fields extends Schema.Struct.Fields> extends Schema.Schema<
  Open<Schema.Struct.Type<Fields>>,
  Schema.Struct.Encoded<Fields>
> {
  readonly fields: Fields
}

const decodeContent = ParseResult.decodeUnknownEither(JsonContent)

/**
 * An open struct: a plain object whose listed fields are decoded by their Schemas and whose other fields are kept
 * as JSON content (`JsonContent`), except `reserved` names, which are left out. Fields set to `undefined` are left
 * out, as `JSON.stringify` leaves them out.
 */
export const openStruct = <Fields extends Schema.Struct.Fields>(
  identifier: string,
  fields: Fields,
  reserved: ReadonlyArray<string> = []
): OpenStruct<Fields> => {
  const known = Schema.Struct(fields) as unknown as Schema.Schema<any, any>
  const listed: ReadonlySet<string> = new Set([...Object.keys(fields), ...reserved])
  const fastKnown = fastDecoder(known.ast)
  const decodeKnown = ParseResult.decodeUnknownEither(known)
  const encodeKnown = ParseResult.encodeUnknownEither(known)
  const parse =
    (decode: boolean) =>
    (input: unknown, options: AST.ParseOptions, ast: AST.Declaration): Either.Either<any, ParseResult.ParseIssue> => {
      if (!isPlainObject(input)) {
        return ParseResult.fail(new ParseResult.Type(ast, input, `must be an object, got ${kindOf(input)}`))
      }
      let values = decode ? fastKnown(input) : miss
      if (values === miss) {
        const result = (decode ? decodeKnown : encodeKnown)(input, options)
        if (result._tag === "Left") return result
        values = result.right
      }
      const output: Record<string, unknown> = {}
      for (const key in values as Record<string, unknown>) {
        const value = (values as Record<string, unknown>)[key]
        if (value !== undefined) output[key] = value
      }
      for (const key in input) {
        if (listed.has(key)) continue
        const value = input[key]
        if (value === undefined) continue
        if (key === "__proto__")
          return ParseResult.fail(new ParseResult.Type(ast, input, "must not have a __proto__ key"))
        const copy = decodeContent(value)
        if (copy._tag === "Left") return ParseResult.fail(new ParseResult.Pointer(key, input, copy.left))
        output[key] = copy.right
      }
      return ParseResult.succeed(output)
    }
  const arbitrary = (fc: typeof FastCheck) =>
    fc
      .tuple(
        Arbitrary.make(known),
        fc.dictionary(
          fc.string().filter((key) => !listed.has(key) && key !== "__proto__"),
          Arbitrary.make(JsonContent),
          { maxKeys: 2 }
        )
      )
      .map(([values, extra]) => {
        const output: Record<string, unknown> = { ...extra }
        for (const [key, value] of Object.entries(values)) if (value !== undefined) output[key] = value
        return output
      })
  const schema = Schema.declare<Open<Schema.Struct.Type<Fields>>, Schema.Struct.Encoded<Fields>, readonly []>(
    [],
    { decode: () => parse(true), encode: () => parse(false) },
    { identifier, arbitrary: () => arbitrary as never }
  )
  return Object.assign(schema, { fields })
}

// ---------------------------------------------------------------------------
// Parts

const providerMetadata = Schema.optional(JsonContentObject)
const providerOptions = Schema.optional(JsonContentObject)
const state = Schema.optional(Schema.Literal("streaming", "done"))

/** Plain text; `citations` and `state` as the AI SDK's `TextUIPart` has them. */
export const TextPart = openStruct("TextPart", {
  type: Schema.Literal("text"),
  text: Schema.String,
  state,
  citations: Schema.optional(Schema.Array(JsonContent)),
  providerMetadata,
  providerOptions
})
/** Model reasoning shown separately from the answer. */
export const ReasoningPart = openStruct("ReasoningPart", {
  type: Schema.Literal("reasoning"),
  id: Schema.optional(Schema.String),
  text: Schema.String,
  state,
  providerMetadata,
  providerOptions
})
/**
 * An image: `{ imageId }` (an `ImageStore` id), `{ url }`, or a `ModelMessage` image part's `image` (a base64 or URL
 * string, or as `fromModelMessages` encodes bytes, URLs and provider references).
 */
export const ImagePart = openStruct("ImagePart", {
  type: Schema.Literal("image"),
  image: Schema.Union(Schema.String, JsonContentObject),
  mediaType: Schema.optional(Schema.String),
  providerMetadata,
  providerOptions
})
/** A file: by `url` (which may be a `data:` URL) as in a `UIMessage`, or by `data` as in a `ModelMessage`. */
export const FilePart = openStruct("FilePart", {
  type: Schema.Literal("file"),
  mediaType: Schema.String,
  url: Schema.optional(Schema.String),
  data: Schema.optional(JsonContent),
  filename: Schema.optional(Schema.String),
  providerReference: Schema.optional(JsonContentObject),
  providerMetadata,
  providerOptions
})
/** A file the model produced while reasoning. */
export const ReasoningFilePart = openStruct("ReasoningFilePart", {
  type: Schema.Literal("reasoning-file"),
  mediaType: Schema.String,
  url: Schema.optional(Schema.String),
  data: Schema.optional(JsonContent),
  providerMetadata,
  providerOptions
})
/** Provider-specific content (`kind` as `provider.type`). */
export const CustomPart = openStruct("CustomPart", {
  type: Schema.Literal("custom"),
  kind: Schema.optional(Schema.String),
  providerMetadata,
  providerOptions
})
/** A source the answer used, by URL. */
export const SourceUrlPart = openStruct("SourceUrlPart", {
  type: Schema.Literal("source-url"),
  sourceId: Schema.String,
  url: Schema.String,
  title: Schema.optional(Schema.String),
  providerMetadata
})
/** A source the answer used, a document. */
export const SourceDocumentPart = openStruct("SourceDocumentPart", {
  type: Schema.Literal("source-document"),
  sourceId: Schema.String,
  mediaType: Schema.String,
  title: Schema.String,
  filename: Schema.optional(Schema.String),
  providerMetadata
})
/** The boundary between two steps of a multi-step answer (it changes what `convertToModelMessages` gives). */
export const StepStartPart = openStruct("StepStartPart", { type: Schema.Literal("step-start") })
/** A user message added while the answer was generated (the AI SDK's experimental steering). */
export const SteeringMessagePart = openStruct("SteeringMessagePart", {
  type: Schema.Literal("steering-message"),
  id: Schema.String,
  parts: Schema.Array(JsonContentObject)
})
/** An application's data part: `data-<name>`, with an optional `id` and any JSON `data`. */
export const DataPart = openStruct("DataPart", {
  type: Schema.TemplateLiteral(Schema.Literal("data-"), Schema.String),
  id: Schema.optional(Schema.String),
  data: Schema.optional(JsonContent)
})

/** The states of a UI tool part, as the AI SDK names them. */
export const ToolState = Schema.Literal(
  "input-streaming",
  "input-available",
  "approval-requested",
  "approval-responded",
  "output-available",
  "output-error",
  "output-denied"
)
/** The state of a UI tool part. */
export type ToolState = typeof ToolState.Type

/** A tool call's approval, as a UI tool part holds it. */
export const ToolApproval = openStruct("ToolApproval", {
  id: Schema.String,
  approved: Schema.optional(Schema.Boolean),
  reason: Schema.optional(Schema.String),
  requestReason: Schema.optional(Schema.String),
  isAutomatic: Schema.optional(Schema.Boolean),
  signature: Schema.optional(Schema.String),
  descriptor: Schema.optional(JsonContent),
  inputSchemaInput: Schema.optional(JsonContent)
})

const toolInvocation = {
  toolCallId: Schema.String,
  state: ToolState,
  title: Schema.optional(Schema.String),
  toolMetadata: Schema.optional(JsonContentObject),
  providerExecuted: Schema.optional(Schema.Boolean),
  input: Schema.optional(JsonContent),
  rawInput: Schema.optional(JsonContent),
  inputEncoding: Schema.optional(Schema.Literal("json", "text")),
  output: Schema.optional(JsonContent),
  errorText: Schema.optional(Schema.String),
  approval: Schema.optional(ToolApproval),
  preliminary: Schema.optional(Schema.Boolean),
  callProviderMetadata: Schema.optional(JsonContentObject),
  resultProviderMetadata: Schema.optional(JsonContentObject)
}

/**
 * A UI tool part, `tool-<name>`, in any `ToolState`. Its fields are checked by type, not against the state (the
 * AI SDK's `validateUIMessages` does that when it reads them).
 */
export const ToolPart = openStruct("ToolPart", {
  type: Schema.TemplateLiteral(Schema.Literal("tool-"), Schema.String),
  ...toolInvocation
})
/** A UI tool part of a tool not known in advance. */
export const DynamicToolPart = openStruct("DynamicToolPart", {
  type: Schema.Literal("dynamic-tool"),
  toolName: Schema.String,
  dynamic: Schema.optional(Schema.Boolean),
  ...toolInvocation
})
/** A tool invocation requested by the model (a `ModelMessage` part, and this library's own). */
export const ToolCallPart = openStruct("ToolCallPart", {
  type: Schema.Literal("tool-call"),
  toolCallId: Schema.NonEmptyString,
  toolName: Schema.NonEmptyString,
  input: JsonContent,
  providerExecuted: Schema.optional(Schema.Boolean),
  providerMetadata,
  providerOptions
})
/** The outcome of a tool invocation (a `ModelMessage` part, and this library's own). */
export const ToolResultPart = openStruct("ToolResultPart", {
  type: Schema.Literal("tool-result"),
  toolCallId: Schema.NonEmptyString,
  toolName: Schema.NonEmptyString,
  output: JsonContent,
  isError: Schema.optional(Schema.Boolean),
  providerMetadata,
  providerOptions
})
/** A `ModelMessage` part: the model asks for approval of a tool call. */
export const ToolApprovalRequestPart = openStruct("ToolApprovalRequestPart", {
  type: Schema.Literal("tool-approval-request"),
  approvalId: Schema.String,
  toolCallId: Schema.String,
  reason: Schema.optional(Schema.String),
  isAutomatic: Schema.optional(Schema.Boolean),
  signature: Schema.optional(Schema.String),
  inputSchemaInput: Schema.optional(JsonContent)
})
/** A `ModelMessage` part: the answer to a tool approval request. */
export const ToolApprovalResponsePart = openStruct("ToolApprovalResponsePart", {
  type: Schema.Literal("tool-approval-response"),
  approvalId: Schema.String,
  approved: Schema.Boolean,
  reason: Schema.optional(Schema.String),
  providerExecuted: Schema.optional(Schema.Boolean)
})

/** The parts with a fixed `type`, by type. */
const partsByType = new Map<string, OpenStruct<any>>(
  [
    TextPart,
    ReasoningPart,
    ImagePart,
    FilePart,
    ReasoningFilePart,
    CustomPart,
    SourceUrlPart,
    SourceDocumentPart,
    StepStartPart,
    SteeringMessagePart,
    DynamicToolPart,
    ToolCallPart,
    ToolResultPart,
    ToolApprovalRequestPart,
    ToolApprovalResponsePart
  ].map((part) => [(part.fields.type as Schema.Literal<[string]>).literals[0], part])
)

/** Every fixed part type, for messages. */
export const partTypes: ReadonlyArray<string> = [...partsByType.keys()]

/** Every part Schema with its decoder and encoder. */
const partCoders = new Map(
  [...partsByType.values(), ToolPart as OpenStruct<any>, DataPart as OpenStruct<any>].map((part) => [
    part,
    { decode: ParseResult.decodeUnknownEither(part), encode: ParseResult.encodeUnknownEither(part) }
  ])
)

/**
 * The Schema of a part: a fixed type (`text`, `reasoning`, …), else `tool-<name>` (a UI tool part; also for a
 * fixed `tool-…` type when the part has a `state`, as a UI tool named `call` has) or `data-<name>`.
 */
const partSchemaOf = (part: Record<string, unknown>, type: string): OpenStruct<any> | undefined => {
  const fixed = partsByType.get(type)
  if (type.startsWith("tool-") && (fixed === undefined || (type !== "dynamic-tool" && part["state"] !== undefined)))
    return ToolPart
  if (fixed !== undefined) return fixed
  return type.startsWith("data-") ? DataPart : undefined
}

const missingType = new ParseResult.Missing(new AST.Type(Schema.String.ast))

const unknownType = `must be one of ${partTypes.join(" | ")} or start with "tool-" or "data-"`

const parsePart =
  (decode: boolean) =>
  (input: unknown, options: AST.ParseOptions, ast: AST.Declaration): Either.Either<any, ParseResult.ParseIssue> => {
    if (!isPlainObject(input)) {
      return ParseResult.fail(new ParseResult.Type(ast, input, `must be an object, got ${kindOf(input)}`))
    }
    const type = input["type"]
    if (type === undefined) return ParseResult.fail(new ParseResult.Pointer("type", input, missingType))
    const schema = typeof type === "string" ? partSchemaOf(input, type) : undefined
    if (schema === undefined) {
      const got = typeof type === "string" ? JSON.stringify(type) : kindOf(type)
      return ParseResult.fail(
        new ParseResult.Pointer("type", input, new ParseResult.Type(ast, type, `${unknownType}, got ${got}`))
      )
    }
    const coders = partCoders.get(schema)!
    const result = (decode ? coders.decode : coders.encode)(input, options)
    return result
  }

/** One part of a message's content. */
export type MessagePart =
  | typeof TextPart.Type
  | typeof ReasoningPart.Type
  | typeof ImagePart.Type
  | typeof FilePart.Type
  | typeof ReasoningFilePart.Type
  | typeof CustomPart.Type
  | typeof SourceUrlPart.Type
  | typeof SourceDocumentPart.Type
  | typeof StepStartPart.Type
  | typeof SteeringMessagePart.Type
  | typeof DataPart.Type
  | typeof ToolPart.Type
  | typeof DynamicToolPart.Type
  | typeof ToolCallPart.Type
  | typeof ToolResultPart.Type
  | typeof ToolApprovalRequestPart.Type
  | typeof ToolApprovalResponsePart.Type

/** One part of a message's content, as given. */
export type MessagePartInput =
  | typeof TextPart.Encoded
  | typeof ReasoningPart.Encoded
  | typeof ImagePart.Encoded
  | typeof FilePart.Encoded
  | typeof ReasoningFilePart.Encoded
  | typeof CustomPart.Encoded
  | typeof SourceUrlPart.Encoded
  | typeof SourceDocumentPart.Encoded
  | typeof StepStartPart.Encoded
  | typeof SteeringMessagePart.Encoded
  | typeof DataPart.Encoded
  | typeof ToolPart.Encoded
  | typeof DynamicToolPart.Encoded
  | typeof ToolCallPart.Encoded
  | typeof ToolResultPart.Encoded
  | typeof ToolApprovalRequestPart.Encoded
  | typeof ToolApprovalResponsePart.Encoded

/** One part of a message's content: chosen by its `type` (see `partTypes`), validated, other fields kept. */
export const MessagePart: Schema.Schema<MessagePart, MessagePartInput> = Schema.declare<
  MessagePart,
  MessagePartInput,
  readonly []
>(
  [],
  { decode: () => parsePart(true), encode: () => parsePart(false) },
  {
    identifier: "MessagePart",
    arbitrary: () => (fc) => fc.oneof(...[...partCoders.keys()].map((part) => Arbitrary.make(part))) as never
  }
)

// ---------------------------------------------------------------------------
// Metadata

/** Why a model stopped generating: any string (the AI SDK's are `stop`, `length`, `tool-calls`, …). */
export const FinishReason = Schema.String.annotations({ identifier: "FinishReason" })

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

const count = Schema.optional(Count)

/**
 * Token counts for billing and analytics, as the AI SDK reports them (every count optional: ai 7 leaves unknown
 * counts `undefined`, which is left out), with its detail objects and any other key kept.
 */
export const TokenUsage = openStruct("TokenUsage", {
  inputTokens: count,
  outputTokens: count,
  totalTokens: count,
  reasoningTokens: count,
  cachedInputTokens: count,
  inputTokenDetails: Schema.optional(
    openStruct("InputTokenDetails", { noCacheTokens: count, cacheReadTokens: count, cacheWriteTokens: count })
  ),
  outputTokenDetails: Schema.optional(openStruct("OutputTokenDetails", { textTokens: count, reasoningTokens: count })),
  raw: Schema.optional(JsonContentObject)
})
/** Token counts for billing and analytics. */
export type TokenUsage = typeof TokenUsage.Type

/** Cost of producing a message, in `currency` (default USD). */
export const CostInfo = openStruct("CostInfo", {
  inputCost: Amount,
  outputCost: Amount,
  totalCost: Amount,
  currency: Schema.optional(Schema.String)
})
/** Cost of producing a message. */
export type CostInfo = typeof CostInfo.Type

/** Execution statistics for a message, in milliseconds. */
export const ExecutionStats = openStruct("ExecutionStats", {
  latencyMs: Amount,
  timeToFirstTokenMs: Schema.optional(Amount),
  toolCalls: Schema.optional(Count)
})
/** Execution statistics for a message. */
export type ExecutionStats = typeof ExecutionStats.Type

/** Message metadata: the well-known fields, plus any other JSON keys the caller adds (kept as they are). */
export const MessageMetadata = openStruct("MessageMetadata", {
  model: Schema.optional(Schema.String),
  finishReason: Schema.optional(FinishReason),
  usage: Schema.optional(TokenUsage),
  cost: Schema.optional(CostInfo),
  stats: Schema.optional(ExecutionStats)
})
/** Message metadata. */
export type MessageMetadata = typeof MessageMetadata.Type

// ---------------------------------------------------------------------------
// Messages

/** The fields a stored message has; any other field it was given is kept beside them. */
export const messageFields = {
  id: MessageId,
  role: MessageRole,
  parts: Schema.Array(MessagePart),
  metadata: Schema.optional(MessageMetadata),
  createdAt: Schema.optional(Schema.DateTimeUtcFromNumber)
}

/** Fields a store sets on the messages it returns: not kept from input (a message read back can be stored again). */
const storeFields = ["conversationId", "seq", "sessionId"]

/** A message as stored and returned. `createdAt` is set by the store when absent. */
export const Message = openStruct("Message", messageFields, storeFields)
/** A message as stored and returned. */
export type Message = typeof Message.Type

/**
 * `MessageMetadata` with input typed `unknown`: any `UIMessage<METADATA>` is then a `MessageInput` to TypeScript, and
 * the metadata is checked when it is stored.
 */
const metadataInput = MessageMetadata as Schema.Schema<MessageMetadata, unknown>

/**
 * A message to store: like `Message`, with `id` optional (a UUIDv7 is assigned) and `createdAt` as a
 * `DateTime.Utc` or epoch milliseconds. An AI SDK `UIMessage` is one; so is a message read back from a store (its
 * `conversationId`, `seq` and `sessionId` are not kept).
 */
export const MessageInput = openStruct(
  "MessageInput",
  {
    ...messageFields,
    id: Schema.optional(MessageId),
    metadata: Schema.optional(metadataInput),
    createdAt: Schema.optional(Schema.Union(Schema.DateTimeUtcFromSelf, Schema.DateTimeUtcFromNumber))
  },
  storeFields
)
/** A message to store. */
export type MessageInput = typeof MessageInput.Encoded

/** Limits the stores enforce on messages; provide a different value to change them. */
export class MessageLimits extends Context.Reference<MessageLimits>()("effect-agent-stores/MessageLimits", {
  defaultValue: () => ({ maxTextLength: 1_000_000, maxParts: 1_000 })
}) {}

/**
 * A message encoded for storage: JSON columns as text (`extra`: the message's fields beyond `messageFields`, or
 * `null`), time as epoch milliseconds.
 */
export interface MessageRow {
  readonly id: string
  readonly role: string
  readonly parts: unknown
  readonly metadata: unknown
  readonly extra: unknown
  readonly createdAt: number
}

const roles: ReadonlySet<unknown> = new Set(MessageRole.literals)
const partStates: ReadonlySet<unknown> = new Set(["streaming", "done"])
const messageKeys: ReadonlySet<string> = new Set(Object.keys(messageFields))
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

const isPlainUsage = (usage: unknown): boolean => {
  if (!isPlain(usage) || !hasOnlyKeys(usage, usageKeys)) return false
  for (const key in usage) if (!isCount(usage[key])) return false
  return true
}

/** Well-known metadata keys the fast path does not check (their values go through the Schema), and `__proto__`. */
const slowMetadataKeys: ReadonlySet<string> = new Set(["cost", "stats", "__proto__"])

const isPlainMetadata = (metadata: Record<string, unknown>): boolean => {
  for (const key in metadata) {
    const value = metadata[key]
    const ok =
      key === "model" || key === "finishReason"
        ? typeof value === "string"
        : key === "usage"
          ? isPlainUsage(value)
          : // Any other key holds JSON, one level below the metadata object.
            !slowMetadataKeys.has(key) && isJson(value, 1)
    if (!ok) return false
  }
  return true
}

/**
 * The messages agents write most (text and reasoning parts with their `state`, `step-start`; metadata with model,
 * finish reason, usage counts and custom JSON keys), recognised without the Schema machinery. Conservative: it accepts only input
 * that `MessageInput` decodes to an equal value with nothing left out (test/Message.test.ts checks this); anything
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
    if (!isPlain(part)) return false
    if (part.type === "step-start") {
      for (const key in part) if (key !== "type") return false
      continue
    }
    if ((part.type !== "text" && part.type !== "reasoning") || typeof part.text !== "string") return false
    for (const key in part) {
      if (key !== "type" && key !== "text" && !(key === "state" && partStates.has(part[key]))) return false
    }
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

/** The JSON text of a decoded message's fields beyond `messageFields`, or `null` when it has none. */
const extraJson = (message: Record<string, unknown>): string | null => {
  let extra: Record<string, unknown> | undefined
  for (const key in message) {
    if (messageKeys.has(key)) continue
    ;(extra ??= {})[key] = message[key]
  }
  return extra === undefined ? null : JSON.stringify(extra)
}

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
    const plain = isPlainMessageInput(raw)
    const decoded = plain ? Either.right(raw) : decodeMessage(raw, count === 1 ? [] : [i])
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
    const extra = plain ? null : extraJson(input)
    const createdAt = input.createdAt === undefined ? now : input.createdAt.epochMillis
    rows[i] = { id: input.id ?? uuidv7At(now), role: input.role, parts, metadata, extra, createdAt }
    decodedInputs[i] = input
  }
  return Effect.succeed({ rows, inputs: decodedInputs })
}

/** Where `parts` break `limits` (a rule at a path below the message), or `undefined`. */
export const checkLimits = (
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
  const message: Record<string, unknown> = {
    id: row.id,
    role: row.role,
    parts: parseJson(row.parts),
    createdAt: utcFromMillis(row.createdAt)
  }
  if (row.metadata !== null && row.metadata !== undefined) message.metadata = parseJson(row.metadata)
  if (row.extra !== null && row.extra !== undefined) Object.assign(message, parseJson(row.extra))
  return message as Message
}
