/**
 * The memory-tier bench: `MemoryMessageStore.addMany` of 100 messages
 * (embedded by the local embedder, seqs from the kernel counter) and `search`
 * over one conversation of 5,000 messages (embed the query, read the
 * conversation's vectors, exact cosine, read the top 10), through the library
 * and through the raw driver running the same statements, embedder and scan
 * with the same round trips, at 1 caller:
 *
 * - SQLite: raw better-sqlite3, each side on its own temp file (the library's
 *   schema and pragmas), `addMany` in one immediate transaction;
 * - PostgreSQL: raw `postgres` (pool 16 on both sides, prepared statements),
 *   each side on its own table prefix (dropped at the end); `addMany` is
 *   `BEGIN`, a counter bump and an insert per message, `COMMIT`; `search` is
 *   one select of the conversation's vectors and one of the winners' rows.
 *
 * Texts are unique per operation, so the embedder's cache helps neither side.
 * Run alone: `node --import tsx bench/tiers.ts` (`BENCH_REPS`, default 3;
 * `DATABASE_URL`, default the local server).
 */
import Database from "better-sqlite3"
import { Effect, Layer, ManagedRuntime } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlTierStores from "../layers/sql/SqlTierStores.ts"
import { float32ToBytes } from "../src/Binary.ts"
import { Embeddings, makeLocal } from "../src/Embeddings.ts"
import { MemoryMessageStore } from "../src/Memory.ts"
import { best, median, printTable } from "./stats.ts"
import { openAdmin, runStamp } from "./admin.ts"
import { type OpsRow, POOL, openPool, url, withOpenPool } from "./timing.ts"

/** One row of the tiers table. */
export type Row = OpsRow

const BATCH = 100
const CONVERSATION_SIZE = 5_000
/** Timed operations per run: addMany; search per backend (fewer on PostgreSQL, where a search reads 7.7 MB). */
const ADDS = 20
const SEARCHES = { sqlite: 50, postgres: 20 } as const

let unique = 0
const text = () => `message ${++unique} about order ${unique % 97} and delivery ${unique % 13}`

/** One side of a backend's rows: the two operations. */
interface Side {
  readonly addMany: (conversationId: string) => Promise<unknown>
  readonly search: () => Promise<unknown>
}

/** The library's side: `MemoryMessageStore` from `runtime`. */
const librarySide = async (runtime: ManagedRuntime.ManagedRuntime<MemoryMessageStore, unknown>): Promise<Side> => {
  const store = await runtime.runPromise(MemoryMessageStore)
  return {
    addMany: (conversationId) =>
      runtime.runPromise(
        store.addMany(Array.from({ length: BATCH }, () => ({ conversationId, role: "user" as const, content: text() })))
      ),
    search: () => runtime.runPromise(store.search(text(), { conversationId: "big", limit: 10 }))
  }
}

/** The store's statements (its SQL module keeps them private): the same texts, resolved per side. */
const messageColumns = "id, conversation_id, seq, role, content, metadata, token_count, expires_at, created_at"
const statements = {
  bump: Kit.bumpCounter.text,
  insert: `INSERT INTO {tier_messages} (${messageColumns}, model, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  vectors: `SELECT id, vector FROM {tier_messages} WHERE conversation_id = ? AND model = ?
    AND (expires_at IS NULL OR expires_at > ?)`,
  rows: {
    sqlite: `SELECT ${messageColumns} FROM {tier_messages} WHERE id IN (SELECT value FROM json_each(?))`,
    pg: `SELECT ${messageColumns} FROM {tier_messages}
      WHERE id IN (SELECT value FROM json_array_elements_text(?::json) AS v (value))`
  }
}

const resolved = (prefix: string, dialect: Kit.Dialect) => ({
  bump: Kit.resolve(statements.bump, prefix, dialect),
  insert: Kit.resolve(statements.insert, prefix, dialect),
  vectors: Kit.resolve(statements.vectors, prefix, dialect),
  rows: Kit.resolve(statements.rows, prefix, dialect)
})

/** The raw sides' scan: exact cosine over (id, float32 bytes) pairs, best 10 first, ties by id. */
const topTen = (q: Float32Array, candidates: ReadonlyArray<readonly [string, Uint8Array]>) => {
  const hits: Array<{ id: string; score: number }> = []
  for (const [id, bytes] of candidates) {
    const v = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
    let dot = 0
    let na = 0
    let nb = 0
    for (let i = 0; i < v.length; i++) {
      dot += q[i]! * v[i]!
      na += q[i]! * q[i]!
      nb += v[i]! * v[i]!
    }
    hits.push({ id, score: na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb) })
  }
  hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
  return hits.slice(0, 10)
}

/** The raw side on SQLite: the statements on a plain better-sqlite3 connection with the library's schema. */
const rawSqlite = (file: string): Side & { readonly close: () => void } => {
  const db = new Database(file)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  const embeddings = makeLocal()
  const t = resolved(Kit.defaultPrefix, "sqlite")
  const bump = db.prepare(t.bump).raw(true)
  const insert = db.prepare(t.insert)
  const vectors = db.prepare(t.vectors).raw(true)
  const rows = db.prepare(t.rows).raw(true)
  const addMany = db.transaction((conversationId: string, texts: ReadonlyArray<string>, list: Array<Float32Array>) => {
    texts.forEach((content, i) => {
      const seq = (bump.get(`tier_messages/${conversationId}`, 1) as Array<number>)[0]
      insert.run(
        `${conversationId}-${unique}-${i}`,
        conversationId,
        seq,
        "user",
        JSON.stringify(content),
        "{}",
        null,
        null,
        Date.now(),
        embeddings.model,
        float32ToBytes(list[i]!)
      )
    })
  })
  return {
    addMany: async (conversationId) => {
      const texts = Array.from({ length: BATCH }, text)
      addMany(conversationId, texts, [...(await Effect.runPromise(embeddings.embed(texts)))])
    },
    search: async () => {
      const [q] = await Effect.runPromise(embeddings.embed([text()]))
      const candidates = vectors.all("big", embeddings.model, Date.now()) as Array<[string, Buffer]>
      return rows.all(JSON.stringify(topTen(q!, candidates).map((h) => h.id)))
    },
    close: () => db.close()
  }
}

/** The raw side on PostgreSQL: the statements through the `postgres` driver, prepared, the same round trips. */
const rawPg = (sql: postgres.Sql, prefix: string): Side => {
  const embeddings = makeLocal()
  const t = resolved(prefix, "pg")
  const values = (runner: postgres.Sql | postgres.TransactionSql, statement: string, params: Array<unknown>) =>
    runner.unsafe(statement, params as Array<any>, { prepare: true }).values()
  return {
    addMany: async (conversationId) => {
      const texts = Array.from({ length: BATCH }, text)
      const list = await Effect.runPromise(embeddings.embed(texts))
      await sql.begin(async (tx) => {
        for (let i = 0; i < texts.length; i++) {
          const [[seq]] = await values(tx, t.bump, [`tier_messages/${conversationId}`, 1])
          await values(tx, t.insert, [
            `${conversationId}-${unique}-${i}`,
            conversationId,
            Number(seq),
            "user",
            JSON.stringify(texts[i]),
            "{}",
            null,
            null,
            Date.now(),
            embeddings.model,
            float32ToBytes(list[i]!)
          ])
        }
      })
    },
    search: async () => {
      const [q] = await Effect.runPromise(embeddings.embed([text()]))
      const candidates = (await values(sql, t.vectors, ["big", embeddings.model, Date.now()])) as unknown as Array<
        [string, Buffer]
      >
      return values(sql, t.rows, [JSON.stringify(topTen(q!, candidates).map((h) => h.id))])
    }
  }
}

const time = async (n: number, run: () => Promise<unknown>) => {
  const start = performance.now()
  for (let i = 0; i < n; i++) await run()
  return (n * 1000) / (performance.now() - start)
}

/** Fills each side's conversation "big", then times each workload `reps` times per side, alternating, after warm-up. */
const measure = async (
  backend: Row["backend"],
  library: Side,
  raw: Side,
  reps: number
): Promise<ReadonlyArray<Row>> => {
  for (let i = 0; i < CONVERSATION_SIZE / BATCH; i++) {
    await library.addMany("big")
    await raw.addMany("big")
  }
  const workloads: ReadonlyArray<[string, () => Promise<unknown>, () => Promise<unknown>, number]> = [
    [`addMany ${BATCH} messages (embedded)`, () => library.addMany("adds"), () => raw.addMany("adds"), ADDS],
    [`search 1 of ${CONVERSATION_SIZE} messages, top 10`, library.search, raw.search, SEARCHES[backend]]
  ]
  const rows: Array<Row> = []
  for (const [workload, ours, theirs, n] of workloads) {
    await time(3, ours)
    await time(3, theirs)
    const library: Array<number> = []
    const baseline: Array<number> = []
    for (let rep = 0; rep < reps; rep++) {
      library.push(await time(n, ours))
      baseline.push(await time(n, theirs))
    }
    rows.push({
      workload,
      backend,
      concurrency: 1,
      opsPerSec: best(library),
      baselineOpsPerSec: best(baseline),
      ratio: best(library) / best(baseline),
      medianRatio: median(library) / median(baseline)
    })
  }
  return rows
}

/** `MemoryMessageStore` with the local embedder over `database`, on `options`' table prefix. */
const messageLayer = <E>(database: Layer.Layer<any, E>, options: Kit.SqlOptions = {}) =>
  SqlTierStores.messageLayerWith(options).pipe(
    Layer.provide(Layer.succeed(Embeddings, makeLocal())),
    Layer.provide(database)
  )

const sqliteRows = async (reps: number): Promise<ReadonlyArray<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "agent-tiers-bench-"))
  const rawFile = join(dir, "raw.db")
  const library = ManagedRuntime.make(messageLayer(SqliteDatabase.layer({ filename: join(dir, "lib.db") })))
  // The raw side's file gets the library's schema from a library layer built once and closed.
  const migrate = ManagedRuntime.make(messageLayer(SqliteDatabase.layer({ filename: rawFile })))
  await migrate.runPromise(Effect.void)
  await migrate.dispose()
  const raw = rawSqlite(rawFile)
  try {
    return await measure("sqlite", await librarySide(library), raw, reps)
  } finally {
    raw.close()
    await library.dispose()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Every table the message store's layer makes under a prefix: the tier schema's and the kernel's, with migrations. */
const tables = [SqlTierStores.schema, Kit.kernel].flatMap((schema) => [...schema.tables, `${schema.name}_migrations`])

/** JSON parameters as `PgDatabase` configures its pool: a string is sent as the JSON text it holds. */
const jsonType = {
  to: 114,
  from: [114, 3802],
  serialize: (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value)),
  parse: (text: string) => JSON.parse(text)
}

const pgRows = async (reps: number): Promise<ReadonlyArray<Row> | string> => {
  const admin = await openAdmin(url)
  if (typeof admin === "string") return admin
  const stamp = runStamp()
  const libraryPrefix = `bench_tier_lib_${stamp}`
  const rawPrefix = `bench_tier_raw_${stamp}`
  const pool = () => PgDatabase.layer({ url, maxConnections: POOL })
  const library = ManagedRuntime.make(messageLayer(withOpenPool(pool()), { tablePrefix: libraryPrefix }))
  const sql = postgres(url, { max: POOL, onnotice: () => {}, types: { json: jsonType } })
  try {
    // The raw side's tables: the library's schema under its own prefix, from a layer built once and closed.
    const migrate = ManagedRuntime.make(messageLayer(pool(), { tablePrefix: rawPrefix }))
    await migrate.runPromise(Effect.void)
    await migrate.dispose()
    await openPool(sql)
    return await measure("postgres", await librarySide(library), rawPg(sql, rawPrefix), reps)
  } finally {
    await library.dispose()
    await sql.end({ timeout: 1 })
    for (const prefix of [libraryPrefix, rawPrefix]) {
      for (const table of tables) await admin.unsafe(`DROP TABLE IF EXISTS "${prefix}_${table}" CASCADE`)
    }
    await admin.end({ timeout: 1 })
  }
}

/** Runs the tiers rows on SQLite, then on PostgreSQL (left out with a note when the server is unreachable). */
export const runTiers = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const rows = [...(await sqliteRows(options.reps))]
  const pg = await pgRows(options.reps)
  if (typeof pg === "string") console.log(`tiers postgres rows skipped: ${pg}`)
  else rows.push(...pg)
  return rows
}

/** Prints the tiers rows. */
export const printTiers = (rows: ReadonlyArray<Row>) => {
  console.log(
    "\nMemory tiers (library vs the raw driver: better-sqlite3 / postgres, same statements, round trips, embedder " +
      "and scan; 1 caller)"
  )
  printTable(
    ["workload", "backend", "ops/s library", "ops/s raw", "ratio", "median"],
    rows.map((r) => [
      r.workload,
      r.backend,
      r.opsPerSec.toFixed(1),
      r.baselineOpsPerSec.toFixed(1),
      r.ratio.toFixed(2),
      r.medianRatio.toFixed(2)
    ])
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Number(process.env["BENCH_REPS"] ?? 3)
  printTiers(await runTiers({ reps }))
}
