/**
 * The bench modules `npm run bench` runs after its SQLite table, each in a fresh node process of its own
 * (`bench/module.ts`), so no module's figures depend on what ran before it in the same process (its heap, or
 * call sites the earlier modules made polymorphic). Each module times the library and the raw driver side by side
 * in that process.
 */
import { printAgentWork, runAgentWork } from "./agentWork.ts"
import { printBroker, runBroker } from "./broker.ts"
import { printCheckpoints, runCheckpoints } from "./checkpoints.ts"
import { printEventScale, runEventScale } from "./eventScale.ts"
import { printEvents, runEvents } from "./events.ts"
import { printImages, runImages } from "./images.ts"
import { printLedger, runLedger } from "./ledger.ts"
import { printLocks, runLocks } from "./locks.ts"
import { printPg, runPg } from "./pg.ts"
import { printTiers, runTiers } from "./tiers.ts"
import { printVectorScale, runVectorScale } from "./vectorScale.ts"
import { printVectors, runVectors } from "./vectors.ts"

/** A module: runs its rows `reps` times per side and prints them; returns its rows (for `bench/results.json`). */
type Module = (reps: number) => Promise<ReadonlyArray<object>>

/** The module that runs `run` and prints its rows with `print`. */
const module =
  <Row extends object>(
    run: (options: { readonly reps: number }) => Promise<ReadonlyArray<Row>>,
    print: (rows: ReadonlyArray<Row>, reps: number) => void
  ): Module =>
  async (reps) => {
    const rows = await run({ reps })
    print(rows, reps)
    return rows
  }

/** The modules by name, in the order `npm run bench` runs them (those of `namedOnly` only when named). */
export const modules: Readonly<Record<string, Module>> = {
  pg: module(runPg, printPg),
  agentWork: module(runAgentWork, printAgentWork),
  events: module(runEvents, printEvents),
  checkpoints: module(runCheckpoints, printCheckpoints),
  ledger: module(runLedger, printLedger),
  locks: module(runLocks, printLocks),
  images: module(runImages, printImages),
  broker: module(runBroker, printBroker),
  vectors: module(runVectors, printVectors),
  tiers: module(runTiers, printTiers),
  eventScale: module(runEventScale, printEventScale),
  vectorScale: module(runVectorScale, printVectorScale)
}

/** The modules too long for the default run: each runs only when named (`npm run bench -- <name>`, `BENCH_STORES`). */
export const namedOnly: ReadonlySet<string> = new Set(["eventScale", "vectorScale"])
