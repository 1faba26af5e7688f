/**
 * `ImageStore`: content-addressed image bytes. An image's id is the SHA-256
 * (hex) of its bytes, so identical bytes are stored once; each owner (a
 * conversation, a message of one, or the caller itself) holds one reference
 * to them, and the bytes are removed when the last reference goes (a
 * `release`, a `delete`, or the deletion of the owning conversation). The
 * type is sniffed from the bytes (PNG, JPEG, GIF, WebP, with width and height
 * read from their headers); every read re-hashes the bytes, so stored bytes
 * that changed are an `IntegrityError`, never silently returned.
 */
import { Clock, Context, type DateTime, Effect, Either, Option, Schema } from "effect"
import { Bytes, copyBytes } from "./Binary.ts"
import { sha256Hex } from "./CanonicalJson.ts"
import { ConversationId } from "./Conversation.ts"
import { IntegrityError, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { type JsonObject, JsonObject as JsonObjectSchema, Text } from "./Json.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, decodeOptions, decoder } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

/** An image id: the SHA-256 of its bytes, 64 lowercase hex digits. */
export const ImageId = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/), Schema.brand("ImageId"))
/** An image id. */
export type ImageId = typeof ImageId.Type

/** A media type as `type/subtype` (e.g. `image/png`), compared and stored in lowercase. */
export const MimeType = Text.pipe(
  Schema.maxLength(255),
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/, {
    identifier: "MimeType",
    message: () => "must be a media type such as image/png",
    arbitrary: () => (fc) => fc.constantFrom("image/png", "image/jpeg", "image/svg+xml", "application/octet-stream")
  })
)

/** A message id inside a conversation (a non-empty Text up to 255 characters). */
export const ImageMessageId = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/**
 * Who holds a reference: a conversation, a message of a conversation (`messageId` needs `conversationId`), or
 * neither (the caller's own reference, which `delete` drops).
 */
export const ImageOwner = Schema.Struct({
  conversationId: Schema.optional(ConversationId),
  messageId: Schema.optional(ImageMessageId)
})
/** Who holds a reference. */
export type ImageOwner = typeof ImageOwner.Encoded

/**
 * Options of `put`: the declared `mimeType` (it must agree with the bytes when they are PNG, JPEG, GIF or WebP;
 * other bytes take it as given, `application/octet-stream` by default), the owner, and the reference's metadata.
 */
export const ImagePutOptions = Schema.Struct({
  mimeType: Schema.optional(MimeType),
  conversationId: Schema.optional(ConversationId),
  messageId: Schema.optional(ImageMessageId),
  metadata: Schema.optional(JsonObjectSchema)
})
/** Options of `put`. */
export type ImagePutOptions = typeof ImagePutOptions.Encoded

/** Options of `list`: paging, filtered by owner (`conversationId`, `messageId`) or by image. */
export const ImageListOptions = Schema.Struct({
  ...PageOptions.fields,
  conversationId: Schema.optional(ConversationId),
  messageId: Schema.optional(ImageMessageId),
  imageId: Schema.optional(ImageId)
})
/** Options of `list`. */
export type ImageListOptions = typeof ImageListOptions.Encoded

/** A stored image's description; `width`/`height` are present when its header gave them. */
export interface ImageRef {
  readonly id: ImageId
  readonly mimeType: string
  /** Bytes. */
  readonly size: number
  readonly width?: number
  readonly height?: number
  /** When the bytes were first stored. */
  readonly createdAt: DateTime.Utc
}

/** An image with its bytes (a copy the caller owns). */
export interface StoredImage {
  readonly ref: ImageRef
  readonly bytes: Uint8Array
}

/** One owner's reference to an image, as `list` returns it. */
export interface ImageReference {
  readonly image: ImageRef
  readonly owner: { readonly conversationId?: string; readonly messageId?: string }
  /** The metadata given with the `put` that created this reference. */
  readonly metadata: JsonObject
  /** When this reference was created. */
  readonly createdAt: DateTime.Utc
}

/** What `release` and `delete` did: whether a reference was dropped, and how many remain (0: the bytes are gone). */
export interface ImageRelease {
  readonly released: boolean
  readonly remaining: number
}

/** The image store. */
export class ImageStore extends Context.Tag("effect-agent-stores/ImageStore")<
  ImageStore,
  {
    /**
     * Stores `bytes` (once, whoever puts them) and adds the owner's reference (one per owner: a repeated put by
     * the same owner changes nothing). `InvalidInput` for empty or oversized bytes, a `mimeType` the bytes
     * contradict, or a `messageId` without `conversationId`; `NotFound` for an unknown conversation.
     */
    readonly put: (
      bytes: Uint8Array,
      options?: ImagePutOptions
    ) => Effect.Effect<ImageRef, InvalidInput | NotFound | StorageError>
    /** The bytes and description of `id`, re-hashed: `IntegrityError` when they no longer hash to `id`. */
    readonly get: (id: string) => Effect.Effect<StoredImage, NotFound | IntegrityError | InvalidInput | StorageError>
    /** The description of `id`, without reading its bytes. */
    readonly getMeta: (id: string) => Effect.Effect<ImageRef, NotFound | InvalidInput | StorageError>
    /** Whether `id` is stored. */
    readonly has: (id: string) => Effect.Effect<boolean, InvalidInput | StorageError>
    /** References, oldest first (`order: "desc"` for newest first), filtered by owner or image; keyset-paged. */
    readonly list: (options?: ImageListOptions) => Effect.Effect<Page<ImageReference>, InvalidInput | StorageError>
    /** Drops `owner`'s reference to `id` (default: the caller's own); the bytes go with the last reference. */
    readonly release: (id: string, owner?: ImageOwner) => Effect.Effect<ImageRelease, InvalidInput | StorageError>
    /** Drops the caller's own reference to `id` (`release(id, {})`): the bytes are removed only if none remains. */
    readonly delete: (id: string) => Effect.Effect<ImageRelease, InvalidInput | StorageError>
  }
>() {}

/** Options of the image layers. */
export interface ImageStoreOptions {
  /** The largest image `put` accepts, in bytes. Default 20 MiB. */
  readonly maxBytes?: number
}

/** The default size limit of `put`. */
export const defaultMaxBytes = 20 * 1024 * 1024

// ---------------------------------------------------------------------------
// Sniffing

/** What the bytes say about themselves. */
export interface Sniffed {
  readonly mimeType: "image/png" | "image/jpeg" | "image/gif" | "image/webp"
  readonly width?: number
  readonly height?: number
}

const startsWith = (bytes: Uint8Array, prefix: ReadonlyArray<number>, at = 0): boolean => {
  if (bytes.length < at + prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (bytes[at + i] !== prefix[i]) return false
  return true
}

const ascii = (text: string): ReadonlyArray<number> => Array.from(text, (c) => c.charCodeAt(0))

const u16be = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!
const u16le = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8)
const u24le = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)
const u32be = (b: Uint8Array, at: number) =>
  ((b[at]! << 24) >>> 0) + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!)

/** `sniffed` with `width`/`height` when both are positive. */
const sized = (mimeType: Sniffed["mimeType"], width: number, height: number): Sniffed =>
  width > 0 && height > 0 ? { mimeType, width, height } : { mimeType }

const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

const sniffPng = (b: Uint8Array): Sniffed =>
  b.length >= 24 && startsWith(b, ascii("IHDR"), 12)
    ? sized("image/png", u32be(b, 16), u32be(b, 20))
    : { mimeType: "image/png" }

const sniffGif = (b: Uint8Array): Sniffed =>
  b.length >= 10 ? sized("image/gif", u16le(b, 6), u16le(b, 8)) : { mimeType: "image/gif" }

const sniffWebp = (b: Uint8Array): Sniffed => {
  const mimeType = "image/webp"
  if (startsWith(b, ascii("VP8 "), 12) && b.length >= 30 && startsWith(b, [0x9d, 0x01, 0x2a], 23)) {
    return sized(mimeType, u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff)
  }
  if (startsWith(b, ascii("VP8L"), 12) && b.length >= 25 && b[20] === 0x2f) {
    const bits = (b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24)) >>> 0
    return sized(mimeType, (bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1)
  }
  if (startsWith(b, ascii("VP8X"), 12) && b.length >= 30) return sized(mimeType, u24le(b, 24) + 1, u24le(b, 27) + 1)
  return { mimeType }
}

/** JPEG: walks the segments to the first start-of-frame marker (SOF0–SOF15 but DHT, JPG and DAC). */
const sniffJpeg = (b: Uint8Array): Sniffed => {
  const mimeType = "image/jpeg"
  let at = 2
  while (at + 1 < b.length) {
    if (b[at] !== 0xff) return { mimeType }
    let marker = b[at + 1]!
    while (marker === 0xff && at + 2 < b.length) marker = b[++at + 1]!
    at += 2
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue
    if (marker === 0xd9 || marker === 0xda || at + 2 > b.length) return { mimeType }
    const length = u16be(b, at)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return at + 7 <= b.length ? sized(mimeType, u16be(b, at + 5), u16be(b, at + 3)) : { mimeType }
    }
    if (length < 2) return { mimeType }
    at += length
  }
  return { mimeType }
}

/**
 * The type of `bytes` from their magic numbers (PNG, JPEG, GIF, WebP) with the width and height their header
 * states (absent when the header is cut short), or `undefined` for any other bytes. No image library: the
 * headers are read directly.
 */
export const sniffImage = (bytes: Uint8Array): Sniffed | undefined => {
  if (startsWith(bytes, png)) return sniffPng(bytes)
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return sniffJpeg(bytes)
  if (startsWith(bytes, ascii("GIF87a")) || startsWith(bytes, ascii("GIF89a"))) return sniffGif(bytes)
  if (startsWith(bytes, ascii("RIFF")) && startsWith(bytes, ascii("WEBP"), 8)) return sniffWebp(bytes)
  return undefined
}

const sniffable = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"])

const aliases: Record<string, string> = { "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg" }

// ---------------------------------------------------------------------------
// Driver

/** An image as a driver stores it (the bytes travel beside it). */
export interface ImageRow {
  readonly id: string
  readonly mimeType: string
  readonly size: number
  readonly width: number | null
  readonly height: number | null
  readonly createdAt: number
}

/** A reference as a driver stores it: `key` (image id + owner key) is unique and orders a listing after `createdAt`. */
export interface ImageRefRow {
  readonly key: string
  readonly imageId: string
  readonly conversationId: string | null
  readonly messageId: string | null
  /** JSON text of a JSON object. */
  readonly metadata: string
  readonly createdAt: number
}

/** A reference with its image, as a listing returns it. */
export interface ImageRefListRow extends ImageRefRow {
  readonly image: ImageRow
}

/** The filters of `list`, as a driver receives them. */
export interface ImageFilter {
  readonly conversationId?: string | undefined
  readonly messageId?: string | undefined
  readonly imageId?: string | undefined
}

/** What a backend implements for `ImageStore`; everything else lives in `makeImageStore`. */
export interface ImageDriver {
  /**
   * In one atomic step: stores `image` with `bytes` unless `image.id` is stored, adds `ref` unless its key
   * exists, and returns the stored image; `"no-conversation"` when `ref.conversationId` is not a conversation.
   */
  readonly put: (
    image: ImageRow,
    bytes: Uint8Array,
    ref: ImageRefRow
  ) => Effect.Effect<ImageRow | "no-conversation", StorageError>
  readonly meta: (id: string) => Effect.Effect<ImageRow | undefined, StorageError>
  /** The image and its bytes as stored (a copy the caller owns). */
  readonly get: (
    id: string
  ) => Effect.Effect<{ readonly row: ImageRow; readonly bytes: Uint8Array } | undefined, StorageError>
  readonly list: (filter: ImageFilter, page: PageQuery) => Effect.Effect<ReadonlyArray<ImageRefListRow>, StorageError>
  /** Drops the reference `key` of image `id`; the image goes with its last reference. */
  readonly release: (id: string, key: string) => Effect.Effect<ImageRelease, StorageError>
}

// ---------------------------------------------------------------------------
// Core

const entity = "Image"

const decodePutOptions = decodeOptions(entity, ImagePutOptions)
const decodeListOptions = decodeOptions(entity, ImageListOptions)
const decodeOwner = decodeOptions(entity, ImageOwner)
const decodeBytes = decoder(entity, Bytes)

/** The key of an owner's reference to image `id`: the id (fixed length) then the owner as JSON. */
export const referenceKey = (id: string, conversationId: string | undefined, messageId: string | undefined): string =>
  id + JSON.stringify([conversationId ?? null, messageId ?? null])

/** An `ImageRef` from a stored row. */
export const refOf = (row: ImageRow): ImageRef => {
  const ref: { -readonly [K in keyof ImageRef]: ImageRef[K] } = {
    id: row.id as ImageId,
    mimeType: row.mimeType,
    size: row.size,
    createdAt: utcFromMillis(row.createdAt)
  }
  if (row.width !== null) ref.width = row.width
  if (row.height !== null) ref.height = row.height
  return ref
}

const referenceOf = (row: ImageRefListRow): ImageReference => {
  const owner: { conversationId?: string; messageId?: string } = {}
  if (row.conversationId !== null) owner.conversationId = row.conversationId
  if (row.messageId !== null) owner.messageId = row.messageId
  return {
    image: refOf(row.image),
    owner,
    metadata: JSON.parse(row.metadata) as JsonObject,
    createdAt: utcFromMillis(row.createdAt)
  }
}

const needsConversation = () =>
  InvalidInput.single(entity, "needs conversationId (a message's image belongs to its conversation)", [
    "options",
    "messageId"
  ])

/** Builds an `ImageStore` over a driver: validation, sniffing, hashing, clock and integrity checks live here. */
export const makeImageStore = (driver: ImageDriver, options: ImageStoreOptions = {}) => {
  const maxBytes = options.maxBytes ?? defaultMaxBytes

  const checkBytes = (bytes: unknown): Either.Either<Uint8Array, InvalidInput> => {
    const decoded = decodeBytes(bytes, ["bytes"])
    if (Either.isLeft(decoded)) return decoded
    const checked = decoded.right
    if (checked.byteLength === 0) return Either.left(InvalidInput.single(entity, "must not be empty", ["bytes"]))
    if (checked.byteLength > maxBytes) {
      return Either.left(
        InvalidInput.single(
          entity,
          `must be at most ${maxBytes} bytes (the store's maxBytes), got ${checked.byteLength}`,
          ["bytes"]
        )
      )
    }
    return Either.right(copyBytes(checked))
  }

  const find = (id: unknown) =>
    byId(entity, id, undefined, (key) => (ImageIdPattern.test(key) ? driver.meta(key) : Effect.succeed(undefined)))

  const release = (id: unknown, owner: unknown) =>
    Effect.gen(function* () {
      const decoded = yield* decodeOwner(owner)
      if (decoded.messageId !== undefined && decoded.conversationId === undefined) return yield* needsConversation()
      const none: ImageRelease = { released: false, remaining: 0 }
      return yield* byId(entity, id, none, (key) =>
        ImageIdPattern.test(key)
          ? driver.release(key, referenceKey(key, decoded.conversationId, decoded.messageId))
          : Effect.succeed(none)
      )
    })

  return traced(
    "ImageStore",
    driver,
    ImageStore.of({
      put: (bytes, options) =>
        Effect.gen(function* () {
          const owned = yield* checkBytes(bytes)
          const decoded = yield* decodePutOptions(options)
          if (decoded.messageId !== undefined && decoded.conversationId === undefined) return yield* needsConversation()
          const sniffed = sniffImage(owned)
          const declared = decoded.mimeType === undefined ? undefined : decoded.mimeType.toLowerCase()
          const normalised = declared === undefined ? undefined : (aliases[declared] ?? declared)
          if (
            normalised !== undefined &&
            normalised !== sniffed?.mimeType &&
            (sniffed !== undefined || sniffable.has(normalised))
          ) {
            const actual = sniffed === undefined ? `not ${normalised}` : sniffed.mimeType
            return yield* InvalidInput.single(entity, `is ${decoded.mimeType} but the bytes are ${actual}`, [
              "options",
              "mimeType"
            ])
          }
          const id = sha256Hex(owned)
          const now = yield* Clock.currentTimeMillis
          const image: ImageRow = {
            id,
            mimeType: sniffed?.mimeType ?? normalised ?? "application/octet-stream",
            size: owned.byteLength,
            width: sniffed?.width ?? null,
            height: sniffed?.height ?? null,
            createdAt: now
          }
          const ref: ImageRefRow = {
            key: referenceKey(id, decoded.conversationId, decoded.messageId),
            imageId: id,
            conversationId: decoded.conversationId ?? null,
            messageId: decoded.messageId ?? null,
            metadata: JSON.stringify(decoded.metadata ?? {}),
            createdAt: now
          }
          const stored = yield* driver.put(image, owned, ref)
          if (stored === "no-conversation") {
            return yield* new NotFound({ entity: "Conversation", id: decoded.conversationId ?? "" })
          }
          return refOf(stored)
        }),
      get: (id) =>
        Effect.flatMap(
          byId(entity, id, undefined, (key) =>
            ImageIdPattern.test(key) ? driver.get(key) : Effect.succeed(undefined)
          ),
          (found): Effect.Effect<StoredImage, NotFound | IntegrityError> => {
            if (found === undefined) return Effect.fail(new NotFound({ entity, id: String(id) }))
            const actual = sha256Hex(found.bytes)
            if (actual !== found.row.id) {
              return Effect.fail(new IntegrityError({ entity, id: found.row.id, expected: found.row.id, actual }))
            }
            return Effect.succeed({ ref: refOf(found.row), bytes: found.bytes })
          }
        ),
      getMeta: (id) =>
        Effect.flatMap(find(id), (row) =>
          row === undefined ? new NotFound({ entity, id: String(id) }) : Effect.succeed(refOf(row))
        ),
      has: (id) => Effect.map(find(id), (row) => row !== undefined),
      list: (options) =>
        Effect.gen(function* () {
          const decoded = yield* decodeListOptions(options)
          const query = yield* toPageQuery(entity, decoded)
          const filter: ImageFilter = {
            conversationId: decoded.conversationId,
            messageId: decoded.messageId,
            imageId: decoded.imageId
          }
          const rows = yield* driver.list(filter, query)
          return toPage(rows, query, referenceOf, (row) => [row.createdAt, row.key])
        }),
      release: (id, owner) => release(id, owner),
      delete: (id) => release(id, undefined)
    })
  )
}

const ImageIdPattern = /^[0-9a-f]{64}$/

/** `Some` image id of a message part that refers to a stored image (`{ type: "image", image: { imageId } }`). */
export const imageIdOf = (part: unknown): Option.Option<string> => {
  if (typeof part !== "object" || part === null) return Option.none()
  const { type, image } = part as { type?: unknown; image?: unknown }
  if (type !== "image" || typeof image !== "object" || image === null) return Option.none()
  const imageId = (image as { imageId?: unknown }).imageId
  return typeof imageId === "string" ? Option.some(imageId) : Option.none()
}
