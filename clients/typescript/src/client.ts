/** `Approvals`: the client of the approvals service. */

import { decisionFromJson, edits, NOT_EXECUTABLE, PENDING, type Decision } from "./decision.js";
import { argumentsDigest, toJson } from "./digest.js";
import { Emitter } from "./emitter.js";
import { Answered, ApprovalsError, Expired, Rejected, Withdrawn } from "./errors.js";
import type { components } from "./generated/openapi.js";
import {
  Backoff,
  apiError,
  call,
  retryable,
  send,
  sleep,
  snake,
  transport,
  type Query,
  type Transport,
} from "./http.js";
import { follow, json, type Feed } from "./sse.js";

type Schemas = components["schemas"];
/** The body of `POST /v1/approvals`, from the service's OpenAPI document. */
export type ApprovalCreate = Schemas["ApprovalCreate"];
/** An approval as the service answers it. */
export type Approval = Schemas["ApprovalOut"];
/** The body of `POST /v1/approvals/{id}/decision`. */
export type DecisionBody = Schemas["DecisionIn"];
/** One event as posted to `POST /v1/events`. */
export type EventIn = Schemas["EventIn"];
/** One event as stored (what `events()` yields). */
export type EventOut = Schemas["EventOut"];
/** The service's error body. */
export type ErrorBody = Schemas["ErrorBody"];

/** Seconds the wait outlasts an approval's timeout, for the service to expire it. */
export const GRACE_SECONDS = 30;
/** Seconds per `?wait=` request (the service caps it at 60). */
export const LONG_POLL_SECONDS = 30;
/** How long an aborted wait may spend withdrawing its approval. */
export const WITHDRAW_SECONDS = 5;

export interface ApprovalsOptions {
  /** The service's base URL; default `APPROVALS_URL`, else `http://127.0.0.1:8000`. */
  url?: string;
  /** The API key; default `APPROVALS_KEY`. */
  key?: string;
  /** The `fetch` to send with (default: the global one). */
  fetch?: typeof fetch;
  /** How many emitted events to hold while the service is away (default 10,000). */
  buffer?: number;
}

export interface RequestOptions {
  title: string;
  tool?: string;
  arguments?: Record<string, unknown>;
  detail?: Record<string, unknown>;
  runId?: string;
  threadId?: string;
  agentId?: string;
  /** The approval's own timeout: it expires by `onTimeout` on the service, and bounds the wait. */
  timeoutSeconds?: number;
  onTimeout?: "reject" | "approve";
  /** The approval's `externalId`: the same key gives back the same approval. */
  key?: string;
  callbackUrl?: string;
  /** Where the request comes from (`api` when unset). */
  source?: string;
  /** Wait for the decision (default true); false returns the pending approval at once. */
  wait?: boolean;
  /** Aborting it during the wait withdraws the approval and rejects with the abort reason. */
  signal?: AbortSignal;
}

export interface RequireApprovalOptions<A> {
  /** The approval's title, or a function of the arguments; `{name}` is replaced by `args.name`. */
  title: string | ((args: A) => string);
  /** The tool's name (default: the function's name). */
  tool?: string;
  timeoutSeconds?: number;
  onTimeout?: "reject" | "approve";
  /** The approval's `externalId` (`{name}` replaced as in `title`), or a function of the arguments. */
  key?: string | ((args: A) => string);
  runId?: string;
  threadId?: string;
  agentId?: string;
  signal?: AbortSignal;
}

export interface DecideOptions {
  comment?: string;
  /** A reason for a rejection (sent as `comment`). */
  reason?: string;
  answer?: string;
  /** Edited arguments (with `approve` only). */
  arguments?: Record<string, unknown>;
  /** The digest the reviewer was shown: a change since is refused (409 `stale`). */
  argumentsDigest?: string;
  /** Allow the tool for a while without asking: `{scope: "run" | "agent", seconds}`. */
  grant?: { scope: "run" | "agent"; seconds: number };
}

type Filter = string | number | boolean | string[] | undefined;

/** Filters of `GET /v1/events` (camelCase names are sent in snake_case). */
export interface EventFilters {
  threadId?: string | string[];
  runId?: string | string[];
  agentId?: string | string[];
  source?: string | string[];
  category?: string | string[];
  type?: string | string[];
  status?: string | string[];
  /** Start after this event id. */
  after?: string;
  /** Start with the last N matching events. */
  tail?: number;
  /** Start from the first event. */
  history?: boolean;
  /** Resume from this event id (sent as `Last-Event-ID`). */
  lastEventId?: string;
  /** Aborting it ends the iteration. */
  signal?: AbortSignal;
  [name: string]: Filter | AbortSignal;
}

/** Filters of the inbox feed, `GET /v1/approvals/stream`. */
export interface InboxFilters {
  agentId?: string | string[];
  runId?: string | string[];
  threadId?: string | string[];
  tool?: string | string[];
  /** Only approvals the caller may decide. */
  decidable?: boolean;
  /** Resume after this position (no snapshot then). */
  after?: string;
  signal?: AbortSignal;
  [name: string]: Filter | AbortSignal;
}

/** One message of the inbox feed: the snapshot, or one approval's change. */
export interface InboxChange {
  /** `snapshot`, `approval.opened`, `approval.updated`, `approval.resolved`, `approval.expired`. */
  kind: string;
  /** The log position it reflects (pass it as `after` to resume). */
  position: string;
  /** The snapshot's approvals, or the one that changed. */
  approvals: Record<string, unknown>[];
}

const RESOLVED = ["approval.resolved", "approval.expired"];

/** The inbox feed: iterate it for the snapshot and each change; `pending` holds what is pending. */
export class Inbox implements AsyncIterable<InboxChange> {
  /** The pending approvals by id, kept up to date as the feed is iterated. */
  pending = new Map<string, Record<string, unknown>>();
  private readonly feed: Feed<InboxChange>;

  constructor(
    private readonly t: Transport,
    query: Query,
    position: string | null,
    private readonly signal?: AbortSignal,
  ) {
    this.feed = {
      path: "/v1/approvals/stream",
      query,
      position,
      receive: (message) => {
        if (message.event === "connected" || !message.data) return undefined;
        const data = json(message);
        const kind = message.event ?? "message";
        const approvals = kind === "snapshot" ? (data.approvals as Record<string, unknown>[]) : [data];
        const change: InboxChange = { kind, position: message.id ?? this.feed.position ?? "", approvals };
        this.apply(change);
        this.feed.position = message.id || this.feed.position;
        return change;
      },
    };
  }

  /** The position the feed has reached (where a reconnect resumes). */
  get position(): string | null {
    return this.feed.position;
  }

  /** Fold one change into `pending`. */
  apply(change: InboxChange): void {
    if (change.kind === "snapshot") {
      this.pending = new Map(change.approvals.map((a) => [String(a.id), a]));
      return;
    }
    for (const approval of change.approvals) {
      if (RESOLVED.includes(change.kind) || approval.status !== PENDING) this.pending.delete(String(approval.id));
      else this.pending.set(String(approval.id), approval);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<InboxChange> {
    return follow(this.t, this.feed, this.signal);
  }
}

const EVENT_FIELDS = [
  "title", "detail", "status", "category", "source", "runId", "threadId", "agentId",
  "externalId", "costTokens", "costUsd", "createdAt",
]; // prettier-ignore

function newExternalId(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().replace(/-/g, "")}`;
}

/** `{name}` in `template` replaced by `args.name` (other braces are left as they are). */
function fill<A>(template: string | ((args: A) => string), args: A): string {
  if (typeof template === "function") return String(template(args));
  const values = (args ?? {}) as Record<string, unknown>;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole,
  );
}

/** Return when the call may run; throw `Rejected`, `Answered`, `Withdrawn` or `Expired`. */
export function outcome(decision: Decision, onTimeout: "reject" | "approve" = "reject"): void {
  if (decision.status === "approved") return;
  if (decision.status === "rejected") throw new Rejected(decision);
  if (decision.status === "answered") throw new Answered(decision);
  if (decision.status === "withdrawn") throw new Withdrawn(decision);
  // expired on the service, or still pending when the caller's own timeout ran out
  if (decision.approved || (decision.status === PENDING && onTimeout === "approve")) return;
  throw new Expired(decision);
}

function query(filters: Record<string, Filter | AbortSignal>, skip: string[]): { query: Query; rest: Record<string, Filter> } {
  const out: Query = {};
  const rest: Record<string, Filter> = {};
  for (const [name, value] of Object.entries(filters)) {
    if (value === undefined || value instanceof AbortSignal || name === "signal") continue;
    if (skip.includes(name)) rest[name] = value;
    else out[snake(name)] = value;
  }
  return { query: out, rest };
}

/** A client of the approvals service. */
export class Approvals {
  /** The service's base URL. */
  readonly url: string;
  private readonly t: Transport;
  private readonly emitter: Emitter;
  private closed = false;

  constructor(options: ApprovalsOptions = {}) {
    this.t = transport(options.url, options.key, options.fetch);
    this.url = this.t.base;
    this.emitter = new Emitter(this.t, options.buffer ?? 10_000);
  }

  // -- approvals ----------------------------------------------------------------------

  /**
   * Open an approval (or find the one `key` opened) and wait for its decision. Waiting
   * long-polls, and keeps going across network drops and service restarts until a decision
   * or, with `timeoutSeconds`, until the approval's timeout plus 30 s (then the pending
   * decision is returned). An aborted `signal` withdraws the approval and rejects.
   */
  async requestApproval(options: RequestOptions): Promise<Decision> {
    const onTimeout = options.onTimeout ?? "reject";
    if (onTimeout !== "reject" && onTimeout !== "approve") {
      throw new TypeError('onTimeout must be "reject" or "approve"');
    }
    options.signal?.throwIfAborted();
    const detail: Record<string, unknown> = { ...(options.detail ?? {}) };
    if (options.tool !== undefined) detail.tool = options.tool;
    if (options.arguments !== undefined) detail.arguments = toJson(options.arguments);
    const body: ApprovalCreate = {
      title: options.title,
      detail,
      onTimeout,
      externalId: options.key ?? newExternalId("sdk"),
    };
    if (options.runId !== undefined) body.runId = options.runId;
    if (options.threadId !== undefined) body.threadId = options.threadId;
    if (options.agentId !== undefined) body.agentId = options.agentId;
    if (options.timeoutSeconds !== undefined) body.timeoutSeconds = options.timeoutSeconds;
    if (options.callbackUrl !== undefined) body.callbackUrl = options.callbackUrl;
    if (options.source !== undefined) body.source = options.source;
    const deadline =
      options.timeoutSeconds === undefined ? undefined : Date.now() + (options.timeoutSeconds + GRACE_SECONDS) * 1000;
    const answer = await call<Approval>(
      this.t,
      { method: "POST", path: "/v1/approvals", body, signal: options.signal },
      { deadline },
    );
    const opened = decisionFromJson(answer as unknown as Record<string, unknown>);
    if (options.wait === false || opened.status !== PENDING) return opened;
    return this.longPoll(opened.approvalId, deadline, opened, options.signal);
  }

  /**
   * Wait until the approval is decided or expires; with `timeoutSeconds`, the pending
   * decision comes back once it has passed. An aborted `signal` withdraws the approval.
   */
  async waitForDecision(
    approvalId: string,
    options: { timeoutSeconds?: number; signal?: AbortSignal } = {},
  ): Promise<Decision> {
    options.signal?.throwIfAborted();
    const deadline = options.timeoutSeconds === undefined ? undefined : Date.now() + options.timeoutSeconds * 1000;
    return this.longPoll(approvalId, deadline, null, options.signal);
  }

  private async longPoll(
    approvalId: string,
    deadline: number | undefined,
    latest: Decision | null,
    signal?: AbortSignal,
  ): Promise<Decision> {
    const path = `/v1/approvals/${encodeURIComponent(approvalId)}`;
    const backoff = new Backoff();
    for (;;) {
      const left = deadline === undefined ? LONG_POLL_SECONDS : Math.min(LONG_POLL_SECONDS, (deadline - Date.now()) / 1000);
      const wait = Math.max(left, 0);
      let error: ApprovalsError;
      try {
        const { response, url } = await send(this.t, {
          method: "GET",
          path,
          query: { wait: wait.toFixed(1) },
          timeout: wait + 15,
          signal,
        });
        if (response.status < 400) {
          latest = decisionFromJson((await response.json()) as Record<string, unknown>);
          if (latest.status !== PENDING || left <= 0) return latest;
          backoff.reset();
          continue;
        }
        error = await apiError("GET", url, response);
        if (!retryable(response.status)) throw error;
      } catch (caught) {
        if (signal?.aborted) {
          await this.withdrawQuietly(approvalId);
          throw signal.reason;
        }
        if (!(caught instanceof ApprovalsError) || (caught.code !== "transport" && !retryable(caught.status ?? 0))) {
          throw caught;
        }
        error = caught;
      }
      const pause = backoff.next();
      if (deadline !== undefined && Date.now() + pause >= deadline) {
        if (latest === null) throw error;
        return latest; // still pending as far as we know: the caller's timeout
      }
      try {
        await sleep(pause, signal);
      } catch {
        await this.withdrawQuietly(approvalId);
        throw signal!.reason;
      }
    }
  }

  /** Withdraw an approval whose wait was aborted: once, briefly; a failure is swallowed. */
  private async withdrawQuietly(approvalId: string): Promise<void> {
    try {
      await this.post(`/v1/approvals/${encodeURIComponent(approvalId)}/withdraw`, undefined, WITHDRAW_SECONDS);
    } catch {
      // decided meanwhile, or the service is away: the approval's own timeout still ends it
    }
  }

  private async post<T>(path: string, body?: unknown, timeout?: number): Promise<T> {
    return call<T>(this.t, { method: "POST", path, body, timeout }, { retry: false });
  }

  /** The approval's current state. */
  async getApproval(approvalId: string): Promise<Decision> {
    const body = await call<Approval>(this.t, { method: "GET", path: `/v1/approvals/${encodeURIComponent(approvalId)}` }, { retry: false });
    return decisionFromJson(body as unknown as Record<string, unknown>);
  }

  /** The queue's pending approvals (every page); `runId`, `agentId`… filter it. */
  async pending(filters: Record<string, Filter> = {}): Promise<Approval[]> {
    const out: Approval[] = [];
    const q: Query = { status: "pending", ...query(filters, []).query };
    for (;;) {
      const page = await call<Schemas["ApprovalPage"]>(this.t, { method: "GET", path: "/v1/approvals", query: q }, { retry: false });
      out.push(...page.approvals);
      if (!page.nextCursor) return out;
      q.cursor = page.nextCursor;
    }
  }

  /** Withdraw a pending approval this key requested: it ends as `withdrawn`. */
  async withdraw(approvalId: string): Promise<Decision> {
    const body = await this.post<Approval>(`/v1/approvals/${encodeURIComponent(approvalId)}/withdraw`);
    return decisionFromJson(body as unknown as Record<string, unknown>);
  }

  /**
   * Record that the approved call runs now with `args` (send it just before running): the
   * service answers once; a second time, or for arguments other than the approved ones, it
   * refuses (`ApprovalsError` 409 `already_executed`, `stale` or `not_approved`) and the
   * call must not run.
   */
  async recordExecution(approvalId: string, args: Record<string, unknown> | null): Promise<void> {
    const body: Schemas["ExecutionIn"] = { argumentsDigest: await argumentsDigest(args) };
    await call(this.t, { method: "POST", path: `/v1/approvals/${encodeURIComponent(approvalId)}/execution`, body });
  }

  /**
   * `decision` once its execution receipt is recorded. When the service refuses the receipt
   * (the call already ran, or its arguments changed), a copy with status `not_executable`,
   * `approved` false and the service's reason in `comment` comes back, and the tool must not
   * run. Other decisions come back unchanged.
   */
  async executable(decision: Decision): Promise<Decision> {
    if (!decision.approved) return decision;
    try {
      await this.recordExecution(decision.approvalId, decision.arguments);
    } catch (error) {
      if (!(error instanceof ApprovalsError) || error.status !== 409) throw error;
      return { ...decision, status: NOT_EXECUTABLE, approved: false, comment: error.message };
    }
    return decision;
  }

  /**
   * `fn` wrapped so that each call asks a human first: it opens an approval (tool =
   * `options.tool` or the function's name, arguments = the call's), waits, and on approval
   * records the execution receipt and runs `fn` with the approved (possibly edited)
   * arguments. Rejected, answered, expired and withdrawn approvals throw `Rejected`,
   * `Answered`, `Expired` and `Withdrawn` (expired runs `fn` with `onTimeout: "approve"`);
   * a refused receipt throws `ApprovalsError`, and `fn` does not run.
   */
  requireApproval<A extends Record<string, unknown>, R>(
    fn: (args: A) => R | Promise<R>,
    options: RequireApprovalOptions<A>,
  ): (args: A) => Promise<R> {
    const onTimeout = options.onTimeout ?? "reject";
    if (onTimeout !== "reject" && onTimeout !== "approve") {
      throw new TypeError('onTimeout must be "reject" or "approve"');
    }
    const tool = options.tool ?? (fn.name || undefined);
    const guarded = async (args: A): Promise<R> => {
      const requested = (toJson(args) ?? {}) as Record<string, unknown>;
      const decision = await this.requestApproval({
        title: fill(options.title, args),
        tool,
        arguments: requested,
        timeoutSeconds: options.timeoutSeconds,
        onTimeout,
        key: options.key === undefined ? undefined : fill(options.key, args),
        runId: options.runId,
        threadId: options.threadId,
        agentId: options.agentId,
        signal: options.signal,
      });
      outcome(decision, onTimeout);
      const changed = edits(decision);
      // The receipt before the run: a retried or restarted process that asks again (with
      // `key`) finds the approval executed and does not run the call twice.
      await this.recordExecution(decision.approvalId, changed ? { ...requested, ...changed } : requested);
      return await fn(changed ? ({ ...args, ...changed } as A) : args);
    };
    Object.defineProperty(guarded, "name", { value: fn.name });
    return guarded;
  }

  /** Approve, reject or answer an approval (the key needs `approvals:resolve`). */
  async decide(
    approvalId: string,
    decision: "approve" | "reject" | "answer",
    options: DecideOptions = {},
  ): Promise<Decision> {
    const body: Partial<DecisionBody> & { decision: DecisionBody["decision"] } = { decision };
    const comment = options.comment ?? options.reason;
    if (comment !== undefined) body.comment = comment;
    if (options.answer !== undefined) body.answer = options.answer;
    if (options.arguments !== undefined) body.arguments = toJson(options.arguments) as Record<string, unknown>;
    if (options.argumentsDigest !== undefined) body.argumentsDigest = options.argumentsDigest;
    if (options.grant !== undefined) body.grant = options.grant;
    const answer = await this.post<Approval>(`/v1/approvals/${encodeURIComponent(approvalId)}/decision`, body);
    return decisionFromJson(answer as unknown as Record<string, unknown>);
  }

  // -- events -------------------------------------------------------------------------

  /**
   * Queue a run event for the background sender and return at once. Batches of up to 100
   * go to `POST /v1/events`, each event with a client-made `externalId` so that a retried
   * batch is stored once; while the service is away the newest `buffer` events are kept.
   */
  emit(type: string, fields: Record<string, unknown> = {}): void {
    if (this.closed) throw new Error("emit() after close(): this Approvals client is closed");
    const unknown = Object.keys(fields).filter((name) => !EVENT_FIELDS.includes(name)).sort();
    if (unknown.length) {
      throw new TypeError(`emit(): "${unknown[0]}" is not an event field (${[...EVENT_FIELDS].sort().join(", ")})`);
    }
    const body: Record<string, unknown> = { type };
    for (const [name, value] of Object.entries(fields)) {
      if (value !== undefined && value !== null) body[name] = value;
    }
    body.externalId ??= newExternalId("evt");
    body.createdAt ??= new Date().toISOString();
    this.emitter.put(toJson(body) as Record<string, unknown>);
  }

  /** Wait until every event queued so far is stored; false when some are unsent at `timeoutMs`. */
  flush(timeoutMs = 10_000): Promise<boolean> {
    return this.emitter.flush(timeoutMs);
  }

  /** Flush queued events (waiting up to `timeoutMs`); later `emit` calls throw. */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const flushed = await this.emitter.flush(timeoutMs);
    if (!flushed) console.warn(`approvals: events were left unsent at close()`);
  }

  /** How many queued events were dropped because the buffer was full. */
  get dropped(): number {
    return this.emitter.dropped;
  }

  /**
   * Follow the event stream, `GET /v1/events` with its filters (camelCase or snake_case
   * names), resuming with `Last-Event-ID` after a drop: nothing is missed or repeated.
   * `lastEventId` resumes from an event; `signal` (or leaving the loop) ends it.
   */
  events(filters: EventFilters = {}): AsyncIterable<EventOut & Record<string, unknown>> {
    const { query: q, rest } = query(filters, ["lastEventId", "last_event_id"]);
    const position = (rest.lastEventId ?? rest.last_event_id ?? null) as string | null;
    const feed: Feed<EventOut & Record<string, unknown>> = {
      path: "/v1/events",
      query: q,
      position,
      receive(message) {
        if (message.event === "connected") {
          const subscription = json(message).subscription as { from?: string | null } | undefined;
          feed.position = feed.position || subscription?.from || null;
          return undefined;
        }
        if (!message.data) return undefined;
        if (message.id) feed.position = message.id;
        return json(message) as EventOut & Record<string, unknown>;
      },
    };
    const t = this.t;
    const signal = filters.signal;
    return { [Symbol.asyncIterator]: () => follow(t, feed, signal) };
  }

  /**
   * Follow the inbox feed (`agentId`, `runId`, `threadId`, `tool`, `decidable`, `after`):
   * iterate it for the snapshot and each change, resuming with `Last-Event-ID` after a drop;
   * its `pending` map holds the pending approvals by id.
   */
  inbox(filters: InboxFilters = {}): Inbox {
    const { query: q, rest } = query(filters, ["after"]);
    return new Inbox(this.t, q, (rest.after as string | undefined) ?? null, filters.signal);
  }
}
