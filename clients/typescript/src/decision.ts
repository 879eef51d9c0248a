/** The outcome of an approval as the agent sees it. */

export const PENDING = "pending";
/** An approved decision whose execution receipt the service refused: the call must not run. */
export const NOT_EXECUTABLE = "not_executable";

/** An approval's state: pending, or resolved with who decided what. */
export interface Decision {
  approvalId: string;
  /** `pending`, `approved`, `rejected`, `answered`, `expired`, `withdrawn` (or `not_executable`). */
  status: string;
  /** True when the approval was approved (by a reviewer, a policy, a grant or on timeout). */
  approved: boolean;
  /** The arguments the call runs with: the requested ones with a reviewer's edits laid over. */
  arguments: Record<string, unknown> | null;
  comment: string | null;
  answer: string | null;
  resolvedBy: string | null;
  resolvedAt: string | null;
  /** True when a reviewer changed the arguments. */
  edited: boolean;
  /** The approval's JSON as the service answered it. */
  raw: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** The arguments a call runs with once approved: the original ones, edits laid over by name. */
export function approvedArguments(original: unknown, edited: unknown): Json | null {
  if (isObject(edited)) return { ...(isObject(original) ? original : {}), ...edited };
  return isObject(original) ? original : null;
}

/** Read the JSON of `GET /v1/approvals/{id}` (or of any answer carrying an approval). */
export function decisionFromJson(body: Json): Decision {
  const edited = body.editedArguments;
  const status = String(body.status);
  return {
    approvalId: String(body.id),
    status,
    approved: body.decision === "approve" && status !== PENDING,
    arguments: approvedArguments(body.arguments, edited),
    comment: text(body.comment),
    answer: text(body.answer),
    resolvedBy: text(body.resolvedBy),
    resolvedAt: text(body.resolvedAt),
    edited: isObject(edited),
    raw: body,
  };
}

/** A reviewer's edits of the arguments, by name (null when none were made). */
export function edits(decision: Decision): Json | null {
  const edited = decision.raw.editedArguments;
  return isObject(edited) ? edited : null;
}
