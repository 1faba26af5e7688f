/**
 * `ImageStore` on every backend (memory, SQLite `:memory:` and file, PostgreSQL) with its contract suite, plus
 * what only raw access can show: a byte changed behind the store's back is an `IntegrityError` on read, 16 fibers
 * putting the same bytes leave one stored copy, and a conversation deleted with plain SQL leaves no bytes behind.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import postgres from "postgres"
import { ConversationStore } from "../src/Conversation.ts"
import { ImageStore } from "../src/Image.ts"
import { MemoryDatabase } from "../layers/memory/MemoryDatabase.ts"
import * as MemoryConversationStore from "../layers/memory/MemoryConversationStore.ts"
import * as MemoryImageStore from "../layers/memory/MemoryImageStore.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlConversationStore from "../layers/sql/SqlConversationStore.ts"
import * as SqlImageStore from "../layers/sql/SqlImageStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { onEveryBackend } from "./backends.ts"
import { pgReady, pgUrl } from "./pg.ts"
import { gifOf, pngOf, suite } from "./suites/ImageStore.ts"

const pgPrefix = `t${process.pid}_`

/** Drops the reference-count functions this process's PostgreSQL runs created (tables drop their triggers). */
afterAll(async () => {
  if ((await pgReady("images clean-up")) !== undefined) return
  const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
  try {
    const rows = await sql<Array<{ name: string }>>`
      SELECT proname AS name FROM pg_proc WHERE proname LIKE ${pgPrefix + "%image_refs_count"}`
    for (const { name } of rows) await sql.unsafe(`DROP FUNCTION IF EXISTS "${name}"() CASCADE`)
  } finally {
    await sql.end({ timeout: 1 })
  }
})

await onEveryBackend(
  {
    memory: Layer.merge(MemoryImageStore.layerWithDatabase, MemoryConversationStore.layerWithDatabase),
    sql: (options) => Layer.merge(SqlImageStore.layerWith(options), SqlConversationStore.layerWith(options)),
    schemas: [SqlImageStore.schema]
  },
  ({ label, layer }) => suite(label, layer)
)

/** The raw checks on one SQL backend, its tables named with `prefix`. */
const raw = (label: string, prefix: string, database: Layer.Layer<SqlClient, unknown>) =>
  layer(
    Layer.mergeAll(
      SqlImageStore.layerWith({ tablePrefix: prefix }),
      SqlConversationStore.layerWith({ tablePrefix: prefix })
    ).pipe(Layer.provideMerge(database)),
    { timeout: "60 seconds" }
  )(`ImageStore raw SQL (${label})`, (it) => {
    const count = (sql: SqlClient, table: string, where: string, value: string) =>
      Effect.map(
        sql.unsafe<{ n: number | string }>(
          `SELECT count(*) AS n FROM "${prefix}_${table}" WHERE ${where} = ${sql.onDialectOrElse({ pg: () => "$1", orElse: () => "?" })}`,
          [value]
        ),
        (rows) => Number(rows[0]!.n)
      )

    it.effect("a byte changed with raw SQL is an IntegrityError on read", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const sql = yield* SqlClient
        const bytes = pngOf(20, 20)
        const ref = yield* images.put(bytes)
        const tampered = new Uint8Array(bytes)
        tampered[tampered.length - 1]! ^= 0x01
        yield* sql.unsafe(
          `UPDATE "${prefix}_images" SET bytes = ${sql.onDialectOrElse({ pg: () => "$1 WHERE id = $2", orElse: () => "? WHERE id = ?" })}`,
          [Buffer.from(tampered), ref.id]
        )
        const error = yield* Effect.flip(images.get(ref.id))
        expect(error).toMatchObject({ _tag: "IntegrityError", entity: "Image", id: ref.id, expected: ref.id })
        expect((error as { actual: string }).actual).not.toBe(ref.id)
        // The description is still readable; the bytes are never returned.
        expect((yield* images.getMeta(ref.id)).size).toBe(bytes.length)
        yield* images.delete(ref.id)
      })
    )

    it.effect("16 fibers putting the same bytes at once store one row with one reference", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const sql = yield* SqlClient
        const bytes = gifOf(30, 30)
        const refs = yield* Effect.all(
          Array.from({ length: 16 }, () => images.put(bytes)),
          { concurrency: 16 }
        )
        const id = refs[0]!.id
        expect(yield* count(sql, "images", "id", id)).toBe(1)
        expect(yield* count(sql, "image_refs", "image_id", id)).toBe(1)
        const rows = yield* sql.unsafe<{ refs: number | string }>(
          `SELECT refs FROM "${prefix}_images" WHERE id = ${sql.onDialectOrElse({ pg: () => "$1", orElse: () => "?" })}`,
          [id]
        )
        expect(Number(rows[0]!.refs)).toBe(1)
        yield* images.delete(id)
        expect(yield* count(sql, "images", "id", id)).toBe(0)
      })
    )

    it.effect("puts racing the last release or the conversation's deletion: no error, no orphan, no lost image", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const conversations = yield* ConversationStore
        const sql = yield* SqlClient
        const refsColumn = (id: string) =>
          Effect.map(
            sql.unsafe<{ refs: number | string }>(
              `SELECT refs FROM "${prefix}_images" WHERE id = ${sql.onDialectOrElse({ pg: () => "$1", orElse: () => "?" })}`,
              [id]
            ),
            (rows) => (rows.length === 0 ? 0 : Number(rows[0]!.refs))
          )
        for (let i = 0; i < 20; i++) {
          const conversation = yield* conversations.create({ id: `race-${Date.now()}-${i}-${Math.random()}` })
          const bytes = pngOf(i + 1, 1)
          const ref = yield* images.put(bytes, { conversationId: conversation.id })
          // The last release against a put by another owner: the put's reference must keep the bytes.
          yield* Effect.all([images.release(ref.id, { conversationId: conversation.id }), images.put(bytes)], {
            concurrency: 2
          })
          expect(yield* images.has(ref.id)).toBe(true)
          expect(yield* count(sql, "image_refs", "image_id", ref.id)).toBe(1)
          expect(yield* refsColumn(ref.id)).toBe(1)
          // A put into the conversation against the conversation's deletion: either way nothing is orphaned.
          yield* images.put(bytes, { conversationId: conversation.id, messageId: "m1" })
          yield* images.delete(ref.id)
          const [put] = yield* Effect.all(
            [
              Effect.either(images.put(bytes, { conversationId: conversation.id, messageId: "m2" })),
              conversations.delete(conversation.id)
            ],
            { concurrency: 2 }
          )
          if (put._tag === "Left") expect(put.left._tag).toBe("NotFound")
          expect(yield* count(sql, "image_refs", "image_id", ref.id)).toBe(0)
          expect(yield* count(sql, "images", "id", ref.id)).toBe(0)
        }
      })
    )

    it.effect("a conversation deleted with plain SQL takes its references and unreferenced bytes along", () =>
      Effect.gen(function* () {
        const images = yield* ImageStore
        const conversations = yield* ConversationStore
        const sql = yield* SqlClient
        const conversation = yield* conversations.create({ id: `raw-${Date.now()}-${Math.random()}` })
        const ref = yield* images.put(pngOf(2, 3), { conversationId: conversation.id, messageId: "m" })
        expect(yield* count(sql, "image_refs", "conversation_id", conversation.id)).toBe(1)
        yield* sql.unsafe(
          `DELETE FROM "${prefix}_conversations" WHERE id = ${sql.onDialectOrElse({ pg: () => "$1", orElse: () => "?" })}`,
          [conversation.id]
        )
        expect(yield* count(sql, "image_refs", "conversation_id", conversation.id)).toBe(0)
        expect(yield* count(sql, "images", "id", ref.id)).toBe(0)
      })
    )
  })

raw("sqlite :memory:", "agent", SqliteDatabase.layer({ filename: ":memory:" }))

const unreachable = await pgReady("ImageStore raw SQL on PostgreSQL")
if (unreachable !== undefined) {
  describe.skip("ImageStore raw SQL (postgres)", () => it("needs a reachable server", () => {}))
} else {
  const prefix = `${pgPrefix}raw_${Date.now().toString(36)}`
  afterAll(async () => {
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const table of ["image_refs", "images", "messages", "conversations", "sessions", "counters"]) {
        await sql.unsafe(`DROP TABLE IF EXISTS "${prefix}_${table}" CASCADE`)
      }
      for (const schema of ["images", "conversations", "sessions", "kernel"]) {
        await sql.unsafe(`DROP TABLE IF EXISTS "${prefix}_${schema}_migrations" CASCADE`)
      }
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
  raw("postgres", prefix, PgDatabase.layer({ url: pgUrl }))
}

describe("ImageStore raw memory", () => {
  it.effect("a byte changed in the memory backend's maps is an IntegrityError on read", () =>
    Effect.gen(function* () {
      const images = yield* ImageStore
      const db = yield* MemoryDatabase
      const ref = yield* images.put(pngOf(4, 4))
      const entry = db.map<string, { bytes: Uint8Array }>("images").get(ref.id)!
      entry.bytes[0]! ^= 0xff
      expect(yield* Effect.flip(images.get(ref.id))).toMatchObject({ _tag: "IntegrityError", id: ref.id })
    }).pipe(Effect.provide(MemoryImageStore.layerWithDatabase.pipe(Layer.provideMerge(MemoryDatabase.layer))))
  )
})
