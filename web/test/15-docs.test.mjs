// The REST API's documentation the edge serves: the OpenAPI document at /api/openapi.json (the
// committed docs/openapi.json, generated from the protos by scripts/openapi) and Swagger UI at
// /docs, its files served by the edge itself: with every rendering of the edge template (the
// Helm chart's and docker-compose's copy the files out of the aimesh image).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { getExtension, hasExtension } from "@bufbuild/protobuf";
import { http as httpRule } from "../src/gen/google/api/annotations_pb.js";
import { descriptorSet, env, http, signIn } from "../testlib/edge.mjs";


const committed = JSON.parse(readFileSync(join(env.repoRoot, "docs", "openapi.json"), "utf8"));

/** The REST rules (method, OpenAPI path) of every service the descriptor set has them for. */
function restRules() {
  const rules = [];
  const add = (service, method, rule) => {
    const pattern = rule.pattern;
    if (!pattern.case) return;
    const [verb, template] =
      pattern.case === "custom"
        ? [pattern.value.kind.toLowerCase(), pattern.value.path]
        : [pattern.case, pattern.value];
    // {name=segments/*} is {name} in OpenAPI.
    const path = template.replace(/\{([^}=]+)=[^}]*\}/g, "{$1}");
    rules.push({ name: `${service}.${method}`, verb, path });
    for (const binding of rule.additionalBindings) add(service, method, binding);
  };
  for (const file of descriptorSet().file) {
    if (!file.package.startsWith("aimesh.") || file.package.startsWith("aimesh.bench.")) continue;
    for (const service of file.service) {
      for (const method of service.method) {
        if (method.options && hasExtension(method.options, httpRule)) {
          add(`${file.package}.${service.name}`, method.name, getExtension(method.options, httpRule));
        }
      }
    }
  }
  return rules;
}

test("GET /api/openapi.json is the committed OpenAPI document", async () => {
  const response = await http("GET", "/api/openapi.json", { anonymous: true });
  assert.equal(response.status, 200, response.text);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(response.json, committed, "the edge serves another document than docs/openapi.json");
  assert.match(response.json.openapi, /^3\./);
});

test("the document has every REST rule of the running mesh, and nothing else", () => {
  const rules = restRules();
  assert.ok(rules.length > 40, `only ${rules.length} REST rules in the descriptor set`);
  const documented = new Set(
    Object.entries(committed.paths).flatMap(([path, item]) =>
      Object.keys(item).map((verb) => `${verb} ${path}`),
    ),
  );
  const expected = new Set(rules.map((rule) => `${rule.verb} ${rule.path}`));
  const missing = rules.filter((rule) => !documented.has(`${rule.verb} ${rule.path}`));
  assert.deepEqual(missing, [], "REST rules missing from docs/openapi.json: run scripts/openapi");
  const extra = [...documented].filter((operation) => !expected.has(operation));
  assert.deepEqual(extra, [], "operations the mesh does not have: run scripts/openapi");
});

test("the document says how to authenticate and what an error looks like", () => {
  const { components, security } = committed;
  assert.deepEqual(components.securitySchemes.bearer, {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: components.securitySchemes.bearer.description,
  });
  assert.deepEqual(security, [{ bearer: [] }]);
  assert.deepEqual(components.schemas.Error.required, ["code", "message", "details"]);
  const open = [];
  for (const [path, item] of Object.entries(committed.paths)) {
    for (const [verb, operation] of Object.entries(item)) {
      assert.equal(
        operation.responses.default?.content["application/json"].schema.$ref,
        "#/components/schemas/Error",
        `${verb} ${path} has no error response`,
      );
      if (operation.security?.length === 0) open.push(`${verb} ${path}`);
    }
  }
  assert.deepEqual(open.sort(), [
    "get /api/v1/files/{token}",
    "get /auth/jwks",
    "post /auth/login",
    "post /auth/logout",
    "post /auth/register",
    "post /auth/token/refresh",
    "post /auth/validate-token",
  ]);
  // Field descriptions come from the protos' comments, names are the proto names.
  const note = components.schemas.v1Note.properties;
  assert.match(note.original_language.description, /BCP-47/);
});

test("a call as the documentation describes it works with a bearer token", async () => {
  const { token } = await signIn();
  const anonymous = await http("GET", "/api/v1/notes", { anonymous: true });
  assert.equal(anonymous.status, 401, anonymous.text);
  const response = await http("GET", "/api/v1/notes?page_size=1", {
    anonymous: true,
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(response.status, 200, response.text);
  const schema = committed.paths["/api/v1/notes"].get.responses["200"].content["application/json"];
  assert.equal(schema.schema.$ref, "#/components/schemas/v1ListNotesResponse");
  for (const key of Object.keys(response.json)) {
    assert.ok(key in committed.components.schemas.v1ListNotesResponse.properties, key);
  }
});

test("/docs is Swagger UI, its files served by the edge (no other host)", async () => {
  for (const path of ["/docs", "/docs/"]) {
    const page = await http("GET", path, { anonymous: true });
    assert.equal(page.status, 200, page.text);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.text, /SwaggerUIBundle\(/);
    assert.match(page.text, /url: "\/api\/openapi\.json"/);
    const references = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(references.filter((ref) => !ref.startsWith("/docs/")), [], "a file from elsewhere");
    assert.deepEqual(references.sort(), ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"]);
  }
  const assets = {
    "/docs/swagger-ui-bundle.js": /^application\/javascript/,
    "/docs/swagger-ui.css": /^text\/css/,
  };
  for (const [path, type] of Object.entries(assets)) {
    // Compressed for a client that accepts gzip (fetch does, and decompresses).
    const response = await http("GET", path, { anonymous: true });
    assert.equal(response.status, 200, path);
    assert.match(response.headers.get("content-type") ?? "", type, path);
    assert.equal(response.headers.get("content-encoding"), "gzip", path);
    assert.ok(response.text.length > 10_000, `${path}: ${response.text.length} characters`);
  }
  assert.match((await http("GET", "/docs/swagger-ui-bundle.js")).text, /SwaggerUIBundle/);
});

test("only GET and HEAD reach the documentation; other methods are REST calls", async () => {
  const head = await fetch(`${env.edgeUrl}/api/openapi.json`, { method: "HEAD" });
  assert.equal(head.status, 200);
  const post = await http("POST", "/api/openapi.json", { body: {} });
  assert.equal(post.status, 404, post.text);
  assert.equal(post.json.code, 5, post.text);
});
