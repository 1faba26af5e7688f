/** `SessionStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import { makeSessionStore, type SessionDriver, type SessionRow, SessionStore } from "../../src/Session.ts"
import { MemoryDatabase, type Tables } from "./MemoryDatabase.ts"

/** A stored session: its row and its transcript (JSON text). */
export interface SessionEntry {
  row: SessionRow
  transcript: string
}

/** The sessions of a memory database, in `(createdAt, id)` order. */
export const sessionsOf = (db: Tables) =>
  db.table("sessions", (entry: SessionEntry) => [entry.row.createdAt, entry.row.id])

/** A `SessionDriver` over the shared in-memory maps. */
export const driver = Effect.map(MemoryDatabase, (db): SessionDriver => {
  const sessions = sessionsOf(db)
  return {
    insert: (row) =>
      Effect.sync(() => {
        if (sessions.has(row.id)) return false
        sessions.set(row.id, { row: { ...row }, transcript: "[]" })
        return true
      }),
    get: (id) =>
      Effect.sync(() => {
        const entry = sessions.get(id)
        return entry && { ...entry.row }
      }),
    update: (row) =>
      Effect.sync(() => {
        const entry = sessions.get(row.id)
        if (entry === undefined || entry.row.version !== row.version - 1) return undefined
        entry.row = {
          ...entry.row,
          agentId: row.agentId,
          channel: row.channel,
          title: row.title,
          status: row.status,
          metadata: row.metadata,
          updatedAt: row.updatedAt,
          version: row.version
        }
        return { ...entry.row }
      }),
    list: (filter, page) =>
      Effect.sync(() =>
        sessions
          .page(
            page,
            ({ row }) =>
              (filter.agentId === undefined || row.agentId === filter.agentId) &&
              (filter.channel === undefined || row.channel === filter.channel) &&
              (filter.status === undefined || row.status === filter.status)
          )
          .map(({ row }) => ({ ...row }))
      ),
    delete: (id) =>
      Effect.sync(() => {
        if (sessions.delete(id)) db.deleted("sessions", id)
      }),
    load: (id) => Effect.sync(() => sessions.get(id)?.transcript),
    save: (row, transcript) =>
      Effect.sync(() => {
        const entry = sessions.get(row.id)
        if (entry === undefined) {
          sessions.set(row.id, { row: { ...row }, transcript })
        } else if (entry.row.status === "closed") {
          return "closed"
        } else {
          entry.row = { ...entry.row, messageCount: row.messageCount, updatedAt: row.updatedAt }
          entry.transcript = transcript
        }
        return "saved"
      })
  }
})

/** `SessionStore` over a `MemoryDatabase` (share one to get cascades into conversations). */
export const layerWithDatabase: Layer.Layer<SessionStore, never, MemoryDatabase> = Layer.effect(
  SessionStore,
  Effect.flatMap(driver, makeSessionStore)
)

/** `SessionStore` in memory, with its own `MemoryDatabase` (shared with any memory store built alongside). */
export const layer: Layer.Layer<SessionStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
