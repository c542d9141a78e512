// Reports through the edge: created over REST (and on the seed's path POST /assignment/pdf),
// followed to DONE, downloaded as HTML and PDF with their content types and file names (raw
// bodies, google.api.HttpBody); FAILED_PRECONDITION (400) while not ready; a large report sent
// as a draft in pages within the body limit, and 413 for one body beyond it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { authHeaders, env, eventually, http, signIn } from "../testlib/edge.mjs";

await signIn();

const EVENTS = [
  { unit: "Decimals", type: "viewed", created_time: "2025-03-04T10:00:00Z" },
  { unit: "Welcome", type: "viewed", created_time: "2025-03-01T09:00:00Z" },
  { unit: "Fractions", type: "completed", created_time: "2025-03-02T09:30:00Z" },
];

/** Polls a report until it is DONE (or FAILED) and returns it. */
async function finished(id) {
  const report = await eventually(
    async () => {
      const response = await http("GET", `/api/v1/reports/${id}`);
      const status = response.json?.report?.status;
      return (status === "REPORT_STATUS_DONE" || status === "REPORT_STATUS_FAILED") &&
        response.json.report;
    },
    { timeoutMs: 60_000 },
  );
  assert.ok(report, "the report finished");
  return report;
}

/** Downloads a report's file as raw bytes. */
async function download(id) {
  const response = await fetch(`${env.edgeUrl}/api/v1/reports/${id}/content`, {
    headers: authHeaders(),
  });
  return { response, bytes: Buffer.from(await response.arrayBuffer()) };
}

let html;

test("a report created over REST renders to HTML and downloads as a page", async () => {
  const created = await http("POST", "/api/v1/reports", {
    body: { student_id: "<b>s-42</b>", namespace: "math", events: EVENTS, format: "REPORT_FORMAT_HTML" },
  });
  assert.equal(created.status, 200, created.text);
  html = created.json.report;
  assert.equal(html.status, "REPORT_STATUS_PENDING");
  assert.equal(created.json.job.kind, "reports.render");

  const early = await http("GET", `/api/v1/reports/${html.id}`);
  assert.equal(early.status, 200);

  const done = await finished(html.id);
  assert.equal(done.status, "REPORT_STATUS_DONE", JSON.stringify(done));
  assert.equal(Number(done.unit_count), 3);
  const { response, bytes } = await download(html.id);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
  assert.equal(
    response.headers.get("content-disposition"),
    `attachment; filename="${done.filename}"`,
  );
  const page = bytes.toString("utf8");
  assert.ok(page.includes("&lt;b&gt;s-42&lt;"), "the student id is escaped");
  assert.ok(!page.includes("<b>s-42"));
  const visits = page.slice(page.indexOf("Units in order"));
  assert.ok(visits.indexOf("Welcome") < visits.indexOf("Fractions"));
  assert.ok(visits.indexOf("Fractions") < visits.indexOf("Decimals"));
});

test("the seed's path POST /assignment/pdf creates a PDF report", async () => {
  const created = await http("POST", "/assignment/pdf", {
    body: { student_id: "s-43", namespace: "math", events: EVENTS },
  });
  assert.equal(created.status, 200, created.text);
  const report = created.json.report;
  assert.equal(report.format, "REPORT_FORMAT_PDF");
  const done = await finished(report.id);
  assert.equal(done.status, "REPORT_STATUS_DONE", JSON.stringify(done));
  const { response, bytes } = await download(report.id);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/pdf");
  assert.equal(
    response.headers.get("content-disposition"),
    'attachment; filename="report-s-43.pdf"',
  );
  assert.equal(bytes.subarray(0, 5).toString(), "%PDF-");
  assert.equal(bytes.length, Number(done.size_bytes));
});

test("bad events are named field by field", async () => {
  const response = await http("POST", "/assignment/html", {
    body: { student_id: "s", events: [{ unit: "ok" }, { unit: "", created_time: "yesterday" }] },
  });
  assert.equal(response.status, 400, response.text);
  assert.match(response.text, /report\.events\[1\]\.unit/);
  assert.match(response.text, /report\.events\[1\]\.created_time/);
});

test("a large report goes in pages within the body limit; a body beyond it is 413", async () => {
  const draft = await http("POST", "/api/v1/reports?draft=true", {
    body: { student_id: "s-big", format: "REPORT_FORMAT_PDF" },
  });
  assert.equal(draft.status, 200, draft.text);
  const id = draft.json.report.id;
  assert.equal(draft.json.report.status, "REPORT_STATUS_DRAFT");

  // Not downloadable while a draft: FAILED_PRECONDITION.
  const early = await http("GET", `/api/v1/reports/${id}/content`);
  assert.equal(early.status, 400, early.text);

  const event = (i) => ({
    unit: `Module ${Math.floor(i / 500) + 1}`,
    type: i % 2 ? "viewed" : "completed",
    created_time: new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString(),
  });
  const total = 5_000;
  const perEvent = JSON.stringify(event(total)).length + 1;
  const perPage = Math.floor((env.maxRequestBytes - 1024) / perEvent);
  let offset = 0;
  while (offset < total) {
    const count = Math.min(perPage, total - offset);
    const events = Array.from({ length: count }, (_, k) => event(offset + k));
    const page = await http("POST", `/api/v1/reports/${id}:appendEvents`, {
      body: { offset, events },
    });
    assert.equal(page.status, 200, page.text.slice(0, 300));
    offset += count;
    assert.equal(Number(page.json.report.event_count), offset);
  }
  const resent = await http("POST", `/api/v1/reports/${id}:appendEvents`, {
    body: { offset: 0, events: [event(0)] },
  });
  assert.equal(resent.status, 400, resent.text);

  const tooBig = Array.from({ length: perPage * 2 + 100 }, (_, k) => event(k));
  const refused = await http("POST", `/api/v1/reports/${id}:appendEvents`, {
    body: { offset, events: tooBig },
  });
  assert.equal(refused.status, 413, refused.text.slice(0, 200));

  const generated = await http("POST", `/api/v1/reports/${id}:generate`, { body: {} });
  assert.equal(generated.status, 200, generated.text);
  const done = await finished(id);
  assert.equal(done.status, "REPORT_STATUS_DONE", JSON.stringify(done));
  assert.equal(Number(done.event_count), total);
  const { response } = await download(id);
  assert.equal(response.headers.get("content-type"), "application/pdf");
});

test("reports list over REST and delete", async () => {
  const listed = await http("GET", "/api/v1/reports?page_size=2");
  assert.equal(listed.status, 200, listed.text);
  assert.equal(listed.json.reports.length, 2);
  assert.ok(listed.json.next_page_token);
  const deleted = await http("DELETE", `/api/v1/reports/${html.id}`);
  assert.equal(deleted.status, 200, deleted.text);
  const gone = await http("GET", `/api/v1/reports/${html.id}`);
  assert.equal(gone.status, 404);
});
