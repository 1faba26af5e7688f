import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Embeddings, layerFromEmbeddingModel, layerLocal, localEmbedding } from "../src/Embeddings.ts"

const cosine = (a: Float32Array, b: Float32Array) => {
  let dot = 0
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!
  return dot
}

describe("Embeddings.layerLocal", () => {
  it.effect("is deterministic, L2-normalised, of the configured dimension", () =>
    Effect.gen(function* () {
      const embeddings = yield* Embeddings
      expect(embeddings.dimension).toBe(384)
      const [a, b] = yield* embeddings.embed(["hello world", "hello world"])
      expect(a!.length).toBe(384)
      expect(Array.from(a!)).toEqual(Array.from(b!))
      expect(cosine(a!, a!)).toBeCloseTo(1, 5)
      expect(Array.from(localEmbedding("hello world", 384))).toEqual(Array.from(a!))
      const [empty] = yield* embeddings.embed([""])
      expect(empty!.every((x) => x === 0)).toBe(true)
    }).pipe(Effect.provide(layerLocal()))
  )

  it.effect("honours dimension", () =>
    Effect.gen(function* () {
      const embeddings = yield* Embeddings
      const [v] = yield* embeddings.embed(["x"])
      expect(embeddings.dimension).toBe(64)
      expect(v!.length).toBe(64)
    }).pipe(Effect.provide(layerLocal({ dimension: 64 })))
  )

  it.effect('"where is my order" finds "my order hasn\'t arrived" over unrelated texts', () =>
    Effect.gen(function* () {
      const embeddings = yield* Embeddings
      const corpus = [
        "where is the nearest train station",
        "the weather is nice today",
        "my order hasn't arrived",
        "how do I reset my password",
        "is there a vegetarian option on the menu",
        "where can I park my car",
        "the meeting is moved to friday",
        "please cancel my subscription"
      ]
      const vectors = yield* embeddings.embed(corpus)
      const [query] = yield* embeddings.embed(["where is my order"])
      const ranked = corpus
        .map((text, i) => ({ text, score: cosine(query!, vectors[i]!) }))
        .sort((a, b) => b.score - a.score)
      expect(ranked[0]!.text).toBe("my order hasn't arrived")
      // character n-grams: a different form of the word still ranks first
      const [orders] = yield* embeddings.embed(["orders"])
      const best = corpus.reduce((a, _, i) => (cosine(orders!, vectors[i]!) > cosine(orders!, vectors[a]!) ? i : a), 0)
      expect(corpus[best]).toBe("my order hasn't arrived")
    }).pipe(Effect.provide(layerLocal()))
  )

  it.effect("returns copies: mutating a result never changes the cache", () =>
    Effect.gen(function* () {
      const embeddings = yield* Embeddings
      const [a] = yield* embeddings.embed(["cache me"])
      a!.fill(7)
      const [b] = yield* embeddings.embed(["cache me"])
      expect(b![0]).not.toBe(7)
      expect(Array.from(b!)).toEqual(Array.from(localEmbedding("cache me", 384)))
    }).pipe(Effect.provide(layerLocal()))
  )

  it.effect("bad input is InvalidInput, never a defect", () =>
    Effect.gen(function* () {
      const embeddings = yield* Embeddings
      const e1 = yield* Effect.flip(embeddings.embed("text" as never))
      expect(e1._tag).toBe("InvalidInput")
      const e2 = yield* Effect.flip(embeddings.embed(["ok", 3] as never))
      expect(e2._tag).toBe("InvalidInput")
      expect(e2.message).toContain("[1]")
    }).pipe(Effect.provide(layerLocal()))
  )
})

describe("Embeddings.layerFromEmbeddingModel", () => {
  it.effect("batches, caches repeated texts and maps failures to StorageError", () =>
    Effect.gen(function* () {
      const calls: Array<ReadonlyArray<string>> = []
      const model = {
        embed: (text: string) => Effect.succeed([text.length, 1]),
        embedMany: (texts: ReadonlyArray<string>) =>
          Effect.sync(() => {
            calls.push(texts)
            return texts.map((t) => (t === "boom" ? [1] : [t.length, 1]))
          })
      }
      const layer = layerFromEmbeddingModel(Effect.succeed(model), { model: "fake", dimension: 2, batchSize: 2 })
      yield* Effect.gen(function* () {
        const embeddings = yield* Embeddings
        expect(embeddings.model).toBe("fake")
        const out = yield* embeddings.embed(["a", "bb", "a", "ccc"])
        expect(out.map((v) => v[0])).toEqual([1, 2, 1, 3])
        expect(calls).toEqual([["a", "bb"], ["ccc"]])
        yield* embeddings.embed(["bb", "ccc"])
        expect(calls.length).toBe(2)
        const error = yield* Effect.flip(embeddings.embed(["boom"]))
        expect(error._tag).toBe("StorageError")
      }).pipe(Effect.provide(layer))
      const failing = layerFromEmbeddingModel(Effect.succeed({ embed: () => Effect.fail("down") }), {
        model: "f",
        dimension: 2
      })
      const error = yield* Effect.flip(Effect.flatMap(Embeddings, (e) => e.embed(["x"])).pipe(Effect.provide(failing)))
      expect(error._tag).toBe("StorageError")
    })
  )
})
