// Domain events through the edge: a change made over REST comes back on WatchEvents as a line of
// newline-delimited JSON (REST) and as a grpc-web message, typed, with the resource's id; the
// same events are listed as pages; an administrator-only option is refused to a user.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { EventsService } from "../src/gen/aimesh/events/v1/events_pb.js";
import { authHeaders, env, eventually, http, signIn, uniqueWord } from "../testlib/edge.mjs";

await signIn();

async function createNote(title) {
  const created = await http("POST", "/api/v1/notes", {
    body: { title, original_text: "text", original_language: "en" },
  });
  assert.equal(created.status, 200, created.text);
  return created.json.note ?? created.json;
}

/** Reads NDJSON lines from a never-ending response until `done(lines)` or `timeoutMs`. */
async function readUntil(response, done, timeoutMs = 30_000) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const lines = [];
  let buffer = "";
  const deadline = Date.now() + timeoutMs;
  try {
    while (!done(lines)) {
      const left = deadline - Date.now();
      assert.ok(left > 0, `no matching event in time; lines: ${JSON.stringify(lines)}`);
      let timer;
      const next = await Promise.race([
        reader.read(),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve({ timedOut: true }), left);
        }),
      ]);
      clearTimeout(timer);
      assert.ok(!next.timedOut && !next.done, `the stream ended; lines: ${JSON.stringify(lines)}`);
      buffer += next.value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) lines.push(JSON.parse(line));
      }
    }
  } finally {
    await reader.cancel();
  }
  return lines;
}

test("REST: a new note comes back on the NDJSON event stream and in the pages", async () => {
  const controller = new AbortController();
  const response = await fetch(`${env.edgeUrl}/api/v1/events:watch?types=notes`, {
    headers: authHeaders(),
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const title = uniqueWord("event");
  // The watch starts with the events numbered after the call: create once it is open.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const note = await createNote(title);
  const lines = await readUntil(response, (seen) =>
    seen.some((line) => line.event?.subject_id === note.id),
  );
  controller.abort();
  const event = lines.find((line) => line.event?.subject_id === note.id).event;
  assert.equal(event.type, "notes.note.created");
  assert.equal(event.payload.note_created.title, title);
  assert.ok(event.id && event.time && Number(event.sequence) > 0, JSON.stringify(event));

  const listed = await eventually(async () => {
    const page = await http("GET", "/api/v1/events?types=notes.note.created&page_size=100");
    assert.equal(page.status, 200, page.text);
    return page.json.events?.find((e) => e.id === event.id);
  });
  assert.equal(listed.subject_id, note.id);

  const refused = await http("GET", "/api/v1/events?all_accounts=true");
  assert.equal(refused.status, 403, refused.text);
  assert.equal(refused.json.code, 7, refused.text);
  const bad = await http("GET", "/api/v1/events?types=nope");
  assert.equal(bad.status, 400, bad.text);
  assert.match(bad.text, /types\[0\]/);
});

test("grpc-web: WatchEvents resumes after the last event seen", async () => {
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
  const events = createClient(EventsService, transport);
  const first = await createNote(uniqueWord("first"));
  const firstEvent = await eventually(async () => {
    const page = await http("GET", "/api/v1/events?types=notes&page_size=100");
    return page.json.events?.find((e) => e.subject_id === first.id);
  });
  const second = await createNote(uniqueWord("second"));
  const controller = new AbortController();
  const seen = [];
  try {
    for await (const response of events.watchEvents(
      { afterEventId: firstEvent.id, types: ["notes"] },
      { signal: controller.signal, timeoutMs: 30_000 },
    )) {
      seen.push(response.event);
      if (response.event.subjectId === second.id) break;
    }
  } finally {
    controller.abort();
  }
  assert.equal(seen[0].subjectId, second.id, JSON.stringify(seen.map((e) => e.subjectId)));
  assert.equal(seen[0].type, "notes.note.created");
  assert.equal(seen[0].payload.kind.case, "noteCreated");
});
