// REST/JSON through Envoy's transcoder: the notes API's google.api.http rules, and its errors
// as JSON bodies with the HTTP status of the gRPC code.

import { test } from "node:test";
import assert from "node:assert/strict";
import { http, signIn, uniqueWord } from "../testlib/edge.mjs";

await signIn();

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function assertJson(response) {
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/, response.text);
  assert.ok(response.json !== undefined, `not JSON: ${response.text}`);
}

async function createNote(note) {
  const response = await http("POST", "/api/v1/notes", { body: note });
  assert.equal(response.status, 200, response.text);
  assertJson(response);
  return response.json.note;
}

/** Asserts a transcoded gRPC error: HTTP status, google.rpc.Status JSON with `code`. */
function assertError(response, httpStatus, grpcCode) {
  assert.equal(response.status, httpStatus, response.text);
  assertJson(response);
  assert.equal(response.json.code, grpcCode, response.text);
  assert.equal(typeof response.json.message, "string");
}

function violations(response) {
  const detail = (response.json.details ?? []).find((d) =>
    String(d["@type"]).endsWith("/google.rpc.BadRequest"),
  );
  assert.ok(detail, `no google.rpc.BadRequest detail in ${response.text}`);
  return detail.field_violations.map((v) => v.field);
}

test("notes CRUD over REST with JSON bodies", async (t) => {
  const word = uniqueWord("crud");
  let note;

  await t.test("POST /api/v1/notes creates a note", async () => {
    note = await createNote({
      title: `Hello ${word}`,
      original_text: "Hello world",
      original_language: "pt-br",
    });
    assert.match(note.id, UUID);
    assert.equal(note.title, `Hello ${word}`);
    assert.equal(note.original_text, "Hello world");
    assert.equal(note.original_language, "pt-BR", "language tag is stored canonically");
    assert.equal(note.version, "1", "int64 is a JSON string");
    assert.deepEqual(note.translations, []);
    assert.match(note.create_time, RFC3339);
    assert.equal(note.update_time, note.create_time);
  });

  await t.test("GET /api/v1/notes/{id} returns it", async () => {
    const response = await http("GET", `/api/v1/notes/${note.id}`);
    assert.equal(response.status, 200, response.text);
    assertJson(response);
    assert.deepEqual(response.json.note, note);
  });

  await t.test("PATCH /api/v1/notes/{id} changes the title named in update_mask", async () => {
    const response = await http("PATCH", `/api/v1/notes/${note.id}?update_mask=title`, {
      body: { title: `Renamed ${word}`, original_text: "ignored: not in the mask", version: "1" },
    });
    assert.equal(response.status, 200, response.text);
    assertJson(response);
    const updated = response.json.note;
    assert.equal(updated.id, note.id);
    assert.equal(updated.title, `Renamed ${word}`);
    assert.equal(updated.original_text, "Hello world");
    assert.equal(updated.version, "2");
    assert.ok(updated.update_time >= note.update_time);
    note = updated;
  });

  await t.test("PATCH with a stale version is 409 ABORTED", async () => {
    const response = await http("PATCH", `/api/v1/notes/${note.id}`, {
      body: { title: "Too late", version: "1" },
    });
    assertError(response, 409, 10);
    const current = await http("GET", `/api/v1/notes/${note.id}`);
    assert.equal(current.json.note.title, `Renamed ${word}`);
  });

  await t.test("DELETE /api/v1/notes/{id} deletes it, then GET is 404", async () => {
    const response = await http("DELETE", `/api/v1/notes/${note.id}`);
    assert.equal(response.status, 200, response.text);
    assertJson(response);
    assert.deepEqual(response.json, {});
    assertError(await http("GET", `/api/v1/notes/${note.id}`), 404, 5);
  });
});

test("GET /api/v1/notes lists with query parameters and pages", async () => {
  const word = uniqueWord("list");
  const en1 = await createNote({ title: `A ${word}`, original_text: "one", original_language: "en" });
  const en2 = await createNote({ title: `B ${word}`, original_text: "two", original_language: "en" });
  await createNote({ title: `C ${word}`, original_text: "three", original_language: "fr" });

  const first = await http("GET", `/api/v1/notes?query=${word}&language=en&page_size=1`);
  assert.equal(first.status, 200, first.text);
  assertJson(first);
  assert.deepEqual(first.json.notes.map((n) => n.id), [en2.id], "newest first");
  assert.ok(first.json.next_page_token, "a next page token");

  const token = encodeURIComponent(first.json.next_page_token);
  const second = await http(
    "GET",
    `/api/v1/notes?query=${word}&language=en&page_size=1&page_token=${token}`,
  );
  assert.equal(second.status, 200, second.text);
  assert.deepEqual(second.json.notes.map((n) => n.id), [en1.id]);
  assert.equal(second.json.next_page_token, "", "last page");

  const all = await http("GET", `/api/v1/notes?query=${word.toUpperCase()}`);
  assert.equal(all.status, 200, all.text);
  assert.equal(all.json.notes.length, 3, "query matches case-insensitively");
  assert.deepEqual(
    all.json.notes.map((n) => n.original_language),
    ["fr", "en", "en"],
  );
});

test("GET /api/v1/stats counts the caller's notes", async () => {
  const before = await http("GET", "/api/v1/stats");
  assert.equal(before.status, 200, before.text);
  assertJson(before);
  const count = (stats, language) =>
    Number(stats.notes_by_language.find((c) => c.language === language)?.count ?? 0);

  const word = uniqueWord("stats");
  await createNote({ title: word, original_text: "saluton", original_language: "eo" });
  await createNote({ title: word, original_text: "mondo", original_language: "eo" });

  const after = await http("GET", "/api/v1/stats");
  assert.equal(after.status, 200, after.text);
  assert.equal(Number(after.json.total_notes), Number(before.json.total_notes) + 2);
  assert.equal(count(after.json, "eo"), count(before.json, "eo") + 2);
  assert.equal(after.json.total_translations, "0");
  assert.match(after.json.last_activity_time, RFC3339);
});

test("bad input is 400 with a JSON body naming each field", async () => {
  const empty = await http("POST", "/api/v1/notes", {
    body: { title: "", original_text: "text", original_language: "en" },
  });
  assertError(empty, 400, 3);
  assert.deepEqual(violations(empty), ["note.title"]);

  const language = await http("POST", "/api/v1/notes", {
    body: { title: "t", original_text: "text", original_language: "not a language!" },
  });
  assertError(language, 400, 3);
  assert.deepEqual(violations(language), ["note.original_language"]);

  const size = await http("GET", "/api/v1/notes?page_size=1000");
  assertError(size, 400, 3);
  assert.deepEqual(violations(size), ["page_size"]);
});

/**
 * Asserts one of Envoy's own JSON replies (local_reply_config in envoy/envoy.yaml): the services'
 * shape, google.rpc.Status with the gRPC code of the HTTP status and an ErrorInfo of domain "edge".
 */
function assertEdgeReply(response, httpStatus, grpcCode, message) {
  assertError(response, httpStatus, grpcCode);
  assert.match(response.json.message, message);
  assert.deepEqual(Object.keys(response.json).sort(), ["code", "details", "message"]);
  const [info] = response.json.details;
  assert.equal(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo", response.text);
  assert.equal(info.domain, "edge", response.text);
  assert.equal(typeof info.reason, "string");
}

test("a malformed JSON body or an unknown query parameter is 400 with a JSON body", async () => {
  const malformed = await http("POST", "/api/v1/notes", { body: '{"title": ' });
  assertEdgeReply(malformed, 400, 3, /Unexpected end of string/);

  const unknown = await http("GET", "/api/v1/notes?no_such_parameter=1");
  assertEdgeReply(unknown, 400, 3, /no_such_parameter/);
});

test("without an access token a call is 401 with a JSON body", async () => {
  const response = await http("GET", "/api/v1/notes", { anonymous: true });
  assertError(response, 401, 16);
  const forged = await http("GET", "/api/v1/stats", {
    anonymous: true,
    headers: { authorization: "Bearer not.a.token" },
  });
  assertError(forged, 401, 16);
});

test("an unknown note is 404 with a JSON body", async () => {
  const response = await http("GET", "/api/v1/notes/00000000-0000-4000-8000-000000000000");
  assertError(response, 404, 5);
  assert.match(response.json.message, /not found/);
});

test("a path no REST rule maps is 404 with a JSON body", async () => {
  assertEdgeReply(await http("GET", "/api/v1/no-such-thing"), 404, 5, /Could not resolve/);
  assertEdgeReply(await http("DELETE", "/api/v1/stats"), 404, 5, /Could not resolve/);
});

test("the edge's own errors and the services' errors have one JSON shape", async () => {
  // A service's error (INVALID_ARGUMENT with a BadRequest detail), transcoded from gRPC...
  const service = await http("POST", "/api/v1/notes", {
    body: { title: "", original_text: "text", original_language: "en" },
  });
  assertError(service, 400, 3);
  // ... and the edge's own for the same call with a body it cannot parse.
  const edge = await http("POST", "/api/v1/notes", { body: "{not json" });
  assertError(edge, 400, 3);
  const shape = (json) =>
    Object.fromEntries(
      Object.entries(json).map(([key, value]) => [
        key,
        Array.isArray(value) ? value.map((item) => typeof item["@type"]) : typeof value,
      ]),
    );
  assert.deepEqual(shape(edge.json), shape(service.json), `${edge.text}\n${service.text}`);
  assert.deepEqual(shape(service.json), { code: "number", message: "string", details: ["string"] });
});
