/**
 * Migration `0003_chats` on SQLite and PostgreSQL: tables made by the earlier
 * migrations, holding sessions with transcripts (content with U+0000, lone
 * surrogates and U+2028; a repeated message id; a transcript saved from a
 * conversation that already holds some of its messages), are migrated when a
 * layer is built, and each session's chat is then its conversation.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { DateTime, Effect, Layer, Option } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import { tablesOf } from "../layers/Registry.ts"
import * as Kit from "../layers/sql/Kit.ts"
import { conversationsSchema, sessionsSchema } from "../layers/sql/SqlChats.ts"
import * as SqlConversationStore from "../layers/sql/SqlConversationStore.ts"
import * as SqliteDatabase from "../layers/sql/SqliteDatabase.ts"
import * as PgDatabase from "../layers/sql/PgDatabase.ts"
import * as SqlSessionStore from "../layers/sql/SqlSessionStore.ts"
import { ConversationStore } from "../src/Conversation.ts"
import { SessionStore } from "../src/Session.ts"
import { dropPrefix, pgReady, pgUrl } from "./pg.ts"

const odd = "nul \u0000 half \ud800 \udc00 line \u2028 \\u0000"

/** A transcript message as the old `save` wrote it. */
const old = (id: string, text: string, createdAt: number, metadata?: object) =>
  metadata === undefined
    ? { id, role: "user", parts: [{ type: "text", text }], createdAt }
    : { id, role: "assistant", parts: [{ type: "text", text }], createdAt, metadata }

const transcriptA = [old("m1", odd, 1), old("m2", "two", 2, { model: "m", [odd]: [odd] }), old("m1", "again", 3)]
const transcriptB = [old("x1", "saved copy of x1", 4), old("x2", "only in the transcript", 5)]

/** The statements of migrations `names` of `schema` for `dialect`, with the tables of `prefix`. */
const statements = (schema: Kit.SqlSchema, names: ReadonlyArray<string>, prefix: string, dialect: Kit.Dialect) =>
  names.flatMap((name) =>
    schema.migrations[name]!.flatMap((step) => {
      if (typeof step !== "string" && "program" in step) return []
      const text = typeof step === "string" ? step : step[dialect]
      return text === undefined ? [] : [Kit.resolve(text, prefix, dialect)]
    })
  )

/** The set-up: the tables as migrations 0001 and 0002 left them, with sessions, transcripts and a conversation. */
const setUp = (prefix: string, dialect: Kit.Dialect): ReadonlyArray<readonly [string, ReadonlyArray<unknown>]> => {
  const t = (name: string) => `"${prefix}_${name}"`
  const ddl = [
    ...statements(sessionsSchema, ["0001_sessions", "0002_json_as_text"], prefix, dialect),
    ...statements(conversationsSchema, ["0001_conversations", "0002_json_as_text"], prefix, dialect)
  ].map((text) => [text, []] as const)
  const p = dialect === "pg" ? (n: number) => `$${n}` : () => "?"
  const migrated = (schema: string) => [
    [
      `CREATE TABLE ${t(`${schema}_migrations`)} (migration_id integer PRIMARY KEY NOT NULL,
        created_at ${dialect === "pg" ? "timestamp with time zone NOT NULL DEFAULT now()" : "datetime NOT NULL DEFAULT current_timestamp"},
        name text NOT NULL)`,
      []
    ] as const,
    [
      `INSERT INTO ${t(`${schema}_migrations`)} (migration_id, name) VALUES (1, ${p(1)}), (2, 'json_as_text')`,
      [schema]
    ] as const
  ]
  const session = `INSERT INTO ${t("sessions")} (id, agent_id, channel, title, status, metadata, message_count, created_at,
    updated_at, version, transcript) VALUES (${p(1)}, NULL, NULL, NULL, 'active', '{}', ${p(2)}, 10, 20, 1, ${p(3)})`
  return [
    ...ddl,
    ...migrated("sessions"),
    ...migrated("conversations"),
    [session, ["a", 3, JSON.stringify(transcriptA)]],
    [session, ["b", 2, JSON.stringify(transcriptB)]],
    [session, ["c", 0, "[]"]],
    [
      `INSERT INTO ${t("conversations")} (id, session_id, title, model, metadata, message_count, last_seq, created_at,
        updated_at, version) VALUES ('b', 'b', 'kept', NULL, '{}', 2, 2, 1, 1, 1)`,
      []
    ],
    [
      `INSERT INTO ${t("messages")} (conversation_id, seq, id, role, parts, metadata, created_at) VALUES
        ('b', 1, 'x1', 'user', '[{"type":"text","text":"x1"}]', NULL, 1),
        ('b', 2, 'y', 'assistant', '[{"type":"text","text":"y"}]', NULL, 2)`,
      []
    ]
  ]
}

const withTimes = (messages: ReadonlyArray<{ readonly createdAt: number }>) =>
  messages.map((message) => ({ ...message, createdAt: DateTime.unsafeMake(message.createdAt) }))

/** What the stores hold once the layer has migrated the tables. */
const check = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const conversations = yield* ConversationStore
  const [a1, a2, a3] = transcriptA
  expect(Option.getOrThrow(yield* sessions.load("a"))).toEqual(withTimes([a1!, a2!, { ...a3!, id: "m1~3" }]))
  expect(yield* sessions.get("a")).toMatchObject({ messageCount: 3 })
  expect(yield* conversations.get("a")).toMatchObject({ sessionId: "a", messageCount: 3, lastSeq: 3 })
  const b = Option.getOrThrow(yield* sessions.load("b"))
  expect(b.map((m) => [m.id, m.parts])).toEqual([
    ["x1", [{ type: "text", text: "x1" }]],
    ["y", [{ type: "text", text: "y" }]],
    ["x2", [{ type: "text", text: "only in the transcript" }]]
  ])
  expect((yield* conversations.messages("b")).map((m) => m.seq)).toEqual([1, 2, 3])
  expect(yield* conversations.get("b")).toMatchObject({ title: "kept", messageCount: 3, lastSeq: 3 })
  expect(yield* sessions.load("c")).toEqual(Option.some([]))
  expect(yield* sessions.get("c")).toMatchObject({ messageCount: 0 })
  // The chat works as a chat from here on.
  yield* sessions.save("a", [...Option.getOrThrow(yield* sessions.load("a")), { role: "user", parts: [] }])
  expect((yield* conversations.messages("a")).map((m) => m.seq)).toEqual([1, 2, 3, 4])
})

const stores = (prefix: string) =>
  Layer.mergeAll(
    SqlSessionStore.layerWith({ tablePrefix: prefix }),
    SqlConversationStore.layerWith({ tablePrefix: prefix })
  )

describe("migration 0003_chats", () => {
  it("moves SQLite transcripts into their conversations and drops the transcript column", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "agent-stores-")), "old.db")
    const prefix = "old"
    const db = new Database(file)
    for (const [text, params] of setUp(prefix, "sqlite")) db.prepare(text).run(...params)
    db.close()
    await Effect.runPromise(
      check.pipe(Effect.provide(stores(prefix).pipe(Layer.provide(SqliteDatabase.layer({ filename: file })))))
    )
    const after = new Database(file)
    const columns = after.prepare(`PRAGMA table_info("${prefix}_sessions")`).all() as Array<{ name: string }>
    expect(columns.map((c) => c.name)).not.toContain("transcript")
    expect(columns.map((c) => c.name)).not.toContain("message_count")
    after.close()
  })
})

const unreachable = await pgReady("migration 0003_chats on PostgreSQL")
if (unreachable !== undefined) {
  describe.skip("PostgreSQL", () => it("needs a reachable server", () => {}))
} else {
  const prefix = `t${process.pid}_chats`
  afterAll(() => dropPrefix(prefix, tablesOf(prefix)))
  it("moves PostgreSQL transcripts into their conversations and drops the transcript column", async () => {
    const sql = postgres(pgUrl, { max: 1, onnotice: () => {} })
    try {
      for (const [text, params] of setUp(prefix, "pg")) await sql.unsafe(text, params as Array<any>)
      await Effect.runPromise(
        check.pipe(Effect.provide(stores(prefix).pipe(Layer.provide(PgDatabase.layer({ url: pgUrl })))))
      )
      const columns =
        await sql`SELECT column_name FROM information_schema.columns WHERE table_name = ${`${prefix}_sessions`}`
      expect(columns.map((c) => c["column_name"])).not.toContain("transcript")
      expect(columns.map((c) => c["column_name"])).not.toContain("message_count")
    } finally {
      await sql.end({ timeout: 1 })
    }
  })
}
