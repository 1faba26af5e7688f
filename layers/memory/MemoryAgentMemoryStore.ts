/** `AgentMemoryStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import {
  type AgentMemoryDriver,
  AgentMemoryStore,
  makeAgentMemoryStore,
  type MemoryRecordRow
} from "../../src/AgentMemory.ts"
import { isExpired } from "../../src/Expiry.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

/** The map key of `(agentId, key)`: agent ids hold no U+0000 (the Text rule), so the pair is unambiguous. */
const addressOf = (agentId: string, key: string) => `${agentId}\u0000${key}`

/** An `AgentMemoryDriver` over the shared in-memory tables: records in `(createdAt, id)` order, ids by address. */
export const driver = Effect.map(MemoryDatabase, (db): AgentMemoryDriver => {
  const records = db.table("memory_records", (row: MemoryRecordRow) => [row.createdAt, row.id])
  const ids = db.map<string, string>("memory_record_keys")
  const stored = (agentId: string, key: string) => {
    const id = ids.get(addressOf(agentId, key))
    return id === undefined ? undefined : records.get(id)
  }
  return {
    get: (agentId, key) =>
      Effect.sync(() => {
        const row = stored(agentId, key)
        return row && { ...row }
      }),
    insert: (row) =>
      Effect.sync(() => {
        const address = addressOf(row.agentId, row.key)
        if (ids.has(address)) return false
        ids.set(address, row.id)
        records.set(row.id, { ...row })
        return true
      }),
    replace: (row, previous) =>
      Effect.sync(() => {
        const current = stored(row.agentId, row.key)
        if (current === undefined || current.id !== previous.id || current.version !== previous.version) return false
        if (current.id !== row.id) records.delete(current.id)
        ids.set(addressOf(row.agentId, row.key), row.id)
        records.set(row.id, { ...row })
        return true
      }),
    list: (agentId, filter, now, page) =>
      Effect.sync(() =>
        records
          .page(
            page,
            (row) =>
              row.agentId === agentId &&
              !isExpired(row.expiresAt, now) &&
              (filter.kind === undefined || row.kind === filter.kind) &&
              (filter.prefix === undefined || row.key.startsWith(filter.prefix))
          )
          .map((row) => ({ ...row }))
      ),
    delete: (agentId, key) =>
      Effect.sync(() => {
        const address = addressOf(agentId, key)
        const id = ids.get(address)
        if (id === undefined) return
        ids.delete(address)
        records.delete(id)
      }),
    deleteExpired: (now, batch) =>
      Effect.sync(() => {
        const expired = Array.from(records.values())
          .filter((row) => isExpired(row.expiresAt, now))
          .sort((a, b) => a.expiresAt! - b.expiresAt!)
          .slice(0, batch)
        for (const row of expired) {
          ids.delete(addressOf(row.agentId, row.key))
          records.delete(row.id)
        }
        return expired.length
      })
  }
})

/** `AgentMemoryStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<AgentMemoryStore, never, MemoryDatabase> = Layer.effect(
  AgentMemoryStore,
  Effect.map(driver, makeAgentMemoryStore)
)

/** `AgentMemoryStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<AgentMemoryStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
