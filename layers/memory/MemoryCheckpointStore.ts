/** `CheckpointStore` in memory: for tests and ephemeral agents. A session's deletion deletes its checkpoints. */
import { Effect, Layer } from "effect"
import type { PageQuery } from "../../src/Page.ts"
import {
  type CheckpointDriver,
  type CheckpointRow,
  CheckpointStore,
  makeCheckpointStore,
  type StoredCheckpoint,
  type CheckpointWriteRow
} from "../../src/State.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"
import { chatsOf } from "./MemoryChats.ts"

/** A stored checkpoint: its row and its writes. */
interface Entry {
  readonly row: CheckpointRow
  readonly writes: Array<CheckpointWriteRow>
}

/** One namespace of a thread: its seq counter, its latest checkpoint, and its checkpoints' ids by ascending seq. */
interface Chain {
  lastSeq: number
  latestId: string | undefined
  readonly ids: Array<string>
}

/** The first index of `ids` (ascending seq) whose checkpoint's seq is at least `seq`. */
const firstAtLeast = (ids: ReadonlyArray<string>, seqOf: (id: string) => number, seq: number): number => {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (seqOf(ids[mid]!) < seq) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** A `CheckpointDriver` over the shared in-memory maps. */
export const driver = Effect.map(MemoryDatabase, (db): CheckpointDriver => {
  const { sessions } = chatsOf(db)
  const checkpoints = db.map<string, Entry>("checkpoints")
  const threads = db.map<string, Map<string, Chain>>("checkpoint_heads")
  const copy = (entry: Entry): StoredCheckpoint => ({
    row: { ...entry.row },
    writes: entry.writes.map((w) => ({ ...w }))
  })
  const seqOf = (id: string) => checkpoints.get(id)!.row.seq
  const deleteThread = (threadId: string) => {
    const chains = threads.get(threadId)
    if (chains === undefined) return
    for (const chain of chains.values()) for (const id of chain.ids) checkpoints.delete(id)
    threads.delete(threadId)
  }
  db.onDelete("sessions", deleteThread)
  return {
    save: (row, writes) =>
      Effect.sync(() => {
        if (row.parentId !== null) {
          const parent = checkpoints.get(row.parentId)?.row
          if (parent === undefined || parent.threadId !== row.threadId || parent.namespace !== row.namespace) {
            return "no-parent" as const
          }
        }
        if (!sessions.has(row.threadId)) return "no-session" as const
        if (checkpoints.has(row.id)) return "exists" as const
        let chains = threads.get(row.threadId)
        if (chains === undefined) threads.set(row.threadId, (chains = new Map()))
        let chain = chains.get(row.namespace)
        if (chain === undefined) chains.set(row.namespace, (chain = { lastSeq: 0, latestId: undefined, ids: [] }))
        const seq = ++chain.lastSeq
        const parentId = row.parentId ?? chain.latestId ?? null
        checkpoints.set(row.id, {
          row: Object.assign({}, row, { seq, parentId }),
          writes: writes.map((w) => ({ ...w }))
        })
        chain.ids.push(row.id)
        chain.latestId = row.id
        return { seq, parentId }
      }),
    get: (id) =>
      Effect.sync(() => {
        const entry = checkpoints.get(id)
        return entry && copy(entry)
      }),
    latest: (threadId, namespace) =>
      Effect.sync(() => {
        const latestId = threads.get(threadId)?.get(namespace)?.latestId
        const entry = latestId === undefined ? undefined : checkpoints.get(latestId)
        return entry && copy(entry)
      }),
    namespaces: (threadId) => Effect.sync(() => Array.from(threads.get(threadId)?.keys() ?? [])),
    list: (threadId, namespace, before, page: PageQuery) =>
      Effect.sync(() => {
        const ids = threads.get(threadId)?.get(namespace)?.ids ?? []
        const after = page.after?.[0] as number | undefined
        const asc = page.order === "asc"
        // The index range [lo, hi) of the seqs the page may take, walked in the page's order.
        let lo = 0
        let hi = before === undefined ? ids.length : firstAtLeast(ids, seqOf, before)
        if (after !== undefined) {
          if (asc) lo = Math.max(lo, firstAtLeast(ids, seqOf, after + 1))
          else hi = Math.min(hi, firstAtLeast(ids, seqOf, after))
        }
        const rows: Array<StoredCheckpoint> = []
        let skip = page.offset
        for (let i = asc ? lo : hi - 1; i >= lo && i < hi && rows.length < page.limit; i += asc ? 1 : -1) {
          if (skip > 0) skip--
          else rows.push(copy(checkpoints.get(ids[i]!)!))
        }
        return rows
      }),
    history: (id, limit) =>
      Effect.sync(() => {
        const rows: Array<StoredCheckpoint> = []
        let entry = checkpoints.get(id)
        while (entry !== undefined && rows.length < limit) {
          rows.push(copy(entry))
          entry = entry.row.parentId === null ? undefined : checkpoints.get(entry.row.parentId)
        }
        return rows
      }),
    putWrites: (id, writes) =>
      Effect.sync(() => {
        const entry = checkpoints.get(id)
        if (entry === undefined) return false
        for (const w of writes) entry.writes.push({ ...w, idx: entry.writes.length + 1 })
        return true
      }),
    prune: (threadId, namespace, keepLast) =>
      Effect.sync(() => {
        const chains = threads.get(threadId)
        if (chains === undefined) return 0
        let deleted = 0
        for (const [name, chain] of chains) {
          if (namespace !== undefined && name !== namespace) continue
          const end = firstAtLeast(chain.ids, seqOf, chain.lastSeq - keepLast + 1)
          for (const id of chain.ids.splice(0, end)) checkpoints.delete(id)
          deleted += end
        }
        return deleted
      }),
    deleteThread: (threadId) => Effect.sync(() => deleteThread(threadId))
  }
})

/** `CheckpointStore` over a `MemoryDatabase` (with the sessions it references). */
export const layerWithDatabase: Layer.Layer<CheckpointStore, never, MemoryDatabase> = Layer.effect(
  CheckpointStore,
  Effect.map(driver, makeCheckpointStore)
)

/** `CheckpointStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<CheckpointStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
