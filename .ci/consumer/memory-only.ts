/**
 * An app installed without the drivers (`npm install --omit=optional`): the memory bundle runs, and asking for
 * SQLite fails at layer build with the documented `StorageError` naming better-sqlite3 and its install command.
 */
import { Effect } from "effect"
import { SessionStore } from "effect-agent-stores"
import { StoresMemory, StoresSqlite } from "effect-agent-stores/layers"

const program = Effect.flatMap(SessionStore, (sessions) => sessions.create({ agentId: "memory-only" }))

const session = await Effect.runPromise(program.pipe(Effect.provide(StoresMemory)))
console.log(`memory-only: created session ${session.agentId} in memory`)

const refused = await Effect.runPromise(
  program.pipe(Effect.provide(StoresSqlite({ filename: ":memory:" })), Effect.flip, Effect.orDie)
)
const expected = "the SQLite backend needs the package better-sqlite3, which is not installed: run npm install"
if (refused._tag !== "StorageError" || !refused.message.includes(expected)) {
  throw new Error(`StoresSqlite without better-sqlite3 gave: ${refused._tag}: ${refused.message}`)
}
console.log(`memory-only: StoresSqlite fails as documented: ${refused.message}`)
