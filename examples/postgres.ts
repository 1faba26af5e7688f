/**
 * A program whose backend is chosen by configuration (`StoresFromConfig`), run on PostgreSQL:
 *
 *   AGENT_STORES_BACKEND=postgres AGENT_STORES_URL=postgres://postgres@127.0.0.1:5432/test npm run example:postgres
 *
 * (`DATABASE_URL` is read when `AGENT_STORES_URL` is absent). Its tables are named by `AGENT_STORES_TABLE_PREFIX`,
 * a fresh `example_…` prefix when unset; at the end it drops the tables the run created, and only those.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { SqlClient } from "@effect/sql/SqlClient"
import { Config, ConfigProvider, Console, Effect, Option, Schema } from "effect"
import { StoresFromConfig } from "../layers/Stores.ts"
import { AgentMemoryStore, ConfigStore, ConversationStore, SessionStore, TaskStore } from "../src/index.ts"

/** The agent's settings, stored as a typed configuration document. */
const AgentSettings = Schema.Struct({
  model: Schema.String,
  temperature: Schema.Number,
  tools: Schema.Array(Schema.String)
})

const program = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const conversations = yield* ConversationStore
  const tasks = yield* TaskStore
  const memory = yield* AgentMemoryStore
  const configs = yield* ConfigStore

  yield* configs.save(AgentSettings, "support-bot", { model: "gpt-4o", temperature: 0.2, tools: ["lookupOrder"] })
  const settings = yield* configs.get(AgentSettings, "support-bot")
  yield* Console.log(`settings v${settings.version}: ${settings.value.model}, tools ${settings.value.tools.join(", ")}`)

  const session = yield* sessions.create({ agentId: "support-bot", channel: "email" })
  const chat = yield* conversations.create({ sessionId: session.id, model: settings.value.model })
  yield* conversations.appendMany(chat.id, [
    { role: "user", parts: [{ type: "text", text: "Order 1042 has not arrived." }] },
    {
      role: "assistant",
      parts: [{ type: "tool-call", toolCallId: "call-1", toolName: "lookupOrder", input: { order: 1042 } }],
      metadata: { model: settings.value.model, finishReason: "tool-calls" }
    }
  ])

  const lookup = yield* tasks.save({ conversationId: chat.id, description: "Look up order 1042", priority: "high" })
  yield* tasks.save({ conversationId: chat.id, description: "Email the customer", dependsOn: [lookup.id] })
  const [first, second] = yield* Effect.all(
    [tasks.claimNext({ agentId: "worker-1" }), tasks.claimNext({ agentId: "worker-2" })],
    { concurrency: "unbounded" }
  )
  const claimed = [first, second].filter(Option.isSome).map((task) => task.value.description)
  yield* Console.log(`two claimers at once got ${claimed.length} ready task: ${claimed.join(", ")}`)

  yield* memory.put({ agentId: "support-bot", key: "customer:1042", value: { mood: "worried" }, ttl: "1 day" })
  const messages = yield* conversations.messages(chat.id)
  yield* Console.log(
    `conversation ${chat.id}: ${messages.length} messages, roles ${messages.map((m) => m.role).join(", ")}`
  )
})

/** The tables of `prefix` in the current schema. */
const tablesOf = (sql: SqlClient, prefix: string) =>
  sql<{ readonly tablename: string }>`
    SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND starts_with(tablename, ${`${prefix}_`})
  `.pipe(Effect.map((rows) => rows.map((row) => row.tablename)))

/** The functions of `prefix` in the current schema (the append-only and reference-count triggers'), by signature. */
const functionsOf = (sql: SqlClient, prefix: string) =>
  sql<{ readonly signature: string }>`
    SELECT p.oid::regprocedure::text AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = current_schema() AND starts_with(p.proname, ${`${prefix}_`})
  `.pipe(Effect.map((rows) => rows.map((row) => row.signature)))

/** The prefix when `AGENT_STORES_TABLE_PREFIX` is unset: one per run. */
const freshPrefix = `example_${Date.now().toString(36)}`

/** Runs `program` on the stores `StoresFromConfig` builds, then drops the tables of the prefix this run created. */
const runAndCleanUp = Effect.gen(function* () {
  const prefix = yield* Config.string("AGENT_STORES_TABLE_PREFIX")
  const sql = yield* SqlClient
  const existing = new Set(yield* tablesOf(sql, prefix))
  const existingFunctions = new Set(yield* functionsOf(sql, prefix))
  const dropCreated = Effect.gen(function* () {
    const created = (yield* tablesOf(sql, prefix)).filter((table) => !existing.has(table))
    yield* Effect.forEach(created, (table) => sql`DROP TABLE IF EXISTS ${sql(table)} CASCADE`, { discard: true })
    const functions = (yield* functionsOf(sql, prefix)).filter((signature) => !existingFunctions.has(signature))
    // A signature read from the catalogue (regprocedure text, quoted as PostgreSQL quotes it), not user data.
    yield* Effect.forEach(functions, (signature) => sql.unsafe(`DROP FUNCTION IF EXISTS ${signature} CASCADE`), {
      discard: true
    })
    yield* Console.log(`dropped the ${created.length} tables this run created (prefix ${prefix})`)
  }).pipe(Effect.orDie)

  yield* Console.log(`stores on PostgreSQL, table prefix ${prefix}`)
  yield* program.pipe(Effect.provide(StoresFromConfig), Effect.ensuring(dropCreated))
}).pipe(
  Effect.provide(
    PgClient.layerConfig({
      url: Config.redacted("AGENT_STORES_URL").pipe(Config.orElse(() => Config.redacted("DATABASE_URL")))
    })
  )
)

const main = Effect.gen(function* () {
  const backend = yield* Config.string("AGENT_STORES_BACKEND").pipe(Config.withDefault("sqlite"))
  if (backend !== "postgres") {
    return yield* Effect.dieMessage("this example runs on PostgreSQL: set AGENT_STORES_BACKEND=postgres")
  }
  yield* runAndCleanUp
}).pipe(
  Effect.withConfigProvider(
    ConfigProvider.fromEnv().pipe(
      ConfigProvider.orElse(() => ConfigProvider.fromMap(new Map([["AGENT_STORES_TABLE_PREFIX", freshPrefix]])))
    )
  )
)

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
