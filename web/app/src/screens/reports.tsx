// Reports: a student's learning events (pasted JSON, or a JSON or CSV file) rendered into an HTML
// page or a PDF by a job watched live (WatchJob); the file opened or downloaded through a signed
// URL; past reports. Large event sets go as a draft, in pages within the edge's body limit.

import { useEffect, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ReportFormat,
  ReportStatus,
  ReportsService,
  type Report,
} from "../../../src/gen/aimesh/reports/v1/reports_pb.js";
import { BadRequestSchema } from "../../../src/gen/google/rpc/error_details_pb.js";
import { client, sameOrigin } from "../api.js";
import { ErrorNote, JobProgress, Pager, Panel, bytes, useAction, useJob, usePaged, when } from "../ui.js";
import type { ScreenProps } from "./index.js";

const reports = client(ReportsService);

/** The most events a report holds (ReportInput.events). */
const MAX_EVENTS = 100_000;
/** Events sent in one request at most, by size: well within the edge's body limit. */
const PAGE_BYTES = 512 * 1024;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

const EXAMPLE = `[
  {"unit": "Welcome", "type": "viewed", "created_time": "2025-03-01T09:00:00Z"},
  {"unit": "Fractions", "type": "completed", "created_time": "2025-03-02T09:30:00Z"}
]`;

interface EventIn {
  unit: string;
  type: string;
  createdTime: string;
}

/** What the pasted or loaded text holds: the events, and the student when it names one. */
interface Parsed {
  events: EventIn[];
  studentId?: string;
  namespace?: string;
}

/** A list of problems found before anything is sent. */
class Problems extends Error {
  constructor(readonly items: string[]) {
    super(items.join(" "));
  }
}

export function Reports(_: ScreenProps) {
  const [selected, setSelected] = useState<string>();
  // The rendering job of the report just created (followed from the start).
  const [createdJob, setCreatedJob] = useState<string>();
  const [reload, setReload] = useState(0);
  return (
    <div class="split reports">
      <div>
        <NewReport
          onCreated={(id, jobId) => {
            setSelected(id);
            setCreatedJob(jobId);
            setReload((n) => n + 1);
          }}
        />
        <ReportList
          reload={reload}
          selected={selected}
          onSelect={(id) => {
            setSelected(id);
            setCreatedJob(undefined);
          }}
        />
      </div>
      <div>
        {selected ? (
          <ReportView
            key={selected}
            id={selected}
            jobId={createdJob}
            onChange={() => setReload((n) => n + 1)}
            onDeleted={() => {
              setSelected(undefined);
              setReload((n) => n + 1);
            }}
          />
        ) : (
          <p class="hint">Create a report, or choose one of yours.</p>
        )}
      </div>
    </div>
  );
}

/** The form: student, events (pasted or loaded), format. */
function NewReport({ onCreated }: { onCreated: (id: string, jobId?: string) => void }) {
  const [studentId, setStudentId] = useState("");
  const [namespace, setNamespace] = useState("");
  const [text, setText] = useState("");
  const [format, setFormat] = useState<ReportFormat>(ReportFormat.HTML);
  const [sent, setSent] = useState<string>("");
  const [loaded, setLoaded] = useState("");

  const load = useAction(async (file: File | undefined) => {
    setLoaded("");
    if (!file) return;
    const content = await file.text();
    const csv = /\.csv$/i.test(file.name) || /csv/i.test(file.type);
    const parsed = csv ? parseCsv(content) : parseJson(content);
    if (parsed.studentId && !studentId) setStudentId(parsed.studentId);
    if (parsed.namespace && !namespace) setNamespace(parsed.namespace);
    setText(
      parsed.events.length > 2000
        ? JSON.stringify(parsed.events.map(wire))
        : JSON.stringify(parsed.events.map(wire), null, 2),
    );
    setLoaded(`${file.name}: ${parsed.events.length} events loaded.`);
  });

  const create = useAction(async () => {
    setSent("");
    const parsed = parseJson(text);
    const student = studentId.trim() || parsed.studentId || "";
    const ns = namespace.trim() || parsed.namespace || "";
    const problems = [
      ...(student ? [] : ["Enter the student's id."]),
      ...(student.length > 128 ? ["The student id is longer than 128 characters."] : []),
      ...(ns.length > 128 ? ["The namespace is longer than 128 characters."] : []),
    ];
    if (problems.length) throw new Problems(problems);
    const events = parsed.events;
    const pages = paginate(events);
    if (pages.length <= 1) {
      const r = await reports.createReport({ report: { studentId: student, namespace: ns, events, format } });
      if (r.report) onCreated(r.report.id, r.job?.id);
      return;
    }
    // More than one request carries: a draft, its events page by page, then rendering.
    const draft = await reports.createReport({
      report: { studentId: student, namespace: ns, events: [], format },
      draft: true,
    });
    const id = draft.report?.id;
    if (!id) return;
    let offset = 0;
    for (const page of pages) {
      setSent(`Sending events: ${offset} of ${events.length}…`);
      const r = await reports.appendReportEvents({ id, offset: BigInt(offset), events: page });
      offset = Number(r.report?.eventCount ?? offset + page.length);
    }
    setSent(`Sent ${offset} events.`);
    const generated = await reports.generateReport({ id });
    onCreated(id, generated.job?.id);
  });

  return (
    <Panel title="New report">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <div class="row">
          <label>
            Student id
            <input maxLength={128} value={studentId} onInput={(e) => setStudentId(e.currentTarget.value)} />
          </label>
          <label>
            Namespace
            <input maxLength={128} placeholder="optional" value={namespace} onInput={(e) => setNamespace(e.currentTarget.value)} />
          </label>
        </div>
        <label>
          Events (JSON)
          <textarea
            rows={8}
            class="code"
            placeholder={EXAMPLE}
            spellcheck={false}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </label>
        <p class="hint">
          A JSON array of events, each with a <code>unit</code> and optionally a <code>type</code> and
          a <code>created_time</code> (RFC 3339, e.g. 2025-03-01T09:00:00Z).
        </p>
        <label>
          Or load a JSON or CSV file (columns unit, type, created_time)
          <input
            type="file"
            accept=".json,.csv,application/json,text/csv"
            onChange={(e) => void load.run(e.currentTarget.files?.[0])}
          />
        </label>
        {loaded ? (
          <p class="meta" role="status">
            {loaded}
          </p>
        ) : null}
        <FormError error={load.error} />
        <fieldset class="choice">
          <legend>Format</legend>
          <label>
            <input
              type="radio"
              name="report-format"
              checked={format === ReportFormat.HTML}
              onChange={() => setFormat(ReportFormat.HTML)}
            />
            HTML page
          </label>
          <label>
            <input
              type="radio"
              name="report-format"
              checked={format === ReportFormat.PDF}
              onChange={() => setFormat(ReportFormat.PDF)}
            />
            PDF document
          </label>
        </fieldset>
        <FormError error={create.error} />
        {sent ? (
          <p class="meta" role="status">
            {sent}
          </p>
        ) : null}
        <button type="submit" disabled={create.busy}>
          Create report
        </button>
      </form>
    </Panel>
  );
}

/** An event as the JSON the form shows (the REST field names). */
function wire(e: EventIn) {
  return {
    unit: e.unit,
    ...(e.type ? { type: e.type } : {}),
    ...(e.createdTime ? { created_time: e.createdTime } : {}),
  };
}

/** Splits events into requests of at most PAGE_BYTES (estimated) each. */
function paginate(events: EventIn[]): EventIn[][] {
  const pages: EventIn[][] = [];
  let page: EventIn[] = [];
  let size = 0;
  for (const e of events) {
    const n = e.unit.length * 3 + e.type.length * 3 + e.createdTime.length + 16;
    if (page.length && size + n > PAGE_BYTES) {
      pages.push(page);
      page = [];
      size = 0;
    }
    page.push(e);
    size += n;
  }
  if (page.length || pages.length === 0) pages.push(page);
  return pages;
}

/** Pasted or loaded JSON: an array of events, or `{student_id, namespace, events}`. */
function parseJson(text: string): Parsed {
  if (!text.trim()) throw new Problems(["Paste the events as JSON, or load a JSON or CSV file."]);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Problems([`The events are not valid JSON: ${(e as Error).message}.`]);
  }
  let list: unknown = value;
  const out: Parsed = { events: [] };
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    list = o.events;
    if (typeof o.student_id === "string") out.studentId = o.student_id;
    else if (typeof o.studentId === "string") out.studentId = o.studentId;
    if (typeof o.namespace === "string") out.namespace = o.namespace;
  }
  if (!Array.isArray(list)) {
    throw new Problems(['Expected a JSON array of events, or an object with an "events" array.']);
  }
  out.events = checkEvents(
    list.map((item) => {
      if (!item || typeof item !== "object" || Array.isArray(item)) return null;
      const o = item as Record<string, unknown>;
      return { unit: o.unit, type: o.type, createdTime: o.created_time ?? o.createdTime };
    }),
  );
  return out;
}

/** A CSV file with a header row naming unit, type and created_time (student_id optional). */
function parseCsv(text: string): Parsed {
  const rows = csvRows(text).filter((r) => r.some((c) => c.trim()));
  if (rows.length === 0) throw new Problems(["The CSV file is empty."]);
  const header = rows[0].map((h) => h.trim().toLowerCase().replace(/[\s-]+/g, "_"));
  const col = (...names: string[]) => header.findIndex((h) => names.includes(h));
  const unit = col("unit");
  const type = col("type");
  const time = col("created_time", "createdtime", "time", "timestamp");
  const student = col("student_id", "studentid", "student");
  const ns = col("namespace");
  if (unit < 0) {
    throw new Problems(["The CSV file's first row must name the columns, among them “unit”."]);
  }
  const body = rows.slice(1);
  const out: Parsed = {
    events: checkEvents(
      body.map((r) => ({
        unit: r[unit]?.trim() ?? "",
        type: type >= 0 ? (r[type]?.trim() ?? "") : "",
        createdTime: time >= 0 ? (r[time]?.trim() ?? "") : "",
      })),
      2,
    ),
  };
  if (student >= 0 && body[0]?.[student]) out.studentId = body[0][student].trim();
  if (ns >= 0 && body[0]?.[ns]) out.namespace = body[0][ns].trim();
  return out;
}

/** RFC 4180 rows: quoted fields may hold commas, quotes ("") and line breaks. */
function csvRows(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/**
 * Checks events as the server would, naming each problem by the event's position (`first` is
 * the number of the first: 1 for JSON, 2 for a CSV's first data row, the line it is on).
 */
function checkEvents(
  items: ({ unit: unknown; type: unknown; createdTime: unknown } | null)[],
  first = 1,
): EventIn[] {
  const problems: string[] = [];
  const events: EventIn[] = [];
  const what = first === 1 ? "Event" : "Row";
  if (items.length === 0) problems.push("There are no events: a report needs at least one.");
  if (items.length > MAX_EVENTS) problems.push(`A report holds at most ${MAX_EVENTS} events, not ${items.length}.`);
  items.forEach((item, i) => {
    const n = `${what} ${i + first}`;
    if (!item) {
      problems.push(`${n} is not an object like {"unit": "…"}.`);
      return;
    }
    const { unit, type = "", createdTime = "" } = item;
    if (typeof unit !== "string" || !unit.trim()) problems.push(`${n} has no unit.`);
    else if (unit.length > 200) problems.push(`${n}'s unit is longer than 200 characters.`);
    if (typeof type !== "string") problems.push(`${n}'s type must be text.`);
    else if (type.length > 64) problems.push(`${n}'s type is longer than 64 characters.`);
    if (typeof createdTime !== "string") problems.push(`${n}'s created_time must be text.`);
    else if (createdTime && !RFC3339.test(createdTime)) {
      problems.push(`${n}'s created_time “${createdTime}” is not an RFC 3339 time such as 2025-03-01T09:00:00Z.`);
    }
    if (typeof unit === "string" && typeof type === "string" && typeof createdTime === "string") {
      events.push({ unit, type, createdTime });
    }
  });
  if (problems.length) {
    const shown = problems.slice(0, 8);
    if (problems.length > shown.length) shown.push(`…and ${problems.length - shown.length} more.`);
    throw new Problems(shown);
  }
  return events;
}

/** An error of the form: our own list of problems, or the server's field by field. */
function FormError({ error }: { error: unknown }) {
  if (!error) return null;
  if (error instanceof Problems) {
    return (
      <div class="error" role="alert">
        <p>Please fix these first:</p>
        <ul aria-label="Problems">
          {error.items.map((p, i) => (
            <li key={i}>{p}</li>
          ))}
        </ul>
      </div>
    );
  }
  const violations =
    error instanceof ConnectError && error.code === Code.InvalidArgument
      ? error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations)
      : [];
  if (violations.length === 0) return <ErrorNote error={error} />;
  return (
    <div class="error" role="alert">
      <p>The server refused the report:</p>
      <ul aria-label="Refused fields">
        {violations.slice(0, 20).map((v, i) => (
          <li key={i}>
            <strong>{fieldName(v.field)}</strong>: {v.description}
          </li>
        ))}
      </ul>
      {violations.length > 20 ? <p>…and {violations.length - 20} more.</p> : null}
    </div>
  );
}

/** `report.events[3].created_time` as “Event 4, created_time”. */
function fieldName(field: string): string {
  const m = field.match(/^(?:report\.)?events\[(\d+)\]\.(.+)$/);
  if (m) return `Event ${Number(m[1]) + 1}, ${m[2]}`;
  return field.replace(/^report\./, "");
}

function statusName(status: ReportStatus): string {
  return (ReportStatus[status] ?? "UNKNOWN").toLowerCase();
}

function formatName(format: ReportFormat): string {
  return format === ReportFormat.PDF ? "PDF" : "HTML";
}

/** One report: its job while it renders, then what it found and its file. */
function ReportView({
  id,
  jobId,
  onChange,
  onDeleted,
}: {
  id: string;
  jobId?: string;
  onChange: () => void;
  onDeleted: () => void;
}) {
  const [report, setReport] = useState<Report>();
  const [error, setError] = useState<unknown>(null);
  const load = () =>
    reports
      .getReport({ id })
      .then((r) => {
        setReport(r.report);
        setError(null);
      })
      .catch(setError);
  useEffect(() => void load(), [id]);
  const rendering =
    report?.status === ReportStatus.PENDING || report?.status === ReportStatus.RUNNING;
  // Once seen rendering, its job is followed to the end (the bar stays, at 100%, when done).
  const [watchId, setWatchId] = useState<string | undefined>(jobId);
  useEffect(() => {
    if (rendering && report?.jobId) setWatchId(report.jobId);
  }, [rendering, report?.jobId]);
  const job = useJob(watchId, () => {
    void load();
    onChange();
  });
  const remove = useAction(async () => {
    await reports.deleteReport({ id });
    onDeleted();
  });

  if (error) return <ErrorNote error={error} />;
  if (!report) return <p aria-busy="true">Loading…</p>;
  const span =
    report.firstEventTime && report.lastEventTime
      ? `${when(report.firstEventTime)} – ${when(report.lastEventTime)}`
      : "";
  return (
    <Panel title={`Report for ${report.studentId}`}>
      <dl class="facts">
        <dt>Status</dt>
        <dd data-testid="report-status">{statusName(report.status)}</dd>
        <dt>Format</dt>
        <dd>{formatName(report.format)}</dd>
        {report.namespace ? (
          <>
            <dt>Namespace</dt>
            <dd>{report.namespace}</dd>
          </>
        ) : null}
        <dt>Events</dt>
        <dd>{report.eventCount.toString()}</dd>
        {report.status === ReportStatus.DONE ? (
          <>
            <dt>Units</dt>
            <dd>{report.unitCount.toString()}</dd>
            {span ? (
              <>
                <dt>Time span</dt>
                <dd>{span}</dd>
              </>
            ) : null}
            <dt>File</dt>
            <dd>
              {report.filename} · {bytes(report.sizeBytes)}
            </dd>
          </>
        ) : null}
        <dt>Created</dt>
        <dd>{when(report.createTime)}</dd>
      </dl>
      {watchId ? (
        <JobProgress job={job} label="Rendering" />
      ) : null}
      {report.status === ReportStatus.FAILED ? (
        <p class="error" role="alert">
          {report.failureReason || "Rendering failed."}
        </p>
      ) : null}
      {report.status === ReportStatus.DRAFT ? (
        <p class="hint">A draft: it was not sent completely, so it was never rendered. Delete it and try again.</p>
      ) : null}
      {report.status === ReportStatus.DONE ? <ReportFile report={report} /> : null}
      <ErrorNote error={remove.error} />
      <div class="row">
        <button
          type="button"
          class="danger"
          disabled={remove.busy}
          onClick={() => window.confirm(`Delete the report for “${report.studentId}”?`) && void remove.run()}
        >
          Delete report
        </button>
      </div>
    </Panel>
  );
}

/** Links to a DONE report's file, through a signed URL (fetched again once it expires). */
function ReportFile({ report }: { report: Report }) {
  const [url, setUrl] = useState("");
  const [expires, setExpires] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const fetchUrl = () =>
    reports
      .getReportUrl({ id: report.id })
      .then((r) => {
        setUrl(sameOrigin(r.url));
        setExpires(r.expireTime ? Number(r.expireTime.seconds) * 1000 : 0);
        setError(null);
      })
      .catch(setError);
  useEffect(() => void fetchUrl(), [report.id]);
  // A link kept on screen past its URL's life gets a fresh one when the page is looked at again.
  useEffect(() => {
    const check = () => {
      if (expires && Date.now() > expires - 30_000) void fetchUrl();
    };
    window.addEventListener("focus", check);
    return () => window.removeEventListener("focus", check);
  }, [expires]);
  if (error) return <ErrorNote error={error} />;
  if (!url) return null;
  return (
    <div class="row files">
      {report.format === ReportFormat.PDF ? (
        <>
          <a class="button" href={url} download={report.filename}>
            Download PDF
          </a>
          <a href={url} target="_blank" rel="noopener">
            Open the PDF
          </a>
        </>
      ) : (
        <>
          <a class="button" href={url} target="_blank" rel="noopener">
            Open report
          </a>
          <a href={url} download={report.filename}>
            Download HTML
          </a>
        </>
      )}
    </div>
  );
}

/** The caller's reports, newest first, with a status filter. */
function ReportList({
  reload,
  selected,
  onSelect,
}: {
  reload: number;
  selected?: string;
  onSelect: (id: string) => void;
}) {
  const [status, setStatus] = useState<ReportStatus>(ReportStatus.UNSPECIFIED);
  const { items: list, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      reports
        .listReports({ pageSize: 10, pageToken, status }, { signal })
        .then((r) => ({ items: r.reports, next: r.nextPageToken })),
    [reload, status],
  );
  return (
    <Panel title="Past reports">
      <div class="filters">
        <label>
          Status
          <select
            value={String(status)}
            onChange={(e) => {
              setStatus(Number(e.currentTarget.value) as ReportStatus);
              setTokens([""]);
            }}
          >
            <option value={String(ReportStatus.UNSPECIFIED)}>any</option>
            {[ReportStatus.DRAFT, ReportStatus.PENDING, ReportStatus.RUNNING, ReportStatus.DONE, ReportStatus.FAILED].map(
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
      <ul class="list" aria-label="Reports">
        {list.map((r) => (
          <li key={r.id}>
            <button
              type="button"
              class="list-item"
              aria-current={r.id === selected ? "true" : undefined}
              onClick={() => onSelect(r.id)}
            >
              <strong>{r.studentId}</strong>
              <span class="meta">
                {formatName(r.format)} · {statusName(r.status)} · {r.eventCount.toString()} events ·{" "}
                {when(r.createTime)}
              </span>
            </button>
          </li>
        ))}
        {list.length === 0 && !error ? <li class="empty">No reports yet.</li> : null}
      </ul>
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}
