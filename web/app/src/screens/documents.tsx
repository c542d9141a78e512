// Documents: a resumable upload (start, chunks at offsets, finish, resuming from the stored
// offset after a failed chunk) with a progress bar, the paged list, a document's processing
// stages live (WatchJob), its text and study notes, the original through a signed URL, AI tasks
// with their live status and results, semantic search, and quizzes taken in the page.

import { useEffect, useRef, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  DocumentStatus,
  ProcessingService,
  type Document,
  type SearchDocumentsResponse,
} from "../../../src/gen/aimesh/processing/v1/processing_pb.js";
import {
  TaskService,
  TaskStatus,
  TaskType,
  type Task,
  type TaskResult,
} from "../../../src/gen/aimesh/processing/v1/tasks_pb.js";
import {
  Difficulty,
  QuestionType,
  QuizService,
  QuizStatus,
  QuizType,
  type Quiz,
  type QuizStats,
  type QuizSubmission,
} from "../../../src/gen/aimesh/processing/v1/quizzes_pb.js";
import { JobState, type Job } from "../../../src/gen/aimesh/jobs/v1/jobs_pb.js";
import { client, millis, sameOrigin } from "../api.js";
import { ErrorNote, JobProgress, Pager, Panel, bytes, useAction, useJob, usePaged, when } from "../ui.js";
import type { ScreenProps } from "./index.js";

const processing = client(ProcessingService);
const tasks = client(TaskService);
const quizzes = client(QuizService);

/** Bytes sent per AppendUpload call (the server takes up to 4 MiB, the edge a little over 2). */
const CHUNK_BYTES = 1024 * 1024;
/** Failed chunks retried in a row before the upload gives up. */
const CHUNK_RETRIES = 5;

export function Documents({ arg }: ScreenProps) {
  const [reload, setReload] = useState(0);
  const refresh = () => setReload((n) => n + 1);
  return (
    <div class={`split documents${arg ? " has-doc" : ""}`}>
      <div>
        <UploadPanel
          onUploaded={(doc) => {
            refresh();
            window.location.hash = `#/documents/${doc.id}`;
          }}
        />
        <DocumentList selected={arg} reload={reload} />
        <SearchPanel />
      </div>
      <div>
        {arg ? (
          <DocumentView key={arg} id={arg} onChange={refresh} />
        ) : (
          <p class="hint">Upload a document, or choose one to see its text, run tasks and take a quiz.</p>
        )}
      </div>
    </div>
  );
}

/**
 * Reads a resource again until `done` says it has caught up with its finished job (the record
 * may be written a moment after the job's last state), at most a few times.
 */
async function settle<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let attempt = 0; attempt < 10 && !done(value); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    value = await read();
  }
  return value;
}

/** "1 passage", "3 passages". */
function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** A document status as a word. */
function statusName(status: DocumentStatus): string {
  return (DocumentStatus[status] ?? "UNKNOWN").toLowerCase();
}

/** Whether an error is worth retrying a chunk after (the network, a lost answer). */
function transient(error: unknown): boolean {
  if (!(error instanceof ConnectError)) return true;
  return [
    Code.Unavailable,
    Code.DeadlineExceeded,
    Code.Aborted,
    Code.Unknown,
    Code.Internal,
    Code.FailedPrecondition,
    Code.Canceled,
  ].includes(error.code);
}

/**
 * Sends `file` with the resumable upload RPCs: CreateUpload, AppendUpload chunks at the stored
 * offset, FinishUpload. After a failed chunk it asks the server (GetUpload) for the offset it
 * stored and resumes from there.
 */
async function uploadFile(
  file: File,
  generateNotes: boolean,
  onProgress: (sent: number) => void,
) {
  const created = await processing.createUpload({
    filename: file.name,
    sizeBytes: BigInt(file.size),
    contentType: file.type,
    generateNotes,
  });
  const uploadId = created.upload!.id;
  let offset = Number(created.upload!.offset);
  let failures = 0;
  onProgress(offset);
  while (offset < file.size) {
    const end = Math.min(offset + CHUNK_BYTES, file.size);
    const data = new Uint8Array(await file.slice(offset, end).arrayBuffer());
    try {
      const r = await processing.appendUpload({ uploadId, offset: BigInt(offset), data });
      offset = Number(r.upload!.offset);
      failures = 0;
    } catch (error) {
      if (!transient(error) || ++failures > CHUNK_RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, 300 * 2 ** failures));
      // Where the server stands: the chunk may have been stored even though its answer was lost.
      const stored = await processing.getUpload({ uploadId });
      offset = Number(stored.upload!.offset);
    }
    onProgress(offset);
  }
  return processing.finishUpload({ uploadId });
}

/** The drop zone and file input, the upload's progress and the server's refusal. */
function UploadPanel({ onUploaded }: { onUploaded: (doc: Document) => void }) {
  const [file, setFile] = useState<File>();
  const [sent, setSent] = useState(0);
  const [over, setOver] = useState(false);
  const [notes, setNotes] = useState(true);
  const [message, setMessage] = useState("");
  const input = useRef<HTMLInputElement>(null);
  const upload = useAction(async (chosen: File) => {
    setFile(chosen);
    setSent(0);
    setMessage("");
    const r = await uploadFile(chosen, notes, setSent);
    if (input.current) input.current.value = "";
    setMessage(
      r.duplicate
        ? `You already have this file, as “${r.document?.filename}”: nothing new was stored.`
        : `“${chosen.name}” is uploaded and being processed.`,
    );
    if (r.document) onUploaded(r.document);
  });
  const take = (files: FileList | null | undefined) => {
    const chosen = files?.[0];
    if (chosen && !upload.busy) void upload.run(chosen);
  };
  return (
    <Panel title="Upload">
      <div
        class={`dropzone${over ? " over" : ""}`}
        role="group"
        aria-label="Drop a file to upload"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          take(e.dataTransfer?.files);
        }}
      >
        <p>Drop a file here (PDF, Word, text, Markdown, HTML, PNG or JPEG), or</p>
        <label>
          Choose a file to upload
          <input
            ref={input}
            type="file"
            disabled={upload.busy}
            onChange={(e) => take(e.currentTarget.files)}
          />
        </label>
      </div>
      <label class="check">
        <input type="checkbox" checked={notes} onChange={(e) => setNotes(e.currentTarget.checked)} />
        Write study notes while processing
      </label>
      {file ? (
        <div class="job">
          <label>
            Upload of {file.name}
            <progress aria-label="Upload" max={Math.max(file.size, 1)} value={Math.min(sent, file.size)} />
          </label>
          <span class="job-state" role="status">
            {bytes(Math.min(sent, file.size))} of {bytes(file.size)}
            {upload.busy ? "" : upload.error ? " · failed" : " · done"}
          </span>
        </div>
      ) : null}
      <ErrorNote error={upload.error} />
      {message ? (
        <p class="hint" role="status">
          {message}
        </p>
      ) : null}
    </Panel>
  );
}

/** The user's documents, newest first, a page at a time. */
function DocumentList({ selected, reload }: { selected: string; reload: number }) {
  const [status, setStatus] = useState<DocumentStatus>(DocumentStatus.UNSPECIFIED);
  const { items: list, next, error, tokens, setTokens, reload: look } = usePaged(
    (pageToken, signal) =>
      processing
        .listDocuments({ pageSize: 10, pageToken, status }, { signal })
        .then((r) => ({ items: r.documents, next: r.nextPageToken })),
    [status, reload],
  );

  // While a listed document is still being processed, look again every few seconds.
  const busy = list.some(
    (d) => d.status === DocumentStatus.PENDING || d.status === DocumentStatus.PROCESSING,
  );
  useEffect(() => {
    if (!busy) return;
    const timer = setTimeout(look, 4_000);
    return () => clearTimeout(timer);
  }, [busy, list]);

  return (
    <Panel title="Your documents">
      <div class="filters">
        <label>
          Status
          <select
            value={String(status)}
            onChange={(e) => {
              setStatus(Number(e.currentTarget.value) as DocumentStatus);
              setTokens([""]);
            }}
          >
            <option value={String(DocumentStatus.UNSPECIFIED)}>any</option>
            {[DocumentStatus.PENDING, DocumentStatus.PROCESSING, DocumentStatus.READY, DocumentStatus.FAILED].map(
              (s) => (
                <option key={s} value={String(s)}>
                  {statusName(s)}
                </option>
              ),
            )}
          </select>
        </label>
      </div>
      <ErrorNote error={error} />
      <ul class="list" aria-label="Documents">
        {list.map((doc) => (
          <li key={doc.id} data-status={statusName(doc.status)}>
            <a href={`#/documents/${doc.id}`} aria-current={doc.id === selected ? "true" : undefined}>
              <strong class="filename">{doc.filename}</strong>
              <span class="meta">
                {statusName(doc.status)} · {bytes(doc.sizeBytes)}
                {doc.format ? ` · ${doc.format}` : ""} · {when(doc.createTime)}
              </span>
            </a>
          </li>
        ))}
        {list.length === 0 && !error ? <li class="empty">No documents yet.</li> : null}
      </ul>
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}

/** Semantic search over the user's READY documents. */
function SearchPanel() {
  const [query, setQuery] = useState("");
  const [result, setResult] = useState<SearchDocumentsResponse>();
  const search = useAction(async () => {
    setResult(await processing.searchDocuments({ query: query.trim(), k: 5 }));
  });
  return (
    <Panel title="Search your documents">
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void search.run();
        }}
      >
        <label class="grow">
          Find passages about
          <input type="search" required maxLength={1000} value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={search.busy}>
          Search
        </button>
      </form>
      <ErrorNote error={search.error} />
      {result ? (
        <>
          <ol class="hits" aria-label="Passages">
            {result.hits.map((hit, i) => (
              <li key={`${hit.documentId}-${hit.page}-${hit.charStart}-${i}`}>
                <a href={`#/documents/${hit.documentId}`}>{hit.filename}</a>
                <span class="meta">
                  {" "}
                  · page {hit.page} · similarity {hit.score.toFixed(2)}
                </span>
                <blockquote class="text">{hit.passage}</blockquote>
              </li>
            ))}
          </ol>
          <p class="meta" role="status">
            {result.hits.length === 0
              ? "No passages found: only processed documents are searched."
              : `${plural(result.hits.length, "passage")}, ranked by ${result.engine}.`}
          </p>
        </>
      ) : null}
    </Panel>
  );
}

/** One document: its processing, text, notes, original, tasks and quizzes. */
function DocumentView({ id, onChange }: { id: string; onChange: () => void }) {
  const [doc, setDoc] = useState<Document>();
  const [error, setError] = useState<unknown>(null);
  const [jobId, setJobId] = useState<string>();
  const load = (afterJob = false) =>
    settle(
      () => processing.getDocument({ id }),
      (r) => !afterJob || r.document?.status === DocumentStatus.READY || r.document?.status === DocumentStatus.FAILED,
    )
      .then((r) => {
        setDoc(r.document);
        setError(null);
      })
      .catch(setError);
  useEffect(() => void load(), [id]);

  const processed = doc?.status === DocumentStatus.READY || doc?.status === DocumentStatus.FAILED;
  // The last processing job, live while it runs (its final state once it has finished).
  const watching = jobId ?? doc?.jobId;
  const job = useJob(watching || undefined, () => {
    if (processed && !jobId) return;
    void load(true).then(onChange);
  });

  const remove = useAction(async () => {
    if (!doc) return;
    await processing.deleteDocument({ id: doc.id });
    onChange();
    window.location.hash = "#/documents";
  });
  const reprocess = useAction(async () => {
    if (!doc) return;
    const r = await processing.reprocessDocument({ id: doc.id });
    if (r.document) setDoc(r.document);
    setJobId(r.job?.id);
    onChange();
  });

  if (error) return <ErrorNote error={error} />;
  if (!doc) return <p aria-busy="true">Loading…</p>;
  const ready = doc.status === DocumentStatus.READY;
  return (
    <>
      <Panel title={doc.filename}>
        <dl class="facts">
          <dt>Status</dt>
          <dd data-testid="document-status">{statusName(doc.status)}</dd>
          <dt>Size</dt>
          <dd>{bytes(doc.sizeBytes)}</dd>
          <dt>Type</dt>
          <dd>
            {doc.format || "not sniffed yet"}
            {doc.contentType ? ` (${doc.contentType})` : ""}
          </dd>
          {ready ? (
            <>
              <dt>Pages</dt>
              <dd>{doc.pageCount}</dd>
              <dt>Passages</dt>
              <dd>{doc.chunkCount} searchable</dd>
            </>
          ) : null}
          <dt>Uploaded</dt>
          <dd>{when(doc.createTime)}</dd>
          <dt>SHA-256</dt>
          <dd class="hash">
            <code>{doc.sha256}</code>
          </dd>
        </dl>
        {watching ? <JobProgress job={job} label="Processing" /> : null}
        {doc.status === DocumentStatus.FAILED && doc.failureReason && !job ? (
          <p class="error" role="alert">
            {doc.failureReason}
          </p>
        ) : null}
        <Original doc={doc} />
        <ErrorNote error={remove.error ?? reprocess.error} />
        <div class="row">
          <button
            type="button"
            class="secondary"
            disabled={reprocess.busy || !processed}
            onClick={() => void reprocess.run()}
          >
            Process again
          </button>
          <button
            type="button"
            class="danger"
            disabled={remove.busy}
            onClick={() => window.confirm(`Delete “${doc.filename}”?`) && void remove.run()}
          >
            Delete
          </button>
        </div>
      </Panel>
      {ready ? (
        <>
          {doc.notes ? <StudyNotesPanel doc={doc} /> : null}
          <Panel title="Text">
            <div class="text doc-text" tabIndex={0} role="region" aria-label="Extracted text">
              {doc.text || "No text was found in this document."}
            </div>
          </Panel>
          <TasksPanel doc={doc} />
          <QuizPanel doc={doc} />
        </>
      ) : (
        <p class="hint">Its text, tasks and quizzes are here once it is processed.</p>
      )}
    </>
  );
}

/** Links to the original file through a signed URL (fetched again once it expires). */
function Original({ doc }: { doc: Document }) {
  const [url, setUrl] = useState<{ href: string; expires: number }>();
  const [error, setError] = useState<unknown>(null);
  const fetchUrl = async () => {
    const r = await processing.getDocumentUrl({ id: doc.id });
    const fresh = { href: sameOrigin(r.url), expires: millis(r.expireTime) };
    setUrl(fresh);
    return fresh;
  };
  useEffect(() => {
    fetchUrl().catch(setError);
  }, [doc.id]);
  if (error) return <ErrorNote error={error} />;
  if (!url) return null;
  // An expired link is signed again before it is followed.
  const follow = (download: boolean) => (e: MouseEvent) => {
    if (url.expires && url.expires - Date.now() > 5_000) return;
    e.preventDefault();
    fetchUrl()
      .then((fresh) => {
        if (download) {
          const a = document.createElement("a");
          a.href = fresh.href;
          a.download = doc.filename;
          a.click();
        } else {
          window.open(fresh.href, "_blank", "noopener");
        }
      })
      .catch(setError);
  };
  return (
    <p class="row">
      <a class="button secondary" href={url.href} target="_blank" rel="noopener" onClick={follow(false)}>
        Open original
      </a>
      <a class="button secondary" href={url.href} download={doc.filename} onClick={follow(true)}>
        Download
      </a>
    </p>
  );
}

function StudyNotesPanel({ doc }: { doc: Document }) {
  const notes = doc.notes!;
  return (
    <Panel title="Study notes">
      {notes.overview.length ? (
        <>
          <h3>Overview</h3>
          <ul>
            {notes.overview.map((s, i) => (
              <li key={i}>{s}</li>
            ))}
          </ul>
        </>
      ) : null}
      {notes.sections.map((section, i) => (
        <section key={i} class="notes-section" aria-label={section.heading}>
          <h3>{section.heading}</h3>
          <ul>
            {section.keyPoints.map((p, j) => (
              <li key={j}>{p}</li>
            ))}
          </ul>
          {section.keyTerms.length ? <p class="meta">Key terms: {section.keyTerms.join(", ")}</p> : null}
        </section>
      ))}
      {notes.keyTerms.length ? (
        <p>
          <strong>Key terms:</strong> {notes.keyTerms.join(", ")}
        </p>
      ) : null}
      <p class="meta">Written by {notes.engine}.</p>
    </Panel>
  );
}

const TASK_TYPES: { type: TaskType; name: string }[] = [
  { type: TaskType.SUMMARIZE, name: "Summary" },
  { type: TaskType.KEYWORDS, name: "Key phrases" },
  { type: TaskType.SENTIMENT, name: "Sentiment" },
  { type: TaskType.TRANSLATE, name: "Translation" },
  { type: TaskType.QA, name: "Questions and answers" },
];

function taskName(type: TaskType): string {
  return TASK_TYPES.find((t) => t.type === type)?.name ?? "Task";
}

function taskStatusName(status: TaskStatus): string {
  return (TaskStatus[status] ?? "UNKNOWN").toLowerCase();
}

/** Runs AI tasks on the document; lists its tasks with their live status and results. */
function TasksPanel({ doc }: { doc: Document }) {
  const [type, setType] = useState<TaskType>(TaskType.SUMMARIZE);
  const [target, setTarget] = useState("es");
  const { items: list, setItems: setList, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      tasks
        .listTasks({ documentId: doc.id, pageSize: 10, pageToken }, { signal })
        .then((r) => ({ items: r.tasks, next: r.nextPageToken })),
    [doc.id],
  );

  const submit = useAction(async () => {
    const r = await tasks.submitTask({
      source: { kind: { case: "documentId", value: doc.id } },
      type,
      translate: type === TaskType.TRANSLATE ? { targetLanguage: target.trim() } : undefined,
    });
    const task = r.task;
    if (task) {
      setTokens([""]);
      setList((rows) => [task, ...rows.filter((t) => t.id !== task.id)]);
    }
  });

  return (
    <Panel title="Tasks">
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void submit.run();
        }}
      >
        <label>
          Task
          <select value={String(type)} onChange={(e) => setType(Number(e.currentTarget.value) as TaskType)}>
            {TASK_TYPES.map((t) => (
              <option key={t.type} value={String(t.type)}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        {type === TaskType.TRANSLATE ? (
          <label>
            Into (BCP-47)
            <input required size={6} value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
          </label>
        ) : null}
        <button type="submit" disabled={submit.busy}>
          Run task
        </button>
      </form>
      <ErrorNote error={submit.error} />
      <ErrorNote error={error} />
      <ul class="tasks" aria-label="Tasks on this document">
        {list.map((task) => (
          <TaskItem
            key={task.id}
            task={task}
            onChange={(t) => setList((rows) => rows.map((r) => (r.id === t.id ? t : r)))}
          />
        ))}
        {list.length === 0 && !error ? <li class="empty">No tasks yet.</li> : null}
      </ul>
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}

function taskDone(task: Task): boolean {
  return (
    task.status === TaskStatus.SUCCEEDED ||
    task.status === TaskStatus.FAILED ||
    task.status === TaskStatus.CANCELLED
  );
}

/** One task: its job's progress while it runs, then its result or why it failed. */
function TaskItem({ task, onChange }: { task: Task; onChange: (task: Task) => void }) {
  const [error, setError] = useState<unknown>(null);
  const job = useJob(taskDone(task) ? undefined : task.jobId, () => {
    settle(
      () => tasks.getTask({ id: task.id }),
      (r) => !r.task || taskDone(r.task),
    )
      .then((r) => r.task && onChange(r.task))
      .catch(setError);
  });
  const name = taskName(task.type);
  const label =
    task.type === TaskType.TRANSLATE && task.translate?.targetLanguage
      ? `${name} into ${task.translate.targetLanguage}`
      : name;
  return (
    <li>
      <article class="task" aria-label={`${label} task`} data-status={taskStatusName(task.status)}>
        <h3>
          {label} <span class="meta">· {taskStatusName(task.status)} · {when(task.createTime)}</span>
        </h3>
        {!taskDone(task) ? <JobProgress job={job} label={`${label} progress`} /> : null}
        {task.status === TaskStatus.FAILED || task.status === TaskStatus.CANCELLED ? (
          <p class="error">{task.failureReason || `The task was ${taskStatusName(task.status)}.`}</p>
        ) : null}
        <ErrorNote error={error} />
        {task.result ? <TaskResultView result={task.result} /> : null}
      </article>
    </li>
  );
}

function TaskResultView({ result }: { result: TaskResult }) {
  const kind = result.kind;
  let body;
  switch (kind.case) {
    case "summary":
      body = (
        <>
          <p class="text">{kind.value.text}</p>
          <p class="meta">
            {kind.value.sentences.length} of {kind.value.totalSentences} sentences
          </p>
        </>
      );
      break;
    case "keywords":
      body = (
        <ol class="keywords" aria-label="Key phrases">
          {kind.value.keywords.map((k) => (
            <li key={k.rank}>
              {k.phrase} <span class="meta">({k.score.toFixed(2)})</span>
            </li>
          ))}
        </ol>
      );
      break;
    case "sentiment": {
      const overall = kind.value.overall;
      body = (
        <>
          {overall ? (
            <p>
              Overall: <strong>{overall.label}</strong>{" "}
              <span class="meta">
                (confidence {Math.round(overall.confidence * 100)}%, score {overall.score.toFixed(2)})
              </span>
            </p>
          ) : null}
          {kind.value.sections.length ? (
            <ul aria-label="Sentiment by section">
              {kind.value.sections.map((s) => (
                <li key={s.index}>
                  {s.title}: {s.sentiment?.label}{" "}
                  <span class="meta">({s.sentiment ? Math.round(s.sentiment.confidence * 100) : 0}%)</span>
                </li>
              ))}
            </ul>
          ) : null}
        </>
      );
      break;
    }
    case "translation":
      body = (
        <>
          <p class="meta">
            {kind.value.sourceLanguage}
            {kind.value.sourceDetected ? " (detected)" : ""} → {kind.value.targetLanguage}
          </p>
          <div class="text" lang={kind.value.targetLanguage}>
            {kind.value.text}
          </div>
        </>
      );
      break;
    case "qa":
      body = (
        <dl class="qa">
          {kind.value.pairs.map((pair, i) => (
            <div key={i}>
              <dt>{pair.question}</dt>
              <dd>
                {pair.answer}
                {pair.passage ? <blockquote class="meta">{pair.passage.text}</blockquote> : null}
                {pair.followUps.length ? <p class="meta">Ask next: {pair.followUps.join(" · ")}</p> : null}
              </dd>
            </div>
          ))}
        </dl>
      );
      break;
    default:
      body = <p class="meta">No result.</p>;
  }
  return (
    <div class="result">
      {body}
      <p class="meta">By {result.engine}.</p>
    </div>
  );
}

const QUIZ_TYPES: { type: QuizType; name: string }[] = [
  { type: QuizType.MULTIPLE_CHOICE, name: "Multiple choice" },
  { type: QuizType.TRUE_FALSE, name: "True or false" },
  { type: QuizType.SHORT_ANSWER, name: "Short answer" },
  { type: QuizType.MIXED, name: "Mixed" },
];

const DIFFICULTIES: { value: Difficulty; name: string }[] = [
  { value: Difficulty.EASY, name: "Easy" },
  { value: Difficulty.MEDIUM, name: "Medium" },
  { value: Difficulty.HARD, name: "Hard" },
];

/** Generates a quiz on the document, takes it, shows the grade and the score history. */
function QuizPanel({ doc }: { doc: Document }) {
  const [count, setCount] = useState(5);
  const [quizType, setQuizType] = useState<QuizType>(QuizType.MULTIPLE_CHOICE);
  const [difficulty, setDifficulty] = useState<Difficulty>(Difficulty.MEDIUM);
  const [quiz, setQuiz] = useState<Quiz>();
  const [jobId, setJobId] = useState<string>();
  const [loadError, setLoadError] = useState<unknown>(null);
  const [stats, setStats] = useState<QuizStats>();
  const [graded, setGraded] = useState(0);

  useEffect(() => {
    quizzes
      .listQuizHistory({ documentId: doc.id, pageSize: 1 })
      .then((r) => setStats(r.stats))
      .catch(() => undefined);
  }, [doc.id, graded]);

  const job = useJob(jobId, (finished: Job) => {
    if (!quiz) return;
    settle(
      () => quizzes.getQuiz({ id: quiz.id }),
      (r) => r.quiz?.status !== QuizStatus.PENDING,
    )
      .then((r) => setQuiz(r.quiz))
      .catch(setLoadError);
    if (finished.state !== JobState.SUCCEEDED) setJobId(undefined);
  });

  const generate = useAction(async () => {
    setLoadError(null);
    const r = await quizzes.generateQuiz({
      documentId: doc.id,
      numQuestions: count,
      quizType,
      difficulty,
    });
    setQuiz(r.quiz);
    setJobId(r.job?.id);
  });

  return (
    <Panel title="Quiz">
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void generate.run();
        }}
      >
        <label>
          Questions
          <input
            type="number"
            min={1}
            max={20}
            required
            value={count}
            onInput={(e) => setCount(Number(e.currentTarget.value))}
          />
        </label>
        <label>
          Kind
          <select value={String(quizType)} onChange={(e) => setQuizType(Number(e.currentTarget.value) as QuizType)}>
            {QUIZ_TYPES.map((t) => (
              <option key={t.type} value={String(t.type)}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Difficulty
          <select
            value={String(difficulty)}
            onChange={(e) => setDifficulty(Number(e.currentTarget.value) as Difficulty)}
          >
            {DIFFICULTIES.map((d) => (
              <option key={d.value} value={String(d.value)}>
                {d.name}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={generate.busy || quiz?.status === QuizStatus.PENDING}>
          Generate quiz
        </button>
      </form>
      <ErrorNote error={generate.error ?? loadError} />
      {quiz?.status === QuizStatus.PENDING ? <JobProgress job={job} label="Quiz generation" /> : null}
      {quiz?.status === QuizStatus.FAILED ? (
        <p class="error" role="alert">
          {quiz.failureReason || "The quiz could not be generated."}
        </p>
      ) : null}
      {quiz?.status === QuizStatus.READY ? (
        <TakeQuiz key={quiz.id} quiz={quiz} onGraded={() => setGraded((n) => n + 1)} />
      ) : null}
      {stats && stats.submissions > 0 ? (
        <p class="meta" data-testid="quiz-stats">
          On this document: {plural(stats.submissions, "submission")} over {plural(stats.quizzes, "quiz", "quizzes")}, average{" "}
          {Math.round(stats.averageScore)}%, best {Math.round(stats.bestScore)}%, last{" "}
          {Math.round(stats.lastScore)}%.
        </p>
      ) : null}
    </Panel>
  );
}

/** A READY quiz as a form; once submitted, its grade question by question. */
function TakeQuiz({ quiz, onGraded }: { quiz: Quiz; onGraded: () => void }) {
  const [answers, setAnswers] = useState<Record<string, string>>({});
  const [submission, setSubmission] = useState<QuizSubmission>();
  const submit = useAction(async () => {
    const r = await quizzes.submitQuiz({ id: quiz.id, answers });
    setSubmission(r.submission);
    onGraded();
  });
  const answer = (id: string, value: string) => setAnswers((a) => ({ ...a, [id]: value }));
  if (quiz.questions.length === 0) {
    return <p class="hint">The document has too few usable sentences for a quiz.</p>;
  }
  const results = new Map(submission?.results.map((r) => [r.questionId, r]));
  return (
    <form
      class="quiz"
      aria-label="Quiz questions"
      onSubmit={(e) => {
        e.preventDefault();
        void submit.run();
      }}
    >
      <p class="meta">
        {plural(quiz.questions.length, "question")} by {quiz.engine}
      </p>
      <ol>
        {quiz.questions.map((q, i) => {
          const result = results.get(q.id);
          return (
            <li key={q.id}>
              {q.type === QuestionType.SHORT_ANSWER ? (
                <label>
                  <span>
                    {i + 1}. {q.prompt}
                  </span>
                  <input
                    maxLength={1000}
                    value={answers[q.id] ?? ""}
                    onInput={(e) => answer(q.id, e.currentTarget.value)}
                  />
                </label>
              ) : (
                <fieldset>
                  <legend>
                    {i + 1}. {q.prompt}
                  </legend>
                  {q.options.map((option) => {
                    // True/false answers are "true" or "false"; multiple choice, the option.
                    const value = q.type === QuestionType.TRUE_FALSE ? option.toLowerCase() : option;
                    return (
                      <label class="choice" key={option}>
                        <input
                          type="radio"
                          name={`${quiz.id}-${q.id}`}
                          value={value}
                          checked={answers[q.id] === value}
                          onChange={() => answer(q.id, value)}
                        />
                        {option}
                      </label>
                    );
                  })}
                </fieldset>
              )}
              {result ? (
                <div class={`grade ${result.correct ? "right" : "wrong"}`} aria-label={`Question ${i + 1} graded`}>
                  <strong>{result.correct ? "Right" : "Wrong"}</strong>
                  {result.correct ? "" : ` · the answer: ${result.correctAnswer}`}
                  {result.feedback && !/^(right|wrong)\.?$/i.test(result.feedback.trim()) ? (
                    <div class="meta">{result.feedback}</div>
                  ) : null}
                  {result.source ? <blockquote class="meta">{result.source.sentence}</blockquote> : null}
                </div>
              ) : null}
            </li>
          );
        })}
      </ol>
      <ErrorNote error={submit.error} />
      <button type="submit" disabled={submit.busy}>
        {submission ? "Submit again" : "Submit answers"}
      </button>
      {submission ? (
        <p class="score" role="status" data-testid="quiz-score">
          Score: {Math.round(submission.score)}% ({submission.correctCount} of {submission.totalQuestions} right)
        </p>
      ) : null}
    </form>
  );
}
