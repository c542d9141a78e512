// Server streaming through the edge: a translation job's progress as newline-delimited JSON over
// REST (WatchJobs) and as grpc-web messages (WatchJob). Streaming routes have no deadline, so a
// stream outlives the unary route timeout.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { JobsService, JobState } from "../src/gen/aimesh/jobs/v1/jobs_pb.js";
import { authHeaders, env, http, signIn, uniqueWord } from "../testlib/edge.mjs";

await signIn();

const TERMINAL = ["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"];

async function noteToTranslate() {
  const word = uniqueWord("stream");
  const created = await http("POST", "/api/v1/notes", {
    body: {
      title: `Stream ${word}`,
      original_text: "The house is big. The cat is black. I have a dog.",
      original_language: "en",
    },
  });
  assert.equal(created.status, 200, created.text);
  return created.json.note;
}

async function translate(noteId) {
  const response = await http("POST", `/api/v1/notes/${noteId}/translate`, {
    body: { target_language: "es" },
  });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.json.job.kind, "notes.translate", response.text);
  return response.json.job;
}

/**
 * Follows newline-delimited JSON on a text reader: calls `onLine` for each complete line until it
 * returns false ({stopped}), the body ends ({ended}) or `timeoutMs` passes ({timedOut}).
 */
async function followLines(lines, onLine, timeoutMs) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ timedOut: true }), timeoutMs);
  });
  try {
    for (;;) {
      let newline;
      while ((newline = lines.buffer.indexOf("\n")) >= 0) {
        const line = lines.buffer.slice(0, newline).trim();
        lines.buffer = lines.buffer.slice(newline + 1);
        if (line && onLine(JSON.parse(line)) === false) return { stopped: true };
      }
      lines.pending ??= lines.reader.read();
      const next = await Promise.race([lines.pending, timeout]);
      if (next.timedOut) return next;
      lines.pending = undefined;
      if (next.done) return { ended: true };
      lines.buffer += next.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

test("REST: GET /api/v1/jobs:watch streams a job's changes as NDJSON", async () => {
  const note = await noteToTranslate();
  const abort = new AbortController();
  const response = await fetch(`${env.edgeUrl}/api/v1/jobs:watch`, {
    headers: authHeaders(),
    signal: abort.signal,
  });
  try {
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);

    // The watch is open (headers arrived): submit the job and follow it.
    const lines = {
      reader: response.body.pipeThrough(new TextDecoderStream()).getReader(),
      buffer: "",
    };
    const job = await translate(note.id);
    const seen = [];
    const result = await followLines(
      lines,
      (message) => {
        assert.ok(message.job, `not a WatchJobsResponse: ${JSON.stringify(message)}`);
        if (message.job.id !== job.id) return true;
        seen.push(message.job);
        return !TERMINAL.includes(message.job.state);
      },
      30_000,
    );
    assert.ok(result.stopped, `no terminal state for the job: ${JSON.stringify(result)}`);
    assert.ok(seen.length >= 1, "no line for the job");
    const last = seen.at(-1);
    assert.equal(last.state, "JOB_STATE_SUCCEEDED", JSON.stringify(last));
    assert.equal(last.progress.percent, 100);
    assert.ok(last.result["@type"].endsWith("TranslateNoteResult"), JSON.stringify(last.result));
    assert.equal(last.result.target_language, "es");
    assert.match(last.result.text, /casa/i, "an English-to-Spanish translation");

    // The stream outlives the unary route timeout (streaming routes have none).
    const held = await followLines(lines, () => true, env.routeTimeoutMs + 1500);
    assert.ok(held.timedOut, `the stream did not stay open: ${JSON.stringify(held)}`);
  } finally {
    abort.abort();
  }
  const stored = await http("GET", `/api/v1/notes/${note.id}`);
  assert.deepEqual(stored.json.note.translations.map((t) => t.target_language), ["es"]);
});

test("grpc-web: WatchJob streams the snapshot, then each change, then ends", async () => {
  const note = await noteToTranslate();
  const job = await translate(note.id);
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
  const jobs = createClient(JobsService, transport);
  const states = [];
  for await (const message of jobs.watchJob({ id: job.id }, { timeoutMs: 30_000 })) {
    assert.equal(message.job.id, job.id);
    states.push(message.job.state);
  }
  // The loop ended: the server closed the stream after the terminal state.
  assert.ok(states.length >= 1, "no message");
  assert.equal(states.at(-1), JobState.SUCCEEDED, `states: ${states}`);
  assert.equal(
    states.filter((s) => s === JobState.SUCCEEDED).length,
    1,
    `one terminal message: ${states}`,
  );
});
