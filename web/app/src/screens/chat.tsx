// Chat: the sessions (newest activity first; create, rename, delete), a session's messages
// oldest first, and a composer. A reply streams live (WatchMessage: the pipeline's stage, then
// the text piece by piece, then the finished message), with the document passages it cites and
// the image it made; a reply in progress can be stopped, the last one written again, a message
// of the user's edited. A new conversation may be about a gallery image (`#/chat/about/<id>`,
// from the image's page): the first message carries it, for an edit the words ask for.

import { useEffect, useRef, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ConversationService,
  Intent,
  MessageStatus,
  Role,
  Stage,
  type Message,
  type Session,
} from "../../../src/gen/aimesh/conversation/v1/conversation_pb.js";
import { ImageVariant } from "../../../src/gen/aimesh/gallery/v1/gallery_pb.js";
import {
  Capability,
  ModelState,
  ModelsService,
  type Model,
} from "../../../src/gen/aimesh/models/v1/models_pb.js";
import { client } from "../api.js";
import { ErrorNote, Pager, Panel, useAction, usePaged, when } from "../ui.js";
import { GalleryImage } from "./gallery.js";
import type { ScreenProps } from "./index.js";

const chat = client(ConversationService);
const models = client(ModelsService);

/** What each stage does, for people. */
const STAGES: Record<Stage, { name: string; doing: string }> = {
  [Stage.UNSPECIFIED]: { name: "start", doing: "starting" },
  [Stage.QUEUED]: { name: "queue", doing: "waiting for a worker" },
  [Stage.REFINE]: { name: "refine", doing: "rewriting the request" },
  [Stage.INTENT]: { name: "intent", doing: "working out what is asked" },
  [Stage.ACT]: { name: "act", doing: "writing the reply" },
  [Stage.FINALISE]: { name: "finalise", doing: "storing the reply" },
};

const INTENTS: Record<Intent, string> = {
  [Intent.UNSPECIFIED]: "",
  [Intent.CHAT]: "chat",
  [Intent.DOCUMENTS]: "answer from your documents",
  [Intent.GENERATE_IMAGE]: "new image",
  [Intent.EDIT_IMAGE]: "image edit",
};

function capitalised(text: string): string {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

function sentence(text: string): string {
  const trimmed = capitalised(text.trim());
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** What the act stage does for each intent (the stage's detail is "<intent> (<confidence>)"). */
const ACTING: Record<string, string> = {
  chat: "writing the reply",
  documents: "searching your documents and writing the answer",
  generate_image: "making the image",
  edit_image: "editing the image",
};

/** A running stage as a phrase, e.g. "Writing the reply… (chat, confidence 0.93)". */
function stageSaid(stage: Stage, detail: string): string {
  if (stage === Stage.ACT) {
    const found = /^([a-z_]+)\s*(?:\(([\d.]+)\))?/.exec(detail.trim());
    const acting = found ? ACTING[found[1]] : undefined;
    if (found && acting) {
      const sure = found[2] ? `, confidence ${found[2]}` : "";
      return `${capitalised(acting)}… (${found[1].replace("_", " ")}${sure})`;
    }
  }
  return `${capitalised((STAGES[stage] ?? STAGES[Stage.UNSPECIFIED]).doing)}…`;
}

/** Why a FAILED reply failed, as one sentence naming its stage. */
export function failureSentence(message: Message): string {
  const stage = STAGES[message.stage] ?? STAGES[Stage.UNSPECIFIED];
  const reason = message.failureReason.trim() || "no reason was recorded";
  return sentence(`The reply failed at the ${stage.name} stage (${stage.doing}): ${reason}`);
}

/** A FAILED reply's text without the closing apology that repeats its failure reason. */
function withoutApology(content: string): string {
  return content.replace(/(\n\n)?Sorry, I could not do that \([^)]*\): [\s\S]*$/, "");
}

export function Chat({ arg }: ScreenProps) {
  // `about/<image id>`: a new conversation about that gallery image; else a session's id.
  const about = arg.startsWith("about/") ? arg.slice("about/".length) : "";
  const sessionId = about ? "" : arg;
  const {
    items: list,
    loaded,
    next,
    error,
    tokens,
    setTokens,
    reload: refresh,
  } = usePaged(
    (pageToken, signal) =>
      chat
        .listSessions({ pageSize: 20, pageToken }, { signal })
        .then((r) => ({ items: r.sessions, next: r.nextPageToken })),
    [],
  );

  const create = useAction(async () => {
    const r = await chat.createSession({});
    setTokens([""]);
    refresh();
    if (r.session) window.location.hash = `#/chat/${r.session.id}`;
  });

  return (
    <div class="split chat">
      <div>
        <Panel title="Conversations">
          <button type="button" disabled={create.busy} onClick={() => void create.run()}>
            New chat
          </button>
          <ErrorNote error={create.error} />
          <ErrorNote error={error} />
          <ul class="list sessions" aria-label="Conversations">
            {list.map((s) => (
              <li key={s.id}>
                <a href={`#/chat/${s.id}`} aria-current={s.id === sessionId ? "true" : undefined}>
                  <strong>{s.title || "New conversation"}</strong>
                  <span class="meta">
                    {s.messageCount.toString()} messages · {when(s.lastActivityTime)}
                  </span>
                </a>
              </li>
            ))}
            {loaded && list.length === 0 && !error ? <li class="empty">No conversations yet.</li> : null}
          </ul>
          <Pager tokens={tokens} next={next} onPage={setTokens} />
        </Panel>
      </div>
      <div>
        <ModelsNotice />
        {sessionId ? (
          <Conversation
            key={sessionId}
            id={sessionId}
            onChange={refresh}
            onDeleted={() => {
              refresh();
              window.location.hash = "#/chat";
            }}
          />
        ) : (
          <Panel title="New conversation">
            <Composer
              image={about}
              onDropImage={() => {
                window.location.hash = "#/chat";
              }}
              onSend={async (text) => {
                const r = await chat.chat({ sessionId: "", message: text, imageId: about });
                refresh();
                if (r.session) window.location.hash = `#/chat/${r.session.id}`;
              }}
            />
          </Panel>
        )}
      </div>
    </div>
  );
}

/** Says so when the engines replies need are not ready on this server, with the fix. */
function ModelsNotice() {
  const [missing, setMissing] = useState<Model[]>([]);
  useEffect(() => {
    models
      .listModels({})
      .then((r) =>
        setMissing(
          r.models.filter(
            (m) =>
              (m.capability === Capability.CHAT || m.capability === Capability.EMBEDDINGS) &&
              m.state !== ModelState.READY,
          ),
        ),
      )
      .catch(() => setMissing([]));
  }, []);
  if (missing.length === 0) return null;
  return (
    <div class="notice" role="status" aria-label="Chat availability">
      {missing.map((m) => (
        <p key={m.id}>
          {m.capability === Capability.CHAT
            ? "Replies cannot be written on this server: its chat model is not ready"
            : "Replies cannot be written on this server: its embeddings engine is not ready"}
          {m.detail ? ` (${m.detail.trim().replace(/\.$/, "")})` : ""}. Messages wait until a worker
          that has it runs.
        </p>
      ))}
    </div>
  );
}

/** One session: its title (rename, delete), its messages and the composer. */
function Conversation({
  id,
  onChange,
  onDeleted,
}: {
  id: string;
  onChange: () => void;
  onDeleted: () => void;
}) {
  const [session, setSession] = useState<Session>();
  const [messages, setMessages] = useState<Message[]>();
  const [error, setError] = useState<unknown>(null);
  const [renaming, setRenaming] = useState(false);
  const [title, setTitle] = useState("");
  const [reload, setReload] = useState(0);
  const end = useRef<HTMLDivElement>(null);

  useEffect(() => {
    chat
      .getSession({ id })
      .then((r) => setSession(r.session))
      .catch(setError);
  }, [id, reload]);

  // Every message, oldest first (page by page).
  useEffect(() => {
    const abort = new AbortController();
    void (async () => {
      try {
        const all: Message[] = [];
        let token = "";
        for (let page = 0; page < 50; page++) {
          const r = await chat.listMessages(
            { sessionId: id, pageSize: 100, pageToken: token },
            { signal: abort.signal },
          );
          all.push(...r.messages);
          token = r.nextPageToken;
          if (!token) break;
        }
        setMessages(all);
      } catch (e) {
        if (!abort.signal.aborted) setError(e);
      }
    })();
    return () => abort.abort();
  }, [id, reload]);

  const count = messages?.length ?? 0;
  const lastLength = messages?.[count - 1]?.content.length ?? 0;
  useEffect(() => {
    end.current?.scrollIntoView?.({ block: "nearest" });
  }, [count, lastLength]);

  const reloadAll = () => {
    setReload((n) => n + 1);
    onChange();
  };
  const replace = (message: Message) =>
    setMessages((rows) => rows?.map((m) => (m.id === message.id ? message : m)));

  const rename = useAction(async () => {
    const r = await chat.renameSession({ id, title: title.trim() });
    if (r.session) setSession(r.session);
    setRenaming(false);
    onChange();
  });
  const remove = useAction(async () => {
    await chat.deleteSession({ id });
    onDeleted();
  });
  const regenerate = useAction(async () => {
    await chat.regenerateReply({ sessionId: id });
    reloadAll();
  });

  if (error) return <ErrorNote error={error} />;
  if (!session || !messages) return <p aria-busy="true">Loading…</p>;

  const last = messages[messages.length - 1];
  const replying = messages.some((m) => m.status === MessageStatus.PROCESSING);
  const name = session.title || "New conversation";

  return (
    <section class="panel conversation" aria-label={name}>
      <div class="conversation-head">
        {renaming ? (
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              void rename.run();
            }}
          >
            <label>
              Title
              <input required maxLength={200} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
            </label>
            <button type="submit" disabled={rename.busy}>
              Save title
            </button>
            <button type="button" class="secondary" onClick={() => setRenaming(false)}>
              Cancel
            </button>
          </form>
        ) : (
          <>
            <h2>{name}</h2>
            <div class="row">
              <button
                type="button"
                class="secondary"
                onClick={() => {
                  setTitle(session.title);
                  setRenaming(true);
                }}
              >
                Rename
              </button>
              <button
                type="button"
                class="danger"
                disabled={remove.busy}
                onClick={() => window.confirm(`Delete “${name}” and its messages?`) && void remove.run()}
              >
                Delete
              </button>
            </div>
          </>
        )}
      </div>
      <ErrorNote error={rename.error || remove.error} />
      <ol class="messages" aria-label="Messages">
        {messages.map((m) => (
          <MessageItem key={m.id} message={m} onEnd={replace} onEdited={reloadAll} />
        ))}
      </ol>
      {messages.length === 0 ? <p class="empty">No messages yet: write the first below.</p> : null}
      {last && !replying && (last.role === Role.ASSISTANT || last.role === Role.USER) ? (
        <div class="row">
          <button type="button" class="secondary" disabled={regenerate.busy} onClick={() => void regenerate.run()}>
            {last.role === Role.ASSISTANT ? "Regenerate reply" : "Answer again"}
          </button>
        </div>
      ) : null}
      <ErrorNote error={regenerate.error} />
      <div ref={end} />
      <Composer
        onSend={async (text) => {
          const r = await chat.sendMessage({ sessionId: id, content: text });
          const added = [r.userMessage, r.assistantMessage].filter((m): m is Message => !!m);
          setMessages((rows) => [...(rows ?? []), ...added]);
          if (!session.title) setReload((n) => n + 1);
          onChange();
        }}
      />
    </section>
  );
}

/**
 * The message box; Enter sends, Shift+Enter starts a new line. With an `image`, the message is
 * about that gallery image, shown above the box with a button to drop it.
 */
function Composer({
  onSend,
  image = "",
  onDropImage,
}: {
  onSend: (text: string) => Promise<void>;
  image?: string;
  onDropImage?: () => void;
}) {
  const [text, setText] = useState("");
  const send = useAction(async () => {
    const content = text.trim();
    if (!content) return;
    await onSend(content);
    setText("");
  });
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send.run();
      }}
    >
      {image ? (
        <figure class="message-image" aria-label="The image this message is about">
          <GalleryImage id={image} variant={ImageVariant.THUMBNAIL_256} alt="The image this message is about" />
          <figcaption class="row">
            <span class="meta">About this image: ask for an edit, e.g. “make it black and white”.</span>
            {onDropImage ? (
              <button type="button" class="secondary small" onClick={onDropImage}>
                Remove image
              </button>
            ) : null}
          </figcaption>
        </figure>
      ) : null}
      <label>
        Message
        <textarea
          rows={3}
          required
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void send.run();
            }
          }}
        />
      </label>
      <ErrorNote error={send.error} />
      <button type="submit" disabled={send.busy}>
        Send
      </button>
    </form>
  );
}

/** One message: the user's (editable) or a reply (live while it is being written). */
function MessageItem({
  message,
  onEnd,
  onEdited,
}: {
  message: Message;
  onEnd: (message: Message) => void;
  onEdited: () => void;
}) {
  if (message.role === Role.USER) return <UserMessage message={message} onEdited={onEdited} />;
  if (message.status === MessageStatus.PROCESSING) {
    return <LiveReply key={message.id} message={message} onEnd={onEnd} />;
  }
  return <Reply message={message} />;
}

function UserMessage({ message, onEdited }: { message: Message; onEdited: () => void }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(message.content);
  const save = useAction(async () => {
    await chat.editMessage({ sessionId: message.sessionId, id: message.id, content: text.trim() });
    setEditing(false);
    onEdited();
  });
  return (
    <li class="message user" data-status="done">
      <article aria-label="Your message">
        <h3 class="who-said">You</h3>
        {editing ? (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void save.run();
            }}
          >
            <label>
              Edit your message (the replies after it are written again)
              <textarea rows={3} required value={text} onInput={(e) => setText(e.currentTarget.value)} />
            </label>
            <ErrorNote error={save.error} />
            <div class="row">
              <button type="submit" disabled={save.busy}>
                Save and send
              </button>
              <button type="button" class="secondary" onClick={() => setEditing(false)}>
                Cancel
              </button>
            </div>
          </form>
        ) : (
          <>
            <div class="text">{message.content}</div>
            {message.imageId ? (
              <figure class="message-image">
                <a href={`#/gallery/${message.imageId}`}>
                  <GalleryImage
                    id={message.imageId}
                    variant={ImageVariant.THUMBNAIL_256}
                    alt="The image this message is about"
                  />
                </a>
              </figure>
            ) : null}
            <div class="row message-actions">
              <span class="meta">{when(message.createTime)}</span>
              <button
                type="button"
                class="secondary small"
                onClick={() => {
                  setText(message.content);
                  setEditing(true);
                }}
              >
                Edit
              </button>
            </div>
          </>
        )}
      </article>
    </li>
  );
}

/** A reply being written: its stage and its text as they stream, and a button to stop it. */
function LiveReply({ message, onEnd }: { message: Message; onEnd: (message: Message) => void }) {
  const [text, setText] = useState(message.content);
  const [stage, setStage] = useState({ stage: message.stage, detail: "", percent: 0 });
  const [live, setLive] = useState(true);
  const endRef = useRef(onEnd);
  endRef.current = onEnd;

  useEffect(() => {
    const abort = new AbortController();
    const { sessionId, id } = message;
    const finish = (m: Message) => {
      if (!abort.signal.aborted) endRef.current(m);
    };
    void (async () => {
      for (let attempt = 0; !abort.signal.aborted; attempt++) {
        try {
          let reply = "";
          for await (const r of chat.watchMessage({ sessionId, id }, { signal: abort.signal })) {
            setLive(true);
            attempt = 0;
            const event = r.event;
            if (event.case === "stage") {
              setStage({ stage: event.value.stage, detail: event.value.detail, percent: event.value.percent });
            } else if (event.case === "delta") {
              reply += event.value;
              setText(reply);
            } else if (event.case === "message") {
              finish(event.value);
              return;
            }
          }
        } catch (error) {
          if (abort.signal.aborted) return;
          const transient =
            !(error instanceof ConnectError) ||
            error.code === Code.Unavailable ||
            error.code === Code.DeadlineExceeded ||
            error.code === Code.Internal ||
            error.code === Code.Unknown;
          if (!transient) {
            setLive(false);
            return;
          }
        }
        // The stream ended without the final message (dropped): see where the reply is.
        setLive(false);
        try {
          const r = await chat.getMessage({ sessionId, id }, { signal: abort.signal });
          if (r.message && r.message.status !== MessageStatus.PROCESSING) {
            finish(r.message);
            return;
          }
        } catch {
          if (abort.signal.aborted) return;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 5_000)));
      }
    })();
    return () => abort.abort();
  }, [message.id]);

  const stop = useAction(async () => {
    const r = await chat.cancelMessage({ sessionId: message.sessionId, id: message.id });
    if (r.message) onEnd(r.message);
  });
  const said = stageSaid(stage.stage, stage.detail);

  return (
    <li class="message assistant" data-status="processing">
      <article aria-label="Reply">
        <h3 class="who-said">Assistant</h3>
        <p class="stage" role="status" aria-label="Reply stage">
          {said}
          {live ? "" : " · reconnecting"}
        </p>
        <progress
          aria-label="Reply progress"
          max={100}
          value={Math.max(0, Math.min(100, stage.percent))}
        />
        <div class="text reply" aria-live="polite" data-testid="reply-text">
          {text}
        </div>
        <ErrorNote error={stop.error} />
        <button type="button" class="secondary" disabled={stop.busy} onClick={() => void stop.run()}>
          Stop
        </button>
      </article>
    </li>
  );
}

/** A finished reply: its text, sources, image, and how it ended. */
function Reply({ message }: { message: Message }) {
  const failed = message.status === MessageStatus.FAILED;
  const cancelled = message.status === MessageStatus.CANCELLED;
  const content = failed ? withoutApology(message.content) : message.content;
  const status = failed ? "failed" : cancelled ? "cancelled" : "done";
  const facts = [
    INTENTS[message.intent],
    message.model,
    message.completionTokens ? `${message.completionTokens} tokens` : "",
    when(message.updateTime),
  ].filter(Boolean);
  return (
    <li class={`message assistant ${status}`} data-status={status}>
      <article aria-label="Reply">
        <h3 class="who-said">Assistant</h3>
        {content ? (
          <div class="text reply" data-testid="reply-text">
            {content}
          </div>
        ) : null}
        {message.imageId ? (
          <figure class="reply-image">
            <a href={`#/gallery/${message.imageId}`}>
              <GalleryImage
                id={message.imageId}
                variant={ImageVariant.THUMBNAIL_1024}
                alt={message.refinedPrompt ? `Image for: ${message.refinedPrompt}` : "The image made for this reply"}
              />
            </a>
            <figcaption class="meta">In your gallery</figcaption>
          </figure>
        ) : null}
        {message.citations.length ? (
          <ol class="citations" aria-label="Sources">
            {message.citations.map((c) => (
              <li key={c.index}>
                <details>
                  <summary>
                    [{c.index}] {c.filename || "the given context"}
                    {c.page > 0 ? `, page ${c.page}` : ""}
                    <span class="meta"> · relevance {c.score.toFixed(2)}</span>
                  </summary>
                  <blockquote class="text">{c.text}</blockquote>
                  {c.documentId ? (
                    <a href={`#/documents/${c.documentId}`}>Open the document</a>
                  ) : null}
                </details>
              </li>
            ))}
          </ol>
        ) : null}
        {failed ? (
          <p class="error" role="alert">
            {failureSentence(message)}
          </p>
        ) : null}
        {cancelled ? <p class="meta">Stopped before it was finished.</p> : null}
        {facts.length ? <p class="meta">{facts.join(" · ")}</p> : null}
      </article>
    </li>
  );
}
