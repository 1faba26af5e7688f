/**
 * `ImageStore` on SQL, stated once for SQLite and PostgreSQL. Bytes are a
 * `BLOB`/`bytea` column of `{images}`, keyed by their SHA-256; `{image_refs}`
 * holds one row per owner, with foreign keys to the image and to its
 * conversation (`ON DELETE CASCADE`). Triggers keep each image's reference
 * count and delete the image with its last reference, whichever way the
 * reference goes (a release, or a conversation or session deleted with plain
 * SQL), so no bytes are ever orphaned. On PostgreSQL a put locks the
 * conversation and then the image row before adding its reference (the order
 * a release or a conversation's deletion takes them in), so a put racing the
 * last release either finds the image gone and is retried (storing the bytes
 * anew) or keeps it alive; a foreign key failing under a race retries too.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { copyBytes } from "../../src/Binary.ts"
import { StorageError } from "../../src/Errors.ts"
import {
  type ImageDriver,
  type ImageFilter,
  type ImageRefListRow,
  type ImageRefRow,
  type ImageRow,
  ImageStore,
  type ImageStoreOptions,
  makeImageStore
} from "../../src/Image.ts"
import type { PageQuery } from "../../src/Page.ts"
import * as Kit from "./Kit.ts"
import * as SqlConversationStore from "./SqlConversationStore.ts"

const refsTable = (collate: string, bytes: string) => ({
  images: `CREATE TABLE IF NOT EXISTS {images} (
    id TEXT PRIMARY KEY NOT NULL,
    mime_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    width INTEGER,
    height INTEGER,
    refs INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    bytes ${bytes} NOT NULL
  )`,
  refs: `CREATE TABLE IF NOT EXISTS {image_refs} (
    ref_key TEXT${collate} PRIMARY KEY NOT NULL,
    image_id TEXT NOT NULL REFERENCES {images} (id) ON DELETE CASCADE,
    conversation_id TEXT REFERENCES {conversations} (id) ON DELETE CASCADE,
    message_id TEXT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL
  )`
})

const sqliteTables = refsTable("", "BLOB")
const pgTables = refsTable(` COLLATE "C"`, "BYTEA")

const listingView = `{image_listing} AS SELECT r.ref_key, r.image_id, r.conversation_id, r.message_id, r.metadata,
  r.created_at, i.mime_type, i.size, i.width, i.height, i.created_at AS image_created_at
  FROM {image_refs} r JOIN {images} i ON i.id = r.image_id`

/** The images and references tables, their triggers and listing view (after the conversations they reference). */
export const schema: Kit.SqlSchema = {
  name: "images",
  tables: ["images", "image_refs"],
  migrations: {
    "0001_images": [
      { sqlite: sqliteTables.images, pg: pgTables.images },
      { sqlite: sqliteTables.refs, pg: pgTables.refs },
      `CREATE INDEX IF NOT EXISTS {image_refs_created} ON {image_refs} (created_at, ref_key)`,
      `CREATE INDEX IF NOT EXISTS {image_refs_conversation} ON {image_refs} (conversation_id, created_at, ref_key)`,
      `CREATE INDEX IF NOT EXISTS {image_refs_image} ON {image_refs} (image_id, created_at, ref_key)`,
      { sqlite: `CREATE VIEW IF NOT EXISTS ${listingView}`, pg: `CREATE OR REPLACE VIEW ${listingView}` },
      {
        sqlite: `CREATE TRIGGER IF NOT EXISTS {image_refs_added} AFTER INSERT ON {image_refs}
          BEGIN UPDATE {images} SET refs = refs + 1 WHERE id = NEW.image_id; END`
      },
      {
        sqlite: `CREATE TRIGGER IF NOT EXISTS {image_refs_removed} AFTER DELETE ON {image_refs}
          BEGIN
            UPDATE {images} SET refs = refs - 1 WHERE id = OLD.image_id;
            DELETE FROM {images} WHERE id = OLD.image_id AND refs <= 0;
          END`
      },
      {
        pg: `CREATE OR REPLACE FUNCTION {image_refs_count}() RETURNS trigger LANGUAGE plpgsql AS $body$
          BEGIN
            IF TG_OP = 'INSERT' THEN
              UPDATE {images} SET refs = refs + 1 WHERE id = NEW.image_id;
              RETURN NEW;
            END IF;
            UPDATE {images} SET refs = refs - 1 WHERE id = OLD.image_id;
            DELETE FROM {images} WHERE id = OLD.image_id AND refs <= 0;
            RETURN OLD;
          END
        $body$`
      },
      {
        pg: `CREATE OR REPLACE TRIGGER {image_refs_count} AFTER INSERT OR DELETE ON {image_refs}
          FOR EACH ROW EXECUTE FUNCTION {image_refs_count}()`
      }
    ]
  },
  requires: [SqlConversationStore.schema]
}

/** The PostgreSQL function behind the reference-count trigger (dropped with the tables by a clean-up). */
export const pgFunctions = (prefix: string): ReadonlyArray<string> => [`${prefix}_image_refs_count`]

const imageColumns = "id, mime_type, size, width, height, created_at"

const decodeImage = (r: ReadonlyArray<any>, at = 0): ImageRow => ({
  id: r[at],
  mimeType: r[at + 1],
  size: Number(r[at + 2]),
  width: r[at + 3] === null ? null : Number(r[at + 3]),
  height: r[at + 4] === null ? null : Number(r[at + 4]),
  createdAt: Number(r[at + 5])
})

/**
 * The caller's own `Uint8Array` of a driver's `Buffer`: a view when the `Buffer` spans its whole memory (a
 * large value the driver allocated for this row alone: no copy of a 100 KB image), a copy when it is a slice of
 * shared memory (the drivers' pools hold small values).
 */
const owned = (buffer: Uint8Array): Uint8Array =>
  buffer.byteOffset === 0 &&
  buffer.buffer.byteLength === buffer.byteLength &&
  !(buffer.buffer instanceof SharedArrayBuffer)
    ? new Uint8Array(buffer.buffer, 0, buffer.byteLength)
    : copyBytes(buffer)

/** A `Buffer` view of `bytes` (no copy): what both drivers bind as a BLOB/`bytea`. */
const bound = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

// PostgreSQL: a put locks the conversation, then the image, in that order (a release or a conversation's deletion
// takes the same rows in the same order), so a put racing them waits instead of deadlocking.
const conversationExists = Kit.stmt<[id: string], true>(
  {
    sqlite: `SELECT 1 FROM {conversations} WHERE id = ?`,
    pg: `SELECT 1 FROM {conversations} WHERE id = ? FOR KEY SHARE`
  },
  () => true
)
const insertImage = Kit.stmt<[string, string, number, number | null, number | null, number, Buffer]>(
  `INSERT INTO {images} (id, mime_type, size, width, height, refs, created_at, bytes) VALUES (?, ?, ?, ?, ?, 0, ?, ?)
    ON CONFLICT (id) DO NOTHING`
)
const insertRef = Kit.stmt<[string, string, string | null, string | null, string, number]>(
  `INSERT INTO {image_refs} (ref_key, image_id, conversation_id, message_id, metadata, created_at)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ref_key) DO NOTHING`
)
const meta = Kit.stmt<[id: string], ImageRow>(`SELECT ${imageColumns} FROM {images} WHERE id = ?`, (r) =>
  decodeImage(r)
)
const lockedMeta = Kit.stmt<[id: string], ImageRow>(
  {
    sqlite: `SELECT ${imageColumns} FROM {images} WHERE id = ?`,
    pg: `SELECT ${imageColumns} FROM {images} WHERE id = ? FOR UPDATE`
  },
  (r) => decodeImage(r)
)
const withBytes = Kit.stmt<[id: string], { readonly row: ImageRow; readonly bytes: Uint8Array }>(
  `SELECT ${imageColumns}, bytes FROM {images} WHERE id = ?`,
  (r) => ({ row: decodeImage(r), bytes: owned(r[6]) })
)
const deleteRef = Kit.stmt<[key: string], string>(
  `DELETE FROM {image_refs} WHERE ref_key = ? RETURNING ref_key`,
  (r) => r[0]
)
const refsOf = Kit.stmt<[id: string], number>(`SELECT refs FROM {images} WHERE id = ?`, (r) => Number(r[0]))

const listing = Kit.listing({
  table: "image_listing",
  columns:
    "ref_key, image_id, conversation_id, message_id, metadata, created_at, image_id, mime_type, size, width, height, image_created_at",
  orderBy: ["created_at", "ref_key"],
  decode: (r): ImageRefListRow => ({
    key: r[0],
    imageId: r[1],
    conversationId: r[2],
    messageId: r[3],
    metadata: r[4],
    createdAt: Number(r[5]),
    image: decodeImage(r, 6)
  })
})

/** The statements, for the bench's raw side (which runs the same SQL through the driver). */
export const statements = { conversationExists, insertImage, lockedMeta, insertRef, meta, withBytes, deleteRef, refsOf }

/** A put that lost a race with the image's last release (its reference's foreign key failed): run it again. */
const retry = "retry" as const

/** The operations of `ImageDriver` (a put may answer `"retry"`, see `driver`). */
export const ops = {
  put: Kit.op(
    "image.put",
    function* (image: ImageRow, bytes: Uint8Array, ref: ImageRefRow) {
      if (ref.conversationId !== null && (yield* Kit.one(conversationExists, ref.conversationId)) === undefined) {
        return "no-conversation" as const
      }
      yield* Kit.exec(
        insertImage,
        image.id,
        image.mimeType,
        image.size,
        image.width,
        image.height,
        image.createdAt,
        bound(bytes)
      )
      // Gone already: a release committed between the insert (which found the row) and this lock.
      const stored = yield* Kit.one(lockedMeta, image.id)
      if (stored === undefined) return retry
      yield* Kit.exec(insertRef, ref.key, ref.imageId, ref.conversationId, ref.messageId, ref.metadata, ref.createdAt)
      return stored
    },
    { atomic: true, onViolation: () => retry }
  ),
  meta: Kit.op("image.meta", (id: string) => Kit.one(meta, id)),
  get: Kit.op("image.get", (id: string) => Kit.one(withBytes, id)),
  list: Kit.op("image.list", (filter: ImageFilter, page: PageQuery) =>
    listing({ conversation_id: filter.conversationId, message_id: filter.messageId, image_id: filter.imageId }, page)
  ),
  release: Kit.op(
    "image.release",
    function* (id: string, key: string) {
      const released = (yield* Kit.one(deleteRef, key)) !== undefined
      return { released, remaining: (yield* Kit.one(refsOf, id)) ?? 0 }
    },
    { atomic: true }
  )
}

/** An `ImageDriver` on the SQL backend in context. */
export const driver: Effect.Effect<ImageDriver, StorageError, SqlClient | Kit.SqlTables> = Effect.map(
  Kit.driver(ops),
  (run): ImageDriver => ({
    ...run,
    put: (image, bytes, ref) =>
      Effect.repeat(run.put(image, bytes, ref), { while: (result) => result === retry, times: 100 }).pipe(
        Effect.flatMap((result) =>
          result === retry
            ? new StorageError({ backend: "sql", operation: "image.put", cause: "lost 100 races in a row" })
            : Effect.succeed(result)
        )
      )
  })
)

/** Options of the SQL image layer: the tables' and the store's (the size limit). */
export interface SqlImageOptions extends Kit.SqlOptions, ImageStoreOptions {}

/** `ImageStore` on SQL (the embedded SQLite connection or the `SqlClient` in context), migrating first. */
export const layerWith = (options: SqlImageOptions = {}): Layer.Layer<ImageStore, StorageError, SqlClient> =>
  Layer.effect(
    ImageStore,
    Effect.map(driver, (d) => makeImageStore(d, options))
  ).pipe(Layer.provide(Kit.migrations(schema, options)))

/** `ImageStore` on SQL with the default table prefix. */
export const layer: Layer.Layer<ImageStore, StorageError, SqlClient> = layerWith()
