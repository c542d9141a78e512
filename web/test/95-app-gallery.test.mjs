// The browser app's gallery, in a real headless Chromium through the real edge: a PNG made here
// is uploaded through the page (the bar fills), its thumbnail loads from a signed URL, a style
// job runs with a live progress bar to 100%, the image goes to the trash and comes back, and
// another is deleted for good from the trash.

import { after } from "node:test";
import assert from "node:assert/strict";
import { uniqueWord } from "../testlib/edge.mjs";
import { png } from "../testlib/png.mjs";
import { appTest, closeBrowser, signUp, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

/** Waits until the <img> `locator` names has loaded real pixels. */
async function loaded(page, locator) {
  await locator.waitFor();
  await locator.scrollIntoViewIfNeeded();
  const handle = await locator.elementHandle();
  await page.waitForFunction((img) => img.complete && img.naturalWidth > 0, handle, { timeout: 30_000 });
  return handle.evaluate((img) => img.naturalWidth);
}

/** Uploads a PNG through the page's form and waits for the full bar. */
async function upload(page, title, image) {
  await page.getByLabel("Image file (PNG, JPEG, WebP or GIF)").setInputFiles({
    name: `${title}.png`,
    mimeType: "image/png",
    buffer: image,
  });
  await page.getByLabel("Title", { exact: true }).fill(title);
  await page.getByLabel("Tags (separated by commas)").fill("app-test, gradient");
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  const bar = page.getByRole("progressbar", { name: "Upload" });
  await page.locator('.job[data-state="done"]').waitFor();
  assert.equal(await bar.getAttribute("value"), "100");
  await page.getByRole("status").filter({ hasText: `Stored “${title}”.` }).waitFor();
}

appTest("an image is uploaded, shown as a thumbnail, styled by a live job, trashed and restored; another is deleted for good", async ({ page }) => {
  page.on("dialog", (dialog) => void dialog.accept());
  await signUp(page);
  await page.getByRole("link", { name: "Gallery" }).click();
  await page.getByRole("heading", { name: "Gallery", level: 1 }).waitFor();

  const first = `Sunrise ${uniqueWord()}`;
  await upload(page, first, png(96, 64));
  const grid = page.getByRole("list", { name: "Images" });
  // The uploaded image's tile (an edit makes another of the same title, "derived").
  const tile = (title) => grid.getByRole("link", { name: new RegExp(`${title}.*uploaded`) });
  assert.ok((await loaded(page, tile(first).getByRole("img", { name: first }))) > 0);
  await snapshot(page, "gallery-grid");

  // The image's page: its details, the larger thumbnail, and a style job followed live.
  await tile(first).click();
  await page.getByRole("heading", { name: first, level: 2 }).waitFor();
  const details = page.getByRole("definition").filter({ hasText: "96 × 64 px" });
  await details.waitFor();
  assert.ok((await loaded(page, page.locator(".image-large img"))) > 0);
  assert.ok(await page.getByRole("link", { name: "Download original" }).getAttribute("href"));
  await page.getByLabel("Style").selectOption({ label: "Sepia" });
  await page.getByRole("button", { name: "Apply style" }).click();
  const styleBar = page.getByRole("progressbar", { name: "Style" });
  await styleBar.waitFor();
  await page.locator('.job[data-state="succeeded"]').waitFor({ timeout: 60_000 });
  assert.equal(await styleBar.getAttribute("value"), "100");
  await page.getByRole("link", { name: "Open the new image" }).waitFor();
  await snapshot(page, "gallery-image");

  // Title and tags edited.
  await page.getByLabel("Tags (separated by commas)").fill("morning, sky");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  await page.getByRole("definition").filter({ hasText: "morning, sky" }).waitFor();

  // To the trash, and back.
  await page.getByRole("button", { name: "Move to trash" }).click();
  await page.getByRole("heading", { name: "Your images" }).waitFor();
  await tile(first).waitFor({ state: "detached" });
  await grid.getByRole("link", { name: new RegExp(`${first}.*derived`) }).waitFor();
  await page.getByRole("link", { name: "Trash", exact: true }).click();
  const trash = page.getByRole("list", { name: "Images in the trash" });
  assert.ok((await loaded(page, trash.getByRole("img", { name: first }))) > 0);
  await snapshot(page, "gallery-trash");
  await page.getByRole("button", { name: `Restore ${first}` }).click();
  await page.getByRole("status").filter({ hasText: `Restored “${first}”.` }).waitFor();
  await trash.getByRole("img", { name: first }).waitFor({ state: "detached" });
  await page.getByRole("link", { name: "Images", exact: true }).click();
  assert.ok((await loaded(page, tile(first).getByRole("img"))) > 0);

  // Another image, deleted for good from the trash.
  const second = `Dusk ${uniqueWord()}`;
  await upload(page, second, png(64, 64, 30));
  await tile(second).click();
  await page.getByRole("heading", { name: second, level: 2 }).waitFor();
  await page.getByRole("button", { name: "Move to trash" }).click();
  await page.getByRole("heading", { name: "Your images" }).waitFor();
  await page.getByRole("link", { name: "Trash", exact: true }).click();
  await trash.getByRole("img", { name: second }).waitFor();
  await page.getByRole("button", { name: `Delete ${second} for good` }).click();
  await page.getByRole("status").filter({ hasText: `Deleted “${second}” for good.` }).waitFor();
  await trash.getByRole("img", { name: second }).waitFor({ state: "detached" });
  await page.getByText("The trash is empty.").waitFor();
  await page.getByRole("link", { name: "Images", exact: true }).click();
  await tile(first).waitFor();
  assert.equal(await grid.getByRole("img", { name: second }).count(), 0);
});

appTest("at phone width the gallery's grid and image page fit the screen", async ({ page }) => {
  await signUp(page);
  await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("link", { name: "Gallery" }).click();
  // A file that is not an image: the server's refusal, as a sentence.
  await page.getByLabel("Image file (PNG, JPEG, WebP or GIF)").setInputFiles({
    name: "notes.png",
    mimeType: "image/png",
    buffer: Buffer.from("these are notes, not pixels"),
  });
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  const refusal = page.getByRole("alert");
  await refusal.waitFor();
  assert.match(await refusal.textContent(), /^[A-Z].*\S/);
  await snapshot(page, "gallery-refused");
  const title = `Phone ${uniqueWord()}`;
  await upload(page, title, png(120, 80));
  assert.equal(await page.getByRole("alert").count(), 0);
  const grid = page.getByRole("list", { name: "Images" });
  assert.ok((await loaded(page, grid.getByRole("img", { name: title }))) > 0);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await grid.getByRole("link", { name: title }).click();
  await page.getByRole("heading", { name: title, level: 2 }).waitFor();
  await loaded(page, page.locator(".image-large img"));
  const detailOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(detailOverflow <= 0, `the image page is ${detailOverflow}px wider than the screen`);
  await snapshot(page, "gallery-phone");
}, { viewport: { width: 390, height: 844 } });
