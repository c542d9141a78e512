// The user's jobs, live: the newest page from ListJobs, kept current by the WatchJobs stream;
// cancel what runs, retry what failed.

import { useState } from "preact/hooks";
import { JobState, type Job } from "../../../src/gen/aimesh/jobs/v1/jobs_pb.js";
import {
  ErrorNote,
  Pager,
  Panel,
  finished,
  jobs,
  stateName,
  useAction,
  useLiveStream,
  usePaged,
  when,
} from "../ui.js";

const STATES = [
  JobState.QUEUED,
  JobState.RUNNING,
  JobState.SUCCEEDED,
  JobState.FAILED,
  JobState.CANCELLED,
];

export function Jobs() {
  const [state, setState] = useState<JobState>(JobState.UNSPECIFIED);
  const { items: list, setItems: setList, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      jobs
        .listJobs({ pageSize: 25, pageToken, state }, { signal })
        .then((r) => ({ items: r.jobs, next: r.nextPageToken })),
    [state],
  );
  // Changes to any of the user's jobs: update the row, or add a new job on the first page.
  const live = useLiveStream(
    (signal) => jobs.watchJobs({}, { signal }),
    (change) => {
      const job = change.job;
      if (!job) return;
      setList((rows) => {
        const at = rows.findIndex((r) => r.id === job.id);
        if (at >= 0) return rows.map((r, i) => (i === at ? job : r));
        const firstPage = tokens.length === 1;
        const matches = state === JobState.UNSPECIFIED || job.state === state;
        return firstPage && matches ? [job, ...rows].slice(0, 25) : rows;
      });
    },
    [state, tokens],
  );

  return (
    <Panel title="Your jobs">
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
        <span class="meta" role="status">
          {live ? "live" : "reconnecting…"}
        </span>
      </div>
      <ErrorNote error={error} />
      <div class="table-wrap">
        <table aria-label="Jobs">
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">State</th>
              <th scope="col">Progress</th>
              <th scope="col">Submitted</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((job) => (
              <JobRow key={job.id} job={job} onChange={(j) => setList((rows) => rows.map((r) => (r.id === j.id ? j : r)))} />
            ))}
            {list.length === 0 && !error ? (
              <tr>
                <td colSpan={5} class="empty">
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

function JobRow({ job, onChange }: { job: Job; onChange: (job: Job) => void }) {
  const act = useAction(async (what: "cancel" | "retry") => {
    const r = what === "cancel" ? await jobs.cancelJob({ id: job.id }) : await jobs.retryJob({ id: job.id });
    if (r.job) onChange(r.job);
  });
  const percent = job.state === JobState.SUCCEEDED ? 100 : (job.progress?.percent ?? 0);
  return (
    <tr data-job={job.id} data-state={stateName(job.state)}>
      <td>
        <code>{job.kind}</code>
      </td>
      <td>
        {stateName(job.state)}
        {job.state === JobState.FAILED && job.error ? <div class="error">{job.error}</div> : null}
      </td>
      <td>
        <progress max={100} value={percent} aria-label={`${job.kind} progress`} /> {percent}%
        {job.progress?.message && !finished(job) ? <div class="meta">{job.progress.message}</div> : null}
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
