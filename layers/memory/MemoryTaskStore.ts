/** `TaskStore` and `AgentStateStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import { compareKeys, MemoryDatabase } from "./MemoryDatabase.ts"
import {
  type AgentStateDriver,
  type AgentStateRow,
  AgentStateStore,
  makeAgentStateStore,
  makeTaskStore,
  type TaskDriver,
  type TaskRefusal,
  type TaskRow,
  TaskStore
} from "../../src/Task.ts"

const copy = (row: TaskRow): TaskRow => ({ ...row, dependsOn: [...row.dependsOn] })

/** A `TaskDriver` over the shared in-memory tables; each operation is one synchronous step. */
export const taskDriver = Effect.map(MemoryDatabase, (db): TaskDriver => {
  const tasks = db.table("tasks", (row: TaskRow) => [row.createdAt, row.id])

  /** Deletes a task, its subtasks (recursively), and its place in its dependents' `dependsOn`. */
  const remove = (id: string): void => {
    if (!tasks.delete(id)) return
    for (const task of Array.from(tasks.values())) {
      if (task.parentId === id) remove(task.id)
      else if (task.dependsOn.includes(id)) {
        tasks.set(task.id, { ...task, dependsOn: task.dependsOn.filter((dep) => dep !== id) })
      }
    }
  }

  const references = (row: TaskRow): TaskRefusal | undefined => {
    if (!row.dependsOn.every((dep) => tasks.has(dep))) return "unknown-dependency"
    if (row.parentId !== null && !tasks.has(row.parentId)) return "unknown-parent"
    return undefined
  }

  /** Whether `id` is reachable from `from` through dependencies. */
  const reaches = (from: ReadonlyArray<string>, id: string): boolean => {
    const seen = new Set<string>()
    const stack = [...from]
    while (stack.length > 0) {
      const next = stack.pop()!
      if (next === id) return true
      if (seen.has(next)) continue
      seen.add(next)
      stack.push(...(tasks.get(next)?.dependsOn ?? []))
    }
    return false
  }

  /** Whether `id` is `from` or one of its ancestors. */
  const descends = (from: string | null, id: string): boolean => {
    for (let at = from; at !== null; at = tasks.get(at)?.parentId ?? null) if (at === id) return true
    return false
  }

  const ready = (task: TaskRow): boolean => task.dependsOn.every((dep) => tasks.get(dep)?.status === "completed")

  return {
    write: (row, mode) =>
      Effect.sync(() => {
        const current = tasks.get(row.id)
        if (mode === "insert") {
          if (current !== undefined) return "exists"
          const refused = references(row)
          if (refused !== undefined) return refused
          tasks.set(row.id, copy(row))
          return copy(row)
        }
        if (current === undefined || current.version !== row.version - 1) return undefined
        if (mode === "relink") {
          const refused =
            references(row) ??
            (reaches(row.dependsOn, row.id) ? "dependency-cycle" : undefined) ??
            (descends(row.parentId, row.id) ? "parent-cycle" : undefined)
          if (refused !== undefined) return refused
        }
        const stored: TaskRow =
          mode === "relink"
            ? { ...row, createdAt: current.createdAt, dependsOn: [...row.dependsOn] }
            : { ...row, createdAt: current.createdAt, parentId: current.parentId, dependsOn: current.dependsOn }
        tasks.set(row.id, stored)
        return copy(stored)
      }),
    get: (id) =>
      Effect.sync(() => {
        const row = tasks.get(id)
        return row && copy(row)
      }),
    list: (filter, page) =>
      Effect.sync(() =>
        tasks
          .page(
            page,
            (row) =>
              (filter.conversationId === undefined || row.conversationId === filter.conversationId) &&
              (filter.planId === undefined || row.planId === filter.planId) &&
              (filter.status === undefined || row.status === filter.status) &&
              (filter.assignedTo === undefined || row.assignedTo === filter.assignedTo) &&
              (filter.parentId === undefined || row.parentId === filter.parentId)
          )
          .map(copy)
      ),
    claim: (agentId, conversationId, planId, now) =>
      Effect.sync(() => {
        let best: TaskRow | undefined
        for (const task of tasks.values()) {
          if (task.status !== "pending") continue
          if (conversationId !== undefined && task.conversationId !== conversationId) continue
          if (planId !== undefined && task.planId !== planId) continue
          if (
            best !== undefined &&
            (task.priority < best.priority ||
              (task.priority === best.priority &&
                compareKeys([task.createdAt, task.id], [best.createdAt, best.id]) > 0))
          ) {
            continue
          }
          if (ready(task)) best = task
        }
        if (best === undefined) return undefined
        const claimed: TaskRow = {
          ...best,
          status: "in_progress",
          assignedTo: agentId,
          startedAt: now,
          completedAt: null,
          iterations: best.iterations + 1,
          updatedAt: Math.max(now, best.updatedAt),
          version: best.version + 1
        }
        tasks.set(claimed.id, claimed)
        return copy(claimed)
      }),
    release: (before, now) =>
      Effect.sync(() => {
        const released: Array<TaskRow> = []
        for (const task of Array.from(tasks.values())) {
          if (task.status !== "in_progress" || task.updatedAt >= before) continue
          const row: TaskRow = {
            ...task,
            status: "pending",
            assignedTo: null,
            startedAt: null,
            updatedAt: Math.max(now, task.updatedAt),
            version: task.version + 1
          }
          tasks.set(row.id, row)
          released.push(copy(row))
        }
        return released.sort((a, b) => compareKeys([a.createdAt, a.id], [b.createdAt, b.id]))
      }),
    delete: (by, key) =>
      Effect.sync(() => {
        if (by === "id") return remove(key)
        for (const task of Array.from(tasks.values())) {
          if ((by === "conversation" ? task.conversationId : task.planId) === key) remove(task.id)
        }
      })
  }
})

/** An `AgentStateDriver` over the shared in-memory tables. */
export const agentStateDriver = Effect.map(MemoryDatabase, (db): AgentStateDriver => {
  const states = db.table("agent_states", (row: AgentStateRow) => [row.createdAt, row.agentId])
  return {
    write: (row) =>
      Effect.sync(() => {
        const current = states.get(row.agentId)
        if (row.version === 1 ? current !== undefined : current?.version !== row.version - 1) return undefined
        const stored = { ...row, createdAt: current?.createdAt ?? row.createdAt }
        states.set(row.agentId, stored)
        return { ...stored }
      }),
    get: (agentId) =>
      Effect.sync(() => {
        const row = states.get(agentId)
        return row && { ...row }
      }),
    list: (filter, page) =>
      Effect.sync(() =>
        states
          .page(
            page,
            (row) =>
              (filter.taskId === undefined || row.taskId === filter.taskId) &&
              (filter.conversationId === undefined || row.conversationId === filter.conversationId) &&
              (filter.status === undefined || row.status === filter.status)
          )
          .map((row) => ({ ...row }))
      ),
    delete: (agentId) => Effect.sync(() => void states.delete(agentId))
  }
})

/** `TaskStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<TaskStore, never, MemoryDatabase> = Layer.effect(
  TaskStore,
  Effect.map(taskDriver, makeTaskStore)
)

/** `TaskStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<TaskStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))

/** `AgentStateStore` over a `MemoryDatabase`. */
export const agentStateLayerWithDatabase: Layer.Layer<AgentStateStore, never, MemoryDatabase> = Layer.effect(
  AgentStateStore,
  Effect.map(agentStateDriver, makeAgentStateStore)
)

/** `AgentStateStore` in memory, with its own `MemoryDatabase`. */
export const agentStateLayer: Layer.Layer<AgentStateStore> = agentStateLayerWithDatabase.pipe(
  Layer.provide(MemoryDatabase.layer)
)
