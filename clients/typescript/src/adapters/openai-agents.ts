/**
 * OpenAI Agents SDK for JavaScript: decide `result.interruptions` through the service,
 * resume the run.
 *
 * Each `RunToolApprovalItem` (a call of a tool with `needsApproval`) becomes one
 * approval with the tool's name, arguments and the agent's name. Approve calls
 * `state.approve(item)`; reject and answer call `state.reject(item, { message })`, so
 * the reviewer's reason (or answer) is what the model reads as the tool's result. The
 * SDK cannot run a tool with changed arguments, so these approvals refuse edits.
 *
 *     let result = await run(agent, "clean up");
 *     while (result.interruptions.length) {
 *       result = await run(agent, await resolve(client, result));
 *     }
 *
 * or simply `const result = await runWithApprovals(client, agent, "clean up")`.
 */

import { run } from "@openai/agents";
import type {
  Agent,
  AgentInputItem,
  NonStreamRunOptions,
  RunResult,
  RunState,
  RunToolApprovalItem,
} from "@openai/agents";

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

type AnyAgent = Agent<any, any>;

/** What `resolve` needs of a run result. */
export interface InterruptedResult<TAgent extends AnyAgent = AnyAgent> {
  readonly interruptions: RunToolApprovalItem[];
  readonly state: RunState<any, TAgent>;
  readonly lastResponseId?: string | undefined;
}

function callId(item: RunToolApprovalItem): string | undefined {
  const raw = item.rawItem as { callId?: string | null; id?: string | null };
  return raw.callId ?? raw.id ?? undefined;
}

/**
 * The `requestApproval` fields for one tool call awaiting approval. `scope` (the run's
 * last model response id) with the call id keys the approval, so resolving the same
 * result again reuses it.
 */
export function approvalFields(item: RunToolApprovalItem, scope?: string): ApprovalFields {
  const name = item.name ?? item.toolName ?? item.rawItem.type;
  const agent = item.agent?.name ?? null;
  const id = callId(item);
  const fields = toolCallFields("openai-agents", agent, name, item.arguments ?? "{}", {
    callId: id ?? null,
  });
  if (id) fields.key = `openai-agents:${scope ?? "-"}:${id}`;
  return fields;
}

/** Approve or reject `item` on `state` from a decision. */
export function apply(
  state: RunState<any, any>,
  item: RunToolApprovalItem,
  decision: Decision,
  options: AdapterOptions = {},
): void {
  if (runs(decision, options)) state.approve(item);
  else state.reject(item, { message: rejectionMessage(decision) });
}

/** Decide every interruption through the service; return the state to resume with. */
export async function resolve<TAgent extends AnyAgent>(
  client: Approvals,
  result: InterruptedResult<TAgent>,
  options: AdapterOptions = {},
): Promise<RunState<any, TAgent>> {
  const { state, interruptions } = result;
  const items = [...interruptions];
  const decisions = await decideAll(
    client,
    items.map((item) => approvalFields(item, result.lastResponseId)),
    options,
  );
  items.forEach((item, i) => {
    apply(state, item, decisions[i] as Decision, options);
  });
  return state;
}

/**
 * `run(agent, input)` until the agent finishes, each interruption decided by a human.
 * `runOptions` are passed to every `run` (not streamed).
 */
export async function runWithApprovals<TAgent extends AnyAgent, TContext = undefined>(
  client: Approvals,
  agent: TAgent,
  input: string | AgentInputItem[],
  options: AdapterOptions & { runOptions?: NonStreamRunOptions<TContext, TAgent> } = {},
): Promise<RunResult<TContext, TAgent>> {
  const { runOptions, ...adapterOptions } = options;
  let result = await run<TAgent, TContext>(agent, input, runOptions);
  while (result.interruptions.length > 0) {
    const state = await resolve(client, result, adapterOptions);
    result = await run<TAgent, TContext>(agent, state, runOptions);
  }
  return result;
}
