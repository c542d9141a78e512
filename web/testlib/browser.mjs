// Helpers of the browser app's tests (web/test/95-app-*.test.mjs): a real headless Chromium
// (AIMESH_CHROMIUM, installed by `scripts/tools.sh chromium`) driven by playwright-core against
// the app the edge serves at /. Each test gets a fresh browser context (its own storage); a
// failing test leaves a screenshot in web/test-results/<test>.png, and any error the page throws
// or logs fails the test.

import { test } from "node:test";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";
import { env, uniqueWord } from "./edge.mjs";

const results = join(dirname(fileURLToPath(import.meta.url)), "..", "test-results");

/** The app's tests run once, with the local rendering of the edge (the one that serves it). */
export const appServed = process.env.EDGE_CONFIG === "local";

let browser;
async function launch() {
  browser ??= await chromium.launch({
    executablePath: process.env.AIMESH_CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // A synthetic microphone (a beep), allowed without asking: recording in the page.
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
    ],
  });
  return browser;
}

/** Closes the browser after the file's tests (call from `after`). */
export async function closeBrowser() {
  await browser?.close();
  browser = undefined;
}

/**
 * A test of the app: `fn({ page, context })` with a fresh page at the edge's origin. Errors the
 * page throws or logs to the console fail it (`allowConsole` lists message patterns a test
 * expects, such as a refused call it provokes).
 */
export function appTest(name, fn, { viewport = { width: 1280, height: 860 }, allowConsole = [] } = {}) {
  test(name, { skip: appServed ? false : "the browser app is tested with the local edge config", timeout: 240_000 }, async () => {
    const context = await (await launch()).newContext({ baseURL: env.edgeUrl, viewport });
    context.setDefaultTimeout(60_000);
    const page = await context.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      const text = message.text();
      if (!allowConsole.some((pattern) => pattern.test(text))) problems.push(`console: ${text}`);
    });
    try {
      await fn({ page, context });
      if (problems.length) throw new Error(problems.join("\n"));
    } catch (error) {
      mkdirSync(results, { recursive: true });
      const file = join(results, `${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 80)}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
      error.message += `\n(screenshot: ${file})`;
      throw error;
    } finally {
      await context.close();
    }
  });
}

/** A new user's credentials. */
export function newUser(prefix = "app") {
  const username = uniqueWord(prefix);
  return {
    username,
    email: `${username}@example.test`,
    password: `Pw-${randomBytes(9).toString("base64url")}-9z`,
  };
}

/** Opens the app and creates an account through its form; resolves once signed in. */
export async function signUp(page, user = newUser()) {
  await page.goto("/");
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(user.username);
  await page.getByLabel("Email").fill(user.email);
  await page.getByLabel("Password", { exact: true }).fill(user.password);
  await createAccount(page);
  return user;
}

/**
 * Submits the filled "Create account" form, submitting again while the server refuses with its
 * limit on accounts registered from one address (test files register faster than people);
 * resolves once signed in, or throws the page's error sentence.
 */
export async function createAccount(page) {
  const signedIn = page.getByRole("button", { name: "Sign out" });
  const alert = page.getByRole("alert");
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0 && (await signedIn.isVisible())) return;
    await page.getByRole("button", { name: "Create account" }).click();
    await signedIn.or(alert).first().waitFor();
    if (await signedIn.isVisible()) return;
    const message = (await alert.textContent()) ?? "";
    if (!/too many/i.test(message) || attempt >= 30) throw new Error(`sign-up refused: ${message}`);
    await page.waitForTimeout(2_000);
  }
}

/**
 * Saves a screenshot of the page into web/test-results when APP_SCREENSHOTS is set (to look at
 * what a person sees).
 */
export async function snapshot(page, name) {
  if (!process.env.APP_SCREENSHOTS) return;
  mkdirSync(results, { recursive: true });
  await page.screenshot({ path: join(results, `${name}.png`), fullPage: true });
}
