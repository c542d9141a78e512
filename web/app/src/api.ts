// The app's link to the mesh: one grpc-web transport to the edge (same origin), typed clients of
// the generated SDK, and the signed-in session (tokens kept in localStorage, the access token
// refreshed before it expires, a lapsed session reported so the page can ask for the password
// again without losing what is on screen).

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { IdentityService, type User } from "../../src/gen/aimesh/identity/v1/identity_pb.js";

/** What a signed-in browser keeps between page loads. */
export interface Session {
  access: string;
  refresh: string;
  /** Milliseconds since the epoch. */
  accessExpires: number;
  /** The name the user signed in with, offered again when the session lapses. */
  login: string;
  user: User | null;
}

const STORAGE_KEY = "aimesh.session";
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;

type Listener = () => void;

/** The session and who listens for its changes (the shell re-renders on each). */
class SessionStore {
  private current: Session | null = load();
  /** Set when the server refused the session: the page asks for the password again. */
  expired = false;
  private listeners = new Set<Listener>();
  private refreshing: Promise<void> | null = null;
  private timer: number | undefined;

  get(): Session | null {
    return this.current;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(session: Session | null) {
    this.current = session;
    this.expired = false;
    if (session) {
      localStorage.setItem(
        STORAGE_KEY,
        JSON.stringify({ ...session, user: null } satisfies Session),
      );
    } else {
      localStorage.removeItem(STORAGE_KEY);
    }
    this.schedule();
    this.emit();
  }

  /** The server no longer accepts the tokens: keep the screen, ask to sign in again. */
  lapse() {
    if (this.expired) return;
    this.expired = true;
    window.clearTimeout(this.timer);
    this.emit();
  }

  emit() {
    for (const listener of this.listeners) listener();
  }

  /** The access token to send, refreshed first when it is about to expire. */
  async accessToken(): Promise<string | null> {
    const session = this.current;
    if (!session || this.expired) return session?.access ?? null;
    if (session.accessExpires - Date.now() < REFRESH_MARGIN_MS) {
      await this.refresh();
    }
    return this.current?.access ?? null;
  }

  /** Exchanges the refresh token for new tokens (one exchange at a time). */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.exchange().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async exchange() {
    const session = this.current;
    if (!session) return;
    try {
      const tokens = await anonymousIdentity.refreshToken({ refresh: session.refresh });
      this.set({
        ...session,
        access: tokens.access,
        refresh: tokens.refresh,
        accessExpires: millis(tokens.accessExpireTime),
      });
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.Unavailable) return;
      this.lapse();
    }
  }

  /** Refreshes in the background shortly before the access token expires. */
  private schedule() {
    window.clearTimeout(this.timer);
    const session = this.current;
    if (!session) return;
    const wait = Math.max(session.accessExpires - Date.now() - REFRESH_MARGIN_MS, 1_000);
    this.timer = window.setTimeout(() => void this.refresh(), Math.min(wait, 2 ** 31 - 1));
  }
}

function load(): Session | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    if (typeof session.access !== "string" || typeof session.refresh !== "string") return null;
    if (typeof session.login !== "string") session.login = "";
    return { ...session, user: null };
  } catch {
    return null;
  }
}

/** A protobuf timestamp in milliseconds since the epoch (0 when unset). */
export function millis(ts: Timestamp | undefined): number {
  return ts ? timestampDate(ts).getTime() : 0;
}

export const session = new SessionStore();

/** Sends the bearer token; a call refused as UNAUTHENTICATED marks the session lapsed. */
const auth: Interceptor = (next) => async (request) => {
  const token = await session.accessToken();
  if (token) request.header.set("authorization", `Bearer ${token}`);
  try {
    return await next(request);
  } catch (error) {
    if (token && error instanceof ConnectError && error.code === Code.Unauthenticated) {
      session.lapse();
    }
    throw error;
  }
};

const baseUrl = window.location.origin;
const transport = createGrpcWebTransport({ baseUrl, interceptors: [auth] });
const anonymousTransport = createGrpcWebTransport({ baseUrl });

/** A client of `service` that sends the signed-in user's token. */
export function client<T extends DescService>(service: T): Client<T> {
  return createClient(service, transport);
}

const anonymousIdentity = createClient(IdentityService, anonymousTransport);
export const identity = client(IdentityService);

/** Signs in with a username or email and a password, and keeps the tokens. */
export async function signIn(login: string, password: string): Promise<void> {
  const byEmail = login.includes("@");
  const tokens = await anonymousIdentity.login({
    email: byEmail ? login : "",
    username: byEmail ? "" : login,
    password,
  });
  session.set({
    access: tokens.access,
    refresh: tokens.refresh,
    accessExpires: millis(tokens.accessExpireTime),
    login,
    user: tokens.user ?? null,
  });
}

/** Creates an account, then signs in to it. */
export async function signUp(username: string, email: string, password: string): Promise<void> {
  await anonymousIdentity.register({ username, email, password, password2: password });
  await signIn(username, password);
}

/** Revokes the refresh token and forgets the session. */
export async function signOut(): Promise<void> {
  const current = session.get();
  session.set(null);
  if (current) {
    await anonymousIdentity.logout({ refresh: current.refresh }).catch(() => undefined);
  }
}

/** The sentence to show for a failed call: the server's message, never a stack. */
export function describe(error: unknown): string {
  if (error instanceof ConnectError) {
    if (error.code === Code.Unavailable) {
      return "The server cannot be reached right now. Try again in a moment.";
    }
    if (error.code === Code.ResourceExhausted && /rate/i.test(error.rawMessage)) {
      return "Too many requests: wait a moment and try again.";
    }
    const message = error.rawMessage.trim();
    return message ? message.charAt(0).toUpperCase() + message.slice(1) : codeSentence(error.code);
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

function codeSentence(code: Code): string {
  switch (code) {
    case Code.NotFound:
      return "It no longer exists.";
    case Code.PermissionDenied:
      return "You are not allowed to do that.";
    case Code.Unauthenticated:
      return "Your session has ended: sign in again.";
    default:
      return `The request failed (${Code[code]}).`;
  }
}

/**
 * A signed URL as a path on this origin: the mesh signs absolute URLs with its public address,
 * which may be another name for this same edge; the page loads media from its own origin only.
 */
export function sameOrigin(url: string): string {
  try {
    const parsed = new URL(url, window.location.origin);
    return parsed.pathname + parsed.search;
  } catch {
    return url;
  }
}
