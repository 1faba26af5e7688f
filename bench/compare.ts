/**
 * Two commits' library, measured alternately on the same machine: W1 (append
 * one message per transaction, 10k) and W3 (recall the last 50 of 10k
 * messages, 6k times) of `bench/run.ts`, on a temp SQLite file each time,
 * with `bench/messages.ts` as the messages.
 *
 *   node --expose-gc --import tsx bench/compare.ts <old ref> [<new ref>]
 *
 * `<new ref>` defaults to this checkout as it is (uncommitted changes
 * included); a ref is exported with `git archive` into a temp directory that
 * uses this checkout's `node_modules`. Each measurement runs in a fresh node
 * process; `BENCH_ROUNDS` rounds (default 5) each measure both commits on
 * both workloads, alternating which commit goes first. Prints every figure,
 * each commit's median ops/s per workload, new over old, and the load average
 * before and after. `BENCH_CLOCK=cpu` times with the process's CPU time.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, symlinkSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Effect, Option } from "effect"
import type * as StoresModule from "../layers/Stores.ts"
import type * as SqliteDatabaseModule from "../layers/sql/SqliteDatabase.ts"
import type * as ConversationModule from "../src/Conversation.ts"
import { batch, message } from "./messages.ts"
import { median } from "./stats.ts"

const N = 10_000
const RECALLS = 6_000
const workloads = ["W1", "W3"] as const
type Workload = (typeof workloads)[number]

const clock =
  process.env["BENCH_CLOCK"] === "cpu"
    ? () => {
        const { system, user } = process.cpuUsage()
        return (user + system) / 1000
      }
    : () => performance.now()

const startTimer = () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  return clock()
}

/** One measurement in this process: the ops/s of `workload` on the library of the tree at `root`. */
const measure = async (root: string, workload: Workload): Promise<number> => {
  const from = <M>(path: string): Promise<M> => import(pathToFileURL(join(root, path)).href)
  const { StoresSqlite } = await from<typeof StoresModule>("layers/Stores.ts")
  const { SqliteDatabase } = await from<typeof SqliteDatabaseModule>("layers/sql/SqliteDatabase.ts")
  const { ConversationStore } = await from<typeof ConversationModule>("src/Conversation.ts")
  const dir = mkdtempSync(join(tmpdir(), "agent-stores-compare-"))
  const program = Effect.gen(function* () {
    const store = yield* ConversationStore
    if (workload === "W1") {
      const warm = yield* store.create({})
      for (let i = 0; i < N / 10; i++) yield* store.append(warm.id, message(i))
      const { id } = yield* store.create({})
      const start = startTimer()
      for (let i = 0; i < N; i++) yield* store.append(id, message(i))
      return N / ((clock() - start) / 1000)
    }
    const { id } = yield* store.create({})
    for (let i = 0; i < N / 100; i++) yield* store.appendMany(id, batch)
    const database = yield* Effect.serviceOption(SqliteDatabase)
    if (Option.isSome(database)) database.value.db.pragma("wal_checkpoint(TRUNCATE)")
    for (let i = 0; i < RECALLS / 10; i++) yield* store.messages(id, { limit: 50 })
    const start = startTimer()
    for (let i = 0; i < RECALLS; i++) yield* store.messages(id, { limit: 50 })
    return RECALLS / ((clock() - start) / 1000)
  })
  try {
    return await Effect.runPromise(Effect.provide(program, StoresSqlite({ filename: join(dir, "bench.db") })))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const here = fileURLToPath(import.meta.url)
const checkout = fileURLToPath(new URL("..", import.meta.url))

if (process.argv[2] === "--child") {
  const [root, workload] = process.argv.slice(3) as [string, Workload]
  console.log(JSON.stringify({ opsPerSec: await measure(root, workload) }))
} else {
  const [oldRef, newRef] = process.argv.slice(2)
  if (oldRef === undefined) {
    console.error("usage: node --expose-gc --import tsx bench/compare.ts <old ref> [<new ref>]")
    process.exit(2)
  }
  const rounds = Math.max(1, Number(process.env["BENCH_ROUNDS"] ?? 5))
  const exported: Array<string> = []
  /** A directory holding the tree of `ref` (this checkout when absent), with this checkout's `node_modules`. */
  const treeOf = (ref: string | undefined): string => {
    if (ref === undefined) return checkout
    const dir = mkdtempSync(join(tmpdir(), "agent-stores-tree-"))
    exported.push(dir)
    const archive = execFileSync("git", ["archive", ref], { cwd: checkout, maxBuffer: 1 << 30 })
    execFileSync("tar", ["-x", "-C", dir], { input: archive })
    symlinkSync(join(checkout, "node_modules"), join(dir, "node_modules"))
    return dir
  }
  const sides = [
    { name: `old (${oldRef})`, root: treeOf(oldRef) },
    { name: `new (${newRef ?? "this checkout"})`, root: treeOf(newRef) }
  ]
  try {
    const load = loadavg().map((x) => x.toFixed(2))
    console.log(
      `load average before: ${load.join(", ")}; ${rounds} rounds; clock: ${process.env["BENCH_CLOCK"] ?? "wall"}`
    )
    const figures = new Map<string, Array<number>>()
    for (let round = 0; round < rounds; round++) {
      for (const [w, workload] of workloads.entries()) {
        const order = (round + w) % 2 === 0 ? sides : [...sides].reverse()
        for (const side of order) {
          const child = spawnSync(
            process.execPath,
            ["--expose-gc", "--import", "tsx", here, "--child", side.root, workload],
            { cwd: checkout, encoding: "utf8" }
          )
          if (child.status !== 0) throw new Error(`${side.name} ${workload} failed:\n${child.stderr}`)
          const { opsPerSec } = JSON.parse(child.stdout.trim().split("\n").pop()!) as { opsPerSec: number }
          const key = `${workload}|${side.name}`
          figures.set(key, [...(figures.get(key) ?? []), opsPerSec])
          console.log(`round ${round + 1} ${workload} ${side.name}: ${Math.round(opsPerSec)} ops/s`)
        }
      }
    }
    for (const workload of workloads) {
      const [old, next] = sides.map((side) => median(figures.get(`${workload}|${side.name}`)!))
      console.log(
        `${workload} median ops/s: ${sides[0]!.name} ${Math.round(old!)}, ${sides[1]!.name} ${Math.round(next!)}; ` +
          `new/old ${(next! / old!).toFixed(3)}`
      )
    }
    console.log(
      `load average after: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(", ")}`
    )
  } finally {
    for (const dir of exported) rmSync(dir, { recursive: true, force: true })
  }
}
