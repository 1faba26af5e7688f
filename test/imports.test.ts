/**
 * Light imports: a memory-only user loads neither database driver nor the AI
 * SDK (`ai`, whose message shapes the core holds without importing it), a
 * PostgreSQL-only user does not load better-sqlite3 (drivers load when a
 * layer first opens a database).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { tablesOf } from "../layers/Registry.ts"
import { dropPrefix, pgReady, pgUrl } from "./pg.ts"

const run = promisify(execFile)

const child = (deny: string, ...args: Array<string>) =>
  run(process.execPath, ["--import", "tsx", "test/fixtures/imports-child.ts", ...args], {
    env: { ...process.env, DENY: deny },
    timeout: 60_000
  })

/** The fixture with `missing` not installed, as a user who left the driver out sees it. */
const without = (missing: string, ...args: Array<string>) =>
  run(process.execPath, ["--import", "tsx", "test/fixtures/imports-child.ts", ...args], {
    env: { ...process.env, MISSING: missing },
    timeout: 60_000
  })

describe("light imports", () => {
  for (const entry of ["layers/memory/index.ts", "layers/index.ts"]) {
    it(`StoresMemory from ${entry} loads neither better-sqlite3, postgres nor ai`, async () => {
      const { stdout } = await child("better-sqlite3,postgres,ai", entry, "memory")
      expect(stdout.trim()).toBe("ok")
    }, 60_000)
  }

  it("the check fails when a denied driver is loaded", async () => {
    const { stdout } = await child("postgres", "layers/index.ts", "postgres", pgUrl, "unused")
    expect(stdout).toContain('the driver "postgres" was loaded')
  }, 60_000)
})

/** The framework packages only the adapters' entry points (`/langgraph`, `/persistence`…) may load. */
const frameworks = "@langchain/core,@langchain/langgraph-checkpoint,@langchain/langgraph"

describe("the core entry points load no framework package", () => {
  for (const entry of ["src/index.ts", "layers/index.ts", "layers/memory/index.ts", "layers/sql/index.ts"]) {
    it(`${entry} loads none of ${frameworks}`, async () => {
      const { stdout } = await child(frameworks, entry, "import")
      expect(stdout.trim()).toBe("ok")
    }, 60_000)
  }

  it("the check fails when the LangGraph entry point is loaded", async () => {
    const { stdout } = await child(frameworks, "adapters/langgraph/index.ts", "import").catch(
      (error: { stdout: string; stderr: string }) => ({ stdout: `${error.stdout}${error.stderr}` })
    )
    expect(stdout).toContain('the driver "@langchain/langgraph-checkpoint" was loaded')
  }, 60_000)
})

describe("a driver that is not installed", () => {
  it("StoresSqlite fails at layer build with a StorageError naming better-sqlite3 and its install command", async () => {
    const { stdout } = await without("better-sqlite3", "layers/index.ts", "sqlite")
    expect(stdout.trim()).toBe(
      "StorageError: sqlite failed during load driver: the SQLite backend needs the package better-sqlite3, " +
        'which is not installed: run npm install better-sqlite3@"^12.6.2"'
    )
  }, 60_000)

  it("StoresPg fails at layer build with a StorageError naming postgres and its install command", async () => {
    const { stdout } = await without("postgres", "layers/index.ts", "postgres", pgUrl, "unused")
    expect(stdout.trim()).toBe(
      "StorageError: postgres failed during load driver: the PostgreSQL backend needs the package postgres, " +
        'which is not installed: run npm install postgres@"^3.4.9"'
    )
  }, 60_000)
})

const unreachable = await pgReady("light imports on PostgreSQL")
if (unreachable === undefined) {
  const tablePrefix = `t${process.pid}_light`
  afterAll(() => dropPrefix(tablePrefix, tablesOf(tablePrefix)))
  it("StoresPg from layers/index.ts does not load better-sqlite3", async () => {
    const { stdout } = await child("better-sqlite3", "layers/index.ts", "postgres", pgUrl, tablePrefix)
    expect(stdout.trim()).toBe("ok")
  }, 60_000)
}
