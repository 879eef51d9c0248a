/**
 * LangGraph.js: resume a graph paused on `interrupt(HumanInterrupt)` from the
 * service's decisions.
 *
 * Each interrupt (each `HumanInterrupt` when one interrupt carries a list of them)
 * becomes one approval; the graph resumes with
 * `new Command({ resume: { [interrupt.id]: HumanResponse } })`, so several pending
 * interrupts are answered by id. The interrupt's `config` decides what a reviewer may
 * do: `accept` (approve), `edit` (approve with edited arguments), `response` (answer
 * with text), `ignore` (reject).
 *
 *     const graph = builder.compile({ checkpointer: new MemorySaver() });
 *     const config = { configurable: { thread_id: "t1" } };
 *     const result = await invokeWithApprovals(client, graph, { messages: [] }, config);
 */

import { Command } from "@langchain/langgraph";
import type { Interrupt } from "@langchain/langgraph";

import type { Approvals, Decision } from "../index.js";
import { type AdapterOptions, type ApprovalFields, decideAll, runs } from "./shared.js";

export type { AdapterOptions } from "./shared.js";

/** The `config` of a `HumanInterrupt`: what a reviewer may do. */
export interface HumanInterruptConfig {
  allow_accept: boolean;
  allow_edit: boolean;
  allow_respond: boolean;
  allow_ignore: boolean;
}

/** An Agent Inbox style interrupt value. */
export interface HumanInterrupt {
  action_request: { action: string; args: Record<string, unknown> };
  config?: Partial<HumanInterruptConfig>;
  description?: string;
}

/** What the node's `interrupt(...)` call returns once resumed. */
export type HumanResponse =
  | { type: "accept"; args: null }
  | { type: "ignore"; args: null }
  | { type: "response"; args: string }
  | { type: "edit"; args: { action: string; args: Record<string, unknown> } };

/** A compiled graph with a checkpointer (what `invokeWithApprovals` uses of it). */
export interface InterruptibleGraph<Output = unknown> {
  invoke(input: unknown, config?: any): Promise<Output>;
  getState(config: any): Promise<{ tasks: ReadonlyArray<{ interrupts: readonly Interrupt[] }> }>;
}

const DEFAULTS: HumanInterruptConfig = {
  allow_accept: true,
  allow_ignore: true,
  allow_respond: false,
  allow_edit: false,
};

function configOf(request: HumanInterrupt): HumanInterruptConfig {
  return { ...DEFAULTS, ...(request.config ?? {}) };
}

function requestsOf(interrupt: Interrupt): HumanInterrupt[] {
  const value = interrupt.value as unknown;
  const items = Array.isArray(value) ? value : [value];
  for (const item of items) {
    const action = (item as { action_request?: unknown } | null)?.action_request;
    if (typeof action !== "object" || action === null) {
      throw new TypeError(
        `interrupt ${interrupt.id ?? "(no id)"} does not carry a HumanInterrupt ` +
          `(action_request, config, description): ${JSON.stringify(value)}`,
      );
    }
  }
  return items as HumanInterrupt[];
}

/** The `requestApproval` fields for one `HumanInterrupt`. */
export function approvalFields(request: HumanInterrupt): ApprovalFields {
  const action = request.action_request;
  const config = configOf(request);
  const allowed: string[] = [];
  if (config.allow_accept || config.allow_edit) allowed.push("approve");
  if (config.allow_ignore) allowed.push("reject");
  if (config.allow_respond) allowed.push("answer");
  return {
    title: request.description || `${action.action} requested`,
    tool: action.action,
    arguments: action.args ?? {},
    detail: {
      format: "langgraph",
      allowedDecisions: allowed,
      allowEdit: Boolean(config.allow_edit),
      interrupt: request,
    },
  };
}

/** The `HumanResponse` that matches a decision and the interrupt's `config`. */
export function humanResponse(
  request: HumanInterrupt,
  decision: Decision,
  options: AdapterOptions = {},
): HumanResponse {
  const config = configOf(request);
  const action = request.action_request;
  if (decision.status === "answered") return { type: "response", args: decision.answer ?? "" };
  if (decision.status === "not_executable") {
    return { type: "response", args: `Not run: ${decision.comment ?? ""}` };
  }
  if (runs(decision, options)) {
    if (config.allow_edit && (decision.edited || !config.allow_accept)) {
      return {
        type: "edit",
        args: { action: action.action, args: decision.arguments ?? action.args ?? {} },
      };
    }
    return { type: "accept", args: null };
  }
  if (!config.allow_ignore && config.allow_respond) {
    return { type: "response", args: decision.comment || "rejected" };
  }
  return { type: "ignore", args: null };
}

function keyOf(interrupt: Interrupt, index: number, many: boolean): string | undefined {
  if (!interrupt.id) return undefined;
  return many ? `langgraph:${interrupt.id}:${index}` : `langgraph:${interrupt.id}`;
}

/**
 * Open an approval per interrupt, wait for each, and build the resuming `Command`:
 * `resume` maps each interrupt id to its `HumanResponse` (a list of them for an
 * interrupt that carried a list). A single interrupt without an id is resumed with
 * its response alone.
 */
export async function resumeCommand(
  client: Approvals,
  interrupts: readonly Interrupt[],
  options: AdapterOptions = {},
): Promise<Command> {
  const opened: { interrupt: Interrupt; many: boolean; requests: HumanInterrupt[] }[] = [];
  const fields: ApprovalFields[] = [];
  for (const interrupt of interrupts) {
    const requests = requestsOf(interrupt);
    const many = Array.isArray(interrupt.value);
    requests.forEach((request, index) => {
      const key = keyOf(interrupt, index, many);
      fields.push({ ...approvalFields(request), ...(key ? { key } : {}) });
    });
    opened.push({ interrupt, many, requests });
  }
  const decisions = await decideAll(client, fields, options);
  const resume: Record<string, unknown> = {};
  const values: unknown[] = [];
  let next = 0;
  for (const { interrupt, many, requests } of opened) {
    const responses = requests.map((request) =>
      humanResponse(request, decisions[next++] as Decision, options),
    );
    const value = many ? responses : responses[0];
    values.push(value);
    if (interrupt.id) resume[interrupt.id] = value;
  }
  if (opened.length === 1 && !opened[0]?.interrupt.id) return new Command({ resume: values[0] });
  if (opened.some(({ interrupt }) => !interrupt.id)) {
    throw new TypeError("several interrupts are pending and some have no id to resume by");
  }
  return new Command({ resume });
}

/** The interrupts a graph is paused on (every task's). */
export async function pendingInterrupts(graph: InterruptibleGraph, config: unknown): Promise<Interrupt[]> {
  const state = await graph.getState(config);
  return state.tasks.flatMap((task) => [...task.interrupts]);
}

/**
 * Run a graph (compiled with a checkpointer) until it finishes, answering its
 * interrupts through the service. `config` must name the thread
 * (`{ configurable: { thread_id } }`).
 */
export async function invokeWithApprovals<Output>(
  client: Approvals,
  graph: InterruptibleGraph<Output>,
  input: unknown,
  config: Record<string, unknown>,
  options: AdapterOptions = {},
): Promise<Output> {
  let result = await graph.invoke(input, config);
  for (;;) {
    const interrupts = await pendingInterrupts(graph, config);
    if (interrupts.length === 0) return result;
    result = await graph.invoke(await resumeCommand(client, interrupts, options), config);
  }
}
