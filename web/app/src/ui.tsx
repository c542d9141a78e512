// Pieces every screen uses: error sentences, a job's live progress (WatchJob), pagination,
// formatting.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { JobsService, JobState, type Job } from "../../src/gen/aimesh/jobs/v1/jobs_pb.js";
import { client, describe, millis } from "./api.js";

export const jobs = client(JobsService);

/** Whether a job has reached a state it does not leave by itself. */
export function finished(job: Job | undefined): boolean {
  return (
    job?.state === JobState.SUCCEEDED ||
    job?.state === JobState.FAILED ||
    job?.state === JobState.CANCELLED
  );
}

/** A job state as a word. */
export function stateName(state: JobState): string {
  return (JobState[state] ?? "UNKNOWN").toLowerCase();
}

/** An error shown as a sentence, announced to screen readers. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {describe(error)}
    </p>
  );
}

/**
 * The latest state of job `id`, streamed by WatchJob (re-subscribing after a dropped stream);
 * `onFinish` is called once when it reaches a terminal state.
 */
export function useJob(id: string | undefined, onFinish?: (job: Job) => void): Job | undefined {
  const [job, setJob] = useState<Job>();
  const finishRef = useRef(onFinish);
  finishRef.current = onFinish;
  useEffect(() => {
    setJob(undefined);
    if (!id) return;
    const abort = new AbortController();
    void (async () => {
      for (let attempt = 0; !abort.signal.aborted && attempt < 20; attempt++) {
        try {
          for await (const update of jobs.watchJob({ id }, { signal: abort.signal })) {
            if (!update.job) continue;
            setJob(update.job);
            if (finished(update.job)) {
              finishRef.current?.(update.job);
              return;
            }
          }
        } catch (error) {
          if (abort.signal.aborted) return;
          if (error instanceof ConnectError && error.code !== Code.Unavailable) {
            if (error.code !== Code.DeadlineExceeded) return;
          }
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 5_000)));
      }
    })();
    return () => abort.abort();
  }, [id]);
  return job;
}

/** A job's progress bar with its stage; the failure reason when it failed. */
export function JobProgress({ job, label }: { job: Job | undefined; label: string }) {
  if (!job) {
    return (
      <div class="job">
        <label>
          {label}
          <progress aria-label={label} />
        </label>
      </div>
    );
  }
  const percent =
    job.state === JobState.SUCCEEDED ? 100 : Math.max(0, Math.min(100, job.progress?.percent ?? 0));
  return (
    <div class="job" data-state={stateName(job.state)}>
      <label>
        {label}
        <progress aria-label={label} max={100} value={percent} />
      </label>
      <span class="job-state">
        {stateName(job.state)} · {percent}%
        {job.progress?.message && !finished(job) ? ` · ${job.progress.message}` : ""}
      </span>
      {job.state === JobState.FAILED && job.error ? (
        <p class="error" role="alert">
          {job.error}
        </p>
      ) : null}
    </div>
  );
}

/** Next/previous page buttons over page tokens. */
export function Pager({
  tokens,
  next,
  onPage,
}: {
  /** The tokens of the pages before this one (the first is ""). */
  tokens: string[];
  next: string;
  onPage: (tokens: string[]) => void;
}) {
  if (tokens.length <= 1 && !next) return null;
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled={tokens.length <= 1} onClick={() => onPage(tokens.slice(0, -1))}>
        Previous
      </button>
      <span>Page {tokens.length}</span>
      <button type="button" disabled={!next} onClick={() => onPage([...tokens, next])}>
        Next
      </button>
    </nav>
  );
}

/** A timestamp in the reader's locale ("" when unset). */
export function when(ts: Timestamp | undefined): string {
  const ms = millis(ts);
  return ms ? new Date(ms).toLocaleString() : "";
}

/** A byte count for people. */
export function bytes(n: bigint | number): string {
  let value = Number(n);
  for (const unit of ["B", "KiB", "MiB", "GiB"]) {
    if (value < 1024 || unit === "GiB") {
      return unit === "B" ? `${value} B` : `${value.toFixed(1)} ${unit}`;
    }
    value /= 1024;
  }
  return `${value} B`;
}

/** A titled section of a screen. */
export function Panel({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section class="panel" aria-label={title}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

/**
 * Runs `action` from a form or button, keeping its error and whether it runs; the error is
 * cleared when it is run again.
 */
export function useAction<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): { run: (...args: A) => Promise<void>; busy: boolean; error: unknown; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return {
    busy,
    error,
    clear: () => setError(null),
    run: async (...args: A) => {
      setBusy(true);
      setError(null);
      try {
        await action(...args);
      } catch (e) {
        setError(e);
      } finally {
        setBusy(false);
      }
    },
  };
}

/** One page of a list RPC's answer: its rows and the next page's token ("" on the last). */
export interface Page<T> {
  items: T[];
  next: string;
}

/**
 * A paged list: `load` fetches the page at `pageToken` (aborted through `signal` when superseded
 * or unmounted). It runs again when `deps` (the filters, a reload count from a parent), the page
 * or `reload()` change, after `debounceMs` when given (typing in a search field). Going back to
 * the first page when a filter changes is the caller's (`setTokens([""])`), as is keeping `items`
 * current between loads (`setItems`, from live updates). `loaded` turns true with the first
 * answer; `error` is the last load's failure, cleared by the next success.
 */
export function usePaged<T>(
  load: (pageToken: string, signal: AbortSignal) => Promise<Page<T>>,
  deps: unknown[],
  debounceMs = 0,
) {
  const [tokens, setTokens] = useState<string[]>([""]);
  const [items, setItems] = useState<T[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [next, setNext] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [count, setCount] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const abort = new AbortController();
    const run = () =>
      loadRef
        .current(tokens[tokens.length - 1], abort.signal)
        .then((page) => {
          setItems(page.items);
          setNext(page.next);
          setError(null);
          setLoaded(true);
        })
        .catch((e) => abort.signal.aborted || setError(e));
    if (!debounceMs) {
      void run();
      return () => abort.abort();
    }
    const timer = setTimeout(run, debounceMs);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [...deps, tokens, count]);

  return {
    items,
    setItems,
    loaded,
    next,
    error,
    tokens,
    setTokens,
    /** Loads the current page again. */
    reload: () => setCount((n) => n + 1),
  };
}

/**
 * Keeps a server stream open while `deps` hold and `enabled` is true: `open(signal)` starts it,
 * `onMessage` takes each message, and a stream that drops (a restart, the network) is opened
 * again after 2 s. Returns whether it is open now (for a "live" indicator).
 */
export function useLiveStream<M>(
  open: (signal: AbortSignal) => AsyncIterable<M>,
  onMessage: (message: M) => void,
  deps: unknown[],
  enabled = true,
): boolean {
  const [live, setLive] = useState(false);
  useEffect(() => {
    if (!enabled) return;
    const abort = new AbortController();
    void (async () => {
      while (!abort.signal.aborted) {
        try {
          setLive(true);
          for await (const message of open(abort.signal)) onMessage(message);
        } catch {
          // Dropped, or ended by the server (ABORTED for falling behind): open it again shortly.
        }
        setLive(false);
        if (abort.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 2_000));
      }
    })();
    return () => abort.abort();
  }, [...deps, enabled]);
  return live;
}
