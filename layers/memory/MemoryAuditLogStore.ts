/** `AuditLogStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import {
  type AuditDriver,
  type AuditEntryRow,
  type AuditFilter,
  AuditLogStore,
  genesisHash,
  makeAuditLogStore
} from "../../src/Audit.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

const matches = (row: AuditEntryRow, filter: AuditFilter): boolean =>
  (filter.sessionId === undefined || row.sessionId === filter.sessionId) &&
  (filter.actor === undefined || row.actor === filter.actor) &&
  (filter.action === undefined || row.action === filter.action) &&
  (filter.resource === undefined || row.resource === filter.resource) &&
  (filter.from === undefined || row.createdAt >= filter.from) &&
  (filter.to === undefined || row.createdAt < filter.to)

/** An `AuditDriver` over the shared in-memory tables: the chain as an array (entry `seq` at index `seq - 1`). */
export const driver = Effect.map(MemoryDatabase, (db): AuditDriver => {
  const ids = db.map<string, AuditEntryRow>("audit_log")
  const chains = db.map<"chain", Array<AuditEntryRow>>("audit_chain")
  let chain = chains.get("chain")
  if (chain === undefined) chains.set("chain", (chain = []))
  const entries = chain
  return {
    append: (draft, seal) =>
      Effect.sync(() => {
        if (ids.has(draft.id)) return undefined
        const seq = entries.length + 1
        const prevHash = entries.length === 0 ? genesisHash : entries[entries.length - 1]!.hash
        const row: AuditEntryRow = Object.assign({}, draft, { seq, prevHash, hash: seal(seq, prevHash) })
        entries.push(row)
        ids.set(row.id, row)
        return { ...row }
      }),
    get: (id) =>
      Effect.sync(() => {
        const row = ids.get(id)
        return row && { ...row }
      }),
    bySeq: (seq) =>
      Effect.sync(() => {
        const row = Number.isSafeInteger(seq) && seq >= 1 ? entries[seq - 1] : undefined
        return row && { ...row }
      }),
    list: (filter, page) =>
      Effect.sync(() => {
        const asc = page.order === "asc"
        const after = page.after === undefined ? undefined : (page.after[0] as number)
        let i = asc
          ? Math.max(0, after ?? 0)
          : Math.min(entries.length, after === undefined ? entries.length : after - 1) - 1
        const items: Array<AuditEntryRow> = []
        let skip = page.offset
        for (; i >= 0 && i < entries.length && items.length < page.limit; i += asc ? 1 : -1) {
          const row = entries[i]!
          if (!matches(row, filter)) continue
          if (skip > 0) skip--
          else items.push({ ...row })
        }
        return items
      }),
    range: (after, limit) =>
      Effect.sync(() => entries.slice(Math.max(0, after), Math.max(0, after) + limit).map((row) => ({ ...row }))),
    head: Effect.sync(() => entries.length)
  }
})

/** `AuditLogStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<AuditLogStore, never, MemoryDatabase> = Layer.effect(
  AuditLogStore,
  Effect.map(driver, makeAuditLogStore)
)

/** `AuditLogStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<AuditLogStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
