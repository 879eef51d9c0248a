// emit() and events() against a real service, through a fetch that loses answers and
// cuts streams, to see the retries and the resumption.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Approvals } from "../dist/index.js";
import { URL, AGENT_KEY, REVIEWER_KEY, noService, unique } from "./helpers.mjs";

/** The JSON page of a run's events, read with the reviewer's key. */
async function stored(runId) {
  const response = await fetch(`${URL}/v1/events?run_id=${runId}&tail=1000`, {
    headers: { Authorization: `Bearer ${REVIEWER_KEY}`, Accept: "application/json" },
  });
  assert.equal(response.status, 200);
  return (await response.json()).events;
}

/** A stream that passes `body` on until its `count`-th event is complete, then breaks. */
function cutAfter(body, count) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  return new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      text += value;
      const frames = text.split(/\r?\n\r?\n/);
      let seen = 0;
      let end = 0;
      for (const frame of frames.slice(0, -1)) {
        end = text.indexOf(frame, end) + frame.length;
        if (/^id:/m.test(frame)) seen += 1;
        if (seen === count) {
          const terminator = text.slice(end).match(/^\r?\n\r?\n/)[0];
          controller.enqueue(new TextEncoder().encode(text.slice(0, end + terminator.length)));
          reader.cancel();
          controller.error(new TypeError("connection reset (test)"));
          return;
        }
      }
    },
  });
}

describe("events", { skip: noService }, () => {
  test("emit batches, and a batch retried after a lost answer is stored once", async () => {
    const runId = unique("run");
    let posts = 0;
    const losing = async (input, init) => {
      const response = await fetch(input, init);
      if (init?.method === "POST" && String(input).endsWith("/v1/events")) {
        posts += 1;
        if (posts === 1) {
          await response.body?.cancel();
          throw new TypeError("fetch failed (the answer was lost)");
        }
      }
      return response;
    };
    const client = new Approvals({ url: URL, key: AGENT_KEY, fetch: losing });
    for (let i = 0; i < 150; i++) client.emit("token", { runId, title: `t${i}`, detail: { i } });
    assert.equal(await client.flush(15_000), true);
    await client.close();
    const events = await stored(runId);
    assert.equal(events.length, 150);
    assert.deepEqual(events.map((event) => event.title), Array.from({ length: 150 }, (_, i) => `t${i}`));
    assert.equal(new Set(events.map((event) => event.externalId)).size, 150);
    assert.ok(posts >= 3, `${posts} posts`); // the lost batch of 100 again, then the other 50
    assert.equal(client.dropped, 0);
    assert.throws(() => client.emit("token"), /closed/);
    assert.throws(() => new Approvals({ url: URL }).emit("token", { colour: "red" }), TypeError);
  });

  test("the buffer keeps the newest events while the service is away", async () => {
    const client = new Approvals({ url: "http://127.0.0.1:9", key: AGENT_KEY, buffer: 3 });
    for (let i = 0; i < 5; i++) client.emit("token", { title: `t${i}` });
    assert.equal(client.dropped, 2);
    assert.equal(await client.flush(300), false);
  });

  test("events() resumes with Last-Event-ID after a drop", async () => {
    const runId = unique("run");
    const writer = new Approvals({ url: URL, key: AGENT_KEY });
    for (let i = 0; i < 5; i++) writer.emit("step", { runId, title: `s${i}` });
    assert.equal(await writer.flush(), true);
    const connections = [];
    const cutting = async (input, init) => {
      connections.push(new Headers(init?.headers).get("Last-Event-ID"));
      const response = await fetch(input, init);
      if (connections.length > 1 || response.status !== 200) return response;
      return new Response(cutAfter(response.body, 2), { status: 200, headers: response.headers });
    };
    const reader = new Approvals({ url: URL, key: REVIEWER_KEY, fetch: cutting });
    const controller = new AbortController();
    const seen = [];
    for await (const event of reader.events({ runId, history: true, signal: controller.signal })) {
      seen.push(event);
      if (seen.length === 5) break;
    }
    assert.deepEqual(seen.map((event) => event.title), ["s0", "s1", "s2", "s3", "s4"]);
    assert.equal(new Set(seen.map((event) => event.id)).size, 5);
    assert.equal(connections.length, 2);
    assert.equal(connections[0], null);
    assert.equal(connections[1], seen[1].id);
  });
});
