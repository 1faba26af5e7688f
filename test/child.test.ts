/** `Child`, the multi-process tests' child: a stalled or failed child is reported with its last output and timing. */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Child } from "./child.ts"

const script = (source: string) => {
  const file = join(mkdtempSync(join(tmpdir(), "agent-child-")), "child.mjs")
  writeFileSync(file, source)
  return file
}

describe("Child", () => {
  it("a child that stalls is killed and reported with its last output lines and the elapsed time", async () => {
    const stalls = script(`for (let i = 1; i <= 30; i++) console.log("step " + i)
console.error("waiting on a lock")
setInterval(() => {}, 1000)`)
    const child = new Child("stalling child", stalls, [])
    await child.waitFor((line) => line === "step 30", 60_000, `"step 30"`)
    while (!child.stderr.includes("waiting on a lock")) await new Promise((resolve) => setTimeout(resolve, 10))
    const error = await child.done(300).then(
      () => undefined,
      (error: Error) => error.message
    )
    expect(error).toMatch(/^stalling child \(pid \d+\) did not exit within 300 ms after \d+ ms, still running; /)
    expect(error).toContain("last 20 of 31 output lines:")
    expect(error).toContain("step 30\n  [stderr] waiting on a lock")
    expect(error).not.toContain("step 11\n")
    expect((await child.exited).signal).toBe("SIGKILL")
  }, 120_000)

  it("a child that fails or ends early says so, with its exit code and output", async () => {
    const fails = script(`console.log("started")
console.error("Error: no such table")
process.exit(3)`)
    const failed = await new Child("failing child", fails, []).done(60_000).then(
      () => undefined,
      (error: Error) => error.message
    )
    expect(failed).toMatch(/^failing child \(pid \d+\) failed after \d+ ms, exited with code 3; /)
    expect(failed).toContain("started\n  [stderr] Error: no such table")
    const early = await new Child("early child", fails, [])
      .waitFor((line) => line === "ready", 60_000, `"ready"`)
      .then(
        () => undefined,
        (error: Error) => error.message
      )
    expect(early).toMatch(/^early child \(pid \d+\) ended before printing "ready" after \d+ ms, exited with code 3/)
    const fine = new Child("fine child", script(`console.log("one")\nprocess.stdout.write("two")`), [])
    expect(await fine.done(60_000)).toBe("one\ntwo")
  }, 120_000)
})
