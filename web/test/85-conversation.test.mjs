// A chat session through the edge: a message sent over REST answers at once with the pending
// reply (and can be cancelled); the reply streams as newline-delimited JSON (WatchMessage over REST) and as grpc-web
// messages, stage changes and text pieces, and ends with the finished message; polling GET
// sees the same message.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  ConversationService,
  MessageStatus,
} from "../src/gen/aimesh/conversation/v1/conversation_pb.js";
import { authHeaders, env, http, signIn } from "../testlib/edge.mjs";

await signIn();

const REPLY_MS = 300_000;

async function newSession() {
  const created = await http("POST", "/api/v1/chat/sessions", { body: {} });
  assert.equal(created.status, 200, created.text);
  return created.json.session;
}

async function send(sessionId, content) {
  const sent = await http("POST", `/api/v1/chat/sessions/${sessionId}/messages`, {
    body: { content },
  });
  assert.equal(sent.status, 200, sent.text);
  assert.equal(sent.json.user_message.status, "MESSAGE_STATUS_DONE", sent.text);
  assert.equal(sent.json.assistant_message.status, "MESSAGE_STATUS_PROCESSING", sent.text);
  return sent.json.assistant_message;
}

/** Reads newline-delimited JSON from a fetch response until it ends or `timeoutMs` passes. */
async function readLines(response, timeoutMs) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const lines = [];
  let buffer = "";
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    assert.ok(left > 0, `the stream did not end in time; lines: ${JSON.stringify(lines)}`);
    let timer;
    const next = await Promise.race([
      reader.read(),
      new Promise((resolve) => {
        timer = setTimeout(() => resolve({ timedOut: true }), left);
      }),
    ]);
    clearTimeout(timer);
    assert.ok(!next.timedOut, `the stream did not end in time; lines: ${JSON.stringify(lines)}`);
    if (next.done) break;
    buffer += next.value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) lines.push(JSON.parse(line));
    }
  }
  if (buffer.trim()) lines.push(JSON.parse(buffer.trim()));
  return lines;
}

test("REST: a reply streams as NDJSON, stage by stage and piece by piece", async () => {
  const session = await newSession();
  const pending = await send(session.id, "Hello! What is the capital of France?");
  const response = await fetch(
    `${env.edgeUrl}/api/v1/chat/sessions/${session.id}/messages/${pending.id}:watch`,
    { headers: authHeaders() },
  );
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const lines = await readLines(response, REPLY_MS);
  const last = lines.at(-1);
  assert.ok(last.message, `the stream ended with the message: ${JSON.stringify(last)}`);
  assert.equal(last.message.status, "MESSAGE_STATUS_DONE", JSON.stringify(last));
  assert.equal(last.message.intent, "INTENT_CHAT", JSON.stringify(last));
  const stages = lines.filter((line) => line.stage).map((line) => line.stage.stage);
  assert.ok(stages.includes("STAGE_ACT"), `stages: ${stages}`);
  const pieces = lines.filter((line) => typeof line.delta === "string").map((l) => l.delta);
  assert.ok(pieces.length >= 2, `the reply came in ${pieces.length} pieces`);
  assert.equal(pieces.join(""), last.message.content);

  // The seed's polling path sees the same message.
  const polled = await http(
    "GET",
    `/api/v1/chat/sessions/${session.id}/messages/${pending.id}`,
  );
  assert.equal(polled.status, 200, polled.text);
  assert.equal(polled.json.message.content, last.message.content);
  const history = await http("GET", `/api/v1/chat/sessions/${session.id}/messages`);
  assert.equal(history.json.messages.length, 2, history.text);
  assert.equal(history.json.messages[0].role, "ROLE_USER");
  const named = await http("GET", `/api/v1/chat/sessions/${session.id}`);
  assert.equal(named.json.session.title, "Hello! What is the capital of France?");
});

test("REST: POST /api/v1/chat/messages without a session creates one", async () => {
  const response = await http("POST", "/api/v1/chat/messages", {
    body: { message: "Tell me a short fact about owls." },
  });
  assert.equal(response.status, 200, response.text);
  assert.ok(response.json.session.id, response.text);
  assert.equal(response.json.assistant_message.status, "MESSAGE_STATUS_PROCESSING");
  // An explicit cancel stops the reply (and frees the chat engine for the next test).
  const session = response.json.session.id;
  const reply = response.json.assistant_message.id;
  const cancelled = await http(
    "POST",
    `/api/v1/chat/sessions/${session}/messages/${reply}:cancel`,
    { body: {} },
  );
  assert.equal(cancelled.status, 200, cancelled.text);
  assert.equal(cancelled.json.message.status, "MESSAGE_STATUS_CANCELLED", cancelled.text);
  const refused = await http("POST", "/api/v1/chat/messages", { body: { message: "" } });
  assert.equal(refused.status, 400, refused.text);
});

test("grpc-web: WatchMessage streams the reply and ends with the message", async () => {
  const session = await newSession();
  const pending = await send(session.id, "Say hello to my friend Sam.");
  const token = authHeaders();
  const transport = createGrpcWebTransport({
    baseUrl: env.edgeUrl,
    interceptors: [
      (next) => (request) => {
        for (const [name, value] of Object.entries(token)) request.header.set(name, value);
        return next(request);
      },
    ],
  });
  const chat = createClient(ConversationService, transport);
  const events = [];
  for await (const response of chat.watchMessage(
    { sessionId: session.id, id: pending.id },
    { timeoutMs: REPLY_MS },
  )) {
    events.push(response.event);
  }
  const last = events.at(-1);
  assert.equal(last.case, "message", JSON.stringify(events.map((e) => e.case)));
  assert.equal(last.value.status, MessageStatus.DONE);
  const text = events
    .filter((e) => e.case === "delta")
    .map((e) => e.value)
    .join("");
  assert.equal(text, last.value.content);
});
