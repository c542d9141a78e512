// The gallery through the edge: a PNG uploaded over REST as the raw body, listed by tag,
// downloaded as image bytes with their content type and cache headers (original and
// thumbnail), edited by a job into a linked image, and moved through the trash.

import { test } from "node:test";
import assert from "node:assert/strict";
import { authHeaders, env, eventually, http, signIn } from "../testlib/edge.mjs";
import { png } from "../testlib/png.mjs";

await signIn();

async function bytes(path) {
  const response = await fetch(env.edgeUrl + path, { headers: authHeaders() });
  return { response, body: Buffer.from(await response.arrayBuffer()) };
}

let image;

test("a raw PNG body uploads as an image with its thumbnails", async () => {
  const response = await http("POST", "/api/v1/gallery/images?title=Gradient&tags=edge-test", {
    body: new Uint8Array(png(600, 400)),
    headers: { "content-type": "image/png" },
  });
  assert.equal(response.status, 200, response.text);
  image = response.json.image;
  assert.equal(image.width, 600);
  assert.equal(image.height, 400);
  assert.equal(image.format, "png");
  assert.deepEqual(image.tags, ["edge-test"]);
  assert.equal(image.origin, "IMAGE_ORIGIN_UPLOADED");
});

test("the image lists by tag and downloads as bytes with cache headers", async () => {
  const listed = await http("GET", "/api/v1/gallery/images?tag=edge-test");
  assert.equal(listed.status, 200, listed.text);
  assert.ok(listed.json.images.some((i) => i.id === image.id), listed.text);
  const original = await bytes(`/api/v1/gallery/images/${image.id}/content`);
  assert.equal(original.response.status, 200);
  assert.equal(original.response.headers.get("content-type"), "image/png");
  assert.match(original.response.headers.get("cache-control") ?? "", /max-age=\d+/);
  assert.ok(original.response.headers.get("etag"));
  assert.deepEqual([...original.body.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  const thumb = await bytes(
    `/api/v1/gallery/images/${image.id}/content?variant=IMAGE_VARIANT_THUMBNAIL_256`,
  );
  assert.equal(thumb.response.status, 200);
  assert.equal(thumb.response.headers.get("content-type"), "image/jpeg");
  assert.deepEqual([...thumb.body.subarray(0, 2)], [0xff, 0xd8]);
});

test("a style job makes a derived image linked to its source", async () => {
  const started = await http("POST", `/api/v1/gallery/images/${image.id}:stylize`, {
    body: { style: "IMAGE_STYLE_SEPIA" },
  });
  assert.equal(started.status, 200, started.text);
  const job = await eventually(
    async () => {
      const response = await http("GET", `/api/v1/jobs/${started.json.job.id}`);
      return response.json?.job?.state === "JOB_STATE_SUCCEEDED" && response.json.job;
    },
    { timeoutMs: 30_000 },
  );
  assert.ok(job, "the job succeeded");
  const derived = await http("GET", `/api/v1/gallery/images?origin=IMAGE_ORIGIN_DERIVED`);
  assert.ok(
    derived.json.images.some((i) => i.source_id === image.id && i.operation === "style:sepia"),
    derived.text,
  );
});

test("the trash takes the image and gives it back", async () => {
  const deleted = await http("DELETE", `/api/v1/gallery/images/${image.id}`);
  assert.equal(deleted.status, 200, deleted.text);
  assert.ok(deleted.json.image.purge_time, deleted.text);
  const trash = await http("GET", "/api/v1/gallery/deleted");
  assert.ok(trash.json.images.some((i) => i.id === image.id), trash.text);
  const restored = await http("POST", `/api/v1/gallery/images/${image.id}:restore`, { body: {} });
  assert.equal(restored.status, 200, restored.text);
  assert.equal(restored.json.image.delete_time, undefined);
});

test("a file that is not an image is 400 naming the field", async () => {
  const response = await http("POST", "/api/v1/gallery/images", {
    body: "plain text, not an image",
    headers: { "content-type": "text/plain" },
  });
  assert.equal(response.status, 400, response.text);
  assert.match(response.text, /body\.data/);
});
