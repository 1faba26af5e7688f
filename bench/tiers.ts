/**
 * The memory-tier bench (SQLite): `MemoryMessageStore.addMany` of 100
 * messages (embedded by the local embedder, seqs from the kernel counter) and
 * `search` over one conversation of 5,000 messages (embed the query, read the
 * conversation's vectors, exact cosine, read the top 10), through the library
 * and through raw better-sqlite3 running the same statements, embedder and
 * scan (each on its own temp file). Texts are unique per operation, so the
 * embedder's cache helps neither side. Run alone:
 * `node --import tsx bench/tiers.ts` (`BENCH_REPS`, default 3).
 */
import Database from "better-sqlite3"
import { Effect, Layer, ManagedRuntime } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as SqlTierStores from "../layers/sql/SqlTierStores.ts"
import { float32ToBytes } from "../src/Binary.ts"
import { Embeddings, makeLocal } from "../src/Embeddings.ts"
import { MemoryMessageStore } from "../src/Memory.ts"
import { best, median } from "./stats.ts"

/** One row of the tiers table. */
export interface Row {
  readonly workload: string
  readonly opsPerSec: number
  readonly baselineOpsPerSec: number
  /** Best library ops/s over best raw ops/s. */
  readonly ratio: number
  /** Median library ops/s over median raw ops/s. */
  readonly medianRatio: number
}

const BATCH = 100
const CONVERSATION_SIZE = 5_000
const SEARCHES = 50

let unique = 0
const text = () => `message ${++unique} about order ${unique % 97} and delivery ${unique % 13}`

/** The raw side: the module's statements on a plain better-sqlite3 connection with the library's schema. */
const rawSide = (file: string) => {
  const db = new Database(file)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  const embeddings = makeLocal()
  const bump = db.prepare(
    `INSERT INTO "agent_counters" (name, value) VALUES (?, ?)
      ON CONFLICT (name) DO UPDATE SET value = "agent_counters".value + excluded.value RETURNING value`
  )
  const insert = db.prepare(
    `INSERT INTO "agent_tier_messages" (id, conversation_id, seq, role, content, metadata, token_count, expires_at,
      created_at, model, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
  )
  const vectors = db
    .prepare(
      `SELECT id, vector FROM "agent_tier_messages" WHERE conversation_id = ? AND model = ?
        AND (expires_at IS NULL OR expires_at > ?)`
    )
    .raw(true)
  const rows = db
    .prepare(
      `SELECT id, conversation_id, seq, role, content, metadata, token_count, expires_at, created_at
        FROM "agent_tier_messages" WHERE id IN (SELECT value FROM json_each(?))`
    )
    .raw(true)
  const addMany = db.transaction((conversationId: string, texts: ReadonlyArray<string>, list: Array<Float32Array>) => {
    texts.forEach((content, i) => {
      const seq = (bump.raw(true).get(`tier_messages/${conversationId}`, 1) as Array<number>)[0]
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
    addMany: async (conversationId: string, texts: ReadonlyArray<string>) =>
      addMany(conversationId, texts, [...(await Effect.runPromise(embeddings.embed(texts)))]),
    search: async (conversationId: string, query: string) => {
      const [q] = await Effect.runPromise(embeddings.embed([query]))
      const hits: Array<{ id: string; score: number }> = []
      for (const [id, bytes] of vectors.all(conversationId, embeddings.model, Date.now()) as Array<[string, Buffer]>) {
        const v = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
        let dot = 0
        let na = 0
        let nb = 0
        for (let i = 0; i < v.length; i++) {
          dot += q![i]! * v[i]!
          na += q![i]! * q![i]!
          nb += v[i]! * v[i]!
        }
        hits.push({ id, score: na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb) })
      }
      hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
      const top = hits.slice(0, 10)
      return rows.all(JSON.stringify(top.map((h) => h.id)))
    },
    close: () => db.close()
  }
}

const time = async (n: number, run: () => Promise<unknown>) => {
  const start = performance.now()
  for (let i = 0; i < n; i++) await run()
  return (n * 1000) / (performance.now() - start)
}

/** Runs the tiers rows `reps` times per side, alternating, after a warm-up. */
export const runTiers = async (options: { readonly reps: number }): Promise<ReadonlyArray<Row>> => {
  const dir = mkdtempSync(join(tmpdir(), "agent-tiers-bench-"))
  const libFile = join(dir, "lib.db")
  const rawFile = join(dir, "raw.db")
  const layer = (filename: string) =>
    SqlTierStores.messageLayerWith().pipe(
      Layer.provide(Layer.succeed(Embeddings, makeLocal())),
      Layer.provide(SqliteDatabase.layer({ filename }))
    )
  const lib = ManagedRuntime.make(layer(libFile))
  // The raw side's file gets the library's schema from a library layer built once and closed.
  const migrate = ManagedRuntime.make(layer(rawFile))
  await migrate.runPromise(Effect.void)
  await migrate.dispose()
  const raw = rawSide(rawFile)
  try {
    const store = await lib.runPromise(MemoryMessageStore)
    const libAdd = (conversationId: string) =>
      lib.runPromise(
        store.addMany(Array.from({ length: BATCH }, () => ({ conversationId, role: "user" as const, content: text() })))
      )
    const rawAdd = (conversationId: string) => raw.addMany(conversationId, Array.from({ length: BATCH }, text))
    for (let i = 0; i < CONVERSATION_SIZE / BATCH; i++) {
      await libAdd("big")
      await rawAdd("big")
    }
    const libSearch = () => lib.runPromise(store.search(text(), { conversationId: "big", limit: 10 }))
    const rawSearch = () => raw.search("big", text())
    const workloads: ReadonlyArray<[string, () => Promise<unknown>, () => Promise<unknown>, number]> = [
      [`addMany ${BATCH} messages (embedded)`, () => libAdd("adds"), () => rawAdd("adds"), 20],
      [`search 1 of ${CONVERSATION_SIZE} messages, top 10`, libSearch, rawSearch, SEARCHES]
    ]
    const result: Array<Row> = []
    for (const [workload, library, baseline, n] of workloads) {
      await time(3, library)
      await time(3, baseline)
      const ours: Array<number> = []
      const theirs: Array<number> = []
      for (let rep = 0; rep < options.reps; rep++) {
        ours.push(await time(n, library))
        theirs.push(await time(n, baseline))
      }
      result.push({
        workload,
        opsPerSec: best(ours),
        baselineOpsPerSec: best(theirs),
        ratio: best(ours) / best(theirs),
        medianRatio: median(ours) / median(theirs)
      })
    }
    return result
  } finally {
    raw.close()
    await lib.dispose()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Prints the tiers rows. */
export const printTiers = (rows: ReadonlyArray<Row>) => {
  console.log("\nMemory tiers on SQLite (library vs raw better-sqlite3, same statements, embedder and scan)")
  for (const row of rows) {
    console.log(
      `  ${row.workload.padEnd(42)} ${row.opsPerSec.toFixed(1).padStart(9)} ops/s  raw ${row.baselineOpsPerSec
        .toFixed(1)
        .padStart(9)} ops/s  ratio ${row.ratio.toFixed(2)} (median ${row.medianRatio.toFixed(2)})`
    )
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reps = Number(process.env["BENCH_REPS"] ?? 3)
  printTiers(await runTiers({ reps }))
}
