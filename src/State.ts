/**
 * Non-authoritative state: `StateStore` (key → JSON value with a version,
 * optimistic concurrency, typed through the caller's Schema) and
 * `CheckpointStore` (what LangGraph's checkpointers do, for Effect).
 *
 * State is derived data: an agent's working state, or a projection of the
 * event log (`EventStore`'s `project` rebuilds it from events), so it may be
 * overwritten and deleted freely.
 */
import { Context, type DateTime, type Effect, type Option, Schema } from "effect"
import type { Conflict, DecodeError, InvalidInput, NotFound, StorageError } from "./Errors.ts"
import { Text } from "./Json.ts"
import { type Page, PageOptions } from "./Page.ts"

// ---------------------------------------------------------------------------
// StateStore

/** A state key: a non-empty Text (see `Json.ts`) up to 255 characters, e.g. `"agent/planner/cursor"`. */
export const StateKey = Text.pipe(Schema.minLength(1), Schema.maxLength(255), Schema.brand("StateKey"))
/** A state key. */
export type StateKey = typeof StateKey.Type

/** One key's current value, of type `A` (`unknown` JSON unless read through a Schema). */
export interface StateEntry<A = unknown> {
  readonly key: StateKey
  /** The value (JSON as stored; the Schema's type through `getAs`/`setAs`). */
  readonly value: A
  /** 1 when the key was created, +1 per `set`. A deleted key created again starts at 1. */
  readonly version: number
  /** When the key was created. */
  readonly createdAt: DateTime.Utc
  /** When the key was last set (never before `createdAt`, never decreasing). */
  readonly updatedAt: DateTime.Utc
}

/**
 * Options of `set`/`setAs`/`delete`: `expectedVersion` makes the write conditional on the key's current version,
 * `0` meaning "the key does not exist" (a create-only `set`); a mismatch is `Conflict` and nothing is written.
 */
export const StateWriteOptions = Schema.Struct({ expectedVersion: Schema.optional(Schema.NonNegativeInt) })
/** Options of `set`/`setAs`/`delete`. */
export type StateWriteOptions = typeof StateWriteOptions.Encoded

/** Options of `list`: the paging options and `prefix`, keeping the keys that start with it. Ordered by key. */
export const StateListOptions = Schema.Struct({ ...PageOptions.fields, prefix: Schema.optional(Text) })
/** Options of `list`. */
export type StateListOptions = typeof StateListOptions.Encoded

/** A caller's Schema of a state value (no context requirements); it must encode to JSON. */
export type StateSchema<A, I> = Schema.Schema<A, I, never>

/** The state store. */
export class StateStore extends Context.Tag("effect-agent-stores/StateStore")<
  StateStore,
  {
    /** The entry of `key`; `NotFound` when there is none. */
    readonly get: (key: string) => Effect.Effect<StateEntry, NotFound | InvalidInput | StorageError>
    /** As `get`, `None` instead of `NotFound`. */
    readonly find: (key: string) => Effect.Effect<Option.Option<StateEntry>, InvalidInput | StorageError>
    /**
     * Sets `key` to the JSON `value` (created at version 1, else the next version). With `expectedVersion` the
     * write happens only at that version (`0`: only when absent), else `Conflict` with the actual version (`0`
     * when absent). Without it a `set` never fails with `Conflict` (last writer wins, no write lost).
     */
    readonly set: (
      key: string,
      value: unknown,
      options?: StateWriteOptions
    ) => Effect.Effect<StateEntry, Conflict | InvalidInput | StorageError>
    /** Deletes `key`; an unknown key is a no-op unless `expectedVersion` is given (then `Conflict`, `actual: 0`). */
    readonly delete: (
      key: string,
      options?: StateWriteOptions
    ) => Effect.Effect<void, Conflict | InvalidInput | StorageError>
    /** The entries (optionally those whose key starts with `prefix`) ordered by key, keyset-paged. */
    readonly list: (options?: StateListOptions) => Effect.Effect<Page<StateEntry>, InvalidInput | StorageError>
    /**
     * The entry of `key` with its value decoded by `schema`: `NotFound` when there is none, `DecodeError` (naming
     * the field) when the stored value does not decode.
     */
    readonly getAs: <A, I>(
      schema: StateSchema<A, I>,
      key: string
    ) => Effect.Effect<StateEntry<A>, NotFound | DecodeError | InvalidInput | StorageError>
    /** As `getAs`, `None` instead of `NotFound`. */
    readonly findAs: <A, I>(
      schema: StateSchema<A, I>,
      key: string
    ) => Effect.Effect<Option.Option<StateEntry<A>>, DecodeError | InvalidInput | StorageError>
    /** As `set`, the value encoded with `schema` first (a value that does not encode to JSON is `InvalidInput`). */
    readonly setAs: <A, I>(
      schema: StateSchema<A, I>,
      key: string,
      value: A,
      options?: StateWriteOptions
    ) => Effect.Effect<StateEntry<A>, Conflict | InvalidInput | StorageError>
  }
>() {}
