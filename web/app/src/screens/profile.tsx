// The signed-in account: its details, the API call count, and deleting it.

import { useEffect, useState } from "preact/hooks";
import type { User } from "../../../src/gen/aimesh/identity/v1/identity_pb.js";
import { identity, session } from "../api.js";
import { ErrorNote, Panel, useAction, when } from "../ui.js";

export function Profile() {
  const [user, setUser] = useState<User>();
  const [error, setError] = useState<unknown>(null);
  const [password, setPassword] = useState("");
  useEffect(() => {
    identity
      .getProfile({})
      .then((r) => setUser(r.user))
      .catch(setError);
  }, []);
  const remove = useAction(async () => {
    await identity.deleteAccount({ password });
    session.set(null);
  });
  return (
    <>
      <ErrorNote error={error} />
      {user ? (
        <Panel title="Account">
          <dl class="facts">
            <dt>Username</dt>
            <dd>{user.username}</dd>
            <dt>Email</dt>
            <dd>{user.email}</dd>
            <dt>Member since</dt>
            <dd>{when(user.createTime)}</dd>
            <dt>API calls</dt>
            <dd data-testid="api-calls">{user.apiCallCount.toString()}</dd>
            {user.roles.length ? (
              <>
                <dt>Roles</dt>
                <dd>{user.roles.join(", ")}</dd>
              </>
            ) : null}
          </dl>
        </Panel>
      ) : null}
      <Panel title="Delete account">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (window.confirm("Delete your account and everything it stores?")) void remove.run();
          }}
        >
          <p>Deletes the account with its notes, documents, chats, images, audio and reports.</p>
          <label>
            Password
            <input
              type="password"
              autocomplete="current-password"
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          <ErrorNote error={remove.error} />
          <button type="submit" class="danger" disabled={remove.busy}>
            Delete my account
          </button>
        </form>
      </Panel>
    </>
  );
}
