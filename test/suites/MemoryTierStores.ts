/**
 * The memory tier stores' contracts, run against every backend: one suite per
 * store (`messageSuite`, `summarySuite`, `factSuite`, `mentalModelSuite`,
 * `tierMetadataSuite`) and `suite` for all five. The item stores' suites also
 * use `TierMetadataStore` (an item's deletion deletes its tier metadata).
 * Tests share one set of stores per backend, so each uses its own
 * conversation ids, names and item ids.
 */
import { expect, layer } from "@effect/vitest"
import { DateTime, Effect, Layer, Option, Schema, TestClock } from "effect"
import {
  FactInput,
  FactListOptions,
  FactStore,
  MemoryDeleteExpiredOptions,
  MemoryMessageInput,
  MemoryMessageListOptions,
  MemoryMessageStore,
  MemorySearchOptions,
  MentalModelInput,
  MentalModelPatch,
  MentalModelStore,
  SummaryInput,
  SummaryListOptions,
  SummaryStore,
  TierMetadataInput,
  TierMetadataPatch,
  TierMetadataStore
} from "../../src/Memory.ts"
import { PageOptions } from "../../src/Page.ts"
import { UpdateOptions } from "../../src/Record.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

const uuidv7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** Content no backend may change: U+0000, a lone surrogate, astral characters, quotes and backslashes. */
const tricky = 'a\u0000b \ud800 \u{1F600} "quoted" \\ back'

/** A lookup whose only input is an id: a non-string id is `InvalidInput` (a string no item has is unknown). */
const byId = (name: string, run: (id: unknown) => Effect.Effect<unknown, unknown>) =>
  BadInput.operation(name, Schema.String, run)

const ordered = (scores: ReadonlyArray<number>) => scores.every((s, i) => i === 0 || scores[i - 1]! >= s)

/** Runs the `MemoryMessageStore` contract against `stores`. */
export const messageSuite = <E>(label: string, stores: Layer.Layer<MemoryMessageStore | TierMetadataStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`MemoryMessageStore (${label})`, (it) => {
    it.effect("add assigns ids and per-conversation seqs; content and metadata round-trip verbatim", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const conversationId = fresh("conv")
        const other = fresh("conv")
        yield* TestClock.setTime(1_700_000_000_000)
        const first = yield* messages.add({ conversationId, role: "user", content: "hello there" })
        expect(first).toMatchObject({ conversationId, seq: 1, role: "user", content: "hello there", metadata: {} })
        expect(first.id).toMatch(uuidv7)
        expect(first.tokenCount).toBeUndefined()
        expect(first.expiresAt).toBeUndefined()
        expect(DateTime.toEpochMillis(first.createdAt)).toBe(1_700_000_000_000)
        const second = yield* messages.add({
          id: fresh("msg"),
          conversationId,
          role: "assistant",
          content: tricky,
          metadata: { nested: { text: tricky, list: [1, null, true] } },
          tokenCount: 7
        })
        expect(second).toMatchObject({ seq: 2, content: tricky, tokenCount: 7 })
        expect((yield* messages.add({ conversationId: other, role: "user", content: "x" })).seq).toBe(1)
        expect(yield* messages.get(second.id)).toEqual(second)
        expect(yield* messages.find(first.id)).toEqual(Option.some(first))
        expect(yield* messages.find(fresh("missing"))).toEqual(Option.none())
        expect(yield* messages.find("")).toEqual(Option.none())
        expect(yield* Effect.flip(messages.get(fresh("missing")))).toMatchObject({
          _tag: "NotFound",
          entity: "MemoryMessage"
        })
      })
    )

    it.effect("addMany is all or nothing; a taken id is Conflict and writes none", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const conversationId = fresh("conv")
        const added = yield* messages.addMany([
          { conversationId, role: "user", content: "one" },
          { conversationId, role: "assistant", content: "two" },
          { conversationId, role: "user", content: "three" }
        ])
        expect(added.map((m) => [m.seq, m.content])).toEqual([
          [1, "one"],
          [2, "two"],
          [3, "three"]
        ])
        expect(yield* messages.addMany([])).toEqual([])
        const id = fresh("dup")
        const conflict = yield* Effect.flip(
          messages.addMany([
            { conversationId, role: "user", content: "four" },
            { id: added[1]!.id, conversationId, role: "user", content: "five" }
          ])
        )
        expect(conflict).toMatchObject({
          _tag: "Conflict",
          entity: "MemoryMessage",
          id: added[1]!.id,
          reason: "exists"
        })
        const repeated = yield* Effect.flip(
          messages.addMany([
            { id, conversationId, role: "user", content: "a" },
            { id, conversationId, role: "user", content: "b" }
          ])
        )
        expect(repeated).toMatchObject({ _tag: "Conflict", id })
        expect(yield* messages.find(id)).toEqual(Option.none())
        const page = yield* messages.listByConversation(conversationId)
        expect(page.items.map((m) => m.content)).toEqual(["one", "two", "three"])
        const next = yield* messages.add({ conversationId, role: "user", content: "four" })
        expect(next.seq).toBe(4)
      })
    )

    it.effect("concurrent adds to one conversation get distinct, gapless seqs", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const conversationId = fresh("conv")
        const added = yield* Effect.forEach(
          Array.from({ length: 16 }, (_, i) => i),
          (i) =>
            i % 2 === 0
              ? Effect.map(messages.add({ conversationId, role: "user", content: `single ${i}` }), (m) => [m])
              : messages.addMany([
                  { conversationId, role: "user", content: `batch ${i} a` },
                  { conversationId, role: "assistant", content: `batch ${i} b` }
                ]),
          { concurrency: 16 }
        )
        for (const batch of added) if (batch.length === 2) expect(batch[1]!.seq).toBe(batch[0]!.seq + 1)
        const seqs = added.flat().map((m) => m.seq)
        expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1))
        const listed = yield* messages.listByConversation(conversationId)
        expect(listed.items.map((m) => m.seq)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1))
      })
    )

    it.effect("listByConversation pages by seq with keyset cursors, both orders", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const conversationId = fresh("conv")
        yield* messages.addMany(
          Array.from({ length: 7 }, (_, i) => ({ conversationId, role: "user" as const, content: `m${i + 1}` }))
        )
        const first = yield* messages.listByConversation(conversationId, { limit: 3 })
        expect(first.items.map((m) => m.seq)).toEqual([1, 2, 3])
        const second = yield* messages.listByConversation(conversationId, {
          limit: 3,
          cursor: Option.getOrThrow(first.nextCursor)
        })
        expect(second.items.map((m) => m.seq)).toEqual([4, 5, 6])
        const last = yield* messages.listByConversation(conversationId, {
          limit: 3,
          cursor: Option.getOrThrow(second.nextCursor)
        })
        expect(last.items.map((m) => m.seq)).toEqual([7])
        expect(last.nextCursor).toEqual(Option.none())
        const desc = yield* messages.listByConversation(conversationId, { limit: 4, order: "desc" })
        expect(desc.items.map((m) => m.seq)).toEqual([7, 6, 5, 4])
        const offset = yield* messages.listByConversation(conversationId, { offset: 5 })
        expect(offset.items.map((m) => m.seq)).toEqual([6, 7])
        expect((yield* messages.listByConversation(fresh("none"))).items).toEqual([])
        const bad = yield* Effect.flip(messages.listByConversation(conversationId, { cursor: "nope" }))
        expect(bad).toMatchObject({ _tag: "InvalidInput" })
      })
    )

    it.effect("list pages live messages by creation, optionally of one conversation", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const [one, two] = [fresh("conv"), fresh("conv")]
        const at = 9_500_000_000_000
        yield* TestClock.setTime(at)
        const a = yield* messages.add({ conversationId: one, role: "user", content: "a" })
        yield* TestClock.setTime(at + 1)
        const b = yield* messages.add({ conversationId: two, role: "user", content: "b" })
        const gone = yield* messages.add({ conversationId: one, role: "user", content: "gone", ttl: 1 })
        yield* TestClock.setTime(at + 2)
        const c = yield* messages.add({ conversationId: one, role: "user", content: "c" })
        const newest = yield* messages.list({ order: "desc", limit: 2 })
        expect(newest.items).toEqual([c, b])
        const older = yield* messages.list({ order: "desc", limit: 1, cursor: Option.getOrThrow(newest.nextCursor) })
        expect(older.items).toEqual([a])
        expect((yield* messages.list({ conversationId: one })).items).toEqual([a, c])
        expect((yield* messages.list({ conversationId: one, order: "desc", offset: 1 })).items).toEqual([a])
        expect((yield* messages.list({ conversationId: fresh("none") })).items).toEqual([])
        expect(yield* messages.find(gone.id)).toEqual(Option.none())
      })
    )

    it.effect("search ranks by cosine, best first, within a conversation when asked", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const conversationId = fresh("conv")
        const other = fresh("conv")
        yield* messages.addMany([
          { conversationId, role: "user", content: "my order hasn't arrived yet" },
          { conversationId, role: "user", content: "the weather in Lisbon is sunny today" },
          { conversationId, role: "assistant", content: "photosynthesis converts light into chemical energy" },
          { conversationId: other, role: "user", content: "my order hasn't arrived, where is it" }
        ])
        const hits = yield* messages.search("where is my order", { conversationId })
        expect(hits.length).toBe(3)
        expect(hits[0]!.item.content).toBe("my order hasn't arrived yet")
        expect(ordered(hits.map((h) => h.score))).toBe(true)
        expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score)
        const limited = yield* messages.search("where is my order", { conversationId, limit: 1 })
        expect(limited.map((h) => h.item.id)).toEqual([hits[0]!.item.id])
        const strict = yield* messages.search("where is my order", { conversationId, minScore: hits[0]!.score })
        expect(strict.map((h) => h.item.id)).toEqual([hits[0]!.item.id])
        const everywhere = yield* messages.search("where is my order", { limit: 1000 })
        const ids = everywhere.map((h) => h.item.conversationId)
        expect(ids).toContain(conversationId)
        expect(ids).toContain(other)
        expect(ordered(everywhere.map((h) => h.score))).toBe(true)
        expect(yield* messages.search("anything", { conversationId: fresh("none") })).toEqual([])
      })
    )

    it.effect("equal scores are ordered by id", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const conversationId = fresh("conv")
        yield* messages.addMany([
          { id: `${conversationId}-b`, conversationId, role: "user", content: "same words" },
          { id: `${conversationId}-a`, conversationId, role: "user", content: "same words" },
          { id: `${conversationId}-c`, conversationId, role: "user", content: "same words" }
        ])
        const hits = yield* messages.search("same words", { conversationId })
        expect(hits.map((h) => h.item.id)).toEqual(["a", "b", "c"].map((s) => `${conversationId}-${s}`))
      })
    )

    it.effect("expired messages are invisible; deleteExpired removes them and their tier metadata", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const tiers = yield* TierMetadataStore
        const conversationId = fresh("conv")
        yield* TestClock.setTime(9_000_000_000_000)
        while ((yield* messages.deleteExpired({ batch: 10_000 })) > 0) {
          // clear what earlier tests left expired
        }
        yield* TestClock.setTime(10_000)
        const short = yield* messages.add({ conversationId, role: "user", content: "expiring soon", ttl: "1 minute" })
        const long = yield* messages.add({ conversationId, role: "user", content: "expiring later", ttl: 3_600_000 })
        const kept = yield* messages.add({ conversationId, role: "user", content: "never expiring" })
        yield* tiers.addMany([{ itemId: short.id }, { itemId: long.id }, { itemId: kept.id }])
        expect(DateTime.toEpochMillis(short.expiresAt!)).toBe(70_000)
        yield* TestClock.setTime(70_000)
        expect(yield* messages.find(short.id)).toEqual(Option.none())
        expect((yield* messages.listByConversation(conversationId)).items.map((m) => m.id)).toEqual([long.id, kept.id])
        const hits = yield* messages.search("expiring soon", { conversationId })
        expect(hits.map((h) => h.item.id)).not.toContain(short.id)
        expect(yield* messages.deleteExpired()).toBe(1)
        expect((yield* tiers.getMany([short.id, long.id, kept.id])).map((m) => m.itemId)).toEqual([long.id, kept.id])
        yield* TestClock.setTime(10_000_000)
        expect(yield* messages.deleteExpired({ batch: 5 })).toBe(1)
        expect(yield* messages.deleteExpired()).toBe(0)
        expect((yield* tiers.getMany([short.id, long.id, kept.id])).map((m) => m.itemId)).toEqual([kept.id])
        expect((yield* messages.listByConversation(conversationId)).items.map((m) => m.id)).toEqual([kept.id])
      })
    )

    it.effect("delete and deleteByConversation delete the messages and their tier metadata only", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const tiers = yield* TierMetadataStore
        const conversationId = fresh("conv")
        const other = fresh("conv")
        const mine = yield* messages.addMany([
          { conversationId, role: "user", content: "a" },
          { conversationId, role: "user", content: "b" },
          { conversationId, role: "user", content: "c" }
        ])
        const theirs = yield* messages.add({ conversationId: other, role: "user", content: "d" })
        yield* tiers.addMany([...mine, theirs].map((m) => ({ itemId: m.id })))
        expect(yield* messages.delete(mine[0]!.id)).toBe(true)
        expect(yield* messages.delete(mine[0]!.id)).toBe(false)
        expect(yield* tiers.getMany([mine[0]!.id])).toEqual([])
        expect(yield* messages.deleteByConversation(conversationId)).toBe(2)
        expect(yield* messages.deleteByConversation(conversationId)).toBe(0)
        expect((yield* messages.listByConversation(conversationId)).items).toEqual([])
        expect(yield* tiers.getMany(mine.map((m) => m.id))).toEqual([])
        expect((yield* tiers.getMany([theirs.id])).length).toBe(1)
        expect((yield* messages.get(theirs.id)).content).toBe("d")
        const after = yield* messages.add({ conversationId, role: "user", content: "again" })
        expect(after.seq).toBe(4)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const messages = yield* MemoryMessageStore
        const conversationId = fresh("bad-input")
        yield* messages.add({ conversationId, role: "user", content: "kept" })
        const snapshot = Effect.map(messages.listByConversation(conversationId, { limit: 1000 }), (page) =>
          page.items.map((m) => [m.id, m.seq, m.content])
        )
        yield* BadInput.run(`MemoryMessageStore (${label})`, snapshot, [
          BadInput.operation("add", MemoryMessageInput, (input) => messages.add(input as never)),
          BadInput.operation("addMany", MemoryMessageInput, (input) => messages.addMany([input as never])),
          BadInput.operation(
            "listByConversation",
            PageOptions,
            (input) => messages.listByConversation(conversationId, input as never),
            { id: (id) => messages.listByConversation(id as never), optional: true }
          ),
          BadInput.operation("list", MemoryMessageListOptions, (input) => messages.list(input as never), {
            optional: true
          }),
          BadInput.operation("search", MemorySearchOptions, (input) => messages.search("kept", input as never), {
            id: (text) => messages.search(text as never),
            optional: true
          }),
          BadInput.operation(
            "deleteExpired",
            MemoryDeleteExpiredOptions,
            (input) => messages.deleteExpired(input as never),
            { optional: true }
          ),
          byId("get", (id) => messages.get(id as never)),
          byId("delete", (id) => messages.delete(id as never)),
          byId("deleteByConversation", (id) => messages.deleteByConversation(id as never))
        ])
        for (const bad of [{}, "", 42, null]) {
          expect(yield* Effect.flip(messages.search(bad as never))).toMatchObject({ _tag: "InvalidInput" })
        }
        expect(yield* Effect.flip(messages.addMany("x" as never))).toMatchObject({ _tag: "InvalidInput" })
        const tooMany = Array.from({ length: 1001 }, () => ({ conversationId, role: "user", content: "x" }))
        expect(yield* Effect.flip(messages.addMany(tooMany as never))).toMatchObject({ _tag: "InvalidInput" })
        expect(yield* snapshot).toHaveLength(1)
      })
    )
  })

/** Runs the `SummaryStore` contract against `stores`. */
export const summarySuite = <E>(label: string, stores: Layer.Layer<SummaryStore | TierMetadataStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`SummaryStore (${label})`, (it) => {
    it.effect("add, get, list and search summaries of seq ranges", () =>
      Effect.gen(function* () {
        const summaries = yield* SummaryStore
        const conversationId = fresh("conv")
        yield* TestClock.setTime(5_000)
        const a = yield* summaries.add({
          conversationId,
          fromSeq: 1,
          toSeq: 20,
          content: "the user planned a trip to Japan"
        })
        expect(a).toMatchObject({ conversationId, fromSeq: 1, toSeq: 20, metadata: {} })
        expect(a.id).toMatch(uuidv7)
        expect(DateTime.toEpochMillis(a.createdAt)).toBe(5_000)
        yield* TestClock.setTime(6_000)
        const b = yield* summaries.add({
          conversationId,
          fromSeq: 21,
          toSeq: 21,
          content: tricky,
          metadata: { by: "stub" }
        })
        const c = yield* summaries.add({ conversationId: fresh("conv"), fromSeq: 0, toSeq: 3, content: "unrelated" })
        expect(yield* summaries.get(b.id)).toEqual(b)
        expect(yield* summaries.find(fresh("none"))).toEqual(Option.none())
        expect((yield* summaries.list({ conversationId })).items).toEqual([a, b])
        const first = yield* summaries.list({ conversationId, limit: 1 })
        expect(first.items).toEqual([a])
        const rest = yield* summaries.list({ conversationId, cursor: Option.getOrThrow(first.nextCursor) })
        expect(rest.items).toEqual([b])
        const all = yield* summaries.list({ limit: 1000, order: "desc" })
        expect(all.items.map((s) => s.id)).toEqual(expect.arrayContaining([a.id, b.id, c.id]))
        const hits = yield* summaries.search("trip to Japan", { conversationId })
        expect(hits[0]!.item).toEqual(a)
        expect(hits.map((h) => h.item.id)).not.toContain(c.id)
        const dup = yield* Effect.flip(summaries.add({ id: a.id, conversationId, fromSeq: 1, toSeq: 1, content: "x" }))
        expect(dup).toMatchObject({ _tag: "Conflict", entity: "Summary", id: a.id, reason: "exists" })
        const range = yield* Effect.flip(summaries.add({ conversationId, fromSeq: 5, toSeq: 4, content: "x" }))
        expect(range).toMatchObject({ _tag: "InvalidInput", entity: "Summary", message: "toSeq must be ≥ fromSeq" })
        expect((yield* summaries.list({ conversationId })).items).toHaveLength(2)
      })
    )

    it.effect("addMany is all or nothing; errors name the item", () =>
      Effect.gen(function* () {
        const summaries = yield* SummaryStore
        const conversationId = fresh("conv")
        const added = yield* summaries.addMany([
          { conversationId, fromSeq: 1, toSeq: 2, content: "first part" },
          { conversationId, fromSeq: 3, toSeq: 4, content: "second part" }
        ])
        expect((yield* summaries.list({ conversationId })).items).toEqual(added)
        const range = yield* Effect.flip(
          summaries.addMany([
            { conversationId, fromSeq: 5, toSeq: 6, content: "x" },
            { conversationId, fromSeq: 8, toSeq: 7, content: "y" }
          ])
        )
        expect(range).toMatchObject({ _tag: "InvalidInput", message: "[1].toSeq must be ≥ fromSeq" })
        const dup = yield* Effect.flip(
          summaries.addMany([
            { conversationId, fromSeq: 5, toSeq: 6, content: "x" },
            { id: added[0]!.id, conversationId, fromSeq: 7, toSeq: 8, content: "y" }
          ])
        )
        expect(dup).toMatchObject({ _tag: "Conflict", id: added[0]!.id })
        expect((yield* summaries.list({ conversationId })).items).toEqual(added)
        expect(yield* summaries.addMany([])).toEqual([])
      })
    )

    it.effect("delete and deleteByConversation delete the summaries and their tier metadata", () =>
      Effect.gen(function* () {
        const summaries = yield* SummaryStore
        const tiers = yield* TierMetadataStore
        const conversationId = fresh("conv")
        const one = yield* summaries.add({ conversationId, fromSeq: 1, toSeq: 2, content: "one" })
        const two = yield* summaries.add({ conversationId, fromSeq: 3, toSeq: 4, content: "two" })
        yield* tiers.addMany([
          { itemId: one.id, tier: "warm" },
          { itemId: two.id, tier: "warm" }
        ])
        expect(yield* summaries.delete(one.id)).toBe(true)
        expect(yield* summaries.delete(one.id)).toBe(false)
        expect(yield* tiers.getMany([one.id, two.id])).toMatchObject([{ itemId: two.id }])
        expect(yield* summaries.deleteByConversation(conversationId)).toBe(1)
        expect(yield* tiers.getMany([two.id])).toEqual([])
        expect((yield* summaries.list({ conversationId })).items).toEqual([])
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const summaries = yield* SummaryStore
        const conversationId = fresh("bad-input")
        yield* summaries.add({ conversationId, fromSeq: 1, toSeq: 2, content: "kept" })
        const snapshot = Effect.map(summaries.list({ limit: 1000 }), (page) => page.items.map((s) => s.id))
        yield* BadInput.run(`SummaryStore (${label})`, snapshot, [
          BadInput.operation("add", SummaryInput, (input) => summaries.add(input as never)),
          BadInput.operation("addMany", SummaryInput, (input) => summaries.addMany([input as never])),
          BadInput.operation("list", SummaryListOptions, (input) => summaries.list(input as never), { optional: true }),
          BadInput.operation("search", MemorySearchOptions, (input) => summaries.search("kept", input as never), {
            id: (text) => summaries.search(text as never),
            optional: true
          }),
          byId("get", (id) => summaries.get(id as never)),
          byId("deleteByConversation", (id) => summaries.deleteByConversation(id as never))
        ])
      })
    )
  })

/** Runs the `FactStore` contract against `stores`. */
export const factSuite = <E>(label: string, stores: Layer.Layer<FactStore | TierMetadataStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`FactStore (${label})`, (it) => {
    it.effect("facts carry kind, importance and source message ids; list filters; search ranks", () =>
      Effect.gen(function* () {
        const facts = yield* FactStore
        const conversationId = fresh("conv")
        const a = yield* facts.add({
          conversationId,
          content: "the user prefers dark roast coffee",
          kind: "preference",
          importance: 0.9,
          sourceMessageIds: ["m1", "m2"]
        })
        expect(a).toMatchObject({ kind: "preference", importance: 0.9, sourceMessageIds: ["m1", "m2"], metadata: {} })
        const b = yield* facts.add({ conversationId, content: tricky })
        expect(b).toMatchObject({ kind: "other", importance: 0.5, sourceMessageIds: [], content: tricky })
        const c = yield* facts.add({ conversationId, content: "deploys go out on Tuesdays", kind: "decision" })
        expect(yield* facts.get(a.id)).toEqual(a)
        expect((yield* facts.list({ conversationId })).items).toEqual([a, b, c])
        expect((yield* facts.list({ conversationId, kind: "decision" })).items).toEqual([c])
        const hits = yield* facts.search("which coffee does the user like", { conversationId })
        expect(hits[0]!.item).toEqual(a)
        expect(hits.every((h) => h.score >= -1 && h.score <= 1 + 1e-6)).toBe(true)
        const dup = yield* Effect.flip(facts.add({ id: c.id, conversationId, content: "x" }))
        expect(dup).toMatchObject({ _tag: "Conflict", entity: "Fact", id: c.id })
        for (const importance of [-0.1, 1.1, Number.NaN, "high"]) {
          const error = yield* Effect.flip(facts.add({ conversationId, content: "x", importance } as never))
          expect(error).toMatchObject({ _tag: "InvalidInput", entity: "Fact" })
        }
        expect((yield* facts.list({ conversationId })).items).toHaveLength(3)
      })
    )

    it.effect("delete and deleteByConversation delete the facts and their tier metadata", () =>
      Effect.gen(function* () {
        const facts = yield* FactStore
        const tiers = yield* TierMetadataStore
        const conversationId = fresh("conv")
        const kept = yield* facts.add({ conversationId: fresh("conv"), content: "kept" })
        const [one, two] = yield* facts.addMany([
          { conversationId, content: "one" },
          { conversationId, content: "two", importance: 1 }
        ])
        expect(
          yield* Effect.flip(
            facts.addMany([
              { conversationId, content: "three" },
              { id: one!.id, conversationId, content: "x" }
            ])
          )
        ).toMatchObject({ _tag: "Conflict", entity: "Fact", id: one!.id })
        expect((yield* facts.list({ conversationId })).items).toEqual([one, two])
        yield* tiers.addMany([one!, two!, kept].map((f) => ({ itemId: f.id, tier: "cold" as const })))
        expect(yield* facts.delete(one!.id)).toBe(true)
        expect(yield* facts.deleteByConversation(conversationId)).toBe(1)
        expect(yield* tiers.getMany([one!.id, two!.id, kept.id])).toMatchObject([{ itemId: kept.id }])
        expect(yield* facts.get(kept.id)).toEqual(kept)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const facts = yield* FactStore
        const conversationId = fresh("bad-input")
        yield* facts.add({ conversationId, content: "kept" })
        const snapshot = Effect.map(facts.list({ limit: 1000 }), (page) => page.items.map((s) => s.id))
        yield* BadInput.run(`FactStore (${label})`, snapshot, [
          BadInput.operation("add", FactInput, (input) => facts.add(input as never)),
          BadInput.operation("addMany", FactInput, (input) => facts.addMany([input as never])),
          BadInput.operation("list", FactListOptions, (input) => facts.list(input as never), { optional: true }),
          BadInput.operation("search", MemorySearchOptions, (input) => facts.search("kept", input as never), {
            id: (text) => facts.search(text as never),
            optional: true
          }),
          byId("delete", (id) => facts.delete(id as never))
        ])
      })
    )
  })

/** Runs the `MentalModelStore` contract against `stores`. */
export const mentalModelSuite = <E>(label: string, stores: Layer.Layer<MentalModelStore | TierMetadataStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`MentalModelStore (${label})`, (it) => {
    it.effect("named models: add, update keeps history, get by id and name, search the current version", () =>
      Effect.gen(function* () {
        const models = yield* MentalModelStore
        const name = fresh("user-profile")
        yield* TestClock.setTime(1_000)
        const v1 = yield* models.add({ name, content: "the user is a gardener who grows tomatoes" })
        expect(v1).toMatchObject({ name, version: 1, metadata: {} })
        expect(v1.id).toMatch(uuidv7)
        yield* TestClock.setTime(2_000)
        const v2 = yield* models.update(v1.id, { content: "the user is a violinist in an orchestra" })
        expect(v2).toMatchObject({ id: v1.id, name, version: 2, content: "the user is a violinist in an orchestra" })
        expect(DateTime.toEpochMillis(v2.createdAt)).toBe(1_000)
        expect(DateTime.toEpochMillis(v2.updatedAt)).toBe(2_000)
        const v3 = yield* models.update(v1.id, { metadata: { source: tricky } }, { expectedVersion: 2 })
        expect(v3).toMatchObject({ version: 3, content: v2.content, metadata: { source: tricky } })
        expect(yield* models.get(v1.id)).toEqual(v3)
        expect(yield* models.getByName(name)).toEqual(v3)
        expect(yield* Effect.flip(models.getByName(fresh("none")))).toMatchObject({ _tag: "NotFound" })
        const history = yield* models.history(v1.id)
        expect(history.map((h) => [h.version, h.content])).toEqual([
          [1, v1.content],
          [2, v2.content],
          [3, v2.content]
        ])
        expect(history.map((h) => DateTime.toEpochMillis(h.createdAt))).toEqual([1_000, 2_000, 2_000])
        const stale = yield* Effect.flip(models.update(v1.id, { content: "x" }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", entity: "MentalModel", expected: 1, actual: 3 })
        const other = yield* models.add({ name: fresh("garden"), content: "tomatoes need full sun and water" })
        const hits = yield* models.search("violinist orchestra", { limit: 1000 })
        expect(hits[0]!.item.id).toBe(v1.id)
        const garden = yield* models.search("grows tomatoes gardener", { limit: 1000 })
        expect(garden[0]!.item.id).toBe(other.id)
        const named = yield* Effect.flip(models.add({ name, content: "again" }))
        expect(named).toMatchObject({ _tag: "Conflict", entity: "MentalModel", id: name, reason: "exists" })
        const byId = yield* Effect.flip(models.add({ id: v1.id, name: fresh("n"), content: "again" }))
        expect(byId).toMatchObject({ _tag: "Conflict", id: v1.id })
        expect(yield* Effect.flip(models.update(fresh("none"), { content: "x" }))).toMatchObject({ _tag: "NotFound" })
        const listed = yield* models.list({ limit: 1000 })
        expect(listed.items.map((m) => m.id)).toEqual(expect.arrayContaining([v1.id, other.id]))
      })
    )

    it.effect("concurrent updates lose no version", () =>
      Effect.gen(function* () {
        const models = yield* MentalModelStore
        const model = yield* models.add({ name: fresh("busy"), content: "v1" })
        yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => i),
          (i) => models.update(model.id, { content: `update ${i}` }),
          { concurrency: "unbounded" }
        )
        expect((yield* models.get(model.id)).version).toBe(13)
        expect((yield* models.history(model.id)).map((h) => h.version)).toEqual(
          Array.from({ length: 13 }, (_, i) => i + 1)
        )
      })
    )

    it.effect("delete removes the model, its history and its tier metadata", () =>
      Effect.gen(function* () {
        const models = yield* MentalModelStore
        const tiers = yield* TierMetadataStore
        const model = yield* models.add({ name: fresh("gone"), content: "soon gone" })
        yield* models.update(model.id, { content: "still going" })
        yield* tiers.add({ itemId: model.id, tier: "mental_model", authority: "canonical" })
        expect(yield* models.delete(model.id)).toBe(true)
        expect(yield* models.delete(model.id)).toBe(false)
        expect(yield* Effect.flip(models.history(model.id))).toMatchObject({ _tag: "NotFound" })
        expect(yield* tiers.getMany([model.id])).toEqual([])
        const again = yield* models.add({ name: model.name, content: "reborn" })
        expect(again.version).toBe(1)
        expect((yield* models.history(again.id)).length).toBe(1)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const models = yield* MentalModelStore
        const kept = yield* models.add({ name: fresh("bad-input"), content: "kept" })
        const snapshot = Effect.map(models.list({ limit: 1000 }), (page) => page.items.map((m) => [m.id, m.version]))
        yield* BadInput.run(`MentalModelStore (${label})`, snapshot, [
          BadInput.operation("add", MentalModelInput, (input) => models.add(input as never)),
          BadInput.operation("update", MentalModelPatch, (input) => models.update(kept.id, input as never), {
            id: (id) => models.update(id as never, {}),
            options: { schema: UpdateOptions, run: (options) => models.update(kept.id, {}, options as never) }
          }),
          BadInput.operation("list", PageOptions, (input) => models.list(input as never), { optional: true }),
          BadInput.operation("search", MemorySearchOptions, (input) => models.search("kept", input as never), {
            id: (text) => models.search(text as never),
            optional: true
          }),
          byId("history", (id) => models.history(id as never)),
          byId("getByName", (id) => models.getByName(id as never))
        ])
      })
    )
  })

/** Runs the `TierMetadataStore` contract against `stores`. */
export const tierMetadataSuite = <E>(label: string, stores: Layer.Layer<TierMetadataStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`TierMetadataStore (${label})`, (it) => {
    it.effect("add with defaults, get, getMany in the order given, Conflict on a second add", () =>
      Effect.gen(function* () {
        const tiers = yield* TierMetadataStore
        const [a, b, c] = [fresh("item"), fresh("item"), fresh("item")]
        yield* TestClock.setTime(3_000)
        const first = yield* tiers.add({ itemId: a })
        expect(first).toMatchObject({ itemId: a, tier: "hot", importance: 0.5, authority: "session", accessCount: 0 })
        expect(first.version).toBe(1)
        expect(DateTime.toEpochMillis(first.lastAccessed)).toBe(3_000)
        const many = yield* tiers.addMany([
          { itemId: b, tier: "cold", importance: 0.25, authority: "canonical" },
          { itemId: c, tier: "mental_model", authority: "tool:calendar" }
        ])
        expect(many.map((m) => [m.tier, m.authority])).toEqual([
          ["cold", "canonical"],
          ["mental_model", "tool:calendar"]
        ])
        expect(yield* tiers.get(b)).toEqual(many[0])
        expect((yield* tiers.getMany([c, fresh("none"), a, c, ""])).map((m) => m.itemId)).toEqual([c, a])
        expect(yield* tiers.getMany([])).toEqual([])
        expect(yield* Effect.flip(tiers.add({ itemId: a }))).toMatchObject({
          _tag: "Conflict",
          entity: "TierMetadata",
          id: a,
          reason: "exists"
        })
        const d = fresh("item")
        expect(yield* Effect.flip(tiers.addMany([{ itemId: d }, { itemId: b }]))).toMatchObject({
          _tag: "Conflict",
          id: b
        })
        expect(yield* Effect.flip(tiers.addMany([{ itemId: d }, { itemId: d }]))).toMatchObject({
          _tag: "Conflict",
          id: d
        })
        expect(yield* tiers.getMany([d])).toEqual([])
        expect(yield* Effect.flip(tiers.get(d))).toMatchObject({ _tag: "NotFound", entity: "TierMetadata", id: d })
      })
    )

    it.effect("update is versioned and keeps access statistics; recordAccess does not bump version", () =>
      Effect.gen(function* () {
        const tiers = yield* TierMetadataStore
        const id = fresh("item")
        yield* TestClock.setTime(1_000)
        yield* tiers.add({ itemId: id })
        yield* TestClock.setTime(2_000)
        expect(yield* tiers.recordAccess([id, id])).toBe(1)
        const demoted = yield* tiers.update(id, { tier: "warm", importance: 0.8 }, { expectedVersion: 1 })
        expect(demoted).toMatchObject({
          tier: "warm",
          importance: 0.8,
          authority: "session",
          accessCount: 1,
          version: 2
        })
        expect(DateTime.toEpochMillis(demoted.lastAccessed)).toBe(2_000)
        expect(DateTime.toEpochMillis(demoted.updatedAt)).toBe(2_000)
        const stale = yield* Effect.flip(tiers.update(id, { tier: "cold" }, { expectedVersion: 1 }))
        expect(stale).toMatchObject({ _tag: "Conflict", expected: 1, actual: 2 })
        yield* TestClock.setTime(1_500)
        yield* tiers.recordAccess([id])
        const read = yield* tiers.get(id)
        expect(read).toMatchObject({ accessCount: 2, version: 2 })
        expect(DateTime.toEpochMillis(read.lastAccessed)).toBe(2_000)
        expect(yield* Effect.flip(tiers.update(fresh("none"), { tier: "cold" }))).toMatchObject({ _tag: "NotFound" })
        expect(yield* tiers.delete(id)).toBe(true)
        expect(yield* tiers.delete(id)).toBe(false)
        expect(yield* tiers.recordAccess([id])).toBe(0)
      })
    )

    it.effect("recordAccess from 16 fibers loses no access", () =>
      Effect.gen(function* () {
        const tiers = yield* TierMetadataStore
        const ids = [fresh("hot"), fresh("hot"), fresh("hot")]
        yield* tiers.addMany(ids.map((itemId) => ({ itemId })))
        yield* Effect.forEach(
          Array.from({ length: 16 }, (_, fiber) => fiber),
          (fiber) =>
            Effect.forEach(
              Array.from({ length: 10 }, (_, i) => i),
              (i) =>
                Effect.zipRight(
                  TestClock.setTime(10_000 + fiber * 100 + i),
                  tiers.recordAccess(i % 2 === 0 ? ids : [ids[0]!])
                ),
              { discard: true }
            ),
          { concurrency: 16, discard: true }
        )
        const after = yield* tiers.getMany(ids)
        expect(after.map((m) => m.accessCount)).toEqual([160, 80, 80])
        expect(after.every((m) => m.version === 1)).toBe(true)
      })
    )

    it.effect("listByTier pages by creation; count and countByTier", () =>
      Effect.gen(function* () {
        const tiers = yield* TierMetadataStore
        const before = yield* tiers.countByTier()
        const total = yield* tiers.count()
        expect(total).toBe(before.hot + before.warm + before.cold + before.mental_model)
        yield* TestClock.setTime(8_000_000_000_000)
        const warm = [fresh("w"), fresh("w"), fresh("w")]
        for (const [i, itemId] of warm.entries()) {
          yield* TestClock.setTime(8_000_000_000_000 + i)
          yield* tiers.add({ itemId, tier: "warm" })
        }
        yield* tiers.add({ itemId: fresh("c"), tier: "cold" })
        const after = yield* tiers.countByTier()
        expect(after).toEqual({ ...before, warm: before.warm + 3, cold: before.cold + 1 })
        expect(yield* tiers.count("warm")).toBe(before.warm + 3)
        expect(yield* tiers.count()).toBe(total + 4)
        const last = yield* tiers.listByTier("warm", { order: "desc", limit: 2 })
        expect(last.items.map((m) => m.itemId)).toEqual([warm[2], warm[1]])
        const next = yield* tiers.listByTier("warm", {
          order: "desc",
          limit: 1,
          cursor: Option.getOrThrow(last.nextCursor)
        })
        expect(next.items.map((m) => m.itemId)).toEqual([warm[0]])
        expect(yield* Effect.flip(tiers.listByTier("lukewarm" as never))).toMatchObject({ _tag: "InvalidInput" })
        expect(yield* Effect.flip(tiers.count("lukewarm" as never))).toMatchObject({ _tag: "InvalidInput" })
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const tiers = yield* TierMetadataStore
        const kept = fresh("bad-input")
        yield* tiers.add({ itemId: kept })
        const snapshot = Effect.all([tiers.countByTier(), tiers.getMany([kept])])
        yield* BadInput.run(`TierMetadataStore (${label})`, snapshot, [
          BadInput.operation("add", TierMetadataInput, (input) => tiers.add(input as never)),
          BadInput.operation("addMany", TierMetadataInput, (input) => tiers.addMany([input as never])),
          BadInput.operation("update", TierMetadataPatch, (input) => tiers.update(kept, input as never), {
            id: (id) => tiers.update(id as never, {}),
            options: { schema: UpdateOptions, run: (options) => tiers.update(kept, {}, options as never) }
          }),
          BadInput.operation("listByTier", PageOptions, (input) => tiers.listByTier("hot", input as never), {
            optional: true
          }),
          byId("get", (id) => tiers.get(id as never)),
          byId("delete", (id) => tiers.delete(id as never))
        ])
        for (const bad of ["x", [1], [null], { length: 1 }, Array.from({ length: 1001 }, () => "a")]) {
          expect(yield* Effect.flip(tiers.recordAccess(bad as never))).toMatchObject({ _tag: "InvalidInput" })
          expect(yield* Effect.flip(tiers.getMany(bad as never))).toMatchObject({ _tag: "InvalidInput" })
        }
      })
    )
  })

/** Runs the contracts of all five tier stores against `stores`. */
export const suite = <E>(
  label: string,
  stores: Layer.Layer<MemoryMessageStore | SummaryStore | FactStore | MentalModelStore | TierMetadataStore, E>
) => {
  messageSuite(label, stores)
  summarySuite(label, stores)
  factSuite(label, stores)
  mentalModelSuite(label, stores)
  tierMetadataSuite(label, stores)
}
