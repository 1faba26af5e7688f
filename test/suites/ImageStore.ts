/**
 * The `ImageStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each stores bytes of its own (a unique
 * tail after the header) and uses its own conversations.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, Layer, Option, TestClock } from "effect"
import { randomBytes } from "node:crypto"
import { sha256Hex } from "../../src/CanonicalJson.ts"
import { ConversationStore } from "../../src/Conversation.ts"
import { ImageListOptions, ImageOwner, ImagePutOptions, ImageStore, imageIdOf, sniffImage } from "../../src/Image.ts"
import { Bytes } from "../../src/Binary.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

/** Bytes no other test stores: a random tail. */
const tail = (n = 32) => new Uint8Array(randomBytes(n))

const concat = (...parts: ReadonlyArray<ArrayLike<number>>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}
const be32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
const be16 = (n: number) => [(n >>> 8) & 255, n & 255]
const le16 = (n: number) => [n & 255, (n >>> 8) & 255]
const le24 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255]
const text = (s: string) => Array.from(s, (c) => c.charCodeAt(0))

/** A PNG signature and IHDR chunk of `width` × `height`, then a unique tail. */
export const pngOf = (width: number, height: number) =>
  concat(
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    be32(13),
    text("IHDR"),
    be32(width),
    be32(height),
    [8, 6, 0, 0, 0],
    tail()
  )
/** A GIF89a header of `width` × `height`. */
export const gifOf = (width: number, height: number) =>
  concat(text("GIF89a"), le16(width), le16(height), [0, 0, 0], tail())
/** A JPEG: SOI, an APP0 segment, then SOF0 of `width` × `height`. */
export const jpegOf = (width: number, height: number) =>
  concat(
    [0xff, 0xd8],
    [0xff, 0xe0],
    be16(16),
    text("JFIF"),
    [0, 1, 1, 0, 0, 1, 0, 1, 0, 0],
    [0xff, 0xc0],
    be16(17),
    [8],
    be16(height),
    be16(width),
    [3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1],
    tail()
  )
/** A lossy WebP (VP8) of `width` × `height`. */
export const webpVp8Of = (width: number, height: number) =>
  concat(
    text("RIFF"),
    [0, 0, 0, 0],
    text("WEBPVP8 "),
    [0, 0, 0, 0],
    [0, 0, 0],
    [0x9d, 0x01, 0x2a],
    le16(width),
    le16(height),
    tail()
  )
/** A lossless WebP (VP8L) of `width` × `height`. */
export const webpVp8lOf = (width: number, height: number) => {
  const bits = ((width - 1) & 0x3fff) | (((height - 1) & 0x3fff) << 14)
  return concat(
    text("RIFF"),
    [0, 0, 0, 0],
    text("WEBPVP8L"),
    [0, 0, 0, 0],
    [0x2f],
    [bits & 255, (bits >>> 8) & 255, (bits >>> 16) & 255, (bits >>> 24) & 255],
    tail()
  )
}
/** An extended WebP (VP8X) of `width` × `height`. */
export const webpVp8xOf = (width: number, height: number) =>
  concat(
    text("RIFF"),
    [0, 0, 0, 0],
    text("WEBPVP8X"),
    [10, 0, 0, 0],
    [0, 0, 0, 0],
    le24(width - 1),
    le24(height - 1),
    tail()
  )

/** Runs the `ImageStore` contract against `stores` (with a `ConversationStore` on the same backend). */
export const suite = <E>(label: string, stores: Layer.Layer<ImageStore | ConversationStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`ImageStore (${label})`, (it) => {
    it.effect("put returns a ref with the sha256 id, sniffed type, size and dimensions; get returns the bytes", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const bytes = pngOf(640, 480)
        yield* TestClock.setTime(1_700_000_000_000)
        const ref = yield* images.put(bytes)
        expect(ref).toMatchObject({
          id: sha256Hex(bytes),
          mimeType: "image/png",
          size: bytes.length,
          width: 640,
          height: 480
        })
        expect(DateTime.toEpochMillis(ref.createdAt)).toBe(1_700_000_000_000)
        const stored = yield* images.get(ref.id)
        expect(stored.ref).toEqual(ref)
        expect(stored.bytes).toEqual(new Uint8Array(bytes))
        expect(Buffer.isBuffer(stored.bytes)).toBe(false)
        expect(yield* images.getMeta(ref.id)).toEqual(ref)
        expect(yield* images.has(ref.id)).toBe(true)
      })
    )

    it.effect("sniffs PNG, JPEG, GIF and WebP (VP8, VP8L, VP8X) with width and height from their headers", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const cases: ReadonlyArray<[Uint8Array, string, number, number]> = [
          [pngOf(1, 2), "image/png", 1, 2],
          [jpegOf(1920, 1080), "image/jpeg", 1920, 1080],
          [gifOf(320, 200), "image/gif", 320, 200],
          [webpVp8Of(800, 600), "image/webp", 800, 600],
          [webpVp8lOf(16383, 3), "image/webp", 16383, 3],
          [webpVp8xOf(70000, 9), "image/webp", 70000, 9]
        ]
        for (const [bytes, mimeType, width, height] of cases) {
          expect(sniffImage(bytes)).toEqual({ mimeType, width, height })
          expect(yield* images.put(bytes)).toMatchObject({ mimeType, width, height })
        }
        // A header cut short: the type without dimensions.
        const cut = yield* images.put(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...tail(3)]))
        expect(cut.mimeType).toBe("image/png")
        expect(cut.width).toBeUndefined()
        expect("height" in cut).toBe(false)
      })
    )

    it.effect("a declared type contradicting the bytes is InvalidInput and nothing is stored", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const bytes = pngOf(10, 10)
        const error = yield* Effect.flip(images.put(bytes, { mimeType: "image/jpeg" }))
        expect(error).toMatchObject({
          _tag: "InvalidInput",
          message: "options.mimeType is image/jpeg but the bytes are image/png"
        })
        expect(yield* images.has(sha256Hex(bytes))).toBe(false)
        expect((yield* images.put(bytes, { mimeType: "IMAGE/PNG" })).mimeType).toBe("image/png")
        expect((yield* images.put(jpegOf(2, 2), { mimeType: "image/jpg" })).mimeType).toBe("image/jpeg")
        const svg = new TextEncoder().encode(`<svg xmlns="http://www.w3.org/2000/svg" id="${fresh("svg")}"/>`)
        const declared = yield* images.put(svg, { mimeType: "image/svg+xml" })
        expect(declared).toMatchObject({ mimeType: "image/svg+xml", size: svg.length })
        expect(declared.width).toBeUndefined()
        expect((yield* images.put(tail())).mimeType).toBe("application/octet-stream")
        const notWebp = yield* Effect.flip(images.put(tail(), { mimeType: "image/webp" }))
        expect(notWebp.message).toBe("options.mimeType is image/webp but the bytes are not image/webp")
      })
    )

    it.effect("empty bytes, bytes over the size limit and non-bytes are InvalidInput", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        expect(yield* Effect.flip(images.put(new Uint8Array(0)))).toMatchObject({ message: "bytes must not be empty" })
        const big = new Uint8Array(20 * 1024 * 1024 + 1)
        big.set(tail())
        const tooBig = yield* Effect.flip(images.put(big))
        expect(tooBig.message).toContain("must be at most 20971520 bytes")
        expect(yield* images.has(sha256Hex(big))).toBe(false)
        for (const value of ["png", [1, 2], null, new Uint16Array(4), { length: 3 }]) {
          expect(yield* Effect.flip(images.put(value as never))).toMatchObject({ _tag: "InvalidInput" })
        }
      })
    )

    it.effect("identical bytes are stored once, with one reference per owner; the last release removes them", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const conversations = yield* ConversationStore
        const a = yield* conversations.create({ id: fresh("conv") })
        const b = yield* conversations.create({ id: fresh("conv") })
        const bytes = gifOf(4, 4)
        const first = yield* images.put(bytes)
        yield* TestClock.adjust(1000)
        const again = yield* images.put(bytes)
        expect(again).toEqual(first)
        yield* TestClock.adjust(1)
        yield* images.put(bytes, { conversationId: a.id, metadata: { alt: "a cat" } })
        yield* TestClock.adjust(1)
        yield* images.put(bytes, { conversationId: a.id, messageId: "m1" })
        yield* TestClock.adjust(1)
        yield* images.put(bytes, { conversationId: b.id })
        yield* TestClock.adjust(1)
        yield* images.put(bytes, { conversationId: b.id, metadata: { ignored: true } })
        const refs = yield* images.list({ imageId: first.id })
        expect(refs.items.map((r) => [r.owner, r.metadata])).toEqual([
          [{}, {}],
          [{ conversationId: a.id }, { alt: "a cat" }],
          [{ conversationId: a.id, messageId: "m1" }, {}],
          [{ conversationId: b.id }, {}]
        ])
        expect(refs.items.every((r) => r.image.id === first.id && r.image.size === bytes.length)).toBe(true)
        expect(yield* images.release(first.id, { conversationId: a.id })).toEqual({ released: true, remaining: 3 })
        expect(yield* images.release(first.id, { conversationId: a.id })).toEqual({ released: false, remaining: 3 })
        expect(yield* images.delete(first.id)).toEqual({ released: true, remaining: 2 })
        expect(yield* images.has(first.id)).toBe(true)
        yield* images.release(first.id, { conversationId: a.id, messageId: "m1" })
        expect(yield* images.release(first.id, { conversationId: b.id })).toEqual({ released: true, remaining: 0 })
        expect(yield* images.has(first.id)).toBe(false)
        expect(yield* Effect.flip(images.get(first.id))).toMatchObject({ _tag: "NotFound", entity: "Image" })
        expect((yield* images.list({ imageId: first.id })).items).toEqual([])
        // Stored anew afterwards.
        expect((yield* images.put(bytes)).id).toBe(first.id)
        expect(yield* images.delete(first.id)).toEqual({ released: true, remaining: 0 })
      })
    )

    it.effect("deleting a conversation releases its references: bytes no one else holds are removed", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({ id: fresh("conv") })
        const only = yield* images.put(pngOf(3, 3), { conversationId: conversation.id, messageId: "m1" })
        const sharedBytes = jpegOf(5, 5)
        const shared = yield* images.put(sharedBytes, { conversationId: conversation.id })
        yield* images.put(sharedBytes)
        expect((yield* images.list({ conversationId: conversation.id })).items).toHaveLength(2)
        yield* conversations.delete(conversation.id)
        expect(yield* images.has(only.id)).toBe(false)
        expect(yield* images.has(shared.id)).toBe(true)
        expect((yield* images.list({ conversationId: conversation.id })).items).toEqual([])
        expect((yield* images.list({ imageId: shared.id })).items.map((r) => r.owner)).toEqual([{}])
        yield* images.delete(shared.id)
      })
    )

    it.effect(
      "an unknown conversation is NotFound, a messageId without conversationId InvalidInput; nothing stored",
      () =>
        Effect.gen(function* () {
          const images = yield* ImageStore
          const bytes = pngOf(7, 7)
          expect(yield* Effect.flip(images.put(bytes, { conversationId: fresh("missing") }))).toMatchObject({
            _tag: "NotFound",
            entity: "Conversation"
          })
          expect(yield* Effect.flip(images.put(bytes, { messageId: "m1" }))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(images.release(sha256Hex(bytes), { messageId: "m1" }))).toMatchObject({
            _tag: "InvalidInput"
          })
          expect(yield* images.has(sha256Hex(bytes))).toBe(false)
        })
    )

    it.effect("list pages a conversation's references by cursor, both orders", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({ id: fresh("conv") })
        const ids: Array<string> = []
        for (let i = 0; i < 7; i++) {
          yield* TestClock.adjust(1)
          ids.push((yield* images.put(gifOf(i + 1, 1), { conversationId: conversation.id, messageId: `m${i}` })).id)
        }
        const seen: Array<string> = []
        let cursor: string | undefined
        do {
          const page = yield* images.list({ conversationId: conversation.id, limit: 3, ...(cursor ? { cursor } : {}) })
          seen.push(...page.items.map((r) => r.owner.messageId!))
          cursor = Option.getOrUndefined(page.nextCursor)
        } while (cursor !== undefined)
        expect(seen).toEqual(ids.map((_, i) => `m${i}`))
        const desc = yield* images.list({ conversationId: conversation.id, order: "desc", limit: 100 })
        expect(desc.items.map((r) => r.owner.messageId)).toEqual([...seen].reverse())
        const one = yield* images.list({ conversationId: conversation.id, messageId: "m3" })
        expect(one.items.map((r) => r.image.id)).toEqual([ids[3]])
        yield* conversations.delete(conversation.id)
        for (const id of ids) expect(yield* images.has(id)).toBe(false)
      })
    )

    it.effect("16 fibers putting the same bytes at once store one copy with one reference per owner", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const conversations = yield* ConversationStore
        const bytes = webpVp8Of(64, 64)
        const refs = yield* Effect.all(
          Array.from({ length: 16 }, () => images.put(bytes)),
          { concurrency: 16 }
        )
        expect(new Set(refs.map((r) => r.id)).size).toBe(1)
        expect(new Set(refs.map((r) => DateTime.toEpochMillis(r.createdAt))).size).toBe(1)
        expect((yield* images.list({ imageId: refs[0]!.id })).items).toHaveLength(1)
        const owners = yield* Effect.forEach(Array.from({ length: 16 }), () =>
          conversations.create({ id: fresh("conv") })
        )
        yield* Effect.all(
          owners.map((c) => images.put(bytes, { conversationId: c.id })),
          { concurrency: 16 }
        )
        expect((yield* images.list({ imageId: refs[0]!.id })).items).toHaveLength(17)
        expect(yield* images.delete(refs[0]!.id)).toEqual({ released: true, remaining: 16 })
        yield* Effect.forEach(owners, (c) => conversations.delete(c.id), { concurrency: 16 })
        expect(yield* images.has(refs[0]!.id)).toBe(false)
      })
    )

    it.effect(
      "bytes are copied in and out: mutating the caller's buffer or a returned one changes nothing stored",
      () =>
        Effect.gen(function* () {
          const images = yield* ImageStore
          const bytes = pngOf(9, 9)
          const original = new Uint8Array(bytes)
          const ref = yield* images.put(bytes)
          bytes.fill(0)
          const first = yield* images.get(ref.id)
          expect(first.bytes).toEqual(original)
          first.bytes.fill(1)
          expect((yield* images.get(ref.id)).bytes).toEqual(original)
          yield* images.delete(ref.id)
        })
    )

    it.effect("ids: unknown or impossible strings are NotFound/absent, non-strings InvalidInput", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        for (const id of ["0".repeat(64), "ABC", "", "x".repeat(300), "\u0000", "A".repeat(64)]) {
          expect(yield* Effect.flip(images.get(id))).toMatchObject({ _tag: "NotFound" })
          expect(yield* Effect.flip(images.getMeta(id))).toMatchObject({ _tag: "NotFound" })
          expect(yield* images.has(id)).toBe(false)
          expect(yield* images.delete(id)).toEqual({ released: false, remaining: 0 })
        }
        for (const id of BadInput.ids) {
          const runs: ReadonlyArray<(id: string) => Effect.Effect<unknown, unknown>> = [
            images.get,
            images.getMeta,
            images.has,
            images.delete
          ]
          for (const run of runs) {
            expect(yield* Effect.flip(run(id as never))).toMatchObject({ _tag: "InvalidInput" })
          }
        }
      })
    )

    it.effect("a message's image part resolves through the store by imageId", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({ id: fresh("conv") })
        const bytes = jpegOf(12, 34)
        const ref = yield* images.put(bytes, { conversationId: conversation.id, messageId: "look" })
        yield* conversations.append(conversation.id, {
          id: "look",
          role: "user",
          parts: [
            { type: "text", text: "what is this?" },
            { type: "image", image: { imageId: ref.id }, mediaType: ref.mimeType }
          ]
        })
        const [message] = yield* conversations.messages(conversation.id)
        const id = message!.parts.map(imageIdOf).find(Option.isSome)
        expect(id).toEqual(Option.some(ref.id))
        const resolved = yield* images.get(Option.getOrThrow(id!))
        expect(resolved.bytes).toEqual(new Uint8Array(bytes))
        expect(resolved.ref).toMatchObject({ width: 12, height: 34 })
        yield* conversations.delete(conversation.id)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const conversations = yield* ConversationStore
        const conversation = yield* conversations.create({ id: fresh("bad-input") })
        const kept = pngOf(1, 1)
        const ref = yield* images.put(kept, { conversationId: conversation.id })
        const snapshot = Effect.map(images.list({ conversationId: conversation.id, limit: 1000 }), (page) =>
          page.items.map((r) => [r.image.id, r.owner, r.metadata])
        )
        yield* BadInput.run(`ImageStore (${label})`, snapshot, [
          BadInput.operation("put", Bytes, (input) => images.put(input as never, { conversationId: conversation.id })),
          BadInput.operation("put options", ImagePutOptions, (input) => images.put(pngOf(2, 2), input as never), {
            optional: true
          }),
          BadInput.operation("list", ImageListOptions, (input) => images.list(input as never), { optional: true }),
          BadInput.operation("release", ImageOwner, (input) => images.release(ref.id, input as never), {
            id: (id) => images.release(id as never, { conversationId: conversation.id }),
            optional: true
          })
        ])
        expect((yield* snapshot).length).toBe(1)
        yield* conversations.delete(conversation.id)
      })
    )
  })
