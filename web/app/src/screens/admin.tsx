// Admin (administrators only): accounts (search, pages; disable, enable or delete with a reason),
// each job kind's queue, every user's jobs live (the admin service's WatchJobs) with retry and
// cancel, and the audit log of what administrators did.

import { useEffect, useRef, useState } from "preact/hooks";
import { durationMs, type Duration } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  type DeletedData,
  type GetQueueStatsResponse,
  type UserSummary,
} from "../../../src/gen/aimesh/admin/v1/admin_pb.js";
import { JobState, type Job } from "../../../src/gen/aimesh/jobs/v1/jobs_pb.js";
import { client } from "../api.js";
import {
  ErrorNote,
  Pager,
  Panel,
  bytes,
  finished,
  stateName,
  useAction,
  useLiveStream,
  usePaged,
  when,
} from "../ui.js";
import type { ScreenProps } from "./index.js";

const admin = client(AdminService);

const STATES = [
  JobState.QUEUED,
  JobState.RUNNING,
  JobState.SUCCEEDED,
  JobState.FAILED,
  JobState.CANCELLED,
];

export function Admin({ user }: ScreenProps) {
  // Bumped after each administrator's action, so the audit log shows it.
  const [audit, setAudit] = useState(0);
  const acted = () => setAudit((n) => n + 1);
  return (
    <div class="admin">
      <Users self={user?.id ?? ""} onAction={acted} />
      <Queues />
      <LiveJobs onAction={acted} />
      <AuditLog reload={audit} />
    </div>
  );
}

type UserAction = "disable" | "enable" | "delete";

/** Accounts: search, pages, and the actions that need a reason. */
function Users({ self, onAction }: { self: string; onAction: () => void }) {
  const [search, setSearch] = useState("");
  const {
    items: list,
    setItems: setList,
    next,
    error,
    tokens,
    setTokens,
    reload,
  } = usePaged(
    (pageToken, signal) =>
      admin
        .listUsers({ pageSize: 20, pageToken, search: search.trim() }, { signal })
        .then((r) => ({ items: r.users, next: r.nextPageToken })),
    [search],
    250,
  );
  const [asking, setAsking] = useState<{ user: UserSummary; action: UserAction }>();
  const [done, setDone] = useState("");

  const replace = (u: UserSummary) => setList((rows) => rows.map((r) => (r.id === u.id ? u : r)));

  return (
    <Panel title="Users">
      <div class="filters">
        <label>
          Search users
          <input
            type="search"
            placeholder="username or email"
            maxLength={254}
            value={search}
            onInput={(e) => {
              setSearch(e.currentTarget.value);
              setTokens([""]);
            }}
          />
        </label>
        <button type="button" class="secondary" onClick={reload}>
          Refresh
        </button>
      </div>
      <ErrorNote error={error} />
      {done ? (
        <p class="meta" role="status">
          {done}
        </p>
      ) : null}
      {asking ? (
        <Confirm
          key={`${asking.user.id}-${asking.action}`}
          user={asking.user}
          action={asking.action}
          onCancel={() => setAsking(undefined)}
          onDone={(message, updated) => {
            setAsking(undefined);
            setDone(message);
            if (updated) replace(updated);
            else reload();
            onAction();
          }}
        />
      ) : null}
      <div class="table-wrap">
        <table aria-label="Users">
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Roles</th>
              <th scope="col">Created</th>
              <th scope="col">API calls</th>
              <th scope="col">Storage</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((u) => {
              const disabled = !!u.disableTime;
              return (
                <tr key={u.id} data-user={u.username} data-disabled={disabled ? "true" : "false"}>
                  <td>
                    <strong>{u.username}</strong>
                    <div class="meta wrap">{u.email}</div>
                  </td>
                  <td>{u.roles.join(", ") || "—"}</td>
                  <td>{when(u.createTime)}</td>
                  <td>{u.apiCallCount.toString()}</td>
                  <td>{bytes(u.storageBytes)}</td>
                  <td>{disabled ? `disabled since ${when(u.disableTime)}` : "active"}</td>
                  <td class="actions">
                    {u.id === self ? (
                      <span class="meta">you</span>
                    ) : (
                      <>
                        {disabled ? (
                          <button
                            type="button"
                            class="secondary"
                            aria-label={`Enable ${u.username}`}
                            onClick={() => setAsking({ user: u, action: "enable" })}
                          >
                            Enable
                          </button>
                        ) : (
                          <button
                            type="button"
                            class="secondary"
                            aria-label={`Disable ${u.username}`}
                            onClick={() => setAsking({ user: u, action: "disable" })}
                          >
                            Disable
                          </button>
                        )}
                        <button
                          type="button"
                          class="danger"
                          aria-label={`Delete ${u.username}`}
                          onClick={() => setAsking({ user: u, action: "delete" })}
                        >
                          Delete
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
            {list.length === 0 && !error ? (
              <tr>
                <td colSpan={7} class="empty">
                  No accounts match.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}

const VERB: Record<UserAction, string> = { disable: "Disable", enable: "Enable", delete: "Delete" };

/** Asks the reason for an action on an account, then does it. */
function Confirm({
  user,
  action,
  onCancel,
  onDone,
}: {
  user: UserSummary;
  action: UserAction;
  onCancel: () => void;
  onDone: (message: string, updated?: UserSummary) => void;
}) {
  const [reason, setReason] = useState("");
  const [typed, setTyped] = useState("");
  const reasonInput = useRef<HTMLInputElement>(null);
  useEffect(() => reasonInput.current?.focus(), []);
  const run = useAction(async () => {
    const request = { userId: user.id, reason: reason.trim() };
    if (action === "disable") {
      const r = await admin.disableUser(request);
      onDone(`${user.username} is disabled.`, r.user);
    } else if (action === "enable") {
      const r = await admin.enableUser(request);
      onDone(`${user.username} is enabled again.`, r.user);
    } else {
      const r = await admin.deleteUser(request);
      onDone(`${user.username} is deleted${deletedSummary(r.deleted)}.`);
    }
  });
  const title = `${VERB[action]} ${user.username}`;
  return (
    <form
      class="confirm"
      aria-label={title}
      onSubmit={(e) => {
        e.preventDefault();
        void run.run();
      }}
    >
      <h3>{title}</h3>
      <p class="hint">
        {action === "disable"
          ? "The account's tokens stop working within a moment, and it cannot sign in until enabled."
          : action === "enable"
            ? "The account can sign in and use its tokens again."
            : "The account and everything it owns in every service are deleted. This cannot be undone."}
      </p>
      <label>
        Reason (kept in the audit log)
        <input
          ref={reasonInput}
          required
          maxLength={500}
          value={reason}
          onInput={(e) => setReason(e.currentTarget.value)}
        />
      </label>
      {action === "delete" ? (
        <label>
          Type the username ({user.username}) to confirm
          <input value={typed} onInput={(e) => setTyped(e.currentTarget.value)} />
        </label>
      ) : null}
      <ErrorNote error={run.error} />
      <div class="row">
        <button
          type="submit"
          class={action === "enable" ? "" : "danger"}
          disabled={run.busy || (action === "delete" && typed !== user.username)}
        >
          {VERB[action]}
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function deletedSummary(deleted: DeletedData[]): string {
  const parts = deleted.filter((d) => d.count > 0n).map((d) => `${d.count} from ${d.service}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

/** A duration for people: "850 ms", "12.3 s", "4 min 5 s" ("—" when unset). */
function span(d: Duration | undefined): string {
  if (!d) return "—";
  const ms = durationMs(d);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Each job kind's queue, refreshed every 15 seconds. */
function Queues() {
  const [stats, setStats] = useState<GetQueueStatsResponse>();
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    const fetchStats = () =>
      admin
        .getQueueStats({}, { signal: abort.signal })
        .then((r) => {
          setStats(r);
          setError(null);
        })
        .catch((e) => abort.signal.aborted || setError(e));
    void fetchStats();
    const timer = window.setInterval(() => void fetchStats(), 15_000);
    return () => {
      window.clearInterval(timer);
      abort.abort();
    };
  }, [reload]);
  return (
    <Panel title="Queues">
      <div class="filters">
        <span class="meta" role="status">
          {stats?.readTime ? `As of ${when(stats.readTime)}` : "Loading…"}
        </span>
        <button type="button" class="secondary" onClick={() => setReload((n) => n + 1)}>
          Refresh queues
        </button>
      </div>
      <ErrorNote error={error} />
      {stats ? (
        <div class="table-wrap">
          <table aria-label="Queue statistics">
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">Queued</th>
                <th scope="col">Running</th>
                <th scope="col">Succeeded (1 h)</th>
                <th scope="col">Failed (1 h)</th>
                <th scope="col">Median run</th>
                <th scope="col">95th pct run</th>
                <th scope="col">Oldest queued</th>
              </tr>
            </thead>
            <tbody>
              {stats.queues.map((q) => (
                <tr key={q.kind}>
                  <th scope="row">
                    <code>{q.kind}</code>
                  </th>
                  <td>{q.queued.toString()}</td>
                  <td>{q.running.toString()}</td>
                  <td>{q.succeededLastHour.toString()}</td>
                  <td class={q.failedLastHour > 0n ? "error" : ""}>{q.failedLastHour.toString()}</td>
                  <td>{span(q.p50RunTime)}</td>
                  <td>{span(q.p95RunTime)}</td>
                  <td>{q.queued > 0n ? span(q.oldestQueuedAge) : "—"}</td>
                </tr>
              ))}
              {stats.queues.length === 0 ? (
                <tr>
                  <td colSpan={8} class="empty">
                    No jobs queued, running or finished in the last hour.
                  </td>
                </tr>
              ) : null}
            </tbody>
          </table>
        </div>
      ) : null}
    </Panel>
  );
}

/** Every user's jobs: a page from ListJobs, kept current by the admin WatchJobs stream. */
function LiveJobs({ onAction }: { onAction: () => void }) {
  const [state, setState] = useState<JobState>(JobState.UNSPECIFIED);
  const [kind, setKind] = useState("");
  const [owner, setOwner] = useState("");
  const { items: list, setItems: setList, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      admin
        .listJobs(
          { pageSize: 25, pageToken, state, kind: kind.trim(), ownerId: owner.trim() },
          { signal },
        )
        .then((r) => ({ items: r.jobs, next: r.nextPageToken })),
    [state, kind, owner],
    250,
  );
  const live = useLiveStream(
    (signal) => admin.watchJobs({}, { signal }),
    (change) => {
      const job = change.job;
      if (!job) return;
      setList((rows) => {
        const at = rows.findIndex((r) => r.id === job.id);
        if (at >= 0) return rows.map((r, i) => (i === at ? job : r));
        // New jobs join the first page when no owner filter hides them (jobs carry no
        // owner, so an owner-filtered page only updates the rows it has).
        const matches =
          tokens.length === 1 &&
          !owner.trim() &&
          (state === JobState.UNSPECIFIED || job.state === state) &&
          (!kind.trim() || job.kind === kind.trim());
        return matches ? [job, ...rows].slice(0, 25) : rows;
      });
    },
    [state, kind, owner, tokens],
  );

  const filter = (set: (v: string) => void) => (e: Event) => {
    set((e.currentTarget as HTMLInputElement).value);
    setTokens([""]);
  };

  return (
    <Panel title="Live jobs">
      <div class="filters">
        <label>
          State
          <select
            value={String(state)}
            onChange={(e) => {
              setState(Number(e.currentTarget.value) as JobState);
              setTokens([""]);
            }}
          >
            <option value={String(JobState.UNSPECIFIED)}>any</option>
            {STATES.map((s) => (
              <option key={s} value={String(s)}>
                {stateName(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <input placeholder="e.g. notes.translate" value={kind} onInput={filter(setKind)} />
        </label>
        <label>
          Owner id
          <input placeholder="a user id, or system" value={owner} onInput={filter(setOwner)} />
        </label>
        <span class="meta" role="status">
          {live ? "live" : "reconnecting…"}
        </span>
      </div>
      <ErrorNote error={error} />
      <div class="table-wrap">
        <table aria-label="All jobs">
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">State</th>
              <th scope="col">Progress</th>
              <th scope="col">Attempts</th>
              <th scope="col">Submitted</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((job) => (
              <AdminJobRow
                key={job.id}
                job={job}
                onChange={(j) => {
                  setList((rows) => rows.map((r) => (r.id === j.id ? j : r)));
                  onAction();
                }}
              />
            ))}
            {list.length === 0 && !error ? (
              <tr>
                <td colSpan={6} class="empty">
                  No jobs.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}

function AdminJobRow({ job, onChange }: { job: Job; onChange: (job: Job) => void }) {
  const act = useAction(async (what: "cancel" | "retry") => {
    const r =
      what === "cancel" ? await admin.cancelJob({ id: job.id }) : await admin.retryJob({ id: job.id });
    if (r.job) onChange(r.job);
  });
  const percent = job.state === JobState.SUCCEEDED ? 100 : (job.progress?.percent ?? 0);
  return (
    <tr data-job={job.id} data-state={stateName(job.state)}>
      <td>
        <code>{job.kind}</code>
        <div class="meta wrap">{job.id}</div>
      </td>
      <td>
        {stateName(job.state)}
        {job.state === JobState.FAILED && job.error ? <div class="error wrap">{job.error}</div> : null}
      </td>
      <td>
        <progress max={100} value={percent} aria-label={`${job.kind} progress`} /> {percent}%
      </td>
      <td>
        {job.attempts}/{job.maxAttempts}
      </td>
      <td>{when(job.createTime)}</td>
      <td>
        {!finished(job) ? (
          <button type="button" class="secondary" disabled={act.busy} onClick={() => void act.run("cancel")}>
            Cancel
          </button>
        ) : null}
        {job.state === JobState.FAILED || job.state === JobState.CANCELLED ? (
          <button type="button" class="secondary" disabled={act.busy} onClick={() => void act.run("retry")}>
            Retry
          </button>
        ) : null}
        <ErrorNote error={act.error} />
      </td>
    </tr>
  );
}

/** What administrators did, newest first. */
function AuditLog({ reload }: { reload: number }) {
  const { items: entries, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      admin
        .listAuditLog({ pageSize: 20, pageToken }, { signal })
        .then((r) => ({ items: r.entries, next: r.nextPageToken })),
    [reload],
  );
  return (
    <Panel title="Audit log">
      <ErrorNote error={error} />
      <div class="table-wrap">
        <table aria-label="Audit log">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.id}>
                <td>{when(e.createTime)}</td>
                <td>{e.actorUsername || e.actorId}</td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td class="wrap">{e.target}</td>
                <td class="wrap">{e.detail}</td>
              </tr>
            ))}
            {entries.length === 0 && !error ? (
              <tr>
                <td colSpan={5} class="empty">
                  Nothing yet.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}
