/**
 * A small agent loop with no LLM: a plan of steps becomes tasks with dependencies, two worker fibers claim and
 * complete them, each worker saves its state and memory records, and a stored template renders the report.
 * Run with `npm run example:planner` (an in-memory SQLite database; set AGENT_STORES_DB to use a file).
 */
import { Console, Effect, Option } from "effect"
import { StoresSqlite } from "../layers/Stores.ts"
import {
  AgentMemoryStore,
  AgentStateStore,
  type PlanStepInput,
  PlanStore,
  type Task,
  TaskStore,
  TemplateStore
} from "../src/index.ts"

const filename = process.env.AGENT_STORES_DB ?? ":memory:"
const conversationId = "trip-to-lisbon"

/** The plan: each step names the steps it waits for. */
const steps: ReadonlyArray<PlanStepInput & { readonly id: string; readonly after: ReadonlyArray<string> }> = [
  { id: "requirements", description: "Collect the traveller's dates and budget", after: [] },
  { id: "flights", description: "Search flights to Lisbon", after: ["requirements"] },
  { id: "hotels", description: "Search quiet hotels in Alfama", after: ["requirements"] },
  { id: "compare", description: "Compare the options within budget", after: ["flights", "hotels"] },
  { id: "summary", description: "Write the itinerary", after: ["compare"] }
]

/** What a worker "does" for a step: a deterministic result in place of a model call. */
const perform = (task: Task): Effect.Effect<string> =>
  Effect.sleep("20 millis").pipe(Effect.as(`done: ${task.description.toLowerCase()}`))

const program = Effect.gen(function* () {
  const plans = yield* PlanStore
  const tasks = yield* TaskStore
  const states = yield* AgentStateStore
  const memory = yield* AgentMemoryStore
  const templates = yield* TemplateStore

  yield* templates.save({
    name: "plan-report",
    category: "reports",
    content: 'Plan "{{ title }}" is {{status}}: {{done}} of {{total}} steps completed.\n{{lines}}'
  })

  const plan = yield* plans.save({
    conversationId,
    title: "Weekend in Lisbon",
    status: "active",
    steps: steps.map(({ description, id }) => ({ id, description }))
  })
  yield* Console.log(`plan ${plan.id}: ${plan.steps.length} steps`)

  // Steps are listed after the steps they wait for, so each dependency's task exists when it is named.
  const taskOfStep = new Map<string, string>()
  for (const step of steps) {
    const task = yield* tasks.save({
      conversationId,
      planId: plan.id,
      description: step.description,
      priority: step.id === "hotels" ? "high" : "normal",
      dependsOn: step.after.map((id) => taskOfStep.get(id)!),
      metadata: { stepId: step.id }
    })
    taskOfStep.set(step.id, task.id)
  }

  /** Claims ready tasks until none is pending; waits briefly while the other worker holds what comes next. */
  const worker = (agentId: string) =>
    Effect.gen(function* () {
      let iteration = 0
      while (true) {
        const next = yield* tasks.claimNext({ agentId, planId: plan.id })
        if (Option.isNone(next)) {
          const pending = yield* tasks.list({ planId: plan.id, status: "pending", limit: 1 })
          if (pending.items.length === 0) break
          yield* Effect.sleep("5 millis")
          continue
        }
        const task = next.value
        const stepId = String(task.metadata.stepId)
        iteration++
        yield* Console.log(`[${agentId}] claimed ${stepId}`)
        yield* states.save({ agentId, conversationId, taskId: task.id, status: "working", iteration })
        yield* plans.updateStep(plan.id, stepId, { status: "in_progress" })

        const result = yield* perform(task)

        yield* tasks.updateStatus(task.id, "completed", { summary: result })
        yield* plans.updateStep(plan.id, stepId, { status: "completed", result })
        yield* memory.put({ agentId, key: `step:${stepId}`, kind: "episodic", value: { result }, ttl: "1 hour" })
      }
      yield* states.save({ agentId, conversationId, status: "idle", iteration, context: { finished: iteration } })
    })

  yield* Effect.all([worker("worker-a"), worker("worker-b")], { concurrency: "unbounded", discard: true })

  const finished = yield* plans.get(plan.id)
  const done = finished.steps.filter((step) => step.status === "completed").length
  const closed = yield* plans.save(
    {
      id: finished.id,
      conversationId,
      title: finished.title,
      steps: finished.steps,
      status: done === finished.steps.length ? "completed" : "abandoned"
    },
    { expectedVersion: finished.version }
  )

  for (const agentId of ["worker-a", "worker-b"]) {
    const state = yield* states.get(agentId)
    const records = yield* memory.list(agentId, { prefix: "step:" })
    yield* Console.log(
      `${agentId}: ${state.status} after ${state.iteration} task(s), remembers ${records.items.map((r) => r.key).join(", ")}`
    )
  }

  const report = yield* templates.render("plan-report", {
    title: closed.title,
    status: closed.status,
    done,
    total: closed.steps.length,
    lines: closed.steps.map((step) => `- ${step.id}: ${step.result ?? step.status}`).join("\n")
  })
  yield* Console.log(`\n${report}`)
})

Effect.runPromise(program.pipe(Effect.provide(StoresSqlite({ filename })))).catch((error) => {
  console.error(error)
  process.exit(1)
})
