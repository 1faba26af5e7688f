/** Arbitraries shared by the contract suites. */
import { Arbitrary, DateTime, FastCheck, Schema } from "effect"
import { Message } from "../../src/Message.ts"

const hasNegativeZero = (value: unknown): boolean =>
  Object.is(value, -0) || (typeof value === "object" && value !== null && Object.values(value).some(hasNegativeZero))

const isMessage = Schema.is(Message)

/** Valid messages (JSON-stable: no `-0`, which JSON stores as `0`). */
export const message: FastCheck.Arbitrary<Message> = Arbitrary.make(Message).filter(
  (value) => isMessage(value) && !hasNegativeZero(value)
)

/** Lists of valid messages with distinct ids and explicit times (as stored messages have). */
export const messages: FastCheck.Arbitrary<Array<Message>> = FastCheck.array(message, { maxLength: 8 }).map((list) =>
  list.map((item, i) => ({
    ...item,
    id: `${i}-${item.id}` as Message["id"],
    createdAt: item.createdAt ?? DateTime.unsafeMake(i)
  }))
)
