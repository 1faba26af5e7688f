/**
 * `PgDatabase`, the PostgreSQL client under `StoresPg`: the connect timeout (against a local server that accepts
 * and never answers), the operation timeout, a caller's `sql.withTransaction` joined by `PgExecutor` and rolled
 * back, `PgExecutor.transaction` (commit, rollback, interruption, hooks), connections lost mid-transaction or right
 * after their handshake (the driver faults `PgPool` guards against), and every contract suite with `prepare: false`
 * (what a transaction-mode pooler needs). Without a reachable server the PostgreSQL parts are skipped with the
 * reason printed; under CI they fail instead.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Layer, Stream } from "effect"
import * as Net from "node:net"
import postgres from "postgres"
import { tablesOf } from "../layers/Registry.ts"
import { CommitHooks } from "../layers/sql/CommitHooks.ts"
import { PgExecutor, layer } from "../layers/sql/PgDatabase.ts"
import { StoresPg } from "../layers/Stores.ts"
import { StorageError } from "../src/Errors.ts"
import { SessionStore } from "../src/Session.ts"
import { dropPrefix, pgReady, pgUrl as url } from "./pg.ts"
import { suites } from "./suites/index.ts"

const tablePrefix = `p${process.pid}_${Date.now().toString(36)}`

describe("PgDatabase connect timeout", () => {
  it.live("fails layer build with StorageError within the bound when the server accepts and never answers", () =>
    Effect.gen(function* () {
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((socket) => void sockets.add(socket))
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () =>
          Effect.sync(() => {
            for (const socket of sockets) socket.destroy()
            server.close()
          })
      )
      const { port } = server.address() as Net.AddressInfo
      const started = Date.now()
      const exit = yield* Effect.exit(
        Layer.build(layer({ url: `postgres://postgres@127.0.0.1:${port}/test`, connectTimeout: "300 millis" }))
      )
      const elapsed = Date.now() - started
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
        expect(error).toBeInstanceOf(StorageError)
        expect(error?.operation).toBe("connect")
      }
      expect(sockets.size).toBeGreaterThan(0)
      expect(elapsed).toBeLessThan(5_000)
    }).pipe(Effect.scoped)
  )
})

const reachable = await pgReady("PgDatabase PostgreSQL tests")

if (reachable !== undefined) {
  describe.skip("PgDatabase on PostgreSQL", () => {
    it("needs a reachable server", () => {})
  })
} else {
  afterAll(() => dropPrefix(tablePrefix, tablesOf(tablePrefix), url))

  describe("PgDatabase on PostgreSQL", () => {
    it.live("operationTimeout fails a statement past it, and the pool still answers afterwards", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient
        const executor = yield* PgExecutor
        const started = Date.now()
        const error = yield* Effect.flip(executor.values("SELECT pg_sleep(5)", []))
        expect(Date.now() - started).toBeLessThan(3_000)
        expect(error.message).toContain("no answer within")
        const slow = yield* Effect.flip(sql`SELECT pg_sleep(5)`)
        expect(slow.message).toContain("pg_sleep")
        expect(yield* executor.values("SELECT 1 + $1::int", [1])).toEqual([[2]])
      }).pipe(Effect.provide(layer({ url, operationTimeout: "300 millis" })))
    )

    it.live("a store operation past operationTimeout is a StorageError naming the operation", () =>
      Effect.gen(function* () {
        const sessions = yield* SessionStore
        const session = yield* sessions.create({ agentId: "a" })
        // Another connection holds the row's lock, so the update waits past the bound.
        const admin = yield* Effect.acquireRelease(
          Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
          (admin) => Effect.promise(() => admin.end({ timeout: 1 }))
        )
        yield* Effect.promise(() => admin.unsafe("BEGIN"))
        yield* Effect.promise(() =>
          admin.unsafe(`SELECT id FROM "${tablePrefix}_sessions" WHERE id = $1 FOR UPDATE`, [session.id])
        )
        const error = yield* Effect.flip(sessions.update(session.id, { title: "late" }))
        // The timed-out statement is cancelled on the server, asynchronously: wait until the server no longer runs
        // it before the lock goes (a statement that completes before its cancel arrives keeps its effect).
        const watcher = yield* Effect.acquireRelease(
          Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
          (watcher) => Effect.promise(() => watcher.end({ timeout: 1 }))
        )
        const waiting = () =>
          watcher.unsafe(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1`, [
            `UPDATE "${tablePrefix}_sessions"%`
          ])
        for (let i = 0; i < 100 && (yield* Effect.promise(waiting))[0]!.n > 0; i++) yield* Effect.sleep("100 millis")
        yield* Effect.promise(() => admin.unsafe("ROLLBACK"))
        expect(error).toBeInstanceOf(StorageError)
        expect((error as StorageError).operation).toBe("session.update")
        expect((yield* sessions.get(session.id)).title).toBeUndefined()
      }).pipe(Effect.scoped, Effect.provide(StoresPg({ url, tablePrefix, operationTimeout: "2 seconds" })))
    )

    it.live("statements give their rows: many, none, one array per statement of a multi-statement text", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient
        const executor = yield* PgExecutor
        const many = yield* executor.values("SELECT g, 'row ' || g FROM generate_series(1, $1::int) AS g", [500])
        expect(many).toHaveLength(500)
        expect(many[499]).toEqual([500, "row 500"])
        expect(yield* executor.values("SELECT 1 WHERE $1::int = 0", [1])).toEqual([])
        expect(yield* sql<{ n: number }>`SELECT ${7}::int AS n`).toEqual([{ n: 7 }])
        expect(yield* sql.unsafe("SELECT 1 AS a; SELECT 2 AS b")).toEqual([[{ a: 1 }], [{ b: 2 }]])
        // A failure after rows have arrived fails the statement; none of its rows are returned.
        const error = yield* Effect.flip(
          executor.values("SELECT 1 / (g - $1::int) FROM generate_series(1, 10) AS g", [5])
        )
        expect(error.message).toContain("division by zero")
      }).pipe(Effect.provide(layer({ url })))
    )

    it.live("PgExecutor joins a caller's sql.withTransaction and rolls back with it", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient
        const executor = yield* PgExecutor
        const table = `"${tablePrefix}_joined"`
        yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (id TEXT PRIMARY KEY)`)
        const exit = yield* Effect.exit(
          sql.withTransaction(
            Effect.gen(function* () {
              yield* executor.values(`INSERT INTO ${table} (id) VALUES ($1)`, ["a"])
              yield* sql.unsafe(`INSERT INTO ${table} (id) VALUES ($1)`, ["b"]).values
              // Same transaction: both rows are visible here, on the transaction's connection.
              expect(yield* executor.values(`SELECT count(*)::int FROM ${table}`, [])).toEqual([[2]])
              return yield* Effect.fail("abort")
            })
          )
        )
        expect(exit).toEqual(Exit.fail("abort"))
        expect(yield* executor.values(`SELECT count(*)::int FROM ${table}`, [])).toEqual([[0]])
        yield* sql.unsafe(`DROP TABLE ${table}`)
      }).pipe(Effect.provide(layer({ url })))
    )

    it.live(
      "PgExecutor.transaction commits, rolls back on failure and on interruption, and returns its connection",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient
          const executor = yield* PgExecutor
          const hooks = yield* CommitHooks
          const table = `"${tablePrefix}_lean"`
          yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (id TEXT PRIMARY KEY)`)
          const insert = (id: string) => executor.values(`INSERT INTO ${table} (id) VALUES ($1)`, [id])
          const count = executor.values(`SELECT count(*)::int FROM ${table}`, [])
          const ran: Array<string> = []
          // Committed: the row stays and the after-commit hook runs, after COMMIT.
          yield* executor.transaction(
            Effect.zipRight(
              insert("a"),
              hooks.afterCommit(() => ran.push("a"))
            ).pipe(Effect.tap(() => expect(ran).toEqual([])))
          )
          expect(ran).toEqual(["a"])
          // Failed: nothing stays, the hook never runs; more failures than the pool has connections (each returned).
          for (let i = 0; i < 4; i++) {
            const exit = yield* Effect.exit(
              executor.transaction(
                Effect.zipRight(
                  Effect.zipRight(
                    insert(`b${i}`),
                    hooks.afterCommit(() => ran.push("b"))
                  ),
                  Effect.fail("abort")
                )
              )
            )
            expect(exit).toEqual(Exit.fail("abort"))
          }
          // A violation inside is the statement's SqlError, and rolls back.
          const duplicate = yield* Effect.flip(executor.transaction(Effect.zipRight(insert("c"), insert("a"))))
          expect(duplicate.message).toContain("duplicate key")
          // Interrupted while a statement runs: rolled back.
          const fiber = yield* Effect.fork(
            executor.transaction(Effect.zipRight(insert("d"), executor.values("SELECT pg_sleep(5)", [])))
          )
          yield* Effect.sleep("200 millis")
          yield* Fiber.interrupt(fiber)
          expect(ran).toEqual(["a"])
          expect(yield* count).toEqual([[1]])
          // Inside a caller's transaction it is a savepoint of it: rolled back with it.
          const outer = yield* Effect.exit(
            sql.withTransaction(Effect.zipRight(executor.transaction(insert("e")), Effect.fail("outer")))
          )
          expect(outer).toEqual(Exit.fail("outer"))
          expect(yield* count).toEqual([[1]])
          yield* sql.unsafe(`DROP TABLE ${table}`)
        }).pipe(Effect.provide(layer({ url, maxConnections: 2 })))
    )

    it.live(
      "a transaction whose connection is terminated mid-statement fails with SqlError; the process lives, the pool serves",
      () =>
        Effect.gen(function* () {
          const executor = yield* PgExecutor
          const admin = yield* Effect.acquireRelease(
            Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
            (admin) => Effect.promise(() => admin.end({ timeout: 1 }))
          )
          // Twice, on a pool of one connection: the driver (postgres 3.4.9) crashed the process on the ROLLBACK after
          // the loss (a write to the closed socket from a setImmediate), or on the next statement once the lost
          // connection was back in its pool.
          for (let round = 0; round < 2; round++) {
            const failed = yield* Effect.flip(
              executor.transaction(
                Effect.gen(function* () {
                  const [[pid]] = (yield* executor.values("SELECT pg_backend_pid()", [])) as [[number]]
                  yield* Effect.forkDaemon(
                    Effect.zipRight(
                      Effect.sleep("100 millis"),
                      Effect.promise(() => admin`SELECT pg_terminate_backend(${pid})`)
                    )
                  )
                  yield* executor.values("SELECT pg_sleep(5)", [])
                })
              )
            )
            expect(failed.message).toContain("pg_sleep")
            expect(yield* executor.values("SELECT 1 + $1::int", [round])).toEqual([[1 + round]])
          }
        }).pipe(Effect.scoped, Effect.provide(layer({ url, maxConnections: 1 })))
    )

    it.live(
      "a connection lost right after its handshake fails the layer build with StorageError, not the process",
      () =>
        Effect.gen(function* () {
          // A proxy to the server that cuts each connection once the server's first ReadyForQuery has passed: the
          // moment the driver, left to itself, reads the server's array types and rejects a promise nobody handles.
          const target = new URL(url)
          const sockets = new Set<Net.Socket>()
          const proxy = Net.createServer((client) => {
            const server = Net.connect(Number(target.port || 5432), target.hostname)
            sockets.add(client).add(server)
            let cut = false
            client.on("data", (data) => server.write(data))
            server.on("data", (data) => {
              client.write(data)
              if (!cut && data.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) {
                cut = true
                setImmediate(() => {
                  client.destroy()
                  server.destroy()
                })
              }
            })
            for (const socket of [client, server]) socket.on("error", () => {})
            client.on("close", () => server.destroy())
            server.on("close", () => client.destroy())
          })
          yield* Effect.acquireRelease(
            Effect.async<void>((resume) => void proxy.listen(0, "127.0.0.1", () => resume(Effect.void))),
            () =>
              Effect.sync(() => {
                for (const socket of sockets) socket.destroy()
                proxy.close()
              })
          )
          const proxied = new URL(url)
          proxied.host = `127.0.0.1:${(proxy.address() as Net.AddressInfo).port}`
          const exit = yield* Effect.exit(Layer.build(layer({ url: proxied.toString(), connectTimeout: "5 seconds" })))
          expect(exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : exit).toMatchObject({
            _tag: "StorageError",
            operation: "connect"
          })
        }).pipe(Effect.scoped)
    )

    it.live("a statement's rows stream through a cursor, on the pool and in a transaction, on a pool of one", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient
        const rows = (limit: number) =>
          Stream.runCollect(sql<{ n: number }>`SELECT g::int AS n FROM generate_series(1, ${limit}::int) AS g`.stream)
        expect(Chunk.toArray(yield* rows(300)).map((row) => row.n)).toEqual(
          Array.from({ length: 300 }, (_, i) => i + 1)
        )
        // Stopped early: the cursor is closed and its connection serves the next statement.
        const first = yield* Stream.runCollect(
          Stream.take(sql<{ n: number }>`SELECT g::int AS n FROM generate_series(1, 1000) AS g`.stream, 3)
        )
        expect(Chunk.toArray(first).map((row) => row.n)).toEqual([1, 2, 3])
        expect(Chunk.size(yield* sql.withTransaction(rows(200)))).toBe(200)
        expect(yield* sql`SELECT 1 AS one`).toEqual([{ one: 1 }])
      }).pipe(Effect.provide(layer({ url, maxConnections: 1 })))
    )

    it.live("says it is PostgreSQL to dialect detection and keeps JSON text verbatim", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient
        expect(sql.onDialectOrElse({ pg: () => "pg", orElse: () => "other" })).toBe("pg")
        const [[text, parsed]] = (yield* sql.unsafe(`SELECT $1::text, $2::jsonb`, ['{"a":1}', '{"b":2}']).values) as [
          [string, unknown]
        ]
        expect(text).toBe('{"a":1}')
        expect(parsed).toEqual({ b: 2 })
      }).pipe(Effect.provide(layer({ url, prepare: false })))
    )
  })

  suites("postgres, prepare: false", StoresPg({ url, tablePrefix, prepare: false }))
}
