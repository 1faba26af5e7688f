/**
 * The state behind the in-memory layers: plain maps shared by every memory
 * store built from one layer, so cascades (session -> conversations ->
 * messages) cross stores as they do in SQL. Each operation is one synchronous
 * step, so it is atomic; rows hold only primitives and JSON text, so a spread
 * copies them in and out.
 */
import { Context, Layer } from "effect"
import type { ConversationRow, StoredMessageRow } from "../../src/Conversation.ts"
import type { Keyset, PageQuery } from "../../src/Page.ts"
import type { SessionRow } from "../../src/Session.ts"

/** The maps of the in-memory backend. */
export interface Tables {
  readonly sessions: Map<string, { row: SessionRow; transcript: string }>
  readonly conversations: Map<string, ConversationRow>
  readonly messages: Map<string, { readonly rows: Array<StoredMessageRow>; readonly ids: Set<string> }>
}

/** The in-memory database shared by the memory stores. */
export class MemoryDatabase extends Context.Tag("effect-agent-stores/MemoryDatabase")<MemoryDatabase, Tables>() {
  /** A fresh, empty database. */
  static readonly layer: Layer.Layer<MemoryDatabase> = Layer.sync(MemoryDatabase, () => ({
    sessions: new Map(),
    conversations: new Map(),
    messages: new Map()
  }))
}

const compareKeys = (a: Keyset, b: Keyset): number =>
  a.createdAt !== b.createdAt ? a.createdAt - b.createdAt : a.id < b.id ? -1 : a.id > b.id ? 1 : 0

/** One keyset page of `rows` (copied), ordered by `(createdAt, id)`. */
export const pageOf = <Row extends Keyset>(rows: Iterable<Row>, page: PageQuery): Array<Row> => {
  const sign = page.order === "asc" ? 1 : -1
  const after = page.after
  const sorted = Array.from(rows)
    .filter((row) => after === undefined || sign * compareKeys(row, after) > 0)
    .sort((a, b) => sign * compareKeys(a, b))
  return sorted.slice(page.offset, page.offset + page.limit).map((row) => ({ ...row }))
}
