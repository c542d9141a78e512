// Speech: record in the page or upload a recording and watch it transcribed live (WatchJob), past
// transcriptions with their transcripts; text synthesised into audio played through a signed
// URL, past audio.

import { useEffect, useRef, useState } from "preact/hooks";
import { ConnectError } from "@connectrpc/connect";
import {
  AudioFormat,
  SpeechService,
  TranscriptionStatus,
  type Audio,
  type Transcription,
  type Voice,
} from "../../../src/gen/aimesh/speech/v1/speech_pb.js";
import { JobState } from "../../../src/gen/aimesh/jobs/v1/jobs_pb.js";
import { client, sameOrigin } from "../api.js";
import { ErrorNote, JobProgress, Pager, Panel, bytes, useAction, useJob, usePaged, when } from "../ui.js";
import { toWav } from "../wav.js";
import type { ScreenProps } from "./index.js";

const speech = client(SpeechService);

/** A WAV file larger than this is resampled to 16 kHz mono before it is sent. */
const LARGE_WAV = 1024 * 1024;

const LANGUAGES: [string, string][] = [
  ["", "Server default (English)"],
  ["auto", "Detect the language"],
  ["en", "English"],
  ["es", "Spanish"],
  ["fr", "French"],
  ["de", "German"],
  ["it", "Italian"],
  ["pt", "Portuguese"],
  ["nl", "Dutch"],
];

export function Speech(_: ScreenProps) {
  const [reloadTranscripts, setReloadTranscripts] = useState(0);
  const [reloadAudio, setReloadAudio] = useState(0);
  const [selected, setSelected] = useState<string>();
  const [playing, setPlaying] = useState<Audio>();
  return (
    <div class="split speech">
      <div>
        <Transcribe
          onCreated={(id) => {
            setSelected(id);
            setReloadTranscripts((n) => n + 1);
          }}
        />
        {selected ? (
          <TranscriptView
            key={selected}
            id={selected}
            onChange={() => setReloadTranscripts((n) => n + 1)}
            onDeleted={() => {
              setSelected(undefined);
              setReloadTranscripts((n) => n + 1);
            }}
          />
        ) : null}
        <Transcriptions reload={reloadTranscripts} selected={selected} onSelect={setSelected} />
      </div>
      <div>
        <Synthesize
          onCreated={(audio) => {
            setPlaying(audio);
            setReloadAudio((n) => n + 1);
          }}
        />
        {playing ? <Player key={playing.id} audio={playing} /> : null}
        <AudioList
          reload={reloadAudio}
          playing={playing?.id}
          onPlay={setPlaying}
          onDeleted={(id) => {
            if (playing?.id === id) setPlaying(undefined);
            setReloadAudio((n) => n + 1);
          }}
        />
      </div>
    </div>
  );
}

/** What will be uploaded: a recording made here, or a chosen file. */
interface Pending {
  name: string;
  contentType: string;
  data: Uint8Array;
  /** Seconds, when known. */
  seconds?: number;
  note?: string;
}

/** Recording or choosing audio, and starting its transcription. */
function Transcribe({ onCreated }: { onCreated: (id: string) => void }) {
  const [pending, setPending] = useState<Pending>();
  const [language, setLanguage] = useState("");
  const [jobId, setJobId] = useState<string>();
  const [created, setCreated] = useState<string>();
  const [fileKey, setFileKey] = useState(0);
  const job = useJob(jobId, () => created && onCreated(created));

  const choose = useAction(async (file: File | undefined) => {
    setPending(undefined);
    if (!file) return;
    const buffer = await file.arrayBuffer();
    const head = new Uint8Array(buffer.slice(0, 4));
    const isWav = String.fromCharCode(...head) === "RIFF";
    if (isWav && buffer.byteLength > LARGE_WAV) {
      // Uncompressed and large: 16 kHz mono is all transcription uses, and far smaller.
      const wav = await toWav(buffer);
      if (wav.data.length < buffer.byteLength) {
        setPending({
          name: file.name,
          contentType: "audio/wav",
          data: wav.data,
          seconds: wav.seconds,
          note: `Resampled to 16 kHz mono in the browser (from ${bytes(buffer.byteLength)}).`,
        });
        return;
      }
    }
    setPending({ name: file.name, contentType: file.type, data: new Uint8Array(buffer) });
  });

  const start = useAction(async () => {
    if (!pending) return;
    const r = await speech
      .createTranscription({
        body: { contentType: pending.contentType, data: pending.data },
        filename: safeName(pending.name),
        language,
      })
      .catch((e: unknown) => {
        // The edge refuses a body over its limit before the service sees it.
        if (e instanceof ConnectError && /\b413\b|too large/i.test(e.rawMessage)) {
          throw new Error(
            `The recording (${bytes(pending.data.length)}) is larger than the server accepts in one ` +
              "request: record a shorter one, or choose a smaller file.",
          );
        }
        throw e;
      });
    const id = r.transcription?.id;
    setCreated(id);
    setJobId(r.job?.id);
    if (id) onCreated(id);
  });

  return (
    <Panel title="Transcribe">
      <Recorder
        onRecorded={(p) => {
          setPending(p);
          setFileKey((k) => k + 1);
          choose.clear();
        }}
      />
      <label>
        Or choose an audio file (WAV, FLAC, MP3, Ogg, Opus, WebM, M4A)
        <input
          key={fileKey}
          type="file"
          accept="audio/*,.wav,.flac,.mp3,.ogg,.opus,.m4a,.webm"
          onChange={(e) => void choose.run(e.currentTarget.files?.[0])}
        />
      </label>
      <ErrorNote error={choose.error} />
      {pending ? (
        <p class="meta" role="status">
          Ready: {pending.name} · {bytes(pending.data.length)}
          {pending.seconds ? ` · ${pending.seconds.toFixed(1)} s` : ""}
          {pending.note ? ` · ${pending.note}` : ""}
        </p>
      ) : null}
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void start.run();
        }}
      >
        <label>
          Spoken language
          <select value={language} onChange={(e) => setLanguage(e.currentTarget.value)}>
            {LANGUAGES.map(([value, name]) => (
              <option key={value} value={value}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={!pending || start.busy}>
          Transcribe
        </button>
      </form>
      <ErrorNote error={start.error} />
      {jobId ? <JobProgress job={job} label="Transcription" /> : null}
      {job?.progress?.partialOutput && job.state === JobState.RUNNING ? (
        <div class="text partial" aria-live="polite" aria-label="Transcript so far">
          {job.progress.partialOutput}
        </div>
      ) : null}
    </Panel>
  );
}

/** A filename the server accepts: no path separators or control characters, 1 to 255. */
function safeName(name: string): string {
  const clean = name.replace(/[\\/\u0000-\u001f\u007f]/g, "_").slice(0, 255);
  return clean || "recording.wav";
}

/** Records from the microphone (MediaRecorder) and hands the recording on as the browser made it
 * (WebM or Ogg with Opus, or MP4 with AAC), which the server decodes. */
function Recorder({ onRecorded }: { onRecorded: (p: Pending) => void }) {
  const [recording, setRecording] = useState(false);
  const [seconds, setSeconds] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const recorder = useRef<MediaRecorder>();
  const stream = useRef<MediaStream>();
  const timer = useRef<number>();

  const release = () => {
    window.clearInterval(timer.current);
    stream.current?.getTracks().forEach((t) => t.stop());
    stream.current = undefined;
  };
  useEffect(() => () => {
    if (recorder.current?.state === "recording") recorder.current.stop();
    release();
  }, []);

  if (typeof MediaRecorder === "undefined" || !navigator.mediaDevices?.getUserMedia) {
    return <p class="hint">This browser cannot record audio here; choose a file instead.</p>;
  }

  const begin = async () => {
    setError(null);
    try {
      const media = await navigator.mediaDevices.getUserMedia({ audio: true });
      stream.current = media;
      const chunks: Blob[] = [];
      const started = Date.now();
      const rec = new MediaRecorder(media);
      rec.ondataavailable = (e) => e.data.size && chunks.push(e.data);
      rec.onstop = async () => {
        release();
        setRecording(false);
        try {
          const blob = new Blob(chunks, { type: rec.mimeType });
          const stamp = new Date().toISOString().replace(/[:.]/g, "-");
          onRecorded({
            name: `recording-${stamp}.${recordingExtension(rec.mimeType)}`,
            contentType: rec.mimeType || "application/octet-stream",
            data: new Uint8Array(await blob.arrayBuffer()),
            seconds: (Date.now() - started) / 1000,
          });
        } catch (e) {
          setError(e);
        }
      };
      recorder.current = rec;
      rec.start();
      setSeconds(0);
      timer.current = window.setInterval(() => setSeconds((Date.now() - started) / 1000), 250);
      setRecording(true);
    } catch (e) {
      release();
      setError(
        e instanceof DOMException && e.name === "NotAllowedError"
          ? new Error("The browser was not allowed to use the microphone.")
          : e,
      );
    }
  };

  return (
    <div class="recorder">
      <div class="row">
        {recording ? (
          <button type="button" class="danger" onClick={() => recorder.current?.stop()}>
            Stop recording
          </button>
        ) : (
          <button type="button" onClick={() => void begin()}>
            Record
          </button>
        )}
        <span class="meta" role="status" aria-live="polite">
          {recording ? `Recording… ${seconds.toFixed(0)} s` : ""}
        </span>
      </div>
      <ErrorNote error={error} />
    </div>
  );
}

function statusName(status: TranscriptionStatus): string {
  return (TranscriptionStatus[status] ?? "UNKNOWN").toLowerCase();
}

/** One transcription: its transcript once ready, the job while it runs, export, delete. */
function TranscriptView({
  id,
  onChange,
  onDeleted,
}: {
  id: string;
  onChange: () => void;
  onDeleted: () => void;
}) {
  const [t, setT] = useState<Transcription>();
  const [error, setError] = useState<unknown>(null);
  const [format, setFormat] = useState("txt");
  const load = () =>
    speech
      .getTranscription({ id })
      .then((r) => {
        setT(r.transcription);
        setError(null);
      })
      .catch(setError);
  useEffect(() => void load(), [id]);
  const running =
    t?.status === TranscriptionStatus.PENDING || t?.status === TranscriptionStatus.RUNNING;
  useJob(running ? t?.jobId : undefined, () => {
    void load();
    onChange();
  });
  const remove = useAction(async () => {
    await speech.deleteTranscription({ id });
    onDeleted();
  });
  const exportFile = useAction(async () => {
    const body = await speech.exportTranscription({ id, format });
    const blob = new Blob([new Uint8Array(body.data)], { type: body.contentType || "text/plain" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `${(t?.filename ?? "transcript").replace(/\.[^.]*$/, "")}.${format}`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });

  if (error) return <ErrorNote error={error} />;
  if (!t) return <p aria-busy="true">Loading…</p>;
  return (
    <Panel title={`Transcript of ${t.filename}`}>
      <p class="meta">
        {statusName(t.status)} · {bytes(t.sizeBytes)} · uploaded {when(t.createTime)}
        {t.durationSeconds ? ` · ${t.durationSeconds.toFixed(1)} s` : ""}
        {t.engine ? ` · ${t.engine}` : ""}
      </p>
      {t.status === TranscriptionStatus.READY ? (
        <>
          {t.language ? (
            <p data-testid="transcript-language">
              Language: <strong>{t.language}</strong>
              {t.languageProbability > 0
                ? ` (detected, ${Math.round(t.languageProbability * 100)}% sure)`
                : ""}
            </p>
          ) : null}
          <div class="text transcript" role="region" aria-label="Transcript" lang={t.language || undefined}>
            {t.text.trim() || "(nothing was heard)"}
          </div>
          {t.segments.length > 1 ? (
            <details>
              <summary>Timed segments ({t.segments.length})</summary>
              <ol class="segments" aria-label="Segments">
                {t.segments.map((s, i) => (
                  <li key={i}>
                    <span class="meta">
                      {clock(s.startSeconds)}–{clock(s.endSeconds)}
                    </span>{" "}
                    {s.text}
                  </li>
                ))}
              </ol>
            </details>
          ) : null}
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              void exportFile.run();
            }}
          >
            <label>
              Export as
              <select value={format} onChange={(e) => setFormat(e.currentTarget.value)}>
                <option value="txt">Text</option>
                <option value="srt">SRT subtitles</option>
                <option value="vtt">WebVTT subtitles</option>
              </select>
            </label>
            <button type="submit" class="secondary" disabled={exportFile.busy}>
              Export
            </button>
          </form>
          <ErrorNote error={exportFile.error} />
        </>
      ) : t.status === TranscriptionStatus.FAILED ? (
        <p class="error" role="alert">
          {t.failureReason || "Transcription failed."}
        </p>
      ) : (
        <p class="meta" role="status">
          Transcribing…
        </p>
      )}
      <ErrorNote error={remove.error} />
      <div class="row">
        <button
          type="button"
          class="danger"
          disabled={remove.busy}
          onClick={() => window.confirm(`Delete the transcription of “${t.filename}”?`) && void remove.run()}
        >
          Delete transcription
        </button>
      </div>
    </Panel>
  );
}

function clock(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

/** The caller's transcriptions, newest first. */
function Transcriptions({
  reload,
  selected,
  onSelect,
}: {
  reload: number;
  selected?: string;
  onSelect: (id: string) => void;
}) {
  const { items: list, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      speech
        .listTranscriptions({ pageSize: 10, pageToken }, { signal })
        .then((r) => ({ items: r.transcriptions, next: r.nextPageToken })),
    [reload],
  );
  return (
    <Panel title="Past transcriptions">
      <ErrorNote error={error} />
      <ul class="list" aria-label="Transcriptions">
        {list.map((t) => (
          <li key={t.id}>
            <button
              type="button"
              class="list-item"
              aria-current={t.id === selected ? "true" : undefined}
              onClick={() => onSelect(t.id)}
            >
              <strong>{t.filename}</strong>
              <span class="meta">
                {statusName(t.status)}
                {t.language ? ` · ${t.language}` : ""}
                {t.durationSeconds ? ` · ${t.durationSeconds.toFixed(1)} s` : ""} · {when(t.createTime)}
              </span>
            </button>
          </li>
        ))}
        {list.length === 0 && !error ? <li class="empty">No transcriptions yet.</li> : null}
      </ul>
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}

/** Text to speech: the form, with the voices the engine has. */
function Synthesize({ onCreated }: { onCreated: (audio: Audio) => void }) {
  const [text, setText] = useState("");
  const [voices, setVoices] = useState<Voice[]>([]);
  const [engine, setEngine] = useState("");
  const [voice, setVoice] = useState("");
  const [rate, setRate] = useState("");
  const [format, setFormat] = useState<AudioFormat>(AudioFormat.MP3);
  const [cached, setCached] = useState(false);
  useEffect(() => {
    speech
      .listVoices({})
      .then((r) => {
        setVoices([...r.voices].sort((a, b) => a.language.localeCompare(b.language)));
        setEngine(r.engine);
      })
      .catch(() => setVoices([]));
  }, []);
  const run = useAction(async () => {
    const wpm = rate.trim() ? Number(rate) : 0;
    if (!Number.isInteger(wpm) || (wpm !== 0 && (wpm < 80 || wpm > 450))) {
      throw new Error("Words per minute must be a whole number from 80 to 450 (or empty).");
    }
    const r = await speech.synthesizeAudio({
      text,
      voice,
      format,
      wordsPerMinute: wpm,
      sampleRateHertz: 0,
    });
    setCached(r.cached);
    if (r.audio) onCreated(r.audio);
  });
  return (
    <Panel title="Synthesize speech">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run.run();
        }}
      >
        <label>
          Text to speak
          <textarea
            required
            rows={4}
            maxLength={10_000}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </label>
        <div class="row">
          <label>
            Voice
            <select value={voice} onChange={(e) => setVoice(e.currentTarget.value)}>
              <option value="">Default{engine ? ` (${engine})` : ""}</option>
              {voices.map((v) => (
                <option key={v.id} value={v.id}>
                  {v.name} · {v.language}
                  {v.gender ? ` · ${v.gender}` : ""}
                </option>
              ))}
            </select>
          </label>
          <label>
            Words per minute
            <input
              type="number"
              inputMode="numeric"
              min={80}
              max={450}
              placeholder="default"
              value={rate}
              onInput={(e) => setRate(e.currentTarget.value)}
            />
          </label>
          <label>
            Format
            <select value={format} onChange={(e) => setFormat(Number(e.currentTarget.value) as AudioFormat)}>
              {FORMATS.map(([value, name]) => (
                <option key={value} value={value}>
                  {name}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={run.busy || !text.trim()}>
            Synthesize
          </button>
        </div>
      </form>
      <ErrorNote error={run.error} />
      {cached ? (
        <p class="meta" role="status">
          The same text was synthesised before: its stored audio is played.
        </p>
      ) : null}
    </Panel>
  );
}

/** The file extension of a recording the browser made, from its media type. */
function recordingExtension(mimeType: string): string {
  if (/ogg/i.test(mimeType)) return "ogg";
  if (/mp4|aac/i.test(mimeType)) return "m4a";
  return "webm";
}

/** The stored formats, as the form offers them, with their file extensions. */
const FORMATS: [AudioFormat, string, string][] = [
  [AudioFormat.MP3, "MP3", "mp3"],
  [AudioFormat.OGG_OPUS, "Ogg Opus", "ogg"],
  [AudioFormat.WAV, "WAV", "wav"],
];

/** Plays synthesised audio through a signed URL. */
function Player({ audio }: { audio: Audio }) {
  const [url, setUrl] = useState("");
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    speech
      .getAudioUrl({ id: audio.id })
      .then((r) => setUrl(sameOrigin(r.url)))
      .catch(setError);
  }, [audio.id]);
  return (
    <Panel title="Listen">
      <p class="text">{audio.text}</p>
      <p class="meta">
        {audio.voice || "default voice"} · {audio.durationSeconds.toFixed(1)} s · {bytes(audio.sizeBytes)} ·{" "}
        {formatName(audio.format)}
      </p>
      <ErrorNote error={error} />
      {url ? (
        <>
          <audio controls preload="metadata" src={url} aria-label="Synthesized speech" />
          <p>
            <a href={url} download={`speech-${audio.id.slice(0, 8)}.${formatExtension(audio.format)}`}>
              Download {formatName(audio.format)}
            </a>
          </p>
        </>
      ) : null}
    </Panel>
  );
}

function formatName(format: AudioFormat): string {
  return FORMATS.find(([value]) => value === format)?.[1] ?? "WAV";
}

function formatExtension(format: AudioFormat): string {
  return FORMATS.find(([value]) => value === format)?.[2] ?? "wav";
}

/** The caller's synthesised audio, newest first. */
function AudioList({
  reload,
  playing,
  onPlay,
  onDeleted,
}: {
  reload: number;
  playing?: string;
  onPlay: (audio: Audio) => void;
  onDeleted: (id: string) => void;
}) {
  const { items: list, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      speech
        .listAudio({ pageSize: 10, pageToken }, { signal })
        .then((r) => ({ items: r.audio, next: r.nextPageToken })),
    [reload],
  );
  const remove = useAction(async (audio: Audio) => {
    await speech.deleteAudio({ id: audio.id });
    onDeleted(audio.id);
  });
  return (
    <Panel title="Past audio">
      <ErrorNote error={error} />
      <ErrorNote error={remove.error} />
      <ul class="list" aria-label="Synthesized audio">
        {list.map((a) => (
          <li key={a.id} class="audio-row" aria-current={a.id === playing ? "true" : undefined}>
            <div>
              <span class="clip">{a.text}</span>
              <span class="meta">
                {a.durationSeconds.toFixed(1)} s · {a.voice || "default voice"} · {when(a.createTime)}
              </span>
            </div>
            <div class="row">
              <button type="button" class="secondary" onClick={() => onPlay(a)} aria-label={`Play “${short(a.text)}”`}>
                Play
              </button>
              <button
                type="button"
                class="danger"
                disabled={remove.busy}
                aria-label={`Delete “${short(a.text)}”`}
                onClick={() => window.confirm(`Delete the audio “${short(a.text)}”?`) && void remove.run(a)}
              >
                Delete
              </button>
            </div>
          </li>
        ))}
        {list.length === 0 && !error ? <li class="empty">No audio yet.</li> : null}
      </ul>
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}

function short(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
