// The edge's own duties: JSON access log, active gRPC health checks of the upstreams, the
// request body limit, and OTLP span export to a collector: one trace from the caller through
// Envoy, aimesh, its job worker and the database.

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { env, eventually, http, signIn, stats, uniqueWord } from "../testlib/edge.mjs";

await signIn();

function accessLog() {
  return readFileSync(env.accessLog, "utf8")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
}

test("every request is logged as a JSON line with its REST and gRPC paths", async () => {
  const word = uniqueWord("log");
  const response = await http("GET", `/api/v1/notes?query=${word}`, {
    headers: { "user-agent": `edge-test-${word}` },
  });
  assert.equal(response.status, 200, response.text);
  const missing = await http("DELETE", "/api/v1/notes/00000000-0000-4000-8000-000000000000", {
    headers: { "user-agent": `edge-test-${word}` },
  });
  assert.equal(missing.status, 404, missing.text);
  const entries = await eventually(
    () => {
      const found = accessLog().filter((e) => e.user_agent === `edge-test-${word}`);
      return found.length === 2 && found;
    },
    { timeoutMs: 5000 },
  );
  assert.ok(entries, "no access log lines for the requests");
  const entry = entries.find((e) => e.path.startsWith("/api/v1/notes?"));
  const deleted = entries.find((e) => e !== entry);
  assert.equal(entry.method, "GET");
  assert.equal(entry.path, `/api/v1/notes?query=${word}`);
  assert.equal(entry.grpc_path, "/aimesh.notes.v1.NotesService/ListNotes");
  assert.equal(entry.status, 200);
  assert.equal(entry.grpc_status, "OK");
  assert.equal(entry.cluster, "notes");
  assert.match(entry.request_id, /^[0-9a-f-]{36}$/);
  assert.equal(typeof entry.duration_ms, "number");
  assert.equal(deleted.method, "DELETE", "the client's method, not the transcoded POST");
  assert.equal(deleted.grpc_path, "/aimesh.notes.v1.NotesService/DeleteNote");
  assert.equal(deleted.status, 404);
});

test("upstreams are health-checked over grpc.health.v1", async () => {
  const counters = await stats("health_check");
  for (const cluster of ["notes", "identity", "jobs", "mesh"]) {
    assert.ok(
      counters.get(`cluster.${cluster}.health_check.success`) >= 1,
      `${cluster}: ${JSON.stringify([...counters])}`,
    );
    assert.equal(counters.get(`cluster.${cluster}.health_check.healthy`), 1);
  }
});

test("a request body over the limit is refused with 413 before reaching a service", async () => {
  const before = (await stats("cluster.notes.upstream_rq_total")).get("cluster.notes.upstream_rq_total");
  const response = await http("POST", "/api/v1/notes", {
    body: {
      title: "big",
      original_text: "x".repeat(env.maxRequestBytes + 1024),
      original_language: "en",
    },
  });
  assert.equal(response.status, 413, response.text);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  // The services' error shape: RESOURCE_EXHAUSTED.
  assert.equal(response.json.code, 8, response.text);
  assert.equal(response.json.details[0].domain, "edge", response.text);
  const after = (await stats("cluster.notes.upstream_rq_total")).get("cluster.notes.upstream_rq_total");
  assert.equal(after, before, "the oversized request reached the notes service");
});

/** A minimal OTLP/gRPC trace collector: records the raw ExportTraceServiceRequest bodies. */
function startCollector(port) {
  const exports = [];
  const sessions = new Set();
  const server = http2.createServer();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  server.on("stream", (stream, headers) => {
    const chunks = [];
    stream.on("data", (chunk) => chunks.push(chunk));
    stream.on("end", () => {
      exports.push({ path: headers[":path"], body: Buffer.concat(chunks) });
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      // One empty ExportTraceServiceResponse: uncompressed, length 0.
      stream.end(Buffer.alloc(5));
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      // Envoy keeps its connection open: end it, or the server never closes.
      const close = () => {
        for (const session of sessions) session.destroy();
        return new Promise((done) => server.close(done));
      };
      resolve({ close, exports });
    });
  });
}

/** Reads a protobuf message's fields: [fieldNumber, wireType, value] (value is a Buffer for
 * length-delimited fields, a BigInt for varints, a Buffer for fixed-width ones). */
function fields(buffer) {
  const out = [];
  let at = 0;
  const varint = () => {
    let value = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buffer[at++];
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7n;
    }
  };
  while (at < buffer.length) {
    const key = Number(varint());
    const [number, wire] = [key >> 3, key & 7];
    if (wire === 0) out.push([number, wire, varint()]);
    else if (wire === 1) out.push([number, wire, buffer.subarray(at, (at += 8))]);
    else if (wire === 5) out.push([number, wire, buffer.subarray(at, (at += 4))]);
    else if (wire === 2) {
      const length = Number(varint());
      out.push([number, wire, buffer.subarray(at, (at += length))]);
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const field = (message, number) => fields(message).filter(([n]) => n === number).map(([, , v]) => v);

/** A span's string attributes (AnyValue.string_value), by key. */
function attributes(span) {
  const out = {};
  for (const attribute of field(span, 9)) {
    const key = field(attribute, 1)[0]?.toString();
    const value = field(attribute, 2)[0];
    const text = value && field(value, 1)[0];
    if (key && text) out[key] = text.toString();
  }
  return out;
}

const SPAN_KIND = { 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer" };

/** The spans of one gRPC Export body: {service, traceId, spanId, parentId, name, kind,
 * attributes}. */
function spans(exportBody) {
  // Skip the 5-byte gRPC frame header; ExportTraceServiceRequest.resource_spans = 1.
  const request = exportBody.subarray(5);
  const out = [];
  for (const resourceSpans of field(request, 1)) {
    let service = "";
    for (const resource of field(resourceSpans, 1)) {
      for (const attribute of field(resource, 1)) {
        const key = field(attribute, 1)[0]?.toString();
        const value = field(attribute, 2)[0];
        if (key === "service.name" && value) service = field(value, 1)[0]?.toString() ?? "";
      }
    }
    for (const scopeSpans of field(resourceSpans, 2)) {
      for (const span of field(scopeSpans, 2)) {
        out.push({
          service,
          traceId: field(span, 1)[0]?.toString("hex"),
          spanId: field(span, 2)[0]?.toString("hex"),
          parentId: field(span, 4)[0]?.toString("hex") ?? "",
          name: field(span, 5)[0]?.toString() ?? "",
          kind: SPAN_KIND[Number(field(span, 6)[0] ?? 0)] ?? "unspecified",
          attributes: attributes(span),
        });
      }
    }
  }
  return out;
}

test("one trace runs from the caller through Envoy into aimesh", async () => {
  const { close, exports } = await startCollector(env.otlpPort);
  try {
    const traceId = randomBytes(16);
    const parent = randomBytes(8);
    const traceparent = `00-${traceId.toString("hex")}-${parent.toString("hex")}-01`;
    const deadline = Date.now() + 30_000;
    let edge = [];
    let mesh = [];
    // Both exporters batch; keep traffic flowing until each has flushed this trace.
    while ((edge.length === 0 || mesh.length === 0) && Date.now() < deadline) {
      const response = await http("GET", "/api/v1/stats", { headers: { traceparent } });
      assert.equal(response.status, 200, response.text);
      await new Promise((resolve) => setTimeout(resolve, 250));
      const all = exports.flatMap((e) => spans(e.body)).filter((s) => s.traceId === traceId.toString("hex"));
      edge = all.filter((s) => s.service === "aimesh-edge");
      mesh = all.filter((s) => s.service === "aimesh-mesh");
    }
    assert.ok(edge.length > 0, "Envoy exported no span of the trace");
    assert.ok(mesh.length > 0, "aimesh exported no span of the trace");
    // Envoy's span is the caller's child; aimesh's request span is a child of an Envoy span.
    assert.ok(edge.some((s) => s.parentId === parent.toString("hex")), JSON.stringify(edge));
    const edgeIds = new Set(edge.map((s) => s.spanId));
    const request = mesh.find((s) => s.name.includes("GetNoteStats"));
    assert.ok(request, `no aimesh span for GetNoteStats in ${JSON.stringify(mesh)}`);
    assert.ok(edgeIds.has(request.parentId), `aimesh span ${JSON.stringify(request)} is not a child of ${JSON.stringify(edge)}`);
  } finally {
    await close();
  }
});

test("one trace runs from a REST call through Envoy, aimesh, its job worker and the database", async () => {
  const created = await http("POST", "/api/v1/notes", {
    body: { title: "Traced", original_text: "The house is big. I have a dog.", original_language: "en" },
  });
  assert.equal(created.status, 200, created.text);
  const { close, exports } = await startCollector(env.otlpPort);
  try {
    const traceId = randomBytes(16);
    const parent = randomBytes(8);
    const traceparent = `00-${traceId.toString("hex")}-${parent.toString("hex")}-01`;
    // One call, one job: the translation runs on aimesh's worker after the call returns.
    const response = await http("POST", `/api/v1/notes/${created.json.note.id}/translate`, {
      body: { target_language: "es" },
      headers: { traceparent },
    });
    assert.equal(response.status, 200, response.text);
    const jobId = response.json.job.id;

    const id = (span) => span?.spanId;
    const childrenOf = (all, span) => all.filter((s) => span && s.parentId === span.spanId);
    let trace = {};
    const collect = () => {
      const all = exports.flatMap((e) => spans(e.body)).filter((s) => s.traceId === traceId.toString("hex"));
      const mesh = all.filter((s) => s.service === "aimesh-mesh");
      const request = mesh.find((s) => s.name.endsWith("NotesService/TranslateNote"));
      const job = mesh.find((s) => s.name === "job notes.translate");
      return {
        all,
        edge: all.filter((s) => s.service === "aimesh-edge"),
        mesh,
        request,
        requestDb: childrenOf(mesh, request).filter((s) => s.kind === "client"),
        job,
        jobDb: childrenOf(mesh, job).filter((s) => s.kind === "client"),
      };
    };
    const complete = (t) =>
      t.edge.length > 0 &&
      t.request &&
      t.job &&
      ["UPDATE jobs", "INSERT note_translations"].every((name) => t.jobDb.some((s) => s.name === name));
    // Both exporters batch; other traffic (outside this trace) keeps Envoy's batches flushing.
    const deadline = Date.now() + 60_000;
    while (!complete((trace = collect())) && Date.now() < deadline) {
      const filler = await http("GET", "/api/v1/stats");
      assert.equal(filler.status, 200, filler.text);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const names = JSON.stringify(trace.all?.map((s) => `${s.service}: ${s.name} ${s.spanId} <- ${s.parentId}`));
    assert.ok(trace.edge.length > 0, `Envoy exported no span of the trace: ${names}`);
    assert.ok(trace.request, `no aimesh TranslateNote span in the trace: ${names}`);
    assert.ok(trace.job, `no job span in the trace (job ${jobId}): ${names}`);

    // Caller -> Envoy -> aimesh's request span.
    assert.ok(trace.edge.some((s) => s.parentId === parent.toString("hex")), names);
    const edgeIds = new Set(trace.edge.map(id));
    assert.ok(edgeIds.has(trace.request.parentId), `the request span is not a child of Envoy's: ${names}`);
    assert.equal(trace.request.kind, "server");

    // The request's database calls are its children, as OpenTelemetry database client spans.
    const insertJob = trace.requestDb.find((s) => s.name === "INSERT jobs");
    assert.ok(insertJob, `no INSERT jobs span under the request: ${names}`);
    assert.deepEqual(
      [insertJob.attributes["db.system.name"], insertJob.attributes["db.operation.name"], insertJob.attributes["db.collection.name"]],
      ["sqlite", "INSERT", "jobs"],
    );

    // The worker's span joins the trace under the submitting request, with the job's id...
    assert.equal(trace.job.parentId, trace.request.spanId, `the job span is not the request's child: ${names}`);
    assert.equal(trace.job.attributes["job.id"], jobId);
    // ...and the worker's database calls (progress and outcome, the stored translation) are
    // the job span's children.
    for (const [name, table] of [["UPDATE jobs", "jobs"], ["INSERT note_translations", "note_translations"]]) {
      const span = trace.jobDb.find((s) => s.name === name);
      assert.ok(span, `no ${name} span under the job span: ${names}`);
      assert.equal(span.attributes["db.collection.name"], table);
      assert.equal(span.attributes["db.system.name"], "sqlite");
    }
  } finally {
    await close();
  }
});

test("spans are exported over OTLP/gRPC, joining the caller's trace", async () => {
  const { close, exports } = await startCollector(env.otlpPort);
  try {
    const traceId = randomBytes(16);
    const parent = randomBytes(8);
    const traceparent = `00-${traceId.toString("hex")}-${parent.toString("hex")}-01`;
    const deadline = Date.now() + 20_000;
    // aimesh exports its spans of the same trace to the same collector, and either export may
    // arrive first: look for the edge's own (its service.name is aimesh-edge).
    const edge = Buffer.from("aimesh-edge");
    const fromTheEdge = (e) => e.body.includes(traceId) && e.body.includes(edge);
    let found;
    // Envoy batches spans and flushes every few seconds; keep traffic flowing until it does.
    while (!found && Date.now() < deadline) {
      const response = await http("GET", "/api/v1/stats", { headers: { traceparent } });
      assert.equal(response.status, 200, response.text);
      found = await eventually(() => exports.find(fromTheEdge), { timeoutMs: 1000 });
    }
    const withTheTrace = exports.filter((e) => e.body.includes(traceId)).length;
    assert.ok(
      found,
      `no aimesh-edge span with trace id ${traceId.toString("hex")} in ${exports.length} exports ` +
        `(${withTheTrace} of them with the trace, from other services)`,
    );
    assert.equal(found.path, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
  } finally {
    await close();
  }
});
