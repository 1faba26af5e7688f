/**
 * `Embeddings`: text → vectors. `layerLocal` is a deterministic embedder that
 * needs no model download (hashed word, word-pair and character n-gram
 * features, L2-normalised); `layerFromEmbeddingModel` adapts any service
 * shaped like `@effect/ai`'s `EmbeddingModel` (no dependency on it). Both
 * batch their input and keep an LRU cache of recent texts.
 */
import { Context, Effect, Layer } from "effect"
import { InvalidInput, StorageError } from "./Errors.ts"
import { kindOf, thrownText } from "./Record.ts"

/** The service: `embed(texts)` returns one vector of `dimension` values per text, in order. */
export class Embeddings extends Context.Tag("effect-agent-stores/Embeddings")<
  Embeddings,
  {
    /** The model's name, e.g. `local-hash-384` or `text-embedding-3-small`. */
    readonly model: string
    /** The length of every vector `embed` returns. */
    readonly dimension: number
    /** One vector per text, in input order; each a fresh `Float32Array` the caller owns. */
    readonly embed: (
      texts: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyArray<Float32Array>, InvalidInput | StorageError>
  }
>() {}

const entity = "Embeddings"

/** A small LRU of text → vector (a `Map` keeps insertion order; a hit moves to the end). */
export class EmbeddingCache {
  private readonly map = new Map<string, Float32Array>()
  constructor(readonly capacity: number) {}
  /** The cached vector of `key` (now most recently used), or undefined. */
  get(key: string): Float32Array | undefined {
    const value = this.map.get(key)
    if (value !== undefined) {
      this.map.delete(key)
      this.map.set(key, value)
    }
    return value
  }
  /** Caches `value` under `key`, evicting the least recently used entry past capacity. */
  set(key: string, value: Float32Array): void {
    if (this.capacity <= 0) return
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!)
  }
  /** How many entries are cached. */
  get size(): number {
    return this.map.size
  }
}

/** Checks that `texts` is an array of strings (a total check: bad input is `InvalidInput`, never a defect). */
const checkTexts = (texts: unknown): Effect.Effect<ReadonlyArray<string>, InvalidInput> =>
  Effect.suspend(() => {
    try {
      if (!Array.isArray(texts))
        return Effect.fail(InvalidInput.single(entity, `must be an array, got ${kindOf(texts)}`))
      const out: Array<string> = []
      for (let i = 0; i < texts.length; i++) {
        const text: unknown = texts[i]
        if (typeof text !== "string") {
          return Effect.fail(InvalidInput.single(entity, `must be a string, got ${kindOf(text)}`, [i]))
        }
        out.push(text)
      }
      return Effect.succeed(out)
    } catch (error) {
      return Effect.fail(InvalidInput.single(entity, `could not be read: ${thrownText(error)}`))
    }
  })

/**
 * Wraps a batch embedder with input checks, an LRU cache (repeated texts, within one call too, are embedded once)
 * and batching (at most `batchSize` texts per call of `embedBatch`). Returned vectors are copies.
 */
export const cachedEmbed = (options: {
  readonly dimension: number
  readonly cacheSize: number
  readonly batchSize: number
  readonly embedBatch: (texts: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Float32Array>, StorageError>
}) => {
  const cache = new EmbeddingCache(options.cacheSize)
  return (texts: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Float32Array>, InvalidInput | StorageError> =>
    Effect.flatMap(checkTexts(texts), (texts) => {
      const found = new Map<string, Float32Array>()
      const missingSet = new Set<string>()
      for (const text of texts) {
        if (found.has(text) || missingSet.has(text)) continue
        const hit = cache.get(text)
        if (hit !== undefined) found.set(text, hit)
        else missingSet.add(text)
      }
      const missing = Array.from(missingSet)
      const result = () => texts.map((text) => new Float32Array(found.get(text)!))
      if (missing.length === 0) return Effect.sync(result)
      const batches: Array<ReadonlyArray<string>> = []
      for (let i = 0; i < missing.length; i += options.batchSize) batches.push(missing.slice(i, i + options.batchSize))
      return Effect.forEach(batches, (batch) =>
        Effect.flatMap(options.embedBatch(batch), (vectors) => {
          if (vectors.length !== batch.length) {
            return Effect.fail(
              new StorageError({
                backend: entity,
                operation: "embed",
                cause: new Error(`the model returned ${vectors.length} vectors for ${batch.length} texts`)
              })
            )
          }
          for (let i = 0; i < batch.length; i++) {
            const vector = vectors[i]!
            if (vector.length !== options.dimension) {
              return Effect.fail(
                new StorageError({
                  backend: entity,
                  operation: "embed",
                  cause: new Error(
                    `the model returned a vector of ${vector.length} values, expected ${options.dimension}`
                  )
                })
              )
            }
            found.set(batch[i]!, vector)
            cache.set(batch[i]!, vector)
          }
          return Effect.void
        })
      ).pipe(Effect.map(result))
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The local embedder

/** Common English words: they still count, at a fifth of a content word's weight. */
const stopwords = new Set(
  (
    "a an and are as at be been but by can could did do does for from had has have he her his how i if in into is it " +
    "its me my no not of on or our she so than that the their them then there these they this those to too us was we " +
    "were what when where which who whom why will with would you your yours"
  ).split(" ")
)

/** FNV-1a over a string's UTF-16 code units, seeded; a 32-bit unsigned hash. */
const fnv1a = (text: string, seed: number): number => {
  let hash = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  // final avalanche (murmur3 fmix32) so nearby strings spread over every bucket
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b) >>> 0
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35) >>> 0
  hash ^= hash >>> 16
  return hash >>> 0
}

/** Lower-cased words (letters and digits of any script), apostrophes dropped (`hasn't` → `hasnt`). */
const wordsOf = (text: string): Array<string> =>
  text
    .normalize("NFKC")
    .toLowerCase()
    .replace(/['’]/g, "")
    .split(/[^\p{L}\p{N}]+/u)
    .filter((word) => word.length > 0)

/**
 * The deterministic local embedding of `text` into `dimension` values: the signed hashing trick over words
 * (weight 1; stopwords 0.2), adjacent word pairs (0.5) and character 3- to 5-grams of each padded content word (together
 * 0.7 in L2 norm), L2-normalised. The empty text (or one with no word) is the zero vector.
 */
export const localEmbedding = (text: string, dimension: number): Float32Array => {
  const vector = new Float32Array(dimension)
  const add = (feature: string, weight: number) => {
    const hash = fnv1a(feature, 0)
    const index = hash % dimension
    vector[index]! += (hash & 0x80000000) === 0 ? weight : -weight
  }
  const words = wordsOf(text)
  for (let w = 0; w < words.length; w++) {
    const word = words[w]!
    const stop = stopwords.has(word)
    add(`w:${word}`, stop ? 0.2 : 1)
    if (w + 1 < words.length) add(`b:${word} ${words[w + 1]}`, 0.5)
    if (stop) continue
    const padded = `<${word}>`
    const grams: Array<string> = []
    for (let n = 3; n <= 5; n++) for (let i = 0; i + n <= padded.length; i++) grams.push(padded.slice(i, i + n))
    const weight = grams.length === 0 ? 0 : 0.7 / Math.sqrt(grams.length)
    for (const gram of grams) add(`c:${gram}`, weight)
  }
  let norm = 0
  for (let i = 0; i < dimension; i++) norm += vector[i]! * vector[i]!
  if (norm > 0) {
    const scale = 1 / Math.sqrt(norm)
    for (let i = 0; i < dimension; i++) vector[i]! *= scale
  }
  return vector
}

/** Options of `layerLocal`: `dimension` (default 384), `cacheSize` (LRU entries, default 10,000). */
export interface LocalOptions {
  readonly dimension?: number
  readonly cacheSize?: number
}

/** The local embedder as a service value (see `layerLocal`). */
export const makeLocal = (options: LocalOptions = {}): Embeddings["Type"] => {
  const dimension = options.dimension ?? 384
  if (!Number.isSafeInteger(dimension) || dimension < 1) {
    throw new RangeError(`Embeddings.layerLocal: dimension must be a positive integer, got ${dimension}`)
  }
  return {
    model: `local-hash-${dimension}`,
    dimension,
    embed: cachedEmbed({
      dimension,
      cacheSize: options.cacheSize ?? 10_000,
      batchSize: 256,
      embedBatch: (texts) => Effect.sync(() => texts.map((text) => localEmbedding(text, dimension)))
    })
  }
}

/**
 * The default embedder: deterministic hashed word and character n-grams, L2-normalised, no download, no network.
 * Good for tests, examples and keyword-ish recall ("where is my order" finds "my order hasn't arrived"); use a
 * real model (`layerFromEmbeddingModel`) for semantic quality.
 */
export const layerLocal = (options: LocalOptions = {}): Layer.Layer<Embeddings> =>
  Layer.sync(Embeddings, () => makeLocal(options))

// ---------------------------------------------------------------------------------------------------------------
// Adapter for @effect/ai

/**
 * The part of `@effect/ai`'s `EmbeddingModel` service this adapter uses, stated structurally so this package does
 * not depend on `@effect/ai`: `embedMany` when present (one call per batch), otherwise `embed` per text.
 */
export interface EmbeddingModelLike {
  readonly embed: (input: string) => Effect.Effect<ReadonlyArray<number>, unknown>
  readonly embedMany?: (input: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<ReadonlyArray<number>>, unknown>
}

/** Options of `layerFromEmbeddingModel`: the model's name and vector length, batch size (96) and cache size (10,000). */
export interface EmbeddingModelOptions {
  readonly model: string
  readonly dimension: number
  readonly batchSize?: number
  readonly cacheSize?: number
}

/**
 * `Embeddings` over a model service shaped like `@effect/ai`'s `EmbeddingModel`; pass its Tag (an Effect that
 * yields the service), e.g. `layerFromEmbeddingModel(EmbeddingModel.EmbeddingModel, { model, dimension: 1536 })`.
 * A model failure is `StorageError` (backend `Embeddings`), as is a vector of the wrong length.
 */
export const layerFromEmbeddingModel = <E, R>(
  service: Effect.Effect<EmbeddingModelLike, E, R>,
  options: EmbeddingModelOptions
): Layer.Layer<Embeddings, E, R> =>
  Layer.effect(
    Embeddings,
    Effect.map(service, (model) => {
      const failed = (cause: unknown) => new StorageError({ backend: entity, operation: "embed", cause })
      const toFloat = (vectors: ReadonlyArray<ReadonlyArray<number>>) => vectors.map((v) => Float32Array.from(v))
      const embedBatch = (texts: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Float32Array>, StorageError> =>
        (model.embedMany !== undefined
          ? model.embedMany(texts)
          : Effect.forEach(texts, (text) => model.embed(text), { concurrency: 8 })
        ).pipe(Effect.map(toFloat), Effect.mapError(failed))
      return {
        model: options.model,
        dimension: options.dimension,
        embed: cachedEmbed({
          dimension: options.dimension,
          cacheSize: options.cacheSize ?? 10_000,
          batchSize: options.batchSize ?? 96,
          embedBatch
        })
      }
    })
  )
