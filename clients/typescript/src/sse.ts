/** Following a server-sent-event feed across drops, resuming with `Last-Event-ID`. */

import { createParser, type EventSourceMessage } from "eventsource-parser";
import { ApprovalsError } from "./errors.js";
import { Backoff, anySignal, apiError, retryable, sleep, transportError, urlOf, type Query, type Transport } from "./http.js";

/** Seconds without a byte (the feeds send a keep-alive well within it) before reconnecting. */
export const IDLE_SECONDS = 90;
/** Seconds to wait for a (re)connection's answer. */
const CONNECT_SECONDS = 10;

/** What a feed means by each message, and where a reconnect resumes. */
export interface Feed<Item> {
  path: string;
  query: Query;
  /** The last position seen, sent as `Last-Event-ID` on the next connection. */
  position: string | null;
  receive(message: EventSourceMessage): Item | undefined;
}

/**
 * Follow `feed`: yield what it makes of each message; on a drop (network error, idle
 * connection, 5xx, 429) reconnect with jittered backoff and `Last-Event-ID`, so nothing is
 * missed or repeated. A final error (401, 400, …) is thrown; `signal` ends it quietly.
 */
export async function* follow<Item>(t: Transport, feed: Feed<Item>, signal?: AbortSignal): AsyncGenerator<Item> {
  const backoff = new Backoff();
  while (!signal?.aborted) {
    const url = urlOf(t, feed.path, feed.query);
    const connection = new AbortController();
    const both = anySignal([signal, connection.signal]);
    let idle: ReturnType<typeof setTimeout> | undefined;
    const arm = (seconds: number) => {
      clearTimeout(idle);
      idle = setTimeout(() => connection.abort(new Error(`no data for ${seconds} s`)), seconds * 1000);
    };
    let reader: ReadableStreamDefaultReader<string> | undefined;
    try {
      const headers: Record<string, string> = { ...t.headers, Accept: "text/event-stream" };
      if (feed.position) headers["Last-Event-ID"] = feed.position;
      arm(CONNECT_SECONDS);
      let response: Response;
      try {
        response = await t.fetch(url, { method: "GET", headers, signal: both.signal });
      } catch (error) {
        throw transportError(url, connection.signal.aborted ? connection.signal.reason : error);
      }
      if (response.status >= 400) {
        const error = await apiError("GET", url, response);
        if (!retryable(response.status)) throw Object.assign(error, { final: true });
        throw error;
      }
      if (!response.body) throw transportError(url, new Error("the answer has no body"));
      backoff.reset();
      const messages: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (message) => messages.push(message) });
      reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        arm(IDLE_SECONDS);
        let chunk: ReadableStreamReadResult<string>;
        try {
          chunk = await reader.read();
        } catch (error) {
          throw transportError(url, connection.signal.aborted ? connection.signal.reason : error);
        }
        if (chunk.done) break;
        parser.feed(chunk.value);
        while (messages.length) {
          const item = feed.receive(messages.shift()!);
          if (item !== undefined) yield item;
        }
      }
    } catch (error) {
      if (signal?.aborted) return;
      if (!(error instanceof ApprovalsError) || (error as { final?: boolean }).final) throw error;
      // a drop: reconnect below
    } finally {
      clearTimeout(idle);
      both.done();
      connection.abort(new Error("closed"));
      reader?.cancel().catch(() => undefined);
    }
    try {
      await sleep(backoff.next(), signal);
    } catch {
      return;
    }
  }
}

/** The JSON of a message's data. */
export function json(message: EventSourceMessage): Record<string, unknown> {
  return JSON.parse(message.data) as Record<string, unknown>;
}
