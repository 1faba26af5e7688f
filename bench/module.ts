/**
 * One bench module in this process: `node --expose-gc --import tsx bench/module.ts <name> <reps> <rows file>` runs
 * module `name` of `bench/modules.ts`, prints its table and writes its rows to `rows file` as JSON (or, when it
 * could not run, e.g. no PostgreSQL server, `{ "skipped": reason }`).
 */
import { writeFileSync } from "node:fs"
import { modules } from "./modules.ts"

const [name = "", reps = "3", rowsFile = ""] = process.argv.slice(2)
const module = modules[name]
if (module === undefined || rowsFile === "") {
  console.error(`usage: bench/module.ts <${Object.keys(modules).join("|")}> <reps> <rows file>`)
  process.exit(2)
}
try {
  writeFileSync(rowsFile, JSON.stringify(await module(Math.max(1, Number(reps)))))
} catch (error) {
  writeFileSync(rowsFile, JSON.stringify({ skipped: String(error) }))
}
