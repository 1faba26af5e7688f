/**
 * Record ids: UUIDv7 stamped with the Effect `Clock` time (so `TestClock`
 * works), increasing within a process, so they sort in creation order.
 */
import { Clock, Effect } from "effect"
import { randomUUID } from "node:crypto"

const hex3: Array<string> = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(3, "0"))

let lastMillis = -1
let counter = 0
let prefix = ""

/**
 * A UUIDv7 for the given epoch milliseconds: 48 bits of time, a 12-bit
 * counter (`rand_a`) and 62 random bits. Ids made by this process are
 * strictly increasing: within one millisecond the counter grows, and a clock
 * that goes back keeps the last time seen.
 */
export const uuidv7At = (millis: number): string => {
  if (millis > lastMillis) {
    lastMillis = millis
    counter = 0
    const time = millis.toString(16).padStart(12, "0")
    prefix = `${time.slice(0, 8)}-${time.slice(8)}-7`
  } else if (++counter > 0xfff) {
    return uuidv7At(lastMillis + 1)
  }
  // randomUUID() is "xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx" with the RFC 9562 variant at V: keep its last 62 bits.
  return prefix + hex3[counter]! + randomUUID().slice(18)
}

/** A fresh UUIDv7 stamped with the current `Clock` time. */
export const uuidv7: Effect.Effect<string> = Effect.map(Clock.currentTimeMillis, uuidv7At)
