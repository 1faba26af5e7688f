/**
 * `SessionBroker` across processes on PostgreSQL: a subscriber in one process receives what another sends, by
 * `LISTEN`/`NOTIFY` (both brokers poll once an hour, so nothing arrives by polling within the test), in order, and
 * its stream ends when the other process closes the session. Skipped loudly without a server.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, ManagedRuntime, Stream } from "effect"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { tablesOf } from "../layers/Registry.ts"
import * as Broker from "../layers/SessionBroker.ts"
import { StoresPg } from "../layers/Stores.ts"
import { SessionBroker } from "../src/Broker.ts"
import { Child } from "./child.ts"
import { pgReady, pgUrl } from "./pg.ts"

const child = fileURLToPath(new URL("./fixtures/broker-child.ts", import.meta.url))
const tablePrefix = `bp${process.pid}_${Date.now().toString(36)}`
const count = 20

const text = (value: string) => ({ role: "user" as const, parts: [{ type: "text" as const, text: value }] })

if ((await pgReady("SessionBroker cross-process test")) !== undefined) {
  describe.skip("SessionBroker across processes (postgres)", () => it("needs a reachable server", () => {}))
} else {
  const runtime = ManagedRuntime.make(
    Broker.layerWith({ tablePrefix, poll: "1 hour" }).pipe(
      Layer.provideMerge(StoresPg({ url: pgUrl, tablePrefix, maxConnections: 4 }))
    )
  )
  afterAll(async () => {
    await runtime.dispose()
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const table of tablesOf(tablePrefix)) await sql.unsafe(`DROP TABLE IF EXISTS "${table}" CASCADE`)
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
  const run = <A, E>(effect: Effect.Effect<A, E, SessionBroker>) => runtime.runPromise(effect)

  describe("SessionBroker across processes (postgres)", () => {
    it("a subscriber in another process receives each message sent here, and ends when it is closed", async () => {
      const { id } = await run(Effect.flatMap(SessionBroker, (broker) => broker.spawn({ agentId: "cross" })))
      const subscriber = new Child("subscribing child", child, ["subscribe", pgUrl, tablePrefix, id, "1"])
      try {
        await subscriber.waitFor((line) => line === "ready", 60_000, "ready")
        const latencies: Array<number> = []
        for (let i = 1; i <= count; i++) {
          const sentAt = performance.now()
          await run(Effect.flatMap(SessionBroker, (broker) => broker.send(id, text(`p${i}`))))
          // The first may be read by the subscription's first read; from the second on, only a NOTIFY wakes it.
          const line = await subscriber.waitFor((l) => l === `got ${i} p${i}`, 30_000, `message ${i}`)
          if (i > 1) latencies.push(subscriber.timeOf(line) - sentAt)
        }
        await run(Effect.flatMap(SessionBroker, (broker) => broker.close(id)))
        await subscriber.waitFor((line) => line === "ended", 30_000, "the end of its stream")
        expect(await subscriber.done(30_000)).toContain("ended")
        expect(subscriber.lines.filter((l) => l.startsWith("got "))).toEqual(
          Array.from({ length: count }, (_, i) => `got ${i + 1} p${i + 1}`)
        )
        latencies.sort((a, b) => a - b)
        console.log(`cross-process delivery: median ${latencies[latencies.length >> 1]!.toFixed(1)} ms`)
      } finally {
        await subscriber.kill()
      }
    }, 180_000)

    it("a subscriber here receives what another process sends, and ends when that process closes it", async () => {
      const { id } = await run(Effect.flatMap(SessionBroker, (broker) => broker.spawn({ agentId: "cross-back" })))
      const sender = new Child("sending child", child, ["send", pgUrl, tablePrefix, id, String(count)])
      try {
        await sender.waitFor((line) => line === "ready", 60_000, "ready")
        const fiber = runtime.runFork(
          Effect.flatMap(SessionBroker, (broker) => Stream.runCollect(broker.subscribe(id, { from: 1 })))
        )
        // Give the subscription time to start listening, so that what follows arrives by NOTIFY (`from: 1` keeps a
        // late start from losing any message, and the hour-long poll keeps it from passing by polling).
        await new Promise((resolve) => setTimeout(resolve, 1_000))
        sender.process.stdin.write("go\n")
        await sender.done(60_000)
        const received = await runtime.runPromise(
          Fiber.join(fiber).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => "no end" }))
        )
        expect([...received].map((m) => [m.seq, (m.parts[0] as { text: string }).text])).toEqual(
          Array.from({ length: count }, (_, i) => [i + 1, `c${i + 1}`])
        )
      } finally {
        await sender.kill()
      }
    }, 180_000)
  })
}
