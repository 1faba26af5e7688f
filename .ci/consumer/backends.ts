/** The backends a consumer runs on: memory and SQLite always, PostgreSQL when `DATABASE_URL` is set. */
import type { Layer } from "effect"
import type { Stores } from "effect-agent-stores/layers"
import { StoresMemory, StoresPg, StoresSqlite } from "effect-agent-stores/layers"

const url = process.env.DATABASE_URL
const tablePrefix = process.env.CONSUMER_PREFIX ?? "consumer"

export const backends: ReadonlyArray<readonly [string, Layer.Layer<Stores, unknown>]> = [
  ["memory", StoresMemory],
  ["sqlite", StoresSqlite({ filename: ":memory:" })],
  ...(url === undefined ? [] : [["postgres", StoresPg({ url, tablePrefix, maxConnections: 2 })] as const])
]
