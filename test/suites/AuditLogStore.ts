/**
 * The `AuditLogStore` contract, run against every backend: `suite(label, layer)`.
 * The log is one global chain per backend, so tests filter by their own
 * session ids and actors, and check chain properties over the whole log.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, FastCheck, Layer, Option, TestClock } from "effect"
import {
  AuditInput,
  AuditListOptions,
  AuditLogStore,
  AuditVerifyOptions,
  entryHash,
  genesisHash
} from "../../src/Audit.ts"
import { isJson } from "../../src/Json.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

const uuidv7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** Runs the `AuditLogStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<AuditLogStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`AuditLogStore (${label})`, (it) => {
    it.effect("append chains entries: next seq, prevHash is the previous hash, hash over canonical JSON", () =>
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const sessionId = fresh("session")
        yield* TestClock.setTime(1_700_000_000_000)
        const first = yield* audit.append({
          sessionId,
          actor: "agent:planner",
          action: "tool.call",
          resource: "tool:search",
          detail: { b: 1, a: [true, null] }
        })
        expect(first.id).toMatch(uuidv7)
        expect(first).toMatchObject({ sessionId, actor: "agent:planner", detail: { b: 1, a: [true, null] } })
        expect(DateTime.toEpochMillis(first.createdAt)).toBe(1_700_000_000_000)
        expect(first.hash).toMatch(/^[0-9a-f]{64}$/)
        if (first.seq === 1) expect(first.prevHash).toBe(genesisHash)
        const second = yield* audit.append({ actor: "user:ada", action: "login", resource: "session" })
        expect(second.seq).toBe(first.seq + 1)
        expect(second.prevHash).toBe(first.hash)
        expect(second.detail).toBeNull()
        expect(second.sessionId).toBeUndefined()
        const recomputed = entryHash(
          { ...first, sessionId, createdAt: 1_700_000_000_000, prevHash: first.prevHash },
          { a: [true, null], b: 1 }
        )
        expect(recomputed).toBe(first.hash)
        expect(yield* audit.get(first.id)).toEqual(first)
        expect(yield* audit.find(second.id)).toEqual(Option.some(second))
        expect(yield* audit.find("no-such-entry")).toEqual(Option.none())
        expect(yield* Effect.flip(audit.get("no-such-entry"))).toMatchObject({ _tag: "NotFound", entity: "AuditEntry" })
        expect(yield* audit.verify()).toMatchObject({ head: { seq: second.seq, hash: second.hash } })
      })
    )

    it.effect("a given id is kept; a taken id is Conflict and writes nothing (no gap in seq)", () =>
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const id = fresh("entry")
        const entry = yield* audit.append({ id, actor: "a", action: "x", resource: "r" })
        expect(entry.id).toBe(id)
        const taken = yield* Effect.flip(audit.append({ id, actor: "b", action: "y", resource: "r" }))
        expect(taken).toMatchObject({ _tag: "Conflict", entity: "AuditEntry", id, reason: "exists" })
        const next = yield* audit.append({ actor: "c", action: "z", resource: "r" })
        expect(next.seq).toBe(entry.seq + 1)
        expect(next.prevHash).toBe(entry.hash)
        yield* audit.verify()
      })
    )

    it.effect("list filters by session, actor, action, resource and time, keyset-paged by seq", () =>
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const sessionId = fresh("session")
        const actor = fresh("actor")
        yield* TestClock.setTime(10_000)
        const written = []
        for (let i = 0; i < 7; i++) {
          yield* TestClock.setTime(10_000 + i * 1000)
          written.push(
            yield* audit.append({
              sessionId,
              actor: i % 2 === 0 ? actor : `${actor}-other`,
              action: i < 3 ? "read" : "write",
              resource: `doc:${i % 3}`,
              detail: { i }
            })
          )
        }
        const all = yield* audit.list({ sessionId })
        expect(all.items).toEqual(written)
        expect(all.nextCursor).toEqual(Option.none())
        const byActor = yield* audit.list({ sessionId, actor })
        expect(byActor.items.map((e) => e.detail)).toEqual([{ i: 0 }, { i: 2 }, { i: 4 }, { i: 6 }])
        const writes = yield* audit.list({ sessionId, action: "write", resource: "doc:0" })
        expect(writes.items.map((e) => e.detail)).toEqual([{ i: 3 }, { i: 6 }])
        const window = yield* audit.list({ sessionId, from: 12_000, to: DateTime.unsafeMake(15_000) })
        expect(window.items.map((e) => e.detail)).toEqual([{ i: 2 }, { i: 3 }, { i: 4 }])
        const pages: Array<unknown> = []
        let cursor: string | undefined
        do {
          const page = yield* audit.list({ sessionId, limit: 3, ...(cursor === undefined ? {} : { cursor }) })
          pages.push(...page.items.map((e) => e.seq))
          cursor = Option.getOrUndefined(page.nextCursor)
        } while (cursor !== undefined)
        expect(pages).toEqual(written.map((e) => e.seq))
        const desc = yield* audit.list({ sessionId, order: "desc", limit: 2 })
        expect(desc.items.map((e) => e.seq)).toEqual([written[6]!.seq, written[5]!.seq])
        const rest = yield* audit.list({ sessionId, order: "desc", cursor: Option.getOrThrow(desc.nextCursor) })
        expect(rest.items.map((e) => e.seq)).toEqual(
          written
            .slice(0, 5)
            .reverse()
            .map((e) => e.seq)
        )
        expect((yield* audit.list({ sessionId, offset: 5 })).items).toEqual(written.slice(5))
        expect((yield* audit.list({ sessionId: fresh("none") })).items).toEqual([])
      })
    )

    it.effect("16 concurrent appenders build one unbroken chain", () =>
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const actor = fresh("concurrent")
        const entries = yield* Effect.forEach(
          Array.from({ length: 16 }, (_, i) => i),
          (i) =>
            Effect.forEach(
              Array.from({ length: 4 }, (_, j) => j),
              (j) => audit.append({ actor, action: "step", resource: `fiber:${i}`, detail: { i, j } })
            ),
          { concurrency: "unbounded" }
        )
        const seqs = entries
          .flat()
          .map((e) => e.seq)
          .sort((a, b) => a - b)
        expect(new Set(seqs).size).toBe(64)
        const listed = yield* audit.list({ actor, limit: 1000 })
        expect(listed.items.map((e) => e.seq)).toEqual(seqs)
        const verified = yield* audit.verify()
        expect(verified.head.seq).toBeGreaterThanOrEqual(seqs[63]!)
        expect(verified.checked).toBe(verified.head.seq)
        const tail = yield* audit.verify({ from: seqs[0]! })
        expect(tail.head).toEqual(verified.head)
        expect(tail.checked).toBe(verified.head.seq - seqs[0]! + 1)
      })
    )

    it.effect("detail round-trips verbatim (U+0000, lone surrogates, key order) and the chain verifies", () =>
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const detail = {
          z: "nul \u0000 inside",
          a: "half \ud83d emoji \udc00",
          "\u0000key": [1.5, 1e300, -0.5, null, true, { nested: "🙂 é" }],
          "": { "": "" }
        }
        const entry = yield* audit.append({ actor: "content", action: "write", resource: "r\u00e9", detail })
        const read = yield* audit.get(entry.id)
        expect(JSON.stringify(read.detail)).toBe(JSON.stringify(detail))
        yield* audit.verify({ from: entry.seq })
      })
    )

    it.effect.prop(
      "any JSON detail appended reads back equal and verifies",
      [
        FastCheck.jsonValue({ maxDepth: 3 })
          .map((value) => JSON.parse(JSON.stringify(value)))
          .filter((value) => isJson(value))
      ],
      ([detail]) =>
        Effect.gen(function* () {
          const audit = yield* AuditLogStore
          const entry = yield* audit.append({ actor: "prop", action: "a", resource: "r", detail })
          expect(JSON.stringify((yield* audit.get(entry.id)).detail)).toBe(JSON.stringify(detail))
          yield* audit.verify({ from: entry.seq })
        }),
      { fastCheck: { numRuns: 20 } }
    )

    it.effect("verify from a seq past the head is an IntegrityError naming the missing predecessor", () =>
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const { head } = yield* audit.verify()
        const error = yield* Effect.flip(audit.verify({ from: head.seq + 2 }))
        expect(error).toMatchObject({ _tag: "IntegrityError", entity: "AuditEntry", id: `seq ${head.seq + 1}` })
      })
    )

    it.effect("bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const actor = fresh("bad")
        const valid = { actor, action: "a", resource: "r" }
        const before = (yield* audit.verify()).head
        const inputs: Array<unknown> = [
          { ...valid, actor: "" },
          { ...valid, action: "x".repeat(256) },
          { ...valid, resource: "a\u0000b" },
          { ...valid, sessionId: "\ud800" },
          { ...valid, id: 42 },
          { actor, action: "a" },
          { ...valid, detail: () => 1 },
          { ...valid, detail: new Date(0) },
          { ...valid, detail: { n: Number.NaN } },
          { ...valid, detail: JSON.parse('{"__proto__": {"polluted": true}}') },
          ...BadInput.jsonObjects.map((value) => ({ ...valid, detail: { nested: value } })).slice(0, 12),
          ...BadInput.containers(valid)
        ]
        for (const input of inputs) {
          expect(yield* Effect.flip(audit.append(input as never))).toMatchObject({
            _tag: "InvalidInput",
            entity: "AuditEntry"
          })
        }
        for (const id of BadInput.ids) {
          expect(yield* Effect.flip(audit.get(id as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        for (const options of [{ from: 0 }, { from: 1.5 }, { from: "1" }, null, 7]) {
          expect(yield* Effect.flip(audit.verify(options as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        expect(yield* Effect.flip(audit.list({ from: "yesterday" } as never))).toMatchObject({ _tag: "InvalidInput" })
        expect(yield* Effect.flip(audit.list({ cursor: "nope" }))).toMatchObject({ _tag: "InvalidInput" })
        expect((yield* audit.verify()).head).toEqual(before)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const snapshot = Effect.map(audit.verify(), (v) => v.head)
        yield* BadInput.run(`AuditLogStore (${label})`, snapshot, [
          BadInput.operation("append", AuditInput, (input) => audit.append(input as never)),
          BadInput.operation("list", AuditListOptions, (input) => audit.list(input as never), { optional: true }),
          BadInput.operation("verify", AuditVerifyOptions, (input) => audit.verify(input as never), {
            optional: true
          })
        ])
      })
    )
  })
