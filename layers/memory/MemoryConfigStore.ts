/** `ConfigStore` in memory: for tests and ephemeral agents. */
import { Effect, Layer } from "effect"
import { type ConfigDriver, type ConfigRow, ConfigStore, makeConfigStore } from "../../src/Config.ts"
import type { PageQuery } from "../../src/Page.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

/** The page of `versions` (ascending by version) that `page` asks for. */
const pageOf = (versions: ReadonlyArray<ConfigRow>, page: PageQuery): Array<ConfigRow> => {
  const asc = page.order === "asc"
  const after = page.after?.[0] as number | undefined
  const rows: Array<ConfigRow> = []
  let skip = page.offset
  for (
    let i = asc ? 0 : versions.length - 1;
    i >= 0 && i < versions.length && rows.length < page.limit;
    i += asc ? 1 : -1
  ) {
    const row = versions[i]!
    if (after !== undefined && (asc ? row.version <= after : row.version >= after)) continue
    if (skip > 0) skip--
    else rows.push({ ...row })
  }
  return rows
}

/** A `ConfigDriver` over the shared in-memory maps: each document's versions, oldest first. */
export const driver = Effect.map(MemoryDatabase, (db): ConfigDriver => {
  const documents = db.map<string, Array<ConfigRow>>("config_versions")
  return {
    latest: (name) =>
      Effect.sync(() => {
        const versions = documents.get(name)
        const row = versions?.[versions.length - 1]
        return row && { ...row }
      }),
    version: (name, version) =>
      Effect.sync(() => {
        const row = documents.get(name)?.find((row) => row.version === version)
        return row && { ...row }
      }),
    insert: (row) =>
      Effect.sync(() => {
        const versions = documents.get(row.name)
        if (versions === undefined) documents.set(row.name, [{ ...row }])
        else if (versions[versions.length - 1]!.version >= row.version) return false
        else versions.push({ ...row })
        return true
      }),
    history: (name, page) => Effect.sync(() => pageOf(documents.get(name) ?? [], page)),
    delete: (name) =>
      Effect.sync(() => {
        documents.delete(name)
      })
  }
})

/** `ConfigStore` over a `MemoryDatabase`. */
export const layerWithDatabase: Layer.Layer<ConfigStore, never, MemoryDatabase> = Layer.effect(
  ConfigStore,
  Effect.map(driver, makeConfigStore)
)

/** `ConfigStore` in memory, with its own `MemoryDatabase`. */
export const layer: Layer.Layer<ConfigStore> = layerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))
