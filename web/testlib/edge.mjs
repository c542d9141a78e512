// Shared helpers of the edge tests (web/test). scripts/test-edge starts the mesh and Envoy and
// passes their addresses in the environment.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const execFileAsync = promisify(execFile);

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests with scripts/test-edge`);
  }
  return value;
}

export const env = {
  edgeUrl: required("EDGE_URL"),
  edgeGrpc: required("EDGE_GRPC"),
  adminUrl: required("EDGE_ADMIN_URL"),
  accessLog: required("EDGE_ACCESS_LOG"),
  otlpPort: Number(required("EDGE_OTLP_PORT")),
  allowedOrigin: required("EDGE_ALLOWED_ORIGIN"),
  maxRequestBytes: Number(required("EDGE_MAX_REQUEST_BYTES")),
  rateLimitBurst: Number(required("EDGE_RATE_LIMIT_BURST")),
  routeTimeoutMs: Number(required("EDGE_ROUTE_TIMEOUT_SECS")) * 1000,
  workDir: required("EDGE_WORK_DIR"),
  meshGrpc: required("MESH_GRPC"),
  descriptorSet: required("DESCRIPTOR_SET"),
  repoRoot: required("REPO_ROOT"),
};

/** A random lowercase word, to keep one test's notes apart from another's. */
export function uniqueWord(prefix = "w") {
  return `${prefix}${randomBytes(6).toString("hex")}`;
}

/** The signed-in test user of this test file (see signIn). */
let session;

/**
 * Registers a fresh user and logs in over REST through the edge (the identity service's
 * /auth/register and /auth/login). Later calls of `http`, `grpcWebTransport` and
 * `grpcurlAuth` send its access token. Each test file is its own user, so counts are its own.
 */
export async function signIn() {
  if (session) return session;
  const username = uniqueWord("edge");
  const password = `Pw-${randomBytes(9).toString("base64url")}-9z`;
  const email = `${username}@example.test`;
  const registered = await register({ username, email, password, password2: password });
  if (registered.status !== 200) throw new Error(`register: ${registered.status} ${registered.text}`);
  const login = await http("POST", "/auth/login", {
    body: { username, password },
    anonymous: true,
  });
  if (login.status !== 200 || !login.json?.access) {
    throw new Error(`login: ${login.status} ${login.text}`);
  }
  session = { username, email, token: login.json.access, user: login.json.user };
  return session;
}

/**
 * POST /auth/register, waiting out the identity service's limit on accounts registered from one
 * address (429 with a retry delay: test files run back to back register faster than a person).
 */
export async function register(body) {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const response = await http("POST", "/auth/register", { body, anonymous: true });
    if (response.status !== 429 || Date.now() > deadline) return response;
    const delay = response.json?.details?.find((d) => d.retry_delay)?.retry_delay;
    const seconds = Number.parseFloat(delay ?? "1") || 1;
    await new Promise((resolve) => setTimeout(resolve, Math.min(seconds, 10) * 1000 + 100));
  }
}

/** `authorization` header of the signed-in user (none before signIn). */
export function authHeaders() {
  return session ? { authorization: `Bearer ${session.token}` } : {};
}

/** grpcurl arguments that send the signed-in user's token. */
export function grpcurlAuth() {
  return session ? ["-H", `authorization: Bearer ${session.token}`] : [];
}

/**
 * Calls the edge over HTTP/1.1 and returns {status, headers, text, json}. `body` objects are sent
 * as JSON. The signed-in user's token is sent unless `anonymous`.
 */
export async function http(method, path, { body, headers = {}, anonymous = false } = {}) {
  const init = { method, headers: { ...(anonymous ? {} : authHeaders()), ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
    init.headers["content-type"] ??= "application/json";
  }
  const response = await fetch(env.edgeUrl + path, init);
  const text = await response.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** The descriptor set Envoy's transcoder reads, decoded. */
export function descriptorSet() {
  return fromBinary(FileDescriptorSetSchema, readFileSync(env.descriptorSet));
}

/** A registry over the descriptor set, to decode messages (e.g. error details) by name. */
export function descriptorRegistry() {
  return createFileRegistry(descriptorSet());
}

/**
 * Runs grpcurl (from `. scripts/tools.sh grpcurl`) and returns {code, stdout, stderr}; never
 * throws on a non-zero exit.
 */
export async function grpcurl(args) {
  try {
    const { stdout, stderr } = await execFileAsync("grpcurl", args, { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    if (typeof error.code !== "number") throw error;
    return { code: error.code, stdout: error.stdout ?? "", stderr: error.stderr ?? "" };
  }
}

/** Runs a program to completion and returns {code, stdout, stderr}; never throws on exit codes. */
export async function run(program, args, options = {}) {
  try {
    const { stdout, stderr } = await execFileAsync(program, args, { timeout: 60_000, ...options });
    return { code: 0, stdout, stderr };
  } catch (error) {
    if (typeof error.code !== "number") throw error;
    return { code: error.code, stdout: error.stdout ?? "", stderr: error.stderr ?? "" };
  }
}

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
export async function eventually(probe, { timeoutMs = 10_000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value || Date.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Envoy's running configuration, from its admin endpoint. */
export async function configDump() {
  const response = await fetch(`${env.adminUrl}/config_dump`);
  if (!response.ok) throw new Error(`config_dump answered ${response.status}`);
  return response.json();
}

/** Envoy's counters and gauges whose name contains `filter`, as a Map. */
export async function stats(filter) {
  const response = await fetch(`${env.adminUrl}/stats?filter=${encodeURIComponent(filter)}`);
  const map = new Map();
  for (const line of (await response.text()).split("\n")) {
    const match = /^(\S+): (\d+)$/.exec(line);
    if (match) map.set(match[1], Number(match[2]));
  }
  return map;
}

/**
 * The test mesh's administrator: scripts/test-edge names one email in AIMESH_ADMIN_EMAILS, and
 * an email is registered once per mesh, so every file that needs the administrator (the REST
 * checks, the app's admin screen) uses this one account, whichever registers it first, with a
 * password derived from this run's work directory.
 */
export function adminAccount() {
  const secret = createHash("sha256").update(`aimesh-edge-admin:${env.workDir}`).digest("base64url");
  return {
    username: "operator",
    email: process.env.EDGE_ADMIN_EMAIL ?? "operator@example.test",
    password: `Pw-${secret.slice(0, 16)}-9z`,
  };
}

/**
 * Registers the administrator unless another file already did (409), logs in and returns its
 * bearer headers.
 */
export async function adminHeaders() {
  const { username, email, password } = adminAccount();
  const registered = await register({ username, email, password, password2: password });
  if (registered.status !== 200 && registered.status !== 409) {
    throw new Error(`register the administrator: ${registered.status} ${registered.text}`);
  }
  const login = await http("POST", "/auth/login", { body: { email, password }, anonymous: true });
  if (login.status !== 200 || !login.json?.user?.roles?.includes("admin")) {
    throw new Error(`log in as the administrator: ${login.status} ${login.text}`);
  }
  return { authorization: `Bearer ${login.json.access}` };
}
