/**
 * The `CheckpointStore` contract, run against every backend: `suite(label, layer)`
 * (the layer provides `SessionStore` too: threads are sessions). Tests share one
 * store per backend, so each creates its own sessions.
 */
import { expect, layer } from "@effect/vitest"
import { Arbitrary, DateTime, Effect, FastCheck, type Layer, Option, TestClock } from "effect"
import { Json } from "../../src/Json.ts"
import { SessionStore } from "../../src/Session.ts"
import {
  type Checkpoint,
  CheckpointInput,
  CheckpointListOptions,
  CheckpointStore,
  PendingWriteInput
} from "../../src/State.ts"
import * as BadInput from "./BadInput.ts"

/** A fresh session (thread) id. */
const thread = Effect.map(
  Effect.flatMap(SessionStore, (sessions) => sessions.create({})),
  (session) => session.id as string
)

const ids = (checkpoints: ReadonlyArray<Checkpoint>) => checkpoints.map((c) => c.id)

/** Runs the `CheckpointStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<CheckpointStore | SessionStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`CheckpointStore (${label})`, (it) => {
    it.effect(
      "save chains checkpoints of a thread: seq from 1, parent the previous latest; get and latest read them",
      () =>
        Effect.gen(function* () {
          const checkpoints = yield* CheckpointStore
          const threadId = yield* thread
          expect(yield* checkpoints.latest(threadId)).toEqual(Option.none())
          yield* TestClock.setTime(5_000)
          const first = yield* checkpoints.save({
            threadId,
            state: { messages: ["hi"] },
            metadata: { step: 0, source: "input" },
            writes: [
              { taskId: "t1", channel: "messages", value: "hello" },
              { taskId: "t2", channel: "tools", value: { name: "search" } }
            ]
          })
          expect(first).toMatchObject({
            threadId,
            namespace: "",
            seq: 1,
            state: { messages: ["hi"] },
            metadata: { step: 0, source: "input" },
            writes: [
              { idx: 1, taskId: "t1", channel: "messages", value: "hello" },
              { idx: 2, taskId: "t2", channel: "tools", value: { name: "search" } }
            ]
          })
          expect(first.parentId).toBeUndefined()
          expect("parentId" in first).toBe(false)
          expect(DateTime.toEpochMillis(first.createdAt)).toBe(5_000)
          expect(yield* checkpoints.get(first.id)).toEqual(first)
          expect(yield* checkpoints.find(first.id)).toEqual(Option.some(first))
          expect(yield* checkpoints.latest(threadId)).toEqual(Option.some(first))
          const second = yield* checkpoints.save({ threadId, state: { messages: ["hi", "there"] } })
          expect(second).toMatchObject({ seq: 2, parentId: first.id, metadata: {}, writes: [] })
          expect(yield* checkpoints.latest(threadId, "")).toEqual(Option.some(second))
          const third = yield* checkpoints.save({ id: "my-own-id", threadId, state: 3 })
          expect(third).toMatchObject({ id: "my-own-id", seq: 3, parentId: second.id })
          expect(yield* checkpoints.latest(threadId)).toEqual(Option.some(third))
        })
    )

    it.effect("namespaces are independent chains", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const threadId = yield* thread
        const root = yield* checkpoints.save({ threadId, state: "root" })
        const sub1 = yield* checkpoints.save({ threadId, namespace: "tools:1", state: "sub" })
        const sub2 = yield* checkpoints.save({ threadId, namespace: "tools:1", state: "sub2" })
        expect(sub1).toMatchObject({ namespace: "tools:1", seq: 1 })
        expect(sub1.parentId).toBeUndefined()
        expect(sub2).toMatchObject({ seq: 2, parentId: sub1.id })
        expect(yield* checkpoints.latest(threadId)).toEqual(Option.some(root))
        expect(yield* checkpoints.latest(threadId, "tools:1")).toEqual(Option.some(sub2))
        expect(yield* checkpoints.latest(threadId, "other")).toEqual(Option.none())
        yield* checkpoints.save({ threadId, namespace: "a:2", state: "sub3" })
        expect(yield* checkpoints.namespaces(threadId)).toEqual(["", "a:2", "tools:1"])
        expect(yield* checkpoints.namespaces(`${threadId}-nope`)).toEqual([])
        expect(ids((yield* checkpoints.list(threadId, { namespace: "tools:1" })).items)).toEqual([sub2.id, sub1.id])
        // A parent in another namespace is not a parent here.
        expect(
          yield* Effect.flip(checkpoints.save({ threadId, parentId: root.id, namespace: "tools:1", state: 0 }))
        ).toMatchObject({ _tag: "NotFound", entity: "Checkpoint", id: root.id })
      })
    )

    it.effect("unknown threads, parents and duplicate ids are refused and write nothing", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const threadId = yield* thread
        expect(yield* Effect.flip(checkpoints.save({ threadId: `${threadId}-nope`, state: 1 }))).toMatchObject({
          _tag: "NotFound",
          entity: "Session",
          id: `${threadId}-nope`
        })
        expect(yield* Effect.flip(checkpoints.save({ threadId, parentId: "missing", state: 1 }))).toMatchObject({
          _tag: "NotFound",
          entity: "Checkpoint",
          id: "missing"
        })
        const other = yield* thread
        const foreign = yield* checkpoints.save({ threadId: other, state: 1 })
        expect(yield* Effect.flip(checkpoints.save({ threadId, parentId: foreign.id, state: 1 }))).toMatchObject({
          _tag: "NotFound",
          entity: "Checkpoint"
        })
        const saved = yield* checkpoints.save({ threadId, state: 1 })
        expect(
          yield* Effect.flip(
            checkpoints.save({ id: saved.id, threadId, state: 2, writes: [{ taskId: "t", channel: "c", value: 1 }] })
          )
        ).toMatchObject({ _tag: "Conflict", entity: "Checkpoint", id: saved.id, reason: "exists" })
        // An unknown session is NotFound on every backend, even with an id that is taken.
        expect(
          yield* Effect.flip(checkpoints.save({ id: saved.id, threadId: `${threadId}-nope`, state: 1 }))
        ).toMatchObject({ _tag: "NotFound", entity: "Session" })
        // Nothing of the refused saves is left: the chain is the one checkpoint, seq continues gapless.
        expect(yield* checkpoints.get(saved.id)).toEqual(saved)
        expect(saved.seq).toBe(1)
        expect(ids((yield* checkpoints.list(threadId)).items)).toEqual([saved.id])
        const next = yield* checkpoints.save({ threadId, state: 3 })
        expect(next).toMatchObject({ seq: 2, parentId: saved.id })
        expect(yield* Effect.flip(checkpoints.get("missing"))).toMatchObject({ _tag: "NotFound", id: "missing" })
        expect(yield* checkpoints.find("")).toEqual(Option.none())
        expect(yield* checkpoints.latest("")).toEqual(Option.none())
      })
    )

    it.effect("list pages newest first by seq, before a checkpoint, and in ascending order", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const threadId = yield* thread
        const saved: Array<Checkpoint> = []
        for (let i = 0; i < 7; i++) {
          saved.push(
            yield* checkpoints.save({
              threadId,
              state: i,
              writes: Array.from({ length: i % 3 }, (_, j) => ({ taskId: `t${j}`, channel: "c", value: j }))
            })
          )
        }
        const newest = [...saved].reverse()
        const all = yield* checkpoints.list(threadId)
        expect(all.items).toEqual(newest)
        const seen: Array<Checkpoint> = []
        let cursor: string | undefined
        do {
          const page: { items: ReadonlyArray<Checkpoint>; nextCursor: Option.Option<string> } = yield* checkpoints.list(
            threadId,
            { limit: 3, ...(cursor ? { cursor } : {}) }
          )
          seen.push(...page.items)
          cursor = Option.getOrUndefined(page.nextCursor)
        } while (cursor !== undefined)
        expect(seen).toEqual(newest)
        expect(ids((yield* checkpoints.list(threadId, { before: saved[4]!.id, limit: 2 })).items)).toEqual(
          ids([saved[3]!, saved[2]!])
        )
        expect(ids((yield* checkpoints.list(threadId, { order: "asc", limit: 3 })).items)).toEqual(
          ids(saved.slice(0, 3))
        )
        expect(yield* Effect.flip(checkpoints.list(threadId, { before: "missing" }))).toMatchObject({
          _tag: "NotFound"
        })
        expect((yield* checkpoints.list(`${threadId}-none`)).items).toEqual([])
      })
    )

    it.effect(
      "history follows parents to the root, paged; fork starts a branch; two writers from one parent make two children",
      () =>
        Effect.gen(function* () {
          const checkpoints = yield* CheckpointStore
          const threadId = yield* thread
          const a = yield* checkpoints.save({ threadId, state: "a", metadata: { step: 1 } })
          const b = yield* checkpoints.save({ threadId, state: "b" })
          const c = yield* checkpoints.save({ threadId, state: "c" })
          expect(ids((yield* checkpoints.history(c.id)).items)).toEqual([c.id, b.id, a.id])
          const first = yield* checkpoints.history(c.id, { limit: 2 })
          expect(ids(first.items)).toEqual([c.id, b.id])
          const rest = yield* checkpoints.history(c.id, { limit: 2, cursor: Option.getOrThrow(first.nextCursor) })
          expect(ids(rest.items)).toEqual([a.id])
          expect(rest.nextCursor).toEqual(Option.none())
          // Fork the first checkpoint: a new child of `a` with its state, now the latest.
          const fork = yield* checkpoints.fork(a.id)
          expect(fork).toMatchObject({ seq: 4, parentId: a.id, state: "a", metadata: { step: 1 } })
          expect(yield* checkpoints.latest(threadId)).toEqual(Option.some(fork))
          const edited = yield* checkpoints.fork(a.id, { state: "a'", metadata: { edited: true } })
          expect(edited).toMatchObject({ seq: 5, parentId: a.id, state: "a'", metadata: { edited: true } })
          expect(ids((yield* checkpoints.history(edited.id)).items)).toEqual([edited.id, a.id])
          // The old branch is intact.
          expect(ids((yield* checkpoints.history(c.id)).items)).toEqual([c.id, b.id, a.id])
          // Two writers continuing from the same parent concurrently: two children of it, distinct seqs.
          const children = yield* Effect.all(
            [
              checkpoints.save({ threadId, parentId: b.id, state: "x" }),
              checkpoints.save({ threadId, parentId: b.id, state: "y" })
            ],
            { concurrency: "unbounded" }
          )
          expect(children.map((child) => child.parentId)).toEqual([b.id, b.id])
          expect(children.map((child) => child.seq).sort()).toEqual([6, 7])
          expect(yield* Effect.flip(checkpoints.fork("missing"))).toMatchObject({ _tag: "NotFound" })
          expect(yield* Effect.flip(checkpoints.history("missing"))).toMatchObject({ _tag: "NotFound" })
        })
    )

    it.effect("concurrent saves without a parent form one unbroken chain with gapless seq", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const threadId = yield* thread
        yield* Effect.all(
          Array.from({ length: 16 }, (_, i) =>
            checkpoints.save({ threadId, state: i, writes: [{ taskId: `t${i}`, channel: "c", value: i }] })
          ),
          { concurrency: "unbounded" }
        )
        const latest = Option.getOrThrow(yield* checkpoints.latest(threadId))
        expect(latest.seq).toBe(16)
        const chain = (yield* checkpoints.history(latest.id, { limit: 100 })).items
        expect(chain.map((c) => c.seq)).toEqual(Array.from({ length: 16 }, (_, i) => 16 - i))
        expect(chain.every((c) => c.writes.length === 1)).toBe(true)
      })
    )

    it.effect("putWrites adds writes after the existing ones", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const threadId = yield* thread
        const saved = yield* checkpoints.save({
          threadId,
          state: {},
          writes: [{ taskId: "a", channel: "x", value: 1 }]
        })
        const updated = yield* checkpoints.putWrites(saved.id, [
          { taskId: "b", channel: "y", value: [2] },
          { taskId: "c", channel: "z", value: null }
        ])
        expect(updated.writes).toEqual([
          { idx: 1, taskId: "a", channel: "x", value: 1 },
          { idx: 2, taskId: "b", channel: "y", value: [2] },
          { idx: 3, taskId: "c", channel: "z", value: null }
        ])
        expect(yield* checkpoints.get(saved.id)).toEqual(updated)
        yield* Effect.all(
          Array.from({ length: 8 }, (_, i) =>
            checkpoints.putWrites(saved.id, [{ taskId: `p${i}`, channel: "c", value: i }])
          ),
          { concurrency: "unbounded" }
        )
        expect((yield* checkpoints.get(saved.id)).writes.map((w) => w.idx)).toEqual(
          Array.from({ length: 11 }, (_, i) => i + 1)
        )
        expect(yield* Effect.flip(checkpoints.putWrites("missing", []))).toMatchObject({ _tag: "NotFound" })
      })
    )

    it.effect("prune keeps the newest per namespace; history then ends at the oldest kept", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const threadId = yield* thread
        const main: Array<Checkpoint> = []
        for (let i = 0; i < 6; i++)
          main.push(yield* checkpoints.save({ threadId, state: i, writes: [{ taskId: "t", channel: "c", value: i }] }))
        const sub: Array<Checkpoint> = []
        for (let i = 0; i < 3; i++) sub.push(yield* checkpoints.save({ threadId, namespace: "sub", state: i }))
        expect(yield* checkpoints.prune(threadId, { keepLast: 2, namespace: "sub" })).toBe(1)
        expect(yield* checkpoints.prune(threadId, { keepLast: 2 })).toBe(4)
        expect(yield* checkpoints.prune(threadId, { keepLast: 2 })).toBe(0)
        expect(ids((yield* checkpoints.list(threadId)).items)).toEqual([main[5]!.id, main[4]!.id])
        expect(ids((yield* checkpoints.list(threadId, { namespace: "sub" })).items)).toEqual([sub[2]!.id, sub[1]!.id])
        expect(ids((yield* checkpoints.history(main[5]!.id)).items)).toEqual([main[5]!.id, main[4]!.id])
        expect(yield* checkpoints.find(main[0]!.id)).toEqual(Option.none())
        // The chain continues after a prune.
        const next = yield* checkpoints.save({ threadId, state: 6 })
        expect(next).toMatchObject({ seq: 7, parentId: main[5]!.id })
        expect(yield* checkpoints.prune(threadId, { keepLast: 0 })).toBe(5)
        expect(yield* checkpoints.latest(threadId)).toEqual(Option.none())
        expect((yield* checkpoints.save({ threadId, state: 7 })).seq).toBe(8)
      })
    )

    it.effect("deleting the session (or the thread) deletes its checkpoints", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const sessions = yield* SessionStore
        const threadId = yield* thread
        const kept = yield* thread
        const doomed = yield* checkpoints.save({
          threadId,
          state: 1,
          writes: [{ taskId: "t", channel: "c", value: 1 }]
        })
        yield* checkpoints.save({ threadId, namespace: "n", state: 2 })
        const other = yield* checkpoints.save({ threadId: kept, state: 3 })
        yield* sessions.delete(threadId)
        expect(yield* checkpoints.namespaces(threadId)).toEqual([])
        expect(yield* checkpoints.find(doomed.id)).toEqual(Option.none())
        expect(yield* checkpoints.latest(threadId)).toEqual(Option.none())
        expect(yield* checkpoints.latest(threadId, "n")).toEqual(Option.none())
        expect(yield* checkpoints.get(other.id)).toEqual(other)
        yield* checkpoints.deleteThread(kept)
        expect(yield* checkpoints.namespaces(kept)).toEqual([])
        expect(yield* checkpoints.find(other.id)).toEqual(Option.none())
        expect(yield* checkpoints.latest(kept)).toEqual(Option.none())
        expect((yield* checkpoints.save({ threadId: kept, state: 4 })).seq).toBe(1)
      })
    )

    it.effect("state, metadata and write values round-trip verbatim", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const threadId = yield* thread
        const samples = FastCheck.sample(Arbitrary.make(Json), { numRuns: 30, seed: 11 })
        for (const value of samples) {
          const saved = yield* checkpoints.save({
            threadId,
            state: value,
            metadata: { value, nul: "\u0000", lone: "\ud800" },
            writes: [{ taskId: "t", channel: "c", value }]
          })
          const read = yield* checkpoints.get(saved.id)
          expect(read).toEqual(saved)
          expect(read.state).toEqual(value)
          expect(read.writes[0]!.value).toEqual(value)
        }
        // JSON text has no negative zero: what save returns is what a read gives back, 0.
        const zero = yield* checkpoints.save({ threadId, state: { z: -0, list: [-0] } })
        expect(Object.is((zero.state as { z: number }).z, 0)).toBe(true)
        expect((yield* checkpoints.get(zero.id)).state).toEqual(zero.state)
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const checkpoints = yield* CheckpointStore
        const threadId = yield* thread
        const saved = yield* checkpoints.save({ threadId, state: { a: 1 } })
        const snapshot = Effect.map(checkpoints.list(threadId, { limit: 1000 }), (page) =>
          page.items.map((c) => [c.id, c.seq, c.state, c.writes])
        )
        for (const id of BadInput.ids) {
          expect(yield* Effect.flip(checkpoints.get(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(checkpoints.latest(id as never))).toMatchObject({ _tag: "InvalidInput" })
          if (id !== undefined) {
            expect(yield* Effect.flip(checkpoints.latest(threadId, id as never))).toMatchObject({
              _tag: "InvalidInput"
            })
          }
          expect(yield* Effect.flip(checkpoints.history(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(checkpoints.fork(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(checkpoints.prune(id as never, { keepLast: 1 }))).toMatchObject({
            _tag: "InvalidInput"
          })
          expect(yield* Effect.flip(checkpoints.deleteThread(id as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(checkpoints.namespaces(id as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const options of [undefined, {}, { keepLast: -1 }, { keepLast: 1.5 }, null]) {
          expect(yield* Effect.flip(checkpoints.prune(threadId, options as never))).toMatchObject({
            _tag: "InvalidInput"
          })
        }
        expect(
          yield* Effect.flip(
            checkpoints.save({
              threadId,
              state: 1,
              writes: Array.from({ length: 1001 }, () => ({ taskId: "t", channel: "c", value: 1 }))
            })
          )
        ).toMatchObject({ _tag: "InvalidInput" })
        const write = { taskId: "t", channel: "c", value: 1 }
        for (const hostile of BadInput.containers(write)) {
          expect(
            yield* Effect.flip(checkpoints.save({ threadId, state: 1, writes: [hostile as never] }))
          ).toMatchObject({
            _tag: "InvalidInput"
          })
          expect(yield* Effect.flip(checkpoints.putWrites(saved.id, [hostile as never]))).toMatchObject({
            _tag: "InvalidInput"
          })
        }
        for (const hostile of BadInput.containers({ threadId, state: 1 })) {
          expect(yield* Effect.flip(checkpoints.save(hostile as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        yield* BadInput.run(`CheckpointStore (${label})`, snapshot, [
          BadInput.operation("save", CheckpointInput, (input) => checkpoints.save(input as never), {
            valid: FastCheck.record({ threadId: FastCheck.constant(threadId), state: Arbitrary.make(Json) })
          }),
          BadInput.operation(
            "putWrites",
            PendingWriteInput,
            (input) => checkpoints.putWrites(saved.id, [input as never]),
            {
              id: (id) => checkpoints.putWrites(id as never, [])
            }
          ),
          BadInput.operation("list", CheckpointListOptions, (input) => checkpoints.list(threadId, input as never), {
            id: (id) => checkpoints.list(id as never),
            optional: true
          })
        ])
      })
    )
  })
