// The signed-in account: its details, the API call count, and deleting it.

import { useEffect, useState } from "preact/hooks";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import {
  ExportAccountResultSchema,
  type ExportAccountResult,
  type User,
} from "../../../src/gen/aimesh/identity/v1/identity_pb.js";
import { JobState } from "../../../src/gen/aimesh/jobs/v1/jobs_pb.js";
import { identity, sameOrigin, session } from "../api.js";
import { ErrorNote, JobProgress, Panel, bytes, useAction, useJob, when } from "../ui.js";

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
      <Export />
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

/** Exports everything the account stores as one ZIP archive (a job), then offers it. */
function Export() {
  const [jobId, setJobId] = useState<string>();
  const [result, setResult] = useState<ExportAccountResult>();
  const job = useJob(jobId, (done) => {
    if (done.state === JobState.SUCCEEDED && done.result) {
      setResult(anyUnpack(done.result, ExportAccountResultSchema));
    }
  });
  const start = useAction(async () => {
    setResult(undefined);
    const r = await identity.exportAccount({});
    setJobId(r.job?.id);
  });
  return (
    <Panel title="Export your data">
      <p>
        One ZIP archive with everything you store: notes, documents and their files, tasks,
        quizzes, chats, images, recordings and audio, reports and jobs, as JSON and as the
        files themselves.
      </p>
      <ErrorNote error={start.error} />
      <button type="button" disabled={start.busy || (!!job && job.state === JobState.RUNNING)} onClick={() => void start.run()}>
        Export my data
      </button>
      {jobId ? <JobProgress job={job} label="Export" /> : null}
      {result ? (
        <p>
          <a class="button" href={sameOrigin(result.url)} download="aimesh-export.zip">
            Download the archive
          </a>{" "}
          <span class="meta">
            {bytes(result.sizeBytes)} · link valid until {when(result.expireTime)}
          </span>
        </p>
      ) : null}
    </Panel>
  );
}
