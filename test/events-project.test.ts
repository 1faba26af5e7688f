/**
 * `project`: state is rebuildable from the log. A projection folded from a
 * stream (or from every stream) is written to a `StateStore` key, on every
 * backend, and rebuilt the same after more events and after deleting the state.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as MemoryEventStore from "../layers/memory/MemoryEventStore.ts"
import * as MemoryStateStore from "../layers/memory/MemoryStateStore.ts"
import * as SqlEventStore from "../layers/sql/SqlEventStore.ts"
import * as SqlStateStore from "../layers/sql/SqlStateStore.ts"
import { EventStore, project, type StoredEvent } from "../src/Event.ts"
import { StateStore } from "../src/State.ts"
import { onEveryBackend } from "./backends.ts"

interface Balance {
  readonly balance: number
  readonly operations: number
}

const fold = (state: Balance, event: StoredEvent): Balance => {
  const amount = (event.payload as { amount: number }).amount
  switch (event.type) {
    case "deposited":
      return { balance: state.balance + amount, operations: state.operations + 1 }
    case "withdrawn":
      return { balance: state.balance - amount, operations: state.operations + 1 }
    default:
      return state
  }
}

const initial: Balance = { balance: 0, operations: 0 }

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

await onEveryBackend(
  {
    memory: Layer.merge(MemoryEventStore.layerWithDatabase, MemoryStateStore.layerWithDatabase),
    sql: (options) => Layer.merge(SqlEventStore.layerWith(options), SqlStateStore.layerWith(options)),
    schemas: [SqlEventStore.schema, SqlStateStore.schema]
  },
  ({ label, layer: stores }) =>
    layer(stores, { timeout: "60 seconds" })(`project (${label})`, (it) => {
      it.effect("folds a stream into a StateStore key, and rebuilds it from the log", () =>
        Effect.gen(function* () {
          const events = yield* EventStore
          const states = yield* StateStore
          const account = fresh("account")
          const key = `balance/${account}`
          yield* events.append(account, [
            { type: "deposited", payload: { amount: 100 } },
            { type: "withdrawn", payload: { amount: 30 } }
          ])
          const first = yield* project(account, { initial, fold, into: key })
          expect(first).toEqual({ state: { balance: 70, operations: 2 }, events: 2, cursor: 2, version: 1 })
          expect((yield* states.get(key)).value).toEqual({ balance: 70, operations: 2 })
          // More than one page of events.
          yield* events.append(
            account,
            Array.from({ length: 1000 }, () => ({ type: "deposited", payload: { amount: 1 } }))
          )
          yield* events.append(account, [{ type: "noted", payload: { amount: 0 } }])
          const second = yield* project(account, { initial, fold, into: key })
          expect(second).toMatchObject({ state: { balance: 1070, operations: 1002 }, events: 1003, cursor: 1003 })
          expect((yield* states.get(key)).version).toBe(2)
          // The state is derived: deleted, it is rebuilt the same from the log.
          yield* states.delete(key)
          const rebuilt = yield* project(account, { initial, fold, into: key })
          expect(rebuilt.state).toEqual(second.state)
          expect((yield* states.get(key)).value).toEqual(second.state)
        })
      )

      it.effect('"all" folds every stream in position order', () =>
        Effect.gen(function* () {
          const events = yield* EventStore
          const states = yield* StateStore
          const a = fresh("all-a")
          const b = fresh("all-b")
          yield* events.append(a, [{ type: "x", payload: 1 }])
          yield* events.append(b, [{ type: "x", payload: 2 }])
          yield* events.append(a, [{ type: "x", payload: 3 }])
          const key = fresh("seen")
          const result = yield* project("all", {
            initial: [] as ReadonlyArray<unknown>,
            fold: (seen, event) => (event.streamId === a || event.streamId === b ? [...seen, event.payload] : seen),
            into: key
          })
          expect(result.state).toEqual([1, 2, 3])
          expect(result.cursor).toBe((yield* events.read(a, { direction: "backward", limit: 1 }))[0]!.position)
          expect((yield* states.get(key)).value).toEqual([1, 2, 3])
        })
      )

      it.effect("bad input is InvalidInput and writes nothing", () =>
        Effect.gen(function* () {
          const states = yield* StateStore
          const key = fresh("bad")
          const bad: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }, EventStore | StateStore>> = [
            project(42 as never, { initial, fold, into: key }),
            project("s", { initial, fold: "no" as never, into: key }),
            project("s", { initial, fold, into: "" }),
            project("s", { initial: { f: () => 1 }, fold: (s) => s, into: key })
          ]
          for (const attempt of bad) expect((yield* Effect.flip(attempt))._tag).toBe("InvalidInput")
          expect((yield* states.find(key))._tag).toBe("None")
        })
      )
    })
)
