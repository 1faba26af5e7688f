/** effect-agent-stores: the data stores every AI-agent runtime needs, as Effect services. */
export * from "./Conversation.ts"
export * from "./Errors.ts"
export * from "./Id.ts"
export * from "./Json.ts"
export * from "./Message.ts"
export * from "./Page.ts"
export * from "./Record.ts"
export * from "./Session.ts"
