/**
 * effect-agent-stores: the data stores every AI-agent runtime needs, as Effect services. This module is the public
 * contract: each store's Tag, Schemas, Driver interface and `make*Store`, the errors, and the shared shapes (pages,
 * JSON, binary values). Kernel helpers the stores share internally are not exported.
 */
export * from "./AgentMemory.ts"
export * from "./Audit.ts"
export * from "./Backend.ts"
export { Bytes, Vector } from "./Binary.ts"
export { sha256Hex } from "./CanonicalJson.ts"
export * from "./Config.ts"
export * from "./Conversation.ts"
export * from "./Embeddings.ts"
export * from "./Errors.ts"
export * from "./Event.ts"
export { uuidv7 } from "./Id.ts"
export * from "./Image.ts"
export { Json, JsonContent, JsonContentObject, JsonObject, Text } from "./Json.ts"
export * from "./Lock.ts"
export * from "./Memory.ts"
export {
  Amount,
  CostInfo,
  Count,
  CustomPart,
  DataPart,
  DynamicToolPart,
  ExecutionStats,
  FilePart,
  FinishReason,
  ImagePart,
  Message,
  messageFields,
  MessageId,
  MessageInput,
  MessageLimits,
  MessageMetadata,
  MessagePart,
  type MessagePartInput,
  MessageRole,
  type MessageRow,
  type Open,
  type OpenStruct,
  partTypes,
  ReasoningFilePart,
  ReasoningPart,
  SourceDocumentPart,
  SourceUrlPart,
  SteeringMessagePart,
  StepStartPart,
  TextPart,
  TokenUsage,
  ToolApproval,
  ToolApprovalRequestPart,
  ToolApprovalResponsePart,
  ToolCallPart,
  ToolPart,
  ToolResultPart,
  ToolState
} from "./Message.ts"
export * from "./ModelMessage.ts"
export { defaultLimit, maxLimit, type Page, PageOptions, type PageQuery } from "./Page.ts"
export * from "./Plan.ts"
export * from "./Broker.ts"
export { UpdateOptions, Version } from "./Record.ts"
export * from "./Session.ts"
export * from "./State.ts"
export * from "./Task.ts"
export * from "./Trace.ts"
export * from "./Vector.ts"
