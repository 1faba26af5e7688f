/**
 * Vectors at scale (issue 30), too long for the default bench run: `node --expose-gc --import tsx
 * bench/vectorScale.ts` (or the bench module `vectorScale`).
 *
 * Storage, 200,000 × 384 (`BENCH_VECTOR_SCALE_N`), clustered data: on a SQLite file and on PostgreSQL, the bytes
 * stored per vector (SQLite: the file after a checkpoint; PostgreSQL: `pg_total_relation_size` of the tables, TOAST
 * included) against its 1,536 float bytes, the first search of a fresh process (its layer built, then one search
 * that loads the scan copy; wall and CPU time) and the steady-state p50 of a search, beside the memory layer's p50
 * on the same data. "before" is the layout of `0001_vectors` (one vector per row), written and loaded with the
 * statements the layer used before blocks (a fresh process reading every row and building the same index);
 * "after" is the layer as it is.
 *
 * Approximate path, 1,000,000 × 384 (`BENCH_VECTOR_SCALE_BIG`): a Gaussian mixture of 300 centres (unit vectors, each
 * point a centre plus noise of about the same norm), through the memory layer in a fresh process: the first search
 * (which builds the index), the p50 of 50 queries drawn from the same mixture, recall@10 against an exact float64
 * scan of the same data, and the process's RSS.
 */
import Database from "better-sqlite3"
import { Layer, ManagedRuntime } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { MemoryDatabase } from "../layers/memory/MemoryDatabase.ts"
import * as MemoryVectorStore from "../layers/memory/MemoryVectorStore.ts"
import { resolve } from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlVectorStore from "../layers/sql/SqlVectorStore.ts"
import { VectorStore } from "../src/Vector.ts"
import { VectorIndex } from "../src/VectorFilter.ts"
import { openAdmin, runStamp } from "./admin.ts"
import { median, printTable } from "./stats.ts"
import { url } from "./timing.ts"

const DIMENSION = 384
const CENTRES = 300
const BATCH = 1000
const QUERIES = 50

/** One row: a measurement of one layout or path. */
export interface Row {
  readonly workload: string
  readonly backend: string
  readonly layout: "before" | "after" | "approximate"
  readonly records: number
  readonly bytesPerVector?: number
  readonly firstSearchMs?: number
  readonly firstSearchCpuMs?: number
  readonly p50Ms?: number
  readonly memoryP50Ms?: number
  readonly recall?: number
  readonly rssMb?: number
}

/** mulberry32 */
const uniform = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** The mixture: `point()` draws the next point (deterministic from the seed); centres from a fixed seed. */
const mixture = (seed: number) => {
  const next = uniform(seed)
  const centreNext = uniform(7)
  const gauss = (r: () => number) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
  const centres = Array.from({ length: CENTRES }, () => {
    const c = Float64Array.from({ length: DIMENSION }, () => gauss(centreNext))
    const norm = Math.hypot(...c)
    return c.map((x) => x / norm)
  })
  const sigma = 0.9 / Math.sqrt(DIMENSION)
  return () => {
    const c = centres[Math.floor(next() * CENTRES)]!
    return Float32Array.from(c, (x) => x + sigma * gauss(next))
  }
}

const idOf = (i: number) => `doc-${String(i).padStart(7, "0")}`
const documents = function* (n: number) {
  const point = mixture(11)
  for (let i = 0; i < n; i += BATCH) {
    yield Array.from({ length: Math.min(BATCH, n - i) }, (_, j) => ({
      id: idOf(i + j),
      vector: point(),
      metadata: { i: i + j, kind: (i + j) % 100 === 0 ? "rare" : "common" }
    }))
  }
}
const queries = () => {
  const point = mixture(99)
  return Array.from({ length: QUERIES }, point)
}

const p50Of = async (search: (q: Float32Array) => Promise<unknown> | unknown) => {
  const times: Array<number> = []
  for (const q of queries()) {
    const started = performance.now()
    await search(q)
    times.push(performance.now() - started)
  }
  return median(times)
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes: a first search in a fresh process

/** What a child reports. */
interface Child {
  readonly layerMs: number
  readonly firstSearchMs: number
  readonly firstSearchCpuMs: number
  readonly p50Ms: number
  readonly recall?: number
  readonly rssMb: number
}

const runChild = (args: ReadonlyArray<string>): Promise<Child> =>
  new Promise((done, fail) => {
    const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", fileURLToPath(import.meta.url), ...args], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.on("data", (chunk) => (out += chunk))
    child.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{"))
      if (code === 0 && line !== undefined) done(JSON.parse(line))
      else fail(new Error(`child ${args.join(" ")} exited with ${code}: ${out}`))
    })
  })

/** Times the first search of a fresh process and the p50 after it. */
const firstSearch = async (open: () => Promise<(q: Float32Array) => Promise<unknown> | unknown>): Promise<Child> => {
  const started = performance.now()
  const search = await open()
  const layerMs = performance.now() - started
  const cpu = process.cpuUsage()
  const first = performance.now()
  await search(queries()[0]!)
  const firstSearchMs = performance.now() - first
  const used = process.cpuUsage(cpu)
  const p50Ms = await p50Of(search)
  const rssMb = process.memoryUsage().rss / 1e6
  return { layerMs, firstSearchMs, firstSearchCpuMs: (used.user + used.system) / 1000, p50Ms, rssMb }
}

/** A store layer's search of collection `c`. */
const storeSearch = async (layer: Layer.Layer<VectorStore, unknown>) => {
  const runtime = ManagedRuntime.make(layer)
  const store = await runtime.runPromise(VectorStore)
  return (q: Float32Array) => runtime.runPromise(store.search("c", q, { topK: 10 }))
}

/** The layout before blocks: every row read and the same index built from it, as the layer did. */
const oldSearch = async (rows: () => Promise<ReadonlyArray<readonly [string, Uint8Array, string, string | null]>>) => {
  let index: VectorIndex | undefined
  return async (q: Float32Array) => {
    if (index === undefined) {
      const loaded = await rows()
      index = new VectorIndex(DIMENSION, "cosine", loaded.length)
      for (const [id, vector, metadata] of loaded) index.setBytes(id, vector, JSON.parse(metadata), undefined)
    }
    return index.search(q, 10)
  }
}

const child = async (mode: string, target: string, prefix: string): Promise<Child> => {
  switch (mode) {
    case "sqlite-after":
      return firstSearch(() =>
        storeSearch(SqlVectorStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename: target }))))
      )
    case "pg-after":
      return firstSearch(() =>
        storeSearch(
          SqlVectorStore.layerWith({ tablePrefix: prefix }).pipe(Layer.provide(PgDatabase.layer({ url: target })))
        )
      )
    case "sqlite-before":
      return firstSearch(async () => {
        const db = new Database(target, { readonly: true })
        const select = db.prepare(`SELECT id, vector, metadata, content FROM "old_vectors" WHERE collection = 'c'`)
        return oldSearch(async () => select.raw(true).all() as Array<[string, Uint8Array, string, string | null]>)
      })
    case "pg-before":
      return firstSearch(async () => {
        const admin = await openAdmin(target)
        if (typeof admin === "string") throw new Error(admin)
        return oldSearch(
          async () =>
            (await admin
              .unsafe(`SELECT id, vector, metadata, content FROM "${prefix}_vectors" WHERE collection = 'c'`)
              .values()) as unknown as Array<[string, Uint8Array, string, string | null]>
        )
      })
    default:
      return approximateChild(Number(target))
  }
}

/** 1M × 384 through the memory layer: the first search builds the index; p50, recall@10 against float64, RSS. */
const approximateChild = async (n: number): Promise<Child> => {
  const runtime = ManagedRuntime.make(MemoryVectorStore.layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer)))
  const store = await runtime.runPromise(VectorStore)
  await runtime.runPromise(store.createCollection("c", { dimension: DIMENSION }))
  for (const batch of documents(n)) await runtime.runPromise(store.upsert("c", batch))
  ;(globalThis as { gc?: () => void }).gc?.()
  const qs = queries()
  const search = (q: Float32Array) => runtime.runPromise(store.search("c", q, { topK: 10 }))
  const cpu = process.cpuUsage()
  const first = performance.now()
  await search(qs[0]!)
  const firstSearchMs = performance.now() - first
  const used = process.cpuUsage(cpu)
  const p50Ms = await p50Of(search)
  const rssMb = process.memoryUsage().rss / 1e6
  const found = await Promise.all(qs.map(async (q) => (await search(q)).map((r) => r.id)))
  // the exact top 10 of each query: the same points drawn again, scored in float64
  const norms = qs.map((q) => Math.sqrt(q.reduce((a, x) => a + x * x, 0)))
  const tops = qs.map(() => [] as Array<readonly [number, string]>)
  for (const batch of documents(n)) {
    for (const d of batch) {
      let vv = 0
      for (let j = 0; j < DIMENSION; j++) vv += d.vector[j]! * d.vector[j]!
      qs.forEach((q, k) => {
        let dot = 0
        for (let j = 0; j < DIMENSION; j++) dot += q[j]! * d.vector[j]!
        const score = dot / (norms[k]! * Math.sqrt(vv))
        const top = tops[k]!
        if (top.length < 10 || score > top[top.length - 1]![0]) {
          top.push([score, d.id])
          top.sort((a, b) => b[0] - a[0])
          if (top.length > 10) top.pop()
        }
      })
    }
  }
  let hits = 0
  tops.forEach((top, k) => {
    const got = new Set(found[k])
    for (const [, id] of top) if (got.has(id)) hits++
  })
  await runtime.dispose()
  return {
    layerMs: 0,
    firstSearchMs,
    firstSearchCpuMs: (used.user + used.system) / 1000,
    p50Ms,
    recall: hits / (10 * QUERIES),
    rssMb
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The runs

const oldDdl = (prefix: string, dialect: "sqlite" | "pg") =>
  SqlVectorStore.schema.migrations["0001_vectors"]!.flatMap((text) => {
    const own = typeof text === "string" ? text : text[dialect]
    return own === undefined ? [] : [resolve(own, prefix, dialect)]
  })

const fileBytes = (file: string) => {
  const db = new Database(file)
  db.pragma("wal_checkpoint(TRUNCATE)")
  db.close()
  return statSync(file).size
}

/** Fills collection `c` through `layer` with the first `n` documents. */
const fill = async (layer: Layer.Layer<VectorStore, unknown>, n: number) => {
  const runtime = ManagedRuntime.make(layer)
  try {
    const store = await runtime.runPromise(VectorStore)
    await runtime.runPromise(store.createCollection("c", { dimension: DIMENSION }))
    for (const batch of documents(n)) await runtime.runPromise(store.upsert("c", batch))
  } finally {
    await runtime.dispose()
  }
}

const storageRows = async (n: number): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  const dir = mkdtempSync(join(tmpdir(), "agent-bench-vector-scale-"))
  try {
    // the memory layer on the same data
    const memory = ManagedRuntime.make(MemoryVectorStore.layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer)))
    const memoryStore = await memory.runPromise(VectorStore)
    await memory.runPromise(memoryStore.createCollection("c", { dimension: DIMENSION }))
    for (const batch of documents(n)) await memory.runPromise(memoryStore.upsert("c", batch))
    const memoryP50Ms = await p50Of((q) => memory.runPromise(memoryStore.search("c", q, { topK: 10 })))
    await memory.dispose()

    // SQLite, before: the 0001 layout written with its statements
    const before = join(dir, "before.db")
    const db = new Database(before)
    db.pragma("journal_mode = WAL")
    for (const statement of oldDdl("old", "sqlite")) db.exec(statement.replaceAll("+?", "?"))
    db.prepare(`INSERT INTO "old_vector_collections" VALUES ('c', 'u', ${DIMENSION}, 'cosine', 's', 0)`).run()
    const insert =
      db.prepare(`INSERT INTO "old_vectors" (collection, id, vector, metadata, content) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (collection, id) DO UPDATE SET vector = excluded.vector, metadata = excluded.metadata,
      content = excluded.content`)
    const write = db.transaction((batch: Array<{ id: string; vector: Float32Array; metadata: object }>) => {
      for (const d of batch) {
        insert.run("c", d.id, Buffer.from(d.vector.buffer), JSON.stringify(d.metadata), null)
      }
    })
    for (const batch of documents(n)) write.immediate(batch)
    db.close()
    const sqliteBefore = await runChild(["sqlite-before", before, ""])
    rows.push({
      workload: "storage",
      backend: "sqlite",
      layout: "before",
      records: n,
      bytesPerVector: fileBytes(before) / n,
      ...timings(sqliteBefore),
      memoryP50Ms
    })
    rmSync(before, { force: true })

    // SQLite, after: the layer
    const after = join(dir, "after.db")
    await fill(SqlVectorStore.layer.pipe(Layer.provide(SqliteDatabase.layer({ filename: after }))), n)
    const sqliteAfter = await runChild(["sqlite-after", after, ""])
    rows.push({
      workload: "storage",
      backend: "sqlite",
      layout: "after",
      records: n,
      bytesPerVector: fileBytes(after) / n,
      ...timings(sqliteAfter),
      memoryP50Ms
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }

  const admin = await openAdmin(url)
  if (typeof admin === "string") {
    console.log(`vector scale PostgreSQL rows skipped: ${admin}`)
    return rows
  }
  const stamp = runStamp()
  const prefixes = { before: `bvs_old_${stamp}`, after: `bvs_${stamp}` }
  try {
    for (const statement of oldDdl(prefixes.before, "pg")) await admin.unsafe(statement)
    await admin.unsafe(
      `INSERT INTO "${prefixes.before}_vector_collections" VALUES ('c', 'u', ${DIMENSION}, 'cosine', 's', 0)`
    )
    for (const batch of documents(n)) {
      const values = batch.map((_, i) => `('c', $${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`).join(", ")
      const params = batch.flatMap((d) => [d.id, Buffer.from(d.vector.buffer), JSON.stringify(d.metadata)])
      await admin.unsafe(
        `INSERT INTO "${prefixes.before}_vectors" (collection, id, vector, metadata) VALUES ${values}`,
        params as never
      )
    }
    const sizeOf = async (prefix: string, tables: ReadonlyArray<string>) => {
      await admin.unsafe(`VACUUM ANALYZE "${prefix}_vectors"`)
      let bytes = 0
      for (const table of tables) {
        const [found] = await admin.unsafe(`SELECT pg_total_relation_size($1) AS bytes`, [`"${prefix}_${table}"`])
        bytes += Number(found!["bytes"])
      }
      return bytes
    }
    const pgBefore = await runChild(["pg-before", url, prefixes.before])
    rows.push({
      workload: "storage",
      backend: "postgres",
      layout: "before",
      records: n,
      bytesPerVector: (await sizeOf(prefixes.before, ["vectors"])) / n,
      ...timings(pgBefore)
    })
    await fill(
      SqlVectorStore.layerWith({ tablePrefix: prefixes.after }).pipe(Layer.provide(PgDatabase.layer({ url }))),
      n
    )
    const pgAfter = await runChild(["pg-after", url, prefixes.after])
    rows.push({
      workload: "storage",
      backend: "postgres",
      layout: "after",
      records: n,
      bytesPerVector: (await sizeOf(prefixes.after, ["vectors", "vector_blocks"])) / n,
      ...timings(pgAfter)
    })
  } finally {
    for (const prefix of [prefixes.before, prefixes.after]) {
      for (const table of ["vector_blocks", "vectors", "vector_collections", "vectors_migrations"]) {
        await admin.unsafe(`DROP TABLE IF EXISTS "${prefix}_${table}" CASCADE`)
      }
    }
    await admin.end({ timeout: 1 })
  }
  return rows
}

const timings = (c: Child) => ({
  firstSearchMs: c.firstSearchMs,
  firstSearchCpuMs: c.firstSearchCpuMs,
  p50Ms: c.p50Ms,
  rssMb: c.rssMb
})

/** Runs every row: storage at `BENCH_VECTOR_SCALE_N` (200,000), the approximate path at `BENCH_VECTOR_SCALE_BIG` (1M). */
export const runVectorScale = async (): Promise<ReadonlyArray<Row>> => {
  const n = Number(process.env["BENCH_VECTOR_SCALE_N"] ?? 200_000)
  const big = Number(process.env["BENCH_VECTOR_SCALE_BIG"] ?? 1_000_000)
  const rows = await storageRows(n)
  const approximate = await runChild(["approximate", String(big), ""])
  rows.push({
    workload: "approximate search",
    backend: "memory",
    layout: "approximate",
    records: big,
    recall: approximate.recall!,
    ...timings(approximate)
  })
  return rows
}

/** Prints the rows. */
export const printVectorScale = (rows: ReadonlyArray<Row>) => {
  const fmt = (x: number | undefined, digits = 1) => (x === undefined ? "" : x.toFixed(digits))
  console.log(
    `vectors at scale (${DIMENSION}-d, clustered): bytes per vector against ${DIMENSION * 4} float bytes; first ` +
      "search of a fresh process (wall, CPU); p50 of a search; memory p50 on the same data; recall@10 against float64"
  )
  printTable(
    [
      "workload",
      "backend",
      "layout",
      "records",
      "bytes/vector",
      "x floats",
      "first search ms",
      "cpu ms",
      "p50 ms",
      "memory p50 ms",
      "recall@10",
      "rss MB"
    ],
    rows.map((r) => [
      r.workload,
      r.backend,
      r.layout,
      r.records.toLocaleString("en-US"),
      fmt(r.bytesPerVector, 0),
      r.bytesPerVector === undefined ? "" : (r.bytesPerVector / (DIMENSION * 4)).toFixed(2),
      fmt(r.firstSearchMs, 0),
      fmt(r.firstSearchCpuMs, 0),
      fmt(r.p50Ms, 2),
      fmt(r.memoryP50Ms, 2),
      fmt(r.recall, 3),
      fmt(r.rssMb, 0)
    ]),
    (i) => i < 3
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, target = "", prefix = ""] = process.argv.slice(2)
  if (mode !== undefined) {
    console.log(JSON.stringify(await child(mode, target, prefix)))
    process.exit(0)
  }
  const started = performance.now()
  printVectorScale(await runVectorScale())
  console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`)
}
