/**
 * The vector store's one filter language and its exact-search kernel, shared by
 * every backend (the SQL backends score a cached copy of the collection in JS).
 *
 * Filters are Mongo-style objects over a record's metadata (as Mastra and
 * LangChain users write them):
 * - `{ field: value }` is equality (`$eq`); several keys are ANDed; a field is a
 *   dotted path (`"user.id"`, `"tags.0"`: a number indexes an array);
 * - operators `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte` (number or string
 *   operands), `$in`, `$nin` (arrays), `$exists` (boolean), `$not` (an operator
 *   object or a value) per field; `$and`, `$or`, `$nor` (non-empty arrays of
 *   filters) and `$not` (a filter) at any filter level.
 *
 * Matching: equality is deep JSON equality, and a field holding an array also
 * matches when one of its elements does (`{ tags: "a" }` matches `tags: ["a", "b"]`);
 * `null` matches a missing field; `$ne`/`$nin` are the negations (so they match
 * missing fields); comparisons hold only between two numbers or two strings
 * (UTF-16 order), any element of an array field may satisfy them. A value of
 * another type never fails the query: it just does not match. A malformed
 * filter (unknown operator, `$in` without an array…) is `InvalidInput`.
 */
import { Either } from "effect"
import { InvalidInput } from "./Errors.ts"
import type { JsonObject } from "./Json.ts"
import { isPlainObject } from "./Record.ts"

/** A filter over metadata, as written by callers (see the module comment). */
export type VectorFilter = { readonly [key: string]: unknown }

/** A compiled filter: whether a record's metadata matches. */
export type Predicate = (metadata: JsonObject) => boolean

/** Deep equality of two JSON values (object key order ignored). */
export const jsonEquals = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!jsonEquals(a[i], b[i])) return false
    return true
  }
  if (Array.isArray(b)) return false
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  for (const key of ka) {
    if (!Object.hasOwn(b, key) || !jsonEquals((a as any)[key], (b as any)[key])) return false
  }
  return true
}

/** The value at a dotted path (already split) of a metadata object, or `undefined` when absent. */
export const valueAt = (metadata: unknown, path: ReadonlyArray<string>): unknown => {
  let current: unknown = metadata
  for (const segment of path) {
    if (Array.isArray(current)) {
      if (!/^(0|[1-9]\d*)$/.test(segment)) return undefined
      current = current[Number(segment)]
    } else if (typeof current === "object" && current !== null && Object.hasOwn(current, segment)) {
      current = (current as Record<string, unknown>)[segment]
    } else return undefined
  }
  return current
}

type Condition = (value: unknown) => boolean

const equalsCondition = (operand: unknown): Condition =>
  operand === null
    ? (value) => value === undefined || value === null || (Array.isArray(value) && value.includes(null))
    : typeof operand !== "object"
      ? (value) => value === operand || (Array.isArray(value) && value.includes(operand))
      : (value) => jsonEquals(value, operand) || (Array.isArray(value) && value.some((v) => jsonEquals(v, operand)))

const compareCondition = (op: string, operand: number | string): Condition => {
  const kind = typeof operand
  const test: (v: any) => boolean =
    op === "$gt"
      ? (v) => v > operand
      : op === "$gte"
        ? (v) => v >= operand
        : op === "$lt"
          ? (v) => v < operand
          : (v) => v <= operand
  const one = (v: unknown) => typeof v === kind && test(v)
  return (value) => (Array.isArray(value) ? value.some(one) : one(value))
}

class Malformed {
  constructor(
    readonly path: ReadonlyArray<string | number>,
    readonly rule: string
  ) {}
}

const describe = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : typeof value

const isOperatorObject = (value: unknown, path: ReadonlyArray<string | number>): value is JsonObject => {
  if (!isPlainObject(value)) return false
  const keys = Object.keys(value)
  if (keys.length === 0) return false
  const operators = keys.filter((key) => key.startsWith("$")).length
  if (operators === 0) return false
  if (operators !== keys.length) throw new Malformed(path, "must not mix operators ($…) with field names")
  return true
}

const and = (parts: ReadonlyArray<Condition>): Condition =>
  parts.length === 1 ? parts[0]! : (value) => parts.every((part) => part(value))

/** A field's operator object (`{ $gt: 1, $lt: 5 }`) as one condition. */
const compileOperators = (operators: JsonObject, path: Array<string | number>): Condition => {
  const parts: Array<Condition> = []
  for (const op of Object.keys(operators)) {
    const operand = operators[op]
    const at = [...path, op]
    switch (op) {
      case "$eq":
        parts.push(equalsCondition(operand))
        break
      case "$ne": {
        const eq = equalsCondition(operand)
        parts.push((value) => !eq(value))
        break
      }
      case "$gt":
      case "$gte":
      case "$lt":
      case "$lte":
        if (typeof operand !== "number" && typeof operand !== "string") {
          throw new Malformed(at, `must be a number or a string, got ${describe(operand)}`)
        }
        parts.push(compareCondition(op, operand))
        break
      case "$in":
      case "$nin": {
        if (!Array.isArray(operand)) throw new Malformed(at, `must be an array, got ${describe(operand)}`)
        const eqs = operand.map(equalsCondition)
        const some = (value: unknown) => eqs.some((eq) => eq(value))
        parts.push(op === "$in" ? some : (value) => !some(value))
        break
      }
      case "$exists":
        if (typeof operand !== "boolean") throw new Malformed(at, `must be a boolean, got ${describe(operand)}`)
        parts.push(operand ? (value) => value !== undefined : (value) => value === undefined)
        break
      case "$not": {
        const inner = isOperatorObject(operand, at) ? compileOperators(operand, at) : equalsCondition(operand)
        parts.push((value) => !inner(value))
        break
      }
      default:
        throw new Malformed(at, `is not a field operator ($eq $ne $gt $gte $lt $lte $in $nin $exists $not)`)
    }
  }
  return and(parts)
}

const compileFilter = (filter: unknown, path: Array<string | number>): Predicate => {
  if (!isPlainObject(filter)) throw new Malformed(path, `must be a filter object, got ${describe(filter)}`)
  const parts: Array<Predicate> = []
  for (const key of Object.keys(filter)) {
    const value = filter[key]
    const at = [...path, key]
    if (key === "$and" || key === "$or" || key === "$nor") {
      if (!Array.isArray(value) || value.length === 0) {
        throw new Malformed(at, `must be a non-empty array of filters, got ${describe(value)}`)
      }
      const inner = value.map((item, i) => compileFilter(item, [...at, i]))
      parts.push(
        key === "$and"
          ? (m) => inner.every((p) => p(m))
          : key === "$or"
            ? (m) => inner.some((p) => p(m))
            : (m) => !inner.some((p) => p(m))
      )
    } else if (key === "$not") {
      const inner = compileFilter(value, at)
      parts.push((m) => !inner(m))
    } else if (key.startsWith("$")) {
      throw new Malformed(at, "is not a filter operator ($and $or $nor $not)")
    } else {
      const segments = key.split(".")
      if (segments.some((segment) => segment.length === 0)) throw new Malformed(at, "must be a dotted path of names")
      const condition = isOperatorObject(value, at) ? compileOperators(value, at) : equalsCondition(value)
      parts.push((m) => condition(valueAt(m, segments)))
    }
  }
  return parts.length === 0 ? () => true : parts.length === 1 ? parts[0]! : (m) => parts.every((p) => p(m))
}

/**
 * Compiles a filter (a JSON object, already copied and checked as JSON) into a predicate, or `InvalidInput`
 * naming the path of the first malformed part (e.g. `options.filter.age.$gt must be a number or a string`).
 */
export const compile = (
  entity: string,
  filter: unknown,
  path: ReadonlyArray<string | number> = ["filter"]
): Either.Either<Predicate, InvalidInput> => {
  try {
    return Either.right(compileFilter(filter, [...path]))
  } catch (error) {
    if (error instanceof Malformed) return Either.left(InvalidInput.single(entity, error.rule, error.path))
    throw error
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The index and its kernel

/** A vector metric: cosine similarity, dot product, or euclidean (scored `1 / (1 + distance)`). */
export type Metric = "cosine" | "dot" | "euclidean"

/** One hit of a scan: the slot of a record in its index, and its score. */
export interface Hit {
  readonly slot: number
  readonly score: number
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * A collection held for exact search: every vector in one contiguous `Float32Array` (slot × dimension), with
 * its norm, id, metadata and content per slot. Writes copy vectors in; a delete moves the last slot into the
 * hole, so slots stay dense. Used as the memory backend's storage and as the SQL backends' per-layer cache.
 */
export class VectorIndex {
  /** Records held. */
  size = 0
  /** Slot → id. */
  readonly ids: Array<string> = []
  /** Slot → metadata (a JSON object; never handed out without a copy). */
  readonly metadata: Array<JsonObject> = []
  /** Slot → content. */
  readonly content: Array<string | undefined> = []
  private readonly slots = new Map<string, number>()
  private data: Float32Array
  private norms: Float64Array

  constructor(
    readonly dimension: number,
    readonly metric: Metric,
    capacity = 16
  ) {
    this.data = new Float32Array(Math.max(1, capacity) * dimension)
    this.norms = new Float64Array(Math.max(1, capacity))
  }

  private grow(needed: number): void {
    const capacity = this.norms.length
    if (needed <= capacity) return
    const next = Math.max(needed, capacity * 2)
    const data = new Float32Array(next * this.dimension)
    data.set(this.data.subarray(0, this.size * this.dimension))
    const norms = new Float64Array(next)
    norms.set(this.norms.subarray(0, this.size))
    this.data = data
    this.norms = norms
  }

  /** Reserves room for `count` records in all (a bulk load sizes the buffer once). */
  reserve(count: number): void {
    this.grow(count)
  }

  /** The slot of `id`, or undefined. */
  slotOf(id: string): number | undefined {
    return this.slots.get(id)
  }

  private slotFor(id: string): number {
    let slot = this.slots.get(id)
    if (slot === undefined) {
      this.grow(this.size + 1)
      slot = this.size++
      this.slots.set(id, slot)
      this.ids[slot] = id
    }
    return slot
  }

  private finish(slot: number, metadata: JsonObject, content: string | undefined): void {
    const offset = slot * this.dimension
    let sum = 0
    for (let i = 0; i < this.dimension; i++) sum += this.data[offset + i]! * this.data[offset + i]!
    this.norms[slot] = this.metric === "euclidean" ? sum : Math.sqrt(sum)
    this.metadata[slot] = metadata
    this.content[slot] = content
  }

  /** Inserts or replaces record `id`; `vector` (of `dimension` values) is copied. */
  set(id: string, vector: Float32Array, metadata: JsonObject, content: string | undefined): void {
    const slot = this.slotFor(id)
    this.data.set(vector, slot * this.dimension)
    this.finish(slot, metadata, content)
  }

  /** As `set`, the vector given as its little-endian float32 bytes (a driver's BLOB/`bytea`), copied. */
  setBytes(id: string, bytes: Uint8Array, metadata: JsonObject, content: string | undefined): void {
    if (bytes.byteLength !== this.dimension * 4) {
      throw new RangeError(`vector "${id}" has ${bytes.byteLength} bytes, expected ${this.dimension * 4}`)
    }
    const slot = this.slotFor(id)
    const offset = slot * this.dimension
    if (littleEndian) {
      new Uint8Array(this.data.buffer, offset * 4, bytes.byteLength).set(bytes)
    } else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      for (let i = 0; i < this.dimension; i++) this.data[offset + i] = view.getFloat32(i * 4, true)
    }
    this.finish(slot, metadata, content)
  }

  /** Removes record `id`; whether it was there. */
  delete(id: string): boolean {
    const slot = this.slots.get(id)
    if (slot === undefined) return false
    this.slots.delete(id)
    const last = --this.size
    if (slot !== last) {
      const lastId = this.ids[last]!
      this.data.copyWithin(slot * this.dimension, last * this.dimension, (last + 1) * this.dimension)
      this.norms[slot] = this.norms[last]!
      this.ids[slot] = lastId
      this.metadata[slot] = this.metadata[last]!
      this.content[slot] = this.content[last]
      this.slots.set(lastId, slot)
    }
    this.ids.length = last
    this.metadata.length = last
    this.content.length = last
    return true
  }

  /** A copy of the vector in `slot`. */
  vector(slot: number): Float32Array {
    return this.data.slice(slot * this.dimension, (slot + 1) * this.dimension)
  }

  /**
   * Exact top-`topK` of the records matching `predicate` (all when undefined) by score against `query`, best
   * first, ties by id (UTF-16 order); records scoring below `minScore` are left out. The filter runs inside
   * the scan, so `topK` is never lost to post-filtering.
   */
  search(query: Float32Array, topK: number, predicate?: Predicate, minScore?: number): Array<Hit> {
    const dim = this.dimension
    const data = this.data
    const norms = this.norms
    const ids = this.ids
    const metadata = this.metadata
    const metric = this.metric
    let qq = 0
    for (let i = 0; i < dim; i++) qq += query[i]! * query[i]!
    const qn = Math.sqrt(qq)
    const floor = minScore ?? -Infinity
    const k = Math.min(topK, this.size)
    // a bounded min-heap of the best k: its root is the worst kept (lowest score, then greatest id)
    const heapScores = new Float64Array(k)
    const heapSlots = new Int32Array(k)
    let count = 0
    const worse = (sa: number, a: number, sb: number, b: number) => sa < sb || (sa === sb && ids[a]! > ids[b]!)
    const siftDown = (i: number) => {
      while (true) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < count && worse(heapScores[l]!, heapSlots[l]!, heapScores[m]!, heapSlots[m]!)) m = l
        if (r < count && worse(heapScores[r]!, heapSlots[r]!, heapScores[m]!, heapSlots[m]!)) m = r
        if (m === i) return
        const s = heapScores[i]!
        const t = heapSlots[i]!
        heapScores[i] = heapScores[m]!
        heapSlots[i] = heapSlots[m]!
        heapScores[m] = s
        heapSlots[m] = t
        i = m
      }
    }
    if (k === 0) return []
    const size = this.size
    const tail = dim & ~3
    for (let slot = 0; slot < size; slot++) {
      if (predicate !== undefined && !predicate(metadata[slot]!)) continue
      const offset = slot * dim
      let a0 = 0
      let a1 = 0
      let a2 = 0
      let a3 = 0
      let j = 0
      for (; j < tail; j += 4) {
        a0 += query[j]! * data[offset + j]!
        a1 += query[j + 1]! * data[offset + j + 1]!
        a2 += query[j + 2]! * data[offset + j + 2]!
        a3 += query[j + 3]! * data[offset + j + 3]!
      }
      for (; j < dim; j++) a0 += query[j]! * data[offset + j]!
      const dot = a0 + a1 + (a2 + a3)
      const score = scoreOf(metric, dot, qq, qn, norms[slot]!)
      if (score < floor) continue
      if (count < k) {
        // sift up
        let i = count++
        while (i > 0) {
          const parent = (i - 1) >> 1
          if (!worse(score, slot, heapScores[parent]!, heapSlots[parent]!)) break
          heapScores[i] = heapScores[parent]!
          heapSlots[i] = heapSlots[parent]!
          i = parent
        }
        heapScores[i] = score
        heapSlots[i] = slot
      } else if (worse(heapScores[0]!, heapSlots[0]!, score, slot)) {
        heapScores[0] = score
        heapSlots[0] = slot
        siftDown(0)
      }
    }
    const hits: Array<Hit> = []
    for (let i = 0; i < count; i++) hits.push({ slot: heapSlots[i]!, score: heapScores[i]! })
    return hits.sort((a, b) => b.score - a.score || (ids[a.slot]! < ids[b.slot]! ? -1 : 1))
  }
}

/**
 * The score of a record from its dot product with the query, the query's squared norm `qq` and norm `qn`, and
 * the record's `norm` (its L2 norm; for euclidean its squared L2 norm): cosine `dot / (|q| |v|)` (0 when either
 * is the zero vector), dot `dot`, euclidean `1 / (1 + |q - v|)` (1 for the same point, towards 0 far away).
 */
export const scoreOf = (metric: Metric, dot: number, qq: number, qn: number, norm: number): number => {
  switch (metric) {
    case "cosine":
      return qn === 0 || norm === 0 ? 0 : dot / (qn * norm)
    case "dot":
      return dot
    case "euclidean":
      return 1 / (1 + Math.sqrt(Math.max(0, qq + norm - 2 * dot)))
  }
}
