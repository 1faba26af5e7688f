/**
 * `@effect/platform`'s `KeyValueStore` over `StateStore`: a key is a state key under a prefix (default `"kv/"`, so
 * `clear` and `size` see only the store's own keys), a string value is stored as a JSON string and bytes as
 * `{ "bytes": "<base64>" }`. As `KeyValueStore.layerMemory` does, `get` of bytes gives their base64 and
 * `getUint8Array` of a string its UTF-8 bytes. Invalid keys (empty, over 255 characters with the prefix, not
 * well-formed Unicode) fail with `BadArgument`, a backend failure with `SystemError`.
 */
import { BadArgument, SystemError } from "@effect/platform/Error"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { Effect, Encoding, Layer, Option } from "effect"
import type { Conflict, InvalidInput, StorageError } from "../../src/Errors.ts"
import { maxLimit } from "../../src/Page.ts"
import { type StateEntry, StateStore } from "../../src/State.ts"

/** Options of `layerKeyValueStoreWith`. */
export interface KeyValueStoreOptions {
  /** The prefix of the state keys (default `"kv/"`). */
  readonly prefix?: string
}

/** A bytes value as stored. */
interface StoredBytes {
  readonly bytes: string
}

const isBytes = (value: unknown): value is StoredBytes =>
  typeof value === "object" && value !== null && typeof (value as StoredBytes).bytes === "string"

/** The platform error of a store error: bad input is `BadArgument`, anything else `SystemError`. */
const platformError = (method: string) => (error: InvalidInput | StorageError | Conflict) =>
  error._tag === "InvalidInput"
    ? new BadArgument({ module: "KeyValueStore", method, description: error.message, cause: error })
    : new SystemError({ reason: "Unknown", module: "KeyValueStore", method, description: error.message, cause: error })

const encoder = new TextEncoder()

/** A `KeyValueStore` over the `StateStore` in context. */
export const makeKeyValueStore = (
  options: KeyValueStoreOptions = {}
): Effect.Effect<KeyValueStore.KeyValueStore, never, StateStore> =>
  Effect.map(StateStore, (state) => {
    const prefix = options.prefix ?? "kv/"
    const find = (method: string, key: string) =>
      state
        .find(`${prefix}${key}`)
        .pipe(Effect.map(Option.map((entry: StateEntry) => entry.value)), Effect.mapError(platformError(method)))
    /** Every key of the store, one page at a time, to `f`. */
    const eachPage = <A>(
      method: string,
      f: (entries: ReadonlyArray<StateEntry>) => Effect.Effect<A, InvalidInput | StorageError>
    ) =>
      Effect.gen(function* () {
        let cursor: string | undefined
        do {
          const page = yield* state.list({ prefix, limit: maxLimit, ...(cursor === undefined ? {} : { cursor }) })
          yield* f(page.items)
          cursor = Option.getOrUndefined(page.nextCursor)
        } while (cursor !== undefined)
      }).pipe(Effect.mapError(platformError(method)))
    return KeyValueStore.make({
      get: (key) =>
        Effect.map(
          find("get", key),
          Option.map((value) =>
            typeof value === "string" ? value : isBytes(value) ? value.bytes : JSON.stringify(value)
          )
        ),
      getUint8Array: (key) =>
        Effect.map(
          find("getUint8Array", key),
          Option.map((value) =>
            isBytes(value)
              ? Encoding.decodeBase64(value.bytes).pipe((decoded) =>
                  decoded._tag === "Right" ? decoded.right : new Uint8Array()
                )
              : encoder.encode(typeof value === "string" ? value : JSON.stringify(value))
          )
        ),
      set: (key, value) =>
        state
          .set(`${prefix}${key}`, typeof value === "string" ? value : { bytes: Encoding.encodeBase64(value) })
          .pipe(Effect.asVoid, Effect.mapError(platformError("set"))),
      remove: (key) => state.delete(`${prefix}${key}`).pipe(Effect.mapError(platformError("remove"))),
      // Deletes page by page from the start: the keys of the page just deleted are gone.
      clear: Effect.gen(function* () {
        while (true) {
          const page = yield* state.list({ prefix, limit: maxLimit })
          if (page.items.length === 0) return
          yield* Effect.forEach(page.items, (entry) => state.delete(entry.key), { discard: true })
        }
      }).pipe(Effect.mapError(platformError("clear"))),
      size: Effect.suspend(() => {
        let size = 0
        return eachPage("size", (entries) => Effect.sync(() => (size += entries.length))).pipe(Effect.map(() => size))
      })
    })
  })

/** `KeyValueStore` over `StateStore`, with `options`. */
export const layerKeyValueStoreWith = (
  options: KeyValueStoreOptions
): Layer.Layer<KeyValueStore.KeyValueStore, never, StateStore> =>
  Layer.effect(KeyValueStore.KeyValueStore, makeKeyValueStore(options))

/** `KeyValueStore` over `StateStore`, its keys under `"kv/"`. */
export const layerKeyValueStore: Layer.Layer<KeyValueStore.KeyValueStore, never, StateStore> = layerKeyValueStoreWith(
  {}
)
