/** The README's guarantees table is the one `guaranteesMarkdown()` renders from the stores' guarantees data. */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { guaranteesMarkdown } from "../src/Backend.ts"

/** A Markdown table's rows as trimmed cells, without the separator row (formatting pads cells). */
const cells = (table: string): ReadonlyArray<ReadonlyArray<string>> =>
  table
    .split("\n")
    .filter((line) => line.startsWith("|") && !/^\|[\s|:-]+\|$/.test(line))
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim())
    )

describe("README", () => {
  it("prints the guarantees table generated from the stores' data", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const section = /<!-- guarantees:start -->([\s\S]*)<!-- guarantees:end -->/.exec(readme)?.[1]
    expect(section).toBeDefined()
    expect(cells(section!)).toEqual(cells(guaranteesMarkdown()))
  })
})
