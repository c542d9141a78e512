// The aimesh browser app: a shell (navigation, the signed-in user, a sign-in dialog when the
// session lapses) around one screen per service, chosen by the URL's hash (#/notes, #/jobs...).

import { render, type ComponentChildren } from "preact";
import { useEffect, useErrorBoundary, useState } from "preact/hooks";
import type { User } from "../../src/gen/aimesh/identity/v1/identity_pb.js";
import { identity, session, signOut } from "./api.js";
import { SignIn, SignInAgain } from "./screens/auth.js";
import { screens, type Screen } from "./screens/index.js";

/** The screen the hash names, e.g. "notes" for "#/notes/123" (with "123" as its argument). */
function route(): { name: string; arg: string } {
  const [name = "", ...rest] = window.location.hash.replace(/^#\/?/, "").split("/");
  return { name, arg: decodeURIComponent(rest.join("/")) };
}

function useRoute() {
  const [current, setCurrent] = useState(route);
  useEffect(() => {
    const update = () => setCurrent(route());
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return current;
}

function useSession() {
  const [, setTick] = useState(0);
  useEffect(() => session.subscribe(() => setTick((t) => t + 1)), []);
  return session.get();
}

function App() {
  const current = useSession();
  const { name, arg } = useRoute();
  const [user, setUser] = useState<User | null>(null);
  const [menuOpen, setMenuOpen] = useState(false);

  // Who is signed in (and whether an administrator), after sign-in and on every page load.
  const refresh = current?.refresh;
  useEffect(() => {
    if (!current) {
      setUser(null);
      return;
    }
    if (current.user) {
      setUser(current.user);
      return;
    }
    identity
      .getProfile({})
      .then((profile) => setUser(profile.user ?? null))
      .catch(() => undefined);
  }, [refresh]);

  useEffect(() => setMenuOpen(false), [name]);

  if (!current) {
    return <SignIn />;
  }

  const isAdmin = user?.roles.includes("admin") ?? false;
  const visible = screens.filter((s) => !s.admin || isAdmin);
  const screen: Screen = visible.find((s) => s.path === name) ?? visible[0];

  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/">
          aimesh
        </a>
        <button
          type="button"
          class="menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <nav id="nav" class={menuOpen ? "open" : ""} aria-label="Services">
          <ul>
            {visible.map((s) => (
              <li key={s.path}>
                <a href={`#/${s.path}`} aria-current={s === screen ? "page" : undefined}>
                  {s.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <a href="#/profile">{user?.username ?? current.login}</a>
          <button type="button" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" aria-label={screen.title}>
        <h1>{screen.title}</h1>
        <Guard key={screen.path}>
          <screen.component arg={screen.path === name ? arg : ""} user={user} />
        </Guard>
      </main>
      {session.expired ? <SignInAgain login={current.login} /> : null}
    </div>
  );
}

/** A screen that fails while drawing shows why and a way back, never a blank page. */
function Guard({ children }: { children: ComponentChildren }) {
  const [error, reset] = useErrorBoundary();
  if (error) {
    return (
      <div class="panel" role="alert">
        <h2>This screen stopped working</h2>
        <p>{error instanceof Error ? error.message : String(error)}</p>
        <button type="button" onClick={reset}>
          Try again
        </button>
      </div>
    );
  }
  return <>{children}</>;
}

render(<App />, document.getElementById("app")!);
