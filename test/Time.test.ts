/** `utcFromMillis` must build exactly what `DateTime.unsafeMake` builds. */
import { describe, expect, it } from "@effect/vitest"
import { DateTime, Equal, Hash, Schema } from "effect"
import { utcFromMillis } from "../src/Time.ts"

describe("utcFromMillis", () => {
  it("is indistinguishable from DateTime.unsafeMake", () => {
    for (const millis of [0, 1, -1, 1_700_000_000_123, 253_402_300_799_999, -62_135_596_800_000]) {
      const fast = utcFromMillis(millis)
      const real = DateTime.unsafeMake(millis)
      expect(DateTime.isDateTime(fast)).toBe(true)
      expect(DateTime.isUtc(fast)).toBe(true)
      expect(Schema.is(Schema.DateTimeUtcFromSelf)(fast)).toBe(true)
      expect(Equal.equals(fast, real)).toBe(true)
      expect(Hash.hash(fast)).toBe(Hash.hash(real))
      expect(fast).toEqual(real)
      expect(Object.keys(fast)).toEqual(Object.keys(real))
      expect(JSON.stringify(fast)).toBe(JSON.stringify(real))
      expect(String(fast)).toBe(String(real))
      expect(DateTime.formatIso(fast)).toBe(DateTime.formatIso(real))
      expect(DateTime.toEpochMillis(fast)).toBe(millis)
      expect(DateTime.toPartsUtc(fast)).toEqual(DateTime.toPartsUtc(real))
      expect(DateTime.toPartsUtc(fast)).toBe(DateTime.toPartsUtc(fast))
      expect(fast).toEqual(real)
      expect(Object.keys(fast)).toEqual(["epochMillis"])
      const zone = DateTime.zoneUnsafeMakeNamed("Europe/Lisbon")
      expect(DateTime.formatIsoZoned(DateTime.setZone(fast, zone))).toBe(
        DateTime.formatIsoZoned(DateTime.setZone(real, zone))
      )
      expect(DateTime.add(fast, { hours: 1 })).toEqual(DateTime.add(real, { hours: 1 }))
      expect(Schema.encodeSync(Schema.DateTimeUtcFromNumber)(fast)).toBe(millis)
    }
  })
})
