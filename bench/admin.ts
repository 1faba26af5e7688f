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
