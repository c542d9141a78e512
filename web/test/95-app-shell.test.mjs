// The browser app, in a real headless Chromium through the real edge: how it is served, signing
// up, in and out, notes with a live translation, the jobs screen, a lapsed session, phone width.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { http, uniqueWord } from "../testlib/edge.mjs";
import { appServed, appTest, closeBrowser, newUser, signUp, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

test("the app's page is served with a content security policy and its assets cached by hash", { skip: !appServed && "local edge config only" }, async () => {
  const page = await http("GET", "/", { anonymous: true });
  assert.equal(page.status, 200, page.text);
  assert.match(page.headers.get("content-type"), /^text\/html/);
  assert.equal(page.headers.get("cache-control"), "no-cache");
  const csp = page.headers.get("content-security-policy") ?? "";
  for (const directive of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"]) {
    assert.ok(csp.includes(directive), `${directive} not in ${csp}`);
  }
  const script = page.text.match(/src="(\/app\.js\?v=[0-9a-f]{12})"/);
  const style = page.text.match(/href="(\/app\.css\?v=[0-9a-f]{12})"/);
  assert.ok(script && style, page.text);
  const js = await http("GET", script[1], { anonymous: true });
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type"), /javascript/);
  assert.match(js.headers.get("cache-control"), /immutable/);
  const css = await http("GET", style[1], { anonymous: true });
  assert.equal(css.status, 200);
  assert.match(css.headers.get("content-type"), /^text\/css/);
});

appTest("a visitor signs up, sees the profile's call count, signs out and in again", async ({ page }) => {
  const user = await signUp(page);
  await page.getByRole("heading", { name: "Notes", level: 1 }).waitFor();
  await page.getByRole("link", { name: user.username }).click();
  await page.getByRole("heading", { name: "Profile", level: 1 }).waitFor();
  const calls = Number(await page.getByTestId("api-calls").textContent());
  assert.ok(calls >= 1, `api calls: ${calls}`);
  await snapshot(page, "profile");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  // A wrong password is a sentence on the page, not a blank screen.
  await page.getByLabel("Username or email").fill(user.email);
  await page.getByLabel("Password").fill("not-the-password-1");
  await page.getByRole("button", { name: "Sign in" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.textContent(), /[A-Z].+/);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}, { allowConsole: [/status of 4\d\d|Failed to load resource/] });

appTest("a note is written, translated with a live progress bar reaching 100%, and found by search", async ({ page }) => {
  await signUp(page);
  const title = `Garden ${uniqueWord()}`;
  await page.getByRole("link", { name: "New note" }).click();
  await page.getByLabel("Title").fill(title);
  await page.getByLabel("Language (BCP-47, e.g. en, es, pt-BR)").fill("en");
  await page.getByLabel("Text").fill("The cat sleeps in the garden. The dog plays with the children.");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("heading", { name: title }).waitFor();

  await page.getByLabel("Into").selectOption("es");
  await page.getByRole("button", { name: "Translate" }).click();
  const bar = page.getByRole("progressbar", { name: "Translation" });
  await bar.waitFor();
  await page.locator('.job[data-state="succeeded"]').waitFor({ timeout: 120_000 });
  assert.equal(await bar.getAttribute("value"), "100");
  const translation = page.getByRole("article", { name: "Translation into es" });
  await translation.waitFor();
  assert.match(await translation.textContent(), /gato|perro|jard/i);
  await snapshot(page, "note-translated");

  // The list finds it by a word of its title; the statistics chart counts it.
  await page.getByLabel("Search").fill(title.split(" ")[1]);
  await page.getByRole("list", { name: "Notes" }).getByText(title).waitFor();
  await page.getByRole("img", { name: /Notes by language: en 1/ }).waitFor();

  // The jobs screen shows the translation job, finished.
  await page.getByRole("link", { name: "Jobs" }).click();
  const row = page.locator('tr[data-state="succeeded"]', { hasText: "notes.translate" });
  await row.first().waitFor();
  await snapshot(page, "jobs");
});

appTest("a lapsed session asks for the password over the page and keeps what was typed", async ({ page }) => {
  const user = await signUp(page);
  await page.getByRole("link", { name: "New note" }).click();
  await page.getByLabel("Title").fill("Kept through sign-in");
  await page.getByLabel("Language (BCP-47, e.g. en, es, pt-BR)").fill("en");
  await page.getByLabel("Text").fill("Typed before the session ended.");
  // The server refuses the next call as a lapsed session would be refused.
  await page.route("**/aimesh.notes.v1.NotesService/CreateNote", (route) =>
    route.fulfill({
      status: 200,
      headers: {
        "content-type": "application/grpc-web+proto",
        "grpc-status": "16",
        "grpc-message": "the access token has expired",
      },
      body: "",
    }), { times: 1 });
  await page.getByRole("button", { name: "Save" }).click();
  const dialog = page.getByRole("dialog", { name: "Your session has ended" });
  await dialog.waitFor();
  await snapshot(page, "session-lapsed");
  await dialog.getByLabel("Password").fill(user.password);
  await dialog.getByRole("button", { name: "Sign in" }).click();
  await dialog.waitFor({ state: "detached" });
  assert.equal(await page.getByLabel("Title").inputValue(), "Kept through sign-in");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("heading", { name: "Kept through sign-in" }).waitFor();
}, { allowConsole: [/status of 4\d\d|Failed to load resource/] });

appTest("at phone width the navigation folds into a menu", async ({ page }) => {
  await signUp(page);
  const menu = page.getByRole("button", { name: "Menu" });
  await menu.waitFor();
  assert.equal(await menu.getAttribute("aria-expanded"), "false");
  assert.equal(await page.getByRole("link", { name: "Jobs" }).isVisible(), false);
  await menu.click();
  await page.getByRole("link", { name: "Jobs" }).click();
  await page.getByRole("heading", { name: "Jobs", level: 1 }).waitFor();
  await snapshot(page, "phone");
}, { viewport: { width: 390, height: 844 } });


appTest("an access token about to expire is refreshed before the next call", async ({ page }) => {
  await signUp(page);
  const before = await page.evaluate(() => JSON.parse(localStorage.getItem("aimesh.session")));
  // As if the page had been open until a few seconds before the token's expiry.
  await page.evaluate(() => {
    const stored = JSON.parse(localStorage.getItem("aimesh.session"));
    stored.accessExpires = Date.now() + 5_000;
    localStorage.setItem("aimesh.session", JSON.stringify(stored));
  });
  const refreshed = page.waitForRequest("**/aimesh.identity.v1.IdentityService/RefreshToken");
  await page.reload();
  await refreshed;
  await page.getByRole("list", { name: "Notes" }).getByText("No notes yet.").waitFor();
  // The notes may load with the old token, still valid, before the refresh's answer is stored:
  // wait for the rotated session rather than read it once.
  await page.waitForFunction(
    (old) => JSON.parse(localStorage.getItem("aimesh.session")).refresh !== old,
    before.refresh,
  );
  const after = await page.evaluate(() => JSON.parse(localStorage.getItem("aimesh.session")));
  assert.notEqual(after.refresh, before.refresh, "the refresh token was rotated");
  assert.ok(after.accessExpires > Date.now() + 60_000, "a fresh access token");
  assert.equal(await page.getByRole("dialog").count(), 0);
});

appTest("the profile exports the account's data as a ZIP archive to download", async ({ page }) => {
  await signUp(page);
  const title = `Export ${uniqueWord()}`;
  await page.getByRole("link", { name: "New note" }).click();
  await page.getByLabel("Title").fill(title);
  await page.getByLabel("Language (BCP-47, e.g. en, es, pt-BR)").fill("en");
  await page.getByLabel("Text").fill("Kept in the export.");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("heading", { name: title }).waitFor();

  await page.getByRole("link", { name: "Profile" }).click();
  await page.getByRole("button", { name: "Export my data" }).click();
  const link = page.getByRole("link", { name: "Download the archive" });
  await link.waitFor({ timeout: 120_000 });
  assert.equal(await page.getByRole("progressbar", { name: "Export" }).getAttribute("value"), "100");
  await snapshot(page, "export");
  const href = await link.getAttribute("href");
  assert.match(href, /^\/api\/v1\/files\//, "a signed URL on this origin");
  const archive = await page.request.get(href);
  assert.equal(archive.status(), 200);
  assert.equal(archive.headers()["content-type"], "application/zip");
  const body = await archive.body();
  assert.equal(body.subarray(0, 2).toString("latin1"), "PK", "a ZIP archive");
  assert.ok(body.includes(Buffer.from("notes/notes.json")), "the notes are in it");
});
