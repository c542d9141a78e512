// The shipped Envoy configs validate, and what the running edge transcodes matches the APIs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { getExtension, hasExtension } from "@bufbuild/protobuf";
import { http as httpRule } from "../src/gen/google/api/annotations_pb.js";
import { configDump, descriptorRegistry, descriptorSet, env, run } from "../testlib/edge.mjs";

const templates = readdirSync(join(env.repoRoot, "envoy"))
  .filter((name) => name.endsWith(".yaml"))
  .map((name) => join(env.repoRoot, "envoy", name));

async function renderAndValidate(template, overrides, out) {
  const rendered = await run(join(env.repoRoot, "envoy", "render"), ["-t", template, "-o", out], {
    env: { ...process.env, ...overrides },
  });
  assert.equal(rendered.code, 0, `render ${template}: ${rendered.stderr}`);
  return run("envoy", ["--mode", "validate", "-c", out, "--log-level", "error"]);
}

test("every shipped Envoy config passes envoy --mode validate", async (t) => {
  assert.ok(templates.length > 0, "no envoy/*.yaml");
  const variants = {
    // The defaults scripts/run uses (only the descriptor set must exist).
    defaults: {
      AIMESH_HTTP_HOST: "",
      AIMESH_HTTP_PORT: "",
      AIMESH_EDGE_UPSTREAM: "",
      AIMESH_CORS_ORIGINS: "",
      AIMESH_EDGE_OTLP_ENDPOINT: "",
    },
    // A split, exposed deployment: every interface, any origin, services on other hosts.
    split: {
      AIMESH_HTTP_HOST: "0.0.0.0",
      AIMESH_CORS_ORIGINS: "*",
      AIMESH_EDGE_NOTES_UPSTREAM: "notes.internal:50051",
      AIMESH_EDGE_UPSTREAM: "mesh.internal:50051",
      AIMESH_EDGE_OTLP_ENDPOINT: "http://otel-collector:4317",
    },
  };
  for (const template of templates) {
    for (const [variant, overrides] of Object.entries(variants)) {
      await t.test(`${template.slice(env.repoRoot.length + 1)} (${variant})`, async () => {
        const out = join(env.workDir, `validate-${variant}.yaml`);
        const result = await renderAndValidate(template, overrides, out);
        assert.equal(result.code, 0, result.stderr + result.stdout);
        assert.match(result.stdout, /OK/);
      });
    }
  }
});

test("envoy --mode validate rejects a config whose descriptor set lacks the services", async () => {
  const empty = join(env.workDir, "empty.pb");
  writeFileSync(empty, new Uint8Array());
  const out = join(env.workDir, "validate-empty.yaml");
  const result = await renderAndValidate(templates[0], { AIMESH_EDGE_DESCRIPTOR_SET: empty }, out);
  assert.notEqual(result.code, 0, "validation accepted a transcoder with no services");
  assert.match(result.stderr + result.stdout, /Could not find 'aimesh\.\w+\.v1\.\w+Service'/);
});

test("the descriptor set carries the REST rules and error types the transcoder needs", () => {
  const set = descriptorSet();
  const notes = set.file.find((file) => file.package === "aimesh.notes.v1");
  assert.ok(notes, "aimesh.notes.v1 is not in the descriptor set");
  const service = notes.service.find((s) => s.name === "NotesService");
  for (const method of service.method) {
    assert.ok(
      method.options && hasExtension(method.options, httpRule),
      `NotesService.${method.name} has no google.api.http rule in the descriptor set ` +
        "(the encoder dropped the option?)",
    );
    // Envoy's transcoder refuses to start on response_body naming a non-HttpBody field.
    const rule = getExtension(method.options, httpRule);
    assert.equal(rule.responseBody, "", `NotesService.${method.name} sets response_body`);
  }
  const registry = descriptorRegistry();
  for (const name of ["google.rpc.Status", "google.rpc.BadRequest"]) {
    assert.ok(
      registry.getMessage(name),
      `${name} is missing: Envoy cannot turn error details into JSON without it`,
    );
  }
});

/** Every object nested in `value` for which `predicate` holds. */
function findAll(value, predicate, found = []) {
  if (value && typeof value === "object") {
    if (!Array.isArray(value) && predicate(value)) found.push(value);
    for (const child of Object.values(value)) findAll(child, predicate, found);
  }
  return found;
}

test("the running edge transcodes and routes every service that has REST rules", async () => {
  const dump = await configDump();
  const transcoders = findAll(dump, (o) => String(o["@type"]).endsWith(".GrpcJsonTranscoder"));
  assert.ok(transcoders.length > 0, "no grpc_json_transcoder filter in the running config");
  const transcoded = new Set(transcoders.flatMap((t) => t.services));
  const prefixes = findAll(dump, (o) => o.match && typeof o.match.prefix === "string").map(
    (route) => route.match.prefix,
  );

  const withRules = [];
  for (const file of descriptorSet().file) {
    for (const service of file.service) {
      if (service.method.some((m) => m.options && hasExtension(m.options, httpRule))) {
        withRules.push(`${file.package}.${service.name}`);
      }
    }
  }
  assert.ok(withRules.includes("aimesh.notes.v1.NotesService"), `services: ${withRules}`);
  for (const name of withRules) {
    assert.ok(transcoded.has(name), `${name} has REST rules but the edge does not transcode it`);
    const pkg = name.slice(0, name.lastIndexOf(".") + 1);
    assert.ok(prefixes.includes(`/${pkg}`), `no route for the package prefix /${pkg}`);
  }
});
