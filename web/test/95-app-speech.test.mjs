// The app's Speech screen in a real headless Chromium through the real edge: a sentence is
// synthesised as MP3 and played through its signed URL (the <audio> loads a duration), and the
// same file, uploaded through the file input, is transcribed by a job watched live into a
// transcript.

import { after } from "node:test";
import assert from "node:assert/strict";
import { appTest, closeBrowser, signUp, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

const TEXT = "The orchard behind the school has twelve apple trees.";

appTest("speech: a sentence is synthesised as MP3 and played, and the file uploaded is transcribed live", async ({ page }) => {
  await signUp(page);
  await page.getByRole("link", { name: "Speech" }).click();
  await page.getByRole("heading", { name: "Speech", level: 1 }).waitFor();

  // Synthesis in the form's default format, MP3 (every browser plays it): the audio element
  // loads the stored file through a signed URL on this origin and reads its duration.
  await page.getByLabel("Text to speak").fill(TEXT);
  await page.getByRole("button", { name: "Synthesize", exact: true }).click();
  const audio = page.getByLabel("Synthesized speech");
  await audio.waitFor();
  const src = await audio.getAttribute("src");
  assert.match(src, /^\/api\/v1\/files\//);
  await page.waitForFunction(() => {
    const a = document.querySelector("audio");
    return a && Number.isFinite(a.duration) && a.duration > 0;
  });
  const duration = await audio.evaluate((a) => a.duration);
  assert.ok(duration > 1, `duration ${duration}`);
  await page.getByRole("list", { name: "Synthesized audio" }).getByText(TEXT).waitFor();

  assert.match(await page.getByRole("link", { name: "Download MP3" }).getAttribute("download"), /\.mp3$/);

  // The file the page plays, uploaded back to transcribe.
  const mp3 = Buffer.from(
    await audio.evaluate(async (a) => Array.from(new Uint8Array(await (await fetch(a.src)).arrayBuffer()))),
  );
  assert.equal(mp3[0], 0xff, "an MPEG frame");
  await page.getByLabel(/Or choose an audio file/).setInputFiles({
    name: "orchard.mp3",
    mimeType: "audio/mpeg",
    buffer: mp3,
  });
  await page.getByText(/Ready: orchard\.mp3/).waitFor();
  await page.getByRole("button", { name: "Transcribe", exact: true }).click();
  const bar = page.getByRole("progressbar", { name: "Transcription" });
  await bar.waitFor();
  await page.locator('.job[data-state="succeeded"]').waitFor({ timeout: 180_000 });
  assert.equal(await bar.getAttribute("value"), "100");
  const transcript = page.getByRole("region", { name: "Transcript", exact: true });
  await transcript.waitFor();
  assert.match(await transcript.textContent(), /orchard|apple/i);
  // The language transcribed (the default model's, English).
  assert.match(await page.getByTestId("transcript-language").textContent(), /Language: en/);
  await page.getByRole("list", { name: "Transcriptions" }).getByText("orchard.mp3").waitFor();
  await snapshot(page, "speech");
});

appTest("speech at phone width: the screen fits and past audio can be deleted", async ({ page }) => {
  await signUp(page);
  await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("link", { name: "Speech" }).click();
  await page.getByLabel("Text to speak").fill("A short sentence to delete.");
  await page.getByRole("button", { name: "Synthesize", exact: true }).click();
  const list = page.getByRole("list", { name: "Synthesized audio" });
  await list.getByText("A short sentence to delete.").waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await snapshot(page, "speech-phone");
  page.once("dialog", (dialog) => void dialog.accept());
  await list.getByRole("button", { name: /^Delete/ }).click();
  await list.getByText("No audio yet.").waitFor();
}, { viewport: { width: 390, height: 844 } });

appTest("speech: a recording made in the page is sent as recorded (WebM/Opus) and transcribed", async ({ page, context }) => {
  await context.grantPermissions(["microphone"]);
  await signUp(page);
  await page.getByRole("link", { name: "Speech" }).click();
  await page.getByRole("button", { name: "Record" }).click();
  await page.getByText(/Recording… [2-9] s/).waitFor();
  await page.getByRole("button", { name: "Stop recording" }).click();
  // Chromium records WebM/Opus (streamed, without sizes or cues): the server decodes it as is.
  const ready = page.getByText(/Ready: recording-.*\.webm/);
  await ready.waitFor();
  assert.match(await ready.textContent(), /\d+\.\d s/);
  await page.getByRole("button", { name: "Transcribe", exact: true }).click();
  await page.locator('.job[data-state="succeeded"]').waitFor({ timeout: 180_000 });
  await page.getByRole("region", { name: "Transcript", exact: true }).waitFor();
  await page.getByRole("list", { name: "Transcriptions" }).getByText(/^recording-.*\.webm$/).waitFor();
});

/** A 16-bit PCM WAV of a tone: `seconds` long at `rate` Hz with `channels` channels. */
function toneWav(seconds, rate, channels) {
  const frames = Math.round(seconds * rate);
  const data = Buffer.alloc(frames * channels * 2);
  for (let i = 0; i < frames; i++) {
    const sample = Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 8000);
    for (let c = 0; c < channels; c++) data.writeInt16LE(sample, (i * channels + c) * 2);
  }
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * channels * 2, 28);
  header.writeUInt16LE(channels * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

appTest("speech: a WAV larger than the edge takes is resampled in the page and transcribed", async ({ page }) => {
  await signUp(page);
  await page.getByRole("link", { name: "Speech" }).click();
  // 12 s of 48 kHz stereo: 2.2 MiB, over the test edge's 2 MiB body limit.
  const wav = toneWav(12, 48_000, 2);
  await page.getByLabel(/Or choose an audio file/).setInputFiles({ name: "tone.wav", mimeType: "audio/wav", buffer: wav });
  const ready = page.getByText(/Ready: tone\.wav/);
  await ready.waitFor();
  assert.match(await ready.textContent(), /Resampled to 16 kHz mono/);
  await page.getByRole("button", { name: "Transcribe", exact: true }).click();
  await page.locator('.job[data-state="succeeded"]').waitFor({ timeout: 180_000 });
  await page.getByRole("region", { name: "Transcript", exact: true }).waitFor();
});
