/**
 * Tiered agent memory with no LLM: a support conversation flows into the hot tier; the older messages are
 * summarised into the warm tier and their key facts into the cold tier (by stub functions standing in for a
 * model), then leave the hot tier; a customer profile is kept as a versioned mental model; and a question is
 * answered by searching every tier, recording the access of what was used.
 * Run with `npx tsx examples/memory.ts` (an in-memory SQLite database; set AGENT_STORES_DB to use a file).
 */
import { Console, Effect, Layer } from "effect"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlTierStores from "../layers/sql/SqlTierStores.ts"
import * as Embeddings from "../src/Embeddings.ts"
import {
  FactStore,
  type MemoryMessage,
  MemoryMessageStore,
  MentalModelStore,
  SummaryStore,
  type MemoryTier,
  TierMetadataStore
} from "../src/Memory.ts"

const filename = process.env.AGENT_STORES_DB ?? ":memory:"
const conversationId = `support-${Date.now().toString(36)}`

/** The conversation so far. */
const transcript: ReadonlyArray<readonly ["user" | "assistant", string]> = [
  ["user", "Hi, I ordered a standing desk last week, order number 4471."],
  ["assistant", "Thanks! I can see order 4471 for a standing desk, shipped on Monday."],
  ["user", "I prefer deliveries to my office at 12 Rua Augusta, Lisbon, not my home."],
  ["assistant", "Noted: deliveries go to the office at 12 Rua Augusta, Lisbon."],
  ["user", "Also, please never call me, I prefer email."],
  ["assistant", "Understood, we will contact you by email only."],
  ["user", "The desk should come with a cable tray, is that included?"],
  ["assistant", "Yes, the cable tray is included in the box."],
  ["user", "Great. Will it arrive before Friday?"],
  ["assistant", "The carrier estimates Thursday."],
  ["user", "Perfect, thank you."],
  ["assistant", "You're welcome! Anything else?"]
]

/** Stub summariser: the user's messages of the range, shortened (a model would write prose). */
const summarise = (messages: ReadonlyArray<MemoryMessage>): string =>
  "Customer said: " +
  messages
    .filter((m) => m.role === "user")
    .map((m) => m.content.replace(/[.!?].*$/, ""))
    .join("; ")

/** Stub fact extractor: sentences stating a preference or an identifier (a model would do better). */
const extractFacts = (messages: ReadonlyArray<MemoryMessage>) =>
  messages
    .filter((m) => m.role === "user" && /prefer|order number/i.test(m.content))
    .map((m) => ({
      content: m.content,
      kind: /prefer/i.test(m.content) ? "preference" : "definition",
      importance: /prefer/i.test(m.content) ? 0.9 : 0.6,
      sourceMessageIds: [m.id]
    }))

/** One search hit from any tier, for the answer's context. */
interface Hit {
  readonly tier: MemoryTier
  readonly id: string
  readonly text: string
  readonly score: number
}

const program = Effect.gen(function* () {
  const messages = yield* MemoryMessageStore
  const summaries = yield* SummaryStore
  const facts = yield* FactStore
  const models = yield* MentalModelStore
  const tiers = yield* TierMetadataStore

  // 1. Messages flow into the hot tier.
  const added = yield* messages.addMany(transcript.map(([role, content]) => ({ conversationId, role, content })))
  yield* tiers.addMany(added.map((m) => ({ itemId: m.id, tier: "hot" as const })))
  yield* Console.log(`hot tier: ${added.length} messages (seq ${added[0]!.seq}..${added.at(-1)!.seq})`)

  // 2. Consolidation: all but the last four messages are summarised (warm) and mined for facts (cold).
  const old = added.slice(0, -4)
  const summary = yield* summaries.add({
    conversationId,
    fromSeq: old[0]!.seq,
    toSeq: old.at(-1)!.seq,
    content: summarise(old),
    metadata: { by: "stub-summariser" }
  })
  yield* tiers.add({ itemId: summary.id, tier: "warm", importance: 0.6 })
  for (const fact of extractFacts(old)) {
    const stored = yield* facts.add({ conversationId, ...fact })
    yield* tiers.add({ itemId: stored.id, tier: "cold", importance: stored.importance, authority: "canonical" })
  }
  for (const message of old) yield* messages.delete(message.id)
  yield* Console.log(`warm tier: "${summary.content}" (seq ${summary.fromSeq}..${summary.toSeq})`)

  // 3. A mental model of the customer, revised as facts arrive (every version kept).
  const profile = yield* models.add({ name: `customer:${conversationId}`, content: "Customer with a desk order." })
  yield* models.update(profile.id, {
    content: "Customer prefers email, deliveries to the office at Rua Augusta in Lisbon; ordered a standing desk."
  })
  yield* tiers.add({ itemId: profile.id, tier: "mental_model", authority: "canonical" })
  yield* Console.log(`mental model: ${(yield* models.history(profile.id)).length} versions`)
  yield* Console.log(`tiers: ${JSON.stringify(yield* tiers.countByTier())}`)

  // 4. A question answered by searching every tier.
  const question = "Where do deliveries go, and does the customer prefer email or a call?"
  const options = { conversationId, limit: 2 }
  const hits: Array<Hit> = [
    ...(yield* messages.search(question, options)).map((h) => ({
      tier: "hot" as const,
      id: h.item.id,
      text: h.item.content,
      score: h.score
    })),
    ...(yield* summaries.search(question, options)).map((h) => ({
      tier: "warm" as const,
      id: h.item.id,
      text: h.item.content,
      score: h.score
    })),
    ...(yield* facts.search(question, options)).map((h) => ({
      tier: "cold" as const,
      id: h.item.id,
      text: h.item.content,
      score: h.score
    })),
    ...(yield* models.search(question, { limit: 1 })).map((h) => ({
      tier: "mental_model" as const,
      id: h.item.id,
      text: h.item.content,
      score: h.score
    }))
  ]
  hits.sort((a, b) => b.score - a.score)
  const context = hits.slice(0, 5)
  yield* tiers.recordAccess(context.map((hit) => hit.id))
  yield* Console.log(`\nQ: ${question}`)
  for (const hit of context) yield* Console.log(`  [${hit.tier} ${hit.score.toFixed(3)}] ${hit.text}`)
  if (!context.some((hit) => hit.tier === "cold" && hit.text.includes("email"))) {
    return yield* Effect.dieMessage("the email preference was not found among the answer's context")
  }
  const used = yield* tiers.getMany(context.map((hit) => hit.id))
  yield* Console.log(`accessed: ${used.map((m) => `${m.tier}×${m.accessCount}`).join(", ")}`)
})

const stores = SqlTierStores.layerWith().pipe(
  Layer.provide(Embeddings.layerLocal()),
  Layer.provide(SqliteDatabase.layer({ filename }))
)

Effect.runPromise(program.pipe(Effect.provide(stores))).catch((error) => {
  console.error(error)
  process.exit(1)
})
