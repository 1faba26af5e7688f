/**
 * Canonical JSON, for anything that is hashed: one text per JSON value, so
 * equal values hash equally whatever their key order. PostgreSQL `jsonb`
 * reorders keys (and SQLite keeps them as written), so a hash is taken over
 * this text, never over what a backend returns. The rules are those of
 * RFC 8785 (JCS): object keys sorted by UTF-16 code units, no whitespace,
 * numbers as ECMAScript `Number.prototype.toString` writes them (`-0` is `0`),
 * strings escaped as `JSON.stringify` escapes them (lone surrogates as
 * `\udXXX`, U+0000 as `\u0000`).
 */
import { Either } from "effect"
import { createHash } from "node:crypto"
import { InvalidInput } from "./Errors.ts"
import { maxJsonDepth } from "./Json.ts"

/** Thrown inside `write` when a value is not JSON; caught by `canonicalJson`. */
class NotJson {
  constructor(
    readonly path: ReadonlyArray<string | number>,
    readonly reason: string
  ) {}
}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** The class name of a non-plain object, e.g. `Date`. */
const className = (value: object): string => Object.getPrototypeOf(value)?.constructor?.name ?? "object"

/** The canonical text of `value` at `path`; `ancestors` are the containers being written. */
const write = (value: unknown, path: Array<string | number>, ancestors: Set<object>): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "boolean":
      return value ? "true" : "false"
    case "number":
      if (!Number.isFinite(value)) throw new NotJson(path, `must be a finite number, got ${value}`)
      return String(value)
    case "object": {
      if (value === null) return "null"
      if (ancestors.has(value)) throw new NotJson(path, "must not contain itself (a cycle)")
      if (ancestors.size >= maxJsonDepth) throw new NotJson(path, `must not nest deeper than ${maxJsonDepth} levels`)
      ancestors.add(value)
      let text: string
      if (Array.isArray(value)) {
        text = "["
        for (let i = 0; i < value.length; i++) {
          path.push(i)
          if (!(i in value)) throw new NotJson(path, "must be a JSON value, got an array hole")
          text += (i > 0 ? "," : "") + write(value[i], path, ancestors)
          path.pop()
        }
        text += "]"
      } else if (isPlainObject(value)) {
        const record = value as Record<string, unknown>
        const keys = Object.keys(record).sort()
        text = "{"
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i]!
          path.push(key)
          text += (i > 0 ? "," : "") + JSON.stringify(key) + ":" + write(record[key], path, ancestors)
          path.pop()
        }
        text += "}"
      } else {
        throw new NotJson(path, `must be a JSON value, got a ${className(value)}`)
      }
      ancestors.delete(value)
      return text
    }
    default:
      throw new NotJson(path, `must be a JSON value, got ${typeof value}`)
  }
}

/**
 * The canonical JSON text of `value`, or `InvalidInput` (entity `"json"`, with
 * the path of the offending value) when it is not JSON: `undefined`, functions,
 * symbols, bigints, non-finite numbers, objects other than plain objects and
 * arrays (`Date`, `Map`, class instances), array holes, cycles, nesting deeper
 * than `maxJsonDepth`. Keys are those `JSON.stringify` sees (own enumerable
 * string keys, `__proto__` included when it is an own key); shared (non-cyclic)
 * references are written in full. Reading is total: a getter or Proxy trap that
 * throws is `InvalidInput` too.
 */
export const canonicalJson = (value: unknown): Either.Either<string, InvalidInput> => {
  const path: Array<string | number> = []
  try {
    return Either.right(write(value, path, new Set()))
  } catch (error) {
    if (error instanceof NotJson) return Either.left(InvalidInput.single("json", error.reason, error.path))
    const reason = `could not be read: ${error instanceof Error ? error.message : String(error)}`
    return Either.left(InvalidInput.single("json", reason, [...path]))
  }
}

/**
 * The SHA-256 of `data` as 64 lowercase hex digits. Text is hashed as its
 * UTF-8 bytes (Node's encoding, which turns a lone surrogate into U+FFFD:
 * hash `canonicalJson` text, which escapes them, to tell such strings apart).
 */
export const sha256Hex = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex")
