/**
 * Decoding stored times. Rows hold epoch milliseconds; the domain holds
 * `DateTime.Utc`. `DateTime.unsafeMake` costs ≈ 250 ns (a `Date`, then a
 * property definition); decoding thousands of trusted rows needs a cheaper
 * constructor of the same values.
 */
import { DateTime } from "effect"

const utcProto = Object.getPrototypeOf(DateTime.unsafeMake(0)) as object

/**
 * The same object `DateTime.unsafeMake` builds: `epochMillis` its only own
 * enumerable property, Effect's `Utc` prototype (equality, hashing, JSON,
 * inspection), and `partsUtc`, Effect's lazily filled cache, kept
 * non-enumerable (an accessor that defines the own property on first write).
 */
function Utc(this: { epochMillis: number }, epochMillis: number) {
  this.epochMillis = epochMillis
}
Utc.prototype = Object.create(utcProto, {
  partsUtc: {
    get: () => undefined,
    set(this: object, value: unknown) {
      Object.defineProperty(this, "partsUtc", { value, writable: true, enumerable: false, configurable: true })
    },
    enumerable: false,
    configurable: true
  }
})

/** A `DateTime.Utc` from trusted epoch milliseconds (no validation: a stored time). */
export const utcFromMillis = (epochMillis: number): DateTime.Utc =>
  new (Utc as unknown as new (epochMillis: number) => DateTime.Utc)(epochMillis)
