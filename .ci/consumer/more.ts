/** The ledger, coordination and memory stores and the broker, on every backend. */
import { Effect } from "effect"
import {
  AuditLogStore,
  EventStore,
  LockStore,
  MemoryMessageStore,
  SessionBroker,
  StorageBackend,
  VectorStore
} from "effect-agent-stores"
import { backends } from "./backends.js"

const more = Effect.gen(function* () {
  const events = yield* EventStore
  const stream = `consumer-${Date.now()}`
  yield* events.append(stream, [{ type: "Started", payload: { n: 1 } }], { expectedVersion: "noStream" })
  const locks = yield* LockStore
  yield* locks.release(yield* locks.acquire(stream, { owner: "consumer", ttl: "10 seconds" }))
  const vectors = yield* VectorStore
  yield* vectors.createCollection(stream, { dimension: 3, metric: "cosine" })
  yield* vectors.upsert(stream, [{ id: "a", vector: new Float32Array([1, 0, 0]) }])
  const hits = yield* vectors.search(stream, new Float32Array([1, 0, 0]), { topK: 1 })
  const audit = yield* AuditLogStore
  yield* audit.append({ actor: "consumer", action: "read", resource: "docs" })
  yield* audit.verify()
  const broker = yield* SessionBroker
  const live = yield* broker.spawn({ agentId: "consumer" })
  yield* broker.send(live.id, { role: "user", parts: [{ type: "text", text: "hi" }] })
  const hot = yield* MemoryMessageStore
  yield* hot.add({ conversationId: stream, role: "user", content: "where is my order" })
  const found = yield* hot.search("my order", { limit: 1, conversationId: stream })
  const backend = yield* StorageBackend
  return `${backend.name}: nearest ${hits[0]?.id}, ${found.length} memory hit`
})

for (const [name, layer] of backends) {
  console.log(`consumer on ${name}: ${await Effect.runPromise(more.pipe(Effect.provide(layer)))}`)
}
