// Against a real service: APPROVALS_URL, APPROVALS_KEY (events:write + approvals:read) and
// APPROVALS_REVIEWER_KEY (may decide and read events). tests/test_typescript.py sets them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  Answered,
  Approvals,
  ApprovalsError,
  NotApproved,
  Rejected,
  argumentsDigest,
} from "../dist/index.js";
import { URL, AGENT_KEY, agent, decideLater, noService, pendingFor, reviewer, sleep, unique } from "./helpers.mjs";

describe("approvals against the service", { skip: noService }, () => {
  test("the URL and key come from APPROVALS_URL and APPROVALS_KEY", () => {
    assert.equal(new Approvals().url, URL.replace(/\/+$/, ""));
  });

  test("requestApproval waits for an approval", async () => {
    const runId = unique("run");
    const later = decideLater(runId, "approve", { comment: "fine" });
    const decision = await agent().requestApproval({
      title: "Deploy?",
      tool: "deploy",
      arguments: { env: "prod" },
      runId,
      timeoutSeconds: 60,
    });
    const approval = await later;
    assert.equal(decision.approvalId, approval.id);
    assert.equal(decision.status, "approved");
    assert.equal(decision.approved, true);
    assert.equal(decision.comment, "fine");
    assert.deepEqual(decision.arguments, { env: "prod" });
    assert.equal(decision.edited, false);
    assert.equal(decision.resolvedBy, "reviewer");
    assert.ok(decision.resolvedAt);
    assert.equal(decision.raw.tool, "deploy");
    assert.equal(decision.raw.argumentsDigest, await argumentsDigest({ env: "prod" }));
  });

  test("a rejection throws Rejected and the function does not run", async () => {
    const runId = unique("run");
    let ran = 0;
    const drop = agent().requireApproval(async ({ table }) => ++ran && `dropped ${table}`, {
      title: "Drop {table}?",
      runId,
    });
    const later = decideLater(runId, "reject", { reason: "not today" });
    await assert.rejects(drop({ table: "users" }), (error) => {
      assert.ok(error instanceof Rejected && error instanceof NotApproved);
      assert.equal(error.decision.comment, "not today");
      assert.match(error.message, /not today/);
      return true;
    });
    const approval = await later;
    assert.equal(approval.title, "Drop users?");
    assert.equal(ran, 0);
  });

  test("an answer throws Answered with the text", async () => {
    const runId = unique("run");
    const later = decideLater(runId, "answer", { answer: "use staging" });
    const guarded = agent().requireApproval(() => "ran", { title: (args) => `Deploy ${args.env}?`, runId });
    await assert.rejects(guarded({ env: "prod" }), (error) => error instanceof Answered && error.answer === "use staging");
    await later;
  });

  test("edited arguments reach the function, and the receipt is recorded", async () => {
    const runId = unique("run");
    const calls = [];
    async function postAds(args) {
      calls.push(args);
      return `posted ${args.count} ads to ${args.platform}`;
    }
    const guarded = agent().requireApproval(postAds, { title: "Post {count} ads to {platform}?", runId });
    const later = decideLater(runId, "approve", { arguments: { count: 2 } });
    assert.equal(await guarded({ count: 5, platform: "meta" }), "posted 2 ads to meta");
    const approval = await later;
    assert.equal(approval.tool, "postAds");
    assert.deepEqual(approval.arguments, { count: 5, platform: "meta" });
    assert.deepEqual(calls, [{ count: 2, platform: "meta" }]);
    const after = await agent().getApproval(approval.id);
    assert.ok(after.edited);
    assert.equal(after.raw.execution.argumentsDigest, await argumentsDigest({ count: 2, platform: "meta" }));
  });

  test("the same key finds the same approval, and a second run is refused", async () => {
    const runId = unique("run");
    const key = unique("job");
    let ran = 0;
    const client = agent();
    const charge = client.requireApproval(({ amount }) => (ran += 1, `charged ${amount}`), {
      title: "Charge {amount}?",
      key: `${key}-{amount}`,
      runId,
    });
    const later = decideLater(runId, "approve");
    assert.equal(await charge({ amount: 10 }), "charged 10");
    const approval = await later;
    const again = await client.requestApproval({ title: "Charge 10?", key: `${key}-10` });
    assert.equal(again.approvalId, approval.id);
    assert.equal(again.status, "approved");
    // A retried step asks again with the same key: the receipt is refused, nothing runs twice.
    await assert.rejects(charge({ amount: 10 }), (error) => {
      assert.ok(error instanceof ApprovalsError);
      assert.equal(error.status, 409);
      assert.equal(error.code, "already_executed");
      return true;
    });
    assert.equal(ran, 1);
    // executable() reports the refusal as a decision instead
    const refused = await client.executable(again);
    assert.equal(refused.status, "not_executable");
    assert.equal(refused.approved, false);
    assert.ok(refused.comment);
  });

  test("aborting the wait withdraws the approval", async () => {
    const runId = unique("run");
    const controller = new AbortController();
    const reason = new Error("the run was cancelled");
    const waiting = agent().requestApproval({ title: "Wait for me?", runId, signal: controller.signal });
    const approval = await pendingFor(runId);
    controller.abort(reason);
    await assert.rejects(waiting, (error) => error === reason);
    const after = await agent().getApproval(approval.id);
    assert.equal(after.status, "withdrawn");
  });

  test("wait: false, waitForDecision and withdraw", async () => {
    const client = agent();
    const opened = await client.requestApproval({ title: "Later?", wait: false, timeoutSeconds: 600 });
    assert.equal(opened.status, "pending");
    const still = await client.waitForDecision(opened.approvalId, { timeoutSeconds: 0.5 });
    assert.equal(still.status, "pending");
    const withdrawn = await client.withdraw(opened.approvalId);
    assert.equal(withdrawn.status, "withdrawn");
    assert.equal((await client.waitForDecision(opened.approvalId)).status, "withdrawn");
  });

  test("the wait keeps going across network drops and 5xx answers", async () => {
    const runId = unique("run");
    let polls = 0;
    const flaky = async (input, init) => {
      if (String(input).includes("wait=")) {
        polls += 1;
        if (polls <= 2) throw new TypeError("fetch failed (connection reset)");
        if (polls === 3) return new Response("upstream restarting", { status: 503 });
      }
      return fetch(input, init);
    };
    const client = new Approvals({ url: URL, key: AGENT_KEY, fetch: flaky });
    const later = decideLater(runId, "approve");
    const decision = await client.requestApproval({ title: "Through the drops?", runId });
    assert.equal(decision.status, "approved");
    assert.equal(decision.approvalId, (await later).id);
    assert.ok(polls >= 4, `${polls} polls`);
  });

  test("errors carry the service's code, field and the URL called", async () => {
    const client = agent();
    await assert.rejects(
      client.requestApproval({ title: "Bad callback?", callbackUrl: "ftp://example.invalid/x" }),
      (error) => {
        assert.ok(error instanceof ApprovalsError);
        assert.equal(error.status, 422);
        assert.equal(error.code, "invalid");
        assert.equal(error.field, "body.callbackUrl");
        assert.equal(error.url, `${client.url}/v1/approvals`);
        return true;
      },
    );
    await assert.rejects(client.withdraw("apr_nope"), (error) => {
      assert.equal(error.status, 404);
      assert.equal(error.code, "not_found");
      assert.equal(error.url, `${client.url}/v1/approvals/apr_nope/withdraw`);
      return true;
    });
    // the agent's key may not decide
    await assert.rejects(client.decide("apr_nope", "approve"), (error) => error.status === 403 && error.code === "forbidden");
    const stranger = new Approvals({ url: URL, key: "apk_not_a_key" });
    await assert.rejects(stranger.getApproval("apr_nope"), (error) => {
      assert.equal(error.status, 401);
      assert.equal(error.code, "unauthorized");
      assert.match(error.message, /APPROVALS_KEY/);
      return true;
    });
  });

  test("an unreachable service's error names the URL and APPROVALS_URL", async () => {
    const client = new Approvals({ url: "http://127.0.0.1:9/", key: AGENT_KEY });
    await assert.rejects(client.withdraw("apr_x"), (error) => {
      assert.ok(error instanceof ApprovalsError);
      assert.equal(error.code, "transport");
      assert.equal(error.status, null);
      assert.equal(error.url, "http://127.0.0.1:9/v1/approvals/apr_x/withdraw");
      assert.match(error.message, /http:\/\/127\.0\.0\.1:9/);
      assert.match(error.message, /APPROVALS_URL/);
      return true;
    });
  });

  test("a pending approval shows in the inbox feed", async () => {
    const controller = new AbortController();
    const client = agent();
    const runId = unique("run");
    const inbox = client.inbox({ runId, signal: controller.signal });
    const kinds = [];
    let opened;
    for await (const change of inbox) {
      kinds.push(change.kind);
      if (change.kind === "snapshot") {
        assert.equal(inbox.pending.size, 0);
        opened = await client.requestApproval({ title: "In the inbox?", runId, wait: false });
      } else if (change.kind === "approval.opened") {
        assert.equal(change.approvals[0].id, opened.approvalId);
        assert.ok(inbox.pending.has(opened.approvalId));
        await client.withdraw(opened.approvalId);
      } else if (change.kind === "approval.resolved") {
        assert.equal(inbox.pending.size, 0);
        break;
      }
    }
    assert.deepEqual(kinds, ["snapshot", "approval.opened", "approval.resolved"]);
    assert.ok(inbox.position);
  });
});
