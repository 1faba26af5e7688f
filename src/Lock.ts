/**
 * `LockStore`: named coordination locks held as leases with fencing tokens.
 *
 * A lease lives for its `ttl` unless refreshed; once expired, anyone may take
 * the key over. Every acquisition gets a fencing `token` from the kernel's
 * counters (one counter per key, bumped in the acquiring transaction), so
 * tokens of one key strictly increase across holders, processes and restarts:
 * a resource guarded by the lock rejects writes carrying a token lower than the
 * last one it saw, which makes a paused holder harmless.
 *
 * Which clock judges expiry (`LockStore.clock`): the caller's Effect `Clock` in
 * memory and on SQLite (one host; `TestClock` drives it), the database's clock
 * by default on PostgreSQL (see `SqlLockStore.ts`): app hosts with skewed
 * clocks then agree on when a lease expires.
 */
import { Clock, Context, Duration, Effect, Either, Exit, Fiber, Option, Random, Runtime, Schema } from "effect"
import { DurationText } from "./AgentMemory.ts"
import { InvalidInput, LockHeld, LockLost, type StorageError } from "./Errors.ts"
import { Text } from "./Json.ts"
import { type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { checkId, decodeInput, decodeOptions, decoder } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

const text255 = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** A lock key: a non-empty Text (see `Json.ts`) up to 255 characters, e.g. `"deploy/prod"`. */
export const LockKey = text255
/** Who holds a lease: a non-empty Text up to 255 characters (an agent, process or host id). */
export const LockOwner = text255

/** A fencing token: a positive safe integer, strictly increasing per key. */
export const FencingToken = Schema.Number.pipe(
  Schema.filter((n) => (Number.isSafeInteger(n) && n >= 1) || `must be a positive integer, got ${n}`, {
    identifier: "FencingToken"
  })
)

/** The longest lease or wait: 366 days. */
export const maxLockMillis = 366 * 24 * 60 * 60 * 1000

/** The milliseconds of a duration input (a `Duration`, milliseconds or text), `NaN` when it is none. */
const millisOf = (input: unknown): number => {
  if (typeof input === "number" && !(input >= 0)) return Number.NaN
  try {
    return Duration.toMillis(Duration.decode(input as Duration.DurationInput))
  } catch {
    return Number.NaN
  }
}

const durationInput = (identifier: string, min: number) =>
  Schema.Union(Schema.DurationFromSelf, Schema.Number, DurationText).pipe(
    Schema.filter(
      (input) => {
        const millis = millisOf(input)
        return (
          (millis >= min && millis <= maxLockMillis) ||
          `must be a duration from ${min} ms to 366 days, got ${Number.isNaN(millis) ? "an invalid one" : `${millis} ms`}`
        )
      },
      { identifier }
    )
  )

/** How long a lease lives: a `Duration`, milliseconds or duration text (`"30 seconds"`), from 1 ms to 366 days. */
export const LockTtl = durationInput("LockTtl", 1)
/** How long a lease lives. */
export type LockTtl = typeof LockTtl.Encoded

/** How long `acquire` waits for a held key: a `Duration`, milliseconds or text, 0 (the default: no wait) to 366 days. */
export const LockWait = durationInput("LockWait", 0)

/** A lease: `owner` holds `key` under fencing `token` from `acquiredAt` until `expiresAt` unless refreshed. */
export const Lease = Schema.Struct({
  key: LockKey,
  owner: LockOwner,
  token: FencingToken,
  acquiredAt: Schema.DateTimeUtcFromNumber,
  expiresAt: Schema.DateTimeUtcFromNumber
})
/** A lease. */
export type Lease = typeof Lease.Type

/** What `release` and `refresh` read of a lease: its key, owner and token (a whole `Lease` is accepted). */
export const LeaseRef = Schema.Struct({ key: LockKey, owner: LockOwner, token: FencingToken })
/** What `release` and `refresh` read of a lease. */
export type LeaseRef = typeof LeaseRef.Type

/** Options of `acquire`: the `owner`, the lease's `ttl`, and how long to `wait` for a held key (default: not). */
export const AcquireOptions = Schema.Struct({ owner: LockOwner, ttl: LockTtl, wait: Schema.optional(LockWait) })
/** Options of `acquire`. */
export type AcquireOptions = typeof AcquireOptions.Encoded

/**
 * Options of `withLock`: those of `acquire`, plus how often the lease is refreshed while the effect runs
 * (`refreshEvery`, default a third of `ttl`, at most `ttl`).
 */
export const WithLockOptions = Schema.Struct({ ...AcquireOptions.fields, refreshEvery: Schema.optional(LockTtl) })
/** Options of `withLock`. */
export type WithLockOptions = typeof WithLockOptions.Encoded

/** Options of `list`: paging (by key) plus a key `prefix`. */
export const LockListOptions = Schema.Struct({
  ...PageOptions.fields,
  prefix: Schema.optional(Text.pipe(Schema.maxLength(255)))
})
/** Options of `list`. */
export type LockListOptions = typeof LockListOptions.Encoded

/** Options of `releaseExpired`: at most `batch` (1 to 10,000, default 1,000) leases per call. */
export const ReleaseExpiredOptions = Schema.Struct({
  batch: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000)))
})
/** Options of `releaseExpired`. */
export type ReleaseExpiredOptions = typeof ReleaseExpiredOptions.Encoded

/**
 * The clock that judges expiry: `"caller"`, the Effect `Clock` of the calling fiber (memory, SQLite, and
 * PostgreSQL when asked), or `"database"`, the database server's (PostgreSQL's default).
 */
export type LockClock = "caller" | "database"

/** The lock store. */
export class LockStore extends Context.Tag("effect-agent-stores/LockStore")<
  LockStore,
  {
    /** Which clock judges expiry (`acquiredAt` and `expiresAt` are read from it). */
    readonly clock: LockClock
    /**
     * Takes `key` for `owner` for `ttl` with the next fencing token; a key whose lease has expired is taken over.
     * A key held by a live lease (any owner, this one too: leases are not re-entrant) fails with `LockHeld`, or
     * with `wait` is retried with jittered backoff until the wait is over.
     */
    readonly acquire: (
      key: string,
      options: AcquireOptions
    ) => Effect.Effect<Lease, LockHeld | InvalidInput | StorageError>
    /**
     * Releases `lease`. `LockLost` when it no longer holds its key: expired (its row is removed anyway) or taken
     * over by another acquisition.
     */
    readonly release: (lease: LeaseRef) => Effect.Effect<void, LockLost | InvalidInput | StorageError>
    /** Extends `lease` to `ttl` from now (same token); `LockLost` when it expired or was taken over. */
    readonly refresh: (lease: LeaseRef, ttl: LockTtl) => Effect.Effect<Lease, LockLost | InvalidInput | StorageError>
    /** Whether `key` is held by a live lease. */
    readonly isLocked: (key: string) => Effect.Effect<boolean, InvalidInput | StorageError>
    /** The live lease on `key`, if any. */
    readonly find: (key: string) => Effect.Effect<Option.Option<Lease>, InvalidInput | StorageError>
    /** The live leases, by key (`order: "desc"` reversed), filtered by key `prefix`. */
    readonly list: (options?: LockListOptions) => Effect.Effect<Page<Lease>, InvalidInput | StorageError>
    /** Removes up to `batch` expired leases (they are already free to take); returns how many. */
    readonly releaseExpired: (options?: ReleaseExpiredOptions) => Effect.Effect<number, InvalidInput | StorageError>
    /**
     * Runs `effect` (or `effect(lease)`, to read the fencing token) holding `key`: acquires as `acquire` does,
     * refreshes the lease in the background every `refreshEvery`, and interrupts `effect` with `LockLost` when
     * the lease is lost (a refresh finds it taken over, or no refresh succeeded within `ttl` of the last
     * success). The lease is released on success, failure and interruption; when its release after a success
     * fails, that is the result (`LockLost`: the lease expired before the release; or `StorageError`).
     */
    readonly withLock: <A, E, R>(
      key: string,
      effect: Effect.Effect<A, E, R> | ((lease: Lease) => Effect.Effect<A, E, R>),
      options: WithLockOptions
    ) => Effect.Effect<A, E | LockHeld | LockLost | InvalidInput | StorageError, R>
  }
>() {}

/** A lease as a driver stores it: times in epoch milliseconds of the store's clock. */
export interface LockRow {
  readonly key: string
  readonly owner: string
  readonly token: number
  readonly acquiredAt: number
  readonly expiresAt: number
}

/** What one acquisition attempt found: it `acquired` the key, found it `held`, or lost a race (`undefined`). */
export type AcquireOutcome =
  { readonly _tag: "acquired"; readonly row: LockRow } | { readonly _tag: "held"; readonly row: LockRow } | undefined

/**
 * What a backend implements for `LockStore`; everything else lives in `makeLockStore`. `now` is the caller's
 * `Clock` time, or `null` with the database clock (the backend reads its own).
 */
export interface LockDriver {
  readonly clock: LockClock
  /**
   * One attempt, atomic: a live lease on `key` is `held`; otherwise bumps the key's fencing counter and writes
   * the lease `[now, now + ttl)`. `undefined` when another attempt changed the key meanwhile.
   */
  readonly acquire: (
    key: string,
    owner: string,
    now: number | null,
    ttl: number
  ) => Effect.Effect<AcquireOutcome, StorageError>
  /** Deletes the lease `(key, owner, token)`; whether it existed and was live at `now`. */
  readonly release: (
    key: string,
    owner: string,
    token: number,
    now: number | null
  ) => Effect.Effect<boolean, StorageError>
  /** Sets the live lease `(key, owner, token)` to expire at `now + ttl`; the lease, or `undefined` when lost. */
  readonly refresh: (
    key: string,
    owner: string,
    token: number,
    now: number | null,
    ttl: number
  ) => Effect.Effect<LockRow | undefined, StorageError>
  /** The lease on `key` live at `now`. */
  readonly get: (key: string, now: number | null) => Effect.Effect<LockRow | undefined, StorageError>
  /** One page of the leases live at `now`, keys starting with `prefix`, ordered by key. */
  readonly list: (
    prefix: string | undefined,
    now: number | null,
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<LockRow>, StorageError>
  /** Deletes up to `batch` leases expired at `now`; returns how many. */
  readonly releaseExpired: (now: number | null, batch: number) => Effect.Effect<number, StorageError>
}

/** The name of the kernel counter that issues `key`'s fencing tokens. */
export const tokenCounter = (key: string): string => `lock/${key}`

const entity = "Lock"

/** A stored lease as the domain's `Lease`. */
export const leaseOf = (row: LockRow): Lease => ({
  key: row.key,
  owner: row.owner,
  token: row.token,
  acquiredAt: utcFromMillis(row.acquiredAt),
  expiresAt: utcFromMillis(row.expiresAt)
})

const decodeKey = decoder(entity, LockKey)
const decodeAcquire = decoder(entity, AcquireOptions)
const decodeWithLock = decoder(entity, WithLockOptions)
const checkRef = decoder(entity, LeaseRef)
const decodeTtl = decodeInput(entity, LockTtl)
const decodeList = decodeOptions(entity, LockListOptions)
const decodeReleaseExpired = decodeOptions(entity, ReleaseExpiredOptions)

/** The first and longest pause between two attempts of a waiting `acquire`, in milliseconds. */
const firstBackoff = 2
const maxBackoff = 100

/** The `LockLost` of a lease (or of what `release` and `refresh` read of one). */
const lostOf = (ref: LeaseRef) => new LockLost({ key: ref.key, owner: ref.owner, token: ref.token })

/** Builds a `LockStore` over a driver: validation, clock, waiting, fencing and `withLock` live here. */
export const makeLockStore = (driver: LockDriver) => {
  /** `f` of the caller's Clock time, in one step (`Clock.currentTimeMillis` then `flatMap` are two). */
  const atNow = <A, E>(f: (millis: number) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.clockWith((clock) => f(clock.unsafeCurrentTimeMillis()))
  /** `f` of the driver's "now": the caller's Clock time, or `null` when the database's clock judges expiry. */
  const withNow = <A, E>(f: (now: number | null) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
    driver.clock === "caller" ? atNow(f) : f(null)
  const now: Effect.Effect<number | null> = withNow(Effect.succeed)

  /**
   * Attempts until acquired or the wait is over; also returns `sent`, the caller's Clock time just before the
   * successful attempt (the lease cannot have started earlier: `withLock` counts its validity from there).
   */
  const acquireTimed = (key: string, owner: string, ttl: number, wait: number) =>
    atNow((start) => attempt(key, owner, ttl, start + wait, start, firstBackoff))

  /** One attempt at `sent` (the caller's Clock time); while the key is held and `deadline` not reached, waits and retries. */
  const attempt = (
    key: string,
    owner: string,
    ttl: number,
    deadline: number,
    sent: number,
    backoff: number
  ): Effect.Effect<{ readonly lease: Lease; readonly sent: number }, LockHeld | StorageError> =>
    Effect.flatMap(driver.acquire(key, owner, driver.clock === "caller" ? sent : null, ttl), (outcome) => {
      const retry = (next: number) =>
        Effect.flatMap(Clock.currentTimeMillis, (t) => attempt(key, owner, ttl, deadline, t, next))
      if (outcome === undefined) return retry(backoff)
      if (outcome._tag === "acquired") return Effect.succeed({ lease: leaseOf(outcome.row), sent })
      const holder = outcome.row
      return Effect.flatMap(Clock.currentTimeMillis, (t) => {
        if (t >= deadline) return Effect.fail(new LockHeld({ key, owner: holder.owner, expiresAt: holder.expiresAt }))
        let pause = Math.min(backoff, deadline - t)
        // On the caller's clock the holder's expiry is known: no need to sleep past it.
        if (driver.clock === "caller") pause = Math.min(pause, Math.max(1, holder.expiresAt - t))
        return Effect.flatMap(Random.next, (jitter) => {
          const jittered = Math.max(1, Math.round(pause * (0.5 + jitter)))
          return Effect.zipRight(
            Effect.sleep(Duration.millis(Math.min(jittered, Math.max(1, deadline - t)))),
            retry(Math.min(backoff * 2, maxBackoff))
          )
        })
      })
    })

  const release = (ref: LeaseRef) =>
    Effect.flatMap(
      withNow((t) => driver.release(ref.key, ref.owner, ref.token, t)),
      (held) => (held ? Effect.void : Effect.fail(lostOf(ref)))
    )

  /**
   * Keeps `lease` alive: refreshes it every `every` ms; completes (the lease lost) when a refresh finds it lost,
   * or when no refresh succeeded before `ttl` after the last success (a failing backend is retried meanwhile).
   */
  const keep = (lease: Lease, sent: number, ttl: number, every: number) =>
    Effect.gen(function* () {
      let validUntil = sent + ttl
      let next = sent + every
      while (true) {
        const t = yield* Clock.currentTimeMillis
        if (t >= validUntil) return
        if (t < next) {
          yield* Effect.sleep(Duration.millis(Math.min(next, validUntil) - t))
          continue
        }
        const result = yield* Effect.flatMap(now, (n) =>
          driver.refresh(lease.key, lease.owner, lease.token, n === null ? null : t, ttl)
        ).pipe(Effect.timeoutOption(Duration.millis(validUntil - t)), Effect.either)
        if (Either.isLeft(result)) {
          next = t + Math.min(every, 50)
          continue
        }
        if (Option.isNone(result.right) || result.right.value === undefined) return
        validUntil = t + ttl
        next = t + every
      }
    })

  /**
   * Runs `body` (interruptible as the caller is, by `restore`) in a fiber of its own while the lease is kept alive:
   * its exit, or `LockLost` when the keeper found the lease lost and interrupted it. The fiber starts at once, in
   * this call: a body that never waits is done when it returns, with no fiber hop and no keeper; the keeper's fiber
   * is forked only for a body still running then. The caller's interruption interrupts the body and waits for it
   * to stop, so nothing runs under the key after `release`.
   */
  const guard = <A, E, R>(
    restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>,
    body: Effect.Effect<A, E, R>,
    lease: Lease,
    sent: number,
    ttl: number,
    every: number
  ): Effect.Effect<Exit.Exit<A, E | LockLost>, never, R> =>
    Effect.flatMap(Effect.runtime<R>(), (runtime) => {
      const child = Runtime.runFork(runtime)(restore(body))
      const early = child.unsafePoll()
      if (early !== null) return Effect.succeed(early)
      return Effect.gen(function* () {
        let lost = false
        const keeper = yield* Effect.fork(
          Effect.interruptible(
            Effect.zipRight(
              keep(lease, sent, ttl, every),
              Effect.suspend(() => {
                lost = true
                return Fiber.interrupt(child)
              })
            )
          )
        )
        const awaited = yield* Effect.exit(restore(Fiber.await(child)))
        // Interrupted while waiting: the body is stopped before the lease is released.
        const exit = Exit.isSuccess(awaited) ? awaited.value : yield* Fiber.interrupt(child)
        yield* Fiber.interrupt(keeper)
        if (lost && Exit.isInterrupted(exit)) {
          return Exit.fail(lostOf(lease))
        }
        return Exit.isSuccess(awaited) ? exit : Exit.failCause(awaited.cause)
      })
    })

  return traced(
    "LockStore",
    driver,
    LockStore.of({
      clock: driver.clock,
      // Inputs are decoded in one synchronous step: `acquire` and `release` are the fixed cost of every lock.
      acquire: (key, options) =>
        Effect.suspend((): Effect.Effect<Lease, LockHeld | InvalidInput | StorageError> => {
          const k = decodeKey(key, ["key"])
          if (k._tag === "Left") return Effect.fail(k.left)
          const decoded = decodeAcquire(options, ["options"])
          if (decoded._tag === "Left") return Effect.fail(decoded.left)
          const { owner, ttl, wait } = decoded.right
          return Effect.map(
            acquireTimed(k.right, owner, Math.ceil(millisOf(ttl)), wait === undefined ? 0 : millisOf(wait)),
            ({ lease }) => lease
          )
        }),
      release: (lease) =>
        Effect.suspend((): Effect.Effect<void, LockLost | InvalidInput | StorageError> => {
          const ref = checkRef(lease, ["lease"])
          return ref._tag === "Left" ? Effect.fail(ref.left) : release(ref.right)
        }),
      refresh: (lease, ttl) =>
        Effect.gen(function* () {
          const ref = yield* checkRef(lease, ["lease"])
          const millis = Math.ceil(millisOf(yield* decodeTtl(ttl, ["ttl"])))
          const row = yield* driver.refresh(ref.key, ref.owner, ref.token, yield* now, millis)
          if (row === undefined) return yield* lostOf(ref)
          return leaseOf(row)
        }),
      isLocked: (key) =>
        Effect.flatMap(checkId(entity, key), (k) =>
          k === undefined
            ? Effect.succeed(false)
            : Effect.map(
                Effect.flatMap(now, (t) => driver.get(k, t)),
                (row) => row !== undefined
              )
        ),
      find: (key) =>
        Effect.flatMap(checkId(entity, key), (k) =>
          k === undefined
            ? Effect.succeed(Option.none())
            : Effect.map(
                Effect.flatMap(now, (t) => driver.get(k, t)),
                (row) => Option.map(Option.fromNullable(row), leaseOf)
              )
        ),
      list: (options) =>
        Effect.gen(function* () {
          const decoded = yield* decodeList(options)
          const query = yield* toPageQuery(entity, decoded, ["string"])
          const rows = yield* driver.list(decoded.prefix, yield* now, query)
          return toPage(rows, query, leaseOf, (row) => [row.key])
        }),
      releaseExpired: (options) =>
        Effect.gen(function* () {
          const { batch } = yield* decodeReleaseExpired(options)
          return yield* driver.releaseExpired(yield* now, batch ?? 1000)
        }),
      withLock: <A, E, R>(
        key: string,
        effect: Effect.Effect<A, E, R> | ((lease: Lease) => Effect.Effect<A, E, R>),
        options: WithLockOptions
      ) =>
        Effect.suspend((): Effect.Effect<A, E | LockHeld | LockLost | InvalidInput | StorageError, R> => {
          const k = decodeKey(key, ["key"])
          if (k._tag === "Left") return Effect.fail(k.left)
          const decoded = decodeWithLock(options, ["options"])
          if (decoded._tag === "Left") return Effect.fail(decoded.left)
          const { owner, refreshEvery, ttl, wait } = decoded.right
          if (!Effect.isEffect(effect) && typeof effect !== "function") {
            return InvalidInput.single(entity, "must be an Effect or a function returning one", ["effect"])
          }
          const ttlMillis = Math.ceil(millisOf(ttl))
          const every = Math.max(
            1,
            Math.min(
              ttlMillis,
              refreshEvery === undefined ? Math.floor(ttlMillis / 3) : Math.ceil(millisOf(refreshEvery))
            )
          )
          const waitMillis = wait === undefined ? 0 : millisOf(wait)
          // A chain of `flatMap`s, not a generator: this is every `withLock`'s fixed cost.
          return Effect.uninterruptibleMask((restore) =>
            Effect.flatMap(restore(acquireTimed(k.right, owner, ttlMillis, waitMillis)), ({ lease, sent }) =>
              Effect.flatMap(
                guard(
                  restore,
                  Effect.isEffect(effect) ? effect : Effect.suspend(() => effect(lease)),
                  lease,
                  sent,
                  ttlMillis,
                  every
                ),
                (exit) =>
                  Effect.flatMap(
                    Effect.exit(release(lease)),
                    (released): Effect.Effect<A, E | LockLost | StorageError> =>
                      Exit.isSuccess(exit) && Exit.isFailure(released) ? Effect.failCause(released.cause) : exit
                  )
              )
            )
          )
        })
    })
  )
}
