/**
 * The audit log's special guarantees on the SQL backends: triggers refuse
 * `UPDATE` and `DELETE` with raw SQL; with the triggers dropped, a row edited,
 * deleted or inserted with raw SQL is found by `verify`, which names the first
 * bad entry (SQLite and PostgreSQL); four processes appending to one SQLite
 * file keep one unbroken chain.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlAuditLogStore from "../layers/sql/SqlAuditLogStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import { type AuditEntry, AuditLogStore, entryHash } from "../src/Audit.ts"
import { Child } from "./child.ts"
import { pgReady, pgUrl } from "./pg.ts"

interface Backend {
  readonly label: string
  readonly layer: (prefix: string) => Layer.Layer<AuditLogStore | SqlClient, unknown>
  /** Statements dropping the append-only triggers of `prefix`. */
  readonly dropTriggers: (prefix: string) => ReadonlyArray<string>
}

const sqlite: Backend = {
  label: "SQLite",
  layer: (prefix) =>
    SqlAuditLogStore.layerWith({ tablePrefix: prefix }).pipe(
      Layer.provideMerge(SqliteDatabase.layer({ filename: ":memory:" }))
    ),
  dropTriggers: (prefix) => [
    `DROP TRIGGER "${prefix}_audit_log_no_update"`,
    `DROP TRIGGER "${prefix}_audit_log_no_delete"`
  ]
}

const pg: Backend = {
  label: "PostgreSQL",
  layer: (prefix) =>
    SqlAuditLogStore.layerWith({ tablePrefix: prefix }).pipe(Layer.provideMerge(PgDatabase.layer({ url: pgUrl }))),
  dropTriggers: (prefix) => [
    `DROP TRIGGER "${prefix}_audit_log_no_change" ON "${prefix}_audit_log"`,
    `DROP TRIGGER "${prefix}_audit_log_no_truncate" ON "${prefix}_audit_log"`
  ]
}

const run = pid()
function pid() {
  return `a${process.pid}_${Date.now().toString(36)}`
}
/** An error's text with its cause's (an `SqlError` wraps the driver's error). */
const textOf = (error: unknown): string => `${String(error)} ${String((error as { cause?: unknown }).cause)}`

let scenario = 0
const prefixes: Array<string> = []
const freshPrefix = () => {
  const prefix = `${run}_${++scenario}`
  prefixes.push(prefix)
  return prefix
}

/** Five entries, the tables' prefix, and the raw SQL runner, for one scenario on a fresh chain. */
const scenarioOn = <A>(
  backend: Backend,
  body: (context: {
    readonly entries: ReadonlyArray<AuditEntry>
    readonly table: string
    readonly prefix: string
    readonly raw: (text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>
    readonly audit: AuditLogStore["Type"]
  }) => Effect.Effect<A, unknown, AuditLogStore | SqlClient>
) => {
  const prefix = freshPrefix()
  return Effect.gen(function* () {
    const audit = yield* AuditLogStore
    const sql = yield* SqlClient
    const entries: Array<AuditEntry> = []
    for (let i = 1; i <= 5; i++) {
      entries.push(
        yield* audit.append({ sessionId: "s", actor: "agent", action: `step${i}`, resource: "doc", detail: { i } })
      )
    }
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5])
    const raw = (text: string, params: ReadonlyArray<unknown> = []) => sql.unsafe(text, params as Array<any>)
    return yield* body({ entries, table: `"${prefix}_audit_log"`, prefix, raw, audit })
  }).pipe(Effect.provide(backend.layer(prefix)))
}

const tamperTests = (backend: Backend) =>
  describe(`audit log tampering (${backend.label})`, () => {
    const placeholder = (n: number) => (backend === pg ? `$${n}` : "?")

    it.effect("triggers refuse UPDATE and DELETE with raw SQL; the chain still verifies", () =>
      scenarioOn(backend, ({ entries, table, raw, audit }) =>
        Effect.gen(function* () {
          const update = yield* Effect.flip(raw(`UPDATE ${table} SET actor = 'mallory' WHERE seq = 2`))
          expect(textOf(update)).toMatch(/append-only/)
          const remove = yield* Effect.flip(raw(`DELETE FROM ${table} WHERE seq = 2`))
          expect(textOf(remove)).toMatch(/append-only/)
          if (backend === pg) {
            expect(textOf(yield* Effect.flip(raw(`TRUNCATE ${table}`)))).toMatch(/append-only/)
          }
          expect(yield* audit.verify()).toEqual({ checked: 5, head: { seq: 5, hash: entries[4]!.hash } })
        })
      )
    )

    it.effect("an edited row is named by verify", () =>
      scenarioOn(backend, ({ entries, table, prefix, raw, audit }) =>
        Effect.gen(function* () {
          for (const text of backend.dropTriggers(prefix)) yield* raw(text)
          yield* raw(`UPDATE ${table} SET detail = '{"i":300}' WHERE seq = 3`)
          const error = yield* Effect.flip(audit.verify())
          expect(error).toMatchObject({ _tag: "IntegrityError", entity: "AuditEntry", id: entries[2]!.id })
          expect(error.message).toContain(entries[2]!.hash)
          // Verifying from after the edit trusts entry 3's stored hash: the rest of the chain is intact.
          expect((yield* audit.verify({ from: 4 })).checked).toBe(2)
        })
      )
    )

    it.effect("an edited row whose own hash is recomputed is found at the next entry", () =>
      scenarioOn(backend, ({ entries, table, prefix, raw, audit }) =>
        Effect.gen(function* () {
          for (const text of backend.dropTriggers(prefix)) yield* raw(text)
          const forged = entryHash(
            {
              id: entries[1]!.id,
              seq: 2,
              sessionId: "s",
              actor: "mallory",
              action: "step2",
              resource: "doc",
              createdAt: entries[1]!.createdAt.epochMillis,
              prevHash: entries[1]!.prevHash
            },
            { i: 2 }
          )!
          yield* raw(`UPDATE ${table} SET actor = 'mallory', hash = ${placeholder(1)} WHERE seq = 2`, [forged])
          const error = yield* Effect.flip(audit.verify())
          expect(error).toMatchObject({
            _tag: "IntegrityError",
            id: entries[2]!.id,
            actual: `prevHash ${entries[1]!.hash}`
          })
        })
      )
    )

    it.effect("a deleted row is found at the entry after the gap; a deleted tail against the counter", () =>
      scenarioOn(backend, ({ entries, table, prefix, raw, audit }) =>
        Effect.gen(function* () {
          for (const text of backend.dropTriggers(prefix)) yield* raw(text)
          yield* raw(`DELETE FROM ${table} WHERE seq = 5`)
          const tail = yield* Effect.flip(audit.verify())
          expect(tail).toMatchObject({ _tag: "IntegrityError", id: "seq 5", expected: "entries up to seq 5" })
          yield* raw(`DELETE FROM ${table} WHERE seq = 3`)
          const gap = yield* Effect.flip(audit.verify())
          expect(gap).toMatchObject({ _tag: "IntegrityError", id: entries[3]!.id, expected: "seq 3", actual: "seq 4" })
        })
      )
    )

    it.effect("an inserted row is named by verify, even with a correctly computed hash", () =>
      scenarioOn(backend, ({ entries, table, raw, audit }) =>
        Effect.gen(function* () {
          const columns = "id, seq, session_id, actor, action, resource, detail, created_at, prev_hash, hash"
          const marks = Array.from({ length: 10 }, (_, i) => placeholder(i + 1)).join(", ")
          const row = {
            id: "forged-6",
            seq: 6,
            sessionId: null,
            actor: "mallory",
            action: "grant",
            resource: "admin",
            createdAt: entries[4]!.createdAt.epochMillis,
            prevHash: entries[4]!.hash
          }
          const hash = entryHash(row, null)!
          // Inserts need no dropped trigger: only UPDATE and DELETE are refused.
          yield* raw(`INSERT INTO ${table} (${columns}) VALUES (${marks})`, [
            row.id,
            row.seq,
            row.sessionId,
            row.actor,
            row.action,
            row.resource,
            "null",
            row.createdAt,
            row.prevHash,
            hash
          ])
          const past = yield* Effect.flip(audit.verify())
          expect(past).toMatchObject({ _tag: "IntegrityError", id: "forged-6", actual: "an entry at seq 6" })
          yield* raw(`INSERT INTO ${table} (${columns}) VALUES (${marks})`, [
            "forged-0",
            0,
            null,
            "mallory",
            "grant",
            "admin",
            "null",
            0,
            "0".repeat(64),
            "0".repeat(64)
          ])
          const before = yield* Effect.flip(audit.verify())
          expect(before).toMatchObject({ _tag: "IntegrityError", id: "forged-0", expected: "seq 1", actual: "seq 0" })
        })
      )
    )
  })

tamperTests(sqlite)

const unreachable = await pgReady("PostgreSQL (audit log tampering)")
if (unreachable !== undefined) {
  describe.skip("audit log tampering (PostgreSQL)", () => it("needs a reachable server", () => {}))
} else {
  afterAll(async () => {
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const prefix of prefixes) {
        for (const table of ["audit_log", "audit_log_migrations", "counters", "kernel_migrations"]) {
          await sql.unsafe(`DROP TABLE IF EXISTS "${prefix}_${table}" CASCADE`)
        }
        await sql.unsafe(`DROP FUNCTION IF EXISTS "${prefix}_audit_log_append_only"()`)
      }
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
  tamperTests(pg)
}

describe("audit log across processes (SQLite file)", () => {
  it("4 processes appending to one file keep one unbroken chain", { timeout: 300_000 }, async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "agent-stores-audit-")), "audit.db")
    const script = fileURLToPath(new URL("./fixtures/audit-child.ts", import.meta.url))
    const perChild = 50
    await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        new Child(`audit child ${i}`, script, [filename, `process-${i}`, String(perChild)]).done(240_000)
      )
    )
    const { verification, counts } = await Effect.runPromise(
      Effect.gen(function* () {
        const audit = yield* AuditLogStore
        const verification = yield* audit.verify()
        const counts = yield* Effect.forEach([0, 1, 2, 3], (i) =>
          Effect.map(audit.list({ actor: `process-${i}`, limit: 1000 }), (page) => page.items.length)
        )
        return { verification, counts }
      }).pipe(
        Effect.provide(SqlAuditLogStore.layer.pipe(Layer.provideMerge(SqliteDatabase.layer({ filename })))),
        Effect.scoped
      )
    )
    expect(verification.checked).toBe(4 * perChild)
    expect(verification.head.seq).toBe(4 * perChild)
    expect(counts).toEqual([perChild, perChild, perChild, perChild])
  })
})
