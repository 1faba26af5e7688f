import { StoresMemory } from "../layers/Stores.ts"
import * as Conversations from "./suites/ConversationStore.ts"
import * as Sessions from "./suites/SessionStore.ts"

Sessions.suite("memory", StoresMemory)
Conversations.suite("memory", StoresMemory)
