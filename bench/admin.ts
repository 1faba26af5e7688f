/** The bench modules' PostgreSQL admin connection and the stamp of their table prefixes. */
import postgres from "postgres"

/**
 * A one-connection client on `url` that has answered `SELECT 1` (for clean-up and `ANALYZE`), or, closed again, why
 * the server could not be reached.
 */
export const openAdmin = async (url: string): Promise<postgres.Sql | string> => {
  const admin = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  try {
    await admin`SELECT 1`
    return admin
  } catch (error) {
    await admin.end({ timeout: 1 })
    return `no PostgreSQL at ${url}: ${error instanceof Error ? error.message : String(error)}`
  }
}

/** A stamp of this run for table prefixes, so two runs' tables never collide. */
export const runStamp = (): string => `${process.pid}_${Date.now().toString(36)}`

/**
 * Drops `tables` (full names) and every function whose name starts with `prefix_` (trigger functions and the event
 * store's position functions outlive `DROP TABLE`).
 */
export const dropPrefixed = async (
  admin: postgres.Sql,
  prefix: string,
  tables: ReadonlyArray<string>
): Promise<void> => {
  for (const table of tables) await admin.unsafe(`DROP TABLE IF EXISTS "${table}" CASCADE`)
  const functions = await admin<Array<{ signature: string }>>`
    SELECT p.oid::regprocedure::text AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = current_schema() AND starts_with(p.proname, ${`${prefix}_`})`
  for (const { signature } of functions) await admin.unsafe(`DROP FUNCTION IF EXISTS ${signature} CASCADE`)
}
