/** Settings, requests, errors and retry timing shared by every method of the client. */

import { ApprovalsError, KEY_SETTING, URL_SETTING } from "./errors.js";

/** Where `approvals serve` and `make run` listen by default. */
export const DEFAULT_URL = "http://127.0.0.1:8000";
export const VERSION = "0.1.0";
/** Seconds a request may take unless it says otherwise. */
export const REQUEST_SECONDS = 10;

/** `process.env[name]` where there is a `process` (Node, Bun, Deno); undefined elsewhere. */
export function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  if (typeof proc === "undefined" || !proc || !proc.env) return undefined;
  const value = proc.env[name];
  return value === "" ? undefined : value;
}

/** What every request needs: the base URL, the headers and the `fetch` to send with. */
export interface Transport {
  base: string;
  headers: Record<string, string>;
  fetch: typeof fetch;
}

export function transport(url?: string, key?: string, fetcher?: typeof fetch): Transport {
  const base = (url || env(URL_SETTING) || DEFAULT_URL).replace(/\/+$/, "");
  const secret = key !== undefined ? key : env(KEY_SETTING);
  const headers: Record<string, string> = {
    Accept: "application/json",
    "User-Agent": `approvals-client-js/${VERSION}`,
  };
  if (secret) headers.Authorization = `Bearer ${secret}`;
  // Called as plain functions: a browser's fetch refuses any other `this` than the window.
  const send: typeof fetch = fetcher
    ? (input, init) => fetcher(input, init)
    : (input, init) => globalThis.fetch(input, init);
  return { base, headers, fetch: send };
}

/** Exponential backoff with full jitter: 0.25 s doubling to `cap`, in milliseconds. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly base = 0.25,
    private readonly cap = 5,
  ) {}

  next(): number {
    this.attempt += 1;
    return Math.random() * Math.min(this.cap, this.base * 2 ** this.attempt) * 1000;
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Sleep `ms`; reject with the signal's reason when it aborts. `unref`: do not keep Node up. */
export function sleep(ms: number, signal?: AbortSignal, unref = false): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (unref) (timer as { unref?: () => void }).unref?.();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export type Query = Record<string, string | number | boolean | null | undefined | string[]>;

export interface Req {
  method: string;
  path: string;
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  /** Seconds the whole exchange may take (REQUEST_SECONDS when unset). */
  timeout?: number;
  signal?: AbortSignal;
}

/** A filter's value as a query parameter (booleans lower-case, lists comma-joined). */
export function param(value: string | number | boolean | string[]): string {
  if (typeof value === "boolean") return value ? "true" : "false";
  if (Array.isArray(value)) return value.join(",");
  return String(value);
}

/** `runId` → `run_id`: the service's query parameters are snake_case. */
export function snake(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

export function urlOf(t: Transport, path: string, query?: Query): string {
  const url = new URL(t.base + path);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null) url.searchParams.set(name, param(value));
  }
  return url.toString();
}

function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/** A network failure as an `ApprovalsError` naming the URL and how to change it. */
export function transportError(url: string, error: unknown): ApprovalsError {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  const reason =
    cause?.code || cause?.message || (error as Error)?.message || String(error) || "no answer";
  return new ApprovalsError(
    `cannot reach the approvals service at ${origin(url)} (${reason}); is it running there? ` +
      `Set ${URL_SETTING} (or pass url) to where it serves`,
    { code: "transport", url, cause: error },
  );
}

/** The service's JSON error as an `ApprovalsError` (the body is read here). */
export async function apiError(method: string, url: string, response: Response): Promise<ApprovalsError> {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // the body could not be read: the status still says what happened
  }
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (body && typeof body === "object" && "error" in body) {
    const json = body as { error: unknown; message?: unknown; field?: unknown };
    let message = String(json.message || json.error);
    if (response.status === 401) {
      message +=
        ` (the service at ${origin(url)} refused the key: set ${KEY_SETTING} or pass key; ` +
        "`approvals keys create NAME --scope …` makes one)";
    }
    return new ApprovalsError(message, {
      status: response.status,
      code: String(json.error),
      field: typeof json.field === "string" ? json.field : null,
      url,
      body,
    });
  }
  return new ApprovalsError(
    `${method} ${new URL(url).pathname} answered ${response.status}: ${text.slice(0, 200)}`,
    { status: response.status, code: "http", url, body: text.slice(0, 200) },
  );
}

/** 5xx and 429 are worth another try; other answers are final. */
export function retryable(status: number): boolean {
  return status >= 500 || status === 429;
}

/** One signal that aborts when any of `signals` does. */
export function anySignal(signals: (AbortSignal | undefined)[]): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const cleanups: (() => void)[] = [];
  for (const signal of signals) {
    if (!signal) continue;
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    cleanups.push(() => signal.removeEventListener("abort", onAbort));
  }
  return { signal: controller.signal, done: () => cleanups.forEach((cleanup) => cleanup()) };
}

class Timeout extends Error {}

/**
 * Send one request and return the response (a status of 400 or more included). A network
 * failure or a timeout raises a `transport` `ApprovalsError`; the caller's `signal`
 * aborting raises its reason.
 */
export async function send(t: Transport, req: Req): Promise<{ response: Response; url: string }> {
  const url = urlOf(t, req.path, req.query);
  const seconds = req.timeout ?? REQUEST_SECONDS;
  const timer = new AbortController();
  const handle = setTimeout(() => timer.abort(new Timeout(`timed out after ${seconds} s`)), seconds * 1000);
  const both = anySignal([req.signal, timer.signal]);
  const headers: Record<string, string> = { ...t.headers, ...req.headers };
  let body: string | undefined;
  if (req.body !== undefined) {
    body = JSON.stringify(req.body);
    headers["Content-Type"] = "application/json";
  }
  try {
    const response = await t.fetch(url, { method: req.method, headers, body, signal: both.signal });
    return { response, url };
  } catch (error) {
    if (req.signal?.aborted) throw req.signal.reason;
    if (timer.signal.aborted) throw transportError(url, timer.signal.reason);
    throw transportError(url, error);
  } finally {
    clearTimeout(handle);
    both.done();
  }
}

/** Seconds a 429's `Retry-After` asks for (0 when none). */
function retryAfter(response: Response): number {
  const value = Number(response.headers.get("Retry-After"));
  return Number.isFinite(value) && value > 0 ? Math.min(value, 60) : 0;
}

export interface CallOptions {
  /** Keep retrying network errors, 5xx and 429 (true) or fail on the first (false). */
  retry?: boolean;
  /** Stop retrying once a pause would end after this time (`Date.now()` milliseconds). */
  deadline?: number;
}

/** One API call and its JSON (null for an empty answer); retried as `options` say. */
export async function call<T = unknown>(t: Transport, req: Req, options: CallOptions = {}): Promise<T> {
  const retry = options.retry ?? true;
  const backoff = new Backoff();
  for (;;) {
    let error: ApprovalsError;
    let pause = 0;
    try {
      const { response, url } = await send(t, req);
      if (response.status < 400) {
        const text = await response.text();
        return (text ? JSON.parse(text) : null) as T;
      }
      error = await apiError(req.method, url, response);
      if (!retryable(response.status)) throw error;
      pause = retryAfter(response) * 1000;
    } catch (caught) {
      if (!(caught instanceof ApprovalsError) || caught.code !== "transport") throw caught;
      error = caught;
    }
    pause = Math.max(pause, backoff.next());
    if (!retry || (options.deadline !== undefined && Date.now() + pause > options.deadline)) throw error;
    await sleep(pause, req.signal);
  }
}
