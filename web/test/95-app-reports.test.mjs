// The app's Reports screen in a real headless Chromium through the real edge: pasted events
// checked in the page (a sentence, nothing sent), an HTML report rendered by a job watched live,
// opened through its signed URL; a PDF report from an uploaded CSV file, with its download link.

import { after } from "node:test";
import assert from "node:assert/strict";
import { uniqueWord } from "../testlib/edge.mjs";
import { appTest, closeBrowser, signUp, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

const EVENTS = [
  { unit: "Decimals", type: "viewed", created_time: "2025-03-04T10:00:00Z" },
  { unit: "Welcome", type: "viewed", created_time: "2025-03-01T09:00:00Z" },
  { unit: "Fractions", type: "completed", created_time: "2025-03-02T09:30:00Z" },
];

appTest("reports: pasted events become an HTML report, watched to the end and opened", async ({ page, context }) => {
  await signUp(page);
  await page.getByRole("link", { name: "Reports" }).click();
  await page.getByRole("heading", { name: "Reports", level: 1 }).waitFor();
  const student = `s-${uniqueWord()}`;
  await page.getByLabel("Student id").fill(student);

  // Broken input is a sentence in the page, naming the event.
  await page.getByLabel("Events (JSON)").fill('[{"unit": "Welcome"}, {"type": "viewed"}');
  await page.getByRole("button", { name: "Create report" }).click();
  assert.match(await page.getByRole("alert").textContent(), /not valid JSON/);
  await page.getByLabel("Events (JSON)").fill('[{"unit": "Welcome"}, {"type": "viewed", "created_time": "yesterday"}]');
  await page.getByRole("button", { name: "Create report" }).click();
  const alert = await page.getByRole("alert").textContent();
  assert.match(alert, /Event 2 has no unit/);
  assert.match(alert, /Event 2's created_time “yesterday”/);

  // What only the server knows is wrong (there is no 13th month) comes back field by field.
  await page.getByLabel("Events (JSON)").fill('[{"unit": "Welcome", "created_time": "2025-13-01T09:00:00Z"}]');
  await page.getByRole("button", { name: "Create report" }).click();
  const refused = page.getByRole("list", { name: "Refused fields" });
  await refused.waitFor();
  assert.match(await refused.textContent(), /Event 1, created_time/);

  await page.getByLabel("Events (JSON)").fill(JSON.stringify(EVENTS, null, 2));
  await page.getByLabel("HTML page").check();
  await page.getByRole("button", { name: "Create report" }).click();
  const bar = page.getByRole("progressbar", { name: "Rendering" });
  await bar.waitFor();
  await page.locator('.job[data-state="succeeded"]').waitFor({ timeout: 120_000 });
  assert.equal(await bar.getAttribute("value"), "100");
  await page.getByTestId("report-status").getByText("done").waitFor();
  await page.getByRole("list", { name: "Reports" }).getByText(student).waitFor();
  await snapshot(page, "reports");

  const [opened] = await Promise.all([
    context.waitForEvent("page"),
    page.getByRole("link", { name: "Open report" }).click(),
  ]);
  await opened.waitForLoadState();
  assert.match(new URL(opened.url()).pathname, /^\/api\/v1\/files\//);
  const body = await opened.textContent("body");
  assert.ok(body.includes(student), "the report names the student");
  assert.ok(body.includes("Fractions"));
  await opened.close();
});

appTest("reports: a CSV file becomes a PDF report with a download link", async ({ page }) => {
  await signUp(page);
  await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("link", { name: "Reports" }).click();
  const csv = [
    "student_id,unit,type,created_time",
    ...EVENTS.map((e) => `csv-student,"${e.unit}",${e.type},${e.created_time}`),
  ].join("\n");
  await page.getByLabel(/Or load a JSON or CSV file/).setInputFiles({
    name: "events.csv",
    mimeType: "text/csv",
    buffer: Buffer.from(csv),
  });
  await page.getByText("events.csv: 3 events loaded.").waitFor();
  assert.equal(await page.getByLabel("Student id").inputValue(), "csv-student");
  await page.getByLabel("PDF document").check();
  await page.getByRole("button", { name: "Create report" }).click();
  await page.getByTestId("report-status").getByText("done").waitFor({ timeout: 120_000 });
  const link = page.getByRole("link", { name: "Download PDF" });
  const href = await link.getAttribute("href");
  assert.equal(await link.getAttribute("download"), "report-csv-student.pdf");
  const head = await page.evaluate(async (url) => {
    const response = await fetch(url);
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { type: response.headers.get("content-type"), magic: String.fromCharCode(...bytes.slice(0, 5)) };
  }, href);
  assert.deepEqual(head, { type: "application/pdf", magic: "%PDF-" });
}, { viewport: { width: 390, height: 844 } });

appTest("reports: more events than one request carries go as a draft in pages", async ({ page }) => {
  await signUp(page);
  await page.getByRole("link", { name: "Reports" }).click();
  const total = 12_000;
  const rows = ["unit,type,created_time"];
  for (let i = 0; i < total; i++) {
    const time = new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString();
    rows.push(`Module ${Math.floor(i / 1000) + 1},${i % 2 ? "viewed" : "completed"},${time}`);
  }
  await page.getByLabel("Student id").fill("s-big");
  await page.getByLabel(/Or load a JSON or CSV file/).setInputFiles({
    name: "big.csv",
    mimeType: "text/csv",
    buffer: Buffer.from(rows.join("\r\n")),
  });
  await page.getByText(`big.csv: ${total} events loaded.`).waitFor();
  await page.getByLabel("PDF document").check();
  await page.getByRole("button", { name: "Create report" }).click();
  await page.getByText(`Sent ${total} events.`).waitFor();
  await page.getByTestId("report-status").getByText("done").waitFor({ timeout: 180_000 });
  const facts = await page.getByRole("region", { name: "Report for s-big" }).textContent();
  assert.match(facts, new RegExp(`Events${total}`));
  assert.match(facts, /Units12/);
});
