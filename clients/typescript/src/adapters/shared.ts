/**
 * What the framework adapters share: their options, opening one approval per pending
 * call, waiting for the decisions, recording the execution receipts, and the text a
 * model reads when a call is not run.
 */

import type { Approvals, Decision } from "../index.js";

/** Options every adapter takes. */
export interface AdapterOptions {
  /**
   * The approval's own timeout in seconds (it expires on the service) and the bound
   * of each wait. Unset: wait until a reviewer decides.
   */
  timeoutSeconds?: number;
  /**
   * What an approval still pending after `timeoutSeconds` counts as: `"reject"`
   * (the default) refuses the call, `"approve"` runs it.
   */
  onTimeout?: "approve" | "reject";
  /** Ids recorded on every approval the adapter opens. */
  runId?: string;
  threadId?: string;
  agentId?: string;
  /** Aborts the waits. */
  signal?: AbortSignal;
}

/** The `requestApproval` fields an adapter builds for one pending call. */
export interface ApprovalFields {
  title: string;
  tool: string;
  arguments: Record<string, unknown>;
  detail: Record<string, unknown>;
  key?: string;
}

/**
 * The fields of one tool call's approval for a framework that cannot run a call with
 * changed arguments, so reviewers may approve, reject or answer but not edit. `ids` are
 * the framework's own ids of the call, recorded in `detail`.
 */
export function toolCallFields(
  format: string,
  agent: string | null,
  tool: string,
  input: unknown,
  ids: Record<string, unknown>,
): ApprovalFields {
  const args = argumentsObject(input);
  return {
    title: `${agent ?? "The agent"} wants to call ${callText(tool, args)}`,
    tool,
    arguments: args,
    detail: {
      format,
      agent,
      ...ids,
      allowEdit: false,
      allowedDecisions: ["approve", "reject", "answer"],
    },
  };
}

/** True when the call may run: approved, or still pending with `onTimeout: "approve"`. */
export function runs(decision: Decision, options: AdapterOptions = {}): boolean {
  return decision.approved || (decision.status === "pending" && options.onTimeout === "approve");
}

/**
 * Open an approval for each entry (all first, so a reviewer sees them together), wait
 * for each decision, and record the execution receipt of each approved one. The
 * decisions come back in order; a refused receipt comes back as `not_executable`.
 */
export async function decideAll(
  client: Approvals,
  requests: readonly ApprovalFields[],
  options: AdapterOptions = {},
): Promise<Decision[]> {
  const { timeoutSeconds, onTimeout, runId, threadId, agentId, signal } = options;
  const opened: Decision[] = [];
  for (const fields of requests) {
    opened.push(
      await client.requestApproval({
        ...fields,
        ...(runId === undefined ? {} : { runId }),
        ...(threadId === undefined ? {} : { threadId }),
        ...(agentId === undefined ? {} : { agentId }),
        ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }),
        ...(onTimeout === undefined ? {} : { onTimeout }),
        ...(signal === undefined ? {} : { signal }),
        wait: false,
      }),
    );
  }
  const decided: Decision[] = [];
  for (const decision of opened) {
    const final =
      decision.status === "pending"
        ? await client.waitForDecision(decision.approvalId, {
            ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }),
            ...(signal === undefined ? {} : { signal }),
          })
        : decision;
    decided.push(await client.executable(final));
  }
  return decided;
}

/** What the model reads when a call is not run. */
export function rejectionMessage(decision: Decision): string {
  const by = decision.resolvedBy ? ` ${decision.resolvedBy}` : "";
  switch (decision.status) {
    case "not_executable":
      return `Not run: ${decision.comment ?? "the service refused the execution receipt"}`;
    case "answered":
      return `The reviewer did not run this tool and answered: ${decision.answer ?? ""}`;
    case "rejected":
      return `The reviewer${by} rejected this tool call${
        decision.comment ? `: ${decision.comment}` : " (no reason given)"
      }`;
    case "withdrawn":
      return `The request was withdrawn${by ? ` by${by}` : ""}; it was not run.`;
    default:
      return "Nobody approved this tool call in time; it was not run.";
  }
}

/** `name(key="value", …)` for a title. */
export function callText(name: string, args: Record<string, unknown>): string {
  const shown = Object.entries(args)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(", ");
  return `${name}(${shown})`;
}

/** Arguments as an object: a JSON object as is, anything else under `value` (or `raw`). */
export function argumentsObject(input: unknown): Record<string, unknown> {
  let value = input;
  if (typeof input === "string") {
    try {
      value = JSON.parse(input || "{}");
    } catch {
      return { raw: input };
    }
  }
  if (value === undefined || value === null) return {};
  if (typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  return { value };
}
