/**
 * A fast path for decoding caller input: the common Schema shapes (keywords,
 * literals, refinements, structs, arrays, unions of those) checked by plain
 * code built once per schema, with what it does not know (transformations,
 * declarations, suspended and annotated schemas) left to Effect's
 * `ParseResult` node by node. It only ever answers what `ParseResult` would
 * for the same input (the same value, built the same way), or `miss`; on a
 * miss the caller decodes with `ParseResult` again for its error. Effect's
 * parser spends most of a small input's decoding on its own bookkeeping
 * (an `Either` and an `Option` per level); this is 3–10x faster on the
 * stores' inputs.
 */
import { Either, Option, ParseResult, Schema, SchemaAST as AST } from "effect"

/** What a fast decoder returns for input it does not accept (never a value any schema decodes to). */
export const miss: unique symbol = Symbol("effect-agent-stores/FastDecode/miss")

/** A fast decoder: the decoded value, or `miss`. */
export type FastDecoder = (input: unknown) => unknown

const memo = new WeakMap<AST.AST, FastDecoder>()

/** `ParseResult`'s own decoder of `ast`, for the nodes this module does not build. */
const delegate = (ast: AST.AST): FastDecoder => {
  const decode = ParseResult.decodeUnknownEither(Schema.make(ast))
  return (input) => {
    const result = decode(input)
    return result._tag === "Right" ? result.right : miss
  }
}

/** The leaves whose check is `typeof` or `===`: they accept primitives only. */
const primitiveTags = new Set<AST.AST["_tag"]>([
  "StringKeyword",
  "NumberKeyword",
  "BooleanKeyword",
  "BigIntKeyword",
  "SymbolKeyword",
  "UndefinedKeyword",
  "Literal"
])

/** The leaves that accept anything. */
const anyTags = new Set<AST.AST["_tag"]>(["UnknownKeyword", "AnyKeyword", "VoidKeyword"])

/** Whether `ast`, through refinements and unions, has only leaves that `leaf` allows (and no annotated node). */
const onlyLeaves = (ast: AST.AST, leaf: (tag: AST.AST["_tag"]) => boolean): boolean => {
  if (annotated(ast)) return false
  if (ast._tag === "Refinement") return onlyLeaves(ast.from, leaf)
  if (ast._tag === "Union") return ast.types.every((type) => onlyLeaves(type, leaf))
  return leaf(ast._tag)
}

/** Whether a node is checked by a plain predicate: its value, when accepted, is its input (not a copy). */
const isIdentity = (ast: AST.AST): boolean => onlyLeaves(ast, (tag) => primitiveTags.has(tag) || anyTags.has(tag))

/** Whether an identity node accepts only primitives (never an object or array): disjoint from any struct. */
const isPrimitiveOnly = (ast: AST.AST): boolean => onlyLeaves(ast, (tag) => primitiveTags.has(tag))

/** Annotations that change how `ParseResult` runs a node: such a node is left to it. */
const annotated = (ast: AST.AST): boolean =>
  Option.isSome(AST.getParseOptionsAnnotation(ast)) || Option.isSome(AST.getDecodingFallbackAnnotation(ast))

const is =
  (test: (input: unknown) => boolean): FastDecoder =>
  (input) =>
    test(input) ? input : miss

const build = (ast: AST.AST): FastDecoder => {
  if (annotated(ast)) return delegate(ast)
  switch (ast._tag) {
    case "StringKeyword":
      return is((input) => typeof input === "string")
    case "NumberKeyword":
      return is((input) => typeof input === "number")
    case "BooleanKeyword":
      return is((input) => typeof input === "boolean")
    case "BigIntKeyword":
      return is((input) => typeof input === "bigint")
    case "SymbolKeyword":
      return is((input) => typeof input === "symbol")
    case "UndefinedKeyword":
      return is((input) => input === undefined)
    case "UnknownKeyword":
    case "AnyKeyword":
    case "VoidKeyword":
      return (input) => input
    case "Literal": {
      const literal = ast.literal
      return is((input) => input === literal)
    }
    case "Refinement": {
      const from = fastDecoder(ast.from)
      const filter = ast.filter
      return (input) => {
        const value = from(input)
        return value !== miss && Option.isNone(filter(value, AST.defaultParseOption, ast)) ? value : miss
      }
    }
    case "Declaration": {
      const parse = ast.decodeUnknown(...ast.typeParameters)
      const slow = delegate(ast)
      return (input) => {
        const result = parse(input, AST.defaultParseOption, ast)
        if (!Either.isEither(result)) return slow(input)
        return result._tag === "Right" ? result.right : miss
      }
    }
    case "TypeLiteral": {
      if (ast.indexSignatures.length > 0) return delegate(ast)
      const names = ast.propertySignatures.map((ps) => ps.name)
      const optional = ast.propertySignatures.map((ps) => ps.isOptional)
      const fields = ast.propertySignatures.map((ps) => fastDecoder(ps.type))
      const has = Object.prototype.hasOwnProperty
      return (input) => {
        if (typeof input !== "object" || input === null || Array.isArray(input)) return miss
        const output: Record<PropertyKey, unknown> = {}
        for (let i = 0; i < names.length; i++) {
          const name = names[i]!
          // As `ParseResult` (not `exact`): an absent key is optional, or is read as `undefined`.
          if (optional[i] && !has.call(input, name)) continue
          const value = fields[i]!((input as Record<PropertyKey, unknown>)[name])
          if (value === miss) return miss
          output[name] = value
        }
        return output
      }
    }
    case "TupleType": {
      if (ast.elements.length > 0 || ast.rest.length !== 1) return delegate(ast)
      const item = fastDecoder(ast.rest[0]!.type)
      return (input) => {
        if (!Array.isArray(input)) return miss
        const output = new Array(input.length)
        for (let i = 0; i < input.length; i++) {
          const value = item(input[i])
          if (value === miss) return miss
          output[i] = value
        }
        return output
      }
    }
    case "Union": {
      const members = ast.types.map(fastDecoder)
      if (ast.types.every(isIdentity)) return is((input) => members.some((member) => member(input) !== miss))
      // One struct or array beside primitives only: an object can match only it, a primitive only the others.
      const composite = ast.types.filter((type) => !isPrimitiveOnly(type))
      const kind = composite.length === 1 ? composite[0]!._tag : undefined
      if (kind !== "TypeLiteral" && kind !== "TupleType") return delegate(ast)
      const objects = fastDecoder(composite[0]!)
      const primitives = ast.types.filter(isPrimitiveOnly).map(fastDecoder)
      return (input) =>
        typeof input === "object" && input !== null
          ? objects(input)
          : primitives.some((member) => member(input) !== miss)
            ? input
            : miss
    }
    default:
      return delegate(ast)
  }
}

/** The fast decoder of `ast`, built once. */
export const fastDecoder = (ast: AST.AST): FastDecoder => {
  let fast = memo.get(ast)
  if (fast === undefined) {
    fast = build(ast)
    memo.set(ast, fast)
  }
  return fast
}
