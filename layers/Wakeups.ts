/**
 * Wake-ups: how a live reader learns that the rows it follows have committed.
 * A writer calls `wake(channel)` inside its operation; the wake fires after
 * the transaction commits (never for a rolled-back one, see `CommitHooks`). A
 * reader `follow`s the channel from a cursor: it reads the rows after the
 * cursor, and when none are left it waits for the next wake, or for the poll
 * interval, so a lost wake costs latency and never a row. A wake carries no
 * data and wakes merge, so a slow reader never makes a writer wait.
 *
 * In-process by default (memory and SQLite); `PgDatabase` provides wake-ups
 * that also cross processes through PostgreSQL's `LISTEN`/`NOTIFY`.
 */
import { Chunk, Context, Duration, Effect, Option, Queue, Scope, Stream } from "effect"
import { createHash } from "node:crypto"
import { CommitHooks } from "./sql/CommitHooks.ts"

/** Announces and awaits changes on named channels. */
export class Wakeups extends Context.Tag("effect-agent-stores/Wakeups")<
  Wakeups,
  {
    /** Wakes the readers of `channel` once the current transaction commits (at once outside one). */
    readonly wake: (channel: string) => Effect.Effect<void>
    /**
     * Starts listening to `channel` for the scope; the returned effect waits
     * until a wake arrived since it last returned (merged: one pending wake at
     * most). With `poll`, the listener is also woken every `poll`, alone (for
     * a wake that was lost). Listening is in place when `listen` returns, so a
     * read made after it misses nothing.
     */
    readonly listen: (
      channel: string,
      poll?: Duration.DurationInput
    ) => Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
  }
>() {}

/** The key of a channel: itself, or a digest when too long for a PostgreSQL `NOTIFY` payload. */
export const channelKey = (channel: string): string =>
  channel.length <= 512 ? channel : `#${createHash("sha256").update(channel).digest("hex")}`

/** This process's listeners, by channel key. */
const listeners = new Map<string, Set<Queue.Queue<void>>>()

/** Wakes this process's listeners of `key` now. */
export const wakeLocal = (key: string): void => {
  const queues = listeners.get(key)
  if (queues !== undefined) for (const queue of queues) queue.unsafeOffer(undefined)
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
): Effect.Effect<Effect.Effect<void>, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tap(Queue.sliding<void>(1), (queue) =>
      Effect.sync(() => {
        const queues = listeners.get(key)
        if (queues === undefined) listeners.set(key, new Set([queue]))
        else queues.add(queue)
      })
    ),
    (queue) =>
      Effect.sync(() => {
        const queues = listeners.get(key)
        queues?.delete(queue)
        if (queues?.size === 0) listeners.delete(key)
      })
  ).pipe(
    Effect.tap((queue) =>
      poll === undefined
        ? Effect.void
        : Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(poll), Queue.offer(queue, undefined))))
    ),
    Effect.map((queue) => Queue.take(queue))
  )

/** Wake-ups within this process, firing after the commits `hooks` observe: what memory and SQLite use. */
export const inProcess = (hooks: Option.Option<CommitHooks["Type"]>): Wakeups["Type"] => ({
  wake: (channel) => {
    const key = channelKey(channel)
    return Option.isSome(hooks) ? hooks.value.afterCommit(() => wakeLocal(key)) : Effect.sync(() => wakeLocal(key))
  },
  listen: (channel, poll) => listenLocal(channelKey(channel), poll)
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
 * The rows of `channel` from `start` on, live: `read(cursor)` is called
 * until it returns no rows (or says it has `caughtUp`), then again after each
 * wake (or every `poll`, default 1 second, in case a wake was lost). Pulled:
 * rows are read only as fast as the stream is consumed.
 */
export const follow = <A, C, E, R>(
  wakeups: Wakeups["Type"],
  options: {
    readonly channel: string
    readonly start: C
    readonly read: (cursor: C) => Effect.Effect<Batch<A, C>, E, R>
    readonly poll?: Duration.DurationInput
  }
): Stream.Stream<A, E, R> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const next = yield* wakeups.listen(options.channel, options.poll ?? "1 second")
      let cursor = options.start
      let ended = false
      let wait = false
      const step: Effect.Effect<Chunk.Chunk<A>, Option.Option<E>, R> = Effect.gen(function* () {
        while (!ended) {
          if (wait) yield* next
          const batch = yield* Effect.mapError(options.read(cursor), Option.some)
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
