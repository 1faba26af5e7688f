/**
 * Keyset paging shared by the SQL drivers: equality filters on some columns,
 * then rows past the cursor in `(created_at, id)` order, `LIMIT` and `OFFSET`.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type Sqlite from "better-sqlite3"
import type { PageQuery } from "../../src/Page.ts"

/** Column filters of a listing: `undefined` means "any". */
export type Filters = Readonly<Record<string, string | undefined>>

/** One page as an `@effect/sql` statement. */
export const selectPage = (sql: SqlClient, table: string, columns: string, filters: Filters, page: PageQuery) => {
  const desc = page.order === "desc"
  const where = [
    ...Object.entries(filters).flatMap(([column, value]) =>
      value === undefined ? [] : [sql`${sql(column)} = ${value}`]
    ),
    ...(page.after === undefined
      ? []
      : [sql`(created_at, id) ${sql.literal(desc ? "<" : ">")} (${page.after.createdAt}, ${page.after.id})`])
  ]
  const direction = sql.literal(desc ? "DESC" : "ASC")
  return sql`SELECT ${sql.literal(columns)} FROM ${sql(table)} ${where.length === 0 ? sql`` : sql`WHERE ${sql.and(where)}`}
    ORDER BY created_at ${direction}, id ${direction} LIMIT ${page.limit} OFFSET ${page.offset}`
}

/**
 * Pages on SQLite as prepared statements returning raw rows (arrays in
 * `columns` order), one statement per shape of query, prepared on first use.
 */
export const sqlitePages = <Tuple extends Array<unknown>>(db: Sqlite.Database, table: string, columns: string) => {
  const statements = new Map<string, Sqlite.Statement<Array<unknown>, Tuple>>()
  return (filters: Filters, page: PageQuery): Array<Tuple> => {
    const params: Array<unknown> = []
    const where: Array<string> = []
    for (const column in filters) {
      const value = filters[column]
      if (value === undefined) continue
      where.push(`"${column}" = ?`)
      params.push(value)
    }
    if (page.after !== undefined) {
      where.push(`(created_at, id) ${page.order === "desc" ? "<" : ">"} (?, ?)`)
      params.push(page.after.createdAt, page.after.id)
    }
    params.push(page.limit, page.offset)
    const key = `${where.join(" AND ")}|${page.order}`
    let statement = statements.get(key)
    if (statement === undefined) {
      const direction = page.order === "desc" ? "DESC" : "ASC"
      statement = db
        .prepare<Array<unknown>, Tuple>(
          `SELECT ${columns} FROM "${table}" ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
            ORDER BY created_at ${direction}, id ${direction} LIMIT ? OFFSET ?`
        )
        .raw()
      statements.set(key, statement)
    }
    return statement.all(params)
  }
}
