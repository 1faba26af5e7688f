/** The SQL layers through a caller's own `SqlClient` on SQLite (@effect/sql-sqlite-node): the kit's client runner. */
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Layer } from "effect"
import { StoresSql } from "../layers/Stores.ts"
import { suites } from "./suites/index.ts"

suites("SqlClient on sqlite-node", StoresSql().pipe(Layer.provide(SqliteClient.layer({ filename: ":memory:" }))))
