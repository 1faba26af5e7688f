/**
 * The kernel pieces later stores build on: canonical JSON and hashing, binary
 * values (bytes and float32 vectors) on memory, SQLite and PostgreSQL, expiry
 * against `Clock`, the lock, integrity and decode errors, and wake-up hints. PostgreSQL tests
 * use `DATABASE_URL` (default the local server's `test` database, created when
 * missing); without a usable server they are skipped with the reason printed, and under CI (`CI` set) they fail.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import {
  Arbitrary,
  Chunk,
  Clock,
  Duration,
  Effect,
  Either,
  FastCheck as fc,
  Fiber,
  Layer,
  Option,
  Redacted,
  Schema,
  Stream,
  TestClock,
  TestServices
} from "effect"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as Wakeups from "../layers/Wakeups.ts"
import { StoresSqlite } from "../layers/Stores.ts"
import { Bytes, bytesToFloat32, copyBytes, float32ToBytes, Vector } from "../src/Binary.ts"
import { canonicalJson, sha256Hex } from "../src/CanonicalJson.ts"
import { DecodeError, IntegrityError, LockHeld, LockLost, NotFound, StorageError } from "../src/Errors.ts"
import { expiresAtFrom, isExpired, notExpiredSql, unexpired } from "../src/Expiry.ts"
import { pgReady, pgUrl } from "./pg.ts"

const canonical = (value: unknown): string => Either.getOrThrow(canonicalJson(value))

/** A deep copy of a JSON value whose objects get their keys inserted in the order `order` gives. */
const reorder = (value: unknown, order: (keys: Array<string>) => Array<string>): unknown => {
  if (Array.isArray(value)) return value.map((item) => reorder(item, order))
  if (value === null || typeof value !== "object") return value
  const record = value as Record<string, unknown>
  return Object.fromEntries(order(Object.keys(record)).map((key) => [key, reorder(record[key], order)]))
}

/** Whether every object in `value` iterates its keys in sorted order (integer-like keys iterate first, numerically). */
const iteratesSorted = (value: unknown): boolean => {
  if (Array.isArray(value)) return value.every(iteratesSorted)
  if (value === null || typeof value !== "object") return true
  const keys = Object.keys(value)
  return keys.join("\u0001") === [...keys].sort().join("\u0001") && Object.values(value).every(iteratesSorted)
}

/** A deterministic shuffle of `keys` from `seed` (a small linear congruential generator). */
const shuffle =
  (seed: number) =>
  (keys: Array<string>): Array<string> => {
    const out = [...keys]
    let state = seed >>> 0
    for (let i = out.length - 1; i > 0; i--) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0
      const j = state % (i + 1)
      ;[out[i], out[j]] = [out[j]!, out[i]!]
    }
    return out
  }

/** JSON values whose strings mix any code point with the awkward ones: lone surrogates, U+0000, quotes, `__proto__`. */
const jsonValues = fc.jsonValue({
  maxDepth: 4,
  stringUnit: fc.oneof(
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
    fc.constantFrom("\ud83d", "\udc00", "\u0000", "\u2028", '"', "\\", "__proto__", "10", "9", "é", "e\u0301")
  )
})

describe("canonicalJson", () => {
  it.prop("is a fixed point: canonical text parses back to the same canonical text", [jsonValues], ([value]) => {
    const text = canonical(value)
    expect(canonical(JSON.parse(text))).toBe(text)
  })

  it.prop("does not depend on the input's key order", [jsonValues, fc.integer()], ([value, seed]) => {
    const text = canonical(value)
    expect(canonical(reorder(value, shuffle(seed)))).toBe(text)
    expect(canonical(reorder(value, (keys) => [...keys].reverse()))).toBe(text)
  })

  it.prop("equals JSON.stringify for inputs whose keys iterate sorted", [jsonValues], ([value]) => {
    const sorted = reorder(value, (keys) => [...keys].sort())
    fc.pre(iteratesSorted(sorted))
    expect(canonical(sorted)).toBe(JSON.stringify(sorted))
  })

  it("sorts keys by UTF-16 code units, integer-like keys included", () => {
    expect(canonical({ b: 1, a: { d: [3, { z: 0, y: null }], c: true } })).toBe(
      '{"a":{"c":true,"d":[3,{"y":null,"z":0}]},"b":1}'
    )
    // JavaScript iterates integer-like keys first, numerically: JSON.stringify gives {"9":…,"10":…}
    expect(canonical({ 9: "x", 10: "y", a: "z" })).toBe('{"10":"y","9":"x","a":"z"}')
    // U+FB01 sorts after U+1F600 by code point, before it by UTF-16 code unit (0xD83D)
    expect(canonical({ "\u{1f600}": 1, "\ufb01": 2 })).toBe('{"\u{1f600}":1,"\ufb01":2}')
    const withProto = JSON.parse('{"z":1,"__proto__":{"a":1}}')
    expect(canonical(withProto)).toBe('{"__proto__":{"a":1},"z":1}')
  })

  it("writes one number form and escapes strings as JSON.stringify does", () => {
    expect(canonical([-0, 0, 1, -1.5, 0.1, 1e21, 1e-7, 123456789012345680000, 2 ** 53, 5e-324])).toBe(
      "[0,0,1,-1.5,0.1,1e+21,1e-7,123456789012345680000,9007199254740992,5e-324]"
    )
    expect(canonical(1.0)).toBe(canonical(1))
    for (const text of ["\u0000", "\ud83d", "\udc00x", "\u{1f600}", "\u2028\u2029", '"\\/', "\n\t\u001f\u007f"]) {
      expect(canonical(text)).toBe(JSON.stringify(text))
    }
    expect(canonical("\ud83d")).toBe('"\\ud83d"')
    expect(canonical({ "\u0000": "\u0000" })).toBe('{"\\u0000":"\\u0000"}')
  })

  it("writes shared references in full and accepts null-prototype objects", () => {
    const shared = { a: 1 }
    const bare = Object.assign(Object.create(null), { b: 2, a: 1 })
    expect(canonical({ x: shared, y: [shared, shared], bare })).toBe(
      '{"bare":{"a":1,"b":2},"x":{"a":1},"y":[{"a":1},{"a":1}]}'
    )
  })

  it("is InvalidInput, with the path, for anything that is not JSON", () => {
    const cyclic: Record<string, unknown> = { a: [1] }
    ;(cyclic.a as Array<unknown>).push(cyclic)
    const throwing = {
      get bad(): unknown {
        throw new Error("boom")
      }
    }
    const trap = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error("trapped")
        }
      }
    )
    let deep: unknown = 0
    for (let i = 0; i < 300; i++) deep = [deep]
    class Point {
      x = 1
    }
    const cases: Array<[unknown, ReadonlyArray<string | number>, RegExp]> = [
      [undefined, [], /^input must be a JSON value, got undefined$/],
      [{ a: { b: undefined } }, ["a", "b"], /^a\.b must be a JSON value, got undefined$/],
      [[1, () => 1], [1], /got function/],
      [{ n: NaN }, ["n"], /^n must be a finite number, got NaN$/],
      [[Infinity], [0], /got Infinity/],
      [{ big: 1n }, ["big"], /got bigint/],
      [{ s: Symbol("s") }, ["s"], /got symbol/],
      [{ when: new Date(0) }, ["when"], /^when must be a JSON value, got a Date$/],
      [{ m: new Map() }, ["m"], /got a Map/],
      [new Point(), [], /got a Point/],
      [new Uint8Array(2), [], /got a Uint8Array/],
      [[1, , 3], [1], /got an array hole/],
      [cyclic, ["a", 1], /^a\[1\] must not contain itself \(a cycle\)$/],
      [deep, Array.from({ length: 256 }, () => 0), /must not nest deeper than 256 levels/],
      [{ ok: 1, throwing }, ["throwing", "bad"], /^throwing\.bad could not be read: boom$/],
      [{ trap }, ["trap"], /could not be read: trapped/]
    ]
    for (const [value, path, message] of cases) {
      const result = canonicalJson(value)
      if (Either.isRight(result)) throw new Error(`accepted ${result.right}`)
      expect(result.left._tag).toBe("InvalidInput")
      expect(result.left.entity).toBe("json")
      expect(result.left.issues[0]?.path).toEqual(path)
      expect(result.left.message).toMatch(message)
    }
  })
})

describe("sha256Hex", () => {
  it("hashes text as UTF-8 and bytes as they are", () => {
    expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    expect(sha256Hex(new Uint8Array([0x61, 0x62, 0x63]))).toBe(sha256Hex("abc"))
    expect(sha256Hex("é")).toBe(sha256Hex(new Uint8Array([0xc3, 0xa9])))
  })

  it.prop("hashes equal JSON values equally whatever their key order", [jsonValues, fc.integer()], ([value, seed]) => {
    expect(sha256Hex(canonical(reorder(value, shuffle(seed))))).toBe(sha256Hex(canonical(value)))
  })

  it("tells lone surrogates apart only through canonical JSON", () => {
    expect(sha256Hex("\ud800")).toBe(sha256Hex("\udc00"))
    expect(sha256Hex(canonical("\ud800"))).not.toBe(sha256Hex(canonical("\udc00")))
  })
})

/** A view at an odd `byteOffset` into a larger buffer, as drivers return pooled `Buffer`s. */
const unaligned = (bytes: Uint8Array): Uint8Array => {
  const pool = new Uint8Array(bytes.length + 3)
  pool.set(bytes, 1)
  return pool.subarray(1, 1 + bytes.length)
}

const float32Vectors = fc.float32Array({ noDefaultInfinity: true, noNaN: true, maxLength: 64 })

describe("Binary", () => {
  it("copyBytes returns a plain Uint8Array with its own memory", () => {
    const buffer = Buffer.from("hello")
    const copy = copyBytes(buffer.subarray(1, 4))
    expect(copy.constructor).toBe(Uint8Array)
    expect(copy.byteOffset).toBe(0)
    expect(copy.buffer.byteLength).toBe(3)
    buffer[1] = 0
    expect(Array.from(copy)).toEqual([0x65, 0x6c, 0x6c])
  })

  it("float32ToBytes is little-endian, 4 bytes a value", () => {
    expect(Array.from(float32ToBytes(new Float32Array([1, -2])))).toEqual([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0])
    const view = new Float32Array([9, 1.5, 9]).subarray(1, 2)
    expect(Array.from(float32ToBytes(view))).toEqual([0, 0, 0xc0, 0x3f])
  })

  it.prop("vectors round-trip through bytes at any byteOffset", [float32Vectors], ([vector]) => {
    const bytes = float32ToBytes(vector)
    expect(bytes.length).toBe(vector.length * 4)
    const back = bytesToFloat32(unaligned(bytes))
    expect(back.byteOffset).toBe(0)
    // Object.is per value: -0 and every float32 bit pattern survive
    expect(Array.from(back).every((x, i) => Object.is(x, vector[i]))).toBe(true)
  })

  it("bytesToFloat32 rejects a length that is not a multiple of 4", () => {
    expect(() => bytesToFloat32(new Uint8Array(6))).toThrow(RangeError)
  })

  it("a memory store of copies never shares a buffer with its callers", () => {
    const stored = new Map<string, { readonly bytes: Uint8Array; readonly vector: Uint8Array }>()
    const write = (id: string, bytes: Uint8Array, vector: Float32Array) =>
      stored.set(id, { bytes: copyBytes(bytes), vector: float32ToBytes(vector) })
    const read = (id: string) => {
      const row = stored.get(id)!
      return { bytes: copyBytes(row.bytes), vector: bytesToFloat32(row.vector) }
    }
    const bytes = new Uint8Array([1, 2, 3])
    const vector = new Float32Array([0.5, 0.25])
    write("a", bytes, vector)
    bytes.fill(9)
    vector.fill(9)
    const first = read("a")
    expect(Array.from(first.bytes)).toEqual([1, 2, 3])
    expect(Array.from(first.vector)).toEqual([0.5, 0.25])
    first.bytes.fill(7)
    first.vector.fill(7)
    const second = read("a")
    expect(Array.from(second.bytes)).toEqual([1, 2, 3])
    expect(Array.from(second.vector)).toEqual([0.5, 0.25])
  })

  it("Bytes and Vector Schemas", () => {
    expect(Schema.is(Bytes)(Buffer.from("x"))).toBe(true)
    expect(Schema.is(Bytes)([1, 2])).toBe(false)
    expect(Schema.is(Vector)(new Float32Array([1, -0, 3.5]))).toBe(true)
    expect(Schema.is(Vector)(new Float64Array([1]))).toBe(false)
    expect(Schema.is(Vector)([1, 2])).toBe(false)
    const bad = Schema.decodeUnknownEither(Vector)(new Float32Array([1, NaN]))
    expect(Either.isLeft(bad) && bad.left.message).toMatch(/every value must be finite/)
    expect(Schema.is(Vector)(new Float32Array([Infinity]))).toBe(false)
    fc.assert(fc.property(Arbitrary.make(Vector), (vector) => Schema.is(Vector)(vector)))
  })
})

/** A table name no other run uses. */
const tableName = (stem: string) => `kernel_${stem}_${process.pid}_${Date.now().toString(36)}`

/** Every byte value, and a vector with -0, subnormals, extremes and 1536 dimensions of ordinary values. */
const image = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 256)
const embedding = Float32Array.from({ length: 1536 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4))
embedding.set([-0, 1.4e-45, -3.4028234663852886e38, 1.1754943508222875e-38], 0)

/** Bytes and a vector written to a BLOB/`bytea` table and read back, on whatever `SqlClient` is provided. */
const binaryRoundTrip = Effect.gen(function* () {
  const sql = yield* SqlClient
  const table = tableName("binary")
  const blob = sql.onDialectOrElse({ pg: () => "bytea", orElse: () => "BLOB" })
  yield* sql.unsafe(`CREATE TABLE ${table} (id TEXT PRIMARY KEY, bytes ${blob} NOT NULL, vector ${blob} NOT NULL)`)
  const read = Effect.map(
    sql<{ bytes: Uint8Array; vector: Uint8Array }>`SELECT bytes, vector FROM ${sql(table)} WHERE id = ${"a"}`,
    ([row]) => ({ bytes: copyBytes(row!.bytes), vector: bytesToFloat32(row!.vector) })
  )
  return yield* Effect.gen(function* () {
    // both written from views at odd offsets into larger buffers: only the viewed bytes may be stored
    const bytes = unaligned(image)
    const vectorBytes = unaligned(float32ToBytes(embedding))
    yield* sql`INSERT INTO ${sql(table)} (id, bytes, vector) VALUES (${"a"}, ${bytes}, ${vectorBytes})`
    bytes.fill(0)
    vectorBytes.fill(0)
    const first = yield* read
    expect(first.bytes).toEqual(image)
    expect(Array.from(first.vector).every((x, i) => Object.is(x, embedding[i]))).toBe(true)
    first.bytes.fill(1)
    first.vector.fill(1)
    const second = yield* read
    expect(second.bytes).toEqual(image)
    expect(second.vector).toEqual(embedding)
    const [sizes] = yield* sql<{ bytes: number | string; vector: number | string }>`
      SELECT ${sql.literal(sql.onDialectOrElse({ pg: () => "octet_length", orElse: () => "length" }))}(bytes) AS bytes,
        ${sql.literal(sql.onDialectOrElse({ pg: () => "octet_length", orElse: () => "length" }))}(vector) AS vector
      FROM ${sql(table)}`
    expect([Number(sizes!.bytes), Number(sizes!.vector)]).toEqual([1000, 1536 * 4])
  }).pipe(Effect.ensuring(Effect.orDie(sql.unsafe(`DROP TABLE ${table}`))))
})

/**
 * Rows with no expiry, a 10 s and a 20 s TTL, read with `notExpiredSql` (its `?`
 * made `$1` on PostgreSQL, as the store kit does) as the `TestClock` advances.
 */
const expiryOnSql = Effect.gen(function* () {
  const sql = yield* SqlClient
  const table = tableName("expiry")
  yield* sql.unsafe(`CREATE TABLE ${table} (id TEXT PRIMARY KEY, expires_at BIGINT)`)
  const visible = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const where = notExpiredSql("expires_at").replace("?", sql.onDialectOrElse({ pg: () => "$1", orElse: () => "?" }))
    const rows = yield* sql.unsafe<{ id: string }>(`SELECT id FROM ${table} WHERE ${where} ORDER BY id`, [now])
    return rows.map((row) => row.id)
  })
  return yield* Effect.gen(function* () {
    for (const [id, ttl] of [
      ["forever", undefined],
      ["short", "10 seconds"],
      ["long", "20 seconds"]
    ] as const) {
      const expiresAt = yield* expiresAtFrom(ttl)
      yield* sql`INSERT INTO ${sql(table)} (id, expires_at) VALUES (${id}, ${expiresAt})`
    }
    expect(yield* visible).toEqual(["forever", "long", "short"])
    yield* TestClock.adjust("10 seconds")
    expect(yield* visible).toEqual(["forever", "long"])
    yield* TestClock.adjust("10 seconds")
    expect(yield* visible).toEqual(["forever"])
  }).pipe(Effect.ensuring(Effect.orDie(sql.unsafe(`DROP TABLE ${table}`))))
})

describe("SQLite (better-sqlite3 through the layer's SqlClient)", () => {
  const sqlite = StoresSqlite({ filename: ":memory:" })
  it.effect("bytes and vectors round-trip through a BLOB column", () => binaryRoundTrip.pipe(Effect.provide(sqlite)))
  it.effect("an expired row is invisible to a read before any sweep", () => expiryOnSql.pipe(Effect.provide(sqlite)))
})

const pg = PgClient.layer({ url: Redacted.make(pgUrl), connectTimeout: "3 seconds" })
const pgUnreachable = await pgReady("kernel PostgreSQL tests")

if (pgUnreachable !== undefined) {
  describe.skip("PostgreSQL", () => {
    it("needs a reachable server", () => {})
  })
} else {
  const clients: ReadonlyArray<readonly [string, Layer.Layer<SqlClient, unknown>]> = [
    ["@effect/sql-pg", pg],
    ["the stores' PgDatabase", PgDatabase.layer({ url: pgUrl })],
    ["the stores' PgDatabase, prepare: false", PgDatabase.layer({ url: pgUrl, prepare: false })]
  ]
  for (const [label, client] of clients) {
    describe(`PostgreSQL (${label})`, () => {
      it.effect("bytes and vectors round-trip through a bytea column", () =>
        binaryRoundTrip.pipe(Effect.provide(client))
      )
      it.effect("an expired row is invisible to a read before any sweep", () =>
        expiryOnSql.pipe(Effect.provide(client))
      )
    })
  }
}

describe("Expiry", () => {
  it("a record is expired from its expiresAt on, never without one", () => {
    expect(isExpired(1000, 999)).toBe(false)
    expect(isExpired(1000, 1000)).toBe(true)
    expect(isExpired(1000, 1001)).toBe(true)
    expect(isExpired(null, Number.MAX_SAFE_INTEGER)).toBe(false)
    expect(isExpired(undefined, Number.MAX_SAFE_INTEGER)).toBe(false)
  })

  it.effect("expiresAtFrom adds the TTL to the Clock's time, rounded up to a millisecond", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(5_000)
      expect(yield* expiresAtFrom("2 seconds")).toBe(7_000)
      expect(yield* expiresAtFrom(Duration.micros(1n))).toBe(5_001)
      expect(yield* expiresAtFrom(0)).toBe(5_000)
      expect(yield* expiresAtFrom(-10)).toBe(5_000)
      expect(yield* expiresAtFrom(Duration.infinity)).toBe(null)
      expect(yield* expiresAtFrom(undefined)).toBe(null)
    })
  )

  it.effect("unexpired hides a record once the TestClock passes its TTL", () =>
    Effect.gen(function* () {
      const rows = [
        { id: "never", expiresAt: null },
        { id: "absent" },
        { id: "ttl", expiresAt: yield* expiresAtFrom("1 minute") }
      ]
      expect(unexpired(rows, yield* Clock.currentTimeMillis).map((row) => row.id)).toEqual(["never", "absent", "ttl"])
      yield* TestClock.adjust("59 seconds")
      expect(unexpired(rows, yield* Clock.currentTimeMillis)).toHaveLength(3)
      yield* TestClock.adjust("1 second")
      expect(unexpired(rows, yield* Clock.currentTimeMillis).map((row) => row.id)).toEqual(["never", "absent"])
    })
  )
})

describe("kernel errors", () => {
  it("have readable messages and survive a Schema encode/decode round trip", () => {
    const errors = [
      new LockHeld({ key: "job:1", owner: "worker-a", expiresAt: Date.UTC(2030, 0, 2, 3, 4, 5) }),
      new LockLost({ key: "job:1", owner: "worker-b", token: 42 }),
      new IntegrityError({ entity: "image", id: "img-1", expected: "ab12", actual: "cd34" })
    ] as const
    expect(errors.map((error) => error.message)).toEqual([
      'lock "job:1" is held by "worker-a" until 2030-01-02T03:04:05.000Z',
      'lock "job:1" is no longer held by "worker-b" with token 42',
      'image "img-1": content hash is cd34, expected ab12'
    ])
    expect(new LockHeld({ key: "k", owner: "o", expiresAt: 1e300 }).message).toMatch(/until 1e\+300$/)
    const union = Schema.Union(LockHeld, LockLost, IntegrityError, DecodeError)
    for (const error of errors) {
      const decoded = Schema.decodeUnknownSync(union)(Schema.encodeSync(union)(error))
      expect(decoded).toBeInstanceOf(error.constructor)
      expect(decoded).toEqual(error)
    }
  })

  it("DecodeError.fromParseError names the stored document and the path that no longer matches", () => {
    const Profile = Schema.Struct({ name: Schema.String, tags: Schema.Array(Schema.String) })
    const stored = { name: "Ada", tags: ["a", 7] }
    const result = Schema.decodeUnknownEither(Profile)(stored)
    if (Either.isRight(result)) throw new Error("decoded")
    const error = DecodeError.fromParseError("profile", "p-1", result.left)
    expect(error._tag).toBe("DecodeError")
    expect(error.issues).toEqual([{ path: ["tags", 1], message: "must be a string, got 7" }])
    expect(error.message).toBe('stored profile "p-1" does not match its schema: tags[1] must be a string, got 7')
    const union = Schema.Union(DecodeError)
    expect(Schema.decodeUnknownSync(union)(Schema.encodeSync(union)(error))).toEqual(error)
  })
})

describe("Wakeups", () => {
  it.scoped(
    "a wake's hint reaches a listener only when it is the only wake pending; merged or plain wakes carry none",
    () =>
      Effect.gen(function* () {
        const key = `test-wakeups-${Date.now().toString(36)}`
        const next = yield* Wakeups.listenLocal(key)
        Wakeups.wakeLocal(key, "a")
        expect(yield* next).toBe("a")
        Wakeups.wakeLocal(key)
        Wakeups.wakeLocal(key, "b")
        expect(yield* next).toBe(undefined)
        Wakeups.wakeLocal(key, "c")
        Wakeups.wakeLocal(key, "d")
        expect(yield* next).toBe(undefined)
        // A listener already waiting takes the hint at once.
        const waiting = yield* Effect.fork(next)
        yield* Effect.yieldNow()
        Wakeups.wakeLocal(key, "e")
        expect(yield* Fiber.join(waiting)).toBe("e")
        // Nothing pending: the next take waits.
        expect(Option.isNone(yield* Effect.timeout(next, "20 millis").pipe(Effect.option))).toBe(true)
      }).pipe(TestServices.provideLive)
  )

  /** A follower of rows 1..6, two per read, whose reads fail as `fails(call)` says (ending once it has them all). */
  const follower = (
    reconnectTimeout: Duration.DurationInput,
    fails: (call: number) => StorageError | NotFound | void
  ) => {
    const cursors: Array<number> = []
    const read = (cursor: number) =>
      Effect.suspend(() => {
        cursors.push(cursor)
        const failure = fails(cursors.length)
        if (failure !== undefined) return Effect.fail(failure)
        const items = [1, 2, 3, 4, 5, 6].filter((row) => row > cursor).slice(0, 2)
        return Effect.succeed({ items, cursor: items[items.length - 1] ?? cursor, done: items.length === 0 })
      })
    const wakeups = { ...Wakeups.inProcess(Option.none()), reconnectTimeout: Duration.decode(reconnectTimeout) }
    const key = `test-follow-${Date.now().toString(36)}-${Math.random()}`
    return { cursors, stream: Wakeups.follow(wakeups, { channel: key, start: Effect.succeed(0), read }) }
  }
  const down = new StorageError({ backend: "test", operation: "read", cause: "server away" })

  it.scoped("a follower retries reads failing with StorageError from the same cursor: no gap, no duplicate", () =>
    Effect.gen(function* () {
      const { cursors, stream } = follower("1 minute", (call) => (call === 2 || call === 3 ? down : undefined))
      const run = yield* Effect.fork(Stream.runCollect(stream))
      yield* TestClock.adjust("10 seconds")
      expect(Chunk.toArray(yield* Fiber.join(run))).toEqual([1, 2, 3, 4, 5, 6])
      expect(cursors).toEqual([0, 2, 2, 2, 4, 6])
    })
  )

  it.scoped(
    "a follower fails with the StorageError once reads have failed for reconnectTimeout; other errors at once",
    () =>
      Effect.gen(function* () {
        const outage = follower("3 seconds", (call) => (call >= 2 ? down : undefined))
        const run = yield* Effect.fork(Stream.runCollect(outage.stream))
        yield* TestClock.adjust("2 seconds")
        expect(run.unsafePoll()).toBeNull()
        yield* TestClock.adjust("10 seconds")
        expect(yield* Effect.flip(Fiber.join(run))).toBe(down)
        const missing = new NotFound({ entity: "Session", id: "gone" })
        const gone = follower("1 minute", (call) => (call === 2 ? missing : undefined))
        expect(yield* Effect.flip(Stream.runCollect(gone.stream))).toBe(missing)
        expect(gone.cursors).toEqual([0, 2])
      })
  )
})
