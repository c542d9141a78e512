// The browser app's gallery, in a real headless Chromium through the real edge: a PNG made here
// is uploaded through the page (the bar fills), its thumbnail loads from a signed URL, a style
// job runs with a live progress bar to 100%, the image goes to the trash and comes back, and
// another is deleted for good from the trash.

import { after } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { uniqueWord } from "../testlib/edge.mjs";
import { appTest, closeBrowser, newUser, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

/**
 * Chromium asks for /favicon.ico, which the edge does not serve (404, logged to the console as
 * an error, which fails an app test): answer it here with no content.
 */
async function noFavicon(page) {
  await page.route("**/favicon.ico", (route) => route.fulfill({ status: 204, body: "" }));
}

/**
 * Signs up through the page as `signUp` does, waiting and trying again while the server refuses
 * registrations from this address for a moment (every test file registers users at once).
 */
async function signUpPatiently(page) {
  const user = newUser();
  await page.goto("/");
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(user.username);
  await page.getByLabel("Email").fill(user.email);
  await page.getByLabel("Password", { exact: true }).fill(user.password);
  for (let attempt = 0; attempt < 20; attempt++) {
    await page.getByRole("button", { name: "Create account" }).click();
    const outcome = await Promise.race([
      page.getByRole("button", { name: "Sign out" }).waitFor().then(() => "in", () => "timeout"),
      page.getByRole("alert").filter({ hasText: /retry in/i }).waitFor().then(() => "wait", () => "timeout"),
    ]);
    if (outcome === "in") return user;
    await page.waitForTimeout(2_000);
  }
  throw new Error("the server kept refusing the registration");
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An RGB PNG of a colour gradient, `width` × `height`, tinted by `blue`. */
function png(width, height, blue = 128) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      raw[row + 1 + x * 3] = (x * 255) / width;
      raw[row + 2 + x * 3] = (y * 255) / height;
      raw[row + 3 + x * 3] = blue;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

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
  await noFavicon(page);
  await signUpPatiently(page);
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
  await noFavicon(page);
  await signUpPatiently(page);
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
