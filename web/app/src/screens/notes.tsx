// Notes: a searchable list, a note's editor, translation with a live progress bar (WatchJob), and
// the statistics as a chart.

import { useEffect, useState } from "preact/hooks";
import {
  NotesService,
  type GetNoteStatsResponse,
  type LanguagePair,
  type Note,
} from "../../../src/gen/aimesh/notes/v1/notes_pb.js";
import { JobState, type Job } from "../../../src/gen/aimesh/jobs/v1/jobs_pb.js";
import { client } from "../api.js";
import { ErrorNote, JobProgress, Pager, Panel, useAction, useJob, usePaged, when } from "../ui.js";
import type { ScreenProps } from "./index.js";

const notes = client(NotesService);

export function Notes({ arg }: ScreenProps) {
  const [query, setQuery] = useState("");
  const [language, setLanguage] = useState("");
  // A count that also refreshes the statistics.
  const [reload, setReload] = useState(0);
  const refresh = () => setReload((n) => n + 1);
  const { items: list, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      notes
        .listNotes({ pageSize: 20, pageToken, query: query.trim(), language }, { signal })
        .then((r) => ({ items: r.notes, next: r.nextPageToken })),
    [query, language, reload],
    200,
  );

  const filter = (set: (v: string) => void) => (e: Event) => {
    set((e.currentTarget as HTMLInputElement).value);
    setTokens([""]);
  };

  return (
    <div class="split">
      <div>
        <Panel title="Your notes">
          <div class="filters">
            <label>
              Search
              <input type="search" value={query} onInput={filter(setQuery)} />
            </label>
            <label>
              Language
              <input
                value={language}
                placeholder="any"
                size={6}
                onInput={filter(setLanguage)}
              />
            </label>
          </div>
          <ErrorNote error={error} />
          <ul class="list" aria-label="Notes">
            {list.map((note) => (
              <li key={note.id}>
                <a href={`#/notes/${note.id}`} aria-current={note.id === arg ? "true" : undefined}>
                  <strong>{note.title}</strong>
                  <span class="meta">
                    {note.originalLanguage} · {when(note.updateTime)}
                    {note.translations.length
                      ? ` · ${note.translations.map((t) => t.targetLanguage).join(", ")}`
                      : ""}
                  </span>
                </a>
              </li>
            ))}
            {list.length === 0 && !error ? <li class="empty">No notes yet.</li> : null}
          </ul>
          <Pager tokens={tokens} next={next} onPage={setTokens} />
          <p>
            <a class="button" href="#/notes/new">
              New note
            </a>
          </p>
        </Panel>
        <Stats reload={reload} />
      </div>
      <div>
        {arg === "new" ? (
          <Editor
            key="new"
            onSaved={(note) => {
              refresh();
              window.location.hash = `#/notes/${note.id}`;
            }}
          />
        ) : arg ? (
          <NoteView key={arg} id={arg} onChange={refresh} />
        ) : (
          <p class="hint">Choose a note, or write a new one.</p>
        )}
      </div>
    </div>
  );
}

/** Creates a note, or edits `note`. */
function Editor({
  note,
  onSaved,
  onCancel,
}: {
  note?: Note;
  onSaved: (note: Note) => void;
  onCancel?: () => void;
}) {
  const [title, setTitle] = useState(note?.title ?? "");
  const [text, setText] = useState(note?.originalText ?? "");
  const [language, setLanguage] = useState(note?.originalLanguage ?? "en");
  const save = useAction(async () => {
    const values = { title, originalText: text, originalLanguage: language.trim() };
    const saved = note
      ? await notes.updateNote({
          note: { ...values, id: note.id, version: note.version },
          updateMask: { paths: ["title", "original_text", "original_language"] },
        })
      : await notes.createNote({ note: values });
    if (saved.note) onSaved(saved.note);
  });
  return (
    <Panel title={note ? "Edit note" : "New note"}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save.run();
        }}
      >
        <label>
          Title
          <input required maxLength={200} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        </label>
        <label>
          Language (BCP-47, e.g. en, es, pt-BR)
          <input required value={language} onInput={(e) => setLanguage(e.currentTarget.value)} />
        </label>
        <label>
          Text
          <textarea required rows={10} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <ErrorNote error={save.error} />
        <div class="row">
          <button type="submit" disabled={save.busy}>
            Save
          </button>
          {onCancel ? (
            <button type="button" class="secondary" onClick={onCancel}>
              Cancel
            </button>
          ) : null}
        </div>
      </form>
    </Panel>
  );
}

/** One note: its text and translations, edit, delete and translate. */
function NoteView({ id, onChange }: { id: string; onChange: () => void }) {
  const [note, setNote] = useState<Note>();
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState(false);
  const load = () =>
    notes
      .getNote({ id })
      .then((r) => setNote(r.note))
      .catch(setError);
  useEffect(() => void load(), [id]);
  const remove = useAction(async () => {
    if (!note) return;
    await notes.deleteNote({ id: note.id, version: note.version });
    onChange();
    window.location.hash = "#/notes";
  });

  if (error) return <ErrorNote error={error} />;
  if (!note) return <p aria-busy="true">Loading…</p>;
  if (editing) {
    return (
      <Editor
        note={note}
        onCancel={() => setEditing(false)}
        onSaved={(saved) => {
          setNote(saved);
          setEditing(false);
          onChange();
        }}
      />
    );
  }
  return (
    <>
      <Panel title={note.title}>
        <p class="meta">
          {note.originalLanguage} · version {note.version.toString()} · changed {when(note.updateTime)}
        </p>
        <div class="text" lang={note.originalLanguage}>
          {note.originalText}
        </div>
        <ErrorNote error={remove.error} />
        <div class="row">
          <button type="button" onClick={() => setEditing(true)}>
            Edit
          </button>
          <button
            type="button"
            class="danger"
            disabled={remove.busy}
            onClick={() => window.confirm(`Delete “${note.title}”?`) && void remove.run()}
          >
            Delete
          </button>
        </div>
      </Panel>
      <Translate
        note={note}
        onDone={() => {
          void load();
          onChange();
        }}
      />
      {note.translations.length ? (
        <Panel title="Translations">
          {note.translations.map((t) => (
            <article key={t.targetLanguage} class="translation" aria-label={`Translation into ${t.targetLanguage}`}>
              <h3>
                {t.targetLanguage} <span class="meta">by {t.engine} · {when(t.createTime)}</span>
              </h3>
              <div class="text" lang={t.targetLanguage}>
                {t.text}
              </div>
            </article>
          ))}
        </Panel>
      ) : null}
    </>
  );
}

/** The translation form and the running job's progress. */
function Translate({ note, onDone }: { note: Note; onDone: () => void }) {
  const [pairs, setPairs] = useState<(LanguagePair & { engine: string })[]>([]);
  const [target, setTarget] = useState("");
  const [jobId, setJobId] = useState<string>();
  const job = useJob(jobId, (finished: Job) => {
    if (finished.state === JobState.SUCCEEDED) onDone();
  });
  useEffect(() => {
    notes
      .listLanguages({})
      .then((r) => {
        const all = r.engines.flatMap((e) => e.pairs.map((p) => ({ ...p, engine: e.name })));
        setPairs(all);
      })
      .catch(() => setPairs([]));
  }, []);
  const base = note.originalLanguage.split("-")[0].toLowerCase();
  const targets = [
    ...new Set(
      pairs
        .filter((p) => p.sourceLanguage.split("-")[0].toLowerCase() === base)
        .map((p) => p.targetLanguage),
    ),
  ].sort();
  const start = useAction(async () => {
    const r = await notes.translateNote({ id: note.id, targetLanguage: target || targets[0] });
    setJobId(r.job?.id);
  });
  return (
    <Panel title="Translate">
      {targets.length === 0 ? (
        <p class="hint">No engine here translates from {note.originalLanguage}.</p>
      ) : (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            void start.run();
          }}
        >
          <label>
            Into
            <select value={target || targets[0]} onChange={(e) => setTarget(e.currentTarget.value)}>
              {targets.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={start.busy}>
            Translate
          </button>
        </form>
      )}
      <ErrorNote error={start.error} />
      {jobId ? <JobProgress job={job} label="Translation" /> : null}
      {job?.progress?.partialOutput && job.state === JobState.RUNNING ? (
        <div class="text partial" aria-live="polite">
          {job.progress.partialOutput}
        </div>
      ) : null}
    </Panel>
  );
}

/** Notes and translations per language, as bar charts. */
function Stats({ reload }: { reload: number }) {
  const [stats, setStats] = useState<GetNoteStatsResponse>();
  useEffect(() => {
    notes
      .getNoteStats({})
      .then(setStats)
      .catch(() => undefined);
  }, [reload]);
  if (!stats || stats.totalNotes === 0n) return null;
  return (
    <Panel title="Statistics">
      <p>
        {count(stats.totalNotes, "note")}, {count(stats.totalTranslations, "translation")}
        {stats.lastActivityTime ? `, last active ${when(stats.lastActivityTime)}` : ""}.
      </p>
      <BarChart title="Notes by language" rows={stats.notesByLanguage} />
      <BarChart title="Translations by language" rows={stats.translationsByLanguage} />
    </Panel>
  );
}

/** "1 note", "2 notes". */
function count(n: bigint, noun: string): string {
  return `${n} ${noun}${n === 1n ? "" : "s"}`;
}

/** A horizontal bar chart in SVG, one bar per language. */
export function BarChart({
  title,
  rows,
}: {
  title: string;
  rows: { language: string; count: bigint }[];
}) {
  if (rows.length === 0) return null;
  const max = Math.max(...rows.map((r) => Number(r.count)));
  const bar = 22;
  const width = 320;
  const label = 60;
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <svg
        role="img"
        aria-label={`${title}: ${rows.map((r) => `${r.language} ${r.count}`).join(", ")}`}
        viewBox={`0 0 ${width} ${rows.length * bar}`}
        width="100%"
      >
        {rows.map((r, i) => {
          const w = ((width - label - 40) * Number(r.count)) / max;
          return (
            <g key={r.language} transform={`translate(0 ${i * bar})`}>
              <text x={0} y={bar * 0.7} class="axis">
                {r.language}
              </text>
              <rect x={label} y={3} width={Math.max(w, 1)} height={bar - 6} class="bar" />
              <text x={label + w + 6} y={bar * 0.7} class="value">
                {r.count.toString()}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
