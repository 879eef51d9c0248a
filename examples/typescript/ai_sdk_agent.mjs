// A Vercel AI SDK agent whose `needsApproval` tool waits for the approvals inbox.
//
//     export APPROVALS_URL=http://127.0.0.1:8000 APPROVALS_KEY=…  # events:write and approvals:read
//     node examples/typescript/ai_sdk_agent.mjs
//
// The model is the AI SDK's MockLanguageModelV3 playing a script, so the example needs
// no API key: it calls `deleteRows`, then says what the tool result told it. Put a real
// model (e.g. `openai("gpt-5")` from @ai-sdk/openai) in its place for a real agent.
// Approve or reject in the dashboard or with `approvals`; a rejection's reason is what
// the model reads. The AI SDK cannot run a tool with changed input, so edits are refused.

import { tool } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import { Approvals } from "approvals-client";
import { generateWithApprovals } from "approvals-client/ai-sdk";
import { z } from "zod";

const usage = {
  inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: 10, text: 10, reasoning: 0 },
};

/** Turn 1: call deleteRows; turn 2: report what the tool result (or its denial) said. */
const model = new MockLanguageModelV3({
  doGenerate: async ({ prompt }) => {
    const last = prompt.at(-1);
    const result = last?.role === "tool" ? last.content.find((p) => p.type === "tool-result") : null;
    if (!result) {
      return {
        content: [
          {
            type: "tool-call",
            toolCallId: "call_cleanup",
            toolName: "deleteRows",
            input: JSON.stringify({ table: "sessions" }),
          },
        ],
        finishReason: { unified: "tool-calls", raw: "tool_calls" },
        usage,
        warnings: [],
      };
    }
    const { output } = result;
    const text =
      output.type === "execution-denied"
        ? `Finished without deleting anything. ${output.reason ?? "The call was denied."}`
        : `Finished: ${output.value}`;
    return {
      content: [{ type: "text", text }],
      finishReason: { unified: "stop", raw: "stop" },
      usage,
      warnings: [],
    };
  },
});

const tools = {
  deleteRows: tool({
    description: "Delete every row of a table.",
    inputSchema: z.object({ table: z.string() }),
    needsApproval: true,
    execute: async ({ table }) => `deleted every row of ${table}`,
  }),
};

const client = new Approvals();
const result = await generateWithApprovals(
  client,
  { model, tools, prompt: "Clear the sessions table." },
  { agentName: "db-janitor" },
);
console.log(result.text);

await client.close();
