/** `PlanStore` and `TemplateStore` in memory: for tests and ephemeral agents. */
import { Effect, Either, Layer } from "effect"
import type { PageQuery } from "../../src/Page.ts"
import {
  makePlanStore,
  makeTemplateStore,
  type PlanDriver,
  type PlanRow,
  PlanStore,
  type TemplateDriver,
  type TemplateRow,
  TemplateStore
} from "../../src/Plan.ts"
import { MemoryDatabase } from "./MemoryDatabase.ts"

/** A `PlanDriver` over the shared in-memory tables: plans in `(createdAt, id)` order. */
export const planDriver = Effect.map(MemoryDatabase, (db): PlanDriver => {
  const plans = db.table("plans", (row: PlanRow) => [row.createdAt, row.id])
  return {
    insert: (row) =>
      Effect.sync(() => {
        if (plans.has(row.id)) return false
        plans.set(row.id, { ...row })
        return true
      }),
    get: (id) =>
      Effect.sync(() => {
        const row = plans.get(id)
        return row && { ...row }
      }),
    list: (filter, page) =>
      Effect.sync(() =>
        plans
          .page(
            page,
            (row) =>
              (filter.conversationId === undefined || row.conversationId === filter.conversationId) &&
              (filter.status === undefined || row.status === filter.status)
          )
          .map((row) => ({ ...row }))
      ),
    delete: (id) =>
      Effect.sync(() => {
        if (plans.delete(id)) db.deleted("plans", id)
      }),
    modify: (id, change) =>
      Effect.sync(() => {
        const current = plans.get(id)
        if (current === undefined) return undefined
        return Either.map(change({ ...current }), (next) => {
          const stored = { ...next, id: current.id, createdAt: current.createdAt }
          plans.set(id, stored)
          return { ...stored }
        })
      })
  }
})

/** A template's versions, oldest first (the last one is the current version). */
type Versions = Array<TemplateRow>

/** The page of `versions` (ascending by version) that `page` asks for. */
const versionPage = (versions: Versions, page: PageQuery): Array<TemplateRow> => {
  const after = page.after?.[0] as number | undefined
  const ordered = page.order === "asc" ? versions : [...versions].reverse()
  const rows = ordered.filter(
    (row) => after === undefined || (page.order === "asc" ? row.version > after : row.version < after)
  )
  return rows.slice(page.offset, page.offset + page.limit).map((row) => ({ ...row }))
}

/** A `TemplateDriver` over the shared in-memory tables: current versions in `(name, id)` order, plus histories. */
export const templateDriver = Effect.map(MemoryDatabase, (db): TemplateDriver => {
  const templates = db.table("templates", (row: TemplateRow) => [row.name, row.id])
  const histories = db.map<string, Versions>("template_versions")
  const names = db.map<string, string>("template_names")
  const byName = (name: string) => {
    const id = names.get(name)
    return id === undefined ? undefined : templates.get(id)
  }
  return {
    get: (id) =>
      Effect.sync(() => {
        const row = templates.get(id)
        return row && { ...row }
      }),
    getByName: (name) =>
      Effect.sync(() => {
        const row = byName(name)
        return row && { ...row }
      }),
    resolve: (key) =>
      Effect.sync(() => {
        const row = templates.get(key) ?? byName(key)
        return row && { ...row }
      }),
    version: (id, version) =>
      Effect.sync(() => {
        const row = histories.get(id)?.find((row) => row.version === version)
        return row && { ...row }
      }),
    history: (id, page) => Effect.sync(() => versionPage(histories.get(id) ?? [], page)),
    list: (filter, page) =>
      Effect.sync(() =>
        templates
          .page(page, (row) => filter.category === undefined || row.category === filter.category)
          .map((row) => ({ ...row }))
      ),
    delete: (id) =>
      Effect.sync(() => {
        const row = templates.get(id)
        if (row === undefined) return
        templates.delete(id)
        names.delete(row.name)
        histories.delete(id)
        db.deleted("templates", id)
      }),
    write: (row) =>
      Effect.sync(() => {
        const current = templates.get(row.id)
        if ((current?.version ?? 0) !== row.version - 1) return "stale"
        const holder = names.get(row.name)
        if (holder !== undefined && holder !== row.id) return "name-taken"
        // The listing's key (name, id) changes with a rename: re-insert so the table re-sorts.
        if (current !== undefined) {
          templates.delete(row.id)
          names.delete(current.name)
        }
        templates.set(row.id, { ...row })
        names.set(row.name, row.id)
        const versions = histories.get(row.id)
        if (versions === undefined) histories.set(row.id, [{ ...row }])
        else versions.push({ ...row })
        return "saved"
      })
  }
})

/** `PlanStore` over a `MemoryDatabase`. */
export const planLayerWithDatabase: Layer.Layer<PlanStore, never, MemoryDatabase> = Layer.effect(
  PlanStore,
  Effect.map(planDriver, makePlanStore)
)

/** `PlanStore` in memory, with its own `MemoryDatabase`. */
export const planLayer: Layer.Layer<PlanStore> = planLayerWithDatabase.pipe(Layer.provide(MemoryDatabase.layer))

/** `TemplateStore` over a `MemoryDatabase`. */
export const templateLayerWithDatabase: Layer.Layer<TemplateStore, never, MemoryDatabase> = Layer.effect(
  TemplateStore,
  Effect.map(templateDriver, makeTemplateStore)
)

/** `TemplateStore` in memory, with its own `MemoryDatabase`. */
export const templateLayer: Layer.Layer<TemplateStore> = templateLayerWithDatabase.pipe(
  Layer.provide(MemoryDatabase.layer)
)
