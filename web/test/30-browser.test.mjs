// What a browser needs: CORS preflights answered by the edge, and grpc-web calls from the SDK
// generated from proto/ (buf generate) over @connectrpc/connect-web's grpc-web transport.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { NotesService } from "../src/gen/aimesh/notes/v1/notes_pb.js";
import { authHeaders, descriptorRegistry, env, http, signIn, uniqueWord } from "../testlib/edge.mjs";

await signIn();
const origin = env.allowedOrigin;

/** The grpc-web transport a browser app would use, sending the user's access token. */
function grpcWebTransport({ anonymous = false } = {}) {
  const token = anonymous ? {} : authHeaders();
  return createGrpcWebTransport({
    baseUrl: env.edgeUrl,
    interceptors: [
      (next) => (request) => {
        for (const [name, value] of Object.entries(token)) request.header.set(name, value);
        return next(request);
      },
    ],
  });
}

function listOf(header) {
  return (header ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
}

test("a CORS preflight for REST is answered with the allow headers", async () => {
  const response = await http("OPTIONS", "/api/v1/notes", {
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type",
    },
  });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.headers.get("access-control-allow-origin"), origin);
  assert.ok(listOf(response.headers.get("access-control-allow-methods")).includes("post"));
  assert.ok(listOf(response.headers.get("access-control-allow-headers")).includes("content-type"));
  assert.ok(Number(response.headers.get("access-control-max-age")) > 0);
});

test("a CORS preflight for grpc-web allows its headers and exposes the grpc ones", async () => {
  const response = await http("OPTIONS", "/aimesh.notes.v1.NotesService/CreateNote", {
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-grpc-web,x-user-agent,grpc-timeout",
    },
  });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.headers.get("access-control-allow-origin"), origin);
  const allowed = listOf(response.headers.get("access-control-allow-headers"));
  for (const header of ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"]) {
    assert.ok(allowed.includes(header), `${header} not in ${allowed}`);
  }
  const exposed = listOf(response.headers.get("access-control-expose-headers"));
  for (const header of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) {
    assert.ok(exposed.includes(header), `${header} not exposed: ${exposed}`);
  }
});

test("a preflight from an origin that is not allowed gets no CORS grant", async () => {
  const response = await http("OPTIONS", "/api/v1/notes", {
    headers: { origin: "http://evil.test", "access-control-request-method": "POST" },
  });
  assert.equal(response.headers.get("access-control-allow-origin"), null);
});

test("an actual REST response carries the CORS headers for an allowed origin", async () => {
  const response = await http("GET", "/api/v1/stats", { headers: { origin } });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.headers.get("access-control-allow-origin"), origin);
  const exposed = listOf(response.headers.get("access-control-expose-headers"));
  assert.ok(exposed.includes("grpc-status"), `exposed: ${exposed}`);
});

test("grpc-web unary calls from the generated SDK go through the edge", async (t) => {
  const client = createClient(NotesService, grpcWebTransport());
  const word = uniqueWord("web");

  let created;
  await t.test("CreateNote, with the CORS headers on the response", async () => {
    let headers;
    const response = await client.createNote(
      { note: { title: `Web ${word}`, originalText: "from grpc-web", originalLanguage: "de" } },
      { headers: { origin }, onHeader: (h) => (headers = h) },
    );
    created = response.note;
    assert.ok(created, "no note in the response");
    assert.match(created.id, /^[0-9a-f-]{36}$/);
    assert.equal(created.title, `Web ${word}`);
    assert.equal(created.version, 1n);
    assert.match(headers.get("content-type") ?? "", /^application\/grpc-web/);
    assert.equal(headers.get("access-control-allow-origin"), origin);
  });

  await t.test("GetNote returns what REST sees", async () => {
    const response = await client.getNote({ id: created.id });
    assert.equal(response.note.originalText, "from grpc-web");
    const rest = await http("GET", `/api/v1/notes/${created.id}`);
    assert.equal(rest.status, 200, rest.text);
    assert.equal(rest.json.note.title, `Web ${word}`);
  });

  await t.test("bad input fails with INVALID_ARGUMENT and BadRequest details", async () => {
    const error = await client
      .createNote({ note: { title: "", originalText: "x", originalLanguage: "en" } })
      .then(
        () => assert.fail("an empty title was accepted"),
        (e) => ConnectError.from(e),
      );
    assert.equal(error.code, Code.InvalidArgument, String(error));
    const detail = error.details.find((d) => d.type === "google.rpc.BadRequest");
    assert.ok(detail, `no BadRequest detail: ${JSON.stringify(error.details)}`);
    const schema = descriptorRegistry().getMessage("google.rpc.BadRequest");
    const badRequest = fromBinary(schema, detail.value);
    assert.deepEqual(
      badRequest.fieldViolations.map((v) => v.field),
      ["note.title"],
    );
  });

  await t.test("an unknown note fails with NOT_FOUND", async () => {
    const error = await client.getNote({ id: "00000000-0000-4000-8000-000000000000" }).then(
      () => assert.fail("found a note that does not exist"),
      (e) => ConnectError.from(e),
    );
    assert.equal(error.code, Code.NotFound, String(error));
  });

  await t.test("without an access token the call fails with UNAUTHENTICATED", async () => {
    const anonymous = createClient(NotesService, grpcWebTransport({ anonymous: true }));
    const error = await anonymous.getNoteStats({}).then(
      () => assert.fail("an anonymous call was served"),
      (e) => ConnectError.from(e),
    );
    assert.equal(error.code, Code.Unauthenticated, String(error));
  });
});
