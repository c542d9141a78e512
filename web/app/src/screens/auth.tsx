// Signing up and in, and signing in again when a session lapses (over the current screen, so
// nothing typed there is lost).

import { useState } from "preact/hooks";
import { signIn, signOut, signUp } from "../api.js";
import { ErrorNote, useAction } from "../ui.js";

/** The first page of a signed-out visitor: sign in, or create an account. */
export function SignIn() {
  const [mode, setMode] = useState<"in" | "up">("in");
  const [login, setLogin] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction(async () => {
    if (mode === "up") await signUp(login.trim(), email.trim(), password);
    else await signIn(login.trim(), password);
  });
  return (
    <main class="auth" id="main">
      <h1>aimesh</h1>
      <div class="tabs" role="tablist" aria-label="Account">
        <button
          type="button"
          role="tab"
          aria-selected={mode === "in"}
          onClick={() => (setMode("in"), action.clear())}
        >
          Sign in
        </button>
        <button
          type="button"
          role="tab"
          aria-selected={mode === "up"}
          onClick={() => (setMode("up"), action.clear())}
        >
          Create account
        </button>
      </div>
      <form
        class="card"
        aria-label={mode === "up" ? "Create account" : "Sign in"}
        onSubmit={(e) => {
          e.preventDefault();
          void action.run();
        }}
      >
        <label>
          {mode === "up" ? "Username" : "Username or email"}
          <input
            name="login"
            autocomplete="username"
            required
            value={login}
            onInput={(e) => setLogin(e.currentTarget.value)}
          />
        </label>
        {mode === "up" ? (
          <label>
            Email
            <input
              name="email"
              type="email"
              autocomplete="email"
              required
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </label>
        ) : null}
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete={mode === "up" ? "new-password" : "current-password"}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {mode === "up" ? (
          <p class="hint">
            10 to 128 characters, mixing at least two of lowercase, uppercase, digits and other
            characters.
          </p>
        ) : null}
        <ErrorNote error={action.error} />
        <button type="submit" disabled={action.busy}>
          {mode === "up" ? "Create account" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

/** A dialog over the page: the session ended, the password brings it back. */
export function SignInAgain({ login }: { login: string }) {
  const [name, setName] = useState(login);
  const [password, setPassword] = useState("");
  const action = useAction(() => signIn(name.trim(), password));
  return (
    <div class="overlay">
      <form
        class="card dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="again-title"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run();
        }}
      >
        <h2 id="again-title">Your session has ended</h2>
        <p>Sign in again to go on; what you typed stays on the page.</p>
        <label>
          Username or email
          <input
            name="login"
            autocomplete="username"
            required
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            required
            autofocus
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <ErrorNote error={action.error} />
        <div class="row">
          <button type="submit" disabled={action.busy}>
            Sign in
          </button>
          <button type="button" class="secondary" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </form>
    </div>
  );
}
