/**
 * The store kit's kernel on every SQL backend: keyset paging over other
 * column tuples, counters that readers never see out of commit order (16
 * fibers; 4 processes on one SQLite file), after-commit hooks, and migration
 * keys the migrator accepts.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import Database from "better-sqlite3"
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { schemas, tablesOf } from "../layers/Registry.ts"
import * as CommitHooks from "../layers/sql/CommitHooks.ts"
import * as Kit from "../layers/sql/Kit.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import type { PageQuery } from "../src/Page.ts"
import * as Ledger from "./fixtures/ledger.ts"
import { Child } from "./child.ts"
import { dropPrefix, pgReady, pgUrl } from "./pg.ts"

const pgPrefix = `k${process.pid}_${Date.now().toString(36)}`

const pgReachable = await pgReady("kit PostgreSQL tests")

afterAll(async () => {
  if (pgReachable !== undefined) return
  await dropPrefix(pgPrefix, [
    ...tablesOf(pgPrefix),
    ...Ledger.schema.tables.map((table) => `${pgPrefix}_${table}`),
    `${pgPrefix}_${Ledger.schema.name}_migrations`
  ])
})

const page = (limit: number, after: ReadonlyArray<string | number> | undefined, order: "asc" | "desc"): PageQuery => ({
  after,
  limit,
  offset: 0,
  order
})

/** Every row of a listing, page by page, following each page's last key. */
const walk = <R>(
  fetch: (query: PageQuery) => Effect.Effect<ReadonlyArray<R>, unknown>,
  keyOf: (row: R) => ReadonlyArray<string | number>,
  order: "asc" | "desc"
) =>
  Effect.gen(function* () {
    const rows: Array<R> = []
    let after: ReadonlyArray<string | number> | undefined
    for (;;) {
      const batch = yield* fetch(page(7, after, order))
      rows.push(...batch)
      if (batch.length < 7) return rows
      after = keyOf(batch[batch.length - 1]!)
    }
  })

const backends: ReadonlyArray<readonly [string, Layer.Layer<Ledger.Ledger | SqlClient, unknown>, boolean]> = [
  ["sqlite", Ledger.layer().pipe(Layer.provideMerge(SqliteDatabase.layer({ filename: ":memory:" }))), true],
  [
    "SqlClient on sqlite-node",
    Ledger.layer().pipe(Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" }))),
    false
  ],
  ...(pgReachable === undefined
    ? [
        [
          "postgres",
          Ledger.layer({ tablePrefix: pgPrefix }).pipe(
            Layer.provideMerge(PgDatabase.layer({ url: pgUrl, maxConnections: 16 }))
          ),
          true
        ] as const
      ]
    : [])
]

for (const [label, backend, observesCommits] of backends) {
  layer(backend, { timeout: "60 seconds" })(`kit (${label})`, (it) => {
    it.effect("keyset pages over a text key and a numeric key, both directions", () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger.Ledger
        const names = Array.from({ length: 50 }, (_, i) => `name-${String((i * 37) % 50).padStart(2, "0")}`)
        yield* Effect.forEach(names, (name, i) => ledger.addName(name, i), { discard: true })
        const sorted = [...names].sort()
        for (const order of ["asc", "desc"] as const) {
          const rows = yield* walk(
            (query) => ledger.names({}, query),
            (row) => [row.name],
            order
          )
          expect(rows.map((row) => row.name)).toEqual(order === "asc" ? sorted : [...sorted].reverse())
        }
        const first = yield* ledger.append("pager")
        yield* Effect.repeatN(ledger.append("pager"), 17)
        const entries = yield* walk(
          (query) => ledger.after({ writer: "pager" }, query),
          (row) => [row.position],
          "asc"
        )
        expect(entries.map((entry) => entry.position)).toEqual(Array.from({ length: 19 }, (_, i) => first + i))
      })
    )

    it.effect("counter positions: 16 writers, a reader polling `after` never sees a gap", () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger.Ledger
        const start = yield* ledger.append("start")
        const writers = 16
        const each = 20
        let done = false
        const reader = yield* Effect.fork(
          Effect.gen(function* () {
            let after = start
            const seen: Array<number> = []
            while (!done || seen.length < writers * each) {
              const rows = yield* ledger.after({}, page(1000, [after], "asc"))
              for (const row of rows) {
                if (row.position !== after + 1) return yield* Effect.fail(`gap: after ${after} came ${row.position}`)
                after = row.position
                seen.push(row.position)
              }
              if (rows.length === 0) yield* Effect.yieldNow()
            }
            return seen
          })
        )
        yield* Effect.forEach(
          Array.from({ length: writers }, (_, w) => w),
          (w) => Effect.repeatN(ledger.append(`w${w}`), each - 1),
          { concurrency: "unbounded", discard: true }
        )
        done = true
        const seen = yield* Fiber.join(reader)
        expect(seen).toEqual(Array.from({ length: writers * each }, (_, i) => start + 1 + i))
      })
    )

    if (observesCommits) {
      it.effect("after-commit hooks: at once outside a transaction, on commit inside, never on rollback", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient
          const ran: Array<string> = []
          const hook = (name: string) => CommitHooks.afterCommit(() => ran.push(name))
          yield* hook("outside")
          expect(ran).toEqual(["outside"])
          yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* hook("committed")
              yield* sql.withTransaction(hook("inner kept"))
              yield* Effect.ignore(sql.withTransaction(Effect.zipRight(hook("inner rolled back"), Effect.fail("no"))))
              expect(ran).toEqual(["outside"])
            })
          )
          expect(ran).toEqual(["outside", "committed", "inner kept"])
          yield* Effect.ignore(sql.withTransaction(Effect.zipRight(hook("rolled back"), Effect.fail("no"))))
          expect(ran).toEqual(["outside", "committed", "inner kept"])
        })
      )
    }
  })
}

describe("kit (sqlite, 4 processes on one file)", () => {
  it("counter positions stay gapless for a reader polling while processes append", async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "agent-kit-")), "ledger.db")
    const setup = Ledger.layer().pipe(Layer.provideMerge(SqliteDatabase.layer({ filename })))
    await Effect.runPromise(Effect.scoped(Layer.build(setup)))
    const child = fileURLToPath(new URL("./fixtures/ledger-child.ts", import.meta.url))
    const processes = 4
    const each = 150
    const exits = Array.from({ length: processes }, (_, i) =>
      new Child(`ledger child p${i}`, child, [filename, `p${i}`, String(each)]).done(240_000)
    )
    const reading = Effect.gen(function* () {
      const ledger = yield* Ledger.Ledger
      let after = 0
      let finished = false
      void Promise.all(exits).then(
        () => (finished = true),
        () => (finished = true)
      )
      for (;;) {
        const rows = yield* ledger.after({}, page(1000, [after], "asc"))
        for (const row of rows) {
          expect(row.position, `after ${after}`).toBe(after + 1)
          after = row.position
        }
        if (rows.length === 0) {
          if (finished && after >= processes * each) return after
          if (finished) {
            const last = yield* ledger.after({}, page(1000, [after], "asc"))
            if (last.length === 0) return after
          }
          yield* Effect.sleep("2 millis")
        }
      }
    })
    const seen = await Effect.runPromise(Effect.provide(reading, setup))
    await Promise.all(exits)
    expect(seen).toBe(processes * each)
  }, 300_000)
})

describe("migrations", () => {
  it("every key is NNNN_name, numbered 1, 2, 3… per schema (the migrator silently drops other keys)", () => {
    for (const schema of [Kit.kernel, ...schemas]) {
      const keys = Object.keys(schema.migrations)
      for (const key of keys) expect(key, `${schema.name}: ${key}`).toMatch(/^\d{4}_[a-z0-9_]+$/)
      expect(keys.every((key) => Kit.migrationKey.test(key))).toBe(true)
      expect(keys.map((key) => Number(key.slice(0, 4)))).toEqual(keys.map((_, i) => i + 1))
    }
  })

  it("schema names, and so migrations tables, are unique", () => {
    const names = schemas.map((schema) => schema.name)
    expect(new Set(names).size).toBe(names.length)
    expect(names[0]).toBe(Kit.kernel.name)
  })
})

describe("statement texts", () => {
  it("resolve names tables, numbers PostgreSQL placeholders and keeps SQLite parameters out of planning (+?)", () => {
    const text = "SELECT seq FROM {messages} WHERE conversation_id = ? ORDER BY seq LIMIT ? OFFSET ?"
    expect(Kit.resolve(text, "p", "pg")).toBe(
      `SELECT seq FROM "p_messages" WHERE conversation_id = $1 ORDER BY seq LIMIT $2 OFFSET $3`
    )
    expect(Kit.resolve(text, "p", "sqlite")).toBe(
      `SELECT seq FROM "p_messages" WHERE conversation_id = +? ORDER BY seq LIMIT +? OFFSET +?`
    )
  })

  it("on SQLite, +? stores and compares exactly as ? (text that looks numeric, blobs, nulls, limits)", () => {
    const db = new Database(":memory:")
    try {
      db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, b BLOB, x) WITHOUT ROWID")
      const insert = db.prepare(Kit.resolve("INSERT INTO t (k, n, b, x) VALUES (?, ?, ?, ?)", "p", "sqlite"))
      const rows: Array<[string, number | bigint | null, Uint8Array | null, unknown]> = [
        ["007", 7, Buffer.from([0, 1, 2]), "8"],
        ["1e3", 1000, null, 2.5],
        ["a", null, Buffer.alloc(0), null]
      ]
      for (const row of rows) insert.run(...row)
      const stored = db.prepare("SELECT k, typeof(k), n, typeof(n), b, typeof(x), x FROM t ORDER BY k").raw(true).all()
      expect(stored).toEqual([
        ["007", "text", 7, "integer", Buffer.from([0, 1, 2]), "text", "8"],
        ["1e3", "text", 1000, "integer", null, "real", 2.5],
        ["a", "text", null, "null", Buffer.alloc(0), "null", null]
      ])
      const query = "SELECT k FROM t WHERE k >= ? AND n > ? ORDER BY k LIMIT ? OFFSET ?"
      const plain = db.prepare(query).pluck()
      const resolved = db.prepare(Kit.resolve(query, "p", "sqlite")).pluck()
      for (const params of [
        ["0", 0, 5, 0],
        ["007", "6", 1, 0],
        ["1", 0, -1, 0],
        ["", 0, 1, 1],
        ["a", null, 5, 0]
      ]) {
        expect(resolved.all(...params)).toEqual(plain.all(...params))
      }
      expect(() => resolved.all("", 0, "x", 0)).toThrow()
    } finally {
      db.close()
    }
  })

  it("on SQLite, an analysed table still answers a +? lookup from its index", () => {
    const db = new Database(":memory:")
    try {
      db.exec(`CREATE TABLE m (c TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (c, seq)) WITHOUT ROWID;
        CREATE TABLE a (seq INTEGER PRIMARY KEY, s TEXT);
        CREATE INDEX a_s ON a (s, seq) WHERE s IS NOT NULL`)
      const [intoM, intoA] = [db.prepare("INSERT INTO m VALUES (?, ?)"), db.prepare("INSERT INTO a VALUES (?, ?)")]
      const fill = db.transaction(() => {
        for (let i = 0; i < 2000; i++) intoM.run(`c${i % 20}`, i)
        for (let i = 0; i < 2000; i++) intoA.run(i, i % 3 === 0 ? null : `s${i % 7}`)
      })
      fill()
      db.exec("ANALYZE")
      const plan = (text: string, ...params: Array<unknown>) =>
        (
          db.prepare(`EXPLAIN QUERY PLAN ${Kit.resolve(text, "p", "sqlite")}`).all(...params) as Array<{
            detail: string
          }>
        )
          .map((row) => row.detail)
          .join("; ")
      expect(plan("SELECT seq FROM m WHERE c = ? AND seq > ? ORDER BY seq LIMIT ?", "c3", 10, 5)).toMatch(
        /SEARCH m USING PRIMARY KEY \(c=\? AND seq>\?\)/
      )
      expect(plan("SELECT seq FROM a WHERE s = ? AND seq > ? ORDER BY seq LIMIT ?", "s1", 0, 5)).toMatch(
        /SEARCH a USING (COVERING )?INDEX a_s \(s=\? AND seq>\?\)/
      )
    } finally {
      db.close()
    }
  })
})
