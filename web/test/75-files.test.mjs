// Signed file URLs through the edge: a document's URL from GET /api/v1/documents/{id}/url is
// fetched with no token (as a browser's <img>, <audio> or link would) and answers the file with
// its type, name and cache headers; an altered token is 401, a deleted file 404.

import { test } from "node:test";
import assert from "node:assert/strict";
import { env, http, signIn } from "../testlib/edge.mjs";

await signIn();

const TEXT = "Signed URLs open one file, for a short while, without a token.\n";

let document;
let url;

test("a document's signed URL is issued to its owner", async () => {
  const uploaded = await http("POST", "/api/v1/documents?filename=signed.txt", {
    body: TEXT,
    headers: { "content-type": "text/plain" },
  });
  assert.equal(uploaded.status, 200, uploaded.text);
  document = uploaded.json.document;
  const response = await http("GET", `/api/v1/documents/${document.id}/url?ttl_seconds=120`);
  assert.equal(response.status, 200, response.text);
  url = response.json.url;
  assert.match(url, /^\/api\/v1\/files\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  const expires = Date.parse(response.json.expire_time);
  assert.ok(expires > Date.now() && expires <= Date.now() + 121_000, response.text);
});

test("the URL answers the file without a token", async () => {
  const response = await fetch(env.edgeUrl + url);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  assert.match(response.headers.get("content-disposition") ?? "", /filename="signed\.txt"/);
  assert.match(response.headers.get("cache-control") ?? "", /^private, max-age=\d+$/);
  assert.equal(await response.text(), TEXT);
});

test("an altered token is 401 and asks for no bearer token", async () => {
  const altered = url.slice(0, -2) + (url.endsWith("AA") ? "BB" : "AA");
  const response = await fetch(env.edgeUrl + altered);
  assert.equal(response.status, 401);
  const body = await response.text();
  assert.match(body, /not valid/, body);
});

test("signing a URL needs the owner's token", async () => {
  const response = await http("GET", `/api/v1/documents/${document.id}/url`, { anonymous: true });
  assert.equal(response.status, 401, response.text);
});

test("once the document is deleted the URL is 404", async () => {
  const deleted = await http("DELETE", `/api/v1/documents/${document.id}`);
  assert.equal(deleted.status, 200, deleted.text);
  const response = await fetch(env.edgeUrl + url);
  assert.equal(response.status, 404);
  await response.arrayBuffer();
});
