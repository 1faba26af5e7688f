/**
 * `TaskStore`: an agent's units of work (status, priority, dependencies,
 * parent task) with atomic claiming, and `AgentStateStore`: each agent's
 * current working state (status, iteration, JSON context).
 */
import { Clock, Context, Duration, Effect, Either, Option, Schema } from "effect"
import { Conflict, DecodeError, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { Json, JsonObject, parseJson, Text } from "./Json.ts"
import { byCreatedAt, type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import {
  byId,
  checkId,
  decodeInput,
  decodeOptions,
  decoder,
  optionsDecoder,
  UpdateOptions,
  updateVersioned
} from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

/** A task id: a non-empty Text (see `Json.ts`) up to 255 characters; UUIDv7 when generated. */
export const TaskId = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("TaskId"))
/** A task id. */
export type TaskId = typeof TaskId.Type

/** A key naming another record (conversation, plan, agent): a non-empty Text up to 255 characters. */
const Key = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** Lifecycle of a task. `completed` and `cancelled` are final. */
export const TaskStatus = Schema.Literal("pending", "in_progress", "completed", "failed", "blocked", "cancelled")
/** Lifecycle of a task. */
export type TaskStatus = typeof TaskStatus.Type

/** Priority of a task; `claimNext` takes the highest first. */
export const TaskPriority = Schema.Literal("low", "normal", "high", "urgent")
/** Priority of a task. */
export type TaskPriority = typeof TaskPriority.Type

/** The statuses a task may move to from each status (`updateStatus`, `save`); staying in a status is allowed. */
export const taskTransitions: Readonly<Record<TaskStatus, ReadonlyArray<TaskStatus>>> = {
  pending: ["in_progress", "completed", "failed", "blocked", "cancelled"],
  in_progress: ["pending", "completed", "failed", "blocked", "cancelled"],
  blocked: ["pending", "in_progress", "failed", "cancelled"],
  failed: ["pending", "cancelled"],
  completed: [],
  cancelled: []
}

/** Priorities as stored (a rank: higher is claimed first). */
export const taskPriorityRank: Readonly<Record<TaskPriority, number>> = { low: 0, normal: 1, high: 2, urgent: 3 }
const priorities: ReadonlyArray<TaskPriority> = ["low", "normal", "high", "urgent"]

/**
 * A task. `description`, `summary` and `metadata` are content (stored verbatim, any string);
 * ids and keys follow the Text rule. Children are the tasks whose `parentId` is this id.
 */
export const Task = Schema.Struct({
  id: TaskId,
  conversationId: Key,
  planId: Schema.optional(Key),
  description: Schema.String,
  status: TaskStatus,
  parentId: Schema.optional(TaskId),
  dependsOn: Schema.Array(TaskId),
  priority: TaskPriority,
  assignedTo: Schema.optional(Key),
  iterations: Schema.NonNegativeInt,
  summary: Schema.optional(Schema.String),
  metadata: JsonObject,
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  startedAt: Schema.optional(Schema.DateTimeUtcFromNumber),
  completedAt: Schema.optional(Schema.DateTimeUtcFromNumber),
  version: Schema.Int
})
/** A task. */
export type Task = typeof Task.Type

/** The largest number of dependencies one task may have. */
export const maxTaskDependencies = 1000

/**
 * Input of `TaskStore.save`: the whole task as it should be. Absent optional fields are
 * absent (cleared) after the save, except `status` and `iterations`, which keep their
 * current values (`pending` and 0 for a new task).
 */
export const TaskInput = Schema.Struct({
  id: Schema.optional(TaskId),
  conversationId: Key,
  planId: Schema.optional(Key),
  description: Schema.String,
  status: Schema.optional(TaskStatus),
  parentId: Schema.optional(TaskId),
  dependsOn: Schema.optional(Schema.Array(TaskId).pipe(Schema.maxItems(maxTaskDependencies))),
  priority: Schema.optional(TaskPriority),
  assignedTo: Schema.optional(Key),
  iterations: Schema.optional(Schema.NonNegativeInt),
  summary: Schema.optional(Schema.String),
  metadata: Schema.optional(JsonObject)
})
/** Input of `TaskStore.save`. */
export type TaskInput = typeof TaskInput.Encoded

/** Options of `TaskStore.list`: filters plus paging (oldest first). */
export const TaskListOptions = Schema.Struct({
  ...PageOptions.fields,
  conversationId: Schema.optional(Key),
  planId: Schema.optional(Key),
  status: Schema.optional(TaskStatus),
  assignedTo: Schema.optional(Key),
  parentId: Schema.optional(TaskId)
})
/** Options of `TaskStore.list`. */
export type TaskListOptions = typeof TaskListOptions.Encoded

/** Options of `TaskStore.updateStatus`. */
export const UpdateStatusOptions = Schema.Struct({
  ...UpdateOptions.fields,
  summary: Schema.optional(Schema.String)
})
/** Options of `TaskStore.updateStatus`. */
export type UpdateStatusOptions = typeof UpdateStatusOptions.Encoded

/** Input of `TaskStore.claimNext`. */
export const ClaimNextOptions = Schema.Struct({
  agentId: Key,
  conversationId: Schema.optional(Key),
  planId: Schema.optional(Key)
})
/** Input of `TaskStore.claimNext`. */
export type ClaimNextOptions = typeof ClaimNextOptions.Encoded

/** Input of `TaskStore.releaseStale`: in-progress tasks not written for `olderThan` (milliseconds or a `Duration`). */
export const ReleaseStaleOptions = Schema.Struct({
  olderThan: Schema.Union(Schema.NonNegativeInt, Schema.DurationFromSelf)
})
/** Input of `TaskStore.releaseStale`. */
export type ReleaseStaleOptions = typeof ReleaseStaleOptions.Encoded

/** The task store. */
export class TaskStore extends Context.Tag("effect-agent-stores/TaskStore")<
  TaskStore,
  {
    /**
     * Creates the task (an unknown or absent id), or replaces the stored one with the same id: version + 1,
     * `createdAt` kept; `Conflict` if `expectedVersion` is given and differs (an absent task has version 0), and
     * without it no concurrent save is lost. A dependency or parent that does not exist, a dependency cycle, a
     * parent cycle or an illegal status change is `InvalidInput`, nothing written.
     */
    readonly save: (
      input: TaskInput,
      options?: UpdateOptions
    ) => Effect.Effect<Task, InvalidInput | Conflict | StorageError>
    /** The task with `id`, or `NotFound`. A non-string id is `InvalidInput`. */
    readonly get: (id: string) => Effect.Effect<Task, NotFound | InvalidInput | StorageError>
    /** The task with `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Task>, InvalidInput | StorageError>
    /** Tasks oldest first, filtered by conversation, plan, status, assignee and parent. */
    readonly list: (options?: TaskListOptions) => Effect.Effect<Page<Task>, InvalidInput | StorageError>
    /**
     * Moves the task to `status`: `in_progress` sets `startedAt` (and counts an iteration), `completed`, `failed`
     * and `cancelled` set `completedAt`, `pending` clears both. An illegal transition is `InvalidInput` naming both
     * states; a stale `expectedVersion` is `Conflict`; without it no concurrent update is lost.
     */
    readonly updateStatus: (
      id: string,
      status: TaskStatus,
      options?: UpdateStatusOptions
    ) => Effect.Effect<Task, NotFound | Conflict | InvalidInput | StorageError>
    /**
     * Atomically moves the highest-priority, oldest `pending` task whose dependencies are all `completed` to
     * `in_progress`, assigned to `agentId`; `None` when no task is ready. Concurrent claimers never get the same task.
     */
    readonly claimNext: (options: ClaimNextOptions) => Effect.Effect<Option.Option<Task>, InvalidInput | StorageError>
    /** Returns in-progress tasks not written for `olderThan` to `pending`, unassigned; the tasks released. */
    readonly releaseStale: (
      options: ReleaseStaleOptions
    ) => Effect.Effect<ReadonlyArray<Task>, InvalidInput | StorageError>
    /**
     * Deletes a task and its subtasks (recursively); dependents lose it from `dependsOn` (it no longer blocks them).
     * Unknown ids are a no-op.
     */
    readonly delete: (id: string) => Effect.Effect<void, InvalidInput | StorageError>
    /** Deletes every task of a conversation (as `delete` does each). */
    readonly deleteByConversation: (conversationId: string) => Effect.Effect<void, InvalidInput | StorageError>
    /** Deletes every task of a plan (as `delete` does each). */
    readonly deleteByPlan: (planId: string) => Effect.Effect<void, InvalidInput | StorageError>
  }
>() {}

/** A task as a driver stores it: priority as its rank, times in epoch milliseconds, `metadata` as JSON text. */
export interface TaskRow {
  readonly id: string
  readonly conversationId: string
  readonly planId: string | null
  readonly description: string
  readonly status: string
  readonly parentId: string | null
  readonly dependsOn: ReadonlyArray<string>
  readonly priority: number
  readonly assignedTo: string | null
  readonly iterations: number
  readonly summary: string | null
  readonly metadata: unknown
  readonly createdAt: number
  readonly updatedAt: number
  readonly startedAt: number | null
  readonly completedAt: number | null
  readonly version: number
}

/** The filters of `list`, as a driver receives them. */
export interface TaskFilter {
  readonly conversationId?: string | undefined
  readonly planId?: string | undefined
  readonly status?: string | undefined
  readonly assignedTo?: string | undefined
  readonly parentId?: string | undefined
}

/** Why a driver refused to write a task's references. */
export type TaskRefusal = "unknown-dependency" | "unknown-parent" | "dependency-cycle" | "parent-cycle"

/** What a backend implements for `TaskStore`; everything else lives in `makeTaskStore`. */
export interface TaskDriver {
  /**
   * One atomic write, returning the row as stored. `"insert"`: refuses an unknown dependency or parent, then inserts
   * (`"exists"` if the id is taken). `"update"`: writes every field but `createdAt`, `dependsOn` and `parentId` if
   * the stored version is `row.version - 1` (`undefined` otherwise). `"relink"`: as `"update"`, also writing
   * `parentId` and `dependsOn` after refusing unknown tasks and cycles.
   */
  readonly write: (
    row: TaskRow,
    mode: "insert" | "update" | "relink"
  ) => Effect.Effect<TaskRow | TaskRefusal | "exists" | undefined, StorageError>
  readonly get: (id: string) => Effect.Effect<TaskRow | undefined, StorageError>
  readonly list: (filter: TaskFilter, page: PageQuery) => Effect.Effect<ReadonlyArray<TaskRow>, StorageError>
  /** The claim, in one atomic step (see `TaskStore.claimNext`). */
  readonly claim: (
    agentId: string,
    conversationId: string | undefined,
    planId: string | undefined,
    now: number
  ) => Effect.Effect<TaskRow | undefined, StorageError>
  /** Moves in-progress tasks with `updatedAt < before` to pending, unassigned, with `updatedAt = now`. */
  readonly release: (before: number, now: number) => Effect.Effect<ReadonlyArray<TaskRow>, StorageError>
  /** Deletes tasks (with their subtasks, recursively, and their dependency edges) by id, conversation or plan. */
  readonly delete: (by: "id" | "conversation" | "plan", key: string) => Effect.Effect<void, StorageError>
}

const taskEntity = "Task"

/** Decodes a stored task row (trusted: no validation). */
export const decodeTaskRow = (row: TaskRow): Task => {
  const task: { -readonly [K in keyof Task]: Task[K] } = {
    id: row.id as TaskId,
    conversationId: row.conversationId,
    description: row.description,
    status: row.status as TaskStatus,
    dependsOn: row.dependsOn as ReadonlyArray<TaskId>,
    priority: priorities[row.priority]!,
    iterations: row.iterations,
    metadata: parseJson(row.metadata) as JsonObject,
    createdAt: utcFromMillis(row.createdAt),
    updatedAt: utcFromMillis(row.updatedAt),
    version: row.version
  }
  if (row.planId !== null) task.planId = row.planId
  if (row.parentId !== null) task.parentId = row.parentId as TaskId
  if (row.assignedTo !== null) task.assignedTo = row.assignedTo
  if (row.summary !== null) task.summary = row.summary
  if (row.startedAt !== null) task.startedAt = utcFromMillis(row.startedAt)
  if (row.completedAt !== null) task.completedAt = utcFromMillis(row.completedAt)
  return task
}

/** `row` moved to `status` at `now`: the timestamps the status implies (see `TaskStore.updateStatus`). */
type Timing = Pick<TaskRow, "status" | "startedAt" | "completedAt" | "iterations">

/** The timing of a task before its first save. */
const created: Timing = { status: "pending", startedAt: null, completedAt: null, iterations: 0 }

const sameList = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean =>
  a.length === b.length && a.every((item, i) => item === b[i])

const moved = (row: Timing, status: TaskStatus, now: number): Timing => {
  if (status === row.status) {
    return { status, startedAt: row.startedAt, completedAt: row.completedAt, iterations: row.iterations }
  }
  switch (status) {
    case "in_progress":
      return { status, startedAt: now, completedAt: null, iterations: row.iterations + 1 }
    case "completed":
    case "failed":
    case "cancelled":
      return { status, startedAt: row.startedAt, completedAt: now, iterations: row.iterations }
    case "pending":
      return { status, startedAt: null, completedAt: null, iterations: row.iterations }
    case "blocked":
      return { status, startedAt: row.startedAt, completedAt: null, iterations: row.iterations }
  }
}

const checkTransition = (from: string, to: TaskStatus): Effect.Effect<void, InvalidInput> =>
  from === to || taskTransitions[from as TaskStatus].includes(to)
    ? Effect.void
    : Effect.fail(InvalidInput.single(taskEntity, `cannot move from ${from} to ${to}`, ["status"]))

const refusals: Record<TaskRefusal, readonly [string, string]> = {
  "unknown-dependency": ["dependsOn", "names a task that does not exist"],
  "unknown-parent": ["parentId", "names a task that does not exist"],
  "dependency-cycle": ["dependsOn", "would make a dependency cycle"],
  "parent-cycle": ["parentId", "would make the task its own ancestor"]
}

const decodeTask = decodeInput(taskEntity, TaskInput)
const decodeTaskList = decodeOptions(taskEntity, TaskListOptions)
const decodeUpdateOptions = decodeOptions(taskEntity, UpdateOptions)
const decodeStatusOptions = decodeOptions(taskEntity, UpdateStatusOptions)
const decodeStatus = decodeInput(taskEntity, TaskStatus)
const decodeClaim = decodeInput(taskEntity, ClaimNextOptions)
const decodeRelease = decodeInput(taskEntity, ReleaseStaleOptions)
const decodeKey = decodeInput(taskEntity, Key)

/** Builds a `TaskStore` over a driver: validation, ids, clock, versions, taskTransitions and encoding live here. */
export const makeTaskStore = (driver: TaskDriver) => {
  const get = (id: unknown) =>
    Effect.map(byId(taskEntity, id, undefined, driver.get), (row) =>
      row === undefined ? undefined : decodeTaskRow(row)
    )

  const refuse = (refusal: TaskRefusal) => {
    const [path, rule] = refusals[refusal]
    return Effect.fail(InvalidInput.single(taskEntity, rule, [path]))
  }

  return traced(
    "TaskStore",
    driver,
    TaskStore.of({
      save: Effect.fnUntraced(function* (input, options) {
        const fields = yield* decodeTask(input)
        const { expectedVersion } = yield* decodeUpdateOptions(options)
        const dependsOn: Array<string> = Array.from(new Set(fields.dependsOn ?? []))
        const now = yield* Clock.currentTimeMillis
        const id = fields.id ?? uuidv7At(now)
        if (dependsOn.includes(id)) return yield* refuse("dependency-cycle")
        if (fields.parentId === id) return yield* refuse("parent-cycle")
        while (true) {
          const current = yield* driver.get(id)
          const actual = current?.version ?? 0
          if (expectedVersion !== undefined && actual !== expectedVersion) {
            return yield* new Conflict({ entity: taskEntity, id, expected: expectedVersion, actual })
          }
          const status = fields.status ?? (current?.status as TaskStatus | undefined) ?? "pending"
          if (current !== undefined) yield* checkTransition(current.status, status)
          const timing = moved(current ?? created, status, now)
          const next: TaskRow = {
            id,
            conversationId: fields.conversationId,
            planId: fields.planId ?? null,
            description: fields.description,
            parentId: fields.parentId ?? null,
            dependsOn,
            priority: taskPriorityRank[fields.priority ?? "normal"],
            assignedTo: fields.assignedTo ?? null,
            summary: fields.summary ?? null,
            metadata: JSON.stringify(fields.metadata ?? {}),
            status: timing.status,
            startedAt: timing.startedAt,
            completedAt: timing.completedAt,
            iterations: fields.iterations ?? timing.iterations,
            createdAt: current?.createdAt ?? now,
            updatedAt: Math.max(now, current?.updatedAt ?? now),
            version: actual + 1
          }
          const mode =
            current === undefined
              ? "insert"
              : next.parentId === current.parentId && sameList(dependsOn, current.dependsOn)
                ? "update"
                : "relink"
          const result = yield* driver.write(next, mode)
          if (typeof result === "object") return decodeTaskRow(result)
          if (result !== undefined && result !== "exists") return yield* refuse(result)
          // Lost a race (created, updated or deleted meanwhile): read again; with `expectedVersion` that is a Conflict.
        }
      }),
      get: (id) =>
        Effect.flatMap(get(id), (task) =>
          task === undefined ? Effect.fail(new NotFound({ entity: taskEntity, id })) : Effect.succeed(task)
        ),
      find: (id) => Effect.map(get(id), Option.fromNullable),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeTaskList(input)
        const query = yield* toPageQuery(taskEntity, options, byCreatedAt)
        return toPage(yield* driver.list(options, query), query, decodeTaskRow)
      }),
      updateStatus: Effect.fnUntraced(function* (id, input, options) {
        const key = yield* checkId(taskEntity, id)
        const status = yield* decodeStatus(input, ["status"])
        const { expectedVersion, summary } = yield* decodeStatusOptions(options)
        if (key === undefined) return yield* new NotFound({ entity: taskEntity, id })
        const row = yield* updateVersioned({
          entity: taskEntity,
          id: key,
          expectedVersion,
          read: driver.get(key),
          next: (current) =>
            Effect.zipRight(
              checkTransition(current.status, status),
              Effect.map(Clock.currentTimeMillis, (now): TaskRow => {
                const timing = moved(current, status, now)
                // Overrides only: a second spread in one literal costs about 2 µs on Node 20's V8.
                return {
                  ...current,
                  status: timing.status,
                  startedAt: timing.startedAt,
                  completedAt: timing.completedAt,
                  iterations: timing.iterations,
                  summary: summary ?? current.summary,
                  updatedAt: Math.max(now, current.updatedAt),
                  version: current.version + 1
                }
              })
            ),
          write: (next) =>
            Effect.map(driver.write(next, "update"), (result) => (typeof result === "object" ? result : undefined))
        })
        return decodeTaskRow(row)
      }),
      claimNext: (input) =>
        Effect.flatMap(decodeClaim(input), (options) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.map(driver.claim(options.agentId, options.conversationId, options.planId, now), (row) =>
              row === undefined ? Option.none() : Option.some(decodeTaskRow(row))
            )
          )
        ),
      releaseStale: Effect.fnUntraced(function* (input) {
        const { olderThan } = yield* decodeRelease(input)
        const millis = typeof olderThan === "number" ? olderThan : Duration.toMillis(olderThan)
        if (!Number.isFinite(millis)) {
          return yield* InvalidInput.single(taskEntity, "must be a finite duration", ["olderThan"])
        }
        const now = yield* Clock.currentTimeMillis
        const rows = yield* driver.release(now - millis, now)
        return rows.map(decodeTaskRow)
      }),
      delete: (id) => byId(taskEntity, id, undefined, (key) => driver.delete("id", key)),
      deleteByConversation: (conversationId) =>
        Effect.flatMap(decodeKey(conversationId, ["conversationId"]), (key) => driver.delete("conversation", key)),
      deleteByPlan: (planId) => Effect.flatMap(decodeKey(planId, ["planId"]), (key) => driver.delete("plan", key))
    })
  )
}

// ---------------------------------------------------------------------------
// AgentStateStore

/** An agent's working state. `agentId`, `taskId`, `conversationId` and `status` follow the Text rule. */
export const AgentState = Schema.Struct({
  agentId: Key,
  taskId: Schema.optional(Key),
  conversationId: Schema.optional(Key),
  status: Key,
  iteration: Schema.NonNegativeInt,
  context: Json,
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  version: Schema.Int
})
/** An agent's working state. */
export type AgentState = typeof AgentState.Type

/** An agent's working state with its `context` typed by a caller's Schema (`getAs`, `saveAs`). */
export type AgentStateAs<A> = Omit<AgentState, "context"> & { readonly context: A }

/** Input of `AgentStateStore.save`: the whole state (absent optional fields are cleared; `iteration` 0, `context` `{}`). */
export const AgentStateInput = Schema.Struct({
  agentId: Key,
  taskId: Schema.optional(Key),
  conversationId: Schema.optional(Key),
  status: Key,
  iteration: Schema.optional(Schema.NonNegativeInt),
  context: Schema.optional(Json)
})
/** Input of `AgentStateStore.save`. */
export type AgentStateInput = typeof AgentStateInput.Encoded

/** Options of `AgentStateStore.list`: filters plus paging (oldest first). */
export const AgentStateListOptions = Schema.Struct({
  ...PageOptions.fields,
  taskId: Schema.optional(Key),
  conversationId: Schema.optional(Key),
  status: Schema.optional(Key)
})
/** Options of `AgentStateStore.list`. */
export type AgentStateListOptions = typeof AgentStateListOptions.Encoded

/** The agent state store: one state per agent id. */
export class AgentStateStore extends Context.Tag("effect-agent-stores/AgentStateStore")<
  AgentStateStore,
  {
    /**
     * Creates or replaces the agent's state (version + 1). With `expectedVersion` it is a compare-and-set
     * (`Conflict` if the stored version differs; an absent state has version 0); without, it never `Conflict`s.
     */
    readonly save: (
      input: AgentStateInput,
      options?: UpdateOptions
    ) => Effect.Effect<AgentState, InvalidInput | Conflict | StorageError>
    /** The state of `agentId`, or `NotFound`. */
    readonly get: (agentId: string) => Effect.Effect<AgentState, NotFound | InvalidInput | StorageError>
    /** The state of `agentId`, if any. */
    readonly find: (agentId: string) => Effect.Effect<Option.Option<AgentState>, InvalidInput | StorageError>
    /** States oldest first, filtered by task, conversation and status. */
    readonly list: (options?: AgentStateListOptions) => Effect.Effect<Page<AgentState>, InvalidInput | StorageError>
    /** Deletes the state of `agentId`; unknown ids are a no-op. */
    readonly delete: (agentId: string) => Effect.Effect<void, InvalidInput | StorageError>
    /** The state with `context` decoded by `schema`; a context that does not decode is `DecodeError` naming the field. */
    readonly getAs: <A, I>(
      schema: Schema.Schema<A, I>,
      agentId: string
    ) => Effect.Effect<AgentStateAs<A>, NotFound | DecodeError | InvalidInput | StorageError>
    /** Saves a state whose `context` is encoded by `schema` first (a failure is `InvalidInput` naming the field). */
    readonly saveAs: <A, I>(
      schema: Schema.Schema<A, I>,
      input: Omit<AgentStateInput, "context"> & { readonly context: A },
      options?: UpdateOptions
    ) => Effect.Effect<AgentStateAs<A>, InvalidInput | Conflict | StorageError>
  }
>() {}

/** An agent state as a driver stores it: `context` as JSON text, times in epoch milliseconds. */
export interface AgentStateRow {
  readonly agentId: string
  readonly taskId: string | null
  readonly conversationId: string | null
  readonly status: string
  readonly iteration: number
  readonly context: unknown
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** The filters of `AgentStateStore.list`, as a driver receives them. */
export interface AgentStateFilter {
  readonly taskId?: string | undefined
  readonly conversationId?: string | undefined
  readonly status?: string | undefined
}

/** What a backend implements for `AgentStateStore`. */
export interface AgentStateDriver {
  /** Inserts `row` when `row.version` is 1 (`undefined` if the id is taken), else writes it if the stored version is `row.version - 1`. */
  readonly write: (row: AgentStateRow) => Effect.Effect<AgentStateRow | undefined, StorageError>
  readonly get: (agentId: string) => Effect.Effect<AgentStateRow | undefined, StorageError>
  readonly list: (
    filter: AgentStateFilter,
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<AgentStateRow>, StorageError>
  readonly delete: (agentId: string) => Effect.Effect<void, StorageError>
}

const stateEntity = "AgentState"

/** A stored agent state row as an `AgentState`, its context already parsed. */
const agentStateOf = (row: AgentStateRow, context: unknown): AgentState => {
  const state: { -readonly [K in keyof AgentState]: AgentState[K] } = {
    agentId: row.agentId,
    status: row.status,
    iteration: row.iteration,
    context,
    createdAt: utcFromMillis(row.createdAt),
    updatedAt: utcFromMillis(row.updatedAt),
    version: row.version
  }
  if (row.taskId !== null) state.taskId = row.taskId
  if (row.conversationId !== null) state.conversationId = row.conversationId
  return state
}

/** Decodes a stored agent state row (trusted: no validation). */
export const decodeAgentStateRow = (row: AgentStateRow): AgentState => agentStateOf(row, parseJson(row.context))

const checkState = decoder(stateEntity, AgentStateInput)
const decodeStateList = decodeOptions(stateEntity, AgentStateListOptions)
const checkStateOptions = optionsDecoder(stateEntity, UpdateOptions)
const decodeAsInput = decodeInput(stateEntity, Schema.Struct({ ...AgentStateInput.fields, context: Schema.Unknown }))

/** Builds an `AgentStateStore` over a driver. */
export const makeAgentStateStore = (driver: AgentStateDriver) => {
  const find = (agentId: unknown) =>
    Effect.map(byId(stateEntity, agentId, undefined, driver.get), (row) =>
      row === undefined ? undefined : decodeAgentStateRow(row)
    )
  const get = (agentId: unknown) =>
    Effect.flatMap(find(agentId), (state) =>
      state === undefined
        ? Effect.fail(new NotFound({ entity: stateEntity, id: String(agentId) }))
        : Effect.succeed(state)
    )
  /** Writes `fields` over the stored state (compare-and-set on the version read), re-reading after a lost race. */
  const write = (
    fields: typeof AgentStateInput.Type,
    context: string,
    expectedVersion: number | undefined
  ): Effect.Effect<AgentState, Conflict | StorageError> =>
    Effect.flatMap(driver.get(fields.agentId), (current) => {
      const actual = current?.version ?? 0
      if (expectedVersion !== undefined && actual !== expectedVersion) {
        return Effect.fail(new Conflict({ entity: stateEntity, id: fields.agentId, expected: expectedVersion, actual }))
      }
      return Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.flatMap(
          driver.write({
            agentId: fields.agentId,
            taskId: fields.taskId ?? null,
            conversationId: fields.conversationId ?? null,
            status: fields.status,
            iteration: fields.iteration ?? 0,
            context,
            createdAt: current?.createdAt ?? now,
            updatedAt: Math.max(now, current?.updatedAt ?? now),
            version: actual + 1
          }),
          (stored) =>
            stored === undefined
              ? write(fields, context, expectedVersion)
              : // The decoded input is a private copy equal to what the stored JSON parses to: not parsed back.
                Effect.succeed(agentStateOf(stored, fields.context ?? {}))
        )
      )
    })
  // The input and options are decoded in one synchronous step: this is every save's fixed cost.
  const save = (input: unknown, options: unknown) =>
    Effect.suspend((): Effect.Effect<AgentState, InvalidInput | Conflict | StorageError> => {
      const fields = checkState(input)
      if (fields._tag === "Left") return Effect.fail(fields.left)
      const decoded = checkStateOptions(options)
      if (decoded._tag === "Left") return Effect.fail(decoded.left)
      return write(fields.right, JSON.stringify(fields.right.context ?? {}), decoded.right.expectedVersion)
    })
  return traced(
    "AgentStateStore",
    driver,
    AgentStateStore.of({
      save: (input, options) => save(input, options),
      get,
      find: (agentId) => Effect.map(find(agentId), Option.fromNullable),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeStateList(input)
        const query = yield* toPageQuery(stateEntity, options, byCreatedAt)
        const rows = yield* driver.list(options, query)
        return toPage(rows, query, decodeAgentStateRow, (row) => [row.createdAt, row.agentId])
      }),
      delete: (agentId) => byId(stateEntity, agentId, undefined, driver.delete),
      getAs: (schema, agentId) =>
        Effect.flatMap(get(agentId), (state) =>
          Effect.mapError(Schema.decodeUnknown(schema)(state.context), (error) =>
            DecodeError.fromParseError(stateEntity, state.agentId, error)
          ).pipe(Effect.map((context) => ({ ...state, context })))
        ),
      saveAs: (schema, input, options) =>
        Effect.gen(function* () {
          const { context, ...rest } = yield* decodeAsInput(input)
          const encoded = yield* Effect.try({
            try: () => Schema.encodeUnknownEither(schema)(context),
            catch: (error) => InvalidInput.single(stateEntity, `could not be encoded: ${String(error)}`, ["context"])
          })
          if (Either.isLeft(encoded)) return yield* InvalidInput.fromParseError(stateEntity, encoded.left, ["context"])
          const state = yield* save(Object.assign({}, rest, { context: encoded.right }), options)
          return { ...state, context: context as never }
        })
    })
  )
}
