import type { Decision } from "./decision.js";

/** Where the SDK reads the service's address and the key (as the Python SDK does). */
export const URL_SETTING = "APPROVALS_URL";
export const KEY_SETTING = "APPROVALS_KEY";

/**
 * A transport or API error: the service's `error` code (`code`), `message` and `field`,
 * the HTTP `status` (null when the service could not be reached) and the URL called.
 */
export class ApprovalsError extends Error {
  /** The HTTP status, or null for a connection failure. */
  readonly status: number | null;
  /** The service's error code (`invalid`, `conflict`, `stale`, …), `transport` or `http`. */
  readonly code: string | null;
  /** The offending field or parameter, when the service names one. */
  readonly field: string | null;
  /** The URL that was called. */
  readonly url: string;
  /** The service's JSON error body (or its text), when there was one. */
  readonly body: unknown;

  constructor(
    message: string,
    options: {
      status?: number | null;
      code?: string | null;
      field?: string | null;
      url: string;
      body?: unknown;
      cause?: unknown;
    },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApprovalsError";
    this.status = options.status ?? null;
    this.code = options.code ?? null;
    this.field = options.field ?? null;
    this.url = options.url;
    this.body = options.body ?? null;
  }
}

/** Base of `Rejected`, `Answered`, `Expired` and `Withdrawn`: the call did not run. */
export class NotApproved extends Error {
  readonly decision: Decision;

  constructor(decision: Decision, message?: string) {
    super(message ?? `approval ${decision.approvalId} was ${decision.status}`);
    this.name = "NotApproved";
    this.decision = decision;
  }

  get approvalId(): string {
    return this.decision.approvalId;
  }
  get comment(): string | null {
    return this.decision.comment;
  }
  get answer(): string | null {
    return this.decision.answer;
  }
  get resolvedBy(): string | null {
    return this.decision.resolvedBy;
  }
}

/** A reviewer rejected the call; `comment` holds the reason. */
export class Rejected extends NotApproved {
  constructor(decision: Decision) {
    const reason = decision.comment ? `: ${decision.comment}` : "";
    super(decision, `rejected by ${decision.resolvedBy}${reason}`);
    this.name = "Rejected";
  }
}

/** A reviewer answered with text (`answer`) instead of approving. */
export class Answered extends NotApproved {
  constructor(decision: Decision) {
    super(decision, `answered by ${decision.resolvedBy}: ${decision.answer}`);
    this.name = "Answered";
  }
}

/** Nobody decided in time and the timeout rejects. */
export class Expired extends NotApproved {
  constructor(decision: Decision) {
    super(decision, `approval ${decision.approvalId} expired without a decision`);
    this.name = "Expired";
  }
}

/** The approval was withdrawn (by the key that requested it) before anyone decided. */
export class Withdrawn extends NotApproved {
  constructor(decision: Decision) {
    super(
      decision,
      `approval ${decision.approvalId} was withdrawn by ${decision.resolvedBy} before anyone ` +
        "decided; the call did not run",
    );
    this.name = "Withdrawn";
  }
}

/** A webhook delivery whose signature, timestamp or body does not check out. */
export class InvalidWebhook extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InvalidWebhook";
  }
}
