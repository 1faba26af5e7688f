/**
 * Wake-ups: how a live reader learns that the rows it follows have committed.
 * A writer calls `wake(channel)` inside its operation; the wake fires after
 * the transaction commits (never for a rolled-back one, see `CommitHooks`). A
 * reader `follow`s the channel from a cursor: it reads the rows after the
 * cursor, and when none are left it waits for the next wake, or for the poll
 * interval, so a lost wake costs latency and never a row. Wakes merge (one
 * pending at most), so a slow reader never makes a writer wait. A wake may
 * carry a `hint` for this process's readers (never across processes): what
 * the write stored, so a reader that is exactly one row behind can take it
 * without reading; merged wakes, polls and other processes' wakes carry none.
 *
 * In-process by default (memory and SQLite); `PgDatabase` provides wake-ups
 * that also cross processes through PostgreSQL's `LISTEN`/`NOTIFY`.
 *
 * A follower rides out an outage: a read that fails with `StorageError` (the
 * server went away) is retried with backoff from the same cursor, so it
 * resumes after the last row it delivered, with no gap and no duplicate; the
 * stream fails with the error only when reads have kept failing for the
 * backend's `reconnectTimeout`.
 */
import { Chunk, Context, Duration, Effect, Option, Schedule, Scope, Stream } from "effect"
import { createHash } from "node:crypto"
import { StorageError } from "../src/Errors.ts"
import { CommitHooks } from "./sql/CommitHooks.ts"

/** Announces and awaits changes on named channels. */
export class Wakeups extends Context.Tag("effect-agent-stores/Wakeups")<
  Wakeups,
  {
    /**
     * Wakes the readers of `channel` once the current transaction commits (at once outside one), handing this
     * process's readers `hint` (not `undefined`) when this wake is the only one pending for them.
     */
    readonly wake: (channel: string, hint?: unknown) => Effect.Effect<void>
    /**
     * Starts listening to `channel` for the scope; the returned effect waits
     * until a wake arrived since it last returned (merged: one pending wake at
     * most) and returns its hint (`undefined` for merged wakes and others
     * without one). With `poll`, the listener is also woken every `poll`, alone
     * (for a wake that was lost). Listening is in place when `listen` returns,
     * so a read made after it misses nothing.
     */
    readonly listen: (
      channel: string,
      poll?: Duration.DurationInput
    ) => Effect.Effect<Effect.Effect<unknown>, never, Scope.Scope>
    /** How long a follower retries reads failing with `StorageError` before its stream fails (see `follow`). */
    readonly reconnectTimeout: Duration.Duration
  }
>() {}

/** A follower's `reconnectTimeout` unless its backend is given another (`PgDatabase`'s `reconnectTimeout` option). */
export const defaultReconnectTimeout: Duration.Duration = Duration.minutes(5)

/** The key of a channel: itself, or a digest when too long for a PostgreSQL `NOTIFY` payload. */
export const channelKey = (channel: string): string =>
  channel.length <= 512 ? channel : `#${createHash("sha256").update(channel).digest("hex")}`

/**
 * One listener's pending wake: none, one with its hint, or a plain one (no hint, or several wakes merged, which
 * a later hinted wake never replaces: the reader then reads everything after its cursor).
 */
class Mailbox {
  private pending: "none" | "plain" | "hinted" = "none"
  private hint: unknown = undefined
  private waiter: ((hint: unknown) => void) | undefined = undefined

  /** Records a wake (resuming the waiting reader, if any). */
  offer(hint: unknown): void {
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter(hint)
    } else if (this.pending === "none" && hint !== undefined) {
      this.pending = "hinted"
      this.hint = hint
    } else {
      this.pending = "plain"
      this.hint = undefined
    }
  }

  /** Waits for a wake; its hint. */
  readonly take: Effect.Effect<unknown> = Effect.suspend(() => {
    if (this.pending !== "none") {
      const hint = this.hint
      this.pending = "none"
      this.hint = undefined
      return Effect.succeed(hint)
    }
    return Effect.async<unknown>((resume) => {
      this.waiter = (hint) => resume(Effect.succeed(hint))
      return Effect.sync(() => {
        this.waiter = undefined
      })
    })
  })
}

/** This process's listeners, by channel key. */
const listeners = new Map<string, Set<Mailbox>>()

/** Wakes this process's listeners of `key` now, with `hint` for those that have no other wake pending. */
export const wakeLocal = (key: string, hint?: unknown): void => {
  const mailboxes = listeners.get(key)
  if (mailboxes !== undefined) for (const mailbox of mailboxes) mailbox.offer(hint)
}

/** Wakes every listener of this process (after a lost connection, when any change may have been missed). */
export const wakeAllLocal = (): void => {
  for (const key of listeners.keys()) wakeLocal(key)
}

/**
 * Listens to `key` in this process for the scope (and, with `poll`, wakes the listener alone every `poll`, from a
 * fiber of the scope: waiting then needs no timeout race, so a wake reaches the reader with no fiber in between).
 */
export const listenLocal = (
  key: string,
  poll?: Duration.DurationInput
): Effect.Effect<Effect.Effect<unknown>, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const mailbox = new Mailbox()
      const mailboxes = listeners.get(key)
      if (mailboxes === undefined) listeners.set(key, new Set([mailbox]))
      else mailboxes.add(mailbox)
      return mailbox
    }),
    (mailbox) =>
      Effect.sync(() => {
        const mailboxes = listeners.get(key)
        mailboxes?.delete(mailbox)
        if (mailboxes?.size === 0) listeners.delete(key)
      })
  ).pipe(
    Effect.tap((mailbox) =>
      poll === undefined
        ? Effect.void
        : Effect.forkScoped(
            Effect.forever(
              Effect.zipRight(
                Effect.sleep(poll),
                Effect.sync(() => mailbox.offer(undefined))
              )
            )
          )
    ),
    Effect.map((mailbox) => mailbox.take)
  )

/** Wake-ups within this process, firing after the commits `hooks` observe: what memory and SQLite use. */
export const inProcess = (hooks: Option.Option<CommitHooks["Type"]>): Wakeups["Type"] => ({
  wake: (channel, hint) => {
    const key = channelKey(channel)
    return Option.isSome(hooks)
      ? hooks.value.afterCommit(() => wakeLocal(key, hint))
      : Effect.sync(() => wakeLocal(key, hint))
  },
  listen: (channel, poll) => listenLocal(channelKey(channel), poll),
  reconnectTimeout: defaultReconnectTimeout
})

/**
 * The wake-ups a store layer uses, resolved when it is built: those in context (`PgDatabase`'s), else this
 * process's, bound to the backend's `CommitHooks` when there are some.
 */
export const current: Effect.Effect<Wakeups["Type"]> = Effect.flatMap(
  Effect.serviceOption(Wakeups),
  Option.match({
    onSome: Effect.succeed,
    onNone: () => Effect.map(Effect.serviceOption(CommitHooks), inProcess)
  })
)

/** One read of a follower: the rows after the cursor, the cursor after them, and whether the source has ended. */
export interface Batch<A, C> {
  readonly items: ReadonlyArray<A>
  readonly cursor: C
  /** No row will ever follow (e.g. a closed session): the stream ends once `items` are delivered. */
  readonly done?: boolean
  /**
   * The read found every row there was (e.g. a page shorter than its limit): after delivering `items`, wait for
   * the next wake (or poll) before reading again, instead of reading once more to find nothing.
   */
  readonly caughtUp?: boolean
}

/**
 * `effect`, retried while it fails with `StorageError`: after 0.1 s, doubling to 5 s between attempts (jittered),
 * until `budget` has passed since the first failure; then it fails with the last error.
 */
const retryingStorage = <A, E, R>(effect: Effect.Effect<A, E, R>, budget: Duration.Duration) =>
  Effect.retry(effect, {
    schedule: Schedule.exponential("100 millis").pipe(
      Schedule.union(Schedule.spaced("5 seconds")),
      Schedule.jittered,
      Schedule.upTo(budget)
    ),
    while: (error) => error instanceof StorageError
  })

/**
 * The rows of `channel` from `start` on (a cursor, or the read that finds it), live: `read(cursor, hint)` is called
 * until it returns no rows (or says it has `caughtUp`), then again after each wake (or every `poll`, default 1
 * second, in case a wake was lost), with the wake's hint (`undefined` on the first read, after a poll, and when
 * wakes merged). Pulled: rows are read only as fast as the stream is consumed. A read (or `start`) failing with
 * `StorageError` is retried from the same cursor with backoff for the wake-ups' `reconnectTimeout`.
 */
export const follow = <A, C, E, R>(
  wakeups: Wakeups["Type"],
  options: {
    readonly channel: string
    readonly start: C | Effect.Effect<C, E, R>
    readonly read: (cursor: C, hint: unknown) => Effect.Effect<Batch<A, C>, E, R>
    readonly poll?: Duration.DurationInput
  }
): Stream.Stream<A, E, R> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const next = yield* wakeups.listen(options.channel, options.poll ?? "1 second")
      const budget = wakeups.reconnectTimeout
      let cursor = Effect.isEffect(options.start) ? yield* retryingStorage(options.start, budget) : options.start
      let ended = false
      let wait = false
      const step: Effect.Effect<Chunk.Chunk<A>, Option.Option<E>, R> = Effect.gen(function* () {
        while (!ended) {
          const hint = wait ? yield* next : undefined
          const batch = yield* Effect.mapError(retryingStorage(options.read(cursor, hint), budget), Option.some)
          cursor = batch.cursor
          ended = batch.done === true
          wait = !ended && (batch.items.length === 0 || batch.caughtUp === true)
          if (batch.items.length > 0) return Chunk.unsafeFromArray(batch.items as Array<A>)
        }
        return yield* Effect.fail(Option.none())
      })
      return Stream.repeatEffectChunkOption(step)
    })
  )
