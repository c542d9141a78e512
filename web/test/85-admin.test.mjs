// The operators' API through the edge: an administrator (named by AIMESH_ADMIN_EMAILS, which
// scripts/test-edge sets) lists accounts, disables and enables one, reads the audit log and the
// queues over REST; any other user is refused with 403 (PERMISSION_DENIED), an anonymous call
// with 401; the live job stream works for an administrator as NDJSON.

import { test } from "node:test";
import assert from "node:assert/strict";
import { adminHeaders, env, eventually, http, signIn } from "../testlib/edge.mjs";

const user = await signIn();
const admin = await adminHeaders();

test("an administrator lists, disables and enables accounts over REST", async () => {
  const listed = await http("GET", `/api/v1/admin/users?search=${user.username}`, { headers: admin });
  assert.equal(listed.status, 200, listed.text);
  assert.equal(listed.json.users.length, 1, listed.text);
  const target = listed.json.users[0];
  assert.equal(target.email, user.email);

  const disabled = await http("POST", `/api/v1/admin/users/${target.id}:disable`, {
    headers: admin,
    body: { reason: "edge test" },
  });
  assert.equal(disabled.status, 200, disabled.text);
  // The account's own token is refused within a moment, and accepted again once enabled.
  const refused = await eventually(async () => (await http("GET", "/api/v1/notes")).status === 401);
  assert.ok(refused, "the disabled account's token is refused");
  const enabled = await http("POST", `/api/v1/admin/users/${target.id}:enable`, {
    headers: admin,
    body: { reason: "edge test done" },
  });
  assert.equal(enabled.status, 200, enabled.text);
  const accepted = await eventually(async () => (await http("GET", "/api/v1/notes")).status === 200);
  assert.ok(accepted, "the enabled account's token works again");

  const audit = await http("GET", "/api/v1/admin/audit-log", { headers: admin });
  assert.equal(audit.status, 200, audit.text);
  const actions = audit.json.entries.filter((e) => e.target === target.id).map((e) => e.action);
  assert.ok(actions.includes("user.disable") && actions.includes("user.enable"), audit.text);

  const queues = await http("GET", "/api/v1/admin/queues", { headers: admin });
  assert.equal(queues.status, 200, queues.text);
  assert.ok(queues.json.read_time, queues.text);
});

test("the live job stream of every user is NDJSON for an administrator", async () => {
  const abort = new AbortController();
  const response = await fetch(`${env.edgeUrl}/api/v1/admin/jobs:watch`, {
    headers: admin,
    signal: abort.signal,
  });
  try {
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  } finally {
    abort.abort();
  }
});

test("other users are refused with 403, anonymous calls with 401", async () => {
  for (const path of ["/api/v1/admin/users", "/api/v1/admin/audit-log", "/api/v1/admin/queues"]) {
    const forbidden = await http("GET", path);
    assert.equal(forbidden.status, 403, `${path}: ${forbidden.text}`);
    const anonymous = await http("GET", path, { anonymous: true });
    assert.equal(anonymous.status, 401, `${path}: ${anonymous.text}`);
  }
});
