// Plain gRPC (HTTP/2, h2c) through the edge with grpcurl, and directly on the mesh's port.

import { test } from "node:test";
import assert from "node:assert/strict";
import { env, grpcurl, grpcurlAuth, signIn, uniqueWord } from "../testlib/edge.mjs";

await signIn();

const NOTES = "aimesh.notes.v1.NotesService";

test("gRPC through the edge: CreateNote with -protoset, then GetNote directly on the mesh", async () => {
  const word = uniqueWord("grpc");
  const note = { title: `gRPC ${word}`, original_text: "via envoy", original_language: "es" };
  const created = await grpcurl([
    ...grpcurlAuth(),
    "-plaintext",
    "-protoset", env.descriptorSet,
    "-d", JSON.stringify({ note }),
    env.edgeGrpc,
    `${NOTES}/CreateNote`,
  ]);
  assert.equal(created.code, 0, created.stderr);
  const id = JSON.parse(created.stdout).note.id;
  assert.match(id, /^[0-9a-f-]{36}$/);

  // The same mesh answers directly (server reflection, no proto files).
  const direct = await grpcurl([
    ...grpcurlAuth(), "-plaintext", "-d", JSON.stringify({ id }), env.meshGrpc, `${NOTES}/GetNote`,
  ]);
  assert.equal(direct.code, 0, direct.stderr);
  assert.equal(JSON.parse(direct.stdout).note.title, `gRPC ${word}`);

  // And through the edge with reflection.
  const viaEdge = await grpcurl([
    ...grpcurlAuth(), "-plaintext", "-d", JSON.stringify({ id }), env.edgeGrpc, `${NOTES}/GetNote`,
  ]);
  assert.equal(viaEdge.code, 0, viaEdge.stderr);
  assert.equal(JSON.parse(viaEdge.stdout).note.originalText, "via envoy");
});

test("gRPC errors pass through the edge with their code and details", async () => {
  const result = await grpcurl([
    ...grpcurlAuth(),
    "-plaintext",
    "-protoset", env.descriptorSet,
    "-format-error",
    "-d", JSON.stringify({ note: { title: "", original_text: "x", original_language: "en" } }),
    env.edgeGrpc,
    `${NOTES}/CreateNote`,
  ]);
  // grpcurl exits with 64 + the status code and prints the status as JSON on stderr.
  assert.equal(result.code, 64 + 3, result.stderr);
  const status = JSON.parse(result.stderr);
  assert.equal(status.code, 3, result.stderr);
  const badRequest = status.details.find((d) => d["@type"].endsWith("google.rpc.BadRequest"));
  assert.ok(badRequest, result.stderr);
  assert.deepEqual(badRequest.fieldViolations.map((v) => v.field), ["note.title"]);
});

test("reflection and health answer through the edge", async () => {
  const list = await grpcurl(["-plaintext", env.edgeGrpc, "list"]);
  assert.equal(list.code, 0, list.stderr);
  const services = list.stdout.split("\n");
  assert.ok(services.includes(NOTES), list.stdout);
  assert.ok(services.includes("grpc.health.v1.Health"), list.stdout);

  for (const service of ["", NOTES]) {
    const health = await grpcurl([
      "-plaintext",
      "-d", JSON.stringify({ service }),
      env.edgeGrpc,
      "grpc.health.v1.Health/Check",
    ]);
    assert.equal(health.code, 0, health.stderr);
    assert.equal(JSON.parse(health.stdout).status, "SERVING");
  }
});

test("a gRPC call to a service nobody serves is UNIMPLEMENTED, not a hang", async () => {
  const result = await grpcurl([
    ...grpcurlAuth(),
    "-plaintext",
    "-protoset", env.descriptorSet,
    "-d", "{}",
    env.edgeGrpc,
    "aimesh.bench.v1.EchoService/Echo",
  ]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /Code: (Unimplemented|NotFound)/, result.stderr);
});
