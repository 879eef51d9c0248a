// verifyWebhook on a genuine delivery from the service, and on tampered ones.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { describe, test } from "node:test";
import { InvalidWebhook, verifyWebhook } from "../dist/index.js";
import { ADMIN_KEY, URL, noService, unique } from "./helpers.mjs";

async function api(method, path, body) {
  const response = await fetch(URL + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(response.status < 300, `${method} ${path}: ${response.status} ${await response.clone().text()}`);
  return response.json();
}

describe("webhooks", { skip: noService }, () => {
  test("verifyWebhook accepts a genuine delivery and refuses a tampered one", async () => {
    let received;
    const arrived = new Promise((resolve) => {
      received = resolve;
    });
    const server = createServer((request, response) => {
      let body = "";
      request.setEncoding("utf8");
      request.on("data", (chunk) => (body += chunk));
      request.on("end", () => {
        response.writeHead(204).end();
        received({ body, headers: request.headers });
      });
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const type = unique("hooked").replace(/-/g, "_");
      const endpoint = await api("POST", "/v1/webhooks", {
        url: `http://127.0.0.1:${server.address().port}/hook`,
        eventTypes: [type],
      });
      await api("POST", "/v1/events", { type, title: "for the webhook" });
      let timer;
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("no delivery in 20 s")), 20_000);
      });
      const { body, headers } = await Promise.race([arrived, late]).finally(() => clearTimeout(timer));
      const payload = verifyWebhook(endpoint.secret, body, headers);
      assert.equal(payload.type, type);
      assert.equal(payload.data.title, "for the webhook");
      // a Headers object works as well
      assert.equal(verifyWebhook(endpoint.secret, body, new Headers(headers)).type, type);
      assert.throws(() => verifyWebhook(endpoint.secret, body.replace("for the", "for a"), headers), InvalidWebhook);
      assert.throws(() => verifyWebhook("whsec_" + btoa("another secret of 32 bytes......"), body, headers), InvalidWebhook);
      assert.throws(() => verifyWebhook(endpoint.secret, body, { ...headers, "webhook-timestamp": "1" }), InvalidWebhook);
      assert.throws(() => verifyWebhook(endpoint.secret, body, {}), /webhook rejected/);
    } finally {
      server.close();
      server.closeAllConnections(); // the service keeps its connection alive
    }
  });
});
