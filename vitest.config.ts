import type { Reporter, TestModule } from "vitest/node"
import { defineConfig } from "vitest/config"

/** Ends the output with one plain "Tests: N passed, N failed, N skipped" line, for CI logs. */
class SummaryLine implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>) {
    const counts = { passed: 0, failed: 0, skipped: 0 }
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === "passed") counts.passed++
        else if (state === "failed") counts.failed++
        else counts.skipped++
      }
    }
    const line = `Tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`
    process.once("exit", () => process.stdout.write(`\n${line}\n`))
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default", new SummaryLine()]
  }
})
