// The app's Admin screen in a real headless Chromium through the real edge: the mesh's
// administrator (AIMESH_ADMIN_EMAILS, set by scripts/test-edge) signs up through the page, or
// signs in when another file registered the account first (testlib/edge.mjs adminAccount); finds
// a user, disables and enables it with a reason (its sign-in refused, then accepted again), reads
// the audit log, the queue statistics and the live job stream. Other users have no Admin link.

import { after } from "node:test";
import assert from "node:assert/strict";
import { adminAccount, eventually, http, register } from "../testlib/edge.mjs";
import { appTest, closeBrowser, createAccount, newUser, signUp, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

/** Signs up as the administrator through the page, or signs in if the account exists. */
async function signInAsAdmin(page) {
  const admin = adminAccount();
  await page.goto("/");
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(admin.username);
  await page.getByLabel("Email").fill(admin.email);
  await page.getByLabel("Password", { exact: true }).fill(admin.password);
  const signOut = page.getByRole("button", { name: "Sign out" });
  const refused = await createAccount(page).then(
    () => null,
    (error) => error,
  );
  if (refused) {
    assert.match(refused.message, /already exists/);
    await page.getByRole("tab", { name: "Sign in" }).click();
    await page.getByLabel("Username or email").fill(admin.email);
    await page.getByLabel("Password").fill(admin.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await signOut.waitFor();
  }
}

/** Whether `user` can log in over REST. */
async function canLogIn(user) {
  const login = await http("POST", "/auth/login", {
    body: { username: user.username, password: user.password },
    anonymous: true,
  });
  return login.status === 200;
}

appTest("admin: the administrator finds a user, disables and enables it, and sees the queues", async ({ page }) => {
  const target = newUser("target");
  const registered = await register({ ...target, password2: target.password });
  assert.equal(registered.status, 200, registered.text);

  await signInAsAdmin(page);
  await page.getByRole("link", { name: "Admin" }).click();
  await page.getByRole("heading", { name: "Admin", level: 1 }).waitFor();
  const users = page.getByRole("table", { name: "Users" });
  // The first page of accounts (oldest first), then the one searched for.
  await users.locator("tbody tr[data-user]").first().waitFor();

  await page.getByLabel("Search users").fill(target.username);
  const row = users.locator(`tr[data-user="${target.username}"]`);
  await row.waitFor();
  // Only the searched account remains (the search runs once typing pauses).
  await users.locator("tbody tr").nth(1).waitFor({ state: "detached" });
  assert.equal(await users.locator("tbody tr").count(), 1);

  await row.getByRole("button", { name: `Disable ${target.username}` }).click();
  const disable = page.getByRole("form", { name: `Disable ${target.username}` });
  await disable.getByLabel("Reason (kept in the audit log)").fill("app test: disable");
  await disable.getByRole("button", { name: "Disable" }).click();
  await users.locator(`tr[data-user="${target.username}"][data-disabled="true"]`).waitFor();
  await row.getByText(/disabled since/).waitFor();
  assert.ok(await eventually(async () => !(await canLogIn(target))), "the disabled account cannot log in");
  await snapshot(page, "admin-disabled");

  await row.getByRole("button", { name: `Enable ${target.username}` }).click();
  const enable = page.getByRole("form", { name: `Enable ${target.username}` });
  await enable.getByLabel("Reason (kept in the audit log)").fill("app test: enable");
  await enable.getByRole("button", { name: "Enable" }).click();
  await users.locator(`tr[data-user="${target.username}"][data-disabled="false"]`).waitFor();
  assert.ok(await eventually(() => canLogIn(target)), "the enabled account can log in again");

  // The audit log names both actions with their reasons.
  const audit = page.getByRole("table", { name: "Audit log" });
  await audit.getByText("app test: disable").waitFor();
  await audit.getByText("app test: enable").waitFor();

  // Queue statistics, as of now.
  await page.getByRole("table", { name: "Queue statistics" }).waitFor();
  await page.getByText(/^As of /).waitFor();
  await page.getByRole("table", { name: "All jobs" }).waitFor();
  await page.getByText("live", { exact: true }).waitFor();
  await snapshot(page, "admin");
}, { allowConsole: [/status of 4\d\d|Failed to load resource/] });

appTest("admin: other users have no Admin screen", async ({ page }) => {
  await signUp(page);
  await page.getByRole("heading", { level: 1 }).waitFor();
  await page.evaluate(() => {
    window.location.hash = "#/admin";
  });
  await page.getByRole("link", { name: "Speech" }).waitFor();
  assert.equal(await page.getByRole("link", { name: "Admin" }).count(), 0);
  assert.notEqual(await page.getByRole("heading", { level: 1 }).textContent(), "Admin");
});

appTest("admin at phone width: the tables scroll inside their panels, the page fits", async ({ page }) => {
  await signInAsAdmin(page);
  await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("link", { name: "Admin" }).click();
  await page.getByRole("table", { name: "Users" }).locator("tbody tr[data-user]").first().waitFor();
  await page.getByRole("table", { name: "Queue statistics" }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await snapshot(page, "admin-phone");
}, { viewport: { width: 390, height: 844 }, allowConsole: [/status of 4\d\d|Failed to load resource/] });
