/**
 * The coordination stores together, with no LLM: two agents (fibers) take turns on a lock (`LockStore.withLock`,
 * `acquire`) whose fencing tokens a tiny guarded resource checks, so a stale holder's write is refused; one shares
 * a PNG by id (`ImageStore`) in a live session, the other reads it back by that id; a third fiber follows the session
 * (`SessionBroker.subscribe`) and prints each message as it arrives, until the session is closed.
 * Run with `npx tsx examples/live.ts` (an in-memory SQLite database; set AGENT_STORES_DB to use a file).
 */
import { Console, Data, Deferred, Effect, Fiber, Option, Ref, Stream } from "effect"
import { deflateSync } from "node:zlib"
import { StoresSqlite } from "../layers/Stores.ts"
import { imageIdOf, ImageStore, LockStore, type MessagePart, SessionBroker } from "../src/index.ts"

const filename = process.env.AGENT_STORES_DB ?? ":memory:"
const key = "doc/summary"

/** CRC-32 (IEEE), as PNG chunks carry it (`zlib.crc32` only exists from Node 20.15). */
const crc32 = (bytes: Uint8Array): number => {
  let crc = 0xffffffff
  for (const byte of bytes) {
    crc ^= byte
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1
  }
  return (crc ^ 0xffffffff) >>> 0
}

/** A `size`×`size` PNG of one RGBA colour: signature, then IHDR, IDAT (zlib rows) and IEND chunks with CRC-32s. */
const solidPng = (size: number, rgba: ReadonlyArray<number>): Uint8Array => {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data])
    const out = Buffer.alloc(body.length + 8)
    out.writeUInt32BE(data.length, 0)
    body.copy(out, 4)
    out.writeUInt32BE(crc32(body), body.length + 4)
    return out
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(size, 0)
  header.writeUInt32BE(size, 4)
  header.set([8, 6, 0, 0, 0], 8) // 8 bits per channel, RGBA, no interlace
  const row = [0, ...Array.from({ length: size }, () => rgba).flat()] // each row: filter 0, then its pixels
  const pixels = Buffer.from(Array.from({ length: size }, () => row).flat())
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return Buffer.concat([
    signature,
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(pixels)),
    chunk("IEND", Buffer.alloc(0))
  ])
}

/** A write the guarded resource refused: its token is older than one it has seen. */
class StaleToken extends Data.TaggedError("StaleToken")<{ readonly token: number; readonly seen: number }> {}

const program = Effect.gen(function* () {
  const locks = yield* LockStore
  const images = yield* ImageStore
  const broker = yield* SessionBroker
  const session = yield* broker.spawn({ title: "write the summary together" })
  const say = (parts: ReadonlyArray<MessagePart>) => broker.send(session.id, { role: "assistant", parts })
  const text = (who: string, line: string) => say([{ type: "text", text: `${who}: ${line}` }])

  // The guarded resource (think: a file on shared storage) keeps the highest fencing token it has seen.
  const resource = yield* Ref.make({ seen: 0, content: "" })
  const write = (token: number, content: string) =>
    Effect.flatMap(Ref.get(resource), ({ seen }) =>
      token < seen ? new StaleToken({ token, seen }) : Ref.set(resource, { seen: token, content })
    )

  // The third fiber: every message of the session from seq 1, stored then live; the stream ends at `close`.
  const shown = (part: MessagePart) =>
    part.type === "text"
      ? part.text
      : Option.match(imageIdOf(part), { onNone: () => `[${part.type}]`, onSome: (id) => `[image ${id.slice(0, 12)}…]` })
  const watcher = yield* broker.subscribe(session.id, { from: 1 }).pipe(
    Stream.runForEach((m) => Console.log(`  #${m.seq} ${m.parts.map(shown).join(" ")}`)),
    Effect.fork
  )

  // Signals between the agents, so that every step below happens in one order, with no sleep.
  const [aliceHolds, bobTried, bobReviewed, aliceLeased, bobWrote] = yield* Effect.all(
    Array.from({ length: 5 }, () => Deferred.make<void>())
  )

  const alice = Effect.gen(function* () {
    // 1. Under the lock, put a chart and share it by id in the session; hold on until Bob has found the lock taken.
    yield* locks.withLock(
      key,
      (lease) =>
        Effect.gen(function* () {
          const chart = yield* images.put(solidPng(4, [255, 140, 0, 255]), { conversationId: session.id })
          yield* write(lease.token, `chart ${chart.id}`)
          yield* text("alice", `holding ${key} (token ${lease.token}), here is the chart:`)
          yield* say([{ type: "image", image: { imageId: chart.id }, mediaType: chart.mimeType }])
          yield* Deferred.succeed(aliceHolds, undefined)
          yield* Deferred.await(bobTried)
        }),
      { owner: "alice", ttl: "10 seconds" }
    )
    // 2. Once Bob is done, a short lease, then a "pause" (a GC, a slow call) long enough for Bob to take over.
    yield* Deferred.await(bobReviewed)
    const lease = yield* locks.acquire(key, { owner: "alice", ttl: "200 millis" })
    yield* write(lease.token, "alice's draft")
    yield* text("alice", `leased ${key} for 200 ms (token ${lease.token}), wrote a draft, pausing…`)
    yield* Deferred.succeed(aliceLeased, undefined)
    yield* Deferred.await(bobWrote)
    yield* write(lease.token, "alice's late edit").pipe(
      Effect.catchTag("StaleToken", (e) => text("alice", `my write with token ${e.token} was refused (seen ${e.seen})`))
    )
    yield* locks.release(lease).pipe(Effect.catchTag("LockLost", () => text("alice", "and my lease was lost: I stop")))
  })

  const bob = Effect.gen(function* () {
    yield* Deferred.await(aliceHolds)
    yield* locks
      .acquire(key, { owner: "bob", ttl: "10 seconds" })
      .pipe(Effect.catchTag("LockHeld", (e) => text("bob", `${key} is held by ${e.owner}, I'll wait`)))
    yield* Deferred.succeed(bobTried, undefined)
    // 1. Waits for the lock, then reads the chart back by the id found in the session.
    yield* locks.withLock(
      key,
      (lease) =>
        Effect.gen(function* () {
          const history = yield* broker.history(session.id)
          const id = Option.getOrThrow(Option.firstSomeOf(history.flatMap((m) => m.parts.map(imageIdOf))))
          const { bytes, ref } = yield* images.get(id)
          yield* write(lease.token, `review of ${id}`)
          const size = `${ref.mimeType} ${ref.width}×${ref.height}, ${bytes.byteLength} bytes`
          yield* text("bob", `got ${key} (token ${lease.token}), read the chart by id: ${size}`)
        }),
      { owner: "bob", ttl: "10 seconds", wait: "10 seconds" }
    )
    yield* Deferred.succeed(bobReviewed, undefined)
    // 2. Waits out Alice's expired lease, takes the lock over with a newer token and writes.
    yield* Deferred.await(aliceLeased)
    const lease = yield* locks.acquire(key, { owner: "bob", ttl: "10 seconds", wait: "10 seconds" })
    yield* write(lease.token, "bob's final text")
    yield* text("bob", `took ${key} over once it expired (token ${lease.token}), wrote the final text`)
    yield* locks.release(lease)
    yield* Deferred.succeed(bobWrote, undefined)
  })

  yield* Console.log(`session ${session.id}, as the watcher sees it:`)
  yield* Effect.all([alice, bob], { concurrency: "unbounded", discard: true })
  yield* broker.close(session.id)
  yield* Fiber.join(watcher)
  const final = yield* Ref.get(resource)
  yield* Console.log(
    `session closed, the watcher's stream ended; the resource holds "${final.content}" (token ${final.seen})`
  )
})

Effect.runPromise(program.pipe(Effect.provide(StoresSqlite({ filename })))).catch((error) => {
  console.error(error)
  process.exit(1)
})
