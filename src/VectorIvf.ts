/**
 * The approximate path of large collections: an inverted-file index (IVF) over a `VectorIndex`, built in process
 * from the collection itself on every backend alike (the memory backend's index, the SQL backends' scan copies).
 *
 * The records are split into lists around `lists` centroids (about √n, a power of two), trained by k-means in two
 * levels (32 coarse centroids, then as many fine ones under each) on a sample: the records whose ids hash lowest, so
 * the same records give the same index whatever their slots. A search scores the query against every centroid,
 * takes the records of the best `probes` lists (and, under a filter, further lists until it holds enough records
 * matching it, up to all of them), picks candidates by the SIMD kernel's float32 scores and hands them to the exact
 * re-rank. Building it reorders the records list by list, so that a list is read from one stretch of memory. Writes
 * keep the lists up to date (a new or changed record joins its nearest list); the index is built again when the
 * collection has doubled or halved since it was built.
 */
import type { Metric } from "./VectorFilter.ts"

/** Collections of at least this many records are searched through the index; smaller ones are scanned exactly. */
export const approximateFrom = 250_000

/** Lists probed by a search (of `lists`). */
const probes = 48

/** Coarse centroids of the first k-means level. */
const coarse = 32

/** Sample records per list for training, and k-means rounds per level. */
const samplePerList = 32
const rounds = 8

/** What the index reads of the collection and its kernel (see `VectorIndex`). */
export interface IvfHost {
  readonly dimension: number
  /** Floats per row (the dimension rounded up to a multiple of 4). */
  readonly stride: number
  readonly metric: Metric
  readonly size: number
  readonly ids: ReadonlyArray<string>
  /** The rows, at byte 0 of the kernel's memory. */
  readonly rows: Float32Array
  /** Each row's L2 norm (squared for euclidean). */
  readonly norms: Float64Array
  /** Byte offset of `bytes` of scratch space in the kernel's memory (valid until the next write grows the index). */
  readonly scratch: (bytes: number) => number
  readonly memory: () => ArrayBuffer
  readonly dots: (q: number, base: number, rows: number, stride: number, out: number) => void
  readonly dotsAt: (q: number, base: number, slots: number, count: number, stride: number, out: number) => void
  /** Reorders the records: slot `i` gets the record that was in slot `order[i]`. */
  readonly permute: (order: Int32Array) => void
}

/** FNV-1a of a string's UTF-16 code units. */
const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** The `count` slots whose ids hash lowest (ties by id), in that order. */
const sampleOf = (host: IvfHost, count: number): Array<number> => {
  const hashes = new Uint32Array(host.size)
  for (let slot = 0; slot < host.size; slot++) hashes[slot] = hash(host.ids[slot]!)
  const sorted = Uint32Array.from(hashes).sort()
  const cutoff = sorted[Math.min(count, host.size) - 1]!
  const below: Array<number> = []
  for (let slot = 0; slot < host.size; slot++) if (hashes[slot]! <= cutoff) below.push(slot)
  const ids = host.ids
  below.sort((a, b) => hashes[a]! - hashes[b]! || (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0))
  return below.slice(0, count)
}

/**
 * Centroids as float32 rows (`stride` apart) in scratch space for the kernel, each with its assignment bias: the
 * nearest centroid of a vector `x` is the one of highest `x · c + bias`, with `bias = -|c|² / 2` (nearest in L2:
 * euclidean and dot collections) or 0 (cosine: the centroids are unit vectors, so highest cosine).
 */
class Centroids {
  readonly rows: Float32Array
  readonly bias: Float64Array
  constructor(
    readonly count: number,
    readonly stride: number
  ) {
    this.rows = new Float32Array(count * stride)
    this.bias = new Float64Array(count)
  }

  /** Sets centroid `c` from float64 values, normalised for cosine; its bias follows. */
  set(c: number, values: Float64Array, cosine: boolean): void {
    let squared = 0
    for (let i = 0; i < values.length; i++) squared += values[i]! * values[i]!
    const scale = cosine && squared > 0 ? 1 / Math.sqrt(squared) : 1
    const offset = c * this.stride
    let stored = 0
    for (let i = 0; i < values.length; i++) {
      const x = Math.fround(values[i]! * scale)
      this.rows[offset + i] = x
      stored += x * x
    }
    this.bias[c] = cosine ? 0 : -stored / 2
  }
}

/** The index of the highest of `count` scores from `out[from]` on, each plus its bias (ties to the lowest). */
const best = (out: Float32Array, bias: Float64Array, from: number, count: number): number => {
  let found = 0
  let top = -Infinity
  for (let c = 0; c < count; c++) {
    const score = out[from + c]! + bias[from + c]!
    if (score > top) {
      top = score
      found = c
    }
  }
  return found
}

/** The centroid of `centroids` nearest the row in `slot`, with them copied to scratch space for the call. */
const nearestOf = (host: IvfHost, centroids: Centroids, slot: number): number => {
  const bytes = centroids.rows.byteLength
  const at = host.scratch(bytes + centroids.count * 4)
  const memory = host.memory()
  new Float32Array(memory, at, centroids.rows.length).set(centroids.rows)
  host.dots(slot * host.stride * 4, at, centroids.count, host.stride * 4, at + bytes)
  return best(new Float32Array(memory, at + bytes, centroids.count), centroids.bias, 0, centroids.count)
}

/** k-means over the rows in `slots` (spherical for cosine) from the first `k` of them: `k` centroids. */
const kmeans = (host: IvfHost, slots: ReadonlyArray<number>, k: number): Centroids => {
  const { dimension, stride } = host
  const cosine = host.metric === "cosine"
  const centroids = new Centroids(k, stride)
  const sums = Array.from({ length: k }, () => new Float64Array(dimension))
  const counts = new Int32Array(k)
  const addRow = (c: number, slot: number) => {
    const rows = host.rows
    const offset = slot * stride
    const scale = cosine && host.norms[slot]! > 0 ? 1 / host.norms[slot]! : 1
    const sum = sums[c]!
    for (let i = 0; i < dimension; i++) sum[i] += rows[offset + i]! * scale
    counts[c]!++
  }
  for (let c = 0; c < k; c++) {
    sums[c]!.fill(0)
    if (c < slots.length) addRow(c, slots[c]!)
    centroids.set(c, sums[c]!, cosine)
  }
  for (let round = 0; round < rounds; round++) {
    // the centroids of this round, in scratch space for the kernel
    const bytes = centroids.rows.byteLength
    const at = host.scratch(bytes + k * 4)
    const memory = host.memory()
    new Float32Array(memory, at, centroids.rows.length).set(centroids.rows)
    const out = new Float32Array(memory, at + bytes, k)
    for (const sum of sums) sum.fill(0)
    counts.fill(0)
    for (const slot of slots) {
      host.dots(slot * stride * 4, at, k, stride * 4, at + bytes)
      addRow(best(out, centroids.bias, 0, k), slot)
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) continue
      const sum = sums[c]!
      if (!cosine) for (let i = 0; i < dimension; i++) sum[i] /= counts[c]!
      centroids.set(c, sum, cosine)
    }
  }
  return centroids
}

/** The inverted lists of a `VectorIndex` (see the module comment). */
export class Ivf {
  /** The collection's size when the index was built. */
  readonly builtAt: number
  private readonly coarse: Centroids
  /** The fine centroids, `perCoarse` under each coarse one: list `g × perCoarse + j` is fine centroid `j` under `g`. */
  private readonly leaves: Centroids
  private readonly perCoarse: number
  private readonly lists: Array<Array<number>>
  private listOf: Int32Array
  private positionOf: Int32Array
  /** Where the centroids are in scratch space (coarse, then leaves, then a score per leaf); -1 when not there. */
  private residentAt = -1

  constructor(private readonly host: IvfHost) {
    const size = host.size
    this.builtAt = size
    const count = Math.min(4096, Math.max(coarse, 2 ** Math.round(Math.log2(Math.sqrt(size)))))
    this.perCoarse = count / coarse
    const sample = sampleOf(host, samplePerList * count)
    this.coarse = kmeans(host, sample, coarse)
    const groups: Array<Array<number>> = Array.from({ length: coarse }, () => [])
    for (const slot of sample) groups[nearestOf(host, this.coarse, slot)]!.push(slot)
    this.leaves = new Centroids(count, host.stride)
    groups.forEach((group, g) => {
      const fine = kmeans(host, group, this.perCoarse)
      this.leaves.rows.set(fine.rows, g * this.perCoarse * host.stride)
      this.leaves.bias.set(fine.bias, g * this.perCoarse)
    })
    // every record's list, then the records reordered list by list: a list's rows are read from one stretch of
    // memory (gathered from all over, they took about 5x as long on this project's machine)
    const assigned = new Int32Array(size)
    for (let slot = 0; slot < size; slot++) assigned[slot] = this.listFor(slot * host.stride * 4)
    const starts = new Int32Array(count + 1)
    for (let slot = 0; slot < size; slot++) starts[assigned[slot]! + 1]!++
    for (let list = 0; list < count; list++) starts[list + 1]! += starts[list]!
    const order = new Int32Array(size)
    const next = starts.slice(0, count)
    for (let slot = 0; slot < size; slot++) order[next[assigned[slot]!]!++] = slot
    host.permute(order)
    this.lists = []
    this.listOf = new Int32Array(Math.max(16, size))
    this.positionOf = new Int32Array(this.listOf.length)
    for (let list = 0; list < count; list++) {
      const members: Array<number> = []
      for (let slot = starts[list]!; slot < starts[list + 1]!; slot++) {
        this.listOf[slot] = list
        this.positionOf[slot] = members.length
        members.push(slot)
      }
      this.lists.push(members)
    }
  }

  /** The byte offset of the centroids in scratch space with `extra` bytes free after them (copied there if moved). */
  private resident(extra: number): number {
    const { coarse: c, leaves } = this
    const at = this.host.scratch(c.rows.byteLength + leaves.rows.byteLength + leaves.count * 4 + extra)
    if (at !== this.residentAt) {
      const memory = this.host.memory()
      new Float32Array(memory, at, c.rows.length).set(c.rows)
      new Float32Array(memory, at + c.rows.byteLength, leaves.rows.length).set(leaves.rows)
      this.residentAt = at
    }
    return at
  }

  /** The list of the row at byte offset `q`: its nearest coarse centroid, then the nearest fine one under that. */
  private listFor(q: number): number {
    const at = this.resident(0)
    const strideBytes = this.host.stride * 4
    const leavesAt = at + this.coarse.rows.byteLength
    const outAt = leavesAt + this.leaves.rows.byteLength
    const out = new Float32Array(this.host.memory(), outAt, this.leaves.count)
    this.host.dots(q, at, coarse, strideBytes, outAt)
    const g = best(out, this.coarse.bias, 0, coarse)
    const first = g * this.perCoarse
    this.host.dots(q, leavesAt + first * strideBytes, this.perCoarse, strideBytes, outAt + first * 4)
    return first + best(out, this.leaves.bias, first, this.perCoarse)
  }

  /** Adds the record in `slot` (new, or with a changed vector) to its list. */
  place(slot: number): void {
    if (slot >= this.listOf.length) {
      const listOf = new Int32Array(Math.max(slot + 1, this.listOf.length * 2)).fill(-1)
      listOf.set(this.listOf)
      const positionOf = new Int32Array(listOf.length)
      positionOf.set(this.positionOf)
      this.listOf = listOf
      this.positionOf = positionOf
    }
    if (this.listOf[slot]! >= 0) this.remove(slot)
    const list = this.listFor(slot * this.host.stride * 4)
    this.listOf[slot] = list
    this.positionOf[slot] = this.lists[list]!.length
    this.lists[list]!.push(slot)
  }

  /** Removes the record in `slot` from its list. */
  remove(slot: number): void {
    const list = this.lists[this.listOf[slot]!]!
    const position = this.positionOf[slot]!
    const last = list.pop()!
    if (last !== slot) {
      list[position] = last
      this.positionOf[last] = position
    }
    this.listOf[slot] = -1
  }

  /** Renames the record in slot `from` (in a list) to slot `to` (a delete moved it there). */
  move(from: number, to: number): void {
    const list = this.listOf[from]!
    this.lists[list]![this.positionOf[from]!] = to
    this.listOf[to] = list
    this.positionOf[to] = this.positionOf[from]!
    this.listOf[from] = -1
  }

  /**
   * Candidates for the query at byte offset `q` (padded to `stride`): the slots of the best `probes` lists, and of
   * further lists until at least `wanted` of the slots taken match `accept`, with their float32 dot products.
   */
  candidates(
    q: number,
    wanted: number,
    accept: ((slot: number) => boolean) | undefined
  ): { readonly slots: Int32Array; readonly dots: Float32Array } {
    const host = this.host
    const count = this.lists.length
    const strideBytes = host.stride * 4
    const at = this.resident(host.size * 8)
    const leavesAt = at + this.coarse.rows.byteLength
    const outAt = leavesAt + this.leaves.rows.byteLength
    host.dots(q, leavesAt, count, strideBytes, outAt)
    const memory = host.memory()
    const out = new Float32Array(memory, outAt, count)
    const bias = this.leaves.bias
    const scores = new Float64Array(count)
    for (let c = 0; c < count; c++) scores[c] = out[c]! + bias[c]!
    const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b)
    const slotsAt = outAt + count * 4
    const slots = new Int32Array(memory, slotsAt, host.size)
    let taken = 0
    for (let i = 0; i < count && (i < probes || taken < wanted); i++) {
      for (const slot of this.lists[order[i]!]!) if (accept === undefined || accept(slot)) slots[taken++] = slot
    }
    const dotsAt = slotsAt + host.size * 4
    host.dotsAt(q, 0, slotsAt, taken, strideBytes, dotsAt)
    return { slots: slots.subarray(0, taken), dots: new Float32Array(memory, dotsAt, taken) }
  }
}
