/**
 * The PostgreSQL server lost mid-run, on a throwaway cluster the test starts itself (`test/cluster.ts`, never the
 * shared server). A child process (`test/fixtures/pg-fault-child.ts`) runs `StoresPg` with default options: mixed
 * operations over every store from several fibers, and subscribers to every stream, to two streams and to a broker
 * session. Meanwhile the server is stopped for 10 s, killed with SIGKILL, frozen with SIGSTOP for longer than the
 * default `operationTimeout`, restarted, has its connections terminated, and refuses new ones (`AGENT_STORES_FAULTS`,
 * comma-separated names, runs some only: stop, kill, freeze, restart, terminate, refuse). Then: the child did
 * not die; every operation ended, none later than the bound; no acknowledged write is missing and none is stored
 * twice; each subscriber delivered every stored event or message exactly once, in order, across the outages.
 */
import { afterAll, describe, expect, it } from "vitest"
import { defaultOperationTimeout } from "../layers/sql/PgDatabase.ts"
import { Duration } from "effect"
import { Child } from "./child.ts"
import { Cluster, findBinaries } from "./cluster.ts"
import type { Report } from "./fixtures/pg-fault-child.ts"

const bin = findBinaries()
const role = "agent"
/** How far past the bound an operation may end (timers, a busy machine). */
const slack = 5_000
const bound = Duration.toMillis(defaultOperationTimeout)
/** How long the server stays frozen: past the bound, so operations must end while it is still frozen. */
const freeze = bound + 2 * slack

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

if (bin === undefined) {
  if (process.env.CI)
    throw new Error("the PostgreSQL fault test needs the PostgreSQL binaries (initdb, pg_ctl) under CI")
  console.warn("\n*** PostgreSQL fault test SKIPPED: no PostgreSQL binaries (initdb, pg_ctl) found ***\n")
  describe.skip("PostgreSQL server lost mid-run", () => it("needs the PostgreSQL binaries", () => {}))
} else {
  describe("PostgreSQL server lost mid-run", () => {
    let cluster: Cluster | undefined
    let child: Child | undefined
    afterAll(async () => {
      await child?.kill()
      cluster?.destroy()
    })

    it("stopped, killed, frozen, restarted, reset and refusing: no death, no hung operation, no lost write, no gap", async () => {
      const server = (cluster = await Cluster.create(bin, { fsync: "off", max_connections: 50 }))
      const admin = server.admin()
      await admin.unsafe(`CREATE ROLE ${role} LOGIN`)
      await admin.unsafe(`CREATE DATABASE ${role} OWNER ${role}`)
      await admin.end({ timeout: 1 })
      const workload = (child = new Child("fault workload", "test/fixtures/pg-fault-child.ts", [
        `postgres://${role}@127.0.0.1:${server.port}/${role}`,
        "fault",
        "6"
      ]))
      await workload.waitFor((line) => line === "ready", 60_000, "ready")
      const timeline: Array<string> = []
      const started = performance.now()
      const mark = (what: string) => timeline.push(`${((performance.now() - started) / 1000).toFixed(1)} s ${what}`)
      /** Fails at once when the child died meanwhile, with its last output. */
      const alive = () => {
        if (!workload.running) throw new Error(workload.report("died"))
      }

      /** The faults, in order. */
      const faults: ReadonlyArray<readonly [string, () => Promise<void>]> = [
        [
          "stop",
          async () => {
            mark("stop -m fast")
            server.stop("fast")
            await sleep(10_000)
            alive()
            server.start()
            mark("started")
          }
        ],
        [
          "kill",
          async () => {
            mark("SIGKILL the postmaster")
            server.kill()
            for (let attempt = 1; ; attempt++) {
              try {
                // Its backends exit when they notice the postmaster is gone; until then a start is refused.
                server.start()
                break
              } catch (error) {
                if (attempt === 20) throw error
                await sleep(500)
              }
            }
            mark("started (crash recovery)")
          }
        ],
        [
          "freeze",
          async () => {
            mark(`SIGSTOP every server process for ${freeze / 1000} s`)
            server.freeze()
            await sleep(freeze)
            alive()
            server.thaw()
            mark("SIGCONT")
          }
        ],
        [
          "restart",
          async () => {
            mark("restart -m fast")
            server.restart()
          }
        ],
        ["terminate", async () => void mark(`pg_terminate_backend: ${await server.terminate(role)} connections`)],
        [
          "refuse",
          async () => {
            const accept = await server.refuse(role)
            mark("new connections refused (FATAL 53300)")
            await sleep(4_000)
            await accept()
            mark("accepted again")
          }
        ]
      ]
      const chosen = process.env["AGENT_STORES_FAULTS"]?.split(",")
      await sleep(3_000)
      for (const [name, fault] of faults) {
        if (chosen !== undefined && !chosen.includes(name)) continue
        alive()
        await fault()
        // Time to serve again before the next fault.
        await sleep(4_000)
      }

      alive()
      mark("stop the workload")
      workload.process.stdin.write("stop\n")
      const output = await workload.done(150_000)
      const report = JSON.parse(
        output
          .split("\n")
          .find((line) => line.startsWith("report "))!
          .slice(7)
      ) as Report
      console.log(
        [
          "PostgreSQL fault test:",
          ...timeline,
          `operations: ${report.ops} ${JSON.stringify(report.outcomes)}`,
          `failed: ${JSON.stringify(report.failures)}`,
          `slowest: ${report.slowest.map((op) => `${op.name} ${op.ms} ms (${op.outcome}${op.detail === undefined ? "" : `: ${op.detail.slice(0, 100)}`})`).join(", ")}`,
          `acknowledged writes: ${report.acknowledged}, lost: ${report.lost.length}; unknown outcome: ` +
            `${report.unknown} (stored after all: ${report.unknownStored}); stored twice: ${report.duplicated.length}`,
          ...Object.entries(report.subscribers).map(([name, s]) => `subscriber ${name}: ${JSON.stringify(s)}`)
        ].join("\n  ")
      )

      expect(report.defects).toEqual([])
      expect(report.unsettled).toEqual([])
      expect(report.slowest[0]!.ms).toBeLessThanOrEqual(bound + slack)
      expect(report.lost).toEqual([])
      expect(report.duplicated).toEqual([])
      // The faults were seen (operations failed with StorageError) and the layer served again after each.
      expect(report.outcomes["StorageError"]).toBeGreaterThan(0)
      expect(report.outcomes["ok"]).toBeGreaterThan(report.ops / 2)
      for (const [name, subscriber] of Object.entries(report.subscribers)) {
        expect({ name, ...subscriber }).toEqual({
          name,
          delivered: subscriber.stored,
          stored: subscriber.stored,
          duplicates: 0,
          missing: 0,
          misordered: 0,
          extra: 0
        })
        expect(subscriber.stored).toBeGreaterThan(0)
      }
    }, 300_000)
  })
}
