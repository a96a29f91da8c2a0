// The Vercel AI SDK capture (see README.md). Run by `make_captures.py vercel-ai`, which starts the
// fake OpenAI-compatible server and passes its URL; needs NODE_PATH pointing at a node_modules with
// ai, @ai-sdk/openai, zod, @opentelemetry/{api,sdk-trace-base,resources,context-async-hooks}.
//
// The same support agent as the Python captures: per request, generateText with six tools; the model
// answers with two parallel tool calls. The policy check is the SDK's own tool-approval hook
// (`needsApproval`): it opens a span recording the decision (`policy.decision`, with the tool's name
// and call id), and a denied call needs approval, so the SDK does not run it but returns an approval
// request. The program then answers: "deny" refuses (the tool never runs), "deny-run" approves anyway
// (a bug: the tool runs although policy denied it); a second generateText runs what was approved and
// makes the final model call. Tools without a check ("none") have no needsApproval.
//
// Writes to stdout one JSON document: {"otlp": [ExportTraceServiceRequest...], "log": {...}} where the
// log is the program's own record (make_captures.py turns it into the truth file).
"use strict";

const { generateText, tool, stepCountIs } = require("ai");
const { createOpenAI } = require("@ai-sdk/openai");
const { z } = require("zod");
const api = require("@opentelemetry/api");
const { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } = require("@opentelemetry/sdk-trace-base");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { AsyncLocalStorageContextManager } = require("@opentelemetry/context-async-hooks");

const [baseURL, requestsJson] = process.argv.slice(2);
const REQUESTS = JSON.parse(requestsJson);
const MODEL = "gpt-4o-mini";
const TOOLS = ["lookup_order", "refund_order", "send_email", "delete_account", "search_kb", "update_ticket"];

api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "support-agent" }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
api.trace.setGlobalTracerProvider(provider);
const tracer = api.trace.getTracer("support-agent");
const openai = createOpenAI({ baseURL, apiKey: "test" });

const log = { traces: [], spans: {}, llm_calls: [], tool_calls: [], policy_checks: [] };
const hex = (span) => span.spanContext().spanId;
const traceHex = () => api.trace.getActiveSpan().spanContext().traceId;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function makeTools(behaviour, ran) {
  const out = {};
  for (const name of TOOLS) {
    const b = behaviour[name];
    const def = {
      description: name.replace(/_/g, " "),
      inputSchema: z.object({ order_id: z.string() }),
      execute: async ({ order_id }, { toolCallId }) => {
        const span = api.trace.getActiveSpan(); // the SDK's ai.toolCall span
        log.spans[hex(span)] = "tool";
        ran[toolCallId] = hex(span);
        await sleep(30); // long enough for the two calls to overlap
        return { tool: name, order_id, status: "ok" };
      },
    };
    if (b && b !== "none") {
      def.needsApproval = async (input, { toolCallId }) => {
        const decision = b === "allow" ? "allow" : "deny";
        tracer.startActiveSpan(`policy check ${name}`, (span) => {
          span.setAttribute("policy.decision", decision);
          span.setAttribute("gen_ai.tool.name", name);
          span.setAttribute("gen_ai.tool.call.id", toolCallId);
          log.spans[hex(span)] = "policy";
          log.policy_checks.push({ trace_id: traceHex(), tool: name, call_id: toolCallId, decision });
          span.end();
        });
        return decision === "deny"; // a denied call needs approval: the SDK does not run it
      };
    }
    out[name] = tool(def);
  }
  return out;
}

function recordSteps(result) {
  for (const step of result.steps) {
    log.llm_calls.push({ trace_id: traceHex(), input_tokens: step.usage.inputTokens,
                         output_tokens: step.usage.outputTokens });
  }
}

async function handle(req, i) {
  const question = `request ${i}: please help with order A-${i}`;
  const behaviour = Object.fromEntries(req.tools);
  const ran = {};
  const tools = makeTools(behaviour, ran);
  const metadata = { sessionId: req.session };
  if (req.user) metadata.userId = req.user;
  const telemetry = { isEnabled: true, functionId: "support-agent", metadata, tracer };
  const model = openai.chat(MODEL);
  const messages = [{ role: "user", content: question }];
  let result = await generateText({ model, system: "You are a support agent.", messages, tools,
                                    stopWhen: stepCountIs(4), experimental_telemetry: telemetry });
  recordSteps(result);
  const asked = result.steps[0].toolCalls; // the model's two parallel tool calls
  const approvals = result.content.filter((p) => p.type === "tool-approval-request");
  if (approvals.length) {
    // the program's answer to each approval request: "deny" refuses, "deny-run" approves anyway
    const content = approvals.map((a) => ({ type: "tool-approval-response", approvalId: a.approvalId,
                                            approved: behaviour[a.toolCall.toolName] === "deny-run" }));
    messages.push(...result.response.messages, { role: "tool", content });
    result = await generateText({ model, system: "You are a support agent.", messages, tools,
                                  stopWhen: stepCountIs(4), experimental_telemetry: telemetry });
    recordSteps(result);
  }
  const traceId = traceHex();
  for (const call of asked) {
    const check = log.policy_checks.find((p) => p.call_id === call.toolCallId);
    log.tool_calls.push({ trace_id: traceId, tool: call.toolName, call_id: call.toolCallId,
                          decision: check ? check.decision : null, ran: call.toolCallId in ran,
                          span_id: ran[call.toolCallId] || null });
  }
}

async function main() {
  for (let i = 1; i <= REQUESTS.length; i++) {
    const req = REQUESTS[i - 1];
    await tracer.startActiveSpan("support_request", async (root) => {
      log.traces.push({ trace_id: root.spanContext().traceId, session_id: req.session, user_id: req.user });
      await handle(req, i);
      root.end();
    });
  }
  await provider.forceFlush();
  process.stdout.write(JSON.stringify({ spans: exporter.getFinishedSpans().map(toOtlp), log }));
}

function anyValue(v) {
  if (typeof v === "boolean") return { boolValue: v };
  if (typeof v === "number") return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(anyValue) } };
  return { stringValue: String(v) };
}
const attrs = (o) => Object.entries(o || {}).map(([key, v]) => ({ key, value: anyValue(v) }));
const ns = ([s, n]) => (BigInt(s) * 1000000000n + BigInt(n)).toString();

function toOtlp(s) {
  const ctx = s.spanContext();
  const parent = s.parentSpanContext ? s.parentSpanContext.spanId : undefined;
  const span = {
    traceId: ctx.traceId, spanId: ctx.spanId, name: s.name, kind: s.kind + 1,
    startTimeUnixNano: ns(s.startTime), endTimeUnixNano: ns(s.endTime), attributes: attrs(s.attributes),
    events: s.events.map((e) => ({ timeUnixNano: ns(e.time), name: e.name, attributes: attrs(e.attributes) })),
    status: { code: s.status.code, ...(s.status.message ? { message: s.status.message } : {}) },
  };
  if (parent) span.parentSpanId = parent;
  const scope = s.instrumentationScope || s.instrumentationLibrary || { name: "" };
  return { resource: s.resource.attributes, scope: { name: scope.name, version: scope.version }, span };
}

main().catch((e) => { console.error(e); process.exit(1); });
