/**
 * The bench modules `npm run bench` runs after its SQLite table, each in a fresh node process of its own
 * (`bench/module.ts`), so no module's figures depend on what ran before it in the same process (its heap, or
 * call sites the earlier modules made polymorphic). Each module times the library and the raw driver side by side
 * in that process.
 */
import { printAgentWork, runAgentWork } from "./agentWork.ts"
import { printBroker, runBroker } from "./broker.ts"
import { printCheckpoints, runCheckpoints } from "./checkpoints.ts"
import { printEvents, runEvents } from "./events.ts"
import { printImages, runImages } from "./images.ts"
import { printLedger, runLedger } from "./ledger.ts"
import { printLocks, runLocks } from "./locks.ts"
import { printPg, runPg } from "./pg.ts"
import { printTiers, runTiers } from "./tiers.ts"
import { printVectors, runVectors } from "./vectors.ts"

/** A module: runs its rows `reps` times per side and prints them; returns its rows (for `bench/results.json`). */
type Module = (reps: number) => Promise<ReadonlyArray<object>>

/** The modules by name, in the order `npm run bench` runs them. */
export const modules: Readonly<Record<string, Module>> = {
  pg: async (reps) => {
    const rows = (await runPg({ reps })).map((row) => ({ ...row, backend: "postgres" as const }))
    printPg(rows, reps)
    return rows
  },
  agentWork: async (reps) => {
    const rows = await runAgentWork({ reps })
    printAgentWork(rows, reps)
    return rows
  },
  events: async (reps) => {
    const rows = await runEvents({ reps })
    printEvents(rows, reps)
    return rows
  },
  checkpoints: async (reps) => {
    const rows = await runCheckpoints({ reps })
    printCheckpoints(rows, reps)
    return rows
  },
  ledger: async (reps) => {
    const rows = await runLedger({ reps })
    printLedger(rows, reps)
    return rows
  },
  locks: async (reps) => {
    const rows = await runLocks({ reps })
    printLocks(rows, reps)
    return rows
  },
  images: async (reps) => {
    const rows = await runImages({ reps })
    printImages(rows)
    return rows
  },
  broker: async (reps) => {
    const rows = await runBroker({ reps })
    printBroker(rows)
    return rows
  },
  vectors: async (reps) => {
    const rows = await runVectors({ reps })
    printVectors(rows)
    return rows
  },
  tiers: async (reps) => {
    const rows = await runTiers({ reps })
    printTiers(rows)
    return rows
  }
}
