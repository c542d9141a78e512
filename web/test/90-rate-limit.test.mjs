// The edge's local rate limit. Runs last: it empties the token bucket (then waits for a refill).

import { test } from "node:test";
import assert from "node:assert/strict";
import { env, http } from "../testlib/edge.mjs";

test("past the burst, the edge answers 429 with a JSON body, then recovers", async () => {
  const burst = env.rateLimitBurst;
  const responses = await Promise.all(
    // A public method (the token keys), so that only the edge limits, not the per-user limit.
    Array.from({ length: burst * 2 }, () => http("GET", "/auth/jwks", { anonymous: true })),
  );
  const limited = responses.filter((r) => r.status === 429);
  const served = responses.filter((r) => r.status === 200);
  assert.ok(limited.length >= burst / 2, `only ${limited.length} of ${responses.length} limited`);
  assert.ok(served.length >= 1 && served.length <= burst + burst / 2, `${served.length} served`);
  const sample = limited[0];
  assert.equal(sample.headers.get("x-rate-limited"), "true");
  assert.match(sample.headers.get("content-type") ?? "", /^application\/json/);
  // The services' error shape: RESOURCE_EXHAUSTED.
  assert.equal(sample.json.code, 8, sample.text);
  assert.equal(typeof sample.json.message, "string", sample.text);

  // The bucket refills every second.
  await new Promise((resolve) => setTimeout(resolve, 2100));
  const after = await http("GET", "/auth/jwks", { anonymous: true });
  assert.equal(after.status, 200, after.text);
});
