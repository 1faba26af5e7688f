/** Every store of the agent-work family, on every backend. */
import { Effect, Option } from "effect"
import {
  AgentMemoryStore,
  AgentStateStore,
  ConfigStore,
  ConversationStore,
  PlanStore,
  SessionStore,
  TaskStore,
  TemplateStore
} from "effect-agent-stores"
import { backends } from "./backends.js"

const program = Effect.gen(function* () {
  const sessions = yield* SessionStore
  const conversations = yield* ConversationStore
  const plans = yield* PlanStore
  const tasks = yield* TaskStore
  const states = yield* AgentStateStore
  const memory = yield* AgentMemoryStore
  const templates = yield* TemplateStore
  const configs = yield* ConfigStore
  const session = yield* sessions.create({ agentId: "consumer" })
  const chat = yield* conversations.create({ sessionId: session.id })
  yield* conversations.append(chat.id, { role: "user", parts: [{ type: "text", text: "hi" }] })
  const plan = yield* plans.save({ conversationId: chat.id, title: "plan", steps: [{ description: "step" }] })
  yield* tasks.save({ conversationId: chat.id, planId: plan.id, description: "task" })
  const claimed = yield* tasks.claimNext({ agentId: "consumer" })
  yield* states.save({ agentId: "consumer", status: Option.isSome(claimed) ? "working" : "idle" })
  yield* memory.put({ agentId: "consumer", key: "seen", value: [1, 2], ttl: "1 minute" })
  yield* templates.save({ name: `greet-${session.id}`, content: "Hello {{name}}" })
  const history = yield* configs.history("none")
  return `${yield* templates.render(`greet-${session.id}`, { name: "consumer" })}, ${history.items.length} config versions`
})

for (const [name, layer] of backends) {
  console.log(`consumer on ${name}: ${await Effect.runPromise(program.pipe(Effect.provide(layer)))}`)
}
