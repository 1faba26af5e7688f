/**
 * `ImageStore` in memory: for tests and ephemeral agents. Bytes are copied in
 * (by the core) and out (here), so no caller shares a buffer with the store;
 * a conversation's deletion releases its references (and drops bytes no one
 * references any more) in the same step.
 */
import { Effect, Layer } from "effect"
import type { ConversationRow } from "../../src/Conversation.ts"
import {
  type ImageDriver,
  type ImageRefRow,
  type ImageRow,
  ImageStore,
  type ImageStoreOptions,
  makeImageStore
} from "../../src/Image.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

/** A stored image: its row, its bytes and how many references it has. */
interface Entry {
  readonly row: ImageRow
  readonly bytes: Uint8Array
  refs: number
}

/** An `ImageDriver` over the shared in-memory maps. */
export const driver = Effect.map(MemoryDatabase, (db): ImageDriver => {
  const conversations = db.table("conversations", (row: ConversationRow) => [row.createdAt, row.id])
  const images = db.map<string, Entry>("images")
  const refs = db.table("image_refs", (row: ImageRefRow) => [row.createdAt, row.key])
  const drop = (key: string): boolean => {
    const ref = refs.get(key)
    if (ref === undefined) return false
    refs.delete(key)
    const image = images.get(ref.imageId)
    if (image !== undefined && --image.refs <= 0) images.delete(ref.imageId)
    return true
  }
  db.onDelete("conversations", (conversationId) => {
    const owned: Array<string> = []
    for (const ref of refs.values()) if (ref.conversationId === conversationId) owned.push(ref.key)
    owned.forEach(drop)
  })
  return {
    put: (image, bytes, ref) =>
      Effect.sync(() => {
        if (ref.conversationId !== null && !conversations.has(ref.conversationId)) return "no-conversation"
        let entry = images.get(image.id)
        if (entry === undefined) images.set(image.id, (entry = { row: { ...image }, bytes, refs: 0 }))
        if (!refs.has(ref.key)) {
          refs.set(ref.key, { ...ref })
          entry.refs++
        }
        return { ...entry.row }
      }),
    meta: (id) =>
      Effect.sync(() => {
        const entry = images.get(id)
        return entry && { ...entry.row }
      }),
    get: (id) =>
      Effect.sync(() => {
        const entry = images.get(id)
        return entry && { row: { ...entry.row }, bytes: new Uint8Array(entry.bytes) }
      }),
    list: (filter, page) =>
      Effect.sync(() =>
        refs
          .page(
            page,
            (ref) =>
              (filter.conversationId === undefined || ref.conversationId === filter.conversationId) &&
              (filter.messageId === undefined || ref.messageId === filter.messageId) &&
              (filter.imageId === undefined || ref.imageId === filter.imageId)
          )
          .map((ref) => ({ ...ref, image: { ...images.get(ref.imageId)!.row } }))
      ),
    release: (id, key) =>
      Effect.sync(() => {
        const released = drop(key)
        return { released, remaining: images.get(id)?.refs ?? 0 }
      })
  }
})

/** `ImageStore` over a `MemoryDatabase`, with `options` (the size limit). */
export const layerWithOptions = (options: ImageStoreOptions = {}): Layer.Layer<ImageStore, never, MemoryDatabase> =>
  Layer.effect(
    ImageStore,
    Effect.map(driver, (d) => makeImageStore(d, options))
  )

/** `ImageStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<ImageStore, never, MemoryDatabase> = layerWithOptions()

/** `ImageStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<ImageStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
