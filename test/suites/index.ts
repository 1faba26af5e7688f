/**
 * Every store's contract suite, by store: the backend test files run
 * `suites(label, stores)`, which runs the suite of each registry entry, so a
 * store added to the registry without a suite fails every backend's run.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Context, Layer } from "effect"
import { registry, type Stores } from "../../layers/Registry.ts"
import { AgentMemoryStore } from "../../src/AgentMemory.ts"
import { AuditLogStore } from "../../src/Audit.ts"
import { ConfigStore } from "../../src/Config.ts"
import { ConversationStore } from "../../src/Conversation.ts"
import { EventStore } from "../../src/Event.ts"
import { ImageStore } from "../../src/Image.ts"
import { LockStore } from "../../src/Lock.ts"
import { FactStore, MemoryMessageStore, MentalModelStore, SummaryStore, TierMetadataStore } from "../../src/Memory.ts"
import { PlanStore, TemplateStore } from "../../src/Plan.ts"
import { SessionStore } from "../../src/Session.ts"
import { CheckpointStore, StateStore } from "../../src/State.ts"
import { AgentStateStore, TaskStore } from "../../src/Task.ts"
import { TraceStore } from "../../src/Trace.ts"
import { VectorStore } from "../../src/Vector.ts"
import * as AgentStates from "./AgentStateStore.ts"
import * as AgentMemory from "./AgentMemoryStore.ts"
import * as Audit from "./AuditLogStore.ts"
import * as Checkpoints from "./CheckpointStore.ts"
import * as Configs from "./ConfigStore.ts"
import * as Conversations from "./ConversationStore.ts"
import * as Events from "./EventStore.ts"
import * as Images from "./ImageStore.ts"
import * as Locks from "./LockStore.ts"
import * as Plans from "./PlanStore.ts"
import * as Sessions from "./SessionStore.ts"
import * as States from "./StateStore.ts"
import * as Tasks from "./TaskStore.ts"
import * as Templates from "./TemplateStore.ts"
import * as Tiers from "./MemoryTierStores.ts"
import * as Traces from "./TraceStore.ts"
import * as Vectors from "./VectorStore.ts"

/** A store's contract suite: registers its tests against `stores`. */
type Suite = (label: string, stores: Layer.Layer<Stores, unknown>) => void

/** A store whose contract another store's suite runs. */
const covered: Suite = () => {}

const byTag = new Map<Context.Tag<any, any>, Suite>([
  [SessionStore, Sessions.suite],
  [ConversationStore, Conversations.suite],
  [TaskStore, Tasks.suite],
  [AgentStateStore, AgentStates.suite],
  [PlanStore, Plans.suite],
  [TemplateStore, Templates.suite],
  [ConfigStore, Configs.suite],
  [AgentMemoryStore, AgentMemory.suite],
  [EventStore, Events.suite],
  [StateStore, States.suite],
  [CheckpointStore, Checkpoints.suite],
  [AuditLogStore, Audit.suite],
  [TraceStore, Traces.suite],
  [LockStore, Locks.suite],
  [ImageStore, Images.suite],
  [VectorStore, Vectors.suite],
  // One suite covers the five memory tier stores.
  [MemoryMessageStore, Tiers.suite],
  [SummaryStore, covered],
  [FactStore, covered],
  [MentalModelStore, covered],
  [TierMetadataStore, covered]
])

/** Runs the contract suite of every store in the registry against `stores` (the broker's: `test/broker.test.ts`). */
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
