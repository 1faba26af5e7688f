/**
 * `PlanStore` and `TemplateStore`: an agent's plans (ordered steps with their
 * status and result) and its prompt templates (named, versioned text with
 * `{{variable}}` placeholders, rendered from the store).
 *
 * Template syntax: `{{name}}` (spaces inside the braces allowed, `name` being
 * a letter or `_` followed by letters, digits, `_`, `.` or `-`) is a
 * placeholder; `\{{` is a literal `{{` (the backslash is dropped); any other
 * text, including a `{{` that does not open a well-formed placeholder (such
 * as `{{"json": 1}}`), is literal. Values are inserted verbatim and never
 * scanned again.
 */
import { Clock, Context, Effect, Either, Option, Schema } from "effect"
import { types } from "node:util"
import { Conflict, InvalidInput, NotFound, type StorageError } from "./Errors.ts"
import { uuidv7At } from "./Id.ts"
import { JsonObject, parseJson, Text } from "./Json.ts"
import { type KeyShape, type Page, PageOptions, type PageQuery, toPage, toPageQuery } from "./Page.ts"
import { byId, checkId, decodeInput, decodeOptions, isPlainObject, kindOf, UpdateOptions, Version } from "./Record.ts"
import { utcFromMillis } from "./Time.ts"
import { traced } from "./Traced.ts"

const Key = Text.pipe(Schema.minLength(1), Schema.maxLength(255))

/** `decodeOptions` that skips the Schema when the options are absent (the common case). */
const optionsDecoder = <A, I>(entity: string, schema: Schema.Schema<A, I>) => {
  const decode = decodeOptions(entity, schema)
  const none = Effect.succeed({} as A)
  return (input: unknown): Effect.Effect<A, InvalidInput> => (input === undefined ? none : decode(input))
}

// ---------------------------------------------------------------------------
// Plans

/** A plan id: a non-empty Text (see `Json.ts`) up to 255 characters; UUIDv7 when generated. */
export const PlanId = Key.pipe(Schema.brand("PlanId"))
/** A plan id. */
export type PlanId = typeof PlanId.Type

/** A step id, unique within its plan: a non-empty Text up to 255 characters; UUIDv7 when generated. */
export const StepId = Key.pipe(Schema.brand("StepId"))
/** A step id. */
export type StepId = typeof StepId.Type

/** Lifecycle of a plan. */
export const PlanStatus = Schema.Literal("draft", "active", "completed", "abandoned")
/** Lifecycle of a plan. */
export type PlanStatus = typeof PlanStatus.Type

/** Lifecycle of a step. */
export const StepStatus = Schema.Literal("pending", "in_progress", "completed", "failed", "skipped")
/** Lifecycle of a step. */
export type StepStatus = typeof StepStatus.Type

/** The most steps a plan holds. */
export const maxSteps = 1000

/** A step of a plan. `description` and `result` are content, stored verbatim. */
export const PlanStep = Schema.Struct({
  id: StepId,
  description: Schema.String,
  status: StepStatus,
  result: Schema.optional(Schema.String)
})
/** A step of a plan. */
export type PlanStep = typeof PlanStep.Type

/**
 * A plan: ordered steps toward a goal within a conversation. `conversationId` and `title`
 * follow the Text rule; `description`, the steps' content and `metadata` are stored verbatim.
 */
export const Plan = Schema.Struct({
  id: PlanId,
  conversationId: Key,
  title: Text,
  description: Schema.optional(Schema.String),
  steps: Schema.Array(PlanStep),
  status: PlanStatus,
  metadata: JsonObject,
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  version: Schema.Int
})
/** A plan. */
export type Plan = typeof Plan.Type

/** A step as `save` takes it: `id` generated and `status` `pending` when absent. */
export const PlanStepInput = Schema.Struct({
  id: Schema.optional(StepId),
  description: Schema.String,
  status: Schema.optional(StepStatus),
  result: Schema.optional(Schema.String)
})
/** A step as `save` takes it. */
export type PlanStepInput = typeof PlanStepInput.Encoded

/**
 * Input of `save`: the whole plan. Without `id` a new plan is created; with one, the plan is
 * created or replaced (keeping `createdAt`). Defaults: no steps, `draft`, empty metadata.
 */
export const PlanInput = Schema.Struct({
  id: Schema.optional(PlanId),
  conversationId: Key,
  title: Text,
  description: Schema.optional(Schema.String),
  steps: Schema.optional(Schema.Array(PlanStepInput).pipe(Schema.maxItems(maxSteps))),
  status: Schema.optional(PlanStatus),
  metadata: Schema.optional(JsonObject)
})
/** Input of `save`. */
export type PlanInput = typeof PlanInput.Encoded

/** Input of `updateStep`: absent fields are kept, `result: null` clears the result. */
export const StepPatch = Schema.Struct({
  description: Schema.optional(Schema.String),
  status: Schema.optional(StepStatus),
  result: Schema.optional(Schema.NullOr(Schema.String))
})
/** Input of `updateStep`. */
export type StepPatch = typeof StepPatch.Encoded

/** Options of `PlanStore.list`: filters plus paging (oldest first). */
export const PlanListOptions = Schema.Struct({
  ...PageOptions.fields,
  conversationId: Schema.optional(Key),
  status: Schema.optional(PlanStatus)
})
/** Options of `PlanStore.list`. */
export type PlanListOptions = typeof PlanListOptions.Encoded

/** The plan store. */
export class PlanStore extends Context.Tag("effect-agent-stores/PlanStore")<
  PlanStore,
  {
    /**
     * Creates (no `id`, or an unknown one) or replaces a plan; bumps `version` on replace.
     * `Conflict` if `expectedVersion` is given and stale (`actual: 0` when the plan does not exist);
     * without it a save never fails with `Conflict`.
     */
    readonly save: (
      plan: PlanInput,
      options?: UpdateOptions
    ) => Effect.Effect<Plan, InvalidInput | Conflict | StorageError>
    /** The plan with `id`, or `NotFound`. A non-string id is `InvalidInput`. */
    readonly get: (id: string) => Effect.Effect<Plan, NotFound | InvalidInput | StorageError>
    /** The plan with `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Plan>, InvalidInput | StorageError>
    /** Plans oldest first, filtered by conversation and status, paged by keyset cursor. */
    readonly list: (options?: PlanListOptions) => Effect.Effect<Page<Plan>, InvalidInput | StorageError>
    /** Deletes a plan; unknown ids are a no-op. */
    readonly delete: (id: string) => Effect.Effect<void, InvalidInput | StorageError>
    /**
     * Patches one step in one atomic step (read, patch and write under the plan's lock), so
     * concurrent step updates are never lost; bumps the plan's `version`. `NotFound` for an
     * unknown plan (`entity: "Plan"`) or step (`entity: "PlanStep"`); `Conflict` if
     * `expectedVersion` (the plan's) is stale.
     */
    readonly updateStep: (
      planId: string,
      stepId: string,
      patch: StepPatch,
      options?: UpdateOptions
    ) => Effect.Effect<Plan, NotFound | Conflict | InvalidInput | StorageError>
  }
>() {}

/** A plan as a driver stores it: `description` a JSON string literal, steps and metadata JSON text, times in ms. */
export interface PlanRow {
  readonly id: string
  readonly conversationId: string
  readonly title: string
  readonly description: string | null
  readonly steps: string
  readonly status: string
  readonly metadata: string
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** The filters of `PlanStore.list`, as a driver receives them. */
export interface PlanFilter {
  readonly conversationId?: string | undefined
  readonly status?: string | undefined
}

/** What a backend implements for `PlanStore`; everything else lives in `makePlanStore`. */
export interface PlanDriver {
  /** Inserts a new row; `false` when the id is taken. */
  readonly insert: (row: PlanRow) => Effect.Effect<boolean, StorageError>
  readonly get: (id: string) => Effect.Effect<PlanRow | undefined, StorageError>
  readonly list: (filter: PlanFilter, page: PageQuery) => Effect.Effect<ReadonlyArray<PlanRow>, StorageError>
  readonly delete: (id: string) => Effect.Effect<void, StorageError>
  /**
   * In one atomic step (no other write to the plan in between): reads plan `id`, applies
   * `change` and, when it gives a row, stores that row (every field but `id` and `createdAt`)
   * and returns it as stored; a refusal is returned and nothing is written. `undefined` when
   * the plan does not exist.
   */
  readonly modify: <E>(
    id: string,
    change: (current: PlanRow) => Either.Either<PlanRow, E>
  ) => Effect.Effect<Either.Either<PlanRow, E> | undefined, StorageError>
}

const planEntity = "Plan"

/** Content as a column value: a JSON string literal, so U+0000 and lone surrogates survive every backend. */
const contentText = (value: string | undefined): string | null => (value === undefined ? null : JSON.stringify(value))

const decodePlanRow = (row: PlanRow): Plan => {
  const plan: { -readonly [K in keyof Plan]: Plan[K] } = {
    id: row.id as PlanId,
    conversationId: row.conversationId,
    title: row.title,
    steps: parseJson(row.steps) as Array<PlanStep>,
    status: row.status as PlanStatus,
    metadata: parseJson(row.metadata) as JsonObject,
    createdAt: utcFromMillis(row.createdAt),
    updatedAt: utcFromMillis(row.updatedAt),
    version: row.version
  }
  if (row.description !== null) plan.description = parseJson(row.description) as string
  return plan
}

const stepOf = (id: string, description: string, status: string, result: string | undefined): PlanStep =>
  (result === undefined ? { id, description, status } : { id, description, status, result }) as PlanStep

/** The `Conflict` of a stale `expectedVersion` (`actual: 0`: the plan does not exist). */
const stale = (id: string, expected: number, actual: number) =>
  new Conflict({ entity: planEntity, id, expected, actual })

const decodePlanInput = decodeInput(planEntity, PlanInput)
const decodeStepPatch = decodeInput("PlanStep", StepPatch)
const decodePlanList = decodeOptions(planEntity, PlanListOptions)
const decodeUpdateOptions = optionsDecoder(planEntity, UpdateOptions)

/** Builds a `PlanStore` over a driver: validation, ids, clock, versions and encoding live here. */
export const makePlanStore = (driver: PlanDriver) => {
  const get = (id: unknown) =>
    Effect.map(byId(planEntity, id, undefined, driver.get), (row) =>
      row === undefined ? undefined : decodePlanRow(row)
    )

  return traced(
    "PlanStore",
    driver,
    PlanStore.of({
      save: Effect.fnUntraced(function* (input, options) {
        const fields = yield* decodePlanInput(input)
        const { expectedVersion } = yield* decodeUpdateOptions(options)
        const now = yield* Clock.currentTimeMillis
        const seen = new Map<string, number>()
        const steps: Array<PlanStep> = []
        for (const [i, step] of (fields.steps ?? []).entries()) {
          const stepId = step.id ?? uuidv7At(now)
          const first = seen.get(stepId)
          if (first !== undefined) {
            return yield* InvalidInput.single(planEntity, `must be unique, steps[${first}] has it too`, [
              "steps",
              i,
              "id"
            ])
          }
          seen.set(stepId, i)
          steps.push(stepOf(stepId, step.description, step.status ?? "pending", step.result))
        }
        const fresh: PlanRow = {
          id: fields.id ?? uuidv7At(now),
          conversationId: fields.conversationId,
          title: fields.title,
          description: contentText(fields.description),
          steps: JSON.stringify(steps),
          status: fields.status ?? "draft",
          metadata: JSON.stringify(fields.metadata ?? {}),
          createdAt: now,
          updatedAt: now,
          version: 1
        }
        while (true) {
          if (fields.id !== undefined) {
            const replaced = yield* driver.modify(fresh.id, (current) =>
              expectedVersion !== undefined && current.version !== expectedVersion
                ? Either.left(stale(current.id, expectedVersion, current.version))
                : Either.right({
                    ...fresh,
                    createdAt: current.createdAt,
                    updatedAt: Math.max(now, current.updatedAt),
                    version: current.version + 1
                  })
            )
            if (replaced !== undefined) return decodePlanRow(yield* replaced)
          }
          if (expectedVersion !== undefined) return yield* stale(fresh.id, expectedVersion, 0)
          if (yield* driver.insert(fresh)) return decodePlanRow(fresh)
          // The id was taken meanwhile: a given id is replaced on the next turn; a generated one cannot be.
          if (fields.id === undefined) {
            return yield* new Conflict({ entity: planEntity, id: fresh.id, expected: 0, actual: 1, reason: "exists" })
          }
        }
      }),
      get: (id) =>
        Effect.flatMap(get(id), (plan) =>
          plan === undefined ? Effect.fail(new NotFound({ entity: planEntity, id })) : Effect.succeed(plan)
        ),
      find: (id) => Effect.map(get(id), Option.fromNullable),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodePlanList(input)
        const query = yield* toPageQuery(planEntity, options)
        const rows = yield* driver.list(options, query)
        return toPage(rows, query, decodePlanRow)
      }),
      delete: (id) => byId(planEntity, id, undefined, driver.delete),
      updateStep: Effect.fnUntraced(function* (planId, stepId, input, options) {
        const key = yield* checkId(planEntity, planId)
        if (typeof stepId !== "string") {
          return yield* InvalidInput.single("PlanStep", `must be a string, got ${kindOf(stepId)}`, ["stepId"])
        }
        const patch = yield* decodeStepPatch(input)
        const { expectedVersion } = yield* decodeUpdateOptions(options)
        if (key === undefined) return yield* new NotFound({ entity: planEntity, id: planId })
        const now = yield* Clock.currentTimeMillis
        const result = yield* driver.modify(key, (current): Either.Either<PlanRow, NotFound | Conflict> => {
          if (expectedVersion !== undefined && current.version !== expectedVersion) {
            return Either.left(stale(key, expectedVersion, current.version))
          }
          const steps = parseJson(current.steps) as Array<PlanStep>
          const index = steps.findIndex((step) => step.id === stepId)
          if (index < 0) return Either.left(new NotFound({ entity: "PlanStep", id: stepId }))
          const step = steps[index]!
          const result = patch.result === undefined ? step.result : (patch.result ?? undefined)
          steps[index] = stepOf(step.id, patch.description ?? step.description, patch.status ?? step.status, result)
          return Either.right({
            ...current,
            steps: JSON.stringify(steps),
            updatedAt: Math.max(now, current.updatedAt),
            version: current.version + 1
          })
        })
        if (result === undefined) return yield* new NotFound({ entity: planEntity, id: key })
        return decodePlanRow(yield* result)
      })
    })
  )
}

// ---------------------------------------------------------------------------
// Templates

/** A template id: a non-empty Text up to 255 characters; UUIDv7 when generated. */
export const TemplateId = Key.pipe(Schema.brand("TemplateId"))
/** A template id. */
export type TemplateId = typeof TemplateId.Type

/** A template name, unique among templates: a non-empty Text up to 255 characters. */
export const TemplateName = Key
/** A template name. */
export type TemplateName = typeof TemplateName.Type

/**
 * One version of a template. `variables` are the placeholders' names in order of first
 * appearance, derived from `content` (see the module comment for the syntax). `name` and
 * `category` follow the Text rule; `description` and `content` are stored verbatim.
 * `createdAt` is when the template was first saved, `updatedAt` when this version was.
 */
export const Template = Schema.Struct({
  id: TemplateId,
  name: TemplateName,
  description: Schema.optional(Schema.String),
  content: Schema.String,
  variables: Schema.Array(Schema.String),
  category: Schema.optional(Text),
  createdAt: Schema.DateTimeUtcFromNumber,
  updatedAt: Schema.DateTimeUtcFromNumber,
  version: Schema.Int
})
/** One version of a template. */
export type Template = typeof Template.Type

/**
 * Input of `save`. With `id`, that template gets a new version (or is created); without it,
 * the template named `name` does (or a new one is created).
 */
export const TemplateInput = Schema.Struct({
  id: Schema.optional(TemplateId),
  name: TemplateName,
  description: Schema.optional(Schema.String),
  content: Schema.String,
  category: Schema.optional(Text)
})
/** Input of `save`. */
export type TemplateInput = typeof TemplateInput.Encoded

/** Options of `get` and `render`: a past `version` instead of the current one. */
export const TemplateVersionOptions = Schema.Struct({ version: Schema.optional(Version) })
/** Options of `get` and `render`. */
export type TemplateVersionOptions = typeof TemplateVersionOptions.Encoded

/** Options of `TemplateStore.list`: a category filter plus paging (by name). */
export const TemplateListOptions = Schema.Struct({
  ...PageOptions.fields,
  category: Schema.optional(Text)
})
/** Options of `TemplateStore.list`. */
export type TemplateListOptions = typeof TemplateListOptions.Encoded

/** The variables of `render`: values are inserted as text (numbers and booleans as `String` gives them). */
export const TemplateVars = Schema.Record({
  key: Schema.String,
  value: Schema.Union(Schema.String, Schema.Number.pipe(Schema.finite()), Schema.Boolean)
})
/** The variables of `render`. */
export type TemplateVars = typeof TemplateVars.Encoded

/** The template store. Every save keeps the versions before it. */
export class TemplateStore extends Context.Tag("effect-agent-stores/TemplateStore")<
  TemplateStore,
  {
    /**
     * Saves a new version (version 1 for a new template). `Conflict` (`reason: "exists"`, `id` the
     * name) when the name belongs to another template; `Conflict` if `expectedVersion` is stale.
     */
    readonly save: (
      template: TemplateInput,
      options?: UpdateOptions
    ) => Effect.Effect<Template, InvalidInput | Conflict | StorageError>
    /** The current version of template `id`, or its `version`; `NotFound` for either unknown. */
    readonly get: (
      id: string,
      options?: TemplateVersionOptions
    ) => Effect.Effect<Template, NotFound | InvalidInput | StorageError>
    /** The current version of template `id`, if any. */
    readonly find: (id: string) => Effect.Effect<Option.Option<Template>, InvalidInput | StorageError>
    /** The current version of the template named `name`, or `NotFound`. */
    readonly getByName: (name: string) => Effect.Effect<Template, NotFound | InvalidInput | StorageError>
    /** Current versions by name (then id), filtered by category, paged by keyset cursor. */
    readonly list: (options?: TemplateListOptions) => Effect.Effect<Page<Template>, InvalidInput | StorageError>
    /** Every version of a template (by id, else by name), oldest first; `NotFound` for an unknown one. */
    readonly history: (
      nameOrId: string,
      options?: PageOptions
    ) => Effect.Effect<Page<Template>, NotFound | InvalidInput | StorageError>
    /** Deletes a template and its history; unknown ids are a no-op. */
    readonly delete: (id: string) => Effect.Effect<void, InvalidInput | StorageError>
    /**
     * The content of a template (by id, else by name; the current version unless `version`) with
     * its placeholders replaced by `vars`; extra variables are ignored, and missing ones are one
     * `InvalidInput` naming each (an issue per variable, path `["vars", name]`).
     */
    readonly render: (
      nameOrId: string,
      vars: TemplateVars,
      options?: TemplateVersionOptions
    ) => Effect.Effect<string, NotFound | InvalidInput | StorageError>
  }
>() {}

/** A template version as a driver stores it: `description` and `content` JSON string literals, `variables` JSON. */
export interface TemplateRow {
  readonly id: string
  readonly name: string
  readonly description: string | null
  readonly content: string
  readonly variables: string
  readonly category: string | null
  readonly createdAt: number
  readonly updatedAt: number
  readonly version: number
}

/** What a backend implements for `TemplateStore`; everything else lives in `makeTemplateStore`. */
export interface TemplateDriver {
  /** The current version of template `id`. */
  readonly get: (id: string) => Effect.Effect<TemplateRow | undefined, StorageError>
  /** The current version of the template named `name`. */
  readonly getByName: (name: string) => Effect.Effect<TemplateRow | undefined, StorageError>
  /** The current version of the template with id `key`, else of the one named `key`. */
  readonly resolve: (key: string) => Effect.Effect<TemplateRow | undefined, StorageError>
  /** Version `version` of template `id`. */
  readonly version: (id: string, version: number) => Effect.Effect<TemplateRow | undefined, StorageError>
  /** Versions of template `id`, keyset-paged by `version`. */
  readonly history: (id: string, page: PageQuery) => Effect.Effect<ReadonlyArray<TemplateRow>, StorageError>
  readonly list: (
    filter: { readonly category?: string | undefined },
    page: PageQuery
  ) => Effect.Effect<ReadonlyArray<TemplateRow>, StorageError>
  /** Deletes the template and all its versions. */
  readonly delete: (id: string) => Effect.Effect<void, StorageError>
  /**
   * In one atomic step: makes `row` the current version and adds it to the history, if the
   * stored version is `row.version - 1` (`0`: no template with the id). `"stale"` when it is not,
   * `"name-taken"` when another template has the name; then nothing is written.
   */
  readonly write: (row: TemplateRow) => Effect.Effect<"saved" | "stale" | "name-taken", StorageError>
}

const token = /\\\{\{|\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}/g

/** The placeholders' names of template `content`, in order of first appearance (see the module comment). */
export const templateVariables = (content: string): ReadonlyArray<string> => {
  const names = new Set<string>()
  for (const match of content.matchAll(token)) if (match[1] !== undefined) names.add(match[1])
  return [...names]
}

/** `content` with its placeholders replaced by `vars`, and the names of those `vars` lacks (in order). */
const fill = (content: string, vars: TemplateVars): { readonly text: string; readonly missing: Array<string> } => {
  const missing: Array<string> = []
  const text = content.replace(token, (match, name: string | undefined) => {
    if (name === undefined) return "{{"
    if (Object.hasOwn(vars, name)) return String(vars[name])
    if (!missing.includes(name)) missing.push(name)
    return match
  })
  return { text, missing }
}

/**
 * The variables of `render` without the Schema when they are a plain object (not a Proxy) of
 * strings, finite numbers and booleans, the common case; anything else goes through the Schema.
 */
const readVars = (input: unknown): Effect.Effect<TemplateVars, InvalidInput> => {
  try {
    if (isPlainObject(input) && !types.isProxy(input)) {
      const vars: Record<string, string | number | boolean> = {}
      let plain = true
      for (const key in input) {
        const value = input[key]
        if (typeof value === "string" || typeof value === "boolean" || Number.isFinite(value)) {
          vars[key] = value as string | number | boolean
        } else {
          plain = false
          break
        }
      }
      if (plain) return Effect.succeed(vars)
    }
  } catch {
    // a throwing getter: the Schema reports it
  }
  return decodeVars(input, ["vars"])
}

const templateEntity = "Template"

const decodeTemplateRow = (row: TemplateRow): Template => {
  const template: { -readonly [K in keyof Template]: Template[K] } = {
    id: row.id as TemplateId,
    name: row.name,
    content: parseJson(row.content) as string,
    variables: parseJson(row.variables) as Array<string>,
    createdAt: utcFromMillis(row.createdAt),
    updatedAt: utcFromMillis(row.updatedAt),
    version: row.version
  }
  if (row.description !== null) template.description = parseJson(row.description) as string
  if (row.category !== null) template.category = row.category
  return template
}

const byName: KeyShape = ["string", "string"]
const byVersion: KeyShape = ["number"]
const nameKey = (row: TemplateRow) => [row.name, row.id]
const versionKey = (row: TemplateRow) => [row.version]

const decodeTemplateInput = decodeInput(templateEntity, TemplateInput)
const decodeTemplateList = decodeOptions(templateEntity, TemplateListOptions)
const decodeHistoryOptions = decodeOptions(templateEntity, PageOptions)
const decodeVersionOptions = optionsDecoder(templateEntity, TemplateVersionOptions)
const decodeTemplateUpdate = optionsDecoder(templateEntity, UpdateOptions)
const decodeVars = decodeInput(templateEntity, TemplateVars)

/** Builds a `TemplateStore` over a driver: validation, ids, clock, versions, variables and rendering live here. */
export const makeTemplateStore = (driver: TemplateDriver) => {
  /** The current row of the template with id (else name) `key`, or its `version` when given; `undefined` if none. */
  const resolve = (key: unknown, options: unknown) =>
    options === undefined
      ? byId(templateEntity, key, undefined, driver.resolve)
      : Effect.flatMap(decodeVersionOptions(options), ({ version }) =>
          byId(templateEntity, key, undefined, (key) =>
            Effect.flatMap(driver.resolve(key), (current) =>
              current === undefined || version === undefined || version === current.version
                ? Effect.succeed(current)
                : driver.version(current.id, version)
            )
          )
        )
  const notFound = (id: unknown, options: unknown) => {
    const version = (options as { version?: unknown } | undefined)?.version
    return new NotFound({
      entity: templateEntity,
      id: version === undefined ? String(id) : `${String(id)}@v${version}`
    })
  }
  const required = (id: unknown, options?: unknown) => (row: TemplateRow | undefined) =>
    row !== undefined ? Effect.succeed(row) : Effect.fail(notFound(id, options))

  return traced(
    "TemplateStore",
    driver,
    TemplateStore.of({
      save: Effect.fnUntraced(function* (input, options) {
        const fields = yield* decodeTemplateInput(input)
        const { expectedVersion } = yield* decodeTemplateUpdate(options)
        const description = contentText(fields.description)
        const content = JSON.stringify(fields.content)
        const variables = JSON.stringify(templateVariables(fields.content))
        while (true) {
          const current = fields.id !== undefined ? yield* driver.get(fields.id) : yield* driver.getByName(fields.name)
          const actual = current?.version ?? 0
          if (expectedVersion !== undefined && actual !== expectedVersion) {
            const id = current?.id ?? fields.id ?? fields.name
            return yield* new Conflict({ entity: templateEntity, id, expected: expectedVersion, actual })
          }
          const now = yield* Clock.currentTimeMillis
          const row: TemplateRow = {
            id: current?.id ?? fields.id ?? uuidv7At(now),
            name: fields.name,
            description,
            content,
            variables,
            category: fields.category ?? null,
            createdAt: current?.createdAt ?? now,
            updatedAt: current === undefined ? now : Math.max(now, current.updatedAt),
            version: actual + 1
          }
          const outcome = yield* driver.write(row)
          if (outcome === "saved") return decodeTemplateRow(row)
          // "stale": another save won, read again. "name-taken": a Conflict, unless this save found no template by
          // its name; then one of that name was created meanwhile, and the next turn versions it.
          if (outcome === "name-taken" && (fields.id !== undefined || current !== undefined)) {
            const holder = yield* driver.getByName(fields.name)
            return yield* new Conflict({
              entity: templateEntity,
              id: fields.name,
              expected: 0,
              actual: holder?.version ?? 0,
              reason: "exists"
            })
          }
        }
      }),
      get: (id, options) =>
        Effect.flatMap(decodeVersionOptions(options), ({ version }) =>
          byId(templateEntity, id, undefined, (key) =>
            version === undefined ? driver.get(key) : driver.version(key, version)
          )
        ).pipe(Effect.flatMap(required(id, options)), Effect.map(decodeTemplateRow)),
      find: (id) =>
        Effect.map(byId(templateEntity, id, undefined, driver.get), (row) =>
          row === undefined ? Option.none() : Option.some(decodeTemplateRow(row))
        ),
      getByName: (name) =>
        Effect.flatMap(byId(templateEntity, name, undefined, driver.getByName), required(name)).pipe(
          Effect.map(decodeTemplateRow)
        ),
      list: Effect.fnUntraced(function* (input) {
        const options = yield* decodeTemplateList(input)
        const query = yield* toPageQuery(templateEntity, options, byName)
        const rows = yield* driver.list(options, query)
        return toPage(rows, query, decodeTemplateRow, nameKey)
      }),
      history: Effect.fnUntraced(function* (nameOrId, input) {
        const options = yield* decodeHistoryOptions(input)
        const query = yield* toPageQuery(templateEntity, options, byVersion)
        const current = yield* Effect.flatMap(
          byId(templateEntity, nameOrId, undefined, driver.resolve),
          required(nameOrId)
        )
        const rows = yield* driver.history(current.id, query)
        return toPage(rows, query, decodeTemplateRow, versionKey)
      }),
      delete: (id) => byId(templateEntity, id, undefined, driver.delete),
      render: (nameOrId, input, options) =>
        Effect.flatMap(readVars(input), (vars) =>
          Effect.flatMap(resolve(nameOrId, options), (row): Effect.Effect<string, NotFound | InvalidInput> => {
            if (row === undefined) return Effect.fail(notFound(nameOrId, options))
            const { text, missing } = fill(parseJson(row.content) as string, vars)
            if (missing.length === 0) return Effect.succeed(text)
            return Effect.fail(
              new InvalidInput({
                entity: templateEntity,
                message: `vars is missing ${missing.join(", ")}`,
                issues: missing.map((name) => ({ path: ["vars", name], message: "is missing" }))
              })
            )
          })
        )
    })
  )
}
