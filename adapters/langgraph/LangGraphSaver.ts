/**
 * `LangGraphSaver`: LangGraph's checkpointer (`BaseCheckpointSaver`) over `CheckpointStore`, so a compiled graph keeps
 * its threads in the library's memory, SQLite or PostgreSQL stores.
 *
 * - A LangGraph thread is a session: the first `put` of an unknown `thread_id` creates the session (channel
 *   `"langgraph"`); `deleteThread` deletes the thread's checkpoints and keeps the session.
 * - A checkpoint is stored under its LangGraph id (a `uuid6`, unique across threads), in its thread and namespace
 *   (`checkpoint_ns`), with LangGraph's metadata as its metadata. Its state holds the checkpoint's fields, and its
 *   channel values as LangGraph's serializer writes them (parsed JSON, so the stored rows stay readable).
 * - Channel values follow LangGraph's channel versions: a `put` stores the channels named in `newVersions` and carries
 *   the others over from the parent at the same version (read once, then cached by checkpoint id: checkpoints never
 *   change), so each checkpoint is read back whole in one query.
 * - Pending writes are kept with their task path and index: a write to a special channel (error, interrupt, resume…)
 *   replaces the task's previous one, another repeated write is ignored, and `getTuple`/`list` return them in
 *   LangGraph's `writesSortKey` order.
 */
import type { RunnableConfig } from "@langchain/core/runnables"
import {
  BaseCheckpointSaver,
  type ChannelVersions,
  type Checkpoint,
  type CheckpointListOptions,
  type CheckpointMetadata,
  type CheckpointPendingWrite,
  type CheckpointTuple,
  compareWritesSortKeys,
  getCheckpointId,
  maxChannelVersion,
  type PendingWrite,
  type SerializerProtocol,
  TASKS,
  WRITES_IDX_MAP,
  writesSortKey
} from "@langchain/langgraph-checkpoint"
import { Effect, Option } from "effect"
import { NotFound } from "../../src/Errors.ts"
import { maxLimit } from "../../src/Page.ts"
import { SessionStore } from "../../src/Session.ts"
import {
  type Checkpoint as StoredCheckpoint,
  type CheckpointInput,
  CheckpointStore,
  type PendingWriteInput
} from "../../src/State.ts"
import { jsonEquals } from "../../src/VectorFilter.ts"
import { AdapterError, promiseRunner, type RuntimeLike } from "../Runner.ts"

/** The stores a `LangGraphSaver` runs on. */
export type LangGraphSaverStores = CheckpointStore | SessionStore

/** Options of `LangGraphSaver`. */
export interface LangGraphSaverOptions {
  /** LangGraph's serializer of channel values, metadata and writes (default its `JsonPlusSerializer`). */
  readonly serde?: SerializerProtocol
  /** How many checkpoints' channel values are kept in memory for the next `put` of their thread (default 256). */
  readonly cacheSize?: number
}

/** A value as LangGraph's serializer wrote it: parsed JSON for its `json` type, base64 bytes for any other type. */
type Serialized = { readonly type: string; readonly value?: unknown; readonly base64?: string }

/** A pending write's stored value: the serialized value with its index and the path of the task that wrote it. */
type StoredWrite = Serialized & { readonly idx: number; readonly path: string }

/** A checkpoint's stored state: LangGraph's checkpoint without its values, the values, and its LangGraph parent. */
interface StoredState {
  readonly checkpoint: Omit<Checkpoint, "channel_values">
  readonly channel_values: Readonly<Record<string, Serialized>>
  /** The checkpoint id `put` was given as the parent; absent for a root. */
  readonly parent?: string
}

/** What a `put` needs of a parent: where it is, and its channel versions and serialized values. */
interface Channels {
  readonly threadId: string
  readonly namespace: string
  readonly versions: ChannelVersions
  readonly values: Readonly<Record<string, Serialized>>
}

/** A checkpoint's channels as its stored state holds them. */
const channelsOf = (stored: StoredCheckpoint): Channels => {
  const state = stored.state as StoredState
  return {
    threadId: stored.threadId,
    namespace: stored.namespace,
    versions: state.checkpoint.channel_versions,
    values: state.channel_values
  }
}

/** A least-recently-used map of checkpoint id → channels (a `Map` keeps insertion order; a hit moves to the end). */
class ChannelCache {
  private readonly entries = new Map<string, Channels>()
  constructor(private readonly capacity: number) {}
  get(id: string): Channels | undefined {
    const found = this.entries.get(id)
    if (found !== undefined) {
      this.entries.delete(id)
      this.entries.set(id, found)
    }
    return found
  }
  set(id: string, channels: Channels): void {
    if (this.capacity <= 0) return
    this.entries.delete(id)
    this.entries.set(id, channels)
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!)
  }
  deleteThread(threadId: string): void {
    for (const [id, channels] of this.entries) if (channels.threadId === threadId) this.entries.delete(id)
  }
}

const decoder = new TextDecoder()

/** The `thread_id` of `config`, which must be a string (`what` names the call for the error). */
const requireThread = (config: RunnableConfig, what: string): string => {
  const threadId: unknown = config.configurable?.["thread_id"]
  if (typeof threadId !== "string") {
    throw new TypeError(
      `LangGraphSaver.${what}: config.configurable.thread_id must be a string, got ${threadId === undefined ? "none" : typeof threadId} ` +
        '(pass { configurable: { thread_id: "…" } } when you invoke the graph)'
    )
  }
  return threadId
}

/** Whether `metadata` (as stored) has every key of `filter` at an equal JSON value. */
const matches = (metadata: Readonly<Record<string, unknown>>, filter: Record<string, unknown> | undefined) => {
  if (filter === undefined) return true
  for (const key in filter) if (!jsonEquals(metadata[key], filter[key])) return false
  return true
}

/**
 * LangGraph's checkpointer over `CheckpointStore` (threads are `SessionStore` sessions). Build it from a runtime that
 * provides both stores: `new LangGraphSaver(ManagedRuntime.make(StoresSqlite({ filename })))` in a plain app, or
 * `yield* LangGraphSaver.make()` inside an Effect program. A failed store call rejects with an `AdapterError` naming
 * the operation and the store's error (its `cause`).
 */
export class LangGraphSaver extends BaseCheckpointSaver {
  /** A saver on the stores of the running program. */
  static make(options: LangGraphSaverOptions = {}): Effect.Effect<LangGraphSaver, never, LangGraphSaverStores> {
    return Effect.map(Effect.runtime<LangGraphSaverStores>(), (runtime) => new LangGraphSaver(runtime, options))
  }

  private readonly run: <A, E>(operation: string, effect: Effect.Effect<A, E, LangGraphSaverStores>) => Promise<A>
  private readonly cache: ChannelCache
  /** The puts under way, by checkpoint id (each settles when its put does, whatever the outcome). */
  private readonly saving = new Map<string, Promise<void>>()
  /** Every put and write under way. */
  private readonly inFlight = new Set<Promise<void>>()
  /** The writes waiting for their checkpoint's put (so not leading to one). */
  private readonly waiting = new Set<Promise<void>>()

  constructor(runtime: RuntimeLike<LangGraphSaverStores>, options: LangGraphSaverOptions = {}) {
    super(options.serde)
    this.run = promiseRunner(runtime, "LangGraphSaver")
    this.cache = new ChannelCache(options.cacheSize ?? 256)
  }

  private async serialize(value: unknown): Promise<Serialized> {
    const [type, bytes] = await this.serde.dumpsTyped(value)
    return type === "json"
      ? { type, value: JSON.parse(decoder.decode(bytes)) }
      : { type, base64: Buffer.from(bytes).toString("base64") }
  }

  private deserialize(serialized: Serialized): Promise<unknown> {
    return serialized.base64 === undefined
      ? this.serde.loadsTyped(serialized.type, JSON.stringify(serialized.value))
      : this.serde.loadsTyped(serialized.type, Buffer.from(serialized.base64, "base64"))
  }

  /** LangGraph's tuple of a stored checkpoint (whose channels it caches for the thread's next `put`). */
  private async tupleOf(stored: StoredCheckpoint): Promise<CheckpointTuple> {
    const state = stored.state as StoredState
    this.cache.set(stored.id, channelsOf(stored))
    const values: Record<string, unknown> = {}
    for (const channel in state.channel_values) values[channel] = await this.deserialize(state.channel_values[channel]!)
    const checkpoint: Checkpoint = { ...state.checkpoint, channel_values: values }
    if (checkpoint.v < 4 && state.parent !== undefined) await this.migratePendingSends(checkpoint, state.parent)
    const tuple: CheckpointTuple = {
      config: {
        configurable: { thread_id: stored.threadId, checkpoint_ns: stored.namespace, checkpoint_id: stored.id }
      },
      checkpoint,
      metadata: (await this.deserialize({ type: "json", value: stored.metadata })) as CheckpointMetadata,
      pendingWrites: await this.pendingWrites(stored.writes)
    }
    if (state.parent !== undefined) {
      tuple.parentConfig = {
        configurable: { thread_id: stored.threadId, checkpoint_ns: stored.namespace, checkpoint_id: state.parent }
      }
    }
    return tuple
  }

  /**
   * The pending writes as LangGraph's savers keep them: one per task and index (a special channel's last write, any
   * other channel's first), in `writesSortKey` order.
   */
  private async pendingWrites(writes: StoredCheckpoint["writes"]): Promise<Array<CheckpointPendingWrite>> {
    const kept = new Map<string, { readonly taskId: string; readonly channel: string; readonly value: StoredWrite }>()
    for (const write of writes) {
      const value = write.value as StoredWrite
      const key = `${value.idx}:${write.taskId}`
      if (value.idx >= 0 && kept.has(key)) continue
      kept.set(key, { taskId: write.taskId, channel: write.channel, value })
    }
    const ordered = Array.from(kept.values()).sort((a, b) =>
      compareWritesSortKeys(
        writesSortKey(a.value.path, a.taskId, a.value.idx),
        writesSortKey(b.value.path, b.taskId, b.value.idx)
      )
    )
    const out: Array<CheckpointPendingWrite> = []
    for (const write of ordered) out.push([write.taskId, write.channel, await this.deserialize(write.value)])
    return out
  }

  /** A checkpoint of format < 4 gets its parent's pending sends (writes to `TASKS`) as the `TASKS` channel. */
  private async migratePendingSends(checkpoint: Checkpoint, parentId: string): Promise<void> {
    const parent = await this.run("getTuple", CheckpointStore.pipe(Effect.flatMap((store) => store.find(parentId))))
    const sends = Option.isSome(parent)
      ? (await this.pendingWrites(parent.value.writes)).filter((write) => write[1] === TASKS).map((write) => write[2])
      : []
    checkpoint.channel_values[TASKS] = sends
    const versions = Object.values(checkpoint.channel_versions)
    checkpoint.channel_versions[TASKS] =
      versions.length > 0 ? maxChannelVersion(...versions) : this.getNextVersion(undefined)
  }

  override async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const threadId: unknown = config.configurable?.["thread_id"]
    if (threadId === undefined) return undefined
    if (typeof threadId !== "string") requireThread(config, "getTuple")
    const namespace: string = config.configurable?.["checkpoint_ns"] ?? ""
    const id = getCheckpointId(config)
    const stored = await this.run(
      "getTuple",
      Effect.flatMap(CheckpointStore, (store) =>
        id === ""
          ? store.latest(threadId as string, namespace)
          : Effect.map(
              store.find(id),
              Option.filter((c) => c.threadId === threadId && c.namespace === namespace)
            )
      )
    )
    return Option.isSome(stored) ? this.tupleOf(stored.value) : undefined
  }

  override async *list(config: RunnableConfig, options: CheckpointListOptions = {}): AsyncGenerator<CheckpointTuple> {
    const { filter } = options
    const before = options.before?.configurable?.["checkpoint_id"] as string | undefined
    let remaining = options.limit ?? Infinity
    if (remaining <= 0) return
    const threadId: unknown = config.configurable?.["thread_id"]
    const namespace: string | undefined = config.configurable?.["checkpoint_ns"]
    const id: string | undefined = config.configurable?.["checkpoint_id"] || undefined
    const threads = threadId === undefined ? this.threads() : [requireThread(config, "list")]
    for await (const thread of threads) {
      const namespaces =
        namespace !== undefined
          ? [namespace]
          : await this.run(
              "list",
              Effect.flatMap(CheckpointStore, (store) => store.namespaces(thread))
            )
      for (const ns of namespaces) {
        for await (const stored of id === undefined
          ? this.checkpointsOf(thread, ns, before)
          : this.one(thread, ns, id)) {
          if (before !== undefined && !(stored.id < before)) continue
          if (!matches(stored.metadata, filter)) continue
          yield await this.tupleOf(stored)
          if (--remaining <= 0) return
        }
      }
    }
  }

  /** Every session id, oldest first, page by page (LangGraph's `list` without a `thread_id`). */
  private async *threads(): AsyncGenerator<string> {
    let cursor: string | undefined
    do {
      const page = await this.run(
        "list",
        Effect.flatMap(SessionStore, (sessions) =>
          sessions.list(cursor === undefined ? { limit: maxLimit } : { limit: maxLimit, cursor })
        )
      )
      for (const session of page.items) yield session.id
      cursor = Option.getOrUndefined(page.nextCursor)
    } while (cursor !== undefined)
  }

  /** The checkpoint `id` when it is in this thread and namespace. */
  private async *one(threadId: string, namespace: string, id: string): AsyncGenerator<StoredCheckpoint> {
    const found = await this.run(
      "list",
      Effect.flatMap(CheckpointStore, (store) => store.find(id))
    )
    if (Option.isSome(found) && found.value.threadId === threadId && found.value.namespace === namespace) {
      yield found.value
    }
  }

  /**
   * The checkpoints of one thread and namespace, newest first, page by page; from `before` on when it is one of them
   * (the caller still compares ids, as LangGraph's savers order by them).
   */
  private async *checkpointsOf(
    threadId: string,
    namespace: string,
    before: string | undefined
  ): AsyncGenerator<StoredCheckpoint> {
    let cursor: string | undefined
    do {
      const paging = cursor === undefined ? { namespace, limit: maxLimit } : { namespace, limit: maxLimit, cursor }
      const page = await this.run(
        "list",
        Effect.flatMap(CheckpointStore, (store) =>
          before === undefined
            ? store.list(threadId, paging)
            : store
                .list(threadId, { ...paging, before })
                .pipe(Effect.catchTag("NotFound", () => store.list(threadId, paging)))
        )
      )
      yield* page.items
      cursor = Option.getOrUndefined(page.nextCursor)
    } while (cursor !== undefined)
  }

  override put(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    newVersions: ChannelVersions
  ): Promise<RunnableConfig> {
    const saved = this.putCheckpoint(config, checkpoint, metadata, newVersions)
    const settled = this.track(saved)
    this.saving.set(checkpoint.id, settled)
    void settled.then(() => {
      if (this.saving.get(checkpoint.id) === settled) this.saving.delete(checkpoint.id)
    })
    return saved
  }

  /** Tracks `operation` among those under way until it settles; the promise of its settling. */
  private track(operation: Promise<unknown>): Promise<void> {
    const settled = operation.then(
      () => undefined,
      () => undefined
    )
    this.inFlight.add(settled)
    void settled.then(() => this.inFlight.delete(settled))
    return settled
  }

  private async putCheckpoint(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    newVersions: ChannelVersions
  ): Promise<RunnableConfig> {
    const threadId = requireThread(config, "put")
    const namespace: string = config.configurable?.["checkpoint_ns"] ?? ""
    const parentId: string | undefined = config.configurable?.["checkpoint_id"] || undefined
    const { channel_values, ...rest } = checkpoint
    const versions = { ...checkpoint.channel_versions }
    let parent: Channels | undefined | null
    const values: Record<string, Serialized> = {}
    for (const channel in versions) {
      const version = versions[channel]
      if (newVersions[channel] === version) {
        if (channel in channel_values) values[channel] = await this.serialize(channel_values[channel])
        continue
      }
      if (parent === undefined)
        parent = parentId === undefined ? null : await this.parentChannels(threadId, namespace, parentId)
      if (parent !== null && parent.versions[channel] === version && parent.values[channel] !== undefined) {
        values[channel] = parent.values[channel]
      }
    }
    const serializedMetadata = await this.serialize(metadata)
    if (serializedMetadata.base64 !== undefined || typeof serializedMetadata.value !== "object") {
      throw new TypeError(`LangGraphSaver.put: the serializer must write metadata as a JSON object`)
    }
    const state: StoredState = {
      checkpoint: { ...rest, channel_versions: versions },
      channel_values: values,
      ...(parentId === undefined ? {} : { parent: parentId })
    }
    const input: CheckpointInput = {
      id: checkpoint.id,
      threadId,
      namespace,
      state,
      metadata: serializedMetadata.value as Record<string, unknown>
    }
    // A parent not stored in this thread and namespace is LangGraph's to name: the checkpoint then continues the
    // thread's latest in the store, and keeps the parent LangGraph gave.
    const linked = parent === null || parentId === undefined ? input : { ...input, parentId }
    await this.run("put", this.save(linked, input))
    this.cache.set(checkpoint.id, { threadId, namespace, versions, values })
    return { configurable: { thread_id: threadId, checkpoint_ns: namespace, checkpoint_id: checkpoint.id } }
  }

  /** The parent's channels from the cache or the store; `null` when it is not in this thread and namespace. */
  private async parentChannels(threadId: string, namespace: string, parentId: string): Promise<Channels | null> {
    const cached = this.cache.get(parentId)
    if (cached !== undefined) return cached.threadId === threadId && cached.namespace === namespace ? cached : null
    const found = await this.run(
      "put",
      Effect.flatMap(CheckpointStore, (store) => store.find(parentId))
    )
    if (Option.isNone(found) || found.value.threadId !== threadId || found.value.namespace !== namespace) return null
    const channels = channelsOf(found.value)
    this.cache.set(parentId, channels)
    return channels
  }

  /**
   * Saves `input` (falling back to `unlinked` when its parent is gone), creating the thread's session when it has
   * none.
   */
  private save(input: CheckpointInput, unlinked: CheckpointInput) {
    return Effect.gen(function* () {
      const checkpoints = yield* CheckpointStore
      const sessions = yield* SessionStore
      const attempt = (candidate: CheckpointInput) =>
        checkpoints.save(candidate).pipe(
          Effect.catchIf(
            (error): error is NotFound =>
              error instanceof NotFound && error.entity === "Checkpoint" && candidate !== unlinked,
            () => checkpoints.save(unlinked)
          )
        )
      return yield* attempt(input).pipe(
        Effect.catchIf(
          (error): error is NotFound => error instanceof NotFound && error.entity === "Session",
          () =>
            sessions.create({ id: input.threadId, channel: "langgraph" }).pipe(
              Effect.catchIf(
                (error) => error._tag === "Conflict",
                () => Effect.void
              ),
              Effect.zipRight(attempt(input))
            )
        )
      )
    })
  }

  /**
   * Stores a task's writes to their checkpoint. LangGraph does not wait for the checkpoint's `put` first (it queues
   * puts behind each other and writes at once), and the store holds writes only with their checkpoint: so writes to a
   * checkpoint not stored yet wait while this saver has puts, or writes not waiting themselves, under way (one of
   * which leads to its put), and fail with `NotFound` once nothing is.
   */
  override putWrites(
    config: RunnableConfig,
    writes: Array<PendingWrite>,
    taskId: string,
    taskPath?: string
  ): Promise<void> {
    const own = { settled: Promise.resolve() }
    const written = this.writeTask(config, writes, taskId, taskPath ?? "", own)
    own.settled = this.track(written)
    return written
  }

  private async writeTask(
    config: RunnableConfig,
    writes: Array<PendingWrite>,
    taskId: string,
    taskPath: string,
    own: { readonly settled: Promise<void> }
  ): Promise<void> {
    requireThread(config, "putWrites")
    const id: unknown = config.configurable?.["checkpoint_id"]
    if (typeof id !== "string" || id === "") {
      throw new TypeError("LangGraphSaver.putWrites: config.configurable.checkpoint_id must name the checkpoint")
    }
    if (writes.length === 0) return
    const inputs: Array<PendingWriteInput> = []
    for (let i = 0; i < writes.length; i++) {
      const [channel, value] = writes[i]!
      const stored: StoredWrite = {
        ...(await this.serialize(value)),
        idx: WRITES_IDX_MAP[channel] ?? i,
        path: taskPath
      }
      inputs.push({ taskId, channel, value: stored })
    }
    const write = Effect.flatMap(CheckpointStore, (store) => store.putWrites(id, inputs)).pipe(
      Effect.as(true),
      Effect.catchIf(
        (error) => error._tag === "NotFound",
        () => Effect.succeed(false)
      )
    )
    while (true) {
      await this.saving.get(id)
      if (await this.run("putWrites", write)) return
      this.waiting.add(own.settled)
      const others = Array.from(this.inFlight).filter((operation) => !this.waiting.has(operation))
      await Promise.all(others)
      // LangGraph calls the next put from the callback of the previous one: let those callbacks run.
      await new Promise((resolve) => setImmediate(resolve))
      this.waiting.delete(own.settled)
      if (others.length === 0 && !this.saving.has(id)) {
        const missing = new NotFound({ entity: "Checkpoint", id })
        throw new AdapterError("LangGraphSaver.putWrites", missing.message, missing)
      }
    }
  }

  override async deleteThread(threadId: string): Promise<void> {
    await this.run(
      "deleteThread",
      Effect.flatMap(CheckpointStore, (store) => store.deleteThread(threadId))
    )
    this.cache.deleteThread(threadId)
  }
}
