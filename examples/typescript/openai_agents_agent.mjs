// An OpenAI Agents SDK agent whose `needsApproval` tool waits for the approvals inbox.
//
//     export APPROVALS_URL=http://127.0.0.1:8000 APPROVALS_KEY=…  # events:write and approvals:read
//     node examples/typescript/openai_agents_agent.mjs
//
// The model is a scripted implementation of the SDK's Model interface, so the example
// needs no API key and sends nothing to OpenAI (tracing is off too): it calls
// `delete_rows`, then repeats the tool's result. Put `model: "gpt-5"` (and
// OPENAI_API_KEY) in its place for a real one. A rejection's reason is what the model
// reads as the tool's result; the SDK cannot run changed arguments, so edits are refused.

import { Agent, Usage, setTracingDisabled, tool } from "@openai/agents";
import { Approvals } from "approvals-client";
import { runWithApprovals } from "approvals-client/openai-agents";
import { z } from "zod";

setTracingDisabled(true);

/** Turn 1: call delete_rows; turn 2: say what the tool's result was. */
class ScriptedModel {
  async getResponse(request) {
    const usage = new Usage({ requests: 1, inputTokens: 10, outputTokens: 10, totalTokens: 20 });
    const input = Array.isArray(request.input) ? request.input : [];
    const result = input.filter((item) => item.type === "function_call_result").at(-1);
    if (!result) {
      return {
        usage,
        responseId: "resp_call",
        output: [
          {
            type: "function_call",
            callId: "call_cleanup",
            name: "delete_rows",
            arguments: JSON.stringify({ table: "sessions" }),
            status: "completed",
          },
        ],
      };
    }
    const said = typeof result.output === "string" ? result.output : result.output.text;
    return {
      usage,
      responseId: "resp_done",
      output: [
        {
          type: "message",
          role: "assistant",
          status: "completed",
          content: [{ type: "output_text", text: `Finished: ${said}` }],
        },
      ],
    };
  }

  async *getStreamedResponse() {
    throw new Error("this scripted model does not stream");
  }
}

const deleteRows = tool({
  name: "delete_rows",
  description: "Delete every row of a table.",
  parameters: z.object({ table: z.string() }),
  needsApproval: true,
  execute: async ({ table }) => `deleted every row of ${table}`,
});

const agent = new Agent({ name: "db-janitor", model: new ScriptedModel(), tools: [deleteRows] });
const client = new Approvals();
const result = await runWithApprovals(client, agent, "Clear the sessions table.");
console.log(result.finalOutput);

await client.close();
