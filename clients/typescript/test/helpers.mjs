// Shared by the tests: the service they run against, made by tests/test_typescript.py.
import { Approvals } from "../dist/index.js";

export const URL = process.env.APPROVALS_URL;
export const AGENT_KEY = process.env.APPROVALS_KEY;
export const REVIEWER_KEY = process.env.APPROVALS_REVIEWER_KEY;
export const ADMIN_KEY = process.env.APPROVALS_ADMIN_KEY ?? REVIEWER_KEY;

/** Why a test against the service cannot run here (undefined when it can). */
export const noService =
  URL && AGENT_KEY && REVIEWER_KEY
    ? undefined
    : "set APPROVALS_URL, APPROVALS_KEY and APPROVALS_REVIEWER_KEY (tests/test_typescript.py does)";

export const agent = () => new Approvals({ url: URL, key: AGENT_KEY });
export const reviewer = () => new Approvals({ url: URL, key: REVIEWER_KEY });

export const unique = (prefix) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait until a pending approval with this run id shows up; return it. */
export async function pendingFor(runId, seconds = 20) {
  const client = reviewer();
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const found = await client.pending({ runId });
    if (found.length) return found[0];
    await sleep(50);
  }
  throw new Error(`no pending approval for run ${runId}`);
}

/** In the background: wait for the run's approval, then decide it as the reviewer. */
export function decideLater(runId, decision, options = {}) {
  return (async () => {
    const approval = await pendingFor(runId);
    await reviewer().decide(approval.id, decision, options);
    return approval;
  })();
}
