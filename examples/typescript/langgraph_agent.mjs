// A LangGraph.js graph that pauses on `interrupt(HumanInterrupt)`, resumed from the inbox.
//
//     export APPROVALS_URL=http://127.0.0.1:8000 APPROVALS_KEY=…  # events:write and approvals:read
//     node examples/typescript/langgraph_agent.mjs
//
// The node asks before running a shell command (no model is involved); accept, edit
// the command, answer with text, or reject (`ignore`) in the dashboard or with
// `approvals`.

import { randomUUID } from "node:crypto";

import { Annotation, END, MemorySaver, START, StateGraph, interrupt } from "@langchain/langgraph";
import { Approvals } from "approvals-client";
import { invokeWithApprovals } from "approvals-client/langgraph";

const State = Annotation.Root({
  command: Annotation(),
  log: Annotation({ reducer: (a, b) => a.concat(b), default: () => [] }),
});

/** Ask a human (an Agent Inbox style HumanInterrupt), then act on the response. */
function runCommand(state) {
  const response = interrupt({
    action_request: { action: "run_command", args: { command: state.command } },
    config: { allow_accept: true, allow_edit: true, allow_respond: true, allow_ignore: true },
    description: `Run \`${state.command}\` on the build server?`,
  });
  if (response.type === "accept") return { log: [`ran ${state.command}`] };
  if (response.type === "edit") return { log: [`ran ${response.args.args.command} (edited)`] };
  if (response.type === "response") {
    return { log: [`did not run; the reviewer said: ${response.args}`] };
  }
  return { log: ["skipped"] };
}

const graph = new StateGraph(State)
  .addNode("run_command", runCommand)
  .addEdge(START, "run_command")
  .addEdge("run_command", END)
  .compile({ checkpointer: new MemorySaver() });

const client = new Approvals();
const config = { configurable: { thread_id: `thread-${randomUUID().slice(0, 8)}` } };
const result = await invokeWithApprovals(client, graph, { command: "make deploy" }, config);
console.log(`Finished: ${result.log.join("; ")}`);

await client.close();
