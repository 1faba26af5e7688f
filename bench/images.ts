/**
 * The image bench (issue 11): `ImageStore.put` and `get` of 100 KB images,
 * through the library and through the raw driver running the store's own
 * statements (`SqlImageStore.statements`, resolved with `Kit.resolve`) with
 * the same round trips and the same SHA-256 (the id on put, the integrity
 * check on get): on SQLite (`SqliteDatabase` + `SqlImageStore` against raw
 * better-sqlite3, each on its own temp file with the library's schema and
 * pragmas) and on PostgreSQL (`PgDatabase` against the raw `postgres` driver,
 * pool 16 on both sides, each on its own tables, dropped at the end), at 1
 * caller on SQLite and 1 and 16 on PostgreSQL. Every put stores new bytes (a
 * counter written into a copy of one 100 KB PNG), so none is deduplicated.
 *
 * `runImages({ reps })` alternates the sides `reps` times per row after a
 * warm-up run of each and reports the best ops/s of each side, their ratio
 * and the ratio of the medians. Run alone: `node --expose-gc --import tsx
 * bench/images.ts` (`BENCH_REPS`, default 5; `DATABASE_URL`).
 */
import Database from "better-sqlite3"
import { Effect, Layer, ManagedRuntime } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlConversationStore from "../layers/sql/SqlConversationStore.ts"
import * as SqlImageStore from "../layers/sql/SqlImageStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { ImageStore, sniffImage } from "../src/Image.ts"
import {
  type OpsRow,
  POOL,
  openPool,
  timeLibrary,
  timeRaw,
  url,
  opsFigures,
  printOpsTable,
  withOpenPool
} from "./timing.ts"

/** One row of the image table. */
export type Row = OpsRow

const SIZE = 100 * 1024
/** Images stored before the get rows (each get reads one of them). */
const STORED = 50

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`bench sanity check failed: ${what}`)
}

/** A 100 KB PNG (a real header, random pixels' worth of bytes). */
const base = (() => {
  const bytes = new Uint8Array(randomBytes(SIZE))
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])
  bytes.set([0, 0, 2, 0, 0, 0, 1, 0], 16)
  return bytes
})()

/** The `n`-th distinct image of a side (`side` keeps the two sides' bytes apart). */
const imageOf = (side: number, n: number): Uint8Array => {
  const bytes = new Uint8Array(base)
  new DataView(bytes.buffer).setUint32(40, n)
  bytes[44] = side
  return bytes
}

let serial = 0

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

// ---------------------------------------------------------------------------
// Timing

// ---------------------------------------------------------------------------
// The raw sides

/** The raw side of a backend: put (hash, then the store's statements in one transaction) and get (read, re-hash). */
interface Raw {
  readonly put: (bytes: Uint8Array, now: number) => unknown
  readonly get: (id: string) => unknown
}

const texts = (prefix: string, dialect: Kit.Dialect) => {
  const { insertImage, insertRef, lockedMeta, withBytes } = SqlImageStore.statements
  return {
    insertImage: Kit.resolve(insertImage.text, prefix, dialect),
    insertRef: Kit.resolve(insertRef.text, prefix, dialect),
    meta: Kit.resolve(lockedMeta.text, prefix, dialect),
    withBytes: Kit.resolve(withBytes.text, prefix, dialect)
  }
}

const refKey = (id: string) => `${id}[null,null]`

const rawSqlite = (db: Database.Database): Raw => {
  const t = texts(Kit.defaultPrefix, "sqlite")
  const insertImage = db.prepare(t.insertImage)
  const insertRef = db.prepare(t.insertRef)
  const meta = db.prepare(t.meta).raw(true)
  const withBytes = db.prepare(t.withBytes).raw(true)
  const put = db.transaction((id: string, bytes: Uint8Array, now: number) => {
    const sniffed = sniffImage(bytes)!
    insertImage.run(id, sniffed.mimeType, bytes.length, sniffed.width ?? null, sniffed.height ?? null, now, bytes)
    const row = meta.get(id) as Array<unknown>
    insertRef.run(refKey(id), id, null, null, "{}", now)
    return row
  })
  return {
    put: (bytes, now) => {
      const copy = new Uint8Array(bytes)
      const id = sha256(copy)
      check(put.immediate(id, copy, now)[0] === id, "raw put")
    },
    get: (id) => {
      const row = withBytes.get(id) as Array<any>
      check(sha256(row[6]) === id, "raw get")
    }
  }
}

const rawPg = (sql: postgres.Sql, prefix: string): Raw => {
  const t = texts(prefix, "pg")
  return {
    put: async (bytes, now) => {
      const copy = new Uint8Array(bytes)
      const id = sha256(copy)
      const sniffed = sniffImage(copy)!
      const buffer = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength)
      const rows = await sql.begin(async (tx) => {
        await tx.unsafe(
          t.insertImage,
          [id, sniffed.mimeType, copy.length, sniffed.width ?? null, sniffed.height ?? null, now, buffer],
          { prepare: true }
        )
        const row = await tx.unsafe(t.meta, [id], { prepare: true }).values()
        await tx.unsafe(t.insertRef, [refKey(id), id, null, null, "{}", now], { prepare: true })
        return row
      })
      check(rows[0]![0] === id, "raw put")
    },
    get: async (id) => {
      const rows = await sql.unsafe(t.withBytes, [id], { prepare: true }).values()
      check(sha256(rows[0]![6] as Uint8Array) === id, "raw get")
    }
  }
}

// ---------------------------------------------------------------------------
// Workloads

interface Sides {
  readonly name: Row["backend"]
  readonly library: ManagedRuntime.ManagedRuntime<ImageStore, unknown>
  readonly raw: Raw
  /** Ids stored on each side for the get rows. */
  readonly stored: { readonly library: ReadonlyArray<string>; readonly raw: ReadonlyArray<string> }
}

const runSides = async (sides: Sides, reps: number): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []
  const workloads = [
    {
      name: "image put 100 KB",
      library: (ops: number, c: number) =>
        Effect.flatMap(ImageStore, (images) =>
          timeLibrary(ops, c, () =>
            Effect.tap(images.put(imageOf(1, ++serial)), (ref) => check(ref.size === SIZE, "library put"))
          )
        ),
      raw: (ops: number, c: number) => timeRaw(ops, c, () => sides.raw.put(imageOf(2, ++serial), Date.now()))
    },
    {
      name: "image get 100 KB",
      library: (ops: number, c: number) =>
        Effect.flatMap(ImageStore, (images) =>
          timeLibrary(ops, c, (i) =>
            Effect.tap(images.get(sides.stored.library[i % STORED]!), (image) =>
              check(image.bytes.length === SIZE, "library get")
            )
          )
        ),
      raw: (ops: number, c: number) => timeRaw(ops, c, (i) => sides.raw.get(sides.stored.raw[i % STORED]!))
    }
  ]
  for (const workload of workloads) {
    for (const concurrency of sides.name === "sqlite" ? [1] : [1, POOL]) {
      const ops = sides.name === "sqlite" ? 300 : concurrency === 1 ? 100 : 300
      const times = { library: [] as Array<number>, raw: [] as Array<number> }
      for (let rep = -1; rep < reps; rep++) {
        const order = rep % 2 === 0 ? (["library", "raw"] as const) : (["raw", "library"] as const)
        for (const side of order) {
          const ms =
            side === "library"
              ? await sides.library.runPromise(workload.library(ops, concurrency))
              : await workload.raw(ops, concurrency)
          if (rep >= 0) times[side].push(ops / (ms / 1000))
        }
      }
      rows.push({
        workload: workload.name,
        backend: sides.name,
        concurrency,
        ...opsFigures(times.library, times.raw)
      })
    }
  }
  return rows
}

/** Stores `STORED` images through the library (not timed). */
const storeSome = Effect.flatMap(ImageStore, (images) =>
  Effect.forEach(Array.from({ length: STORED }), () => Effect.map(images.put(imageOf(3, ++serial)), (ref) => ref.id))
)

const storesOn = <E>(database: Layer.Layer<any, E>, options: Kit.SqlOptions) =>
  Layer.merge(SqlImageStore.layerWith(options), SqlConversationStore.layerWith(options)).pipe(
    Layer.provide(database)
  ) as Layer.Layer<ImageStore, unknown>

const sqliteRows = async (reps: number): Promise<ReadonlyArray<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "images-bench-"))
  const library = ManagedRuntime.make(storesOn(SqliteDatabase.layer({ filename: join(dir, "library.db") }), {}))
  const rawFile = join(dir, "raw.db")
  let db: Database.Database | undefined
  try {
    // The raw side's file gets the library's schema, then is opened by the raw driver with the same pragmas.
    await Effect.runPromise(Effect.scoped(Layer.build(storesOn(SqliteDatabase.layer({ filename: rawFile }), {}))))
    db = new Database(rawFile, { timeout: 5000 })
    db.pragma("journal_mode = WAL")
    db.pragma("synchronous = NORMAL")
    db.pragma("foreign_keys = ON")
    db.pragma(`cache_size = -${SqliteDatabase.pageCacheKiB}`)
    db.pragma(`mmap_size = ${SqliteDatabase.mmapBytes}`)
    const raw = rawSqlite(db)
    const stored = await library.runPromise(storeSome)
    const rawStored = Array.from({ length: STORED }, () => {
      const bytes = imageOf(4, ++serial)
      raw.put(bytes, Date.now())
      return sha256(bytes)
    })
    return await runSides({ name: "sqlite", library, raw, stored: { library: stored, raw: rawStored } }, reps)
  } finally {
    db?.close()
    await library.dispose()
    rmSync(dir, { recursive: true, force: true })
  }
}

const pgRows = async (reps: number): Promise<ReadonlyArray<Row>> => {
  const stamp = `${process.pid}_${Date.now().toString(36)}`
  const prefixes = { library: `bench_img_lib_${stamp}`, raw: `bench_img_raw_${stamp}` }
  const database = PgDatabase.layer({ url, maxConnections: POOL })
  const library = ManagedRuntime.make(storesOn(withOpenPool(database), { tablePrefix: prefixes.library }))
  const sql = postgres(url, { max: POOL, onnotice: () => {} })
  try {
    await Effect.runPromise(Effect.scoped(Layer.build(storesOn(database, { tablePrefix: prefixes.raw }))))
    await openPool(sql)
    const raw = rawPg(sql, prefixes.raw)
    const stored = await library.runPromise(storeSome)
    const rawStored: Array<string> = []
    for (let i = 0; i < STORED; i++) {
      const bytes = imageOf(4, ++serial)
      await raw.put(bytes, Date.now())
      rawStored.push(sha256(bytes))
    }
    return await runSides({ name: "postgres", library, raw, stored: { library: stored, raw: rawStored } }, reps)
  } finally {
    await library.dispose()
    for (const prefix of Object.values(prefixes)) {
      for (const table of ["image_refs", "images", "messages", "conversations", "sessions", "counters"]) {
        await sql.unsafe(`DROP TABLE IF EXISTS "${prefix}_${table}" CASCADE`)
      }
      for (const schema of ["images", "conversations", "sessions", "kernel"]) {
        await sql.unsafe(`DROP TABLE IF EXISTS "${prefix}_${schema}_migrations"`)
      }
      await sql.unsafe(`DROP FUNCTION IF EXISTS "${prefix}_image_refs_count"() CASCADE`)
    }
    await sql.end({ timeout: 1 })
  }
}

/** The image rows on SQLite and PostgreSQL (PostgreSQL skipped, with a note, when unreachable). */
export const runImages = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows = [...(await sqliteRows(options.reps))]
  try {
    rows.push(...(await pgRows(options.reps)))
  } catch (error) {
    console.log(`images bench: PostgreSQL rows skipped (${error instanceof Error ? error.message : String(error)})`)
  }
  return rows
}

/** Prints the image rows as a table. */
export const printImages = (rows: ReadonlyArray<Row>) => {
  printOpsTable(
    `images: best runs per side; raw = better-sqlite3 / postgres (pool ${POOL}) running the store's statements ` +
      "with the same SHA-256 on put and get; 100 KB PNGs, every put new bytes; target >= 0.8",
    rows
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Math.max(1, Number(process.env["BENCH_REPS"] ?? 5))
  const started = performance.now()
  printImages(await runImages({ reps }))
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
