import { streamText, simulateReadableStream } from "ai";
import { MockLanguageModelV2 } from "ai/test";
import fs from "node:fs";

function model(chunks) {
  return new MockLanguageModelV2({
    doStream: async () => ({ stream: simulateReadableStream({ chunks, initialDelayInMs: 0, chunkDelayInMs: 0 }) }),
  });
}
const usage = { inputTokens: 12, outputTokens: 5, totalTokens: 17 };
const plain = [
  { type: "text-start", id: "t0" },
  { type: "text-delta", id: "t0", delta: "Hello" },
  { type: "text-delta", id: "t0", delta: ", wörld" },
  { type: "text-delta", id: "t0", delta: " \"quoted\"\n" },
  { type: "text-delta", id: "t0", delta: " 🚀" },
  { type: "text-end", id: "t0" },
  { type: "finish", finishReason: "stop", usage },
];
const reasoning = [
  { type: "reasoning-start", id: "r0" },
  { type: "reasoning-delta", id: "r0", delta: "Let me think" },
  { type: "reasoning-delta", id: "r0", delta: " about it." },
  { type: "reasoning-end", id: "r0" },
  { type: "source", sourceType: "url", id: "s0", url: "https://example.com", title: "Example" },
  { type: "text-start", id: "t0" },
  { type: "text-delta", id: "t0", delta: "Answer" },
  { type: "text-delta", id: "t0", delta: " here." },
  { type: "text-end", id: "t0" },
  { type: "finish", finishReason: "stop", usage },
];
const failing = [
  { type: "text-start", id: "t0" },
  { type: "text-delta", id: "t0", delta: "Part" },
  { type: "error", error: new Error("backend exploded") },
];
async function dump(name, chunks, opts = {}) {
  const result = streamText({ model: model(chunks), prompt: "hi", onError: () => {} });
  const resp = result.toUIMessageStreamResponse(opts);
  const body = Buffer.from(await resp.arrayBuffer());
  const headers = Object.fromEntries(resp.headers.entries());
  fs.writeFileSync(`${name}.body`, body);
  fs.writeFileSync(`${name}.headers.json`, JSON.stringify(headers, null, 1));
  console.log(name, JSON.stringify(headers), body.length);
}
await dump("ui5-plain", plain);
await dump("ui5-reasoning", reasoning, { sendReasoning: true, sendSources: true });
await dump("ui5-error", failing);
