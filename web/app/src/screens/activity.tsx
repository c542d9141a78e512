// The user's activity: their domain events, newest first (ListEvents), with what happens from
// now on added at the top as it happens (WatchEvents, resumed after the newest event shown, so
// a dropped stream misses nothing).

import { useEffect, useRef, useState } from "preact/hooks";
import { EventsService, type Event } from "../../../src/gen/aimesh/events/v1/events_pb.js";
import { client } from "../api.js";
import { ErrorNote, Pager, Panel, useLiveStream, usePaged, when } from "../ui.js";

const events = client(EventsService);

/** The services whose events can be shown alone. */
const SERVICES = ["notes", "processing", "conversation", "gallery", "speech", "reports", "identity"];

/** What happened, in words. */
export function describeEvent(event: Event): string {
  const kind = event.payload?.kind;
  switch (kind?.case) {
    case "noteCreated":
      return `Note “${kind.value.title}” created`;
    case "noteUpdated":
      return `Note changed (version ${kind.value.version})`;
    case "noteDeleted":
      return "Note deleted";
    case "noteTranslated":
      return `Note translated into ${kind.value.targetLanguage}`;
    case "documentUploaded":
      return `Document “${kind.value.name}” uploaded`;
    case "documentProcessed":
      return kind.value.ready
        ? `Document ready (${kind.value.pageCount} pages)`
        : `Document failed: ${kind.value.failureReason}`;
    case "documentDeleted":
      return "Document deleted";
    case "taskFinished":
      return kind.value.succeeded
        ? `Task ${kind.value.kind} done`
        : `Task ${kind.value.kind} failed: ${kind.value.failureReason}`;
    case "quizSubmitted":
      return `Quiz submitted: ${kind.value.score} of ${kind.value.maxScore} right`;
    case "messageAnswered":
      return kind.value.succeeded
        ? "Chat reply ready"
        : `Chat reply failed at ${kind.value.failureStage}: ${kind.value.failureReason}`;
    case "imageCreated":
      return `Image added (${kind.value.source}, ${kind.value.width}×${kind.value.height})`;
    case "imageTrashed":
      return "Image moved to the trash";
    case "imageRestored":
      return "Image restored";
    case "imageDeleted":
      return "Image deleted for good";
    case "transcriptionFinished":
      return kind.value.succeeded
        ? `Transcription done (${kind.value.language}, ${kind.value.durationSeconds.toFixed(0)} s)`
        : `Transcription failed: ${kind.value.failureReason}`;
    case "audioGenerated":
      return `Speech synthesised (${kind.value.voice}, ${kind.value.durationSeconds.toFixed(1)} s)`;
    case "reportFinished":
      return kind.value.ready
        ? `Report ready (${kind.value.format})`
        : `Report failed: ${kind.value.failureReason}`;
    case "accountCreated":
      return `Account ${kind.value.username} created`;
    case "accountDeleted":
      return "Account deleted";
    default:
      return event.type;
  }
}

export function Activity() {
  const [service, setService] = useState("");
  const types = service ? [service] : [];
  const { items: list, setItems: setList, next, error, tokens, setTokens, loaded } = usePaged(
    (pageToken, signal) =>
      events
        .listEvents({ pageSize: 25, pageToken, types, newestFirst: true }, { signal })
        .then((r) => ({ items: r.events, next: r.nextPageToken })),
    [service],
  );
  const firstPage = tokens.length === 1;
  // The newest event seen: a stream opened again resumes after it (so a drop misses nothing).
  const after = useRef("");
  useEffect(() => {
    after.current = list[0]?.id ?? "";
  }, [service, firstPage, loaded]);

  // On the first page, new events go on top as they happen.
  const live = useLiveStream(
    (signal) =>
      events.watchEvents(
        { afterEventId: after.current, fromOldest: !after.current, types },
        { signal },
      ),
    (change) => {
      const event = change.event;
      if (!event) return;
      after.current = event.id;
      setList((rows) => (rows.some((r) => r.id === event.id) ? rows : [event, ...rows].slice(0, 25)));
    },
    [service, firstPage, loaded],
    firstPage && loaded,
  );

  return (
    <Panel title="Your events">
      <div class="filters">
        <label>
          Service
          <select
            value={service}
            onChange={(e) => {
              setService(e.currentTarget.value);
              setTokens([""]);
            }}
          >
            <option value="">all</option>
            {SERVICES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <span class="meta" role="status">
          {firstPage ? (live ? "live" : "reconnecting…") : ""}
        </span>
      </div>
      <ErrorNote error={error} />
      <div class="table-wrap">
        <table aria-label="Activity">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">What happened</th>
              <th scope="col">Type</th>
            </tr>
          </thead>
          <tbody>
            {list.map((event) => (
              <tr key={event.id} data-event={event.id} data-type={event.type}>
                <td>{when(event.time)}</td>
                <td>{describeEvent(event)}</td>
                <td>
                  <code>{event.type}</code>
                </td>
              </tr>
            ))}
            {list.length === 0 && loaded && !error ? (
              <tr>
                <td colSpan={3} class="empty">
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
