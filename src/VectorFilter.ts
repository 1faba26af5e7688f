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
 * Paths follow MongoDB's rule: a name applied to an array applies to each of
 * its elements that is an object (`"items.sku"` reaches every `sku` of
 * `items: [{ sku: "x" }, { sku: "y" }]`), a number applied to an array indexes
 * it and also names that key in its object elements, and an array nested in an
 * array is not entered by a name. A path thus reaches any number of values, and
 * a field condition matches when one of them does (`$ne`, `$nin` and `$not`
 * match when none does).
 *
 * Matching a value: equality is deep JSON equality, and a value that is an array
 * also matches when one of its elements does (`{ tags: "a" }` matches `tags: ["a", "b"]`);
 * `null` matches a path that reaches `null` or is missing on some branch (a name
 * looked up in an object without it or in a value that is not an object, an
 * index past an array's end:
 * `{ "items.sku": null }` matches `items: [{ sku: "x" }, {}]`), while `$exists:
 * false` matches only a path that reaches no value; `$ne`/`$nin` are the
 * negations (so they match missing fields); comparisons hold only between two numbers or two
 * strings (UTF-16 order), any element of an array value may satisfy them. A value
 * of another type never fails the query: it just does not match. A malformed
 * filter (unknown operator, `$in` without an array…) is `InvalidInput`.
 */
import { Either } from "effect"
import { InvalidInput } from "./Errors.ts"
import type { JsonObject } from "./Json.ts"
import { isPlainObject } from "./Record.ts"
import { approximateFrom as defaultApproximateFrom, Ivf } from "./VectorIvf.ts"

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

const isIndex = (segment: string): boolean => /^(0|[1-9]\d*)$/.test(segment)

/** What a dotted path reaches in a record: its values, and whether a name was missing on some branch of it. */
interface Reached {
  readonly values: Array<unknown>
  missing: boolean
}

/**
 * Adds to `reached` every value the dotted path (already split) reaches from `value`, from segment `at` on, by
 * MongoDB's rule (see the module comment); marks it `missing` where a name is looked up in an object without it or
 * in a value that is not an object, or an index past an array's end.
 */
const reach = (value: unknown, path: ReadonlyArray<string>, reached: Reached, at = 0): Reached => {
  if (at === path.length) {
    reached.values.push(value)
    return reached
  }
  const segment = path[at]!
  if (Array.isArray(value)) {
    const index = isIndex(segment) ? Number(segment) : -1
    if (index >= value.length) reached.missing = true
    else if (index >= 0) reach(value[index], path, reached, at + 1)
    for (const element of value) {
      if (typeof element === "object" && element !== null && !Array.isArray(element)) {
        if (index < 0 || Object.hasOwn(element, segment)) reach(element, path, reached, at)
      } else if (index < 0 && !Array.isArray(element)) reached.missing = true
    }
  } else if (typeof value === "object" && value !== null && Object.hasOwn(value, segment)) {
    reach((value as Record<string, unknown>)[segment], path, reached, at + 1)
  } else reached.missing = true
  return reached
}

/** A field's condition over what its path reaches. */
type Condition = (reached: Reached) => boolean

/** Whether one of `values`, or one element of one that is an array, passes `test`. */
const anyValue = ({ values }: Reached, test: (value: unknown) => boolean): boolean => {
  for (const value of values) {
    if (test(value)) return true
    if (Array.isArray(value)) for (const element of value) if (test(element)) return true
  }
  return false
}

const equalsCondition = (operand: unknown): Condition => {
  if (operand === null) return (reached) => reached.missing || anyValue(reached, (value) => value === null)
  if (typeof operand !== "object") return (values) => anyValue(values, (value) => value === operand)
  return (values) => anyValue(values, (value) => jsonEquals(value, operand))
}

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
  return (values) => anyValue(values, one)
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
  parts.length === 1 ? parts[0]! : (values) => parts.every((part) => part(values))

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
        parts.push((values) => !eq(values))
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
        const some = (reached: Reached) => eqs.some((eq) => eq(reached))
        parts.push(op === "$in" ? some : (values) => !some(values))
        break
      }
      case "$exists":
        if (typeof operand !== "boolean") throw new Malformed(at, `must be a boolean, got ${describe(operand)}`)
        parts.push(operand ? (reached) => reached.values.length > 0 : (reached) => reached.values.length === 0)
        break
      case "$not": {
        const inner = isOperatorObject(operand, at) ? compileOperators(operand, at) : equalsCondition(operand)
        parts.push((values) => !inner(values))
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
      // gathered afresh for each record (a predicate runs synchronously, never re-entered)
      const reached: Reached = { values: [], missing: false }
      parts.push((m) => {
        reached.values.length = 0
        reached.missing = false
        return condition(reach(m, segments, reached))
      })
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

const wasm = (globalThis as { readonly WebAssembly?: WasmApi }).WebAssembly

/**
 * A WebAssembly SIMD kernel (267 bytes, assembled from the text below), float32 dot products four lanes at a time:
 * `dots(q, base, rows, stride, out)` of the query at byte offset `q` with each of `rows` rows (`stride` bytes apart, a
 * multiple of 16, from `base`), `dotsAt(q, base, slots, count, stride, out)` with the rows whose numbers are the
 * `count` int32 at `slots`; each writes a float32 per row to `out`. Its float32 sums only choose candidates: the
 * results are re-scored exactly in float64 (see `VectorIndex.search`). Undefined where WebAssembly SIMD is
 * unavailable.
 *
 * ```wat
 * (func $dot (param $q i32) (param $row i32) (param $stride i32) (result f32) (local $j i32) (local $acc v128)
 *   (loop $cols
 *     (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (v128.load (i32.add (local.get $q) (local.get $j)))
 *       (v128.load (i32.add (local.get $row) (local.get $j))))))
 *     (br_if $cols (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $stride))))
 *   (f32.add (f32.add (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
 *     (f32x4.extract_lane 2 (local.get $acc))) (f32x4.extract_lane 3 (local.get $acc))))
 * (func (export "dots") (param $q i32) (param $base i32) (param $rows i32) (param $stride i32) (param $out i32)
 *   (local $i i32)
 *   (block $done (loop $next (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
 *     (f32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (call $dot (local.get $q)
 *       (i32.add (local.get $base) (i32.mul (local.get $i) (local.get $stride))) (local.get $stride)))
 *     (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next))))
 * (func (export "dotsAt") (param $q i32) (param $base i32) (param $slots i32) (param $count i32) (param $stride i32)
 *   (param $out i32) (local $i i32)
 *   (block $done (loop $next (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
 *     (f32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (call $dot (local.get $q)
 *       (i32.add (local.get $base) (i32.mul (i32.load (i32.add (local.get $slots) (i32.shl (local.get $i)
 *         (i32.const 2)))) (local.get $stride))) (local.get $stride)))
 *     (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next))))
 * ```
 * (in a module importing `env.memory`; `wat2wasm` gives these bytes).
 */
const kernel: object | undefined = (() => {
  try {
    return new wasm!.Module(
      Buffer.from(
        "AGFzbQEAAAABGQNgA39/fwF9YAV/f39/fwBgBn9/f39/fwACDwEDZW52Bm1lbW9yeQIAAQMEAwABAgcRAgRkb3RzAAEGZG90c0F0AAIKuwEDSAIB" +
          "fwF7A0AgBCAAIANq/QAEACABIANq/QAEAP3mAf3kASEEIANBEGoiAyACSQ0ACyAE/R8AIAT9HwGSIAT9HwKSIAT9HwOSCzMBAX8CQANAIAUg" +
          "Ak8NASAEIAVBAnRqIAAgASAFIANsaiADEAA4AgAgBUEBaiEFDAALCws8AQF/AkADQCAGIANPDQEgBSAGQQJ0aiAAIAEgAiAGQQJ0aigCACAE" +
          "bGogBBAAOAIAIAZBAWohBgwACwsL",
        "base64"
      )
    )
  } catch {
    return undefined
  }
})()

/** The part of the WebAssembly API used here (the compiler's `lib` has no DOM types). */
interface WasmApi {
  readonly Module: new (bytes: Uint8Array) => object
  readonly Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> }
  readonly Memory: new (descriptor: { readonly initial: number }) => WasmMemory
}

/** A WebAssembly memory. */
interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}

type Dots = (q: number, base: number, rows: number, stride: number, out: number) => void
type DotsAt = (q: number, base: number, slots: number, count: number, stride: number, out: number) => void

/** Candidates chosen by the float32 kernel per result asked, before the exact re-rank (plus `extraCandidates`). */
const candidateFactor = 2
const extraCandidates = 16

/** The best `k` of pushed (score, slot) pairs: highest score first, ties by id (UTF-16 order). */
class TopK {
  private readonly scores: Float64Array
  private readonly slots: Int32Array
  count = 0
  constructor(
    private readonly k: number,
    private readonly ids: ReadonlyArray<string>
  ) {
    this.scores = new Float64Array(k)
    this.slots = new Int32Array(k)
  }
  private worse(sa: number, a: number, sb: number, b: number): boolean {
    return sa < sb || (sa === sb && this.ids[a]! > this.ids[b]!)
  }
  /** Offers a record; kept when among the best `k` so far (a min-heap whose root is the worst kept). */
  push(score: number, slot: number): void {
    const scores = this.scores
    const slots = this.slots
    if (this.count < this.k) {
      let i = this.count++
      while (i > 0) {
        const parent = (i - 1) >> 1
        if (!this.worse(score, slot, scores[parent]!, slots[parent]!)) break
        scores[i] = scores[parent]!
        slots[i] = slots[parent]!
        i = parent
      }
      scores[i] = score
      slots[i] = slot
      return
    }
    if (!this.worse(scores[0]!, slots[0]!, score, slot)) return
    let i = 0
    while (true) {
      const l = 2 * i + 1
      const r = l + 1
      let m = -1
      let ms = score
      let mslot = slot
      if (l < this.count && this.worse(scores[l]!, slots[l]!, ms, mslot)) {
        m = l
        ms = scores[l]!
        mslot = slots[l]!
      }
      if (r < this.count && this.worse(scores[r]!, slots[r]!, ms, mslot)) m = r
      if (m < 0) break
      scores[i] = scores[m]!
      slots[i] = slots[m]!
      i = m
    }
    scores[i] = score
    slots[i] = slot
  }
  /** The kept records, best first. */
  hits(): Array<Hit> {
    const hits: Array<Hit> = []
    for (let i = 0; i < this.count; i++) hits.push({ slot: this.slots[i]!, score: this.scores[i]! })
    const ids = this.ids
    return hits.sort((a, b) => b.score - a.score || (ids[a.slot]! < ids[b.slot]! ? -1 : 1))
  }
}

/**
 * A collection held for exact search: every vector in one contiguous `Float32Array` (slot × stride, the dimension
 * rounded up to a multiple of 4, zero-padded), with its norm, id, metadata and content per slot. The vectors live
 * in a WebAssembly memory when SIMD is available (growing it never moves them). Writes copy vectors in; a delete
 * moves the last slot into the hole, so slots stay dense. Used as the memory backend's storage and as the SQL
 * backends' per-layer cache.
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
  /** Floats per row: the dimension rounded up to a multiple of 4. */
  private readonly stride: number
  private capacity = 0
  private data: Float32Array = new Float32Array(0)
  private norms: Float64Array = new Float64Array(0)
  private readonly memory: WasmMemory | undefined
  private readonly dots: Dots | undefined
  private readonly dotsAt: DotsAt | undefined
  /** The approximate path's lists, once a search of a collection of `approximateFrom` records or more built them. */
  private ivf: Ivf | undefined

  constructor(
    readonly dimension: number,
    readonly metric: Metric,
    capacity = 16,
    /** The size from which searches take the approximate path (see `VectorIvf.ts`). */
    readonly approximateFrom = defaultApproximateFrom
  ) {
    this.stride = Math.ceil(dimension / 4) * 4
    if (kernel !== undefined) {
      try {
        this.memory = new wasm!.Memory({ initial: 1 })
        const { exports } = new wasm!.Instance(kernel, { env: { memory: this.memory } })
        this.dots = exports["dots"] as Dots
        this.dotsAt = exports["dotsAt"] as DotsAt
      } catch {
        this.memory = undefined
        this.dots = undefined
        this.dotsAt = undefined
      }
    }
    this.grow(Math.max(1, capacity))
  }

  private grow(needed: number): void {
    if (needed <= this.capacity) return
    const capacity = Math.max(needed, this.capacity * 2)
    const floats = capacity * this.stride
    if (this.memory !== undefined) {
      // rows from byte 0, then scratch space for a search: the query (one row) and a float32 per row
      const bytes = floats * 4 + this.stride * 4 + capacity * 4
      const pages = Math.ceil(bytes / 65536)
      const have = this.memory.buffer.byteLength / 65536
      if (pages > have) this.memory.grow(pages - have)
      this.data = new Float32Array(this.memory.buffer, 0, floats)
    } else {
      const data = new Float32Array(floats)
      data.set(this.data)
      this.data = data
    }
    const norms = new Float64Array(capacity)
    norms.set(this.norms)
    this.norms = norms
    this.capacity = capacity
  }

  /**
   * Byte offset of `bytes` of scratch space for the approximate path, after the rows and a search's own scratch
   * space (the same offset until the index grows).
   */
  private scratch(bytes: number): number {
    const memory = this.memory!
    const at = Math.ceil((this.capacity * this.stride * 4 + this.stride * 4 + this.capacity * 4) / 16) * 16
    const pages = Math.ceil((at + bytes) / 65536)
    const have = memory.buffer.byteLength / 65536
    if (pages > have) {
      memory.grow(pages - have)
      this.data = new Float32Array(memory.buffer, 0, this.capacity * this.stride)
    }
    return at
  }

  /** The approximate path's lists, built now when there are none or the collection doubled or halved since. */
  private lists(): Ivf {
    const built = this.ivf
    if (built !== undefined && this.size < 2 * built.builtAt && 2 * this.size > built.builtAt) return built
    const index = this
    this.ivf = new Ivf({
      dimension: this.dimension,
      stride: this.stride,
      metric: this.metric,
      get size() {
        return index.size
      },
      ids: this.ids,
      get rows() {
        return index.data
      },
      get norms() {
        return index.norms
      },
      scratch: (bytes) => this.scratch(bytes),
      memory: () => this.memory!.buffer,
      dots: this.dots!,
      dotsAt: this.dotsAt!,
      permute: (order) => this.permute(order)
    })
    return this.ivf
  }

  /** Reorders the records: slot `i` gets the record that was in slot `order[i]` (rows moved in place, cycle by cycle). */
  private permute(order: Int32Array): void {
    const size = this.size
    const stride = this.stride
    const data = this.data
    const row = new Float32Array(stride)
    const done = new Uint8Array(size)
    for (let start = 0; start < size; start++) {
      if (done[start] === 1) continue
      row.set(data.subarray(start * stride, (start + 1) * stride))
      let slot = start
      while (true) {
        done[slot] = 1
        const from = order[slot]!
        if (from === start) {
          data.set(row, slot * stride)
          break
        }
        data.copyWithin(slot * stride, from * stride, (from + 1) * stride)
        slot = from
      }
    }
    const ids = this.ids.slice()
    const metadata = this.metadata.slice()
    const content = this.content.slice()
    const norms = this.norms.slice(0, size)
    for (let slot = 0; slot < size; slot++) {
      const from = order[slot]!
      this.ids[slot] = ids[from]!
      this.metadata[slot] = metadata[from]!
      this.content[slot] = content[from]
      this.norms[slot] = norms[from]!
      this.slots.set(ids[from]!, slot)
    }
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
    this.normsOf(slot, slot + 1)
    this.ivf?.place(slot)
    this.metadata[slot] = metadata
    this.content[slot] = content
  }

  /** Inserts or replaces record `id`; `vector` (of `dimension` values) is copied. */
  set(id: string, vector: Float32Array, metadata: JsonObject, content: string | undefined): void {
    const slot = this.slotFor(id)
    this.data.set(vector, slot * this.stride)
    this.finish(slot, metadata, content)
  }

  /** As `set`, the vector given as its little-endian float32 bytes (a driver's BLOB/`bytea`), copied. */
  setBytes(id: string, bytes: Uint8Array, metadata: JsonObject, content: string | undefined): void {
    if (bytes.byteLength !== this.dimension * 4) {
      throw new RangeError(`vector "${id}" has ${bytes.byteLength} bytes, expected ${this.dimension * 4}`)
    }
    const slot = this.slotFor(id)
    this.copyIn(slot, bytes)
    this.finish(slot, metadata, content)
  }

  /**
   * Bulk load, step 1: makes this (empty) index hold `ids.length` records, slot `i` holding `ids[i]`, `metadata[i]`
   * and `content[i]`, their vectors still zero; step 2, `loadVectors` for every slot; step 3, `loaded`.
   */
  loadRecords(
    ids: ReadonlyArray<string>,
    metadata: ReadonlyArray<JsonObject>,
    content: ReadonlyArray<string | undefined>
  ): void {
    const size = ids.length
    this.grow(size)
    this.ivf = undefined
    for (let slot = 0; slot < size; slot++) {
      this.slots.set(ids[slot]!, slot)
      this.ids[slot] = ids[slot]!
      this.metadata[slot] = metadata[slot]!
      this.content[slot] = content[slot]
    }
    this.size = size
  }

  /** Bulk load, step 2: copies the little-endian float32 vectors in `bytes` into consecutive slots from `first` on. */
  loadVectors(first: number, bytes: Uint8Array): void {
    const rowBytes = this.dimension * 4
    if (this.stride === this.dimension && littleEndian) {
      new Uint8Array(this.data.buffer, this.data.byteOffset + first * rowBytes, bytes.byteLength).set(bytes)
    } else {
      const count = bytes.byteLength / rowBytes
      for (let i = 0; i < count; i++) this.copyIn(first + i, bytes.subarray(i * rowBytes, (i + 1) * rowBytes))
    }
  }

  /** Bulk load, step 3: computes every record's norm. */
  loaded(): void {
    this.normsOf(0, this.size)
  }

  /** Computes the norms of slots `from` to `to` (one tight loop: a bulk load computes them all at once). */
  private normsOf(from: number, to: number): void {
    const data = this.data
    const norms = this.norms
    const stride = this.stride
    const dimension = this.dimension
    const squared = this.metric === "euclidean"
    for (let slot = from; slot < to; slot++) {
      const offset = slot * stride
      let s0 = 0
      let s1 = 0
      let s2 = 0
      let s3 = 0
      let i = 0
      for (; i + 4 <= dimension; i += 4) {
        const a = data[offset + i]!
        const b = data[offset + i + 1]!
        const c = data[offset + i + 2]!
        const d = data[offset + i + 3]!
        s0 += a * a
        s1 += b * b
        s2 += c * c
        s3 += d * d
      }
      for (; i < dimension; i++) s0 += data[offset + i]! * data[offset + i]!
      const sum = s0 + s1 + (s2 + s3)
      norms[slot] = squared ? sum : Math.sqrt(sum)
    }
  }

  /** Copies one vector's little-endian float32 bytes into `slot`. */
  private copyIn(slot: number, bytes: Uint8Array): void {
    const offset = slot * this.stride
    if (littleEndian) {
      new Uint8Array(this.data.buffer, this.data.byteOffset + offset * 4, bytes.byteLength).set(bytes)
    } else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      for (let i = 0; i < this.dimension; i++) this.data[offset + i] = view.getFloat32(i * 4, true)
    }
  }

  /** Removes record `id`; whether it was there. */
  delete(id: string): boolean {
    const slot = this.slots.get(id)
    if (slot === undefined) return false
    this.slots.delete(id)
    const last = --this.size
    this.ivf?.remove(slot)
    if (slot !== last) {
      this.ivf?.move(last, slot)
      const lastId = this.ids[last]!
      this.data.copyWithin(slot * this.stride, last * this.stride, (last + 1) * this.stride)
      this.norms[slot] = this.norms[last]!
      this.ids[slot] = lastId
      this.metadata[slot] = this.metadata[last]!
      this.content[slot] = this.content[last]
      this.slots.set(lastId, slot)
    }
    this.data.fill(0, last * this.stride, (last + 1) * this.stride)
    this.ids.length = last
    this.metadata.length = last
    this.content.length = last
    return true
  }

  /** A copy of the vector in `slot`. */
  vector(slot: number): Float32Array {
    return this.data.slice(slot * this.stride, slot * this.stride + this.dimension)
  }

  /** The exact (float64) dot product of `query` with the vector in `slot`. */
  private dot(query: Float32Array, slot: number): number {
    const data = this.data
    const dim = this.dimension
    const offset = slot * this.stride
    const tail = dim & ~3
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
    return a0 + a1 + (a2 + a3)
  }

  /**
   * Exact top-`topK` of the records matching `predicate` (all when undefined) by score against `query`, best
   * first, ties by id (UTF-16 order); records scoring below `minScore` are left out. The filter runs inside
   * the scan, so `topK` is never lost to post-filtering. On large scans the SIMD kernel's float32 scores pick
   * `2 × topK + 16` candidates, which are then scored exactly (float64), as every score returned is.
   */
  search(query: Float32Array, topK: number, predicate?: Predicate, minScore?: number): Array<Hit> {
    const size = this.size
    const k = Math.min(topK, size)
    if (k === 0) return []
    const metric = this.metric
    const norms = this.norms
    let qq = 0
    for (let i = 0; i < this.dimension; i++) qq += query[i]! * query[i]!
    const qn = Math.sqrt(qq)
    const floor = minScore ?? -Infinity
    const candidates = candidateFactor * k + extraCandidates
    if (this.dotsAt !== undefined && size >= this.approximateFrom) {
      // the approximate path: the lists' candidates, by the kernel's float32 scores, then the exact re-rank
      const queryAt = this.placeQuery(query)
      const metadata = this.metadata
      const accept = predicate === undefined ? undefined : (slot: number) => predicate(metadata[slot]!)
      const found = this.lists().candidates(queryAt, predicate === undefined ? 0 : candidates, accept)
      if (found.slots.length === 0) return []
      const top = new TopK(Math.min(candidates, found.slots.length), this.ids)
      for (let i = 0; i < found.slots.length; i++) {
        const slot = found.slots[i]!
        top.push(scoreOf(metric, found.dots[i]!, qq, qn, norms[slot]!), slot)
      }
      return this.exact(
        query,
        top.hits().map((hit) => hit.slot),
        k,
        qq,
        qn,
        floor
      )
    }
    // below the threshold (again): the lists are not needed any more
    this.ivf = undefined
    let matching: Array<number> | undefined
    if (predicate !== undefined) {
      matching = []
      const metadata = this.metadata
      for (let slot = 0; slot < size; slot++) if (predicate(metadata[slot]!)) matching.push(slot)
      if (matching.length === 0) return []
    }
    const scanned = matching === undefined ? size : matching.length
    if (this.dots === undefined || scanned < 4 * candidates || scanned * 8 < size) {
      return this.exact(query, matching, k, qq, qn, floor)
    }
    // float32 SIMD pass over every row, then the exact re-rank of the best candidates
    const queryAt = this.placeQuery(query)
    const outAt = queryAt + this.stride * 4
    this.dots(queryAt, 0, size, this.stride * 4, outAt)
    const approx = new Float32Array(this.memory!.buffer, outAt, size)
    const top = new TopK(Math.min(candidates, scanned), this.ids)
    if (matching === undefined) {
      for (let slot = 0; slot < size; slot++) top.push(scoreOf(metric, approx[slot]!, qq, qn, norms[slot]!), slot)
    } else {
      for (const slot of matching) top.push(scoreOf(metric, approx[slot]!, qq, qn, norms[slot]!), slot)
    }
    return this.exact(
      query,
      top.hits().map((hit) => hit.slot),
      k,
      qq,
      qn,
      floor
    )
  }

  /** Copies `query`, zero-padded to the stride, to the kernel's memory after the rows; its byte offset. */
  private placeQuery(query: Float32Array): number {
    const queryAt = this.capacity * this.stride * 4
    const padded = new Float32Array(this.memory!.buffer, queryAt, this.stride)
    padded.fill(0)
    padded.set(query)
    return queryAt
  }

  /**
   * The exact (float64) top `keep` of the records in `slots` (every record when undefined) scoring at least `floor`
   * against `query` (squared norm `qq`, norm `qn`), best first, ties by id.
   */
  private exact(
    query: Float32Array,
    slots: ArrayLike<number> | undefined,
    keep: number,
    qq: number,
    qn: number,
    floor: number
  ): Array<Hit> {
    const top = new TopK(keep, this.ids)
    const count = slots === undefined ? this.size : slots.length
    const norms = this.norms
    for (let i = 0; i < count; i++) {
      const slot = slots === undefined ? i : slots[i]!
      const score = scoreOf(this.metric, this.dot(query, slot), qq, qn, norms[slot]!)
      if (score >= floor) top.push(score, slot)
    }
    return top.hits()
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
