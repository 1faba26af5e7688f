import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { StoresSqlite } from "../layers/Stores.ts"
import { suites } from "./suites/index.ts"

const file = join(mkdtempSync(join(tmpdir(), "agent-stores-")), "test.db")

suites("sqlite :memory:", StoresSqlite({ filename: ":memory:" }))
suites("sqlite file", StoresSqlite({ filename: file }))
