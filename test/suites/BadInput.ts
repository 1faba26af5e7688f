/**
 * The bad-input harness every store suite uses: from an operation's Schema it
 * derives invalid inputs (valid values from the Schema's `Arbitrary` with one
 * spot broken: a wrong type, a missing field, an oversized or ill-formed string,
 * a non-JSON value, a hostile object such as a throwing getter, a Proxy, a class
 * instance, a `Date`, a `Map` or an own `__proto__` key; plus non-string ids and
 * bad options), keeps those the Schema itself refuses, and asserts that each is
 * `InvalidInput` and that the store's state (a snapshot the caller supplies) is
 * unchanged (it dies otherwise, naming the first offenders). One line per
 * operation: `operation(name, schema, run, extras)`.
 */
import { Arbitrary, Effect, Exit, FastCheck as fc, Schema, SchemaAST } from "effect"
import { MessageInput } from "../../src/Message.ts"

class Klass {
  readonly role = "user"
  readonly parts: Array<unknown> = []
  readonly a = 1
}

/** An object whose getter for `key` throws. */
export const throwingGetter = (key: string, base: object = {}): object =>
  Object.defineProperty({ ...base }, key, {
    enumerable: true,
    get() {
      throw new Error(`getter ${key} threw`)
    }
  })

/** A Proxy over `base` whose `trap` throws. */
export const throwingProxy = (base: object = {}, trap: keyof ProxyHandler<object> = "get"): object =>
  new Proxy(base, {
    [trap]: () => {
      throw new Error(`trap ${trap} threw`)
    }
  })

/** Values that a JSON-object field (`metadata`, `providerMetadata`) must refuse at its top level. */
export const jsonObjects: ReadonlyArray<unknown> = [
  new Date(0),
  new Map([["a", 1]]),
  new Set([1]),
  new Error("e"),
  /re/,
  Promise.resolve(1),
  Object(1),
  Object("s"),
  new Klass(),
  Buffer.from("hi"),
  new Uint8Array(2),
  JSON.parse('{"__proto__": {"polluted": true}}'),
  throwingGetter("k"),
  throwingProxy({ a: 1 }),
  throwingProxy({ a: 1 }, "ownKeys"),
  throwingProxy({ a: 1 }, "getPrototypeOf"),
  [1],
  null,
  "{}",
  42
]

/** Values of every wrong kind, for any field. */
export const values: ReadonlyArray<unknown> = [
  undefined,
  null,
  0,
  -1,
  1.5,
  Number.NaN,
  Infinity,
  -Infinity,
  2 ** 53,
  1n,
  true,
  "",
  "x".repeat(256),
  "\ud800",
  "a\u0000b",
  Symbol("s"),
  () => 1,
  [],
  [1],
  {},
  ...jsonObjects
]

/** `expectedVersion`s that are not positive integers. */
export const versions: ReadonlyArray<unknown> = [
  "1",
  {},
  true,
  1n,
  1.5,
  Number.NaN,
  Infinity,
  -Infinity,
  2 ** 53,
  0,
  -1,
  null
]

/** Hostile containers with the fields of `valid`: throwing getters and traps, class instances, `Date`s, `Map`s. */
export const containers = (valid: object): ReadonlyArray<unknown> => [
  ...Object.keys(valid).map((key) => throwingGetter(key, valid)),
  throwingProxy(valid, "get"),
  throwingProxy(valid, "getPrototypeOf"),
  Object.assign(new Klass(), valid),
  Object.assign(new Date(0), valid),
  Object.assign(new Map(), valid)
]

/** Ids that are not strings (strings no record can have are unknown ids, not invalid input). */
export const ids: ReadonlyArray<unknown> = values.filter((value) => typeof value !== "string")

/** Encoded values of `schema`, from its `Arbitrary` (values that do not encode are skipped). */
const encoded = (schema: Schema.Schema<any, any>): fc.Arbitrary<unknown> => {
  const encode = Schema.encodeEither(schema)
  return Arbitrary.make(schema)
    .map((value) => encode(value))
    .filter((result) => result._tag === "Right")
    .map((result) => (result._tag === "Right" ? result.right : undefined))
}

/** One operation under test: its input Schema, how to call it, and optional id and options entry points. */
export interface Operation {
  readonly name: string
  readonly schema: Schema.Schema<any, any>
  readonly run: (input: unknown) => Effect.Effect<unknown, unknown>
  readonly id: ((id: unknown) => Effect.Effect<unknown, unknown>) | undefined
  readonly options: OptionsEntry | undefined
  readonly valid: fc.Arbitrary<unknown>
  readonly optional: boolean
}

/** An options argument under test: its Schema and how to call the operation with it. */
export interface OptionsEntry {
  readonly schema: Schema.Schema<any, any>
  readonly run: (options: unknown) => Effect.Effect<unknown, unknown>
}

/** Declares an operation for `run` (one line in a store suite). */
export const operation = (
  name: string,
  schema: Schema.Schema<any, any>,
  run: (input: unknown) => Effect.Effect<unknown, unknown>,
  extras: {
    readonly id?: (id: unknown) => Effect.Effect<unknown, unknown>
    readonly options?: OptionsEntry
    /** Valid encoded inputs to break (default: the Schema's `Arbitrary`, encoded). */
    readonly valid?: fc.Arbitrary<unknown>
    /** The input may be left out (an options argument): `undefined` is valid. */
    readonly optional?: boolean
  } = {}
): Operation => ({
  name,
  schema,
  run,
  id: extras.id,
  options: extras.options,
  valid: extras.valid ?? encoded(schema),
  optional: extras.optional ?? false
})

const isPlainObject = (value: unknown): boolean => {
  try {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return false
    const proto = Object.getPrototypeOf(value)
    return proto === Object.prototype || proto === null
  } catch {
    return false
  }
}

/** Whether `schema` refuses `input` (reading it may throw: that is a refusal too). */
const refuses = (schema: Schema.Schema<any, any>, input: unknown): boolean => {
  const decode = Schema.decodeUnknownEither(schema)
  try {
    if (SchemaAST.isTypeLiteral(schema.ast) && !isPlainObject(input)) return true
    return decode(input)._tag === "Left"
  } catch {
    return true
  }
}

/** The paths of every object and array slot in a plain value (the places a mutation can break). */
const slots = (value: unknown, path: Array<string | number> = [], out: Array<Array<string | number>> = []) => {
  if (typeof value === "object" && value !== null && (Array.isArray(value) || isPlainObject(value))) {
    for (const key of Object.keys(value)) {
      const child = [...path, Array.isArray(value) ? Number(key) : key]
      out.push(child)
      slots((value as Record<string, unknown>)[key], child, out)
    }
  }
  return out
}

const clone = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(clone)
    : isPlainObject(value)
      ? Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, clone(v)]))
      : value

/** `valid` (an encoded value) with one spot broken, chosen by `pick`. */
const mutate = (valid: unknown, pick: (n: number) => number): unknown => {
  const value = clone(valid)
  const kind = pick(8)
  if (kind === 0 || typeof value !== "object" || value === null) return values[pick(values.length)]
  if (kind === 1) {
    const hostile = containers(value)
    return hostile[pick(hostile.length)]
  }
  const places = slots(value)
  if (places.length === 0) return values[pick(values.length)]
  const path = places[pick(places.length)]!
  const parent = path.slice(0, -1).reduce<any>((node, key) => node[key], value)
  const key = path[path.length - 1]!
  switch (kind) {
    case 2:
    case 3:
      parent[key] = values[pick(values.length)]
      break
    case 4:
      if (Array.isArray(parent)) parent.splice(Number(key), 1)
      else delete parent[key]
      break
    case 5:
      Object.defineProperty(parent, key, {
        enumerable: true,
        get() {
          throw new Error("getter threw")
        }
      })
      break
    case 6:
      parent[key] = typeof parent[key] === "string" ? "x".repeat(256) : jsonObjects[pick(jsonObjects.length)]
      break
    default: {
      const inner = parent[key]
      parent[key] =
        typeof inner === "object" && inner !== null ? containers(inner)[pick(containers(inner).length)] : "\udc00"
    }
  }
  return value
}

/** What happened to the bad inputs of one store. */
export interface Tally {
  tried: number
  invalid: number
  other: number
  writes: number
}

/**
 * Runs `operations` with `runs` generated bad inputs each (plus bad ids and
 * options where given), asserting `InvalidInput` for each and an unchanged
 * `snapshot`; prints one line: `bad-input <label>: N tried, N InvalidInput, 0 other, 0 writes`.
 */
export const run = <E>(
  label: string,
  snapshot: Effect.Effect<unknown, E>,
  operations: ReadonlyArray<Operation>,
  runs = 200
): Effect.Effect<Tally, E> =>
  Effect.gen(function* () {
    const tally: Tally = { tried: 0, invalid: 0, other: 0, writes: 0 }
    const others: Array<string> = []
    const before = yield* snapshot
    for (const [index, op] of operations.entries()) {
      const valid = fc.sample(op.valid, {
        numRuns: runs,
        seed: index
      })
      const random = fc.sample(fc.array(fc.nat(), { minLength: 8, maxLength: 8 }), {
        numRuns: runs,
        seed: 1000 + index
      })
      const cases: Array<[string, (input: unknown) => Effect.Effect<unknown, unknown>, unknown]> = []
      for (let i = 0; i < runs; i++) {
        const choices = random[i]!
        let next = 0
        const input = mutate(valid[i], (n) => choices[next++ % choices.length]! % n)
        if ((input !== undefined || !op.optional) && refuses(op.schema, input)) cases.push([op.name, op.run, input])
      }
      if (op.id !== undefined) for (const id of ids) cases.push([`${op.name} id`, op.id, id])
      if (op.options !== undefined) {
        const { run, schema } = op.options
        for (const options of [...values, ...versions.map((expectedVersion) => ({ expectedVersion }))]) {
          if (options !== undefined && refuses(schema, options)) cases.push([`${op.name} options`, run, options])
        }
      }
      for (const [name, call, input] of cases) {
        tally.tried++
        const exit = yield* Effect.exit(Effect.suspend(() => call(input)))
        if (Exit.isFailure(exit) && exit.cause._tag === "Fail" && (exit.cause.error as any)?._tag === "InvalidInput") {
          tally.invalid++
        } else {
          tally.other++
          if (Exit.isSuccess(exit)) tally.writes++
          if (others.length < 5) others.push(`${name}: ${Exit.isSuccess(exit) ? "succeeded" : String(exit.cause)}`)
        }
      }
    }
    const after = yield* snapshot
    if (JSON.stringify(after) !== JSON.stringify(before)) tally.writes++
    console.log(
      `bad-input ${label}: ${tally.tried} tried, ${tally.invalid} InvalidInput, ${tally.other} other, ${tally.writes} writes`
    )
    if (tally.other > 0 || tally.writes > 0 || tally.invalid !== tally.tried) {
      return yield* Effect.dieMessage(`bad input not refused by ${label}:\n${others.join("\n")}`)
    }
    return tally
  })

/** Valid encoded message lists (short, so generation stays fast), for operations taking messages. */
export const messages: fc.Arbitrary<unknown> = fc.array(encoded(MessageInput), { maxLength: 3 })
