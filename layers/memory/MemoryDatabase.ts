/**
 * The state behind the in-memory layers: plain maps shared by every memory
 * store built from one layer, so cascades (session -> conversations ->
 * messages) cross stores as they do in SQL: a child store declares its edge to
 * the parent's table (`onDelete`), and a parent announces what it deleted
 * (`deleted`), as foreign keys do. Each operation is one synchronous
 * step, so it is atomic; rows hold only primitives and JSON text, so a spread
 * copies them in and out.
 */
import { Context, Layer } from "effect"
import type { Keyset, PageQuery } from "../../src/Page.ts"

/** The tables of the in-memory backend, by name, and the cascades declared between them. */
export interface Tables {
  /** The ordered table `name` of a store, created empty on first use (one per name and database). */
  readonly table: <V>(name: string, keyOf: (value: V) => Keyset) => OrderedTable<V>
  /** The plain map `name` of a store, created empty on first use. */
  readonly map: <K, V>(name: string) => Map<K, V>
  /** Declares a child -> parent edge: `cascade(id)` runs in the same step as the deletion of row `id` of `parent`. */
  readonly onDelete: (parent: string, cascade: (id: string) => void) => void
  /** Announces the deletion of row `id` of `table`, running the cascades declared on it. */
  readonly deleted: (table: string, id: string) => void
}

/** Orders keyset tuples column by column (numbers numerically, strings by UTF-16 code units, as SQL `COLLATE BINARY`). */
export const compareKeys = (a: Keyset, b: Keyset): number => {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

/**
 * A map of records by id that also lists them in keyset order (`keyOf`, e.g.
 * `[createdAt, id]`, ending in the id): the order is sorted once and kept until
 * an id is added or removed (a record's key never changes), so a page is a
 * binary search and a walk.
 */
export class OrderedTable<V> {
  private readonly byId = new Map<string, V>()
  private order: Array<Keyset> | undefined

  constructor(private readonly keyOf: (value: V) => Keyset) {}

  get(id: string): V | undefined {
    return this.byId.get(id)
  }

  has(id: string): boolean {
    return this.byId.has(id)
  }

  /** Inserts or replaces the record with `id` (a replacement keeps its `createdAt`). */
  set(id: string, value: V): void {
    if (!this.byId.has(id)) this.order = undefined
    this.byId.set(id, value)
  }

  delete(id: string): boolean {
    const deleted = this.byId.delete(id)
    if (deleted) this.order = undefined
    return deleted
  }

  values(): IterableIterator<V> {
    return this.byId.values()
  }

  /** The records of one keyset page that satisfy `matches`, in the page's order. */
  page(page: PageQuery, matches: (value: V) => boolean): Array<V> {
    const order = (this.order ??= Array.from(this.byId.values(), this.keyOf).sort(compareKeys))
    const asc = page.order === "asc"
    let i = asc ? 0 : order.length - 1
    if (page.after !== undefined) {
      const after = page.after
      let lo = 0
      let hi = order.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (asc ? compareKeys(order[mid]!, after) <= 0 : compareKeys(order[mid]!, after) < 0) lo = mid + 1
        else hi = mid
      }
      i = asc ? lo : lo - 1
    }
    const items: Array<V> = []
    let skip = page.offset
    for (; i >= 0 && i < order.length && items.length < page.limit; i += asc ? 1 : -1) {
      const key = order[i]!
      const value = this.byId.get(key[key.length - 1] as string)!
      if (!matches(value)) continue
      if (skip > 0) skip--
      else items.push(value)
    }
    return items
  }
}

/** The in-memory database shared by the memory stores. */
export class MemoryDatabase extends Context.Tag("effect-agent-stores/MemoryDatabase")<MemoryDatabase, Tables>() {
  /** A fresh, empty database. */
  static readonly layer: Layer.Layer<MemoryDatabase> = Layer.sync(MemoryDatabase, (): Tables => {
    const cascades = new Map<string, Array<(id: string) => void>>()
    const tables = new Map<string, OrderedTable<any>>()
    const maps = new Map<string, Map<any, any>>()
    return {
      table: <V>(name: string, keyOf: (value: V) => Keyset) => {
        let table = tables.get(name)
        if (table === undefined) tables.set(name, (table = new OrderedTable(keyOf)))
        return table as OrderedTable<V>
      },
      map: <K, V>(name: string) => {
        let map = maps.get(name)
        if (map === undefined) maps.set(name, (map = new Map()))
        return map as Map<K, V>
      },
      onDelete: (parent, cascade) => {
        const edges = cascades.get(parent)
        if (edges === undefined) cascades.set(parent, [cascade])
        else edges.push(cascade)
      },
      deleted: (table, id) => {
        for (const cascade of cascades.get(table) ?? []) cascade(id)
      }
    }
  })
}
