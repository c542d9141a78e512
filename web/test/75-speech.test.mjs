// Speech through the edge: text synthesised into stored audio over REST (a second identical
// request is a cache hit; MP3 and Ogg Opus at a sample rate asked), the WAV bytes downloaded with their content type, uploaded back
// as a raw body (google.api.HttpBody) to be transcribed by a job, and the transcript exported
// as SRT with its content type.

import { test } from "node:test";
import assert from "node:assert/strict";
import { authHeaders, env, eventually, http, signIn } from "../testlib/edge.mjs";

await signIn();

const TEXT = "The orchard behind the school has twelve apple trees.";

let audio;
let wav;
let transcription;

test("speech is synthesised into stored audio, and the same request is cached", async () => {
  const body = { text: TEXT, voice: "en-us", format: "AUDIO_FORMAT_WAV" };
  const first = await http("POST", "/api/v1/audio", { body });
  assert.equal(first.status, 200, first.text);
  audio = first.json.audio;
  assert.equal(audio.content_type, "audio/wav");
  assert.ok(!first.json.cached);
  const again = await http("POST", "/api/v1/audio", { body });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.cached, true);
  assert.equal(again.json.audio.id, audio.id);
});

test("the audio downloads as WAV bytes with its content type", async () => {
  const response = await fetch(`${env.edgeUrl}/api/v1/audio/${audio.id}/content`, {
    headers: authHeaders(),
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "audio/wav");
  wav = new Uint8Array(await response.arrayBuffer());
  assert.equal(new TextDecoder().decode(wav.slice(0, 4)), "RIFF");
  assert.equal(wav.length, Number(audio.size_bytes));
});

test("speech stores as MP3 or Ogg Opus at the sample rate asked, each with its content type", async () => {
  for (const [format, contentType, magic] of [
    ["AUDIO_FORMAT_MP3", "audio/mpeg", [0xff]],
    ["AUDIO_FORMAT_OGG_OPUS", "audio/ogg", [0x4f, 0x67, 0x67, 0x53]],
  ]) {
    const made = await http("POST", "/api/v1/audio", {
      body: { text: TEXT, voice: "en-us", format, sample_rate_hertz: 16000 },
    });
    assert.equal(made.status, 200, made.text);
    const stored = made.json.audio;
    assert.equal(stored.format, format);
    assert.equal(stored.content_type, contentType);
    assert.equal(stored.sample_rate_hertz, 16000);
    const response = await fetch(`${env.edgeUrl}/api/v1/audio/${stored.id}/content`, {
      headers: authHeaders(),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), contentType);
    const bytes = new Uint8Array(await response.arrayBuffer());
    assert.deepEqual([...bytes.slice(0, magic.length)], magic);
    assert.ok(bytes.length < Number(audio.size_bytes) / 2, `${format}: ${bytes.length} bytes`);
  }
  const odd = await http("POST", "/api/v1/audio", {
    body: { text: TEXT, format: "AUDIO_FORMAT_MP3", sample_rate_hertz: 11111 },
  });
  assert.equal(odd.status, 400, odd.text);
  assert.match(odd.text, /sample_rate_hertz/);
});

test("a raw audio body uploads as a transcription and its job transcribes it", async () => {
  const response = await http("POST", "/api/v1/transcriptions?filename=orchard.wav", {
    body: wav,
    headers: { "content-type": "audio/wav" },
  });
  assert.equal(response.status, 200, response.text);
  transcription = response.json.transcription;
  assert.equal(transcription.status, "TRANSCRIPTION_STATUS_PENDING");
  assert.equal(Number(transcription.size_bytes), wav.length);
  assert.ok(response.json.job?.id, response.text);
  const ready = await eventually(
    async () => {
      const got = await http("GET", `/api/v1/transcriptions/${transcription.id}`);
      const t = got.json?.transcription;
      return t?.status === "TRANSCRIPTION_STATUS_READY" && t;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  assert.ok(ready, "the transcription became READY");
  assert.match(ready.text.toLowerCase(), /orchard|apple/);
});

test("the transcript exports as SRT with its content type", async () => {
  const response = await http("GET", `/api/v1/transcriptions/${transcription.id}/export?format=srt`);
  assert.equal(response.status, 200, response.text);
  assert.equal(response.headers.get("content-type"), "application/x-subrip");
  assert.match(response.text, /^1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n/);
});

test("undecodable audio is refused naming the field", async () => {
  const response = await http("POST", "/api/v1/transcriptions?filename=noise.wav", {
    body: "this is not audio".repeat(20),
    headers: { "content-type": "audio/wav" },
  });
  assert.equal(response.status, 400, response.text);
  assert.match(response.text, /body\.data/);
});
