/**
 * Every store's contract suite, by store: the backend test files run
 * `suites(label, stores)`, which runs the suite of each registry entry, so a
 * store added to the registry without a suite fails every backend's run.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Context, Layer } from "effect"
import { registry, type Stores } from "../../layers/Registry.ts"
import { AgentMemoryStore } from "../../src/AgentMemory.ts"
import { ConfigStore } from "../../src/Config.ts"
import { ConversationStore } from "../../src/Conversation.ts"
import { PlanStore, TemplateStore } from "../../src/Plan.ts"
import { SessionStore } from "../../src/Session.ts"
import { AgentStateStore, TaskStore } from "../../src/Task.ts"
import * as AgentStates from "./AgentStateStore.ts"
import * as AgentMemory from "./AgentMemoryStore.ts"
import * as Configs from "./ConfigStore.ts"
import * as Conversations from "./ConversationStore.ts"
import * as Plans from "./PlanStore.ts"
import * as Sessions from "./SessionStore.ts"
import * as Tasks from "./TaskStore.ts"
import * as Templates from "./TemplateStore.ts"

/** A store's contract suite: registers its tests against `stores`. */
type Suite = (label: string, stores: Layer.Layer<Stores, unknown>) => void

const byTag = new Map<Context.Tag<any, any>, Suite>([
  [SessionStore, Sessions.suite],
  [ConversationStore, Conversations.suite],
  [TaskStore, Tasks.suite],
  [AgentStateStore, AgentStates.suite],
  [PlanStore, Plans.suite],
  [TemplateStore, Templates.suite],
  [ConfigStore, Configs.suite],
  [AgentMemoryStore, AgentMemory.suite]
])

/** Runs the contract suite of every store in the registry against `stores`. */
export const suites = (label: string, stores: Layer.Layer<Stores, unknown>) => {
  for (const store of registry) {
    const suite = byTag.get(store.tag)
    if (suite !== undefined) suite(label, stores)
    else {
      describe(`${store.tag.key} (${label})`, () => {
        it("has a contract suite", () => expect.fail(`no contract suite for ${store.tag.key}`))
      })
    }
  }
}
