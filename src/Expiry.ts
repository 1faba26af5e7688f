/**
 * Expiry read against the Effect `Clock`: a record with `expiresAt` (epoch
 * milliseconds, `null` for never) is invisible from that instant on, whether
 * or not a sweep has deleted it yet. Reads take `now` from `Clock` (so
 * `TestClock` works) and filter with `isExpired`, `unexpired` or, in SQL,
 * `notExpiredSql`.
 */
import { Clock, Duration, Effect } from "effect"

/** Whether a record expiring at `expiresAt` is expired at `now`: from `expiresAt` on (inclusive); never when absent. */
export const isExpired = (expiresAt: number | null | undefined, now: number): boolean =>
  expiresAt !== null && expiresAt !== undefined && expiresAt <= now

/**
 * When a record given `ttl` now expires: `Clock` time plus `ttl`, rounded up
 * to a whole millisecond (a TTL is never shortened; zero or negative expires
 * at once). `null`, never, for an absent or infinite `ttl`.
 */
export const expiresAtFrom = (ttl: Duration.DurationInput | undefined): Effect.Effect<number | null> =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    if (ttl === undefined) return null
    const millis = Duration.toMillis(Duration.decode(ttl))
    return Number.isFinite(millis) ? now + Math.ceil(millis) : null
  })

/** The records of `rows` not expired at `now` (their `expiresAt` absent, `null` or later than `now`), in order. */
export const unexpired = <A extends { readonly expiresAt?: number | null | undefined }>(
  rows: Iterable<A>,
  now: number
): Array<A> => {
  const live: Array<A> = []
  for (const row of rows) if (!isExpired(row.expiresAt, now)) live.push(row)
  return live
}

/**
 * The SQL condition "not expired" on `column` (epoch milliseconds, `NULL` for
 * never), the same rule as `isExpired`, with one `?` placeholder to bind `now`
 * to. Valid on SQLite and PostgreSQL.
 */
export const notExpiredSql = (column: string): string => `(${column} IS NULL OR ${column} > ?)`
