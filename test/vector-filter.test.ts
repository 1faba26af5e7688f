/**
 * The vector filter's dotted paths against a reference evaluator of MongoDB's query language (`sift`): generated
 * metadata with arrays of objects and scalars, and generated filters over paths into them. The generator leaves out
 * arrays directly inside arrays and objects with keys that are numbers: there the reference departs from MongoDB
 * (it enters nested arrays for a name; it does not read `"a.0"` as a key of an element), and `null` and `$exists`
 * only on paths without an index, where the reference is not consistent with itself (`{ "a.0": null }` and
 * `{ "a.0": { $in: [null] } }` disagree on `a: []`). The store follows MongoDB (see `src/VectorFilter.ts`), checked
 * by example in the contract suite.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import Sift from "sift"
import { compile } from "../src/VectorFilter.ts"

/** The package's CommonJS export: its `default` is the query tester under both module systems. */
const sift = Sift.default

const scalar = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom("x", "y"), fc.boolean(), fc.constant(null))
/** A scalar but `null` (the reference matches `$in: [null]` otherwise than `null` itself past an array's end). */
const value = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom("x", "y"), fc.boolean())
const leaf = fc.oneof(scalar, fc.array(scalar, { maxLength: 2 }))
const item = fc.record({ sku: leaf, n: fc.record({ x: leaf }, { requiredKeys: [] }) }, { requiredKeys: [] })
const metadata = fc.record(
  {
    a: leaf,
    items: fc.array(fc.oneof(item, scalar), { maxLength: 3 }),
    n: fc.record({ items: fc.array(item, { maxLength: 2 }) }, { requiredKeys: [] })
  },
  { requiredKeys: [] }
)
/** A field condition: `null` operands and `$exists` on paths without an index, where the reference is consistent. */
const condition = (nulls: boolean) =>
  fc.oneof(
    nulls ? leaf : leaf.filter((x) => x !== null),
    fc.record({ $eq: nulls ? leaf : value }),
    fc.record({ $ne: nulls ? scalar : value }),
    fc.record({ $gt: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom("x", "y")) }),
    fc.record({ $lte: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom("x", "y")) }),
    fc.record({ $in: fc.array(value, { minLength: 1, maxLength: 3 }) }),
    fc.record({ $nin: fc.array(value, { minLength: 1, maxLength: 3 }) }),
    ...(nulls ? [fc.record({ $exists: fc.boolean() })] : []),
    fc.record({ $not: fc.record({ $eq: nulls ? scalar : value }) })
  )
const named = ["a", "items", "items.sku", "items.n.x", "n.items.sku"]
const indexed = ["items.0", "items.0.sku", "items.1.n.x"]
const field = fc.oneof(
  fc.tuple(fc.constantFrom(...named), condition(true)),
  fc.tuple(fc.constantFrom(...indexed), condition(false))
)
const filter = fc
  .uniqueArray(field, { selector: ([path]) => path, minLength: 1, maxLength: 2 })
  .map((fields) => Object.fromEntries(fields))

describe("vector filters: dotted paths as MongoDB (sift as the reference)", () => {
  it("matches what the reference matches", () => {
    fc.assert(
      fc.property(filter, fc.array(metadata, { minLength: 1, maxLength: 8 }), (f, docs) => {
        const predicate = Either.getOrThrow(compile("Vector", f))
        const reference = sift(f)
        for (const doc of docs) expect([f, doc, predicate(doc)]).toEqual([f, doc, reference(doc)])
      }),
      { numRuns: 2000 }
    )
  })
})
