// Documents through the edge: a raw file body uploaded over REST (google.api.HttpBody, not
// base64), processed by its job, found by semantic search, downloaded with its content type;
// a resumable upload whose chunks are raw bodies (PUT /api/v1/uploads/{id}/content?offset=N);
// a body over the edge's limit is refused with 413 and a JSON body.

import { test } from "node:test";
import assert from "node:assert/strict";
import { env, eventually, http, signIn } from "../testlib/edge.mjs";

await signIn();

const TEXT =
  "The orchard behind the school has twelve apple trees.\n\n" +
  "Every autumn the pupils press the apples into juice.\n";

let document;

test("a raw file body uploads as a document and starts its processing job", async () => {
  const response = await http("POST", "/api/v1/documents?filename=orchard.txt", {
    body: TEXT,
    headers: { "content-type": "text/plain" },
  });
  assert.equal(response.status, 200, response.text);
  document = response.json.document;
  assert.equal(document.filename, "orchard.txt");
  assert.equal(Number(document.size_bytes), Buffer.byteLength(TEXT));
  assert.equal(document.status, "DOCUMENT_STATUS_PENDING");
  assert.ok(response.json.job?.id, response.text);
});

test("the job makes the document ready and searchable", async () => {
  const ready = await eventually(
    async () => {
      const response = await http("GET", `/api/v1/documents/${document.id}`);
      return response.json?.document?.status === "DOCUMENT_STATUS_READY" && response.json.document;
    },
    { timeoutMs: 30_000 },
  );
  assert.ok(ready, "the document became READY");
  assert.equal(ready.format, "text");
  const search = await http("POST", "/api/v1/documents:search", {
    body: { query: "juice made from fruit", k: 3 },
  });
  assert.equal(search.status, 200, search.text);
  assert.equal(search.json.hits[0].document_id, document.id, search.text);
  assert.match(search.json.hits[0].passage, /apples into juice/);
});

test("the original downloads with its content type", async () => {
  const response = await http("GET", `/api/v1/documents/${document.id}/content`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(response.text, TEXT);
});

const CREME =
  "Crème brûlée: a custard base under a layer of hard caramel, made crisp with a torch.\n";

test("a resumable upload takes raw chunks at offsets and resumes from the stored one", async () => {
  const bytes = Buffer.from(CREME, "utf8");
  const created = await http("POST", "/api/v1/uploads", {
    body: { filename: "creme.txt", size_bytes: bytes.length, content_type: "text/plain" },
  });
  assert.equal(created.status, 200, created.text);
  const upload = created.json.upload;
  assert.equal(Number(upload.offset), 0);
  // The cut splits "è" in two: neither chunk alone is UTF-8, and the bytes go through as they
  // are (no JSON, no base64).
  const cut = bytes.indexOf(0xc3) + 1;
  const put = (offset, chunk) =>
    http("PUT", `/api/v1/uploads/${upload.id}/content?offset=${offset}`, {
      body: chunk,
      headers: { "content-type": "application/octet-stream" },
    });
  const first = await put(0, bytes.subarray(0, cut));
  assert.equal(first.status, 200, first.text);
  assert.equal(Number(first.json.upload.offset), cut);
  // A resent chunk (the answer was lost) is refused, naming the stored offset.
  const resent = await put(0, bytes.subarray(0, cut));
  assert.equal(resent.status, 400, resent.text);
  assert.match(resent.json?.message ?? resent.text, new RegExp(`\\b${cut}\\b`));
  const stored = await http("GET", `/api/v1/uploads/${upload.id}`);
  assert.equal(Number(stored.json.upload.offset), cut, stored.text);
  const rest = await put(cut, bytes.subarray(cut));
  assert.equal(rest.status, 200, rest.text);
  assert.equal(Number(rest.json.upload.offset), bytes.length);
  const finished = await http("POST", `/api/v1/uploads/${upload.id}:finish`, { body: {} });
  assert.equal(finished.status, 200, finished.text);
  const id = finished.json.document.id;
  assert.equal(Number(finished.json.document.size_bytes), bytes.length);
  const content = await http("GET", `/api/v1/documents/${id}/content`);
  assert.equal(content.status, 200);
  assert.equal(content.text, CREME);
});

test("a body over the edge's limit is 413 with a JSON body", async () => {
  const big = "x".repeat(Number(env.maxRequestBytes) + 1024);
  const response = await http("POST", "/api/v1/documents?filename=big.txt", {
    body: big,
    headers: { "content-type": "text/plain" },
  });
  assert.equal(response.status, 413, response.text.slice(0, 200));
  assert.ok(response.json !== undefined, response.text.slice(0, 200));
});
