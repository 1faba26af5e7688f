/**
 * The AI SDK's `ModelMessage`s (what `generateText`'s `response.messages`
 * holds and `messages` takes) as stored messages, and back, without importing
 * `ai`: `fromModelMessages` gives messages to append or save, and
 * `toModelMessages` gives the model messages back as they were given.
 *
 * A model message's `content` becomes `parts` (a string content one text
 * part, marked `modelContent: "string"` so it comes back a string); its other
 * fields (`providerOptions`) are kept beside them. The values JSON cannot hold
 * are tagged: bytes (`Uint8Array`, `Buffer`, `ArrayBuffer`, in a file's or
 * image's data, or anywhere in the content) as `{ $bytes: <base64>, $form }`
 * and `URL`s as `{ $url: <href> }`; `toModelMessages` turns those back, so a
 * content object of exactly these keys is read as what it tags. UI messages
 * go to the model through the AI SDK's own `convertToModelMessages`.
 */
import type { Message, MessageInput } from "./Message.ts"

/** The shape of an AI SDK `ModelMessage`, structurally (this module does not import `ai`). */
export interface ModelMessageLike {
  readonly role: "system" | "user" | "assistant" | "tool"
  readonly content: string | ReadonlyArray<unknown>
  readonly [field: string]: unknown
}

/** How bytes were given, so they come back in the same form. */
type BytesForm = "Uint8Array" | "Buffer" | "ArrayBuffer"

const isPlain = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** `value` with its bytes and URLs tagged as JSON, at any depth (plain objects and arrays are walked). */
const tag = (value: unknown): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (value instanceof URL) return { $url: value.href }
  if (value instanceof ArrayBuffer) return { $bytes: Buffer.from(value).toString("base64"), $form: "ArrayBuffer" }
  if (value instanceof Uint8Array) {
    const form: BytesForm = Buffer.isBuffer(value) ? "Buffer" : "Uint8Array"
    return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64"), $form: form }
  }
  if (Array.isArray(value)) return value.map(tag)
  if (!isPlain(value)) return value
  const copy: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) copy[key] = tag(item)
  return copy
}

const hasKeys = (value: object, keys: ReadonlyArray<string>): boolean => {
  const own = Object.keys(value)
  return own.length === keys.length && keys.every((key) => own.includes(key))
}

/** `value` with the tags of `tag` turned back into bytes and URLs. */
const untag = (value: unknown): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) return value.map(untag)
  const record = value as Record<string, unknown>
  if (hasKeys(record, ["$url"]) && typeof record["$url"] === "string") return new URL(record["$url"])
  if (hasKeys(record, ["$bytes", "$form"]) && typeof record["$bytes"] === "string") {
    const bytes = Buffer.from(record["$bytes"], "base64")
    switch (record["$form"]) {
      case "Buffer":
        return bytes
      case "ArrayBuffer":
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
      case "Uint8Array":
        return new Uint8Array(bytes)
    }
  }
  const copy: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(record)) copy[key] = untag(item)
  return copy
}

/** A message to store for one `ModelMessage` (no id: the store assigns one, unless you add it). */
export const fromModelMessage = (message: ModelMessageLike): MessageInput => {
  const { content, role, ...fields } = message
  const extra: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) extra[key] = tag(value)
  return typeof content === "string"
    ? ({ ...extra, role, parts: [{ type: "text", text: content }], modelContent: "string" } as MessageInput)
    : ({ ...extra, role, parts: content.map(tag) } as MessageInput)
}

/** Messages to store (with `appendMany`, or a session's `save`) for `ModelMessage`s, in order. */
export const fromModelMessages = (messages: ReadonlyArray<ModelMessageLike>): Array<MessageInput> =>
  messages.map(fromModelMessage)

/** The fields a store adds to a message or keeps for itself, which a `ModelMessage` does not have. */
const storeFields: ReadonlySet<string> = new Set([
  "id",
  "createdAt",
  "metadata",
  "conversationId",
  "seq",
  "sessionId",
  "modelContent",
  "parts",
  "role"
])

/**
 * The `ModelMessage` a message stored by `fromModelMessage` holds, as it was given. Type it as the AI SDK's:
 * `toModelMessage<ModelMessage>(message)`.
 */
export const toModelMessage = <M extends ModelMessageLike = ModelMessageLike>(message: Message): M => {
  const fields: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(message)) if (!storeFields.has(key)) fields[key] = untag(value)
  const parts = message.parts as ReadonlyArray<{ readonly text?: unknown }>
  const content = message["modelContent"] === "string" ? (parts[0]?.text ?? "") : parts.map(untag)
  return { role: message.role, content, ...fields } as unknown as M
}

/** The `ModelMessage`s of messages stored by `fromModelMessages`, in order: `toModelMessages<ModelMessage>(stored)`. */
export const toModelMessages = <M extends ModelMessageLike = ModelMessageLike>(
  messages: ReadonlyArray<Message>
): Array<M> => messages.map((message) => toModelMessage<M>(message))
