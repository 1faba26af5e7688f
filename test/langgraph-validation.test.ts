/**
 * `LangGraphSaver` passes LangGraph's checkpointer conformance kit (`@langchain/langgraph-checkpoint-validation`) on
 * every backend. The kit brings its own vitest 4 and registers its specs as vitest globals, so it runs in a child
 * process of its own (`test/langgraph/validation.spec.ts` under `validation.config.ts`), one per backend; its summary
 * line is printed here and every one of its tests must pass.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { promisify } from "node:util"
import { type BackendName, backendNames } from "./langgraph/backends.ts"
import { pgReady } from "./pg.ts"

const run = promisify(execFile)
const require = createRequire(import.meta.url)
/** The kit's own vitest (4.x), not the project's. */
const kitVitest = join(
  dirname(require.resolve("@langchain/langgraph-checkpoint-validation/package.json")),
  "node_modules/vitest/vitest.mjs"
)

/** The environment without the parent vitest's variables (a worker's would steer the child's runner). */
const childEnv = (backend: BackendName) => {
  const env: Record<string, string | undefined> = { ...process.env, LANGGRAPH_BACKEND: backend, NO_COLOR: "1" }
  for (const key of Object.keys(env))
    if (key.startsWith("VITEST") || key === "TEST" || key === "NODE_ENV") delete env[key]
  env["FORCE_COLOR"] = "0"
  return env
}

/** The kit's summary: `Tests  718 passed (718)`, with failures or skips when there are any. */
const summaryOf = (output: string) => /^\s*Tests\s+(.*\(\d+\))\s*$/m.exec(output)?.[1]

const pgUnusable = await pgReady("LangGraph validation kit on PostgreSQL")

describe("LangGraph's checkpointer validation kit", () => {
  for (const backend of backendNames) {
    const test = backend === "postgres" && pgUnusable !== undefined ? it.skip : it
    test(`LangGraphSaver passes every test of the kit on ${backend}`, async () => {
      const { stdout, stderr } = await run(
        process.execPath,
        [kitVitest, "run", "--config", "test/langgraph/validation.config.ts"],
        { env: childEnv(backend), timeout: 240_000, maxBuffer: 64 * 1024 * 1024 }
      ).catch((error: { stdout?: string; stderr?: string }) => {
        throw new Error(`the kit failed on ${backend}:\n${error.stdout ?? ""}\n${error.stderr ?? ""}`)
      })
      const summary = summaryOf(stdout)
      console.log(`LangGraph validation kit (${backend}): Tests ${summary ?? "(no summary)"}`)
      expect(summary, stderr).toBeDefined()
      const [, passed, total] = /^(\d+) passed \((\d+)\)$/.exec(summary!) ?? []
      expect(summary, "every test of the kit passes, none skipped").toMatch(/^\d+ passed \(\d+\)$/)
      expect(Number(passed)).toBe(Number(total))
      expect(Number(total)).toBeGreaterThan(700)
    }, 300_000)
  }
})
