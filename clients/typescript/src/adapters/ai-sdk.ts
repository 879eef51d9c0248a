/**
 * Vercel AI SDK: tools declared with `needsApproval` decided through the service.
 *
 * A `generateText` (or `streamText`) result whose content holds
 * `tool-approval-request` parts is waiting for approvals; each becomes one approval
 * naming the tool, its input and the agent. The decisions come back as a `tool`
 * message of `tool-approval-response` parts to append before calling again: approve
 * runs the tool, reject and answer deny it with the reason (or the answer) that the
 * model reads. An approval response cannot carry changed input, so these approvals
 * refuse edits.
 *
 *     const result = await generateWithApprovals(client, { model, tools, prompt: "…" });
 *
 * or step by step:
 *
 *     const messages = [...history, ...result.response.messages,
 *                       ...(await resolveToolApprovals(client, result))];
 */

import { generateText } from "ai";
import type { ModelMessage, ToolApprovalResponse, ToolModelMessage, ToolSet } from "ai";

import type { Approvals, Decision } from "../index.js";
import {
  type AdapterOptions,
  type ApprovalFields,
  decideAll,
  rejectionMessage,
  runs,
  toolCallFields,
} from "./shared.js";

export { rejectionMessage } from "./shared.js";
export type { AdapterOptions } from "./shared.js";

/** A `tool-approval-request` content part of a result. */
export interface ToolApprovalRequestPart {
  type: "tool-approval-request";
  approvalId: string;
  toolCall: {
    toolCallId: string;
    toolName: string;
    input: unknown;
    providerExecuted?: boolean;
  };
}

/** Anything with a result's `content`: a `generateText` result, or a `streamText` one. */
export interface WithContent {
  readonly content: ReadonlyArray<{ type: string }> | PromiseLike<ReadonlyArray<{ type: string }>>;
}

export interface AiSdkOptions extends AdapterOptions {
  /** The agent's name, shown in the approval (`detail.agent` and the title). */
  agentName?: string;
}

/** The `tool-approval-request` parts of a result's content (awaits a `streamText` one). */
export async function pendingApprovals(result: WithContent): Promise<ToolApprovalRequestPart[]> {
  const content = await result.content;
  return content.filter(
    (part): part is ToolApprovalRequestPart => part.type === "tool-approval-request",
  );
}

/**
 * The `requestApproval` fields of one approval request. The AI SDK's approval id keys
 * the approval, so resolving the same result again reuses it.
 */
export function approvalFields(part: ToolApprovalRequestPart, agentName?: string): ApprovalFields {
  const { toolCall } = part;
  return {
    ...toolCallFields("ai-sdk", agentName ?? null, toolCall.toolName, toolCall.input, {
      toolCallId: toolCall.toolCallId,
      approvalId: part.approvalId,
    }),
    key: `ai-sdk:${part.approvalId}`,
  };
}

/** The `tool-approval-response` part of a decision. */
export function approvalResponse(
  part: ToolApprovalRequestPart,
  decision: Decision,
  options: AdapterOptions = {},
): ToolApprovalResponse {
  const approved = runs(decision, options);
  const response: ToolApprovalResponse = {
    type: "tool-approval-response",
    approvalId: part.approvalId,
    approved,
  };
  if (!approved) response.reason = rejectionMessage(decision);
  else if (decision.comment) response.reason = decision.comment;
  if (part.toolCall.providerExecuted) response.providerExecuted = true;
  return response;
}

/**
 * Decide every pending approval request of `result` through the service; return the
 * messages to append (after `result.response.messages`) before calling the model
 * again: one `tool` message of approval responses, or none when nothing is pending.
 */
export async function resolveToolApprovals(
  client: Approvals,
  result: WithContent,
  options: AiSdkOptions = {},
): Promise<ModelMessage[]> {
  const parts = await pendingApprovals(result);
  if (parts.length === 0) return [];
  const decisions = await decideAll(
    client,
    parts.map((part) => approvalFields(part, options.agentName)),
    options,
  );
  const message: ToolModelMessage = {
    role: "tool",
    content: parts.map((part, i) => approvalResponse(part, decisions[i] as Decision, options)),
  };
  return [message];
}

type GenerateTextArgs<TOOLS extends ToolSet> = Parameters<typeof generateText<TOOLS>>[0];
type GenerateTextResult<TOOLS extends ToolSet> = Awaited<ReturnType<typeof generateText<TOOLS>>>;

/**
 * `generateText` until no tool approval is pending, each decided by a human. Returns
 * the last result with `messages`: the whole conversation (the prompt, every response
 * and the approval responses) to continue from.
 */
export async function generateWithApprovals<TOOLS extends ToolSet>(
  client: Approvals,
  args: GenerateTextArgs<TOOLS>,
  options: AiSdkOptions = {},
): Promise<GenerateTextResult<TOOLS> & { messages: ModelMessage[] }> {
  let messages = initialMessages(args);
  let result = await generateText<TOOLS>(args);
  for (;;) {
    messages = [...messages, ...result.response.messages];
    const responses = await resolveToolApprovals(client, result, options);
    if (responses.length === 0) return Object.assign(result, { messages });
    messages = [...messages, ...responses];
    const { prompt: _prompt, messages: _messages, ...rest } = args as GenerateTextArgs<TOOLS> & {
      prompt?: unknown;
      messages?: unknown;
    };
    result = await generateText<TOOLS>({ ...rest, messages } as GenerateTextArgs<TOOLS>);
  }
}

function initialMessages(args: { prompt?: unknown; messages?: unknown }): ModelMessage[] {
  if (Array.isArray(args.messages)) return [...(args.messages as ModelMessage[])];
  if (Array.isArray(args.prompt)) return [...(args.prompt as ModelMessage[])];
  if (typeof args.prompt === "string") return [{ role: "user", content: args.prompt }];
  return [];
}
