/** `Embeddings.layerLocal` feeding `VectorStore`: a question finds the text that answers it, on memory and SQLite. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as MemoryVectorStore from "../layers/memory/MemoryVectorStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import { Embeddings, layerLocal } from "../src/Embeddings.ts"
import { VectorStore } from "../src/Vector.ts"

const texts = [
  "my order hasn't arrived",
  "the weather is nice today",
  "how do I reset my password",
  "where is the nearest train station",
  "please cancel my subscription",
  "the meeting is moved to friday"
]

const backends = {
  memory: MemoryVectorStore.layer,
  sqlite: SqlVectorStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename: ":memory:" })))
}

describe("Embeddings + VectorStore", () => {
  for (const [label, store] of Object.entries(backends)) {
    it.effect(`"where is my order" finds "my order hasn't arrived" (${label})`, () =>
      Effect.gen(function* () {
        const embeddings = yield* Embeddings
        const vectors = yield* VectorStore
        yield* vectors.createCollection("support", { dimension: embeddings.dimension })
        const embedded = yield* embeddings.embed(texts)
        yield* vectors.upsert(
          "support",
          texts.map((content, i) => ({
            id: `t${i}`,
            vector: embedded[i]!,
            content,
            metadata: { topic: i === 0 ? "orders" : "other" }
          }))
        )
        const [query] = yield* embeddings.embed(["where is my order"])
        const [top] = yield* vectors.search("support", query!, { topK: 1 })
        expect(top).toMatchObject({ id: "t0", content: "my order hasn't arrived" })
        const filtered = yield* vectors.search("support", query!, { topK: 3, filter: { topic: { $ne: "orders" } } })
        expect(filtered.map((r) => r.id)).not.toContain("t0")
        expect(filtered.length).toBe(3)
      }).pipe(Effect.provide(Layer.merge(layerLocal(), store)))
    )
  }
})
