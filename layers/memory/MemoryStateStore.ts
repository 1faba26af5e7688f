/** `StateStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import type { PageQuery } from "../../src/Page.ts"
import { makeStateStore, type StateDriver, type StateRow, StateStore } from "../../src/State.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

/** A UTF-16 code unit's rank in code point order (surrogates sort above U+E000–U+FFFF, as in UTF-8). */
const rank = (unit: number): number => (unit >= 0xe000 ? unit - 0x800 : unit >= 0xd800 ? unit + 0x2000 : unit)

/** Compares strings by code point, as SQLite (`BINARY`) and PostgreSQL (`COLLATE "C"`, UTF-8) order keys. */
export const compareCodePoints = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return rank(x) - rank(y)
  }
  return a.length - b.length
}

/** The index of the first key of `keys` (sorted) that is after `key` (or at it, when `inclusive`). */
const search = (keys: ReadonlyArray<string>, key: string, inclusive: boolean): number => {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const c = compareCodePoints(keys[mid]!, key)
    if (c < 0 || (c === 0 && !inclusive)) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** A `StateDriver` over the shared in-memory maps: entries by key, and their keys sorted on demand. */
export const driver = Effect.map(MemoryDatabase, (db): StateDriver => {
  const entries = db.map<string, StateRow>("state_entries")
  // The keys in order, kept beside the entries (every driver on this database shares it) until a key is added or removed.
  const order = db.map<"keys", Array<string>>("state_entries_order")
  const store = (row: StateRow): StateRow => {
    if (!entries.has(row.key)) order.delete("keys")
    entries.set(row.key, row)
    return { ...row }
  }
  const created = (key: string, value: string, now: number): StateRow =>
    store({ key, value, version: 1, createdAt: now, updatedAt: now })
  const next = (current: StateRow, value: string, now: number): StateRow =>
    store({ ...current, value, version: current.version + 1, updatedAt: Math.max(now, current.updatedAt) })
  const list = (prefix: string | undefined, page: PageQuery): Array<StateRow> => {
    let keys = order.get("keys")
    if (keys === undefined) order.set("keys", (keys = [...entries.keys()].sort(compareCodePoints)))
    const asc = page.order === "asc"
    const after = page.after?.[0] as string | undefined
    let i: number
    if (asc) {
      i = after === undefined ? 0 : search(keys, after, false)
      if (prefix !== undefined && (after === undefined || compareCodePoints(after, prefix) < 0)) {
        i = search(keys, prefix, true)
      }
    } else {
      i = (after === undefined ? keys.length : search(keys, after, true)) - 1
    }
    const rows: Array<StateRow> = []
    let skip = page.offset
    for (; i >= 0 && i < keys.length && rows.length < page.limit; i += asc ? 1 : -1) {
      const key = keys[i]!
      if (prefix !== undefined && !key.startsWith(prefix)) {
        if (asc ? compareCodePoints(key, prefix) > 0 : compareCodePoints(key, prefix) < 0) break
        continue
      }
      if (skip > 0) skip--
      else rows.push({ ...entries.get(key)! })
    }
    return rows
  }
  return {
    get: (key) =>
      Effect.sync(() => {
        const row = entries.get(key)
        return row && { ...row }
      }),
    upsert: (key, value, now) =>
      Effect.sync(() => {
        const current = entries.get(key)
        return current === undefined ? created(key, value, now) : next(current, value, now)
      }),
    insert: (key, value, now) => Effect.sync(() => (entries.has(key) ? undefined : created(key, value, now))),
    update: (key, value, now, version) =>
      Effect.sync(() => {
        const current = entries.get(key)
        return current === undefined || current.version !== version ? undefined : next(current, value, now)
      }),
    delete: (key, version) =>
      Effect.sync(() => {
        const current = entries.get(key)
        if (current === undefined || (version !== undefined && current.version !== version)) return false
        entries.delete(key)
        order.delete("keys")
        return true
      }),
    list: (prefix, page) => Effect.sync(() => list(prefix, page))
  }
})

/** `StateStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<StateStore, never, MemoryDatabase> = Layer.effect(
  StateStore,
  Effect.map(driver, makeStateStore)
)

/** `StateStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<StateStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
