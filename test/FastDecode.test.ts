/**
 * The fast path of input decoding must answer exactly what Effect's
 * `ParseResult` answers: on every public schema, for generated valid input,
 * that input broken a field at a time, and a corpus of odd values, a value it
 * returns is `ParseResult`'s value (equal, keys in the same order), and it
 * misses whatever `ParseResult` refuses.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, FastCheck, Schema, SchemaAST } from "effect"
import { isDeepStrictEqual } from "node:util"
import { fastDecoder, miss } from "../src/FastDecode.ts"
import * as Public from "../src/index.ts"

const schemas = Object.entries(Public).filter((entry): entry is [string, Schema.Schema<unknown, unknown>] =>
  Schema.isSchema(entry[1])
)

/** An object's own keys, but an error's `stack` (where each instance was made). */
const keysOf = (value: object) => Reflect.ownKeys(value).filter((key) => !(value instanceof Error && key === "stack"))

/** Equal, with every object's keys in the same order (what `JSON.stringify` and spreads see). */
const same = (a: unknown, b: unknown): boolean => {
  if (!isDeepStrictEqual(a, b)) return false
  if (typeof a !== "object" || a === null) return true
  const keys = keysOf(a)
  if (!isDeepStrictEqual(keys, keysOf(b as object))) return false
  return keys.every((key) => same((a as Record<PropertyKey, unknown>)[key], (b as Record<PropertyKey, unknown>)[key]))
}

const odd: ReadonlyArray<unknown> = [
  undefined,
  null,
  0,
  -1,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  "",
  "x",
  "\u0000",
  "\ud800",
  "a".repeat(300),
  true,
  10n,
  Symbol.for("x"),
  [],
  [1, "a", null],
  {},
  { a: 1 },
  new Date(0),
  new Map(),
  () => 1
]

/** `value` with one field (or item) removed, set to `undefined`, `null`, a number, a string or an object. */
const broken = (value: unknown): Array<unknown> => {
  if (typeof value !== "object" || value === null) return []
  const out: Array<unknown> = []
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value)
  for (const key of keys) {
    for (const replacement of [undefined, null, 7, "s", { z: 1 }, [], "delete"]) {
      const copy = (Array.isArray(value) ? [...value] : { ...value }) as Record<PropertyKey, unknown>
      if (replacement === "delete") delete copy[key]
      else copy[key] = replacement
      out.push(copy)
    }
  }
  return out
}

describe("fast decoding", () => {
  it("has public schemas to check", () => {
    expect(schemas.length).toBeGreaterThan(50)
  })

  it.each(schemas)("agrees with ParseResult on %s", (_, schema) => {
    const slow = Schema.decodeUnknownEither(schema)
    const fast = fastDecoder(schema.ast)
    let samples: Array<unknown> = []
    try {
      samples = FastCheck.sample(Arbitrary.make(schema), { numRuns: 40, seed: 7 })
    } catch {
      // No arbitrary for this schema (a declaration without one): the odd values and their breakages still run.
    }
    const inputs = [...samples, ...samples.flatMap(broken), ...odd, ...odd.flatMap((value) => broken(value))]
    let hits = 0
    for (const input of inputs) {
      const expected = slow(input)
      const value = fast(input)
      if (value === miss) {
        continue
      }
      hits++
      expect(expected._tag).toBe("Right")
      if (expected._tag === "Right") expect(same(value, expected.right)).toBe(true)
    }
    // Input ParseResult accepts is taken by the fast path unless the schema transforms it.
    const valid = samples.filter((input) => slow(input)._tag === "Right")
    if (valid.length > 0 && SchemaAST.encodedAST(schema.ast) === SchemaAST.typeAST(schema.ast)) {
      expect(hits).toBeGreaterThan(0)
    }
  })
})
