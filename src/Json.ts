/**
 * JSON values as stored by every backend: payloads are `unknown` in storage and
 * typed by the caller. Validation rejects anything `JSON.stringify` would drop
 * or change (functions, `undefined`, `NaN`, class instances, cycles), keys
 * named `__proto__` (which object copies turn into prototypes), nesting
 * deeper than `maxJsonDepth`, and strings holding U+0000, which PostgreSQL
 * cannot store (rejected on every backend, so the backends agree).
 */
import { Schema } from "effect"

/** Whether every backend can store `text`: no U+0000, which PostgreSQL rejects in `text` and `jsonb`. */
export const isStorableText = (text: unknown): text is string => typeof text === "string" && !text.includes("\u0000")

/** A JSON object, as held in `metadata` fields. */
export type JsonObject = { readonly [key: string]: unknown }

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** Nesting deeper than this is rejected (it also stops cycles). */
export const maxJsonDepth = 256

/** Whether `value` is a JSON value that survives a `JSON.stringify` / `JSON.parse` round trip unchanged. */
export const isJson = (value: unknown, depth = 0): boolean => {
  switch (typeof value) {
    case "string":
      return isStorableText(value)
    case "boolean":
      return true
    case "number":
      return Number.isFinite(value)
    case "object": {
      if (value === null) return true
      if (depth >= maxJsonDepth) return false
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!isJson(value[i], depth + 1)) return false
        return true
      }
      if (!isPlainObject(value)) return false
      for (const key in value) {
        if (key === "__proto__") return false
        const item = (value as Record<string, unknown>)[key]
        if (item === undefined || !isJson(item, depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

/** Any JSON value. */
export const Json: Schema.Schema<unknown> = Schema.Unknown.pipe(
  Schema.filter((value) => isJson(value) || "expected a JSON value"),
  Schema.annotations({
    identifier: "Json",
    arbitrary: () => (fc) =>
      fc
        .jsonValue({ maxDepth: 3 })
        .map((value) => JSON.parse(JSON.stringify(value)))
        .filter((value) => isJson(value))
  })
)

/** A JSON object (plain object whose values are JSON). */
export const JsonObject: Schema.Schema<JsonObject> = Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
  Schema.filter((value) => isJson(value) || "expected a JSON object"),
  Schema.annotations({
    identifier: "JsonObject",
    arbitrary: () => (fc) =>
      fc
        .dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
        .map((value) => JSON.parse(JSON.stringify(value)))
        .filter((value) => isJson(value))
  })
)

/** Parses a JSON column: SQLite returns text, PostgreSQL `jsonb` arrives already parsed. */
export const parseJson = (value: unknown): unknown => (typeof value === "string" ? JSON.parse(value) : value)

/** JSON text of a JSON column value that may have arrived parsed (PostgreSQL `jsonb`). */
export const jsonText = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value))

/** A string any backend can store (see `isStorableText`). */
export const Text = Schema.String.pipe(
  Schema.filter((text) => isStorableText(text) || "must not contain U+0000", { identifier: "Text" })
)

const escapedNul = /(?:^|[^\\])(?:\\\\)*\\u0000/

/** Whether JSON text (from `JSON.stringify`) holds a string with U+0000. */
export const jsonHasNul = (json: string): boolean => json.includes("\\u0000") && escapedNul.test(json)
