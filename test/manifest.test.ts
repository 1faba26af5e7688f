/**
 * The package manifest declares what the published code imports: every package the library's sources import at run
 * time (or load as an optional driver) is a dependency, optional dependency or peer dependency, with a range (never
 * an exact version, so an app keeps one copy of effect); every peer is pinned exactly in `devDependencies` for the
 * project's own tests; and a type-only import has its types where a consumer's `tsc` finds them.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { builtinModules } from "node:module"
import { join } from "node:path"
import * as OptionalPackage from "../layers/OptionalPackage.ts"

interface Manifest {
  readonly dependencies?: Record<string, string>
  readonly optionalDependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly peerDependenciesMeta?: Record<string, { readonly optional?: boolean }>
  readonly devDependencies?: Record<string, string>
}

const root = new URL("..", import.meta.url).pathname
const manifest: Manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
/** The directories the published build compiles (`tsconfig.build.json`'s `include`). */
const published: ReadonlyArray<string> = JSON.parse(readFileSync(join(root, "tsconfig.build.json"), "utf8")).include

const sourceFiles = (directory: string): ReadonlyArray<string> =>
  readdirSync(join(root, directory), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(directory, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(directory, entry.name)]
        : []
  )

/** A module specifier's package: `@scope/name` or `name`; `undefined` for relative paths and Node's built-ins. */
const packageOf = (specifier: string): string | undefined => {
  if (specifier.startsWith(".") || specifier.startsWith("node:") || builtinModules.includes(specifier)) return undefined
  const parts = specifier.split("/")
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]
}

/** What a source file imports: the packages it loads at run time, and those it imports for types only. */
const importsOf = (text: string): { readonly runtime: Set<string>; readonly types: Set<string> } => {
  const runtime = new Set<string>()
  const types = new Set<string>()
  const statements = /(?:^|\n)\s*(import|export)\s+(type\s+)?[^;'"]*?\bfrom\s+"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/g
  for (const match of text.matchAll(statements)) {
    const specifier = match[3] ?? match[4]!
    const name = packageOf(specifier)
    if (name === undefined) continue
    // `import { type A, type B } from "x"` loads nothing either (verbatimModuleSyntax keeps a bare `import "x"` only).
    const onlyTypes = match[2] !== undefined || /^\s*import\s*\{(\s*type\s+[^,}]+,?)+\s*\}/.test(match[0])
    ;(onlyTypes ? types : runtime).add(name)
  }
  return { runtime, types }
}

/** Packages named in `names` that `manifest` does not declare for users (not counting `devDependencies`). */
const undeclared = (names: Iterable<string>, declared: Manifest): ReadonlyArray<string> =>
  [...names].filter(
    (name) =>
      declared.dependencies?.[name] === undefined &&
      declared.optionalDependencies?.[name] === undefined &&
      declared.peerDependencies?.[name] === undefined
  )

const files = published.flatMap(sourceFiles)
const runtime = new Set<string>()
const types = new Set<string>()
for (const file of files) {
  const found = importsOf(readFileSync(join(root, file), "utf8"))
  found.runtime.forEach((name) => runtime.add(name))
  found.types.forEach((name) => types.add(name))
}
/** The drivers, loaded by name when a layer opens a database (not by an import statement). */
const drivers = [OptionalPackage.betterSqlite3, OptionalPackage.postgres]

describe("package.json", () => {
  it("finds the library's imports (the scan is not vacuous)", () => {
    expect(files.length).toBeGreaterThan(40)
    expect([...runtime]).toEqual(expect.arrayContaining(["effect", "@effect/sql", "@effect/experimental"]))
    expect([...types]).toContain("better-sqlite3")
  })

  it("declares every package the published code imports at run time or loads as a driver", () => {
    expect(undeclared([...runtime, ...drivers.map((driver) => driver.name)], manifest)).toEqual([])
  })

  it("the check fails for an import the manifest does not declare", () => {
    const found = importsOf(`import { Schema } from "effect"\nimport * as X from "left-pad/lib"\n`)
    expect(undeclared(found.runtime, manifest)).toEqual(["left-pad"])
    expect(importsOf(`import { type A } from "left-pad"`).runtime.size).toBe(0)
    expect(importsOf(`export { a } from "@scope/pkg/sub"`).runtime).toEqual(new Set(["@scope/pkg"]))
  })

  it("gives a consumer's type-check the types of every type-only import", () => {
    const missing = [...types].filter(
      (name) =>
        undeclared([name], manifest).length > 0 &&
        manifest.dependencies?.[`@types/${name.replace(/^@([^/]+)\//, "$1__")}`] === undefined
    )
    expect(missing).toEqual([])
  })

  it("pins nothing for users: every dependency and peer is a range", () => {
    const ranges = { ...manifest.dependencies, ...manifest.optionalDependencies, ...manifest.peerDependencies }
    const exact = Object.entries(ranges).filter(([, range]) => /^\d/.test(range))
    expect(exact).toEqual([])
  })

  it("makes effect and every @effect package a peer, pinned exactly for the project's own tests", () => {
    for (const name of runtime) {
      if (name !== "effect" && !name.startsWith("@effect/")) continue
      expect(manifest.peerDependencies?.[name], `${name} is a peer dependency`).toMatch(/^\^/)
      expect(manifest.devDependencies?.[name], `${name} is pinned in devDependencies`).toMatch(/^\d+\.\d+\.\d+$/)
      expect(manifest.dependencies?.[name], `${name} is not a dependency`).toBeUndefined()
    }
  })

  it("makes every framework package an adapter imports an optional caret peer, pinned exactly for the tests", () => {
    const frameworks = new Set<string>()
    for (const file of files.filter((file) => file.startsWith("adapters"))) {
      const found = importsOf(readFileSync(join(root, file), "utf8"))
      for (const name of [...found.runtime, ...found.types]) {
        if (name !== "effect" && !name.startsWith("@effect/")) frameworks.add(name)
      }
    }
    expect([...frameworks]).toEqual(expect.arrayContaining(["@langchain/langgraph-checkpoint", "@langchain/core"]))
    for (const name of frameworks) {
      expect(manifest.peerDependencies?.[name], `${name} is a peer dependency`).toMatch(/^\^/)
      expect(manifest.peerDependenciesMeta?.[name]?.optional, `${name} is an optional peer`).toBe(true)
      expect(manifest.devDependencies?.[name], `${name} is pinned in devDependencies`).toMatch(/^\d+\.\d+\.\d+$/)
    }
  })

  it("keeps the drivers optional, at the ranges the install hints name", () => {
    expect(manifest.optionalDependencies?.["better-sqlite3"]).toBe(OptionalPackage.betterSqlite3.range)
    expect(manifest.peerDependencies?.["postgres"]).toBe(OptionalPackage.postgres.range)
    expect(manifest.peerDependenciesMeta?.["postgres"]?.optional).toBe(true)
    expect(manifest.dependencies?.["better-sqlite3"]).toBeUndefined()
    expect(manifest.dependencies?.["postgres"]).toBeUndefined()
  })
})
