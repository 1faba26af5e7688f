/**
 * Record ids: UUIDv7 (time-ordered) generated from the Effect `Clock`, so ids
 * made under `TestClock` are deterministic in their time part.
 */
import { Clock, Effect } from "effect"
import { randomFillSync } from "node:crypto"

const pool = new Uint8Array(4096)
let poolOffset = pool.length
let lastMillis = -1
let counter = 0

const hex: Array<string> = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

const randomBytes = (n: number): number => {
  if (poolOffset + n > pool.length) {
    randomFillSync(pool)
    poolOffset = 0
  }
  const start = poolOffset
  poolOffset += n
  return start
}

/**
 * A UUIDv7 for the given epoch milliseconds. Ids made in the same millisecond
 * by this process are strictly increasing (a 12-bit counter in `rand_a`).
 */
export const uuidv7At = (millis: number): string => {
  if (millis > lastMillis) {
    lastMillis = millis
    counter = pool[randomBytes(1)]! & 0x3f
  } else if (++counter > 0xfff) {
    lastMillis++
    counter = 0
  }
  const ms = lastMillis
  const r = randomBytes(8)
  const high = Math.floor(ms / 0x10000)
  const low = ms % 0x10000
  const b = (i: number) => hex[pool[r + i]!]!
  return (
    hex[(high >>> 24) & 0xff]! +
    hex[(high >>> 16) & 0xff]! +
    hex[(high >>> 8) & 0xff]! +
    hex[high & 0xff]! +
    "-" +
    hex[(low >>> 8) & 0xff]! +
    hex[low & 0xff]! +
    "-" +
    hex[0x70 | (counter >>> 8)]! +
    hex[counter & 0xff]! +
    "-" +
    hex[0x80 | (pool[r]! & 0x3f)]! +
    b(1) +
    "-" +
    b(2) +
    b(3) +
    b(4) +
    b(5) +
    b(6) +
    b(7)
  )
}

/** A fresh UUIDv7 stamped with the current `Clock` time. */
export const uuidv7: Effect.Effect<string> = Effect.map(Clock.currentTimeMillis, uuidv7At)
