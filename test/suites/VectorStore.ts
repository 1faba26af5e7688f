/**
 * The `VectorStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own collection names.
 * The property test compares every backend with a reference implementation
 * of search, count and filtered delete over plain arrays.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer, Schema } from "effect"
import { JsonObject } from "../../src/Json.ts"
import {
  VectorCollectionName,
  VectorCountOptions,
  CreateCollectionOptions,
  VectorSearchOptions,
  VectorDocuments,
  type VectorSearchResult,
  VectorStore
} from "../../src/Vector.ts"
import { jsonEquals } from "../../src/VectorFilter.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

const uuidv7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const v = (...values: Array<number>) => Float32Array.from(values)
const ids = (results: ReadonlyArray<{ readonly id: string }>) => results.map((r) => r.id)

// ---------------------------------------------------------------------------------------------------------------
// Reference implementation over plain arrays (written independently of the store's compiled filters)

type Doc = { id: string; vector: Array<number>; metadata: Record<string, unknown>; content?: string }

interface RefReached {
  readonly values: ReadonlyArray<unknown>
  readonly missing: boolean
}

/**
 * What a dotted path reaches (MongoDB's rule): a name goes into an object's key, or into each element of an array (an
 * object without it, or a scalar, is missing there; a nested array is not entered); a number indexes an array (missing
 * past its end) and names a key of its object elements that have it.
 */
const refReach = (value: unknown, path: ReadonlyArray<string>): RefReached => {
  if (path.length === 0) return { values: [value], missing: false }
  const [head, ...rest] = path as [string, ...Array<string>]
  const numeric = /^(0|[1-9][0-9]*)$/.test(head)
  if (Array.isArray(value)) {
    const parts: Array<RefReached> = []
    if (numeric) {
      parts.push(Number(head) < value.length ? refReach(value[Number(head)], rest) : { values: [], missing: true })
    }
    for (const element of value) {
      if (Array.isArray(element)) continue
      if (typeof element === "object" && element !== null) {
        if (!numeric || Object.hasOwn(element, head)) parts.push(refReach(element, path))
      } else if (!numeric) parts.push({ values: [], missing: true })
    }
    return { values: parts.flatMap((p) => p.values), missing: parts.some((p) => p.missing) }
  }
  if (typeof value === "object" && value !== null && Object.hasOwn(value, head)) {
    return refReach((value as Record<string, unknown>)[head], rest)
  }
  return { values: [], missing: true }
}

/** A value and, when it is an array, its elements. */
const flat = (values: ReadonlyArray<unknown>) => values.flatMap((x) => (Array.isArray(x) ? [x, ...x] : [x]))

const refEq = ({ missing, values }: RefReached, operand: unknown): boolean =>
  (operand === null && missing) || flat(values).some((item) => jsonEquals(item, operand))

const refCompare = ({ values }: RefReached, op: string, operand: unknown): boolean =>
  flat(values).some((x) => {
    if (typeof x !== typeof operand || (typeof x !== "number" && typeof x !== "string")) return false
    const a = x as number
    const b = operand as number
    return op === "$gt" ? a > b : op === "$gte" ? a >= b : op === "$lt" ? a < b : a <= b
  })

const isOperators = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" &&
  x !== null &&
  !Array.isArray(x) &&
  Object.keys(x).length > 0 &&
  Object.keys(x).every((k) => k.startsWith("$"))

const refField = (values: RefReached, condition: unknown): boolean => {
  if (!isOperators(condition)) return refEq(values, condition)
  return Object.entries(condition).every(([op, operand]) => {
    switch (op) {
      case "$eq":
        return refEq(values, operand)
      case "$ne":
        return !refEq(values, operand)
      case "$in":
        return (operand as Array<unknown>).some((o) => refEq(values, o))
      case "$nin":
        return !(operand as Array<unknown>).some((o) => refEq(values, o))
      case "$exists":
        return values.values.length > 0 === operand
      case "$not":
        return !refField(values, operand)
      default:
        return refCompare(values, op, operand)
    }
  })
}

const refMatches = (filter: Record<string, unknown>, metadata: Record<string, unknown>): boolean =>
  Object.entries(filter).every(([key, condition]) => {
    if (key === "$and") return (condition as Array<any>).every((f) => refMatches(f, metadata))
    if (key === "$or") return (condition as Array<any>).some((f) => refMatches(f, metadata))
    if (key === "$nor") return !(condition as Array<any>).some((f) => refMatches(f, metadata))
    if (key === "$not") return !refMatches(condition as any, metadata)
    return refField(refReach(metadata, key.split(".")), condition)
  })

const refScore = (metric: string, q: Array<number>, x: Array<number>): number => {
  let dot = 0
  let qq = 0
  let xx = 0
  let dd = 0
  for (let i = 0; i < q.length; i++) {
    dot += q[i]! * x[i]!
    qq += q[i]! * q[i]!
    xx += x[i]! * x[i]!
    dd += (q[i]! - x[i]!) ** 2
  }
  if (metric === "dot") return dot
  if (metric === "euclidean") return 1 / (1 + Math.sqrt(dd))
  return qq === 0 || xx === 0 ? 0 : dot / (Math.sqrt(qq) * Math.sqrt(xx))
}

const refSearch = (
  docs: ReadonlyArray<Doc>,
  metric: string,
  q: Array<number>,
  options: { topK: number; filter?: Record<string, unknown>; minScore?: number }
) =>
  docs
    .filter((d) => options.filter === undefined || refMatches(options.filter, d.metadata))
    .map((d) => ({ id: d.id, score: refScore(metric, q, d.vector) }))
    .filter((r) => options.minScore === undefined || r.score >= options.minScore)
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, options.topK)

// random data: small integer vectors (exact arithmetic, many ties) and metadata from a small domain
const dimension = 3
const scalar = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom("x", "y", "z"), fc.boolean(), fc.constant(null))
const metadataArb = fc.record(
  {
    a: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom("x", "y")),
    b: fc.boolean(),
    c: scalar,
    n: fc.record({ x: fc.integer({ min: 0, max: 3 }) }, { requiredKeys: [] }),
    tags: fc.array(fc.constantFrom("x", "y", "z"), { maxLength: 3 }),
    items: fc.array(
      fc.oneof(
        fc.record({ sku: scalar, n: fc.record({ x: fc.integer({ min: 0, max: 3 }) }) }, { requiredKeys: [] }),
        fc.array(fc.record({ sku: scalar }), { maxLength: 2 }),
        scalar
      ),
      { maxLength: 3 }
    )
  },
  { requiredKeys: [] }
)
const docsArb = fc.uniqueArray(
  fc.record({
    id: fc.stringMatching(/^[a-e]{1,3}$/),
    vector: fc.array(fc.integer({ min: -3, max: 3 }), { minLength: dimension, maxLength: dimension }),
    metadata: metadataArb
  }),
  { selector: (d) => d.id, maxLength: 40 }
)
const fields = [
  "a",
  "b",
  "c",
  "n.x",
  "n",
  "tags",
  "tags.0",
  "missing",
  "items.sku",
  "items.0.sku",
  "items.1",
  "items.n.x"
]
const fieldCondition: fc.Arbitrary<unknown> = fc.oneof(
  scalar,
  fc.record({ $eq: scalar }),
  fc.record({ $ne: scalar }),
  fc.record({
    [`$gt`]: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom("x", "y"))
  }),
  fc
    .record(
      {
        $gte: fc.integer({ min: 0, max: 3 }),
        $lt: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant("y"))
      },
      { requiredKeys: [] }
    )
    .filter((r) => Object.keys(r).length > 0),
  fc.record({ $lte: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant("x")) }),
  fc.record({ $in: fc.array(scalar, { maxLength: 3 }) }),
  fc.record({ $nin: fc.array(scalar, { maxLength: 3 }) }),
  fc.record({ $exists: fc.boolean() }),
  fc.record({ $not: fc.oneof(scalar, fc.record({ $in: fc.array(scalar, { maxLength: 2 }) })) }),
  fc.constant({ x: 1 })
)
const filterArb: fc.Arbitrary<Record<string, unknown>> = fc.letrec((tie) => ({
  filter: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.dictionary(fc.constantFrom(...fields), fieldCondition, { minKeys: 0, maxKeys: 2 }),
    fc.record({ $and: fc.array(tie("filter"), { minLength: 1, maxLength: 2 }) }),
    fc.record({ $or: fc.array(tie("filter"), { minLength: 1, maxLength: 2 }) }),
    fc.record({ $nor: fc.array(tie("filter"), { minLength: 1, maxLength: 2 }) }),
    fc.record({ $not: tie("filter") })
  )
})).filter as fc.Arbitrary<Record<string, unknown>>
const caseArb = fc.record({
  docs: docsArb,
  metric: fc.constantFrom<"cosine" | "dot" | "euclidean">("cosine", "dot", "euclidean"),
  query: fc.array(fc.integer({ min: -3, max: 3 }), { minLength: dimension, maxLength: dimension }),
  topK: fc.integer({ min: 1, max: 12 }),
  filter: fc.option(filterArb, { nil: undefined }),
  minScore: fc.option(fc.constantFrom(-2, 0, 0.3, 0.5), { nil: undefined })
})

/** Runs the `VectorStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<VectorStore, E>) =>
  layer(stores, { timeout: "120 seconds" })(`VectorStore (${label})`, (it) => {
    it.effect("collections: create, describe, list, drop (with their vectors)", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const name = fresh("docs")
        const info = yield* store.createCollection(name, { dimension: 3 })
        expect(info).toEqual({ name, dimension: 3, metric: "cosine", count: 0 })
        const duplicate = yield* Effect.flip(store.createCollection(name, { dimension: 3 }))
        expect(duplicate).toMatchObject({ _tag: "Conflict", reason: "exists", id: name })
        yield* store.upsert(name, [
          { id: "a", vector: v(1, 0, 0) },
          { id: "b", vector: [0, 1, 0] }
        ])
        expect(yield* store.describeCollection(name)).toEqual({ name, dimension: 3, metric: "cosine", count: 2 })
        const other = fresh("docs")
        yield* store.createCollection(other, { dimension: 2, metric: "euclidean" })
        const listed = (yield* store.listCollections()).filter((c) => c.name === name || c.name === other)
        expect(listed).toEqual(
          [
            { name, dimension: 3, metric: "cosine", count: 2 },
            { name: other, dimension: 2, metric: "euclidean", count: 0 }
          ].sort((a, b) => (a.name < b.name ? -1 : 1))
        )
        expect(yield* store.dropCollection(name)).toBe(true)
        expect(yield* store.dropCollection(name)).toBe(false)
        expect(yield* Effect.flip(store.describeCollection(name))).toMatchObject({ _tag: "NotFound", id: name })
        expect(yield* Effect.flip(store.search(name, [1, 0, 0]))).toMatchObject({ _tag: "NotFound" })
        expect(yield* Effect.flip(store.upsert(name, [{ id: "c", vector: [1, 0, 0] }]))).toMatchObject({
          _tag: "NotFound"
        })
        // re-created under the same name: the old vectors are gone
        yield* store.createCollection(name, { dimension: 3, metric: "dot" })
        expect(yield* store.get(name, ["a", "b"])).toEqual([])
        expect(yield* store.count(name)).toBe(0)
        expect(yield* store.search(name, [1, 0, 0])).toEqual([])
      })
    )

    it.effect("upsert and get round-trip vectors, metadata and content verbatim", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const name = fresh("roundtrip")
        yield* store.createCollection(name, { dimension: 4, metric: "dot" })
        const vector = v(0.1, -2.5e-7, 3.4028234663852886e38, -0)
        const content = "nul \u0000 lone \ud800 emoji 😀"
        const metadata = { text: "a\u0000b", nested: { list: [1, "two", null, { deep: true }] }, n: 1.5 }
        const written = yield* store.upsert(name, [{ id: "x", vector, metadata, content }, { vector: [1, 2, 3, 4] }])
        expect(written[0]).toBe("x")
        expect(written[1]).toMatch(uuidv7)
        const [x, y] = yield* store.get(name, ["x", written[1]!, "unknown"])
        expect(x!.id).toBe("x")
        expect(Array.from(x!.vector)).toEqual(Array.from(vector))
        expect(Object.is(x!.vector[3], -0)).toBe(true)
        expect(x!.metadata).toEqual(metadata)
        expect(x!.content).toBe(content)
        expect(y).toEqual({ id: written[1], vector: v(1, 2, 3, 4), metadata: {} })
        expect("content" in y!).toBe(false)
        // copies in and out: mutating the caller's arrays never changes the store
        vector[0] = 99
        x!.vector[1] = 99
        ;(x!.metadata as any).n = 99
        const [again] = yield* store.get(name, ["x"])
        expect(again!.vector[0]).toBeCloseTo(0.1, 6)
        expect(again!.vector[1]).toBeCloseTo(-2.5e-7, 12)
        expect(again!.metadata).toEqual(metadata)
        const [hit] = yield* store.search(name, [0, 0, 0, 1], { topK: 1, filter: { n: 1.5 }, includeVectors: true })
        expect(hit).toMatchObject({ id: "x", metadata, content })
        ;(hit!.metadata as any).n = 5
        hit!.vector![0] = 5
        expect((yield* store.get(name, ["x"]))[0]).toEqual(again)
        // an upsert replaces every field; the last duplicate of a batch wins
        yield* store.upsert(name, [
          { id: "x", vector: [1, 1, 1, 1], metadata: { v: 1 }, content: "first" },
          { id: "x", vector: [2, 2, 2, 2], metadata: { v: 2 } }
        ])
        expect(yield* store.get(name, ["x"])).toEqual([{ id: "x", vector: v(2, 2, 2, 2), metadata: { v: 2 } }])
        expect(yield* store.count(name)).toBe(2)
        // get keeps the order asked, once per id
        expect(ids(yield* store.get(name, [written[1]!, "x", "x"]))).toEqual([written[1], "x"])
      })
    )

    it.effect("search orders by score, ties by id; topK, minScore and includeVectors", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const name = fresh("order")
        yield* store.createCollection(name, { dimension: 2 })
        yield* store.upsert(name, [
          { id: "c", vector: [1, 0] },
          { id: "a", vector: [2, 0] },
          { id: "b", vector: [1, 1] },
          { id: "d", vector: [0, 1] },
          { id: "e", vector: [-1, 0] },
          { id: "z", vector: [0, 0] }
        ])
        const all = yield* store.search(name, [1, 0], { topK: 10 })
        expect(ids(all)).toEqual(["a", "c", "b", "d", "z", "e"])
        expect(all.map((r) => r.score)).toEqual([1, 1, Math.SQRT1_2 / 1, 0, 0, -1].map((s) => expect.closeTo(s, 6)))
        expect(all[0]!.vector).toBeUndefined()
        expect(ids(yield* store.search(name, [1, 0], { topK: 2 }))).toEqual(["a", "c"])
        expect(ids(yield* store.search(name, [1, 0], { minScore: 0.5 }))).toEqual(["a", "c", "b"])
        const [top] = yield* store.search(name, [1, 0], { topK: 1, includeVectors: true })
        expect(top!.vector).toEqual(v(2, 0))
        expect((yield* store.search(name, [1, 0])).length).toBe(6)
      })
    )

    it.effect("metrics: cosine, dot and euclidean (1 / (1 + distance))", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const docs = [
          { id: "near", vector: [1, 1] },
          { id: "long", vector: [10, 10] },
          { id: "far", vector: [-3, 4] }
        ]
        const scores = (results: ReadonlyArray<VectorSearchResult>) =>
          Object.fromEntries(results.map((r) => [r.id, Number(r.score.toFixed(6))]))
        for (const metric of ["cosine", "dot", "euclidean"] as const) {
          const name = fresh(metric)
          yield* store.createCollection(name, { dimension: 2, metric })
          yield* store.upsert(name, docs)
          const results = yield* store.search(name, [1, 1])
          if (metric === "cosine") {
            expect(scores(results)).toEqual({ near: 1, long: 1, far: Number((1 / (5 * Math.SQRT2)).toFixed(6)) })
            expect(ids(results)).toEqual(["long", "near", "far"])
          } else if (metric === "dot") {
            expect(scores(results)).toEqual({ near: 2, long: 20, far: 1 })
            expect(ids(results)).toEqual(["long", "near", "far"])
          } else {
            expect(scores(results)).toEqual({
              near: 1,
              long: Number((1 / (1 + 9 * Math.SQRT2)).toFixed(6)),
              far: Number((1 / (1 + Math.sqrt(25))).toFixed(6))
            })
            expect(ids(results)).toEqual(["near", "far", "long"])
          }
        }
      })
    )

    it.effect("filters: Mongo-style operators over dotted paths, applied inside the scan", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const name = fresh("filters")
        yield* store.createCollection(name, { dimension: 2 })
        const docs = Array.from({ length: 50 }, (_, i) => ({
          id: `d${String(i).padStart(2, "0")}`,
          vector: [1, i / 100],
          metadata: {
            i,
            kind: i % 2 === 0 ? "even" : "odd",
            user: { id: `u${i % 5}` },
            tags: i % 10 === 0 ? ["round"] : [],
            ...(i % 3 === 0 ? { three: true } : {})
          }
        }))
        yield* store.upsert(name, docs)
        const search = (filter: Record<string, unknown>, topK = 100) =>
          Effect.map(store.search(name, [1, 0], { topK, filter }), (r) =>
            r.map((x) => x.metadata.i as number).sort((a, b) => a - b)
          )
        // topK is never lost to post-filtering: the 3 best of the rare matches
        expect(yield* search({ tags: "round" }, 3)).toEqual([0, 10, 20])
        expect(yield* search({ "user.id": "u3", i: { $gte: 20 } })).toEqual([23, 28, 33, 38, 43, 48])
        expect(yield* search({ i: { $gt: 45 } })).toEqual([46, 47, 48, 49])
        expect(yield* search({ i: { $lt: 2 } })).toEqual([0, 1])
        expect(yield* search({ i: { $lte: 1, $ne: 0 } })).toEqual([1])
        expect(yield* search({ i: { $in: [3, 4, "5"] } })).toEqual([3, 4])
        expect(yield* search({ i: { $nin: [...Array(48).keys()] } })).toEqual([48, 49])
        expect((yield* search({ three: { $exists: true } })).length).toBe(17)
        expect((yield* search({ three: { $exists: false } })).length).toBe(33)
        expect(yield* search({ $or: [{ i: 1 }, { i: 2 }], kind: "odd" })).toEqual([1])
        expect(yield* search({ $and: [{ i: { $gte: 40 } }, { $not: { kind: "odd" } }] })).toEqual([40, 42, 44, 46, 48])
        expect(yield* search({ $nor: [{ i: { $lt: 47 } }, { i: 48 }] })).toEqual([47, 49])
        expect(yield* search({ i: { $not: { $lt: 48 } } })).toEqual([48, 49])
        expect(yield* search({ three: null, i: { $lt: 5 } })).toEqual([1, 2, 4])
        expect(yield* search({ "tags.0": "round", i: { $lt: 15 } })).toEqual([0, 10])
        expect(yield* search({ user: { id: "u1" }, i: { $lt: 10 } })).toEqual([1, 6])
        // a dotted path into an array of objects reaches each element's field (MongoDB's rule)
        const orders = fresh("orders")
        yield* store.createCollection(orders, { dimension: 1 })
        yield* store.upsert(orders, [
          {
            id: "o1",
            vector: [1],
            metadata: {
              items: [
                { sku: "x", qty: 1 },
                { sku: "y", qty: 5 }
              ]
            }
          },
          { id: "o2", vector: [1], metadata: { items: [{ sku: "x", qty: 2 }] } },
          { id: "o3", vector: [1], metadata: { items: [[{ sku: "y" }], "y", { tags: ["y", "z"] }] } },
          { id: "o4", vector: [1], metadata: { items: [] } }
        ])
        const matching = (filter: Record<string, unknown>) =>
          Effect.map(store.search(orders, [1], { topK: 10, filter }), ids)
        expect(yield* matching({ "items.sku": "y" })).toEqual(["o1"])
        expect(yield* matching({ "items.sku": { $in: ["x"] } })).toEqual(["o1", "o2"])
        expect(yield* matching({ "items.qty": { $gt: 4 } })).toEqual(["o1"])
        expect(yield* matching({ "items.sku": { $ne: "y" } })).toEqual(["o2", "o3", "o4"])
        expect(yield* matching({ "items.sku": { $exists: true } })).toEqual(["o1", "o2"])
        expect(yield* matching({ "items.sku": null })).toEqual(["o3"])
        expect(yield* matching({ "items.sku": { $exists: false } })).toEqual(["o3", "o4"])
        expect(yield* matching({ "items.1.sku": "y" })).toEqual(["o1"])
        expect(yield* matching({ "items.0.0.sku": "y" })).toEqual(["o3"])
        expect(yield* matching({ "items.tags": "z" })).toEqual(["o3"])
        expect(yield* store.count(orders, { filter: { "items.sku": "x", "items.qty": 5 } })).toBe(1)
        expect(yield* store.delete(orders, { filter: { "items.sku": "x" } })).toBe(2)
        // a value of the wrong type never breaks the query: it does not match
        expect(yield* search({ i: { $gt: "a" } })).toEqual([])
        expect(yield* search({ kind: { $lt: 5 } })).toEqual([])
        expect(yield* search({ "kind.deep.path": 1 })).toEqual([])
        expect(yield* search({ "i.0": 1 })).toEqual([])
        expect((yield* search({})).length).toBe(50)
        expect(yield* store.count(name, { filter: { kind: "even" } })).toBe(25)
        expect(yield* store.count(name, {})).toBe(50)
        // malformed filters are InvalidInput
        for (const filter of [
          { i: { $gt: [1] } },
          { i: { $in: 3 } },
          { i: { $exists: "yes" } },
          { i: { $regex: "x" } },
          { i: { $gt: 1, plain: 2 } },
          { $or: [] },
          { $and: {} },
          { $where: "1" },
          { "a..b": 1 },
          { $not: [1] },
          { i: { $nin: null } }
        ]) {
          const error = yield* Effect.flip(store.search(name, [1, 0], { filter }))
          expect(error).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(store.count(name, { filter }))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(store.delete(name, { filter }))).toMatchObject({ _tag: "InvalidInput" })
        }
        const error = yield* Effect.flip(store.search(name, [1, 0], { filter: { i: { $in: 3 } } }))
        expect(error.message).toBe("options.filter.i.$in must be an array, got number")
        expect(yield* store.count(name)).toBe(50)
      })
    )

    it.effect("delete by ids and by filter; count", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const name = fresh("delete")
        yield* store.createCollection(name, { dimension: 1 })
        yield* store.upsert(
          name,
          Array.from({ length: 10 }, (_, i) => ({ id: `k${i}`, vector: [i + 1], metadata: { i } }))
        )
        expect(yield* store.delete(name, ["k0", "k1", "k1", "nope", ""])).toBe(2)
        expect(yield* store.delete(name, { filter: { i: { $gte: 7 } } })).toBe(3)
        expect(yield* store.delete(name, { filter: { i: { $gte: 7 } } })).toBe(0)
        expect(yield* store.count(name)).toBe(5)
        expect(ids(yield* store.search(name, [1], { topK: 10 })).sort()).toEqual(["k2", "k3", "k4", "k5", "k6"])
        expect(yield* store.delete(name, [])).toBe(0)
        expect(yield* Effect.flip(store.delete(fresh("none"), ["k2"]))).toMatchObject({ _tag: "NotFound" })
      })
    )

    it.effect("wrong dimension, NaN, Infinity: InvalidInput, nothing written (a batch is all or none)", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const name = fresh("invalid")
        yield* store.createCollection(name, { dimension: 3 })
        yield* store.upsert(name, [{ id: "keep", vector: [1, 2, 3] }])
        const bad: ReadonlyArray<unknown> = [
          [1, 2],
          [1, 2, 3, 4],
          [1, Number.NaN, 3],
          v(1, Number.POSITIVE_INFINITY, 3),
          [1, 1e39, 3],
          [1, "2", 3],
          new Float64Array([1, 2, 3]),
          "1,2,3",
          null
        ]
        for (const vector of bad) {
          const error = yield* Effect.flip(
            store.upsert(name, [
              { id: "new", vector: [0, 0, 1] },
              { id: "keep", vector: vector as never }
            ])
          )
          expect(error).toMatchObject({ _tag: "InvalidInput" })
          const query = yield* Effect.flip(store.search(name, vector as never))
          expect(query).toMatchObject({ _tag: "InvalidInput" })
        }
        const wrong = yield* Effect.flip(store.upsert(name, [{ vector: [1, 2] }]))
        expect(wrong.message).toBe("documents[0].vector must have 3 values, got 2")
        expect(yield* store.get(name, ["keep", "new"])).toEqual([{ id: "keep", vector: v(1, 2, 3), metadata: {} }])
        expect(yield* store.count(name)).toBe(1)
        for (const options of [{ dimension: 0 }, { dimension: 1.5 }, { dimension: 3, metric: "l2" }, {}, null]) {
          const error = yield* Effect.flip(store.createCollection(fresh("bad"), options as never))
          expect(error).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const collection of ["", "\u0000", 42, null]) {
          const error = yield* Effect.flip(store.createCollection(collection as never, { dimension: 1 }))
          expect(error).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const options of [{ topK: 0 }, { topK: 1.5 }, { minScore: Number.NaN }, { includeVectors: 1 }, 5]) {
          const error = yield* Effect.flip(store.search(name, [1, 2, 3], options as never))
          expect(error).toMatchObject({ _tag: "InvalidInput" })
        }
        expect(yield* Effect.flip(store.search(fresh("unknown"), [1]))).toMatchObject({ _tag: "NotFound" })
        expect(yield* Effect.flip(store.describeCollection(42 as never))).toMatchObject({ _tag: "InvalidInput" })
        expect(yield* Effect.flip(store.get(name, [1] as never))).toMatchObject({ _tag: "InvalidInput" })
        expect(yield* Effect.flip(store.delete(name, "keep" as never))).toMatchObject({ _tag: "InvalidInput" })
        expect(yield* store.count(name)).toBe(1)
      })
    )

    it.effect("large scans (the SIMD candidates and their exact re-rank) equal a float64 reference", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        let seed = 7
        const next = () => {
          seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
          return seed / 2 ** 32 - 0.5
        }
        for (const [metric, dim] of [
          ["cosine", 23],
          ["dot", 32],
          ["euclidean", 5]
        ] as const) {
          const name = fresh(`scan-${metric}`)
          yield* store.createCollection(name, { dimension: dim, metric })
          const docs = Array.from({ length: 3000 }, (_, i) => ({
            id: `s${i}`,
            vector: Float32Array.from({ length: dim }, next),
            metadata: { half: i % 2 === 0 }
          }))
          yield* store.upsert(name, docs)
          yield* store.delete(name, ["s0", "s1"])
          const kept = docs.slice(2)
          for (const filter of [undefined, { half: true }]) {
            const query = Float32Array.from({ length: dim }, next)
            const expected = refSearch(
              kept.map((d) => ({ ...d, vector: Array.from(d.vector) })),
              metric,
              Array.from(query),
              filter === undefined ? { topK: 25 } : { topK: 25, filter }
            )
            const found = yield* store.search(name, query, filter === undefined ? { topK: 25 } : { topK: 25, filter })
            expect(ids(found)).toEqual(ids(expected))
            found.forEach((r, i) => expect(r.score).toBeCloseTo(expected[i]!.score, 12))
          }
        }
      })
    )

    it.effect("a large batch is written whole; concurrent writers lose nothing", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const name = fresh("large")
        const dim = 6
        yield* store.createCollection(name, { dimension: dim, metric: "euclidean" })
        const docs = Array.from({ length: 1234 }, (_, i) => ({
          id: `r${String(i).padStart(4, "0")}`,
          vector: Array.from({ length: dim }, (_, j) => ((i * 7 + j * 13) % 17) - 8),
          metadata: { i, even: i % 2 === 0 }
        }))
        // the last record repeats an id: the later one wins
        const batch = [...docs, { ...docs[5]!, vector: [0, 0, 0, 0, 0, 0], metadata: { i: 5, replaced: true } }]
        yield* store.upsert(name, batch)
        expect(yield* store.count(name)).toBe(1234)
        expect(yield* store.get(name, ["r0005"])).toEqual([
          { id: "r0005", vector: new Float32Array(dim), metadata: { i: 5, replaced: true } }
        ])
        // a bad record at the end of a large batch: nothing of it is written
        const bad = yield* Effect.flip(
          store.upsert(name, [
            ...docs.map((d) => ({ ...d, metadata: { overwritten: true } })),
            { id: "bad", vector: [1, 2, 3] }
          ])
        )
        expect(bad).toMatchObject({ _tag: "InvalidInput", message: "documents[1234].vector must have 6 values, got 3" })
        expect(yield* store.count(name, { filter: { overwritten: true } })).toBe(0)
        const query = [3, -2, 1, 0, -5, 4]
        const expected = batch
          .slice(0, 1234)
          .map((d, i) => (i === 5 ? batch[1234]! : d))
          .map((d) => ({
            id: d.id,
            score: 1 / (1 + Math.sqrt(d.vector.reduce((s, x, j) => s + (x - query[j]!) ** 2, 0)))
          }))
          .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
          .slice(0, 7)
        const found = yield* store.search(name, query, { topK: 7 })
        expect(found.map((r) => [r.id, r.score])).toEqual(expected.map((r) => [r.id, r.score]))
        // concurrent writers of one collection
        yield* Effect.forEach(
          Array.from({ length: 8 }, (_, w) => w),
          (w) =>
            Effect.forEach(
              Array.from({ length: 5 }, (_, k) => k),
              (k) =>
                store.upsert(
                  name,
                  Array.from({ length: 10 }, (_, i) => ({ id: `w${w}-${k}-${i}`, vector: [w, k, i, 1, 1, 1] }))
                ),
              { discard: true }
            ),
          { concurrency: "unbounded", discard: true }
        )
        expect(yield* store.count(name)).toBe(1234 + 400)
        expect(yield* store.search(name, [7, 4, 9, 1, 1, 1], { topK: 1 })).toMatchObject([{ id: "w7-4-9", score: 1 }])
      })
    )

    it.effect("property: search, count and filtered delete equal a reference over plain arrays", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const cases = fc.sample(caseArb, { numRuns: 60, seed: 12 })
        for (const c of cases) {
          const name = fresh("prop")
          yield* store.createCollection(name, { dimension, metric: c.metric })
          // written in two batches, with a replaced and a deleted record, so the scan copies see updates
          const half = Math.floor(c.docs.length / 2)
          yield* store.upsert(
            name,
            c.docs.slice(0, half).map((d) => ({ ...d, vector: d.vector.map((x) => -x) }))
          )
          yield* store.search(name, c.query)
          yield* store.upsert(name, c.docs)
          yield* store.upsert(name, [{ id: "zz-gone", vector: [1, 1, 1] }])
          yield* store.delete(name, ["zz-gone"])
          const docs: Array<Doc> = c.docs
          const options = {
            topK: c.topK,
            ...(c.filter === undefined ? {} : { filter: c.filter }),
            ...(c.minScore === undefined ? {} : { minScore: c.minScore })
          }
          const expected = refSearch(docs, c.metric, c.query, options)
          const actual = yield* store.search(name, c.query, options)
          const context = JSON.stringify(c)
          expect(
            actual.map((r) => [r.id, r.score]),
            context
          ).toEqual(expected.map((r) => [r.id, r.score]))
          const filter = c.filter ?? {}
          const matching = docs.filter((d) => refMatches(filter, d.metadata)).length
          expect(yield* store.count(name, { filter }), context).toBe(matching)
          expect(yield* store.delete(name, { filter }), context).toBe(matching)
          expect(yield* store.count(name), context).toBe(docs.length - matching)
          yield* store.dropCollection(name)
        }
      })
    )

    it.effect("bad input is InvalidInput with nothing written (generated by the kernel's harness)", () =>
      Effect.gen(function* () {
        const store = yield* VectorStore
        const name = fresh("harness")
        yield* store.createCollection(name, { dimension: 2 })
        yield* store.upsert(name, [{ id: "a", vector: [1, 2], metadata: { k: 1 } }])
        const snapshot = Effect.gen(function* () {
          const collections = (yield* store.listCollections()).filter((c) => c.name.startsWith("harness"))
          const records = yield* store.get(name, ["a"])
          return { collections, records: records.map((r) => ({ ...r, vector: Array.from(r.vector) })) }
        })
        yield* BadInput.run(`VectorStore (${label})`, snapshot, [
          BadInput.operation(
            "createCollection",
            CreateCollectionOptions,
            (options) => store.createCollection(fresh("harness-x"), options as never),
            { id: (id) => store.createCollection(id as never, { dimension: 2 }) }
          ),
          BadInput.operation("createCollection name", VectorCollectionName, (n) =>
            store.createCollection(n as never, { dimension: 2 })
          ),
          BadInput.operation("upsert", VectorDocuments, (docs) => store.upsert(name, docs as never), {
            id: (id) => store.upsert(id as never, [])
          }),
          BadInput.operation("search", VectorSearchOptions, (options) => store.search(name, [1, 2], options as never), {
            optional: true
          }),
          BadInput.operation("count", VectorCountOptions, (options) => store.count(name, options as never), {
            optional: true
          }),
          BadInput.operation("delete filter", JsonObject, (filter) => store.delete(name, { filter } as never)),
          BadInput.operation("get", Schema.Array(Schema.String), (list) => store.get(name, list as never), {
            id: (id) => store.get(id as never, ["a"])
          })
        ])
      })
    )
  })
