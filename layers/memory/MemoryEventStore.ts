/** `EventStore` in memory: for tests and ephemeral agents. Subscribers are woken in-process. */
import { Effect, Layer } from "effect"
import {
  allStreams,
  type EventDriver,
  type EventLive,
  type EventRow,
  EventStore,
  makeEventStore,
  type EventStreamRow
} from "../../src/Event.ts"
import * as Wakeups from "../Wakeups.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"
import { compareCodePoints } from "./MemoryStateStore.ts"

/** The wake-up channels of an event store under `namespace`: one for every append, one per stream. */
export const eventChannels = (namespace: string) => ({
  all: `${namespace}:events`,
  stream: (streamId: string) => `${namespace}:events:${streamId}`
})

/** The live side of an event store over `wakeups`: one channel per stream and one for every append, under `namespace`. */
export const eventLive = (wakeups: Wakeups.Wakeups["Type"], namespace: string): EventLive => {
  const { all, stream: one } = eventChannels(namespace)
  return {
    wake: (streamId, appended) => Effect.zipRight(wakeups.wake(one(streamId), appended), wakeups.wake(all, appended)),
    follow: (streamId, start, read) =>
      Wakeups.follow(wakeups, { channel: streamId === allStreams ? all : one(streamId), start, read })
  }
}

/** The whole log of one database: events in position order, the last position, the ids taken. */
interface Log {
  readonly events: Array<EventRow>
  head: number
  readonly ids: Set<string>
  readonly namespace: string
}

interface MemoryStream {
  row: EventStreamRow
  /** Its events in `seq` order (those below the retention mark removed). */
  readonly events: Array<EventRow>
}

let databases = 0

/** The index of the first element of `items` (ascending by `key`) whose key is above `after`. */
const firstAfter = <A>(items: ReadonlyArray<A>, after: number, key: (item: A) => number): number => {
  let lo = 0
  let hi = items.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (key(items[mid]!) <= after) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** An `EventDriver` over the shared in-memory maps, with its namespace of wake-up channels. */
export const driver = Effect.map(MemoryDatabase, (db): { driver: EventDriver; namespace: string } => {
  const logs = db.map<"log", Log>("events")
  let log = logs.get("log")
  if (log === undefined) {
    log = { events: [], head: 0, ids: new Set(), namespace: `memory:${process.pid}:${++databases}` }
    logs.set("log", log)
  }
  const state = log
  const streams = db.map<string, MemoryStream>("event_streams")
  /** The stream ids in code point order (as SQLite and PostgreSQL order them), sorted again after a new stream. */
  let sorted: Array<string> | undefined
  const ids = () => (sorted ??= Array.from(streams.keys()).sort(compareCodePoints))
  /** The index of the first id after `id` (or at it, when `inclusive`). */
  const search = (id: string, inclusive: boolean): number => {
    const keys = ids()
    let lo = 0
    let hi = keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const c = compareCodePoints(keys[mid]!, id)
      if (c < 0 || (c === 0 && !inclusive)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  const push = (stream: MemoryStream, event: EventRow) => {
    state.events.push(event)
    state.ids.add(event.id)
    stream.events.push(event)
  }

  const eventDriver: EventDriver = {
    append: (streamId, events, expected, now) =>
      Effect.sync(() => {
        const stream = streams.get(streamId)
        const actual = stream?.row.version ?? 0
        if (expected === "streamExists" ? actual === 0 : expected !== "any" && expected !== actual) {
          return { _tag: "Refused", actual } as const
        }
        if (events.some((event) => state.ids.has(event.id))) return { _tag: "Duplicate" } as const
        const target: MemoryStream = stream ?? {
          row: { streamId, version: 0, truncatedBefore: 1, createdAt: now, updatedAt: now },
          events: []
        }
        if (stream === undefined) {
          streams.set(streamId, target)
          sorted = undefined
        }
        for (const event of events) {
          push(
            target,
            Object.assign({}, event, { streamId, seq: target.row.version + 1, position: ++state.head, createdAt: now })
          )
          target.row = { ...target.row, version: target.row.version + 1 }
        }
        target.row = { ...target.row, updatedAt: Math.max(now, target.row.updatedAt) }
        return { _tag: "Appended", version: target.row.version, position: state.head } as const
      }),
    read: (streamId, after, limit, backward) =>
      Effect.sync(() => {
        const events = streams.get(streamId)?.events ?? []
        const rows: Array<EventRow> = []
        if (backward) {
          for (let i = firstAfter(events, after - 1, (e) => e.seq) - 1; i >= 0 && rows.length < limit; i--) {
            rows.push({ ...events[i]! })
          }
        } else {
          for (let i = firstAfter(events, after, (e) => e.seq); i < events.length && rows.length < limit; i++) {
            rows.push({ ...events[i]! })
          }
        }
        return rows
      }),
    readAll: (after, limit, types) =>
      Effect.sync(() => {
        const wanted = types === undefined ? undefined : new Set(types)
        const rows: Array<EventRow> = []
        const events = state.events
        for (let i = firstAfter(events, after, (e) => e.position); i < events.length && rows.length < limit; i++) {
          const event = events[i]!
          if (wanted === undefined || wanted.has(event.type)) rows.push({ ...event })
        }
        return rows
      }),
    taken: (ids) => Effect.sync(() => ids.filter((id) => state.ids.has(id))),
    stream: (streamId) =>
      Effect.sync(() => {
        const row = streams.get(streamId)?.row
        return row && { ...row }
      }),
    streams: (prefix, page) =>
      Effect.sync(() => {
        const keys = ids()
        const after = page.after?.[0] as string | undefined
        const inPrefix = (id: string) => prefix === undefined || id.startsWith(prefix)
        const rows: Array<EventStreamRow> = []
        let skip = page.offset
        if (page.order === "asc") {
          let i = Math.max(
            after === undefined ? 0 : search(after, false),
            prefix === undefined ? 0 : search(prefix, true)
          )
          for (; i < keys.length && rows.length < page.limit && inPrefix(keys[i]!); i++) {
            if (skip > 0) skip--
            else rows.push({ ...streams.get(keys[i]!)!.row })
          }
        } else {
          let i = (after !== undefined ? search(after, true) : keys.length) - 1
          for (; i >= 0 && rows.length < page.limit; i--) {
            if (!inPrefix(keys[i]!)) {
              if (prefix !== undefined && compareCodePoints(keys[i]!, prefix) < 0) break
              continue
            }
            if (skip > 0) skip--
            else rows.push({ ...streams.get(keys[i]!)!.row })
          }
        }
        return rows
      }),
    head: Effect.sync(() => state.head),
    truncate: (streamId, before, marker, now) =>
      Effect.sync(() => {
        const stream = streams.get(streamId)
        if (stream === undefined) return undefined
        const mark = Math.min(before, stream.row.version + 1)
        if (mark <= stream.row.truncatedBefore) {
          return { _tag: "Unchanged", truncatedBefore: stream.row.truncatedBefore } as const
        }
        const cut = firstAfter(stream.events, mark - 1, (e) => e.seq)
        const removed = stream.events.splice(0, cut)
        const gone = new Set(removed.map((e) => e.position))
        if (gone.size > 0) {
          let w = 0
          for (const event of state.events) if (!gone.has(event.position)) state.events[w++] = event
          state.events.length = w
        }
        const seq = stream.row.version + 1
        push(stream, { ...marker(mark, removed.length), streamId, seq, position: ++state.head, createdAt: now })
        stream.row = {
          ...stream.row,
          version: seq,
          truncatedBefore: mark,
          updatedAt: Math.max(now, stream.row.updatedAt)
        }
        return { _tag: "Truncated", truncatedBefore: mark, removed: removed.length } as const
      })
  }
  return { driver: eventDriver, namespace: state.namespace }
})

/** `EventStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<EventStore, never, MemoryDatabase> = Layer.effect(
  EventStore,
  Effect.gen(function* () {
    const { driver: events, namespace } = yield* driver
    const wakeups = yield* Wakeups.current
    return makeEventStore(events, eventLive(wakeups, namespace))
  })
)

/** `EventStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<EventStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
