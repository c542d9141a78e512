// The app's Documents screen in a real Chromium through the real edge: a refused upload shows the
// server's sentence; a PDF (made here, over one chunk in size) is uploaded through the resumable
// upload RPCs, resuming after a chunk whose answer is lost; its processing bar reaches 100%, its
// text shows, its original opens through the signed URL, search finds its passage, a sentiment
// task's result lands, a true/false quiz is taken and graded, the page fits a phone, and the
// document is deleted.

import { after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { appTest, closeBrowser, signUp, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

const LINES = [
  "The lighthouse keeper climbs one hundred steps every evening to light the lamp.",
  "Ships far out at sea watch for the beam to find the harbour.",
  "In winter storms the waves crash against the rocks below the tower.",
  "The keeper writes the weather in a logbook each morning.",
  "Seabirds nest on the cliffs beside the lighthouse in spring.",
  "A new electric lamp replaced the old oil lantern many years ago.",
];

/**
 * A one-page PDF writing `lines` in Helvetica, with a valid cross-reference table, padded by an
 * unreferenced binary stream of `padding` bytes (so the file takes more than one upload chunk).
 */
function pdf(lines, padding = 0) {
  const escape = (s) => s.replace(/[\\()]/g, (c) => `\\${c}`);
  const content = ["BT", "/F1 12 Tf", "18 TL", "50 780 Td", ...lines.flatMap((l) => [`(${escape(l)}) Tj`, "T*"]), "ET"].join("\n");
  const objects = [
    Buffer.from("<< /Type /Catalog /Pages 2 0 R >>"),
    Buffer.from("<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 595 842] >>"),
    Buffer.from("<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"),
    Buffer.from(`<< /Length ${Buffer.byteLength(content)} >>\nstream\n${content}\nendstream`),
    Buffer.from("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"),
  ];
  if (padding) {
    objects.push(
      Buffer.concat([Buffer.from(`<< /Length ${padding} >>\nstream\n`), randomBytes(padding), Buffer.from("\nendstream")]),
    );
  }
  const parts = [Buffer.from("%PDF-1.5\n%\xe2\xe3\xcf\xd3\n", "latin1")];
  let length = parts[0].length;
  const offsets = [];
  objects.forEach((body, i) => {
    offsets.push(length);
    const object = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), body, Buffer.from("\nendobj\n")]);
    parts.push(object);
    length += object.length;
  });
  const xref =
    `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n` +
    offsets.map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("") +
    `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${length}\n%%EOF\n`;
  parts.push(Buffer.from(xref));
  return Buffer.concat(parts);
}

appTest(
  "a PDF is uploaded in resumable chunks, processed live, searched, given a task and a quiz, then deleted",
  async ({ page }) => {
    await signUp(page);
    await page.getByRole("link", { name: "Documents" }).click();
    await page.getByRole("heading", { name: "Documents", level: 1 }).waitFor();
    const input = page.getByLabel("Choose a file to upload");

    // An empty file is refused by the server, in its own words.
    await input.setInputFiles({ name: "empty.txt", mimeType: "text/plain", buffer: Buffer.alloc(0) });
    const refusal = page.getByRole("alert");
    await refusal.waitFor();
    assert.match(await refusal.textContent(), /byte/i);

    // The second chunk's answer is lost on the way back (the server stored it): the page asks
    // for the stored offset and carries on from there.
    const calls = { append: [], get: 0 };
    page.on("request", (request) => {
      if (request.url().endsWith("/GetUpload")) calls.get++;
    });
    let lost = false;
    await page.route("**/aimesh.processing.v1.ProcessingService/AppendUpload", async (route) => {
      calls.append.push(route.request().postDataBuffer()?.length ?? 0);
      if (calls.append.length === 2 && !lost) {
        lost = true;
        await route.fetch();
        await route.abort("connectionreset");
        return;
      }
      await route.continue();
    });
    const file = pdf(LINES, 1_300_000);
    const filename = "lighthouse.pdf";
    await input.setInputFiles({ name: filename, mimeType: "application/pdf", buffer: file });
    const upload = page.getByRole("progressbar", { name: "Upload" });
    await page.getByRole("status").filter({ hasText: /· done/ }).waitFor({ timeout: 60_000 });
    assert.equal(await upload.getAttribute("value"), String(file.length));
    assert.equal(await upload.getAttribute("max"), String(file.length));
    assert.equal(lost, true);
    assert.ok(calls.get >= 1, "the page asked for the stored offset");
    assert.equal(calls.append.length, 2, `AppendUpload calls: ${calls.append}`);

    // The document opens; its processing bar reaches 100%.
    await page.getByRole("heading", { name: filename, level: 2 }).waitFor();
    assert.match(page.url(), /#\/documents\/[0-9a-f-]{36}$/);
    const processing = page.getByRole("progressbar", { name: "Processing" });
    await processing.waitFor();
    await page.locator('.job[data-state="succeeded"]').first().waitFor({ timeout: 120_000 });
    assert.equal(await processing.getAttribute("value"), "100");
    await page.getByTestId("document-status").getByText("ready").waitFor();
    const text = page.getByRole("region", { name: "Extracted text" });
    await text.waitFor();
    assert.match(await text.textContent(), /lighthouse keeper climbs one hundred steps/);
    assert.match(await page.getByRole("list", { name: "Documents" }).textContent(), /lighthouse\.pdf/);

    // The original, through its signed URL on this origin.
    const open = page.getByRole("link", { name: "Open original" });
    const href = await open.getAttribute("href");
    assert.match(href, /^\/api\/v1\/files\//);
    const original = await page.request.get(href);
    assert.equal(original.status(), 200);
    assert.deepEqual(Buffer.from(await original.body()).subarray(0, 8), file.subarray(0, 8));
    await snapshot(page, "documents-ready");

    // Semantic search finds the passage and links to the document.
    await page.getByLabel("Find passages about").fill("sailors looking for the harbour at night");
    await page.getByRole("button", { name: "Search" }).click();
    const passages = page.getByRole("list", { name: "Passages" });
    await passages.getByText(/find the harbour/).first().waitFor();
    const link = passages.getByRole("link", { name: filename }).first();
    assert.match(await link.getAttribute("href"), /^#\/documents\/[0-9a-f-]{36}$/);

    // A sentiment task (a lexicon, the cheapest engine): its status, then its result.
    // (A select's name is its label and its chosen option: "Task Summary".)
    await page.getByRole("combobox", { name: /^Task\b/ }).selectOption({ label: "Sentiment" });
    await page.getByRole("button", { name: "Run task" }).click();
    const task = page.getByRole("article", { name: "Sentiment task" });
    await task.waitFor();
    await page.locator('.task[data-status="succeeded"]').waitFor({ timeout: 120_000 });
    assert.match(await task.textContent(), /Overall: (positive|negative|neutral)/);

    // A true/false quiz, taken in the page and graded.
    await page.getByRole("spinbutton", { name: "Questions" }).fill("3");
    await page.getByRole("combobox", { name: /^Kind\b/ }).selectOption({ label: "True or false" });
    await page.getByRole("button", { name: "Generate quiz" }).click();
    const quiz = page.getByRole("form", { name: "Quiz questions" });
    await quiz.waitFor({ timeout: 120_000 });
    const questions = quiz.getByRole("group");
    const count = await questions.count();
    assert.ok(count >= 1, "the quiz has questions");
    for (let i = 0; i < count; i++) {
      await questions.nth(i).getByLabel("True", { exact: true }).check();
    }
    await quiz.getByRole("button", { name: "Submit answers" }).click();
    const score = page.getByTestId("quiz-score");
    await score.waitFor();
    assert.match(await score.textContent(), /Score: \d+% \(\d+ of \d+ right\)/);
    assert.equal(await quiz.locator(".grade").count(), count);
    await page.getByTestId("quiz-stats").waitFor();
    await snapshot(page, "documents-quiz");

    // At phone width nothing overflows sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    const { overflow, wide } = await page.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      wide: [...document.querySelectorAll("main *")]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 8)
        .map((e) => `${e.tagName.toLowerCase()}.${e.className} (${Math.round(e.getBoundingClientRect().right)}px)`),
    }));
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone: ${wide.join(", ")}`);
    await snapshot(page, "documents-phone");
    await page.setViewportSize({ width: 1280, height: 860 });

    // Deleted, it leaves the list.
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("list", { name: "Documents" }).getByText("No documents yet.").waitFor();
    assert.match(page.url(), /#\/documents$/);
  },
  { allowConsole: [/status of 4\d\d|Failed to load resource/] },
);

appTest("a file dropped on the drop zone is uploaded, and dropped again is recognised as a duplicate", async ({ page }) => {
  await signUp(page);
  await page.goto("/#/documents");
  const zone = page.getByRole("group", { name: "Drop a file to upload" });
  const drop = () =>
    zone.evaluate((element, text) => {
      const data = new DataTransfer();
      data.items.add(new File([text], "bees.md", { type: "text/markdown" }));
      for (const type of ["dragenter", "dragover", "drop"]) {
        element.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
      }
    }, "# Bees\n\nHoney bees live in colonies ruled by a single queen. Worker bees collect nectar from flowers.\n");
  await drop();
  await page.getByRole("heading", { name: "bees.md", level: 2 }).waitFor();
  await page.getByTestId("document-status").getByText("ready").waitFor({ timeout: 120_000 });
  assert.match(await page.getByRole("region", { name: "Extracted text" }).textContent(), /colonies ruled by a single queen/);
  await drop();
  await page.getByRole("status").filter({ hasText: "You already have this file" }).waitFor();
  assert.equal(await page.getByRole("list", { name: "Documents" }).getByRole("listitem").count(), 1);

  // Every other kind of task shows its result.
  const kinds = [
    ["Summary", /colonies ruled by a single queen/],
    ["Key phrases", /bees|colonies|nectar/i],
    ["Questions and answers", /\?/],
    ["Translation", /abejas|colonias|reina/i],
  ];
  for (const [kind] of kinds) {
    await page.getByRole("combobox", { name: /^Task\b/ }).selectOption({ label: kind });
    await page.getByRole("button", { name: "Run task" }).click();
    await page.getByRole("article", { name: new RegExp(`^${kind}`) }).waitFor();
  }
  for (const [kind, result] of kinds) {
    const task = page.locator(`article.task[aria-label^="${kind}"][data-status="succeeded"]`);
    await task.waitFor({ timeout: 120_000 });
    assert.match(await task.textContent(), result, kind);
  }
  await snapshot(page, "documents-tasks");
  // (Chromium asks for /favicon.ico, which the edge answers 404.)
}, { allowConsole: [/status of 404/] });
