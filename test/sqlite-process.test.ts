/**
 * SQLite (and PostgreSQL) across real processes:
 *
 * 1. `SessionStore.save` is atomic under a crash: a child process saving big
 *    transcripts in a loop is killed with SIGKILL, mostly while SQLite is
 *    writing the new transcript to the WAL; the transcript found afterwards
 *    is one whole generation, old or new, and the file passes
 *    `integrity_check`. It logs, per kill, whether uncommitted frames were
 *    left in the WAL (the kill landed mid-write).
 * 2. Migrations are safe when several processes start at once, on one fresh
 *    SQLite file and on one fresh PostgreSQL table prefix.
 *
 * The children run `test/fixtures/stores-child.ts` with `node --import tsx`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import Sqlite from "better-sqlite3"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { migrationTables } from "../layers/Registry.ts"
import { StoresPg, StoresSqlite } from "../layers/Stores.ts"
import { ConversationStore, type Message, type MessageInput, SessionStore } from "../src/index.ts"
import { Child } from "./child.ts"

const root = fileURLToPath(new URL("..", import.meta.url))
const childScript = join("test", "fixtures", "stores-child.ts")

/** A child process running the fixture, from the project's root. */
const spawnChild = (label: string, args: ReadonlyArray<string>) => new Child(label, childScript, args, { cwd: root })

/** Runs `effect` with `layer` built for it alone (opened and closed around it). */
const run = <A, E, R>(effect: Effect.Effect<A, E, R>, layer: Layer.Layer<R, unknown>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, layer))

const textOf = (message: Message): string => {
  const part = message.parts[0]
  return part !== undefined && part.type === "text" ? part.text : ""
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A signature of a file's contents changing: size and modification time (`""` when absent). */
const signature = (file: string): string => {
  const stat = statSync(file, { bigint: true, throwIfNoEntry: false })
  return stat === undefined ? "" : `${stat.size}:${stat.mtimeNs}`
}

/**
 * When `file` is next written to (polling every turn of the event loop, so that the child's output still
 * arrives), or when `stop()` (then `NaN`).
 */
const walWrite = async (file: string, stop: () => boolean): Promise<number> => {
  const before = signature(file)
  for (;;) {
    if (signature(file) !== before) return performance.now()
    if (stop()) return Number.NaN
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/**
 * Reads a WAL file left by a killed process: whether it ends with frames
 * that were written but not committed (the kill landed while SQLite was
 * writing the transaction). Frames are validated as SQLite does: salts and
 * the running checksum; a torn or stale frame ends the log.
 */
const walTail = (file: string): { frames: number; uncommitted: number } => {
  if (!existsSync(file)) return { frames: 0, uncommitted: 0 }
  const wal = readFileSync(file)
  if (wal.length < 32) return { frames: 0, uncommitted: 0 }
  const magic = wal.readUInt32BE(0)
  if (magic !== 0x377f0682 && magic !== 0x377f0683) return { frames: 0, uncommitted: 0 }
  const bigEndian = (magic & 1) === 1
  const pageSize = wal.readUInt32BE(8) === 1 ? 65536 : wal.readUInt32BE(8)
  let s0 = 0
  let s1 = 0
  const checksum = (from: number, to: number) => {
    for (let i = from; i < to; i += 8) {
      s0 = (s0 + (bigEndian ? wal.readUInt32BE(i) : wal.readUInt32LE(i)) + s1) >>> 0
      s1 = (s1 + (bigEndian ? wal.readUInt32BE(i + 4) : wal.readUInt32LE(i + 4)) + s0) >>> 0
    }
  }
  checksum(0, 24)
  if (s0 !== wal.readUInt32BE(24) || s1 !== wal.readUInt32BE(28)) return { frames: 0, uncommitted: 0 }
  const salt1 = wal.readUInt32BE(16)
  const salt2 = wal.readUInt32BE(20)
  let frames = 0
  let uncommitted = 0
  for (let offset = 32; offset + 24 + pageSize <= wal.length; offset += 24 + pageSize) {
    if (wal.readUInt32BE(offset + 8) !== salt1 || wal.readUInt32BE(offset + 12) !== salt2) break
    checksum(offset, offset + 8)
    checksum(offset + 24, offset + 24 + pageSize)
    if (s0 !== wal.readUInt32BE(offset + 16) || s1 !== wal.readUInt32BE(offset + 20)) break
    frames++
    uncommitted = wal.readUInt32BE(offset + 4) === 0 ? uncommitted + 1 : 0
  }
  return { frames, uncommitted }
}

describe("SQLite across processes", () => {
  let dir = ""
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "agent-stores-process-"))
  })
  afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true })
  })

  it("a crash in the middle of save leaves the old or the new transcript, never a partial one", async () => {
    const filename = join(dir, "crash.db")
    const sessionId = "crash-session"
    const textBytes = 4_000
    const oldSize = 200
    const newSize = 2_000
    const iterations = 5
    const wal = `${filename}-wal`
    const layer = () => StoresSqlite({ filename })
    const transcript = (label: string, size: number): Array<MessageInput> =>
      Array.from({ length: size }, (_, i) => ({
        role: i % 2 === 0 ? "user" : "assistant",
        parts: [{ type: "text", text: `${label}-${i} `.padEnd(textBytes, "x") }]
      }))

    await run(
      Effect.flatMap(SessionStore, (sessions) => sessions.save(sessionId, transcript("old", oldSize))),
      layer()
    )

    /** The one generation the transcript holds; fails on anything partial or mixed. */
    const inspect = Effect.gen(function* () {
      const sessions = yield* SessionStore
      const loaded = yield* sessions.load(sessionId)
      expect(Option.isSome(loaded)).toBe(true)
      const messages = Option.getOrThrow(loaded)
      const label = /^(old|gen-\d+)-0 /.exec(messages[0] === undefined ? "" : textOf(messages[0]))?.[1]
      expect(
        label,
        `first message: ${messages[0] === undefined ? "none" : textOf(messages[0]).slice(0, 40)}`
      ).toBeDefined()
      const size = label === "old" ? oldSize : newSize
      expect(messages.length, `generation ${label}`).toBe(size)
      const broken = messages.findIndex(
        (message, i) =>
          textOf(message) !== `${label}-${i} `.padEnd(textBytes, "x") ||
          message.role !== (i % 2 === 0 ? "user" : "assistant")
      )
      if (broken !== -1) {
        expect.fail(`message ${broken} of generation ${label} is "${textOf(messages[broken]!).slice(0, 40)}..."`)
      }
      const session = yield* sessions.get(sessionId)
      expect(session.messageCount).toBe(size)
      return label!
    })

    let previous = "old"
    const outcomes: Array<string> = []
    for (let iteration = 0; iteration < iterations; iteration++) {
      const firstGen = (iteration + 1) * 1_000
      const child = spawnChild(`crash child ${iteration}`, [
        "save-loop",
        filename,
        sessionId,
        String(firstGen),
        String(newSize),
        String(textBytes)
      ])
      try {
        await child.waitFor((line) => line === "ready", 60_000, `"ready"`)
        if (iteration === 0) {
          // During (or just before) the child's first save, which keeps "old" alive.
          await sleep(Math.random() * 60)
        } else {
          // While SQLite writes the new transcript. `save` validates and encodes for most of its time; SQLite
          // writes the WAL in the last ~20 % (≈ 15 ms here). So: watch the WAL during one save to learn how
          // long the writing lasts, then during the next one kill at a random point of that window.
          const warm = firstGen + 1
          await child.waitFor((line) => line === `saving ${warm}`, 60_000, `"saving ${warm}"`)
          const firstWrite = await walWrite(wal, () => child.lines.includes(`saved ${warm}`))
          await child.waitFor((line) => line === `saved ${warm}`, 60_000, `"saved ${warm}"`)
          const writing = Number.isNaN(firstWrite) ? 10 : Math.max(1, child.timeOf(`saved ${warm}`) - firstWrite)
          await child.waitFor((line) => line === `saving ${warm + 1}`, 60_000, `"saving ${warm + 1}"`)
          const killAt = (await walWrite(wal, () => !child.running)) + Math.random() * writing * 0.9
          // Spin rather than sleep: a timer can fire many milliseconds late on a busy machine.
          while (performance.now() < killAt) {
            // spin
          }
        }
        const { signal } = await child.kill()
        expect(signal, child.stderr).toBe("SIGKILL")
      } finally {
        await child.kill()
      }
      const number = (prefix: string) => {
        const lines = child.lines.filter((line) => line.startsWith(prefix))
        return lines.length === 0 ? undefined : Number(lines[lines.length - 1]!.slice(prefix.length))
      }
      const lastSaving = number("saving ")
      const lastSaved = number("saved ")
      const midSave = lastSaving !== undefined && lastSaving !== lastSaved
      const { frames, uncommitted } = walTail(wal)

      const label = await run(inspect, layer())
      // Completed saves are durable across a process crash, and nothing but the last started save can appear.
      const allowed = new Set<string>()
      allowed.add(lastSaved === undefined ? previous : `gen-${lastSaved}`)
      if (midSave) allowed.add(`gen-${lastSaving}`)
      expect([...allowed], `found ${label} after saving ${lastSaving} / saved ${lastSaved}`).toContain(label)

      const db = new Sqlite(filename)
      try {
        expect(db.pragma("integrity_check", { simple: true })).toBe("ok")
      } finally {
        db.close()
      }
      const completed = lastSaved === undefined ? 0 : lastSaved - firstGen + 1
      outcomes.push(
        `${completed} saved, killed ${midSave ? "in a save" : "between saves"}, ` +
          `WAL ${frames} frames (${uncommitted} uncommitted) -> ${label}`
      )
      previous = label
    }
    console.log(`crash iterations:\n  ${outcomes.join("\n  ")}`)
  }, 600_000)

  describe("migrations when processes start at once", () => {
    /** Every schema's applied migrations, as `<schema table>/<name>` in schema then migration order. */
    const appliedMigrations = (prefix: string) =>
      `SELECT migration_id, name FROM (${migrationTables(prefix)
        .map(
          (table, i) =>
            `SELECT ${i} AS t, migration_id, '${table.slice(prefix.length + 1)}/' || name AS name FROM "${table}"`
        )
        .join(" UNION ALL ")}) AS applied ORDER BY t, migration_id`

    const processes = 4
    const pgUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
    let expectedMigrations: Array<{ migration_id: number; name: string }> = []
    let expectedSchema: Array<{ type: string; name: string }> = []
    let pgUnavailable: string | undefined

    beforeAll(async () => {
      // The reference: one process migrating alone.
      const filename = join(dir, "reference.db")
      await run(Effect.void, StoresSqlite({ filename }))
      const db = new Sqlite(filename, { readonly: true })
      try {
        expectedMigrations = db.prepare<[], { migration_id: number; name: string }>(appliedMigrations("agent")).all()
        expectedSchema = db
          .prepare<[], { type: string; name: string }>(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
          )
          .all()
      } finally {
        db.close()
      }
      expect(expectedMigrations.length).toBeGreaterThan(0)

      pgUnavailable = await Effect.runPromise(
        SqlClient.SqlClient.pipe(
          Effect.flatMap((sql) => sql`SELECT 1`),
          Effect.provide(PgClient.layer({ url: Redacted.make(pgUrl), connectTimeout: Duration.seconds(3) })),
          Effect.match({
            onFailure: (error) => `PostgreSQL at ${pgUrl} is not reachable: ${String(error)}`,
            onSuccess: () => undefined
          })
        )
      )
    })

    /**
     * Starts the children once, then for each round sends them the same fresh target at the same moment and
     * requires every one to report `ok`; finally requires a clean exit. Several rounds make a lost race likely
     * to show up (once per round is a coin flip at best).
     */
    const race = async (backend: "sqlite" | "pg", rounds: ReadonlyArray<{ target: string; tablePrefix: string }>) => {
      const children = Array.from({ length: processes }, (_, i) =>
        spawnChild(`migrating child ${i} (${backend})`, ["migrate", backend, String(i)])
      )
      try {
        await Promise.all(children.map((child) => child.waitFor((line) => line === "loaded", 90_000, `"loaded"`)))
        for (const [round, { tablePrefix, target }] of rounds.entries()) {
          const go = `${JSON.stringify({ round, target, tablePrefix, startAt: Date.now() + 100 })}\n`
          for (const child of children) child.process.stdin.write(go)
          await Promise.all(
            children.map((child) => child.waitFor((line) => line === `ok ${round}`, 90_000, `"ok ${round}"`))
          )
        }
        for (const child of children) child.process.stdin.write("exit\n")
        await Promise.all(children.map((child) => child.done(90_000)))
      } finally {
        await Promise.all(children.map((child) => child.kill()))
      }
    }

    /** Every child's session, conversation and message are there. */
    const everyoneWrote = Effect.gen(function* () {
      const sessions = yield* SessionStore
      const conversations = yield* ConversationStore
      const page = yield* sessions.list({ agentId: "migrate-race", limit: 100 })
      expect(page.items.map((session) => session.id).sort()).toEqual(
        Array.from({ length: processes }, (_, i) => `s-${i}`)
      )
      for (let i = 0; i < processes; i++) {
        const owned = yield* conversations.list({ sessionId: `s-${i}` })
        expect(owned.items.map((conversation) => conversation.title)).toEqual([`c-${i}`])
        const messages = yield* conversations.messages(owned.items[0]!.id)
        expect(messages.map((message) => textOf(message))).toEqual([`hello from ${i}`])
      }
    })

    it("SQLite: every process succeeds and each migration is applied once", async () => {
      const filenames = Array.from({ length: 10 }, (_, round) => join(dir, `race-${round}.db`))
      await race(
        "sqlite",
        filenames.map((target) => ({ target, tablePrefix: "agent" }))
      )
      for (const filename of filenames) {
        const db = new Sqlite(filename, { readonly: true })
        try {
          expect(db.prepare(appliedMigrations("agent")).all()).toEqual(expectedMigrations)
          expect(
            db.prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all()
          ).toEqual(expectedSchema)
        } finally {
          db.close()
        }
        await run(everyoneWrote, StoresSqlite({ filename }))
      }
    }, 600_000)

    it("PostgreSQL: every process succeeds and each migration is applied once", async (ctx) => {
      if (pgUnavailable !== undefined) {
        console.warn(`SKIPPED PostgreSQL migration race: ${pgUnavailable}`)
        ctx.skip(pgUnavailable)
      }
      const base = `mig_${randomBytes(4).toString("hex")}`
      const prefixes = Array.from({ length: 3 }, (_, round) => `${base}_${round}`)
      // SQLite's tables, and the origin of PostgreSQL's event positions (docs/events.md), which SQLite has no use for.
      const expectedTables = [
        ...expectedSchema.filter(({ type }) => type === "table").map(({ name }) => name.replace(/^agent_/, "")),
        "event_origin"
      ].sort()
      try {
        await race(
          "pg",
          prefixes.map((tablePrefix) => ({ target: pgUrl, tablePrefix }))
        )
        for (const tablePrefix of prefixes) {
          const layer = StoresPg({ url: pgUrl, tablePrefix, maxConnections: 2 })
          const { migrations, names } = await run(
            Effect.gen(function* () {
              const sql = yield* SqlClient.SqlClient
              const migrations = yield* sql.unsafe<{ migration_id: number; name: string }>(
                appliedMigrations(tablePrefix)
              ).withoutTransform
              const names = yield* sql<{ tablename: string }>`SELECT tablename FROM pg_tables
                WHERE schemaname = current_schema()`.withoutTransform
              return { migrations, names: names.map((row) => row.tablename) }
            }),
            layer
          )
          expect(migrations.map(({ migration_id, name }) => ({ migration_id: Number(migration_id), name }))).toEqual(
            expectedMigrations
          )
          expect(
            names
              .filter((name) => name.startsWith(`${tablePrefix}_`))
              .map((name) => name.slice(tablePrefix.length + 1))
              .sort()
          ).toEqual(expectedTables)
          await run(everyoneWrote, layer)
        }
      } finally {
        await run(
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const rows = yield* sql<{ tablename: string }>`SELECT tablename FROM pg_tables
              WHERE schemaname = current_schema()`.withoutTransform
            const owned = rows.map((row) => row.tablename).filter((name) => name.startsWith(`${base}_`))
            for (const name of owned) yield* sql`DROP TABLE IF EXISTS ${sql(name)} CASCADE`
          }),
          PgClient.layer({ url: Redacted.make(pgUrl) })
        )
      }
    }, 600_000)
  })
})
