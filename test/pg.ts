/**
 * The PostgreSQL server the test files use: `DATABASE_URL`, default the local
 * server's `test` database. `pgReady` creates that database when the server
 * has none of that name, so a fresh server needs no set-up.
 */
import postgres from "postgres"

/** The URL the PostgreSQL tests connect to. */
export const pgUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

/** `url` for messages: no password, no query. */
export const shownUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.username === "" ? "" : `${parsed.username}@`}${parsed.host}${parsed.pathname}`
  } catch {
    return "(a URL that does not parse)"
  }
}

const answers = async (url: string): Promise<void> => {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} })
  try {
    await sql`SELECT 1`
  } finally {
    await sql.end({ timeout: 1 })
  }
}

/** PostgreSQL's "database does not exist", "already exists" and the unique index a concurrent CREATE DATABASE hits. */
const missingDatabase = "3D000"
const createdConcurrently = new Set(["42P04", "23505"])

/**
 * Makes sure the database of `url` exists and answers: when the server says it does not exist, connects to the
 * server's `postgres` database and creates it (several test files may race to; the loser's error is ignored).
 */
export const ensureDatabase = async (url: string = pgUrl): Promise<void> => {
  try {
    return await answers(url)
  } catch (error) {
    if ((error as { code?: unknown }).code !== missingDatabase) throw error
  }
  const target = new URL(url)
  const name = decodeURIComponent(target.pathname.slice(1))
  const maintenance = new URL(url)
  maintenance.pathname = "/postgres"
  const sql = postgres(maintenance.toString(), { max: 1, connect_timeout: 5, onnotice: () => {} })
  try {
    await sql.unsafe(`CREATE DATABASE "${name.replaceAll('"', '""')}"`)
  } catch (error) {
    if (!createdConcurrently.has(String((error as { code?: unknown }).code))) throw error
  } finally {
    await sql.end({ timeout: 1 })
  }
  await answers(url)
}

/**
 * Before a test file's PostgreSQL tests: `undefined` when the database of `pgUrl` is ready (created if missing),
 * else why not, printed loudly as "`what` SKIPPED"; under CI (`CI` set) an unusable server throws instead.
 */
export const pgReady = async (what: string): Promise<string | undefined> => {
  const reason = await ensureDatabase(pgUrl).then(
    () => undefined,
    (error: unknown) => (error instanceof Error ? error.message : String(error))
  )
  if (reason === undefined) return undefined
  const where = shownUrl(pgUrl)
  if (process.env.CI) throw new Error(`PostgreSQL at ${where} is not usable under CI: ${reason}`)
  console.warn(`\n*** ${what} SKIPPED: PostgreSQL at ${where} is not usable (${reason}) ***\n`)
  return reason
}

/**
 * Drops everything the stores made under `prefix` on the server of `url`: the tables of `tables` and every function
 * whose name starts with the prefix (trigger functions outlive `DROP TABLE`).
 */
export const dropPrefix = async (prefix: string, tables: ReadonlyArray<string>, url: string = pgUrl): Promise<void> => {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    for (const table of tables) await sql.unsafe(`DROP TABLE IF EXISTS "${table}" CASCADE`)
    const functions = await sql<Array<{ signature: string }>>`
      SELECT p.oid::regprocedure::text AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = current_schema() AND starts_with(p.proname, ${`${prefix}_`})`
    for (const { signature } of functions) await sql.unsafe(`DROP FUNCTION IF EXISTS ${signature} CASCADE`)
  } finally {
    await sql.end({ timeout: 1 })
  }
}
