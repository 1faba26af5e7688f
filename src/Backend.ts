/**
 * `StorageBackend`: what the stores run on (name, dialect, whether it is
 * durable, the server's version, the table prefix) and what each store
 * guarantees there, as data: the README's guarantees table is rendered from
 * `guarantees` by `guaranteesMarkdown`, so the documentation and the values a
 * program can inspect are the same. `checkMode` is the `{ mode: "production" }`
 * rule the backend layers apply at build: no authoritative store on a backend
 * that forgets, and no power-loss durability promised by a configuration that
 * does not give it.
 */
import { Context, Either, Option } from "effect"
import { StorageError } from "./Errors.ts"

/** The backend's SQL dialect, or `memory`. */
export type BackendDialect = "memory" | "sqlite" | "pg"

/**
 * A store's role: `authoritative` (the append-only source of truth: what `mode: "production"` protects),
 * `primary` (mutable records held nowhere else), `cache` (derived data that can be rebuilt or lost without
 * losing the system's truth) or `coordination` (short-lived shared state between workers).
 */
export type StoreRole = "authoritative" | "primary" | "cache" | "coordination"

/** What one store guarantees, on every backend unless a cell says otherwise. */
export interface StoreGuarantee {
  /** The service's tag name, e.g. `EventStore`. */
  readonly store: string
  readonly role: StoreRole
  /** What happens all at once or not at all. */
  readonly atomicity: string
  /** The orders readers can rely on. */
  readonly ordering: string
  /** What a committed write survives (the backend's own durability applies on top, see `StorageBackend`). */
  readonly durability: string
  /** What holds when several processes (or connections) share the database. */
  readonly concurrency: string
}

const versioned = "optimistic versions: `expectedVersion` fails with `Conflict`, no update is lost"
const untilDeleted = "kept until deleted"

/** Every store's guarantees, one entry per service of the catalogue (DESIGN.md), in catalogue order. */
export const guarantees: ReadonlyArray<StoreGuarantee> = [
  {
    store: "SessionStore",
    role: "primary",
    atomicity: "each operation; `save(id, messages)` replaces the chat (its conversation's messages) in one step",
    ordering: "`list` by (createdAt, id), keyset cursors stable under inserts",
    durability: `${untilDeleted}; deleting a session deletes its conversations`,
    concurrency: versioned
  },
  {
    store: "ConversationStore",
    role: "primary",
    atomicity: "`appendMany`, `upsert`, each edit and `fork` all or nothing; `delete` takes the messages along",
    ordering: "messages by `seq`, gapless per conversation as appended, never reused (deletions leave gaps)",
    durability: `${untilDeleted}; messages go with their conversation`,
    concurrency:
      "writes to one conversation's messages serialise on its row (no lost or duplicate `seq`, one message per id); updates versioned"
  },
  {
    store: "TaskStore",
    role: "primary",
    atomicity: "each operation; `claimNext` claims a task for exactly one claimer",
    ordering: "`list` by (createdAt, id); `claimNext` by priority, then age",
    durability: `${untilDeleted}; \`deleteByConversation\`/\`deleteByPlan\` remove a group`,
    concurrency: "concurrent claimers never claim the same task; status updates versioned"
  },
  {
    store: "AgentStateStore",
    role: "primary",
    atomicity: "each save",
    ordering: "`list` by (createdAt, id)",
    durability: untilDeleted,
    concurrency: versioned
  },
  {
    store: "PlanStore",
    role: "primary",
    atomicity: "a plan and its steps saved together",
    ordering: "steps in their given order; `list` by (createdAt, id)",
    durability: untilDeleted,
    concurrency: versioned
  },
  {
    store: "TemplateStore",
    role: "primary",
    atomicity: "each save is one new version",
    ordering: "versions 1, 2, 3…; `list` by (name, id)",
    durability: "every version kept until the template is deleted",
    concurrency: "names unique; concurrent saves get distinct versions"
  },
  {
    store: "LockStore",
    role: "coordination",
    atomicity: "acquire, refresh and release each one step; a lease's holder is always one owner",
    ordering: "fencing tokens strictly increase per key (kernel counter)",
    durability: "leases are short-lived; the token counter survives restarts (not in memory)",
    concurrency:
      "one live holder per key across processes; expiry by the caller's Clock (memory, SQLite) or the database's clock (PostgreSQL)"
  },
  {
    store: "ImageStore",
    role: "primary",
    atomicity: "a put stores the bytes and the owner's reference together",
    ordering: "`list` by (reference createdAt, key)",
    durability:
      "one copy per content (sha256 id), kept while a reference remains; re-hashed on every read (`IntegrityError`)",
    concurrency: "concurrent puts of the same bytes store one copy; the last release removes it"
  },
  {
    store: "MemoryMessageStore",
    role: "cache",
    atomicity: "`addMany` all or nothing; an item and its tier metadata written and deleted together",
    ordering: "by (createdAt, id); `search` by score",
    durability: "hot tier: a copy of conversation messages with their embeddings; `deleteExpired` by Clock",
    concurrency: "ids unique: a duplicate add is `Conflict`, nothing written"
  },
  {
    store: "SummaryStore",
    role: "primary",
    atomicity: "each add with its tier metadata",
    ordering: "by (createdAt, id); `search` by score",
    durability: untilDeleted,
    concurrency: "ids unique: a duplicate add is `Conflict`"
  },
  {
    store: "FactStore",
    role: "primary",
    atomicity: "each add with its tier metadata",
    ordering: "by (createdAt, id); `search` by score",
    durability: untilDeleted,
    concurrency: "ids unique: a duplicate add is `Conflict`"
  },
  {
    store: "MentalModelStore",
    role: "primary",
    atomicity: "each update is one new version",
    ordering: "versions in order, history kept",
    durability: "every version kept until deleted",
    concurrency: versioned
  },
  {
    store: "TierMetadataStore",
    role: "cache",
    atomicity: "`recordAccess(ids)` one step for all ids",
    ordering: "`listByTier` oldest first",
    durability: "bookkeeping deleted with its item",
    concurrency: "`recordAccess` loses no concurrent access"
  },
  {
    store: "EventStore",
    role: "authoritative",
    atomicity: "`append` writes the whole batch or nothing",
    ordering: "`seq` gapless per stream; `position` increases as readers see it, never passing a later commit",
    durability:
      "append-only: no update or delete (SQL triggers refuse them); `truncateBefore` is the one removal, recorded in the stream",
    concurrency:
      "`expectedVersion`: exactly one winner per version across processes; subscribers see commits in order (PostgreSQL: across processes)"
  },
  {
    store: "StateStore",
    role: "cache",
    atomicity: "each set or delete",
    ordering: "`list(prefix)` by key",
    durability: "derived state, rebuildable from the event log (`EventStore.project`)",
    concurrency: versioned
  },
  {
    store: "CheckpointStore",
    role: "cache",
    atomicity: "a checkpoint saved with its pending writes",
    ordering: "`seq` per thread; `latest` in O(1); `history` follows parents",
    durability: "kept until pruned (`prune({ keepLast })`) or its session (the thread) is deleted",
    concurrency: "two writers from one parent create two children (a fork), never a broken chain"
  },
  {
    store: "VectorStore",
    role: "cache",
    atomicity: "`upsert` batch all or nothing; dropping a collection drops its vectors",
    ordering: "`search` by score, ties by id (exact scan; approximate from 250,000 records, exact scores)",
    durability: "derived from content: rebuildable by embedding again",
    concurrency: "each process's collection copy is checked against the collection's revision on every read"
  },
  {
    store: "ConfigStore",
    role: "primary",
    atomicity: "each save is one new version",
    ordering: "history by version",
    durability: "every version kept until the document is deleted",
    concurrency: "concurrent saves get distinct versions; `expectedVersion` fails with `Conflict`"
  },
  {
    store: "AgentMemoryStore",
    role: "primary",
    atomicity: "each put (upsert per agent and key)",
    ordering: "`list` by (createdAt, id)",
    durability: "kept until deleted or expired (`Clock`)",
    concurrency: versioned
  },
  {
    store: "AuditLogStore",
    role: "authoritative",
    atomicity: "each append, chained to the previous entry",
    ordering: "`seq` global and gapless in commit order",
    durability:
      "append-only (SQL triggers refuse UPDATE/DELETE/TRUNCATE); hash chain: `verify` names the first edited, removed or inserted entry",
    concurrency: "concurrent appenders (fibers and processes) keep one unbroken chain"
  },
  {
    store: "TraceStore",
    role: "cache",
    atomicity: "each batch of spans",
    ordering: "`listByTrace` and `list` by (startedAt, id)",
    durability:
      "observability only: the tracer drops (and counts) spans when its buffer is full; `prune` removes old ones",
    concurrency: "the traced program never waits for or fails because of the store"
  },
  {
    store: "SessionBroker",
    role: "primary",
    atomicity: "`send` appends and publishes after commit (nothing announced from a rollback)",
    ordering: "subscribers receive a session's messages in `seq` order, stored ones first with `from`, no gap",
    durability: "held by SessionStore and ConversationStore",
    concurrency: "PostgreSQL: a subscriber in another process receives the messages (LISTEN/NOTIFY)"
  },
  {
    store: "Embeddings",
    role: "cache",
    atomicity: "n/a (computes vectors)",
    ordering: "one vector per text, in input order",
    durability: "nothing stored: an in-process LRU cache",
    concurrency: "per process"
  }
]

/** The stores whose loss loses the system's truth: those `mode: "production"` keeps off a backend that forgets. */
export const authoritativeStores: ReadonlyArray<string> = guarantees
  .filter((g) => g.role === "authoritative")
  .map((g) => g.store)

/** What the stores run on, and what each guarantees there. */
export interface BackendInfo {
  /** `memory`, `sqlite` or `postgres`. */
  readonly name: "memory" | "sqlite" | "postgres"
  readonly dialect: BackendDialect
  /** Whether a committed write outlives the process (false for memory and SQLite `:memory:`). */
  readonly durable: boolean
  /** Whether a committed write survives a power loss or an OS crash (SQLite `synchronous = full`, PostgreSQL with fsync and synchronous_commit on). */
  readonly powerLossDurable: boolean
  /** The server's or library's version, e.g. `PostgreSQL 15.4` or `SQLite 3.45.1`; `in-process` for memory. */
  readonly serverVersion: string
  /** The table prefix of the SQL tables; `None` in memory. */
  readonly tablePrefix: Option.Option<string>
  /** One sentence on what a commit survives on this backend, as configured. */
  readonly durability: string
  /** One sentence on how several processes share it. */
  readonly concurrency: string
  /** Every store's guarantees. */
  readonly guarantees: ReadonlyArray<StoreGuarantee>
}

/** The backend every bundle provides. */
export class StorageBackend extends Context.Tag("effect-agent-stores/StorageBackend")<StorageBackend, BackendInfo>() {}

/** The mode options of the backend layers and bundles. */
export interface ModeOptions {
  /**
   * `"production"` refuses, at layer build, a backend that would lose the authoritative stores (memory, SQLite
   * `:memory:`), and one that does not give the `durability` asked for. Default `"development"`: no check.
   */
  readonly mode?: "development" | "production"
  /**
   * `"power-loss"`: committed writes must survive a power loss or OS crash (SQLite `synchronous: "full"`;
   * PostgreSQL with `fsync` and `synchronous_commit` on). Default `"process"`: they must survive the process.
   */
  readonly durability?: "process" | "power-loss"
}

const modeError = (info: BackendInfo, message: string) =>
  new StorageError({ backend: info.name, operation: "mode", cause: new Error(message) })

/** The fix for a backend that is not power-loss durable. */
const powerLossFix = (info: BackendInfo): string => {
  switch (info.dialect) {
    case "sqlite":
      return 'set `synchronous: "full"` in the SQLite options (StoresSqlite / SqliteDatabase.layer)'
    case "pg":
      return "turn `fsync` and `synchronous_commit` on for the server or database (postgresql.conf, or ALTER DATABASE … SET synchronous_commit = on)"
    case "memory":
      return "use StoresSqlite or StoresPg"
  }
}

/**
 * The `mode: "production"` rule: the backend must be durable (the authoritative stores must outlive the process)
 * and, when `durability: "power-loss"` is asked for, power-loss durable. The error names the option to change.
 */
export const checkMode = (info: BackendInfo, options: ModeOptions = {}): Either.Either<void, StorageError> => {
  if (options.mode !== "production") return Either.void
  if (!info.durable) {
    return Either.left(
      modeError(
        info,
        `mode "production" refuses the ${info.name === "memory" ? "memory backend" : `${info.name} backend on a non-durable database (${info.durability})`}: ` +
          `${authoritativeStores.join(" and ")} are authoritative and would be lost when the process exits. ` +
          `Use StoresSqlite({ filename }) or StoresPg({ url }) (AGENT_STORES_BACKEND=sqlite or postgres), or drop mode: "production".`
      )
    )
  }
  if (options.durability === "power-loss" && !info.powerLossDurable) {
    return Either.left(
      modeError(
        info,
        `durability "power-loss" was asked for, but ${info.durability} To fix it, ${powerLossFix(info)}; or ask for durability: "process".`
      )
    )
  }
  return Either.void
}

const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n/g, " ")

/** `rows` (default: every store's guarantees) as a Markdown table, one row per store: what the README prints. */
export const guaranteesMarkdown = (rows: ReadonlyArray<StoreGuarantee> = guarantees): string =>
  [
    "| Store | Role | Atomicity | Ordering | Durability | Across processes |",
    "|---|---|---|---|---|---|",
    ...rows.map(
      (g) =>
        `| \`${g.store}\` | ${g.role} | ${cell(g.atomicity)} | ${cell(g.ordering)} | ${cell(g.durability)} | ${cell(g.concurrency)} |`
    )
  ].join("\n")

/** `backends` as a Markdown table: name, version, durable, power-loss durable, durability, concurrency. */
export const backendsMarkdown = (backends: ReadonlyArray<BackendInfo>): string =>
  [
    "| Backend | Version | Durable | Power-loss durable | What a commit survives | Across processes |",
    "|---|---|---|---|---|---|",
    ...backends.map(
      (b) =>
        `| ${b.name} | ${cell(b.serverVersion)} | ${b.durable ? "yes" : "no"} | ${b.powerLossDurable ? "yes" : "no"} | ${cell(b.durability)} | ${cell(b.concurrency)} |`
    )
  ].join("\n")
