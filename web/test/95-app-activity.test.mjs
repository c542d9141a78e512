// The app's Activity screen in a real headless Chromium through the real edge: the account's
// creation is there from the start; a note saved on the Notes screen appears on top while the
// screen is open in another tab (WatchEvents over grpc-web), in words; the service filter keeps
// only that service's events.

import { after } from "node:test";
import assert from "node:assert/strict";
import { uniqueWord } from "../testlib/edge.mjs";
import { appTest, closeBrowser, signUp, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

appTest("activity: the user's events, live, newest first, filtered by service", async ({ page, context }) => {
  const user = await signUp(page);
  await page.getByRole("link", { name: "Activity" }).click();
  await page.getByRole("heading", { name: "Activity", level: 1 }).waitFor();
  const table = page.getByRole("table", { name: "Activity" });
  await table.getByText(`Account ${user.username} created`).waitFor();
  await page.getByRole("status").getByText("live").waitFor();

  // A note saved in another tab comes to the top of this one by itself.
  const other = await context.newPage();
  await other.goto("/#/notes");
  const title = uniqueWord("Event");
  await other.getByRole("link", { name: "New note" }).click();
  await other.getByLabel("Title").fill(title);
  await other.getByLabel("Language (BCP-47, e.g. en, es, pt-BR)").fill("en");
  await other.getByLabel("Text").fill("Something happened.");
  await other.getByRole("button", { name: "Save" }).click();
  await other.getByRole("heading", { name: title }).waitFor();
  await table.getByText(`Note “${title}” created`).waitFor({ timeout: 20_000 });
  const first = table.locator("tbody tr").first();
  assert.equal(await first.getAttribute("data-type"), "notes.note.created");
  await snapshot(page, "activity");

  // Only the identity service's events.
  await page.getByRole("combobox", { name: /^Service/ }).selectOption("identity");
  await table.locator('tbody tr[data-type="notes.note.created"]').waitFor({ state: "detached" });
  const types = await table.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.type));
  assert.deepEqual(types, ["identity.account.created"]);
});

appTest("activity at phone width: the table scrolls inside its panel, the page fits", async ({ page }) => {
  const user = await signUp(page);
  await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("link", { name: "Activity" }).click();
  await page.getByRole("table", { name: "Activity" }).getByText(`Account ${user.username} created`).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await snapshot(page, "activity-phone");
}, { viewport: { width: 390, height: 844 } });
