import { streamText, simulateReadableStream } from "ai";
import { MockLanguageModelV1 } from "ai/test";
import fs from "node:fs";
const m = new MockLanguageModelV1({
  doStream: async () => ({
    stream: simulateReadableStream({ chunks: [
      { type: "text-delta", textDelta: "Hello" }, { type: "text-delta", textDelta: ", wörld" },
      { type: "text-delta", textDelta: " \"quoted\"\n" }, { type: "text-delta", textDelta: " 🚀" },
      { type: "finish", finishReason: "stop", usage: { completionTokens: 4, promptTokens: 12 } } ], initialDelayInMs: 0, chunkDelayInMs: 0 }),
    rawCall: { rawPrompt: null, rawSettings: {} },
  }),
});
const r = streamText({ model: m, prompt: "hi" });
const resp = r.toDataStreamResponse();
fs.writeFileSync("v4-data.body", Buffer.from(await resp.arrayBuffer()));
fs.writeFileSync("v4-data.headers.json", JSON.stringify(Object.fromEntries(resp.headers.entries()), null, 1));
