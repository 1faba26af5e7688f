/**
 * The vitest configuration of the LangGraph validation kit's run: the kit's own vitest 4 (installed under
 * `@langchain/langgraph-checkpoint-validation`), with the globals its specs use. A plain object: this file is loaded by
 * vitest 4 and type-checked with the project's vitest 3.
 */
export default {
  test: {
    include: ["test/langgraph/validation.spec.ts"],
    globals: true,
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
}
