/**
 * `LockStore` in memory: for tests and single-process agents. Leases live in
 * a map by key; fencing tokens come from the database's counters
 * map (kept when a lease is released, so tokens keep increasing). Expiry is
 * read against the caller's `Clock`.
 */
import { Effect, Layer } from "effect"
import { type LockDriver, type LockRow, LockStore, makeLockStore, tokenCounter } from "../../src/Lock.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

/** A UTF-16 code unit's rank in code point order (surrogates sort above U+E000–U+FFFF, as in UTF-8). */
const rank = (unit: number): number => (unit >= 0xe000 ? unit - 0x800 : unit >= 0xd800 ? unit + 0x2000 : unit)

/** Compares keys by code point, as SQLite (`BINARY`) and PostgreSQL (`COLLATE "C"`) order them. */
const compareKeys = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return rank(x) - rank(y)
  }
  return a.length - b.length
}

const live = (row: LockRow | undefined, now: number): row is LockRow => row !== undefined && row.expiresAt > now

/** A `LockDriver` over the shared in-memory tables (the caller's clock: `now` is always given). */
export const driver = Effect.map(MemoryDatabase, (db): LockDriver => {
  const locks = db.map<string, LockRow>("locks")
  const counters = db.map<string, number>("counters")
  return {
    clock: "caller",
    acquire: (key, owner, now, ttl) =>
      Effect.sync(() => {
        const t = now!
        const current = locks.get(key)
        if (live(current, t)) return { _tag: "held", row: { ...current } } as const
        const name = tokenCounter(key)
        const token = (counters.get(name) ?? 0) + 1
        counters.set(name, token)
        const row: LockRow = { key, owner, token, acquiredAt: t, expiresAt: t + ttl }
        locks.set(key, row)
        return { _tag: "acquired", row: { ...row } } as const
      }),
    release: (key, owner, token, now) =>
      Effect.sync(() => {
        const current = locks.get(key)
        if (current === undefined || current.token !== token || current.owner !== owner) return false
        locks.delete(key)
        return current.expiresAt > now!
      }),
    refresh: (key, owner, token, now, ttl) =>
      Effect.sync(() => {
        const current = locks.get(key)
        if (!live(current, now!) || current.token !== token || current.owner !== owner) return undefined
        const row = { ...current, expiresAt: now! + ttl }
        locks.set(key, row)
        return { ...row }
      }),
    get: (key, now) =>
      Effect.sync(() => {
        const current = locks.get(key)
        return live(current, now!) ? { ...current } : undefined
      }),
    list: (prefix, now, page) =>
      Effect.sync(() => {
        const after = page.after?.[0] as string | undefined
        const sign = page.order === "desc" ? -1 : 1
        return Array.from(locks.values())
          .filter(
            (row) =>
              row.expiresAt > now! &&
              (prefix === undefined || row.key.startsWith(prefix)) &&
              (after === undefined || sign * compareKeys(row.key, after) > 0)
          )
          .sort((a, b) => sign * compareKeys(a.key, b.key))
          .slice(page.offset, page.offset + page.limit)
          .map((row) => ({ ...row }))
      }),
    releaseExpired: (now, batch) =>
      Effect.sync(() => {
        const expired = Array.from(locks.values())
          .filter((row) => row.expiresAt <= now!)
          .sort((a, b) => a.expiresAt - b.expiresAt)
          .slice(0, batch)
        for (const row of expired) locks.delete(row.key)
        return expired.length
      })
  }
})

/** `LockStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<LockStore, never, MemoryDatabase> = Layer.effect(
  LockStore,
  Effect.map(driver, makeLockStore)
)

/** `LockStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<LockStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
