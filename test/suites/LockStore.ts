/**
 * The `LockStore` contract, run against every backend: `suite(label, layer)`.
 * Tests share one store per backend, so each uses its own keys. Time passes
 * through `advance`: `TestClock` when the caller's clock judges expiry, real
 * sleeping (on the live clock) when the database's does (PostgreSQL's
 * default), so the same tests hold for both.
 */
import { expect, layer } from "@effect/vitest"
import {
  Clock,
  Context,
  DateTime,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberRef,
  Layer,
  Option,
  Ref,
  TestClock
} from "effect"
import {
  AcquireOptions,
  type Lease,
  LeaseRef,
  LockListOptions,
  LockStore,
  ReleaseExpiredOptions,
  WithLockOptions
} from "../../src/Lock.ts"
import * as BadInput from "./BadInput.ts"

let counter = 0
const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++counter}`

/** A service and a fiber ref the caller sets, to see that `withLock`'s effect runs with them. */
class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
const level = FiberRef.unsafeMake(0)

const millis = (time: DateTime.Utc) => DateTime.toEpochMillis(time)

/** A real millisecond, so that a backend's I/O started by the fibers `TestClock` woke can complete. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))

/**
 * Runs `body` with `advance(ms)` letting that much time pass on the clock that judges expiry: `TestClock` for
 * the caller's clock; for the database's, the live clock (the body's sleeps and the store's waits really wait).
 */
const timed = <A, E>(
  body: (advance: (ms: number) => Effect.Effect<void>, locks: LockStore["Type"]) => Effect.Effect<A, E>
): Effect.Effect<A, E, LockStore> =>
  Effect.flatMap(LockStore, (locks) =>
    locks.clock === "caller"
      ? body((ms) => Effect.zipRight(TestClock.adjust(Duration.millis(ms)), settle), locks)
      : Effect.withClock(
          body((ms) => Effect.sleep(Duration.millis(ms)), locks),
          Clock.make()
        )
  )

/** Runs the `LockStore` contract against `stores`. */
export const suite = <E>(label: string, stores: Layer.Layer<LockStore, E>) =>
  layer(stores, { timeout: "60 seconds" })(`LockStore (${label})`, (it) => {
    it.effect("acquire returns a lease with a fencing token; a held key is LockHeld, for its owner too", () =>
      timed((_, locks) =>
        Effect.gen(function* () {
          const key = fresh("deploy")
          if (locks.clock === "caller") yield* TestClock.setTime(1_700_000_000_000)
          const lease = yield* locks.acquire(key, { owner: "agent-a", ttl: "30 seconds" })
          expect(lease).toMatchObject({ key, owner: "agent-a" })
          expect(Number.isSafeInteger(lease.token) && lease.token >= 1).toBe(true)
          expect(millis(lease.expiresAt) - millis(lease.acquiredAt)).toBe(30_000)
          if (locks.clock === "caller") expect(millis(lease.acquiredAt)).toBe(1_700_000_000_000)
          expect(yield* locks.isLocked(key)).toBe(true)
          expect(yield* locks.find(key)).toEqual(Option.some(lease))
          const held = yield* Effect.flip(locks.acquire(key, { owner: "agent-b", ttl: 1_000 }))
          expect(held).toMatchObject({ _tag: "LockHeld", key, owner: "agent-a", expiresAt: millis(lease.expiresAt) })
          expect(held.message).toContain("agent-a")
          const again = yield* Effect.flip(locks.acquire(key, { owner: "agent-a", ttl: 1_000 }))
          expect(again._tag).toBe("LockHeld")
          expect(yield* locks.find(key)).toEqual(Option.some(lease))
          expect(yield* locks.isLocked(fresh("free"))).toBe(false)
          expect(yield* locks.find(fresh("free"))).toEqual(Option.none())
          expect(yield* locks.isLocked("no\u0000such")).toBe(false)
        })
      )
    )

    it.effect("release frees the key; a second release is LockLost; tokens keep increasing", () =>
      timed((_, locks) =>
        Effect.gen(function* () {
          const key = fresh("cycle")
          const tokens: Array<number> = []
          for (let i = 0; i < 5; i++) {
            const lease = yield* locks.acquire(key, { owner: `agent-${i}`, ttl: Duration.seconds(30) })
            tokens.push(lease.token)
            yield* locks.release(lease)
            expect(yield* locks.isLocked(key)).toBe(false)
            const lost = yield* Effect.flip(locks.release(lease))
            expect(lost).toMatchObject({ _tag: "LockLost", key, owner: `agent-${i}`, token: lease.token })
            expect(yield* Effect.flip(locks.refresh(lease, 1_000))).toMatchObject({ _tag: "LockLost" })
          }
          for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!)
          // Tokens are per key: another key starts its own sequence, this one goes on.
          const other = yield* locks.acquire(fresh("other"), { owner: "x", ttl: 1_000 })
          expect(other.token).toBe(1)
          const next = yield* locks.acquire(key, { owner: "x", ttl: 1_000 })
          expect(next.token).toBeGreaterThan(tokens[tokens.length - 1]!)
        })
      )
    )

    it.effect("an expired lease is taken over; its holder's release and refresh are LockLost", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const key = fresh("expiry")
          const first = yield* locks.acquire(key, { owner: "paused", ttl: 300 })
          yield* advance(450)
          expect(yield* locks.isLocked(key)).toBe(false)
          expect(yield* locks.find(key)).toEqual(Option.none())
          const second = yield* locks.acquire(key, { owner: "taker", ttl: "30 seconds" })
          expect(second.token).toBeGreaterThan(first.token)
          expect(yield* Effect.flip(locks.release(first))).toMatchObject({
            _tag: "LockLost",
            key,
            owner: "paused",
            token: first.token
          })
          expect(yield* Effect.flip(locks.refresh(first, 30_000))).toMatchObject({ _tag: "LockLost" })
          // The taker still holds it.
          expect(Option.map(yield* locks.find(key), (lease) => lease.token)).toEqual(Option.some(second.token))
          yield* locks.release(second)
        })
      )
    )

    it.effect("an expired lease nobody took is lost too: release is LockLost and frees the key", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const key = fresh("stale")
          const lease = yield* locks.acquire(key, { owner: "slow", ttl: 300 })
          yield* advance(450)
          expect(yield* Effect.flip(locks.refresh(lease, 1_000))).toMatchObject({ _tag: "LockLost" })
          expect(yield* Effect.flip(locks.release(lease))).toMatchObject({ _tag: "LockLost" })
          const next = yield* locks.acquire(key, { owner: "slow", ttl: 1_000 })
          expect(next.token).toBeGreaterThan(lease.token)
        })
      )
    )

    it.effect("refresh extends a live lease past its first expiry, keeping its token", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const key = fresh("refresh")
          const lease = yield* locks.acquire(key, { owner: "a", ttl: 1_000 })
          yield* advance(600)
          const refreshed = yield* locks.refresh(lease, "1 second")
          expect(refreshed).toMatchObject({ key, owner: "a", token: lease.token, acquiredAt: lease.acquiredAt })
          expect(millis(refreshed.expiresAt)).toBeGreaterThanOrEqual(millis(lease.expiresAt) + 500)
          yield* advance(600)
          expect(yield* locks.isLocked(key)).toBe(true)
          expect((yield* Effect.flip(locks.acquire(key, { owner: "b", ttl: 1_000 })))._tag).toBe("LockHeld")
          const wrongOwner = yield* Effect.flip(locks.refresh({ ...lease, owner: "b" }, 1_000))
          expect(wrongOwner._tag).toBe("LockLost")
          const wrongToken = yield* Effect.flip(locks.release({ ...lease, token: lease.token + 1 }))
          expect(wrongToken._tag).toBe("LockLost")
          yield* locks.release(refreshed)
          expect(yield* locks.isLocked(key)).toBe(false)
        })
      )
    )

    it.effect("acquire with wait gets the key once it is released, or fails with LockHeld at the deadline", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const key = fresh("wait")
          const holder = yield* locks.acquire(key, { owner: "holder", ttl: "30 seconds" })
          const waiter = yield* Effect.fork(locks.acquire(key, { owner: "waiter", ttl: 1_000, wait: "10 seconds" }))
          yield* advance(100)
          yield* advance(100)
          expect(yield* Fiber.poll(waiter)).toEqual(Option.none())
          yield* locks.release(holder)
          for (let i = 0; i < 20 && Option.isNone(yield* Fiber.poll(waiter)); i++) yield* advance(100)
          const got = yield* Fiber.join(waiter)
          expect(got).toMatchObject({ key, owner: "waiter" })
          expect(got.token).toBeGreaterThan(holder.token)

          const late = yield* Effect.fork(Effect.flip(locks.acquire(key, { owner: "late", ttl: 1_000, wait: 300 })))
          for (let i = 0; i < 20 && Option.isNone(yield* Fiber.poll(late)); i++) yield* advance(100)
          expect(yield* Fiber.join(late)).toMatchObject({ _tag: "LockHeld", key, owner: "waiter" })
        })
      )
    )

    it.effect("acquire with wait takes over a lease that expires meanwhile", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const key = fresh("wait-expiry")
          const holder = yield* locks.acquire(key, { owner: "holder", ttl: 400 })
          const waiter = yield* Effect.fork(locks.acquire(key, { owner: "waiter", ttl: 1_000, wait: "10 seconds" }))
          for (let i = 0; i < 40 && Option.isNone(yield* Fiber.poll(waiter)); i++) yield* advance(100)
          const got = yield* Fiber.join(waiter)
          expect(got.owner).toBe("waiter")
          expect(got.token).toBeGreaterThan(holder.token)
          expect(yield* Effect.flip(locks.release(holder))).toMatchObject({ _tag: "LockLost" })
        })
      )
    )

    it.effect("list pages the live leases by key, filtered by prefix, both orders", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const prefix = `${fresh("list")}/`
          const keys = ["a", "b", "c", "d", "e"].map((k) => `${prefix}${k}`)
          for (const key of keys) yield* locks.acquire(key, { owner: "lister", ttl: "30 seconds" })
          yield* locks.acquire(`${prefix}z-short`, { owner: "lister", ttl: 300 })
          yield* locks.acquire(`${prefix.slice(0, -1)}-outside`, { owner: "lister", ttl: "30 seconds" })
          yield* advance(450)
          const walk = (order: "asc" | "desc") =>
            Effect.gen(function* () {
              const seen: Array<string> = []
              let cursor: Option.Option<string> = Option.none()
              do {
                const page: { items: ReadonlyArray<Lease>; nextCursor: Option.Option<string> } = yield* locks.list({
                  prefix,
                  limit: 2,
                  order,
                  ...(Option.isSome(cursor) ? { cursor: cursor.value } : {})
                })
                seen.push(...page.items.map((lease) => lease.key))
                cursor = page.nextCursor
              } while (Option.isSome(cursor))
              return seen
            })
          expect(yield* walk("asc")).toEqual(keys)
          expect(yield* walk("desc")).toEqual([...keys].reverse())
          expect((yield* locks.list({ prefix, offset: 3 })).items.map((l) => l.key)).toEqual(keys.slice(3))
          const all = yield* locks.list({ limit: 1000 })
          expect(all.items.every((lease) => millis(lease.expiresAt) > 0)).toBe(true)
          for (const options of [{ limit: 0 }, { cursor: "nope" }, { order: "up" }, { prefix: 1 }]) {
            expect((yield* Effect.flip(locks.list(options as never)))._tag).toBe("InvalidInput")
          }
          for (const key of keys) {
            const lease = Option.getOrThrow(yield* locks.find(key))
            yield* locks.release(lease)
          }
          expect((yield* locks.list({ prefix })).items).toEqual([])
        })
      )
    )

    it.effect("releaseExpired removes expired leases only", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const prefix = fresh("sweep")
          yield* locks.releaseExpired()
          const kept = yield* locks.acquire(`${prefix}-kept`, { owner: "s", ttl: "30 seconds" })
          const gone = yield* locks.acquire(`${prefix}-gone`, { owner: "s", ttl: 300 })
          yield* locks.acquire(`${prefix}-gone-2`, { owner: "s", ttl: 300 })
          yield* advance(450)
          expect(yield* locks.releaseExpired({ batch: 1 })).toBe(1)
          expect(yield* locks.releaseExpired()).toBeGreaterThanOrEqual(1)
          // (On the database's clock other tests' leases may expire in between.)
          if (locks.clock === "caller") expect(yield* locks.releaseExpired()).toBe(0)
          expect(yield* Effect.flip(locks.release(gone))).toMatchObject({ _tag: "LockLost" })
          expect((yield* locks.list({ prefix })).items.map((l) => l.token)).toEqual([kept.token])
          const again = yield* locks.acquire(`${prefix}-gone`, { owner: "s", ttl: 1_000 })
          expect(again.token).toBeGreaterThan(gone.token)
        })
      )
    )

    it.effect("withLock runs the effect holding the key and releases on success, failure and interruption", () =>
      timed((_, locks) =>
        Effect.gen(function* () {
          const key = fresh("with")
          const seen = yield* Ref.make<ReadonlyArray<Lease>>([])
          const result = yield* locks.withLock(
            key,
            (lease) =>
              Effect.gen(function* () {
                yield* Ref.update(seen, (all) => [...all, lease])
                expect(yield* locks.isLocked(key)).toBe(true)
                return "done"
              }),
            { owner: "w", ttl: "10 seconds" }
          )
          expect(result).toBe("done")
          expect((yield* Ref.get(seen))[0]).toMatchObject({ key, owner: "w" })
          expect(yield* locks.isLocked(key)).toBe(false)

          const failed = yield* Effect.flip(
            locks.withLock(key, Effect.fail("boom" as const), { owner: "w", ttl: 1_000 })
          )
          expect(failed).toBe("boom")
          expect(yield* locks.isLocked(key)).toBe(false)

          // Interrupted: the effect stops while the key is still held (nothing runs under it after the release).
          const started = yield* Deferred.make<void>()
          const heldAtStop = yield* Ref.make<boolean | undefined>(undefined)
          const running = yield* Effect.fork(
            locks.withLock(
              key,
              Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
                // A finalizer that takes a while (yields) before it looks.
                Effect.onInterrupt(() =>
                  Effect.zipRight(
                    Effect.repeatN(Effect.yieldNow(), 20),
                    Effect.flatMap(Effect.orDie(locks.isLocked(key)), (held) => Ref.set(heldAtStop, held))
                  )
                )
              ),
              { owner: "w", ttl: 1_000 }
            )
          )
          yield* Deferred.await(started)
          expect(yield* locks.isLocked(key)).toBe(true)
          expect(Exit.isInterrupted(yield* Fiber.interrupt(running))).toBe(true)
          expect(yield* Ref.get(heldAtStop)).toBe(true)
          expect(yield* locks.isLocked(key)).toBe(false)

          const holder = yield* locks.acquire(key, { owner: "other", ttl: "30 seconds" })
          const held = yield* Effect.flip(locks.withLock(key, Effect.succeed(1), { owner: "w", ttl: 1_000 }))
          expect(held).toMatchObject({ _tag: "LockHeld", owner: "other" })
          yield* locks.release(holder)
        })
      )
    )

    it.effect(
      "withLock runs the effect with the caller's context, fiber refs and span; a defect or self-interruption releases",
      () =>
        Effect.gen(function* () {
          const locks = yield* LockStore
          const key = fresh("ctx")
          const seen = yield* locks
            .withLock(
              key,
              Effect.all([Greeting, FiberRef.get(level), Effect.map(Effect.currentSpan, (span) => span.name)]),
              { owner: "w", ttl: 1_000 }
            )
            .pipe(Effect.provideService(Greeting, "hello"), Effect.locally(level, 7), Effect.withSpan("outer"))
          expect(seen).toEqual(["hello", 7, "outer"])
          const died = yield* Effect.exit(locks.withLock(key, Effect.die("bad"), { owner: "w", ttl: 1_000 }))
          expect(died).toEqual(Exit.die("bad"))
          expect(yield* locks.isLocked(key)).toBe(false)
          const interrupted = yield* Effect.exit(locks.withLock(key, Effect.interrupt, { owner: "w", ttl: 1_000 }))
          expect(Exit.isInterrupted(interrupted)).toBe(true)
          expect(yield* locks.isLocked(key)).toBe(false)
        })
    )

    it.effect("withLock keeps refreshing the lease while the effect runs past its ttl", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const key = fresh("keep")
          const inside = yield* Deferred.make<Lease>()
          const release = yield* Deferred.make<void>()
          const running = yield* Effect.fork(
            locks.withLock(
              key,
              (lease) => Effect.zipRight(Deferred.succeed(inside, lease), Deferred.await(release)).pipe(Effect.as(7)),
              { owner: "keeper", ttl: 600, refreshEvery: 150 }
            )
          )
          const lease = yield* Deferred.await(inside)
          for (let i = 0; i < 12; i++) yield* advance(100)
          const now = yield* locks.find(key)
          expect(Option.map(now, (l) => l.token)).toEqual(Option.some(lease.token))
          expect(millis(Option.getOrThrow(now).expiresAt)).toBeGreaterThan(millis(lease.expiresAt))
          expect((yield* Effect.flip(locks.acquire(key, { owner: "b", ttl: 1_000 })))._tag).toBe("LockHeld")
          yield* Deferred.succeed(release, undefined)
          expect(yield* Fiber.join(running)).toBe(7)
          expect(yield* locks.isLocked(key)).toBe(false)
        })
      )
    )

    it.effect("withLock interrupts the effect with LockLost when the lease is lost", () =>
      timed((advance, locks) =>
        Effect.gen(function* () {
          const key = fresh("lost")
          const inside = yield* Deferred.make<Lease>()
          const finalized = yield* Ref.make(false)
          const running = yield* Effect.fork(
            locks.withLock(
              key,
              (lease) =>
                Effect.zipRight(Deferred.succeed(inside, lease), Effect.never).pipe(
                  Effect.onInterrupt(() => Ref.set(finalized, true))
                ),
              { owner: "victim", ttl: 600, refreshEvery: 100 }
            )
          )
          const lease = yield* Deferred.await(inside)
          // Someone else removes the lease (as a takeover after a pause would): the next refresh finds it gone.
          yield* locks.release(lease)
          const taker = yield* locks.acquire(key, { owner: "taker", ttl: "30 seconds" })
          for (let i = 0; i < 20 && Option.isNone(yield* Fiber.poll(running)); i++) yield* advance(50)
          const exit = yield* Fiber.await(running)
          expect(exit).toEqual(Exit.fail(expect.objectContaining({ _tag: "LockLost", key, token: lease.token })))
          expect(yield* Ref.get(finalized)).toBe(true)
          // The taker's lease is untouched by the victim's clean-up.
          expect(Option.map(yield* locks.find(key), (l) => l.token)).toEqual(Option.some(taker.token))
        })
      )
    )

    it.effect("invalid keys, options and leases are InvalidInput", () =>
      Effect.gen(function* () {
        const locks = yield* LockStore
        const key = fresh("invalid")
        for (const options of [
          undefined,
          {},
          { owner: "a" },
          { owner: "", ttl: 1_000 },
          { owner: "a", ttl: 0 },
          { owner: "a", ttl: -1 },
          { owner: "a", ttl: Infinity },
          { owner: "a", ttl: "forever" },
          { owner: "a", ttl: Duration.infinity },
          { owner: "a", ttl: 1_000, wait: -5 },
          { owner: "a\u0000", ttl: 1_000 }
        ]) {
          expect((yield* Effect.flip(locks.acquire(key, options as never)))._tag).toBe("InvalidInput")
        }
        for (const bad of ["", "x".repeat(256), "a\u0000b", 5, null]) {
          expect((yield* Effect.flip(locks.acquire(bad as never, { owner: "a", ttl: 1_000 })))._tag).toBe(
            "InvalidInput"
          )
        }
        const lease = yield* locks.acquire(key, { owner: "a", ttl: 30_000 })
        for (const bad of [null, {}, { ...lease, token: 0 }, { ...lease, token: 1.5 }, { ...lease, key: 1 }]) {
          expect((yield* Effect.flip(locks.release(bad as never)))._tag).toBe("InvalidInput")
          expect((yield* Effect.flip(locks.refresh(bad as never, 1_000)))._tag).toBe("InvalidInput")
        }
        expect((yield* Effect.flip(locks.refresh(lease, 0)))._tag).toBe("InvalidInput")
        expect(
          (yield* Effect.flip(locks.withLock(key, 5 as unknown as Effect.Effect<void>, { owner: "a", ttl: 1_000 })))
            ._tag
        ).toBe("InvalidInput")
        for (const id of BadInput.ids) {
          expect((yield* Effect.flip(locks.isLocked(id as never)))._tag).toBe("InvalidInput")
          expect((yield* Effect.flip(locks.find(id as never)))._tag).toBe("InvalidInput")
        }
        expect(Option.map(yield* locks.find(key), (l) => l.token)).toEqual(Option.some(lease.token))
        yield* locks.release(lease)
      })
    )

    it.effect("generated bad input is InvalidInput and writes nothing", () =>
      Effect.gen(function* () {
        const locks = yield* LockStore
        const prefix = fresh("bad-input")
        const kept = yield* locks.acquire(`${prefix}/kept`, { owner: "a", ttl: "1 hour" })
        const snapshot = Effect.map(locks.list({ prefix, limit: 1000 }), (page) =>
          page.items.map((l) => [l.key, l.owner, l.token, millis(l.expiresAt)])
        )
        const free = `${prefix}/free`
        yield* BadInput.run(`LockStore (${label})`, snapshot, [
          BadInput.operation("acquire", AcquireOptions, (input) => locks.acquire(free, input as never), {
            id: (id) => locks.acquire(id as never, { owner: "a", ttl: 1_000 })
          }),
          BadInput.operation("release", LeaseRef, (input) => locks.release(input as never)),
          BadInput.operation("refresh", LeaseRef, (input) => locks.refresh(input as never, 1_000)),
          BadInput.operation(
            "withLock",
            WithLockOptions,
            (input) => locks.withLock(free, Effect.void, input as never),
            {
              id: (id) => locks.withLock(id as never, Effect.void, { owner: "a", ttl: 1_000 })
            }
          ),
          BadInput.operation("list", LockListOptions, (input) => locks.list(input as never), { optional: true }),
          BadInput.operation("releaseExpired", ReleaseExpiredOptions, (input) => locks.releaseExpired(input as never), {
            optional: true
          })
        ])
        expect(yield* locks.isLocked(free)).toBe(false)
        yield* locks.release(kept)
      })
    )
  })
